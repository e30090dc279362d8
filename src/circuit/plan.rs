//! The compiler's middle: a quantized model becomes a flat list of steps over numbered cells.
//!
//! Every step is one of a handful of row shapes that the chips in [`super::chips`] lay out (a dot
//! product, a product of two cells, a table lookup, an equality). Row counts, k and the witness
//! all come from this one plan, so the count that picks k is exactly what synthesis lays out, and
//! the structure never depends on witness values (keygen sees the same circuit as the prover).

use std::collections::HashMap;

use halo2_proofs::pasta::Fp;
use serde::{Deserialize, Serialize};

use super::chips::{fe, fe_to_i128};
use super::commit;
use super::{CompileError, Disclosure, ParamVisibility, Visibility};

use crate::quantize::{
    INTERP_FINE_BITS, QOp, QuantizedModel, TableFn, interp_domain, matmul_offsets, rescale,
    table_entry,
};
use crate::tensor::{Tensor, Window, broadcast_index_map, for_each_index, numel, reduction_map};

pub type CellId = usize;

/// Rows after which a node's steps continue in a new region (see [`Plan::regions`]).
pub const REGION_ROWS: usize = 64;

/// Products per row of the mul gate: one per three of the lane and accumulator columns.
pub fn products_per_row(columns: usize) -> usize {
    columns / 3
}

/// Rows of one block of a Poseidon chain ([`super::commit::h_block`]) in halo2_gadgets'
/// `Pow5Chip`: one row for the initial state, then per absorbed pair of the 17 elements and one
/// padding element (nine pairs) three rows to add it and 37 for the permutation (P128Pow5T3:
/// one row per full round and per pair of partial rounds, 4 + 28 + 4, and the final state).
/// Measured exactly in the tests (`plan_rows_are_the_layout_rows`).
pub const HASH_BLOCK_ROWS: usize = 1 + 9 * (3 + 37);

/// Height, in blocks, of hashing a message of `len` elements (padded) on `chips` Poseidon chips:
/// chain `j` runs on chip `j mod chips`, the chips side by side; the join of the chains follows
/// chain 0 on chip 0.
pub fn hash_rows(len: usize, chips: usize) -> usize {
    let (b, s, p) = (commit::blocks(len), commit::chains(len), chips.max(1));
    (0..p)
        .map(|chip| {
            let blocks: usize = (0..s)
                .filter(|j| j % p == chip)
                .map(|j| b / s + usize::from(j < b % s))
                .sum();
            blocks + usize::from(chip == 0 && s > 1)
        })
        .max()
        .unwrap_or(0)
}

/// One step of the plan. A cell is assigned where it first appears (the prover chooses its
/// value, and the step's gate constrains it); every later appearance is a copy, bound to the first
/// by the permutation argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Graph inputs, read from the instance column into lanes (`lanes` per row).
    Input { cells: Vec<(CellId, usize)> },
    /// Private values the prover chooses (hashed or private inputs, the salt), `lanes` per row,
    /// with no gate of their own: later steps bind them (range checks, the hash).
    Witness { cells: Vec<CellId> },
    /// The Poseidon chain of [`super::commit::chain`] over the cells, equal to instance `row`
    /// (`label` names its regions: the input or the weights digest).
    /// `zero` is a cell holding 0 (the padding of the chains' join).
    Hash {
        msg: Vec<CellId>,
        zero: CellId,
        row: usize,
        label: &'static str,
    },
    /// `out = c + Σ cell·weight` over as many rows as the terms need. With `digits: Some(nb)`,
    /// every term cell is also a digit: the first `nb` (at most 2) are bits, the rest base-4
    /// digits (a range check).
    Dot {
        terms: Vec<(CellId, i128)>,
        c: i128,
        digits: Option<u8>,
        out: CellId,
    },
    /// `out = a·b` for every `(a, b, out)`, several per row.
    Mul {
        items: Vec<(CellId, CellId, CellId)>,
    },
    /// `(table, x, out)` is a row of lookup table `table`.
    Lookup { table: u64, x: CellId, out: CellId },
    /// `a == b` (both already assigned).
    Equal { a: CellId, b: CellId },
    /// The cell equals row `row` of the instance column (public output).
    Output { cell: CellId, row: usize },
}

/// A lookup table of the circuit: all `(x, f(x))` for `lo ≤ x ≤ hi`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableSpec {
    pub id: u64,
    pub func: TableFn,
    pub in_scale: i32,
    pub out_scale: i32,
    pub lo: i64,
    pub hi: i64,
    /// With `step_bits` b, entry q holds f at `(q + next)·2^b` (the points of an interpolated
    /// table); 0 for an exact table.
    #[serde(default)]
    pub step_bits: u32,
    #[serde(default)]
    pub next: bool,
}

impl TableSpec {
    pub fn len(&self) -> usize {
        (self.hi - self.lo + 1) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.hi < self.lo
    }

    pub fn rows(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let at = |x: i64| (x + i64::from(self.next)) << self.step_bits;
        (self.lo..=self.hi).map(move |x| {
            (
                x,
                table_entry(self.func, at(x), self.in_scale, self.out_scale),
            )
        })
    }
}

/// A parameter tensor of a circuit with hashed parameters (see [`super::commit::param_tensors`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamTensor {
    /// The quantized node it belongs to.
    pub node: String,
    /// weight, bias or constant.
    pub kind: String,
    pub len: usize,
    /// Signed bits it is range-checked to.
    pub bits: u32,
}

#[derive(Clone, Debug)]
pub struct Plan {
    /// Lanes in all, in `groups` groups (see [`super::chips::Columns`]).
    pub lanes: usize,
    pub groups: usize,
    pub input: Visibility,
    pub params: ParamVisibility,
    /// A hashed input with a private salt (see [`Disclosure::salt`]).
    pub salted: bool,
    /// The parameter tensors in the weights digest (hashed parameters only).
    pub param_tensors: Vec<ParamTensor>,
    /// The most chains any digest of the plan runs in (0 without digests).
    pub max_chains: usize,
    /// Names of the quantized model's nodes, for region names.
    pub node_names: Vec<String>,
    /// Signed bits every range-checked activation must fit.
    pub activation_bits: u32,
    /// (node index of the quantized model, step); inputs and outputs use `usize::MAX`.
    pub steps: Vec<(usize, Step)>,
    /// Witness value of every cell; None when planned without a witness (keygen, verifier).
    /// Field elements: a product of many witness values (the running product of a max over a
    /// long window) leaves every integer type long before it reaches its zero factor.
    pub values: Vec<Option<Fp>>,
    pub tables: Vec<TableSpec>,
    /// The public instance: the inputs (public), their digest (hashed) or nothing (private),
    /// then the outputs.
    pub instance: Option<Vec<Fp>>,
    pub instance_len: usize,
}

/// Where a step of a region sits: its lane group (dot products) and its first row in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub group: usize,
    pub row: usize,
}

/// A region of the layout: the consecutive steps of one node (or one input hash), placed.
#[derive(Clone, Debug)]
pub struct RegionPlan {
    pub node: usize,
    pub steps: std::ops::Range<usize>,
    pub places: Vec<Place>,
    pub height: usize,
}

impl Plan {
    /// Poseidon chips of the layout: one per lane group, as many as the longest digest has
    /// chains (none without digests).
    pub fn poseidon_chips(&self) -> usize {
        self.groups.min(self.max_chains)
    }

    /// Lanes per group: the multiply-adds per row of one dot product.
    pub fn width(&self) -> usize {
        self.lanes / self.groups
    }

    /// Rows a step occupies.
    pub fn step_rows(&self, s: &Step) -> usize {
        match s {
            Step::Input { cells } => cells.len().div_ceil(self.lanes),
            Step::Witness { cells } => cells.len().div_ceil(self.lanes),
            // Poseidon's own regions, block by block.
            Step::Hash { msg, .. } => hash_rows(msg.len(), self.poseidon_chips()) * HASH_BLOCK_ROWS,
            Step::Dot { terms, .. } => terms.len().max(1).div_ceil(self.width()),
            Step::Mul { items } => items
                .len()
                .div_ceil(products_per_row(self.lanes + self.groups)),
            Step::Lookup { .. } => 1,
            Step::Equal { .. } | Step::Output { .. } => 0,
        }
    }

    /// The regions in layout order. Within a region each dot product goes down the group that
    /// is least filled so far; other steps take whole rows below everything placed before them.
    /// Synthesis lays out exactly these places, so the row count is exact.
    pub fn regions(&self) -> Vec<RegionPlan> {
        let mut out = vec![];
        let mut i = 0;
        while i < self.steps.len() {
            let node = self.steps[i].0;
            if let Step::Hash { .. } = &self.steps[i].1 {
                out.push(RegionPlan {
                    node,
                    steps: i..i + 1,
                    places: vec![Place { group: 0, row: 0 }],
                    height: self.step_rows(&self.steps[i].1),
                });
                i += 1;
                continue;
            }
            let mut j = i;
            let mut h = vec![0usize; self.groups];
            let mut places = vec![];
            // A node's steps, cut into regions of about REGION_ROWS rows: halo2's MockProver
            // checks each gate's cells against its region's cell list, which is quadratic in
            // region size.
            while j < self.steps.len()
                && self.steps[j].0 == node
                && !matches!(self.steps[j].1, Step::Hash { .. })
                && h.iter().copied().min().unwrap_or(0) < REGION_ROWS
            {
                let s = &self.steps[j].1;
                j += 1;
                let rows = self.step_rows(s);
                match s {
                    Step::Dot { .. } => {
                        let g = (0..self.groups).min_by_key(|&g| (h[g], g)).unwrap_or(0);
                        places.push(Place {
                            group: g,
                            row: h[g],
                        });
                        h[g] += rows;
                    }
                    Step::Equal { .. } | Step::Output { .. } => {
                        places.push(Place { group: 0, row: 0 })
                    }
                    _ => {
                        let top = h.iter().copied().max().unwrap_or(0);
                        places.push(Place { group: 0, row: top });
                        h.fill(top + rows);
                    }
                }
            }
            out.push(RegionPlan {
                node,
                steps: i..j,
                places,
                height: h.iter().copied().max().unwrap_or(0),
            });
            i = j;
        }
        out
    }

    pub fn rows(&self) -> usize {
        self.regions().iter().map(|r| r.height).sum()
    }

    pub fn table_rows(&self) -> usize {
        // One all-zero row for the disabled lookup, then every table.
        1 + self.tables.iter().map(|t| t.len()).sum::<usize>()
    }

    /// Rows per quantized-model node.
    pub fn rows_per_node(&self, nodes: usize) -> (Vec<usize>, usize) {
        let mut per = vec![0; nodes];
        let mut io = 0;
        for r in self.regions() {
            if r.node < nodes {
                per[r.node] += r.height
            } else {
                io += r.height
            }
        }
        (per, io)
    }
}

type PResult<T> = Result<T, CompileError>;

mod activations;
mod arithmetic;
mod dense;
mod indexing;
mod pooling;
mod shape;

struct Builder<'a> {
    qm: &'a QuantizedModel,
    bits: u32,
    values: Vec<Option<Fp>>,
    steps: Vec<(usize, Step)>,
    node: usize,
    /// Per value id, one cell per element (None until the value is computed).
    cells: Vec<Option<Vec<CellId>>>,
    /// Per value id, the sign cell of each element when known (1 iff ≥ 0), from a range check.
    signs: HashMap<usize, Vec<CellId>>,
    tables: Vec<TableSpec>,
    zero: Option<CellId>,
    witness: bool,
    expected: Option<&'a [Tensor<i64>]>,
    /// Hashed parameters: the cells of each parameter tensor, by (node, tensor index); None when
    /// the parameters are fixed weights of the gates.
    params: Option<HashMap<(usize, usize), Vec<CellId>>>,
}

/// A factor of a product term: a weight fixed in the circuit, or the cell of a hashed one.
#[derive(Clone, Copy)]
enum Param {
    Fixed(i128),
    Cell(CellId),
}

impl Builder<'_> {
    fn err(&self, msg: impl Into<String>) -> CompileError {
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

    fn cell(&mut self, v: Option<i128>) -> CellId {
        self.field_cell(v.map(fe))
    }

    fn field_cell(&mut self, v: Option<Fp>) -> CellId {
        self.values.push(v);
        self.values.len() - 1
    }

    /// The integer cell `c` holds (None without a witness). Every cell read as an integer
    /// (range checks, rescales, tables, comparisons) holds a sum of small terms; one that does
    /// not is a planner bug, reported as such rather than wrapped.
    fn val(&self, c: CellId) -> PResult<Option<i128>> {
        match self.values[c] {
            None => Ok(None),
            Some(x) => fe_to_i128(x).map(Some).ok_or_else(|| {
                self.err("a cell read as an integer holds a field element beyond 127 bits")
            }),
        }
    }

    fn push(&mut self, s: Step) {
        self.steps.push((self.node, s));
    }

    /// `c + Σ cell·w`; zero-weight terms are dropped (they would bind nothing).
    fn dot(&mut self, terms: Vec<(CellId, i128)>, c: i128) -> CellId {
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

    /// The words of [`commit::pack`]: `Σ_j (x_j + 2^(bits-1))·2^(bits·j)` over groups of
    /// [`commit::per_word`] cells, each a dot product.
    fn pack(&mut self, cells: &[CellId], bits: u32) -> Vec<CellId> {
        let half = 1i128 << (bits - 1);
        cells
            .chunks(commit::per_word(bits))
            .map(|group| {
                let terms: Vec<(CellId, i128)> = group
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| (c, 1i128 << (bits as usize * j)))
                    .collect();
                let offset: i128 = terms.iter().map(|(_, w)| half * w).sum();
                self.dot(terms, offset)
            })
            .collect()
    }

    /// Hash `msg` (`[tag, words…]`) into instance `row`; the words are padded to whole blocks
    /// with the zero cell, as [`commit::chain`] pads them.
    fn hash(&mut self, mut msg: Vec<CellId>, row: usize, label: &'static str) {
        let z = self.zero();
        msg.resize(commit::padded_len(msg.len()), z);
        self.push(Step::Hash {
            msg,
            zero: z,
            row,
            label,
        });
    }

    fn equal(&mut self, a: CellId, b: CellId) {
        self.push(Step::Equal { a, b });
    }

    /// Fresh digits of `v` (which must lie in `[0, 2^n)`) and `c + v` from them: the top bit
    /// alone when `sign` (the sign of a value offset by half the range), a bit for an odd
    /// remainder, and base-4 digits for the rest. Returns `c + v` and, with `sign`, the top bit.
    fn digits(
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
    fn signed_range(&mut self, x: CellId) -> PResult<CellId> {
        let half = 1i128 << (self.bits - 1);
        let (out, sign) = self.digits(self.val(x)?.map(|v| v + half), self.bits, -half, true)?;
        self.equal(out, x);
        sign.ok_or_else(|| self.err("a signed range check has a sign"))
    }

    /// A fresh cell holding `v`, proved to lie in `[-2^(bits-1), 2^(bits-1))` (its digits
    /// bind it; no sign digit, as nothing needs the sign).
    fn checked_cell(&mut self, v: Option<i128>, bits: u32) -> PResult<CellId> {
        let half = 1i128 << (bits - 1);
        let (out, _) = self.digits(v.map(|v| v + half), bits, -half, false)?;
        Ok(out)
    }

    /// The parameter `i` of tensor `t` of the current node, when parameters are hashed.
    fn param(&self, t: usize, i: usize) -> Option<CellId> {
        self.params
            .as_ref()
            .and_then(|p| p.get(&(self.node, t)))
            .map(|c| c[i])
    }

    /// The term `x·w` of a dot product: `(x, w)` for a fixed weight; for a hashed one the
    /// product `x·w` (mul gate) with weight 1.
    fn term(&mut self, x: CellId, w: Param) -> (CellId, i128) {
        match w {
            Param::Fixed(w) => (x, w),
            Param::Cell(c) => (self.mul(x, c), 1),
        }
    }

    /// Weight `i` (tensor 0) or bias `i` (tensor 1) of the current node.
    fn weight(&self, t: usize, i: usize, fixed: i64) -> Param {
        match self.param(t, i) {
            Some(c) => Param::Cell(c),
            None => Param::Fixed(fixed as i128),
        }
    }

    /// `Σ terms + bias`: a fixed bias is the dot's constant, a hashed one a term of weight 1.
    fn affine(&mut self, mut terms: Vec<(CellId, i128)>, bias: Param) -> CellId {
        match bias {
            Param::Fixed(c) => self.dot(terms, c),
            Param::Cell(b) => {
                terms.push((b, 1));
                self.dot(terms, 0)
            }
        }
    }

    /// Prove `x ∈ [0, 2^A)`.
    fn unsigned_range(&mut self, x: CellId) -> PResult<()> {
        let (out, _) = self.digits(self.val(x)?, self.bits, 0, false)?;
        self.equal(out, x);
        Ok(())
    }

    /// `y = floor((x + floor(d/2)) / d)` with the remainder `r ∈ [0, d)` and `y` range-checked;
    /// returns y and its sign cell.
    fn rescale(&mut self, x: CellId, d: u64) -> PResult<(CellId, CellId)> {
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

    fn mul(&mut self, a: CellId, b: CellId) -> CellId {
        let v = self.values[a].zip(self.values[b]).map(|(a, b)| a * b);
        let out = self.field_cell(v);
        self.push(Step::Mul {
            items: vec![(a, b, out)],
        });
        out
    }

    fn zero(&mut self) -> CellId {
        if let Some(z) = self.zero {
            return z;
        }
        let z = self.dot(vec![], 0);
        self.zero = Some(z);
        z
    }

    fn constant(&mut self, v: i64) -> CellId {
        self.dot(vec![], v as i128)
    }

    fn constant_i128(&mut self, v: i128) -> CellId {
        self.dot(vec![], v)
    }

    /// Cells of a value; a constant is materialized on first use.
    fn value_cells(&mut self, v: usize) -> PResult<Vec<CellId>> {
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
    fn const_data(&self, v: usize) -> Option<&Vec<i64>> {
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

    fn shape(&self, v: usize) -> &[usize] {
        &self.qm.values[v].shape
    }

    fn node(&mut self, idx: usize) -> PResult<()> {
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
            } => self.plan_sum_pool(n, &out_shape, kernel, st, pads_begin)?,
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
    fn signs_of(&mut self, v: usize, x: &[CellId]) -> PResult<Vec<CellId>> {
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
    fn table_range_error(
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
    fn table_id(&mut self, spec: TableSpec) -> u64 {
        let same = |t: &TableSpec| TableSpec { id: 0, ..t.clone() } == spec;
        match self.tables.iter().find(|t| same(t)) {
            Some(t) => t.id,
            None => {
                let id = self.tables.len() as u64 + 1;
                self.tables.push(TableSpec { id, ..spec });
                id
            }
        }
    }
}

fn concat_cells(inputs: &[&Tensor<CellId>], axis: usize) -> Vec<CellId> {
    let shape = &inputs[0].shape;
    let outer: usize = shape[..axis].iter().product();
    let mut data = vec![];
    for o in 0..outer {
        for t in inputs {
            let chunk: usize = t.shape[axis..].iter().product();
            data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
        }
    }
    data
}

/// Reject parameters under which the gates' integer weights would overflow i128 or wrap in
/// the field: a quantized model comes from a file the verifier does not trust.
fn validate(qm: &QuantizedModel) -> PResult<()> {
    let bad = |node: &str, msg: String| CompileError {
        node: node.into(),
        msg,
    };
    let a = qm.config.activation_bits;
    if !(2..=62).contains(&a) {
        return Err(bad(
            "config",
            format!("activation_bits {a} is outside 2..=62"),
        ));
    }
    if let Some(w) = &qm.redacted {
        let n = commit::param_tensors(qm).len();
        if w.len() != n || w.iter().any(|b| !(2..=64).contains(b)) {
            return Err(bad(
                "redacted",
                format!(
                    "{} widths for {n} parameter tensors, each 2 to 64 bits",
                    w.len()
                ),
            ));
        }
    }
    for n in &qm.nodes {
        let problem = match &n.op {
            QOp::ShiftLeft { bits } if *bits >= 64 => Some(format!("shift by {bits} bits")),
            QOp::LeakyRelu { shift, .. } if *shift >= 64 => Some(format!("shift by {shift} bits")),
            QOp::Rescale { divisor } if divisor.iter().any(|&d| d == 0 || d > 1 << 62) => {
                Some("a divisor of 0 or above 2^62".into())
            }
            QOp::Linear { k: 0, .. } => Some("a linear layer with k = 0".into()),
            QOp::Interp { step_bits, .. } if !(1..=30).contains(step_bits) => {
                Some(format!("an interpolation step of 2^{step_bits}"))
            }
            QOp::Table { lo, hi, .. } | QOp::Interp { lo, hi, .. }
                if lo > hi || *hi as i128 - *lo as i128 > 1 << 24 =>
            {
                Some(format!("a table range [{lo}, {hi}]"))
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Err(bad(&n.origin, format!("{p} is not supported")));
        }
    }
    Ok(())
}

/// Plan the circuit of `qm`. With `witness` (the integer evaluator's value of every tensor), every
/// cell gets its value; without it the plan has the same structure and no values.
pub fn plan(
    qm: &QuantizedModel,
    lanes: usize,
    groups: usize,
    dis: Disclosure,
    witness: Option<&[Tensor<i64>]>,
) -> PResult<Plan> {
    let (vis, salt) = (dis.input, dis.salt);
    validate(qm)?;
    if qm.redacted.is_some() && (dis.params == ParamVisibility::Fixed || witness.is_some()) {
        return Err(CompileError {
            node: "redacted".into(),
            msg: "a redacted model has no weights: it only re-derives the circuit of a receipt \
                  with hashed weights"
                .into(),
        });
    }
    let mut b = Builder {
        qm,
        bits: qm.config.activation_bits,
        values: vec![],
        steps: vec![],
        node: usize::MAX,
        cells: vec![None; qm.values.len()],
        signs: HashMap::new(),
        tables: vec![],
        zero: None,
        witness: witness.is_some(),
        expected: witness,
        params: None,
    };
    let mut row = 0;
    let mut instance: Option<Vec<Fp>> = witness.map(|_| vec![]);
    let input_values: Vec<i64> = match witness {
        Some(w) => qm.inputs.iter().flat_map(|&v| w[v].data.clone()).collect(),
        None => vec![],
    };
    let mut all_inputs = vec![];
    for &v in &qm.inputs {
        let n = numel(&qm.values[v].shape);
        let cs: Vec<CellId> = (0..n)
            .map(|i| b.cell(witness.map(|w| w[v].data[i] as i128)))
            .collect();
        all_inputs.extend(cs.iter().copied());
        b.cells[v] = Some(cs);
    }
    match vis {
        // Inputs: instance rows 0.., laid into lanes.
        Visibility::Public => {
            let cells: Vec<(CellId, usize)> = all_inputs
                .iter()
                .enumerate()
                .map(|(i, &c)| (c, i))
                .collect();
            if let Some(inst) = instance.as_mut() {
                inst.extend(input_values.iter().map(|&x| fe(x as i128)));
            }
            row = cells.len();
            b.push(Step::Input { cells });
        }
        // Inputs the prover chooses, range-checked to the activation range so they are valid
        // quantized values; hashed inputs are also packed and hashed into instance row 0.
        Visibility::Hashed | Visibility::Private => {
            let hashed = vis == Visibility::Hashed;
            let salt_cell = match salt {
                Some(s) if hashed => Some(b.cell(witness.map(|_| s))),
                _ => None,
            };
            let mut cells = all_inputs.clone();
            cells.extend(salt_cell);
            b.push(Step::Witness { cells });
            for &c in &all_inputs {
                b.signed_range(c)?;
            }
            if hashed {
                let bits = b.bits;
                // Unsalted, the salt is the fixed zero cell.
                let salt_cell = salt_cell.unwrap_or_else(|| b.zero());
                let mut msg = vec![b.constant_i128(commit::tag()), salt_cell];
                msg.extend(b.pack(&all_inputs, bits));
                msg.push(b.constant_i128(all_inputs.len() as i128));
                if let Some(inst) = instance.as_mut() {
                    inst.push(commit::input_digest(&input_values, bits, salt.unwrap_or(0)));
                }
                b.hash(msg, 0, "input digest");
                row = 1;
            }
        }
    }
    let mut param_tensors = vec![];
    if dis.params == ParamVisibility::Hashed {
        // Every parameter integer is a private cell, range-checked to its tensor's width (its
        // digits are the range check, so the cell costs nothing more); each tensor is packed into
        // words, and the words are hashed into the next instance row.
        let mut cells = HashMap::new();
        let mut msg = vec![b.constant_i128(commit::params_tag())];
        let mut count = 0;
        let widths = commit::param_widths(qm);
        for (t, &bits) in commit::param_tensors(qm).into_iter().zip(&widths) {
            b.node = t.node;
            let cs: Vec<CellId> = t
                .data
                .iter()
                .map(|&x| {
                    let v = b.witness.then_some(x as i128);
                    b.checked_cell(v, bits)
                })
                .collect::<PResult<_>>()?;
            msg.extend(b.pack(&cs, bits));
            count += cs.len();
            param_tensors.push(ParamTensor {
                node: qm.nodes[t.node].name.clone(),
                kind: t.kind.into(),
                len: cs.len(),
                bits,
            });
            cells.insert((t.node, t.index), cs);
        }
        b.node = usize::MAX;
        msg.push(b.constant_i128(count as i128));
        if let Some(inst) = instance.as_mut() {
            inst.push(commit::params_digest(qm));
        }
        b.hash(msg, row, "weights digest");
        row += 1;
        b.params = Some(cells);
    }
    for i in 0..qm.nodes.len() {
        b.node(i)?;
    }
    b.node = usize::MAX;
    for &v in &qm.outputs {
        let cells = b.value_cells(v)?;
        for (i, c) in cells.into_iter().enumerate() {
            if let (Some(inst), Some(w)) = (instance.as_mut(), witness) {
                inst.push(fe(w[v].data[i] as i128));
            }
            b.push(Step::Output { cell: c, row });
            row += 1;
        }
    }
    let steps = pack_products(fuse_equal_dots(b.steps, b.values.len()));
    let max_chains = steps
        .iter()
        .filter_map(|(_, s)| match s {
            Step::Hash { msg, .. } => Some(commit::chains(msg.len())),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    Ok(Plan {
        lanes,
        groups,
        input: vis,
        params: dis.params,
        salted: vis == Visibility::Hashed && salt.is_some(),
        param_tensors,
        max_chains,
        node_names: qm.nodes.iter().map(|n| n.name.clone()).collect(),
        activation_bits: qm.config.activation_bits,
        steps,
        values: b.values,
        tables: b.tables,
        instance,
        instance_len: row,
    })
}

/// Every cell a step reads or writes.
fn step_cells(s: &Step) -> Vec<CellId> {
    match s {
        Step::Input { cells } => cells.iter().map(|c| c.0).collect(),
        Step::Witness { cells } => cells.clone(),
        Step::Hash { msg, zero, .. } => msg.iter().copied().chain([*zero]).collect(),
        Step::Dot { terms, out, .. } => terms.iter().map(|t| t.0).chain([*out]).collect(),
        Step::Mul { items } => items.iter().flat_map(|&(a, b, o)| [a, b, o]).collect(),
        Step::Lookup { x, out, .. } => vec![*x, *out],
        Step::Equal { a, b } => vec![*a, *b],
        Step::Output { cell, .. } => vec![*cell],
    }
}

/// Fold `x = c1 + Σ t1` and `chk = c2 + Σ t2` joined by `Equal(chk, x)` into one dot, when
/// neither x nor chk is used anywhere else (a linear layer feeding a rescale's check): solved for
/// a term u of t2 with weight ±1, `u = ±(c1 − c2 + Σ t1 − Σ t2∖u)`. The constraint is the same;
/// the cell x, its copy and a row disappear.
fn fuse_equal_dots(steps: Vec<(usize, Step)>, ncells: usize) -> Vec<(usize, Step)> {
    let mut uses = vec![0usize; ncells];
    let mut producer: Vec<Option<usize>> = vec![None; ncells];
    for (i, (_, s)) in steps.iter().enumerate() {
        for c in step_cells(s) {
            uses[c] += 1;
        }
        if let Step::Dot {
            digits: None, out, ..
        } = s
        {
            producer[*out] = Some(i);
        }
    }
    let mut steps: Vec<Option<(usize, Step)>> = steps.into_iter().map(Some).collect();
    for e in 0..steps.len() {
        let Some((_, Step::Equal { a, b })) = steps[e] else {
            continue;
        };
        for (chk, x) in [(a, b), (b, a)] {
            let (Some(i1), Some(i2)) = (producer[x], producer[chk]) else {
                continue;
            };
            if uses[x] != 2 || uses[chk] != 2 || i1 == i2 {
                continue;
            }
            let (
                Some((
                    _,
                    Step::Dot {
                        terms: t1, c: c1, ..
                    },
                )),
                Some((
                    node,
                    Step::Dot {
                        terms: t2, c: c2, ..
                    },
                )),
            ) = (&steps[i1], &steps[i2])
            else {
                continue;
            };
            let Some(k) = t2.iter().position(|&(u, w)| (w == 1 || w == -1) && u != x) else {
                continue;
            };
            let (u, sgn) = t2[k];
            let mut terms: Vec<(CellId, i128)> = t1.iter().map(|&(c, w)| (c, sgn * w)).collect();
            terms.extend(
                t2.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, &(c, w))| (c, -sgn * w)),
            );
            let fused = Step::Dot {
                terms,
                c: sgn * (c1 - c2),
                digits: None,
                out: u,
            };
            let node = *node;
            let at = i1.max(i2);
            steps[i1.min(i2)] = None;
            steps[at] = Some((node, fused));
            steps[e] = None;
            break;
        }
    }
    steps.into_iter().flatten().collect()
}

/// Merge runs of products of one node into multi-product steps (several products per row).
fn pack_products(steps: Vec<(usize, Step)>) -> Vec<(usize, Step)> {
    let mut out: Vec<(usize, Step)> = vec![];
    for (node, s) in steps {
        if let (Step::Mul { items }, Some((prev, Step::Mul { items: acc }))) = (&s, out.last_mut())
            && *prev == node
        {
            acc.extend(items.iter().copied());
            continue;
        }
        out.push((node, s));
    }
    out
}
