//! Float vs quantized: output error, per-node error and where the error enters.

use std::collections::HashMap;

use serde::Serialize;

use super::{QuantizedModel, eval_op};
use crate::error::{Error, Result};
use crate::model::{FloatRun, Model};
use crate::tensor::{Tensor, argmax};

#[derive(Clone, Debug, Serialize)]
pub struct Argmax {
    pub float: usize,
    pub quantized: usize,
    pub agree: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    pub name: String,
    pub shape: Vec<usize>,
    /// tract's float output, flattened row-major.
    pub float: Vec<f64>,
    /// The integer evaluator's output, dequantized.
    pub quantized: Vec<f64>,
    /// The integer evaluator's output as integers (the circuit's public output).
    pub integers: Vec<i64>,
    pub scale: i32,
    pub max_abs_error: f64,
    /// max |error| / max |float| over the tensor.
    pub max_rel_error: f64,
    /// Present when the output is a vector of scores.
    pub argmax: Option<Argmax>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// ONNX node (or graph input) name; `a+b` when b was folded into a.
    pub node: String,
    pub op_type: String,
    /// The ONNX tensor compared.
    pub output: String,
    pub shape: Vec<usize>,
    pub scale: i32,
    /// Smallest and largest integer of the tensor on this input.
    pub range: (i64, i64),
    /// Scale of the node's constant operand (weights), when it has one.
    pub param_scale: Option<i32>,
    /// Signed bits the range needs, and what is left of the activation budget.
    pub bits: u32,
    pub headroom_bits: i64,
    /// Error of the quantized chain up to here against tract's float tensor.
    pub max_abs_error: f64,
    /// max |error| / max |float| over the tensor.
    pub max_rel_error: f64,
    /// Error this node adds on its own: its integer ops run on the float inputs, quantized.
    pub local_abs_error: f64,
    /// The integer ops this node became.
    pub ops: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub model: String,
    pub sha256: String,
    pub scale: u32,
    pub outputs: Vec<OutputReport>,
    pub layers: Vec<LayerReport>,
    /// The node with the largest local error: where the quantization error enters.
    pub error_enters: Option<String>,
}

fn max_abs(t: &[f64]) -> f64 {
    t.iter().fold(0.0, |a, &x| a.max(x.abs()))
}

/// (max abs error, max abs error relative to the float tensor's largest magnitude)
fn errors(float: &[f64], quant: &[f64]) -> (f64, f64) {
    let e = float
        .iter()
        .zip(quant)
        .fold(0f64, |a, (f, q)| a.max((f - q).abs()));
    let m = max_abs(float);
    (e, if m > 0.0 { e / m } else { e })
}

fn dequant(t: &Tensor<i64>, scale: i32) -> Vec<f64> {
    let f = 2f64.powi(-scale);
    t.data.iter().map(|&q| q as f64 * f).collect()
}

fn quant_nearest(t: &Tensor<f64>, scale: i32) -> Tensor<i64> {
    let f = 2f64.powi(scale);
    t.map(|&x| (x * f).round() as i64)
}

/// An output is a vector of scores when it has several elements along one axis only.
fn is_score_vector(shape: &[usize]) -> bool {
    shape.iter().filter(|&&d| d > 1).count() == 1
}

/// Compare the integer evaluator with tract on one input.
pub fn analyze(
    model: &Model,
    qm: &QuantizedModel,
    inputs: &[Tensor<f64>],
    float: &FloatRun,
) -> Result<RunReport> {
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    let qin = qm.quantize_inputs(inputs, &names)?;
    let vals = qm.evaluate(&qin)?;

    let outputs = output_reports(model, qm, float, &vals)?;

    let op_types: HashMap<&str, &str> = model
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.op_type.as_str()))
        .collect();
    let mut layers = vec![];
    let mut start = 0;
    while start < qm.nodes.len() {
        let origin = &qm.nodes[start].origin;
        let mut end = start;
        while end < qm.nodes.len() && &qm.nodes[end].origin == origin {
            end += 1;
        }
        let group = &qm.nodes[start..end];
        let produced: Vec<usize> = group.iter().map(|n| n.output).collect();
        // Re-run this node alone, fed with the float values of its inputs, quantized.
        let mut local: HashMap<usize, Tensor<i64>> = HashMap::new();
        for n in group {
            for &i in &n.inputs {
                if produced.contains(&i) || local.contains_key(&i) {
                    continue;
                }
                let v = &qm.values[i];
                let seed = match v.onnx.as_ref().and_then(|name| float.values.get(name)) {
                    Some(f) if f.shape == v.shape => quant_nearest(f, v.scale),
                    _ => vals[i].clone(),
                };
                local.insert(i, seed);
            }
        }
        for n in group {
            let t = match n.op {
                super::QOp::Input { .. } => vals[n.output].clone(),
                _ => {
                    let args: Vec<&Tensor<i64>> = n.inputs.iter().map(|i| &local[i]).collect();
                    // A node fed float inputs can step outside a table calibrated on the chain;
                    // its local error is then unknown, and the chain's own error still stands.
                    match eval_op(&n.op, &args, &qm.values[n.output].shape) {
                        Ok(t) => t,
                        Err(_) => vals[n.output].clone(),
                    }
                }
            };
            local.insert(n.output, t);
        }
        for &v in &produced {
            let info = &qm.values[v];
            let Some(name) = &info.onnx else { continue };
            let Some(f) = float.values.get(name) else {
                continue;
            };
            if f.len() != vals[v].len() {
                continue;
            }
            let (abs, rel) = errors(&f.data, &dequant(&vals[v], info.scale));
            let (local_abs, _) = errors(&f.data, &dequant(&local[&v], info.scale));
            let op_type = origin
                .split('+')
                .map(|part| op_types.get(part).copied().unwrap_or("input"))
                .collect::<Vec<_>>()
                .join("+");
            let range = (
                vals[v].data.iter().copied().min().unwrap_or(0),
                vals[v].data.iter().copied().max().unwrap_or(0),
            );
            let bits = super::signed_bits(range.0.unsigned_abs().max(range.1.unsigned_abs()));
            let param_scale = group.iter().find_map(|n| match n.op {
                super::QOp::Linear { .. }
                | super::QOp::Conv { .. }
                | super::QOp::Mul
                | super::QOp::LeakyRelu { .. } => n
                    .inputs
                    .first()
                    .map(|&i| qm.values[n.output].scale - qm.values[i].scale),
                _ => None,
            });
            layers.push(LayerReport {
                node: origin.clone(),
                op_type,
                output: name.clone(),
                shape: info.shape.clone(),
                scale: info.scale,
                range,
                param_scale,
                bits,
                headroom_bits: qm.config.activation_bits as i64 - bits as i64,
                max_abs_error: abs,
                max_rel_error: rel,
                local_abs_error: local_abs,
                ops: group.iter().map(|n| n.op.name().to_string()).collect(),
            });
        }
        start = end;
    }
    let error_enters = layers
        .iter()
        .filter(|l| l.local_abs_error > 0.0)
        .max_by(|a, b| a.local_abs_error.total_cmp(&b.local_abs_error))
        .map(|l| l.node.clone());
    Ok(RunReport {
        model: model.file(),
        sha256: model.sha256.clone(),
        scale: qm.scale,
        outputs,
        layers,
        error_enters,
    })
}

/// Each graph output: float (tract) against the evaluator's integers, dequantized.
pub fn output_reports(
    model: &Model,
    qm: &QuantizedModel,
    float: &FloatRun,
    vals: &[Tensor<i64>],
) -> Result<Vec<OutputReport>> {
    let mut outputs = vec![];
    for (o, &v) in model.outputs.iter().zip(&qm.outputs) {
        let f = float.values.get(&o.name).ok_or_else(|| {
            Error::invalid(
                model.file(),
                format!("tract produced no float value for output `{}`", o.name),
            )
        })?;
        let q = dequant(&vals[v], qm.values[v].scale);
        if q.len() != f.len() {
            return Err(Error::invalid(
                model.file(),
                format!(
                    "output `{}`: quantized shape {:?} differs from float shape {:?}",
                    o.name, vals[v].shape, f.shape
                ),
            ));
        }
        let (abs, rel) = errors(&f.data, &q);
        let argmax = if is_score_vector(&f.shape) {
            let (a, b) = (
                argmax(&f.data).unwrap_or(0),
                argmax(&vals[v].data).unwrap_or(0),
            );
            Some(Argmax {
                float: a,
                quantized: b,
                agree: a == b,
            })
        } else {
            None
        };
        outputs.push(OutputReport {
            name: o.name.clone(),
            shape: f.shape.clone(),
            float: f.data.clone(),
            quantized: q,
            integers: vals[v].data.clone(),
            scale: qm.values[v].scale,
            max_abs_error: abs,
            max_rel_error: rel,
            argmax,
        });
    }
    Ok(outputs)
}
