//! One model, one key: the quantized model is the ONNX file's (verify re-derives it from
//! model.onnx and its recorded ranges, in every visibility mode), packages made by `setup`, and
//! proving many inputs against one package.

mod common;

use std::path::Path;

use common::*;
use prost::Message;
use serde_json::Value;
use tract_onnx::pb;
use zkreceipt::model::sha256_hex;
use zkreceipt::quantize::QuantizedModel;
use zkreceipt::receipt::canonical_sha256;

/// The sample model with its first float initializer's first element moved by `delta`.
fn changed_model(m: &Path, delta: f32) -> Vec<u8> {
    let mut p = pb::ModelProto::decode(std::fs::read(m).unwrap().as_slice()).unwrap();
    let g = p.graph.as_mut().unwrap();
    let t = g
        .initializer
        .iter_mut()
        .find(|t| t.data_type == 1 && t.dims.iter().product::<i64>() > 1)
        .unwrap();
    if t.float_data.is_empty() {
        let x = f32::from_le_bytes(t.raw_data[..4].try_into().unwrap()) + delta;
        t.raw_data[..4].copy_from_slice(&x.to_le_bytes());
    } else {
        t.float_data[0] += delta;
    }
    p.encode_to_vec()
}

/// Rewrite quantized.json with `f`, then every hash and word of the receipt that follows it
/// (what a forger who controls the folder would do).
fn forge_quantized(d: &Path, f: impl FnOnce(&mut QuantizedModel)) {
    let p = d.join("quantized.json");
    let mut q: QuantizedModel = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let old_onnx = q.source_sha256.clone();
    f(&mut q);
    std::fs::write(&p, serde_json::to_vec_pretty(&q).unwrap()).unwrap();
    let (sha, onnx) = (canonical_sha256(&q), q.source_sha256.clone());
    edit_receipt(d, |r| {
        r["model_commitment"]["quantized_sha256"] = sha.into();
        r["model_commitment"]["onnx_sha256"] = onnx.clone().into();
        let st = r["statement"]
            .as_str()
            .unwrap()
            .replace(&old_onnx[..12], &onnx[..12]);
        r["statement"] = st.into();
    });
}

/// The audit's ONNX → quantized link: (holds, skipped).
fn quantized_link(dir: &Path) -> (bool, bool) {
    let o = zk(&["audit", dir.to_str().unwrap(), "--json"]);
    let a = stdout_json(&o);
    let l = a["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == "model.onnx + recorded ranges → quantized.json")
        .unwrap_or_else(|| panic!("no quantized link in {a}"))
        .clone();
    (l["holds"] == true, l["skipped"] == true)
}

/// A model with one weight changed, proved with a hashed input and relabelled with the genuine
/// ONNX file and its hashes: its statement would be false, and verify rejects it.
#[test]
fn a_relabelled_model_is_rejected_with_a_hashed_input() {
    let w = work_dir("package-relabel");
    let (m, i, _) = sample("sigmoid");
    let changed = w.join("changed.onnx");
    std::fs::write(&changed, changed_model(&m, 0.5)).unwrap();
    let out = w.join("r");
    let o = prove_seeded(&changed, &i, &out, "7", &["--input-visibility", "hashed"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (code, v) = verify(&out);
    assert_eq!(code, 0, "{v}");
    // Audit re-derives ONNX → quantized without the input, too.
    assert_eq!(quantized_link(&out), (true, false));
    let genuine = std::fs::read(&m).unwrap();
    let why = expect_rejected(&out, "relabelled", |d| {
        std::fs::write(d.join("model.onnx"), &genuine).unwrap();
        forge_quantized(d, |q| q.source_sha256 = sha256_hex(&genuine));
    });
    assert!(why.contains("not what model.onnx gives"), "{why}");
    assert!(!quantized_link(&out.parent().unwrap().join("relabelled")).0);
    // Left unrelabelled, the changed file itself is what a verifier sees named.
    let why = expect_rejected(&out, "onnx-swapped", |d| {
        std::fs::write(d.join("model.onnx"), &genuine).unwrap();
    });
    assert!(why.contains("model.onnx has sha256"), "{why}");
}

/// Lowering the output's scale by one (hashes and shown floats following) would show every
/// output doubled: the re-derived model has the true scale.
#[test]
fn a_changed_scale_is_rejected_in_every_input_mode() {
    let w = work_dir("package-scale");
    let (m, i, _) = sample("sigmoid");
    for vis in ["public", "hashed", "private"] {
        let out = w.join(vis);
        let o = prove_seeded(&m, &i, &out, "7", &["--input-visibility", vis]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let why = expect_rejected(&out, &format!("{vis}-scale"), |d| {
            let mut scale = 0;
            forge_quantized(d, |q| {
                let o = q.outputs[0];
                q.values[o].scale -= 1;
                scale = q.values[o].scale;
            });
            edit_receipt(d, |r| {
                let claim = &mut r["output"][0];
                claim["scale"] = scale.into();
                let doubled: Vec<Value> = claim["floats"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| (x.as_f64().unwrap() * 2.0).into())
                    .collect();
                claim["floats"] = doubled.into();
            });
        });
        assert!(why.contains("not what model.onnx gives"), "{vis}: {why}");
    }
}

/// An input file holding `x` times the sample's input.
fn scaled_input(i: &Path, x: f64, to: &Path) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(i).unwrap()).unwrap();
    for arr in v["input_data"].as_array_mut().unwrap() {
        for e in arr.as_array_mut().unwrap() {
            *e = (e.as_f64().unwrap() * x).into();
        }
    }
    std::fs::write(to, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn setup(m: &Path, data: &[&Path], out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "setup",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.push("--calibration");
    args.extend(data.iter().map(|d| d.to_str().unwrap()));
    args.extend_from_slice(extra);
    let o = zk(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout_json(&o)
}

fn prove_in(pkg: &Path, inputs: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "prove",
        pkg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for i in inputs {
        args.extend(["--input", i.to_str().unwrap()]);
    }
    args.extend(["--seed", "5"]);
    args.extend_from_slice(extra);
    zk(&args)
}

fn export_commitment(dir: &Path) -> Value {
    let o = zk(&["export", "--erc7992", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut c = stdout_json(&o)["modelCommitment"].clone();
    // The folder's own address differs; the commitment is the rest.
    c.as_object_mut().unwrap().remove("uri");
    c
}

/// The sigmoid sample's input and the same ×1.5 gave two verifier keys when each was proved
/// alone; against one package they share one key and one model commitment, and both verify and
/// pass the break test.
#[test]
fn two_inputs_prove_against_one_package_with_one_key() {
    let w = work_dir("package-sigmoid");
    let (m, i, _) = sample("sigmoid");
    let big = w.join("big.json");
    scaled_input(&i, 1.5, &big);
    let pkg = w.join("pkg");
    let s = setup(&m, &[&i, &big], &pkg, &[]);
    assert_eq!(s["calibration"]["samples"], 2);
    let vk = s["package"]["vk_sha256"].as_str().unwrap().to_string();
    let mut commitments = vec![];
    for (name, input) in [("a", &i), ("b", &big)] {
        let out = w.join(name);
        let o = prove_in(&pkg, &[input], &out, &["--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r = stdout_json(&o);
        assert_eq!(r["receipt"]["verifier"]["vk_sha256"], vk.as_str());
        let (code, v) = verify(&out);
        assert_eq!(code, 0, "{v}");
        // The audit re-runs input.json through the package's model: every link holds.
        let o = zk(&["audit", out.to_str().unwrap(), "--json"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        commitments.push((
            r["receipt"]["model_commitment"].clone(),
            export_commitment(&out),
        ));
    }
    assert_eq!(commitments[0], commitments[1]);
    let o = zk(&["break-test", w.join("b").to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["passed"], true);
}

/// Ten digits test images in one batch: one key generation, ten receipts sharing the model
/// commitment, each predicting its label; the data-set gap is in calibration.json.
#[test]
fn a_batch_proves_ten_digits_against_one_key() {
    let w = work_dir("package-digits");
    let d = root().join("samples").join("digits");
    let pkg = w.join("pkg");
    let s = setup(
        &d.join("model.onnx"),
        &[&d.join("calibration.jsonl")],
        &pkg,
        &[],
    );
    let gap = &s["calibration"];
    assert_eq!(gap["samples"], 100);
    assert_eq!(gap["outputs"][0]["labelled"], 100);
    assert!(
        gap["outputs"][0]["argmax_agreement"].as_f64().unwrap() > 0.99,
        "{gap}"
    );
    assert!(pkg.join("calibration.json").is_file());
    let out = w.join("batch");
    let o = prove_in(&pkg, &[&d.join("test.jsonl")], &out, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = stdout_json(&o);
    let receipts = b["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 10);
    let mut first = None;
    for r in receipts {
        assert_eq!(r["argmax"], r["label"], "{r}");
        let dir = Path::new(r["out"].as_str().unwrap());
        let rc: Value =
            serde_json::from_slice(&std::fs::read(dir.join("receipt.json")).unwrap()).unwrap();
        let mc = rc["model_commitment"].clone();
        assert_eq!(*first.get_or_insert(mc.clone()), mc);
    }
    let (code, v) = verify(Path::new(receipts[9]["out"].as_str().unwrap()));
    assert_eq!(code, 0, "{v}");
    // The gap of the package's model over the test images, and of the model calibrated on them.
    let test = d.join("test.jsonl");
    for target in [pkg.clone(), d.join("model.onnx")] {
        let args = [
            "run",
            target.to_str().unwrap(),
            "--calibration",
            test.to_str().unwrap(),
            "--json",
        ];
        let o = zk(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let g = stdout_json(&o);
        assert_eq!(g["samples"], 10);
        assert_eq!(g["outputs"][0]["quantized_accuracy"], 1.0, "{g}");
        assert_eq!(g["layers"].as_array().unwrap().len(), 4, "{g}");
    }
}

/// An input beyond what the package was calibrated for is refused before proving, naming the
/// input and how to widen the package; a package whose files were changed is refused by name;
/// the package's settings cannot be overridden at prove time.
#[test]
fn a_package_refuses_what_it_cannot_prove() {
    let w = work_dir("package-refusals");
    let (m, i, _) = sample("sigmoid");
    let pkg = w.join("pkg");
    setup(&m, &[&i], &pkg, &[]);
    let huge = w.join("huge.json");
    scaled_input(&i, 5000.0, &huge);
    let out = w.join("r");
    let o = prove_in(&pkg, &[&huge], &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("huge.json") && e.contains("--margin"), "{e}");
    assert!(!out.exists());

    let o = prove_in(&pkg, &[&i], &out, &["--scale", "8"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = prove_in(&pkg, &[&i], &out, &["--input-visibility", "hashed"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = zk(&[
        "prove",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A changed scale in the package (its hash in package.json following).
    let bad = w.join("bad-pkg");
    copy_dir(&pkg, &bad);
    let q = bad.join("quantized.json");
    let mut qm: QuantizedModel = serde_json::from_slice(&std::fs::read(&q).unwrap()).unwrap();
    let o = qm.outputs[0];
    qm.values[o].scale -= 1;
    std::fs::write(&q, serde_json::to_vec_pretty(&qm).unwrap()).unwrap();
    edit_json(&bad.join("package.json"), |p| {
        p["quantized_sha256"] = canonical_sha256(&qm).into()
    });
    let o = prove_in(&bad, &[&i], &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("quantized.json"), "{}", stderr(&o));
    assert!(!out.exists());
}

/// Data sets in every form, and their mistakes named by file and line.
#[test]
fn data_sets_are_read_in_every_form_and_mistakes_are_named() {
    let w = work_dir("package-data");
    let (m, i, _) = sample("sigmoid");
    let text = std::fs::read_to_string(&i).unwrap();
    let one_line: Value = serde_json::from_str(&text).unwrap();
    let line = serde_json::to_string(&one_line).unwrap();
    // A folder of input files and a JSON Lines file with a blank line and labels.
    let folder = w.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.json"), &text).unwrap();
    scaled_input(&i, 0.5, &folder.join("b.json"));
    std::fs::write(folder.join("notes.txt"), "not an input").unwrap();
    let jsonl = w.join("set.jsonl");
    let labelled = line.replacen('{', "{\"label\": 1, ", 1);
    std::fs::write(&jsonl, format!("{line}\n\n{labelled}\n")).unwrap();
    let o = zk(&[
        "run",
        m.to_str().unwrap(),
        "--calibration",
        folder.to_str().unwrap(),
        jsonl.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let g = stdout_json(&o);
    assert_eq!(g["samples"], 4, "{g}");

    let cases: [(&str, String, &str); 4] = [
        (
            "bad.jsonl",
            format!("{line}\n{{\"input_data\": [[1, \n"),
            "bad.jsonl line 2",
        ),
        (
            "label.jsonl",
            line.replacen('{', "{\"label\": \"cat\", ", 1),
            "`label`",
        ),
        ("empty.jsonl", "\n\n".into(), "holds no samples"),
        (
            "nan.jsonl",
            line.replacen("[[", "[[NaN, ", 1),
            "nan.jsonl line 1",
        ),
    ];
    for (name, body, expect) in cases {
        let p = w.join(name);
        std::fs::write(&p, body).unwrap();
        let pkg = w.join(format!("pkg-{name}"));
        let o = zk(&[
            "setup",
            m.to_str().unwrap(),
            "--calibration",
            p.to_str().unwrap(),
            "--out",
            pkg.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{name}: {}", stderr(&o));
        assert!(!pkg.exists(), "{name}: a package was written");
    }
    let empty = w.join("empty-folder");
    std::fs::create_dir_all(&empty).unwrap();
    let o = zk(&[
        "run",
        m.to_str().unwrap(),
        "--calibration",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds no .json input files"),
        "{}",
        stderr(&o)
    );
    let o = zk(&[
        "setup",
        m.to_str().unwrap(),
        "--calibration",
        i.to_str().unwrap(),
        "--out",
        w.join("p").to_str().unwrap(),
        "--margin",
        "0.5",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
