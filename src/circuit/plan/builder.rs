//! The planner's builder: cells and their witness values (field elements), the row shapes a
//! step can take (dot products with digits, products, lookups, equalities, digests), and the range
//! checks and rescales every op family plans with.

use super::*;

pub(super) struct Builder<'a> {
    pub(super) qm: &'a QuantizedModel,
    pub(super) bits: u32,
    pub(super) values: Vec<Option<Fp>>,
    pub(super) steps: Vec<(usize, Step)>,
    pub(super) node: usize,
    /// Per value id, one cell per element (None until the value is computed).
    pub(super) cells: Vec<Option<Vec<CellId>>>,
    /// Per value id, the sign cell of each element when known (1 iff ≥ 0), from a range check.
    pub(super) signs: HashMap<usize, Vec<CellId>>,
    pub(super) tables: Vec<TableSpec>,
    pub(super) data_tables: Vec<DataTable>,
    pub(super) zero: Option<CellId>,
    pub(super) witness: bool,
    pub(super) expected: Option<&'a [Tensor<i64>]>,
    /// Hashed parameters: the cells of each parameter tensor, by (node, tensor index); None when
    /// the parameters are fixed weights of the gates.
    pub(super) params: Option<HashMap<(usize, usize), Vec<CellId>>>,
}

/// A factor of a product term: a weight fixed in the circuit, or the cell of a hashed one.
#[derive(Clone, Copy)]
pub(super) enum Param {
    Fixed(i128),
    Cell(CellId),
}

impl Builder<'_> {
    pub(super) fn err(&self, msg: impl Into<String>) -> CompileError {
        let name = self
            .qm
            .nodes
            .get(self.node)
            .map(|n| n.origin.clone())
            .unwrap_or_else(|| "io".into());
        CompileError {
            node: name,
            msg: msg.into(),
        }
    }

    pub(super) fn cell(&mut self, v: Option<i128>) -> CellId {
        self.field_cell(v.map(fe))
    }

    pub(super) fn field_cell(&mut self, v: Option<Fp>) -> CellId {
        self.values.push(v);
        self.values.len() - 1
    }

    /// The integer cell `c` holds (None without a witness). Every cell read as an integer
    /// (range checks, rescales, tables, comparisons) holds a sum of small terms; one that does
    /// not is a planner bug, reported as such rather than wrapped.
    pub(super) fn val(&self, c: CellId) -> PResult<Option<i128>> {
        match self.values[c] {
            None => Ok(None),
            Some(x) => fe_to_i128(x).map(Some).ok_or_else(|| {
                self.err("a cell read as an integer holds a field element beyond 127 bits")
            }),
        }
    }

    pub(super) fn push(&mut self, s: Step) {
        self.steps.push((self.node, s));
    }

    /// `c + Σ cell·w`; zero-weight terms are dropped (they would bind nothing).
    pub(super) fn dot(&mut self, terms: Vec<(CellId, i128)>, c: i128) -> CellId {
        let terms: Vec<(CellId, i128)> = terms.into_iter().filter(|(_, w)| *w != 0).collect();
        let v = if self.witness {
            terms.iter().try_fold(fe(c), |acc, (cell, w)| {
                self.values[*cell].map(|x| acc + x * fe(*w))
            })
        } else {
            None
        };
        let out = self.field_cell(v);
        self.push(Step::Dot {
            terms,
            c,
            digits: None,
            out,
        });
        out
    }

    /// The words of [`commit::pack`], `lo + 2^(bits·m)·hi`: a dot product for the high half,
    /// then one for the low half with the high half as a term (the weights stay within `i128`).
    pub(super) fn pack(&mut self, cells: &[CellId], bits: u32) -> Vec<CellId> {
        let half = 1i128 << (bits - 1);
        let m = commit::per_half(bits);
        let terms = |g: &[CellId]| -> (Vec<(CellId, i128)>, i128) {
            let t: Vec<(CellId, i128)> = g
                .iter()
                .enumerate()
                .map(|(j, &c)| (c, 1i128 << (bits as usize * j)))
                .collect();
            let offset = t.iter().map(|(_, w)| half * w).sum();
            (t, offset)
        };
        cells
            .chunks(commit::per_word(bits))
            .map(|group| {
                let (lo, hi) = group.split_at(group.len().min(m));
                let (mut t, offset) = terms(lo);
                if !hi.is_empty() {
                    let (th, oh) = terms(hi);
                    let h = self.dot(th, oh);
                    t.push((h, 1i128 << (bits as usize * m)));
                }
                self.dot(t, offset)
            })
            .collect()
    }

    /// Hash `msg` (`[tag, words…]`) into instance `row`; the words are padded to whole blocks
    /// with the zero cell, as [`commit::chain`] pads them.
    pub(super) fn hash(&mut self, mut msg: Vec<CellId>, row: usize, label: &'static str) {
        let z = self.zero();
        msg.resize(commit::padded_len(msg.len()), z);
        self.push(Step::Hash {
            msg,
            zero: z,
            row,
            label,
        });
    }

    pub(super) fn equal(&mut self, a: CellId, b: CellId) {
        self.push(Step::Equal { a, b });
    }

    /// Fresh digits of `v` (which must lie in `[0, 2^n)`) and `c + v` from them: the top bit
    /// alone when `sign` (the sign of a value offset by half the range), a bit for an odd
    /// remainder, and base-4 digits for the rest. Returns `c + v` and, with `sign`, the top bit.
    pub(super) fn digits(
        &mut self,
        v: Option<i128>,
        n: u32,
        c: i128,
        sign: bool,
    ) -> PResult<(CellId, Option<CellId>)> {
        if let Some(v) = v
            && (v < 0 || v >= 1i128 << n)
        {
            let need = 128 - (v + c).unsigned_abs().leading_zeros() + 1;
            return Err(self.err(format!(
                "value {} is outside the {n}-bit range the circuit checks (it needs {need} \
                 signed bits: raise --activation-bits or lower --scale)",
                v + c
            )));
        }
        // (bit position, mask): bits first, so they sit on the lanes whose digit kind is fixed.
        let mut shape = vec![];
        let mut m = n;
        if sign {
            m -= 1;
            shape.push((m, 1));
        }
        if m % 2 == 1 {
            m -= 1;
            shape.push((m, 1));
        }
        shape.extend((0..m).step_by(2).map(|p| (p, 3)));
        let terms: Vec<(CellId, i128)> = shape
            .iter()
            .map(|&(p, mask)| (self.cell(v.map(|v| (v >> p) & mask)), 1i128 << p))
            .collect();
        let top = sign.then(|| terms[0].0);
        let nb = shape.iter().filter(|&&(_, mask)| mask == 1).count() as u8;
        let out = self.cell(v.map(|v| v + c));
        self.push(Step::Dot {
            terms,
            c,
            digits: Some(nb),
            out,
        });
        Ok((out, top))
    }

    /// Prove `x ∈ [-2^(A-1), 2^(A-1))`; returns the sign cell (1 iff x ≥ 0).
    pub(super) fn signed_range(&mut self, x: CellId) -> PResult<CellId> {
        let half = 1i128 << (self.bits - 1);
        let (out, sign) = self.digits(self.val(x)?.map(|v| v + half), self.bits, -half, true)?;
        self.equal(out, x);
        sign.ok_or_else(|| self.err("a signed range check has a sign"))
    }

    /// A fresh cell holding `v`, proved to lie in `[-2^(bits-1), 2^(bits-1))` (its digits
    /// bind it; no sign digit, as nothing needs the sign).
    pub(super) fn checked_cell(&mut self, v: Option<i128>, bits: u32) -> PResult<CellId> {
        let half = 1i128 << (bits - 1);
        let (out, _) = self.digits(v.map(|v| v + half), bits, -half, false)?;
        Ok(out)
    }

    /// The parameter `i` of tensor `t` of the current node, when parameters are hashed.
    pub(super) fn param(&self, t: usize, i: usize) -> Option<CellId> {
        self.params
            .as_ref()
            .and_then(|p| p.get(&(self.node, t)))
            .map(|c| c[i])
    }

    /// `Σ x·w + bias` over `(x, w)` terms: fixed weights are the dot product's weights; hashed
    /// ones (cells) are products of two runtime cells, summed by the pair-dot gate, whose sum is
    /// then a term of weight 1.
    pub(super) fn weighted_sum(&mut self, terms: Vec<(CellId, Param)>, bias: Param) -> CellId {
        let mut fixed = vec![];
        let mut pairs = vec![];
        for (x, w) in terms {
            match w {
                Param::Fixed(w) => fixed.push((x, w)),
                Param::Cell(c) => pairs.push((x, c)),
            }
        }
        if !pairs.is_empty() {
            let p = self.pair_dot(pairs);
            fixed.push((p, 1));
        }
        self.affine(fixed, bias)
    }

    /// `Σ a·b` over the pairs: a dot product of two runtime vectors.
    pub(super) fn pair_dot(&mut self, pairs: Vec<(CellId, CellId)>) -> CellId {
        let v = if self.witness {
            pairs.iter().try_fold(Fp::zero(), |acc, &(a, b)| {
                self.values[a].zip(self.values[b]).map(|(x, y)| acc + x * y)
            })
        } else {
            None
        };
        let out = self.field_cell(v);
        self.push(Step::PairDot { pairs, out });
        out
    }

    /// Weight `i` (tensor 0) or bias `i` (tensor 1) of the current node.
    pub(super) fn weight(&self, t: usize, i: usize, fixed: i64) -> Param {
        match self.param(t, i) {
            Some(c) => Param::Cell(c),
            None => Param::Fixed(fixed as i128),
        }
    }

    /// `Σ terms + bias`: a fixed bias is the dot's constant, a hashed one a term of weight 1.
    pub(super) fn affine(&mut self, mut terms: Vec<(CellId, i128)>, bias: Param) -> CellId {
        match bias {
            Param::Fixed(c) => self.dot(terms, c),
            Param::Cell(b) => {
                terms.push((b, 1));
                self.dot(terms, 0)
            }
        }
    }

    /// Prove `x ∈ [0, 2^A)`.
    pub(super) fn unsigned_range(&mut self, x: CellId) -> PResult<()> {
        let (out, _) = self.digits(self.val(x)?, self.bits, 0, false)?;
        self.equal(out, x);
        Ok(())
    }

    /// `y = floor((x + floor(d/2)) / d)` with the remainder `r ∈ [0, d)` and `y` range-checked;
    /// returns y and its sign cell.
    pub(super) fn rescale(&mut self, x: CellId, d: u64) -> PResult<(CellId, CellId)> {
        let d128 = d as i128;
        let m = 64 - (d - 1).leading_zeros(); // bits for r ∈ [0, d)
        let xv = self.val(x)?;
        let yv = xv.map(|v| rescale(v as i64, d) as i128);
        let rv = xv.zip(yv).map(|(x, y)| x + d128 / 2 - y * d128);
        let (r, _) = self.digits(rv, m, 0, false)?;
        if d128 != 1i128 << m {
            // r < d as well: r + 2^m − d ∈ [0, 2^m).
            let shift = (1i128 << m) - d128;
            let (r2, _) = self.digits(rv.map(|r| r + shift), m, -shift, false)?;
            self.equal(r2, r);
        }
        let half = 1i128 << (self.bits - 1);
        let (y, sign) = self.digits(yv.map(|y| y + half), self.bits, -half, true)?;
        let chk = self.dot(vec![(y, d128), (r, 1)], -(d128 / 2));
        self.equal(chk, x);
        Ok((
            y,
            sign.ok_or_else(|| self.err("a signed range check has a sign"))?,
        ))
    }

    pub(super) fn mul(&mut self, a: CellId, b: CellId) -> CellId {
        let v = self.values[a].zip(self.values[b]).map(|(a, b)| a * b);
        let out = self.field_cell(v);
        self.push(Step::Mul {
            items: vec![(a, b, out)],
        });
        out
    }

    pub(super) fn zero(&mut self) -> CellId {
        if let Some(z) = self.zero {
            return z;
        }
        let z = self.dot(vec![], 0);
        self.zero = Some(z);
        z
    }

    pub(super) fn constant(&mut self, v: i64) -> CellId {
        self.dot(vec![], v as i128)
    }

    pub(super) fn constant_i128(&mut self, v: i128) -> CellId {
        self.dot(vec![], v)
    }

    /// Cells of a value; a constant is materialized on first use.
    pub(super) fn value_cells(&mut self, v: usize) -> PResult<Vec<CellId>> {
        if let Some(c) = &self.cells[v] {
            return Ok(c.clone());
        }
        let node = self
            .qm
            .nodes
            .iter()
            .position(|n| n.output == v)
            .ok_or_else(|| self.err("value has no producer"))?;
        match &self.qm.nodes[node].op {
            QOp::Const { data } => {
                let saved = self.node;
                self.node = node;
                let cells: Vec<CellId> = match self.params.as_ref().and_then(|p| p.get(&(node, 0)))
                {
                    Some(hashed) => hashed.clone(),
                    None => data.iter().map(|&x| self.constant(x)).collect(),
                };
                self.node = saved;
                self.cells[v] = Some(cells.clone());
                Ok(cells)
            }
            _ => Err(self.err(format!(
                "value {} used before it is computed",
                self.qm.values[v].name
            ))),
        }
    }

    /// A constant's integers, to fold into a gate's weights; None for a runtime value, and for
    /// every constant when parameters are hashed (they are cells then).
    pub(super) fn const_data(&self, v: usize) -> Option<&Vec<i64>> {
        if self.params.is_some() {
            return None;
        }
        self.qm
            .nodes
            .iter()
            .find(|n| n.output == v)
            .and_then(|n| match &n.op {
                QOp::Const { data } => Some(data),
                _ => None,
            })
    }

    pub(super) fn shape(&self, v: usize) -> &[usize] {
        &self.qm.values[v].shape
    }

    pub(super) fn node(&mut self, idx: usize) -> PResult<()> {
        self.node = idx;
        let n = &self.qm.nodes[idx];
        let out_shape = self.qm.values[n.output].shape.clone();
        let cells: Vec<CellId> = match &n.op {
            QOp::Input { .. } => return Ok(()), // laid out by the Input step
            QOp::Const { .. } => return Ok(()), // materialized where used
            QOp::Linear {
                k,
                n: nout,
                weight,
                bias,
            } => self.plan_linear(n, k, nout, weight, bias)?,
            QOp::Conv {
                out_channels,
                kernel,
                strides: st,
                pads_begin,
                dilations,
                weight,
                bias,
            } => self.plan_conv(
                n,
                &out_shape,
                out_channels,
                kernel,
                st,
                pads_begin,
                dilations,
                weight,
                bias,
            )?,
            QOp::SumPool {
                kernel,
                strides: st,
                pads_begin,
                dilations,
            } => self.plan_sum_pool(n, &out_shape, kernel, st, pads_begin, dilations)?,
            QOp::MaxPool {
                kernel,
                strides: st,
                pads_begin,
                dilations,
            } => self.plan_max_pool(n, &out_shape, kernel, st, pads_begin, dilations)?,
            QOp::ReduceSum { axes, .. } => self.plan_reduce_sum(n, axes)?,
            QOp::ReduceMax { axes, min, .. } => self.plan_reduce_max(n, axes, min)?,
            QOp::Add | QOp::Sub | QOp::Mul => self.elementwise(idx)?,
            QOp::ShiftLeft { bits } => self.plan_shift_left(n, bits)?,
            QOp::Rescale { divisor } => self.plan_rescale(n, divisor)?,
            QOp::Sqrt { shift } => self.plan_sqrt(n, *shift)?,
            QOp::Recip { num } => self.plan_recip(n, *num)?,
            QOp::Relu => self.plan_relu(n)?,
            QOp::LeakyRelu { alpha, shift } => self.plan_leaky_relu(n, alpha, shift)?,
            QOp::Table {
                func,
                in_scale,
                out_scale,
                lo,
                hi,
            } => self.plan_table(n, func, in_scale, out_scale, lo, hi)?,
            QOp::Interp {
                func,
                in_scale,
                out_scale,
                lo,
                hi,
                step_bits,
            } => self.plan_interp(n, func, in_scale, out_scale, lo, hi, step_bits)?,
            QOp::Reshape => self.value_cells(n.inputs[0])?,
            QOp::MatMul {
                batch,
                m,
                k,
                n: cols,
            } => self.plan_mat_mul(n, batch, m, k, cols)?,
            QOp::Step { offset, one } => self.plan_step(n, offset, one)?,
            QOp::Gather { index, fill } => self.plan_gather(n, index, fill)?,
            QOp::Scatter { .. } => self.plan_scatter(n, &Selection::of(&n.op))?,
            QOp::Select { data, .. } => {
                self.plan_select(n, &Selection::of(&n.op), data.as_deref())?
            }
            QOp::Transpose { perm } => self.plan_transpose(n, perm)?,
            QOp::Concat { axis } => self.plan_concat(n, axis)?,
        };
        if cells.len() != numel(&out_shape) {
            return Err(self.err(format!(
                "produced {} cells for shape {:?}",
                cells.len(),
                out_shape
            )));
        }
        // The circuit's values must equal the integer evaluator's, element for element.
        if let Some(w) = self.expected {
            for (i, &c) in cells.iter().enumerate() {
                if let Some(v) = self.val(c)?
                    && v != w[n.output].data[i] as i128
                {
                    return Err(self.err(format!(
                        "circuit value {v} differs from the integer evaluator's {} at element {i}",
                        w[n.output].data[i]
                    )));
                }
            }
        }
        self.cells[n.output] = Some(cells);
        Ok(())
    }

    /// Sign cells of a value: reused from the rescale that produced it, or a fresh range check.
    pub(super) fn signs_of(&mut self, v: usize, x: &[CellId]) -> PResult<Vec<CellId>> {
        if let Some(s) = self.signs.get(&v) {
            return Ok(s.clone());
        }
        let s: Vec<CellId> = x
            .iter()
            .map(|&c| self.signed_range(c))
            .collect::<PResult<_>>()?;
        self.signs.insert(v, s.clone());
        Ok(s)
    }

    /// `m = max(v_i)`: every `m − v_i` is range-checked non-negative and their product is zero,
    /// so m is one of them.
    /// A table input outside the table's range, with how far the table would need to reach.
    pub(super) fn table_range_error(
        &self,
        v: i128,
        lo: i64,
        hi: i64,
        in_scale: i32,
        func: TableFn,
    ) -> CompileError {
        let reach = v.unsigned_abs() as f64 / 2f64.powi(in_scale);
        self.err(format!(
            "input {v} is outside the table range [{lo}, {hi}] ({} table at scale 2^{in_scale}: \
             it needs to reach ±{reach:.3}; calibrate with an input that reaches this far)",
            func.name()
        ))
    }

    /// The id of a lookup table, added on first use.
    pub(super) fn table_id(&mut self, spec: TableSpec) -> u64 {
        let same = |t: &TableSpec| TableSpec { id: 0, ..t.clone() } == spec;
        match self.tables.iter().find(|t| same(t)) {
            Some(t) => t.id,
            None => {
                let id = self.next_table_id();
                self.tables.push(TableSpec { id, ..spec });
                id
            }
        }
    }

    /// The id of a table of constants, added unless a table with the same entries exists.
    pub(super) fn data_table_id(&mut self, lo: i64, shift: u32, values: Vec<i64>) -> u64 {
        let same = |t: &DataTable| t.lo == lo && t.shift == shift && t.values == values;
        if let Some(t) = self.data_tables.iter().find(|t| same(t)) {
            return t.id;
        }
        let id = self.next_table_id();
        let node = self.qm.nodes[self.node].origin.clone();
        self.data_tables.push(DataTable {
            id,
            node,
            lo,
            shift,
            values,
        });
        id
    }

    /// Table ids start at 1 (0 is the disabled rows' id), one sequence for every kind.
    fn next_table_id(&self) -> u64 {
        (self.tables.len() + self.data_tables.len()) as u64 + 1
    }
}
