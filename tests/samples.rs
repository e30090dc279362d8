//! The bundled samples and test models: float parity with onnxruntime, quantization error, the
//! `run` command's JSON.

mod common;

use common::*;
use zkreceipt::model::{Model, input::load_input};
use zkreceipt::quantize::{
    Calibration, QuantConfig, quantize, quantize_calibrated, report::analyze,
};

/// The stated bound: quantized outputs within 1e-3 of onnxruntime's (×|value| above 1).
const QUANT_BOUND: f64 = 1e-3;

fn check(
    model: &std::path::Path,
    input: &std::path::Path,
    expected: &std::path::Path,
) -> zkreceipt::quantize::report::RunReport {
    let m = Model::load(model).unwrap();
    let inputs = load_input(input, &m).unwrap();
    let float = m.run_float(&inputs).unwrap();
    let qm = quantize(&m, &inputs, &float, &QuantConfig::default()).unwrap();
    let report = analyze(&m, &qm, &inputs, &float).unwrap();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();
    let refs = exp["outputs"].as_array().unwrap();
    assert_eq!(refs.len(), report.outputs.len());
    for (r, o) in refs.iter().zip(&report.outputs) {
        assert_eq!(r["name"].as_str().unwrap(), o.name);
        let reference = f64s(&r["values"]);
        let d = max_scaled_diff(&o.float, &reference);
        assert!(d <= 1e-4, "{}: float parity {d:e}", model.display());
        let q = max_scaled_diff(&o.quantized, &reference);
        assert!(
            q <= QUANT_BOUND,
            "{}: quantized error {q:e}",
            model.display()
        );
        // The dequantized floats are exactly the integers over 2^scale.
        for (i, f) in o.integers.iter().zip(&o.quantized) {
            assert_eq!(*i as f64 / 2f64.powi(o.scale), *f);
        }
    }
    report
}

#[test]
fn samples_match_onnxruntime_and_stay_within_the_quantization_bound() {
    for s in ["digits", "mlp", "cnn", "sigmoid"] {
        let (m, i, e) = sample(s);
        let r = check(&m, &i, &e);
        for o in &r.outputs {
            let a = o.argmax.as_ref().expect("samples output score vectors");
            assert!(
                a.agree,
                "{s}: argmax float {} vs quantized {}",
                a.float, a.quantized
            );
        }
    }
}

#[test]
fn digits_predicts_the_true_label() {
    let (m, i, e) = sample("digits");
    let r = check(&m, &i, &e);
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e).unwrap()).unwrap();
    let label = exp["true_label"].as_u64().unwrap() as usize;
    assert_eq!(r.outputs[0].argmax.as_ref().unwrap().quantized, label);
}

#[test]
fn every_supported_op_matches_onnxruntime() {
    // conv_bn_pools: Conv+BatchNorm folded, LeakyRelu, padded MaxPool and AveragePool (per-element
    // divisors), GlobalAveragePool, Flatten, MatMul, Tanh. multi_io: two inputs, two outputs,
    // broadcasting, runtime×runtime Mul, Transpose, Gemm(transA, alpha, beta, matrix C), Concat,
    // ReduceSum, ReduceMean, Reshape, Relu.
    for t in ["conv_bn_pools", "multi_io"] {
        let (m, i, e) = test_data(t);
        check(&m, &i, &e);
    }
}

#[test]
fn batchnorm_is_folded_into_the_preceding_conv() {
    let (m, i, _) = test_data("conv_bn_pools");
    let model = Model::load(&m).unwrap();
    let inputs = load_input(&i, &model).unwrap();
    let float = model.run_float(&inputs).unwrap();
    let qm = quantize(&model, &inputs, &float, &QuantConfig::default()).unwrap();
    assert!(
        qm.nodes
            .iter()
            .any(|n| n.origin == "conv+bn" && n.op.name() == "conv")
    );
    assert!(!qm.nodes.iter().any(|n| n.origin == "bn"));
}

#[test]
fn run_json_has_the_stable_keys() {
    let (m, i, _) = sample("digits");
    let out = zkreceipt(&[
        "run",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = stdout_json(&out);
    let o = &doc["outputs"][0];
    assert_eq!(o["name"], "output");
    assert_eq!(o["shape"], serde_json::json!([1, 10]));
    assert_eq!(o["float"].as_array().unwrap().len(), 10);
    assert_eq!(o["quantized"].as_array().unwrap().len(), 10);
    let layers = doc["layers"].as_array().unwrap();
    assert_eq!(
        layers
            .iter()
            .map(|l| l["node"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["input", "fc0", "act0", "fc1"]
    );
    for l in layers {
        for k in [
            "max_abs_error",
            "max_rel_error",
            "local_abs_error",
            "range",
            "scale",
            "headroom_bits",
        ] {
            assert!(!l[k].is_null(), "layer key {k}");
        }
    }
}

#[test]
fn run_report_shows_scores_argmax_and_layers() {
    let (m, i, _) = sample("digits");
    let out = zkreceipt(&["run", m.to_str().unwrap(), "--input", i.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("argmax    float 2 · quantized 2 · agree"),
        "{text}"
    );
    assert!(text.contains("per-node error"));
    assert!(text.contains("◀ enters"));
}

#[test]
fn quantization_is_deterministic() {
    let (m, i, _) = sample("cnn");
    let model = Model::load(&m).unwrap();
    let inputs = load_input(&i, &model).unwrap();
    let float = model.run_float(&inputs).unwrap();
    let a = quantize(&model, &inputs, &float, &QuantConfig::default()).unwrap();
    let b = quantize(&model, &inputs, &float, &QuantConfig::default()).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

/// Calibrating on several samples covers each: every value's range contains the range that
/// sample alone gives, and the scale is the smaller. The recorded ranges re-derive the model.
#[test]
fn calibration_on_samples_covers_each_and_is_re_derivable() {
    let (m, i, _) = sample("sigmoid");
    let model = Model::load(&m).unwrap();
    let small = load_input(&i, &model).unwrap();
    let large: Vec<_> = small
        .iter()
        .map(|t| {
            zkreceipt::tensor::Tensor::new(
                t.shape.clone(),
                t.data.iter().map(|x| x * 4000.0).collect(),
            )
        })
        .collect();
    let (fs, fl) = (
        model.run_float(&small).unwrap(),
        model.run_float(&large).unwrap(),
    );
    let cfg = QuantConfig::default();
    let both = Calibration::Samples(vec![(&small, &fs), (&large, &fl)]);
    let qm = quantize_calibrated(&model, &both, &cfg).unwrap();
    let one = quantize(&model, &small, &fs, &cfg).unwrap();
    assert!(qm.scale < one.scale, "{} vs {}", qm.scale, one.scale);
    // Every value's recorded range covers what each sample gives it, and both samples evaluate
    // against the one model.
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    for x in [&small, &large] {
        let values = qm
            .evaluate(&qm.quantize_inputs(x, &names).unwrap())
            .unwrap();
        for (v, t) in qm.values.iter().zip(&values) {
            let (lo, hi) = (
                t.data.iter().copied().min().unwrap_or(0),
                t.data.iter().copied().max().unwrap_or(0),
            );
            assert!(
                v.range.0 <= lo && hi <= v.range.1,
                "{}: [{lo}, {hi}] not in {:?}",
                v.name,
                v.range
            );
        }
    }
    let again = quantize_calibrated(&model, &Calibration::Recorded(&qm), &cfg).unwrap();
    assert!(again == qm);
}
