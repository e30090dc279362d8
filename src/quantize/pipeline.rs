//! The chain up to the quantized model, from a model file and an input file: read both once
//! (through the caps), load and preflight the model, parse the input, run it in floats through
//! tract, quantize calibrated on that run, and compare the integer evaluator with it. `run`,
//! `prove` (and so `bench`) and `audit` all start here.

use std::path::Path;

use super::report::{RunReport, analyze};
use super::{QuantConfig, QuantizedModel, quantize};
use crate::error::Result;
use crate::files::{MODEL_CAP, read_capped};
use crate::model::input::{parse_input, read_input};
use crate::model::{FloatRun, Model};
use crate::tensor::Tensor;

/// Everything [`quantize_files`] derives.
pub struct QuantizedRun {
    pub model: Model,
    /// The model and input files as read, once: a pipe cannot be read again, and a file
    /// changed since would not be what was quantized.
    pub onnx_bytes: Vec<u8>,
    pub input_text: String,
    pub floats: Vec<Tensor<f64>>,
    pub float: FloatRun,
    pub qm: QuantizedModel,
    pub report: RunReport,
    /// The input at the input values' scales.
    pub inputs: Vec<Tensor<i64>>,
}

/// Load, preflight, read the input, run floats, quantize and compare (see the module doc).
pub fn quantize_files(model_path: &Path, input: &Path, cfg: &QuantConfig) -> Result<QuantizedRun> {
    let onnx_bytes = read_capped(model_path, MODEL_CAP, "the model")?;
    let model = Model::from_bytes(model_path, &onnx_bytes)?;
    model.check_supported()?;
    let input_text = read_input(input)?;
    let file = input.display().to_string();
    let floats = parse_input(&input_text, &file, &model)?;
    let float = model.run_float(&floats)?;
    let in_input = |e: crate::error::Error| e.in_input(&file);
    let qm = quantize(&model, &floats, &float, cfg).map_err(in_input)?;
    let report = analyze(&model, &qm, &floats, &float).map_err(in_input)?;
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    let inputs = qm.quantize_inputs(&floats, &names).map_err(in_input)?;
    Ok(QuantizedRun {
        model,
        onnx_bytes,
        input_text,
        floats,
        float,
        qm,
        report,
        inputs,
    })
}

/// An input file through a quantized model already made (a package's, or a receipt's): its
/// float run compared with the integer evaluator, and its integers at the inputs' scales.
pub fn run_through(
    model: &Model,
    qm: &QuantizedModel,
    input: &Path,
) -> Result<(RunReport, Vec<Tensor<i64>>)> {
    let text = read_input(input)?;
    let file = input.display().to_string();
    let floats = parse_input(&text, &file, model)?;
    run_floats(model, qm, &floats).map_err(|e| e.in_input(&file))
}

/// Parsed input tensors through a quantized model already made: tract's float run compared
/// with the integer evaluator, and the integers at the inputs' scales.
pub fn run_floats(
    model: &Model,
    qm: &QuantizedModel,
    floats: &[Tensor<f64>],
) -> Result<(RunReport, Vec<Tensor<i64>>)> {
    let float = model.run_float(floats)?;
    let report = analyze(model, qm, floats, &float)?;
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    let inputs = qm.quantize_inputs(floats, &names)?;
    Ok((report, inputs))
}
