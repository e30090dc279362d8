//! Stage 6 of the chain: the receipt folder and its verification.
//!
//! A receipt folder holds every artifact of the chain (design.md §1): `model.onnx`, `input.json`,
//! `quantized.json`, `circuit.json`, `vk.txt`, `proof.bin` and `receipt.json`, which binds them.
//! [`prove_folder`] makes one (under a temporary name, renamed when complete); [`verify_folder`]
//! re-derives the verifier key from the folder and checks the proof against the public input
//! and output the receipt shows.

pub mod audit;
pub mod break_test;
pub mod export;

use std::path::{Path, PathBuf};
use std::time::Instant;

use halo2_proofs::pasta::{EqAffine, Fp};
use halo2_proofs::poly::commitment::Params;
use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};
use serde::{Deserialize, Serialize};

use crate::circuit::{
    self, CIRCUIT_FORMAT, CircuitInfo, Disclosure, HALO2_VERSION, ParamVisibility, Visibility,
    chips::fe, commit,
};
use crate::error::{Error, Result};
use crate::files::{FILE_CAP, MODEL_CAP, read_capped};
use crate::model::{Model, sha256_hex, short_hash};
use crate::proof;
use crate::quantize::pipeline::{QuantizedRun, quantize_files};
use crate::quantize::report::RunReport;
use crate::quantize::{QuantConfig, QuantizedModel};
use crate::tensor::Tensor;

/// The receipt format.
pub const SCHEMA: &str = "zkreceipt.receipt/1";
pub const PROOF_SYSTEM: &str = "halo2 (zcash halo2_proofs 0.4.1), PLONKish arithmetization, IPA polynomial commitments over the Pasta curves (Vesta), no trusted setup";
pub const TRANSCRIPT: &str = "Blake2b, Challenge255";

/// File names inside a receipt folder (stable, design.md §1).
pub const MODEL_FILE: &str = "model.onnx";
pub const INPUT_FILE: &str = "input.json";
pub const QUANTIZED_FILE: &str = "quantized.json";
pub const CIRCUIT_FILE: &str = "circuit.json";
pub const VK_FILE: &str = "vk.txt";
pub const PROOF_FILE: &str = "proof.bin";
pub const RECEIPT_FILE: &str = "receipt.json";

/// The links of the chain, in order (design.md §1): what the inspector shows and what each
/// audit check derives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainLink {
    FloatOnnx,
    Quantized,
    Circuit,
    VerifierKey,
    Proof,
    Receipt,
}

impl ChainLink {
    pub const ALL: [ChainLink; 6] = [
        ChainLink::FloatOnnx,
        ChainLink::Quantized,
        ChainLink::Circuit,
        ChainLink::VerifierKey,
        ChainLink::Proof,
        ChainLink::Receipt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChainLink::FloatOnnx => "Float ONNX",
            ChainLink::Quantized => "Quantized",
            ChainLink::Circuit => "Circuit",
            ChainLink::VerifierKey => "Verifier key",
            ChainLink::Proof => "Proof",
            ChainLink::Receipt => "Receipt",
        }
    }

    /// Its place in the chain, from 0.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The next link to the right (`step` 1) or left (`step` −1), wrapping around.
    pub fn step(self, step: isize) -> ChainLink {
        let n = Self::ALL.len() as isize;
        Self::ALL[(self.index() as isize + step).rem_euclid(n) as usize]
    }
}

/// `receipt.json`. The top-level keys are stable (design.md §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub schema: String,
    pub model_commitment: ModelCommitment,
    pub input_commitment: InputCommitment,
    /// The public output, one entry per graph output.
    pub output: Vec<TensorClaim>,
    pub proof: ProofInfo,
    pub verifier: VerifierInfo,
    pub statement: String,
    pub quantization: QuantizationInfo,
    pub not_claimed: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCommitment {
    /// sha256 of `model.onnx`, byte for byte.
    pub onnx_sha256: String,
    /// sha256 of `quantized.json` in canonical form (compact JSON of the parsed model).
    pub quantized_sha256: String,
    /// sha256 of `circuit.json` in canonical form.
    pub circuit_sha256: String,
    /// sha256 of the verifier key's pinned form (`vk.txt`).
    pub vk_sha256: String,
    /// How the proof binds the weights.
    pub weights: String,
    /// `fixed`: the parameters are fixed columns, in the verifier key; `hashed`: they are
    /// private, and their Poseidon digest (`weights_commitment`) is a public instance value.
    /// (Defaults keep receipts of earlier versions readable, so they get the format message.)
    #[serde(default)]
    pub param_visibility: ParamVisibility,
    /// hashed: the weights digest, a field element as 0x + 64 hex digits; fixed: empty.
    #[serde(default)]
    pub weights_commitment: String,
    /// hashed: sha256 of the redacted quantized model (weights zeroed, widths kept; see
    /// `zkreceipt redact`), which is all a verifier needs to re-derive the key; fixed: empty.
    #[serde(default)]
    pub architecture_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputCommitment {
    /// `public`: the input integers are public instance values (listed in `tensors`);
    /// `hashed`: their Poseidon digest (`value`) is the public instance value;
    /// `private`: nothing about the input is public.
    pub visibility: Visibility,
    /// How `value` is computed.
    pub scheme: String,
    /// public: sha256 of the canonical form of `tensors` (compact JSON of name, shape, scale,
    /// integers); hashed: the digest, a field element as 0x + 64 hex digits; private: empty.
    pub value: String,
    /// Whether a secret salt went into the digest (hashed only).
    pub salted: bool,
    pub covers: String,
    /// The input integers (public visibility only).
    pub tensors: Vec<TensorClaim>,
}

/// A public tensor: its integers (field elements; a negative `x` stands for `p − |x|`) and the
/// reals they stand for, `x / 2^scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorClaim {
    pub name: String,
    pub shape: Vec<usize>,
    pub scale: i32,
    pub integers: Vec<i64>,
    pub floats: Vec<f64>,
}

impl TensorClaim {
    pub(crate) fn new(name: &str, t: &Tensor<i64>, scale: i32) -> Self {
        let f = 2f64.powi(-scale);
        TensorClaim {
            name: name.into(),
            shape: t.shape.clone(),
            scale,
            integers: t.data.clone(),
            floats: t.data.iter().map(|&q| q as f64 * f).collect(),
        }
    }

    /// The first element whose float is not exactly its integer at the scale.
    fn float_mismatch(&self) -> Option<String> {
        if self.floats.len() != self.integers.len() {
            return Some(format!(
                "{} floats for {} integers",
                self.floats.len(),
                self.integers.len()
            ));
        }
        let f = 2f64.powi(-self.scale);
        self.integers
            .iter()
            .zip(&self.floats)
            .position(|(&q, &x)| q as f64 * f != x)
            .map(|i| {
                format!(
                    "element {i}: float {} is not integer {} / 2^{}",
                    self.floats[i], self.integers[i], self.scale
                )
            })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofInfo {
    pub system: String,
    pub transcript: String,
    pub file: String,
    pub sha256: String,
    pub bytes: usize,
    /// Seconds the prover took (a report, not bound by the proof).
    pub prove_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifierInfo {
    pub file: String,
    pub vk_sha256: String,
    pub k: u32,
    pub zkreceipt_version: String,
    pub halo2_proofs_version: String,
    pub circuit_format: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizationInfo {
    pub activation_scale: u32,
    pub activation_bits: u32,
    pub param_bits: u32,
    /// Largest |float − circuit| over all outputs (float = tract).
    pub max_abs_error: f64,
    /// Largest error relative to the output's largest float magnitude.
    pub max_rel_error: f64,
    /// Whether float and circuit agree on the top score, for score-vector outputs.
    pub argmax_agree: Option<bool>,
}

/// sha256 of a value's canonical form: compact JSON, fields in declaration order.
pub fn canonical_sha256<T: Serialize>(v: &T) -> String {
    sha256_hex(&serde_json::to_vec(v).expect("serializable"))
}

fn input_sha256(tensors: &[TensorClaim]) -> String {
    let canon: Vec<_> = tensors
        .iter()
        .map(|t| (&t.name, &t.shape, t.scale, &t.integers))
        .collect();
    canonical_sha256(&canon)
}

/// The name a receipt shows for a graph input or output: its ONNX tensor name.
fn tensor_name(qm: &QuantizedModel, v: usize) -> String {
    qm.values[v]
        .onnx
        .clone()
        .unwrap_or_else(|| qm.values[v].name.clone())
}

/// The public instance a receipt claims: the input integers, their digest or nothing, the
/// weights digest (hashed parameters), then the output integers. None when a digest is not a
/// field element.
fn instance(
    input: &InputCommitment,
    model: &ModelCommitment,
    output: &[TensorClaim],
) -> Option<Vec<Fp>> {
    let ints = |ts: &[TensorClaim]| -> Vec<Fp> {
        ts.iter()
            .flat_map(|t| t.integers.iter().map(|&x| fe(x as i128)))
            .collect()
    };
    let mut inst = match input.visibility {
        Visibility::Public => ints(&input.tensors),
        Visibility::Hashed => vec![commit::parse_fp_hex(&input.value)?],
        Visibility::Private => vec![],
    };
    if model.param_visibility == ParamVisibility::Hashed {
        inst.push(commit::parse_fp_hex(&model.weights_commitment)?);
    }
    inst.extend(ints(output));
    Some(inst)
}

fn not_claimed(vis: Visibility, params: ParamVisibility) -> Vec<String> {
    let input = match vis {
        Visibility::Public => None,
        Visibility::Hashed => Some(
            "what the input is: only its Poseidon digest is public; whoever holds the input (and the salt, if one was used) can check it against the digest",
        ),
        Visibility::Private => Some(
            "anything about the input: it is private and bound to nothing the verifier sees; the proof shows only that some input within the activation range gives this output",
        ),
    };
    input.into_iter().chain([
        "where the input came from, or that it is fresh: the proof binds the input values, not their source",
        "that the model is accurate, fair or fit for any purpose",
        "that the output is true of the real world",
        "that the circuit equals the float ONNX model: it computes the quantized model, whose measured error against the float model on this input is under `quantization`",
        match params {
            ParamVisibility::Fixed => "that model.onnx is the model anyone deployed: the proof binds the quantized weights through the verifier key, and model.onnx is tied to them only by re-deriving quantized.json from it (sha256 above)",
            ParamVisibility::Hashed => "that model.onnx is the model anyone deployed: the proof binds the quantized weights through their Poseidon digest (weights_commitment), and model.onnx is tied to them only by re-deriving quantized.json from it (sha256 above)",
        },
    ])
    .map(|s| s.to_string())
    .collect()
}

/// `input_commitment.scheme` and `.covers` for an input of `count` integers at `bits` bits.
fn input_words(vis: Visibility, bits: u32, count: usize) -> (String, String) {
    match vis {
        Visibility::Public => (
            "sha256 of the canonical input integers (compact JSON of name, shape, scale, integers)"
                .into(),
            "the quantized input integers, which are public instance values of the proof".into(),
        ),
        Visibility::Hashed => (
            format!(
                "Poseidon P128Pow5T3 chain over Pasta Fp: the message [salt, words…, count], each word packing {} input integers (each + 2^{} in {} bits), zero-padded to blocks of 16; h = tag = \"zkreceipt/in/v1\", then h = H(h, block) for each block (ConstantLength<17> sponge)",
                commit::per_word(bits),
                bits - 1,
                bits
            ),
            format!(
                "all {count} quantized input integers, in graph order; computed inside the circuit and public as its first instance value"
            ),
        ),
        Visibility::Private => (
            "none".into(),
            "nothing: the input is a private witness, range-checked but bound to nothing public"
                .into(),
        ),
    }
}

/// The receipt fields that no check binds: figures the prover reports. `verify` accepts any
/// value there, `break-test` changes each and expects the verdict to stand, and the inspector
/// lists them. Every other field of `receipt.json` is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unbound {
    ProveSeconds,
    MaxAbsError,
    MaxRelError,
    ArgmaxAgree,
}

impl Unbound {
    pub const ALL: [Unbound; 4] = [
        Unbound::ProveSeconds,
        Unbound::MaxAbsError,
        Unbound::MaxRelError,
        Unbound::ArgmaxAgree,
    ];

    /// The field's path in receipt.json.
    pub fn field(self) -> &'static str {
        match self {
            Unbound::ProveSeconds => "proof.prove_s",
            Unbound::MaxAbsError => "quantization.max_abs_error",
            Unbound::MaxRelError => "quantization.max_rel_error",
            Unbound::ArgmaxAgree => "quantization.argmax_agree",
        }
    }

    /// Why nothing binds it.
    pub fn why(self) -> &'static str {
        match self {
            Unbound::ProveSeconds => "a timing the prover reports",
            Unbound::MaxAbsError | Unbound::MaxRelError | Unbound::ArgmaxAgree => {
                "the prover's float comparison; audit re-derives it from model.onnx and the input"
            }
        }
    }
}

fn statement(qm: &QuantizedModel, info: &CircuitInfo, onnx_sha: &str, vk_sha: &str) -> String {
    let input = match info.layout.input {
        Visibility::Public => "the public input shown".to_string(),
        Visibility::Hashed => "a private input whose Poseidon digest is the one shown".to_string(),
        Visibility::Private => "some private input within the activation range".to_string(),
    };
    let weights = match info.layout.params {
        ParamVisibility::Fixed => "with its weights fixed in the circuit",
        ParamVisibility::Hashed => {
            "with private weights whose Poseidon digest is the weights commitment shown, in the circuit"
        }
    };
    format!(
        "The quantized model derived from ONNX file sha256 {}… (activation scale 2^{}), {weights} whose verifier key has sha256 {}…, maps {input} to the public output shown, exactly in integer arithmetic (halo2, k={}).",
        short_hash(onnx_sha, 12),
        qm.scale,
        short_hash(vk_sha, 12),
        info.k
    )
}

/// What `prove_folder` made, with timings.
pub struct Proved {
    pub dir: PathBuf,
    pub receipt: Receipt,
    pub circuit: CircuitInfo,
    pub report: RunReport,
    pub timings: Timings,
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
}

/// Load, quantize, evaluate in integers, and compile with the witness.
pub fn build_chain(model_path: &Path, input: &Path, cfg: &QuantConfig) -> Result<Chain> {
    build_chain_as(model_path, input, cfg, Disclosure::default())
}

/// [`build_chain`] with the input's and the parameters' visibility (and the input's salt).
pub fn build_chain_as(
    model_path: &Path,
    input: &Path,
    cfg: &QuantConfig,
    dis: Disclosure,
) -> Result<Chain> {
    let QuantizedRun {
        model,
        onnx_bytes,
        input_text,
        qm,
        report,
        inputs,
        ..
    } = quantize_files(model_path, input, cfg)?;
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
    })
}

fn json_pretty<T: Serialize>(v: &T) -> Vec<u8> {
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
        }
    }
}

/// How the receipt says the weights are bound (`model_commitment.weights`).
fn weights_text(info: &CircuitInfo) -> String {
    match info.layout.params {
        ParamVisibility::Fixed => "fixed columns of the circuit: bound by the verifier key".into(),
        ParamVisibility::Hashed => format!(
            "private advice cells, range-checked per tensor; bound by weights_commitment, a Poseidon P128Pow5T3 chain over Pasta Fp computed inside the circuit and public as an instance value: the message [words…, count], each word packing one tensor's integers (each + 2^(b−1) in b bits, b per tensor in circuit.json's param_tensors), zero-padded to blocks of 16; h = tag = \"zkreceipt/wt/v1\", then h = H(h, block) for each block (ConstantLength<17> sponge); covers all {} integers of the {} weight, bias and constant tensors; the verifier key depends on each tensor's width b, not on the values",
            info.param_tensors.iter().map(|t| t.len).sum::<usize>(),
            info.param_tensors.len()
        ),
    }
}

/// The model commitment's hashes of the quantized model and circuit, and how the weights are
/// bound (the ONNX and key hashes are filled in by the caller).
fn model_commitment(qm: &QuantizedModel, info: &CircuitInfo) -> ModelCommitment {
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
    progress("quantize");
    let vis = opts.input;
    if opts.salt.is_some() && vis != Visibility::Hashed {
        return Err(Error::Usage(
            "--salt: a salt only goes into a hashed input commitment (--input-visibility hashed)"
                .into(),
        ));
    }
    let salt = opts.salt.unwrap_or(0);
    let dis = Disclosure {
        input: vis,
        params: opts.params,
        salt: opts.salt,
    };
    let mut chain = build_chain_as(model_path, input, cfg, dis)?;
    t.quantize_s = clock.elapsed().as_secs_f64();
    let info = chain.compiled.info.clone();
    t.compile_s = clock.elapsed().as_secs_f64() - t.quantize_s;
    progress(&format!(
        "circuit: k={} · {} rows · {} advice columns",
        info.k, info.rows, info.advice_columns
    ));
    check_resources(&info, opts, model_path, progress)?;
    let (params, params_s) = proof::params(info.k, progress)?;
    t.params_s = params_s;
    progress("keygen");
    let c = Instant::now();
    let (vk, pk) = proof::keygen(&params, &chain.compiled.circuit)?;
    t.keygen_s = c.elapsed().as_secs_f64();

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
    let (scheme, covers) = input_words(vis, chain.qm.config.activation_bits, values.len());
    let input_commitment = InputCommitment {
        visibility: vis,
        scheme,
        value: match vis {
            Visibility::Public => input_sha256(&input_claims),
            Visibility::Hashed => commit::fp_hex(commit::input_digest(
                &values,
                chain.qm.config.activation_bits,
                salt,
            )),
            Visibility::Private => String::new(),
        },
        salted: opts.salt.is_some(),
        covers,
        tensors: match vis {
            Visibility::Public => input_claims,
            Visibility::Hashed | Visibility::Private => vec![],
        },
    };
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
    let proof_bytes = proof::prove(
        &params,
        &pk,
        &chain.compiled.circuit,
        &inst,
        opts.rng.rng()?,
    )?;
    t.prove_s = c.elapsed().as_secs_f64();
    progress("verify");
    let c = Instant::now();
    proof::check_fresh(&params, &vk.vk, &inst, &proof_bytes)?;
    t.verify_s = c.elapsed().as_secs_f64();

    let report = &chain.report;
    let agree: Vec<bool> = report
        .outputs
        .iter()
        .filter_map(|o| o.argmax.as_ref().map(|a| a.agree))
        .collect();
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
        quantization: QuantizationInfo {
            activation_scale: chain.qm.scale,
            activation_bits: chain.qm.config.activation_bits,
            param_bits: chain.qm.config.param_bits,
            max_abs_error: report
                .outputs
                .iter()
                .map(|o| o.max_abs_error)
                .fold(0.0, f64::max),
            max_rel_error: report
                .outputs
                .iter()
                .map(|o| o.max_rel_error)
                .fold(0.0, f64::max),
            argmax_agree: (!agree.is_empty()).then(|| agree.iter().all(|&a| a)),
        },
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
    write_folder(out, &files)?;
    Ok(Proved {
        dir: out.to_path_buf(),
        receipt,
        circuit: info,
        report: chain.report,
        timings: t,
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
/// weights commitment. Returns the files written.
pub fn redact_folder(f: &Folder, out: &Path) -> Result<Vec<&'static str>> {
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
    for name in [RECEIPT_FILE, CIRCUIT_FILE, VK_FILE, PROOF_FILE, INPUT_FILE] {
        if name == INPUT_FILE && !f.dir.join(name).exists() {
            continue;
        }
        files.push((name, read_file(&f.dir, name)?));
    }
    let qm = match f.qm.redacted {
        Some(_) => f.qm.clone(),
        None => commit::redact(&f.qm),
    };
    files.push((QUANTIZED_FILE, json_pretty(&qm)));
    write_folder(out, &files)?;
    Ok(files.iter().map(|(n, _)| *n).collect())
}

/// Write the files into a temporary sibling folder, then rename it to `out`. An existing
/// receipt folder at `out` is replaced; any other existing path is refused.
fn write_folder(out: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let name = out
        .file_name()
        .ok_or_else(|| Error::invalid(out.display(), "not a folder name"))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if out.exists() {
        let replaceable = out.is_dir()
            && (out.join(RECEIPT_FILE).is_file()
                || std::fs::read_dir(out)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false));
        if !replaceable {
            return Err(Error::invalid(
                out.display(),
                "exists and is not a receipt folder; choose another --out",
            ));
        }
    }
    let io = |e: std::io::Error| Error::invalid(out.display(), e);
    std::fs::create_dir_all(&parent).map_err(io)?;
    // What a killed run left of this folder goes first.
    for stage in ["tmp", "old"] {
        proof::remove_stale_temps(&parent, &format!(".{name}.{stage}-"));
    }
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(io)?;
    let written = files
        .iter()
        .try_for_each(|(f, bytes)| std::fs::write(tmp.join(f), bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io(e));
    }
    if out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(io)?;
        std::fs::rename(&tmp, out).map_err(io)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(io)?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Reading and verifying a folder

/// A receipt folder read from disk.
#[derive(Clone)]
pub struct Folder {
    pub dir: PathBuf,
    pub receipt: Receipt,
    pub qm: QuantizedModel,
    pub circuit: CircuitInfo,
    pub vk_txt: String,
    pub proof: Vec<u8>,
}

fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
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
fn read_json<T: Serialize + for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<T> {
    read_json_as(dir, name, true)
}

/// [`read_json`]; not `strict`: any JSON that parses into `T` (to tell an older format by its
/// fields before refusing it as a whole).
fn read_json_as<T: Serialize + for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
    strict: bool,
) -> Result<T> {
    let bytes = read_file(dir, name)?;
    let file = || dir.join(name).display().to_string();
    let raw: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(file(), format!("not a valid {name}: {e}")))?;
    let parsed: T = serde_json::from_value(raw.clone())
        .map_err(|e| Error::invalid(file(), format!("not a valid {name}: {e}")))?;
    let canon = serde_json::to_value(&parsed)
        .map_err(|e| Error::invalid(file(), format!("not a valid {name}: {e}")))?;
    match json_difference(&raw, &canon).filter(|_| strict) {
        None => Ok(parsed),
        Some((path, what)) => Err(Error::invalid(file(), format!("field `{path}` {what}"))),
    }
}

/// The first place where `file` differs from `canon`: its path and what is wrong there.
fn json_difference(
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
        Ok(Folder {
            dir,
            receipt,
            qm,
            circuit,
            vk_txt,
            proof,
        })
    }
}

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
/// many variants of one folder (the break test) derives the key once.
#[derive(Default)]
pub struct KeyCache {
    entry: Option<(String, CircuitInfo, Params<EqAffine>, proof::Vk)>,
}

impl KeyCache {
    /// The key of `compiled` (the circuit of `qm` described by `info`), derived once.
    pub(crate) fn get(
        &mut self,
        qm: &QuantizedModel,
        info: &CircuitInfo,
        compiled: &circuit::Compiled,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(&Params<EqAffine>, &proof::Vk, f64, f64)> {
        let key = canonical_sha256(qm);
        let hit = matches!(&self.entry, Some((k, i, _, _)) if *k == key && i == info);
        let (mut params_s, mut keygen_s) = (0.0, 0.0);
        if !hit {
            let (params, made) = proof::params(info.k, progress)?;
            params_s = made;
            progress("verifier key");
            let c = Instant::now();
            let vk = proof::keygen_vk_only(&params, &compiled.circuit)?;
            keygen_s = c.elapsed().as_secs_f64();
            self.entry = Some((key, info.clone(), params, vk));
        }
        let (_, _, p, vk) = self.entry.as_ref().expect("just filled");
        Ok((p, vk, params_s, keygen_s))
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
    let ic = &r.input_commitment;
    let mut shown = vec![("output", &r.output, &f.qm.outputs)];
    if ic.visibility == Visibility::Public {
        shown.push(("input", &ic.tensors, &f.qm.inputs));
    }
    for (what, claims, values) in shown {
        let mismatch = if claims.len() != values.len() {
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
                } else if c.shape != val.shape
                    || c.integers.len() != crate::tensor::numel(&val.shape)
                {
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
        };
        ok &= check(&format!("{what} floats match integers"), mismatch);
    }
    let count: usize =
        f.qm.inputs
            .iter()
            .map(|&v| crate::tensor::numel(&f.qm.values[v].shape))
            .sum();
    let (scheme, covers) = input_words(ic.visibility, f.qm.config.activation_bits, count);
    let commitment_problem = if ic.visibility != f.circuit.layout.input {
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
    };
    ok &= check("input commitment", commitment_problem);
    let mc = &r.model_commitment;
    let redacted = f.qm.redacted.is_some();
    let weights_problem = if mc.param_visibility != f.circuit.layout.params {
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
    };
    ok &= check(
        if redacted {
            "weights commitment (quantized.json is redacted: the proof alone binds the weights)"
        } else {
            "weights commitment"
        },
        weights_problem,
    );
    ok &= check(
        "proof file",
        (sha256_hex(&f.proof) != r.proof.sha256 || f.proof.len() != r.proof.bytes)
            .then(|| "proof.bin's sha256 or size differs from the receipt's".to_string()),
    );
    // A redacted quantized.json is bound by the architecture hash above instead.
    ok &= check(
        "quantized model hash",
        (!redacted && canonical_sha256(&f.qm) != r.model_commitment.quantized_sha256)
            .then(|| "quantized.json differs from model_commitment.quantized_sha256".into()),
    );
    if !ok {
        return finish(v, checks);
    }

    // 2. The circuit: re-compiled from quantized.json, it must be the one described.
    progress("compile");
    let compiled = match circuit::compile_layout(
        &f.qm,
        f.circuit.layout.lanes,
        f.circuit.layout.groups,
        f.circuit.layout.disclosure(),
        None,
    ) {
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
    let (params, vk, params_s, keygen_s) = keys.get(&f.qm, &f.circuit, &compiled, progress)?;
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
    let q = &r.quantization;
    let (p, vi) = (&r.proof, &r.verifier);
    let words = if r.model_commitment.onnx_sha256 != f.qm.source_sha256 {
        Some("model_commitment.onnx_sha256 differs from quantized.json's source_sha256".into())
    } else if q.activation_bits != f.qm.config.activation_bits
        || q.activation_scale != f.qm.scale
        || q.param_bits != f.qm.config.param_bits
    {
        Some("the quantization settings differ from quantized.json's".into())
    } else if r.statement != statement(&f.qm, &f.circuit, &r.model_commitment.onnx_sha256, &vk_sha)
    {
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
    };
    let words_ok = check("statement and settings", words);
    if !words_ok {
        return finish(v, checks);
    }

    // 4. The proof, against the public input and output the receipt shows.
    progress("verify proof");
    let inst = instance(&r.input_commitment, &r.model_commitment, &r.output).unwrap_or_default();
    let c = Instant::now();
    let res = proof::verify(params, &vk.vk, &inst, &f.proof);
    v.verify_s = c.elapsed().as_secs_f64();
    check(
        "proof",
        res.err()
            .map(|e| format!("halo2 rejects the proof for this input and output ({e})")),
    );
    finish(v, checks)
}
