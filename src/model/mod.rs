//! Stage 1 of the chain: the float ONNX model.
//!
//! We read op types, attributes and initializers straight from the protobuf (tract's typed model
//! is too lowered to drive a compiler: Gemm becomes EinSum+Mul+Add), keep them in a typed graph
//! of our own, and use tract for what it is good at: shape inference and float inference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Error, Result, Unsupported};
use crate::files::{MODEL_CAP, read_capped};
use crate::tensor::{Tensor, numel};

mod check;
pub mod input;
pub mod types;

/// A graph input or output as declared in the file.
#[derive(Clone, Debug, Serialize)]
pub struct ValueInfo {
    pub name: String,
    /// ONNX element type name ("float", "int64", ...).
    pub dtype: String,
    /// Declared dimensions; None for a symbolic or missing dimension.
    pub dims: Vec<Option<usize>>,
}

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

/// An element-wise function, evaluated by the circuit through a lookup table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFn {
    Sigmoid,
    Tanh,
    Elu {
        alpha: f64,
    },
    Selu {
        alpha: f64,
        gamma: f64,
    },
    Softplus,
    Erf,
    /// Square root; 0 below 0 (where ONNX gives NaN).
    Sqrt,
    HardSigmoid {
        alpha: f64,
        beta: f64,
    },
    Sin,
    Cos,
    Exp,
    Abs,
    /// `x^p` for a constant exponent; 0 where it is not a real number.
    Pow {
        p: f64,
    },
    /// `1/x`, for division by a runtime tensor; 0 at 0.
    Reciprocal,
    Tan,
    /// `1/√x` for normalizations; 0 at or below 0.
    Rsqrt,
    /// Acos and Asin: 0 outside [-1, 1] (where ONNX gives NaN).
    Acos,
    Asin,
    Atan,
    Sign,
}

impl TableFn {
    pub fn apply(self, x: f64) -> f64 {
        let y = match self {
            TableFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            TableFn::Tanh => x.tanh(),
            TableFn::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            TableFn::Selu { alpha, gamma } => gamma * if x > 0.0 { x } else { alpha * x.exp_m1() },
            TableFn::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            TableFn::Erf => libm::erf(x),
            TableFn::Sqrt => x.max(0.0).sqrt(),
            TableFn::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            TableFn::Sin => x.sin(),
            TableFn::Cos => x.cos(),
            TableFn::Exp => x.exp(),
            TableFn::Abs => x.abs(),
            TableFn::Pow { p } => x.powf(p),
            TableFn::Reciprocal => 1.0 / x,
            TableFn::Rsqrt => 1.0 / x.sqrt(),
            TableFn::Tan => x.tan(),
            TableFn::Acos => x.acos(),
            TableFn::Asin => x.asin(),
            TableFn::Atan => x.atan(),
            TableFn::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
        };
        if y.is_finite() { y } else { 0.0 }
    }

    /// The ONNX op this table stands for.
    pub fn name(self) -> &'static str {
        match self {
            TableFn::Sigmoid => "Sigmoid",
            TableFn::Tanh => "Tanh",
            TableFn::Elu { .. } => "Elu",
            TableFn::Selu { .. } => "Selu",
            TableFn::Softplus => "Softplus",
            TableFn::Erf => "Erf",
            TableFn::Sqrt => "Sqrt",
            TableFn::HardSigmoid { .. } => "HardSigmoid",
            TableFn::Sin => "Sin",
            TableFn::Cos => "Cos",
            TableFn::Exp => "Exp",
            TableFn::Abs => "Abs",
            TableFn::Pow { .. } => "Pow",
            TableFn::Reciprocal => "Reciprocal",
            TableFn::Rsqrt => "Rsqrt",
            TableFn::Tan => "Tan",
            TableFn::Acos => "Acos",
            TableFn::Asin => "Asin",
            TableFn::Atan => "Atan",
            TableFn::Sign => "Sign",
        }
    }
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
    Add,
    Sub,
    Mul,
    Relu,
    LeakyRelu {
        alpha: f64,
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
    /// the spatial axes, scale and bias per channel).
    Normalization {
        axis: i64,
        epsilon: f64,
        instance: bool,
    },
    /// PRelu with a constant slope.
    PRelu,
    /// Softmax over `axis` (before opset 13: over all axes from `axis` on, `flatten`).
    Softmax {
        axis: i64,
        flatten: bool,
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
        count_include_pad: bool,
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
    ReduceMean {
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceSum {
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// Pad (constant mode): `pads` from the attribute (opset < 11) or the second input.
    Pad {
        pads: Option<Vec<i64>>,
        value: f64,
    },
    /// Slice: from attributes (opset < 10) or the constant inputs.
    Slice {
        starts: Option<Vec<i64>>,
        ends: Option<Vec<i64>>,
        axes: Option<Vec<i64>>,
    },
    /// Gather with constant indices.
    Gather {
        axis: i64,
    },
    /// Resize / Upsample, nearest mode.
    Resize {
        coordinate_mode: String,
        nearest_mode: String,
        scales: Option<Vec<f64>>,
    },
    Tile,
    Expand,
    /// The input's shape, a constant once the input's shape is known.
    Shape,
    /// ConstantOfShape of a shape computed from static tensors (one from initializers is folded
    /// at load time): filled with `value`.
    ConstantOfShape {
        value: f64,
    },
    /// `out[…] = data[…, indices[…], …]` element by element along `axis`; constant indices are
    /// rewiring, runtime ones a selection (see the quantizer's `select`).
    GatherElements {
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
    /// ReduceMax, or ReduceMin with `min`.
    ReduceMax {
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
        min: bool,
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

/// One ONNX node, with its raw attributes (for display) and its parsed op.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: BTreeMap<String, Attr>,
    pub op: Op,
}

/// A loaded ONNX model: our typed graph plus what tract needs to run it.
#[derive(Clone, Debug)]
pub struct Model {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: usize,
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// Initializers and the values of Constant nodes, by tensor name.
    pub constants: BTreeMap<String, Tensor<f64>>,
    /// Names of the initializers (the model's parameters), in file order.
    pub initializer_names: Vec<String>,
    pub nodes: Vec<Node>,
    proto: pb::ModelProto,
}

/// Float values of every tensor of one run, by ONNX tensor name.
#[derive(Clone, Debug, Default)]
pub struct FloatRun {
    pub values: HashMap<String, Tensor<f64>>,
}

/// The first `n` characters of `s` (all of it when shorter): a short form of a hash, safe on
/// any text, since hashes in a folder are untrusted input.
pub fn short_hash(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a tract call, turning both its errors and any panic inside it into our error type. The
/// panic is caught quietly: the user sees the error, not a panic report.
fn guarded<T>(file: &str, what: &str, f: impl FnOnce() -> TractResult<T>) -> Result<T> {
    match crate::panics::catch_quietly(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::invalid(file, format!("{what}: {e:#}"))),
        Err(msg) => Err(Error::invalid(
            file,
            format!("{what}: tract failed internally: {msg}"),
        )),
    }
}

fn dtype_name(elem_type: i32) -> &'static str {
    use types::code;
    match elem_type {
        code::FLOAT => "float",
        code::UINT8 => "uint8",
        code::INT8 => "int8",
        code::INT16 => "int16",
        code::INT32 => "int32",
        code::INT64 => "int64",
        code::BOOL => "bool",
        code::FLOAT16 => "float16",
        code::DOUBLE => "double",
        _ => "other",
    }
}

fn datum_type(dtype: &str) -> DatumType {
    match dtype {
        "uint8" => DatumType::U8,
        "int8" => DatumType::I8,
        "int16" => DatumType::I16,
        "int32" => DatumType::I32,
        "int64" => DatumType::I64,
        "bool" => DatumType::Bool,
        "float16" => DatumType::F16,
        "double" => DatumType::F64,
        _ => DatumType::F32,
    }
}

fn value_info(v: &pb::ValueInfoProto) -> ValueInfo {
    let mut dtype = "other";
    let mut dims = vec![];
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    {
        dtype = dtype_name(t.elem_type);
        if let Some(shape) = &t.shape {
            for d in &shape.dim {
                dims.push(match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) if *n >= 0 => {
                        Some(*n as usize)
                    }
                    _ => None,
                });
            }
        }
    }
    ValueInfo {
        name: v.name.clone(),
        dtype: dtype.into(),
        dims,
    }
}

fn to_f64_tensor(t: &tract_onnx::prelude::Tensor) -> TractResult<Tensor<f64>> {
    let c = t.cast_to::<f64>()?;
    Ok(Tensor::new(
        t.shape().to_vec(),
        c.to_plain_array_view::<f64>()?.iter().copied().collect(),
    ))
}

fn parse_attr(a: &pb::AttributeProto, file: &str) -> Result<Attr> {
    use pb::attribute_proto::AttributeType as T;
    Ok(match T::try_from(a.r#type).unwrap_or(T::Undefined) {
        T::Int => Attr::Int(a.i),
        T::Float => Attr::Float(a.f),
        T::Ints => Attr::Ints(a.ints.clone()),
        T::Floats => Attr::Floats(a.floats.clone()),
        T::String => Attr::Str(String::from_utf8_lossy(&a.s).into_owned()),
        T::Strings => Attr::Strs(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        T::Tensor => {
            let t = a.t.as_ref().ok_or_else(|| {
                Error::invalid(file, format!("attribute `{}` has no tensor", a.name))
            })?;
            let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            Attr::Tensor {
                elements: numel(&shape),
                shape,
            }
        }
        other => Attr::Other(format!("{other:?}")),
    })
}

/// The value of a ConstantOfShape node whose shape input is a constant: that shape, filled with
/// the `value` attribute's single element (0.0 without one).
fn constant_of_shape(
    n: &pb::NodeProto,
    constants: &BTreeMap<String, Tensor<f64>>,
    load: &dyn Fn(&pb::TensorProto, &str) -> Result<Tensor<f64>>,
) -> std::result::Result<Tensor<f64>, CosError> {
    let shape_name = n.input.first().ok_or("ConstantOfShape has no input")?;
    let value = constant_of_shape_value(n, load)?;
    let shape = constants.get(shape_name).ok_or(ShapeLater(value))?;
    let dims = folded_dims(shape)?;
    Ok(Tensor::filled(dims, value))
}

/// The largest constant a ConstantOfShape may fold to (elements): far beyond any model's, and
/// a bound on what a hostile file can make the tool allocate.
pub const MAX_FOLDED_ELEMENTS: usize = 1 << 24;

/// The dims a ConstantOfShape's shape tensor asks for (negative ones as 0), refused past
/// [`MAX_FOLDED_ELEMENTS`] without overflowing on the way.
pub fn folded_dims(shape: &Tensor<f64>) -> std::result::Result<Vec<usize>, String> {
    let dims: Vec<usize> = shape.data.iter().map(|&d| d.max(0.0) as usize).collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDED_ELEMENTS);
    match n {
        Some(_) => Ok(dims),
        None => Err(format!(
            "a constant of shape {dims:?} is too large (more than {MAX_FOLDED_ELEMENTS} elements)"
        )),
    }
}

/// A ConstantOfShape whose shape is not an initializer: its fill value, for the quantizer,
/// which folds the shape (shape arithmetic is static) and the fill.
struct ShapeLater(f64);

enum CosError {
    Later(f64),
    Bad(String),
}

impl From<ShapeLater> for CosError {
    fn from(l: ShapeLater) -> Self {
        CosError::Later(l.0)
    }
}

impl From<String> for CosError {
    fn from(s: String) -> Self {
        CosError::Bad(s)
    }
}

impl From<&str> for CosError {
    fn from(s: &str) -> Self {
        CosError::Bad(s.into())
    }
}

/// The `value` attribute's single element (0.0 without one).
fn constant_of_shape_value(
    n: &pb::NodeProto,
    load: &dyn Fn(&pb::TensorProto, &str) -> Result<Tensor<f64>>,
) -> std::result::Result<f64, String> {
    Ok(
        match n
            .attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref())
        {
            Some(t) => *load(t, "value")
                .map_err(|e| e.to_string())?
                .data
                .first()
                .ok_or("ConstantOfShape's value is empty")?,
            None => 0.0,
        },
    )
}

/// Attribute accessors that name the node and attribute on error.
struct Attrs<'a> {
    map: &'a BTreeMap<String, Attr>,
}

impl Attrs<'_> {
    fn int(&self, k: &str, default: i64) -> i64 {
        match self.map.get(k) {
            Some(Attr::Int(i)) => *i,
            _ => default,
        }
    }
    fn float(&self, k: &str, default: f64) -> f64 {
        match self.map.get(k) {
            Some(Attr::Float(f)) => *f as f64,
            _ => default,
        }
    }
    fn ints(&self, k: &str) -> Option<Vec<i64>> {
        match self.map.get(k) {
            Some(Attr::Ints(v)) => Some(v.clone()),
            _ => None,
        }
    }
    fn usizes(&self, k: &str) -> std::result::Result<Option<Vec<usize>>, String> {
        match self.ints(k) {
            None => Ok(None),
            Some(v) => v
                .iter()
                .map(|&x| {
                    usize::try_from(x)
                        .map_err(|_| format!("attribute `{k}` has a negative entry {x}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Some),
        }
    }
    fn attr_floats(&self, k: &str) -> Option<Vec<f32>> {
        match self.map.get(k) {
            Some(Attr::Floats(v)) => Some(v.clone()),
            _ => None,
        }
    }

    fn string(&self, k: &str) -> Option<String> {
        match self.map.get(k) {
            Some(Attr::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

fn spatial_pads(a: &Attrs) -> std::result::Result<Pads, String> {
    match a.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => {
            let pads = a.usizes("pads")?.unwrap_or_default();
            if pads.len() % 2 != 0 {
                return Err(format!("`pads` has odd length {}", pads.len()));
            }
            let n = pads.len() / 2;
            Ok(Pads::Explicit {
                begin: pads[..n].to_vec(),
                end: pads[n..].to_vec(),
            })
        }
        Some("VALID") => Ok(Pads::Explicit {
            begin: vec![],
            end: vec![],
        }),
        Some("SAME_UPPER") => Ok(Pads::SameUpper),
        Some("SAME_LOWER") => Ok(Pads::SameLower),
        Some(other) => Err(format!("unknown auto_pad `{other}`")),
    }
}

/// Parse an op's attributes into our typed op (structural checks that need no shapes).
fn parse_op(op_type: &str, domain: &str, attrs: &BTreeMap<String, Attr>, opset: i64) -> Op {
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Op::Unsupported {
            reason: format!("operator domain `{domain}` is not supported"),
        };
    }
    let a = Attrs { map: attrs };
    let r = (|| -> std::result::Result<Op, String> {
        Ok(match op_type {
            "Gemm" => Op::Gemm {
                alpha: a.float("alpha", 1.0),
                beta: a.float("beta", 1.0),
                trans_a: a.int("transA", 0) != 0,
                trans_b: a.int("transB", 0) != 0,
            },
            "MatMul" => Op::MatMul,
            "Add" => Op::Add,
            "Sub" => Op::Sub,
            "Mul" => Op::Mul,
            "Relu" => Op::Relu,
            "LeakyRelu" => Op::LeakyRelu {
                alpha: a.float("alpha", 0.01),
            },
            "Sigmoid" => Op::Sigmoid,
            "Elu" => Op::Unary(TableFn::Elu {
                alpha: a.float("alpha", 1.0),
            }),
            "Selu" => Op::Unary(TableFn::Selu {
                alpha: a.float("alpha", 1.673_263_192_176_818_8),
                gamma: a.float("gamma", 1.050_701_022_148_132_3),
            }),
            "Softplus" => Op::Unary(TableFn::Softplus),
            "Erf" => Op::Unary(TableFn::Erf),
            "Sqrt" => Op::Unary(TableFn::Sqrt),
            "HardSigmoid" => Op::Unary(TableFn::HardSigmoid {
                alpha: a.float("alpha", 0.2),
                beta: a.float("beta", 0.5),
            }),
            "Sin" => Op::Unary(TableFn::Sin),
            "Cos" => Op::Unary(TableFn::Cos),
            "Exp" => Op::Unary(TableFn::Exp),
            "Abs" => Op::Unary(TableFn::Abs),
            "Reciprocal" => Op::Unary(TableFn::Reciprocal),
            "Tan" => Op::Unary(TableFn::Tan),
            "Acos" => Op::Unary(TableFn::Acos),
            "Asin" => Op::Unary(TableFn::Asin),
            "Atan" => Op::Unary(TableFn::Atan),
            "Sign" => Op::Unary(TableFn::Sign),
            "Neg" => Op::Neg,
            "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => Op::Compare {
                less: op_type.starts_with("Less"),
                or_equal: op_type.ends_with("OrEqual"),
            },
            "Not" => Op::Not,
            "Where" => Op::Where,
            "LayerNormalization" => {
                if a.int("stash_type", 1) != 1 {
                    return Err("LayerNormalization stash_type other than float".into());
                }
                Op::Normalization {
                    axis: a.int("axis", -1),
                    epsilon: a.float("epsilon", 1e-5),
                    instance: false,
                }
            }
            "InstanceNormalization" => Op::Normalization {
                axis: 2,
                epsilon: a.float("epsilon", 1e-5),
                instance: true,
            },
            "PRelu" => Op::PRelu,
            "Softmax" => Op::Softmax {
                axis: a.int("axis", if opset < 13 { 1 } else { -1 }),
                flatten: opset < 13,
            },
            "Pow" => Op::Pow,
            "Div" => Op::Div,
            "OneHot" => Op::OneHot {
                axis: a.int("axis", -1),
            },
            "ArgMax" | "ArgMin" => Op::ArgMax {
                axis: a.int("axis", 0),
                keepdims: a.int("keepdims", 1) != 0,
                last: a.int("select_last_index", 0) != 0,
                min: op_type == "ArgMin",
            },
            "TopK" => Op::TopK {
                axis: a.int("axis", -1),
                largest: a.int("largest", 1) != 0,
                k: (opset < 10).then(|| a.int("k", 0)),
            },
            "RNN" | "LSTM" => {
                let lstm = op_type == "LSTM";
                let hidden = a.int("hidden_size", 0);
                if hidden <= 0 {
                    return Err("hidden_size must be positive".into());
                }
                if a.string("direction").is_some_and(|d| d != "forward") {
                    return Err("only the forward direction is supported".into());
                }
                let default: &[&str] = if lstm {
                    &["Sigmoid", "Tanh", "Tanh"]
                } else {
                    &["Tanh"]
                };
                if let Some(Attr::Strs(acts)) = attrs.get("activations")
                    && acts.iter().map(String::as_str).ne(default.iter().copied())
                {
                    return Err(format!("activations {acts:?} are not supported"));
                }
                if attrs.contains_key("clip") {
                    return Err("cell clipping is not supported".into());
                }
                if a.int("layout", 0) != 0 || a.int("input_forget", 0) != 0 {
                    return Err("layout 1 and input_forget are not supported".into());
                }
                Op::Recurrent {
                    lstm,
                    hidden: hidden as usize,
                }
            }
            "Tanh" => Op::Tanh,
            "Conv" => {
                let kernel_shape = a.usizes("kernel_shape")?;
                let group = a.int("group", 1);
                if group != 1 {
                    return Err(format!(
                        "grouped convolution (group={group}) is not supported yet"
                    ));
                }
                Op::Conv {
                    strides: a.usizes("strides")?.unwrap_or_default(),
                    dilations: a.usizes("dilations")?.unwrap_or_default(),
                    pads: spatial_pads(&a)?,
                    kernel_shape,
                    group: 1,
                }
            }
            "ConvTranspose" => {
                if a.int("group", 1) != 1 {
                    return Err("grouped ConvTranspose is not supported yet".into());
                }
                if a.string("auto_pad").is_some_and(|p| p != "NOTSET")
                    || a.ints("output_shape").is_some()
                {
                    return Err(
                        "ConvTranspose with auto_pad or output_shape is not supported".into(),
                    );
                }
                Op::ConvTranspose {
                    strides: a.usizes("strides")?.unwrap_or_default(),
                    pads: a.usizes("pads")?.unwrap_or_default(),
                    dilations: a.usizes("dilations")?.unwrap_or_default(),
                    output_padding: a.usizes("output_padding")?.unwrap_or_default(),
                }
            }
            "AveragePool" | "MaxPool" => {
                let kernel_shape = a.usizes("kernel_shape")?.ok_or("missing `kernel_shape`")?;
                let ceil_mode = a.int("ceil_mode", 0) != 0;
                let strides = a.usizes("strides")?.unwrap_or_default();
                let pads = spatial_pads(&a)?;
                if op_type == "AveragePool" {
                    if ceil_mode {
                        return Err("AveragePool with ceil_mode=1 is not supported".into());
                    }
                    if a.usizes("dilations")?
                        .is_some_and(|d| d.iter().any(|&x| x != 1))
                    {
                        return Err("dilated AveragePool is not supported".into());
                    }
                    Op::AveragePool {
                        kernel_shape,
                        strides,
                        pads,
                        count_include_pad: a.int("count_include_pad", 0) != 0,
                    }
                } else {
                    if a.int("storage_order", 0) != 0 {
                        return Err("MaxPool storage_order=1 is not supported".into());
                    }
                    Op::MaxPool {
                        kernel_shape,
                        strides,
                        pads,
                        dilations: a.usizes("dilations")?.unwrap_or_default(),
                        ceil_mode,
                    }
                }
            }
            "GlobalAveragePool" => Op::GlobalAveragePool,
            "Flatten" => Op::Flatten {
                axis: a.int("axis", 1),
            },
            "Reshape" => Op::Reshape {
                allowzero: a.int("allowzero", 0) != 0,
            },
            "Transpose" => Op::Transpose {
                perm: a.usizes("perm")?,
            },
            "Concat" => Op::Concat {
                axis: a.int("axis", 0),
            },
            "BatchNormalization" => {
                if a.int("training_mode", 0) != 0 {
                    return Err("BatchNormalization in training mode is not supported".into());
                }
                Op::BatchNormalization {
                    epsilon: a.float("epsilon", 1e-5),
                }
            }
            "Identity" | "Dropout" => Op::Identity,
            "Constant" => Op::Constant,
            "Pad" => {
                let mode = a.string("mode").unwrap_or_else(|| "constant".into());
                if mode != "constant" {
                    return Err(format!(
                        "Pad mode `{mode}` is not supported (only constant)"
                    ));
                }
                Op::Pad {
                    pads: a.ints("pads"),
                    value: a.float("value", 0.0),
                }
            }
            "Slice" => Op::Slice {
                starts: a.ints("starts"),
                ends: a.ints("ends"),
                axes: a.ints("axes"),
            },
            "Gather" => Op::Gather {
                axis: a.int("axis", 0),
            },
            "GatherElements" => Op::GatherElements {
                axis: a.int("axis", 0),
            },
            "Resize" | "Upsample" => {
                let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
                if mode != "nearest" {
                    return Err(format!(
                        "{op_type} mode `{mode}` is not supported (only nearest)"
                    ));
                }
                let default_ctm = if op_type == "Upsample" || opset < 11 {
                    "asymmetric"
                } else {
                    "half_pixel"
                };
                let default_nearest = if op_type == "Upsample" || opset < 11 {
                    "floor"
                } else {
                    "round_prefer_floor"
                };
                Op::Resize {
                    coordinate_mode: a
                        .string("coordinate_transformation_mode")
                        .unwrap_or_else(|| default_ctm.into()),
                    nearest_mode: a
                        .string("nearest_mode")
                        .unwrap_or_else(|| default_nearest.into()),
                    scales: a
                        .attr_floats("scales")
                        .map(|v| v.into_iter().map(f64::from).collect()),
                }
            }
            "Tile" => Op::Tile,
            "Shape" => {
                if a.map.contains_key("start") || a.map.contains_key("end") {
                    return Err("Shape with start or end is not supported".into());
                }
                Op::Shape
            }
            "Squeeze" | "Unsqueeze" => Op::Squeeze {
                axes: a.ints("axes"),
                unsqueeze: op_type == "Unsqueeze",
            },
            "Expand" => Op::Expand,
            // Casting between float types changes nothing at our precision.
            "Cast" => match a.int("to", 1) {
                1 | 10 | 11 | 16 => Op::Identity,
                2..=7 | 12 | 13 => Op::Truncate,
                to => {
                    return Err(format!(
                        "Cast to ONNX type {to} (not a float) is not supported"
                    ));
                }
            },
            "ReduceMax" | "ReduceMin" => Op::ReduceMax {
                axes: a.ints("axes"),
                keepdims: a.int("keepdims", 1) != 0,
                noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
                min: op_type == "ReduceMin",
            },
            "ReduceMean" | "ReduceSum" => {
                let keepdims = a.int("keepdims", 1) != 0;
                let noop_with_empty_axes = a.int("noop_with_empty_axes", 0) != 0;
                let axes = a.ints("axes");
                if op_type == "ReduceMean" {
                    Op::ReduceMean {
                        axes,
                        keepdims,
                        noop_with_empty_axes,
                    }
                } else {
                    Op::ReduceSum {
                        axes,
                        keepdims,
                        noop_with_empty_axes,
                    }
                }
            }
            other => return Err(format!("op `{other}` is not supported (opset {opset})")),
        })
    })();
    r.unwrap_or_else(|reason| Op::Unsupported { reason })
}

impl Model {
    /// Load an ONNX file: parse it, hash it, read constants and build the typed graph.
    pub fn load(path: &Path) -> Result<Model> {
        Model::from_bytes(path, &read_capped(path, MODEL_CAP, "the model")?)
    }

    /// [`Model::load`] of bytes already read from `path` (which names the model in messages and
    /// locates external data): a caller that keeps the bytes reads the file once.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Model> {
        let file = path.display().to_string();
        if bytes.is_empty() {
            return Err(Error::invalid(
                &file,
                "the file is empty, not an ONNX model",
            ));
        }
        let proto = guarded(&file, "not a valid ONNX model", || {
            onnx().proto_model_for_read(&mut &bytes[..])
        })?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Error::invalid(&file, "not an ONNX model: it has no graph"))?;
        check::check_graph(graph).map_err(|e| Error::invalid(&file, e))?;
        if graph.node.is_empty() && graph.output.is_empty() {
            return Err(Error::invalid(
                &file,
                "not an ONNX model: the graph has no nodes and no outputs",
            ));
        }
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .unwrap_or(0);
        let provider = onnx().provider;
        let dir = path
            .parent()
            .and_then(|d| d.to_str())
            .map(|s| s.to_string());
        let load = |t: &pb::TensorProto, what: &str| -> Result<Tensor<f64>> {
            guarded(&file, &format!("cannot read tensor `{what}`"), || {
                to_f64_tensor(&tract_onnx::tensor::load_tensor(
                    &*provider,
                    t,
                    dir.as_deref(),
                )?)
            })
        };

        let mut constants = BTreeMap::new();
        let mut initializer_names = vec![];
        for t in &graph.initializer {
            constants.insert(t.name.clone(), load(t, &t.name)?);
            initializer_names.push(t.name.clone());
        }
        let inputs: Vec<ValueInfo> = graph
            .input
            .iter()
            .filter(|i| !constants.contains_key(&i.name))
            .map(value_info)
            .collect();
        let outputs: Vec<ValueInfo> = graph.output.iter().map(value_info).collect();

        let mut nodes = vec![];
        let mut used_names = HashSet::new();
        for (ix, n) in graph.node.iter().enumerate() {
            let mut attributes = BTreeMap::new();
            for a in &n.attribute {
                attributes.insert(a.name.clone(), parse_attr(a, &file)?);
            }
            // Nodes may be unnamed; give each a stable, unique name for reports.
            let mut name = if n.name.is_empty() {
                format!("{}_{ix}", n.op_type)
            } else {
                n.name.clone()
            };
            if !used_names.insert(name.clone()) {
                name = format!("{name}#{ix}");
                used_names.insert(name.clone());
            }
            let mut op = parse_op(&n.op_type, &n.domain, &attributes, opset);
            // ConstantOfShape of a constant shape is a constant: folded here, like Constant.
            if n.op_type == "ConstantOfShape" && (n.domain.is_empty() || n.domain == "ai.onnx") {
                op = match constant_of_shape(n, &constants, &load) {
                    Ok(t) => {
                        if let Some(out) = n.output.first() {
                            constants.insert(out.clone(), t);
                        }
                        Op::Constant
                    }
                    Err(CosError::Later(value)) => Op::ConstantOfShape { value },
                    Err(CosError::Bad(reason)) => Op::Unsupported { reason },
                };
            }
            if op == Op::Constant && n.op_type == "Constant" {
                match constant_value(n, &load) {
                    Ok(t) => {
                        if let Some(out) = n.output.first() {
                            constants.insert(out.clone(), t);
                        }
                    }
                    Err(reason) => op = Op::Unsupported { reason },
                }
            }
            nodes.push(Node {
                name,
                op_type: n.op_type.clone(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
                attributes,
                op,
            });
        }
        let producer = format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string();
        Ok(Model {
            path: path.to_path_buf(),
            sha256: sha256_hex(bytes),
            bytes: bytes.len(),
            ir_version: proto.ir_version,
            opset,
            producer,
            inputs,
            outputs,
            constants,
            initializer_names,
            nodes,
            proto,
        })
    }

    pub fn file(&self) -> String {
        self.path.display().to_string()
    }

    /// Number of parameters: elements of all initializers.
    pub fn param_count(&self) -> usize {
        self.initializer_names
            .iter()
            .map(|n| self.constants[n].len())
            .sum()
    }

    /// Op type -> count, sorted by op type.
    pub fn op_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for n in &self.nodes {
            *m.entry(n.op_type.clone()).or_insert(0) += 1;
        }
        m
    }

    pub fn is_constant(&self, name: &str) -> bool {
        self.constants.contains_key(name)
    }

    /// Names of the tensors whose element type is an integer type (see [`types`]).
    pub fn integer_tensors(&self) -> HashSet<String> {
        self.proto
            .graph
            .as_ref()
            .map(|g| {
                types::element_types(g)
                    .into_iter()
                    .filter(|&(_, t)| types::is_integer(t))
                    .map(|(n, _)| n)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every node the chain cannot handle, with the reason. Checks op kinds and the structure
    /// that needs no shapes (which operands are constants); the quantizer re-checks the rest.
    pub fn preflight(&self) -> Vec<Unsupported> {
        let mut out = vec![];
        // Static tensors: constants, shapes of tensors (all shapes are fixed once the inputs
        // are), and what is computed from static tensors alone (shape arithmetic).
        let mut fixed: HashSet<&str> = self.constants.keys().map(String::as_str).collect();
        for n in &self.nodes {
            let from_static = n
                .inputs
                .iter()
                .all(|i| i.is_empty() || fixed.contains(i.as_str()));
            if matches!(n.op, Op::Shape) || (from_static && !n.inputs.is_empty()) {
                fixed.extend(n.outputs.iter().map(String::as_str));
            }
        }
        let runtime = |name: &str| !name.is_empty() && !fixed.contains(name);
        fn input(n: &Node, i: usize) -> &str {
            n.inputs.get(i).map_or("", String::as_str)
        }
        // A tensor some node reads, or a graph output.
        let used = |name: &str| {
            !name.is_empty()
                && (self
                    .nodes
                    .iter()
                    .any(|m| m.inputs.iter().any(|i| i == name))
                    || self.outputs.iter().any(|o| o.name == name))
        };
        let integer = self.integer_tensors();
        for n in &self.nodes {
            let reason = match &n.op {
                Op::Unsupported { reason } => Some(reason.clone()),
                // ONNX divides integers with truncation (7 / 2 = 3); the fixed-point chain
                // divides the real numbers. Folded on static tensors, refused at run time.
                Op::Div
                    if n.inputs
                        .iter()
                        .chain(&n.outputs)
                        .any(|t| integer.contains(t))
                        && n.inputs.iter().any(|i| runtime(i)) =>
                {
                    Some(
                        "integer division (ONNX truncates toward zero) of runtime tensors is not \
                         supported: the chain divides real numbers"
                            .into(),
                    )
                }
                Op::Gemm { .. } if n.inputs.len() < 2 => Some("Gemm needs two inputs".into()),
                Op::Gemm { .. } if runtime(&n.inputs[1]) => Some(
                    "Gemm with a runtime B operand (two runtime matrices) is not supported yet"
                        .into(),
                ),
                Op::Gemm { .. } if n.inputs.len() > 2 && runtime(&n.inputs[2]) => {
                    Some("Gemm with a runtime C operand is not supported yet".into())
                }
                Op::Normalization { .. } if n.inputs.iter().skip(1).any(|i| runtime(i)) => {
                    Some(format!(
                        "{} with a runtime scale or bias is not supported",
                        n.op_type
                    ))
                }
                Op::Normalization { .. } if n.outputs.iter().skip(1).any(|o| !o.is_empty()) => {
                    Some(
                        "LayerNormalization's mean and inverse deviation outputs are not supported"
                            .into(),
                    )
                }
                Op::PRelu if n.inputs.len() < 2 || runtime(&n.inputs[1]) => {
                    Some("PRelu with a runtime slope is not supported".into())
                }
                Op::Pow if n.inputs.len() < 2 || runtime(&n.inputs[1]) => {
                    Some("Pow with a runtime exponent is not supported".into())
                }
                Op::ConvTranspose { .. }
                    if n.inputs.len() < 2 || n.inputs.iter().skip(1).any(|i| runtime(i)) =>
                {
                    Some("ConvTranspose weights and bias must be constant".into())
                }
                Op::Conv { .. } if n.inputs.len() < 2 || runtime(&n.inputs[1]) => {
                    Some("Conv weights must be constant".into())
                }
                Op::Conv { .. } if n.inputs.len() > 2 && runtime(&n.inputs[2]) => {
                    Some("Conv bias must be constant".into())
                }
                Op::BatchNormalization { .. } if n.inputs.iter().skip(1).any(|i| runtime(i)) => {
                    Some("BatchNormalization parameters must be constant".into())
                }
                Op::Reshape { .. } if n.inputs.len() < 2 || runtime(&n.inputs[1]) => {
                    Some("Reshape with a runtime shape is not supported".into())
                }
                Op::Pad { .. } | Op::Slice { .. } | Op::Resize { .. } | Op::Tile | Op::Expand
                    if n.inputs.iter().skip(1).any(|i| runtime(i)) =>
                {
                    Some(format!(
                        "{} with a runtime (non-constant) second input is not supported",
                        n.op_type
                    ))
                }
                Op::ReduceMean { .. } | Op::ReduceSum { .. } | Op::ReduceMax { .. }
                    if n.inputs.len() > 1 && runtime(&n.inputs[1]) =>
                {
                    Some("reduction with runtime axes is not supported".into())
                }
                Op::OneHot { .. } if n.inputs.len() < 3 || (1..3).any(|i| runtime(input(n, i))) => {
                    Some("OneHot's depth and values must be constant".into())
                }
                Op::TopK { k: None, .. } if n.inputs.len() < 2 || runtime(&n.inputs[1]) => {
                    Some("TopK with a runtime k is not supported".into())
                }
                Op::TopK { .. } if n.outputs.get(1).is_some_and(|i| used(i)) => {
                    Some("TopK's Indices output is not supported (only its Values)".into())
                }
                Op::ConstantOfShape { .. } if runtime(&n.inputs[0]) => {
                    Some("ConstantOfShape with a runtime shape is not supported".into())
                }
                Op::Recurrent { .. }
                    if n.inputs.len() < 3 || (1..4).any(|i| runtime(input(n, i))) =>
                {
                    Some(format!("{} weights and biases must be constant", n.op_type))
                }
                Op::Recurrent { .. } if !input(n, 4).is_empty() => {
                    Some("sequence_lens is not supported: every sequence is full length".into())
                }
                Op::Recurrent { .. } if !input(n, 7).is_empty() => {
                    Some("LSTM peepholes are not supported".into())
                }
                Op::MaxPool { .. } if n.outputs.len() > 1 && !n.outputs[1].is_empty() => {
                    Some("MaxPool's Indices output is not supported".into())
                }
                _ => None,
            };
            if let Some(reason) = reason {
                out.push(Unsupported {
                    node: n.name.clone(),
                    op_type: n.op_type.clone(),
                    reason,
                });
            }
        }
        out
    }

    /// Fail with every unsupported node named (exit 3) before any other work.
    pub fn check_supported(&self) -> Result<()> {
        let nodes = self.preflight();
        if nodes.is_empty() {
            Ok(())
        } else {
            Err(Error::Unsupported {
                file: self.file(),
                nodes,
            })
        }
    }

    /// Concrete input shapes: the declared shape with symbolic dimensions set so that `lens`
    /// elements fit (the first symbolic dimension takes the remainder, others are 1), as in
    /// EZKL's input convention. With no lengths, symbolic dimensions are 1.
    pub fn input_shapes(&self, lens: Option<&[usize]>) -> Result<Vec<Vec<usize>>> {
        let mut shapes = vec![];
        for (i, info) in self.inputs.iter().enumerate() {
            let known: usize = info.dims.iter().map(|d| d.unwrap_or(1)).product();
            let mut shape: Vec<usize> = info.dims.iter().map(|d| d.unwrap_or(1)).collect();
            if let Some(lens) = lens {
                let len = lens[i];
                if let Some(first) = info.dims.iter().position(|d| d.is_none()) {
                    if known == 0 || !len.is_multiple_of(known) {
                        return Err(Error::invalid(
                            self.file(),
                            format!(
                                "input `{}` has {len} values, which does not fit shape {}",
                                info.name,
                                dims_str(&info.dims)
                            ),
                        ));
                    }
                    shape[first] = len / known;
                }
            }
            shapes.push(shape);
        }
        Ok(shapes)
    }

    fn inference_model(&self, input_shapes: &[Vec<usize>]) -> Result<InferenceModel> {
        let file = self.file();
        let mut m = guarded(&file, "tract cannot load the model", || {
            onnx().model_for_proto_model(&self.proto)
        })?;
        for (i, (info, shape)) in self.inputs.iter().zip(input_shapes).enumerate() {
            let fact = InferenceFact::dt_shape(datum_type(&info.dtype), shape.clone());
            guarded(&file, &format!("input `{}`", info.name), || {
                m.set_input_fact(i, fact)
            })?;
        }
        Ok(m)
    }

    /// Shapes of every node output, by tensor name, as far as tract's analysis gets. A model
    /// tract cannot load, or whose analysis panics, is an error: it could not be run either.
    pub fn output_shapes(
        &self,
        input_shapes: &[Vec<usize>],
    ) -> Result<HashMap<String, Vec<usize>>> {
        let mut out = HashMap::new();
        let mut m = self.inference_model(input_shapes)?;
        // An analysis error leaves the shapes found so far; a panic leaves nothing to trust.
        if let Err(msg) = crate::panics::catch_quietly(|| m.analyse(true)) {
            return Err(Error::invalid(
                self.file(),
                format!("shape analysis: tract failed internally: {msg}"),
            ));
        }
        for node in m.nodes() {
            for ix in 0..node.outputs.len() {
                let outlet = OutletId::new(node.id, ix);
                let Some(label) = m.outlet_label(outlet) else {
                    continue;
                };
                if let Some(dims) = node.outputs[ix].fact.shape.concretize() {
                    let dims: Option<Vec<usize>> = dims.iter().map(|d| d.to_usize().ok()).collect();
                    if let Some(dims) = dims {
                        out.insert(label.to_string(), dims);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Float inference through tract. Returns every node output (not only the graph outputs), so
    /// the quantizer can calibrate and report error per node.
    pub fn run_float(&self, inputs: &[Tensor<f64>]) -> Result<FloatRun> {
        let file = self.file();
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape.clone()).collect();
        let mut m = self.inference_model(&shapes)?;
        let graph_outputs: Vec<String> = self.outputs.iter().map(|o| o.name.clone()).collect();
        let node_outputs: HashSet<&str> = self
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().map(|s| s.as_str()))
            .collect();
        let mut names = vec![];
        let mut outlets = vec![];
        for node in m.nodes() {
            for ix in 0..node.outputs.len() {
                let outlet = OutletId::new(node.id, ix);
                if let Some(label) = m.outlet_label(outlet)
                    && (node_outputs.contains(label) || graph_outputs.iter().any(|g| g == label))
                    && !names.iter().any(|n: &String| n == label)
                {
                    names.push(label.to_string());
                    outlets.push(outlet);
                }
            }
        }
        guarded(&file, "selecting outputs", || {
            m.select_output_outlets(&outlets)
        })?;
        let plan = guarded(&file, "tract cannot prepare the model", || {
            m.into_typed()?.into_runnable()
        })?;
        let mut tv = tvec![];
        for (t, info) in inputs.iter().zip(&self.inputs) {
            let f = tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), t.data.clone())
                .map_err(|e| Error::invalid(&file, format!("input `{}`: {e}", info.name)))?;
            let tensor = guarded(&file, &format!("input `{}`", info.name), || {
                tract_onnx::prelude::Tensor::from(f)
                    .cast_to_dt(datum_type(&info.dtype))
                    .map(|c| c.into_owned())
            })?;
            tv.push(tensor.into_tvalue());
        }
        let results = guarded(&file, "tract float inference failed", || plan.run(tv))?;
        let mut run = FloatRun::default();
        for (name, value) in names.into_iter().zip(results.iter()) {
            // Shape-typed (TDim) and other non-numeric outputs are not activations: skip them.
            if let Ok(t) = to_f64_tensor(value) {
                run.values.insert(name, t);
            }
        }
        for (t, info) in inputs.iter().zip(&self.inputs) {
            run.values.insert(info.name.clone(), t.clone());
        }
        Ok(run)
    }
}

fn constant_value(
    n: &pb::NodeProto,
    load: &dyn Fn(&pb::TensorProto, &str) -> Result<Tensor<f64>>,
) -> std::result::Result<Tensor<f64>, String> {
    let a = n.attribute.first().ok_or("Constant node without a value")?;
    match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref().ok_or("Constant `value` has no tensor")?;
            load(t, &n.name).map_err(|e| e.to_string())
        }
        "value_float" => Ok(Tensor::new(vec![], vec![a.f as f64])),
        "value_floats" => Ok(Tensor::new(
            vec![a.floats.len()],
            a.floats.iter().map(|&f| f as f64).collect(),
        )),
        "value_int" => Ok(Tensor::new(vec![], vec![a.i as f64])),
        "value_ints" => Ok(Tensor::new(
            vec![a.ints.len()],
            a.ints.iter().map(|&i| i as f64).collect(),
        )),
        other => Err(format!("Constant with `{other}` is not supported")),
    }
}

pub fn dims_str(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map(|n| n.to_string()).unwrap_or_else(|| "?".into()))
        .collect();
    format!("[{}]", parts.join(", "))
}
