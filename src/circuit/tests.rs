//! MockProver tests of every chip, through small quantized graphs that exercise it: the honest
//! witness satisfies the circuit, and changing any value the prover chooses (every advice
//! assignment, one at a time) is caught with the failure that binds it: a gate for a fresh cell,
//! the permutation argument for a copy, the lookup argument for a looked-up output.

use halo2_proofs::dev::{MockProver, VerifyFailure};
use halo2_proofs::pasta::Fp;

use super::*;
use crate::quantize::{QNode, QOp, QValue, QuantConfig, QuantizedModel, TableFn};

mod indexing;

/// A quantized graph from `(op, input value ids, output shape)`; graph inputs are values
/// `0..inputs.len()`, each node's output is the next value id.
fn graph(
    inputs: &[Vec<usize>],
    nodes: Vec<(QOp, Vec<usize>, Vec<usize>)>,
    outputs: &[usize],
) -> QuantizedModel {
    let mut values = vec![];
    let mut qnodes = vec![];
    for (i, s) in inputs.iter().enumerate() {
        values.push(QValue {
            name: format!("in{i}"),
            shape: s.clone(),
            scale: 4,
            onnx: Some(format!("in{i}")),
            range: (0, 0),
        });
        qnodes.push(QNode {
            name: format!("in{i}/input"),
            origin: format!("in{i}"),
            op: QOp::Input { index: i },
            inputs: vec![],
            output: i,
        });
    }
    for (j, (op, ins, shape)) in nodes.into_iter().enumerate() {
        let id = values.len();
        values.push(QValue {
            name: format!("v{id}"),
            shape,
            scale: 4,
            onnx: Some(format!("v{id}")),
            range: (0, 0),
        });
        qnodes.push(QNode {
            name: format!("n{j}/{}", op.name()),
            origin: format!("n{j}"),
            op,
            inputs: ins,
            output: id,
        });
    }
    QuantizedModel {
        format: 1,
        source_sha256: String::new(),
        config: QuantConfig {
            activation_bits: 12,
            ..QuantConfig::default()
        },
        scale: 4,
        rounding: String::new(),
        inputs: (0..inputs.len()).collect(),
        outputs: outputs.to_vec(),
        values,
        nodes: qnodes,
        redacted: None,
    }
}

/// Inputs of visibility `vis` (with `salt`), weights fixed.
fn input(vis: Visibility, salt: Option<i128>) -> Disclosure {
    Disclosure {
        input: vis,
        salt,
        ..Disclosure::default()
    }
}

fn compiled(qm: &QuantizedModel, inputs: &[Vec<i64>], lanes: usize) -> Compiled {
    compiled_as(qm, inputs, lanes, Disclosure::default())
}

fn compiled_as(
    qm: &QuantizedModel,
    inputs: &[Vec<i64>],
    lanes: usize,
    dis: Disclosure,
) -> Compiled {
    compiled_shape(qm, inputs, lanes, 1, dis)
}

fn compiled_shape(
    qm: &QuantizedModel,
    inputs: &[Vec<i64>],
    lanes: usize,
    groups: usize,
    dis: Disclosure,
) -> Compiled {
    let vals = qm.evaluate(&tensors(qm, inputs)).expect("evaluates");
    compile_layout(qm, lanes, groups, dis, Some(&vals)).expect("compiles")
}

/// The graph inputs of `qm` with the given integers.
fn tensors(qm: &QuantizedModel, inputs: &[Vec<i64>]) -> Vec<Tensor<i64>> {
    qm.inputs
        .iter()
        .zip(inputs)
        .map(|(&v, d)| Tensor::new(qm.values[v].shape.clone(), d.clone()))
        .collect()
}

fn mock(c: &ModelCircuit, k: u32, instance: Vec<Fp>) -> Result<(), Vec<VerifyFailure>> {
    with_layout(c.layout(), || {
        MockProver::run(k, c, vec![instance])
            .expect("synthesizes")
            .verify()
    })
}

/// Honest witness passes; every advice assignment, changed, is rejected by what binds it; so is
/// every changed public value.
fn assert_sound(qm: &QuantizedModel, inputs: &[Vec<i64>], lanes: usize) -> Compiled {
    assert_sound_as(qm, inputs, lanes, Disclosure::default())
}

fn assert_sound_as(
    qm: &QuantizedModel,
    inputs: &[Vec<i64>],
    lanes: usize,
    dis: Disclosure,
) -> Compiled {
    check_sound(compiled_as(qm, inputs, lanes, dis))
}

/// [`assert_sound`] for a compiled circuit.
fn check_sound(c: Compiled) -> Compiled {
    let k = c.info.k;
    let inst = c.circuit.instance().unwrap();
    assert_eq!(
        mock(&c.circuit, k, inst.clone()),
        Ok(()),
        "honest witness must satisfy the circuit"
    );
    let occ = occurrences(&c.circuit.plan);
    assert!(!occ.is_empty());
    for (i, kind) in occ.iter().enumerate() {
        let mut t = c.circuit.clone();
        t.tamper = Some((i, 1));
        let failures = mock(&t, k, inst.clone()).expect_err(&format!(
            "tampering assignment {i} ({kind:?}) must be rejected"
        ));
        let caught = failures.iter().any(|f| match kind {
            Occurrence::Fresh => matches!(f, VerifyFailure::ConstraintNotSatisfied { .. }),
            Occurrence::Copy | Occurrence::Free => matches!(f, VerifyFailure::Permutation { .. }),
            Occurrence::FreshLookup => matches!(f, VerifyFailure::Lookup { .. }),
        });
        assert!(
            caught,
            "assignment {i} ({kind:?}) rejected, but not by what binds it: {failures:?}"
        );
    }
    for row in 0..inst.len() {
        let mut bad = inst.clone();
        bad[row] += Fp::one();
        let failures =
            mock(&c.circuit, k, bad).expect_err("a changed public value must be rejected");
        assert!(
            failures
                .iter()
                .any(|f| matches!(f, VerifyFailure::Permutation { .. })),
            "{failures:?}"
        );
    }
    c
}

#[test]
fn linear_rescale_relu() {
    // 3 inputs → 2 outputs (bias), rescale by 8 (power of two), ReLU: dot, bits and mul gates.
    let qm = small_mlp();
    // Lanes 2: the 3-term dot product needs a chained second row.
    let c = assert_sound(&qm, &[vec![20, -7, 13]], 2);
    assert!(c.info.rows > 0);
}

#[test]
fn sqrt_is_exact_and_every_cell_is_bound() {
    // Perfect squares, their neighbours, 0 and 1: X = x·2^6.
    let qm = graph(
        &[vec![8]],
        vec![(QOp::Sqrt { shift: 6 }, vec![0], vec![8])],
        &[1],
    );
    let c = assert_sound(&qm, &[vec![0, 1, 4, 16, 15, 17, 1000, 2047]], 4);
    let out: Vec<i64> = qm
        .evaluate(&[Tensor::new(vec![8], vec![0, 1, 4, 16, 15, 17, 1000, 2047])])
        .unwrap()[1]
        .data
        .clone();
    assert_eq!(out, vec![0, 8, 16, 32, 30, 32, 252, 361]);
    assert!(c.info.rows > 0);
    // A negative input has no root: both refuse it.
    assert!(qm.evaluate(&[Tensor::new(vec![8], vec![-1; 8])]).is_err());
    let raw = unchecked_values(&qm, &[vec![-1; 8]]);
    assert!(compile_layout(&qm, 4, 1, Disclosure::default(), Some(&raw)).is_err());
}

#[test]
fn reciprocal_is_exact_and_every_cell_is_bound() {
    // 1000 / x to nearest (ties up): odd and even divisors, 1, a tie (x = 16: 62.5 → 63), and
    // the largest divisor the 12-bit checks allow (2^12).
    let qm = graph(
        &[vec![7]],
        vec![(QOp::Recip { num: 1000 }, vec![0], vec![7])],
        &[1],
    );
    let xs = vec![1, 2, 3, 7, 16, 999, 4096];
    assert_sound(&qm, std::slice::from_ref(&xs), 4);
    let out = qm.evaluate(&[Tensor::new(vec![7], xs)]).unwrap()[1]
        .data
        .clone();
    assert_eq!(out, vec![1000, 500, 333, 143, 63, 1, 0]);
    // No reciprocal of 0 or below, and none past the range: both refuse.
    for bad in [0, -5, 4097] {
        let x = vec![bad; 7];
        assert!(
            qm.evaluate(&[Tensor::new(vec![7], x.clone())]).is_err(),
            "{bad}"
        );
        let raw = unchecked_values(&qm, &[x]);
        assert!(
            compile_layout(&qm, 4, 1, Disclosure::default(), Some(&raw)).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn rescale_by_non_power_of_two_and_negative_values() {
    // Division by 3 (an average over 3): the remainder gets the second range check r < d.
    let qm = graph(
        &[vec![4]],
        vec![(QOp::Rescale { divisor: vec![3] }, vec![0], vec![4])],
        &[1],
    );
    assert_sound(&qm, &[vec![-7, 8, 0, 1000]], 4);
}

#[test]
fn rescale_remainder_must_be_below_divisor() {
    // x = 8, d = 3: honest y = floor(9/3) = 3, r = 0. The cheat y = 2, r = 3 satisfies
    // y·d + r − 1 = x and fits r's 2 bits, but r ≥ d: only the second check (r + 1 < 4) stops it.
    let qm = graph(
        &[vec![1]],
        vec![(QOp::Rescale { divisor: vec![3] }, vec![0], vec![1])],
        &[1],
    );
    let c = compiled(&qm, &[vec![8]], 4);
    assert_eq!(
        mock(&c.circuit, c.info.k, c.circuit.instance().unwrap()),
        Ok(())
    );
    let mut plan = (*c.circuit.plan).clone();
    let bit_dots = digit_dots(&plan);
    assert_eq!(bit_dots.len(), 3, "r, r + 2^m − d, y + half");
    // Digits of `raw` in the dot's own shape: bits first, then base-4 digits.
    let set_bits = |plan: &mut plan::Plan, (terms, nb, out): &DigitDot, raw: i128, c: i128| {
        for (j, &(cell, w)) in terms.iter().enumerate() {
            let mask = if j < *nb as usize { 1 } else { 3 };
            plan.values[cell] = Some(fe((raw / w) & mask));
        }
        plan.values[*out] = Some(fe(raw + c));
    };
    let half = 1i128 << (qm.config.activation_bits - 1);
    set_bits(&mut plan, &bit_dots[0], 3, 0); // r = 3
    set_bits(&mut plan, &bit_dots[1], 3, -1); // best the prover can do: r + 1 = 4 needs 3 bits
    set_bits(&mut plan, &bit_dots[2], 2 + half, -half); // y = 2
    let cheat = ModelCircuit::new(plan);
    let mut inst = c.circuit.instance().unwrap();
    inst[1] = chips::fe(2);
    let failures = mock(&cheat, c.info.k, inst).expect_err("r ≥ d must be rejected");
    assert!(
        failures
            .iter()
            .all(|f| matches!(f, VerifyFailure::Permutation { .. })),
        "{failures:?}"
    );
}

/// A range check's digit dot: its (cell, weight) terms, its leading bit count and its output.
type DigitDot = (Vec<(usize, i128)>, u8, usize);

/// Every digit dot of a plan, in order.
fn digit_dots(plan: &plan::Plan) -> Vec<DigitDot> {
    plan.steps
        .iter()
        .filter_map(|(_, s)| match s {
            plan::Step::Dot {
                terms,
                digits: Some(nb),
                out,
                ..
            } => Some((terms.clone(), *nb, *out)),
            _ => None,
        })
        .collect()
}

fn inst_with_output(c: &Compiled, index: usize, value: i128) -> Vec<Fp> {
    let mut inst = c.circuit.instance().unwrap();
    let n_in = c.info.public_inputs;
    inst[n_in + index] = chips::fe(value);
    inst
}

#[test]
fn leaky_relu() {
    let qm = graph(
        &[vec![3]],
        vec![
            (QOp::LeakyRelu { alpha: 3, shift: 4 }, vec![0], vec![3]),
            (QOp::Rescale { divisor: vec![16] }, vec![1], vec![3]),
        ],
        &[2],
    );
    assert_sound(&qm, &[vec![-9, 0, 11]], 4);
}

#[test]
fn max_pool_proves_the_max() {
    let qm = graph(
        &[vec![1, 1, 2, 3]],
        vec![(
            QOp::MaxPool {
                kernel: vec![2, 2],
                strides: vec![1, 1],
                pads_begin: vec![0, 0],
                dilations: vec![1, 1],
            },
            vec![0],
            vec![1, 1, 1, 2],
        )],
        &[1],
    );
    let c = assert_sound(&qm, &[vec![3, -4, 9, 3, 2, -8]], 4);
    // Claiming a window element that is not the max (3 instead of 9) is rejected.
    let failures = mock(&c.circuit, c.info.k, inst_with_output(&c, 1, 3)).unwrap_err();
    assert!(!failures.is_empty());
}

#[test]
fn sigmoid_and_tanh_tables() {
    let qm = graph(
        &[vec![4]],
        vec![
            (
                QOp::Table {
                    func: TableFn::Sigmoid,
                    in_scale: 4,
                    out_scale: 4,
                    lo: -40,
                    hi: 40,
                },
                vec![0],
                vec![4],
            ),
            (
                QOp::Table {
                    func: TableFn::Tanh,
                    in_scale: 4,
                    out_scale: 4,
                    lo: -20,
                    hi: 20,
                },
                vec![1],
                vec![4],
            ),
        ],
        &[2],
    );
    let c = assert_sound(&qm, &[vec![-40, -3, 0, 40]], 4);
    assert_eq!(c.circuit.plan.tables.len(), 2);
    let failures = mock(&c.circuit, c.info.k, inst_with_output(&c, 0, 5)).unwrap_err();
    assert!(!failures.is_empty());
}

#[test]
fn table_input_outside_range_is_a_compile_error() {
    let qm = graph(
        &[vec![1]],
        vec![(
            QOp::Table {
                func: TableFn::Sigmoid,
                in_scale: 4,
                out_scale: 4,
                lo: -8,
                hi: 8,
            },
            vec![0],
            vec![1],
        )],
        &[1],
    );
    let ins = vec![Tensor::new(vec![1], vec![5])];
    let mut vals = qm.evaluate(&ins).unwrap();
    vals[0].data[0] = 9; // outside [lo, hi]
    vals[1].data[0] = 0;
    let e = compile_with_lanes(&qm, 4, Some(&vals))
        .err()
        .expect("refused");
    assert!(e.msg.contains("outside the table range"), "{e}");
}

#[test]
fn elementwise_add_sub_mul_with_constants_and_broadcasting() {
    let qm = graph(
        &[vec![2, 2], vec![2]],
        vec![
            (QOp::Add, vec![0, 1], vec![2, 2]),
            (QOp::Const { data: vec![3, -2] }, vec![], vec![2]),
            (QOp::Sub, vec![2, 3], vec![2, 2]),
            (QOp::Mul, vec![4, 0], vec![2, 2]),
            (QOp::Mul, vec![5, 3], vec![2, 2]),
            (QOp::ShiftLeft { bits: 2 }, vec![6], vec![2, 2]),
        ],
        &[7],
    );
    assert_sound(&qm, &[vec![1, -2, 3, 4], vec![5, -6]], 4);
}

#[test]
fn conv_sum_pool_reduce_sum() {
    let qm = graph(
        &[vec![1, 1, 3, 3]],
        vec![
            (
                QOp::Conv {
                    out_channels: 2,
                    kernel: vec![2, 2],
                    strides: vec![1, 1],
                    pads_begin: vec![1, 0],
                    dilations: vec![1, 1],
                    weight: vec![1, -2, 3, 1, 0, 2, -1, 1],
                    bias: Some(vec![4, -4]),
                },
                vec![0],
                vec![1, 2, 3, 2],
            ),
            (
                QOp::SumPool {
                    kernel: vec![2, 2],
                    strides: vec![1, 1],
                    pads_begin: vec![0, 0],
                    dilations: vec![],
                },
                vec![1],
                vec![1, 2, 2, 1],
            ),
            (
                QOp::ReduceSum {
                    axes: vec![2, 3],
                    keepdims: true,
                },
                vec![2],
                vec![1, 2, 1, 1],
            ),
        ],
        &[3],
    );
    assert_sound(&qm, &[vec![1, 2, -3, 4, 0, 5, -1, 2, 3]], 4);
}

#[test]
fn rewiring_takes_no_rows_and_keeps_values() {
    let qm = graph(
        &[vec![2, 3], vec![2, 1]],
        vec![
            (QOp::Transpose { perm: vec![1, 0] }, vec![0], vec![3, 2]),
            (QOp::Reshape, vec![2], vec![2, 3]),
            (QOp::Concat { axis: 1 }, vec![3, 1], vec![2, 4]),
        ],
        &[4],
    );
    let c = assert_sound(&qm, &[vec![1, 2, 3, 4, 5, 6], vec![7, 8]], 4);
    let (per, _) = c.circuit.plan.rows_per_node(qm.nodes.len());
    assert_eq!(&per[2..], &[0, 0, 0], "rewiring must not cost rows");
    // The public output is the evaluator's: transpose, reshape and concat of the inputs.
    let out: Vec<Fp> = c.circuit.instance().unwrap()[8..].to_vec();
    let want: Vec<Fp> = [1, 4, 2, 7, 5, 3, 6, 8]
        .iter()
        .map(|&x| chips::fe(x))
        .collect();
    assert_eq!(out, want);
}

#[test]
fn out_of_range_witness_is_refused_at_compile_time() {
    // 12 activation bits: 5000 does not fit, so the range check cannot be built.
    let qm = graph(&[vec![1]], vec![(QOp::Relu, vec![0], vec![1])], &[1]);
    let ins = vec![Tensor::new(vec![1], vec![5000])];
    let vals = qm.evaluate(&ins);
    if let Ok(vals) = vals {
        let e = compile_with_lanes(&qm, 4, Some(&vals))
            .err()
            .expect("refused");
        assert!(e.msg.contains("range"), "{e}");
    }
}

#[test]
fn lane_choice_is_deterministic_and_structure_matches_without_witness() {
    let qm = graph(
        &[vec![1, 40]],
        vec![
            (
                QOp::Linear {
                    k: 40,
                    n: 3,
                    weight: (0..120).map(|i| (i % 7) - 3).collect(),
                    bias: None,
                },
                vec![0],
                vec![1, 3],
            ),
            (QOp::Rescale { divisor: vec![4] }, vec![1], vec![1, 3]),
        ],
        &[2],
    );
    let ins = vec![Tensor::new(vec![1, 40], (0..40).map(|i| i - 20).collect())];
    let vals = qm.evaluate(&ins).unwrap();
    let a = compile(&qm, Some(&vals)).unwrap();
    let b = compile(&qm, None).unwrap();
    assert_eq!(
        a.info, b.info,
        "the description must not depend on the witness"
    );
    let inst = a.circuit.instance().unwrap();
    assert_eq!(mock(&a.circuit, a.info.k, inst), Ok(()));
}

fn small_mlp() -> QuantizedModel {
    graph(
        &[vec![1, 3]],
        vec![
            (
                QOp::Linear {
                    k: 3,
                    n: 2,
                    weight: vec![3, -5, 7, 2, -1, 4],
                    bias: Some(vec![5, -9]),
                },
                vec![0],
                vec![1, 2],
            ),
            (QOp::Rescale { divisor: vec![8] }, vec![1], vec![1, 2]),
            (QOp::Relu, vec![2], vec![1, 2]),
        ],
        &[3],
    )
}

#[test]
fn hashed_input_digest_matches_the_native_poseidon_hash() {
    let qm = small_mlp();
    let x = vec![20, -7, 13];
    let salt = 0xabcdef_i128;
    let c = assert_sound_as(
        &qm,
        std::slice::from_ref(&x),
        4,
        input(Visibility::Hashed, Some(salt)),
    );
    let inst = c.circuit.instance().unwrap();
    assert_eq!(c.info.public_inputs, 1);
    assert_eq!(
        inst[0],
        commit::input_digest(&x, qm.config.activation_bits, salt),
        "digest is the native Poseidon chain"
    );
    // The digest of another input, or of the same input with another salt, is rejected.
    for other in [
        commit::input_digest(&[20, -7, 14], 12, salt),
        commit::input_digest(&x, 12, salt + 1),
    ] {
        let mut bad = inst.clone();
        bad[0] = other;
        assert!(mock(&c.circuit, c.info.k, bad).is_err());
    }
    // The inputs are not public: the instance is the digest, then the outputs.
    assert_eq!(inst.len(), 1 + 2);
    // Unsalted, the circuit fixes the salt to 0: the digest of a salted input has no witness,
    // so a receipt cannot claim `salted: false` for a salted digest.
    let plain = assert_sound_as(
        &qm,
        std::slice::from_ref(&x),
        4,
        input(Visibility::Hashed, None),
    );
    assert!(!plain.info.layout.salted && c.info.layout.salted);
    let mut inst = plain.circuit.instance().unwrap();
    assert_eq!(inst[0], commit::input_digest(&x, 12, 0));
    inst[0] = commit::input_digest(&x, 12, salt);
    assert!(mock(&plain.circuit, plain.info.k, inst).is_err());
}

#[test]
fn private_inputs_are_range_checked_and_bound_to_nothing_public() {
    let qm = small_mlp();
    let c = assert_sound_as(
        &qm,
        &[vec![20, -7, 13]],
        4,
        input(Visibility::Private, None),
    );
    let inst = c.circuit.instance().unwrap();
    assert_eq!(c.info.public_inputs, 0);
    assert_eq!(inst.len(), 2, "only the outputs are public");
    // A private input outside the activation range cannot be proved.
    let ins = vec![Tensor::new(vec![1, 3], vec![5000, 0, 0])];
    if let Ok(vals) = qm.evaluate(&ins) {
        assert!(compile_layout(&qm, 4, 1, input(Visibility::Private, None), Some(&vals)).is_err());
    }
}

#[test]
fn hashed_and_public_layouts_give_different_verifier_structures() {
    let qm = small_mlp();
    let a = compile_layout(&qm, 4, 1, Disclosure::default(), None).unwrap();
    let b = compile_layout(&qm, 4, 1, input(Visibility::Hashed, None), None).unwrap();
    assert_ne!(a.info, b.info);
    assert!(b.info.gates.iter().any(|g| g.starts_with("poseidon")));
}

fn hashed_weights() -> Disclosure {
    Disclosure {
        params: ParamVisibility::Hashed,
        ..Disclosure::default()
    }
}

#[test]
fn hashed_weights_are_private_cells_bound_by_their_digest() {
    // Every weight and bias is a range-checked private cell (tampering any of them, or any
    // product, packed word or digest input, is caught), and the weights digest is the native
    // Poseidon chain over quantized.json's integers.
    let qm = small_mlp();
    let c = assert_sound_as(&qm, &[vec![20, -7, 13]], 4, hashed_weights());
    let inst = c.circuit.instance().unwrap();
    assert_eq!(inst.len(), 3 + 1 + 2, "inputs, weights digest, outputs");
    assert_eq!(inst[3], commit::params_digest(&qm));
    assert_eq!(c.info.public_inputs, 3);
    assert_eq!(c.info.public_outputs, 2);
    let kinds: Vec<(&str, usize, u32)> = c
        .info
        .param_tensors
        .iter()
        .map(|t| (t.kind.as_str(), t.len, t.bits))
        .collect();
    assert_eq!(kinds, vec![("weight", 6, 16), ("bias", 2, 16)]);
    // The digest of other weights is rejected.
    let mut other = qm.clone();
    if let QOp::Linear { weight, .. } = &mut other.nodes[1].op {
        weight[0] += 1;
    }
    let mut bad = inst.clone();
    bad[3] = commit::params_digest(&other);
    assert_ne!(bad[3], inst[3]);
    assert!(mock(&c.circuit, c.info.k, bad).is_err());
    // No weight is a gate constant: the fixed-weight circuit has the weights 3, −5 and 7 as dot
    // coefficients; the hashed one only ±powers of two (digits, packing, the rescale by 8, ±1).
    let coefficients = |c: &Compiled| -> Vec<i128> {
        c.circuit
            .plan
            .steps
            .iter()
            .flat_map(|(_, s)| match s {
                Step::Dot { terms, .. } => terms.iter().map(|t| t.1).collect(),
                _ => vec![],
            })
            .collect()
    };
    let power_of_two = |w: &i128| w.unsigned_abs().is_power_of_two();
    let fixed = compiled(&qm, &[vec![20, -7, 13]], 4);
    assert!(!coefficients(&fixed).iter().all(power_of_two));
    assert!(coefficients(&c).iter().all(power_of_two));
}

#[test]
fn hashed_weights_leave_the_verifier_key_independent_of_their_values() {
    // The point of hashing the weights: one verifier key for the architecture, whatever the
    // weights (of the same widths). With fixed weights, the keys differ.
    let qm = small_mlp();
    let mut other = qm.clone();
    if let QOp::Linear { weight, bias, .. } = &mut other.nodes[1].op {
        weight.iter_mut().for_each(|w| *w = -*w + 1);
        bias.as_mut().unwrap()[1] = 99;
    }
    let key = |qm: &QuantizedModel, dis: Disclosure| {
        let c = compile_layout(qm, 4, 1, dis, None).unwrap();
        let params = halo2_proofs::poly::commitment::Params::new(c.info.k);
        crate::proof::keygen_vk_only(&params, &c.circuit)
            .unwrap()
            .pinned
    };
    assert_eq!(key(&qm, hashed_weights()), key(&other, hashed_weights()));
    assert_ne!(
        key(&qm, Disclosure::default()),
        key(&other, Disclosure::default())
    );
}

#[test]
fn a_redacted_model_compiles_to_the_same_circuit_and_nothing_else() {
    // Zeroed weights with their widths kept: the same circuit description and the same plan
    // as the full model (with hashed weights), so the same key; never a fixed-weight circuit or
    // a proof.
    let qm = wide_linear();
    let red = commit::redact(&qm);
    assert!(
        commit::param_tensors(&red)
            .iter()
            .all(|t| t.data.iter().all(|&x| x == 0))
    );
    let full = compile_layout(&qm, 8, 2, hashed_weights(), None).unwrap();
    let copy = compile_layout(&red, 8, 2, hashed_weights(), None).unwrap();
    assert_eq!(full.info, copy.info);
    assert_eq!(full.circuit.plan.steps, copy.circuit.plan.steps);
    assert!(compile_layout(&red, 8, 2, Disclosure::default(), None).is_err());
    let vals = qm
        .evaluate(&[Tensor::new(vec![1, 32], vec![1; 32])])
        .unwrap();
    assert!(compile_layout(&red, 8, 2, hashed_weights(), Some(&vals)).is_err());
    // Widths that do not fit the tensors are refused.
    let mut bad = red.clone();
    for widths in [vec![16], vec![0, 16], vec![16, 65]] {
        bad.redacted = Some(widths);
        assert!(compile_layout(&bad, 8, 2, hashed_weights(), None).is_err());
    }
}

#[test]
fn hashed_input_and_hashed_weights_together() {
    let qm = small_mlp();
    let x = vec![20, -7, 13];
    let dis = Disclosure {
        input: Visibility::Hashed,
        params: ParamVisibility::Hashed,
        salt: Some(5),
    };
    let c = compiled_as(&qm, std::slice::from_ref(&x), 4, dis);
    let inst = c.circuit.instance().unwrap();
    assert_eq!(
        inst[..2],
        [
            commit::input_digest(&x, qm.config.activation_bits, 5),
            commit::params_digest(&qm)
        ]
    );
    assert_eq!(mock(&c.circuit, c.info.k, inst.clone()), Ok(()));
    let mut bad = inst;
    bad.swap(0, 1);
    assert!(mock(&c.circuit, c.info.k, bad).is_err());
}

#[test]
fn a_bit_digit_cannot_hold_two() {
    // y = 5 at 12 activation bits: y + 2^11 has bit 11 (the sign) set and bit 10 clear. Moving
    // the sign into the odd bit's lane as a 2 keeps the sum, so only the digit gate's bit kind
    // stops a prover from flipping the sign (and with it ReLU) this way.
    let qm = graph(
        &[vec![1]],
        vec![(QOp::Rescale { divisor: vec![16] }, vec![0], vec![1])],
        &[1],
    );
    let c = compiled(&qm, &[vec![80]], 4);
    let mut plan = (*c.circuit.plan).clone();
    let (sign, odd) = digit_dots(&plan)
        .into_iter()
        .find(|d| d.1 == 2)
        .map(|(terms, ..)| (terms[0], terms[1]))
        .expect("the signed range check has two bit digits");
    assert_eq!((sign.1, odd.1), (1 << 11, 1 << 10));
    assert_eq!(
        (plan.values[sign.0], plan.values[odd.0]),
        (Some(fe(1)), Some(fe(0)))
    );
    plan.values[sign.0] = Some(fe(0));
    plan.values[odd.0] = Some(fe(2));
    let failures = mock(
        &ModelCircuit::new(plan),
        c.info.k,
        c.circuit.instance().unwrap(),
    )
    .expect_err("a bit lane holding 2 must be rejected");
    assert!(
        failures.iter().all(|f| matches!(
            f,
            VerifyFailure::ConstraintNotSatisfied { constraint, .. }
                if format!("{constraint}").contains("digits")
        )),
        "{failures:?}"
    );
}

#[test]
fn fused_rescale_check_and_packed_products_stay_sound() {
    // Linear (2 outputs) → rescale → ReLU at 8 lanes: each linear dot is folded into its
    // rescale's check (no Equal left, no separate linear cell), and both ReLU products share one
    // row of the mul gate (three triples per row at 8 lanes).
    let qm = small_mlp();
    let c = assert_sound(&qm, &[vec![20, -7, 13]], 8);
    let plan = &c.circuit.plan;
    assert!(
        !plan
            .steps
            .iter()
            .any(|(_, s)| matches!(s, plan::Step::Equal { .. })),
        "the linear outputs are fused into the rescale checks"
    );
    let muls: Vec<&plan::Step> = plan
        .steps
        .iter()
        .map(|(_, s)| s)
        .filter(|s| matches!(s, plan::Step::Mul { .. }))
        .collect();
    assert_eq!(muls.len(), 1);
    let plan::Step::Mul { items } = muls[0] else {
        unreachable!()
    };
    assert_eq!(items.len(), 2);
    assert_eq!(plan.step_rows(muls[0]), 1);
    // The circuit's outputs are still the integer evaluator's.
    let ins = vec![Tensor::new(vec![1, 3], vec![20, -7, 13])];
    let vals = qm.evaluate(&ins).unwrap();
    let out = &vals[3].data;
    let inst = c.circuit.instance().unwrap();
    let n_in = c.info.public_inputs;
    for (i, &v) in out.iter().enumerate() {
        assert_eq!(inst[n_in + i], chips::fe(v as i128));
    }
}

#[test]
fn lane_groups_share_rows_and_stay_sound() {
    // Two groups of two lanes and four of two: independent dot products run side by side, each
    // group with its own accumulator and selectors; every tampered cell is still caught.
    let qm = small_mlp();
    let x = vec![20, -7, 13];
    let one = compiled_shape(&qm, std::slice::from_ref(&x), 2, 1, Disclosure::default());
    for groups in [2, 4] {
        let c = check_sound(compiled_shape(
            &qm,
            std::slice::from_ref(&x),
            2 * groups,
            groups,
            Disclosure::default(),
        ));
        assert_eq!(c.info.layout.groups, groups);
        assert!(
            c.info.rows < one.info.rows,
            "{} vs {}",
            c.info.rows,
            one.info.rows
        );
        let used: std::collections::BTreeSet<usize> = c
            .circuit
            .plan
            .regions()
            .iter()
            .flat_map(|r| r.places.iter().map(|p| p.group))
            .collect();
        assert!(used.len() > 1, "dot products spread over the groups");
        assert_eq!(c.circuit.instance(), one.circuit.instance());
    }
}

#[test]
fn reduce_max_and_min() {
    // Max over the last axis and min over all: each output is one of its inputs, every other
    // input is on the right side of it (range checked), and the product of differences is zero.
    let qm = graph(
        &[vec![2, 3]],
        vec![
            (
                QOp::ReduceMax {
                    axes: vec![1],
                    keepdims: false,
                    min: false,
                },
                vec![0],
                vec![2],
            ),
            (
                QOp::ReduceMax {
                    axes: vec![0, 1],
                    keepdims: true,
                    min: true,
                },
                vec![0],
                vec![1, 1],
            ),
        ],
        &[1, 2],
    );
    let c = assert_sound(&qm, &[vec![5, -3, 9, -7, -7, 2]], 4);
    let inst = c.circuit.instance().unwrap();
    let n_in = c.info.public_inputs;
    let want = [9, 2, -7];
    for (i, &w) in want.iter().enumerate() {
        assert_eq!(inst[n_in + i], chips::fe(w));
    }
    // A claimed maximum that is not the maximum has no valid witness: the circuit refuses it.
    let wrong = inst_with_output(&c, 0, 5);
    assert!(mock(&c.circuit, c.info.k, wrong).is_err());
}

/// Max and min over windows of 9 to 64 elements, extremes first and last, values at the edges
/// of the activation range: the running product of differences leaves i128 after a few factors
/// (it is a field element), and the honest witness still satisfies the circuit.
#[test]
fn max_and_min_over_long_windows() {
    let reduce = |min| QOp::ReduceMax {
        axes: vec![1],
        keepdims: false,
        min,
    };
    for n in [9usize, 16, 25, 64] {
        let qm = graph(
            &[vec![1, n]],
            vec![
                (reduce(false), vec![0], vec![1]),
                (reduce(true), vec![0], vec![1]),
            ],
            &[1, 2],
        );
        for at in [0, n - 1] {
            let mut x: Vec<i64> = (0..n as i64)
                .map(|i| if i % 2 == 0 { 2000 - i } else { i - 2000 })
                .collect();
            x[at] = 2047;
            x[n - 1 - at] = -2048;
            let c = if n == 9 {
                assert_sound(&qm, &[x], 8)
            } else {
                let c = compiled(&qm, &[x], 8);
                let inst = c.circuit.instance().unwrap();
                assert_eq!(mock(&c.circuit, c.info.k, inst), Ok(()), "n={n} at={at}");
                c
            };
            let inst = c.circuit.instance().unwrap();
            let n_in = c.info.public_inputs;
            assert_eq!(inst[n_in..], [chips::fe(2047), chips::fe(-2048)]);
            let wrong = inst_with_output(&c, 0, 2000);
            assert!(mock(&c.circuit, c.info.k, wrong).is_err(), "n={n} at={at}");
        }
    }
    // MaxPool with a 5×5 window over 1..=25, the max last.
    let qm = graph(
        &[vec![1, 1, 5, 5]],
        vec![(
            QOp::MaxPool {
                kernel: vec![5, 5],
                strides: vec![1, 1],
                pads_begin: vec![0, 0],
                dilations: vec![1, 1],
            },
            vec![0],
            vec![1, 1, 1, 1],
        )],
        &[1],
    );
    let c = compiled(&qm, &[(1..=25).map(|i| i * 80).collect()], 8);
    let inst = c.circuit.instance().unwrap();
    assert_eq!(inst[c.info.public_inputs], chips::fe(2000));
    assert_eq!(mock(&c.circuit, c.info.k, inst), Ok(()));
}

/// Every value by running each op with no range check at all (what a prover could witness).
fn unchecked_values(qm: &QuantizedModel, inputs: &[Vec<i64>]) -> Vec<Tensor<i64>> {
    let mut vals: Vec<Tensor<i64>> = vec![];
    for n in &qm.nodes {
        let shape = qm.values[n.output].shape.clone();
        vals.push(match n.op {
            QOp::Input { index } => Tensor::new(shape, inputs[index].clone()),
            _ => {
                let args: Vec<&Tensor<i64>> = n.inputs.iter().map(|&i| &vals[i]).collect();
                // An op with no value here (a root of a negative) gets zeros: the circuit must
                // then refuse by its own checks.
                let zeros = Tensor::new(shape.clone(), vec![0; crate::tensor::numel(&shape)]);
                crate::quantize::eval_op(&n.op, &args, &shape).unwrap_or(zeros)
            }
        });
    }
    vals
}

/// The evaluator and the circuit accept the same inputs at the edges of the activation range
/// (12 bits: [-2048, 2048)): where the evaluator refuses, the circuit has no witness (planning
/// with the unchecked values fails); where it accepts, MockProver is satisfied.
#[test]
fn evaluator_and_circuit_agree_at_the_edges() {
    let add = (QOp::Add, vec![0, 1], vec![1, 2]);
    let after_add = |op: QOp, shape: Vec<usize>| {
        graph(
            &[vec![1, 2], vec![1, 2]],
            vec![add.clone(), (op, vec![2], shape)],
            &[3],
        )
    };
    let cases = [
        (after_add(QOp::Relu, vec![1, 2]), "relu"),
        (
            after_add(QOp::Step { offset: 5, one: 16 }, vec![1, 2]),
            "step",
        ),
        (
            after_add(QOp::Rescale { divisor: vec![1] }, vec![1, 2]),
            "rescale by 1",
        ),
        // 2047·2^11 has root 2047 (accepted); 2048·2^11 = 2048² leaves y² + 2y − X = 2^12.
        (after_add(QOp::Sqrt { shift: 11 }, vec![1, 2]), "sqrt"),
        (
            after_add(QOp::Recip { num: 1 << 20 }, vec![1, 2]),
            "reciprocal",
        ),
        (
            after_add(
                QOp::ReduceMax {
                    axes: vec![1],
                    keepdims: false,
                    min: false,
                },
                vec![1],
            ),
            "max",
        ),
    ];
    let edges: [(i64, i64); 6] = [
        (1024, 1023),   // 2047: the top of the range
        (1024, 1024),   // 2048: just past it
        (-1024, -1024), // -2048: the bottom
        (-1024, -1025), // -2049: just below
        (2047, -2048),  // a spread of 4095
        (2047, 2047),   // 4094
    ];
    let (mut accepted_n, mut refused_n) = (0, 0);
    for (qm, what) in &cases {
        for &(a, b) in &edges {
            // The sums are a + b and a − 2043.
            let inputs = vec![vec![a, a], vec![b, -2043]];
            let ins: Vec<Tensor<i64>> = inputs
                .iter()
                .map(|d| Tensor::new(vec![1, 2], d.clone()))
                .collect();
            let accepted = qm.evaluate(&ins).is_ok();
            if accepted {
                accepted_n += 1;
            } else {
                refused_n += 1;
            }
            let raw = unchecked_values(qm, &inputs);
            match compile_layout(qm, 4, 1, Disclosure::default(), Some(&raw)) {
                Ok(c) => {
                    assert!(
                        accepted,
                        "{what} {a}+{b}: the circuit plans what the evaluator refuses"
                    );
                    let inst = c.circuit.instance().unwrap();
                    assert_eq!(mock(&c.circuit, c.info.k, inst), Ok(()), "{what} {a}+{b}");
                }
                Err(e) => assert!(
                    !accepted,
                    "{what} {a}+{b}: the evaluator accepts, the circuit refuses: {e}"
                ),
            }
        }
    }
    assert!(
        accepted_n >= 8 && refused_n >= 8,
        "{accepted_n} accepted, {refused_n} refused"
    );
}

#[test]
fn gather_rewires_and_fills_with_one_constant() {
    // Pad-like gather: [a, b, c] → [7, a, c, c, 7, b] with fill 7; then a sum so the rewired
    // cells feed a gate. No rows for the rewiring itself, one for the fill constant.
    let qm = graph(
        &[vec![3]],
        vec![
            (
                QOp::Gather {
                    index: vec![-1, 0, 2, 2, -1, 1],
                    fill: 7,
                },
                vec![0],
                vec![6],
            ),
            (
                QOp::ReduceSum {
                    axes: vec![0],
                    keepdims: true,
                },
                vec![1],
                vec![1],
            ),
        ],
        &[1, 2],
    );
    let c = assert_sound(&qm, &[vec![4, -5, 6]], 4);
    let inst = c.circuit.instance().unwrap();
    let n_in = c.info.public_inputs;
    let want = [7, 4, 6, 6, 7, -5, 25];
    for (i, &w) in want.iter().enumerate() {
        assert_eq!(inst[n_in + i], chips::fe(w));
    }
    let gather_rows = c.info.rows_per_node[2].rows;
    assert_eq!(gather_rows, 1, "only the fill constant takes a row");
}

#[test]
fn matmul_of_two_runtime_tensors() {
    // [2, 2, 3] × [3, 2] (the right operand used for both batches): each output a pair dot, two
    // pairs per row at 4 lanes, so a start row and a chain row.
    let qm = graph(
        &[vec![2, 2, 3], vec![3, 2]],
        vec![(
            QOp::MatMul {
                batch: 2,
                m: 2,
                k: 3,
                n: 2,
            },
            vec![0, 1],
            vec![2, 2, 2],
        )],
        &[2],
    );
    let a = vec![1, -2, 3, 0, 4, -1, 2, 2, -3, 5, 0, 1];
    let b = vec![3, -1, 0, 2, -2, 4];
    let c = assert_sound(&qm, &[a.clone(), b.clone()], 4);
    let pair_dots = c.circuit.plan.steps.iter();
    let pair_dots = pair_dots.filter(|(_, s)| matches!(s, Step::PairDot { .. }));
    assert_eq!(pair_dots.count(), 8);
    // Every value the prover chooses here is a pair dot's sum: changed, the pair-dot gate of
    // its row fails.
    let inst = c.circuit.instance().unwrap();
    for (i, kind) in occurrences(&c.circuit.plan).iter().enumerate() {
        if *kind != Occurrence::Fresh {
            continue;
        }
        let mut t = c.circuit.clone();
        t.tamper = Some((i, 1));
        let failures = mock(&t, c.info.k, inst.clone()).unwrap_err();
        assert!(
            failures.iter().any(|f| matches!(f,
                VerifyFailure::ConstraintNotSatisfied { constraint, .. }
                    if format!("{constraint}").contains("pair dot"))),
            "assignment {i}: {failures:?}"
        );
    }
    let n_in = c.info.public_inputs;
    for t in 0..2 {
        for i in 0..2 {
            for j in 0..2 {
                let want: i128 = (0..3)
                    .map(|l| (a[t * 6 + i * 3 + l] * b[l * 2 + j]) as i128)
                    .sum();
                assert_eq!(inst[n_in + t * 4 + i * 2 + j], chips::fe(want));
            }
        }
    }
}

#[test]
fn step_compares_through_the_sign() {
    // one·[x − 1 ≥ 0] (a strict comparison): the sign comes from a signed range check, so a
    // prover cannot claim 1 for x ≤ 0 or 0 for x ≥ 1.
    let qm = graph(
        &[vec![4]],
        vec![(
            QOp::Step {
                offset: -1,
                one: 16,
            },
            vec![0],
            vec![4],
        )],
        &[1],
    );
    let c = assert_sound(&qm, &[vec![-3, 0, 1, 9]], 4);
    let inst = c.circuit.instance().unwrap();
    let n_in = c.info.public_inputs;
    for (i, w) in [0, 0, 16, 16].into_iter().enumerate() {
        assert_eq!(inst[n_in + i], chips::fe(w));
    }
    // Claiming "x > 0" for x = 0 has no witness.
    let lie = inst_with_output(&c, 1, 16);
    assert!(mock(&c.circuit, c.info.k, lie).is_err());
}

#[test]
fn interpolated_table_is_exact_to_its_definition_and_sound() {
    // Sigmoid at input scale 2^6 from points 2^3 apart (kept 4 bits finer than the output):
    // q and r of x = 8q + r, two lookups bind A and B (and q's range), the product and the
    // rescale are the usual chips. Negative inputs, a remainder of 0 and the range ends.
    let (lo, hi) = (-200, 200);
    let qm = graph(
        &[vec![5]],
        vec![(
            QOp::Interp {
                func: TableFn::Sigmoid,
                in_scale: 6,
                out_scale: 8,
                lo,
                hi,
                step_bits: 3,
            },
            vec![0],
            vec![5],
        )],
        &[1],
    );
    let x = vec![-200, -13, 0, 37, 200];
    let c = assert_sound(&qm, std::slice::from_ref(&x), 4);
    assert_eq!(c.circuit.plan.tables.len(), 2, "points at q and at q + 1");
    let inst = c.circuit.instance().unwrap();
    let n_in = c.info.public_inputs;
    for (i, &v) in x.iter().enumerate() {
        let want = crate::quantize::interp_entry(TableFn::Sigmoid, v, 6, 8, 3);
        assert_eq!(inst[n_in + i], chips::fe(want as i128));
        // Within one output unit of the exact table.
        let exact = crate::quantize::table_entry(TableFn::Sigmoid, v, 6, 8);
        assert!((want - exact).abs() <= 1, "{v}: {want} vs {exact}");
    }
    // Another output value has no witness.
    let lie = inst_with_output(&c, 3, 1);
    assert!(mock(&c.circuit, c.info.k, lie).is_err());
}

/// Rows the layouter really uses (halo2's cost model shows them only in its Debug form).
fn layout_rows(c: &Compiled) -> usize {
    let cost = with_layout(c.circuit.layout(), || {
        halo2_proofs::dev::cost::CircuitCost::<halo2_proofs::pasta::Eq, ModelCircuit>::measure(
            c.info.k, &c.circuit,
        )
    });
    let d = format!("{cost:?}");
    let at = d
        .find("max_advice_rows: ")
        .expect("CircuitCost shows its rows")
        + 17;
    d[at..]
        .split(|ch: char| !ch.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a row count")
}

/// A linear layer 32 → 32 with bias and a rescale: 1,056 parameters, five blocks of weight
/// words, so its weights digest runs in five chains.
fn wide_linear() -> QuantizedModel {
    let weight: Vec<i64> = (0..32 * 32).map(|i| (i * 37 % 19) - 9).collect();
    let bias: Vec<i64> = (0..32).map(|i| i * 30 - 500).collect();
    graph(
        &[vec![1, 32]],
        vec![
            (
                QOp::Linear {
                    k: 32,
                    n: 32,
                    weight,
                    bias: Some(bias),
                },
                vec![0],
                vec![1, 32],
            ),
            (QOp::Rescale { divisor: vec![64] }, vec![1], vec![1, 32]),
        ],
        &[2],
    )
}

#[test]
fn weights_digest_chains_run_side_by_side_and_join() {
    // Five blocks in five chains, over 1, 2 and 5 Poseidon lanes: the digest is the native one
    // whatever the layout, the rows are what the plan counted, and another digest is rejected.
    let qm = wide_linear();
    let x: Vec<i64> = (0..32).map(|i| i - 16).collect();
    let msg_len = commit::padded_len(commit::params_message(&qm).len());
    assert_eq!(commit::blocks(msg_len), 5);
    let vals = qm.evaluate(&tensors(&qm, &[x])).expect("evaluates");
    let mut slots = vec![];
    for hash_lanes in [1, 2, 5] {
        let c = compile_hashing(&qm, 8, 2, Some(hash_lanes), hashed_weights(), Some(&vals))
            .expect("compiles");
        assert_eq!(c.info.layout.hash_lanes, hash_lanes);
        let inst = c.circuit.instance().unwrap();
        assert_eq!(inst[32], commit::params_digest(&qm));
        assert_eq!(mock(&c.circuit, c.info.k, inst.clone()), Ok(()));
        let mut bad = inst;
        bad[32] += Fp::one();
        assert!(mock(&c.circuit, c.info.k, bad).is_err());
        assert_eq!(layout_rows(&c), c.info.rows, "{hash_lanes} Poseidon lanes");
        slots.push(plan::hash_schedule(msg_len, hash_lanes).len());
    }
    // Slots: five blocks and the join on one lane; three (two, two, one) and the join; one
    // block per lane and the join.
    assert_eq!(slots, vec![6, 4, 2]);
}

#[test]
fn hash_schedule_fills_the_lanes_evenly_and_keeps_each_chain_in_order() {
    // 228 blocks in 16 chains (the MLP's weights): on 5 lanes, ⌈228/5⌉ slots and the join,
    // though 16 chains do not split evenly over 5 lanes.
    let len = 1 + 228 * commit::BLOCK;
    for lanes in [1, 3, 5, 6, 16] {
        let slots = plan::hash_schedule(len, lanes);
        assert_eq!(
            slots.len(),
            228usize.div_ceil(lanes).max(15) + 1,
            "{lanes} lanes"
        );
        let mut next = [0usize; 16];
        for slot in &slots[..slots.len() - 1] {
            assert!(slot.len() <= lanes);
            for (lane, &(l, job)) in slot.iter().enumerate() {
                assert_eq!(l, lane);
                let plan::HashJob::Chain { chain, index } = job else {
                    panic!("the join comes last");
                };
                assert_eq!(index, next[chain], "chain {chain} in order, once per slot");
                next[chain] += 1;
            }
        }
        assert_eq!(next.iter().sum::<usize>(), 228);
        assert_eq!(slots.last(), Some(&vec![(0, plan::HashJob::Join)]));
    }
}

#[test]
fn plan_rows_are_the_layout_rows() {
    // k is chosen from the plan's row count: it must be what synthesis lays out, Poseidon's
    // regions (HASH_BLOCK_ROWS) included.
    let x = vec![20, -7, 13];
    let both = Disclosure {
        input: Visibility::Hashed,
        params: ParamVisibility::Hashed,
        salt: Some(1),
    };
    for dis in [
        Disclosure::default(),
        input(Visibility::Hashed, Some(1)),
        hashed_weights(),
        both,
    ] {
        for (lanes, groups) in [(4, 1), (8, 2)] {
            let c = compiled_shape(&small_mlp(), std::slice::from_ref(&x), lanes, groups, dis);
            assert_eq!(layout_rows(&c), c.info.rows, "{dis:?}, {lanes} lanes");
        }
    }
}
