//! Input files: EZKL's `{"input_data": [[...], ...]}` form, one flattened row-major array per
//! graph input, in graph order.

use std::path::Path;

use serde_json::Value;

use super::Model;
use crate::error::{Error, Result};
use crate::files::{FILE_CAP, read_capped};
use crate::tensor::{Tensor, numel};

/// Read and validate an input file against `model`: one array per graph input, every element a
/// finite number, lengths that fit the declared shapes.
pub fn load_input(path: &Path, model: &Model) -> Result<Vec<Tensor<f64>>> {
    parse_input(&read_input(path)?, &path.display().to_string(), model)
}

/// An input file's text, read once (it may be a pipe) and capped.
pub fn read_input(path: &Path) -> Result<String> {
    String::from_utf8(read_capped(path, FILE_CAP, "the input")?)
        .map_err(|_| Error::invalid(path.display(), "cannot read the input: not UTF-8 text"))
}

pub fn parse_input(text: &str, file: &str, model: &Model) -> Result<Vec<Tensor<f64>>> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(file, format!("not valid JSON: {e}")))?;
    let data = doc.get("input_data").ok_or_else(|| {
        Error::invalid(
            file,
            "missing field `input_data` (expected {\"input_data\": [[...]]})",
        )
    })?;
    let arrays = data
        .as_array()
        .ok_or_else(|| Error::invalid(file, "field `input_data` must be an array of arrays"))?;
    // A single flat array is accepted for a model with one input.
    let arrays: Vec<&Value> =
        if model.inputs.len() == 1 && arrays.iter().all(|v| v.is_number()) && !arrays.is_empty() {
            vec![data]
        } else {
            arrays.iter().collect()
        };
    // A model without inputs computes a constant; EZKL's tooling still writes input data for it.
    if model.inputs.is_empty() {
        return Ok(vec![]);
    }
    if arrays.len() != model.inputs.len() {
        return Err(Error::invalid(
            file,
            format!(
                "`input_data` has {} array(s) but the model has {} input(s)",
                arrays.len(),
                model.inputs.len()
            ),
        ));
    }
    let mut flat = vec![];
    for (i, (arr, info)) in arrays.iter().zip(&model.inputs).enumerate() {
        let items = arr.as_array().ok_or_else(|| {
            Error::invalid(
                file,
                format!("`input_data[{i}]` must be an array of numbers"),
            )
        })?;
        let mut v = Vec::with_capacity(items.len());
        for (j, x) in items.iter().enumerate() {
            let f = match x {
                Value::Number(n) => n.as_f64(),
                Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            }
            .ok_or_else(|| {
                Error::invalid(file, format!("`input_data[{i}][{j}]` is {x}, not a number"))
            })?;
            if !f.is_finite() {
                return Err(Error::invalid(
                    file,
                    format!("`input_data[{i}][{j}]` is not finite ({f})"),
                ));
            }
            v.push(f);
        }
        if v.is_empty() {
            return Err(Error::invalid(
                file,
                format!("`input_data[{i}]` (input `{}`) is empty", info.name),
            ));
        }
        flat.push(v);
    }
    let lens: Vec<usize> = flat.iter().map(|v| v.len()).collect();
    let shapes = model.input_shapes(Some(&lens)).map_err(|e| match e {
        Error::Invalid { msg, .. } => Error::invalid(file, msg),
        other => other,
    })?;
    let mut out = vec![];
    for ((v, shape), info) in flat.into_iter().zip(shapes).zip(&model.inputs) {
        if numel(&shape) != v.len() {
            return Err(Error::invalid(
                file,
                format!(
                    "input `{}` has {} values but its shape {} needs {}",
                    info.name,
                    v.len(),
                    super::dims_str(&info.dims),
                    numel(&shape)
                ),
            ));
        }
        out.push(Tensor::new(shape, v));
    }
    Ok(out)
}
