//! A small transformer block written here (LayerNormalization, two-head self-attention with
//! runtime × runtime MatMuls and Softmax, a residual, a GELU feed-forward layer), checked
//! against tract, proved with the real prover, verified and broken.

mod common;

use common::onnx::*;
use common::*;

/// Tokens, model width, heads and feed-forward width of the block.
const T: i64 = 8;
const D: i64 = 16;
const H: i64 = 2;
const F: i64 = 32;

/// `[1, T, D]` → `[1, T, D]`: pre-norm attention and feed-forward, each with a residual.
fn transformer_block() -> Vec<u8> {
    let dh = D / H;
    let ones = |name: &str, seed| {
        let v = values(D as usize, seed).iter().map(|x| 1.0 + x).collect();
        tensor(name, &[D], v)
    };
    let inits = vec![
        ones("g1", 1),
        init("b1", &[D], 2),
        ones("g2", 3),
        init("b2", &[D], 4),
        init("Wq", &[D, D], 5),
        init("Wk", &[D, D], 6),
        init("Wv", &[D, D], 7),
        init("Wo", &[D, D], 8),
        init("bo", &[D], 9),
        init("W1", &[D, F], 10),
        init("f1", &[F], 11),
        init("W2", &[F, D], 12),
        init("f2", &[D], 13),
        int64_init("heads", &[4], &[1, T, H, dh]),
        int64_init("merged", &[3], &[1, T, D]),
        scalar("scale", 1.0 / (dh as f32).sqrt()),
    ];
    let ln = |x: &str, g: &str, b: &str, y: &str| {
        node(
            "LayerNormalization",
            &[x, g, b],
            &[y],
            vec![int_attr("axis", -1)],
        )
    };
    let perm = |p: &[i64]| ints_attr("perm", p);
    let nodes = vec![
        ln("X", "g1", "b1", "n1"),
        node("MatMul", &["n1", "Wq"], &["q"], vec![]),
        node("MatMul", &["n1", "Wk"], &["k"], vec![]),
        node("MatMul", &["n1", "Wv"], &["v"], vec![]),
        node("Reshape", &["q", "heads"], &["q4"], vec![]),
        node("Reshape", &["k", "heads"], &["k4"], vec![]),
        node("Reshape", &["v", "heads"], &["v4"], vec![]),
        node("Transpose", &["q4"], &["qh"], vec![perm(&[0, 2, 1, 3])]),
        node("Transpose", &["k4"], &["kt"], vec![perm(&[0, 2, 3, 1])]),
        node("Transpose", &["v4"], &["vh"], vec![perm(&[0, 2, 1, 3])]),
        node("MatMul", &["qh", "kt"], &["s"], vec![]),
        node("Mul", &["s", "scale"], &["ss"], vec![]),
        node("Softmax", &["ss"], &["a"], vec![int_attr("axis", -1)]),
        node("MatMul", &["a", "vh"], &["c"], vec![]),
        node("Transpose", &["c"], &["ct"], vec![perm(&[0, 2, 1, 3])]),
        node("Reshape", &["ct", "merged"], &["cm"], vec![]),
        node("MatMul", &["cm", "Wo"], &["o"], vec![]),
        node("Add", &["o", "bo"], &["ob"], vec![]),
        node("Add", &["X", "ob"], &["r1"], vec![]),
        ln("r1", "g2", "b2", "n2"),
        node("MatMul", &["n2", "W1"], &["h"], vec![]),
        node("Add", &["h", "f1"], &["hb"], vec![]),
        node("Gelu", &["hb"], &["hg"], vec![]),
        node("MatMul", &["hg", "W2"], &["m"], vec![]),
        node("Add", &["m", "f2"], &["mb"], vec![]),
        node("Add", &["r1", "mb"], &["Y"], vec![]),
    ];
    model_of(
        nodes,
        inits,
        vec![info("X", &[1, T, D])],
        vec![info("Y", &[1, T, D])],
        20,
    )
}

/// An input of T tokens with some spread (seeded).
fn tokens() -> Vec<f32> {
    values((T * D) as usize, 40)
        .iter()
        .map(|v| 2.0 * v)
        .collect()
}

#[test]
fn a_transformer_block_matches_tract_and_its_circuit_is_satisfied() {
    check("transformer block", transformer_block(), vec![tokens()], 1);
}

#[test]
fn a_transformer_block_proves_verifies_and_breaks() {
    prove_verify_and_break("transformer-block", transformer_block(), tokens(), "11");
}

/// tests/data/transformer_block holds this block and its input as files, for `zkreceipt bench`
/// and for trying it by hand; they must be what this code writes (`ZKRECEIPT_BLESS=1` rewrites
/// them).
#[test]
fn the_block_in_tests_data_is_this_one() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transformer_block");
    let files = [
        ("model.onnx", transformer_block()),
        (
            "input.json",
            serde_json::to_vec(&serde_json::json!({ "input_data": [tokens()] })).unwrap(),
        ),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        if std::env::var_os("ZKRECEIPT_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{} differs from the block this test writes (ZKRECEIPT_BLESS=1 rewrites it)",
            path.display()
        );
    }
}
