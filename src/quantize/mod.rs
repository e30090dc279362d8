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

pub mod pipeline;
pub mod report;

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
        QOp::Linear { k, n, weight, bias } => {
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
        }
        QOp::Conv {
            out_channels,
            kernel,
            strides: st,
            pads_begin,
            dilations,
            weight,
            bias,
        } => {
            let x = x.ok_or("conv needs an input")?;
            let (batch, cin) = (x.shape[0], x.shape[1]);
            let win = Window::new(&x.shape, st, pads_begin, Some(dilations));
            let kn = numel(kernel);
            let mut data = Vec::with_capacity(numel(out_shape));
            for b in 0..batch {
                for o in 0..*out_channels {
                    for_each_index(&out_shape[2..], |p| {
                        let mut acc: i128 = bias.as_ref().map(|bv| bv[o] as i128).unwrap_or(0);
                        for c in 0..cin {
                            let wbase = (o * cin + c) * kn;
                            let mut ki = 0;
                            for_each_index(kernel, |kk| {
                                if let Some(off) = win.tap(b, c, p, kk) {
                                    acc += x.data[off] as i128 * weight[wbase + ki] as i128;
                                }
                                ki += 1;
                            });
                        }
                        data.push(acc);
                    });
                }
            }
            let data = data
                .into_iter()
                .map(|v| to_i64(v, "a convolution"))
                .collect::<std::result::Result<_, _>>()?;
            Tensor::new(out_shape.to_vec(), data)
        }
        QOp::Add | QOp::Sub | QOp::Mul => {
            let (a, b) = (inputs[0], inputs[1]);
            let mut err = None;
            let t = zip_broadcast(a, b, |&p, &q| {
                let r = match op {
                    QOp::Add => p.checked_add(q),
                    QOp::Sub => p.checked_sub(q),
                    _ => p.checked_mul(q),
                };
                r.unwrap_or_else(|| {
                    err = Some(format!(
                        "{} of {p} and {q} overflows 64-bit integers: lower the scale",
                        op.name()
                    ));
                    0
                })
            })
            .ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))?;
            if let Some(e) = err {
                return Err(e);
            }
            t
        }
        QOp::ShiftLeft { bits } => {
            let x = x.ok_or("shift needs an input")?;
            let f = 1i128 << bits;
            let data = x
                .data
                .iter()
                .map(|&v| to_i64(v as i128 * f, "a scale alignment"))
                .collect::<std::result::Result<_, _>>()?;
            Tensor::new(x.shape.clone(), data)
        }
        QOp::Rescale { divisor } => {
            let x = x.ok_or("rescale needs an input")?;
            let data = x
                .data
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    rescale(
                        v,
                        if divisor.len() == 1 {
                            divisor[0]
                        } else {
                            divisor[i]
                        },
                    )
                })
                .collect();
            Tensor::new(x.shape.clone(), data)
        }
        QOp::Relu => x.ok_or("relu needs an input")?.map(|&v| v.max(0)),
        QOp::LeakyRelu { alpha, shift } => {
            let x = x.ok_or("leaky relu needs an input")?;
            let data = x
                .data
                .iter()
                .map(|&v| {
                    to_i64(
                        if v >= 0 {
                            (v as i128) << shift
                        } else {
                            v as i128 * *alpha as i128
                        },
                        "a leaky relu",
                    )
                })
                .collect::<std::result::Result<_, _>>()?;
            Tensor::new(x.shape.clone(), data)
        }
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
        } => {
            let step_bits = match op {
                QOp::Interp { step_bits, .. } => *step_bits,
                _ => 0,
            };
            let (lo, hi) = &match op {
                QOp::Interp { step_bits, .. } => interp_domain(*lo, *hi, *step_bits),
                _ => (*lo, *hi),
            };
            let x = x.ok_or("table needs an input")?;
            let mut data = Vec::with_capacity(x.len());
            for &v in &x.data {
                if v < *lo || v > *hi {
                    return Err(format!(
                        "input {v} (= {:.6}) is outside the {} table range [{lo}, {hi}] (= [{:.4}, {:.4}])",
                        v as f64 / 2f64.powi(*in_scale),
                        func.name(),
                        *lo as f64 / 2f64.powi(*in_scale),
                        *hi as f64 / 2f64.powi(*in_scale)
                    ));
                }
                data.push(if step_bits > 0 {
                    interp_entry(*func, v, *in_scale, *out_scale, step_bits)
                } else {
                    table_entry(*func, v, *in_scale, *out_scale)
                });
            }
            Tensor::new(x.shape.clone(), data)
        }
        QOp::SumPool {
            kernel,
            strides: st,
            pads_begin,
        } => pool(
            x.ok_or("pool needs an input")?,
            out_shape,
            kernel,
            st,
            pads_begin,
            None,
            0,
            |a, v| a + v as i128,
        )?,
        QOp::MaxPool {
            kernel,
            strides: st,
            pads_begin,
            dilations,
        } => pool(
            x.ok_or("pool needs an input")?,
            out_shape,
            kernel,
            st,
            pads_begin,
            Some(dilations),
            i128::MIN,
            |a, v| a.max(v as i128),
        )?,
        QOp::ReduceMax { axes, min, .. } => {
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
        }
        QOp::ReduceSum { axes, .. } => {
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
        }
        QOp::Reshape => x
            .ok_or("reshape needs an input")?
            .reshaped(out_shape.to_vec()),
        QOp::Transpose { perm } => x.ok_or("transpose needs an input")?.transpose(perm),
        QOp::Concat { axis } => concat(inputs, *axis),
        QOp::MatMul { batch, m, k, n } => {
            let (a, b) = match inputs {
                [a, b] => (a, b),
                _ => return Err("matmul needs two inputs".into()),
            };
            let mut data = Vec::with_capacity(batch * m * n);
            for t in 0..*batch {
                let (ao, bo) = matmul_offsets(t, a.len(), b.len(), *m, *k, *n);
                for i in 0..*m {
                    for j in 0..*n {
                        let acc: i128 = (0..*k)
                            .map(|l| {
                                a.data[ao + i * k + l] as i128 * b.data[bo + l * n + j] as i128
                            })
                            .sum();
                        data.push(to_i64(acc, "a matrix product")?);
                    }
                }
            }
            Tensor::new(out_shape.to_vec(), data)
        }
        QOp::Step { offset, one } => x.ok_or("step needs an input")?.map(|&v| {
            if v as i128 + *offset as i128 >= 0 {
                *one
            } else {
                0
            }
        }),
        QOp::Gather { index, fill } => {
            let x = x.ok_or("gather needs an input")?;
            let data = index
                .iter()
                .map(|&i| if i < 0 { *fill } else { x.data[i as usize] })
                .collect();
            Tensor::new(out_shape.to_vec(), data)
        }
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

/// One table entry: `round(f(x / 2^in_scale) · 2^out_scale)`, half away from zero.
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
        _ => vec![],
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
    dilations: Option<&Vec<usize>>,
    init: i128,
    f: impl Fn(i128, i64) -> i128,
) -> std::result::Result<Tensor<i64>, String> {
    let (batch, ch) = (x.shape[0], x.shape[1]);
    let win = Window::new(&x.shape, st, pads_begin, dilations.map(|d| d.as_slice()));
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
                _ => 1,
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

    /// `x·w + c` at the activation scale, `x` a runtime `[B, K]`, `w` `[K, N]`.
    fn dense(&mut self, x: usize, w: Tensor<f64>, c: Option<Tensor<f64>>) -> Result<usize> {
        let y = self.linear(x, w, c, None)?;
        let y = self.runtime_value(y, "a recurrent layer's product")?;
        self.rescale_to(y, self.s)
    }

    /// An element-wise product or sum of two values, at the activation scale.
    fn combine(&mut self, op: Op, a: usize, b: usize) -> Result<usize> {
        let y = self.binary(&op, Operand::Value(a), Operand::Value(b))?;
        let y = self.runtime_value(y, "a recurrent layer's state")?;
        self.rescale_to(y, self.s)
    }

    /// A table function of a value, at the activation scale.
    fn apply(&mut self, x: usize, func: TableFn) -> Result<usize> {
        let y = self.table(x, func)?;
        let y = self.runtime_value(y, "a recurrent layer's activation")?;
        self.rescale_to(y, self.s)
    }

    /// A tensor of shape `xs` seen as rows along axis `axis`: `n` positions per row, one row per
    /// index of the other axes; `pos(row, j)` is the flat offset of position `j` of `row`.
    fn axis_rows(&self, xs: &[usize], axis: i64) -> Result<AxisRows> {
        let a = axis_index(axis, xs.len()).map_err(|e| self.fail(e))?;
        Ok(AxisRows {
            axis: a,
            n: xs[a],
            inner: xs[a + 1..].iter().product(),
            rows: xs.iter().product::<usize>() / xs[a].max(1),
        })
    }

    /// The position of the maximum (or minimum) along `axis`, at scale 0: the extreme `m` of
    /// each row (the max chip); `e_j = [x_j = m]` (a sign bit of `x_j − m`); `z_0 = 1`,
    /// `z_(j+1) = z_j·(1 − e_j)` is 1 while no extreme has been seen, so the first position is
    /// `Σ_(j≥1) z_j` (the last: the same from the other end).
    fn arg_extreme(
        &mut self,
        x: usize,
        axis: i64,
        keepdims: bool,
        last: bool,
        min: bool,
    ) -> Result<usize> {
        let xs = self.shape(x);
        let g = self.axis_rows(&xs, axis)?;
        let (a, n, rows) = (g.axis, g.n, g.rows);
        let sx = self.scale_of(x);
        // Row r, position j: in scan order (reversed for the last index).
        let at = |r: usize, j: usize| g.pos(r, if last { n - 1 - j } else { j });
        let grid = (0..rows)
            .flat_map(|r| (0..n).map(move |j| at(r, j)))
            .collect();
        let p = self.rewire_value(x, vec![rows, n], grid)?;
        let m = self.push(
            QOp::ReduceMax {
                axes: vec![1],
                keepdims: true,
                min,
            },
            vec![p],
            vec![rows, 1],
            sx,
        )?;
        // x_j − m ≤ 0 for a maximum (m − x_j for a minimum): it is ≥ 0 exactly at the extreme.
        let (l, r) = if min { (m, p) } else { (p, m) };
        let d = self.push(QOp::Sub, vec![l, r], vec![rows, n], sx)?;
        let e = self.push(QOp::Step { offset: 0, one: 1 }, vec![d], vec![rows, n], 0)?;
        let mut z = self.const_value(&Tensor::new(vec![rows], vec![1.0; rows]), 0)?;
        let mut seen = vec![];
        for j in 0..n.saturating_sub(1) {
            let col = (0..rows).map(|r| (r * n + j) as i64).collect();
            let ej = self.rewire_value(e, vec![rows], col)?;
            let hit = self.push(QOp::Mul, vec![z, ej], vec![rows], 0)?;
            z = self.push(QOp::Sub, vec![z, hit], vec![rows], 0)?;
            seen.push(z);
        }
        let count = match seen.len() {
            0 => self.const_value(&Tensor::new(vec![rows], vec![0.0; rows]), 0)?,
            1 => seen[0],
            k => {
                let all = self.push(QOp::Concat { axis: 0 }, seen, vec![k * rows], 0)?;
                let stacked = self.push(QOp::Reshape, vec![all], vec![k, rows], 0)?;
                self.push(
                    QOp::ReduceSum {
                        axes: vec![0],
                        keepdims: false,
                    },
                    vec![stacked],
                    vec![rows],
                    0,
                )?
            }
        };
        let pos = if last {
            let top = self.const_value(&Tensor::new(vec![1], vec![(n - 1) as f64]), 0)?;
            self.push(QOp::Sub, vec![top, count], vec![rows], 0)?
        } else {
            count
        };
        let mut out = xs.clone();
        if keepdims {
            out[a] = 1;
        } else {
            out.remove(a);
        }
        self.push(QOp::Reshape, vec![pos], out, 0)
    }

    /// OneHot: output `o` is `on` where the index at `o` without the new axis equals `o[axis]`
    /// (or `o[axis] − depth`), else `off`: one equality test per output and candidate form.
    fn one_hot(
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

    /// `x` rounded toward zero, at scale 0: with the sign bit `s` of a range check,
    /// `|x| = 2·x·s − x`, `q = floor(|x| / 2^sx)` (a rescale of `|x| − 2^(sx−1)`), and
    /// `q·(2s − 1)`.
    fn truncate(&mut self, x: usize) -> Result<usize> {
        let sx = self.scale_of(x);
        if sx <= 0 {
            return Ok(x);
        }
        let sh = self.shape(x);
        let double = |this: &mut Self, v: usize, sc: i32| {
            let shape = this.shape(v);
            this.push(QOp::ShiftLeft { bits: 1 }, vec![v], shape, sc)
        };
        let s = self.push(QOp::Step { offset: 0, one: 1 }, vec![x], sh.clone(), 0)?;
        let xs = self.push(QOp::Mul, vec![x, s], sh.clone(), sx)?;
        let xs2 = double(self, xs, sx)?;
        let abs = self.push(QOp::Sub, vec![xs2, x], sh.clone(), sx)?;
        let half = self.const_value(&Tensor::new(vec![1], vec![0.5]), sx)?;
        let below = self.push(QOp::Sub, vec![abs, half], sh.clone(), sx)?;
        let q = self.push(
            QOp::Rescale {
                divisor: vec![1u64 << sx],
            },
            vec![below],
            sh.clone(),
            0,
        )?;
        let qs = self.push(QOp::Mul, vec![q, s], sh.clone(), 0)?;
        let qs2 = double(self, qs, 0)?;
        self.push(QOp::Sub, vec![qs2, q], sh, 0)
    }

    /// `[idx[at[e]] = grid[e][k]]` (0 or 1, at scale 0) for the runtime index tensor `idx` and
    /// constant targets `grid` (`[E, c]`): two comparisons through the sign of a range check,
    /// and their product.
    fn equal_grid(&mut self, idx: usize, at: &[usize], grid: Tensor<f64>) -> Result<usize> {
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

    /// Selection by runtime indices: output `e` is `x[cand(e, m)]` where the index `idx[at[e]]`
    /// is `m`, or `m − n` counted from the end, for `m` in `0..n`; an index out of range selects
    /// nothing (0). Each candidate costs an equality test (two comparisons through the sign of a
    /// range check, and their product), its product with the candidate value, and a share of a
    /// sum.
    fn select(
        &mut self,
        x: usize,
        idx: usize,
        out: Vec<usize>,
        n: usize,
        at: &[usize],
        cand: &dyn Fn(usize, usize) -> usize,
    ) -> Result<usize> {
        let (e_len, c) = (at.len(), 2 * n);
        let shape = vec![e_len, c];
        let grid = Tensor::new(
            shape.clone(),
            (0..e_len)
                .flat_map(|_| {
                    (0..c).map(|k| {
                        if k < n {
                            k as f64
                        } else {
                            k as f64 - 2.0 * n as f64
                        }
                    })
                })
                .collect(),
        );
        let eq = self.equal_grid(idx, at, grid)?;
        let picks = (0..e_len)
            .flat_map(|e| (0..c).map(move |k| (e, k % n)))
            .map(|(e, m)| cand(e, m) as i64)
            .collect();
        let xc = self.rewire_value(x, shape.clone(), picks)?;
        let sx = self.scale_of(x);
        let chosen = self.push(QOp::Mul, vec![eq, xc], shape, sx)?;
        let sum = self.push(
            QOp::ReduceSum {
                axes: vec![1],
                keepdims: false,
            },
            vec![chosen],
            vec![e_len],
            sx,
        )?;
        self.push(QOp::Reshape, vec![sum], out, sx)
    }

    /// The `k` largest (or smallest) along `axis`, sorted, by bubble passes: pass `r` carries
    /// the extreme of positions `r..n` down to `r` through compare-swaps of neighbours. A
    /// compare-swap of all rows at once is one maximum (or minimum) of the pairs (the max chip),
    /// the other element as the pair's sum minus it, and rewiring.
    fn top_k(&mut self, x: usize, axis: i64, k: i64, largest: bool) -> Result<Operand> {
        let xs = self.shape(x);
        let g = self.axis_rows(&xs, axis)?;
        let (a, n, rows, inner) = (g.axis, g.n, g.rows, g.inner);
        if k < 1 || k as usize > n {
            return Err(self.fail(format!("k = {k} for an axis of {n}")));
        }
        let k = k as usize;
        let total = rows * n;
        let pos = |row: usize, j: usize| g.pos(row, j);
        let sc = self.scale_of(x);
        let mut cur = self.push(QOp::Reshape, vec![x], vec![total], sc)?;
        for r in 0..k {
            for j in (r + 1..n).rev() {
                let pairs = (0..rows)
                    .flat_map(|row| [pos(row, j - 1), pos(row, j)])
                    .collect();
                let p = self.rewire_value(cur, vec![rows, 2], pairs)?;
                let first = self.push(
                    QOp::ReduceMax {
                        axes: vec![1],
                        keepdims: false,
                        min: !largest,
                    },
                    vec![p],
                    vec![rows],
                    sc,
                )?;
                let sum = self.push(
                    QOp::ReduceSum {
                        axes: vec![1],
                        keepdims: false,
                    },
                    vec![p],
                    vec![rows],
                    sc,
                )?;
                let second = self.push(QOp::Sub, vec![sum, first], vec![rows], sc)?;
                let all = self.push(
                    QOp::Concat { axis: 0 },
                    vec![cur, first, second],
                    vec![total + 2 * rows],
                    sc,
                )?;
                let mut index: Vec<i64> = (0..total as i64).collect();
                for row in 0..rows {
                    index[pos(row, j - 1) as usize] = (total + row) as i64;
                    index[pos(row, j) as usize] = (total + rows + row) as i64;
                }
                cur = self.rewire_value(all, vec![total], index)?;
            }
        }
        let mut out = xs.clone();
        out[a] = k;
        // In output order: the outer index, then the first k positions, then the inner index.
        let index = (0..rows / inner.max(1))
            .flat_map(|o| (0..k).flat_map(move |j| (0..inner).map(move |i| pos(o * inner + i, j))))
            .collect();
        Ok(Operand::Value(self.rewire_value(cur, out, index)?))
    }

    /// RNN (`h = tanh(x·Wᵀ + h·Rᵀ + b)`) or LSTM (gates i, o, f by sigmoid and the cell candidate
    /// by tanh, `c = f·c + i·c̃`, `h = o·tanh(c)`), forward, unrolled over the sequence into
    /// dense layers, tables and products. Outputs `Y [T, 1, B, H]`, then `Y_h` and `Y_c`.
    fn recurrent(&mut self, node: &Node, lstm: bool, h: usize) -> Result<Operand> {
        let inp = |i: usize| node.inputs.get(i).filter(|s| !s.is_empty()).cloned();
        let x = self.value(&node.inputs[0])?;
        let xs = self.shape(x);
        let [t_len, b, i_len] = xs[..] else {
            return Err(self.fail(format!("input of shape {xs:?}: expected [T, B, I]")));
        };
        let g = if lstm { 4 } else { 1 };
        let w = self.constant(&node.inputs[1])?;
        let r = self.constant(&node.inputs[2])?;
        if w.shape != [1, g * h, i_len] || r.shape != [1, g * h, h] {
            return Err(self.fail(format!(
                "weights {:?} and {:?}: expected [1, {}, {i_len}] and [1, {}, {h}]",
                w.shape,
                r.shape,
                g * h,
                g * h
            )));
        }
        let bias = match inp(3) {
            Some(n) => {
                let bt = self.constant(&n)?;
                if bt.len() != 2 * g * h {
                    return Err(self.fail(format!(
                        "bias {:?}: expected [1, {}]",
                        bt.shape,
                        2 * g * h
                    )));
                }
                Some(Tensor::new(
                    vec![g * h],
                    (0..g * h)
                        .map(|j| bt.data[j] + bt.data[g * h + j])
                        .collect(),
                ))
            }
            None => None,
        };
        let wt = Tensor::new(vec![g * h, i_len], w.data).transpose(&[1, 0]);
        let rt = Tensor::new(vec![g * h, h], r.data).transpose(&[1, 0]);
        // An initial state: None when absent or all zero (its terms vanish).
        let state = |this: &mut Self, idx: usize| -> Result<Option<usize>> {
            let Some(n) = inp(idx) else { return Ok(None) };
            match this.operand(&n)? {
                Operand::Const(t) if t.data.iter().all(|&v| v == 0.0) => Ok(None),
                o => {
                    let v = match o {
                        Operand::Value(v) => v,
                        Operand::Const(t) => {
                            let s = this.s;
                            this.const_value(&t, s)?
                        }
                    };
                    if this.shape(v).iter().product::<usize>() != b * h {
                        return Err(
                            this.fail(format!("initial state of shape {:?}", this.shape(v)))
                        );
                    }
                    let v = this.rescale_to(v, this.s)?;
                    Ok(Some(this.rewire_value(
                        v,
                        vec![b, h],
                        (0..(b * h) as i64).collect(),
                    )?))
                }
            }
        };
        let mut hs = state(self, 5)?;
        let mut cs = if lstm { state(self, 6)? } else { None };
        let mut ys = vec![];
        for t in 0..t_len {
            let at = (t * b * i_len) as i64;
            let xt =
                self.rewire_value(x, vec![b, i_len], (at..at + (b * i_len) as i64).collect())?;
            let mut pre = self.dense(xt, wt.clone(), bias.clone())?;
            if let Some(hv) = hs {
                let rh = self.dense(hv, rt.clone(), None)?;
                pre = self.combine(Op::Add, pre, rh)?;
            }
            let hn = if lstm {
                // Gate k of every row of `pre` ([B, 4H]), in ONNX's order i, o, f, c.
                let gate = |this: &mut Self, k: usize, func| -> Result<usize> {
                    let index = (0..b)
                        .flat_map(|row| (0..h).map(move |j| (row * 4 * h + k * h + j) as i64))
                        .collect();
                    let v = this.rewire_value(pre, vec![b, h], index)?;
                    this.apply(v, func)
                };
                let ig = gate(self, 0, TableFn::Sigmoid)?;
                let og = gate(self, 1, TableFn::Sigmoid)?;
                let fg = gate(self, 2, TableFn::Sigmoid)?;
                let cand = gate(self, 3, TableFn::Tanh)?;
                let mut c = self.combine(Op::Mul, ig, cand)?;
                if let Some(cv) = cs {
                    let kept = self.combine(Op::Mul, fg, cv)?;
                    c = self.combine(Op::Add, c, kept)?;
                }
                cs = Some(c);
                let tc = self.apply(c, TableFn::Tanh)?;
                self.combine(Op::Mul, og, tc)?
            } else {
                self.apply(pre, TableFn::Tanh)?
            };
            hs = Some(hn);
            ys.push(hn);
        }
        let s = self.s;
        let y = if ys.len() == 1 {
            ys[0]
        } else {
            self.push(QOp::Concat { axis: 0 }, ys, vec![t_len * b, h], s)?
        };
        let y = self.push(QOp::Reshape, vec![y], vec![t_len, 1, b, h], s)?;
        let last = |this: &mut Self, v: Option<usize>| -> Result<Option<usize>> {
            v.map(|v| this.push(QOp::Reshape, vec![v], vec![1, b, h], s))
                .transpose()
        };
        let outs: Vec<Option<usize>> =
            vec![last(self, hs)?, if lstm { last(self, cs)? } else { None }];
        for (name, v) in node.outputs.iter().skip(1).zip(outs) {
            if let (false, Some(v)) = (name.is_empty(), v) {
                self.extra_outputs.push((name.clone(), Operand::Value(v)));
            }
        }
        Ok(Operand::Value(y))
    }

    /// A convolution node of `x` with float weight `w` (`[O, C, *K]`) and bias, quantized.
    #[allow(clippy::too_many_arguments)]
    fn conv_node(
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

    fn lower_op(&mut self, node: &Node, fold_bn: Option<&Node>) -> Result<Operand> {
        let inp = |i: usize| node.inputs.get(i).filter(|s| !s.is_empty()).cloned();
        let arg0 = inp(0).ok_or_else(|| self.fail("missing first input"))?;
        let s = self.s;
        match &node.op {
            Op::Identity => self.operand(&arg0),
            Op::Constant => unreachable!("constants are bound before lowering"),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let mut x = self.value(&arg0)?;
                if self.shape(x).len() != 2 {
                    return Err(
                        self.fail(format!("Gemm input A must be 2-D, got {:?}", self.shape(x)))
                    );
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
                let mut w = self.constant(&inp(1).unwrap())?;
                if w.rank() != 2 {
                    return Err(self.fail(format!("Gemm input B must be 2-D, got {:?}", w.shape)));
                }
                if *trans_b {
                    w = w.transpose(&[1, 0]);
                }
                let w = w.map(|v| v * alpha);
                let c = inp(2)
                    .map(|n| self.constant(&n))
                    .transpose()?
                    .map(|c| c.map(|v| v * beta));
                self.linear(x, w, c, fold_bn)
            }
            Op::MatMul => {
                let b_name = inp(1).ok_or_else(|| self.fail("MatMul needs two inputs"))?;
                match (self.operand(&arg0)?, self.operand(&b_name)?) {
                    (Operand::Value(x), Operand::Const(w)) => {
                        let w = squeeze_leading(w);
                        if w.rank() != 2 {
                            return Err(self.fail(format!(
                                "MatMul with a constant of shape {:?} is not supported (2-D only)",
                                w.shape
                            )));
                        }
                        self.linear(x, w, None, fold_bn)
                    }
                    (Operand::Const(a), Operand::Value(x)) => {
                        // y = A·x = (xᵀ·Aᵀ)ᵀ over the last two axes.
                        let a = squeeze_leading(a);
                        let sh = self.shape(x);
                        if a.rank() != 2 || sh.len() < 2 {
                            return Err(self.fail("MatMul with a constant left operand needs a 2-D constant and a runtime operand of rank ≥ 2"));
                        }
                        let r = sh.len();
                        let mut perm: Vec<usize> = (0..r).collect();
                        perm.swap(r - 1, r - 2);
                        let mut tsh = sh.clone();
                        tsh.swap(r - 1, r - 2);
                        let xt = self.push(
                            QOp::Transpose { perm: perm.clone() },
                            vec![x],
                            tsh,
                            self.scale_of(x),
                        )?;
                        let y = match self.linear(xt, a.transpose(&[1, 0]), None, fold_bn)? {
                            Operand::Value(y) => y,
                            c => return Ok(c),
                        };
                        let mut ysh = self.shape(y);
                        ysh.swap(r - 1, r - 2);
                        let sc = self.scale_of(y);
                        Ok(Operand::Value(self.push(
                            QOp::Transpose { perm },
                            vec![y],
                            ysh,
                            sc,
                        )?))
                    }
                    (Operand::Const(a), Operand::Const(b)) => {
                        let (a, b) = (squeeze_leading(a), squeeze_leading(b));
                        if a.rank() != 2 || b.rank() != 2 {
                            return Err(
                                self.fail("MatMul of constants is folded only for 2-D operands")
                            );
                        }
                        Ok(Operand::Const(float_matmul(&a, &b)))
                    }
                    (Operand::Value(a), Operand::Value(b)) => {
                        let (sa, sb) = (self.shape(a), self.shape(b));
                        if sa.len() < 2 || sb.len() < 2 {
                            return Err(self.fail(format!(
                                "MatMul of runtime tensors {sa:?} × {sb:?} needs rank ≥ 2"
                            )));
                        }
                        let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
                        let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
                        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
                        // Leading axes: equal, or one side a single matrix.
                        let lead = if numel(ba) == 1 && ba.len() <= bb.len() {
                            bb.to_vec()
                        } else if (numel(bb) == 1 && bb.len() <= ba.len()) || ba == bb {
                            ba.to_vec()
                        } else {
                            return Err(self.fail(format!(
                                "MatMul of runtime tensors {sa:?} × {sb:?}: leading axes must match"
                            )));
                        };
                        if k != k2 {
                            return Err(
                                self.fail(format!("MatMul shapes {sa:?} × {sb:?} do not match"))
                            );
                        }
                        let mut out = lead.clone();
                        out.extend([m, n]);
                        let sc = self.scale_of(a) + self.scale_of(b);
                        let op = QOp::MatMul {
                            batch: numel(&lead),
                            m,
                            k,
                            n,
                        };
                        Ok(Operand::Value(self.push(op, vec![a, b], out, sc)?))
                    }
                }
            }
            Op::Conv {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                ..
            } => {
                let x = self.value(&arg0)?;
                let xs = self.shape(x);
                let w = self.constant(&inp(1).unwrap())?;
                if xs.len() < 3 || w.rank() != xs.len() || w.shape[1] != xs[1] {
                    return Err(self.fail(format!(
                        "Conv input {:?} and weight {:?} do not match",
                        xs, w.shape
                    )));
                }
                let nsp = xs.len() - 2;
                let kernel = w.shape[2..].to_vec();
                if kernel_shape.as_ref().is_some_and(|k| *k != kernel) {
                    return Err(self.fail("kernel_shape does not match the weight"));
                }
                let st = if st.is_empty() {
                    vec![1; nsp]
                } else {
                    st.clone()
                };
                let dil = if dilations.is_empty() {
                    vec![1; nsp]
                } else {
                    dilations.clone()
                };
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
                let mut bias = inp(2).map(|n| self.constant(&n)).transpose()?;
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
                self.conv_node(x, &w, bias, kernel, st, pb, dil, out_shape)
            }
            Op::ConvTranspose {
                strides: st,
                pads,
                dilations,
                output_padding,
            } => {
                // A transposed convolution is a convolution (stride 1, flipped kernel, channels
                // swapped) over the input spread `stride` apart and padded by d·(K−1) − pad:
                // the spreading and padding are rewiring, the convolution is the usual chip.
                let xs = self.shape_of(&arg0)?;
                let w = self.constant(&inp(1).ok_or_else(|| self.fail("no weight"))?)?;
                if xs.len() < 3 || w.rank() != xs.len() || w.shape[0] != xs[1] {
                    return Err(self.fail(format!(
                        "ConvTranspose input {:?} and weight {:?} do not match",
                        xs, w.shape
                    )));
                }
                let nsp = xs.len() - 2;
                let kernel = w.shape[2..].to_vec();
                let or1 = |v: &Vec<usize>| {
                    if v.is_empty() {
                        vec![1; nsp]
                    } else {
                        v.clone()
                    }
                };
                let (st, dil) = (or1(st), or1(dilations));
                let pads = if pads.is_empty() {
                    vec![0; 2 * nsp]
                } else {
                    pads.clone()
                };
                let opad = if output_padding.is_empty() {
                    vec![0; nsp]
                } else {
                    output_padding.clone()
                };
                if st.len() != nsp || dil.len() != nsp || pads.len() != 2 * nsp || opad.len() != nsp
                {
                    return Err(self
                        .fail("strides, dilations, pads or output_padding do not match the rank"));
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
                let bias = inp(2).map(|n| self.constant(&n)).transpose()?;
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
            Op::Add | Op::Sub | Op::Mul => {
                let b_name = inp(1).ok_or_else(|| self.fail("needs two inputs"))?;
                self.binary(&node.op, self.operand(&arg0)?, self.operand(&b_name)?)
            }
            Op::Relu => {
                let x = self.value(&arg0)?;
                let sh = self.shape(x);
                let sc = self.scale_of(x);
                Ok(Operand::Value(self.push(QOp::Relu, vec![x], sh, sc)?))
            }
            Op::LeakyRelu { alpha } => {
                let x = self.value(&arg0)?;
                let a = Tensor::new(vec![], vec![*alpha]);
                let sa = self.param_scale(&a);
                let q = self.quant(&a, sa)?[0];
                let sh = self.shape(x);
                let sc = self.scale_of(x);
                Ok(Operand::Value(self.push(
                    QOp::LeakyRelu {
                        alpha: q,
                        shift: sa as u32,
                    },
                    vec![x],
                    sh,
                    sc + sa,
                )?))
            }
            Op::ConstantOfShape { value } => {
                // The shape is static (shape arithmetic on fixed shapes), so the fill is a
                // constant.
                let dims: Vec<usize> = self
                    .constant(&arg0)?
                    .data
                    .iter()
                    .map(|&d| d.max(0.0) as usize)
                    .collect();
                if numel(&dims) > 1 << 24 {
                    return Err(self.fail(format!("a constant of shape {dims:?} is too large")));
                }
                Ok(Operand::Const(Tensor::filled(dims, *value)))
            }
            Op::Recurrent { lstm, hidden } => self.recurrent(node, *lstm, *hidden),
            Op::ArgMax {
                axis,
                keepdims,
                last,
                min,
            } => {
                let x = self.value(&arg0)?;
                self.arg_extreme(x, *axis, *keepdims, *last, *min)
                    .map(Operand::Value)
            }
            Op::OneHot { axis } => {
                let depth_name = inp(1).ok_or_else(|| self.fail("OneHot needs a depth"))?;
                let depth = *self
                    .constant_ints(&depth_name)?
                    .first()
                    .ok_or_else(|| self.fail("depth is empty"))?;
                let vals =
                    self.constant(&inp(2).ok_or_else(|| self.fail("OneHot needs values"))?)?;
                if !(1..=1 << 16).contains(&depth) || vals.len() != 2 {
                    return Err(self.fail(format!(
                        "depth {depth} and {} values: expected 1 to 65536 and [off, on]",
                        vals.len()
                    )));
                }
                let idx = self.value(&arg0)?;
                self.one_hot(idx, *axis, depth as usize, vals.data[0], vals.data[1])
            }
            Op::Truncate => match self.operand(&arg0)? {
                Operand::Const(t) => Ok(Operand::Const(t.map(|&v| v.trunc()))),
                Operand::Value(x) => self.truncate(x).map(Operand::Value),
            },
            Op::GatherElements { axis } => {
                let xs = self.shape_of(&arg0)?;
                let r = xs.len();
                let a = axis_index(*axis, r).map_err(|e| self.fail(e))?;
                let ind_name = inp(1).ok_or_else(|| self.fail("no indices"))?;
                let is = self.shape_of(&ind_name)?;
                if is.len() != r || (0..r).any(|d| d != a && is[d] > xs[d]) {
                    return Err(self.fail(format!(
                        "indices of shape {is:?} do not fit data of shape {xs:?} off axis {a}"
                    )));
                }
                // Output e (a multi-index of the indices) reads data at e with its axis
                // coordinate replaced by the index.
                let xst = strides(&xs);
                let mut base = vec![];
                for_each_index(&is, |o| {
                    base.push(
                        (0..r)
                            .filter(|&d| d != a)
                            .map(|d| o[d] * xst[d])
                            .sum::<usize>(),
                    );
                });
                let n = xs[a];
                match self.operand(&ind_name)? {
                    Operand::Const(t) => {
                        let mut index = Vec::with_capacity(base.len());
                        for (e, &v) in t.data.iter().enumerate() {
                            let i = if v < 0.0 {
                                v as i64 + n as i64
                            } else {
                                v as i64
                            };
                            if i < 0 || i >= n as i64 {
                                return Err(self.fail(format!("index {v} is out of range for {n}")));
                            }
                            index.push((base[e] + i as usize * xst[a]) as i64);
                        }
                        self.rewire(&arg0, is, index, 0.0)
                    }
                    Operand::Value(idx) => {
                        let x = self.value(&arg0)?;
                        let at: Vec<usize> = (0..base.len()).collect();
                        let step = xst[a];
                        let v = self.select(x, idx, is, n, &at, &|e, m| base[e] + m * step)?;
                        Ok(Operand::Value(v))
                    }
                }
            }
            Op::TopK { axis, largest, k } => {
                let k = match k {
                    Some(k) => *k,
                    None => {
                        let name = inp(1).ok_or_else(|| self.fail("TopK needs k"))?;
                        *self
                            .constant_ints(&name)?
                            .first()
                            .ok_or_else(|| self.fail("k is empty"))?
                    }
                };
                let x = self.value(&arg0)?;
                self.top_k(x, *axis, k, *largest)
            }
            Op::Sigmoid | Op::Tanh => {
                let func = if node.op == Op::Sigmoid {
                    TableFn::Sigmoid
                } else {
                    TableFn::Tanh
                };
                let x = self.value(&arg0)?;
                self.table(x, func)
            }
            Op::Unary(func) => {
                let x = self.value(&arg0)?;
                self.table(x, *func)
            }
            Op::Compare { less, or_equal } => {
                // a < b ⟺ b − a − 1 ≥ 0 on integers at one scale; a ≤ b ⟺ b − a ≥ 0.
                let b_name = inp(1).ok_or_else(|| self.fail("needs two inputs"))?;
                let (a, b) = (self.operand(&arg0)?, self.operand(&b_name)?);
                let diff = if *less {
                    self.binary(&Op::Sub, b, a)?
                } else {
                    self.binary(&Op::Sub, a, b)?
                };
                match diff {
                    Operand::Const(t) => Ok(Operand::Const(t.map(|&v| {
                        if v > 0.0 || (*or_equal && v == 0.0) {
                            1.0
                        } else {
                            0.0
                        }
                    }))),
                    Operand::Value(d) => {
                        let (sh, s) = (self.shape(d), self.s);
                        let op = QOp::Step {
                            offset: if *or_equal { 0 } else { -1 },
                            one: 1i64 << s,
                        };
                        Ok(Operand::Value(self.push(op, vec![d], sh, s)?))
                    }
                }
            }
            Op::Not => {
                let one = Operand::Const(Tensor::new(vec![], vec![1.0]));
                self.binary(&Op::Sub, one, self.operand(&arg0)?)
            }
            Op::Where => {
                // y + c·(x − y) with c ∈ {0, 1}.
                let (x_name, y_name) = match (inp(1), inp(2)) {
                    (Some(x), Some(y)) => (x, y),
                    _ => return Err(self.fail("Where needs three inputs")),
                };
                let (c, x, y) = (
                    self.operand(&arg0)?,
                    self.operand(&x_name)?,
                    self.operand(&y_name)?,
                );
                let diff = self.binary(&Op::Sub, x, y.clone())?;
                let picked = match self.binary(&Op::Mul, c, diff)? {
                    Operand::Value(v) => {
                        let s = self.s;
                        Operand::Value(self.rescale_to(v, s)?)
                    }
                    k => k,
                };
                self.binary(&Op::Add, y, picked)
            }
            Op::Neg => {
                let minus = Operand::Const(Tensor::new(vec![], vec![-1.0]));
                self.binary(&Op::Mul, self.operand(&arg0)?, minus)
            }
            Op::Normalization {
                axis,
                epsilon,
                instance,
            } => {
                // (x − mean) · rsqrt(var + ε) · scale + bias: means by sums and rescales, the
                // square and the normalizing product by the mul gate, rsqrt from a table.
                let x = self.value(&arg0)?;
                let xs = self.shape(x);
                let r = xs.len();
                let a = axis_index(*axis, r).map_err(|e| self.fail(e))?;
                let axes: Vec<usize> = (a..r).collect();
                let sc = self.scale_of(x);
                const WHAT: &str = "normalization";
                let as_value = |this: &mut Self, o: Operand| -> Result<usize> {
                    let v = this.runtime_value(o, WHAT)?;
                    this.rescale_to(v, sc)
                };
                let mean = self.mean(x, axes.clone(), true)?;
                let d = self.binary(&Op::Sub, Operand::Value(x), mean)?;
                let d = as_value(self, d)?;
                // The variance is kept finer than the activations, so the table can read it
                // finely (rsqrt is steep for small variances): the sum of squares (scale 2·S) is
                // divided by the count and brought to that scale in one rescale.
                let sq = self.binary(&Op::Mul, Operand::Value(d), Operand::Value(d))?;
                let sq = self.runtime_value(sq, WHAT)?;
                let (sum, count) = self.reduce_sum(sq, &axes, true)?;
                let sq_scale = self.scale_of(sum);
                // The finest scale at which the calibrated variance (plus ε, with a bit of
                // headroom) still fits the activation range, but no coarser than S + 4.
                let var_max = self.values[sum].range.1.max(0) as f64
                    / count.max(1) as f64
                    / 2f64.powi(sq_scale)
                    + epsilon;
                let limit = 2f64.powi(self.cfg.activation_bits as i32 - 3);
                let mut fine = sq_scale;
                while fine > sc + 4 && var_max * 2f64.powi(fine) >= limit {
                    fine -= 1;
                }
                let fine = fine.min(sq_scale);
                let divisor = count.max(1) << (sq_scale - fine);
                let var_shape = self.shape(sum);
                let var = Operand::Value(self.push(
                    QOp::Rescale {
                        divisor: vec![divisor],
                    },
                    vec![sum],
                    var_shape,
                    fine,
                )?);
                let eps = Operand::Const(Tensor::new(vec![], vec![*epsilon]));
                let ve = self.binary(&Op::Add, var, eps)?;
                let ve = self.runtime_value(ve, WHAT)?;
                let inv = self.table(ve, TableFn::Rsqrt)?;
                let y = self.binary(&Op::Mul, Operand::Value(d), inv)?;
                let mut y = as_value(self, y)?;
                // Scale and bias: over the normalized axes, or per channel (instance).
                let shape_for = |t: &Tensor<f64>| -> Vec<usize> {
                    if *instance {
                        let mut sh = vec![t.len()];
                        sh.extend(std::iter::repeat_n(1, r - 2));
                        sh
                    } else {
                        t.shape.clone()
                    }
                };
                if let Some(n) = inp(1) {
                    let g = self.constant(&n)?;
                    let g = g.reshaped(shape_for(&g));
                    let o = self.binary(&Op::Mul, Operand::Value(y), Operand::Const(g))?;
                    y = as_value(self, o)?;
                }
                match inp(2) {
                    Some(n) => {
                        let b = self.constant(&n)?;
                        let b = b.reshaped(shape_for(&b));
                        self.binary(&Op::Add, Operand::Value(y), Operand::Const(b))
                    }
                    None => Ok(Operand::Value(y)),
                }
            }
            Op::PRelu => {
                // max(x, 0) + slope·min(x, 0), with min(x, 0) = x − max(x, 0).
                let slope = self.constant(&inp(1).ok_or_else(|| self.fail("no slope"))?)?;
                let x = self.value(&arg0)?;
                let (sh, sc) = (self.shape(x), self.scale_of(x));
                let r = self.push(QOp::Relu, vec![x], sh, sc)?;
                let neg = self.binary(&Op::Sub, Operand::Value(x), Operand::Value(r))?;
                let scaled = match self.binary(&Op::Mul, neg, Operand::Const(slope))? {
                    Operand::Value(v) => Operand::Value(self.rescale_to(v, sc)?),
                    c => c,
                };
                self.binary(&Op::Add, Operand::Value(r), scaled)
            }
            Op::Softmax { axis, flatten } => {
                // exp(x − max) / Σ exp(x − max): max and sum over the axes, exp and the
                // reciprocal of the sum through tables, one product.
                let x = self.value(&arg0)?;
                let xs = self.shape(x);
                let a = axis_index(*axis, xs.len()).map_err(|e| self.fail(e))?;
                let axes: Vec<usize> = if *flatten {
                    (a..xs.len()).collect()
                } else {
                    vec![a]
                };
                let sc = self.scale_of(x);
                let m = self.push(
                    QOp::ReduceMax {
                        axes: axes.clone(),
                        keepdims: true,
                        min: false,
                    },
                    vec![x],
                    reduced_shape(&xs, &axes, true),
                    sc,
                )?;
                let d = self.binary(&Op::Sub, Operand::Value(x), Operand::Value(m))?;
                let d = self.runtime_value(d, "softmax")?;
                let e = self.table(d, TableFn::Exp)?;
                let e = self.runtime_value(e, "softmax")?;
                let (sum, _) = self.reduce_sum(e, &axes, true)?;
                let r = self.table(sum, TableFn::Reciprocal)?;
                self.binary(&Op::Mul, Operand::Value(e), r)
            }
            Op::Pow => {
                let p = self.constant(&inp(1).ok_or_else(|| self.fail("no exponent"))?)?;
                if p.len() != 1 {
                    return Err(self.fail("a Pow exponent that is not one number"));
                }
                let x = self.value(&arg0)?;
                if p.data[0] == 2.0 {
                    // x² exactly, by the product gate.
                    let xo = Operand::Value(x);
                    return self.binary(&Op::Mul, xo.clone(), xo);
                }
                self.table(x, TableFn::Pow { p: p.data[0] })
            }
            Op::Div => {
                let b_name = inp(1).ok_or_else(|| self.fail("needs two inputs"))?;
                let integer = self.model.integer_tensors();
                if node
                    .inputs
                    .iter()
                    .chain(&node.outputs)
                    .any(|t| integer.contains(t))
                {
                    // Integer division truncates toward zero (the preflight refuses it on
                    // runtime tensors, so both operands are static here).
                    let (Operand::Const(a), Operand::Const(b)) =
                        (self.operand(&arg0)?, self.operand(&b_name)?)
                    else {
                        return Err(self.fail("integer division of runtime tensors"));
                    };
                    if b.data.contains(&0.0) {
                        return Err(self.fail("integer division by 0"));
                    }
                    let q = zip_broadcast(&a, &b, |p, q| (*p / *q).trunc()).ok_or_else(|| {
                        self.fail(format!(
                            "shapes {:?} and {:?} do not broadcast",
                            a.shape, b.shape
                        ))
                    })?;
                    return Ok(Operand::Const(q));
                }
                match self.operand(&b_name)? {
                    // Division by a constant: a product with its reciprocal.
                    Operand::Const(t) => {
                        if t.data.contains(&0.0) {
                            return Err(self.fail("division by a constant 0"));
                        }
                        let r = t.map(|v| 1.0 / v);
                        self.binary(&Op::Mul, self.operand(&arg0)?, Operand::Const(r))
                    }
                    // By a runtime tensor: a product with its reciprocal from a table.
                    Operand::Value(b) => {
                        let r = self.table(b, TableFn::Reciprocal)?;
                        self.binary(&Op::Mul, self.operand(&arg0)?, r)
                    }
                }
            }
            Op::AveragePool {
                kernel_shape,
                strides: st,
                pads,
                count_include_pad,
            } => {
                let x = self.value(&arg0)?;
                let xs = self.shape(x);
                let nsp = kernel_shape.len();
                if xs.len() != nsp + 2 {
                    return Err(self.fail(format!(
                        "kernel {:?} does not match input {:?}",
                        kernel_shape, xs
                    )));
                }
                let st = if st.is_empty() {
                    vec![1; nsp]
                } else {
                    st.clone()
                };
                let ones = vec![1; nsp];
                let (pb, pe) = pads.resolve(&xs[2..], kernel_shape, &st, &ones);
                let mut out_shape = xs[..2].to_vec();
                for d in 0..nsp {
                    out_shape.push(
                        window_out(xs[d + 2], pb[d] + pe[d], kernel_shape[d], st[d], false)
                            .map_err(|e| self.fail(e))?,
                    );
                }
                // Divisor per output position: the window size, or only its in-bounds part.
                let mut divisor = vec![];
                for_each_index(&out_shape[2..], |p| {
                    let mut n = 1u64;
                    for d in 0..nsp {
                        let start = (p[d] * st[d]) as isize - pb[d] as isize;
                        let end = start + kernel_shape[d] as isize;
                        let (lo, hi) = if *count_include_pad {
                            (
                                start.max(-(pb[d] as isize)),
                                end.min((xs[d + 2] + pe[d]) as isize),
                            )
                        } else {
                            (start.max(0), end.min(xs[d + 2] as isize))
                        };
                        n *= (hi - lo).max(1) as u64;
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
                        kernel: kernel_shape.clone(),
                        strides: st,
                        pads_begin: pb,
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
            Op::MaxPool {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                ceil_mode,
            } => {
                let x = self.value(&arg0)?;
                let xs = self.shape(x);
                let nsp = kernel_shape.len();
                if xs.len() != nsp + 2 {
                    return Err(self.fail(format!(
                        "kernel {:?} does not match input {:?}",
                        kernel_shape, xs
                    )));
                }
                let st = if st.is_empty() {
                    vec![1; nsp]
                } else {
                    st.clone()
                };
                let dil = if dilations.is_empty() {
                    vec![1; nsp]
                } else {
                    dilations.clone()
                };
                let (pb, pe) = pads.resolve(&xs[2..], kernel_shape, &st, &dil);
                let mut out_shape = xs[..2].to_vec();
                for d in 0..nsp {
                    let eff = (kernel_shape[d] - 1) * dil[d] + 1;
                    let mut o = window_out(xs[d + 2], pb[d] + pe[d], eff, st[d], *ceil_mode)
                        .map_err(|e| self.fail(e))?;
                    // With ceil_mode the last window must still start inside the input or its
                    // leading padding (ONNX's rule).
                    if *ceil_mode && (o - 1) * st[d] >= xs[d + 2] + pb[d] {
                        o -= 1;
                    }
                    out_shape.push(o);
                }
                let sc = self.scale_of(x);
                let op = QOp::MaxPool {
                    kernel: kernel_shape.clone(),
                    strides: st,
                    pads_begin: pb,
                    dilations: dil,
                };
                Ok(Operand::Value(self.push(op, vec![x], out_shape, sc)?))
            }
            Op::GlobalAveragePool => {
                let x = self.value(&arg0)?;
                let xs = self.shape(x);
                if xs.len() < 3 {
                    return Err(self.fail("GlobalAveragePool needs a spatial input"));
                }
                let axes: Vec<usize> = (2..xs.len()).collect();
                self.mean(x, axes, true)
            }
            Op::Pad { pads, value } => {
                let xs = self.shape_of(&arg0)?;
                let r = xs.len();
                let pads: Vec<i64> = match (pads, inp(1)) {
                    (Some(p), _) => p.clone(),
                    (None, Some(n)) => self.constant_ints(&n)?,
                    (None, None) => vec![0; 2 * r],
                };
                let value = match inp(2) {
                    Some(n) => self.constant(&n)?.data.first().copied().unwrap_or(0.0),
                    None => *value,
                };
                if pads.len() != 2 * r {
                    return Err(self.fail(format!("{} pads for rank {r}", pads.len())));
                }
                let out: Vec<usize> = (0..r)
                    .map(|d| xs[d] as i64 + pads[d] + pads[r + d])
                    .map(|n| usize::try_from(n).unwrap_or(0))
                    .collect();
                let index = index_map(&xs, &out, |d, o| {
                    let i = o as i64 - pads[d];
                    (i >= 0 && i < xs[d] as i64).then_some(i as usize)
                });
                self.rewire(&arg0, out, index, value)
            }
            Op::Slice { starts, ends, axes } => {
                let xs = self.shape_of(&arg0)?;
                let r = xs.len();
                let starts = match starts {
                    Some(v) => v.clone(),
                    None => self.constant_ints(&inp(1).ok_or_else(|| self.fail("no starts"))?)?,
                };
                let ends = match ends {
                    Some(v) => v.clone(),
                    None => self.constant_ints(&inp(2).ok_or_else(|| self.fail("no ends"))?)?,
                };
                let axes: Vec<i64> = match (axes, inp(3)) {
                    (Some(v), _) => v.clone(),
                    (None, Some(n)) => self.constant_ints(&n)?,
                    (None, None) => (0..starts.len() as i64).collect(),
                };
                let steps: Vec<i64> = match inp(4) {
                    Some(n) => self.constant_ints(&n)?,
                    None => vec![1; starts.len()],
                };
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
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
            Op::Gather { axis } => {
                let xs = self.shape_of(&arg0)?;
                let r = xs.len();
                let a = axis_index(*axis, r).map_err(|e| self.fail(e))?;
                let ind_name = inp(1).ok_or_else(|| self.fail("no indices"))?;
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
                    let x = self.value(&arg0)?;
                    let step = xst[a];
                    let v = self.select(x, idx, out, xs[a], &at, &|e, m| base[e] + m * step)?;
                    return Ok(Operand::Value(v));
                }
                let ind = self.constant(&ind_name)?;
                let n = xs[a] as i64;
                let mut picks = vec![];
                for &v in &ind.data {
                    let i = if v < 0.0 { v as i64 + n } else { v as i64 };
                    if i < 0 || i >= n {
                        return Err(self.fail(format!("index {v} is out of range for {n}")));
                    }
                    picks.push(i as usize);
                }
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
            Op::Resize {
                coordinate_mode,
                nearest_mode,
                scales,
            } => {
                let xs = self.shape_of(&arg0)?;
                let r = xs.len();
                // Resize(X, roi, scales, sizes) from opset 11; (X, scales) before; Upsample's
                // scales are an attribute (opset < 9) or the second input.
                let last = node.inputs.len();
                let scales_in = if last >= 3 { inp(2) } else { inp(1) };
                let sizes: Option<Vec<i64>> = match inp(3) {
                    Some(n) => Some(self.constant_ints(&n)?).filter(|v| !v.is_empty()),
                    None => None,
                };
                let scales: Vec<f64> = match (sizes.as_ref(), scales_in, scales) {
                    (Some(sz), _, _) => sz
                        .iter()
                        .zip(&xs)
                        .map(|(&o, &i)| o as f64 / i as f64)
                        .collect(),
                    (None, Some(n), _) => self.constant(&n)?.data,
                    (None, None, Some(s)) => s.clone(),
                    (None, None, None) => return Err(self.fail("neither scales nor sizes")),
                };
                if scales.len() != r || scales.iter().any(|&s| s <= 0.0) {
                    return Err(self.fail(format!("scales {scales:?} for rank {r}")));
                }
                let out: Vec<usize> = match &sizes {
                    Some(sz) => sz.iter().map(|&v| v.max(0) as usize).collect(),
                    None => xs
                        .iter()
                        .zip(&scales)
                        .map(|(&n, &s)| (n as f64 * s).floor() as usize)
                        .collect(),
                };
                let (cm, nm) = (coordinate_mode.as_str(), nearest_mode.as_str());
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
            Op::Shape => {
                let sh = self.shape_of(&arg0)?;
                Ok(Operand::Const(Tensor::new(
                    vec![sh.len()],
                    sh.iter().map(|&d| d as f64).collect(),
                )))
            }
            Op::Squeeze { axes, unsqueeze } => {
                let sh = self.shape_of(&arg0)?;
                let axes: Option<Vec<i64>> = match (axes, inp(1)) {
                    (Some(a), _) => Some(a.clone()),
                    (None, Some(n)) => Some(self.constant_ints(&n)?),
                    (None, None) => None,
                };
                let target = if *unsqueeze {
                    let axes = axes.ok_or_else(|| self.fail("Unsqueeze needs axes"))?;
                    let r = sh.len() + axes.len();
                    let mut at: Vec<usize> = axes
                        .iter()
                        .map(|&a| axis_index(a, r))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| self.fail(e))?;
                    at.sort_unstable();
                    let mut out = sh.clone();
                    for a in at {
                        out.insert(a, 1);
                    }
                    out
                } else {
                    let r = sh.len();
                    let drop: Vec<usize> = match axes {
                        Some(a) => a
                            .iter()
                            .map(|&a| axis_index(a, r))
                            .collect::<std::result::Result<_, _>>()
                            .map_err(|e| self.fail(e))?,
                        None => (0..r).filter(|&d| sh[d] == 1).collect(),
                    };
                    if drop.iter().any(|&d| sh[d] != 1) {
                        return Err(self.fail(format!("cannot squeeze axes {drop:?} of {sh:?}")));
                    }
                    sh.iter()
                        .enumerate()
                        .filter(|(d, _)| !drop.contains(d))
                        .map(|(_, &n)| n)
                        .collect()
                };
                self.reshape(&arg0, target)
            }
            Op::Tile => {
                let xs = self.shape_of(&arg0)?;
                let reps = self.constant_ints(&inp(1).ok_or_else(|| self.fail("no repeats"))?)?;
                if reps.len() != xs.len() || reps.iter().any(|&v| v < 0) {
                    return Err(self.fail(format!("repeats {reps:?} for shape {xs:?}")));
                }
                let out: Vec<usize> = xs
                    .iter()
                    .zip(&reps)
                    .map(|(&n, &k)| n * k as usize)
                    .collect();
                let index = index_map(&xs, &out, |d, o| Some(o % xs[d].max(1)));
                self.rewire(&arg0, out, index, 0.0)
            }
            Op::Expand => {
                let xs = self.shape_of(&arg0)?;
                let shape = self.constant_ints(&inp(1).ok_or_else(|| self.fail("no shape"))?)?;
                let want: Vec<usize> = shape.iter().map(|&v| v.max(0) as usize).collect();
                let out = broadcast_shape(&xs, &want).ok_or_else(|| {
                    self.fail(format!("shape {xs:?} does not broadcast to {want:?}"))
                })?;
                let index = broadcast_index_map(&xs, &out)
                    .into_iter()
                    .map(|i| i as i64)
                    .collect();
                self.rewire(&arg0, out, index, 0.0)
            }
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
            } => {
                let rank = self.shape_of(&arg0)?.len();
                let axes = match (axes, inp(1)) {
                    (Some(a), _) => a.clone(),
                    (None, Some(n)) => self.constant(&n)?.data.iter().map(|&v| v as i64).collect(),
                    (None, None) => vec![],
                };
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis_index(a, rank))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| self.fail(e))?;
                if axes.is_empty() {
                    if *noop_with_empty_axes {
                        return self.operand(&arg0);
                    }
                    axes = (0..rank).collect();
                }
                axes.sort();
                axes.dedup();
                let x = self.value(&arg0)?;
                if let Op::ReduceMax { min, .. } = node.op {
                    let out = reduced_shape(&self.shape(x), &axes, *keepdims);
                    let sc = self.scale_of(x);
                    let op = QOp::ReduceMax {
                        axes,
                        keepdims: *keepdims,
                        min,
                    };
                    Ok(Operand::Value(self.push(op, vec![x], out, sc)?))
                } else if matches!(node.op, Op::ReduceMean { .. }) {
                    self.mean(x, axes, *keepdims)
                } else {
                    let (sum, _) = self.reduce_sum(x, &axes, *keepdims)?;
                    Ok(Operand::Value(sum))
                }
            }
            Op::Flatten { axis } => {
                let sh = self.shape_of(&arg0)?;
                let a = if *axis < 0 {
                    *axis + sh.len() as i64
                } else {
                    *axis
                };
                if a < 0 || a as usize > sh.len() {
                    return Err(
                        self.fail(format!("axis {axis} is out of range for rank {}", sh.len()))
                    );
                }
                let a = a as usize;
                self.reshape(
                    &arg0,
                    vec![sh[..a].iter().product(), sh[a..].iter().product()],
                )
            }
            Op::Reshape { allowzero } => {
                let sh = self.shape_of(&arg0)?;
                let spec =
                    self.constant(&inp(1).ok_or_else(|| self.fail("Reshape needs a shape"))?)?;
                let target =
                    reshape_target(&sh, &spec.data, *allowzero).map_err(|e| self.fail(e))?;
                self.reshape(&arg0, target)
            }
            Op::Transpose { perm } => {
                let sh = self.shape_of(&arg0)?;
                let perm = perm
                    .clone()
                    .unwrap_or_else(|| (0..sh.len()).rev().collect());
                let mut check = perm.clone();
                check.sort();
                if check != (0..sh.len()).collect::<Vec<_>>() {
                    return Err(self.fail(format!(
                        "perm {perm:?} is not a permutation of rank {}",
                        sh.len()
                    )));
                }
                match self.operand(&arg0)? {
                    Operand::Const(t) => Ok(Operand::Const(t.transpose(&perm))),
                    Operand::Value(x) => {
                        let out: Vec<usize> = perm.iter().map(|&p| sh[p]).collect();
                        let sc = self.scale_of(x);
                        Ok(Operand::Value(self.push(
                            QOp::Transpose { perm },
                            vec![x],
                            out,
                            sc,
                        )?))
                    }
                }
            }
            Op::Concat { axis } => {
                let names: Vec<String> = node
                    .inputs
                    .iter()
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .collect();
                let ops: Vec<Operand> = names
                    .iter()
                    .map(|n| self.operand(n))
                    .collect::<Result<_>>()?;
                let shapes: Vec<Vec<usize>> = names
                    .iter()
                    .map(|n| self.shape_of(n))
                    .collect::<Result<_>>()?;
                let rank = shapes[0].len();
                let ax = axis_index(*axis, rank).map_err(|e| self.fail(e))?;
                for sh in &shapes {
                    if sh.len() != rank || (0..rank).any(|d| d != ax && sh[d] != shapes[0][d]) {
                        return Err(self.fail(format!(
                            "Concat inputs {shapes:?} do not match off axis {ax}"
                        )));
                    }
                }
                if ops.iter().all(|o| matches!(o, Operand::Const(_))) {
                    let ts: Vec<Tensor<f64>> = ops
                        .into_iter()
                        .map(|o| {
                            if let Operand::Const(t) = o {
                                t
                            } else {
                                unreachable!()
                            }
                        })
                        .collect();
                    return Ok(Operand::Const(concat(&ts.iter().collect::<Vec<_>>(), ax)));
                }
                let target = ops
                    .iter()
                    .map(|o| {
                        if let Operand::Value(v) = o {
                            self.scale_of(*v)
                        } else {
                            s
                        }
                    })
                    .max()
                    .unwrap_or(s);
                let mut ids = vec![];
                for o in ops {
                    let v = match o {
                        Operand::Value(v) => v,
                        Operand::Const(t) => self.const_value(&t, target)?,
                    };
                    ids.push(self.rescale_to(v, target)?);
                }
                let mut out = shapes[0].clone();
                out[ax] = shapes.iter().map(|sh| sh[ax]).sum();
                Ok(Operand::Value(self.push(
                    QOp::Concat { axis: ax },
                    ids,
                    out,
                    target,
                )?))
            }
            Op::BatchNormalization { .. } => {
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

    /// `y = x·w + c` over the last axis of `x`; `c` is folded into the op's bias when it is one
    /// value per output column, otherwise added afterwards.
    fn linear(
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
    fn bn_affine(&self, bn: &Node) -> Result<(Vec<f64>, Vec<f64>)> {
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

    fn reduce_sum(&mut self, x: usize, axes: &[usize], keepdims: bool) -> Result<(usize, u64)> {
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

    fn mean(&mut self, x: usize, axes: Vec<usize>, keepdims: bool) -> Result<Operand> {
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

    /// A lookup table over the calibrated input range (twice the largest magnitude seen, at least
    /// ±1.0). The table's input scale is the largest that keeps it within `table_bits`; the table
    /// is interpolated (see [`QOp::Interp`]) with the widest step that stays within one output
    /// unit of the exact table over the whole range.
    fn table(&mut self, x: usize, func: TableFn) -> Result<Operand> {
        let sx = self.scale_of(x);
        let (mn, mx) = self.values[x].range;
        let max_abs = (mn.unsigned_abs().max(mx.unsigned_abs()) as f64) / 2f64.powi(sx);
        // rsqrt reads variances, often tiny and steep there: its table spans what calibration
        // saw (twice over) rather than at least ±1, for resolution where it matters.
        let reach = match func {
            TableFn::Rsqrt => (2.0 * max_abs).max(2f64.powi(-sx)),
            _ => (2.0 * max_abs).max(1.0),
        };
        let mut t = sx;
        while t > 0 && 2.0 * reach * 2f64.powi(t) + 1.0 > 2f64.powi(self.cfg.table_bits as i32) {
            t -= 1;
        }
        let bound = (reach * 2f64.powi(t)).ceil() as i64;
        if 2 * bound + 1 > 1i64 << self.cfg.table_bits {
            return Err(self.fail(format!(
                "inputs reach ±{max_abs:.3}, too wide for a {} table of 2^{} entries",
                func.name(),
                self.cfg.table_bits
            )));
        }
        let xin = self.rescale_to(x, t)?;
        let sh = self.shape(xin);
        let s = self.s;
        // Interpolate between points 2^b apart when that stays within one output unit of the
        // exact table everywhere in range: the table shrinks 2^b-fold, and with it k.
        let step_bits = (1..=10u32)
            .rev()
            .find(|&b| {
                let (lo, hi) = interp_domain(-bound, bound, b);
                (lo..=hi).all(|v| {
                    let e = table_entry(func, v, t, s);
                    (interp_entry(func, v, t, s, b) - e).abs() <= 1
                })
            })
            .unwrap_or(0);
        let op = if step_bits >= 2 {
            QOp::Interp {
                func,
                in_scale: t,
                out_scale: s,
                lo: -bound,
                hi: bound,
                step_bits,
            }
        } else {
            QOp::Table {
                func,
                in_scale: t,
                out_scale: s,
                lo: -bound,
                hi: bound,
            }
        };
        Ok(Operand::Value(self.push(op, vec![xin], sh, s)?))
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
