//! Verifying a receipt folder: every number it shows checked against the re-derived circuit,
//! key and proof.

use super::*;
use std::sync::Arc;
/// The outcome of verifying a folder.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every check made, in order, with its outcome.
    pub checks: Vec<Check>,
    pub vk_sha256: String,
    pub k: u32,
    pub params_s: f64,
    pub keygen_s: f64,
    pub verify_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub holds: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Verify a folder: every number the receipt shows is checked against the proof. Structural
/// problems (unreadable files) are errors; a folder that reads but does not check out is a
/// verdict with `verified: false` and the first failing check as its reason.
pub fn verify_folder(f: &Folder, progress: &mut dyn FnMut(&str)) -> Result<Verdict> {
    verify_folder_with(f, &mut KeyCache::default(), progress)
}

/// The last verifier key derived, by the quantized model and circuit it came from: checking
/// many variants of one folder (the break test) derives the key once. It also keeps the last
/// proof check: halo2's verdict is a function of the key, the public values and the proof
/// bytes, so a variant that changes none of them (an unbound field) reuses it.
#[derive(Default)]
pub struct KeyCache {
    entry: Option<(String, CircuitInfo, DerivedKey)>,
    last_proof: Option<(String, std::result::Result<(), String>)>,
}

/// A verifier key and its parameters, shared with the cache, and what deriving them cost here
/// (0 when the cache had them).
#[derive(Clone)]
pub(crate) struct DerivedKey {
    pub params: Arc<Params<EqAffine>>,
    pub vk: Arc<proof::Vk>,
    pub params_s: f64,
    pub keygen_s: f64,
}

impl KeyCache {
    /// The key of `compiled` (the circuit of `qm` described by `info`), derived once.
    pub(crate) fn get(
        &mut self,
        qm: &QuantizedModel,
        info: &CircuitInfo,
        compiled: &circuit::Compiled,
        progress: &mut dyn FnMut(&str),
    ) -> Result<DerivedKey> {
        let key = canonical_sha256(qm);
        if let Some((k, i, d)) = &self.entry
            && *k == key
            && i == info
        {
            return Ok(DerivedKey {
                params_s: 0.0,
                keygen_s: 0.0,
                ..d.clone()
            });
        }
        let (params, params_s) = proof::params(info.k, progress)?;
        progress("verifier key");
        let c = Instant::now();
        let vk = proof::keygen_vk_only(&params, &compiled.circuit)?;
        let d = DerivedKey {
            params: Arc::new(params),
            vk: Arc::new(vk),
            params_s,
            keygen_s: c.elapsed().as_secs_f64(),
        };
        self.entry = Some((key, info.clone(), d.clone()));
        Ok(d)
    }

    /// halo2's verdict on `proof` for the public values `inst` under `vk`, reused when the last
    /// check had the same three.
    fn check_proof(
        &mut self,
        params: &Params<EqAffine>,
        vk: &proof::Vk,
        inst: &[Fp],
        proof: &[u8],
        progress: &mut dyn FnMut(&str),
    ) -> std::result::Result<(), String> {
        use halo2_proofs::pasta::group::ff::PrimeField;
        // Lengths first: no instance and proof pair can read as another.
        let mut bytes = vk.sha256.as_bytes().to_vec();
        bytes.extend((inst.len() as u64).to_le_bytes());
        bytes.extend((proof.len() as u64).to_le_bytes());
        for x in inst {
            bytes.extend(x.to_repr());
        }
        bytes.extend(proof);
        let id = sha256_hex(&bytes);
        if let Some((last, verdict)) = &self.last_proof
            && *last == id
        {
            progress(
                "proof: the key, public values and proof bytes of the last check; its verdict stands",
            );
            return verdict.clone();
        }
        progress("verify proof");
        let verdict = proof::verify(params, &vk.vk, inst, proof).map_err(|e| e.to_string());
        self.last_proof = Some((id, verdict.clone()));
        verdict
    }
}

/// [`verify_folder`] with a key cache.
pub fn verify_folder_with(
    f: &Folder,
    keys: &mut KeyCache,
    progress: &mut dyn FnMut(&str),
) -> Result<Verdict> {
    let r = &f.receipt;
    let mut checks: Vec<Check> = vec![];
    let mut v = Verdict {
        verified: false,
        reason: None,
        checks: vec![],
        vk_sha256: String::new(),
        k: f.circuit.k,
        params_s: 0.0,
        keygen_s: 0.0,
        verify_s: 0.0,
    };
    let mut check = |name: &str, failure: Option<String>| -> bool {
        let holds = failure.is_none();
        checks.push(Check {
            name: name.into(),
            holds,
            detail: failure,
        });
        holds
    };
    let finish = |mut v: Verdict, checks: Vec<Check>| {
        v.reason = checks
            .iter()
            .find(|c| !c.holds)
            .map(|c| format!("{}: {}", c.name, c.detail.clone().unwrap_or_default()));
        v.verified = v.reason.is_none();
        v.checks = checks;
        Ok(v)
    };

    // 1. The numbers shown: floats must be the integers at their scale, and the public values
    // must fit the model's shapes.
    let mut ok = true;
    for (name, failure) in artifact_checks(f, progress) {
        ok &= check(&name, failure);
    }
    if !ok {
        return finish(v, checks);
    }

    // 2. The circuit: re-compiled from quantized.json, it must be the one described.
    progress("compile");
    let layout = f.circuit.layout;
    let compiled = match circuit::compile_for(&f.qm, layout, layout.disclosure(), None) {
        Ok(c) => c,
        Err(e) => {
            check("circuit re-derived", Some(e.to_string()));
            return finish(v, checks);
        }
    };
    let same = compiled.info == f.circuit
        && canonical_sha256(&f.circuit) == r.model_commitment.circuit_sha256
        && r.verifier.k == f.circuit.k;
    if !check(
        "circuit re-derived",
        (!same).then(|| {
            "circuit.json differs from the circuit compiled from quantized.json, or from the receipt's circuit hash and k".into()
        }),
    ) {
        return finish(v, checks);
    }

    // 3. The verifier key: re-derived, its pinned form must be vk.txt and its hash the receipt's.
    let DerivedKey {
        params,
        vk,
        params_s,
        keygen_s,
    } = keys.get(&f.qm, &f.circuit, &compiled, progress)?;
    v.params_s = params_s;
    v.keygen_s = keygen_s;
    v.vk_sha256 = vk.sha256.clone();
    let vk_ok = vk.pinned == f.vk_txt
        && vk.sha256 == r.verifier.vk_sha256
        && vk.sha256 == r.model_commitment.vk_sha256;
    if !check(
        "verifier key re-derived",
        (!vk_ok).then(|| {
            "the key derived from quantized.json and circuit.json differs from vk.txt or the receipt's vk_sha256".into()
        }),
    ) {
        return finish(v, checks);
    }

    // What the receipt says in words and settings must be what the artifacts say (the
    // statement names the re-derived key).
    let vk_sha = vk.sha256.clone();
    let words = words_problem(f, &vk_sha);
    let words_ok = check("statement and settings", words);
    if !words_ok {
        return finish(v, checks);
    }

    // 4. The proof, against the public input and output the receipt shows.
    let inst = instance(&r.input_commitment, &r.model_commitment, &r.output).unwrap_or_default();
    let c = Instant::now();
    let res = keys.check_proof(&params, &vk, &inst, &f.proof, progress);
    v.verify_s = c.elapsed().as_secs_f64();
    check(
        "proof",
        res.err()
            .map(|e| format!("halo2 rejects the proof for this input and output ({e})")),
    );
    finish(v, checks)
}

/// Step 1 of verifying, each check named with its failure (None: it holds): the numbers shown
/// against the integers, the commitments, the proof file, the quantized model's hash and its
/// re-derivation from model.onnx.
fn artifact_checks(f: &Folder, progress: &mut dyn FnMut(&str)) -> Vec<(String, Option<String>)> {
    let r = &f.receipt;
    let mut out = vec![];
    let ic = &r.input_commitment;
    let mut shown = vec![("output", &r.output, &f.qm.outputs)];
    if ic.visibility == Visibility::Public {
        shown.push(("input", &ic.tensors, &f.qm.inputs));
    }
    for (what, claims, values) in shown {
        let mismatch = shown_mismatch(f, claims, values);
        out.push((format!("{what} floats match integers"), mismatch));
    }
    out.push(("input commitment".into(), input_commitment_problem(f)));
    let redacted = f.qm.redacted.is_some();
    let weights_problem = weights_problem(f);
    out.push((
        if redacted {
            "weights commitment (quantized.json is redacted: the proof alone binds the weights)"
        } else {
            "weights commitment"
        }
        .into(),
        weights_problem,
    ));
    out.push((
        "proof file".into(),
        (sha256_hex(&f.proof) != r.proof.sha256 || f.proof.len() != r.proof.bytes)
            .then(|| "proof.bin's sha256 or size differs from the receipt's".to_string()),
    ));
    // A redacted quantized.json is bound by the architecture hash above instead.
    out.push((
        "quantized model hash".into(),
        (!redacted && canonical_sha256(&f.qm) != r.model_commitment.quantized_sha256)
            .then(|| "quantized.json differs from model_commitment.quantized_sha256".into()),
    ));
    // The quantized model is the ONNX file's: re-derived from model.onnx and the ranges it
    // records, it must be quantized.json exactly (weights, scales, names), whatever the input's
    // visibility. A redacted folder withholds model.onnx; its statement says so.
    if !redacted {
        progress("model.onnx");
        out.push((
            "quantized model re-derived from model.onnx".into(),
            onnx_problem(f),
        ));
    }
    out
}

/// Why quantized.json is not what model.onnx gives with the calibration it records, if it is
/// not.
fn onnx_problem(f: &Folder) -> Option<String> {
    let bytes = match read_capped(&f.dir.join(MODEL_FILE), MODEL_CAP, "the model") {
        Ok(b) => b,
        Err(e) => {
            return Some(format!(
                "model.onnx, which the statement names, cannot be read: {e}"
            ));
        }
    };
    let sha = sha256_hex(&bytes);
    if sha != f.receipt.model_commitment.onnx_sha256 || sha != f.qm.source_sha256 {
        return Some(format!(
            "model.onnx has sha256 {sha}, not the {} the receipt names",
            f.receipt.model_commitment.onnx_sha256
        ));
    }
    let again = Model::from_bytes(&f.dir.join(MODEL_FILE), &bytes).and_then(|m| {
        crate::quantize::quantize_calibrated(&m, &Calibration::Recorded(&f.qm), &f.qm.config)
    });
    match again {
        Err(e) => Some(format!("model.onnx does not give quantized.json: {e}")),
        Ok(q) if q != f.qm => Some(format!(
            "quantized.json is not what model.onnx gives with the ranges it records: {}",
            first_difference(&q, &f.qm)
        )),
        Ok(_) => None,
    }
}

/// The first way the numbers shown for `values` (graph inputs or outputs) differ from the
/// model: count, names, the activation range, shapes, scales, floats against integers.
fn shown_mismatch(f: &Folder, claims: &[TensorClaim], values: &[usize]) -> Option<String> {
    if claims.len() != values.len() {
        Some(format!(
            "{} tensors, the model has {}",
            claims.len(),
            values.len()
        ))
    } else {
        claims.iter().zip(values.iter()).find_map(|(c, &vid)| {
            let val = &f.qm.values[vid];
            let limit = 1i64 << (f.qm.config.activation_bits.clamp(2, 62) - 1);
            if c.name != tensor_name(&f.qm, vid) {
                Some(format!(
                    "`{}` is named `{}` in the model",
                    c.name,
                    tensor_name(&f.qm, vid)
                ))
            } else if let Some(x) = c
                .integers
                .iter()
                .find(|x| x.unsigned_abs() >= limit.unsigned_abs())
            {
                Some(format!(
                    "`{}` holds {x}, outside the {}-bit activation range",
                    c.name, f.qm.config.activation_bits
                ))
            } else if c.shape != val.shape || c.integers.len() != crate::tensor::numel(&val.shape) {
                Some(format!(
                    "`{}` has shape {:?} with {} integers; the model's is {:?}",
                    c.name,
                    c.shape,
                    c.integers.len(),
                    val.shape
                ))
            } else if c.scale != val.scale {
                Some(format!(
                    "`{}` has scale {}, the model's is {}",
                    c.name, c.scale, val.scale
                ))
            } else {
                c.float_mismatch().map(|m| format!("`{}` {m}", c.name))
            }
        })
    }
}

/// What is wrong with the input commitment against the circuit and the model, if anything.
fn input_commitment_problem(f: &Folder) -> Option<String> {
    let ic = &f.receipt.input_commitment;
    let count: usize =
        f.qm.inputs
            .iter()
            .map(|&v| crate::tensor::numel(&f.qm.values[v].shape))
            .sum();
    let (scheme, covers) = input_words(ic.visibility, f.qm.config.activation_bits, count);
    if ic.visibility != f.circuit.layout.input {
        Some(format!(
            "the receipt says the input is {}, the circuit takes it {}",
            ic.visibility.name(),
            f.circuit.layout.input.name()
        ))
    } else if ic.salted != f.circuit.layout.salted {
        Some(format!(
            "input_commitment.salted is {}, but the circuit {}",
            ic.salted,
            if f.circuit.layout.salted {
                "takes a private salt"
            } else {
                "has none (it fixes the salt to 0)"
            }
        ))
    } else if ic.scheme != scheme || ic.covers != covers {
        Some("input_commitment.scheme or .covers is not what these artifacts make".into())
    } else if ic.visibility != Visibility::Public && !ic.tensors.is_empty() {
        Some(format!(
            "a {} input lists no tensors in input_commitment.tensors",
            ic.visibility.name()
        ))
    } else {
        match ic.visibility {
            Visibility::Public => (input_sha256(&ic.tensors) != ic.value).then(|| {
                "sha256 of the input integers differs from input_commitment.value".to_string()
            }),
            Visibility::Hashed => commit::parse_fp_hex(&ic.value).is_none().then(|| {
                "input_commitment.value is not a field element (0x + 64 hex digits)".into()
            }),
            Visibility::Private => {
                (!ic.value.is_empty()).then(|| "a private input's commitment must be empty".into())
            }
        }
    }
}

/// What is wrong with how the receipt says the weights are bound, if anything.
fn weights_problem(f: &Folder) -> Option<String> {
    let mc = &f.receipt.model_commitment;
    let redacted = f.qm.redacted.is_some();
    if mc.param_visibility != f.circuit.layout.params {
        Some(format!(
            "the receipt says the weights are {}, the circuit takes them {}",
            mc.param_visibility.name(),
            f.circuit.layout.params.name()
        ))
    } else {
        match mc.param_visibility {
            ParamVisibility::Fixed => (!mc.weights_commitment.is_empty()
                || !mc.architecture_sha256.is_empty())
            .then(|| "fixed weights have no weights_commitment or architecture_sha256".into()),
            ParamVisibility::Hashed if commit::parse_fp_hex(&mc.weights_commitment).is_none() => {
                Some(format!(
                    "model_commitment.weights_commitment {} is not a field element (0x + 64 hex digits)",
                    short_hash(&mc.weights_commitment, 80)
                ))
            }
            // A redacted copy is only what its name says: weights, biases and constants zero.
            ParamVisibility::Hashed if redacted && commit::redact(&f.qm) != f.qm => Some(
                "quantized.json says it is redacted but carries non-zero weights or other widths"
                    .into(),
            ),
            ParamVisibility::Hashed => {
                let arch = if redacted {
                    canonical_sha256(&f.qm)
                } else {
                    canonical_sha256(&commit::redact(&f.qm))
                };
                if arch != mc.architecture_sha256 {
                    Some("quantized.json with its weights zeroed differs from model_commitment.architecture_sha256".into())
                } else if redacted {
                    None
                } else {
                    let ours = commit::fp_hex(commit::params_digest(&f.qm));
                    (ours != mc.weights_commitment).then(|| {
                        format!(
                            "the weights in quantized.json hash to {ours}; model_commitment.weights_commitment is {}",
                            short_hash(&mc.weights_commitment, 80)
                        )
                    })
                }
            }
        }
    }
}

/// Where the receipt's words, settings, labels and versions are not the ones these artifacts
/// make (the statement names the re-derived key, `vk_sha`), if anywhere.
fn words_problem(f: &Folder, vk_sha: &str) -> Option<String> {
    let r = &f.receipt;
    let q = &r.quantization;
    let (p, vi) = (&r.proof, &r.verifier);
    if r.model_commitment.onnx_sha256 != f.qm.source_sha256 {
        Some("model_commitment.onnx_sha256 differs from quantized.json's source_sha256".into())
    } else if q.activation_bits != f.qm.config.activation_bits
        || q.activation_scale != f.qm.scale
        || q.param_bits != f.qm.config.param_bits
    {
        Some("the quantization settings differ from quantized.json's".into())
    } else if r.statement != statement(&f.qm, &f.circuit, &r.model_commitment.onnx_sha256, vk_sha) {
        Some("the statement is not the one these artifacts make".into())
    } else if r.model_commitment.weights != weights_text(&f.circuit) {
        Some(
            "model_commitment.weights does not describe how these artifacts bind the weights"
                .into(),
        )
    } else if r.not_claimed != not_claimed(f.circuit.layout.input, f.circuit.layout.params) {
        Some("not_claimed is not the list these artifacts make".into())
    } else if p.system != PROOF_SYSTEM || p.transcript != TRANSCRIPT || p.file != PROOF_FILE {
        Some(format!(
            "proof.system, .transcript or .file is not this verifier's ({PROOF_SYSTEM}; {TRANSCRIPT}; {PROOF_FILE})"
        ))
    } else if vi.file != VK_FILE
        || vi.zkreceipt_version != env!("CARGO_PKG_VERSION")
        || vi.halo2_proofs_version != HALO2_VERSION
    {
        Some(format!(
            "verifier.file or a version differs from this verifier's ({VK_FILE}, zkreceipt {}, halo2_proofs {HALO2_VERSION}): verify with the version that made it, or prove again",
            env!("CARGO_PKG_VERSION")
        ))
    } else {
        None
    }
}
