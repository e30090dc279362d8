//! RNN and LSTM, unrolled by the quantizer: models written here (several time steps, a batch of
//! two, runtime initial states), run by tract in floats and compiled to a circuit that must equal
//! the integer evaluator and satisfy MockProver. The corpus has one-step models only.

use halo2_proofs::dev::MockProver;
use prost::Message;
use tract_onnx::pb;
use zkreceipt::circuit::with_layout;
use zkreceipt::quantize::QuantConfig;
use zkreceipt::receipt::build_chain;

fn tensor_type(shape: &[i64]) -> Option<pb::TypeProto> {
    use pb::tensor_shape_proto::{Dimension, dimension};
    Some(pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: 1,
            shape: Some(pb::TensorShapeProto {
                dim: shape
                    .iter()
                    .map(|&d| Dimension {
                        value: Some(dimension::Value::DimValue(d)),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    })
}

fn info(name: &str, shape: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: tensor_type(shape),
        ..Default::default()
    }
}

/// Seeded values in [-0.6, 0.6).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as f32 / (1u64 << 31) as f32) * 1.2 - 0.6
        })
        .collect()
}

fn init(name: &str, dims: &[i64], seed: u64) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values(dims.iter().product::<i64>() as usize, seed),
        ..Default::default()
    }
}

/// A one-node model: `op` (RNN or LSTM) over X `[t, b, i]` with hidden size `h`; with
/// `states`, initial_h (and initial_c) are graph inputs.
fn model(op: &str, t: i64, b: i64, i: i64, h: i64, states: bool) -> Vec<u8> {
    let g = if op == "LSTM" { 4 } else { 1 };
    let mut inputs = vec!["X".to_string(), "W".into(), "R".into(), "B".into()];
    let mut graph_inputs = vec![info("X", &[t, b, i])];
    if states {
        inputs.extend(["".into(), "h0".into()]);
        graph_inputs.push(info("h0", &[1, b, h]));
        if g == 4 {
            inputs.push("c0".into());
            graph_inputs.push(info("c0", &[1, b, h]));
        }
    }
    let mut outputs = vec![info("Y", &[t, 1, b, h]), info("Y_h", &[1, b, h])];
    if g == 4 {
        outputs.push(info("Y_c", &[1, b, h]));
    }
    let node = pb::NodeProto {
        op_type: op.into(),
        name: op.to_lowercase(),
        input: inputs,
        output: outputs.iter().map(|o| o.name.clone()).collect(),
        attribute: vec![pb::AttributeProto {
            name: "hidden_size".into(),
            r#type: 2,
            i: h,
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 14,
        }],
        graph: Some(pb::GraphProto {
            name: "recurrent".into(),
            node: vec![node],
            initializer: vec![
                init("W", &[1, g * h, i], 1),
                init("R", &[1, g * h, h], 2),
                init("B", &[1, 2 * g * h], 3),
            ],
            input: graph_inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    };
    m.encode_to_vec()
}

/// Write the model and an input, build the chain (quantize, evaluate, compile with the witness:
/// the compiler checks every cell against the integer evaluator), check the error against tract
/// and run MockProver.
fn check(op: &str, t: i64, b: i64, i: i64, h: i64, states: bool) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.onnx");
    std::fs::write(&m, model(op, t, b, i, h, states)).unwrap();
    let mut data = vec![values((t * b * i) as usize, 7)];
    if states {
        data.push(values((b * h) as usize, 8));
        if op == "LSTM" {
            data.push(values((b * h) as usize, 9));
        }
    }
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&serde_json::json!({ "input_data": data })).unwrap(),
    )
    .unwrap();
    let chain =
        build_chain(&m, &input, &QuantConfig::default()).unwrap_or_else(|e| panic!("{op}: {e}"));
    let outs = if op == "LSTM" { 3 } else { 2 };
    assert_eq!(chain.report.outputs.len(), outs);
    for o in &chain.report.outputs {
        assert!(
            o.max_abs_error < 2e-3,
            "{op} output {}: error {} against tract",
            o.name,
            o.max_abs_error
        );
    }
    let c = &chain.compiled;
    let inst = c.circuit.instance().unwrap();
    let r = with_layout(c.circuit.layout(), || {
        MockProver::run(c.info.k, &c.circuit, vec![inst])
            .unwrap()
            .verify()
    });
    assert_eq!(r, Ok(()), "{op}: circuit not satisfied");
}

#[test]
fn lstm_over_three_steps_with_runtime_initial_states() {
    check("LSTM", 3, 2, 4, 3, true);
}

#[test]
fn lstm_from_zero_state() {
    check("LSTM", 2, 1, 3, 2, false);
}

#[test]
fn rnn_over_four_steps() {
    check("RNN", 4, 2, 3, 3, true);
}
