//! Proving into a receipt folder: the chain in memory, the receipt it makes, the folder written
//! atomically, and the redacted copy.

use super::folder::read_file;
use super::precision::{self, Choice};
use super::*;
use crate::files::write_folder;
/// What `prove_folder` made, with timings.
pub struct Proved {
    pub dir: PathBuf,
    pub receipt: Receipt,
    pub circuit: CircuitInfo,
    pub report: RunReport,
    pub timings: Timings,
    /// Whether a receipt folder already at `dir` was replaced.
    pub replaced: bool,
    /// How the quantization's precision was chosen (not for a package's receipts).
    pub precision: Option<Choice>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub quantize_s: f64,
    pub compile_s: f64,
    pub params_s: f64,
    pub keygen_s: f64,
    pub prove_s: f64,
    pub verify_s: f64,
}

/// Everything up to the proof, in memory: the chain from an ONNX file and an input.
pub struct Chain {
    pub model: Model,
    pub qm: QuantizedModel,
    pub report: RunReport,
    pub compiled: circuit::Compiled,
    pub inputs: Vec<Tensor<i64>>,
    pub outputs: Vec<Tensor<i64>>,
    /// The model and input files as read, once: a pipe cannot be read again, and a file changed
    /// since would not be what was proved.
    pub onnx_bytes: Vec<u8>,
    pub input_bytes: Vec<u8>,
    /// The data-set report of the package the chain was proved against, when it was.
    pub calibration: Option<DataSetReport>,
    /// How the quantization's precision was chosen (not for a package: its setup chose).
    pub precision: Option<Choice>,
}

/// Load, quantize, evaluate in integers, and compile with the witness.
pub fn build_chain(model_path: &Path, input: &Path, cfg: &QuantConfig) -> Result<Chain> {
    build_chain_as(model_path, input, cfg, Disclosure::default())
}

/// The quantized model a proof of `input` proves ([`quantize_files`]), its precision chosen
/// for the target within a k budget ([`precision::choose`]), with what was chosen and why.
pub fn quantize_for_proof(
    model_path: &Path,
    input: &Path,
    cfg: &QuantConfig,
    dis: Disclosure,
    progress: &mut dyn FnMut(&str),
) -> Result<(QuantizedRun, Choice)> {
    let mut run = quantize_files(model_path, input, cfg)?;
    let file = input.display().to_string();
    let choice = precision::choose(&mut run, dis, progress).map_err(|e| e.in_input(&file))?;
    Ok((run, choice))
}

/// [`build_chain`] with the input's and the parameters' visibility (and the input's salt).
pub fn build_chain_as(
    model_path: &Path,
    input: &Path,
    cfg: &QuantConfig,
    dis: Disclosure,
) -> Result<Chain> {
    build_chain_heard(model_path, input, cfg, dis, &mut |_| {})
}

/// [`build_chain_as`], `progress` hearing the precision choice's candidates.
pub fn build_chain_heard(
    model_path: &Path,
    input: &Path,
    cfg: &QuantConfig,
    dis: Disclosure,
    progress: &mut dyn FnMut(&str),
) -> Result<Chain> {
    let (
        QuantizedRun {
            model,
            onnx_bytes,
            input_text,
            qm,
            report,
            inputs,
            ..
        },
        choice,
    ) = quantize_for_proof(model_path, input, cfg, dis, progress)?;
    let values = qm.evaluate(&inputs)?;
    qm.check_activation_budget(&values)?;
    let compiled = circuit::compile_as(&qm, dis, Some(&values))
        .map_err(|e| Error::invalid(model.file(), e.to_string()))?;
    let outputs = qm.outputs.iter().map(|&v| values[v].clone()).collect();
    Ok(Chain {
        model,
        qm,
        report,
        compiled,
        inputs,
        outputs,
        onnx_bytes,
        input_bytes: input_text.into_bytes(),
        calibration: None,
        precision: Some(choice),
    })
}

pub(super) fn json_pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("serializable");
    b.push(b'\n');
    b
}

/// Where randomness for proving comes from: the OS, or a seed (tests, reproducible demos; a
/// seeded proof is as sound, but its blinding is predictable, so it is not zero-knowledge).
#[derive(Clone, Copy, Debug)]
pub enum ProofRng {
    Os,
    Seeded(u64),
}

impl ProofRng {
    pub fn rng(self) -> Result<StdRng> {
        match self {
            ProofRng::Os => {
                StdRng::try_from_rng(&mut SysRng).map_err(|e| Error::invalid("OS random source", e))
            }
            ProofRng::Seeded(s) => Ok(StdRng::seed_from_u64(s)),
        }
    }
}

/// How to prove: the input's and the parameters' visibility, the salt of a hashed input, the
/// randomness.
#[derive(Clone, Copy, Debug)]
pub struct ProveOptions {
    pub input: Visibility,
    pub params: ParamVisibility,
    pub salt: Option<i128>,
    pub rng: ProofRng,
    /// Refuse circuits of more than 2^max_k rows.
    pub max_k: u32,
    /// Prove even when the forecast peak memory exceeds what the machine has available.
    pub over_memory: bool,
    /// Replace whatever folder is at the receipt folder's path, even one holding files
    /// zkreceipt did not write there.
    pub force: bool,
}

impl ProveOptions {
    /// The circuit's disclosure these options ask for (a salt only with a hashed input).
    pub fn disclosure(&self) -> Result<Disclosure> {
        if self.salt.is_some() && self.input != Visibility::Hashed {
            return Err(Error::Usage(
                "--salt: a salt only goes into a hashed input commitment (--input-visibility hashed)"
                    .into(),
            ));
        }
        Ok(Disclosure {
            input: self.input,
            params: self.params,
            salt: self.salt,
        })
    }
}

impl Default for ProveOptions {
    /// Public input, fixed weights, OS randomness, up to the largest k, within memory.
    fn default() -> Self {
        ProveOptions {
            input: Visibility::Public,
            params: ParamVisibility::Fixed,
            salt: None,
            rng: ProofRng::Os,
            max_k: circuit::MAX_K,
            over_memory: false,
            force: false,
        }
    }
}

/// The model commitment's hashes of the quantized model and circuit, and how the weights are
/// bound (the ONNX and key hashes are filled in by the caller).
pub(super) fn model_commitment(qm: &QuantizedModel, info: &CircuitInfo) -> ModelCommitment {
    let params = info.layout.params;
    ModelCommitment {
        onnx_sha256: String::new(),
        quantized_sha256: canonical_sha256(qm),
        circuit_sha256: canonical_sha256(info),
        vk_sha256: String::new(),
        weights: weights_text(info),
        param_visibility: params,
        weights_commitment: match params {
            ParamVisibility::Fixed => String::new(),
            ParamVisibility::Hashed => commit::fp_hex(commit::params_digest(qm)),
        },
        architecture_sha256: match params {
            ParamVisibility::Fixed => String::new(),
            ParamVisibility::Hashed => canonical_sha256(&commit::redact(qm)),
        },
    }
}

/// Prove `model` on `input` and write the receipt folder `out`. `progress` hears each stage.
/// The model is calibrated on this one input (a package made on the fly; `setup` makes one
/// calibrated on a data set, for many inputs).
pub fn prove_folder(
    model_path: &Path,
    input: &Path,
    out: &Path,
    cfg: &QuantConfig,
    opts: &ProveOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Proved> {
    let mut t = Timings::default();
    let clock = Instant::now();
    crate::files::replaces(out, &RECEIPT_FOLDER, opts.force)?;
    progress("quantize");
    let dis = opts.disclosure()?;
    let chain = build_chain_heard(model_path, input, cfg, dis, progress)?;
    t.quantize_s = clock.elapsed().as_secs_f64();
    t.compile_s = clock.elapsed().as_secs_f64() - t.quantize_s;
    let keys = Keys::make(&chain.compiled, opts, model_path, progress)?;
    t.params_s = keys.params_s;
    t.keygen_s = keys.keygen_s;
    prove_chain(chain, &keys, opts, out, t, progress)
}

/// A circuit's parameters and keys, made once and used for every proof against it.
pub struct Keys {
    pub params: Params<EqAffine>,
    pub vk: proof::Vk,
    pub pk: ProvingKey<EqAffine>,
    pub params_s: f64,
    pub keygen_s: f64,
}

impl Keys {
    /// Say what the circuit will cost (refusing what `limits` excludes), then make the
    /// parameters and keys. `file` names the model in a refusal.
    pub fn make(
        compiled: &circuit::Compiled,
        limits: &ProveOptions,
        file: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Keys> {
        let info = &compiled.info;
        progress(&format!(
            "circuit: k={} · {} rows · {} advice columns",
            info.k, info.rows, info.advice_columns
        ));
        check_resources(info, limits, file, progress)?;
        let (params, params_s) = proof::params(info.k, progress)?;
        progress("keygen");
        let c = Instant::now();
        let (vk, pk) = proof::keygen(&params, &compiled.circuit)?;
        Ok(Keys {
            params,
            vk,
            pk,
            params_s,
            keygen_s: c.elapsed().as_secs_f64(),
        })
    }
}

/// Prove a built chain with its keys and write the receipt folder `out`.
pub(super) fn prove_chain(
    mut chain: Chain,
    keys: &Keys,
    opts: &ProveOptions,
    out: &Path,
    mut t: Timings,
    progress: &mut dyn FnMut(&str),
) -> Result<Proved> {
    let (params, vk, pk) = (&keys.params, &keys.vk, &keys.pk);
    let info = chain.compiled.info.clone();
    let vis = opts.input;
    let input_claims: Vec<TensorClaim> = chain
        .qm
        .inputs
        .iter()
        .zip(&chain.inputs)
        .map(|(&v, t)| TensorClaim::new(&tensor_name(&chain.qm, v), t, chain.qm.values[v].scale))
        .collect();
    let output_claims: Vec<TensorClaim> = chain
        .qm
        .outputs
        .iter()
        .zip(&chain.outputs)
        .map(|(&v, t)| TensorClaim::new(&tensor_name(&chain.qm, v), t, chain.qm.values[v].scale))
        .collect();
    let values: Vec<i64> = chain.inputs.iter().flat_map(|t| t.data.clone()).collect();
    let bits = chain.qm.config.activation_bits;
    let input_commitment = input_commitment_of(vis, bits, input_claims, &values, opts.salt);
    let model_commitment = model_commitment(&chain.qm, &info);
    let inst = instance(&input_commitment, &model_commitment, &output_claims)
        .expect("our own digests parse");
    if chain.compiled.circuit.instance().as_deref() != Some(&inst[..]) {
        return Err(Error::Internal(
            "the circuit's public values differ from the integer evaluator's".into(),
        ));
    }

    progress("prove");
    let c = Instant::now();
    let proof_bytes = proof::prove(params, pk, &chain.compiled.circuit, &inst, opts.rng.rng()?)?;
    t.prove_s = c.elapsed().as_secs_f64();
    progress("verify");
    let c = Instant::now();
    proof::check_fresh(params, &vk.vk, &inst, &proof_bytes)?;
    t.verify_s = c.elapsed().as_secs_f64();

    let report = &chain.report;
    let receipt = Receipt {
        schema: SCHEMA.into(),
        model_commitment: ModelCommitment {
            onnx_sha256: chain.model.sha256.clone(),
            vk_sha256: vk.sha256.clone(),
            ..model_commitment
        },
        input_commitment,
        output: output_claims,
        proof: ProofInfo {
            system: PROOF_SYSTEM.into(),
            transcript: TRANSCRIPT.into(),
            file: PROOF_FILE.into(),
            sha256: sha256_hex(&proof_bytes),
            bytes: proof_bytes.len(),
            prove_s: t.prove_s,
        },
        verifier: VerifierInfo {
            file: VK_FILE.into(),
            vk_sha256: vk.sha256.clone(),
            k: info.k,
            zkreceipt_version: env!("CARGO_PKG_VERSION").into(),
            halo2_proofs_version: HALO2_VERSION.into(),
            circuit_format: CIRCUIT_FORMAT,
        },
        statement: statement(&chain.qm, &info, &chain.model.sha256, &vk.sha256),
        quantization: quantization_info(&chain.qm, report),
        not_claimed: not_claimed(vis, opts.params),
    };

    progress("write receipt folder");
    // A hashed or private input stays with its owner: it is not written into the folder.
    let mut files: Vec<(&str, Vec<u8>)> = vec![(MODEL_FILE, std::mem::take(&mut chain.onnx_bytes))];
    if vis == Visibility::Public {
        files.push((INPUT_FILE, std::mem::take(&mut chain.input_bytes)));
    }
    files.extend([
        (QUANTIZED_FILE, json_pretty(&chain.qm)),
        (CIRCUIT_FILE, json_pretty(&info)),
        (VK_FILE, vk.pinned.clone().into_bytes()),
        (PROOF_FILE, proof_bytes),
        (RECEIPT_FILE, json_pretty(&receipt)),
    ]);
    if let Some(c) = &chain.calibration {
        files.push((package::CALIBRATION_FILE, json_pretty(c)));
    }
    let replaced = write_folder(out, &files, &RECEIPT_FOLDER, opts.force)?;
    Ok(Proved {
        dir: out.to_path_buf(),
        receipt,
        circuit: info,
        report: chain.report,
        timings: t,
        replaced,
        precision: chain.precision,
    })
}

/// Say what making the parameters, keys and proof will cost, and refuse (before any of it starts)
/// a circuit above `--max-k` or one whose forecast peak memory exceeds what is available.
fn check_resources(
    info: &CircuitInfo,
    opts: &ProveOptions,
    model_path: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    if info.k > opts.max_k {
        return Err(Error::invalid(
            model_path.display(),
            format!(
                "the circuit needs k={} ({} rows), above --max-k {}; raise --max-k to prove it",
                info.k, info.rows, opts.max_k
            ),
        ));
    }
    proof::check_fits(
        info.layout,
        info.k,
        opts.over_memory,
        &model_path.display().to_string(),
        progress,
    )?;
    Ok(())
}

/// Only a receipt with hashed weights has a copy without them: fixed weights are in the key.
pub fn redactable(f: &Folder) -> Result<()> {
    if f.receipt.model_commitment.param_visibility != ParamVisibility::Hashed {
        return Err(Error::invalid(
            f.dir.join(RECEIPT_FILE).display(),
            "field `model_commitment.param_visibility` is fixed: the weights are in the verifier \
             key, so a copy without them would hide nothing; prove with --param-visibility hashed",
        ));
    }
    Ok(())
}

/// Write a verifier's copy of a receipt folder with hashed weights to `out`: the receipt,
/// circuit, key, proof and public input as they are, and `quantized.json` redacted (every weight,
/// bias and constant zero, their widths kept); `model.onnx` is left out. It verifies like the
/// original: the key does not depend on the weights, and the proof binds them to the receipt's
/// weights commitment. Returns the files written, and whether a folder at `out` was replaced.
pub fn redact_folder(f: &Folder, out: &Path, force: bool) -> Result<(Vec<&'static str>, bool)> {
    redactable(f)?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(&f.dir, out) {
        return Err(Error::invalid(
            out.display(),
            "is the folder being redacted; choose another --out",
        ));
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![];
    let optional = [INPUT_FILE, package::CALIBRATION_FILE];
    for name in [RECEIPT_FILE, CIRCUIT_FILE, VK_FILE, PROOF_FILE]
        .into_iter()
        .chain(optional)
    {
        if optional.contains(&name) && !f.dir.join(name).exists() {
            continue;
        }
        files.push((name, read_file(&f.dir, name)?));
    }
    let qm = match f.qm.redacted {
        Some(_) => f.qm.clone(),
        None => commit::redact(&f.qm),
    };
    files.push((QUANTIZED_FILE, json_pretty(&qm)));
    let replaced = write_folder(out, &files, &RECEIPT_FOLDER, force)?;
    Ok((files.iter().map(|(n, _)| *n).collect(), replaced))
}

/// The input commitment of `values` (all input integers, graph order) at `bits` bits.
fn input_commitment_of(
    vis: Visibility,
    bits: u32,
    claims: Vec<TensorClaim>,
    values: &[i64],
    salt: Option<i128>,
) -> InputCommitment {
    let (scheme, covers) = input_words(vis, bits, values.len());
    InputCommitment {
        visibility: vis,
        scheme,
        value: match vis {
            Visibility::Public => input_sha256(&claims),
            Visibility::Hashed => {
                commit::fp_hex(commit::input_digest(values, bits, salt.unwrap_or(0)))
            }
            Visibility::Private => String::new(),
        },
        salted: salt.is_some(),
        covers,
        tensors: match vis {
            Visibility::Public => claims,
            Visibility::Hashed | Visibility::Private => vec![],
        },
    }
}

/// The receipt's quantization settings and the error figures measured on this input.
fn quantization_info(qm: &QuantizedModel, report: &RunReport) -> QuantizationInfo {
    let agree: Vec<bool> = report
        .outputs
        .iter()
        .filter_map(|o| o.argmax.as_ref().map(|a| a.agree))
        .collect();
    let max = |f: fn(&crate::quantize::report::OutputReport) -> f64| {
        report.outputs.iter().map(f).fold(0.0, f64::max)
    };
    QuantizationInfo {
        activation_scale: qm.scale,
        activation_bits: qm.config.activation_bits,
        param_bits: qm.config.param_bits,
        max_abs_error: max(|o| o.max_abs_error),
        max_rel_error: max(|o| o.max_rel_error),
        argmax_agree: (!agree.is_empty()).then(|| agree.iter().all(|&a| a)),
    }
}
