//! The audit: re-derive every link of the chain from the folder's own artifacts and say, per
//! link, whether it holds and what differs.

use serde::Serialize;

use super::{
    ChainLink, Folder, INPUT_FILE, KeyCache, MODEL_FILE, QUANTIZED_FILE, TensorClaim,
    canonical_sha256, first_difference, input_sha256, verify_folder_with,
};
use crate::circuit::{self, ParamVisibility, Visibility, commit};
use crate::error::Result;
use crate::model::Model;
use crate::model::sha256_hex;
use crate::quantize::pipeline::run_through;
use crate::quantize::report::RunReport;
use crate::quantize::{Calibration, quantize_calibrated};
use crate::tensor::Tensor;

#[derive(Clone, Debug, Serialize)]
pub struct Link {
    pub link: String,
    /// The link of the chain this check derives.
    pub stage: ChainLink,
    pub holds: bool,
    /// Not checkable from the folder (the input of a hashed or private receipt is not in it);
    /// a skipped link does not count against the audit.
    pub skipped: bool,
    /// What was compared, or what differs, or why it was skipped.
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    pub links: Vec<Link>,
    pub holds: bool,
}

impl AuditReport {
    /// The verdict on one chain link: None when no check derives it, Some(None) when every
    /// check that derives it was skipped, else Some(Some(whether every check that ran holds)).
    pub fn verdict_at(&self, stage: ChainLink) -> Option<Option<bool>> {
        let of: Vec<&Link> = self.links.iter().filter(|l| l.stage == stage).collect();
        if of.is_empty() {
            None
        } else if of.iter().all(|l| l.skipped) {
            Some(None)
        } else {
            Some(Some(of.iter().all(|l| l.holds || l.skipped)))
        }
    }
}

fn link(
    links: &mut Vec<Link>,
    stage: ChainLink,
    name: &str,
    holds: bool,
    ok: String,
    broken: String,
) {
    links.push(Link {
        link: name.into(),
        stage,
        holds,
        skipped: false,
        detail: if holds { ok } else { broken },
    });
}

/// The check that re-runs the inference and compares the receipt's output and error figures.
pub const OUTPUT_FIGURES: &str = "inference → output and error figures";

fn skip(links: &mut Vec<Link>, stage: ChainLink, name: &str, why: &str) {
    links.push(Link {
        link: name.into(),
        stage,
        holds: false,
        skipped: true,
        detail: why.into(),
    });
}

/// Audit a folder: model file → quantized model → circuit → verifier key → proof, and the
/// input, output and error figures re-derived by running the model again.
pub fn audit(f: &Folder, progress: &mut dyn FnMut(&str)) -> Result<AuditReport> {
    audit_with(f, &mut KeyCache::default(), progress)
}

/// [`audit`] with a key cache (the inspector keeps one per open folder).
pub fn audit_with(
    f: &Folder,
    keys: &mut KeyCache,
    progress: &mut dyn FnMut(&str),
) -> Result<AuditReport> {
    let mut links = vec![];
    let r = &f.receipt;
    let model_path = f.dir.join(MODEL_FILE);
    let input_path = f.dir.join(INPUT_FILE);

    // A redacted folder (hashed weights, shared without them) has no model.onnx and no
    // weights: the links that need them cannot be re-derived from it.
    let redacted = f.qm.redacted.is_some().then(|| {
        "skipped: the folder is redacted (no model.onnx, no weights); the proof binds the weights to weights_commitment".to_string()
    });

    // 1. model.onnx is the file the receipt and the quantized model name.
    progress("model.onnx");
    model_file_link(f, &redacted, &mut links);

    // 2. Re-derive quantized.json from model.onnx and the ranges it records (no input needed,
    // so in every input mode); then, for a public input, run input.json through it.
    progress("re-quantize");
    const DERIVED: &str = "model.onnx + recorded ranges → quantized.json";
    let model = Model::load(&model_path);
    match (&redacted, &model) {
        (Some(why), _) => skip(&mut links, ChainLink::Quantized, DERIVED, why),
        (None, Err(e)) => link(
            &mut links,
            ChainLink::Quantized,
            DERIVED,
            false,
            String::new(),
            format!("cannot read model.onnx: {e}"),
        ),
        (None, Ok(m)) => {
            let again = quantize_calibrated(m, &Calibration::Recorded(&f.qm), &f.qm.config);
            let sha = canonical_sha256(&f.qm);
            let (holds, why) = match &again {
                Err(e) => (false, format!("cannot re-derive: {e}")),
                Ok(q) if q != &f.qm => (
                    false,
                    format!(
                        "re-deriving gives a different {QUANTIZED_FILE}: {}",
                        first_difference(q, &f.qm)
                    ),
                ),
                Ok(_) if sha != r.model_commitment.quantized_sha256 => (
                    false,
                    "quantized.json differs from model_commitment.quantized_sha256".into(),
                ),
                Ok(_) => (true, String::new()),
            };
            link(
                &mut links,
                ChainLink::Quantized,
                DERIVED,
                holds,
                format!("identical (sha256 {sha})"),
                why,
            );
        }
    }
    // A hashed or private input is not in the folder: the input and output links need it.
    let absent = match r.input_commitment.visibility {
        _ if redacted.is_some() => redacted.clone(),
        Visibility::Public => None,
        v => Some(format!(
            "skipped: the input is {} and not in the folder; the proof still binds the output to it",
            v.name()
        )),
    };
    let rerun = model.and_then(|m| run_through(&m, &f.qm, &input_path));

    // 3. Re-compile the circuit from quantized.json.
    progress("re-compile");
    let layout = f.circuit.layout;
    let compiled = circuit::compile_for(&f.qm, layout, layout.disclosure(), None);
    match &compiled {
        Ok(c) => link(
            &mut links,
            ChainLink::Circuit,
            "quantized.json → circuit.json",
            c.info == f.circuit
                && canonical_sha256(&f.circuit) == r.model_commitment.circuit_sha256,
            format!("identical (k={}, {} rows)", c.info.k, c.info.rows),
            if c.info != f.circuit {
                format!(
                    "re-compiling gives k={} with {} rows and {} advice columns; circuit.json says k={}, {} rows, {} advice columns",
                    c.info.k,
                    c.info.rows,
                    c.info.advice_columns,
                    f.circuit.k,
                    f.circuit.rows,
                    f.circuit.advice_columns
                )
            } else {
                "circuit.json differs from model_commitment.circuit_sha256".into()
            },
        ),
        Err(e) => link(
            &mut links,
            ChainLink::Circuit,
            "quantized.json → circuit.json",
            false,
            String::new(),
            format!("does not compile: {e}"),
        ),
    }

    // 3b. Hashed weights: the weights digest.
    weights_link(f, &redacted, &mut links);

    // 4. The verifier key, re-derived from the circuit quantized.json compiles to.
    key_link(f, &compiled, keys, &mut links, progress)?;

    // 5. The proof: everything `verify` checks.
    let v = verify_folder_with(f, keys, progress)?;
    link(
        &mut links,
        ChainLink::Proof,
        "verifier key + public input/output → proof",
        v.verified,
        format!("verified in {:.3}s", v.verify_s),
        v.reason.clone().unwrap_or_default(),
    );

    // 6. The input and 7. the output and error figures, re-derived.
    input_and_output_links(f, &absent, &rerun, &mut links);
    let holds = links.iter().all(|l| l.holds || l.skipped);
    Ok(AuditReport { links, holds })
}

/// Link 1: model.onnx is the file the receipt and the quantized model name.
fn model_file_link(f: &Folder, redacted: &Option<String>, links: &mut Vec<Link>) {
    let r = &f.receipt;
    let model_path = f.dir.join(MODEL_FILE);
    let onnx = crate::files::read_capped(&model_path, crate::files::MODEL_CAP, "the model");
    let onnx_sha = onnx.as_ref().map(|b| sha256_hex(b)).unwrap_or_default();
    if let Some(why) = &redacted {
        skip(links, ChainLink::FloatOnnx, "model.onnx → sha256", why);
    } else {
        link(
            links,
            ChainLink::FloatOnnx,
            "model.onnx → sha256",
            onnx.is_ok()
                && onnx_sha == r.model_commitment.onnx_sha256
                && onnx_sha == f.qm.source_sha256,
            format!("sha256 {onnx_sha}"),
            match &onnx {
                Err(e) => e.to_string(),
                Ok(_) => format!(
                    "sha256 {onnx_sha}; receipt says {}, quantized.json says {}",
                    r.model_commitment.onnx_sha256, f.qm.source_sha256
                ),
            },
        );
    }
}

/// Link 3b: hashed weights' Poseidon digest, recomputed from quantized.json, is the public
/// weights commitment the proof is checked against.
fn weights_link(f: &Folder, redacted: &Option<String>, links: &mut Vec<Link>) {
    let r = &f.receipt;
    let mc = &r.model_commitment;
    if let (ParamVisibility::Hashed, Some(why)) = (mc.param_visibility, &redacted) {
        skip(
            links,
            ChainLink::Quantized,
            "quantized.json → weights commitment",
            why,
        );
    } else if mc.param_visibility == ParamVisibility::Hashed {
        let ours = commit::fp_hex(commit::params_digest(&f.qm));
        link(
            links,
            ChainLink::Quantized,
            "quantized.json → weights commitment",
            ours == mc.weights_commitment,
            format!("Poseidon digest {ours}"),
            format!(
                "the weights in quantized.json hash to {ours}; the receipt shows {}",
                mc.weights_commitment
            ),
        );
    }
}

/// Links 6 and 7: input.json, quantized, is the receipt's public input and commitment, and the
/// output and error figures re-compute.
fn input_and_output_links(
    f: &Folder,
    absent: &Option<String>,
    rerun: &Result<(RunReport, Vec<Tensor<i64>>)>,
    links: &mut Vec<Link>,
) {
    let r = &f.receipt;
    if let Some(why) = &absent {
        skip(
            links,
            ChainLink::Receipt,
            "input.json → input commitment",
            why,
        );
        skip(links, ChainLink::Receipt, OUTPUT_FIGURES, why);
    } else if let Err(e) = &rerun {
        for what in ["input.json → input commitment", OUTPUT_FIGURES] {
            link(
                links,
                ChainLink::Receipt,
                what,
                false,
                String::new(),
                format!("cannot run input.json: {e}"),
            );
        }
    } else if let Ok((report, ints)) = &rerun {
        let qm = &f.qm;
        let claims: Vec<TensorClaim> = qm
            .inputs
            .iter()
            .zip(ints)
            .map(|(&v, t)| TensorClaim::new(&qm.values[v].name, t, qm.values[v].scale))
            .collect();
        let c = &r.input_commitment;
        link(
            links,
            ChainLink::Receipt,
            "input.json → input commitment",
            claims == c.tensors && input_sha256(&claims) == c.value,
            format!("sha256 {}", c.value),
            format!(
                "input.json quantizes to commitment {}; the receipt shows {}",
                input_sha256(&claims),
                c.value
            ),
        );
        // 7. Output and error figures: re-run float and integer inference.
        let outs_same = report.outputs.len() == r.output.len()
            && report
                .outputs
                .iter()
                .zip(&r.output)
                .all(|(o, c)| o.integers == c.integers);
        let max_abs = report
            .outputs
            .iter()
            .map(|o| o.max_abs_error)
            .fold(0.0, f64::max);
        let err_same = (max_abs - r.quantization.max_abs_error).abs() <= 1e-12 * max_abs.max(1.0);
        link(
            links,
            ChainLink::Receipt,
            OUTPUT_FIGURES,
            outs_same && err_same,
            format!("output re-computed; max abs error {max_abs:.3e}"),
            if !outs_same {
                "re-running the integer evaluator gives a different output than the receipt's"
                    .into()
            } else {
                format!(
                    "max abs error re-computes to {max_abs:.6e}; the receipt says {:.6e}",
                    r.quantization.max_abs_error
                )
            },
        );
    }
}

/// Link 4: the verifier key, re-derived from the circuit quantized.json compiles to.
fn key_link(
    f: &Folder,
    compiled: &std::result::Result<circuit::Compiled, circuit::CompileError>,
    keys: &mut KeyCache,
    links: &mut Vec<Link>,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let r = &f.receipt;
    match &compiled {
        Ok(c) => {
            let vk = keys.get(&f.qm, &c.info, c, progress)?.vk;
            let file_ok = vk.pinned == f.vk_txt;
            let hash_ok =
                vk.sha256 == r.verifier.vk_sha256 && vk.sha256 == r.model_commitment.vk_sha256;
            link(
                links,
                ChainLink::VerifierKey,
                "circuit → verifier key (vk.txt)",
                file_ok && hash_ok,
                format!("identical (sha256 {})", vk.sha256),
                if !file_ok {
                    format!(
                        "vk.txt differs from the re-derived key's pinned form (sha256 {})",
                        vk.sha256
                    )
                } else {
                    format!(
                        "the re-derived key has sha256 {}; the receipt records {}",
                        vk.sha256, r.verifier.vk_sha256
                    )
                },
            );
        }
        Err(_) => link(
            links,
            ChainLink::VerifierKey,
            "circuit → verifier key (vk.txt)",
            false,
            String::new(),
            "no circuit to derive it from".into(),
        ),
    }
    Ok(())
}
