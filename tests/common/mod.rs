//! Shared test helpers: where the corpus and samples are, and running the real binary.
#![allow(dead_code)]

pub mod onnx;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = root().join("samples").join(name);
    (
        d.join("model.onnx"),
        d.join("input.json"),
        d.join("expected.json"),
    )
}

pub fn test_data(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = root().join("tests").join("data").join(name);
    (
        d.join("model.onnx"),
        d.join("input.json"),
        d.join("expected.json"),
    )
}

/// The EZKL corpus: `$ZKRECEIPT_CORPUS`, else `../shared/corpus/ezkl`. Under CI (`CI=true`) a
/// missing corpus fails the test; elsewhere the test says it skipped and passes.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("ZKRECEIPT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("..").join("shared").join("corpus").join("ezkl"));
    if dir.join("census.json").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "corpus not found at {} (set ZKRECEIPT_CORPUS); required under CI",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: corpus not found at {} (set ZKRECEIPT_CORPUS to run this test)",
        dir.display()
    );
    None
}

pub fn census(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("census.json")).unwrap()).unwrap()
}

/// Run the real binary.
pub fn zkreceipt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zkreceipt"))
        .args(args)
        .output()
        .expect("run zkreceipt")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout_json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document: {e}\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// Largest |a-b| / max(1, |b|) (relative for large values).
pub fn max_scaled_diff(a: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(a.len(), reference.len(), "lengths differ");
    a.iter()
        .zip(reference)
        .map(|(x, r)| (x - r).abs() / r.abs().max(1.0))
        .fold(0.0, f64::max)
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Receipt folders: proving into the test's own folders, verifying and editing them.

pub fn work_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("prove-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params-cache")
}

pub fn zk(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_zkreceipt"))
        .args(args)
        .env("ZKRECEIPT_CACHE", cache())
        .output()
        .expect("run zkreceipt")
}

pub fn verify(dir: &Path) -> (i32, Value) {
    let o = zk(&["verify", dir.to_str().unwrap(), "--json"]);
    let code = o.status.code().unwrap();
    let v = if code == 3 {
        Value::Null
    } else {
        stdout_json(&o)
    };
    (code, v)
}

pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

pub fn edit_receipt(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("receipt.json");
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut r);
    std::fs::write(&p, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
}

/// A tampered copy of `honest`, verified: must exit 1 with a reason.
pub fn expect_rejected(honest: &Path, name: &str, tamper: impl FnOnce(&Path)) -> String {
    let d = honest.parent().unwrap().join(name);
    copy_dir(honest, &d);
    tamper(&d);
    let (code, v) = verify(&d);
    assert_eq!(code, 1, "{name}: tampered folder must be rejected, got {v}");
    assert_eq!(v["verified"], false);
    v["reason"].as_str().unwrap().to_string()
}

pub fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// `prove MODEL --input IN --out OUT --seed SEED` and `extra`, into the test's parameter cache.
pub fn prove_seeded(m: &Path, i: &Path, out: &Path, seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "prove",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    zk(&args)
}

/// Add `delta` to weight `i` of the first linear layer in the folder's quantized.json.
pub fn bump_linear_weight(dir: &Path, i: usize, delta: i64) {
    edit_json(&dir.join("quantized.json"), |q| {
        let n = q["nodes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["op"] == "linear")
            .unwrap();
        let w = n["weight"][i].as_i64().unwrap();
        n["weight"][i] = (w + delta).into();
    })
}

/// Write `model` and an input of `data` (one tensor) under the work folder `name`, check that
/// `model` calls it supported, prove it with the real prover (seed `seed`), verify the receipt
/// and pass the break test.
pub fn prove_verify_and_break(name: &str, model: Vec<u8>, data: Vec<f32>, seed: &str) {
    let w = work_dir(name);
    let (m, i) = (w.join("model.onnx"), w.join("input.json"));
    std::fs::write(&m, model).unwrap();
    let input = serde_json::json!({ "input_data": [data] });
    std::fs::write(&i, serde_json::to_vec(&input).unwrap()).unwrap();
    let o = zk(&["model", m.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let out = w.join("receipt");
    let o = prove_seeded(&m, &i, &out, seed, &[]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let (code, v) = verify(&out);
    assert_eq!(code, 0, "{name}: {v}");
    let o = zk(&["break-test", out.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    assert_eq!(stdout_json(&o)["passed"], true, "{name}");
}
