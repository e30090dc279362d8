//! The break test: change every item the proof binds, one at a time and in memory (the folder
//! stays intact), and expect `verify` to reject it; change the fields it does not bind and
//! expect the verdict to stay "verified".
//!
//! Each bound change is made so that only the check under test can catch it: where the receipt
//! also records a hash of the changed artifact, that hash is updated too, so a rejection comes
//! from the proof or the re-derived key, not from bookkeeping.

use serde::Serialize;

use super::{
    ChainLink, Folder, KeyCache, Unbound, Verdict, canonical_sha256, input_sha256,
    verify_folder_with,
};
use crate::circuit::{ParamVisibility, Visibility, commit};
use crate::error::{Error, Result};
use crate::model::sha256_hex;

use halo2_proofs::pasta::Fp;

/// One change and what verification said.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// What was changed, e.g. `output[0][3]` or `proof.bin byte 100`.
    pub item: String,
    /// Which part of the receipt it belongs to.
    pub group: Group,
    /// Whether the proof binds it (a change must be rejected) or not (the verdict must stand).
    pub bound: bool,
    /// The changed field before and after the change.
    pub before: String,
    pub after: String,
    pub verified: bool,
    /// The case passed: bound and rejected, or unbound and still verified.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BreakReport {
    /// The untouched folder verifies (otherwise nothing else means anything).
    pub honest_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honest_reason: Option<String>,
    pub cases: Vec<Case>,
    /// Every bound change rejected and every unbound change verified.
    pub passed: bool,
}

/// A change to a folder, made in memory.
pub type Tamper = Box<dyn Fn(&mut Folder)>;

/// A field of a folder as text.
pub type Reader = Box<dyn Fn(&Folder) -> String>;

/// The parts of a receipt the break test changes, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Outputs,
    Inputs,
    Commitments,
    Key,
    ProofBytes,
    Labels,
    Unbound,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Group::Outputs => "outputs (the proof's public values)",
            Group::Inputs => "input",
            Group::Commitments => "model commitments",
            Group::Key => "verifier key",
            Group::ProofBytes => "proof bytes",
            Group::Labels => "words, settings and labels",
            Group::Unbound => "fields the proof does not bind",
        }
    }
}

/// One change the break test can make.
pub struct Change {
    pub group: Group,
    pub item: String,
    pub bound: bool,
    /// The link whose check should catch it (unbound: the link it would mislead about).
    pub link: ChainLink,
    /// The changed field, shown before and after.
    pub value: Reader,
    pub tamper: Tamper,
    /// An output element, `(tensor, index)`: the inspector samples these.
    pub element: Option<(usize, usize)>,
}

fn change(
    (group, link): (Group, ChainLink),
    item: impl Into<String>,
    bound: bool,
    value: Reader,
    tamper: Tamper,
) -> Change {
    Change {
        group,
        item: item.into(),
        bound,
        link,
        value,
        tamper,
        element: None,
    }
}

/// The first characters of a hash.
fn short(h: &str) -> String {
    crate::model::shortened(h, 16)
}

fn set_output(f: &mut Folder, t: usize, i: usize, delta: i64) {
    let o = &mut f.receipt.output[t];
    o.integers[i] += delta;
    o.floats[i] = o.integers[i] as f64 / 2f64.powi(o.scale);
}

/// Every change the break test makes to `f`, grouped in [`Group`] order.
pub fn cases(f: &Folder) -> Vec<Change> {
    let mut out: Vec<Change> = vec![];
    output_cases(f, &mut out);
    input_cases(f, &mut out);
    model_cases(f, &mut out);
    key_and_proof_cases(f, &mut out);
    word_cases(f, &mut out);
    unbound_cases(&mut out);
    out
}

/// Each output element: its integer (and the float shown with it, kept consistent, so the proof
/// is what rejects), then its float alone.
fn output_cases(f: &Folder, out: &mut Vec<Change>) {
    for (t, o) in f.receipt.output.iter().enumerate() {
        for i in 0..o.integers.len() {
            let mut c = change(
                (Group::Outputs, ChainLink::Proof),
                format!("output `{}`[{i}] integer +1", o.name),
                true,
                Box::new(move |f| {
                    let o = f.receipt.output.get(t);
                    o.and_then(|o| o.integers.get(i))
                        .map_or("–".into(), |v| v.to_string())
                }),
                Box::new(move |f| set_output(f, t, i, 1)),
            );
            c.element = Some((t, i));
            out.push(c);
        }
        for i in 0..o.floats.len() {
            let mut c = change(
                (Group::Outputs, ChainLink::Receipt),
                format!("output `{}`[{i}] float +2^-(scale+1)", o.name),
                true,
                Box::new(move |f| {
                    let o = f.receipt.output.get(t);
                    o.and_then(|o| o.floats.get(i))
                        .map_or("–".into(), |v| v.to_string())
                }),
                Box::new(move |f| {
                    let o = &mut f.receipt.output[t];
                    o.floats[i] += 2f64.powi(-o.scale - 1);
                }),
            );
            c.element = Some((t, i));
            out.push(c);
        }
    }
}

/// The input: its first and last integer (commitment recomputed, so the proof rejects), then
/// the commitment alone.
fn input_cases(f: &Folder, out: &mut Vec<Change>) {
    for (t, x) in f.receipt.input_commitment.tensors.iter().enumerate() {
        let n = x.integers.len();
        for i in [0, n.saturating_sub(1)].into_iter().take(n.min(2)) {
            out.push(change(
                (Group::Inputs, ChainLink::Proof),
                format!("input `{}`[{i}] integer +1", x.name),
                true,
                Box::new(move |f| {
                    let x = f.receipt.input_commitment.tensors.get(t);
                    x.and_then(|x| x.integers.get(i))
                        .map_or("–".into(), |v| v.to_string())
                }),
                Box::new(move |f| {
                    let c = &mut f.receipt.input_commitment;
                    let x = &mut c.tensors[t];
                    x.integers[i] += 1;
                    x.floats[i] = x.integers[i] as f64 / 2f64.powi(x.scale);
                    c.value = input_sha256(&c.tensors);
                }),
            ));
        }
    }
    let value: fn() -> Reader = || Box::new(|f| short(&f.receipt.input_commitment.value));
    match f.receipt.input_commitment.visibility {
        Visibility::Public => out.push(change(
            (Group::Inputs, ChainLink::Receipt),
            "input_commitment.value (sha256 of the public input)",
            true,
            value(),
            Box::new(|f| {
                let c = &mut f.receipt.input_commitment;
                c.value = flip_hex(&c.value);
            }),
        )),
        // Another valid field element: the proof, bound to the true digest, must reject it.
        Visibility::Hashed => out.push(change(
            (Group::Inputs, ChainLink::Proof),
            "input_commitment.value (Poseidon digest of the hidden input)",
            true,
            value(),
            Box::new(|f| {
                let c = &mut f.receipt.input_commitment;
                if let Some(d) = commit::parse_fp_hex(&c.value) {
                    c.value = commit::fp_hex(d + Fp::one());
                }
            }),
        )),
        Visibility::Private => {}
    }
}

/// The model: a weight, the weights commitment and architecture hash, the quantized model hash,
/// another layout of the circuit.
fn model_cases(f: &Folder, out: &mut Vec<Change>) {
    const AT: (Group, ChainLink) = (Group::Commitments, ChainLink::Quantized);
    // The weights: the first integer of the first parameter tensor, with the receipt's hash of
    // quantized.json (and a hashed weights digest) recomputed, so the re-derivation from
    // model.onnx rejects it (and, without model.onnx, the re-derived verifier key for fixed
    // weights or the proof for hashed weights).
    // (A redacted folder has no weights to change; its weights commitment case follows.)
    if let Some(t) = commit::param_tensors(&f.qm)
        .into_iter()
        .find(|t| !t.data.is_empty() && f.qm.redacted.is_none())
    {
        let (node, index) = (t.node, t.index);
        out.push(change(
            AT,
            format!(
                "{} 0 of `{}` in quantized.json",
                t.kind, f.qm.nodes[node].name
            ),
            true,
            Box::new(move |f| {
                let t = commit::param_tensors(&f.qm);
                t.iter()
                    .find(|t| (t.node, t.index) == (node, index))
                    .and_then(|t| t.data.first())
                    .map_or("–".into(), |v| v.to_string())
            }),
            Box::new(move |f| {
                if let Some(d) = commit::param_data_mut(&mut f.qm, node, index) {
                    d[0] += 1;
                }
                let c = &mut f.receipt.model_commitment;
                c.quantized_sha256 = canonical_sha256(&f.qm);
                if c.param_visibility == ParamVisibility::Hashed {
                    c.weights_commitment = commit::fp_hex(commit::params_digest(&f.qm));
                }
            }),
        ));
    }
    if f.receipt.model_commitment.param_visibility == ParamVisibility::Hashed {
        out.push(change(
            AT,
            "model_commitment.architecture_sha256",
            true,
            Box::new(|f| short(&f.receipt.model_commitment.architecture_sha256)),
            Box::new(|f| {
                let c = &mut f.receipt.model_commitment;
                c.architecture_sha256 = flip_hex(&c.architecture_sha256);
            }),
        ));
        out.push(change(
            (Group::Commitments, ChainLink::Proof),
            "model_commitment.weights_commitment (Poseidon digest of the weights)",
            true,
            Box::new(|f| short(&f.receipt.model_commitment.weights_commitment)),
            Box::new(|f| {
                let c = &mut f.receipt.model_commitment;
                if let Some(d) = commit::parse_fp_hex(&c.weights_commitment) {
                    c.weights_commitment = commit::fp_hex(d + Fp::one());
                }
            }),
        ));
    }
    // A redacted folder cannot check the full model's hash: its architecture hash and the
    // weights digest (in the proof) stand for it.
    let redacted = f.qm.redacted.is_some();
    out.push(change(
        AT,
        if redacted {
            "model_commitment.quantized_sha256 (the full model's hash: not checkable without the weights)"
        } else {
            "model_commitment.quantized_sha256"
        },
        !redacted,
        Box::new(|f| short(&f.receipt.model_commitment.quantized_sha256)),
        Box::new(|f| {
            let c = &mut f.receipt.model_commitment;
            c.quantized_sha256 = flip_hex(&c.quantized_sha256);
        }),
    ));
    // Another valid circuit for the same model (a different lane count), with the receipt's
    // circuit hash and k updated: its verifier key differs, so the key check rejects it.
    let lanes = if f.circuit.layout.lanes == 4 { 8 } else { 4 };
    if let Ok(other) =
        crate::circuit::compile_layout(&f.qm, lanes, 1, f.circuit.layout.disclosure(), None)
    {
        out.push(change(
            (Group::Commitments, ChainLink::Circuit),
            format!("circuit.json: the same model laid out in {lanes} lanes"),
            true,
            Box::new(|f| format!("{} lanes, k={}", f.circuit.layout.lanes, f.circuit.k)),
            Box::new(move |f| {
                f.circuit = other.info.clone();
                f.receipt.model_commitment.circuit_sha256 = canonical_sha256(&f.circuit);
                f.receipt.verifier.k = f.circuit.k;
            }),
        ));
    }
}

/// The verifier key and the proof bytes.
fn key_and_proof_cases(f: &Folder, out: &mut Vec<Change>) {
    const KEY: (Group, ChainLink) = (Group::Key, ChainLink::VerifierKey);
    // The verifier key: its pinned form and its recorded hash.
    out.push(change(
        KEY,
        "vk.txt (one character)",
        true,
        Box::new(|f| {
            let i = f.vk_txt.len() / 2;
            let c = f.vk_txt.as_bytes().get(i).map_or('–', |&b| b as char);
            format!("character {i}: {c}")
        }),
        Box::new(|f| {
            let mut b = f.vk_txt.clone().into_bytes();
            let i = b.len() / 2;
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            f.vk_txt = String::from_utf8_lossy(&b).into_owned();
        }),
    ));
    out.push(change(
        KEY,
        "verifier.vk_sha256",
        true,
        Box::new(|f| short(&f.receipt.verifier.vk_sha256)),
        Box::new(|f| f.receipt.verifier.vk_sha256 = flip_hex(&f.receipt.verifier.vk_sha256)),
    ));
    // Proof bytes at the start, middle and end (the receipt's proof hash updated).
    const PROOF: (Group, ChainLink) = (Group::ProofBytes, ChainLink::Proof);
    let n = f.proof.len();
    for at in [0, n / 2, n.saturating_sub(1)] {
        out.push(change(
            PROOF,
            format!("proof.bin byte {at}"),
            true,
            Box::new(move |f| f.proof.get(at).map_or("–".into(), |b| format!("0x{b:02x}"))),
            Box::new(move |f| {
                f.proof[at] ^= 0x01;
                f.receipt.proof.sha256 = sha256_hex(&f.proof);
            }),
        ));
    }
    out.push(change(
        PROOF,
        "proof.sha256",
        true,
        Box::new(|f| short(&f.receipt.proof.sha256)),
        Box::new(|f| f.receipt.proof.sha256 = flip_hex(&f.receipt.proof.sha256)),
    ));
}

/// The words, settings, labels and versions shown beside the verdict: rebuilt by the verifier
/// from the artifacts and compared.
fn word_cases(f: &Folder, out: &mut Vec<Change>) {
    let edits: [(&str, Reader, Tamper); 10] = [
        (
            "statement",
            Box::new(|f| f.receipt.statement.clone()),
            Box::new(|f| f.receipt.statement.push_str(" (edited)")),
        ),
        (
            "model_commitment.weights (how the weights are bound)",
            Box::new(|f| f.receipt.model_commitment.weights.clone()),
            Box::new(|f| f.receipt.model_commitment.weights.push_str(" (edited)")),
        ),
        (
            "not_claimed",
            Box::new(|f| format!("{} sentences", f.receipt.not_claimed.len())),
            Box::new(|f| {
                f.receipt.not_claimed.pop();
            }),
        ),
        (
            "quantization.activation_scale",
            Box::new(|f| f.receipt.quantization.activation_scale.to_string()),
            Box::new(|f| f.receipt.quantization.activation_scale += 1),
        ),
        (
            "proof.system",
            Box::new(|f| f.receipt.proof.system.clone()),
            Box::new(|f| f.receipt.proof.system.push_str(" (edited)")),
        ),
        (
            "proof.file",
            Box::new(|f| f.receipt.proof.file.clone()),
            Box::new(|f| f.receipt.proof.file = "renamed.bin".into()),
        ),
        (
            "verifier.file",
            Box::new(|f| f.receipt.verifier.file.clone()),
            Box::new(|f| f.receipt.verifier.file = "renamed.txt".into()),
        ),
        (
            "verifier.zkreceipt_version",
            Box::new(|f| f.receipt.verifier.zkreceipt_version.clone()),
            Box::new(|f| f.receipt.verifier.zkreceipt_version.push_str("-edited")),
        ),
        (
            "input_commitment.scheme",
            Box::new(|f| f.receipt.input_commitment.scheme.clone()),
            Box::new(|f| f.receipt.input_commitment.scheme.push_str(" (edited)")),
        ),
        (
            "input_commitment.salted",
            Box::new(|f| f.receipt.input_commitment.salted.to_string()),
            Box::new(|f| {
                let c = &mut f.receipt.input_commitment;
                c.salted = !c.salted;
            }),
        ),
    ];
    let label = (Group::Labels, ChainLink::Receipt);
    for (item, value, tamper) in edits {
        out.push(change(label, item, true, value, tamper));
    }
    if let Some(o) = f.receipt.output.first() {
        out.push(change(
            label,
            format!("output `{}` renamed", o.name),
            true,
            Box::new(|f| {
                f.receipt
                    .output
                    .first()
                    .map_or("–".into(), |o| o.name.clone())
            }),
            Box::new(|f| f.receipt.output[0].name.push('x')),
        ));
    }
}

/// The fields nothing binds: changing them must not change the verdict.
fn unbound_cases(out: &mut Vec<Change>) {
    for u in Unbound::ALL {
        let (value, t): (Reader, Tamper) = match u {
            Unbound::ProveSeconds => (
                Box::new(|f| f.receipt.proof.prove_s.to_string()),
                Box::new(|f| f.receipt.proof.prove_s += 1.0),
            ),
            Unbound::MaxAbsError => (
                Box::new(|f| f.receipt.quantization.max_abs_error.to_string()),
                Box::new(|f| f.receipt.quantization.max_abs_error += 1.0),
            ),
            Unbound::MaxRelError => (
                Box::new(|f| f.receipt.quantization.max_rel_error.to_string()),
                Box::new(|f| f.receipt.quantization.max_rel_error += 1.0),
            ),
            Unbound::ArgmaxAgree => (
                Box::new(|f| format!("{:?}", f.receipt.quantization.argmax_agree)),
                Box::new(|f| {
                    let q = &mut f.receipt.quantization;
                    q.argmax_agree = Some(!q.argmax_agree.unwrap_or(false));
                }),
            ),
        };
        out.push(change(
            (Group::Unbound, ChainLink::Receipt),
            format!("{} ({})", u.field(), u.why()),
            false,
            value,
            t,
        ));
    }
}

/// Change the first hex digit.
fn flip_hex(h: &str) -> String {
    let mut c: Vec<char> = h.chars().collect();
    if let Some(x) = c.first_mut() {
        *x = if *x == '0' { '1' } else { '0' };
    }
    c.into_iter().collect()
}

/// Run the break test on a folder. `progress` hears each case.
pub fn break_test(f: &Folder, progress: &mut dyn FnMut(&str)) -> Result<BreakReport> {
    let mut keys = KeyCache::default();
    let honest: Verdict = verify_folder_with(f, &mut keys, progress)?;
    let mut report = BreakReport {
        honest_verified: honest.verified,
        honest_reason: honest.reason.clone(),
        cases: vec![],
        passed: false,
    };
    if !honest.verified {
        return Ok(report);
    }
    let all = cases(f);
    let total = all.len();
    let mut quiet = |_: &str| {};
    for (n, c) in all.into_iter().enumerate() {
        progress(&format!("case {}/{total}: {}", n + 1, c.item));
        let mut g = f.clone();
        (c.tamper)(&mut g);
        let v = verify_folder_with(&g, &mut keys, &mut quiet).map_err(|e| {
            Error::invalid(
                &c.item,
                format!("the changed folder could not be checked: {e}"),
            )
        })?;
        report.cases.push(Case {
            ok: v.verified != c.bound,
            before: (c.value)(f),
            after: (c.value)(&g),
            item: c.item,
            group: c.group,
            bound: c.bound,
            verified: v.verified,
            reason: v.reason,
        });
    }
    report.passed = report.cases.iter().all(|c| c.ok);
    Ok(report)
}
