//! Chips: the gates of the model circuit, each owning its config, in the halo2_gadgets style.
//!
//! Four row shapes carry every op of the quantized model (see `plan.rs` for how ops map onto
//! them): a dot product with fixed weights (linear layers, convolutions, sums, scaled adds, and,
//! with boolean lanes, bit decompositions for range checks), a product of two cells (ReLU by its
//! sign bit, runtime × runtime products, max-pool witnesses), a table lookup (Sigmoid, Tanh), and
//! instance I/O.

use halo2_proofs::circuit::{AssignedCell, Region, Value};
use halo2_proofs::pasta::Fp;
use halo2_proofs::pasta::group::ff::PrimeField;
use halo2_proofs::plonk::{
    Advice, Column, ConstraintSystem, Error, Expression, Fixed, Instance, Selector, TableColumn,
};
use halo2_proofs::poly::Rotation;

pub type ACell = AssignedCell<Fp, Fp>;

/// A signed integer as a field element.
pub fn fe(v: i128) -> Fp {
    if v >= 0 {
        Fp::from_u128(v as u128)
    } else {
        -Fp::from_u128(v.unsigned_abs())
    }
}

/// Columns shared by the chips: `lanes` advice columns, one accumulator, a fixed weight per lane,
/// a fixed constant, and the public instance column.
#[derive(Clone, Debug)]
pub struct Columns {
    pub lanes: Vec<Column<Advice>>,
    pub acc: Column<Advice>,
    pub weights: Vec<Column<Fixed>>,
    pub c: Column<Fixed>,
    pub instance: Column<Instance>,
}

impl Columns {
    pub fn configure(meta: &mut ConstraintSystem<Fp>, lanes: usize) -> Self {
        let lanes: Vec<Column<Advice>> = (0..lanes).map(|_| meta.advice_column()).collect();
        let acc = meta.advice_column();
        let weights = (0..lanes.len()).map(|_| meta.fixed_column()).collect();
        let c = meta.fixed_column();
        let instance = meta.instance_column();
        for &l in &lanes {
            meta.enable_equality(l);
        }
        meta.enable_equality(acc);
        meta.enable_equality(instance);
        Columns {
            lanes,
            acc,
            weights,
            c,
            instance,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Dot product

/// Instructions of the dot-product chip.
pub trait DotInstructions {
    /// Lay out `acc = c + Σ x_i·w_i` over consecutive rows from `offset`; `x` are already-placed
    /// lane values by row. With `bits`, every lane of those rows must be 0 or 1.
    fn dot_rows(
        &self,
        region: &mut Region<'_, Fp>,
        offset: usize,
        rows: &[DotRow],
        bits: bool,
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
    /// First row of a dot product: `acc = c + Σ a_i·w_i`.
    pub q_start: Selector,
    /// Later rows: `acc = acc_prev + c + Σ a_i·w_i`.
    pub q_chain: Selector,
    /// Every lane is a bit: `a_i·(1 − a_i) = 0`.
    pub q_bool: Selector,
}

pub struct DotChip {
    pub config: DotConfig,
}

impl DotChip {
    /// Gates "dot start", "dot chain" and "bits".
    ///
    /// ```text
    ///  row | a_0 … a_{L-1} | acc      | w_0 … w_{L-1} | c | q_start q_chain q_bool
    ///  r-1 |               | acc_prev |               |   |
    ///  r   | x_0 … x_{L-1} | acc      | w_0 … w_{L-1} | c | 1/0     0/1     0/1
    ///
    ///  dot start:  q_start · (acc − c − Σ x_i·w_i)            = 0
    ///  dot chain:  q_chain · (acc − acc_prev − c − Σ x_i·w_i) = 0
    ///  bits:       q_bool  · x_i · (1 − x_i)                  = 0   for every lane i
    /// ```
    pub fn configure(meta: &mut ConstraintSystem<Fp>, cols: &Columns) -> DotConfig {
        let q_start = meta.selector();
        let q_chain = meta.selector();
        let q_bool = meta.selector();
        let sum = |meta: &mut halo2_proofs::plonk::VirtualCells<'_, Fp>| {
            let mut s = meta.query_fixed(cols.c);
            for (&a, &w) in cols.lanes.iter().zip(&cols.weights) {
                s = s + meta.query_advice(a, Rotation::cur()) * meta.query_fixed(w);
            }
            s
        };
        meta.create_gate("dot start", |meta| {
            let q = meta.query_selector(q_start);
            let acc = meta.query_advice(cols.acc, Rotation::cur());
            vec![q * (acc - sum(meta))]
        });
        meta.create_gate("dot chain", |meta| {
            let q = meta.query_selector(q_chain);
            let acc = meta.query_advice(cols.acc, Rotation::cur());
            let prev = meta.query_advice(cols.acc, Rotation::prev());
            vec![q * (acc - prev - sum(meta))]
        });
        meta.create_gate("bits", |meta| {
            let q = meta.query_selector(q_bool);
            cols.lanes
                .iter()
                .map(|&a| {
                    let x = meta.query_advice(a, Rotation::cur());
                    q.clone() * x.clone() * (Expression::Constant(Fp::one()) - x)
                })
                .collect::<Vec<_>>()
        });
        DotConfig {
            cols: cols.clone(),
            q_start,
            q_chain,
            q_bool,
        }
    }
}

impl DotInstructions for DotChip {
    fn dot_rows(
        &self,
        region: &mut Region<'_, Fp>,
        offset: usize,
        rows: &[DotRow],
        bits: bool,
    ) -> Result<(), Error> {
        let cfg = &self.config;
        for (r, row) in rows.iter().enumerate() {
            let o = offset + r;
            if row.first {
                cfg.q_start.enable(region, o)?
            } else {
                cfg.q_chain.enable(region, o)?
            }
            if bits {
                cfg.q_bool.enable(region, o)?;
            }
            for (i, &w) in cfg.cols.weights.iter().enumerate() {
                let wv = row.weights.get(i).copied().unwrap_or(0);
                region.assign_fixed(|| "w", w, o, || Value::known(fe(wv)))?;
            }
            region.assign_fixed(|| "c", cfg.cols.c, o, || Value::known(fe(row.c)))?;
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
    /// Gate "mul".
    ///
    /// ```text
    ///  row | a_0 | a_1 | acc | q_mul
    ///  r   | x   | y   | z   | 1
    ///
    ///  mul:  q_mul · (z − x·y) = 0
    /// ```
    pub fn configure(meta: &mut ConstraintSystem<Fp>, cols: &Columns) -> MulConfig {
        let q_mul = meta.selector();
        meta.create_gate("mul", |meta| {
            let q = meta.query_selector(q_mul);
            let x = meta.query_advice(cols.lanes[0], Rotation::cur());
            let y = meta.query_advice(cols.lanes[1], Rotation::cur());
            let z = meta.query_advice(cols.acc, Rotation::cur());
            vec![q * (z - x * y)]
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
            let id = meta.query_fixed(cols.c);
            let x = meta.query_advice(cols.lanes[0], Rotation::cur());
            let y = meta.query_advice(cols.acc, Rotation::cur());
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
            self.config.cols.c,
            offset,
            || Value::known(Fp::from(id)),
        )?;
        Ok(())
    }
}
