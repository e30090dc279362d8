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
mod folder;
pub mod package;
pub mod precision;
mod prove;
mod verify;

pub use folder::Folder;
pub use prove::{
    Chain, Keys, ProofRng, ProveOptions, Proved, Timings, build_chain, build_chain_as,
    build_chain_heard, prove_folder, quantize_for_proof, redact_folder, redactable,
};
pub use verify::{Check, KeyCache, Verdict, verify_folder, verify_folder_with};

use std::path::{Path, PathBuf};
use std::time::Instant;

use halo2_proofs::pasta::{EqAffine, Fp};
use halo2_proofs::plonk::ProvingKey;
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
use crate::quantize::dataset::DataSetReport;
use crate::quantize::pipeline::{QuantizedRun, quantize_files};
use crate::quantize::report::RunReport;
use crate::quantize::{Calibration, QuantConfig, QuantizedModel};
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

/// A receipt folder, for `--out`: zkreceipt replaces one only when it holds nothing else.
pub const RECEIPT_FOLDER: crate::files::FolderKind = crate::files::FolderKind {
    what: "receipt folder",
    marker: RECEIPT_FILE,
    files: &[
        MODEL_FILE,
        INPUT_FILE,
        QUANTIZED_FILE,
        CIRCUIT_FILE,
        VK_FILE,
        PROOF_FILE,
        RECEIPT_FILE,
        package::CALIBRATION_FILE,
    ],
};

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
    // A private input is bound to nothing: the sentence on its source would claim a binding.
    let source = (vis != Visibility::Private).then_some(
        "where the input came from, or that it is fresh: the proof binds the input values, not their source",
    );
    input.into_iter().chain(source).chain([
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
                "Poseidon P128Pow5T3 over Pasta Fp: the message [salt, words…, count], each word packing {} input integers (each + 2^{} in {} bits, positionally), zero-padded to blocks of 16; block i goes to chain i mod s (s = min(16, blocks)), each chain h = tag = \"zkreceipt/in/v2\" then h = H(h, block) (ConstantLength<17> sponge); with s > 1 the digest is H(tag, [h_0 … h_s-1])",
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
    // verify re-derives quantized.json from model.onnx; a redacted copy leaves model.onnx out.
    let withheld = match info.layout.params {
        ParamVisibility::Fixed => "",
        ParamVisibility::Hashed => {
            " Where model.onnx is withheld (a redacted copy), its hash is the prover's word: the proof binds the weights to their commitment only."
        }
    };
    format!(
        "The quantized model derived from ONNX file sha256 {}… (activation scale 2^{}), {weights} whose verifier key has sha256 {}…, maps {input} to the public output shown, exactly in integer arithmetic (halo2, k={}).{withheld}",
        short_hash(onnx_sha, 12),
        qm.scale,
        short_hash(vk_sha, 12),
        info.k
    )
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

/// Where two quantized models first differ, in words.
pub(crate) fn first_difference(a: &QuantizedModel, b: &QuantizedModel) -> String {
    if let Some((x, y)) = a.values.iter().zip(&b.values).find(|(x, y)| x != y) {
        return format!(
            "value `{}` differs (scale {} there, {} here)",
            x.name, x.scale, y.scale
        );
    }
    if let Some((x, _)) = a.nodes.iter().zip(&b.nodes).find(|(x, y)| x != y) {
        return format!("node `{}` differs (its op or parameters)", x.name);
    }
    let (va, vb) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    match folder::json_difference(&va, &vb) {
        Some((path, _)) => format!("field `{path}`"),
        None => "canonical bytes".into(),
    }
}
