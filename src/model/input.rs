//! Input files: EZKL's `{"input_data": [[...], ...]}` form, one flattened row-major array per
//! graph input, in graph order.

use std::path::{Path, PathBuf};

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

/// Parse an input file's text (see [`parse_input_doc`]).
pub fn parse_input(text: &str, file: &str, model: &Model) -> Result<Vec<Tensor<f64>>> {
    parse_input_doc(&parse_doc(text, file)?, file, model)
}

/// An input file's text as one JSON document (a duplicate key refused, a BOM skipped).
fn parse_doc(text: &str, file: &str) -> Result<Value> {
    crate::json::parse_strict(text)
        .map_err(|e| Error::invalid(file, format!("not valid JSON: {e}")))
}

/// The input tensors of a parsed input document: one array of finite numbers per graph input,
/// with lengths that fit the declared shapes.
pub fn parse_input_doc(doc: &Value, file: &str, model: &Model) -> Result<Vec<Tensor<f64>>> {
    let data = doc.get("input_data").ok_or_else(|| {
        Error::invalid_field(
            file,
            "input_data",
            "missing field `input_data` (expected {\"input_data\": [[...]]})",
        )
    })?;
    let arrays = data.as_array().ok_or_else(|| {
        Error::invalid_field(
            file,
            "input_data",
            "field `input_data` must be an array of arrays",
        )
    })?;
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
        return Err(Error::invalid_field(
            file,
            "input_data",
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
            Error::invalid_field(
                file,
                format!("input_data[{i}]"),
                format!("`input_data[{i}]` must be an array of numbers"),
            )
        })?;
        let mut v = Vec::with_capacity(items.len());
        for (j, x) in items.iter().enumerate() {
            let field = || format!("input_data[{i}][{j}]");
            let f = match x {
                Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
                // A bool input's values are true/false (EZKL writes them so); for any other
                // input they are not numbers, and taking them as 1/0 would hide a wrong file.
                Value::Bool(b) if info.dtype == "bool" => Some(if *b { 1.0 } else { 0.0 }),
                Value::Bool(_) => {
                    return Err(Error::invalid_field(
                        file,
                        field(),
                        format!(
                            "`{}` is {x}, not a number: input `{}` is {} (write 1 or 0)",
                            field(),
                            info.name,
                            info.dtype
                        ),
                    ));
                }
                _ => None,
            }
            .ok_or_else(|| {
                Error::invalid_field(file, field(), format!("`{}` is {x}, not a number", field()))
            })?;
            v.push(f);
        }
        if v.is_empty() {
            return Err(Error::invalid_field(
                file,
                format!("input_data[{i}]"),
                format!("`input_data[{i}]` (input `{}`) is empty", info.name),
            ));
        }
        flat.push(v);
    }
    let lens: Vec<usize> = flat.iter().map(|v| v.len()).collect();
    let shapes = model.input_shapes(Some(&lens)).map_err(|e| match e {
        Error::Invalid { msg, field, .. } => Error::Invalid {
            file: file.to_string(),
            field,
            msg,
        },
        other => other,
    })?;
    let mut out = vec![];
    for ((v, shape), info) in flat.into_iter().zip(shapes).zip(&model.inputs) {
        if numel(&shape) != v.len() {
            return Err(Error::invalid_field(
                file,
                format!("input_data[{}]", out.len()),
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

/// One sample of a data set: where it came from, its input tensors, and its label when the
/// object carries one (`"label": <integer>`, the expected class for accuracy figures).
#[derive(Clone, Debug)]
pub struct DataSample {
    /// The file (and line, for JSON Lines) it was read from.
    pub source: String,
    /// A short name: the file stem, with the line number for JSON Lines.
    pub name: String,
    pub inputs: Vec<Tensor<f64>>,
    pub label: Option<i64>,
    /// The input object's text (a receipt folder with a public input keeps it as input.json).
    pub text: String,
}

/// At most this many samples in one data set (each is a float run and, when calibrating, an
/// integer evaluation of every value).
pub const MAX_SAMPLES: usize = 100_000;

/// Read a data set: each path is an input file, a JSON Lines file (`.jsonl`, one input object
/// per line; blank lines skipped), or a folder of `.json` input files (in name order).
pub fn read_samples(paths: &[PathBuf], model: &Model) -> Result<Vec<DataSample>> {
    let mut out = vec![];
    for path in paths {
        let stem = || {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into())
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| Error::invalid(path.display(), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::invalid(path.display(), "holds no .json input files"));
            }
            out.extend(read_samples(&files, model)?);
        } else if path.extension().is_some_and(|x| x == "jsonl") {
            let text = read_input(path)?;
            let before = out.len();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let source = format!("{} line {}", path.display(), i + 1);
                out.push(labelled(
                    line,
                    source,
                    format!("{}-{}", stem(), i + 1),
                    model,
                )?);
            }
            if out.len() == before {
                return Err(Error::invalid(path.display(), "holds no samples"));
            }
        } else {
            let text = read_input(path)?;
            out.push(labelled(&text, path.display().to_string(), stem(), model)?);
        }
        if out.len() > MAX_SAMPLES {
            return Err(Error::invalid(
                path.display(),
                format!("more than {MAX_SAMPLES} samples in one data set"),
            ));
        }
    }
    if out.is_empty() {
        return Err(Error::Usage("no samples given".into()));
    }
    Ok(out)
}

/// One input object with its optional label.
fn labelled(text: &str, source: String, name: String, model: &Model) -> Result<DataSample> {
    let doc = parse_doc(text, &source)?;
    let inputs = parse_input_doc(&doc, &source, model)?;
    let label = match doc.get("label") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            Error::invalid_field(
                &source,
                "label",
                format!("field `label` is {v}, not an integer class"),
            )
        })?),
    };
    Ok(DataSample {
        source,
        name,
        inputs,
        label,
        text: text.to_string(),
    })
}
