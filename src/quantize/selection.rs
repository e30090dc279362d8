//! Lowering of ScatterElements and of Gather/GatherElements by runtime indices into the two ops
//! that choose by a runtime index: `QOp::Select` (read) and `QOp::Scatter` (write), with their
//! evaluation (`Selection` is the structure both share with the circuit's planner). The rest of
//! the indexing family (rewiring, OneHot, Pad, Slice, Resize) is in `indexing.rs`.

use super::*;

impl Lowering<'_> {
    /// ScatterElements: index element `q` writes `updates[q]` at its own coordinates with the
    /// axis one replaced by its index. Constant indices: a rewiring of the data and the updates
    /// joined; runtime ones: [`QOp::Scatter`].
    pub(super) fn lower_scatter_elements(
        &mut self,
        node: &Node,
        arg0: String,
        axis: &i64,
    ) -> Result<Operand> {
        let (xs, a, ind_name, is) = self.indexed_elementwise(node, &arg0, *axis)?;
        let upd_name = input(node, 2).ok_or_else(|| self.fail("no updates"))?;
        let us = self.shape_of(&upd_name)?;
        if us != is {
            return Err(self.fail(format!(
                "updates of shape {us:?} differ from the indices' shape {is:?}"
            )));
        }
        let (xst, base) = (strides(&xs), row_bases(&xs, &is, a));
        let (n, total) = (xs[a], numel(&xs));
        let idx = match self.operand(&ind_name)? {
            Operand::Value(idx) => idx,
            Operand::Const(t) => {
                // Output p reads the data, or the update q that writes it (at total + q of
                // the data and the updates joined).
                let mut index: Vec<i64> = (0..total as i64).collect();
                for (q, &v) in t.data.iter().enumerate() {
                    let p = base[q] + self.constant_position(v, n)? * xst[a];
                    if index[p] >= total as i64 {
                        return Err(self.fail(twice(p)));
                    }
                    index[p] = (total + q) as i64;
                }
                return self.join_and_rewire(&arg0, &upd_name, xs, index);
            }
        };
        let shift = self.index_shift(idx)?;
        let (data, updates, scale) = self.at_one_scale(&arg0, &upd_name)?;
        let op = QOp::Scatter {
            n,
            stride: xst[a],
            shift,
            negative: self.values[idx].range.0 < 0,
            base,
        };
        Ok(Operand::Value(self.push(
            op,
            vec![idx, data, updates],
            xs,
            scale,
        )?))
    }

    /// Two operands as values at one scale (the finer one; constants at the activation scale).
    fn at_one_scale(&mut self, a: &str, b: &str) -> Result<(usize, usize, i32)> {
        let (a, b) = (self.value(a)?, self.value(b)?);
        let scale = self.scale_of(a).max(self.scale_of(b));
        Ok((
            self.rescale_to(a, scale)?,
            self.rescale_to(b, scale)?,
            scale,
        ))
    }

    /// `out[p] = joined[index[p]]` over `a` and `b` flattened and joined: folded when both
    /// are constants, else rewiring of values at one scale.
    fn join_and_rewire(
        &mut self,
        a: &str,
        b: &str,
        out: Vec<usize>,
        index: Vec<i64>,
    ) -> Result<Operand> {
        if let (Operand::Const(x), Operand::Const(y)) = (self.operand(a)?, self.operand(b)?) {
            let joined: Vec<f64> = x.data.iter().chain(&y.data).copied().collect();
            let data = index.iter().map(|&i| joined[i as usize]).collect();
            return Ok(Operand::Const(Tensor::new(out, data)));
        }
        let (x, y, scale) = self.at_one_scale(a, b)?;
        let flat = |this: &mut Self, v: usize| {
            let len = numel(&this.shape(v));
            this.push(QOp::Reshape, vec![v], vec![len], scale)
        };
        let (x, y) = (flat(self, x)?, flat(self, y)?);
        let len = numel(&self.shape(x)) + numel(&self.shape(y));
        let joined = self.push(QOp::Concat { axis: 0 }, vec![x, y], vec![len], scale)?;
        let gathered = self.push(QOp::Gather { index, fill: 0 }, vec![joined], out, scale)?;
        Ok(Operand::Value(gathered))
    }

    /// The scale of an index value, as a shift (integers at a positive scale hold m·2^scale).
    fn index_shift(&self, idx: usize) -> Result<u32> {
        let shift = self.scale_of(idx);
        if !(0..=62).contains(&shift) {
            return Err(self.fail(format!("an index at scale 2^{shift}")));
        }
        Ok(shift as u32)
    }

    /// Selection by runtime indices ([`QOp::Select`]): output `e` is `x[base[e] + m·stride]`
    /// where the index `idx[at[e]]` is `m`, or `m − n` counted from the end. A constant `x` is
    /// quantized at the activation scale and carried by the op (the circuit looks it up in a
    /// table when the weights are fixed); a runtime one is the op's second input.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn select(
        &mut self,
        data: &str,
        idx: usize,
        out: Vec<usize>,
        n: usize,
        stride: usize,
        at: Vec<usize>,
        base: Vec<usize>,
    ) -> Result<usize> {
        let shift = self.index_shift(idx)?;
        let (data, inputs, scale) = match self.operand(data)? {
            Operand::Const(t) => {
                let s = self.s;
                (Some(self.quant(&t, s)?), vec![idx], s)
            }
            Operand::Value(x) => (None, vec![idx, x], self.scale_of(x)),
        };
        let op = QOp::Select {
            n,
            stride,
            shift,
            negative: self.values[idx].range.0 < 0,
            base,
            at,
            data,
        };
        self.push(op, inputs, out, scale)
    }
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// The fixed structure of a [`QOp::Select`].
#[derive(Default)]
pub struct Selection<'a> {
    pub n: usize,
    pub stride: usize,
    pub shift: u32,
    pub negative: bool,
    pub base: &'a [usize],
    pub at: &'a [usize],
}

impl<'a> Selection<'a> {
    /// The selection structure of a [`QOp::Select`] or [`QOp::Scatter`] (for a Scatter, `at` is
    /// empty: every index element writes); an empty one for any other op.
    pub fn of(op: &'a QOp) -> Self {
        match op {
            QOp::Select {
                n,
                stride,
                shift,
                negative,
                base,
                at,
                ..
            } => Selection {
                n: *n,
                stride: *stride,
                shift: *shift,
                negative: *negative,
                base,
                at,
            },
            QOp::Scatter {
                n,
                stride,
                shift,
                negative,
                base,
            } => Selection {
                n: *n,
                stride: *stride,
                shift: *shift,
                negative: *negative,
                base,
                at: &[],
            },
            _ => Selection::default(),
        }
    }

    /// The smallest index: `-n` with negative indices, else 0.
    pub fn first(&self) -> i64 {
        if self.negative { -(self.n as i64) } else { 0 }
    }

    /// The position along the axis that index value `v` selects: `m` for `v = m·2^shift` with
    /// `m` in `0..n`, `m + n` for `m` in `-n..0` (with `negative`); None for any other value.
    pub fn position(&self, v: i64) -> Option<usize> {
        let step = 1i128 << self.shift;
        let v = v as i128;
        if v % step != 0 {
            return None;
        }
        let (m, n) = (v / step, self.n as i128);
        (self.first() as i128..n)
            .contains(&m)
            .then(|| m.rem_euclid(n) as usize)
    }

    /// Why index value `v` selects nothing.
    pub fn refusal(&self, v: i64) -> String {
        let whole = v as f64 / 2f64.powi(self.shift as i32);
        if whole < 0.0 && whole >= -(self.n as f64) && !self.negative {
            format!(
                "index {whole} counts from the end, and the calibration inputs had no negative \
                 index, so the circuit covers only 0 to {}: calibrate with one",
                self.n - 1
            )
        } else {
            format!(
                "index {whole} is out of range for an axis of {} (indices are integers in [{}, {0}))",
                self.n,
                self.first()
            )
        }
    }

    /// The candidates of output `e`: each index `c` (in `first()..n`) with the data position
    /// the index value `c·2^shift` selects.
    pub fn candidates(&self, e: usize) -> impl Iterator<Item = (i64, usize)> + '_ {
        let (n, b, st) = (self.n as i64, self.base[e], self.stride);
        (self.first()..n).map(move |c| (c, b + c.rem_euclid(n) as usize * st))
    }
}

/// Select: see [`QOp::Select`]. `data` is the op's constant, else the second input.
pub(super) fn eval_select(
    inputs: &[&Tensor<i64>],
    out_shape: &[usize],
    sel: &Selection,
    data: Option<&[i64]>,
) -> std::result::Result<Tensor<i64>, String> {
    let idx = inputs.first().ok_or("select needs its indices")?;
    let data = match data {
        Some(d) => d,
        None => &inputs.get(1).ok_or("select needs its data")?.data,
    };
    let mut out = Vec::with_capacity(sel.at.len());
    for (e, &i) in sel.at.iter().enumerate() {
        let v = idx.data[i];
        let m = sel.position(v).ok_or_else(|| sel.refusal(v))?;
        out.push(data[sel.base[e] + m * sel.stride]);
    }
    Ok(Tensor::new(out_shape.to_vec(), out))
}

/// Scatter: see [`QOp::Scatter`] (`sel.at` unused).
pub(super) fn eval_scatter(
    inputs: &[&Tensor<i64>],
    sel: &Selection,
) -> std::result::Result<Tensor<i64>, String> {
    let [idx, data, updates] = inputs else {
        return Err("scatter needs indices, data and updates".into());
    };
    let mut out = (*data).clone();
    let mut written = vec![false; out.data.len()];
    for (q, &v) in idx.data.iter().enumerate() {
        let m = sel.position(v).ok_or_else(|| sel.refusal(v))?;
        let p = sel.base[q] + m * sel.stride;
        if std::mem::replace(&mut written[p], true) {
            return Err(twice(p));
        }
        out.data[p] = updates.data[q];
    }
    Ok(out)
}

fn twice(p: usize) -> String {
    format!("two indices write element {p} (ONNX leaves the result undefined)")
}

/// For each element of an index tensor of shape `is` along axis `a` of data of shape `xs`: the
/// flat data position of its own coordinates with the axis one set to 0 (GatherElements and
/// ScatterElements read and write at `base + index·stride`).
pub(super) fn row_bases(xs: &[usize], is: &[usize], a: usize) -> Vec<usize> {
    let xst = strides(xs);
    let mut base = Vec::with_capacity(numel(is));
    for_each_index(is, |o| {
        base.push(
            (0..xs.len())
                .filter(|&d| d != a)
                .map(|d| o[d] * xst[d])
                .sum::<usize>(),
        );
    });
    base
}
