//! Packages: one model set up once, many inferences proved against it. `setup` calibrates on a
//! data set, quantizes, compiles and derives the verifier key; every input proved against the
//! package uses that same quantized model, circuit and key, so its receipts share one model
//! commitment (and one `modelCommitment` for ERC-7992). `prove MODEL --input IN` is the same
//! flow with a package calibrated on that one input, made on the fly.

use std::time::Instant;

use super::folder::{read_file, read_json};
use super::precision::{self, error_on};
use super::prove::{Keys, prove_chain};
use super::*;
use crate::files::write_folder;
use crate::model::FloatRun;
use crate::model::input::{DataSample, read_samples};
use crate::quantize::dataset::{DataSetReport, data_set_gap, in_sample};
use crate::quantize::pipeline::run_floats;
use crate::quantize::quantize_calibrated;

/// File names inside a package folder (besides model.onnx, quantized.json, circuit.json and
/// vk.txt, as in a receipt folder).
pub const PACKAGE_FILE: &str = "package.json";
pub const CALIBRATION_FILE: &str = "calibration.json";
pub const PACKAGE_SCHEMA: &str = "zkreceipt.package/1";

/// A package folder, for `--out`: zkreceipt replaces one only when it holds nothing else.
pub const PACKAGE_FOLDER: crate::files::FolderKind = crate::files::FolderKind {
    what: "package",
    marker: PACKAGE_FILE,
    files: &[
        MODEL_FILE,
        QUANTIZED_FILE,
        CIRCUIT_FILE,
        VK_FILE,
        CALIBRATION_FILE,
        PACKAGE_FILE,
    ],
};

/// The hashes that name a package (`package.json`). Every receipt proved against it carries
/// the first four in its model commitment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub schema: String,
    pub onnx_sha256: String,
    pub quantized_sha256: String,
    pub circuit_sha256: String,
    pub vk_sha256: String,
    /// The data-set report (`calibration.json`): the calibration's results, not its data.
    pub calibration_sha256: String,
}

/// A set-up model: the artifacts every proof against it shares.
pub struct Package {
    pub model: Model,
    pub onnx_bytes: Vec<u8>,
    pub qm: QuantizedModel,
    /// The circuit quantized.json compiles to, without witness: its description
    /// (`compiled.info`, circuit.json) and what keygen reads.
    pub compiled: circuit::Compiled,
    pub vk_txt: String,
    pub calibration: DataSetReport,
    pub identity: Identity,
}

/// Float runs of every sample, with progress.
fn float_runs(
    model: &Model,
    samples: &[DataSample],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<FloatRun>> {
    let mut floats = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        if i % 25 == 0 {
            progress(&format!("float run {}/{}", i + 1, samples.len()));
        }
        floats.push(model.run_float(&s.inputs).map_err(|e| in_sample(e, s))?);
    }
    Ok(floats)
}

/// How many samples of the data set the precision's candidates are compared on.
const PRECISION_SAMPLES: usize = 16;

/// Read a model and a data set, run every sample in floats, and quantize calibrated on all of
/// them (at the precision the target chooses, [`precision::choose_among`]). Returns the model file's bytes, the model, the quantized model and the data-set gap.
pub fn calibrate(
    model_path: &Path,
    data: &[PathBuf],
    cfg: &QuantConfig,
    dis: Disclosure,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<u8>, Model, QuantizedModel, DataSetReport)> {
    let onnx_bytes = read_capped(model_path, MODEL_CAP, "the model")?;
    let model = Model::from_bytes(model_path, &onnx_bytes)?;
    model.check_supported()?;
    let samples = read_samples(data, &model)?;
    progress(&format!("calibrate on {} sample(s)", samples.len()));
    let floats = float_runs(&model, &samples, progress)?;
    let calibration = Calibration::Samples(
        samples
            .iter()
            .zip(&floats)
            .map(|(s, f)| (&s.inputs[..], f))
            .collect(),
    );
    progress("quantize");
    let qm = quantize_calibrated(&model, &calibration, cfg)?;
    // The precision is chosen on the first samples' error (each candidate is evaluated on them).
    let probe = samples.len().min(PRECISION_SAMPLES);
    let error = |q: &QuantizedModel| -> Option<f64> {
        samples[..probe]
            .iter()
            .zip(&floats)
            .map(|(s, f)| error_on(&model, q, &s.inputs, f).ok().map(|(e, _)| e))
            .try_fold(0f64, |m, e| e.map(|e| m.max(e)))
    };
    let base_error = error(&qm).unwrap_or(f64::INFINITY);
    progress("choose the precision");
    let (choice, better) =
        precision::choose_among(&qm, base_error, dis, false, &mut *progress, |c| {
            let q = quantize_calibrated(&model, &calibration, c).ok()?;
            let e = error(&q)?;
            Some((q, e))
        })?;
    progress(&format!("precision: {}", choice.why));
    let qm = better.unwrap_or(qm);
    let gap = data_set_gap(&model, &qm, &samples, &floats, progress)?;
    Ok((onnx_bytes, model, qm, gap))
}

impl Package {
    /// Calibrate on the data set, compile for `dis`'s visibility, and derive the keys (refusing
    /// what `limits` excludes, before parameters or keys are made).
    pub fn setup(
        model_path: &Path,
        data: &[PathBuf],
        cfg: &QuantConfig,
        limits: &ProveOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(Package, Keys)> {
        let dis = limits.disclosure()?;
        let (onnx_bytes, model, qm, calibration) = calibrate(model_path, data, cfg, dis, progress)?;
        progress("compile");
        let compiled = circuit::compile_as(&qm, dis, None)
            .map_err(|e| Error::invalid(model.file(), e.to_string()))?;
        let keys = Keys::make(&compiled, limits, model_path, progress)?;
        let identity = Identity {
            schema: PACKAGE_SCHEMA.into(),
            onnx_sha256: model.sha256.clone(),
            quantized_sha256: canonical_sha256(&qm),
            circuit_sha256: canonical_sha256(&compiled.info),
            vk_sha256: keys.vk.sha256.clone(),
            calibration_sha256: canonical_sha256(&calibration),
        };
        let pkg = Package {
            vk_txt: keys.vk.pinned.clone(),
            model,
            onnx_bytes,
            qm,
            compiled,
            calibration,
            identity,
        };
        Ok((pkg, keys))
    }

    /// Write the package folder atomically (an existing package at `out` is replaced, any folder
    /// with `force`); returns whether a folder was replaced.
    pub fn write(&self, out: &Path, force: bool) -> Result<bool> {
        let files: Vec<(&str, Vec<u8>)> = vec![
            (MODEL_FILE, self.onnx_bytes.clone()),
            (QUANTIZED_FILE, prove::json_pretty(&self.qm)),
            (CIRCUIT_FILE, prove::json_pretty(self.info())),
            (VK_FILE, self.vk_txt.clone().into_bytes()),
            (CALIBRATION_FILE, prove::json_pretty(&self.calibration)),
            (PACKAGE_FILE, prove::json_pretty(&self.identity)),
        ];
        write_folder(out, &files, &PACKAGE_FOLDER, force)
    }

    /// Whether `path` is a package folder.
    pub fn is_package(path: &Path) -> bool {
        path.is_dir() && path.join(PACKAGE_FILE).is_file()
    }

    /// Read a package folder strictly: every file must be what its hash in package.json says,
    /// quantized.json must be what model.onnx gives with its recorded ranges, and circuit.json
    /// what quantized.json compiles to.
    pub fn read(dir: &Path) -> Result<Package> {
        let identity: Identity = read_json(dir, PACKAGE_FILE)?;
        let bad = |file: &str, msg: String| Error::invalid(dir.join(file).display(), msg);
        if identity.schema != PACKAGE_SCHEMA {
            return Err(bad(
                PACKAGE_FILE,
                format!(
                    "field `schema` is {:?}, expected {PACKAGE_SCHEMA:?}",
                    identity.schema
                ),
            ));
        }
        let onnx_bytes = read_capped(&dir.join(MODEL_FILE), MODEL_CAP, "the model")?;
        let qm: QuantizedModel = read_json(dir, QUANTIZED_FILE)?;
        qm.validate().map_err(|e| bad(QUANTIZED_FILE, e))?;
        let info: CircuitInfo = read_json(dir, CIRCUIT_FILE)?;
        let vk_txt = String::from_utf8(read_file(dir, VK_FILE)?)
            .map_err(|_| bad(VK_FILE, "not UTF-8 text".into()))?;
        let calibration: DataSetReport = read_json(dir, CALIBRATION_FILE)?;
        let hashes = [
            (MODEL_FILE, sha256_hex(&onnx_bytes), &identity.onnx_sha256),
            (
                QUANTIZED_FILE,
                canonical_sha256(&qm),
                &identity.quantized_sha256,
            ),
            (
                CIRCUIT_FILE,
                canonical_sha256(&info),
                &identity.circuit_sha256,
            ),
            (VK_FILE, sha256_hex(vk_txt.as_bytes()), &identity.vk_sha256),
            (
                CALIBRATION_FILE,
                canonical_sha256(&calibration),
                &identity.calibration_sha256,
            ),
        ];
        for (file, sha, want) in hashes {
            if &sha != want {
                return Err(bad(
                    file,
                    format!("has sha256 {sha}; package.json says {want}"),
                ));
            }
        }
        let model = Model::from_bytes(&dir.join(MODEL_FILE), &onnx_bytes)?;
        let again = quantize_calibrated(&model, &Calibration::Recorded(&qm), &qm.config)?;
        if again != qm {
            return Err(bad(
                QUANTIZED_FILE,
                "is not what model.onnx gives with the ranges it records".into(),
            ));
        }
        let layout = info.layout;
        let compiled = circuit::compile_for(&qm, layout, layout.disclosure(), None)
            .map_err(|e| bad(QUANTIZED_FILE, e.to_string()))?;
        if compiled.info != info {
            return Err(bad(
                CIRCUIT_FILE,
                "is not the circuit quantized.json compiles to".into(),
            ));
        }
        Ok(Package {
            model,
            onnx_bytes,
            qm,
            compiled,
            vk_txt,
            calibration,
            identity,
        })
    }

    /// Make the parameters and keys of the package's circuit (once for every proof); the key
    /// must be the package's vk.txt.
    pub fn keys(&self, limits: &ProveOptions, progress: &mut dyn FnMut(&str)) -> Result<Keys> {
        let keys = Keys::make(&self.compiled, limits, Path::new(MODEL_FILE), progress)?;
        if keys.vk.pinned != self.vk_txt {
            return Err(Error::invalid(
                VK_FILE,
                "the package's vk.txt is not the key of its circuit",
            ));
        }
        Ok(keys)
    }

    /// The package's circuit.json.
    pub fn info(&self) -> &CircuitInfo {
        &self.compiled.info
    }

    /// The options a proof against this package takes: its visibility, the caller's salt,
    /// randomness and limits. A salt must be given exactly when the package's circuit is salted.
    pub fn options(&self, opts: &ProveOptions) -> Result<ProveOptions> {
        let layout = self.info().layout;
        if layout.salted != opts.salt.is_some() {
            return Err(Error::Usage(if layout.salted {
                "the package was set up for a salted hashed input: give --salt".into()
            } else {
                "--salt: the package was set up without a salt (setup --salted makes one that takes it)"
                    .into()
            }));
        }
        Ok(ProveOptions {
            input: layout.input,
            params: layout.params,
            ..*opts
        })
    }

    /// Prove one sample against the package into the receipt folder `out`. An input outside
    /// what the package was calibrated for is refused before proving, with the way to widen it.
    pub fn prove(
        &self,
        keys: &Keys,
        sample: &DataSample,
        out: &Path,
        opts: &ProveOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Proved> {
        let opts = self.options(opts)?;
        let clock = Instant::now();
        let chain = self
            .chain(sample, opts.disclosure()?)
            .map_err(|e| widen(e, sample))?;
        let t = Timings {
            quantize_s: clock.elapsed().as_secs_f64(),
            ..Timings::default()
        };
        prove_chain(chain, keys, &opts, out, t, progress)
    }

    /// The quantization gap of the package's model over a data set (its calibration kept).
    pub fn gap_on(
        &self,
        data: &[PathBuf],
        progress: &mut dyn FnMut(&str),
    ) -> Result<DataSetReport> {
        let samples = read_samples(data, &self.model)?;
        let floats = float_runs(&self.model, &samples, progress)?;
        data_set_gap(&self.model, &self.qm, &samples, &floats, progress)
    }

    /// The chain of one sample through the package's quantized model and circuit.
    fn chain(&self, sample: &DataSample, dis: Disclosure) -> Result<Chain> {
        let (report, inputs) = run_floats(&self.model, &self.qm, &sample.inputs)?;
        let values = self.qm.evaluate(&inputs)?;
        let layout = self.info().layout;
        let compiled = circuit::compile_for(&self.qm, layout, dis, Some(&values))
            .map_err(|e| Error::invalid(self.model.file(), e.to_string()))?;
        if &compiled.info != self.info() {
            return Err(Error::Internal(
                "the circuit with this input's witness differs from the package's".into(),
            ));
        }
        let outputs = self.qm.outputs.iter().map(|&v| values[v].clone()).collect();
        Ok(Chain {
            model: self.model.clone(),
            qm: self.qm.clone(),
            report,
            compiled,
            inputs,
            outputs,
            onnx_bytes: self.onnx_bytes.clone(),
            input_bytes: sample.text.clone().into_bytes(),
            precision: None,
            calibration: Some(self.calibration.clone()),
        })
    }
}

/// An input the package cannot prove: say which sample and how to widen the package.
fn widen(e: Error, sample: &DataSample) -> Error {
    match in_sample(e, sample) {
        Error::Invalid { file, field, msg } => Error::Invalid {
            file,
            field,
            msg: format!(
                "{msg}; this input is outside what the package was calibrated for: run setup \
                 again with it among the --calibration samples, or with a larger --margin"
            ),
        },
        other => other,
    }
}

/// Read a data set for proving against `pkg` (the same forms as calibration data).
pub fn read_inputs(pkg: &Package, paths: &[PathBuf]) -> Result<Vec<DataSample>> {
    read_samples(paths, &pkg.model)
}
