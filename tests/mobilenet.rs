//! MobileNet's ops on models written here: Clip in its attribute (opset < 11) and input forms,
//! ReLU6 among them; grouped and depthwise convolution; and a MobileNet-style block (Conv,
//! BatchNormalization, ReLU6, depthwise Conv, pointwise Conv, global pooling, Gemm) proved with
//! the real prover, verified and broken.

mod common;

use common::onnx::*;
use common::*;
use tract_onnx::pb;

/// What a Clip case is, the opset, the node's inputs, their initializers and its attributes.
type ClipCase = (
    &'static str,
    i64,
    Vec<&'static str>,
    Vec<pb::TensorProto>,
    Vec<pb::AttributeProto>,
);

/// Clip of X `[1, 12]` (values in [-3, 3)) in every form exporters write.
#[test]
fn clip_in_its_attribute_and_input_forms() {
    let data = || vec![values(12, 3).iter().map(|v| v * 5.0).collect::<Vec<f32>>()];
    let io = || (vec![info("X", &[1, 12])], vec![info("Y", &[1, 12])]);
    let cases: Vec<ClipCase> = vec![
        (
            "min and max inputs",
            13,
            vec!["X", "lo", "hi"],
            vec![scalar("lo", -1.25), scalar("hi", 0.75)],
            vec![],
        ),
        (
            "ReLU6 (min 0, max 6), as PyTorch exports it",
            13,
            vec!["X", "zero", "six"],
            vec![scalar("zero", 0.0), scalar("six", 2.0)],
            vec![],
        ),
        (
            "max only",
            13,
            vec!["X", "", "hi"],
            vec![scalar("hi", 0.5)],
            vec![],
        ),
        (
            "min only",
            11,
            vec!["X", "lo"],
            vec![scalar("lo", -0.5)],
            vec![],
        ),
        (
            "an unbounded max (the largest float)",
            13,
            vec!["X", "lo", "hi"],
            vec![scalar("lo", 0.25), scalar("hi", f32::MAX)],
            vec![],
        ),
        (
            "attributes (opset 6)",
            6,
            vec!["X"],
            vec![],
            vec![float_attr("min", -2.0), float_attr("max", 1.5)],
        ),
        ("no bounds", 13, vec!["X"], vec![], vec![]),
    ];
    for (what, opset, inputs, inits, attrs) in cases {
        let (i, o) = io();
        let m = model_of(
            vec![node("Clip", &inputs, &["Y"], attrs)],
            inits,
            i,
            o,
            opset,
        );
        check(&format!("Clip, {what}"), m, data(), 1);
    }
}

/// Conv of X `[1, 4, 6, 6]` with `group` groups (4: depthwise), stride 2, pads 1, bias.
fn grouped_conv(group: i64, filters: i64) {
    let per = 4 / group;
    let m = model_of(
        vec![node(
            "Conv",
            &["X", "W", "B"],
            &["Y"],
            vec![
                int_attr("group", group),
                ints_attr("pads", &[1, 1, 1, 1]),
                ints_attr("strides", &[2, 2]),
            ],
        )],
        vec![
            init("W", &[filters, per, 3, 3], 5),
            init("B", &[filters], 6),
        ],
        vec![info("X", &[1, 4, 6, 6])],
        vec![info("Y", &[1, filters, 3, 3])],
        13,
    );
    check(
        &format!("Conv group {group}"),
        m,
        vec![values(4 * 36, 7)],
        1,
    );
}

#[test]
fn grouped_and_depthwise_convolution() {
    grouped_conv(2, 6);
    grouped_conv(4, 4);
    grouped_conv(4, 8);
}

/// A MobileNet-style block: Conv 3→8 with BatchNormalization and ReLU6, a depthwise 3×3 Conv
/// (group 8) with BatchNormalization and ReLU6, a pointwise Conv 8→16, global average pooling
/// and a Gemm to 4 classes.
fn mobilenet_block() -> Vec<u8> {
    let bn = |p: &str, c: i64, seed: u64| -> Vec<pb::TensorProto> {
        let n = c as usize;
        vec![
            tensor(
                &format!("{p}_s"),
                &[c],
                values(n, seed).iter().map(|v| 1.0 + v).collect(),
            ),
            tensor(&format!("{p}_b"), &[c], values(n, seed + 1)),
            tensor(&format!("{p}_m"), &[c], values(n, seed + 2)),
            tensor(
                &format!("{p}_v"),
                &[c],
                values(n, seed + 3).iter().map(|v| 0.7 + v).collect(),
            ),
        ]
    };
    let bn_node = |p: &str, x: &str, y: &str| {
        let ins: Vec<String> = ["s", "b", "m", "v"]
            .iter()
            .map(|s| format!("{p}_{s}"))
            .collect();
        node(
            "BatchNormalization",
            &[x, &ins[0], &ins[1], &ins[2], &ins[3]],
            &[y],
            vec![],
        )
    };
    let pads = || ints_attr("pads", &[1, 1, 1, 1]);
    let mut inits = vec![
        init("W1", &[8, 3, 3, 3], 11),
        init("W2", &[8, 1, 3, 3], 12),
        init("W3", &[16, 8, 1, 1], 13),
        init("G", &[4, 16], 14),
        init("GB", &[4], 15),
        scalar("zero", 0.0),
        scalar("six", 6.0),
    ];
    inits.extend(bn("bn1", 8, 20));
    inits.extend(bn("bn2", 8, 30));
    let nodes = vec![
        node("Conv", &["X", "W1"], &["c1"], vec![pads()]),
        bn_node("bn1", "c1", "n1"),
        node("Clip", &["n1", "zero", "six"], &["r1"], vec![]),
        node(
            "Conv",
            &["r1", "W2"],
            &["c2"],
            vec![pads(), int_attr("group", 8)],
        ),
        bn_node("bn2", "c2", "n2"),
        node("Clip", &["n2", "zero", "six"], &["r2"], vec![]),
        node("Conv", &["r2", "W3"], &["c3"], vec![]),
        node("GlobalAveragePool", &["c3"], &["p"], vec![]),
        node("Flatten", &["p"], &["f"], vec![]),
        node(
            "Gemm",
            &["f", "G", "GB"],
            &["Y"],
            vec![int_attr("transB", 1)],
        ),
    ];
    model_of(
        nodes,
        inits,
        vec![info("X", &[1, 3, 8, 8])],
        vec![info("Y", &[1, 4])],
        13,
    )
}

#[test]
fn a_mobilenet_block_proves_verifies_and_breaks() {
    check(
        "MobileNet block",
        mobilenet_block(),
        vec![values(3 * 64, 40)],
        1,
    );
    prove_verify_and_break(
        "mobilenet-block",
        mobilenet_block(),
        values(3 * 64, 40),
        "9",
    );
}

/// A Clip whose bound the graph computes is refused by the preflight, naming the node.
#[test]
fn a_runtime_clip_bound_is_refused_up_front() {
    let m = model_of(
        vec![node("Clip", &["X", "lo"], &["Y"], vec![])],
        vec![],
        vec![info("X", &[1, 4]), info("lo", &[])],
        vec![info("Y", &[1, 4])],
        13,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("clip.onnx");
    std::fs::write(&p, m).unwrap();
    let o = zk(&["model", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Clip with a runtime min or max"), "{text}");
}

/// HardSwish (MobileNetV3), Mish and Gelu (opset 20, exact and tanh-approximated) of X `[1, 12]`
/// (values in [-3, 3)), each through a table sized by what the input reaches.
#[test]
fn hard_swish_mish_and_gelu() {
    let s = string_attr;
    let cases: Vec<(&str, i64, Vec<pb::AttributeProto>)> = vec![
        ("HardSwish", 14, vec![]),
        ("Mish", 18, vec![]),
        ("Gelu", 20, vec![]),
        ("Gelu", 20, vec![s("approximate", "tanh")]),
    ];
    for (op, opset, attrs) in cases {
        let m = model_of(
            vec![node(op, &["X"], &["Y"], attrs)],
            vec![],
            vec![info("X", &[1, 12])],
            vec![info("Y", &[1, 12])],
            opset,
        );
        let x: Vec<f32> = values(12, 21).iter().map(|v| v * 5.0).collect();
        check(op, m, vec![x], 1);
    }
}
