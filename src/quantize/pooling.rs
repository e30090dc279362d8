//! Lowering of AveragePool, MaxPool, GlobalAveragePool and the reductions (ReduceSum, ReduceMean,
//! ReduceMax, ReduceMin, ReduceSumSquare, ReduceL1, ReduceL2) into integer ops (`QOp`);
//! `Lowering::lower_op` dispatches here.

use super::*;
use crate::model::Pads;

impl Lowering<'_> {
    pub(super) fn lower_average_pool(
        &mut self,
        arg0: String,
        kernel_shape: &[usize],
        st: &[usize],
        pads: &Pads,
        dilations: &[usize],
        (count_include_pad, ceil_mode): (bool, bool),
    ) -> Result<Operand> {
        let (x, xs) = self.pool_input(&arg0, kernel_shape)?;
        let nsp = kernel_shape.len();
        let st = or_ones(st, nsp);
        let dil = or_ones(dilations, nsp);
        let (pb, pe) = pads.resolve(&xs[2..], kernel_shape, &st, &dil);
        let out_shape = self.pool_shape(&xs, kernel_shape, &st, &dil, (&pb, &pe), ceil_mode)?;
        // Divisor per output position: the window's taps within the padded input (a ceil_mode
        // window past it counts only those), or only its in-bounds taps.
        let mut divisor = vec![];
        for_each_index(&out_shape[2..], |p| {
            let mut n = 1u64;
            for d in 0..nsp {
                let start = (p[d] * st[d]) as isize - pb[d] as isize;
                let (lo, hi) = if count_include_pad {
                    (-(pb[d] as isize), (xs[d + 2] + pe[d]) as isize)
                } else {
                    (0, xs[d + 2] as isize)
                };
                let taps = (0..kernel_shape[d] as isize)
                    .map(|j| start + j * dil[d] as isize)
                    .filter(|q| (lo..hi).contains(q))
                    .count();
                n *= taps.max(1) as u64;
            }
            divisor.push(n);
        });
        let per_pos = divisor.len();
        let divisor = if divisor.iter().all(|&d| d == divisor[0]) {
            vec![divisor[0]]
        } else {
            divisor
                .iter()
                .cycle()
                .take(per_pos * xs[0] * xs[1])
                .copied()
                .collect()
        };
        let sc = self.scale_of(x);
        let sum = self.push(
            QOp::SumPool {
                kernel: kernel_shape.to_vec(),
                strides: st,
                pads_begin: pb,
                // Ones are not written, so undilated pools keep their quantized.json.
                dilations: if dil.iter().all(|&d| d == 1) {
                    vec![]
                } else {
                    dil
                },
            },
            vec![x],
            out_shape.clone(),
            sc,
        )?;
        Ok(Operand::Value(self.push(
            QOp::Rescale { divisor },
            vec![sum],
            out_shape,
            sc,
        )?))
    }

    pub(super) fn lower_max_pool(
        &mut self,
        arg0: String,
        kernel_shape: &[usize],
        st: &[usize],
        pads: &Pads,
        dilations: &[usize],
        ceil_mode: &bool,
    ) -> Result<Operand> {
        let (x, xs) = self.pool_input(&arg0, kernel_shape)?;
        let nsp = kernel_shape.len();
        let st = or_ones(st, nsp);
        let dil = or_ones(dilations, nsp);
        let (pb, pe) = pads.resolve(&xs[2..], kernel_shape, &st, &dil);
        let out_shape = self.pool_shape(&xs, kernel_shape, &st, &dil, (&pb, &pe), *ceil_mode)?;
        let sc = self.scale_of(x);
        let op = QOp::MaxPool {
            kernel: kernel_shape.to_vec(),
            strides: st,
            pads_begin: pb,
            dilations: dil,
        };
        Ok(Operand::Value(self.push(op, vec![x], out_shape, sc)?))
    }

    pub(super) fn lower_global_average_pool(&mut self, arg0: String) -> Result<Operand> {
        let x = self.value(&arg0)?;
        let xs = self.shape(x);
        if xs.len() < 3 {
            return Err(self.fail("GlobalAveragePool needs a spatial input"));
        }
        let axes: Vec<usize> = (2..xs.len()).collect();
        self.mean(x, axes, true)
    }

    pub(super) fn lower_reduce(
        &mut self,
        node: &Node,
        arg0: String,
        kind: Reduction,
        axes: &Option<Vec<i64>>,
        keepdims: &bool,
        noop_with_empty_axes: &bool,
    ) -> Result<Operand> {
        let rank = self.shape_of(&arg0)?.len();
        let axes = match (axes, input(node, 1)) {
            (Some(a), _) => a.clone(),
            (None, Some(n)) => self.constant(&n)?.data.iter().map(|&v| v as i64).collect(),
            (None, None) => vec![],
        };
        let mut axes = self.axes_of(&axes, rank)?;
        if axes.is_empty() {
            if *noop_with_empty_axes {
                return self.operand(&arg0);
            }
            axes = (0..rank).collect();
        }
        axes.sort();
        axes.dedup();
        let x = self.value(&arg0)?;
        let keepdims = *keepdims;
        let sum = |this: &mut Self, x: usize| -> Result<usize> {
            Ok(this.reduce_sum(x, &axes, keepdims)?.0)
        };
        let v = match kind {
            Reduction::Max | Reduction::Min => {
                let out = reduced_shape(&self.shape(x), &axes, keepdims);
                let sc = self.scale_of(x);
                let op = QOp::ReduceMax {
                    axes,
                    keepdims,
                    min: kind == Reduction::Min,
                };
                self.push(op, vec![x], out, sc)?
            }
            Reduction::Mean => return self.mean(x, axes, keepdims),
            Reduction::LogSumExp => self.log_sum_exp(x, &axes, keepdims)?,
            Reduction::Sum => sum(self, x)?,
            // |x| = 2·relu(x) − x, exactly.
            Reduction::L1 => {
                let r = self.relu_operand(Operand::Value(x))?;
                let r = self.runtime_value(r, "ReduceL1")?;
                let (sh, sc) = (self.shape(x), self.scale_of(x));
                let twice = self.push(QOp::ShiftLeft { bits: 1 }, vec![r], sh.clone(), sc)?;
                let abs = self.push(QOp::Sub, vec![twice, x], sh, sc)?;
                sum(self, abs)?
            }
            // Σ x² at twice the scale, back to the activation scale (the range the root's
            // checks take); L2 is its exact root.
            Reduction::SumSquare | Reduction::L2 => {
                let sq = self.push(QOp::Mul, vec![x, x], self.shape(x), 2 * self.scale_of(x))?;
                let s = sum(self, sq)?;
                let s = self.rescale_to(s, self.s)?;
                if kind == Reduction::L2 {
                    self.sqrt(s)?
                } else {
                    s
                }
            }
        };
        Ok(Operand::Value(v))
    }

    pub(super) fn reduce_sum(
        &mut self,
        x: usize,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<(usize, u64)> {
        let xs = self.shape(x);
        let count: usize = axes.iter().map(|&a| xs[a]).product();
        let out = reduced_shape(&xs, axes, keepdims);
        let sc = self.scale_of(x);
        let v = self.push(
            QOp::ReduceSum {
                axes: axes.to_vec(),
                keepdims,
            },
            vec![x],
            out,
            sc,
        )?;
        Ok((v, count as u64))
    }

    pub(super) fn mean(&mut self, x: usize, axes: Vec<usize>, keepdims: bool) -> Result<Operand> {
        let (sum, count) = self.reduce_sum(x, &axes, keepdims)?;
        let sh = self.shape(sum);
        let sc = self.scale_of(sum);
        Ok(Operand::Value(self.push(
            QOp::Rescale {
                divisor: vec![count.max(1)],
            },
            vec![sum],
            sh,
            sc,
        )?))
    }

    /// `max + log Σ exp(x − max)`: exp kept finer than the output, as Softmax keeps it (its
    /// table stops at 0), and the sum, at least exp(0) = 1, through a Log table from 1 up.
    pub(super) fn log_sum_exp(
        &mut self,
        x: usize,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<usize> {
        let (xs, sc) = (self.shape(x), self.scale_of(x));
        let kept = reduced_shape(&xs, axes, true);
        let max = QOp::ReduceMax {
            axes: axes.to_vec(),
            keepdims: true,
            min: false,
        };
        let m = self.push(max, vec![x], kept.clone(), sc)?;
        let d = self.binary(&Op::Sub, Operand::Value(x), Operand::Value(m))?;
        let d = self.runtime_value(d, "ReduceLogSumExp")?;
        let fine = self.s + super::activations::SOFTMAX_GUARD_BITS;
        let e = self.table_at(d, TableFn::Exp, fine, (f64::NEG_INFINITY, 0.0))?;
        let e = self.runtime_value(e, "ReduceLogSumExp")?;
        let (sum, _) = self.reduce_sum(e, axes, true)?;
        let l = self.table_at(sum, TableFn::Log, self.s, (1.0, f64::INFINITY))?;
        let y = self.binary(&Op::Add, Operand::Value(m), l)?;
        let y = self.runtime_value(y, "ReduceLogSumExp")?;
        let y = self.rescale_to(y, self.s)?;
        if keepdims {
            Ok(y)
        } else {
            let out = reduced_shape(&xs, axes, false);
            self.push(QOp::Reshape, vec![y], out, self.s)
        }
    }

    /// A pool's output shape `[N, C, *windows]`; with `ceil_mode` the last window may run past
    /// the padded input, but must start inside the input or its leading padding (ONNX's rule).
    fn pool_shape(
        &self,
        xs: &[usize],
        kernel: &[usize],
        st: &[usize],
        dil: &[usize],
        (pb, pe): (&[usize], &[usize]),
        ceil_mode: bool,
    ) -> Result<Vec<usize>> {
        let mut out = xs[..2].to_vec();
        for d in 0..kernel.len() {
            let eff = (kernel[d] - 1) * dil[d] + 1;
            let mut o = window_out(xs[d + 2], pb[d] + pe[d], eff, st[d], ceil_mode)
                .map_err(|e| self.fail(e))?;
            if ceil_mode && (o - 1) * st[d] >= xs[d + 2] + pb[d] {
                o -= 1;
            }
            out.push(o);
        }
        Ok(out)
    }

    /// A pool's input and its shape, `[N, C, *spatial]` with one spatial axis per kernel axis.
    fn pool_input(&mut self, name: &str, kernel_shape: &[usize]) -> Result<(usize, Vec<usize>)> {
        let x = self.value(name)?;
        let xs = self.shape(x);
        if xs.len() != kernel_shape.len() + 2 {
            return Err(self.fail(format!(
                "kernel {:?} does not match input {:?}",
                kernel_shape, xs
            )));
        }
        Ok((x, xs))
    }
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// SumPool: see [`QOp::SumPool`].
pub(super) fn eval_sum_pool(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    kernel: &[usize],
    st: &[usize],
    pads_begin: &[usize],
    dilations: &[usize],
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        pool(
            x.ok_or("pool needs an input")?,
            out_shape,
            kernel,
            st,
            pads_begin,
            (!dilations.is_empty()).then_some(dilations),
            0,
            |a, v| a + v as i128,
        )?
    })
}

/// MaxPool: see [`QOp::MaxPool`].
pub(super) fn eval_max_pool(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    kernel: &[usize],
    st: &[usize],
    pads_begin: &[usize],
    dilations: &[usize],
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        pool(
            x.ok_or("pool needs an input")?,
            out_shape,
            kernel,
            st,
            pads_begin,
            Some(dilations),
            i128::MIN,
            |a, v| a.max(v as i128),
        )?
    })
}

/// ReduceMax: see [`QOp::ReduceMax`].
pub(super) fn eval_reduce_max(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    axes: &[usize],
    min: &bool,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("reduce needs an input")?;
        let (map, outs) = reduction_map(&x.shape, axes);
        let mut acc: Vec<Option<i64>> = vec![None; outs];
        for (i, &v) in x.data.iter().enumerate() {
            let a = &mut acc[map[i]];
            *a = Some(match *a {
                None => v,
                Some(m) if *min => m.min(v),
                Some(m) => m.max(v),
            });
        }
        let data = acc
            .into_iter()
            .map(|v| v.ok_or("reduction over an empty axis"))
            .collect::<std::result::Result<_, _>>()?;
        Tensor::new(out_shape.to_vec(), data)
    })
}

/// ReduceSum: see [`QOp::ReduceSum`].
pub(super) fn eval_reduce_sum(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    axes: &[usize],
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("reduce needs an input")?;
        let (map, outs) = reduction_map(&x.shape, axes);
        let mut acc = vec![0i128; outs];
        for (i, &v) in x.data.iter().enumerate() {
            acc[map[i]] += v as i128;
        }
        let data = acc
            .into_iter()
            .map(|v| to_i64(v, "a sum"))
            .collect::<std::result::Result<_, _>>()?;
        Tensor::new(out_shape.to_vec(), data)
    })
}
