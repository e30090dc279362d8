//! MatMul in the forms numpy's semantics allow (1-D operands, broadcast leading axes, constants
//! with batch axes, on either side), written here and checked against tract and MockProver.

mod common;

use common::onnx::*;

/// One MatMul of `a` × `b`; a side named `W` is a constant (seeded), `A`/`B` a graph input.
fn matmul(a: (&str, &[i64]), b: (&str, &[i64]), out: &[i64]) {
    let mut inputs = vec![];
    let mut inits = vec![];
    let mut data = vec![];
    for (i, (name, shape)) in [a, b].into_iter().enumerate() {
        let n = shape.iter().product::<i64>() as usize;
        if name.starts_with('W') {
            inits.push(init(name, shape, 70 + i as u64));
        } else {
            inputs.push(info(name, shape));
            data.push(values(n, 60 + i as u64));
        }
    }
    let model = model_of(
        vec![node("MatMul", &[a.0, b.0], &["Y"], vec![])],
        inits,
        inputs,
        vec![info("Y", out)],
        13,
    );
    check(&format!("MatMul {a:?} × {b:?}"), model, data, 1);
}

#[test]
fn matmul_broadcasts_leading_axes() {
    matmul(("A", &[3, 1, 3, 4]), ("B", &[1, 2, 4, 2]), &[3, 2, 3, 2]);
    matmul(("A", &[2, 3, 4]), ("B", &[4, 2]), &[2, 3, 2]);
    matmul(("A", &[3, 4]), ("B", &[2, 4, 2]), &[2, 3, 2]);
}

#[test]
fn matmul_of_one_dimensional_operands() {
    matmul(("A", &[4]), ("B", &[4, 3]), &[3]);
    matmul(("A", &[2, 3, 4]), ("B", &[4]), &[2, 3]);
    matmul(("A", &[5]), ("W", &[5, 3]), &[3]);
    matmul(("A", &[2, 3, 4]), ("W", &[4]), &[2, 3]);
    matmul(("W", &[4]), ("B", &[2, 4, 3]), &[2, 3]);
}

#[test]
fn matmul_with_constants_of_rank_above_two() {
    matmul(("A", &[2, 3, 4]), ("W", &[2, 4, 5]), &[2, 3, 5]);
    matmul(("W", &[2, 3, 4]), ("B", &[2, 4, 2]), &[2, 3, 2]);
    matmul(("A", &[3, 4]), ("W", &[2, 4, 5]), &[2, 3, 5]);
    // A constant matrix with unit leading axes still folds into the gates.
    matmul(("A", &[2, 3, 4]), ("W", &[1, 4, 5]), &[2, 3, 5]);
    matmul(("W", &[1, 3, 4]), ("B", &[2, 4, 2]), &[2, 3, 2]);
}

/// Einsum of `eq` over operands of the given shapes (a name starting with W is a constant).
fn einsum(eq: &str, operands: &[(&str, &[i64])], out: &[i64]) {
    let mut inputs = vec![];
    let mut inits = vec![];
    let mut data = vec![];
    for (i, (name, shape)) in operands.iter().enumerate() {
        let n = shape.iter().product::<i64>() as usize;
        if name.starts_with('W') {
            inits.push(init(name, shape, 80 + i as u64));
        } else {
            inputs.push(info(name, shape));
            data.push(values(n, 90 + i as u64));
        }
    }
    let names: Vec<&str> = operands.iter().map(|o| o.0).collect();
    let attr = string_attr("equation", eq);
    let model = model_of(
        vec![node("Einsum", &names, &["Y"], vec![attr])],
        inits,
        inputs,
        vec![info("Y", out)],
        13,
    );
    check(&format!("Einsum {eq}"), model, data, 1);
}

#[test]
fn einsum_in_its_common_forms() {
    einsum("ij,jk->ik", &[("A", &[3, 4]), ("W", &[4, 5])], &[3, 5]);
    einsum(
        "bij,bjk->bik",
        &[("A", &[2, 3, 4]), ("B", &[2, 4, 5])],
        &[2, 3, 5],
    );
    einsum(
        "bhqd,bhkd->bhqk",
        &[("A", &[1, 2, 3, 4]), ("B", &[1, 2, 5, 4])],
        &[1, 2, 3, 5],
    );
    einsum("ij,kj", &[("A", &[3, 4]), ("B", &[5, 4])], &[3, 5]);
    einsum(
        "bid,de->bie",
        &[("A", &[2, 3, 4]), ("W", &[4, 2])],
        &[2, 3, 2],
    );
    einsum("ij,jk->i", &[("A", &[3, 4]), ("B", &[4, 5])], &[3]);
    einsum("ij->ji", &[("A", &[3, 4])], &[4, 3]);
    einsum("ij->i", &[("A", &[3, 4])], &[3]);
}

/// Einsum's ellipsis (aligned at the right across operands of different ranks) and diagonals (a letter twice in one operand). tract, which runs the float
/// model, gets an ellipsis in only some operands or with an implicit output, and a diagonal beside
/// a second operand, wrong: those are refused.
#[test]
fn einsum_with_ellipsis_and_diagonals() {
    einsum(
        "...ij,...jk->...ik",
        &[("A", &[2, 3, 4]), ("B", &[2, 4, 5])],
        &[2, 3, 5],
    );
    einsum(
        "...ij,...jk->...ik",
        &[("A", &[2, 2, 3, 4]), ("B", &[2, 2, 4, 3])],
        &[2, 2, 3, 3],
    );
    einsum(
        "...ij,...jk->...ik",
        &[("A", &[2, 2, 3, 4]), ("B", &[2, 4, 3])],
        &[2, 2, 3, 3],
    );
    einsum("...i->...", &[("A", &[2, 2, 3])], &[2, 2]);
    einsum(
        "...ij,...jk->...ik",
        &[("A", &[2, 3, 4]), ("W", &[2, 4, 3])],
        &[2, 3, 3],
    );
    einsum("...i->...", &[("A", &[2, 3, 4])], &[2, 3]);
    einsum("ii->i", &[("A", &[4, 4])], &[4]);
    einsum("ii", &[("A", &[3, 3])], &[]);
    einsum("abii->abi", &[("A", &[1, 2, 3, 3])], &[1, 2, 3]);
}

/// Gemm with a runtime B (transposed, scaled by alpha) and a runtime C (scaled by beta): a
/// product of runtime tensors, a scaling and a sum.
#[test]
fn gemm_of_runtime_operands() {
    let attrs = vec![
        int_attr("transB", 1),
        float_attr("alpha", 0.5),
        float_attr("beta", 2.0),
    ];
    let model = model_of(
        vec![node("Gemm", &["A", "B", "C"], &["Y"], attrs)],
        vec![],
        vec![info("A", &[3, 4]), info("B", &[5, 4]), info("C", &[1, 5])],
        vec![info("Y", &[3, 5])],
        13,
    );
    let data = vec![values(12, 61), values(20, 62), values(5, 63)];
    check("Gemm of runtime A, B and C", model, data, 1);
    let model = model_of(
        vec![node("Gemm", &["A", "W"], &["Y"], vec![])],
        vec![init("W", &[4, 5], 64)],
        vec![info("A", &[3, 4])],
        vec![info("Y", &[3, 5])],
        13,
    );
    check("Gemm of a constant B", model, vec![values(12, 61)], 1);
}
