//! Shared test helpers: where the corpus and samples are, and running the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
