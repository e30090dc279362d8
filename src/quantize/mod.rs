//! Stage 2 of the chain: the quantized model and its integer evaluator.
//!
//! Fixed point with power-of-two scales: a real `x` at scale `s` is the integer `round(x·2^s)`
//! (round half away from zero, done once for inputs and constants). Every activation is kept at
//! one activation scale `S`; a constant gets its own scale, chosen to use `param_bits` bits.
//! Products carry the sum of their operands' scales and are brought back to `S` by a [`QOp::Rescale`],
//! a division by a positive constant that rounds to nearest with ties toward +∞:
//! `y = floor((x + floor(d/2)) / d)`. The circuit proves exactly this with a range-checked
//! remainder, and that is why we use it rather than ties-away-from-zero.
//!
//! The integer evaluator here ([`QuantizedModel::evaluate`]) is the specification of the circuit:
//! the circuit's output must equal it bit for bit.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Unsupported};
use crate::model::{FloatRun, Model, Node, Op};
use crate::tensor::{
    Tensor, Window, broadcast_index_map, broadcast_shape, for_each_index, numel, reduction_map,
    strides, zip_broadcast,
};

mod activations;
mod arithmetic;
mod dense;
mod indexing;
mod normalization;
pub mod pipeline;
mod pooling;
mod recurrent;
mod reductions;
pub mod report;
mod shape;

/// Version of the quantized-model format (`quantized.json`).
pub const FORMAT_VERSION: u32 = 1;

/// How to choose scales. The defaults keep activations within 24-bit signed integers, which the
/// circuit range-checks, and weights within 16 bits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    /// Activation scale `S`; None chooses it from the calibration input.
    pub scale: Option<u32>,
    /// Upper bound for the automatic activation scale.
    pub max_scale: u32,
    /// Signed bits a quantized constant may use; each constant's scale is the largest that fits.
    pub param_bits: u32,
    /// Upper bound for a constant's scale (tiny constants would otherwise get huge scales).
    pub max_param_scale: u32,
    /// Signed bits an activation (a tensor between ONNX nodes) may use.
    pub activation_bits: u32,
    /// log2 of the largest lookup table (one element-wise function) the quantizer may create.
    pub table_bits: u32,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            scale: None,
            max_scale: 12,
            param_bits: 16,
            max_param_scale: 16,
            activation_bits: 24,
            table_bits: 16,
        }
    }
}

/// The element-wise functions the circuit evaluates through lookup tables (defined with the
/// ops they come from).
pub use crate::model::TableFn;

/// One integer operation. Shapes live on the values; the semantics of each op is its evaluator
/// in [`eval_op`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QOp {
    /// Graph input `index`, quantized at the value's scale.
    Input {
        index: usize,
    },
    /// A constant tensor (row-major).
    Const {
        data: Vec<i64>,
    },
    /// `y[.., n] = Σ_k x[.., k]·w[k, n] + b[n]`; `w` is `k×n` row-major.
    Linear {
        k: usize,
        n: usize,
        weight: Vec<i64>,
        bias: Option<Vec<i64>>,
    },
    /// N-d convolution, input `[N, C, *spatial]`, weight `[O, C, *kernel]` (row-major), bias `[O]`.
    Conv {
        out_channels: usize,
        kernel: Vec<usize>,
        strides: Vec<usize>,
        pads_begin: Vec<usize>,
        dilations: Vec<usize>,
        weight: Vec<i64>,
        bias: Option<Vec<i64>>,
    },
    /// Element-wise with numpy broadcasting; both operands at the same scale.
    Add,
    Sub,
    /// Element-wise product with broadcasting; the result's scale is the sum of the operands'.
    Mul,
    /// `y = x·2^bits`: aligns a value to a larger scale.
    ShiftLeft {
        bits: u32,
    },
    /// `y = floor((x + floor(d/2)) / d)` with `d = divisor[i]` (one divisor for all, or one per
    /// element): division rounding to nearest, ties toward +∞.
    Rescale {
        divisor: Vec<u64>,
    },
    /// `y = max(x, 0)`.
    Relu,
    /// `y = x·2^shift` if `x ≥ 0`, else `alpha·x`; the scale grows by `shift` (a Rescale follows).
    LeakyRelu {
        alpha: i64,
        shift: u32,
    },
    /// `y = round(f(x / 2^in_scale) · 2^out_scale)` (half away from zero) for `lo ≤ x ≤ hi`;
    /// inputs outside the table are an error.
    Table {
        func: TableFn,
        in_scale: i32,
        out_scale: i32,
        lo: i64,
        hi: i64,
    },
    /// `f` by linear interpolation between table points `2^step_bits` apart, from points kept
    /// [`INTERP_FINE_BITS`] finer than the output: with `x = q·2^b + r` (`0 ≤ r < 2^b`),
    /// `A = T(q·2^b)`, `B = T((q+1)·2^b)` (`T` the table entry at the finer scale),
    /// `y = floor((A·2^b + (B − A)·r + 2^(b+e−1)) / 2^(b+e))`; for `lo ≤ x ≤ hi`.
    Interp {
        func: TableFn,
        in_scale: i32,
        out_scale: i32,
        lo: i64,
        hi: i64,
        step_bits: u32,
    },
    /// Sum over each window (padding contributes nothing); input `[N, C, *spatial]`.
    SumPool {
        kernel: Vec<usize>,
        strides: Vec<usize>,
        pads_begin: Vec<usize>,
    },
    /// Max over the in-bounds elements of each window.
    MaxPool {
        kernel: Vec<usize>,
        strides: Vec<usize>,
        pads_begin: Vec<usize>,
        dilations: Vec<usize>,
    },
    /// Sum over `axes`.
    ReduceSum {
        axes: Vec<usize>,
        keepdims: bool,
    },
    /// Maximum (or with `min`, minimum) over `axes`.
    ReduceMax {
        axes: Vec<usize>,
        keepdims: bool,
        min: bool,
    },
    /// Pure rewiring: same data, new shape.
    Reshape,
    /// Pure rewiring: output axis i is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// Pure rewiring: inputs joined along `axis`.
    Concat {
        axis: usize,
    },
    /// `one` where `x + offset ≥ 0`, else 0 (comparisons; booleans are 0.0 / 1.0).
    Step {
        offset: i64,
        one: i64,
    },
    /// Product of two runtime tensors: `batch` products `[m, k] × [k, n]` over the leading axes
    /// (an operand with a single matrix is used for every batch); the scale is the sum of the
    /// operands'.
    MatMul {
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
    },
    /// Pure rewiring: output element i is input element `index[i]`, or `fill` where the index is
    /// negative (Pad, Slice, Gather, Resize, Tile, Expand).
    Gather {
        index: Vec<i64>,
        fill: i64,
    },
}

impl QOp {
    /// The parameter tensors the op carries (weights, biases, constants), in the weights
    /// digest's order, each with its kind. Slopes, scales, table ranges and padding values are
    /// the architecture and stay out. The match is exhaustive on purpose: a new op that carries
    /// integers the proof must hide has to be named here, or hashed weights would leave them in
    /// the circuit and `redact` would ship them.
    pub fn params(&self) -> Vec<(&'static str, &Vec<i64>)> {
        match self {
            QOp::Linear { weight, bias, .. } | QOp::Conv { weight, bias, .. } => {
                std::iter::once(("weight", weight))
                    .chain(bias.as_ref().map(|b| ("bias", b)))
                    .collect()
            }
            QOp::Const { data } => vec![("constant", data)],
            QOp::Input { .. }
            | QOp::Add
            | QOp::Sub
            | QOp::Mul
            | QOp::ShiftLeft { .. }
            | QOp::Rescale { .. }
            | QOp::Relu
            | QOp::LeakyRelu { .. }
            | QOp::Table { .. }
            | QOp::Interp { .. }
            | QOp::SumPool { .. }
            | QOp::MaxPool { .. }
            | QOp::ReduceSum { .. }
            | QOp::ReduceMax { .. }
            | QOp::Reshape
            | QOp::Transpose { .. }
            | QOp::Concat { .. }
            | QOp::Step { .. }
            | QOp::MatMul { .. }
            | QOp::Gather { .. } => vec![],
        }
    }

    /// [`QOp::params`], to change (redaction, tests).
    pub fn params_mut(&mut self) -> Vec<&mut Vec<i64>> {
        match self {
            QOp::Linear { weight, bias, .. } | QOp::Conv { weight, bias, .. } => {
                std::iter::once(weight).chain(bias.as_mut()).collect()
            }
            QOp::Const { data } => vec![data],
            QOp::Input { .. }
            | QOp::Add
            | QOp::Sub
            | QOp::Mul
            | QOp::ShiftLeft { .. }
            | QOp::Rescale { .. }
            | QOp::Relu
            | QOp::LeakyRelu { .. }
            | QOp::Table { .. }
            | QOp::Interp { .. }
            | QOp::SumPool { .. }
            | QOp::MaxPool { .. }
            | QOp::ReduceSum { .. }
            | QOp::ReduceMax { .. }
            | QOp::Reshape
            | QOp::Transpose { .. }
            | QOp::Concat { .. }
            | QOp::Step { .. }
            | QOp::MatMul { .. }
            | QOp::Gather { .. } => vec![],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            QOp::Input { .. } => "input",
            QOp::Const { .. } => "const",
            QOp::Linear { .. } => "linear",
            QOp::Conv { .. } => "conv",
            QOp::Add => "add",
            QOp::Sub => "sub",
            QOp::Mul => "mul",
            QOp::ShiftLeft { .. } => "shift_left",
            QOp::Rescale { .. } => "rescale",
            QOp::Relu => "relu",
            QOp::LeakyRelu { .. } => "leaky_relu",
            QOp::Table { .. } => "table",
            QOp::Interp { .. } => "interp",
            QOp::SumPool { .. } => "sum_pool",
            QOp::MaxPool { .. } => "max_pool",
            QOp::ReduceSum { .. } => "reduce_sum",
            QOp::ReduceMax { min: false, .. } => "reduce_max",
            QOp::ReduceMax { min: true, .. } => "reduce_min",
            QOp::Reshape => "reshape",
            QOp::Transpose { .. } => "transpose",
            QOp::Concat { .. } => "concat",
            QOp::Gather { .. } => "gather",
            QOp::MatMul { .. } => "matmul",
            QOp::Step { .. } => "step",
        }
    }
}

/// A tensor of the quantized graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QValue {
    pub name: String,
    pub shape: Vec<usize>,
    /// Fixed-point scale: the integer `q` stands for `q / 2^scale`.
    pub scale: i32,
    /// The ONNX tensor this value is, when it is one.
    pub onnx: Option<String>,
    /// Smallest and largest integer seen on the calibration input.
    pub range: (i64, i64),
}

impl QValue {
    /// Signed bits needed for the calibrated range.
    pub fn bits(&self) -> u32 {
        signed_bits(self.range.0.unsigned_abs().max(self.range.1.unsigned_abs()))
    }
}

/// Signed bits needed to hold magnitudes up to `m` (sign included).
pub fn signed_bits(m: u64) -> u32 {
    64 - m.leading_zeros() + 1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QNode {
    /// Unique name: the ONNX node it comes from, then the op.
    pub name: String,
    /// The ONNX node (or graph input) this op was lowered from.
    pub origin: String,
    #[serde(flatten)]
    pub op: QOp,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// The quantized model: a list of integer ops in evaluation order. This is `quantized.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizedModel {
    pub format: u32,
    /// sha256 of the ONNX file this was made from.
    pub source_sha256: String,
    pub config: QuantConfig,
    /// The activation scale chosen.
    pub scale: u32,
    pub rounding: String,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub values: Vec<QValue>,
    pub nodes: Vec<QNode>,
    /// A redacted copy (for a verifier of a receipt with hashed weights): every weight, bias and
    /// constant is zero, and this lists each parameter tensor's range-checked width, which the
    /// circuit depends on (see `circuit::commit::redact`). Absent in a full model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<Vec<u32>>,
}

/// Round half away from zero, as f64::round; None when the result does not fit in i64.
fn round_to_i64(x: f64) -> Option<i64> {
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

fn to_i64(v: i128, what: &str) -> std::result::Result<i64, String> {
    i64::try_from(v).map_err(|_| format!("{what} overflows 64-bit integers ({v}): lower the scale"))
}

/// Output spatial size of a pooling/conv window sweep.
fn window_out(
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
        } => pooling::eval_sum_pool(x, out_shape, kernel, st, pads_begin)?,
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
        QOp::MatMul { batch, m, k, n } => dense::eval_matmul(inputs, out_shape, batch, m, k, n)?,
        QOp::Step { offset, one } => arithmetic::eval_step(x, offset, one)?,
        QOp::Gather { index, fill } => indexing::eval_gather(x, out_shape, index, fill)?,
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
const MAX_WINDOW_PARAM: usize = 1 << 20;

/// The window parameter lists of a window op (none for other ops).
fn window_params(op: &QOp) -> Vec<&Vec<usize>> {
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
        } => vec![kernel, strides, pads_begin],
        QOp::Input { .. }
        | QOp::Const { .. }
        | QOp::Linear { .. }
        | QOp::Add
        | QOp::Sub
        | QOp::Mul
        | QOp::ShiftLeft { .. }
        | QOp::Rescale { .. }
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
        | QOp::Gather { .. } => vec![],
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
fn pool(
    x: &Tensor<i64>,
    out_shape: &[usize],
    kernel: &[usize],
    st: &[usize],
    pads_begin: &[usize],
    dilations: Option<&[usize]>,
    init: i128,
    f: impl Fn(i128, i64) -> i128,
) -> std::result::Result<Tensor<i64>, String> {
    let (batch, ch) = (x.shape[0], x.shape[1]);
    let win = Window::new(&x.shape, st, pads_begin, dilations);
    let mut data = Vec::with_capacity(numel(out_shape));
    for b in 0..batch {
        for c in 0..ch {
            let mut res = Ok(());
            for_each_index(&out_shape[2..], |p| {
                let mut acc = init;
                let mut any = false;
                for_each_index(kernel, |kk| {
                    let Some(off) = win.tap(b, c, p, kk) else {
                        return;
                    };
                    acc = f(acc, x.data[off]);
                    any = true;
                });
                if !any {
                    res = Err("a pooling window covers only padding".to_string());
                }
                match to_i64(acc, "a pooled sum") {
                    Ok(v) => data.push(v),
                    Err(e) => res = Err(e),
                }
            });
            res?;
        }
    }
    Ok(Tensor::new(out_shape.to_vec(), data))
}

fn concat<T: Clone>(inputs: &[&Tensor<T>], axis: usize) -> Tensor<T> {
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

impl QuantizedModel {
    /// Quantize float inputs at the input values' scales, checking the activation budget.
    pub fn quantize_inputs(
        &self,
        inputs: &[Tensor<f64>],
        input_names: &[String],
    ) -> Result<Vec<Tensor<i64>>> {
        let limit = 1i64 << (self.config.activation_bits - 1);
        let mut out = vec![];
        for (i, &v) in self.inputs.iter().enumerate() {
            let val = &self.values[v];
            let t = &inputs[i];
            let f = 2f64.powi(val.scale);
            let mut data = Vec::with_capacity(t.len());
            for (j, &x) in t.data.iter().enumerate() {
                match round_to_i64(x * f) {
                    Some(q) if q.unsigned_abs() < limit.unsigned_abs() => data.push(q),
                    _ => {
                        return Err(Error::invalid(
                            format!(
                                "input `{}`",
                                input_names.get(i).cloned().unwrap_or_default()
                            ),
                            format!(
                                "element {j} = {x} is too large for scale {} (|x·2^{}| must stay below 2^{}); choose a smaller --scale",
                                val.scale,
                                val.scale,
                                self.config.activation_bits - 1
                            ),
                        ));
                    }
                }
            }
            out.push(Tensor::new(t.shape.clone(), data));
        }
        Ok(out)
    }

    /// Run the integer evaluator: the value of every tensor, by value id.
    pub fn evaluate(&self, inputs: &[Tensor<i64>]) -> Result<Vec<Tensor<i64>>> {
        let mut vals: Vec<Option<Tensor<i64>>> = vec![None; self.values.len()];
        for node in &self.nodes {
            let out_info = &self.values[node.output];
            let t = if let QOp::Input { index } = node.op {
                inputs
                    .get(index)
                    .cloned()
                    .ok_or_else(|| Error::invalid(&node.name, "missing input"))?
            } else {
                let args: Vec<&Tensor<i64>> = node
                    .inputs
                    .iter()
                    .map(|&i| {
                        vals[i].as_ref().ok_or_else(|| {
                            Error::invalid(
                                &node.name,
                                format!("value {i} used before it is computed"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                eval_op(&node.op, &args, &out_info.shape)
                    .and_then(|t| {
                        self.check_circuit_ranges(&node.op, &args, &t)?;
                        Ok(t)
                    })
                    .map_err(|e| Error::invalid(format!("node `{}`", node.origin), e))?
            };
            vals[node.output] = Some(t);
        }
        vals.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| Error::invalid(&self.values[i].name, "value is never computed"))
            })
            .collect()
    }

    /// The range checks the circuit makes (`circuit::plan`), made here alike, so that the
    /// evaluator refuses exactly the inputs for which the circuit has no witness: rescale and
    /// interpolation outputs, ReLU and comparison inputs are signed `activation_bits` values,
    /// and a max or min lies within `2^activation_bits` of every element it is taken over.
    fn check_circuit_ranges(
        &self,
        op: &QOp,
        args: &[&Tensor<i64>],
        out: &Tensor<i64>,
    ) -> std::result::Result<(), String> {
        let bits = self.config.activation_bits;
        let half = 1i128 << (bits - 1);
        let signed = |what: &str, t: &Tensor<i64>, offset: i64| match t
            .data
            .iter()
            .map(|&v| v as i128 + offset as i128)
            .find(|v| *v < -half || *v >= half)
        {
            Some(v) => Err(format!(
                "{what} {v} is outside the {bits}-bit activation range the circuit checks: \
                 choose a smaller --scale"
            )),
            None => Ok(()),
        };
        let spread = |spreads: Vec<i128>| match spreads.into_iter().find(|&s| s >= 2 * half) {
            Some(s) => Err(format!(
                "a max or min is {s} away from an element it is taken over, more than the \
                 {bits}-bit range the circuit checks: choose a smaller --scale"
            )),
            None => Ok(()),
        };
        let x = args.first().copied();
        match op {
            QOp::Rescale { .. } | QOp::Interp { .. } => signed("output", out, 0),
            QOp::Relu | QOp::LeakyRelu { .. } => signed("input", x.ok_or("no input")?, 0),
            QOp::Step { offset, .. } => signed("input", x.ok_or("no input")?, *offset),
            QOp::ReduceMax { axes, .. } => {
                let x = x.ok_or("no input")?;
                let (map, outs) = reduction_map(&x.shape, axes);
                let mut lo = vec![i128::MAX; outs];
                let mut hi = vec![i128::MIN; outs];
                for (i, &v) in x.data.iter().enumerate() {
                    lo[map[i]] = lo[map[i]].min(v as i128);
                    hi[map[i]] = hi[map[i]].max(v as i128);
                }
                spread(hi.iter().zip(&lo).map(|(h, l)| h - l).collect())
            }
            QOp::MaxPool {
                kernel,
                strides,
                pads_begin,
                dilations,
            } => {
                let x = x.ok_or("no input")?;
                let lo = pool(
                    x,
                    &out.shape,
                    kernel,
                    strides,
                    pads_begin,
                    Some(dilations),
                    i128::MAX,
                    |a, v| a.min(v as i128),
                )?;
                spread(
                    out.data
                        .iter()
                        .zip(&lo.data)
                        .map(|(&m, &l)| m as i128 - l as i128)
                        .collect(),
                )
            }
            // No range check in the circuit: the evaluator's 64-bit arithmetic is the same.
            QOp::Input { .. }
            | QOp::Const { .. }
            | QOp::Linear { .. }
            | QOp::Conv { .. }
            | QOp::Add
            | QOp::Sub
            | QOp::Mul
            | QOp::ShiftLeft { .. }
            | QOp::Table { .. }
            | QOp::SumPool { .. }
            | QOp::ReduceSum { .. }
            | QOp::Reshape
            | QOp::Transpose { .. }
            | QOp::Concat { .. }
            | QOp::Gather { .. }
            | QOp::MatMul { .. } => Ok(()),
        }
    }

    /// The calibration budget: every tensor between ONNX nodes fits the activation bits. This
    /// is the prover's guidance for choosing a scale, not part of the specification: the
    /// evaluator computes past it exactly as the circuit does, and refuses only what the
    /// circuit's own range checks and tables refuse.
    pub fn check_activation_budget(&self, vals: &[Tensor<i64>]) -> Result<()> {
        let limit = 1i64 << (self.config.activation_bits - 1);
        for node in &self.nodes {
            let out_info = &self.values[node.output];
            if out_info.onnx.is_some()
                && let Some(bad) = vals[node.output]
                    .data
                    .iter()
                    .find(|v| v.unsigned_abs() >= limit.unsigned_abs())
            {
                return Err(Error::invalid(
                    format!("node `{}`", node.origin),
                    format!(
                        "value {bad} (= {:.4}) needs more than the {} activation bits at scale {}: choose a smaller --scale",
                        *bad as f64 / 2f64.powi(out_info.scale),
                        self.config.activation_bits,
                        out_info.scale
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Check the structure a quantized.json read from disk must have before the evaluator or
    /// the circuit compiler index into it: value ids in range and computed before use, and
    /// every op's parameters sized for its shapes. Err names the node and the problem.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let nv = self.values.len();
        let in_range = |v: usize| v < nv;
        if let Some(v) = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .find(|&&v| !in_range(v))
        {
            return Err(format!("value id {v} in inputs/outputs is out of range"));
        }
        // The planner and the evaluator must read one graph: each value has one producer,
        // graph input i is the value of the one `Input { index: i }` node, operands come first.
        let mut seen_input = vec![false; nv];
        if let Some(v) = self
            .inputs
            .iter()
            .find(|&&v| std::mem::replace(&mut seen_input[v], true))
        {
            return Err(format!("value {v} is listed twice in inputs"));
        }
        let mut input_nodes = vec![false; self.inputs.len()];
        let mut ready = vec![false; nv];
        for n in &self.nodes {
            let bad = |msg: String| Err(format!("node `{}`: {msg}", n.name));
            if !in_range(n.output) || n.inputs.iter().any(|&i| !in_range(i)) {
                return bad("a value id is out of range".into());
            }
            if ready[n.output] {
                return bad(format!("value {} has a second producer", n.output));
            }
            if let Some(&i) = n.inputs.iter().find(|&&i| !ready[i]) {
                return bad(format!("value {i} is used before it is computed"));
            }
            if let QOp::Input { index } = n.op {
                match input_nodes.get_mut(index) {
                    Some(seen) if !*seen && self.inputs[index] == n.output => *seen = true,
                    _ => {
                        return bad(format!(
                            "input index {index} does not name graph input {index} (value {}) exactly once",
                            n.output
                        ));
                    }
                }
            }
            if MAX_WINDOW_PARAM
                < window_params(&n.op)
                    .into_iter()
                    .flatten()
                    .copied()
                    .max()
                    .unwrap_or(0)
            {
                return bad(format!("a window parameter exceeds {MAX_WINDOW_PARAM}"));
            }
            let shape = |v: usize| self.values[v].shape.as_slice();
            let out = shape(n.output);
            let arity = match &n.op {
                QOp::Input { .. } | QOp::Const { .. } => 0,
                QOp::Add | QOp::Sub | QOp::Mul | QOp::MatMul { .. } => 2,
                QOp::Concat { .. } => n.inputs.len().max(1),
                QOp::Linear { .. }
                | QOp::Conv { .. }
                | QOp::ShiftLeft { .. }
                | QOp::Rescale { .. }
                | QOp::Relu
                | QOp::LeakyRelu { .. }
                | QOp::Table { .. }
                | QOp::Interp { .. }
                | QOp::SumPool { .. }
                | QOp::MaxPool { .. }
                | QOp::ReduceSum { .. }
                | QOp::ReduceMax { .. }
                | QOp::Reshape
                | QOp::Transpose { .. }
                | QOp::Step { .. }
                | QOp::Gather { .. } => 1,
            };
            if n.inputs.len() != arity {
                return bad(format!("{} inputs, expected {arity}", n.inputs.len()));
            }
            let x = n.inputs.first().map(|&i| shape(i)).unwrap_or(&[]);
            // A window op on [N, C, *spatial]: one entry per spatial axis in each parameter list.
            let windowed = |lists: &[&Vec<usize>]| {
                x.len() >= 3 && out.len() == x.len() && lists.iter().all(|l| l.len() == x.len() - 2)
            };
            let ok = match &n.op {
                QOp::Input { index } => *index < self.inputs.len(),
                QOp::Const { data } => data.len() == numel(out),
                QOp::Linear {
                    k,
                    n: m,
                    weight,
                    bias,
                } => {
                    *k > 0
                        && weight.len() == k * m
                        && bias.as_ref().is_none_or(|b| b.len() == *m)
                        && numel(x).is_multiple_of(*k)
                        && numel(out) == numel(x) / k * m
                }
                QOp::Conv {
                    out_channels,
                    kernel,
                    strides,
                    pads_begin,
                    dilations,
                    weight,
                    bias,
                } => {
                    windowed(&[kernel, strides, pads_begin, dilations])
                        && weight.len() == out_channels * x[1] * numel(kernel)
                        && bias.as_ref().is_none_or(|b| b.len() == *out_channels)
                        && out[0] == x[0]
                        && out[1] == *out_channels
                }
                QOp::SumPool {
                    kernel,
                    strides,
                    pads_begin,
                } => windowed(&[kernel, strides, pads_begin]) && out[..2] == x[..2],
                QOp::MaxPool {
                    kernel,
                    strides,
                    pads_begin,
                    dilations,
                } => {
                    windowed(&[kernel, strides, pads_begin, dilations])
                        && out[..2] == x[..2]
                        && Window::new(x, strides, pads_begin, Some(dilations))
                            .every_window_reads(&out[2..], kernel)
                }
                QOp::Add | QOp::Sub | QOp::Mul => n
                    .inputs
                    .iter()
                    .all(|&i| broadcast_shape(shape(i), out).as_deref() == Some(out)),
                QOp::ShiftLeft { .. }
                | QOp::Relu
                | QOp::LeakyRelu { .. }
                | QOp::Table { .. }
                | QOp::Interp { .. }
                | QOp::Step { .. } => x == out,
                QOp::Rescale { divisor } => {
                    x == out && (divisor.len() == 1 || divisor.len() == numel(out))
                }
                QOp::ReduceSum { axes, .. } => axes.iter().all(|&a| a < x.len()),
                // A max over nothing has no value.
                QOp::ReduceMax { axes, .. } => axes.iter().all(|&a| a < x.len() && x[a] > 0),
                QOp::Reshape => numel(x) == numel(out),
                QOp::Transpose { perm } => {
                    let mut p = perm.clone();
                    p.sort_unstable();
                    p == (0..x.len()).collect::<Vec<_>>()
                        && out.len() == x.len()
                        && perm.iter().enumerate().all(|(i, &d)| out[i] == x[d])
                }
                QOp::Gather { index, .. } => {
                    index.len() == numel(out) && index.iter().all(|&i| i < numel(x) as i64)
                }
                QOp::MatMul {
                    batch,
                    m,
                    k,
                    n: cols,
                } => {
                    let one_or = |len: usize, per: usize| len == per || len == batch * per;
                    one_or(numel(x), m * k)
                        && n.inputs
                            .get(1)
                            .is_some_and(|&b| one_or(numel(shape(b)), k * cols))
                        && numel(out) == batch * m * cols
                }
                QOp::Concat { axis } => {
                    *axis < out.len()
                        && n.inputs.iter().all(|&i| shape(i).len() == out.len())
                        && n.inputs.iter().map(|&i| numel(shape(i))).sum::<usize>() == numel(out)
                }
            };
            if !ok {
                return bad(format!(
                    "parameters do not fit the shapes ({} → {:?})",
                    n.op.name(),
                    out
                ));
            }
            ready[n.output] = true;
        }
        if let Some(v) = self.outputs.iter().find(|&&v| !ready[v]) {
            return Err(format!("output value {v} is never computed"));
        }
        if let Some(i) = input_nodes.iter().position(|&seen| !seen) {
            return Err(format!("graph input {i} has no input node"));
        }
        Ok(())
    }

    pub fn dequantize(&self, value: usize, t: &Tensor<i64>) -> Vec<f64> {
        let f = 2f64.powi(-self.values[value].scale);
        t.data.iter().map(|&q| q as f64 * f).collect()
    }

    /// Number of multiply-adds and table lookups, a first measure of circuit cost.
    pub fn op_counts(&self) -> HashMap<&'static str, usize> {
        let mut m = HashMap::new();
        for n in &self.nodes {
            *m.entry(n.op.name()).or_insert(0) += 1;
        }
        m
    }
}

// ----------------------------------------------------------------------------------------------
// Lowering: ONNX graph -> quantized graph, calibrated on one float run.

/// A tensor during lowering: a value of the quantized graph, or a float constant not yet
/// quantized (it gets a scale where it is used).
#[derive(Clone, Debug)]
enum Operand {
    Value(usize),
    Const(Tensor<f64>),
}

struct Lowering<'a> {
    model: &'a Model,
    cfg: QuantConfig,
    s: i32,
    values: Vec<QValue>,
    nodes: Vec<QNode>,
    /// Integer value of each quantized value on the calibration input.
    ints: Vec<Tensor<i64>>,
    env: HashMap<String, Operand>,
    origin: String,
    origin_type: String,
    /// Further outputs of the node being lowered (an LSTM's last hidden and cell states), bound
    /// after its first.
    extra_outputs: Vec<(String, Operand)>,
}

/// A window op's strides or dilations: ONNX's default of 1 per spatial axis when absent.
fn or_ones(v: &[usize], spatial: usize) -> Vec<usize> {
    if v.is_empty() {
        vec![1; spatial]
    } else {
        v.to_vec()
    }
}

/// The name of input `i` of `node`, when it is given (ONNX marks an absent input with "").
fn input(node: &Node, i: usize) -> Option<String> {
    node.inputs.get(i).filter(|s| !s.is_empty()).cloned()
}

/// See `Lowering::axis_rows`.
struct AxisRows {
    axis: usize,
    n: usize,
    inner: usize,
    rows: usize,
}

impl AxisRows {
    fn pos(&self, row: usize, j: usize) -> i64 {
        ((row / self.inner * self.n + j) * self.inner + row % self.inner) as i64
    }
}

fn axis_index(axis: i64, rank: usize) -> std::result::Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank.max(1) {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// The largest scale at which every |x| fits in `bits` signed bits, capped at `cap`.
fn fit_scale(max_abs: f64, bits: u32, cap: u32) -> Option<i32> {
    if max_abs == 0.0 {
        return Some(cap as i32);
    }
    let limit = ((1u64 << (bits - 1)) - 1) as f64;
    let s = (limit / max_abs).log2().floor();
    if s < 0.0 {
        None
    } else {
        Some((s as i32).min(cap as i32))
    }
}

impl<'a> Lowering<'a> {
    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Unsupported {
            file: self.model.file(),
            nodes: vec![Unsupported {
                node: self.origin.clone(),
                op_type: self.origin_type.clone(),
                reason: reason.into(),
            }],
        }
    }

    /// Add an op, evaluate it on the calibration input, and return its value id.
    fn push(
        &mut self,
        op: QOp,
        inputs: Vec<usize>,
        shape: Vec<usize>,
        scale: i32,
    ) -> Result<usize> {
        let args: Vec<&Tensor<i64>> = inputs.iter().map(|&i| &self.ints[i]).collect();
        let t = eval_op(&op, &args, &shape).map_err(|e| {
            Error::invalid(format!("{}: node `{}`", self.model.file(), self.origin), e)
        })?;
        let id = self.values.len();
        let range = (
            t.data.iter().copied().min().unwrap_or(0),
            t.data.iter().copied().max().unwrap_or(0),
        );
        let name = format!("{}/{}#{}", self.origin, op.name(), id);
        self.values.push(QValue {
            name: name.clone(),
            shape,
            scale,
            onnx: None,
            range,
        });
        self.nodes.push(QNode {
            name,
            origin: self.origin.clone(),
            op,
            inputs,
            output: id,
        });
        self.ints.push(t);
        Ok(id)
    }

    fn shape(&self, v: usize) -> Vec<usize> {
        self.values[v].shape.clone()
    }

    fn scale_of(&self, v: usize) -> i32 {
        self.values[v].scale
    }

    /// Bring a value to `target` scale: a rescale down or a shift up.
    fn rescale_to(&mut self, v: usize, target: i32) -> Result<usize> {
        let s = self.scale_of(v);
        let shape = self.shape(v);
        if s > target {
            self.push(
                QOp::Rescale {
                    divisor: vec![1u64 << (s - target)],
                },
                vec![v],
                shape,
                target,
            )
        } else if s < target {
            self.push(
                QOp::ShiftLeft {
                    bits: (target - s) as u32,
                },
                vec![v],
                shape,
                target,
            )
        } else {
            Ok(v)
        }
    }

    /// The scale for a constant: the largest that fits `param_bits`.
    fn param_scale(&self, t: &Tensor<f64>) -> i32 {
        let m = t.data.iter().fold(0f64, |a, &x| a.max(x.abs()));
        fit_scale(m, self.cfg.param_bits, self.cfg.max_param_scale).unwrap_or(0)
    }

    fn quant(&self, t: &Tensor<f64>, scale: i32) -> Result<Vec<i64>> {
        let f = 2f64.powi(scale);
        t.data
            .iter()
            .map(|&x| {
                round_to_i64(x * f).ok_or_else(|| {
                    self.fail(format!(
                        "constant {x} does not fit 64-bit integers at scale {scale}"
                    ))
                })
            })
            .collect()
    }

    fn const_value(&mut self, t: &Tensor<f64>, scale: i32) -> Result<usize> {
        let data = self.quant(t, scale)?;
        self.push(QOp::Const { data }, vec![], t.shape.clone(), scale)
    }

    fn operand(&self, name: &str) -> Result<Operand> {
        self.env.get(name).cloned().ok_or_else(|| {
            self.fail(format!(
                "input `{name}` is not produced by any earlier node"
            ))
        })
    }

    /// An operand as a value; constants are quantized at the activation scale.
    fn value(&mut self, name: &str) -> Result<usize> {
        match self.operand(name)? {
            Operand::Value(v) => Ok(v),
            Operand::Const(t) => {
                let s = self.s;
                self.const_value(&t, s)
            }
        }
    }

    fn constant(&self, name: &str) -> Result<Tensor<f64>> {
        match self.operand(name)? {
            Operand::Const(t) => Ok(t),
            Operand::Value(_) => Err(self.fail(format!("input `{name}` must be a constant"))),
        }
    }

    /// The value of an intermediate result of a composite op (`what`), which a runtime input
    /// makes runtime.
    fn runtime_value(&self, o: Operand, what: &str) -> Result<usize> {
        match o {
            Operand::Value(v) => Ok(v),
            Operand::Const(_) => Err(self.fail(format!("{what} of a constant"))),
        }
    }

    /// A constant input read as integers (pads, starts, repeats, shapes).
    fn constant_ints(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self
            .constant(name)?
            .data
            .iter()
            .map(|&v| v as i64)
            .collect())
    }

    /// Rewiring by a flat index map (negative: `fill`): folded on constants, a `Gather` node on
    /// values (no rows in the circuit).
    fn rewire(
        &mut self,
        arg: &str,
        out: Vec<usize>,
        index: Vec<i64>,
        fill: f64,
    ) -> Result<Operand> {
        match self.operand(arg)? {
            Operand::Const(t) => {
                let data = index
                    .iter()
                    .map(|&i| if i < 0 { fill } else { t.data[i as usize] })
                    .collect();
                Ok(Operand::Const(Tensor::new(out, data)))
            }
            Operand::Value(x) => {
                let sc = self.scale_of(x);
                let fill = (fill * 2f64.powi(sc)).round();
                if !fill.is_finite() || fill.abs() >= 2f64.powi(62) {
                    return Err(self.fail(format!("fill value {fill} does not fit")));
                }
                let op = QOp::Gather {
                    index,
                    fill: fill as i64,
                };
                Ok(Operand::Value(self.push(op, vec![x], out, sc)?))
            }
        }
    }

    /// Rewiring of a value by a flat index map (no rows in the circuit).
    fn rewire_value(&mut self, x: usize, out: Vec<usize>, index: Vec<i64>) -> Result<usize> {
        let sc = self.scale_of(x);
        self.push(QOp::Gather { index, fill: 0 }, vec![x], out, sc)
    }

    /// An element-wise product or sum of two values, at the activation scale.
    fn combine(&mut self, op: Op, a: usize, b: usize) -> Result<usize> {
        let y = self.binary(&op, Operand::Value(a), Operand::Value(b))?;
        let y = self.runtime_value(y, "a recurrent layer's state")?;
        self.rescale_to(y, self.s)
    }

    fn shape_of(&self, name: &str) -> Result<Vec<usize>> {
        Ok(match self.operand(name)? {
            Operand::Value(v) => self.shape(v),
            Operand::Const(t) => t.shape,
        })
    }

    fn lower(&mut self, node: &Node, fold_bn: Option<&Node>) -> Result<()> {
        self.origin = match fold_bn {
            Some(bn) => format!("{}+{}", node.name, bn.name),
            None => node.name.clone(),
        };
        self.origin_type = node.op_type.clone();
        let out_name = fold_bn
            .map(|bn| bn.outputs[0].clone())
            .unwrap_or_else(|| node.outputs[0].clone());
        let result = self.lower_op(node, fold_bn)?;
        let extra = std::mem::take(&mut self.extra_outputs);
        for (name, result) in std::iter::once((out_name, result)).chain(extra) {
            let result = match result {
                Operand::Value(v) => {
                    let v = self.rescale_to(v, self.s)?;
                    if self.values[v].onnx.is_none() {
                        self.values[v].onnx = Some(name.clone());
                    }
                    Operand::Value(v)
                }
                c => c,
            };
            self.env.insert(name, result);
        }
        Ok(())
    }

    /// One ONNX node, lowered by its op's family (`activations`, `arithmetic`, `dense`,
    /// `indexing`, `normalization`, `pooling`, `reductions`, `shape`; recurrent ops below).
    fn lower_op(&mut self, node: &Node, fold_bn: Option<&Node>) -> Result<Operand> {
        let arg0 = input(node, 0).ok_or_else(|| self.fail("missing first input"))?;
        match &node.op {
            Op::Identity => self.operand(&arg0),
            Op::Constant => unreachable!("constants are bound before lowering"),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => self.lower_gemm(node, fold_bn, arg0, alpha, beta, trans_a, trans_b),
            Op::MatMul => self.lower_matmul(node, fold_bn, arg0),
            Op::Conv {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                ..
            } => self.lower_conv(node, fold_bn, arg0, kernel_shape, st, pads, dilations),
            Op::ConvTranspose {
                strides: st,
                pads,
                dilations,
                output_padding,
            } => self.lower_conv_transpose(node, arg0, st, pads, dilations, output_padding),
            Op::Add | Op::Sub | Op::Mul => self.lower_add_sub_mul(node, arg0),
            Op::Relu => self.lower_relu(arg0),
            Op::LeakyRelu { alpha } => self.lower_leaky_relu(arg0, alpha),
            Op::ConstantOfShape { value } => self.lower_constant_of_shape(arg0, value),
            Op::Recurrent { lstm, hidden } => self.recurrent(node, *lstm, *hidden),
            Op::ArgMax {
                axis,
                keepdims,
                last,
                min,
            } => self.lower_arg_max(arg0, axis, keepdims, last, min),
            Op::OneHot { axis } => self.lower_one_hot(node, arg0, axis),
            Op::Truncate => self.lower_truncate(arg0),
            Op::GatherElements { axis } => self.lower_gather_elements(node, arg0, axis),
            Op::TopK { axis, largest, k } => self.lower_top_k(node, arg0, axis, largest, k),
            Op::Sigmoid | Op::Tanh => self.lower_sigmoid_tanh(node, arg0),
            Op::Unary(func) => self.lower_unary(arg0, func),
            Op::Compare { less, or_equal } => self.lower_compare(node, arg0, less, or_equal),
            Op::Not => self.lower_not(arg0),
            Op::Where => self.lower_where(node, arg0),
            Op::Neg => self.lower_neg(arg0),
            Op::Normalization {
                axis,
                epsilon,
                instance,
            } => self.lower_normalization(node, arg0, axis, epsilon, instance),
            Op::PRelu => self.lower_prelu(node, arg0),
            Op::Softmax { axis, flatten } => self.lower_softmax(arg0, axis, flatten),
            Op::Pow => self.lower_pow(node, arg0),
            Op::Div => self.lower_div(node, arg0),
            Op::AveragePool {
                kernel_shape,
                strides: st,
                pads,
                count_include_pad,
            } => self.lower_average_pool(arg0, kernel_shape, st, pads, count_include_pad),
            Op::MaxPool {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                ceil_mode,
            } => self.lower_max_pool(arg0, kernel_shape, st, pads, dilations, ceil_mode),
            Op::GlobalAveragePool => self.lower_global_average_pool(arg0),
            Op::Pad { pads, value } => self.lower_pad(node, arg0, pads, value),
            Op::Slice { starts, ends, axes } => self.lower_slice(node, arg0, starts, ends, axes),
            Op::Gather { axis } => self.lower_gather(node, arg0, axis),
            Op::Resize {
                coordinate_mode,
                nearest_mode,
                scales,
            } => self.lower_resize(node, arg0, coordinate_mode, nearest_mode, scales),
            Op::Shape => self.lower_shape(arg0),
            Op::Squeeze { axes, unsqueeze } => self.lower_squeeze(node, arg0, axes, unsqueeze),
            Op::Tile => self.lower_tile(node, arg0),
            Op::Expand => self.lower_expand(node, arg0),
            Op::ReduceMean {
                axes,
                keepdims,
                noop_with_empty_axes,
            }
            | Op::ReduceSum {
                axes,
                keepdims,
                noop_with_empty_axes,
            }
            | Op::ReduceMax {
                axes,
                keepdims,
                noop_with_empty_axes,
                ..
            } => self.lower_reduce(node, arg0, axes, keepdims, noop_with_empty_axes),
            Op::Flatten { axis } => self.lower_flatten(arg0, axis),
            Op::Reshape { allowzero } => self.lower_reshape(node, arg0, allowzero),
            Op::Transpose { perm } => self.lower_transpose(arg0, perm),
            Op::Concat { axis } => self.lower_concat(node, axis),
            Op::BatchNormalization { .. } => self.lower_batch_normalization(node, arg0),
            Op::Unsupported { reason } => Err(self.fail(reason.clone())),
        }
    }

    fn reshape(&mut self, name: &str, target: Vec<usize>) -> Result<Operand> {
        match self.operand(name)? {
            Operand::Const(t) => {
                if numel(&target) != t.len() {
                    return Err(self.fail(format!("cannot reshape {:?} to {:?}", t.shape, target)));
                }
                Ok(Operand::Const(t.reshaped(target)))
            }
            Operand::Value(x) => {
                if numel(&target) != numel(&self.shape(x)) {
                    return Err(self.fail(format!(
                        "cannot reshape {:?} to {:?}",
                        self.shape(x),
                        target
                    )));
                }
                let sc = self.scale_of(x);
                Ok(Operand::Value(self.push(
                    QOp::Reshape,
                    vec![x],
                    target,
                    sc,
                )?))
            }
        }
    }

    fn binary(&mut self, op: &Op, a: Operand, b: Operand) -> Result<Operand> {
        let s = self.s;
        let check = |this: &Self, x: &[usize], y: &[usize]| {
            broadcast_shape(x, y)
                .ok_or_else(|| this.fail(format!("shapes {x:?} and {y:?} do not broadcast")))
        };
        match (a, b) {
            (Operand::Const(x), Operand::Const(y)) => {
                check(self, &x.shape, &y.shape)?;
                let r = zip_broadcast(&x, &y, |p, q| match op {
                    Op::Add => p + q,
                    Op::Sub => p - q,
                    _ => p * q,
                })
                .unwrap();
                Ok(Operand::Const(r))
            }
            (a, b) if *op == Op::Mul => {
                // One side constant: quantize it at its own scale; the product is rescaled later.
                let (x, other) = match (a, b) {
                    (Operand::Value(x), o) | (o, Operand::Value(x)) => (x, o),
                    _ => unreachable!(),
                };
                let y = match other {
                    Operand::Value(y) => y,
                    Operand::Const(c) => {
                        let sc = self.param_scale(&c);
                        self.const_value(&c, sc)?
                    }
                };
                let out = check(self, &self.shape(x), &self.shape(y))?;
                let sc = self.scale_of(x) + self.scale_of(y);
                Ok(Operand::Value(self.push(QOp::Mul, vec![x, y], out, sc)?))
            }
            (a, b) => {
                let target = [&a, &b]
                    .iter()
                    .map(|o| {
                        if let Operand::Value(v) = o {
                            self.scale_of(*v)
                        } else {
                            s
                        }
                    })
                    .max()
                    .unwrap();
                let mut ids = vec![];
                for o in [a, b] {
                    let v = match o {
                        Operand::Value(v) => v,
                        Operand::Const(c) => self.const_value(&c, target)?,
                    };
                    ids.push(self.rescale_to(v, target)?);
                }
                let out = check(self, &self.shape(ids[0]), &self.shape(ids[1]))?;
                let q = if *op == Op::Add { QOp::Add } else { QOp::Sub };
                Ok(Operand::Value(self.push(q, ids, out, target)?))
            }
        }
    }
}

/// For each element of `out` (row-major), the flat index into a tensor of shape `xs` of the
/// element it takes: `pick(axis, out index)` gives the input index on that axis, or None for a
/// fill element (-1).
fn index_map(
    xs: &[usize],
    out: &[usize],
    mut pick: impl FnMut(usize, usize) -> Option<usize>,
) -> Vec<i64> {
    let st = strides(xs);
    let mut index = Vec::with_capacity(numel(out));
    for_each_index(out, |o| {
        let mut off = 0i64;
        for (d, &od) in o.iter().enumerate() {
            match pick(d, od) {
                Some(i) if i < xs[d] => off += (i * st[d]) as i64,
                _ => {
                    off = -1;
                    break;
                }
            }
        }
        index.push(off);
    });
    index
}

/// Where batch `t` of a batched matrix product starts in each operand (of `a_len` and `b_len`
/// elements): an operand holding a single matrix is used for every batch.
pub fn matmul_offsets(
    t: usize,
    a_len: usize,
    b_len: usize,
    m: usize,
    k: usize,
    n: usize,
) -> (usize, usize) {
    let ao = if a_len == m * k { 0 } else { t * m * k };
    let bo = if b_len == k * n { 0 } else { t * k * n };
    (ao, bo)
}

/// The shape of a reduction over `axes`: those axes become 1, or go with `keepdims` false.
fn reduced_shape(xs: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    xs.iter()
        .enumerate()
        .filter(|&(d, _)| keepdims || !axes.contains(&d))
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect()
}

fn squeeze_leading(t: Tensor<f64>) -> Tensor<f64> {
    let mut shape = t.shape.clone();
    while shape.len() > 2 && shape[0] == 1 {
        shape.remove(0);
    }
    t.reshaped(shape)
}

fn float_matmul(a: &Tensor<f64>, b: &Tensor<f64>) -> Tensor<f64> {
    let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1]);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|l| a.data[i * k + l] * b.data[l * n + j]).sum();
        }
    }
    Tensor::new(vec![m, n], out)
}

/// ONNX Reshape's target: 0 copies the input dimension (unless allowzero), -1 is inferred.
fn reshape_target(
    input: &[usize],
    spec: &[f64],
    allowzero: bool,
) -> std::result::Result<Vec<usize>, String> {
    let total = numel(input);
    let mut out = vec![];
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        let d = d as i64;
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *input
                    .get(i)
                    .ok_or("shape copies a dimension the input does not have")?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("invalid target shape {spec:?}")),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {spec:?}"));
        }
        out[i] = total / known;
    }
    if numel(&out) != total {
        return Err(format!("cannot reshape {input:?} to {spec:?}"));
    }
    Ok(out)
}

/// For each Conv/Gemm node, the BatchNormalization that directly and solely consumes it, so the
/// two are compiled as one layer.
fn batchnorm_folds(model: &Model) -> HashMap<usize, usize> {
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in model.nodes.iter().enumerate() {
        for inp in &n.inputs {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let outputs: Vec<&str> = model.outputs.iter().map(|o| o.name.as_str()).collect();
    let mut folds = HashMap::new();
    for (i, n) in model.nodes.iter().enumerate() {
        if !matches!(n.op, Op::Conv { .. } | Op::Gemm { .. })
            || n.outputs.len() != 1
            || outputs.contains(&n.outputs[0].as_str())
        {
            continue;
        }
        if let Some(c) = consumers.get(n.outputs[0].as_str())
            && c.len() == 1
            && matches!(model.nodes[c[0]].op, Op::BatchNormalization { .. })
            && model.nodes[c[0]]
                .inputs
                .iter()
                .skip(1)
                .all(|x| model.is_constant(x))
        {
            folds.insert(i, c[0]);
        }
    }
    folds
}

/// Choose the activation scale from the float run: the largest (≤ max_scale) at which every
/// activation, with one bit of headroom, fits in `activation_bits`.
pub fn choose_scale(model: &Model, float: &FloatRun, cfg: &QuantConfig) -> Result<u32> {
    if let Some(s) = cfg.scale {
        return Ok(s);
    }
    let mut worst = (0f64, String::new());
    for n in &model.nodes {
        if matches!(n.op, Op::Constant) {
            continue;
        }
        for o in &n.outputs {
            if let Some(t) = float.values.get(o) {
                let m = t.data.iter().fold(0f64, |a, &x| a.max(x.abs()));
                if m > worst.0 {
                    worst = (m, o.clone());
                }
            }
        }
    }
    for i in &model.inputs {
        if let Some(t) = float.values.get(&i.name) {
            let m = t.data.iter().fold(0f64, |a, &x| a.max(x.abs()));
            if m > worst.0 {
                worst = (m, i.name.clone());
            }
        }
    }
    match fit_scale(worst.0 * 2.0, cfg.activation_bits, cfg.max_scale) {
        Some(s) => Ok(s as u32),
        None => Err(Error::invalid(
            model.file(),
            format!(
                "tensor `{}` reaches {:.4e}, too large for {} activation bits even at scale 0",
                worst.1, worst.0, cfg.activation_bits
            ),
        )),
    }
}

/// Quantize `model`, calibrated on `float` (a float run on the inputs `inputs`).
pub fn quantize(
    model: &Model,
    inputs: &[Tensor<f64>],
    float: &FloatRun,
    cfg: &QuantConfig,
) -> Result<QuantizedModel> {
    model.check_supported()?;
    let s = choose_scale(model, float, cfg)? as i32;
    let mut lw = Lowering {
        model,
        cfg: cfg.clone(),
        s,
        values: vec![],
        nodes: vec![],
        ints: vec![],
        env: HashMap::new(),
        origin: String::new(),
        origin_type: String::new(),
        extra_outputs: vec![],
    };
    for (name, t) in &model.constants {
        lw.env.insert(name.clone(), Operand::Const(t.clone()));
    }
    let mut skeleton = QuantizedModel {
        format: FORMAT_VERSION,
        source_sha256: model.sha256.clone(),
        config: cfg.clone(),
        scale: s as u32,
        rounding: "inputs and constants: round half away from zero; rescale: floor((x + floor(d/2)) / d), nearest with ties toward +inf".into(),
        inputs: vec![],
        outputs: vec![],
        values: vec![],
        nodes: vec![],
        redacted: None,
    };
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    let qin = {
        // Input values are quantized with the checks of the evaluator.
        skeleton.values = inputs
            .iter()
            .zip(&names)
            .map(|(t, n)| QValue {
                name: n.clone(),
                shape: t.shape.clone(),
                scale: s,
                onnx: Some(n.clone()),
                range: (0, 0),
            })
            .collect();
        skeleton.inputs = (0..inputs.len()).collect();
        skeleton.quantize_inputs(inputs, &names)?
    };
    for (i, (t, name)) in qin.into_iter().zip(&names).enumerate() {
        lw.origin = name.clone();
        lw.origin_type = "input".into();
        let id = lw.values.len();
        let range = (
            t.data.iter().copied().min().unwrap_or(0),
            t.data.iter().copied().max().unwrap_or(0),
        );
        lw.values.push(QValue {
            name: name.clone(),
            shape: t.shape.clone(),
            scale: s,
            onnx: Some(name.clone()),
            range,
        });
        lw.nodes.push(QNode {
            name: format!("{name}/input"),
            origin: name.clone(),
            op: QOp::Input { index: i },
            inputs: vec![],
            output: id,
        });
        lw.ints.push(t);
        lw.env.insert(name.clone(), Operand::Value(id));
    }
    let folds = batchnorm_folds(model);
    let folded: Vec<usize> = folds.values().copied().collect();
    for (i, node) in model.nodes.iter().enumerate() {
        if folded.contains(&i) || node.op == Op::Constant {
            continue;
        }
        let bn = folds.get(&i).map(|&b| &model.nodes[b]);
        lw.lower(node, bn)?;
    }
    let mut outputs = vec![];
    for o in &model.outputs {
        lw.origin = o.name.clone();
        lw.origin_type = "output".into();
        let v = lw.value(&o.name)?;
        if lw.values[v].onnx.is_none() {
            lw.values[v].onnx = Some(o.name.clone());
        }
        outputs.push(v);
    }
    Ok(QuantizedModel {
        inputs: skeleton.inputs,
        outputs,
        values: lw.values,
        nodes: lw.nodes,
        ..skeleton
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[i64]) -> Tensor<i64> {
        Tensor::new(shape.to_vec(), data.to_vec())
    }

    #[test]
    fn rescale_rounds_to_nearest_with_ties_up() {
        assert_eq!(rescale(5, 2), 3); // 2.5
        assert_eq!(rescale(-5, 2), -2); // -2.5
        assert_eq!(rescale(7, 4), 2); // 1.75
        assert_eq!(rescale(-7, 4), -2); // -1.75
        assert_eq!(rescale(-6, 4), -1); // -1.5
        assert_eq!(rescale(4, 3), 1); // 1.33
        assert_eq!(rescale(5, 3), 2); // 1.67
        assert_eq!(
            rescale(i64::MAX, 1 << 20),
            (i64::MAX as i128 + (1 << 19)).div_euclid(1 << 20) as i64
        );
    }

    #[test]
    fn linear_and_conv_compute_dot_products() {
        let op = QOp::Linear {
            k: 2,
            n: 2,
            weight: vec![1, 2, 3, 4],
            bias: Some(vec![10, 20]),
        };
        let y = eval_op(&op, &[&t(&[1, 2], &[5, 6])], &[1, 2]).unwrap();
        assert_eq!(y.data, vec![5 + 18 + 10, 10 + 24 + 20]);
        // 1 channel 3×3 input, 2×2 kernel, stride 1, pad 1 on the leading edges.
        let op = QOp::Conv {
            out_channels: 1,
            kernel: vec![2, 2],
            strides: vec![1, 1],
            pads_begin: vec![1, 1],
            dilations: vec![1, 1],
            weight: vec![1, 2, 3, 4],
            bias: None,
        };
        let x = t(&[1, 1, 3, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let y = eval_op(&op, &[&x], &[1, 1, 3, 3]).unwrap();
        // out[0,0] sees only x[0,0] under w[1,1]; out[1,1] = 1·1 + 2·2 + 3·4 + 4·5.
        assert_eq!(y.data[0], 4);
        assert_eq!(y.data[4], 1 + 4 + 12 + 20);
    }

    #[test]
    fn pools_ignore_padding() {
        let x = t(&[1, 1, 2, 2], &[-5, -6, -7, -8]);
        let mp = QOp::MaxPool {
            kernel: vec![2, 2],
            strides: vec![1, 1],
            pads_begin: vec![1, 1],
            dilations: vec![1, 1],
        };
        let y = eval_op(&mp, &[&x], &[1, 1, 3, 3]).unwrap();
        assert_eq!(y.data, vec![-5, -5, -6, -5, -5, -6, -7, -7, -8]);
        let sp = QOp::SumPool {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            pads_begin: vec![0, 0],
        };
        assert_eq!(eval_op(&sp, &[&x], &[1, 1, 1, 1]).unwrap().data, vec![-26]);
    }

    #[test]
    fn overflow_and_table_range_are_errors_not_wraps() {
        let op = QOp::Linear {
            k: 1,
            n: 1,
            weight: vec![i64::MAX],
            bias: None,
        };
        let e = eval_op(&op, &[&t(&[1, 1], &[4])], &[1, 1]).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        let tab = QOp::Table {
            func: TableFn::Sigmoid,
            in_scale: 4,
            out_scale: 8,
            lo: -16,
            hi: 16,
        };
        assert_eq!(
            eval_op(&tab, &[&t(&[1], &[0])], &[1]).unwrap().data,
            vec![128]
        );
        let e = eval_op(&tab, &[&t(&[1], &[17])], &[1]).unwrap_err();
        assert!(
            e.contains("outside the Sigmoid table range [-16, 16]"),
            "{e}"
        );
    }

    #[test]
    fn leaky_relu_keeps_positives_exact_after_rescale() {
        let op = QOp::LeakyRelu {
            alpha: 26,
            shift: 8,
        }; // alpha ≈ 0.1 at 2^8
        let y = eval_op(&op, &[&t(&[2], &[100, -100])], &[2]).unwrap();
        assert_eq!(y.data, vec![100 << 8, -2600]);
        assert_eq!(rescale(y.data[0], 256), 100);
        assert_eq!(rescale(y.data[1], 256), -10);
    }

    #[test]
    fn reshape_targets_follow_onnx() {
        assert_eq!(
            reshape_target(&[2, 3, 4], &[0.0, -1.0], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(
            reshape_target(&[2, 3, 4], &[4.0, 6.0], false).unwrap(),
            vec![4, 6]
        );
        assert!(reshape_target(&[2, 3, 4], &[5.0, -1.0], false).is_err());
    }
}
