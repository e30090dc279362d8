//! Lowering of Pad, Split, Slice, Gather, GatherElements, OneHot and Resize into integer ops (`QOp`):
//! rewiring by index maps; a runtime index goes to `selection.rs` (`QOp::Select`), as does
//! ScatterElements. `Lowering::lower_op` dispatches here. The evaluation of Gather follows.

use super::*;
use selection::row_bases;

impl Lowering<'_> {
    pub(super) fn lower_one_hot(
        &mut self,
        node: &Node,
        arg0: String,
        axis: &i64,
    ) -> Result<Operand> {
        let depth_name = input(node, 1).ok_or_else(|| self.fail("OneHot needs a depth"))?;
        let depth = *self
            .constant_ints(&depth_name)?
            .first()
            .ok_or_else(|| self.fail("depth is empty"))?;
        let vals =
            self.constant(&input(node, 2).ok_or_else(|| self.fail("OneHot needs values"))?)?;
        if !(1..=1 << 16).contains(&depth) || vals.len() != 2 {
            return Err(self.fail(format!(
                "depth {depth} and {} values: expected 1 to 65536 and [off, on]",
                vals.len()
            )));
        }
        let idx = self.value(&arg0)?;
        self.one_hot(idx, *axis, depth as usize, vals.data[0], vals.data[1])
    }

    pub(super) fn lower_gather_elements(
        &mut self,
        node: &Node,
        arg0: String,
        axis: &i64,
    ) -> Result<Operand> {
        let (xs, a, ind_name, is) = self.indexed_elementwise(node, &arg0, *axis)?;
        // Output e (a multi-index of the indices) reads data at e with its axis
        // coordinate replaced by the index.
        let (xst, base) = (strides(&xs), row_bases(&xs, &is, a));
        let n = xs[a];
        match self.operand(&ind_name)? {
            Operand::Const(t) => {
                let mut index = Vec::with_capacity(base.len());
                for (e, &v) in t.data.iter().enumerate() {
                    let i = self.constant_position(v, n)?;
                    index.push((base[e] + i * xst[a]) as i64);
                }
                self.rewire(&arg0, is, index, 0.0)
            }
            Operand::Value(idx) => {
                let at: Vec<usize> = (0..base.len()).collect();
                let v = self.select(&arg0, idx, is, n, xst[a], at, base)?;
                Ok(Operand::Value(v))
            }
        }
    }

    /// The position along an axis of `n` that a constant index `v` picks (ONNX: a negative
    /// index counts from the end); out of range is an error naming the index.
    pub(super) fn constant_position(&self, v: f64, n: usize) -> Result<usize> {
        let i = if v < 0.0 {
            v as i64 + n as i64
        } else {
            v as i64
        };
        if i < 0 || i >= n as i64 {
            return Err(self.fail(format!("index {v} is out of range for {n}")));
        }
        Ok(i as usize)
    }

    pub(super) fn lower_pad(
        &mut self,
        node: &Node,
        arg0: String,
        pads: &Option<Vec<i64>>,
        value: &f64,
        mode: PadMode,
    ) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let r = xs.len();
        let pads: Vec<i64> = match (pads, input(node, 1)) {
            (Some(p), _) => p.clone(),
            (None, Some(n)) => self.constant_ints(&n)?,
            (None, None) => vec![0; 2 * r],
        };
        let value = match input(node, 2) {
            Some(n) => self.constant(&n)?.data.first().copied().unwrap_or(0.0),
            None => *value,
        };
        // Opset 18's `axes` input: the pads are for those axes only.
        let pads = match input(node, 3) {
            Some(n) => {
                let axes = self.constant_ints(&n)?;
                if pads.len() != 2 * axes.len() {
                    return Err(self.fail(format!("{} pads for axes {axes:?}", pads.len())));
                }
                let mut full = vec![0; 2 * r];
                for (j, &a) in axes.iter().enumerate() {
                    let d = axis_index(a, r).map_err(|e| self.fail(e))?;
                    (full[d], full[r + d]) = (pads[j], pads[axes.len() + j]);
                }
                full
            }
            None => pads,
        };
        if pads.len() != 2 * r {
            return Err(self.fail(format!("{} pads for rank {r}", pads.len())));
        }
        let out: Vec<usize> = (0..r)
            .map(|d| xs[d] as i64 + pads[d] + pads[r + d])
            .map(|n| usize::try_from(n).unwrap_or(0))
            .collect();
        let index = index_map(&xs, &out, |d, o| {
            let (i, n) = (o as i64 - pads[d], xs[d] as i64);
            if (0..n).contains(&i) {
                return Some(i as usize);
            }
            match mode {
                PadMode::Constant => None,
                PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
                // The mirror image, repeated for a pad longer than the axis (as numpy does).
                PadMode::Reflect if n == 1 => Some(0),
                PadMode::Reflect => {
                    let m = i.rem_euclid(2 * (n - 1));
                    Some(if m < n { m } else { 2 * (n - 1) - m } as usize)
                }
            }
        });
        self.rewire(&arg0, out, index, value)
    }

    /// Split: each piece is rewiring of its span of the axis; the pieces after the first are
    /// the node's further outputs.
    pub(super) fn lower_split(
        &mut self,
        node: &Node,
        arg0: String,
        axis: i64,
        split: &Option<Vec<i64>>,
    ) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let d = axis_index(axis, xs.len()).map_err(|e| self.fail(e))?;
        let count = node.outputs.len();
        let sizes: Vec<i64> = match (split, input(node, 1)) {
            (Some(s), _) => s.clone(),
            (None, Some(n)) => self.constant_ints(&n)?,
            (None, None) => {
                let chunk = xs[d].div_ceil(count.max(1));
                (0..count)
                    .map(|i| chunk.min(xs[d].saturating_sub(i * chunk)) as i64)
                    .collect()
            }
        };
        if sizes.len() != count
            || sizes.iter().any(|&n| n < 0)
            || sizes.iter().sum::<i64>() != xs[d] as i64
        {
            return Err(self.fail(format!(
                "split sizes {sizes:?} for {count} outputs of axis {d} of {xs:?}"
            )));
        }
        let mut start = 0;
        let mut first = None;
        for (name, &len) in node.outputs.iter().zip(&sizes) {
            let mut out = xs.clone();
            out[d] = len as usize;
            let index = index_map(&xs, &out, |e, o| Some(if e == d { start + o } else { o }));
            start += len as usize;
            let piece = self.rewire(&arg0, out, index, 0.0)?;
            if first.is_none() {
                first = Some(piece);
            } else if !name.is_empty() {
                self.extra_outputs.push((name.clone(), piece));
            }
        }
        first.ok_or_else(|| self.fail("Split has no outputs"))
    }

    pub(super) fn lower_slice(
        &mut self,
        node: &Node,
        arg0: String,
        starts: &Option<Vec<i64>>,
        ends: &Option<Vec<i64>>,
        axes: &Option<Vec<i64>>,
    ) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let r = xs.len();
        let starts = match starts {
            Some(v) => v.clone(),
            None => self.constant_ints(&input(node, 1).ok_or_else(|| self.fail("no starts"))?)?,
        };
        let ends = match ends {
            Some(v) => v.clone(),
            None => self.constant_ints(&input(node, 2).ok_or_else(|| self.fail("no ends"))?)?,
        };
        let axes: Vec<i64> = match (axes, input(node, 3)) {
            (Some(v), _) => v.clone(),
            (None, Some(n)) => self.constant_ints(&n)?,
            (None, None) => (0..starts.len() as i64).collect(),
        };
        let steps: Vec<i64> = match input(node, 4) {
            Some(n) => self.constant_ints(&n)?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(self.fail("starts, ends, axes and steps differ in length"));
        }
        // Per axis: (first index, step, length), after ONNX's clamping rules.
        let mut sel: Vec<(i64, i64, usize)> = xs.iter().map(|&n| (0, 1, n)).collect();
        for j in 0..starts.len() {
            let d = axis_index(axes[j], r).map_err(|e| self.fail(e))?;
            let n = xs[d] as i64;
            let step = steps[j];
            if step == 0 {
                return Err(self.fail("a Slice step is 0"));
            }
            let norm = |v: i64| if v < 0 { v + n } else { v };
            let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
            let start = norm(starts[j]).clamp(lo, hi);
            let end = norm(ends[j]).clamp(lo, hi);
            let len = if step > 0 {
                (end - start + step - 1).div_euclid(step).max(0)
            } else {
                (start - end - step - 1).div_euclid(-step).max(0)
            };
            sel[d] = (start, step, len as usize);
        }
        let out: Vec<usize> = sel.iter().map(|s| s.2).collect();
        let index = index_map(&xs, &out, |d, o| {
            Some((sel[d].0 + o as i64 * sel[d].1) as usize)
        });
        self.rewire(&arg0, out, index, 0.0)
    }

    pub(super) fn lower_gather(
        &mut self,
        node: &Node,
        arg0: String,
        axis: &i64,
    ) -> Result<Operand> {
        let (xs, a, ind_name) = self.indexed_by(node, &arg0, *axis)?;
        let r = xs.len();
        if let Operand::Value(idx) = self.operand(&ind_name)? {
            // Runtime indices: output (o_pre, j, o_post) selects x at (o_pre, m, o_post)
            // where idx[j] is m.
            let is = self.shape(idx);
            let q = is.len();
            let mut out: Vec<usize> = xs[..a].to_vec();
            out.extend(&is);
            out.extend(&xs[a + 1..]);
            let (xst, ist) = (strides(&xs), strides(&is));
            let (mut at, mut base) = (vec![], vec![]);
            for_each_index(&out, |o| {
                at.push((0..q).map(|j| o[a + j] * ist[j]).sum());
                base.push(
                    (0..a).map(|d| o[d] * xst[d]).sum::<usize>()
                        + (a + 1..r).map(|d| o[d + q - 1] * xst[d]).sum::<usize>(),
                );
            });
            let v = self.select(&arg0, idx, out, xs[a], xst[a], at, base)?;
            return Ok(Operand::Value(v));
        }
        let ind = self.constant(&ind_name)?;
        let picks: Vec<usize> = ind
            .data
            .iter()
            .map(|&v| self.constant_position(v, xs[a]))
            .collect::<Result<_>>()?;
        let mut out: Vec<usize> = xs[..a].to_vec();
        out.extend(&ind.shape);
        out.extend(&xs[a + 1..]);
        let xst = strides(&xs);
        let q = ind.shape.len();
        let ist = strides(&ind.shape);
        let mut index = Vec::with_capacity(numel(&out));
        for_each_index(&out, |o| {
            let mut off = 0;
            for d in 0..a {
                off += o[d] * xst[d];
            }
            let k: usize = (0..q).map(|j| o[a + j] * ist[j]).sum();
            off += picks[k] * xst[a];
            for d in a + 1..r {
                off += o[d + q - 1] * xst[d];
            }
            index.push(off as i64);
        });
        self.rewire(&arg0, out, index, 0.0)
    }

    pub(super) fn lower_resize(
        &mut self,
        node: &Node,
        arg0: String,
        (coordinate_mode, nearest_mode): (&str, &str),
        scales: &Option<Vec<f64>>,
        axes: &Option<Vec<i64>>,
        keep_aspect: &str,
    ) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let r = xs.len();
        let axes: Vec<usize> = match axes {
            Some(a) => self.axes_of(a, r)?,
            None => (0..r).collect(),
        };
        // Resize(X, roi, scales, sizes) from opset 11; (X, scales) before.
        let last = node.inputs.len();
        let scales_in = if last >= 3 {
            input(node, 2)
        } else {
            input(node, 1)
        };
        let sizes: Option<Vec<i64>> = match input(node, 3) {
            Some(n) => Some(self.constant_ints(&n)?).filter(|v| !v.is_empty()),
            None => None,
        };
        let given = match (&sizes, scales_in, scales) {
            (Some(sz), _, _) => sz.iter().map(|&v| v as f64).collect(),
            (None, Some(n), _) => self.constant(&n)?.data,
            (None, None, Some(s)) => s.clone(),
            (None, None, None) => return Err(self.fail("neither scales nor sizes")),
        };
        if given.len() != axes.len() || given.iter().any(|&s| s <= 0.0) {
            return Err(self.fail(format!(
                "{} {given:?} for axes {axes:?}",
                if sizes.is_some() { "sizes" } else { "scales" }
            )));
        }
        // Scale and output size per axis; axes not listed keep theirs.
        let (mut scales, mut out) = (vec![1.0; r], xs.clone());
        match &sizes {
            Some(_) if keep_aspect != "stretch" => {
                let ratios = axes.iter().zip(&given).map(|(&d, &o)| o / xs[d] as f64);
                let s = if keep_aspect == "not_larger" {
                    ratios.fold(f64::INFINITY, f64::min)
                } else {
                    ratios.fold(0.0, f64::max)
                };
                for &d in &axes {
                    scales[d] = s;
                    out[d] = (s * xs[d] as f64).round() as usize;
                }
            }
            Some(_) => {
                for (&d, &o) in axes.iter().zip(&given) {
                    (scales[d], out[d]) = (o / xs[d] as f64, o as usize);
                }
            }
            None => {
                for (&d, &s) in axes.iter().zip(&given) {
                    (scales[d], out[d]) = (s, (xs[d] as f64 * s).floor() as usize);
                }
            }
        }
        let (cm, nm) = (coordinate_mode, nearest_mode);
        let mut err = None;
        let index = index_map(&xs, &out, |d, o| {
            let (o, s, n_in, n_out) = (o as f64, scales[d], xs[d] as f64, out[d] as f64);
            let x = match cm {
                "asymmetric" => o / s,
                "half_pixel" => (o + 0.5) / s - 0.5,
                "pytorch_half_pixel" if n_out > 1.0 => (o + 0.5) / s - 0.5,
                "pytorch_half_pixel" => 0.0,
                "tf_half_pixel_for_nn" => (o + 0.5) / s,
                "align_corners" if n_out > 1.0 => o * (n_in - 1.0) / (n_out - 1.0),
                "align_corners" => 0.0,
                other => {
                    err = Some(format!("coordinate_transformation_mode `{other}`"));
                    0.0
                }
            };
            let i = match nm {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                "round_prefer_ceil" => (x + 0.5).floor(),
                "round_prefer_floor" => (x - 0.5).ceil(),
                other => {
                    err = Some(format!("nearest_mode `{other}`"));
                    0.0
                }
            };
            Some(i.clamp(0.0, n_in - 1.0) as usize)
        });
        if let Some(e) = err {
            return Err(self.fail(format!("{e} is not supported")));
        }
        self.rewire(&arg0, out, index, 0.0)
    }

    /// OneHot: output `o` is `on` where the index at `o` without the new axis equals `o[axis]`
    /// (or `o[axis] − depth`), else `off`: one equality test per output and candidate form.
    pub(super) fn one_hot(
        &mut self,
        idx: usize,
        axis: i64,
        depth: usize,
        off: f64,
        on: f64,
    ) -> Result<Operand> {
        let is = self.shape(idx);
        let r = is.len() + 1;
        let a = axis_index(axis, r).map_err(|e| self.fail(e))?;
        let mut out = is.clone();
        out.insert(a, depth);
        let ist = strides(&is);
        let (mut at, mut targets) = (vec![], vec![]);
        for_each_index(&out, |o| {
            let at_e: usize = (0..r)
                .filter(|&d| d != a)
                .enumerate()
                .map(|(k, d)| o[d] * ist[k])
                .sum();
            at.push(at_e);
            targets.extend([o[a] as f64, o[a] as f64 - depth as f64]);
        });
        let e_len = at.len();
        let eq = self.equal_grid(idx, &at, Tensor::new(vec![e_len, 2], targets))?;
        let hit = self.push(
            QOp::ReduceSum {
                axes: vec![1],
                keepdims: false,
            },
            vec![eq],
            vec![e_len],
            0,
        )?;
        let hit = self.push(QOp::Reshape, vec![hit], out, 0)?;
        // off + (on − off)·hit, with the constants quantized at the activation scale.
        let scaled = self.binary(
            &Op::Mul,
            Operand::Value(hit),
            Operand::Const(Tensor::new(vec![], vec![on - off])),
        )?;
        self.binary(
            &Op::Add,
            scaled,
            Operand::Const(Tensor::new(vec![], vec![off])),
        )
    }

    /// `[idx[at[e]] = grid[e][k]]` (0 or 1, at scale 0) for the runtime index tensor `idx` and
    /// constant targets `grid` (`[E, c]`): two comparisons through the sign of a range check,
    /// and their product.
    pub(super) fn equal_grid(
        &mut self,
        idx: usize,
        at: &[usize],
        grid: Tensor<f64>,
    ) -> Result<usize> {
        let shape = grid.shape.clone();
        let c = shape[1];
        let spread: Vec<i64> = at
            .iter()
            .flat_map(|&i| std::iter::repeat_n(i as i64, c))
            .collect();
        let ix = self.rewire_value(idx, shape.clone(), spread)?;
        let sign = |this: &mut Self, a: Operand, b: Operand| -> Result<usize> {
            let d = this.binary(&Op::Sub, a, b)?;
            let d = this.runtime_value(d, "an index comparison")?;
            this.push(QOp::Step { offset: 0, one: 1 }, vec![d], shape.clone(), 0)
        };
        let ge = sign(self, Operand::Value(ix), Operand::Const(grid.clone()))?;
        let le = sign(self, Operand::Const(grid), Operand::Value(ix))?;
        self.push(QOp::Mul, vec![ge, le], shape.clone(), 0)
    }

    /// GatherElements' and ScatterElements' [`Self::indexed_by`], with the indices' shape, which
    /// must have the data's rank and fit within it off the axis.
    pub(super) fn indexed_elementwise(
        &self,
        node: &Node,
        data: &str,
        axis: i64,
    ) -> Result<(Vec<usize>, usize, String, Vec<usize>)> {
        let (xs, a, ind_name) = self.indexed_by(node, data, axis)?;
        let is = self.shape_of(&ind_name)?;
        if is.len() != xs.len() || (0..xs.len()).any(|d| d != a && is[d] > xs[d]) {
            return Err(self.fail(format!(
                "indices of shape {is:?} do not fit data of shape {xs:?} off axis {a}"
            )));
        }
        Ok((xs, a, ind_name, is))
    }

    /// Gather's and GatherElements' data shape, their axis and the name of their indices.
    pub(super) fn indexed_by(
        &self,
        node: &Node,
        data: &str,
        axis: i64,
    ) -> Result<(Vec<usize>, usize, String)> {
        let xs = self.shape_of(data)?;
        let a = axis_index(axis, xs.len()).map_err(|e| self.fail(e))?;
        let ind_name = input(node, 1).ok_or_else(|| self.fail("no indices"))?;
        Ok((xs, a, ind_name))
    }
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// Gather: see [`QOp::Gather`].
pub(super) fn eval_gather(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    index: &[i64],
    fill: &i64,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("gather needs an input")?;
        let data = index
            .iter()
            .map(|&i| if i < 0 { *fill } else { x.data[i as usize] })
            .collect();
        Tensor::new(out_shape.to_vec(), data)
    })
}
