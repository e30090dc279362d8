//! The integer evaluator's shared parts: `eval_op` (each family evaluates the ops it introduces),
//! rounding, rescale, tables and interpolation, pooling windows.

use super::*;

/// Round half away from zero, as f64::round; None when the result does not fit in i64.
pub(super) fn round_to_i64(x: f64) -> Option<i64> {
    let r = x.round();
    if r.is_finite() && r.abs() < 9.2e18 {
        Some(r as i64)
    } else {
        None
    }
}

/// `y = floor((x + floor(d/2)) / d)`.
pub fn rescale(x: i64, d: u64) -> i64 {
    let d = d as i128;
    let v = x as i128 + d / 2;
    v.div_euclid(d) as i64
}

pub(super) fn to_i64(v: i128, what: &str) -> std::result::Result<i64, String> {
    i64::try_from(v).map_err(|_| format!("{what} overflows 64-bit integers ({v}): lower the scale"))
}

/// Output spatial size of a pooling/conv window sweep.
pub(super) fn window_out(
    input: usize,
    pad: usize,
    eff_kernel: usize,
    stride: usize,
    ceil: bool,
) -> std::result::Result<usize, String> {
    if input + pad < eff_kernel {
        return Err(format!(
            "window of {eff_kernel} does not fit the padded input of {}",
            input + pad
        ));
    }
    let span = input + pad - eff_kernel;
    Ok(if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    })
}

/// Evaluate one op. `out_shape` is the shape recorded for the output value.
pub fn eval_op(
    op: &QOp,
    inputs: &[&Tensor<i64>],
    out_shape: &[usize],
) -> std::result::Result<Tensor<i64>, String> {
    let x = inputs.first().copied();
    let out = match op {
        QOp::Input { .. } => return Err("an input is not evaluated by eval_op".into()),
        QOp::Const { data } => Tensor::new(out_shape.to_vec(), data.clone()),
        QOp::Linear { k, n, weight, bias } => dense::eval_linear(x, out_shape, k, n, weight, bias)?,
        QOp::Conv {
            out_channels,
            kernel,
            strides: st,
            pads_begin,
            dilations,
            weight,
            bias,
        } => dense::eval_conv(
            x,
            out_shape,
            out_channels,
            kernel,
            st,
            pads_begin,
            dilations,
            weight,
            bias,
        )?,
        QOp::Add | QOp::Sub | QOp::Mul => arithmetic::eval_add_sub_mul(op, inputs)?,
        QOp::ShiftLeft { bits } => arithmetic::eval_shift_left(x, bits)?,
        QOp::Rescale { divisor } => arithmetic::eval_rescale(x, divisor)?,
        QOp::Sqrt { shift } => arithmetic::eval_sqrt(x, *shift)?,
        QOp::Recip { num } => arithmetic::eval_recip(x, *num)?,
        QOp::Relu => x.ok_or("relu needs an input")?.map(|&v| v.max(0)),
        QOp::LeakyRelu { alpha, shift } => activations::eval_leaky_relu(x, alpha, shift)?,
        QOp::Table {
            func,
            in_scale,
            out_scale,
            lo,
            hi,
        }
        | QOp::Interp {
            func,
            in_scale,
            out_scale,
            lo,
            hi,
            ..
        } => activations::eval_table_interp(op, x, func, in_scale, out_scale, lo, hi)?,
        QOp::SumPool {
            kernel,
            strides: st,
            pads_begin,
            dilations,
        } => pooling::eval_sum_pool(x, out_shape, kernel, st, pads_begin, dilations)?,
        QOp::MaxPool {
            kernel,
            strides: st,
            pads_begin,
            dilations,
        } => pooling::eval_max_pool(x, out_shape, kernel, st, pads_begin, dilations)?,
        QOp::ReduceMax { axes, min, .. } => pooling::eval_reduce_max(x, out_shape, axes, min)?,
        QOp::ReduceSum { axes, .. } => pooling::eval_reduce_sum(x, out_shape, axes)?,
        QOp::Reshape => shape::eval_reshape(x, out_shape)?,
        QOp::Transpose { perm } => x.ok_or("transpose needs an input")?.transpose(perm),
        QOp::Concat { axis } => concat(inputs, *axis),
        QOp::MatMul { batch, m, k, n } => matmul::eval_matmul(inputs, out_shape, batch, m, k, n)?,
        QOp::Step { offset, one } => arithmetic::eval_step(x, offset, one)?,
        QOp::Gather { index, fill } => indexing::eval_gather(x, out_shape, index, fill)?,
        QOp::Scatter { .. } => selection::eval_scatter(inputs, &selection::Selection::of(op))?,
        QOp::Select { data, .. } => selection::eval_select(
            inputs,
            out_shape,
            &selection::Selection::of(op),
            data.as_deref(),
        )?,
    };
    if out.shape != out_shape {
        return Err(format!(
            "{} produced shape {:?}, expected {:?}",
            op.name(),
            out.shape,
            out_shape
        ));
    }
    Ok(out)
}

/// Bits finer than the output at which an interpolated table keeps its points.
pub const INTERP_FINE_BITS: i32 = 4;

/// The largest kernel size, stride, padding or dilation a quantized.json may give a window op:
/// far beyond any model, and small enough that window arithmetic never overflows.
pub(super) const MAX_WINDOW_PARAM: usize = 1 << 20;

/// The window parameter lists of a window op (none for other ops).
pub(super) fn window_params(op: &QOp) -> Vec<&Vec<usize>> {
    match op {
        QOp::Conv {
            kernel,
            strides,
            pads_begin,
            dilations,
            ..
        }
        | QOp::MaxPool {
            kernel,
            strides,
            pads_begin,
            dilations,
        } => vec![kernel, strides, pads_begin, dilations],
        QOp::SumPool {
            kernel,
            strides,
            pads_begin,
            dilations,
        } => vec![kernel, strides, pads_begin, dilations],
        QOp::Input { .. }
        | QOp::Const { .. }
        | QOp::Linear { .. }
        | QOp::Add
        | QOp::Sub
        | QOp::Mul
        | QOp::ShiftLeft { .. }
        | QOp::Rescale { .. }
        | QOp::Sqrt { .. }
        | QOp::Recip { .. }
        | QOp::Relu
        | QOp::LeakyRelu { .. }
        | QOp::Table { .. }
        | QOp::Interp { .. }
        | QOp::ReduceSum { .. }
        | QOp::ReduceMax { .. }
        | QOp::Reshape
        | QOp::Transpose { .. }
        | QOp::Concat { .. }
        | QOp::Step { .. }
        | QOp::MatMul { .. }
        | QOp::Gather { .. }
        | QOp::Select { .. }
        | QOp::Scatter { .. } => vec![],
    }
}

/// The inputs [`QOp::Interp`] accepts: every `x` whose table point `q = floor(x / 2^b)` lies
/// in the table, `floor(lo / 2^b) ≤ q ≤ floor(hi / 2^b)`; the circuit's two lookups of `q` and
/// `q + 1` bound exactly this (the evaluator and the circuit share one domain).
pub fn interp_domain(lo: i64, hi: i64, b: u32) -> (i64, i64) {
    let step = 1i64 << b;
    (
        lo.div_euclid(step) * step,
        hi.div_euclid(step) * step + step - 1,
    )
}

/// The interpolated table value of [`QOp::Interp`] at `x`.
pub fn interp_entry(func: TableFn, x: i64, in_scale: i32, out_scale: i32, b: u32) -> i64 {
    let step = 1i64 << b;
    let (q, r) = (x.div_euclid(step), x.rem_euclid(step));
    let fine = out_scale + INTERP_FINE_BITS;
    let a = table_entry(func, q * step, in_scale, fine) as i128;
    let bb = table_entry(func, (q + 1) * step, in_scale, fine) as i128;
    let v = a * step as i128 + (bb - a) * r as i128;
    let d = (step as u64) << INTERP_FINE_BITS;
    (v + d as i128 / 2).div_euclid(d as i128) as i64
}

/// One table entry: `round(f(x / 2^in_scale) · 2^out_scale)`, half away from zero.
pub fn table_entry(func: TableFn, x: i64, in_scale: i32, out_scale: i32) -> i64 {
    (func.apply(x as f64 / 2f64.powi(in_scale)) * 2f64.powi(out_scale)).round() as i64
}

#[allow(clippy::too_many_arguments)]
pub(super) fn pool(
    x: &Tensor<i64>,
    out_shape: &[usize],
    kernel: &[usize],
    st: &[usize],
    pads_begin: &[usize],
    dilations: Option<&[usize]>,
    init: i128,
    f: impl Fn(i128, i64) -> i128,
) -> std::result::Result<Tensor<i64>, String> {
    let win = Window::new(&x.shape, st, pads_begin, dilations);
    let mut data = Vec::with_capacity(numel(out_shape));
    let mut res = Ok(());
    win.each_window(&out_shape[2..], kernel, |taps| {
        if taps.is_empty() {
            res = Err("a pooling window covers only padding".to_string());
        }
        let acc = taps.iter().fold(init, |acc, &off| f(acc, x.data[off]));
        match to_i64(acc, "a pooled sum") {
            Ok(v) => data.push(v),
            Err(e) => res = Err(e),
        }
    });
    res?;
    Ok(Tensor::new(out_shape.to_vec(), data))
}

pub(super) fn concat<T: Clone>(inputs: &[&Tensor<T>], axis: usize) -> Tensor<T> {
    let mut shape = inputs[0].shape.clone();
    shape[axis] = inputs.iter().map(|t| t.shape[axis]).sum();
    let outer: usize = shape[..axis].iter().product();
    let mut data = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        for t in inputs {
            let chunk: usize = t.shape[axis..].iter().product();
            data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Tensor::new(shape, data)
}
