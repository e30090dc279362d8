//! Ops the quantizer unrolls into others, on models written here in shapes the corpus lacks: RNN
//! and LSTM over several time steps with a batch of two and runtime initial states; TopK along an
//! inner axis, largest and smallest; Gather and GatherElements by runtime indices, negative ones
//! included; Cast to an integer; ArgMax and ArgMin with ties; OneHot; Max, Min, Sum and Mean of
//! several tensors; Shape with start and end; Pow by an exponent tensor; DepthToSpace and
//! SpaceToDepth. Each is run by tract in floats and compiled to a circuit
//! that must equal the integer evaluator and satisfy MockProver.

mod common;

use common::onnx::*;
use tract_onnx::pb;

fn graph_model(
    node: pb::NodeProto,
    initializer: Vec<pb::TensorProto>,
    input: Vec<pb::ValueInfoProto>,
    output: Vec<pb::ValueInfoProto>,
) -> Vec<u8> {
    model_of(vec![node], initializer, input, output, 14)
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
        attribute: vec![int_attr("hidden_size", h)],
        ..Default::default()
    };
    graph_model(
        node,
        vec![
            init("W", &[1, g * h, i], 1),
            init("R", &[1, g * h, h], 2),
            init("B", &[1, 2 * g * h], 3),
        ],
        graph_inputs,
        outputs,
    )
}

fn recurrent(op: &str, t: i64, b: i64, i: i64, h: i64, states: bool) {
    let mut data = vec![values((t * b * i) as usize, 7)];
    if states {
        data.push(values((b * h) as usize, 8));
        if op == "LSTM" {
            data.push(values((b * h) as usize, 9));
        }
    }
    let outs = if op == "LSTM" { 3 } else { 2 };
    check(op, model(op, t, b, i, h, states), data, outs);
}

/// TopK of X `[2, 5, 3]` along axis 1, k = 3, with ties in the data.
fn top_k(largest: bool) {
    let node = pb::NodeProto {
        op_type: "TopK".into(),
        name: "topk".into(),
        input: vec!["X".into(), "K".into()],
        output: vec!["V".into(), "I".into()],
        attribute: vec![int_attr("axis", 1), int_attr("largest", i64::from(largest))],
        ..Default::default()
    };
    let k = pb::TensorProto {
        name: "K".into(),
        dims: vec![1],
        data_type: 7,
        int64_data: vec![3],
        ..Default::default()
    };
    let mut x = values(30, 11);
    x[4] = x[7]; // a tie within a column
    check(
        "TopK",
        graph_model(
            node,
            vec![k],
            vec![info("X", &[2, 5, 3])],
            vec![info("V", &[2, 3, 3])],
        ),
        vec![x],
        1,
    );
}

#[test]
fn top_k_largest_and_smallest_along_an_inner_axis() {
    top_k(true);
    top_k(false);
}

/// `op` (Gather or GatherElements) of X `[3, 4, 2]` along axis 1 by indices of `shape`: runtime
/// (a graph input) or constant (an initializer), negative ones included.
fn gather(op: &str, shape: &[i64], out: &[i64], runtime: bool) {
    let indices: Vec<i64> = [0, 3, -1, 2, -4, 1, 2, 2, -2, 0, 1, 3]
        .into_iter()
        .take(shape.iter().product::<i64>() as usize)
        .collect();
    let node = pb::NodeProto {
        op_type: op.into(),
        name: op.to_lowercase(),
        input: vec!["X".into(), "I".into()],
        output: vec!["Y".into()],
        attribute: vec![int_attr("axis", 1)],
        ..Default::default()
    };
    let mut inputs = vec![info("X", &[3, 4, 2])];
    let mut data = vec![values(24, 21)];
    let mut init = vec![];
    if runtime {
        inputs.push(typed_info("I", shape, 7));
        data.push(indices.iter().map(|&i| i as f32).collect());
    } else {
        init.push(pb::TensorProto {
            name: "I".into(),
            dims: shape.to_vec(),
            data_type: 7,
            int64_data: indices,
            ..Default::default()
        });
    }
    check(
        op,
        graph_model(node, init, inputs, vec![info("Y", out)]),
        data,
        1,
    );
}

#[test]
fn gather_elements_by_runtime_and_constant_indices() {
    gather("GatherElements", &[3, 2, 2], &[3, 2, 2], true);
    gather("GatherElements", &[3, 2, 2], &[3, 2, 2], false);
}

#[test]
fn gather_by_runtime_indices() {
    gather("Gather", &[2, 3], &[3, 2, 3, 2], true);
}

/// ScatterElements of X `[3, 4, 2]` along axis 1 with indices and updates `[3, 2, 2]` (no two
/// writes to one element; negative indices included): indices runtime or constant, updates
/// runtime or constant.
fn scatter(
    indices: &[i64],
    runtime_indices: bool,
    runtime_updates: bool,
) -> (Vec<u8>, Vec<Vec<f32>>) {
    let node = pb::NodeProto {
        op_type: "ScatterElements".into(),
        name: "scatter".into(),
        input: vec!["X".into(), "I".into(), "U".into()],
        output: vec!["Y".into()],
        attribute: vec![int_attr("axis", 1)],
        ..Default::default()
    };
    let mut inputs = vec![info("X", &[3, 4, 2])];
    let mut data = vec![values(24, 21)];
    let mut inits = vec![];
    if runtime_indices {
        inputs.push(typed_info("I", &[3, 2, 2], 7));
        data.push(indices.iter().map(|&i| i as f32).collect());
    } else {
        inits.push(int64_init("I", &[3, 2, 2], indices));
    }
    if runtime_updates {
        inputs.push(info("U", &[3, 2, 2]));
        data.push(values(12, 22));
    } else {
        inits.push(init("U", &[3, 2, 2], 22));
    }
    let model = graph_model(node, inits, inputs, vec![info("Y", &[3, 4, 2])]);
    (model, data)
}

const SCATTER_INDICES: [i64; 12] = [0, 3, -1, 2, -4, 1, 2, -2, 1, 0, -2, 3];

#[test]
fn scatter_elements_by_runtime_and_constant_indices() {
    for (ri, ru) in [(true, true), (true, false), (false, true), (false, false)] {
        let (model, data) = scatter(&SCATTER_INDICES, ri, ru);
        check(&format!("ScatterElements {ri} {ru}"), model, data, 1);
    }
}

/// Two indices that write one element are refused (ONNX leaves the result undefined), as is a
/// reduction other than none.
#[test]
fn scatter_elements_refuses_two_writes_and_reductions() {
    let mut twice = SCATTER_INDICES;
    twice[2] = 0; // (0, 1, 0) now writes where (0, 0, 0) does.
    for runtime in [true, false] {
        let (model, data) = scatter(&twice, runtime, true);
        let dir = tempfile::tempdir().unwrap();
        let (m, input) = (dir.path().join("m.onnx"), dir.path().join("i.json"));
        std::fs::write(&m, model).unwrap();
        std::fs::write(
            &input,
            serde_json::to_vec(&serde_json::json!({ "input_data": data })).unwrap(),
        )
        .unwrap();
        let e = zkreceipt::receipt::build_chain(&m, &input, &Default::default())
            .err()
            .expect("two writes to one element are refused")
            .to_string();
        assert!(e.contains("two indices write element"), "{e}");
    }
    let node = node("ScatterElements", &["X", "I", "U"], &["Y"], vec![]);
    let mut node = node;
    node.attribute.push(string_attr("reduction", "add"));
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.onnx");
    let inputs = vec![
        info("X", &[2, 2]),
        typed_info("I", &[2, 2], 7),
        info("U", &[2, 2]),
    ];
    std::fs::write(
        &m,
        model_of(vec![node], vec![], inputs, vec![info("Y", &[2, 2])], 16),
    )
    .unwrap();
    let model = zkreceipt::model::Model::load(&m).unwrap();
    let refused = model.preflight();
    assert!(
        format!("{refused:?}").contains("reduction `add` is not supported"),
        "{refused:?}"
    );
}

/// ReduceSumSquare, ReduceL1, ReduceL2 and ReduceLogSumExp of X `[2, 3, 4]`, with axes as the
/// attribute (opset 13) and as the input (opset 18), keepdims on and off.
#[test]
fn reduce_sum_square_l1_l2_and_log_sum_exp() {
    for op in ["ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp"] {
        for (opset, axes, keepdims) in [(13, vec![1], 1), (13, vec![-1, 0], 0), (18, vec![2], 0)] {
            let out: Vec<i64> = [2i64, 3, 4]
                .iter()
                .enumerate()
                .filter_map(|(d, &n)| {
                    let reduced = axes.iter().any(|&a| (a + 3) % 3 == d as i64);
                    match (reduced, keepdims) {
                        (false, _) => Some(n),
                        (true, 1) => Some(1),
                        (true, _) => None,
                    }
                })
                .collect();
            let mut attrs = vec![int_attr("keepdims", keepdims)];
            let mut inputs = vec!["X"];
            let mut inits = vec![];
            if opset < 18 {
                attrs.push(ints_attr("axes", &axes));
            } else {
                inputs.push("A");
                inits.push(int64_init("A", &[axes.len() as i64], &axes));
            }
            let model = model_of(
                vec![node(op, &inputs, &["Y"], attrs)],
                inits,
                vec![info("X", &[2, 3, 4])],
                vec![info("Y", &out)],
                opset,
            );
            let what = format!("{op} opset {opset} axes {axes:?} keepdims {keepdims}");
            check(&what, model, vec![values(24, 51)], 1);
        }
    }
}

#[test]
fn cast_to_an_integer_rounds_toward_zero() {
    let node = pb::NodeProto {
        op_type: "Cast".into(),
        name: "cast".into(),
        input: vec!["X".into()],
        output: vec!["Y".into()],
        attribute: vec![int_attr("to", 7)],
        ..Default::default()
    };
    let x = vec![
        -2.75, -2.0, -1.5, -0.999, -0.25, 0.0, 0.25, 0.5, 0.999, 1.0, 2.5, 3.75,
    ];
    check(
        "Cast",
        graph_model(
            node,
            vec![],
            vec![info("X", &[1, 12])],
            vec![typed_info("Y", &[1, 12], 7)],
        ),
        vec![x],
        1,
    );
}

/// ArgMax or ArgMin of X `[2, 5, 3]` along axis 1, with ties (first or last index).
fn arg_extreme(op: &str, last: bool, keepdims: bool) {
    let node = pb::NodeProto {
        op_type: op.into(),
        name: op.to_lowercase(),
        input: vec!["X".into()],
        output: vec!["Y".into()],
        attribute: vec![
            int_attr("axis", 1),
            int_attr("keepdims", i64::from(keepdims)),
            int_attr("select_last_index", i64::from(last)),
        ],
        ..Default::default()
    };
    let mut x = values(30, 31);
    // Ties at the extremes of two columns.
    let (hi, lo) = (0.9, -0.9);
    for (i, v) in [(0, hi), (9, hi), (4, lo), (13, lo), (16, hi), (28, hi)] {
        x[i] = v;
    }
    let out: &[i64] = if keepdims { &[2, 1, 3] } else { &[2, 3] };
    check(
        op,
        graph_model(
            node,
            vec![],
            vec![info("X", &[2, 5, 3])],
            vec![typed_info("Y", out, 7)],
        ),
        vec![x],
        1,
    );
}

#[test]
fn arg_max_and_min_first_and_last_with_ties() {
    arg_extreme("ArgMax", false, true);
    arg_extreme("ArgMax", true, false);
    arg_extreme("ArgMin", false, false);
    arg_extreme("ArgMin", true, true);
}

#[test]
fn one_hot_of_runtime_indices_along_a_middle_axis() {
    let node = pb::NodeProto {
        op_type: "OneHot".into(),
        name: "onehot".into(),
        input: vec!["I".into(), "D".into(), "V".into()],
        output: vec!["Y".into()],
        attribute: vec![int_attr("axis", 1)],
        ..Default::default()
    };
    let depth = pb::TensorProto {
        name: "D".into(),
        dims: vec![],
        data_type: 7,
        int64_data: vec![4],
        ..Default::default()
    };
    let vals = pb::TensorProto {
        name: "V".into(),
        dims: vec![2],
        data_type: 1,
        float_data: vec![-0.5, 2.25],
        ..Default::default()
    };
    check(
        "OneHot",
        graph_model(
            node,
            vec![depth, vals],
            vec![typed_info("I", &[2, 3], 7)],
            vec![info("Y", &[2, 4, 3])],
        ),
        vec![vec![0.0, 3.0, -1.0, 2.0, -4.0, 1.0]],
        1,
    );
}

#[test]
fn top_k_indices_are_refused_by_name() {
    let node = pb::NodeProto {
        op_type: "TopK".into(),
        name: "topk".into(),
        input: vec!["X".into(), "K".into()],
        output: vec!["V".into(), "I".into()],
        ..Default::default()
    };
    let k = pb::TensorProto {
        name: "K".into(),
        dims: vec![1],
        data_type: 7,
        int64_data: vec![2],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.onnx");
    let outputs = vec![info("V", &[1, 2]), info("I", &[1, 2])];
    std::fs::write(
        &m,
        graph_model(node, vec![k], vec![info("X", &[1, 4])], outputs),
    )
    .unwrap();
    let model = zkreceipt::model::Model::load(&m).unwrap();
    let refused = model.preflight();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].reason.contains("Indices"), "{refused:?}");
    assert_eq!(refused[0].node, "topk");
}

#[test]
fn lstm_over_three_steps_with_runtime_initial_states() {
    recurrent("LSTM", 3, 2, 4, 3, true);
}

#[test]
fn lstm_from_zero_state() {
    recurrent("LSTM", 2, 1, 3, 2, false);
}

#[test]
fn rnn_over_four_steps() {
    recurrent("RNN", 4, 2, 3, 3, true);
}

/// The preflight names each node whose operands the chain needs constant but the graph computes
/// at run time, and no other node (a Gemm of two runtime tensors is a product of them), and
/// says what to do instead.
#[test]
fn runtime_operands_are_refused_by_name_and_constant_ones_pass() {
    let nodes = vec![
        node("Gemm", &["X", "Y"], &["g"], vec![]),
        node("Pow", &["X", "Y"], &["p"], vec![]),
        node("PRelu", &["X", "Y"], &["r"], vec![]),
        node("Pow", &["X", "two"], &["q"], vec![]),
        node("Mul", &["X", "Y"], &["m"], vec![]),
        node("Tile", &["X", "Yi"], &["t"], vec![]),
    ];
    let two = pb::TensorProto {
        name: "two".into(),
        dims: vec![],
        data_type: 1,
        float_data: vec![2.0],
        ..Default::default()
    };
    let inputs = vec![
        info("X", &[2, 2]),
        info("Y", &[2, 2]),
        typed_info("Yi", &[2], 7),
    ];
    let outputs = ["g", "p", "r", "q", "m", "t"]
        .iter()
        .map(|o| info(o, &[2, 2]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.onnx");
    std::fs::write(&m, model_of(nodes, vec![two], inputs, outputs, 13)).unwrap();
    let model = zkreceipt::model::Model::load(&m).unwrap();
    let refused: Vec<(String, String)> = model
        .preflight()
        .into_iter()
        .map(|u| (u.node, u.reason))
        .collect();
    let names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["pow_p", "prelu_r", "tile_t"], "{refused:?}");
    assert!(refused[0].1.contains("runtime exponent"), "{refused:?}");
    assert!(refused[1].1.contains("runtime slope"), "{refused:?}");
    assert!(refused[2].1.contains("Tile with a runtime"), "{refused:?}");
    // Each says what to do instead.
    let hints: Vec<String> = model
        .preflight()
        .into_iter()
        .map(|u| u.hint.unwrap_or_default())
        .collect();
    assert!(hints[0].contains("Exp(y·Log(x))"), "{hints:?}");
    assert!(hints[1].contains("Relu(x) − a·Relu(−x)"), "{hints:?}");
    assert!(hints[2].contains("dynamic_axes"), "{hints:?}");
}

/// Max, Min, Sum and Mean of three tensors: two graph inputs `[2, 3]` and a constant `[3]`
/// broadcast against them; and of one tensor alone.
#[test]
fn max_min_sum_and_mean_of_several_tensors() {
    for op in ["Max", "Min", "Sum", "Mean"] {
        let m = model_of(
            vec![node(op, &["A", "B", "C"], &["Y"], vec![])],
            vec![init("B", &[3], 31)],
            vec![info("A", &[2, 3]), info("C", &[2, 3])],
            vec![info("Y", &[2, 3])],
            13,
        );
        check(op, m, vec![values(6, 32), values(6, 33)], 1);
        let one = model_of(
            vec![node(op, &["A"], &["Y"], vec![])],
            vec![],
            vec![info("A", &[2, 3])],
            vec![info("Y", &[2, 3])],
            13,
        );
        check(&format!("{op} of one"), one, vec![values(6, 34)], 1);
    }
}

/// Optional outputs a node declares but nothing reads (LayerNormalization's Mean and
/// InvStdDev, Dropout's mask, MaxPool's Indices) are ignored, not refused; read, they are
/// refused up front, naming the node.
#[test]
fn unused_optional_outputs_are_ignored() {
    let x = || vec![info("X", &[1, 2, 4, 4])];
    let cases: Vec<(&str, pb::NodeProto, Vec<pb::TensorProto>)> = vec![
        (
            "LayerNormalization",
            node(
                "LayerNormalization",
                &["X", "S", "B"],
                &["Y", "mean", "inv"],
                vec![],
            ),
            vec![init("S", &[4], 41), init("B", &[4], 42)],
        ),
        (
            "Dropout",
            node("Dropout", &["X"], &["Y", "mask"], vec![]),
            vec![],
        ),
        (
            "MaxPool",
            node(
                "MaxPool",
                &["X"],
                &["Y", "idx"],
                vec![ints_attr("kernel_shape", &[2, 2])],
            ),
            vec![],
        ),
    ];
    for (what, n, inits) in cases {
        let out = if what == "MaxPool" {
            vec![1, 2, 3, 3]
        } else {
            vec![1, 2, 4, 4]
        };
        let m = model_of(
            vec![n.clone()],
            inits.clone(),
            x(),
            vec![info("Y", &out)],
            17,
        );
        check(what, m, vec![values(32, 43)], 1);
        // The second output read as a graph output: refused, named.
        let second = n.output[1].clone();
        let m = model_of(
            vec![n],
            inits,
            x(),
            vec![
                info("Y", &out),
                pb::ValueInfoProto {
                    name: second,
                    ..Default::default()
                },
            ],
            17,
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        std::fs::write(&p, m).unwrap();
        let model = zkreceipt::model::Model::load(&p).unwrap();
        let refused = model.preflight();
        assert_eq!(refused.len(), 1, "{what}: {refused:?}");
    }
}

/// Shape with `start` and `end` (opset 15): X `[2, 3, 4]` reshaped to `[2, 4, 3]` through
/// Shape(end=1), Shape(start=-1) and a constant, concatenated.
#[test]
fn shape_with_start_and_end() {
    let m = model_of(
        vec![
            node("Shape", &["X"], &["first"], vec![int_attr("end", 1)]),
            node("Shape", &["X"], &["last"], vec![int_attr("start", -1)]),
            node(
                "Concat",
                &["first", "last", "three"],
                &["dims"],
                vec![int_attr("axis", 0)],
            ),
            node("Reshape", &["X", "dims"], &["Y"], vec![]),
        ],
        vec![int64_init("three", &[1], &[3])],
        vec![info("X", &[2, 3, 4])],
        vec![info("Y", &[2, 4, 3])],
        15,
    );
    check("Shape start/end", m, vec![values(24, 51)], 1);
}

/// Pow by a constant exponent tensor that repeats one value is that power; one that varies is
/// refused by the preflight, naming the node, before anything runs.
#[test]
fn pow_by_a_constant_exponent_tensor() {
    let pow = |p: Vec<f32>| {
        model_of(
            vec![node("Pow", &["X", "P"], &["Y"], vec![])],
            vec![pb::TensorProto {
                name: "P".into(),
                dims: vec![4],
                data_type: 1,
                float_data: p,
                ..Default::default()
            }],
            vec![info("X", &[2, 4])],
            vec![info("Y", &[2, 4])],
            13,
        )
    };
    let x: Vec<f32> = values(8, 61).iter().map(|v| v + 1.0).collect();
    check("Pow by [1.5; 4]", pow(vec![1.5; 4]), vec![x], 1);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pow.onnx");
    std::fs::write(&p, pow(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
    let refused = zkreceipt::model::Model::load(&p).unwrap().preflight();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].reason.contains("different exponents"),
        "{refused:?}"
    );
}

/// DepthToSpace (DCR and CRD) of X `[1, 8, 2, 3]` and SpaceToDepth of X `[1, 2, 4, 6]`, block 2:
/// pure rewiring, so any misplaced element shows as an error against tract.
#[test]
fn depth_to_space_and_space_to_depth() {
    let mode = |m: &str| string_attr("mode", m);
    for (op, attrs, x, y) in [
        ("DepthToSpace", vec![], [1, 8, 2, 3], [1, 2, 4, 6]),
        (
            "DepthToSpace",
            vec![mode("CRD")],
            [1, 8, 2, 3],
            [1, 2, 4, 6],
        ),
        ("SpaceToDepth", vec![], [1, 2, 4, 6], [1, 8, 2, 3]),
    ] {
        let mut attrs = attrs;
        attrs.push(int_attr("blocksize", 2));
        let m = model_of(
            vec![node(op, &["X"], &["Y"], attrs)],
            vec![],
            vec![info("X", &x)],
            vec![info("Y", &y)],
            13,
        );
        check(op, m, vec![values(48, 71)], 1);
    }
}
