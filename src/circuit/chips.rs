//! Chips: the gates of the model circuit, each owning its config, in the halo2_gadgets style.
//!
//! Four row shapes carry every op of the quantized model (see `plan.rs` for how ops map onto
//! them): a dot product with fixed weights (linear layers, convolutions, sums, scaled adds, and,
//! with digit lanes, the base-4 decompositions of range checks), products of two cells (ReLU by
//! its sign bit, runtime × runtime products, max-pool witnesses), a table lookup (element-wise
//! functions), and instance I/O.

use halo2_proofs::circuit::{AssignedCell, Region, Value};
use halo2_proofs::pasta::Fp;
use halo2_proofs::pasta::group::ff::PrimeField;
use halo2_proofs::plonk::{
    Advice, Column, ConstraintSystem, Error, Expression, Fixed, Instance, Selector, TableColumn,
};
use halo2_proofs::poly::Rotation;

pub type ACell = AssignedCell<Fp, Fp>;

/// Names of the custom gates, as halo2 reports them and circuit.json lists them.
pub const GATE_DOT_START: &str = "dot start";
pub const GATE_DOT_CHAIN: &str = "dot chain";
pub const GATE_DIGITS: &str = "digits";
pub const GATE_PAIR_START: &str = "pair dot start";
pub const GATE_PAIR_CHAIN: &str = "pair dot chain";
pub const GATE_MUL: &str = "mul";

/// A signed integer as a field element.
pub fn fe(v: i128) -> Fp {
    if v >= 0 {
        Fp::from_u128(v as u128)
    } else {
        -Fp::from_u128(v.unsigned_abs())
    }
}

/// The signed integer a field element stands for, when it is one of `(-2^127, 2^127)` (the
/// inverse of [`fe`]); None for any other element, such as a long product of witness values.
pub fn fe_to_i128(x: Fp) -> Option<i128> {
    let small = |v: Fp| {
        let r = v.to_repr();
        let (lo, hi) = r.as_ref().split_at(16);
        (hi.iter().all(|&b| b == 0) && lo[15] < 0x80)
            .then(|| u128::from_le_bytes(lo.try_into().expect("16 bytes")) as i128)
    };
    small(x).or_else(|| small(-x).map(|v| -v))
}

/// Columns shared by the chips: `groups` groups of `width` advice lanes, each with its own
/// accumulator, fixed weight per lane and fixed constant; and the public instance column. A dot
/// product runs down one group, so independent dot products share rows side by side.
#[derive(Clone, Debug)]
pub struct Columns {
    /// Every lane, group by group.
    pub lanes: Vec<Column<Advice>>,
    pub accs: Vec<Column<Advice>>,
    pub weights: Vec<Column<Fixed>>,
    pub cs: Vec<Column<Fixed>>,
    pub width: usize,
    pub instance: Column<Instance>,
}

impl Columns {
    pub fn configure(meta: &mut ConstraintSystem<Fp>, lanes: usize, groups: usize) -> Self {
        let width = lanes / groups;
        let lanes: Vec<Column<Advice>> =
            (0..width * groups).map(|_| meta.advice_column()).collect();
        let accs: Vec<Column<Advice>> = (0..groups).map(|_| meta.advice_column()).collect();
        let weights = (0..lanes.len()).map(|_| meta.fixed_column()).collect();
        let cs = (0..groups).map(|_| meta.fixed_column()).collect();
        let instance = meta.instance_column();
        for &l in lanes.iter().chain(&accs) {
            meta.enable_equality(l);
        }
        meta.enable_equality(instance);
        Columns {
            lanes,
            accs,
            weights,
            cs,
            width,
            instance,
        }
    }

    /// Lanes of group `g`.
    pub fn group_lanes(&self, g: usize) -> &[Column<Advice>] {
        &self.lanes[g * self.width..(g + 1) * self.width]
    }

    /// Weight columns of group `g`.
    pub fn group_weights(&self, g: usize) -> &[Column<Fixed>] {
        &self.weights[g * self.width..(g + 1) * self.width]
    }
}

// ------------------------------------------------------------------------------------------------
// Dot product

/// Instructions of the dot-product chip.
pub trait DotInstructions {
    /// Lay out `acc = c + Σ x_i·w_i` over consecutive rows from `offset`; `x` are already-placed
    /// lane values by row. With `digits = Some(nb)`, every lane of those rows is a digit: the
    /// first `nb` (at most 2) lanes of the first row are bits, every other lane a base-4 digit.
    fn dot_rows(
        &self,
        region: &mut Region<'_, Fp>,
        group: usize,
        offset: usize,
        rows: &[DotRow],
        digits: Option<u8>,
    ) -> Result<(), Error>;

    /// Enable the pair-dot gates on `rows` consecutive rows from `offset` (the lanes and the
    /// accumulator are already placed).
    fn pair_rows(
        &self,
        region: &mut Region<'_, Fp>,
        group: usize,
        offset: usize,
        rows: usize,
    ) -> Result<(), Error>;
}

/// One row of a dot product: the weights, the constant and the accumulator's value.
pub struct DotRow {
    pub weights: Vec<i128>,
    pub c: i128,
    pub first: bool,
}

#[derive(Clone, Debug)]
pub struct DotConfig {
    pub cols: Columns,
    /// One per group.
    pub groups: Vec<DotGroup>,
}

/// The selectors of one group of lanes.
#[derive(Clone, Debug)]
pub struct DotGroup {
    /// First row of a dot product: `acc = c + Σ a_i·w_i`.
    pub q_start: Selector,
    /// Later rows: `acc = acc_prev + c + Σ a_i·w_i`.
    pub q_chain: Selector,
    /// Every lane is a digit: a bit or a base-4 digit (see [`DotChip::configure`]).
    pub q_dig: Selector,
    /// First row of a dot product of two runtime vectors: `acc = Σ a_2i·a_2i+1`.
    pub q_pair_start: Selector,
    /// Its later rows: `acc = acc_prev + Σ a_2i·a_2i+1`.
    pub q_pair_chain: Selector,
    /// Digit kind of the group's lanes 0 and 1 (1: base 4, 0: bit), so a range check's sign bit
    /// and an odd bit can share a row with base-4 digits.
    pub kind: [Column<Fixed>; 2],
}

pub struct DotChip {
    pub config: DotConfig,
}

impl DotChip {
    /// Gates "dot start", "dot chain", "digits", "pair dot start" and "pair dot chain".
    ///
    /// ```text
    ///  row | a_0 … a_{L-1} | acc      | w_0 … w_{L-1} | c | e_0 e_1 | q_start q_chain q_dig
    ///  r-1 |               | acc_prev |               |   |         |
    ///  r   | x_0 … x_{L-1} | acc      | w_0 … w_{L-1} | c | e_0 e_1 | 1/0     0/1     0/1
    ///
    ///  dot start:  q_start · (acc − c − Σ x_i·w_i)                 = 0
    ///  dot chain:  q_chain · (acc − acc_prev − c − Σ x_i·w_i)      = 0
    ///  digits:     q_dig · x_i·(x_i − 1)·(x_i − 2e_i)·(x_i − 3e_i) = 0   for lanes i < 2
    ///              q_dig · x_i·(x_i − 1)·(x_i − 2)·(x_i − 3)       = 0   for lanes i ≥ 2
    /// ```
    /// A digit is in {0, 1, 2, 3}, or in {0, 1} where the fixed `e_i` is 0 (then the factors are
    /// x³·(x − 1)). Base-4 digits halve the cells of a range check against bits; the gate has
    /// degree 5, which also lets the permutation argument take three columns per product.
    ///
    /// A dot product of two runtime vectors (hashed weights, MatMul) pairs the lanes instead:
    ///
    /// ```text
    ///  row | a_0 a_1 | a_2 a_3 | … | acc      | q_pair_start q_pair_chain
    ///  r-1 |         |         |   | acc_prev |
    ///  r   | x_0 y_0 | x_1 y_1 | … | acc      | 1/0          0/1
    ///
    ///  pair dot start:  q_pair_start · (acc − Σ x_i·y_i)            = 0
    ///  pair dot chain:  q_pair_chain · (acc − acc_prev − Σ x_i·y_i) = 0
    /// ```
    /// (an odd last lane is unused; unused pairs hold 0·0).
    pub fn configure(meta: &mut ConstraintSystem<Fp>, cols: &Columns) -> DotConfig {
        let groups = (0..cols.accs.len())
            .map(|g| Self::configure_group(meta, cols, g))
            .collect();
        DotConfig {
            cols: cols.clone(),
            groups,
        }
    }

    fn configure_group(meta: &mut ConstraintSystem<Fp>, cols: &Columns, g: usize) -> DotGroup {
        let q_start = meta.selector();
        let q_chain = meta.selector();
        let q_dig = meta.selector();
        let q_pair_start = meta.selector();
        let q_pair_chain = meta.selector();
        let kind = [meta.fixed_column(), meta.fixed_column()];
        let (lanes, weights) = (cols.group_lanes(g), cols.group_weights(g));
        let (acc_col, c_col) = (cols.accs[g], cols.cs[g]);
        let sum = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fp>| {
            let mut s = meta.query_fixed(c_col);
            for (&a, &w) in lanes.iter().zip(weights) {
                s = s + meta.query_advice(a, Rotation::cur()) * meta.query_fixed(w);
            }
            s
        };
        running_sum(
            meta,
            acc_col,
            [GATE_DOT_START, GATE_DOT_CHAIN],
            [q_start, q_chain],
            sum,
        );
        meta.create_gate(GATE_DIGITS, |meta| {
            let q = meta.query_selector(q_dig);
            let k = |n: u64| Expression::Constant(Fp::from(n));
            lanes
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let x = meta.query_advice(a, Rotation::cur());
                    let (two, three) = match kind.get(i) {
                        Some(&e) => {
                            let e = meta.query_fixed(e);
                            (e.clone() * k(2), e * k(3))
                        }
                        None => (k(2), k(3)),
                    };
                    q.clone() * x.clone() * (x.clone() - k(1)) * (x.clone() - two) * (x - three)
                })
                .collect::<Vec<_>>()
        });
        let pairs = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fp>| {
            lanes
                .chunks_exact(2)
                .map(|p| {
                    meta.query_advice(p[0], Rotation::cur())
                        * meta.query_advice(p[1], Rotation::cur())
                })
                .reduce(|a, b| a + b)
                .expect("a group has two lanes")
        };
        running_sum(
            meta,
            acc_col,
            [GATE_PAIR_START, GATE_PAIR_CHAIN],
            [q_pair_start, q_pair_chain],
            pairs,
        );
        DotGroup {
            q_start,
            q_chain,
            q_dig,
            q_pair_start,
            q_pair_chain,
            kind,
        }
    }
}

/// Gates of a running sum down an accumulator column: `acc = term` on a start row, `acc =
/// acc_prev + term` on a chain row.
fn running_sum(
    meta: &mut ConstraintSystem<Fp>,
    acc_col: Column<Advice>,
    names: [&'static str; 2],
    [start, chain]: [Selector; 2],
    term: impl Fn(&mut halo2_proofs::plonk::VirtualCells<'_, Fp>) -> Expression<Fp>,
) {
    meta.create_gate(names[0], |meta| {
        let q = meta.query_selector(start);
        let acc = meta.query_advice(acc_col, Rotation::cur());
        vec![q * (acc - term(meta))]
    });
    meta.create_gate(names[1], |meta| {
        let q = meta.query_selector(chain);
        let acc = meta.query_advice(acc_col, Rotation::cur());
        let prev = meta.query_advice(acc_col, Rotation::prev());
        vec![q * (acc - prev - term(meta))]
    });
}

impl DotInstructions for DotChip {
    fn dot_rows(
        &self,
        region: &mut Region<'_, Fp>,
        group: usize,
        offset: usize,
        rows: &[DotRow],
        digits: Option<u8>,
    ) -> Result<(), Error> {
        let cols = &self.config.cols;
        let cfg = &self.config.groups[group];
        for (r, row) in rows.iter().enumerate() {
            let o = offset + r;
            if row.first {
                cfg.q_start.enable(region, o)?
            } else {
                cfg.q_chain.enable(region, o)?
            }
            if let Some(nb) = digits {
                cfg.q_dig.enable(region, o)?;
                for (i, &e) in cfg.kind.iter().enumerate() {
                    let base4 = r > 0 || i >= nb as usize;
                    region.assign_fixed(
                        || "digit kind",
                        e,
                        o,
                        || Value::known(fe(base4 as i128)),
                    )?;
                }
            }
            for (i, &w) in cols.group_weights(group).iter().enumerate() {
                let wv = row.weights.get(i).copied().unwrap_or(0);
                region.assign_fixed(|| "w", w, o, || Value::known(fe(wv)))?;
            }
            region.assign_fixed(|| "c", cols.cs[group], o, || Value::known(fe(row.c)))?;
        }
        Ok(())
    }

    fn pair_rows(
        &self,
        region: &mut Region<'_, Fp>,
        group: usize,
        offset: usize,
        rows: usize,
    ) -> Result<(), Error> {
        let cfg = &self.config.groups[group];
        for r in 0..rows {
            let q = if r == 0 {
                cfg.q_pair_start
            } else {
                cfg.q_pair_chain
            };
            q.enable(region, offset + r)?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------
// Product of two cells

#[derive(Clone, Debug)]
pub struct MulConfig {
    pub cols: Columns,
    pub q_mul: Selector,
}

pub struct MulChip {
    pub config: MulConfig,
}

impl MulChip {
    /// Gate "mul": the lane and accumulator columns, taken three at a time, hold products.
    ///
    /// ```text
    ///  row | a_0 | a_1 | a_2 | a_3 | a_4 | a_5 | … | acc | q_mul
    ///  r   | x_0 | y_0 | z_0 | x_1 | y_1 | z_1 | … |     | 1
    ///
    ///  mul:  q_mul · (z_t − x_t·y_t) = 0   for every triple t
    /// ```
    /// Unused triples of a row hold 0·0 = 0.
    pub fn configure(meta: &mut ConstraintSystem<Fp>, cols: &Columns) -> MulConfig {
        let q_mul = meta.selector();
        meta.create_gate(GATE_MUL, |meta| {
            let q = meta.query_selector(q_mul);
            MulConfig::triples(cols)
                .into_iter()
                .map(|[x, y, z]| {
                    let x = meta.query_advice(x, Rotation::cur());
                    let y = meta.query_advice(y, Rotation::cur());
                    let z = meta.query_advice(z, Rotation::cur());
                    q.clone() * (z - x * y)
                })
                .collect::<Vec<_>>()
        });
        MulConfig {
            cols: cols.clone(),
            q_mul,
        }
    }

    pub fn enable(&self, region: &mut Region<'_, Fp>, offset: usize) -> Result<(), Error> {
        self.config.q_mul.enable(region, offset)
    }
}

impl MulConfig {
    /// The (x, y, z) columns of each product of a row.
    pub fn triples(cols: &Columns) -> Vec<[Column<Advice>; 3]> {
        let all: Vec<Column<Advice>> = cols.lanes.iter().chain(&cols.accs).copied().collect();
        all.chunks_exact(3).map(|t| [t[0], t[1], t[2]]).collect()
    }
}

// ------------------------------------------------------------------------------------------------
// Table lookup

#[derive(Clone, Debug)]
pub struct TableConfig {
    pub cols: Columns,
    pub q_lookup: Selector,
    pub t_id: TableColumn,
    pub t_in: TableColumn,
    pub t_out: TableColumn,
}

pub struct TableChip {
    pub config: TableConfig,
}

impl TableChip {
    /// Lookup "table": the row's (table id, input, output) is a row of the tables.
    ///
    /// ```text
    ///  row | a_0 | acc | c  | q_lookup        table: t_id | t_in | t_out
    ///  r   | x   | y   | id | 1                       0    | 0    | 0      (disabled rows)
    ///                                                 id   | x    | f(x)
    ///
    ///  (q·c, q·x, q·y) ∈ (t_id, t_in, t_out)
    /// ```
    /// The id is fixed, so the prover cannot pick another table.
    pub fn configure(meta: &mut ConstraintSystem<Fp>, cols: &Columns) -> TableConfig {
        let q_lookup = meta.complex_selector();
        let t_id = meta.lookup_table_column();
        let t_in = meta.lookup_table_column();
        let t_out = meta.lookup_table_column();
        meta.lookup(|meta| {
            let q = meta.query_selector(q_lookup);
            let id = meta.query_fixed(cols.cs[0]);
            let x = meta.query_advice(cols.lanes[0], Rotation::cur());
            let y = meta.query_advice(cols.accs[0], Rotation::cur());
            vec![
                (q.clone() * id, t_id),
                (q.clone() * x, t_in),
                (q * y, t_out),
            ]
        });
        TableConfig {
            cols: cols.clone(),
            q_lookup,
            t_id,
            t_in,
            t_out,
        }
    }

    pub fn enable(&self, region: &mut Region<'_, Fp>, offset: usize, id: u64) -> Result<(), Error> {
        self.config.q_lookup.enable(region, offset)?;
        region.assign_fixed(
            || "table id",
            self.config.cols.cs[0],
            offset,
            || Value::known(Fp::from(id)),
        )?;
        Ok(())
    }
}
