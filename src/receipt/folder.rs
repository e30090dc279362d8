//! Reading a receipt folder: every artifact strictly, as untrusted input.

use super::*;
/// A receipt folder read from disk.
#[derive(Clone)]
pub struct Folder {
    pub dir: PathBuf,
    pub receipt: Receipt,
    pub qm: QuantizedModel,
    pub circuit: CircuitInfo,
    pub vk_txt: String,
    pub proof: Vec<u8>,
    /// A receipt proved against a package carries the package's data-set report
    /// (`calibration.json`): the prover's figures, which the proof does not bind.
    pub calibration: Option<DataSetReport>,
}

pub(super) fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    // quantized.json carries the model's weights: it gets the model's cap.
    let cap = if name == QUANTIZED_FILE {
        MODEL_CAP
    } else {
        FILE_CAP
    };
    read_capped(&dir.join(name), cap, "the file")
}

/// Read an artifact of the folder strictly: it must be exactly what its parsed form writes back
/// (as JSON values: key order and spacing aside). A key the format does not have, or a number
/// written in another type, is refused by name, so no field is accepted with a value nothing
/// checks.
pub(super) fn read_json<T: Serialize + for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> Result<T> {
    read_json_as(dir, name, true)
}

/// [`read_json`]; not `strict`: any JSON that parses into `T` (to tell an older format by its
/// fields before refusing it as a whole).
pub(super) fn read_json_as<T: Serialize + for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
    strict: bool,
) -> Result<T> {
    let bytes = read_file(dir, name)?;
    let file = || dir.join(name).display().to_string();
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::invalid(file(), format!("not a valid {name}: not UTF-8 text")))?;
    let raw = crate::json::parse_strict(text)
        .map_err(|e| Error::invalid(file(), format!("not a valid {name}: {e}")))?;
    let parsed: T = serde_json::from_value(raw.clone())
        .map_err(|e| Error::invalid(file(), format!("not a valid {name}: {e}")))?;
    let canon = serde_json::to_value(&parsed)
        .map_err(|e| Error::invalid(file(), format!("not a valid {name}: {e}")))?;
    match json_difference(&raw, &canon).filter(|_| strict) {
        None => Ok(parsed),
        Some((path, what)) => Err(Error::invalid_field(
            file(),
            &path,
            format!("field `{path}` {what}"),
        )),
    }
}

/// The first place where `file` differs from `canon`: its path and what is wrong there.
pub(super) fn json_difference(
    file: &serde_json::Value,
    canon: &serde_json::Value,
) -> Option<(String, &'static str)> {
    use serde_json::Value;
    let nest = |key: String, (path, what): (String, &'static str)| {
        let sep = if path.is_empty() || path.starts_with('[') {
            ""
        } else {
            "."
        };
        (format!("{key}{sep}{path}"), what)
    };
    match (file, canon) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    None => return Some((k.clone(), "is not part of the format")),
                    Some(w) => {
                        if let Some(d) = json_difference(v, w) {
                            return Some(nest(k.clone(), d));
                        }
                    }
                }
            }
            b.keys()
                .find(|k| !a.contains_key(*k))
                .map(|k| (k.clone(), "is missing"))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| json_difference(v, w).map(|d| nest(format!("[{i}]"), d))),
        _ if file == canon => None,
        _ => Some((String::new(), "is not in the form this format writes")),
    }
}

impl Folder {
    /// Read a folder, given the folder or its `receipt.json`.
    pub fn load(path: &Path) -> Result<Folder> {
        if std::fs::metadata(path).is_err() && path.file_name().is_none_or(|n| n != RECEIPT_FILE) {
            return Err(Error::invalid(
                path.display(),
                "cannot read it: no such file or folder",
            ));
        }
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else if path.file_name().is_some_and(|n| n == RECEIPT_FILE) {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            return Err(Error::invalid(
                path.display(),
                "not a receipt folder or a receipt.json",
            ));
        };
        let receipt: Receipt = read_json_as(&dir, RECEIPT_FILE, false)?;
        if receipt.schema != SCHEMA {
            return Err(Error::invalid(
                dir.join(RECEIPT_FILE).display(),
                format!(
                    "field `schema` is {:?}, expected {SCHEMA:?}",
                    receipt.schema
                ),
            ));
        }
        // Another circuit format lays the same model out differently: its key cannot be
        // re-derived here, so say so rather than report a mismatch.
        if receipt.verifier.circuit_format != CIRCUIT_FORMAT {
            return Err(Error::invalid(
                dir.join(RECEIPT_FILE).display(),
                format!(
                    "field `verifier.circuit_format` is {}: made by another zkreceipt version \
                     (this one reads format {CIRCUIT_FORMAT}); prove the model again",
                    receipt.verifier.circuit_format
                ),
            ));
        }
        let receipt: Receipt = read_json(&dir, RECEIPT_FILE)?;
        let qm: QuantizedModel = read_json(&dir, QUANTIZED_FILE)?;
        qm.validate()
            .map_err(|e| Error::invalid(dir.join(QUANTIZED_FILE).display(), e))?;
        let circuit: CircuitInfo = read_json(&dir, CIRCUIT_FILE)?;
        let vk_txt = String::from_utf8(read_file(&dir, VK_FILE)?)
            .map_err(|_| Error::invalid(dir.join(VK_FILE).display(), "not UTF-8 text"))?;
        let proof = read_file(&dir, PROOF_FILE)?;
        let calibration = match dir.join(package::CALIBRATION_FILE).exists() {
            true => Some(read_json(&dir, package::CALIBRATION_FILE)?),
            false => None,
        };
        Ok(Folder {
            dir,
            receipt,
            qm,
            circuit,
            vk_txt,
            proof,
            calibration,
        })
    }
}
