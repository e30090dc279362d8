//! The Poseidon chip: the P128Pow5T3 permutation (width 3, rate 2, x⁵ S-box, 8 full and 56
//! partial rounds; halo2_gadgets' constants) with gates of degree at most 5, selector included.
//!
//! halo2_gadgets' own `Pow5Chip` multiplies a selector by x⁵, a degree-6 gate, which makes halo2
//! evaluate the whole circuit's quotient on a domain of 8n rather than 4n points: every column of
//! the model paid twice for the hash. Here each S-box input `x` has a helper cell `u = x²`, so an
//! S-box output is `u²·x` (degree 3) and every gate stays within the degree the model's own gates
//! have. The function is the same: the digests equal the native
//! `halo2_gadgets::poseidon::primitives::Hash` (see [`super::commit`]).
//!
//! The chip has lanes (six advice columns each) that hash side by side, sharing the round
//! constants' six fixed columns, so lanes' blocks start on the same rows. One block is the
//! `ConstantLength<17>` sponge of [`super::commit::h_block`]: 18 absorbed elements
//! (`h, w₁ … w₁₆` and a zero pad), nine permutations, [`BLOCK_ROWS`] rows.

use std::sync::OnceLock;

use halo2_gadgets::poseidon::primitives::{P128Pow5T3, Spec};
use halo2_proofs::circuit::{Region, Value};
use halo2_proofs::pasta::Fp;
use halo2_proofs::plonk::{Advice, Column, ConstraintSystem, Error, Expression, Fixed, Selector};
use halo2_proofs::poly::Rotation;

use super::chips::ACell;

/// Names of the chip's gates, as halo2 reports them and circuit.json lists them.
pub const GATE_START: &str = "poseidon start";
pub const GATE_ABSORB: &str = "poseidon absorb";
pub const GATE_FULL: &str = "poseidon full round";
pub const GATE_PARTIAL: &str = "poseidon partial rounds";

/// Elements one block absorbs: the running digest, 16 words and a zero pad (rate 2).
pub const ABSORBED: usize = 18;
/// Rows of one permutation's rounds: 4 full, 28 with two partial rounds each, 4 full.
const ROUND_ROWS: usize = 36;
/// Rows of one block: the start row, then per permutation its rounds and the row holding its
/// output (where the next pair is absorbed); the last such row holds the block's digest.
pub const BLOCK_ROWS: usize = 1 + (ABSORBED / 2) * (ROUND_ROWS + 1);

/// What a row of a block does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowKind {
    /// The sponge's first absorption: the state becomes `(u₀, u₁, capacity)`.
    Start,
    /// A full round, with the index of its round constants.
    Full(usize),
    /// Two partial rounds, with the index of the first one's constants.
    Partial(usize),
    /// A permutation's output, plus the next pair of elements.
    Absorb,
    /// The last permutation's output: `s₀` is the digest.
    Output,
}

fn row_kind(row: usize) -> RowKind {
    if row == 0 {
        return RowKind::Start;
    }
    if row == BLOCK_ROWS - 1 {
        return RowKind::Output;
    }
    match (row - 1) % (ROUND_ROWS + 1) {
        r @ 0..4 => RowKind::Full(r),
        r @ 4..32 => RowKind::Partial(4 + 2 * (r - 4)),
        r @ 32..36 => RowKind::Full(60 + (r - 32)),
        _ => RowKind::Absorb,
    }
}

/// P128Pow5T3's round constants and MDS matrix, and the `ConstantLength<17>` capacity element.
struct Constants {
    rc: Vec<[Fp; 3]>,
    mds: [[Fp; 3]; 3],
    capacity: Fp,
}

fn constants() -> &'static Constants {
    static C: OnceLock<Constants> = OnceLock::new();
    C.get_or_init(|| {
        let (rc, mds, _) = <P128Pow5T3 as Spec<Fp, 3, 2>>::constants();
        Constants {
            rc,
            mds,
            capacity: super::chips::fe(((ABSORBED - 1) as i128) << 64),
        }
    })
}

/// One lane's columns and selectors.
#[derive(Clone, Debug)]
pub struct HashLane {
    /// The state.
    pub s: [Column<Advice>; 3],
    /// Helpers: squares of S-box inputs, the middle state of a partial pair, or absorbed
    /// elements.
    pub u: [Column<Advice>; 3],
    q_start: Selector,
    q_absorb: Selector,
    q_full: Selector,
    q_partial: Selector,
}

#[derive(Clone, Debug)]
pub struct PoseidonConfig {
    pub lanes: Vec<HashLane>,
    /// Round constants, shared by the lanes (their blocks start on the same rows).
    pub rc: [Column<Fixed>; 6],
}

pub struct PoseidonChip {
    pub config: PoseidonConfig,
}

impl PoseidonChip {
    /// `lanes` lanes, and their gates.
    ///
    /// ```text
    ///  row   | s₀ s₁ s₂     | u₀ u₁ u₂        | c₀ c₁ c₂ c₃ c₄ c₅ | selector
    ///  start | ·  ·  ·      | h  w  ·         |                   | q_start
    ///  full  | state        | x₀² x₁² x₂²     | round constants   | q_full
    ///  part. | state        | a² m  b²        | two rounds' rc    | q_partial
    ///  absorb| state        | w  w' ·         |                   | q_absorb
    ///  output| digest ·  ·  |                 |                   |
    ///
    ///  start:    s′ = (u₀, u₁, 17·2⁶⁴)
    ///  absorb:   s′ = (s₀ + u₀, s₁ + u₁, s₂)
    ///  full:     x_j = s_j + c_j;  u_j = x_j²;  s′_i = Σ_j M_ij·u_j²·x_j
    ///  partial:  a = s₀ + c₀;  u₀ = a²;  t = (u₀²·a, s₁ + c₁, s₂ + c₂);  u₁ = (M·t)₀ = m;
    ///            b = m + c₃;  u₂ = b²;  s′ = M·(u₂²·b, (M·t)₁ + c₄, (M·t)₂ + c₅)
    /// ```
    /// (s′ is the next row's state.) Every gate has degree at most 4 with its selector.
    pub fn configure(meta: &mut ConstraintSystem<Fp>, lanes: usize) -> PoseidonConfig {
        let rc = [(); 6].map(|_| meta.fixed_column());
        let lanes = (0..lanes).map(|_| Self::configure_lane(meta, rc)).collect();
        PoseidonConfig { lanes, rc }
    }

    fn configure_lane(meta: &mut ConstraintSystem<Fp>, rc: [Column<Fixed>; 6]) -> HashLane {
        let s = [(); 3].map(|_| meta.advice_column());
        let u = [(); 3].map(|_| meta.advice_column());
        // The digest is copied out of s₀; absorbed elements are copied into u₀ and u₁.
        for c in [s[0], u[0], u[1]] {
            meta.enable_equality(c);
        }
        let lane = HashLane {
            s,
            u,
            q_start: meta.selector(),
            q_absorb: meta.selector(),
            q_full: meta.selector(),
            q_partial: meta.selector(),
        };
        let c = constants();
        let m = |i: usize, j: usize| Expression::Constant(c.mds[i][j]);
        let cur = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fp>,
                   cols: [Column<Advice>; 3]| {
            cols.map(|col| meta.query_advice(col, Rotation::cur()))
        };
        let next = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fp>| {
            s.map(|col| meta.query_advice(col, Rotation::next()))
        };
        // Only what a gate uses is queried: MockProver requires every queried cell assigned.
        let pair = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fp>| {
            [u[0], u[1]].map(|col| meta.query_advice(col, Rotation::cur()))
        };
        meta.create_gate(GATE_START, |meta| {
            let q = meta.query_selector(lane.q_start);
            let [u0, u1] = pair(meta);
            let [n0, n1, n2] = next(meta);
            let cap = Expression::Constant(c.capacity);
            vec![q.clone() * (n0 - u0), q.clone() * (n1 - u1), q * (n2 - cap)]
        });
        meta.create_gate(GATE_ABSORB, |meta| {
            let q = meta.query_selector(lane.q_absorb);
            let [s0, s1, s2] = cur(meta, s);
            let [u0, u1] = pair(meta);
            let [n0, n1, n2] = next(meta);
            vec![
                q.clone() * (n0 - s0 - u0),
                q.clone() * (n1 - s1 - u1),
                q * (n2 - s2),
            ]
        });
        meta.create_gate(GATE_FULL, |meta| {
            let q = meta.query_selector(lane.q_full);
            let (st, u, n) = (cur(meta, s), cur(meta, u), next(meta));
            let x: Vec<Expression<Fp>> = (0..3)
                .map(|j| st[j].clone() + meta.query_fixed(rc[j]))
                .collect();
            let mut out: Vec<Expression<Fp>> = (0..3)
                .map(|j| q.clone() * (u[j].clone() - x[j].clone() * x[j].clone()))
                .collect();
            for (i, ni) in n.into_iter().enumerate() {
                let sum = (0..3)
                    .map(|j| m(i, j) * u[j].clone() * u[j].clone() * x[j].clone())
                    .reduce(|a, b| a + b)
                    .expect("three terms");
                out.push(q.clone() * (ni - sum));
            }
            out
        });
        meta.create_gate(GATE_PARTIAL, |meta| {
            let q = meta.query_selector(lane.q_partial);
            let (st, u, n) = (cur(meta, s), cur(meta, u), next(meta));
            let k: Vec<Expression<Fp>> = rc.iter().map(|&c| meta.query_fixed(c)).collect();
            let a = st[0].clone() + k[0].clone();
            let t = [
                u[0].clone() * u[0].clone() * a.clone(),
                st[1].clone() + k[1].clone(),
                st[2].clone() + k[2].clone(),
            ];
            let mid = |i: usize| {
                (0..3)
                    .map(|j| m(i, j) * t[j].clone())
                    .reduce(|x, y| x + y)
                    .expect("three terms")
            };
            let b = u[1].clone() + k[3].clone();
            let v = [
                u[2].clone() * u[2].clone() * b.clone(),
                mid(1) + k[4].clone(),
                mid(2) + k[5].clone(),
            ];
            let mut out = vec![
                q.clone() * (u[0].clone() - a.clone() * a),
                q.clone() * (u[1].clone() - mid(0)),
                q.clone() * (u[2].clone() - b.clone() * b),
            ];
            for (i, ni) in n.into_iter().enumerate() {
                let sum = (0..3)
                    .map(|j| m(i, j) * v[j].clone())
                    .reduce(|x, y| x + y)
                    .expect("three terms");
                out.push(q.clone() * (ni - sum));
            }
            out
        });
        lane
    }

    /// The round constants of one block whose first row is `offset` (once for all lanes).
    pub fn assign_constants(
        &self,
        region: &mut Region<'_, Fp>,
        offset: usize,
    ) -> Result<(), Error> {
        let c = constants();
        for row in 0..BLOCK_ROWS {
            let vals: [Fp; 6] = match row_kind(row) {
                RowKind::Full(r) => [
                    c.rc[r][0],
                    c.rc[r][1],
                    c.rc[r][2],
                    Fp::zero(),
                    Fp::zero(),
                    Fp::zero(),
                ],
                RowKind::Partial(r) => [
                    c.rc[r][0],
                    c.rc[r][1],
                    c.rc[r][2],
                    c.rc[r + 1][0],
                    c.rc[r + 1][1],
                    c.rc[r + 1][2],
                ],
                RowKind::Start | RowKind::Absorb | RowKind::Output => continue,
            };
            for (&col, v) in self.config.rc.iter().zip(vals) {
                region.assign_fixed(|| "round constant", col, offset + row, || Value::known(v))?;
            }
        }
        Ok(())
    }

    /// One block on `lane` from row `offset`: the sponge over `input` (`h, w₁ … w₁₆`, zero),
    /// each copied in. Returns the digest's cell.
    pub fn block(
        &self,
        region: &mut Region<'_, Fp>,
        lane: usize,
        offset: usize,
        input: &[ACell; ABSORBED],
    ) -> Result<ACell, Error> {
        self.block_tampered(region, lane, offset, input, None)
    }

    /// [`Self::block`], with one cell (row of the block, column 0–5 for s₀ … u₂) changed by one
    /// after it is computed: the soundness tests' hook.
    pub(super) fn block_tampered(
        &self,
        region: &mut Region<'_, Fp>,
        lane: usize,
        offset: usize,
        input: &[ACell; ABSORBED],
        tamper: Option<(usize, usize)>,
    ) -> Result<ACell, Error> {
        let c = constants();
        let l = self.config.lanes.get(lane).ok_or(Error::Synthesis)?;
        let put = |region: &mut Region<'_, Fp>,
                   col: Column<Advice>,
                   idx: usize,
                   row: usize,
                   v: Value<Fp>| {
            let v = match tamper {
                Some(t) if t == (row, idx) => v.map(|x| x + Fp::one()),
                _ => v,
            };
            region.assign_advice(|| "poseidon", col, offset + row, || v)
        };
        let mds = |x: [Value<Fp>; 3]| -> [Value<Fp>; 3] {
            [0, 1, 2].map(|i| {
                x.iter()
                    .enumerate()
                    .fold(Value::known(Fp::zero()), |acc, (j, &xj)| {
                        acc + xj * Value::known(c.mds[i][j])
                    })
            })
        };
        let sq = |x: Value<Fp>| x * x;
        let mut state = [Value::known(Fp::zero()); 3];
        let mut digest = None;
        let mut absorbed = input.iter();
        for row in 0..BLOCK_ROWS {
            let kind = row_kind(row);
            // The state cells (the start row has none).
            if kind != RowKind::Start {
                for (j, &col) in l.s.iter().enumerate() {
                    let cell = put(region, col, j, row, state[j])?;
                    if j == 0 && kind == RowKind::Output {
                        digest = Some(cell);
                    }
                }
            }
            let q = self.selector_of(l, kind);
            if let Some(q) = q {
                q.enable(region, offset + row)?;
            }
            state = match kind {
                RowKind::Start | RowKind::Absorb => {
                    let mut w = [Value::known(Fp::zero()); 2];
                    for (j, wj) in w.iter_mut().enumerate() {
                        let src = absorbed.next().ok_or(Error::Synthesis)?;
                        let cell = src.copy_advice(|| "absorbed", region, l.u[j], offset + row)?;
                        *wj = cell.value().copied();
                        if tamper == Some((row, 3 + j)) {
                            let v = cell.value().map(|x| *x + Fp::one());
                            *wj = v;
                            region.assign_advice(|| "absorbed", l.u[j], offset + row, || v)?;
                        }
                    }
                    if kind == RowKind::Start {
                        [w[0], w[1], Value::known(c.capacity)]
                    } else {
                        [state[0] + w[0], state[1] + w[1], state[2]]
                    }
                }
                RowKind::Full(r) => {
                    let x = [0, 1, 2].map(|j| state[j] + Value::known(c.rc[r][j]));
                    let mut y = [Value::known(Fp::zero()); 3];
                    for j in 0..3 {
                        let cell = put(region, l.u[j], 3 + j, row, sq(x[j]))?;
                        let u = cell.value().copied();
                        y[j] = u * u * x[j];
                    }
                    mds(y)
                }
                RowKind::Partial(r) => {
                    let a = state[0] + Value::known(c.rc[r][0]);
                    let u0 = put(region, l.u[0], 3, row, sq(a))?.value().copied();
                    let t = [
                        u0 * u0 * a,
                        state[1] + Value::known(c.rc[r][1]),
                        state[2] + Value::known(c.rc[r][2]),
                    ];
                    let mid = mds(t);
                    let m = put(region, l.u[1], 4, row, mid[0])?.value().copied();
                    let b = m + Value::known(c.rc[r + 1][0]);
                    let u2 = put(region, l.u[2], 5, row, sq(b))?.value().copied();
                    mds([
                        u2 * u2 * b,
                        mid[1] + Value::known(c.rc[r + 1][1]),
                        mid[2] + Value::known(c.rc[r + 1][2]),
                    ])
                }
                RowKind::Output => state,
            };
        }
        digest.ok_or(Error::Synthesis)
    }

    fn selector_of(&self, l: &HashLane, kind: RowKind) -> Option<Selector> {
        match kind {
            RowKind::Start => Some(l.q_start),
            RowKind::Absorb => Some(l.q_absorb),
            RowKind::Full(_) => Some(l.q_full),
            RowKind::Partial(_) => Some(l.q_partial),
            RowKind::Output => None,
        }
    }
}

#[cfg(test)]
mod tests;
