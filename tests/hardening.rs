//! Issue 12's cases end to end with the real prover: what the tool computes proves (long max
//! windows), what it cannot compute exactly is refused up front (integer division), what a
//! prover hands over is checked (forged quantized.json, receipt fields, proof bytes, public values
//! at the edge), and work that cannot fit is refused before it starts.

mod common;

use std::path::{Path, PathBuf};

use common::onnx::*;
use common::*;
use serde_json::Value;

/// Write `bytes` as `name` in `dir`, with an input file of `data`; returns both paths.
fn write_model(dir: &Path, name: &str, bytes: Vec<u8>, data: &[&[f64]]) -> (PathBuf, PathBuf) {
    let m = dir.join(format!("{name}.onnx"));
    std::fs::write(&m, bytes).unwrap();
    let i = dir.join(format!("{name}.json"));
    let doc = serde_json::json!({ "input_data": data });
    std::fs::write(&i, doc.to_string()).unwrap();
    (m, i)
}

fn proves_verifies_and_breaks(m: &Path, i: &Path, out: &Path) {
    let o = prove_seeded(m, i, out, "3", &[]);
    assert_eq!(o.status.code(), Some(0), "prove: {}", stderr(&o));
    assert_eq!(verify(out).0, 0);
    let o = zk(&["break-test", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "break-test: {}", stderr(&o));
}

/// ReduceMax (opset 18, keepdims, no axes) over 11 elements, the max last: the running product
/// of differences left i128 and the fresh proof did not verify. MaxPool 5×5 over 1..25 too.
#[test]
fn max_over_long_windows_proves_and_breaks() {
    let w = work_dir("hardening-max");
    let reduce = model_of(
        vec![node(
            "ReduceMax",
            &["X"],
            &["Y"],
            vec![int_attr("keepdims", 1)],
        )],
        vec![],
        vec![info("X", &[11])],
        vec![info("Y", &[1])],
        18,
    );
    let mut x = vec![0.0; 11];
    x[10] = 1.9;
    let (m, i) = write_model(&w, "reduce_max", reduce, &[&x]);
    proves_verifies_and_breaks(&m, &i, &w.join("reduce-max"));

    let pool = model_of(
        vec![node(
            "MaxPool",
            &["X"],
            &["Y"],
            vec![ints_attr("kernel_shape", &[5, 5])],
        )],
        vec![],
        vec![info("X", &[1, 1, 5, 5])],
        vec![info("Y", &[1, 1, 1, 1])],
        14,
    );
    let x: Vec<f64> = (1..=25).map(f64::from).collect();
    let (m, i) = write_model(&w, "max_pool", pool, &[&x]);
    let out = w.join("max-pool");
    proves_verifies_and_breaks(&m, &i, &out);
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("receipt.json")).unwrap()).unwrap();
    assert_eq!(r["output"][0]["floats"][0], 25.0);

    // A pooling window of padding alone in a forged quantized.json: refused by name, no panic.
    let d = w.join("padding-window");
    copy_dir(&out, &d);
    edit_json(&d.join("quantized.json"), |q| {
        let n = q["nodes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["op"] == "max_pool")
            .unwrap();
        n["pads_begin"] = serde_json::json!([9, 9]);
    });
    let o = zk(&["verify", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("quantized.json"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

/// ONNX divides integers with truncation (16 / 11 = 1): on runtime tensors the preflight
/// refuses it by name; on static tensors it is folded with truncation.
#[test]
fn integer_division_is_refused_at_run_time_and_truncates_when_folded() {
    let w = work_dir("hardening-div");
    let runtime = model_of(
        vec![
            node("Cast", &["X"], &["xi"], vec![int_attr("to", 7)]),
            node("Div", &["xi", "d"], &["q"], vec![]),
            node("Cast", &["q"], &["Y"], vec![int_attr("to", 1)]),
        ],
        vec![int64_init("d", &[1], &[11])],
        vec![info("X", &[2])],
        vec![info("Y", &[2])],
        14,
    );
    let (m, i) = write_model(&w, "int_div", runtime, &[&[16.0, 5.0]]);
    let o = zk(&["model", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("div_q") && text.contains("integer division"),
        "{text}"
    );
    let o = prove_seeded(&m, &i, &w.join("r"), "3", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("integer division"), "{}", stderr(&o));
    assert!(!w.join("r").exists());

    let folded = model_of(
        vec![
            node("Div", &["a", "b"], &["q"], vec![]),
            node("Cast", &["q"], &["qf"], vec![int_attr("to", 1)]),
            node("Add", &["X", "qf"], &["Y"], vec![]),
        ],
        vec![int64_init("a", &[1], &[16]), int64_init("b", &[1], &[11])],
        vec![info("X", &[2])],
        vec![info("Y", &[2])],
        14,
    );
    let (m, i) = write_model(&w, "folded_div", folded, &[&[0.25, -0.5]]);
    let o = zk(&[
        "run",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = stdout_json(&o);
    assert_eq!(
        f64s(&run["outputs"][0]["float"]),
        [1.25, 0.5],
        "tract truncates"
    );
    assert_eq!(f64s(&run["outputs"][0]["quantized"]), [1.25, 0.5]);
}

/// `a − b` with two graph inputs: the order of the inputs is what the proof binds.
fn sub_model(w: &Path) -> PathBuf {
    let sub = model_of(
        vec![node("Sub", &["A", "B"], &["Y"], vec![])],
        vec![],
        vec![info("A", &[3]), info("B", &[3])],
        vec![info("Y", &[3])],
        14,
    );
    let (m, i) = write_model(w, "sub", sub, &[&[0.5, 1.0, -2.0], &[0.25, -1.0, 1.0]]);
    let out = w.join("sub-receipt");
    let o = prove_seeded(&m, &i, &out, "3", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(verify(&out).0, 0);
    out
}

fn expect_invalid(honest: &Path, name: &str, file: &str, tamper: impl FnOnce(&Path)) -> String {
    let d = honest.parent().unwrap().join(name);
    copy_dir(honest, &d);
    tamper(&d);
    let o = zk(&["verify", d.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{name}: {err}");
    assert!(err.contains(file), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    err
}

fn input_nodes(q: &mut Value) -> Vec<&mut Value> {
    q["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|n| n["op"] == "input")
        .collect()
}

/// quantized.json must describe one graph that the evaluator and the planner read alike.
#[test]
fn forged_quantized_graphs_are_refused() {
    let w = work_dir("hardening-graph");
    let out = sub_model(&w);
    // Swapped input indices: the evaluator would compute b − a, the proof a − b.
    let err = expect_invalid(&out, "swapped-inputs", "quantized.json", |d| {
        edit_json(&d.join("quantized.json"), |q| {
            let mut ins = input_nodes(q);
            ins[0]["index"] = 1.into();
            ins[1]["index"] = 0.into();
        })
    });
    assert!(err.contains("input index"), "{err}");
    expect_invalid(&out, "input-listed-twice", "quantized.json", |d| {
        edit_json(&d.join("quantized.json"), |q| {
            let first = q["inputs"][0].clone();
            q["inputs"][1] = first;
        })
    });
    let err = expect_invalid(&out, "two-producers", "quantized.json", |d| {
        edit_json(&d.join("quantized.json"), |q| {
            let ins = input_nodes(q);
            let first = ins[0]["output"].clone();
            let mut ins = ins;
            ins[1]["output"] = first;
        })
    });
    assert!(err.contains("second producer"), "{err}");
}

/// Every receipt field is checked or declared unbound; bytes after the proof, values at the
/// edge of i64, and keys the format does not have are refused.
#[test]
fn forged_receipt_fields_are_refused() {
    let w = work_dir("hardening-fields");
    let out = sub_model(&w);
    let err = expect_invalid(&out, "unknown-key", "receipt.json", |d| {
        edit_receipt(d, |r| r["proof"]["extra"] = "anything".into())
    });
    assert!(err.contains("proof.extra"), "{err}");
    for (name, field, value) in [
        ("system", "/proof/system", "halo2 with a trusted setup"),
        ("transcript", "/proof/transcript", "Poseidon"),
        ("halo2-version", "/verifier/halo2_proofs_version", "0.3.0"),
        ("zk-version", "/verifier/zkreceipt_version", "9.9.9"),
        ("scheme", "/input_commitment/scheme", "sha3"),
        ("covers", "/input_commitment/covers", "everything"),
    ] {
        expect_rejected(&out, name, |d| {
            edit_receipt(d, |r| *r.pointer_mut(field).unwrap() = value.into())
        });
    }
    let why = expect_rejected(&out, "salted", |d| {
        edit_receipt(d, |r| r["input_commitment"]["salted"] = true.into())
    });
    assert!(why.contains("salted"), "{why}");
    // Bytes appended to the proof, its hash and size updated: one proof, one hash.
    let why = expect_rejected(&out, "trailing-bytes", |d| {
        let p = d.join("proof.bin");
        let mut b = std::fs::read(&p).unwrap();
        b.extend_from_slice(&[0, 1, 2, 3]);
        std::fs::write(&p, &b).unwrap();
        let sha = zkreceipt::model::sha256_hex(&b);
        edit_receipt(d, |r| {
            r["proof"]["sha256"] = sha.into();
            r["proof"]["bytes"] = b.len().into();
        })
    });
    assert!(why.contains("4 bytes follow"), "{why}");
    // i64::MIN as an output integer (its float consistent): outside the activation range.
    let why = expect_rejected(&out, "i64-min", |d| {
        edit_receipt(d, |r| {
            let s = r["output"][0]["scale"].as_i64().unwrap() as i32;
            r["output"][0]["integers"][0] = i64::MIN.into();
            r["output"][0]["floats"][0] = (i64::MIN as f64 * 2f64.powi(-s)).into();
        })
    });
    assert!(why.contains("activation range"), "{why}");
    // The unbound fields stay unbound: the verdict stands.
    let d = w.join("unbound");
    copy_dir(&out, &d);
    edit_receipt(&d, |r| {
        r["proof"]["prove_s"] = 123.0.into();
        r["quantization"]["max_abs_error"] = 1.0.into();
    });
    assert_eq!(verify(&d).0, 0);
}

/// Hashed weights: a weights commitment that is not a field element is refused by the check,
/// and a redacted copy must be the redaction of itself (no weights slipped back in).
#[test]
fn hashed_weight_forgeries_are_refused() {
    let w = work_dir("hardening-hashed");
    let (m, i, _) = sample("sigmoid");
    let out = w.join("r");
    let o = prove_seeded(&m, &i, &out, "3", &["--param-visibility", "hashed"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let why = expect_rejected(&out, "not-a-field-element", |d| {
        edit_receipt(d, |r| {
            r["model_commitment"]["weights_commitment"] = "0xnot-hex".into()
        })
    });
    assert!(why.contains("not a field element"), "{why}");
    let red = w.join("redacted");
    let o = zk(&[
        "redact",
        out.to_str().unwrap(),
        "--out",
        red.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let why = expect_rejected(&red, "weights-back-in", |d| {
        bump_linear_weight(d, 0, 5);
        // The architecture hash follows the edit, so only the redaction check can object.
        let q: Value =
            serde_json::from_slice(&std::fs::read(d.join("quantized.json")).unwrap()).unwrap();
        let sha = zkreceipt::model::sha256_hex(&serde_json::to_vec(&q).unwrap());
        edit_receipt(d, |r| {
            r["model_commitment"]["architecture_sha256"] = sha.into()
        });
    });
    assert!(why.contains("redacted"), "{why}");
}

/// `--max-k` and the forecast: said before any parameters or keys are made, and what a killed
/// run left behind is cleaned up.
#[test]
fn prove_forecasts_refuses_above_max_k_and_cleans_up() {
    let w = work_dir("hardening-resources");
    let (m, i, _) = sample("digits");
    let out = w.join("r");
    let o = prove_seeded(&m, &i, &out, "3", &["--max-k", "4"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max-k 4"), "{}", stderr(&o));
    assert!(!out.exists());
    // A temporary folder of a process that is gone (no pid is this large) is removed.
    let stale = w.join(".r.tmp-4999999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("receipt.json"), "{").unwrap();
    let o = prove_seeded(&m, &i, &out, "3", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("forecast for k="), "{}", stderr(&o));
    assert!(!stale.exists());
}

/// A proof the tool just made that does not verify is its own bug: exit 4, said as such.
#[test]
fn a_fresh_proof_that_fails_is_an_internal_error() {
    use rand::SeedableRng;
    let (m, i, _) = sample("sigmoid");
    let chain = zkreceipt::receipt::build_chain(&m, &i, &Default::default()).unwrap();
    let c = &chain.compiled;
    // Made here, not read from the user's cache.
    let params = halo2_proofs::poly::commitment::Params::new(c.info.k);
    let (vk, pk) = zkreceipt::proof::keygen(&params, &c.circuit).unwrap();
    let inst = c.circuit.instance().unwrap();
    // A witness off by one in its first assignment: what a planner bug would produce.
    let mut bad = c.circuit.clone();
    bad.tamper = Some((0, 1));
    let rng = rand::rngs::StdRng::seed_from_u64(5);
    let proof = zkreceipt::proof::prove(&params, &pk, &bad, &inst, rng).unwrap();
    let e = zkreceipt::proof::check_fresh(&params, &vk.vk, &inst, &proof).unwrap_err();
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("a bug in zkreceipt"), "{e}");
    let rng = rand::rngs::StdRng::seed_from_u64(5);
    let good = zkreceipt::proof::prove(&params, &pk, &c.circuit, &inst, rng).unwrap();
    assert!(zkreceipt::proof::check_fresh(&params, &vk.vk, &inst, &good).is_ok());
}
