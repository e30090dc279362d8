//! Select (Gather and GatherElements by runtime indices): a lookup in a table of the constant
//! with fixed weights, a one-hot choice for runtime data and for hashed weights; Scatter
//! (ScatterElements by runtime indices): one-hot writes. Every assignment tampered is caught;
//! the evaluator and the circuit refuse the same indices.

use super::*;

/// `y[e] = data[base[e] + m]` for the index `idx[at[e]] = m·2^shift` (negative indices
/// allowed).
fn select(n: usize, shift: u32, base: Vec<usize>, at: Vec<usize>, data: Option<Vec<i64>>) -> QOp {
    select_from(n, shift, true, base, at, data)
}

fn select_from(
    n: usize,
    shift: u32,
    negative: bool,
    base: Vec<usize>,
    at: Vec<usize>,
    data: Option<Vec<i64>>,
) -> QOp {
    QOp::Select {
        n,
        stride: 1,
        shift,
        negative,
        base,
        at,
        data,
    }
}

/// Indices `[3]` into the constant `[10, -20, 30, 40, 50]`, then a sum so the chosen cells feed
/// a gate.
fn from_constant(shift: u32) -> QuantizedModel {
    graph(
        &[vec![3]],
        vec![
            (
                select(
                    5,
                    shift,
                    vec![0; 3],
                    vec![0, 1, 2],
                    Some(vec![10, -20, 30, 40, 50]),
                ),
                vec![0],
                vec![3],
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
    )
}

fn outputs(c: &Compiled) -> Vec<Fp> {
    let inst = c.circuit.instance().unwrap();
    inst[c.info.public_inputs..].to_vec()
}

fn fes(v: &[i128]) -> Vec<Fp> {
    v.iter().map(|&x| chips::fe(x)).collect()
}

#[test]
fn select_from_a_constant_is_one_lookup_per_output() {
    // 2, −1 (the last) and −5 (the first, counted from the end).
    let qm = from_constant(0);
    let c = assert_sound(&qm, &[vec![2, -1, -5]], 4);
    assert_eq!(outputs(&c), fes(&[30, 50, 10, 90]));
    assert_eq!(c.info.rows_per_node[2].rows, 3, "one lookup row per output");
    let table = &c.circuit.plan.data_tables;
    assert_eq!(table.len(), 1);
    let keys: Vec<(i128, i64)> = table[0].rows().collect();
    assert_eq!(keys[0], (-5, 10), "index −5 selects the first entry");
    assert_eq!(keys[9], (4, 50));
    assert_eq!(c.info.data_tables[0].lo, -5);
    // Without negative indices the table holds the five entries once.
    let mut qm = qm;
    if let QOp::Select { negative, .. } = &mut qm.nodes[1].op {
        *negative = false;
    }
    let c = assert_sound(&qm, &[vec![2, 4, 0]], 4);
    assert_eq!(outputs(&c), fes(&[30, 50, 10, 90]));
    assert_eq!(c.info.data_tables[0].lo, 0);
    assert_eq!(
        c.circuit.plan.data_tables[0].values,
        vec![10, -20, 30, 40, 50]
    );
}

#[test]
fn select_index_at_a_scale_is_looked_up_at_that_scale() {
    // Indices at scale 2^4: 1·16 and −2·16.
    let qm = from_constant(4);
    let c = assert_sound(&qm, &[vec![16, -32, 0]], 4);
    assert_eq!(outputs(&c), fes(&[-20, 40, 10, 30]));
}

#[test]
fn select_of_a_runtime_tensor_is_a_sound_one_hot_choice() {
    // GatherElements-like: data [2, 3] (runtime), indices [2, 2] along axis 1.
    let qm = graph(
        &[vec![2, 2], vec![2, 3]],
        vec![(
            QOp::Select {
                n: 3,
                stride: 1,
                shift: 0,
                negative: true,
                base: vec![0, 0, 3, 3],
                at: vec![0, 1, 2, 3],
                data: None,
            },
            vec![0, 1],
            vec![2, 2],
        )],
        &[2],
    );
    let c = assert_sound(&qm, &[vec![2, -3, 1, 1], vec![7, 8, 9, -4, -5, -6]], 6);
    assert_eq!(outputs(&c), fes(&[9, 7, -5, -5]));
}

#[test]
fn select_with_hashed_weights_keeps_the_constant_private() {
    let qm = from_constant(0);
    let c = assert_sound_as(&qm, &[vec![4, 0, -3]], 4, hashed_weights());
    assert!(c.circuit.plan.data_tables.is_empty(), "no table shows it");
    assert!(!c.circuit.plan.has_lookups());
    let inst = c.circuit.instance().unwrap();
    // Inputs, the weights digest, then the outputs.
    assert_eq!(inst[c.info.public_inputs + 1..], fes(&[50, 10, 30, 90]));
    // The verifier key does not depend on the constant.
    let mut other = qm.clone();
    if let QOp::Select { data: Some(d), .. } = &mut other.nodes[1].op {
        d[0] = 11;
    }
    let other = compiled_as(&other, &[vec![4, 0, -3]], 4, hashed_weights());
    assert_eq!(
        format!("{:?}", other.info),
        format!("{:?}", c.info),
        "same circuit description"
    );
}

/// The evaluator refuses an index outside `[-n, n)` (`[0, n)` when calibration saw no negative
/// index) or off the index scale, and the circuit has no witness for it; every index inside is
/// proved.
#[test]
fn select_evaluator_and_circuit_refuse_the_same_indices() {
    let runtime = |shift, negative| {
        let op = select_from(5, shift, negative, vec![0], vec![0], None);
        graph(&[vec![1], vec![5]], vec![(op, vec![0, 1], vec![1])], &[2])
    };
    let constant = |shift, negative| {
        let data = Some(vec![1, 2, 3, 4, 5]);
        let op = select_from(5, shift, negative, vec![0], vec![0], data);
        graph(&[vec![1]], vec![(op, vec![0], vec![1])], &[1])
    };
    let mut refused = 0;
    for (shift, negative) in [(0u32, true), (2, true), (0, false), (3, false)] {
        let first = if negative { -5 } else { 0 };
        for (qm, runtime_data) in [
            (runtime(shift, negative), true),
            (constant(shift, negative), false),
        ] {
            for m in -7i64..7 {
                for off in [0, 1] {
                    let i = (m << shift) + off;
                    let mut inputs = vec![vec![i]];
                    if runtime_data {
                        inputs.push(vec![1, 2, 3, 4, 5]);
                    }
                    let accepted = qm.evaluate(&tensors(&qm, &inputs)).is_ok();
                    let inside =
                        i.rem_euclid(1 << shift) == 0 && (first..5).contains(&(i >> shift));
                    assert_eq!(accepted, inside, "index {i} at shift {shift}, {negative}");
                    let raw = unchecked_values(&qm, &inputs);
                    match compile_layout(&qm, 4, 1, Disclosure::default(), Some(&raw)) {
                        Ok(c) => {
                            assert!(accepted, "index {i}: planned what the evaluator refuses");
                            let inst = c.circuit.instance().unwrap();
                            assert_eq!(mock(&c.circuit, c.info.k, inst), Ok(()), "index {i}");
                        }
                        Err(e) => {
                            assert!(!accepted, "index {i}: the circuit refuses: {e}");
                            refused += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(refused > 40, "{refused} refused");
}

/// Data `[2, 4]`, indices and updates `[2, 2]` along axis 1 (all runtime).
fn scatter(negative: bool) -> QuantizedModel {
    graph(
        &[vec![2, 2], vec![2, 4], vec![2, 2]],
        vec![(
            QOp::Scatter {
                n: 4,
                stride: 1,
                shift: 0,
                negative,
                base: vec![0, 0, 4, 4],
            },
            vec![0, 1, 2],
            vec![2, 4],
        )],
        &[3],
    )
}

#[test]
fn scatter_writes_each_update_once_and_is_sound() {
    let data = vec![1, 2, 3, 4, 5, 6, 7, 8];
    let c = assert_sound(
        &scatter(true),
        &[vec![1, -1, 0, 2], data.clone(), vec![-10, -20, -30, -40]],
        6,
    );
    assert_eq!(outputs(&c), fes(&[1, -10, 3, -20, -30, 6, -40, 8]));
    // Without negative indices: half the bits.
    let c = assert_sound(
        &scatter(false),
        &[vec![3, 1, 2, 0], data, vec![-10, -20, -30, -40]],
        6,
    );
    assert_eq!(outputs(&c), fes(&[1, -20, 3, -10, -40, 6, -30, 8]));
}

/// Two writes to one element, or an index that selects nothing: the evaluator refuses, and the
/// circuit has no witness.
#[test]
fn scatter_refuses_two_writes_and_bad_indices_as_the_evaluator_does() {
    let qm = scatter(false);
    let data = vec![1, 2, 3, 4, 5, 6, 7, 8];
    let cases: [(&[i64], bool); 5] = [
        (&[0, 3, 1, 2], true),
        (&[2, 2, 1, 2], false),  // both of row 0 write element 2
        (&[0, 1, -1, 2], false), // no negative indices here
        (&[0, 4, 1, 2], false),  // past the end
        (&[3, 0, 0, 3], true),
    ];
    for (idx, ok) in cases {
        let inputs = vec![idx.to_vec(), data.clone(), vec![9, 9, 9, 9]];
        assert_eq!(qm.evaluate(&tensors(&qm, &inputs)).is_ok(), ok, "{idx:?}");
        let raw = unchecked_values(&qm, &inputs);
        let planned = compile_layout(&qm, 6, 1, Disclosure::default(), Some(&raw));
        assert_eq!(planned.is_ok(), ok, "{idx:?}");
        if let Ok(c) = planned {
            let inst = c.circuit.instance().unwrap();
            assert_eq!(mock(&c.circuit, c.info.k, inst), Ok(()), "{idx:?}");
        }
    }
}
