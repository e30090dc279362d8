//! MockProver tests of the Poseidon chip on its own: its digest is the native one, and every cell
//! of a block, changed, is caught by the gate that computes it (or, for an absorbed element, by
//! the copy that brings it in).

use halo2_proofs::circuit::{Layouter, SimpleFloorPlanner};
use halo2_proofs::dev::{MockProver, VerifyFailure};
use halo2_proofs::plonk::{Circuit, Instance};

use super::*;
use crate::circuit::commit;

/// One block per lane, each over its own 17 elements (and a zero pad), digests public.
#[derive(Clone)]
struct Blocks {
    inputs: Vec<[Fp; ABSORBED]>,
    tamper: Option<(usize, usize)>,
}

#[derive(Clone)]
struct TestConfig {
    chip: PoseidonConfig,
    words: Column<Advice>,
    instance: Column<Instance>,
}

thread_local! {
    static LANES: std::cell::Cell<usize> = const { std::cell::Cell::new(1) };
}

impl Circuit<Fp> for Blocks {
    type Config = TestConfig;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        self.clone()
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> TestConfig {
        let words = meta.advice_column();
        let instance = meta.instance_column();
        meta.enable_equality(words);
        meta.enable_equality(instance);
        let chip = PoseidonChip::configure(meta, LANES.with(|l| l.get()));
        TestConfig {
            chip,
            words,
            instance,
        }
    }

    fn synthesize(&self, cfg: TestConfig, mut layouter: impl Layouter<Fp>) -> Result<(), Error> {
        let cells = layouter.assign_region(
            || "words",
            |mut region| {
                let mut out = vec![];
                for (i, v) in self.inputs.iter().flatten().enumerate() {
                    out.push(region.assign_advice(|| "w", cfg.words, i, || Value::known(*v))?);
                }
                Ok(out)
            },
        )?;
        let chip = PoseidonChip {
            config: cfg.chip.clone(),
        };
        let digests = layouter.assign_region(
            || "blocks",
            |mut region| {
                chip.assign_constants(&mut region, 0)?;
                let mut out = vec![];
                for (lane, input) in cells.chunks(ABSORBED).enumerate() {
                    let input: [ACell; ABSORBED] =
                        input.to_vec().try_into().map_err(|_| Error::Synthesis)?;
                    let t = if lane == 0 { self.tamper } else { None };
                    out.push(chip.block_tampered(&mut region, lane, 0, &input, t)?);
                }
                Ok(out)
            },
        )?;
        for (i, d) in digests.iter().enumerate() {
            layouter.constrain_instance(d.cell(), cfg.instance, i)?;
        }
        Ok(())
    }
}

fn input(seed: u64) -> [Fp; ABSORBED] {
    let mut x = [Fp::zero(); ABSORBED];
    for (i, v) in x.iter_mut().take(ABSORBED - 1).enumerate() {
        // Full-width elements, not only small integers.
        *v = Fp::from(seed + i as u64).pow_vartime([seed + 3]) + Fp::from(i as u64);
    }
    x
}

fn native(x: &[Fp; ABSORBED]) -> Fp {
    commit::h_block(x[0], &x[1..ABSORBED - 1])
}

fn run(c: &Blocks, k: u32, instance: Vec<Fp>) -> Result<(), Vec<VerifyFailure>> {
    LANES.with(|l| l.set(c.inputs.len()));
    MockProver::run(k, c, vec![instance])
        .expect("synthesizes")
        .verify()
}

use halo2_proofs::pasta::group::ff::Field;

#[test]
fn block_digest_is_the_native_poseidon_hash() {
    let inputs = vec![input(1), input(7)];
    let digests: Vec<Fp> = inputs.iter().map(native).collect();
    let c = Blocks {
        inputs,
        tamper: None,
    };
    assert_eq!(run(&c, 9, digests.clone()), Ok(()));
    let mut bad = digests;
    bad[1] += Fp::one();
    assert!(run(&c, 9, bad).is_err());
}

#[test]
fn gates_have_degree_at_most_five() {
    // The point of the chip: halo2 keeps the quotient on 4n points.
    LANES.with(|l| l.set(2));
    let mut cs = ConstraintSystem::<Fp>::default();
    let _ = Blocks::configure(&mut cs);
    assert!(cs.degree() <= 5, "degree {}", cs.degree());
}

/// Rows of every kind and every change of kind: the start, the first permutation's full and
/// partial rows and their boundaries, absorptions, and the end of the last permutation.
const SAMPLE_ROWS: [usize; 16] = [0, 1, 2, 4, 5, 6, 20, 32, 33, 36, 37, 38, 296, 297, 332, 333];

#[test]
fn every_cell_of_each_row_kind_changed_is_caught_by_its_gate_or_copy() {
    assert_cells_caught(&SAMPLE_ROWS);
}

/// All 334 rows (about two minutes in a test build): `cargo test -- --ignored every_row`.
#[test]
#[ignore]
fn every_row_of_a_block_changed_is_caught() {
    assert_cells_caught(&(0..BLOCK_ROWS).collect::<Vec<_>>());
}

fn assert_cells_caught(rows: &[usize]) {
    let x = input(3);
    let digest = vec![native(&x)];
    for &row in rows {
        let kind = row_kind(row);
        for idx in 0..6 {
            let expect: &[&str] = match (kind, idx) {
                // Not assigned: nothing to change.
                (RowKind::Start, 0..3) | (RowKind::Start | RowKind::Absorb, 5) => continue,
                (RowKind::Output, 3..6) => continue,
                // The state: computed by the row above.
                (_, 0..3) => &[match row_kind(row - 1) {
                    RowKind::Start => GATE_START,
                    RowKind::Absorb => GATE_ABSORB,
                    RowKind::Full(_) => GATE_FULL,
                    RowKind::Partial(_) => GATE_PARTIAL,
                    RowKind::Output => unreachable!("an output row ends the block"),
                }],
                // An absorbed element: its copy (the state follows it, so the digest changes).
                (RowKind::Start | RowKind::Absorb, _) => &["permutation"],
                (RowKind::Full(_), _) => &[GATE_FULL],
                (RowKind::Partial(_), _) => &[GATE_PARTIAL],
                (RowKind::Output, _) => unreachable!(),
            };
            let c = Blocks {
                inputs: vec![x],
                tamper: Some((row, idx)),
            };
            let failures = run(&c, 9, digest.clone()).expect_err(&format!(
                "row {row} ({kind:?}) column {idx} changed, yet accepted"
            ));
            for want in expect {
                assert!(
                    failures.iter().any(|f| match f {
                        VerifyFailure::Permutation { .. } => *want == "permutation",
                        VerifyFailure::ConstraintNotSatisfied { constraint, .. } =>
                            format!("{constraint}").contains(want),
                        _ => false,
                    }),
                    "row {row} ({kind:?}) column {idx}: expected {want}, got {failures:?}"
                );
            }
        }
    }
}
