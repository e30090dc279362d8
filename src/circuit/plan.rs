//! The compiler's middle: a quantized model becomes a flat list of steps over numbered cells.
//!
//! Every step is one of a handful of row shapes that the chips in [`super::chips`] lay out (a dot
//! product, a product of two cells, a table lookup, an equality). Row counts, k and the witness
//! all come from this one plan, so the count that picks k is exactly what synthesis lays out, and
//! the structure never depends on witness values (keygen sees the same circuit as the prover).

use std::collections::HashMap;

use halo2_proofs::pasta::Fp;
use serde::{Deserialize, Serialize};

use super::chips::{fe, fe_to_i128};
use super::commit;
use super::{CompileError, Disclosure, ParamVisibility, Visibility};

use crate::quantize::{
    INTERP_FINE_BITS, QOp, QuantizedModel, Selection, TableFn, interp_domain, matmul_offsets,
    rescale, table_entry,
};
use crate::tensor::{Tensor, Window, broadcast_index_map, numel, reduction_map};

pub type CellId = usize;

/// Lanes of the Poseidon chip unless the compiler chooses (see [`super::compile_as`]).
pub const DEFAULT_HASH_LANES: usize = 4;

/// Rows after which a node's steps continue in a new region (see [`Plan::regions`]).
pub const REGION_ROWS: usize = 64;

/// The rows of a running sum over `items`, `per` to a row: at least one row, possibly empty (a
/// dot product of no terms still has its output row).
pub fn row_chunks<T>(items: &[T], per: usize) -> impl Iterator<Item = &[T]> {
    let rows = items.len().max(1).div_ceil(per);
    (0..rows).map(move |r| &items[(r * per).min(items.len())..((r + 1) * per).min(items.len())])
}

/// Products per row of the mul gate: one per three of the lane and accumulator columns.
pub fn products_per_row(columns: usize) -> usize {
    columns / 3
}

/// One step of the plan. A cell is assigned where it first appears (the prover chooses its
/// value, and the step's gate constrains it); every later appearance is a copy, bound to the first
/// by the permutation argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Graph inputs, read from the instance column into lanes (`lanes` per row).
    Input { cells: Vec<(CellId, usize)> },
    /// Private values the prover chooses (hashed or private inputs, the salt), `lanes` per row,
    /// with no gate of their own: later steps bind them (range checks, the hash).
    Witness { cells: Vec<CellId> },
    /// The Poseidon chain of [`super::commit::chain`] over the cells, equal to instance `row`
    /// (`label` names its regions: the input or the weights digest).
    /// `zero` is a cell holding 0 (the padding of the chains' join).
    Hash {
        msg: Vec<CellId>,
        zero: CellId,
        row: usize,
        label: &'static str,
    },
    /// `out = c + Σ cell·weight` over as many rows as the terms need. With `digits: Some(nb)`,
    /// every term cell is also a digit: the first `nb` (at most 2) are bits, the rest base-4
    /// digits (a range check).
    Dot {
        terms: Vec<(CellId, i128)>,
        c: i128,
        digits: Option<u8>,
        out: CellId,
    },
    /// `out = Σ a·b` over the pairs (a dot product of two runtime vectors), as many pairs per
    /// row as the group has lane pairs.
    PairDot {
        pairs: Vec<(CellId, CellId)>,
        out: CellId,
    },
    /// `out = a·b` for every `(a, b, out)`, several per row.
    Mul {
        items: Vec<(CellId, CellId, CellId)>,
    },
    /// `(table, x, out)` is a row of lookup table `table`.
    Lookup { table: u64, x: CellId, out: CellId },
    /// `a == b` (both already assigned).
    Equal { a: CellId, b: CellId },
    /// The cell equals row `row` of the instance column (public output).
    Output { cell: CellId, row: usize },
}

/// A parameter tensor of a circuit with hashed parameters (see [`super::commit::param_tensors`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamTensor {
    /// The quantized node it belongs to.
    pub node: String,
    /// weight, bias or constant.
    pub kind: String,
    pub len: usize,
    /// Signed bits it is range-checked to.
    pub bits: u32,
}

#[derive(Clone, Debug)]
pub struct Plan {
    /// Lanes in all, in `groups` groups (see [`super::chips::Columns`]).
    pub lanes: usize,
    pub groups: usize,
    pub input: Visibility,
    pub params: ParamVisibility,
    /// A hashed input with a private salt (see [`Disclosure::salt`]).
    pub salted: bool,
    /// The parameter tensors in the weights digest (hashed parameters only).
    pub param_tensors: Vec<ParamTensor>,
    /// The most chains any digest of the plan runs in (0 without digests).
    pub max_chains: usize,
    /// Lanes of the Poseidon chip: chains hashed side by side (0 without digests).
    pub hash_lanes: usize,
    /// Names of the quantized model's nodes, for region names.
    pub node_names: Vec<String>,
    /// Signed bits every range-checked activation must fit.
    pub activation_bits: u32,
    /// (node index of the quantized model, step); inputs and outputs use `usize::MAX`.
    pub steps: Vec<(usize, Step)>,
    /// Witness value of every cell; None when planned without a witness (keygen, verifier).
    /// Field elements: a product of many witness values (the running product of a max over a
    /// long window) leaves every integer type long before it reaches its zero factor.
    pub values: Vec<Option<Fp>>,
    pub tables: Vec<TableSpec>,
    /// Tables of constants selected by runtime indices (ids shared with `tables`).
    pub data_tables: Vec<DataTable>,
    /// The public instance: the inputs (public), their digest (hashed) or nothing (private),
    /// then the outputs.
    pub instance: Option<Vec<Fp>>,
    pub instance_len: usize,
}

/// Where a step of a region sits: its lane group (dot products) and its first row in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub group: usize,
    pub row: usize,
}

/// A region of the layout: the consecutive steps of one node (or one input hash), placed.
#[derive(Clone, Debug)]
pub struct RegionPlan {
    pub node: usize,
    pub steps: std::ops::Range<usize>,
    pub places: Vec<Place>,
    pub height: usize,
}

impl Plan {
    /// Lanes per group: the multiply-adds per row of one dot product.
    pub fn width(&self) -> usize {
        self.lanes / self.groups
    }

    /// Products per row of a pair dot: a group's lanes in pairs.
    pub fn pairs_per_row(&self) -> usize {
        (self.width() / 2).max(1)
    }

    /// Rows a step occupies.
    pub fn step_rows(&self, s: &Step) -> usize {
        match s {
            Step::Input { cells } => cells.len().div_ceil(self.lanes),
            Step::Witness { cells } => cells.len().div_ceil(self.lanes),
            // The Poseidon chip's own columns, slot by slot.
            Step::Hash { msg, .. } => {
                hash_schedule(msg.len(), self.hash_lanes).len() * super::poseidon::BLOCK_ROWS
            }
            Step::Dot { terms, .. } => terms.len().max(1).div_ceil(self.width()),
            Step::PairDot { pairs, .. } => pairs.len().max(1).div_ceil(self.pairs_per_row()),
            Step::Mul { items } => items
                .len()
                .div_ceil(products_per_row(self.lanes + self.groups)),
            Step::Lookup { .. } => 1,
            Step::Equal { .. } | Step::Output { .. } => 0,
        }
    }

    /// The regions in layout order. Within a region each dot product goes down the group that
    /// is least filled so far; other steps take whole rows below everything placed before them.
    /// Synthesis lays out exactly these places, so the row count is exact.
    pub fn regions(&self) -> Vec<RegionPlan> {
        let mut out = vec![];
        let mut i = 0;
        while i < self.steps.len() {
            let node = self.steps[i].0;
            if let Step::Hash { .. } = &self.steps[i].1 {
                out.push(RegionPlan {
                    node,
                    steps: i..i + 1,
                    places: vec![Place { group: 0, row: 0 }],
                    height: self.step_rows(&self.steps[i].1),
                });
                i += 1;
                continue;
            }
            let mut j = i;
            let mut h = vec![0usize; self.groups];
            let mut places = vec![];
            // A node's steps, cut into regions of about REGION_ROWS rows: halo2's MockProver
            // checks each gate's cells against its region's cell list, which is quadratic in
            // region size.
            while j < self.steps.len()
                && self.steps[j].0 == node
                && !matches!(self.steps[j].1, Step::Hash { .. })
                && h.iter().copied().min().unwrap_or(0) < REGION_ROWS
            {
                let s = &self.steps[j].1;
                j += 1;
                let rows = self.step_rows(s);
                match s {
                    Step::Dot { .. } | Step::PairDot { .. } => {
                        let g = (0..self.groups).min_by_key(|&g| (h[g], g)).unwrap_or(0);
                        places.push(Place {
                            group: g,
                            row: h[g],
                        });
                        h[g] += rows;
                    }
                    Step::Equal { .. } | Step::Output { .. } => {
                        places.push(Place { group: 0, row: 0 })
                    }
                    _ => {
                        let top = h.iter().copied().max().unwrap_or(0);
                        places.push(Place { group: 0, row: top });
                        h.fill(top + rows);
                    }
                }
            }
            out.push(RegionPlan {
                node,
                steps: i..j,
                places,
                height: h.iter().copied().max().unwrap_or(0),
            });
            i = j;
        }
        out
    }

    /// Rows the layout uses: the model's regions one after another, and beside them, in the
    /// Poseidon chip's own columns, the digests'.
    pub fn rows(&self) -> usize {
        self.model_rows().max(self.digest_rows())
    }

    /// Rows of the model's regions (the digests' run beside them).
    pub fn model_rows(&self) -> usize {
        self.regions()
            .iter()
            .filter(|r| !matches!(self.steps[r.steps.start].1, Step::Hash { .. }))
            .map(|r| r.height)
            .sum()
    }

    /// Rows of the digests alone (each is a region of its own).
    pub fn digest_rows(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, s)| matches!(s, Step::Hash { .. }))
            .map(|(_, s)| self.step_rows(s))
            .sum()
    }

    /// Whether the circuit has a lookup argument (any table).
    pub fn has_lookups(&self) -> bool {
        !self.tables.is_empty() || !self.data_tables.is_empty()
    }

    pub fn table_rows(&self) -> usize {
        // One all-zero row for the disabled lookup, then every table.
        1 + self.tables.iter().map(|t| t.len()).sum::<usize>()
            + self
                .data_tables
                .iter()
                .map(|t| t.values.len())
                .sum::<usize>()
    }

    /// Rows per quantized-model node.
    pub fn rows_per_node(&self, nodes: usize) -> (Vec<usize>, usize) {
        let mut per = vec![0; nodes];
        let mut io = 0;
        for r in self.regions() {
            if let Step::Hash { .. } = self.steps[r.steps.start].1 {
                // Beside the model, not in its rows.
                continue;
            }
            if r.node < nodes {
                per[r.node] += r.height
            } else {
                io += r.height
            }
        }
        (per, io)
    }
}

pub(super) type PResult<T> = Result<T, CompileError>;

mod activations;
mod arithmetic;
mod builder;
mod dense;
mod digests;
mod indexing;
mod pooling;
mod shape;
mod tables;

use builder::{Builder, Param};
use digests::plan_hashed_params;
pub use digests::{HashJob, hash_schedule};
pub use tables::{DataTable, DataTableInfo, TableSpec};

fn concat_cells(inputs: &[&Tensor<CellId>], axis: usize) -> Vec<CellId> {
    let shape = &inputs[0].shape;
    let outer: usize = shape[..axis].iter().product();
    let mut data = vec![];
    for o in 0..outer {
        for t in inputs {
            let chunk: usize = t.shape[axis..].iter().product();
            data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
        }
    }
    data
}

/// Reject parameters under which the gates' integer weights would overflow i128 or wrap in
/// the field: a quantized model comes from a file the verifier does not trust.
fn validate(qm: &QuantizedModel) -> PResult<()> {
    let bad = |node: &str, msg: String| CompileError {
        node: node.into(),
        msg,
    };
    let a = qm.config.activation_bits;
    if !(2..=62).contains(&a) {
        return Err(bad(
            "config",
            format!("activation_bits {a} is outside 2..=62"),
        ));
    }
    if let Some(w) = &qm.redacted {
        let n = commit::param_tensors(qm).len();
        if w.len() != n || w.iter().any(|b| !(2..=64).contains(b)) {
            return Err(bad(
                "redacted",
                format!(
                    "{} widths for {n} parameter tensors, each 2 to 64 bits",
                    w.len()
                ),
            ));
        }
    }
    for n in &qm.nodes {
        let problem = match &n.op {
            QOp::ShiftLeft { bits } if *bits >= 64 => Some(format!("shift by {bits} bits")),
            QOp::LeakyRelu { shift, .. } if *shift >= 64 => Some(format!("shift by {shift} bits")),
            QOp::Rescale { divisor } if divisor.iter().any(|&d| d == 0 || d > 1 << 62) => {
                Some("a divisor of 0 or above 2^62".into())
            }
            QOp::Linear { k: 0, .. } => Some("a linear layer with k = 0".into()),
            QOp::Interp { step_bits, .. } if !(1..=30).contains(step_bits) => {
                Some(format!("an interpolation step of 2^{step_bits}"))
            }
            QOp::Table { lo, hi, .. } | QOp::Interp { lo, hi, .. }
                if lo > hi || *hi as i128 - *lo as i128 > 1 << 24 =>
            {
                Some(format!("a table range [{lo}, {hi}]"))
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Err(bad(&n.origin, format!("{p} is not supported")));
        }
    }
    Ok(())
}

/// Plan the circuit of `qm`. With `witness` (the integer evaluator's value of every tensor), every
/// cell gets its value; without it the plan has the same structure and no values.
pub fn plan(
    qm: &QuantizedModel,
    lanes: usize,
    groups: usize,
    dis: Disclosure,
    witness: Option<&[Tensor<i64>]>,
) -> PResult<Plan> {
    let (vis, salt) = (dis.input, dis.salt);
    validate(qm)?;
    if qm.redacted.is_some() && (dis.params == ParamVisibility::Fixed || witness.is_some()) {
        return Err(CompileError {
            node: "redacted".into(),
            msg: "a redacted model has no weights: it only re-derives the circuit of a receipt \
                  with hashed weights"
                .into(),
        });
    }
    let mut b = Builder {
        qm,
        bits: qm.config.activation_bits,
        values: vec![],
        steps: vec![],
        node: usize::MAX,
        cells: vec![None; qm.values.len()],
        signs: HashMap::new(),
        tables: vec![],
        data_tables: vec![],
        zero: None,
        witness: witness.is_some(),
        expected: witness,
        params: None,
    };
    let mut row = 0;
    let mut instance: Option<Vec<Fp>> = witness.map(|_| vec![]);
    let input_values: Vec<i64> = match witness {
        Some(w) => qm.inputs.iter().flat_map(|&v| w[v].data.clone()).collect(),
        None => vec![],
    };
    let mut all_inputs = vec![];
    for &v in &qm.inputs {
        let n = numel(&qm.values[v].shape);
        let cs: Vec<CellId> = (0..n)
            .map(|i| b.cell(witness.map(|w| w[v].data[i] as i128)))
            .collect();
        all_inputs.extend(cs.iter().copied());
        b.cells[v] = Some(cs);
    }
    match vis {
        // Inputs: instance rows 0.., laid into lanes.
        Visibility::Public => {
            let cells: Vec<(CellId, usize)> = all_inputs
                .iter()
                .enumerate()
                .map(|(i, &c)| (c, i))
                .collect();
            if let Some(inst) = instance.as_mut() {
                inst.extend(input_values.iter().map(|&x| fe(x as i128)));
            }
            row = cells.len();
            b.push(Step::Input { cells });
        }
        // Inputs the prover chooses, range-checked to the activation range so they are valid
        // quantized values; hashed inputs are also packed and hashed into instance row 0.
        Visibility::Hashed | Visibility::Private => {
            let hashed = vis == Visibility::Hashed;
            let salt_cell = match salt {
                Some(s) if hashed => Some(b.cell(witness.map(|_| s))),
                _ => None,
            };
            let mut cells = all_inputs.clone();
            cells.extend(salt_cell);
            b.push(Step::Witness { cells });
            for &c in &all_inputs {
                b.signed_range(c)?;
            }
            if hashed {
                let bits = b.bits;
                // Unsalted, the salt is the fixed zero cell.
                let salt_cell = salt_cell.unwrap_or_else(|| b.zero());
                let mut msg = vec![b.constant_i128(commit::tag()), salt_cell];
                msg.extend(b.pack(&all_inputs, bits));
                msg.push(b.constant_i128(all_inputs.len() as i128));
                if let Some(inst) = instance.as_mut() {
                    inst.push(commit::input_digest(&input_values, bits, salt.unwrap_or(0)));
                }
                b.hash(msg, 0, "input digest");
                row = 1;
            }
        }
    }
    let param_tensors = match dis.params {
        ParamVisibility::Fixed => vec![],
        ParamVisibility::Hashed => {
            row += 1;
            plan_hashed_params(&mut b, qm, &mut instance, row - 1)?
        }
    };
    for i in 0..qm.nodes.len() {
        b.node(i)?;
    }
    b.node = usize::MAX;
    for &v in &qm.outputs {
        let cells = b.value_cells(v)?;
        for (i, c) in cells.into_iter().enumerate() {
            if let (Some(inst), Some(w)) = (instance.as_mut(), witness) {
                inst.push(fe(w[v].data[i] as i128));
            }
            b.push(Step::Output { cell: c, row });
            row += 1;
        }
    }
    let steps = pack_products(fuse_equal_dots(b.steps, b.values.len()));
    let max_chains = steps
        .iter()
        .filter_map(|(_, s)| match s {
            Step::Hash { msg, .. } => Some(commit::chains(msg.len())),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    Ok(Plan {
        lanes,
        groups,
        input: vis,
        params: dis.params,
        salted: vis == Visibility::Hashed && salt.is_some(),
        param_tensors,
        max_chains,
        hash_lanes: max_chains.min(DEFAULT_HASH_LANES),
        node_names: qm.nodes.iter().map(|n| n.name.clone()).collect(),
        activation_bits: qm.config.activation_bits,
        steps,
        values: b.values,
        tables: b.tables,
        data_tables: b.data_tables,
        instance,
        instance_len: row,
    })
}

/// Every cell a step reads or writes.
fn step_cells(s: &Step) -> Vec<CellId> {
    match s {
        Step::Input { cells } => cells.iter().map(|c| c.0).collect(),
        Step::Witness { cells } => cells.clone(),
        Step::Hash { msg, zero, .. } => msg.iter().copied().chain([*zero]).collect(),
        Step::Dot { terms, out, .. } => terms.iter().map(|t| t.0).chain([*out]).collect(),
        Step::PairDot { pairs, out } => pairs
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .chain([*out])
            .collect(),
        Step::Mul { items } => items.iter().flat_map(|&(a, b, o)| [a, b, o]).collect(),
        Step::Lookup { x, out, .. } => vec![*x, *out],
        Step::Equal { a, b } => vec![*a, *b],
        Step::Output { cell, .. } => vec![*cell],
    }
}

/// Fold `x = c1 + Σ t1` and `chk = c2 + Σ t2` joined by `Equal(chk, x)` into one dot, when
/// neither x nor chk is used anywhere else (a linear layer feeding a rescale's check): solved for
/// a term u of t2 with weight ±1, `u = ±(c1 − c2 + Σ t1 − Σ t2∖u)`. The constraint is the same;
/// the cell x, its copy and a row disappear.
fn fuse_equal_dots(steps: Vec<(usize, Step)>, ncells: usize) -> Vec<(usize, Step)> {
    let mut uses = vec![0usize; ncells];
    let mut producer: Vec<Option<usize>> = vec![None; ncells];
    for (i, (_, s)) in steps.iter().enumerate() {
        for c in step_cells(s) {
            uses[c] += 1;
        }
        if let Step::Dot {
            digits: None, out, ..
        } = s
        {
            producer[*out] = Some(i);
        }
    }
    let mut steps: Vec<Option<(usize, Step)>> = steps.into_iter().map(Some).collect();
    for e in 0..steps.len() {
        let Some((_, Step::Equal { a, b })) = steps[e] else {
            continue;
        };
        for (chk, x) in [(a, b), (b, a)] {
            let (Some(i1), Some(i2)) = (producer[x], producer[chk]) else {
                continue;
            };
            if uses[x] != 2 || uses[chk] != 2 || i1 == i2 {
                continue;
            }
            let (
                Some((
                    _,
                    Step::Dot {
                        terms: t1, c: c1, ..
                    },
                )),
                Some((
                    node,
                    Step::Dot {
                        terms: t2, c: c2, ..
                    },
                )),
            ) = (&steps[i1], &steps[i2])
            else {
                continue;
            };
            let Some(k) = t2.iter().position(|&(u, w)| (w == 1 || w == -1) && u != x) else {
                continue;
            };
            let (u, sgn) = t2[k];
            let mut terms: Vec<(CellId, i128)> = t1.iter().map(|&(c, w)| (c, sgn * w)).collect();
            terms.extend(
                t2.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != k)
                    .map(|(_, &(c, w))| (c, -sgn * w)),
            );
            let fused = Step::Dot {
                terms,
                c: sgn * (c1 - c2),
                digits: None,
                out: u,
            };
            let node = *node;
            let at = i1.max(i2);
            steps[i1.min(i2)] = None;
            steps[at] = Some((node, fused));
            steps[e] = None;
            break;
        }
    }
    steps.into_iter().flatten().collect()
}

/// Merge runs of products of one node into multi-product steps (several products per row).
fn pack_products(steps: Vec<(usize, Step)>) -> Vec<(usize, Step)> {
    let mut out: Vec<(usize, Step)> = vec![];
    for (node, s) in steps {
        if let (Step::Mul { items }, Some((prev, Step::Mul { items: acc }))) = (&s, out.last_mut())
            && *prev == node
        {
            acc.extend(items.iter().copied());
            continue;
        }
        out.push((node, s));
    }
    out
}
