//! AveragePool and MaxPool with ceil_mode (the last window runs past the input), with and
//! without padding and count_include_pad, written here and checked against tract and MockProver.

mod common;

use common::onnx::*;

/// `op` over X `[1, 2, 5, 6]` with a 2×3 kernel, strides 2, ceil_mode, `pads` and
/// `count_include_pad`; `out` is the output's spatial shape.
fn pool(op: &str, pads: [i64; 4], count_include_pad: i64, out: [i64; 2]) {
    let mut attrs = vec![
        ints_attr("kernel_shape", &[2, 3]),
        ints_attr("strides", &[2, 2]),
        ints_attr("pads", &pads),
        int_attr("ceil_mode", 1),
    ];
    if op == "AveragePool" {
        attrs.push(int_attr("count_include_pad", count_include_pad));
    }
    let model = model_of(
        vec![node(op, &["X"], &["Y"], attrs)],
        vec![],
        vec![info("X", &[1, 2, 5, 6])],
        vec![info("Y", &[1, 2, out[0], out[1]])],
        13,
    );
    let what = format!("{op} pads {pads:?} count_include_pad {count_include_pad}");
    check(&what, model, vec![values(60, 81)], 1);
}

#[test]
fn pools_with_ceil_mode() {
    for op in ["AveragePool", "MaxPool"] {
        // 5 rows: windows at 0, 2, 4 (the last past the end); 6 columns: 0, 2, 4.
        pool(op, [0, 0, 0, 0], 0, [3, 3]);
        pool(op, [1, 1, 0, 1], 0, [3, 4]);
    }
    pool("AveragePool", [1, 1, 0, 1], 1, [3, 4]);
    pool("AveragePool", [0, 0, 1, 0], 1, [3, 3]);
}

/// AveragePool with dilations (opset 19), with and without padding counted.
#[test]
fn average_pool_with_dilations() {
    for (pads, count_include_pad, out) in [
        ([0, 0, 0, 0], 0, [2, 3]),
        ([1, 1, 1, 1], 1, [4, 5]),
        ([1, 1, 1, 1], 0, [4, 5]),
    ] {
        let attrs = vec![
            ints_attr("kernel_shape", &[2, 2]),
            ints_attr("dilations", &[2, 2]),
            ints_attr("pads", &pads),
            int_attr("count_include_pad", count_include_pad),
        ];
        let model = model_of(
            vec![node("AveragePool", &["X"], &["Y"], attrs)],
            vec![],
            vec![info("X", &[1, 2, 4, 5])],
            vec![info("Y", &[1, 2, out[0], out[1]])],
            19,
        );
        let what =
            format!("dilated AveragePool pads {pads:?} count_include_pad {count_include_pad}");
        check(&what, model, vec![values(40, 83)], 1);
    }
}
