//! The ops the chain knows: `Op` (one variant per ONNX op or op form), padding forms and raw
//! attributes. The element-wise functions computed through tables are in `tables`.

use super::*;

/// An attribute value as stored in the file.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Strs(Vec<String>),
    Tensor { shape: Vec<usize>, elements: usize },
    Other(String),
}

/// The ONNX ops over any number of tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Variadic {
    Max,
    Min,
    Sum,
    Mean,
}

/// The ops the quantizer and circuit compiler understand, with their attributes parsed.
/// Anything else is `Unsupported` and named by the preflight.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum Op {
    Gemm {
        alpha: f64,
        beta: f64,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
    /// Einsum of one or two operands: `inputs` (one letter per axis each) and `output`, from an
    /// equation checked at parse time (explicit or implicit output). An ellipsis is the one
    /// character [`ELLIPSIS`], expanded once the ranks are known; a letter twice in one operand
    /// is its diagonal.
    Einsum {
        inputs: Vec<Vec<char>>,
        output: Vec<char>,
    },
    /// Max, Min, Sum or Mean of one or more tensors, broadcast.
    Variadic {
        of: Variadic,
    },
    Add,
    Sub,
    Mul,
    Relu,
    LeakyRelu {
        alpha: f64,
    },
    /// Clip to `[min, max]` (opset < 11: these attributes; from 11 on: constant inputs 1 and
    /// 2, which take precedence). A missing bound does not clip.
    Clip {
        min: Option<f64>,
        max: Option<f64>,
    },
    Sigmoid,
    Tanh,
    /// An element-wise function through a lookup table (Elu, Erf, Sqrt, Sin, …).
    Unary(TableFn),
    /// Pow with a constant exponent.
    Pow,
    Neg,
    /// Less, Greater, LessOrEqual, GreaterOrEqual: 1.0 or 0.0.
    Compare {
        less: bool,
        or_equal: bool,
    },
    Not,
    Where,
    /// LayerNormalization over the axes from `axis` on (`instance`: InstanceNormalization, over
    /// the spatial axes, scale and bias per channel; with `groups`, GroupNormalization: over
    /// each group of channels and the spatial axes, scale and bias per channel, or per group
    /// as opset 18 gives them).
    Normalization {
        axis: i64,
        epsilon: f64,
        instance: bool,
        groups: Option<usize>,
    },
    /// PRelu with a constant slope.
    PRelu,
    /// Softmax (or LogSoftmax) over `axis` (before opset 13: over all axes from `axis` on,
    /// `flatten`).
    Softmax {
        axis: i64,
        flatten: bool,
        /// LogSoftmax: `x − log Σ exp(x)`.
        log: bool,
    },
    /// Div: by a constant, or by a runtime tensor (through a reciprocal table).
    Div,
    Conv {
        kernel_shape: Option<Vec<usize>>,
        strides: Vec<usize>,
        pads: Pads,
        dilations: Vec<usize>,
        group: usize,
    },
    /// ConvTranspose with explicit pads (no auto_pad, no output_shape), group 1.
    ConvTranspose {
        strides: Vec<usize>,
        pads: Vec<usize>,
        dilations: Vec<usize>,
        output_padding: Vec<usize>,
    },
    AveragePool {
        kernel_shape: Vec<usize>,
        strides: Vec<usize>,
        pads: Pads,
        dilations: Vec<usize>,
        count_include_pad: bool,
        ceil_mode: bool,
    },
    MaxPool {
        kernel_shape: Vec<usize>,
        strides: Vec<usize>,
        pads: Pads,
        dilations: Vec<usize>,
        ceil_mode: bool,
    },
    GlobalAveragePool,
    Flatten {
        axis: i64,
    },
    Reshape {
        allowzero: bool,
    },
    Transpose {
        perm: Option<Vec<usize>>,
    },
    Concat {
        axis: i64,
    },
    BatchNormalization {
        epsilon: f64,
    },
    Identity,
    Constant,
    /// ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceSumSquare, ReduceL1 and ReduceL2;
    /// `axes` from the attribute (before opset 18 for all but ReduceSum) or the second input.
    Reduce {
        of: Reduction,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// Pad: `pads` from the attribute (opset < 11) or the second input.
    Pad {
        pads: Option<Vec<i64>>,
        value: f64,
        mode: PadMode,
    },
    /// Split along `axis`: piece sizes from the attribute (before opset 13) or the constant
    /// second input, else as many equal pieces as the node has outputs, the last one smaller
    /// (opset 18's `num_outputs`).
    Split {
        axis: i64,
        split: Option<Vec<i64>>,
    },
    /// Slice: from attributes (opset < 10) or the constant inputs.
    Slice {
        starts: Option<Vec<i64>>,
        ends: Option<Vec<i64>>,
        axes: Option<Vec<i64>>,
    },
    /// Gather: constant indices are rewiring, runtime ones a selection (`QOp::Select`).
    Gather {
        axis: i64,
    },
    /// Resize, nearest mode (Upsample is refused: tract cannot run it).
    Resize {
        coordinate_mode: String,
        nearest_mode: String,
        scales: Option<Vec<f64>>,
        /// The axes `scales` or `sizes` are given for (opset 18; None: all).
        axes: Option<Vec<i64>>,
        /// With `sizes`: `stretch` (each axis to its size), `not_larger` or `not_smaller` (one
        /// scale for the listed axes, the smallest or the largest of theirs; opset 18).
        keep_aspect: String,
    },
    Tile,
    Expand,
    /// DepthToSpace of a `[N, C, H, W]` tensor by `block` (`crd`: the CRD ordering, else DCR),
    /// or with `to_depth` its inverse, SpaceToDepth.
    DepthSpace {
        block: usize,
        crd: bool,
        to_depth: bool,
    },
    /// The input's dimensions `start..end` (opset 15; negative counts from the end, clamped), a
    /// constant once the input's shape is known.
    Shape {
        start: i64,
        end: Option<i64>,
    },
    /// ConstantOfShape of a shape computed from static tensors (one from initializers is folded
    /// at load time): filled with `value`.
    ConstantOfShape {
        value: f64,
    },
    /// `out[…] = data[…, indices[…], …]` element by element along `axis`; constant indices are
    /// rewiring, runtime ones a selection (`QOp::Select`).
    GatherElements {
        axis: i64,
    },
    /// ScatterElements (and the older Scatter), reduction `none`: the data with `updates[…]`
    /// written at `indices[…]` along `axis`; constant indices are rewiring, runtime ones a
    /// one-hot choice per written element. Two writes to one element are refused (ONNX leaves
    /// their result undefined).
    ScatterElements {
        axis: i64,
    },
    /// Cast to an integer type: toward zero (saturation and wrapping are not modelled).
    Truncate,
    /// OneHot with constant depth and values: a new axis `axis` of `depth` entries, `on` where
    /// it equals the index (negative: counted from the end), else `off`.
    OneHot {
        axis: i64,
    },
    /// ArgMax, or ArgMin with `min`: the first (or with `last`, the last) position of the
    /// extreme along `axis`.
    ArgMax {
        axis: i64,
        keepdims: bool,
        last: bool,
        min: bool,
    },
    /// The `k` largest (or smallest) along `axis`, sorted; `k` from the attribute (before opset
    /// 10) or the constant second input. Only the Values output.
    TopK {
        axis: i64,
        largest: bool,
        k: Option<i64>,
    },
    /// RNN (tanh) or LSTM (sigmoid gates, tanh cell), forward, unrolled over the sequence.
    Recurrent {
        lstm: bool,
        hidden: usize,
    },
    /// Squeeze / Unsqueeze: `axes` from the attribute (before opset 13) or the second input.
    Squeeze {
        axes: Option<Vec<i64>>,
        unsqueeze: bool,
    },
    Unsupported {
        reason: String,
    },
}

/// Spatial padding: explicit begin/end pads per spatial axis, or an `auto_pad` rule resolved once
/// the input shape is known.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Pads {
    Explicit { begin: Vec<usize>, end: Vec<usize> },
    SameUpper,
    SameLower,
}

impl Pads {
    /// Begin and end padding for each spatial axis of `input` (spatial dims only).
    pub fn resolve(
        &self,
        input: &[usize],
        kernel: &[usize],
        strides: &[usize],
        dilations: &[usize],
    ) -> (Vec<usize>, Vec<usize>) {
        match self {
            Pads::Explicit { begin, end } => {
                let n = input.len();
                let pick = |v: &Vec<usize>| if v.is_empty() { vec![0; n] } else { v.clone() };
                (pick(begin), pick(end))
            }
            Pads::SameUpper | Pads::SameLower => {
                let mut b = vec![];
                let mut e = vec![];
                for i in 0..input.len() {
                    let out = input[i].div_ceil(strides[i]);
                    let eff = (kernel[i] - 1) * dilations[i] + 1;
                    let total = ((out - 1) * strides[i] + eff).saturating_sub(input[i]);
                    let small = total / 2;
                    let big = total - small;
                    if *self == Pads::SameUpper {
                        b.push(small);
                        e.push(big);
                    } else {
                        b.push(big);
                        e.push(small);
                    }
                }
                (b, e)
            }
        }
    }
}

/// What a reduction computes over its axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    /// `Σ x²`.
    SumSquare,
    /// `Σ |x|`.
    L1,
    /// `√(Σ x²)`.
    L2,
    /// `log Σ exp(x)`.
    LogSumExp,
}

/// Resize's coordinate transformations, nearest modes and aspect policies the lowering knows.
pub const COORDINATE_MODES: [&str; 5] = [
    "asymmetric",
    "half_pixel",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "align_corners",
];
pub const NEAREST_MODES: [&str; 4] = ["floor", "ceil", "round_prefer_ceil", "round_prefer_floor"];
pub const ASPECT_POLICIES: [&str; 3] = ["stretch", "not_larger", "not_smaller"];

/// Einsum's ellipsis (`...`), one character in a term.
pub const ELLIPSIS: char = '.';

/// How Pad fills the new elements: with a constant, the mirror image without the edge element
/// (`reflect`), or the edge element repeated (`edge`). Each is rewiring. Opset 19's `wrap` is not
/// among them: tract cannot run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
}
