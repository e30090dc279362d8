//! Softsign, ThresholdedRelu, Celu (alpha 1: tract leaves alpha out), Floor, Ceil and Round:
//! table functions, written here and checked against tract and MockProver.

mod common;

use common::onnx::*;

/// `op` of X `[1, 16]`.
fn unary(op: &str, attrs: Vec<tract_onnx::pb::AttributeProto>, x: Vec<f32>) {
    let model = model_of(
        vec![node(op, &["X"], &["Y"], attrs)],
        vec![],
        vec![info("X", &[1, 16])],
        vec![info("Y", &[1, 16])],
        13,
    );
    check(op, model, vec![x], 1);
}

#[test]
fn softsign_thresholded_relu_and_celu() {
    let x: Vec<f32> = values(16, 51).iter().map(|v| v * 6.0).collect();
    unary("Softsign", vec![], x.clone());
    unary("ThresholdedRelu", vec![float_attr("alpha", 0.5)], x.clone());
    unary("Celu", vec![], x);
}

/// Steps of 1: inputs a quarter of a unit away from every integer (and exact halves, where Round
/// goes to the even neighbour), so that the fixed point's rounding cannot cross a step.
#[test]
fn floor_ceil_and_round() {
    let x: Vec<f32> = (0..16).map(|i| -4.25 + 0.5 * i as f32).collect();
    unary("Floor", vec![], x.clone());
    unary("Ceil", vec![], x);
    let halves: Vec<f32> = (0..16).map(|i| -3.5 + 0.5 * i as f32).collect();
    unary("Round", vec![], halves);
}
