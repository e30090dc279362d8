//! Split (sizes from the attribute, the input or equal pieces) and Pad's reflect and edge modes,
//! written here and checked against tract and MockProver.

mod common;

use common::onnx::*;

/// X `[2, 7]` split along axis 1 into pieces of `sizes`, each piece scaled by its own factor so
/// that a swapped piece would show.
fn split(opset: i64, sizes: &[i64], how: &str) {
    let names: Vec<String> = (0..sizes.len()).map(|i| format!("P{i}")).collect();
    let outs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (inputs, attrs, inits) = match how {
        "attribute" => (
            vec!["X"],
            vec![int_attr("axis", 1), ints_attr("split", sizes)],
            vec![],
        ),
        "input" => (
            vec!["X", "S"],
            vec![int_attr("axis", -1)],
            vec![int64_init("S", &[sizes.len() as i64], sizes)],
        ),
        _ => (
            vec!["X"],
            vec![
                int_attr("axis", 1),
                int_attr("num_outputs", sizes.len() as i64),
            ],
            vec![],
        ),
    };
    let mut nodes = vec![node("Split", &inputs, &outs, attrs)];
    let mut inits = inits;
    let mut outputs = vec![];
    for (i, (p, &n)) in outs.iter().zip(sizes).enumerate() {
        let y = format!("Y{i}");
        let f = format!("f{i}");
        inits.push(scalar(&f, 1.0 + i as f32));
        nodes.push(node("Mul", &[p, &f], &[&y], vec![]));
        outputs.push(info(&y, &[2, n]));
    }
    let model = model_of(nodes, inits, vec![info("X", &[2, 7])], outputs, opset);
    check(
        &format!("Split {sizes:?} by {how} (opset {opset})"),
        model,
        vec![values(14, 31)],
        sizes.len(),
    );
}

#[test]
fn split_by_attribute_input_and_count() {
    split(11, &[2, 5], "attribute");
    split(13, &[3, 1, 3], "input");
    // 7 in 3 equal pieces: 3, 3 and the rest.
    split(18, &[3, 3, 1], "count");
}

/// X `[1, 2, 3, 4]` padded by `pads` in `mode`.
fn pad(mode: &str, pads: &[i64]) {
    let out: Vec<i64> = [1i64, 2, 3, 4]
        .iter()
        .enumerate()
        .map(|(d, &n)| n + pads[d] + pads[4 + d])
        .collect();
    let model = model_of(
        vec![node(
            "Pad",
            &["X", "P"],
            &["Y"],
            vec![string_attr("mode", mode)],
        )],
        vec![int64_init("P", &[8], pads)],
        vec![info("X", &[1, 2, 3, 4])],
        vec![info("Y", &out)],
        13,
    );
    check(
        &format!("Pad {mode} {pads:?}"),
        model,
        vec![values(24, 41)],
        1,
    );
}

#[test]
fn pad_reflect_and_edge() {
    for mode in ["reflect", "edge"] {
        pad(mode, &[0, 0, 2, 1, 0, 0, 1, 3]);
        pad(mode, &[0, 1, 0, 2, 0, 0, 2, 0]);
    }
}
