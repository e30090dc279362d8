//! Lowering of Gemm, Conv, ConvTranspose, and BatchNormalization when it is not folded into
//! the layer before it into integer ops (`QOp`); `Lowering::lower_op` dispatches here.

use super::*;
use crate::model::Pads;

impl Lowering<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lower_gemm(
        &mut self,
        node: &Node,
        fold_bn: Option<&Node>,
        arg0: String,
        alpha: &f64,
        beta: &f64,
        trans_a: &bool,
        trans_b: &bool,
    ) -> Result<Operand> {
        let s = self.s;
        let mut x = self.value(&arg0)?;
        if self.shape(x).len() != 2 {
            return Err(self.fail(format!("Gemm input A must be 2-D, got {:?}", self.shape(x))));
        }
        if *trans_a {
            let sh = self.shape(x);
            x = self.push(
                QOp::Transpose { perm: vec![1, 0] },
                vec![x],
                vec![sh[1], sh[0]],
                s,
            )?;
        }
        let b_name = input(node, 1).ok_or_else(|| self.fail("Gemm needs two inputs"))?;
        let c = input(node, 2).map(|n| self.operand(&n)).transpose()?;
        let runtime = |o: &Operand| matches!(o, Operand::Value(_));
        if runtime(&self.operand(&b_name)?) || c.as_ref().is_some_and(runtime) {
            return self.gemm_of_runtime(x, &b_name, c, (*alpha, *beta), *trans_b);
        }
        let mut w = self.constant(&b_name)?;
        if w.rank() != 2 {
            return Err(self.fail(format!("Gemm input B must be 2-D, got {:?}", w.shape)));
        }
        if *trans_b {
            w = w.transpose(&[1, 0]);
        }
        let w = w.map(|v| v * alpha);
        let c = match c {
            Some(Operand::Const(c)) => Some(c.map(|v| v * beta)),
            _ => None,
        };
        self.linear(x, w, c, fold_bn)
    }

    /// Gemm with a runtime B or C: `α·(A·B) + β·C` as a product of runtime tensors, a scaling
    /// and a sum (no BatchNormalization folds into it).
    fn gemm_of_runtime(
        &mut self,
        a: usize,
        b_name: &str,
        c: Option<Operand>,
        (alpha, beta): (f64, f64),
        trans_b: bool,
    ) -> Result<Operand> {
        let b = self.operand(b_name)?;
        let rank = match &b {
            Operand::Const(t) => t.rank(),
            Operand::Value(v) => self.shape(*v).len(),
        };
        if rank != 2 {
            return Err(self.fail("Gemm input B must be 2-D"));
        }
        let b = if trans_b {
            self.transpose_operand(b, &[1, 0])?
        } else {
            b
        };
        let times = |this: &mut Self, o: Operand, k: f64| -> Result<Operand> {
            if k == 1.0 {
                return Ok(o);
            }
            this.binary(&Op::Mul, o, Operand::Const(Tensor::new(vec![], vec![k])))
        };
        let y = self.matmul_of(Operand::Value(a), b, None)?;
        let y = times(self, y, alpha)?;
        match c {
            Some(c) => {
                let c = times(self, c, beta)?;
                self.binary(&Op::Add, y, c)
            }
            None => Ok(y),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn lower_conv(
        &mut self,
        node: &Node,
        fold_bn: Option<&Node>,
        arg0: String,
        kernel_shape: &Option<Vec<usize>>,
        st: &[usize],
        pads: &Pads,
        dilations: &[usize],
        group: usize,
    ) -> Result<Operand> {
        let x = self.value(&arg0)?;
        let xs = self.shape(x);
        let w = self.constant(&input(node, 1).unwrap())?;
        if xs.len() < 3
            || w.rank() != xs.len()
            || w.shape[1] * group != xs[1]
            || !w.shape[0].is_multiple_of(group)
        {
            return Err(self.fail(format!(
                "Conv input {:?} and weight {:?} do not match (group {group})",
                xs, w.shape
            )));
        }
        let nsp = xs.len() - 2;
        let kernel = w.shape[2..].to_vec();
        if kernel_shape.as_ref().is_some_and(|k| *k != kernel) {
            return Err(self.fail("kernel_shape does not match the weight"));
        }
        let st = or_ones(st, nsp);
        let dil = or_ones(dilations, nsp);
        let (pb, pe) = pads.resolve(&xs[2..], &kernel, &st, &dil);
        let mut out_shape = vec![xs[0], w.shape[0]];
        for d in 0..nsp {
            out_shape.push(
                window_out(
                    xs[d + 2],
                    pb[d] + pe[d],
                    (kernel[d] - 1) * dil[d] + 1,
                    st[d],
                    false,
                )
                .map_err(|e| self.fail(e))?,
            );
        }
        let mut bias = input(node, 2).map(|n| self.constant(&n)).transpose()?;
        let mut w = w;
        if let Some(bn) = fold_bn {
            let (a, b) = self.bn_affine(bn)?;
            let per = w.len() / w.shape[0];
            for (i, v) in w.data.iter_mut().enumerate() {
                *v *= a[i / per];
            }
            let b0 = bias.map(|t| t.data).unwrap_or_else(|| vec![0.0; a.len()]);
            bias = Some(Tensor::new(
                vec![a.len()],
                b0.iter()
                    .zip(&a)
                    .zip(&b)
                    .map(|((b0, a), b)| b0 * a + b)
                    .collect(),
            ));
        }
        if group == 1 {
            return self.conv_node(x, &w, bias, kernel, st, pb, dil, out_shape);
        }
        // Grouped (and depthwise) convolution: each group's input channels through its own
        // filters, as an ordinary convolution, the outputs concatenated along the channels.
        // Each output is a dot product over its group alone: no multiplications by zero.
        let (cin, cout) = (xs[1] / group, w.shape[0] / group);
        let per_filter = w.len() / w.shape[0];
        let mut parts = vec![];
        for g in 0..group {
            let mut part_in = xs.clone();
            part_in[1] = cin;
            let index = index_map(&xs, &part_in, |d, o| {
                Some(if d == 1 { o + g * cin } else { o })
            });
            let xg = self.rewire_value(x, part_in, index)?;
            let mut wshape = w.shape.clone();
            wshape[0] = cout;
            let wg = Tensor::new(
                wshape,
                w.data[g * cout * per_filter..(g + 1) * cout * per_filter].to_vec(),
            );
            let bg = bias
                .as_ref()
                .map(|b| Tensor::new(vec![cout], b.data[g * cout..(g + 1) * cout].to_vec()));
            let mut oshape = out_shape.clone();
            oshape[1] = cout;
            let y = self.conv_node(
                xg,
                &wg,
                bg,
                kernel.clone(),
                st.clone(),
                pb.clone(),
                dil.clone(),
                oshape,
            )?;
            parts.push(self.runtime_value(y, "a convolution group")?);
        }
        // Each group's weights have their own scale: the parts meet at the activation scale.
        let target = self.s;
        let ids = parts
            .into_iter()
            .map(|p| self.rescale_to(p, target))
            .collect::<Result<Vec<_>>>()?;
        Ok(Operand::Value(self.push(
            QOp::Concat { axis: 1 },
            ids,
            out_shape,
            target,
        )?))
    }

    pub(super) fn lower_conv_transpose(
        &mut self,
        node: &Node,
        arg0: String,
        st: &[usize],
        pads: &[usize],
        dilations: &[usize],
        output_padding: &[usize],
    ) -> Result<Operand> {
        // A transposed convolution is a convolution (stride 1, flipped kernel, channels
        // swapped) over the input spread `stride` apart and padded by d·(K−1) − pad:
        // the spreading and padding are rewiring, the convolution is the usual chip.
        let xs = self.shape_of(&arg0)?;
        let w = self.constant(&input(node, 1).ok_or_else(|| self.fail("no weight"))?)?;
        if xs.len() < 3 || w.rank() != xs.len() || w.shape[0] != xs[1] {
            return Err(self.fail(format!(
                "ConvTranspose input {:?} and weight {:?} do not match",
                xs, w.shape
            )));
        }
        let nsp = xs.len() - 2;
        let kernel = w.shape[2..].to_vec();
        let (st, dil) = (or_ones(st, nsp), or_ones(dilations, nsp));
        let pads = if pads.is_empty() {
            vec![0; 2 * nsp]
        } else {
            pads.to_vec()
        };
        let opad = if output_padding.is_empty() {
            vec![0; nsp]
        } else {
            output_padding.to_vec()
        };
        if st.len() != nsp || dil.len() != nsp || pads.len() != 2 * nsp || opad.len() != nsp {
            return Err(
                self.fail("strides, dilations, pads or output_padding do not match the rank")
            );
        }
        let mut spread = xs[..2].to_vec();
        let mut begin = vec![0i64; xs.len()];
        for d in 0..nsp {
            let reach = (dil[d] * (kernel[d] - 1)) as i64;
            let b = reach - pads[d] as i64;
            let e = reach - pads[nsp + d] as i64 + opad[d] as i64;
            let n = (xs[d + 2] as i64 - 1) * st[d] as i64 + 1 + b + e;
            if n < (dil[d] * (kernel[d] - 1) + 1) as i64 {
                return Err(self.fail("the padding leaves no output"));
            }
            spread.push(n as usize);
            begin[d + 2] = b;
        }
        let index = index_map(&xs, &spread, |d, o| {
            if d < 2 {
                return Some(o);
            }
            let v = o as i64 - begin[d];
            let s = st[d - 2] as i64;
            (v >= 0 && v % s == 0).then_some((v / s) as usize)
        });
        let spread_op = self.rewire(&arg0, spread.clone(), index, 0.0)?;
        let x = match spread_op {
            Operand::Value(v) => v,
            Operand::Const(t) => {
                let s = self.s;
                self.const_value(&t, s)?
            }
        };
        // weight [C_in, C_out/g, *K] → [C_out, C_in, *K], kernel flipped.
        let (cin, cout) = (w.shape[0], w.shape[1]);
        let kn = numel(&kernel);
        let ks = strides(&kernel);
        let mut flipped = vec![0.0; w.len()];
        for c in 0..cin {
            for o in 0..cout {
                for k in 0..kn {
                    let mut kf = 0;
                    for (d, &kd) in kernel.iter().enumerate() {
                        let i = (k / ks[d]) % kd;
                        kf += (kd - 1 - i) * ks[d];
                    }
                    flipped[(o * cin + c) * kn + kf] = w.data[(c * cout + o) * kn + k];
                }
            }
        }
        let mut wshape = vec![cout, cin];
        wshape.extend(&kernel);
        let w = Tensor::new(wshape, flipped);
        let bias = input(node, 2).map(|n| self.constant(&n)).transpose()?;
        let mut out_shape = vec![xs[0], cout];
        for d in 0..nsp {
            out_shape.push(spread[d + 2] - dil[d] * (kernel[d] - 1));
        }
        self.conv_node(
            x,
            &w,
            bias,
            kernel,
            vec![1; nsp],
            vec![0; nsp],
            dil,
            out_shape,
        )
    }

    pub(super) fn lower_batch_normalization(
        &mut self,
        node: &Node,
        arg0: String,
    ) -> Result<Operand> {
        let s = self.s;
        // Not folded: y = x·a + b per channel (axis 1).
        let x = self.value(&arg0)?;
        let xs = self.shape(x);
        let (a, b) = self.bn_affine(node)?;
        let mut cshape = vec![1; xs.len().max(2)];
        cshape[1] = a.len();
        let at = Tensor::new(cshape.clone(), a);
        let bt = Tensor::new(cshape, b);
        let ax = self.binary(&Op::Mul, Operand::Value(x), Operand::Const(at))?;
        let ax = match ax {
            Operand::Value(v) => self.rescale_to(v, s)?,
            c => return Ok(c),
        };
        self.binary(&Op::Add, Operand::Value(ax), Operand::Const(bt))
    }

    /// `x·w + c` at the activation scale, `x` a runtime `[B, K]`, `w` `[K, N]`.
    pub(super) fn dense(
        &mut self,
        x: usize,
        w: Tensor<f64>,
        c: Option<Tensor<f64>>,
    ) -> Result<usize> {
        let y = self.linear(x, w, c, None)?;
        let y = self.runtime_value(y, "a recurrent layer's product")?;
        self.rescale_to(y, self.s)
    }

    /// A convolution node of `x` with float weight `w` (`[O, C, *K]`) and bias, quantized.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_node(
        &mut self,
        x: usize,
        w: &Tensor<f64>,
        bias: Option<Tensor<f64>>,
        kernel: Vec<usize>,
        strides: Vec<usize>,
        pads_begin: Vec<usize>,
        dilations: Vec<usize>,
        out_shape: Vec<usize>,
    ) -> Result<Operand> {
        let sw = self.param_scale(w);
        let sx = self.scale_of(x);
        let weight = self.quant(w, sw)?;
        let bias = bias.map(|b| self.quant(&b, sx + sw)).transpose()?;
        let op = QOp::Conv {
            out_channels: w.shape[0],
            kernel,
            strides,
            pads_begin,
            dilations,
            weight,
            bias,
        };
        Ok(Operand::Value(self.push(
            op,
            vec![x],
            out_shape,
            sx + sw,
        )?))
    }

    /// `y = x·w + c` over the last axis of `x`; `c` is folded into the op's bias when it is one
    /// value per output column, otherwise added afterwards.
    pub(super) fn linear(
        &mut self,
        x: usize,
        mut w: Tensor<f64>,
        c: Option<Tensor<f64>>,
        fold_bn: Option<&Node>,
    ) -> Result<Operand> {
        let xs = self.shape(x);
        let (k, n) = (w.shape[0], w.shape[1]);
        if xs.last() != Some(&k) {
            return Err(self.fail(format!(
                "input {:?} does not match weight {:?}",
                xs, w.shape
            )));
        }
        let mut out = xs.clone();
        *out.last_mut().unwrap() = n;
        let (mut bias, mut extra) = match c {
            Some(c) if c.len() == n && c.shape.iter().rev().skip(1).all(|&d| d == 1) => {
                (Some(c.data), None)
            }
            Some(c) if c.len() == 1 => (Some(vec![c.data[0]; n]), None),
            Some(c) => {
                if broadcast_shape(&out, &c.shape).as_deref() != Some(&out[..]) {
                    return Err(self.fail(format!(
                        "bias {:?} does not broadcast to {:?}",
                        c.shape, out
                    )));
                }
                (None, Some(c))
            }
            None => (None, None),
        };
        if let Some(bn) = fold_bn {
            if extra.is_some() || out.len() != 2 {
                return Err(self.fail("BatchNormalization can only be folded into a 2-D linear layer with a vector bias"));
            }
            let (a, b) = self.bn_affine(bn)?;
            if a.len() != n {
                return Err(self.fail("BatchNormalization channels do not match the linear layer"));
            }
            for (i, v) in w.data.iter_mut().enumerate() {
                *v *= a[i % n];
            }
            let b0 = bias.unwrap_or_else(|| vec![0.0; n]);
            bias = Some(
                b0.iter()
                    .zip(&a)
                    .zip(&b)
                    .map(|((b0, a), b)| b0 * a + b)
                    .collect(),
            );
        }
        let sw = self.param_scale(&w);
        let sx = self.scale_of(x);
        let weight = self.quant(&w, sw)?;
        let bias = bias
            .map(|b| self.quant(&Tensor::new(vec![n], b), sx + sw))
            .transpose()?;
        let y = self.push(QOp::Linear { k, n, weight, bias }, vec![x], out, sx + sw)?;
        match extra.take() {
            None => Ok(Operand::Value(y)),
            Some(c) => {
                let y = self.rescale_to(y, self.s)?;
                self.binary(&Op::Add, Operand::Value(y), Operand::Const(c))
            }
        }
    }

    /// BatchNormalization as a per-channel affine map `y = a·x + b`.
    pub(super) fn bn_affine(&self, bn: &Node) -> Result<(Vec<f64>, Vec<f64>)> {
        let eps = match bn.op {
            Op::BatchNormalization { epsilon } => epsilon,
            _ => unreachable!(),
        };
        let get = |i: usize| -> Result<Vec<f64>> {
            let n = bn
                .inputs
                .get(i)
                .ok_or_else(|| self.fail("BatchNormalization needs 5 inputs"))?;
            Ok(self
                .model
                .constants
                .get(n)
                .ok_or_else(|| self.fail(format!("`{n}` must be a constant")))?
                .data
                .clone())
        };
        let (g, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
        let a: Vec<f64> = g
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let b: Vec<f64> = a
            .iter()
            .zip(&mean)
            .zip(&beta)
            .map(|((a, m), b)| b - a * m)
            .collect();
        Ok((a, b))
    }
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// Linear: see [`QOp::Linear`].
pub(super) fn eval_linear(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    k: &usize,
    n: &usize,
    weight: &[i64],
    bias: &Option<Vec<i64>>,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("linear needs an input")?;
        let rows = x.len() / k;
        let mut data = Vec::with_capacity(rows * n);
        for r in 0..rows {
            let xr = &x.data[r * k..(r + 1) * k];
            for j in 0..*n {
                let mut acc: i128 = bias.as_ref().map(|b| b[j] as i128).unwrap_or(0);
                for (i, &xv) in xr.iter().enumerate() {
                    acc += xv as i128 * weight[i * n + j] as i128;
                }
                data.push(to_i64(acc, "a dot product")?);
            }
        }
        Tensor::new(out_shape.to_vec(), data)
    })
}

/// Conv: see [`QOp::Conv`].
#[allow(clippy::too_many_arguments)]
pub(super) fn eval_conv(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
    out_channels: &usize,
    kernel: &[usize],
    st: &[usize],
    pads_begin: &[usize],
    dilations: &[usize],
    weight: &[i64],
    bias: &Option<Vec<i64>>,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("conv needs an input")?;
        let win = Window::new(&x.shape, st, pads_begin, Some(dilations));
        let mut data = Vec::with_capacity(numel(out_shape));
        win.each_conv_output(&out_shape[2..], *out_channels, kernel, |o, taps| {
            let bias = bias.as_ref().map_or(0, |bv| bv[o] as i128);
            let sum = taps.iter().fold(bias, |acc, &(off, wi)| {
                acc + x.data[off] as i128 * weight[wi] as i128
            });
            data.push(sum);
        });
        let data = data
            .into_iter()
            .map(|v| to_i64(v, "a convolution"))
            .collect::<std::result::Result<_, _>>()?;
        Tensor::new(out_shape.to_vec(), data)
    })
}
