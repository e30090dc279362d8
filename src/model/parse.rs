//! From protobuf to `Op`: attributes, ONNX op types and their attribute forms (by opset),
//! and the constants folded at load time (Constant, ConstantOfShape of a static shape).

use super::*;
use ops::{ASPECT_POLICIES, COORDINATE_MODES, NEAREST_MODES};

pub(super) fn parse_attr(a: &pb::AttributeProto, file: &str) -> Result<Attr> {
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
pub(super) fn constant_of_shape(
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
pub(super) struct ShapeLater(f64);

pub(super) enum CosError {
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
pub(super) fn constant_of_shape_value(
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
pub(super) struct Attrs<'a> {
    map: &'a BTreeMap<String, Attr>,
}

impl Attrs<'_> {
    pub(super) fn int(&self, k: &str, default: i64) -> i64 {
        match self.map.get(k) {
            Some(Attr::Int(i)) => *i,
            _ => default,
        }
    }
    pub(super) fn float(&self, k: &str, default: f64) -> f64 {
        match self.map.get(k) {
            Some(Attr::Float(f)) => *f as f64,
            _ => default,
        }
    }
    /// A float attribute, when the node has it.
    fn float_opt(&self, k: &str) -> Option<f64> {
        match self.map.get(k) {
            Some(Attr::Float(f)) => Some(*f as f64),
            _ => None,
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

    pub(super) fn string(&self, k: &str) -> Option<String> {
        match self.map.get(k) {
            Some(Attr::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

pub(super) fn spatial_pads(a: &Attrs) -> std::result::Result<Pads, String> {
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
pub(super) fn parse_op(
    op_type: &str,
    domain: &str,
    attrs: &BTreeMap<String, Attr>,
    opset: i64,
) -> Op {
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Op::Unsupported {
            reason: format!("operator domain `{domain}` is not supported"),
        };
    }
    let a = Attrs { map: attrs };
    // Each family knows its own op types; the first that does parses the node.
    const FAMILIES: [fn(&str, &Attrs, i64) -> FamilyParse; 9] = [
        parse_dense,
        parse_arithmetic,
        parse_activations,
        parse_normalization,
        parse_indexing,
        parse_reductions,
        parse_recurrent,
        parse_pooling,
        parse_shape,
    ];
    let r = FAMILIES
        .iter()
        .find_map(|parse| parse(op_type, &a, opset).transpose())
        .unwrap_or_else(|| Err(format!("op `{op_type}` is not supported (opset {opset})")));
    r.unwrap_or_else(|reason| Op::Unsupported { reason })
}

/// What a family's parser says of an op type: not one of mine (`Ok(None)`), its `Op`, or why
/// its attributes are not supported.
type FamilyParse = std::result::Result<Option<Op>, String>;

/// The dense family's ONNX ops (`Ok(None)` for another family's).
fn parse_dense(op_type: &str, a: &Attrs, _opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
        "Gemm" => Op::Gemm {
            alpha: a.float("alpha", 1.0),
            beta: a.float("beta", 1.0),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
        },
        "MatMul" => Op::MatMul,
        "Einsum" => {
            super::einsum::einsum(&a.string("equation").ok_or("Einsum needs an equation")?)?
        }
        "Conv" => {
            let kernel_shape = a.usizes("kernel_shape")?;
            let group = a.int("group", 1);
            if group < 1 {
                return Err(format!(
                    "group={group}: a convolution has at least one group"
                ));
            }
            Op::Conv {
                strides: a.usizes("strides")?.unwrap_or_default(),
                dilations: a.usizes("dilations")?.unwrap_or_default(),
                pads: spatial_pads(a)?,
                kernel_shape,
                group: group as usize,
            }
        }
        "ConvTranspose" => {
            if a.int("group", 1) != 1 {
                return Err("grouped ConvTranspose is not supported yet".into());
            }
            if a.string("auto_pad").is_some_and(|p| p != "NOTSET")
                || a.ints("output_shape").is_some()
            {
                return Err("ConvTranspose with auto_pad or output_shape is not supported".into());
            }
            Op::ConvTranspose {
                strides: a.usizes("strides")?.unwrap_or_default(),
                pads: a.usizes("pads")?.unwrap_or_default(),
                dilations: a.usizes("dilations")?.unwrap_or_default(),
                output_padding: a.usizes("output_padding")?.unwrap_or_default(),
            }
        }
        "BatchNormalization" => {
            if a.int("training_mode", 0) != 0 {
                return Err("BatchNormalization in training mode is not supported".into());
            }
            Op::BatchNormalization {
                epsilon: a.float("epsilon", 1e-5),
            }
        }
        _ => return Ok(None),
    }))
}

/// The arithmetic family's ONNX ops (`Ok(None)` for another family's).
fn parse_arithmetic(op_type: &str, a: &Attrs, _opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
        "Add" => Op::Add,
        "Sub" => Op::Sub,
        "Max" => Op::Variadic { of: Variadic::Max },
        "Min" => Op::Variadic { of: Variadic::Min },
        "Sum" => Op::Variadic { of: Variadic::Sum },
        "Mean" => Op::Variadic { of: Variadic::Mean },
        "Mul" => Op::Mul,
        "Neg" => Op::Neg,
        "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => Op::Compare {
            less: op_type.starts_with("Less"),
            or_equal: op_type.ends_with("OrEqual"),
        },
        "Not" => Op::Not,
        "Where" => Op::Where,
        "Pow" => Op::Pow,
        "Div" => Op::Div,
        "Cast" => match a.int("to", 1) {
            1 | 10 | 11 | 16 => Op::Identity,
            2..=7 | 12 | 13 => Op::Truncate,
            to => {
                return Err(format!(
                    "Cast to ONNX type {to} (not a float) is not supported"
                ));
            }
        },
        _ => return Ok(None),
    }))
}

/// The activations family's ONNX ops (`Ok(None)` for another family's).
fn parse_activations(op_type: &str, a: &Attrs, opset: i64) -> FamilyParse {
    if let Some(TableFn::Celu { alpha }) = TableFn::parse(op_type, a)
        && alpha != 1.0
    {
        return Err(format!(
            "Celu with alpha {alpha} is not supported: tract, which runs the float model, \
             computes it without alpha (alpha 1 is)"
        ));
    }
    if let Some(f) = TableFn::parse(op_type, a) {
        return Ok(Some(Op::Unary(f)));
    }
    Ok(Some(match op_type {
        "Relu" => Op::Relu,
        "LeakyRelu" => Op::LeakyRelu {
            alpha: a.float("alpha", 0.01),
        },
        "Sigmoid" => Op::Sigmoid,
        "Clip" => Op::Clip {
            min: a.float_opt("min"),
            max: a.float_opt("max"),
        },
        "PRelu" => Op::PRelu,
        "Softmax" | "LogSoftmax" => Op::Softmax {
            axis: a.int("axis", if opset < 13 { 1 } else { -1 }),
            flatten: opset < 13,
            log: op_type == "LogSoftmax",
        },
        "Tanh" => Op::Tanh,
        _ => return Ok(None),
    }))
}

/// The normalization family's ONNX ops (`Ok(None)` for another family's).
fn parse_normalization(op_type: &str, a: &Attrs, _opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
        "LayerNormalization" => {
            if a.int("stash_type", 1) != 1 {
                return Err("LayerNormalization stash_type other than float".into());
            }
            Op::Normalization {
                axis: a.int("axis", -1),
                epsilon: a.float("epsilon", 1e-5),
                instance: false,
                groups: None,
            }
        }
        "InstanceNormalization" => Op::Normalization {
            axis: 2,
            epsilon: a.float("epsilon", 1e-5),
            instance: true,
            groups: None,
        },
        "GroupNormalization" => {
            if a.int("stash_type", 1) != 1 {
                return Err("GroupNormalization stash_type other than float".into());
            }
            let groups = a.int("num_groups", 0);
            if groups < 1 {
                return Err(format!("GroupNormalization num_groups {groups}"));
            }
            Op::Normalization {
                axis: 2,
                epsilon: a.float("epsilon", 1e-5),
                instance: true,
                groups: Some(groups as usize),
            }
        }
        _ => return Ok(None),
    }))
}

/// The indexing family's ONNX ops (`Ok(None)` for another family's).
fn parse_indexing(op_type: &str, a: &Attrs, opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
        "OneHot" => Op::OneHot {
            axis: a.int("axis", -1),
        },
        "Pad" => {
            let mode = match a.string("mode").as_deref().unwrap_or("constant") {
                "constant" => PadMode::Constant,
                "reflect" => PadMode::Reflect,
                "edge" => PadMode::Edge,
                other => {
                    return Err(format!(
                        "Pad mode `{other}` is not supported (constant, reflect and edge are; \
                         tract cannot run wrap)"
                    ));
                }
            };
            Op::Pad {
                pads: a.ints("pads"),
                value: a.float("value", 0.0),
                mode,
            }
        }
        "Split" => {
            let split = a.ints("split");
            if split.as_ref().is_some_and(|s| s.iter().any(|&n| n < 0)) {
                return Err("a negative `split` size".into());
            }
            Op::Split {
                axis: a.int("axis", 0),
                split,
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
        "ScatterElements" | "Scatter" => {
            let reduction = a.string("reduction").unwrap_or_else(|| "none".into());
            if reduction != "none" {
                return Err(format!(
                    "{op_type} reduction `{reduction}` is not supported (only none)"
                ));
            }
            Op::ScatterElements {
                axis: a.int("axis", 0),
            }
        }
        "Upsample" => {
            return Err(
                "Upsample (deprecated since opset 10) is not supported: tract cannot \
                        run it; export with opset 11 or later, which writes Resize"
                    .into(),
            );
        }
        "Resize" => {
            let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
            if mode != "nearest" {
                return Err(format!(
                    "{op_type} mode `{mode}` is not supported (only nearest)"
                ));
            }
            let default_ctm = if opset < 11 {
                "asymmetric"
            } else {
                "half_pixel"
            };
            let default_nearest = if opset < 11 {
                "floor"
            } else {
                "round_prefer_floor"
            };
            let coordinate_mode = a
                .string("coordinate_transformation_mode")
                .unwrap_or_else(|| default_ctm.into());
            let nearest_mode = a
                .string("nearest_mode")
                .unwrap_or_else(|| default_nearest.into());
            let keep_aspect = a
                .string("keep_aspect_ratio_policy")
                .unwrap_or_else(|| "stretch".into());
            // Refused here, so that the preflight refuses what the lowering cannot do.
            for (what, v, known) in [
                (
                    "coordinate_transformation_mode",
                    &coordinate_mode,
                    &COORDINATE_MODES[..],
                ),
                ("nearest_mode", &nearest_mode, &NEAREST_MODES[..]),
                (
                    "keep_aspect_ratio_policy",
                    &keep_aspect,
                    &ASPECT_POLICIES[..],
                ),
            ] {
                if !known.contains(&v.as_str()) {
                    return Err(format!(
                        "{op_type} {what} `{v}` is not supported (only {})",
                        known.join(", ")
                    ));
                }
            }
            Op::Resize {
                coordinate_mode,
                nearest_mode,
                scales: a
                    .attr_floats("scales")
                    .map(|v| v.into_iter().map(f64::from).collect()),
                axes: a.ints("axes"),
                keep_aspect,
            }
        }
        _ => return Ok(None),
    }))
}

/// The reductions family's ONNX ops (`Ok(None)` for another family's).
fn parse_reductions(op_type: &str, a: &Attrs, opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
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
        _ => return Ok(None),
    }))
}

/// The recurrent family's ONNX ops (`Ok(None)` for another family's).
fn parse_recurrent(op_type: &str, a: &Attrs, _opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
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
            if let Some(Attr::Strs(acts)) = a.map.get("activations")
                && acts.iter().map(String::as_str).ne(default.iter().copied())
            {
                return Err(format!("activations {acts:?} are not supported"));
            }
            if a.map.contains_key("clip") {
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
        _ => return Ok(None),
    }))
}

/// The pooling family's ONNX ops (`Ok(None)` for another family's).
fn parse_pooling(op_type: &str, a: &Attrs, _opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
        "AveragePool" | "MaxPool" => {
            let kernel_shape = a.usizes("kernel_shape")?.ok_or("missing `kernel_shape`")?;
            let ceil_mode = a.int("ceil_mode", 0) != 0;
            let strides = a.usizes("strides")?.unwrap_or_default();
            let pads = spatial_pads(a)?;
            if op_type == "AveragePool" {
                Op::AveragePool {
                    kernel_shape,
                    strides,
                    pads,
                    dilations: a.usizes("dilations")?.unwrap_or_default(),
                    count_include_pad: a.int("count_include_pad", 0) != 0,
                    ceil_mode,
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
        "ReduceMax" | "ReduceMin" | "ReduceMean" | "ReduceSum" | "ReduceSumSquare" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSumExp" => Op::Reduce {
            of: match op_type {
                "ReduceMax" => Reduction::Max,
                "ReduceMin" => Reduction::Min,
                "ReduceMean" => Reduction::Mean,
                "ReduceSum" => Reduction::Sum,
                "ReduceSumSquare" => Reduction::SumSquare,
                "ReduceL1" => Reduction::L1,
                "ReduceL2" => Reduction::L2,
                _ => Reduction::LogSumExp,
            },
            axes: a.ints("axes"),
            keepdims: a.int("keepdims", 1) != 0,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
        },
        _ => return Ok(None),
    }))
}

/// The shape family's ONNX ops (`Ok(None)` for another family's).
fn parse_shape(op_type: &str, a: &Attrs, _opset: i64) -> FamilyParse {
    Ok(Some(match op_type {
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
        "Identity" | "Dropout" => Op::Identity,
        "Constant" => Op::Constant,
        "Tile" => Op::Tile,
        "DepthToSpace" | "SpaceToDepth" => {
            let block = a.int("blocksize", 0);
            if block < 1 {
                return Err(format!("blocksize {block}: it must be at least 1"));
            }
            Op::DepthSpace {
                block: block as usize,
                crd: a.string("mode").is_some_and(|m| m == "CRD"),
                to_depth: op_type == "SpaceToDepth",
            }
        }
        "Shape" => Op::Shape {
            start: a.int("start", 0),
            end: a.map.contains_key("end").then(|| a.int("end", 0)),
        },
        "Squeeze" | "Unsqueeze" => Op::Squeeze {
            axes: a.ints("axes"),
            unsqueeze: op_type == "Unsqueeze",
        },
        "Expand" => Op::Expand,
        // Casting between float types changes nothing at our precision.
        _ => return Ok(None),
    }))
}
