//! Element types of a graph's tensors, read statically from the protobuf: the types the file
//! declares (inputs, outputs, initializers, `value_info`), then each node's outputs from its op
//! and inputs. The chain computes in fixed point, so an op whose ONNX meaning depends on an
//! integer type (Div truncates) is found here before anything runs.

use std::collections::HashMap;

use tract_onnx::pb;

/// ONNX element type codes (`TensorProto.DataType`), named once for the whole crate.
pub mod code {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const COMPLEX64: i32 = 14;
    pub const COMPLEX128: i32 = 15;
    pub const BFLOAT16: i32 = 16;
}
use code::{BOOL, FLOAT, INT64};

/// Whether an ONNX element type code is an integer type (signed or unsigned, 8 to 64 bits).
pub fn is_integer(c: i32) -> bool {
    matches!(
        c,
        code::UINT8
            | code::INT8
            | code::UINT16
            | code::INT16
            | code::INT32
            | code::INT64
            | code::UINT32
            | code::UINT64
    )
}

fn declared(v: &pb::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) if t.elem_type != 0 => Some(t.elem_type),
        _ => None,
    }
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// The element type of each named tensor of `g`, where it can be told.
pub fn element_types(g: &pb::GraphProto) -> HashMap<String, i32> {
    let mut types: HashMap<String, i32> = HashMap::new();
    for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
        if let Some(t) = declared(v) {
            types.insert(v.name.clone(), t);
        }
    }
    for t in &g.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    for n in &g.node {
        let of = |i: usize| n.input.get(i).and_then(|x| types.get(x)).copied();
        let first_known = n.input.iter().find_map(|x| types.get(x)).copied();
        let out = match n.op_type.as_str() {
            "Cast" => attr(n, "to").map(|a| a.i as i32),
            "CastLike" => of(1),
            "Shape" | "Size" | "ArgMax" | "ArgMin" | "NonZero" => Some(INT64),
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And"
            | "Or" | "Xor" | "IsNaN" | "IsInf" => Some(BOOL),
            "Constant" => [
                "value",
                "value_float",
                "value_floats",
                "value_int",
                "value_ints",
            ]
            .iter()
            .find_map(|&k| attr(n, k).map(|a| (k, a)))
            .map(|(k, a)| match k {
                "value" => a.t.as_ref().map_or(FLOAT, |t| t.data_type),
                "value_int" | "value_ints" => INT64,
                _ => FLOAT,
            }),
            "ConstantOfShape" => Some(
                attr(n, "value")
                    .and_then(|a| a.t.as_ref())
                    .map_or(FLOAT, |t| t.data_type),
            ),
            "Where" => of(1),
            "OneHot" => of(2),
            // Most ops keep the type of their (first) data input.
            _ => first_known,
        };
        if let Some(t) = out {
            for (k, o) in n.output.iter().enumerate() {
                // TopK's and similar second outputs are indices.
                let t = if k > 0 && matches!(n.op_type.as_str(), "TopK" | "MaxPool") {
                    INT64
                } else {
                    t
                };
                if !o.is_empty() {
                    types.entry(o.clone()).or_insert(t);
                }
            }
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn integer_types_flow_through_shape_arithmetic_and_casts() {
        let g = pb::GraphProto {
            initializer: vec![pb::TensorProto {
                name: "two".into(),
                data_type: INT64,
                ..Default::default()
            }],
            node: vec![
                node("Shape", &["x"], &["s"]),
                node("Div", &["s", "two"], &["half"]),
                node("Cast", &["half"], &["f"]),
                node("Relu", &["x"], &["r"]),
            ],
            ..Default::default()
        };
        let mut g = g;
        g.node[2].attribute.push(pb::AttributeProto {
            name: "to".into(),
            i: FLOAT as i64,
            ..Default::default()
        });
        let t = element_types(&g);
        assert!(is_integer(t["s"]) && is_integer(t["half"]));
        assert_eq!(t["f"], FLOAT);
        assert_eq!(t.get("r"), None, "x has no declared type");
        assert!(!is_integer(BOOL) && !is_integer(FLOAT) && is_integer(2) && is_integer(13));
    }
}
