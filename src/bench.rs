//! `zkreceipt bench`: the numbers of design.md §7 for our own chain, per model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::circuit::Disclosure;
use crate::error::{Error, Result};
use crate::proof;
use crate::quantize::QuantConfig;
use crate::receipt::{build_chain, build_chain_as};

/// One model's figures. The keys are stable (design.md §2).
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub name: String,
    pub k: u32,
    pub rows: usize,
    pub advice_columns: usize,
    pub lanes: usize,
    pub lane_groups: usize,
    /// Seconds to make the parameters for k, or to read them when cached (`params_cached`).
    pub params_s: f64,
    pub params_cached: bool,
    /// Verifier and proving keys from the parameters.
    pub keygen_s: f64,
    /// Median over the runs.
    pub prove_s: f64,
    /// Median over the runs: the proof check alone, with the key in memory.
    pub verify_s: f64,
    pub proof_bytes: usize,
    /// Peak resident memory while this model ran (the process's high-water mark, reset per model
    /// where the kernel allows it).
    pub peak_rss_mib: f64,
    /// Largest |circuit output − float output (tract)|.
    pub max_abs_error: f64,
    pub runs: usize,
}

/// The bundled samples, when no model is named.
fn default_models() -> Vec<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let dir = if dir.is_dir() {
        dir
    } else {
        PathBuf::from("samples")
    };
    ["digits", "mlp", "cnn", "sigmoid"]
        .iter()
        .map(|n| {
            (
                dir.join(n).join("model.onnx"),
                dir.join(n).join("input.json"),
            )
        })
        .collect()
}

/// Peak RSS of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// Reset the peak-RSS mark so the next model's peak is its own (Linux ≥ 4.0; else the mark
/// stays the process's peak so far).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn name_of(model: &Path) -> String {
    let stem = model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model");
    match model
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
    {
        Some(dir) if stem == "model" || stem == "network" => dir.to_string(),
        _ => stem.to_string(),
    }
}

/// Measure one model.
pub fn bench_model(
    model: &Path,
    input: &Path,
    runs: usize,
    dis: Disclosure,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchRow> {
    reset_peak_rss();
    progress(&format!("{}: quantize and compile", model.display()));
    let chain = build_chain_as(model, input, &QuantConfig::default(), dis)?;
    let info = &chain.compiled.info;
    proof::check_fits(
        info.layout,
        info.k,
        false,
        &model.display().to_string(),
        progress,
    )?;
    let t = Instant::now();
    let (params, made_s) = proof::params(info.k, progress)?;
    let params_cached = made_s == 0.0;
    let params_s = if params_cached {
        t.elapsed().as_secs_f64()
    } else {
        made_s
    };
    progress("keygen");
    let t = Instant::now();
    let (vk, pk) = proof::keygen(&params, &chain.compiled.circuit)?;
    let keygen_s = t.elapsed().as_secs_f64();
    let instance = chain
        .compiled
        .circuit
        .instance()
        .ok_or_else(|| Error::invalid(model.display(), "the circuit has no witness"))?;
    let (mut prove_s, mut verify_s, mut proof_bytes) = (vec![], vec![], 0);
    for run in 0..runs.max(1) {
        progress(&format!("prove (run {})", run + 1));
        let rng = crate::receipt::ProofRng::Os;
        let t = Instant::now();
        let p = proof::prove(&params, &pk, &chain.compiled.circuit, &instance, rng.rng()?)?;
        prove_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        proof::verify(&params, &vk.vk, &instance, &p)
            .map_err(|e| Error::invalid(model.display(), format!("proof does not verify: {e}")))?;
        verify_s.push(t.elapsed().as_secs_f64());
        proof_bytes = p.len();
    }
    Ok(BenchRow {
        name: name_of(model),
        k: info.k,
        rows: info.rows,
        advice_columns: info.advice_columns,
        lanes: info.layout.lanes,
        lane_groups: info.layout.groups,
        params_s,
        params_cached,
        keygen_s,
        prove_s: median(prove_s),
        verify_s: median(verify_s),
        proof_bytes,
        peak_rss_mib: peak_rss_mib(),
        max_abs_error: chain
            .report
            .outputs
            .iter()
            .map(|o| o.max_abs_error)
            .fold(0.0, f64::max),
        runs: runs.max(1),
    })
}

/// Measure `models` (each with its input, in order; the bundled samples when none is named).
pub fn bench_rows(
    models: &[PathBuf],
    inputs: &[PathBuf],
    runs: usize,
    dis: Disclosure,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<BenchRow>> {
    model_inputs(models, inputs)?
        .iter()
        .map(|(m, i)| bench_model(m, i, runs, dis, progress))
        .collect()
}

/// The models with their inputs, in order (the bundled samples when none is named).
fn model_inputs(models: &[PathBuf], inputs: &[PathBuf]) -> Result<Vec<(PathBuf, PathBuf)>> {
    if models.is_empty() {
        if !inputs.is_empty() {
            return Err(Error::Usage("--input: given without a model".into()));
        }
        Ok(default_models())
    } else if models.len() != inputs.len() {
        Err(Error::Usage(format!(
            "bench: {} models but {} --input files: give one --input per model, in order",
            models.len(),
            inputs.len()
        )))
    } else {
        Ok(models.iter().cloned().zip(inputs.iter().cloned()).collect())
    }
}

/// Proving N inferences of one model: N separate `prove` runs against one package and N proofs.
#[derive(Clone, Debug, Serialize)]
pub struct BatchRow {
    pub name: String,
    pub proofs: usize,
    /// N separate runs of `prove MODEL` (each calibrates, compiles, makes the keys, proves and
    /// writes its folder; parameters cached).
    pub separate_s: f64,
    /// `setup` (calibrated on the input) plus `prove PKG` of N inputs: keys made once.
    pub setup_s: f64,
    pub batch_s: f64,
    /// batch_s / separate_s.
    pub ratio: f64,
}

/// Time N proofs of `model` on `input`, separately and as a batch against one package. The
/// receipt folders go to a temporary folder, removed afterwards.
pub fn batch_row(
    model: &Path,
    input: &Path,
    proofs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<BatchRow> {
    use crate::receipt::package::Package;
    use crate::receipt::{ProofRng, ProveOptions, prove_folder};
    let tmp = std::env::temp_dir().join(format!("zkreceipt-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let io = |e: std::io::Error| Error::invalid(tmp.display(), e);
    std::fs::create_dir_all(&tmp).map_err(io)?;
    let opts = ProveOptions {
        rng: ProofRng::Seeded(1),
        ..ProveOptions::default()
    };
    let proofs = proofs.max(1);
    let cfg = QuantConfig::default();
    let quiet = &mut |_: &str| {};
    // Parameters are cached before either side is timed.
    progress(&format!("{}: parameters", model.display()));
    prove_folder(model, input, &tmp.join("warm"), &cfg, &opts, quiet)?;
    progress(&format!("{}: {proofs} separate proofs", model.display()));
    let t = Instant::now();
    for i in 0..proofs {
        prove_folder(model, input, &tmp.join(format!("s{i}")), &cfg, &opts, quiet)?;
    }
    let separate_s = t.elapsed().as_secs_f64();
    progress(&format!(
        "{}: setup and {proofs} proofs in a batch",
        model.display()
    ));
    let t = Instant::now();
    let (pkg, keys) = Package::setup(model, &[input.to_path_buf()], &cfg, &opts, quiet)?;
    let setup_s = t.elapsed().as_secs_f64();
    let sample = crate::receipt::package::read_inputs(&pkg, &[input.to_path_buf()])?;
    for i in 0..proofs {
        pkg.prove(&keys, &sample[0], &tmp.join(format!("b{i}")), &opts, quiet)?;
    }
    let batch_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(BatchRow {
        name: name_of(model),
        proofs,
        separate_s,
        setup_s,
        batch_s,
        ratio: batch_s / separate_s.max(1e-9),
    })
}

/// [`batch_row`] for `models` with their inputs (the bundled samples when none is named).
pub fn batch_rows(
    models: &[PathBuf],
    inputs: &[PathBuf],
    proofs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<BatchRow>> {
    model_inputs(models, inputs)?
        .iter()
        .map(|(m, i)| batch_row(m, i, proofs, progress))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The corpus run (issue 6): every model of a census.json folder through the whole chain.

/// One corpus model's way through the chain.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusRow {
    pub name: String,
    pub tier: i64,
    pub supported: bool,
    /// `op_type (node)` for every node the preflight refuses.
    pub unsupported: Vec<String>,
    /// Largest |tract − onnxruntime| (relative above 1).
    pub float_max_diff: Option<f64>,
    /// Largest |circuit output − onnxruntime| (relative above 1).
    pub max_abs_error: Option<f64>,
    pub k: Option<u32>,
    pub rows: Option<usize>,
    /// The activation scale the precision choice settled on (`--target`, default balanced).
    pub scale: Option<u32>,
    pub prove_s: Option<f64>,
    pub verified: Option<bool>,
    /// Where and why the chain stopped, when it did.
    pub stopped: Option<String>,
}

fn scaled_diff(a: &[f64], reference: &[f64]) -> f64 {
    if a.len() != reference.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(reference)
        .map(|(x, r)| (x - r).abs() / r.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn corpus_model(dir: &Path, e: &serde_json::Value, max_k: u32) -> CorpusRow {
    let name = e["name"].as_str().unwrap_or("?").to_string();
    let mut row = CorpusRow {
        name: name.clone(),
        tier: e["tier"].as_i64().unwrap_or(0),
        supported: false,
        unsupported: vec![],
        float_max_diff: None,
        max_abs_error: None,
        k: None,
        rows: None,
        scale: None,
        prove_s: None,
        verified: None,
        stopped: None,
    };
    let model_path = dir.join(&name).join("network.onnx");
    let input_path = dir.join(&name).join("input.json");
    let m = match crate::model::Model::load(&model_path) {
        Ok(m) => m,
        Err(err) => {
            row.stopped = Some(format!("load: {err}"));
            return row;
        }
    };
    let refused = m.preflight();
    if !refused.is_empty() {
        row.unsupported = refused
            .iter()
            .map(|u| format!("{} ({})", u.op_type, u.node))
            .collect();
        row.stopped = Some("unsupported ops".into());
        return row;
    }
    row.supported = true;
    let chain = match build_chain(&model_path, &input_path, &QuantConfig::default()) {
        Ok(c) => c,
        Err(err) => {
            row.stopped = Some(format!("quantize/compile: {err}"));
            return row;
        }
    };
    let refs: Vec<Vec<f64>> = e["ort_outputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    o["values"]
                        .as_array()
                        .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let outs = &chain.report.outputs;
    if refs.len() == outs.len() {
        row.float_max_diff = Some(
            outs.iter()
                .zip(&refs)
                .map(|(o, r)| scaled_diff(&o.float, r))
                .fold(0.0, f64::max),
        );
        row.max_abs_error = Some(
            outs.iter()
                .zip(&refs)
                .map(|(o, r)| scaled_diff(&o.quantized, r))
                .fold(0.0, f64::max),
        );
    }
    let info = &chain.compiled.info;
    row.k = Some(info.k);
    row.rows = Some(info.rows);
    row.scale = Some(chain.qm.scale);
    if info.k > max_k {
        row.stopped = Some(format!("k={} > --max-k {max_k}: not proved", info.k));
        return row;
    }
    let result = (|| -> Result<(f64, bool)> {
        proof::check_fits(info.layout, info.k, false, &row.name, &mut |_| {})?;
        let (params, _) = proof::params(info.k, &mut |_| {})?;
        let (vk, pk) = proof::keygen(&params, &chain.compiled.circuit)?;
        let instance = chain
            .compiled
            .circuit
            .instance()
            .ok_or_else(|| Error::invalid(&name, "no witness"))?;
        let t = Instant::now();
        let p = proof::prove(
            &params,
            &pk,
            &chain.compiled.circuit,
            &instance,
            crate::receipt::ProofRng::Os.rng()?,
        )?;
        let s = t.elapsed().as_secs_f64();
        Ok((s, proof::verify(&params, &vk.vk, &instance, &p).is_ok()))
    })();
    match result {
        Ok((s, ok)) => {
            row.prove_s = Some(s);
            row.verified = Some(ok);
        }
        Err(err) => row.stopped = Some(format!("prove: {err}")),
    }
    row
}

/// `bench --corpus DIR`: every model of the corpus, in census order.
pub fn corpus_rows(
    dir: &Path,
    max_k: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<CorpusRow>> {
    let census_path = dir.join("census.json");
    let text = crate::files::read_capped(&census_path, crate::files::FILE_CAP, "the census")?;
    let census: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::invalid(census_path.display(), format!("not JSON: {e}")))?;
    let examples = census["examples"]
        .as_array()
        .ok_or_else(|| Error::invalid(census_path.display(), "field `examples` missing"))?;
    let mut rows = vec![];
    for e in examples {
        progress(e["name"].as_str().unwrap_or("?"));
        rows.push(corpus_model(dir, e, max_k));
    }
    Ok(rows)
}
