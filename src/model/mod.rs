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
mod einsum;
mod hints;
pub mod input;
mod ops;
mod parse;
mod preflight;
mod tables;
pub mod types;

pub use ops::{Attr, ELLIPSIS, Op, PadMode, Pads, Reduction, Variadic};
use parse::*;
pub use parse::{MAX_FOLDED_ELEMENTS, folded_dims};
pub use tables::TableFn;

/// A graph input or output as declared in the file.
#[derive(Clone, Debug, Serialize)]
pub struct ValueInfo {
    pub name: String,
    /// ONNX element type name ("float", "int64", ...).
    pub dtype: String,
    /// Declared dimensions; None for a symbolic or missing dimension.
    pub dims: Vec<Option<usize>>,
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

/// `s` cut to its first `n` characters, with `…` where something was cut.
pub fn shortened(s: &str, n: usize) -> String {
    let head = short_hash(s, n);
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        s.to_string()
    }
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
        self.tensors_typed(types::is_integer)
    }

    /// Names of the tensors whose element type is bool.
    pub fn bool_tensors(&self) -> HashSet<String> {
        self.tensors_typed(|t| t == types::code::BOOL)
    }

    fn tensors_typed(&self, keep: impl Fn(i32) -> bool) -> HashSet<String> {
        self.proto
            .graph
            .as_ref()
            .map(|g| {
                types::element_types(g)
                    .into_iter()
                    .filter(|&(_, t)| keep(t))
                    .map(|(n, _)| n)
                    .collect()
            })
            .unwrap_or_default()
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
