//! Writing small ONNX models in tests (the protobuf types tract-onnx uses).

use prost::Message;
use tract_onnx::pb;

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
