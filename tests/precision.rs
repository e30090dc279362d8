//! The precision choice (`--target`): every candidate scale and weight width is quantized,
//! compiled and measured, and the most accurate within the target's k budget is proved. Checked
//! on a written model (Gemm, Tanh, Gemm) against tract, with MockProver on what is chosen.

mod common;

use common::onnx::*;
use zkreceipt::quantize::{QuantConfig, Target};
use zkreceipt::receipt::build_chain;
use zkreceipt::receipt::precision::relative_error;

fn model() -> Vec<u8> {
    model_of(
        vec![
            node(
                "Gemm",
                &["X", "W1", "B1"],
                &["h"],
                vec![int_attr("transB", 1)],
            ),
            node("Tanh", &["h"], &["t"], vec![]),
            node("Gemm", &["t", "W2"], &["Y"], vec![int_attr("transB", 1)]),
        ],
        vec![
            init("W1", &[8, 6], 11),
            init("B1", &[8], 12),
            init("W2", &[3, 8], 13),
        ],
        vec![info("X", &[1, 6])],
        vec![info("Y", &[1, 3])],
        13,
    )
}

#[test]
fn each_target_keeps_the_most_accurate_candidate_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.onnx");
    std::fs::write(&m, model()).unwrap();
    let input = dir.path().join("input.json");
    let data = serde_json::json!({ "input_data": [values(6, 14)] });
    std::fs::write(&input, serde_json::to_vec(&data).unwrap()).unwrap();
    let chain = |target: Target, scale: Option<u32>| {
        let cfg = QuantConfig {
            target,
            scale,
            ..QuantConfig::default()
        };
        build_chain(&m, &input, &cfg).unwrap()
    };
    let resources = chain(Target::Resources, None);
    let r = resources.precision.clone().unwrap();
    // Resources keeps the default scale and 16-bit weights.
    assert_eq!(resources.qm.scale, 12);
    assert_eq!(r.chosen.param_bits, 16);
    assert!(
        r.candidates
            .iter()
            .all(|c| c.scale == 12 && c.param_bits == 16)
    );

    let balanced = chain(Target::Balanced, None);
    let b = balanced.precision.clone().unwrap();
    // k ≤ 10, or 11 where the default's own rows exceed 512.
    assert!((r.chosen.k.max(10)..=r.chosen.k.max(11)).contains(&b.k_budget));
    assert!(b.chosen.k <= b.k_budget);
    assert!(b.candidates.len() > r.candidates.len(), "{b:?}");
    // The chosen one is the most accurate within budget, and more accurate than resources'.
    let best = b
        .candidates
        .iter()
        .filter(|c| c.k <= b.k_budget)
        .map(|c| c.error)
        .fold(f64::INFINITY, f64::min);
    assert!(b.chosen.error <= best * 1.01, "{b:?}");
    assert!(b.chosen.error < r.chosen.error / 4.0, "{b:?}");
    // The chain proves what was chosen: the report is that quantization's, the circuit holds.
    assert_eq!(balanced.qm.scale, b.chosen.scale);
    assert!((relative_error(&balanced.report.outputs) - b.chosen.error).abs() < 1e-12);
    assert!(
        b.why.starts_with("balanced: the smallest error of"),
        "{}",
        b.why
    );
    let inst = balanced.compiled.circuit.instance().unwrap();
    let verdict = zkreceipt::circuit::with_layout(balanced.compiled.circuit.layout(), || {
        halo2_proofs::dev::MockProver::run(
            balanced.compiled.info.k,
            &balanced.compiled.circuit,
            vec![inst],
        )
        .unwrap()
        .verify()
    });
    assert_eq!(verdict, Ok(()));

    let accuracy = chain(Target::Accuracy, None);
    let a = accuracy.precision.clone().unwrap();
    assert!(a.k_budget >= b.k_budget);
    assert!(a.chosen.error <= b.chosen.error * 1.01);

    // An explicit scale stays; only the tables and the weights' width are chosen.
    let fixed = chain(Target::Balanced, Some(13));
    assert_eq!(fixed.qm.scale, 13);
    assert!(
        fixed
            .precision
            .unwrap()
            .candidates
            .iter()
            .all(|c| c.scale == 13)
    );
}
