//! The preflight is the single judge: for attribute and input variants of the supported ops
//! (newer opsets' forms among them), a model the preflight passes goes through the chain
//! (quantize, compile with the witness, MockProver, error against tract), and one it refuses is
//! refused by the chain too, with the node named up front.

mod common;

use common::onnx::*;
use tract_onnx::pb;
use zkreceipt::model::Model;

fn floats_init(name: &str, data: &[f32]) -> pb::TensorProto {
    tensor(name, &[data.len() as i64], data.to_vec())
}

/// One variant: a model over X (one node, or a few ending in Y), its initializers, X's and Y's shapes, and the opset.
struct Variant {
    what: &'static str,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    x: Vec<i64>,
    y: Vec<i64>,
    opset: i64,
    supported: bool,
}

fn variant(
    what: &'static str,
    node: pb::NodeProto,
    inits: Vec<pb::TensorProto>,
    (x, y): (&[i64], &[i64]),
    opset: i64,
    supported: bool,
) -> Variant {
    Variant {
        what,
        nodes: vec![node],
        inits,
        x: x.to_vec(),
        y: y.to_vec(),
        opset,
        supported,
    }
}

fn variants() -> Vec<Variant> {
    let resize =
        |inputs: &[&str], attrs: Vec<pb::AttributeProto>| node("Resize", inputs, &["Y"], attrs);
    let x4: &[i64] = &[1, 2, 2, 4];
    let mut bool_max = variant(
        "ReduceMax of a bool tensor",
        node("Greater", &["X", "zero"], &["B"], vec![]),
        vec![scalar("zero", 0.0)],
        (x4, &[1, 2, 2]),
        13,
        false,
    );
    bool_max.nodes.extend([
        node(
            "ReduceMax",
            &["B"],
            &["R"],
            vec![ints_attr("axes", &[3]), int_attr("keepdims", 0)],
        ),
        node("Cast", &["R"], &["Y"], vec![int_attr("to", 1)]),
    ]);
    // Log of x² + 0.5 (positive where the seeded X is).
    let mut log = variant(
        "Log of a positive tensor",
        node("Mul", &["X", "X"], &["sq"], vec![]),
        vec![scalar("half", 0.5)],
        (x4, x4),
        13,
        true,
    );
    log.nodes.extend([
        node("Add", &["sq", "half"], &["p"], vec![]),
        node("Log", &["p"], &["Y"], vec![]),
    ]);
    vec![
        bool_max,
        log,
        variant(
            "LogSoftmax over the last axis",
            node("LogSoftmax", &["X"], &["Y"], vec![int_attr("axis", -1)]),
            vec![],
            (x4, x4),
            13,
            true,
        ),
        variant(
            "LogSoftmax over the axes from 1 (opset 11)",
            node("LogSoftmax", &["X"], &["Y"], vec![int_attr("axis", 1)]),
            vec![],
            (x4, x4),
            11,
            true,
        ),
        variant(
            "Upsample by a scales input (opset 9)",
            node("Upsample", &["X", "S"], &["Y"], vec![]),
            vec![floats_init("S", &[1.0, 1.0, 2.0, 2.0])],
            (x4, &[1, 2, 4, 8]),
            9,
            false,
        ),
        variant(
            "Resize by scales for the listed axes (opset 18)",
            resize(&["X", "", "S"], vec![ints_attr("axes", &[2, 3])]),
            vec![floats_init("S", &[2.0, 1.5])],
            (x4, &[1, 2, 4, 6]),
            18,
            true,
        ),
        variant(
            "Resize to sizes, keep_aspect_ratio_policy not_larger (opset 18)",
            resize(
                &["X", "", "", "Z"],
                vec![
                    ints_attr("axes", &[2, 3]),
                    string_attr("keep_aspect_ratio_policy", "not_larger"),
                ],
            ),
            vec![int64_init("Z", &[2], &[5, 6])],
            (x4, &[1, 2, 3, 6]),
            18,
            true,
        ),
        variant(
            "Resize to sizes, keep_aspect_ratio_policy not_smaller (opset 18)",
            resize(
                &["X", "", "", "Z"],
                vec![
                    ints_attr("axes", &[2, 3]),
                    string_attr("keep_aspect_ratio_policy", "not_smaller"),
                ],
            ),
            vec![int64_init("Z", &[2], &[5, 6])],
            (x4, &[1, 2, 5, 10]),
            18,
            true,
        ),
        variant(
            "Resize in linear mode",
            resize(&["X", "", "S"], vec![string_attr("mode", "linear")]),
            vec![floats_init("S", &[1.0, 1.0, 2.0, 2.0])],
            (x4, &[1, 2, 4, 8]),
            13,
            false,
        ),
        variant(
            "Resize with tf_crop_and_resize",
            resize(
                &["X", "", "S"],
                vec![string_attr(
                    "coordinate_transformation_mode",
                    "tf_crop_and_resize",
                )],
            ),
            vec![floats_init("S", &[1.0, 1.0, 2.0, 2.0])],
            (x4, &[1, 2, 4, 8]),
            13,
            false,
        ),
        variant(
            "Pad for the listed axes (opset 18)",
            node("Pad", &["X", "P", "", "A"], &["Y"], vec![]),
            vec![
                int64_init("P", &[4], &[1, 0, 2, 1]),
                int64_init("A", &[2], &[1, 3]),
            ],
            (x4, &[1, 5, 2, 5]),
            18,
            true,
        ),
        variant(
            "Pad in reflect mode",
            node(
                "Pad",
                &["X", "P"],
                &["Y"],
                vec![string_attr("mode", "reflect")],
            ),
            vec![int64_init("P", &[8], &[0, 0, 1, 1, 0, 0, 1, 1])],
            (x4, &[1, 2, 4, 6]),
            13,
            true,
        ),
        variant(
            "AveragePool with dilations",
            node(
                "AveragePool",
                &["X"],
                &["Y"],
                vec![
                    ints_attr("kernel_shape", &[2, 2]),
                    ints_attr("dilations", &[1, 2]),
                ],
            ),
            vec![],
            (x4, &[1, 2, 1, 2]),
            19,
            true,
        ),
        variant(
            "GroupNormalization, scale and bias per channel (opset 21)",
            node(
                "GroupNormalization",
                &["X", "gs", "gb"],
                &["Y"],
                vec![int_attr("num_groups", 2)],
            ),
            vec![init("gs", &[4], 5), init("gb", &[4], 6)],
            (&[1, 4, 3, 3], &[1, 4, 3, 3]),
            21,
            true,
        ),
        variant(
            "GroupNormalization, scale and bias per group (opset 18)",
            node(
                "GroupNormalization",
                &["X", "gs", "gb"],
                &["Y"],
                vec![int_attr("num_groups", 2)],
            ),
            vec![init("gs", &[2], 5), init("gb", &[2], 6)],
            (&[1, 4, 3, 3], &[1, 4, 3, 3]),
            18,
            true,
        ),
        variant(
            "Einsum with an ellipsis",
            node(
                "Einsum",
                &["X"],
                &["Y"],
                vec![string_attr("equation", "...ij->...ji")],
            ),
            vec![],
            (x4, &[1, 2, 4, 2]),
            13,
            true,
        ),
        variant(
            "Einsum of a diagonal",
            node(
                "Einsum",
                &["X"],
                &["Y"],
                vec![string_attr("equation", "abii->abi")],
            ),
            vec![],
            (&[1, 2, 3, 3], &[1, 2, 3]),
            13,
            true,
        ),
        variant(
            "Einsum over the last two axes",
            node(
                "Einsum",
                &["X", "W"],
                &["Y"],
                vec![string_attr("equation", "abij,jk->abik")],
            ),
            vec![init("W", &[4, 3], 7)],
            (x4, &[1, 2, 2, 3]),
            13,
            true,
        ),
        variant(
            "Scatter (opset 10)",
            node(
                "Scatter",
                &["X", "I", "U"],
                &["Y"],
                vec![int_attr("axis", 3)],
            ),
            vec![
                int64_init("I", &[1, 1, 1, 1], &[2]),
                tensor("U", &[1, 1, 1, 1], vec![1.0]),
            ],
            (x4, x4),
            10,
            true,
        ),
        variant(
            "Pad in edge mode (opset 18 axes)",
            node(
                "Pad",
                &["X", "P", "", "A"],
                &["Y"],
                vec![string_attr("mode", "edge")],
            ),
            vec![int64_init("P", &[2], &[2, 1]), int64_init("A", &[1], &[-1])],
            (x4, &[1, 2, 2, 7]),
            18,
            true,
        ),
        variant(
            "Pad in wrap mode (opset 19)",
            node(
                "Pad",
                &["X", "P"],
                &["Y"],
                vec![string_attr("mode", "wrap")],
            ),
            vec![int64_init("P", &[8], &[0, 0, 1, 1, 0, 0, 1, 1])],
            (x4, &[1, 2, 4, 6]),
            19,
            false,
        ),
        variant(
            "Split by num_outputs (opset 18), one piece unused",
            node(
                "Split",
                &["X"],
                &["Y", "Z"],
                vec![int_attr("axis", 1), int_attr("num_outputs", 2)],
            ),
            vec![],
            (x4, &[1, 1, 2, 4]),
            18,
            true,
        ),
        variant(
            "Einsum with an ellipsis and an implicit output",
            node(
                "Einsum",
                &["X", "W"],
                &["Y"],
                vec![string_attr("equation", "...ij,...jk")],
            ),
            vec![init("W", &[1, 2, 4, 3], 7)],
            (x4, &[1, 2, 2, 3]),
            13,
            false,
        ),
        variant(
            "Einsum with an ellipsis in one operand only",
            node(
                "Einsum",
                &["X", "W"],
                &["Y"],
                vec![string_attr("equation", "...ij,jk->...ik")],
            ),
            vec![init("W", &[4, 3], 7)],
            (x4, &[1, 2, 2, 3]),
            13,
            false,
        ),
        variant(
            "Einsum of a diagonal beside a second operand",
            node(
                "Einsum",
                &["X", "W"],
                &["Y"],
                vec![string_attr("equation", "abii,ij->abj")],
            ),
            vec![init("W", &[3, 2], 7)],
            (&[1, 2, 3, 3], &[1, 2, 2]),
            13,
            false,
        ),
        variant(
            "Celu with alpha 2 (tract leaves alpha out)",
            node("Celu", &["X"], &["Y"], vec![float_attr("alpha", 2.0)]),
            vec![],
            (x4, x4),
            13,
            false,
        ),
        variant(
            "ScatterElements with reduction add",
            node(
                "ScatterElements",
                &["X", "I", "U"],
                &["Y"],
                vec![string_attr("reduction", "add")],
            ),
            vec![
                int64_init("I", &[1, 1, 1, 1], &[0]),
                tensor("U", &[1, 1, 1, 1], vec![1.0]),
            ],
            (x4, x4),
            16,
            false,
        ),
    ]
}

/// Write the variant, ask the preflight, and run the chain: they must agree.
fn judge(v: &Variant) {
    let model = model_of(
        v.nodes.clone(),
        v.inits.clone(),
        vec![info("X", &v.x)],
        vec![info("Y", &v.y)],
        v.opset,
    );
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.onnx");
    std::fs::write(&m, &model).unwrap();
    let refused = Model::load(&m).map(|m| m.preflight()).unwrap_or_else(|e| {
        panic!("{}: the model does not load: {e}", v.what);
    });
    assert_eq!(
        refused.is_empty(),
        v.supported,
        "{}: the preflight says {refused:?}",
        v.what
    );
    let n = v.x.iter().product::<i64>() as usize;
    if v.supported {
        check(v.what, model, vec![values(n, 90)], 1);
    } else {
        let input = dir.path().join("input.json");
        let data = serde_json::json!({ "input_data": [values(n, 90)] });
        std::fs::write(&input, serde_json::to_vec(&data).unwrap()).unwrap();
        let chain = zkreceipt::receipt::build_chain(&m, &input, &Default::default());
        assert!(
            chain.is_err(),
            "{}: refused up front, yet the chain ran",
            v.what
        );
    }
}

#[test]
fn the_preflight_and_the_chain_agree_on_every_variant() {
    for v in variants() {
        judge(&v);
    }
}
