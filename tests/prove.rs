//! End to end with the real prover: prove the samples into receipt folders, verify them, and
//! break them. Parameters are cached in the test's own folder (never the user's cache).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn prove(sample_name: &str, out: &Path) -> Value {
    prove_with(sample_name, out, &[])
}

#[test]
fn digits_receipt_proves_verifies_and_breaks() {
    let w = work_dir("digits");
    let out = w.join("digits-receipt");
    let p = prove("digits", &out);
    for f in [
        "model.onnx",
        "input.json",
        "quantized.json",
        "circuit.json",
        "vk.txt",
        "proof.bin",
        "receipt.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // No temporary folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&w)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let r = &p["receipt"];
    for key in [
        "schema",
        "model_commitment",
        "input_commitment",
        "output",
        "proof",
        "verifier",
        "statement",
        "quantization",
        "not_claimed",
    ] {
        assert!(r.get(key).is_some(), "receipt lacks `{key}`");
    }
    // The public output is the integer evaluator's: the same as `run`'s integers.
    let (m, i, _) = sample("digits");
    let run = stdout_json(&zk(&[
        "run",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(r["output"][0]["integers"], run["outputs"][0]["integers"]);
    assert_eq!(r["quantization"]["argmax_agree"], true);

    let (code, v) = verify(&out);
    assert_eq!(code, 0, "honest receipt must verify: {v}");
    assert_eq!(v["verified"], true);
    // Verifying through receipt.json works too.
    let (code, _) = verify(&out.join("receipt.json"));
    assert_eq!(code, 0);

    // Break tests with the real prover's proof.
    let why = expect_rejected(&out, "output-integer", |d| {
        edit_receipt(d, |r| {
            let x = r["output"][0]["integers"][3].as_i64().unwrap();
            r["output"][0]["integers"][3] = (x + 1).into();
            let s = r["output"][0]["scale"].as_i64().unwrap() as i32;
            r["output"][0]["floats"][3] = ((x + 1) as f64 / 2f64.powi(s)).into();
        })
    });
    assert!(why.contains("proof"), "{why}");
    let why = expect_rejected(&out, "output-float", |d| {
        edit_receipt(d, |r| {
            let x = r["output"][0]["floats"][0].as_f64().unwrap();
            r["output"][0]["floats"][0] = (x + 0.5).into();
        })
    });
    assert!(why.contains("output floats"), "{why}");
    expect_rejected(&out, "input-integer", |d| {
        edit_receipt(d, |r| {
            let t = &mut r["input_commitment"]["tensors"][0];
            let x = t["integers"][10].as_i64().unwrap();
            t["integers"][10] = (x + 1).into();
            let s = t["scale"].as_i64().unwrap() as i32;
            t["floats"][10] = ((x + 1) as f64 / 2f64.powi(s)).into();
        })
    });
    expect_rejected(&out, "proof-byte", |d| {
        let p = d.join("proof.bin");
        let mut b = std::fs::read(&p).unwrap();
        b[100] ^= 1;
        std::fs::write(&p, &b).unwrap();
        // Keep the receipt's proof hash in step, so the proof itself is what fails.
        let sha = zkreceipt::model::sha256_hex(&b);
        edit_receipt(d, |r| r["proof"]["sha256"] = sha.into());
    });
    let why = expect_rejected(&out, "vk-hash", |d| {
        edit_receipt(d, |r| {
            r["verifier"]["vk_sha256"] = "00".repeat(32).into();
        })
    });
    assert!(why.contains("verifier key"), "{why}");
    let why = expect_rejected(&out, "weights", |d| {
        // A changed weight changes the circuit's fixed columns, so the re-derived key.
        bump_linear_weight(d, 0, 1);
    });
    assert!(why.contains("quantized"), "{why}");

    // Unreadable artifacts: exit 3, naming the file, never "verified".
    let d = w.join("truncated");
    copy_dir(&out, &d);
    let text = std::fs::read_to_string(d.join("receipt.json")).unwrap();
    std::fs::write(d.join("receipt.json"), &text[..text.len() / 2]).unwrap();
    let o = zk(&["verify", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("receipt.json"), "{}", stderr(&o));
    // A quantized.json that parses but points outside itself: exit 3 naming it, not a panic.
    let d = w.join("bad-quantized");
    copy_dir(&out, &d);
    edit_json(&d.join("quantized.json"), |q| q["outputs"][0] = 999.into());
    let o = zk(&["verify", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("quantized.json"), "{}", stderr(&o));
    // A folder from another circuit format: exit 3, saying to prove again.
    let d = w.join("old-format");
    copy_dir(&out, &d);
    edit_receipt(&d, |r| r["verifier"]["circuit_format"] = 1.into());
    let o = zk(&["verify", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("prove the model again"),
        "{}",
        stderr(&o)
    );
    let d = w.join("no-proof");
    copy_dir(&out, &d);
    std::fs::remove_file(d.join("proof.bin")).unwrap();
    let o = zk(&["verify", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("proof.bin"), "{}", stderr(&o));
}

#[test]
fn sigmoid_sample_proves_with_a_lookup_table() {
    let w = work_dir("sigmoid");
    let out = w.join("r");
    let p = prove("sigmoid", &out);
    let circuit: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("circuit.json")).unwrap()).unwrap();
    assert_eq!(circuit["lookups"], 1);
    assert!(p["receipt"]["output"][0]["integers"].is_array());
    assert_eq!(verify(&out).0, 0);
    expect_rejected(&out, "sigmoid-output", |d| {
        edit_receipt(d, |r| {
            let x = r["output"][0]["integers"][0].as_i64().unwrap();
            r["output"][0]["integers"][0] = (x - 1).into();
            let s = r["output"][0]["scale"].as_i64().unwrap() as i32;
            r["output"][0]["floats"][0] = ((x - 1) as f64 / 2f64.powi(s)).into();
        })
    });
}

#[test]
fn prove_refuses_bad_input_without_leaving_a_folder() {
    let w = work_dir("bad");
    let (m, _, _) = sample("digits");
    let bad = w.join("bad.json");
    std::fs::write(&bad, r#"{"input_data": [[1, 2, 3]]}"#).unwrap();
    let out = w.join("r");
    let o = zk(&[
        "prove",
        m.to_str().unwrap(),
        "--input",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.json"), "{}", stderr(&o));
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(&w).unwrap().count(), 1, "only bad.json");
}

fn audit_json(dir: &Path) -> (i32, Value) {
    let o = zk(&["audit", dir.to_str().unwrap(), "--json"]);
    let code = o.status.code().unwrap();
    assert!(
        code != 3,
        "audit could not read {}: {}",
        dir.display(),
        stderr(&o)
    );
    (code, stdout_json(&o))
}

/// Audit a changed copy of `honest`: exit 1, and the named link is among the broken ones.
fn expect_broken_link(
    honest: &Path,
    name: &str,
    link: &str,
    tamper: impl FnOnce(&Path),
) -> Vec<String> {
    let d = honest.parent().unwrap().join(name);
    copy_dir(honest, &d);
    tamper(&d);
    let (code, a) = audit_json(&d);
    assert_eq!(code, 1, "{name}: audit must fail: {a}");
    let broken: Vec<&str> = a["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["holds"] == false)
        .map(|l| l["link"].as_str().unwrap())
        .collect();
    assert!(
        broken.iter().any(|l| l.starts_with(link)),
        "{name}: expected `{link}` broken, got {broken:?}"
    );
    broken.iter().map(|s| s.to_string()).collect()
}

#[test]
fn digits_audit_and_break_test() {
    let w = work_dir("audit");
    let out = w.join("digits-receipt");
    prove("digits", &out);

    // The break test passes on the honest folder and covers every bound item.
    let o = zk(&["break-test", out.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = stdout_json(&o);
    assert_eq!(b["honest_verified"], true);
    assert_eq!(b["passed"], true);
    let items: Vec<String> = b["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item"].as_str().unwrap().to_string())
        .collect();
    for i in 0..10 {
        assert!(
            items
                .iter()
                .any(|x| x.starts_with(&format!("output `output`[{i}] integer")))
        );
    }
    for needle in [
        "input `",
        "input_commitment",
        "weight 0",
        "circuit.json",
        "vk.txt",
        "vk_sha256",
        "proof.bin byte",
        "statement",
    ] {
        assert!(
            items.iter().any(|x| x.contains(needle)),
            "no case for {needle}: {items:?}"
        );
    }
    for c in b["cases"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["verified"], c["bound"] == false, "{c}");
    }

    // The ERC-7992 export of the honest folder; a rejected folder is not exported.
    let o = zk(&["export", "--erc7992", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stdout_json(&o);
    let receipt: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("receipt.json")).unwrap()).unwrap();
    let mc = &e["modelCommitment"];
    assert_eq!(
        mc["vkHash"].as_str().unwrap(),
        format!("0x{}", receipt["verifier"]["vk_sha256"].as_str().unwrap())
    );
    assert_eq!(mc["proofSystemId"].as_str().unwrap().len(), 10);
    // int256[] of the 10 logits: offset, length, 10 words.
    assert_eq!(e["output"].as_str().unwrap().len(), 2 + 64 * 12);
    let proof = std::fs::read(out.join("proof.bin")).unwrap();
    assert_eq!(e["proof"].as_str().unwrap().len(), 2 + 2 * proof.len());
    let bad = w.join("export-bad");
    copy_dir(&out, &bad);
    edit_receipt(&bad, |r| {
        r["verifier"]["vk_sha256"] = "11".repeat(32).into()
    });
    let o = zk(&["export", "--erc7992", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());

    // Audit: every link holds on the honest folder...
    let (code, a) = audit_json(&out);
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["links"].as_array().unwrap().len(), 7);

    // ...and each changed artifact breaks its own link.
    expect_broken_link(&out, "a-model", "model.onnx → sha256", |d| {
        let p = d.join("model.onnx");
        let mut b = std::fs::read(&p).unwrap();
        b.push(0);
        std::fs::write(&p, b).unwrap();
    });
    expect_broken_link(&out, "a-input", "input.json → input commitment", |d| {
        edit_json(&d.join("input.json"), |v| {
            let x = v["input_data"][0][5].as_f64().unwrap();
            v["input_data"][0][5] = (x + 1.0).into();
        });
    });
    expect_broken_link(
        &out,
        "a-quantized",
        "model.onnx + recorded ranges → quantized.json",
        |d| {
            bump_linear_weight(d, 1, -1);
        },
    );
    expect_broken_link(&out, "a-circuit", "quantized.json → circuit.json", |d| {
        edit_json(&d.join("circuit.json"), |c| {
            let r = c["rows"].as_u64().unwrap();
            c["rows"] = (r + 1).into();
        });
    });
    expect_broken_link(&out, "a-vk", "circuit → verifier key", |d| {
        let p = d.join("vk.txt");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replacen("0x", "0y", 1)).unwrap();
    });
    expect_broken_link(
        &out,
        "a-proof",
        "verifier key + public input/output → proof",
        |d| {
            let p = d.join("proof.bin");
            let mut b = std::fs::read(&p).unwrap();
            b[7] ^= 0x80;
            std::fs::write(&p, b).unwrap();
        },
    );
    expect_broken_link(
        &out,
        "a-error",
        "inference → output and error figures",
        |d| {
            edit_receipt(d, |r| {
                let e = r["quantization"]["max_abs_error"].as_f64().unwrap();
                r["quantization"]["max_abs_error"] = (e / 2.0).into();
            });
        },
    );
}

fn prove_with(sample_name: &str, out: &Path, extra: &[&str]) -> Value {
    let (m, i, _) = sample(sample_name);
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let o = prove_seeded(&m, &i, out, "11", &args);
    assert_eq!(o.status.code(), Some(0), "prove failed: {}", stderr(&o));
    stdout_json(&o)
}

#[test]
fn hashed_and_private_inputs_round_trip() {
    let w = work_dir("visibility");
    // The public receipt gives the quantized input integers the digest must cover.
    let public = prove_with("digits", &w.join("public"), &[]);
    let ints: Vec<i64> = public["receipt"]["input_commitment"]["tensors"][0]["integers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();

    let hashed_dir = w.join("hashed");
    let h = prove_with(
        "digits",
        &hashed_dir,
        &["--input-visibility", "hashed", "--salt", "5eed5a17"],
    );
    let ic = &h["receipt"]["input_commitment"];
    assert_eq!(ic["visibility"], "hashed");
    assert_eq!(ic["salted"], true);
    assert!(ic["tensors"].as_array().unwrap().is_empty());
    let native = zkreceipt::circuit::commit::input_digest(&ints, 24, 0x5eed5a17);
    assert_eq!(
        ic["value"].as_str().unwrap(),
        zkreceipt::circuit::commit::fp_hex(native),
        "the in-circuit digest is the native Poseidon chain"
    );
    assert!(
        !hashed_dir.join("input.json").exists(),
        "a hashed input stays with its owner"
    );
    assert_eq!(h["receipt"]["output"], public["receipt"]["output"]);
    assert_eq!(verify(&hashed_dir).0, 0);
    let o = zk(&["break-test", hashed_dir.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout_json(&o)["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["item"].as_str().unwrap().contains("Poseidon digest"))
    );
    let (code, a) = audit_json(&hashed_dir);
    assert_eq!(code, 0, "{a}");
    assert!(
        a["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["skipped"] == true)
    );
    // The digest of another input is rejected by the proof.
    let why = expect_rejected(&hashed_dir, "hashed-digest", |d| {
        let other = zkreceipt::circuit::commit::input_digest(&ints, 24, 0x5eed5a18);
        edit_receipt(d, |r| {
            r["input_commitment"]["value"] = zkreceipt::circuit::commit::fp_hex(other).into()
        });
    });
    assert!(why.contains("proof"), "{why}");

    let private_dir = w.join("private");
    let p = prove_with("digits", &private_dir, &["--input-visibility", "private"]);
    assert_eq!(p["receipt"]["input_commitment"]["visibility"], "private");
    assert!(
        p["receipt"]["not_claimed"][0]
            .as_str()
            .unwrap()
            .contains("private")
    );
    assert!(!private_dir.join("input.json").exists());
    assert_eq!(verify(&private_dir).0, 0);
    let o = zk(&["break-test", private_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(audit_json(&private_dir).0, 0);
    // Claiming the private receipt is a public one is rejected.
    expect_rejected(&private_dir, "private-as-public", |d| {
        edit_receipt(d, |r| r["input_commitment"]["visibility"] = "public".into());
    });
    // A salt without a hashed input is a usage error, not silently ignored.
    let (m, i, _) = sample("digits");
    let o = zk(&[
        "prove",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--out",
        w.join("x").to_str().unwrap(),
        "--salt",
        "ab",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--salt"));
}

/// The receipt's shape: every key, in order, with the type of its value; the texts that do not
/// depend on the model (schema, proof system, visibility, what is covered and not claimed) are
/// kept verbatim. Arrays show their first element.
fn shape(v: &Value, key: &str) -> Value {
    const VERBATIM: [&str; 8] = [
        "param_visibility",
        "schema",
        "system",
        "transcript",
        "visibility",
        "covers",
        "weights",
        "not_claimed",
    ];
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), shape(x, k))).collect())
        }
        _ if VERBATIM.contains(&key) => v.clone(),
        Value::Array(a) => Value::Array(a.iter().take(1).map(|x| shape(x, key)).collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(n) if n.is_f64() => Value::String("float".into()),
        Value::Number(_) => Value::String("integer".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::Null,
    }
}

/// The receipt in `out` has the shape of `tests/golden/receipt-{name}.shape.json`.
fn assert_golden_shape(name: &str, out: &Path) {
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("receipt.json")).unwrap()).unwrap();
    let got = serde_json::to_string_pretty(&shape(&r, "")).unwrap() + "\n";
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("receipt-{name}.shape.json"));
    if std::env::var_os("ZKRECEIPT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    assert_eq!(
        got,
        want,
        "receipt shape ({name}) differs from {}",
        golden.display()
    );
}

#[test]
fn receipt_shape_matches_the_golden_files() {
    // ZKRECEIPT_UPDATE_GOLDEN=1 rewrites the files (review the diff: the keys are stable, design.md §5).
    // Hashed weights have their own golden file, checked in `hashed_weights_round_trip`.
    let w = work_dir("golden");
    for vis in ["public", "hashed", "private"] {
        let out = w.join(vis);
        let mut extra = vec!["--input-visibility", vis];
        if vis == "hashed" {
            extra.extend(["--salt", "00ff"]);
        }
        prove_with("digits", &out, &extra);
        assert_golden_shape(vis, &out);
    }
}

#[test]
fn hashed_weights_round_trip() {
    let w = work_dir("hashed-weights");
    let out = w.join("digits");
    let p = prove_with("digits", &out, &["--param-visibility", "hashed"]);
    let mc = &p["receipt"]["model_commitment"];
    assert_eq!(mc["param_visibility"], "hashed");
    // The in-circuit digest is the native Poseidon chain over quantized.json's integers.
    let qm: zkreceipt::quantize::QuantizedModel =
        serde_json::from_str(&std::fs::read_to_string(out.join("quantized.json")).unwrap())
            .unwrap();
    let native = zkreceipt::circuit::commit::fp_hex(zkreceipt::circuit::commit::params_digest(&qm));
    assert_eq!(mc["weights_commitment"].as_str().unwrap(), native);
    assert!(
        p["receipt"]["statement"]
            .as_str()
            .unwrap()
            .contains("private weights")
    );
    assert_golden_shape("hashed-weights", &out);

    assert_eq!(verify(&out).0, 0);
    let (code, a) = audit_json(&out);
    assert_eq!(code, 0, "{a}");
    assert!(
        a["links"].as_array().unwrap().iter().any(|l| {
            l["link"] == "quantized.json → weights commitment" && l["holds"] == true
        })
    );
    let o = zk(&["break-test", out.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = stdout_json(&o);
    let case = |prefix: &str| -> Value {
        b["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["item"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no case `{prefix}`"))
            .clone()
    };
    assert_eq!(case("model_commitment.weights_commitment")["ok"], true);
    // A changed weight with its digest recomputed: model.onnx no longer gives quantized.json.
    // (Without model.onnx, in a redacted copy, the proof is what rejects it: below.)
    let weight = case("weight 0 of");
    assert_eq!(weight["ok"], true);
    assert!(
        weight["reason"]
            .as_str()
            .unwrap()
            .starts_with("quantized model re-derived from model.onnx"),
        "{weight}"
    );

    // Hand edits: the digest alone, then a weight alone.
    let other = zkreceipt::circuit::commit::input_digest(&[1], 8, 0);
    let other = zkreceipt::circuit::commit::fp_hex(other);
    let why = expect_rejected(&out, "digest", |d| {
        edit_receipt(d, |r| {
            r["model_commitment"]["weights_commitment"] = other.clone().into()
        })
    });
    assert!(why.starts_with("weights commitment"), "{why}");
    expect_broken_link(
        &out,
        "a-digest",
        "quantized.json → weights commitment",
        |d| {
            edit_receipt(d, |r| {
                r["model_commitment"]["weights_commitment"] = other.clone().into()
            })
        },
    );
    let edit_weight = |d: &Path| bump_linear_weight(d, 0, 1);
    let why = expect_rejected(&out, "weight", edit_weight);
    assert!(why.starts_with("weights commitment"), "{why}");
    expect_broken_link(
        &out,
        "a-weight",
        "quantized.json → weights commitment",
        edit_weight,
    );
    // Claiming the weights are fixed is rejected.
    expect_rejected(&out, "as-fixed", |d| {
        edit_receipt(d, |r| {
            r["model_commitment"]["param_visibility"] = "fixed".into();
            r["model_commitment"]["weights_commitment"] = "".into();
        })
    });

    // The verifier's copy: no model.onnx, no weights; it verifies, audits (skipping what needs
    // the model) and passes the break test, where the proof alone rejects another digest.
    let red = w.join("redacted");
    let o = zk(&[
        "redact",
        out.to_str().unwrap(),
        "--out",
        red.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!red.join("model.onnx").exists());
    let rq: zkreceipt::quantize::QuantizedModel =
        serde_json::from_str(&std::fs::read_to_string(red.join("quantized.json")).unwrap())
            .unwrap();
    assert!(rq.redacted.is_some());
    assert!(
        zkreceipt::circuit::commit::param_tensors(&rq)
            .iter()
            .all(|t| t.data.iter().all(|&x| x == 0)),
        "no weight left in the copy"
    );
    assert_eq!(
        std::fs::read(red.join("vk.txt")).unwrap(),
        std::fs::read(out.join("vk.txt")).unwrap()
    );
    assert_eq!(verify(&red).0, 0);
    let (code, a) = audit_json(&red);
    assert_eq!(code, 0, "{a}");
    assert!(
        a["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["link"] == "model.onnx → sha256" && l["skipped"] == true)
    );
    let o = zk(&["break-test", red.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = stdout_json(&o);
    let digest_case = b["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["item"]
                .as_str()
                .unwrap()
                .starts_with("model_commitment.weights_commitment")
        })
        .unwrap()
        .clone();
    assert!(
        digest_case["reason"]
            .as_str()
            .unwrap()
            .starts_with("proof:"),
        "{digest_case}"
    );
    // Weights slipped back into the copy: it is no longer its own redaction.
    let why = expect_rejected(&red, "unredacted", |d| bump_linear_weight(d, 0, 1));
    assert!(why.contains("says it is redacted"), "{why}");
    // A folder with fixed weights has nothing to redact.
    let fixed = w.join("fixed");
    prove("digits", &fixed);
    let o = zk(&[
        "redact",
        fixed.to_str().unwrap(),
        "--out",
        w.join("nothing").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("param_visibility"));
    assert!(!w.join("nothing").exists());

    // Both hidden: a salted input digest and the weights digest, side by side in the instance.
    let both = w.join("both");
    let p = prove_with(
        "digits",
        &both,
        &[
            "--param-visibility",
            "hashed",
            "--input-visibility",
            "hashed",
            "--salt",
            "abc",
        ],
    );
    // (The precision search may choose another scale with the input hashed too: the digest is
    // that of this folder's quantized.json.)
    let qm: zkreceipt::quantize::QuantizedModel =
        serde_json::from_str(&std::fs::read_to_string(both.join("quantized.json")).unwrap())
            .unwrap();
    assert_eq!(
        p["receipt"]["model_commitment"]["weights_commitment"],
        zkreceipt::circuit::commit::fp_hex(zkreceipt::circuit::commit::params_digest(&qm))
    );
    assert_eq!(verify(&both).0, 0);
    assert_eq!(audit_json(&both).0, 0);
    let o = zk(&["break-test", both.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The two digests swapped: rejected (the circuit test swaps them in the instance itself).
    let why = expect_rejected(&both, "swapped", |d| {
        edit_receipt(d, |r| {
            let i = r["input_commitment"]["value"].clone();
            r["input_commitment"]["value"] = r["model_commitment"]["weights_commitment"].clone();
            r["model_commitment"]["weights_commitment"] = i;
        })
    });
    assert!(why.starts_with("weights commitment"), "{why}");
}

/// Checking variants of one folder with one key cache: a change verify does not bind (the
/// reported proving time) reuses the last proof check instead of running halo2 again, and keeps
/// the verdict; a changed proof byte is checked afresh and rejected.
#[test]
fn an_unbound_change_reuses_the_last_proof_check() {
    use zkreceipt::receipt::{Folder, KeyCache, verify_folder_with};
    let w = work_dir("proof-memo");
    let out = w.join("digits");
    prove("digits", &out);
    let folder = Folder::load(&out).unwrap();
    let mut keys = KeyCache::default();
    let run = |f: &Folder, keys: &mut KeyCache| {
        let mut stages = vec![];
        let v = verify_folder_with(f, keys, &mut |s: &str| stages.push(s.to_string())).unwrap();
        (v.verified, stages)
    };
    let (ok, stages) = run(&folder, &mut keys);
    assert!(
        ok && stages.iter().any(|s| s == "verify proof"),
        "{stages:?}"
    );
    let mut unbound = folder.clone();
    unbound.receipt.proof.prove_s += 100.0;
    let (ok, stages) = run(&unbound, &mut keys);
    assert!(ok, "{stages:?}");
    assert!(!stages.iter().any(|s| s == "verify proof"), "{stages:?}");
    assert!(
        stages.iter().any(|s| s.contains("verdict stands")),
        "{stages:?}"
    );
    let mut bound = folder.clone();
    let last = bound.proof.len() - 1;
    bound.proof[last] ^= 1;
    // The receipt names the proof file by its hash: change it too, so halo2 itself decides.
    bound.receipt.proof.sha256 = zkreceipt::model::sha256_hex(&bound.proof);
    let (ok, stages) = run(&bound, &mut keys);
    assert!(
        !ok && stages.iter().any(|s| s == "verify proof"),
        "{stages:?}"
    );
}
