//! Writing small ONNX models in tests (the protobuf types tract-onnx uses).

use halo2_proofs::dev::MockProver;
use prost::Message;
use tract_onnx::pb;
use zkreceipt::circuit::with_layout;
use zkreceipt::quantize::QuantConfig;
use zkreceipt::receipt::build_chain;

pub fn tensor_type(shape: &[i64]) -> Option<pb::TypeProto> {
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

pub fn info(name: &str, shape: &[i64]) -> pb::ValueInfoProto {
    typed_info(name, shape, 1)
}

/// A graph input or output of ONNX element type `elem` (1 float, 7 int64).
pub fn typed_info(name: &str, shape: &[i64], elem: i32) -> pb::ValueInfoProto {
    let mut t = tensor_type(shape);
    if let Some(pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(tt)),
        ..
    }) = t.as_mut()
    {
        tt.elem_type = elem;
    }
    pb::ValueInfoProto {
        name: name.into(),
        r#type: t,
        ..Default::default()
    }
}

pub fn model_of(
    node: Vec<pb::NodeProto>,
    initializer: Vec<pb::TensorProto>,
    input: Vec<pb::ValueInfoProto>,
    output: Vec<pb::ValueInfoProto>,
    opset: i64,
) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(pb::GraphProto {
            name: "written".into(),
            node,
            initializer,
            input,
            output,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

pub fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}

/// A node of `op` reading `inputs` and writing `outputs`.
pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!(
            "{}_{}",
            op.to_lowercase(),
            outputs.first().copied().unwrap_or("")
        ),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

pub fn ints_attr(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// An int64 initializer.
pub fn int64_init(name: &str, dims: &[i64], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// A string attribute.
pub fn string_attr(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 3,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A float attribute.
pub fn float_attr(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 1,
        f,
        ..Default::default()
    }
}

/// A float scalar initializer.
pub fn scalar(name: &str, v: f32) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![],
        data_type: 1,
        float_data: vec![v],
        ..Default::default()
    }
}

/// A float initializer of the given values.
pub fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    }
}

/// Seeded values in [-0.6, 0.6).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
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

pub fn init(name: &str, dims: &[i64], seed: u64) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values(dims.iter().product::<i64>() as usize, seed),
        ..Default::default()
    }
}

/// Write the model and an input, build the chain (quantize, evaluate, compile with the witness:
/// the compiler checks every cell against the integer evaluator), check the error against tract
/// (below 2e-3, relative where outputs exceed 1) and run MockProver.
pub fn check(what: &str, model: Vec<u8>, data: Vec<Vec<f32>>, outputs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.onnx");
    std::fs::write(&m, model).unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&serde_json::json!({ "input_data": data })).unwrap(),
    )
    .unwrap();
    let chain =
        build_chain(&m, &input, &QuantConfig::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(chain.report.outputs.len(), outputs);
    for o in &chain.report.outputs {
        // Relative above 1, as the corpus measures it.
        let size = o.float.iter().fold(1f64, |m, v| m.max(v.abs()));
        assert!(
            o.max_abs_error / size < 2e-3,
            "{what} output {}: error {} against tract (outputs up to {size})",
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
    assert_eq!(r, Ok(()), "{what}: circuit not satisfied");
}
