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
use crate::model::{FloatRun, Model, Node, Op, PadMode, Reduction};
use crate::tensor::{
    Tensor, Window, broadcast_index_map, broadcast_shape, for_each_index, numel, reduction_map,
    strides, zip_broadcast,
};

mod activations;
mod arithmetic;
mod calibrate;
pub mod dataset;
mod dense;
mod eval;
mod indexing;
mod lower;
mod matmul;
mod normalization;
pub mod pipeline;
mod pooling;
mod recurrent;
mod reductions;
pub mod report;
mod selection;
mod shape;
mod spec;

pub use calibrate::{Calibration, choose_scale, quantize, quantize_calibrated};
pub use eval::*;
pub use lower::*;
pub use selection::Selection;

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
    /// Safety margin over the calibrated ranges: the automatic scale and every table cover
    /// magnitudes up to `margin` times the largest the calibration samples reached. Written
    /// only when it is not the default 2.
    #[serde(default = "default_margin", skip_serializing_if = "is_default_margin")]
    pub margin: f64,
    /// Every table exact, none interpolated. An interpolated table has fewer rows but may be one
    /// output unit off the exact one; the chain sets this where exact tables are the more
    /// accurate within the target's budget (`receipt::precision`). Written only when set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_tables: bool,
    /// Interpolated tables keep their input as fine as 2^table_bits points allow, rather than
    /// as fine as 2^table_bits exact entries allow (then interpolated): more points, less
    /// error. The chain sets this where it is the more accurate within the target's budget
    /// (`receipt::precision`). Written only when set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fine_tables: bool,
    /// What the chain optimizes when it chooses the scale and the tables
    /// (`receipt::precision`). Not recorded: the choice is (as `max_scale` and `exact_tables`).
    #[serde(skip)]
    pub target: Target,
    /// `param_bits` was given (`--param-bits`): the precision choice keeps it.
    #[serde(skip)]
    pub param_bits_given: bool,
}

/// What the chain optimizes when it chooses the quantization's precision (`--target`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The default scale: the smallest circuit.
    Resources,
    /// The most accurate quantization that keeps k small.
    #[default]
    Balanced,
    /// The most accurate quantization within a larger k.
    Accuracy,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Resources => "resources",
            Target::Balanced => "balanced",
            Target::Accuracy => "accuracy",
        }
    }
}

pub const DEFAULT_MARGIN: f64 = 2.0;
/// The margins a quantized model may record.
pub const MARGINS: std::ops::RangeInclusive<f64> = 1.0..=1024.0;

fn default_margin() -> f64 {
    DEFAULT_MARGIN
}

fn is_default_margin(m: &f64) -> bool {
    *m == DEFAULT_MARGIN
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
            margin: DEFAULT_MARGIN,
            exact_tables: false,
            fine_tables: false,
            target: Target::default(),
            param_bits_given: false,
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
    /// `y = ⌊√(x·2^shift)⌋` for `x ≥ 0`, exactly: the circuit proves `y² ≤ x·2^shift < (y+1)²`
    /// with two range checks, no table. (Sqrt rounds to nearest with a rescale by 2 after it.)
    Sqrt {
        shift: u32,
    },
    /// `y = ⌊(num + ⌊x/2⌋) / x⌋` for `x ≥ 1`: `num / x` rounded to nearest (ties up), exactly.
    /// The circuit proves `num + h = y·x + r` with `x = 2h + e`, `0 ≤ r < x`, no table.
    Recip {
        num: u64,
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
    /// Sum over each window (padding contributes nothing); input `[N, C, *spatial]`. Empty
    /// `dilations` are ones (and are not written).
    SumPool {
        kernel: Vec<usize>,
        strides: Vec<usize>,
        pads_begin: Vec<usize>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        dilations: Vec<usize>,
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
    /// Selection by runtime indices (Gather and GatherElements with runtime indices): output
    /// `e` is `data[base[e] + m·stride]` where the index `idx[at[e]]` is `m·2^shift` for `m` in
    /// `0..n`, or, with `negative`, `(m − n)·2^shift` (counted from the end); any other index
    /// is an error. `negative` is set when calibration saw a negative index (it doubles the
    /// candidates). `data` is the constant selected from, or None when that is the op's second
    /// input (a runtime value). The index is the first input.
    Select {
        n: usize,
        stride: usize,
        shift: u32,
        negative: bool,
        base: Vec<usize>,
        at: Vec<usize>,
        data: Option<Vec<i64>>,
    },
    /// ScatterElements by runtime indices: the data (second input) with `updates[q]` (third
    /// input) written at `base[q] + m·stride`, where the index `idx[q]` (first input) is
    /// `m·2^shift` as for [`QOp::Select`] (`n`, `negative` alike). An index that selects
    /// nothing, or two writes to one element, is an error.
    Scatter {
        n: usize,
        stride: usize,
        shift: u32,
        negative: bool,
        base: Vec<usize>,
    },
}

/// The integer ops that carry no parameter tensor, named once for [`QOp::params`] and
/// [`QOp::params_mut`] (a pattern, so both matches stay exhaustive).
macro_rules! without_params {
    () => {
        QOp::Input { .. }
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
            | QOp::SumPool { .. }
            | QOp::MaxPool { .. }
            | QOp::ReduceSum { .. }
            | QOp::ReduceMax { .. }
            | QOp::Reshape
            | QOp::Transpose { .. }
            | QOp::Concat { .. }
            | QOp::Step { .. }
            | QOp::MatMul { .. }
            | QOp::Gather { .. }
            | QOp::Scatter { .. }
    };
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
            QOp::Const { data }
            | QOp::Select {
                data: Some(data), ..
            } => vec![("constant", data)],
            QOp::Select { data: None, .. } => vec![],
            without_params!() => vec![],
        }
    }

    /// [`QOp::params`], to change (redaction, tests).
    pub fn params_mut(&mut self) -> Vec<&mut Vec<i64>> {
        match self {
            QOp::Linear { weight, bias, .. } | QOp::Conv { weight, bias, .. } => {
                std::iter::once(weight).chain(bias.as_mut()).collect()
            }
            QOp::Const { data }
            | QOp::Select {
                data: Some(data), ..
            } => vec![data],
            QOp::Select { data: None, .. } => vec![],
            without_params!() => vec![],
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
            QOp::Sqrt { .. } => "sqrt",
            QOp::Recip { .. } => "recip",
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
            QOp::Select { .. } => "select",
            QOp::Scatter { .. } => "scatter",
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
    /// Smallest and largest integer over the calibration samples (the ranges the tables and
    /// scales were chosen for; recorded so the model can be re-derived without the data).
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

/// For each Conv/Gemm node, the BatchNormalization that directly and solely consumes it, so the
/// two are compiled as one layer.
pub(super) fn batchnorm_folds(model: &Model) -> HashMap<usize, usize> {
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in model.nodes.iter().enumerate() {
        for inp in &n.inputs {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let outputs: Vec<&str> = model.outputs.iter().map(|o| o.name.as_str()).collect();
    let mut folds = HashMap::new();
    for (i, n) in model.nodes.iter().enumerate() {
        // A Gemm with a runtime B or C is a product of runtime tensors: nothing folds into it.
        let runtime_operand = n.inputs.iter().skip(1).any(|i| !model.is_constant(i));
        if !matches!(n.op, Op::Conv { .. } | Op::Gemm { .. })
            || (matches!(n.op, Op::Gemm { .. }) && runtime_operand)
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
            dilations: vec![],
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
