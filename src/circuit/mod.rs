//! Stage 3 of the chain: the quantized model as one halo2 circuit (PLONKish, over the Pasta
//! field).
//!
//! `plan` turns the quantized graph into steps over cells; `chips` owns the gates; this module
//! lays the plan out in named regions (one per quantized node) and describes the result
//! (`circuit.json`).
//!
//! `Circuit::configure` takes no parameters, yet the column layout depends on the model (lane
//! count, whether it needs lookup tables). The layout is carried in a thread-local set around every
//! call into halo2 ([`with_layout`]); it is part of the circuit description, so the verifier
//! re-derives the same key.

pub mod chips;
pub mod commit;
mod compile;
pub mod plan;
pub mod poseidon;
mod synthesis;

pub use compile::*;
use synthesis::node_region_name;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use halo2_proofs::circuit::{Layouter, SimpleFloorPlanner, Value};
use halo2_proofs::pasta::Fp;
use halo2_proofs::plonk::{Circuit, ConstraintSystem, Error};
use serde::{Deserialize, Serialize};

use chips::{
    ACell, Columns, DotChip, DotConfig, DotInstructions, DotRow, MulChip, MulConfig, TableChip,
    TableConfig, fe,
};
use plan::{CellId, Plan, Step, TableSpec, row_chunks};
use poseidon::{PoseidonChip, PoseidonConfig};

use crate::quantize::QuantizedModel;
use crate::tensor::Tensor;

/// Version of the circuit format (`circuit.json`) and of the gate layout.
/// 4: `layout.salted` (an unsalted hashed input fixes its salt to 0 in the circuit).
/// 5: digests v2 (two halves per word, up to 16 chains) on our own Poseidon chip of degree 5, in
/// columns of its own (`layout.hash_lanes`).
pub const CIRCUIT_FORMAT: u32 = 5;
/// The halo2_proofs version the circuit is built with (pinned in Cargo.toml).
pub const HALO2_VERSION: &str = "0.4.1";
/// Default number of lanes (multiply-adds per row).
pub const DEFAULT_LANES: usize = 16;

/// How the graph inputs enter the circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// The input integers are public instance values.
    #[default]
    Public,
    /// The inputs are private; their Poseidon digest (see [`commit`]) is public.
    Hashed,
    /// The inputs are private and bound to nothing public: the proof shows that *some* input in
    /// range gives the output.
    Private,
}

impl std::str::FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(Visibility::Public),
            "hashed" => Ok(Visibility::Hashed),
            "private" => Ok(Visibility::Private),
            _ => Err(format!("`{s}`: expected public, hashed or private")),
        }
    }
}

/// How the model's parameters (every weight, bias and constant tensor) enter the circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamVisibility {
    /// Fixed columns: the values are part of the verifier key.
    #[default]
    Fixed,
    /// Private advice cells, range-checked, with their Poseidon digest (see
    /// [`commit::params_digest`]) public; the verifier key depends only on the architecture.
    Hashed,
}

impl std::str::FromStr for ParamVisibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fixed" => Ok(ParamVisibility::Fixed),
            "hashed" => Ok(ParamVisibility::Hashed),
            _ => Err(format!("`{s}`: expected fixed or hashed")),
        }
    }
}

impl ParamVisibility {
    pub fn name(self) -> &'static str {
        match self {
            ParamVisibility::Fixed => "fixed",
            ParamVisibility::Hashed => "hashed",
        }
    }
}

/// What the proof makes public about the input and the parameters, and the input's salt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disclosure {
    pub input: Visibility,
    pub params: ParamVisibility,
    /// Salt of a hashed input. None: unsalted, and the circuit fixes the salt to 0, so that a
    /// receipt's `salted: false` is bound by the verifier key, not only claimed.
    pub salt: Option<i128>,
}

impl Disclosure {
    /// Whether the circuit needs the Poseidon chip.
    pub fn hashes(&self) -> bool {
        self.input == Visibility::Hashed || self.params == ParamVisibility::Hashed
    }
}

impl Visibility {
    pub fn name(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Hashed => "hashed",
            Visibility::Private => "private",
        }
    }
}

/// What `configure` needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Lanes in all, in `groups` groups of equal width.
    pub lanes: usize,
    pub groups: usize,
    pub lookups: bool,
    pub input: Visibility,
    #[serde(default)]
    pub params: ParamVisibility,
    /// Lanes of the Poseidon chip (six advice columns each): chains hashed side by side.
    #[serde(default)]
    pub hash_lanes: usize,
    /// A hashed input's salt is a private witness; false: the circuit fixes it to 0.
    #[serde(default)]
    pub salted: bool,
}

impl Layout {
    /// The visibilities this layout was compiled for (whether there is a salt is part of the
    /// layout; its value is not).
    pub fn disclosure(&self) -> Disclosure {
        Disclosure {
            input: self.input,
            params: self.params,
            salt: self.salted.then_some(0),
        }
    }

    /// See [`Disclosure::hashes`].
    pub fn hashes(&self) -> bool {
        self.disclosure().hashes()
    }

    /// The prover's work per row, in committed polynomials (see [`compile_as`]): each advice
    /// column, one permutation product per three equality columns, four quotient pieces and
    /// three per lookup. A Poseidon lane has six advice columns, three with equality.
    pub fn committed_polys(&self) -> u64 {
        let lanes = (self.lanes + self.groups) as u64;
        let hash = if self.hashes() {
            self.hash_lanes.max(1) as u64
        } else {
            0
        };
        let advice = lanes + 6 * hash;
        let equality = lanes + 3 * hash + 1;
        advice + equality.div_ceil(3) + 4 + 3 * u64::from(self.lookups)
    }

    /// See [`lanes_text`].
    pub fn lanes_text(&self) -> String {
        lanes_text(self.lanes, self.groups)
    }
}

/// "32 lanes", or "4×8 lanes" for 4 groups of 8.
pub fn lanes_text(lanes: usize, groups: usize) -> String {
    if groups > 1 {
        format!("{groups}×{} lanes", lanes / groups)
    } else {
        format!("{lanes} lanes")
    }
}

thread_local! {
    static LAYOUT: Cell<Layout> = const {
        Cell::new(Layout {
            lanes: DEFAULT_LANES,
            groups: 1,
            lookups: false,
            input: Visibility::Public,
            params: ParamVisibility::Fixed,
            hash_lanes: 0,
            salted: false,
        })
    };
}

/// Run `f` (keygen, proving, verifying, MockProver) with `layout` as the circuit's column layout.
pub fn with_layout<R>(layout: Layout, f: impl FnOnce() -> R) -> R {
    let prev = LAYOUT.with(|l| l.replace(layout));
    let r = f();
    LAYOUT.with(|l| l.set(prev));
    r
}

#[derive(Clone, Debug)]
pub struct Config {
    dot: DotConfig,
    mul: MulConfig,
    table: Option<TableConfig>,
    /// The Poseidon chip (without digests, none).
    poseidon: Option<PoseidonConfig>,
}

/// How a cell assignment gets its value, for the soundness tests: a fresh cell is chosen by the
/// prover and bound by its row's gate; a copy is bound to an earlier cell (or the instance) by
/// the permutation argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occurrence {
    Fresh,
    Copy,
    /// A fresh cell in a lookup row: bound by the lookup argument.
    FreshLookup,
    /// A private value with no gate of its own (a hashed or private input, the salt): bound by
    /// the equalities of its range check or the hash, so a change shows in the permutation.
    Free,
}

/// The model circuit: the plan (structure, and the witness when proving).
#[derive(Clone, Debug)]
pub struct ModelCircuit {
    pub plan: Arc<Plan>,
    /// Test hook: add `delta` to the value of assignment number `index` (see [`occurrences`]).
    pub tamper: Option<(usize, i128)>,
}

impl ModelCircuit {
    pub fn new(plan: Plan) -> Self {
        ModelCircuit {
            plan: Arc::new(plan),
            tamper: None,
        }
    }

    pub fn layout(&self) -> Layout {
        Layout {
            lanes: self.plan.lanes,
            groups: self.plan.groups,
            lookups: self.plan.has_lookups(),
            input: self.plan.input,
            params: self.plan.params,
            hash_lanes: self.plan.hash_lanes,
            salted: self.plan.salted,
        }
    }

    /// The public instance column: inputs (or their digest), the weights digest (hashed
    /// parameters), then outputs.
    pub fn instance(&self) -> Option<Vec<Fp>> {
        self.plan.instance.clone()
    }
}

/// Every advice assignment of a plan, in synthesis order, and how it is bound.
pub fn occurrences(plan: &Plan) -> Vec<Occurrence> {
    let mut seen = vec![false; plan.values.len()];
    let mut out = vec![];
    fn use_cell(seen: &mut [bool], c: CellId, out: &mut Vec<Occurrence>) {
        out.push(if seen[c] {
            Occurrence::Copy
        } else {
            Occurrence::Fresh
        });
        seen[c] = true;
    }
    // A running sum's rows: its lanes, then a fresh partial sum or, on the last row, the output.
    fn running_sum(
        seen: &mut [bool],
        rows: Vec<Vec<CellId>>,
        o: CellId,
        out: &mut Vec<Occurrence>,
    ) {
        let n = rows.len();
        for (r, cells) in rows.into_iter().enumerate() {
            for c in cells {
                use_cell(seen, c, out);
            }
            if r + 1 < n {
                out.push(Occurrence::Fresh);
            } else {
                use_cell(seen, o, out);
            }
        }
    }
    for (_, s) in &plan.steps {
        match s {
            Step::Input { cells } => {
                for &(c, _) in cells {
                    out.push(Occurrence::Copy);
                    seen[c] = true;
                }
            }
            Step::Dot { terms, out: o, .. } => {
                let rows = row_chunks(terms, plan.width()).map(|r| r.iter().map(|t| t.0).collect());
                running_sum(&mut seen, rows.collect(), *o, &mut out);
            }
            Step::PairDot { pairs, out: o } => {
                let rows = row_chunks(pairs, plan.pairs_per_row())
                    .map(|r| r.iter().flat_map(|&(a, b)| [a, b]).collect());
                running_sum(&mut seen, rows.collect(), *o, &mut out);
            }
            Step::Mul { items } => {
                for &(a, b, o) in items {
                    use_cell(&mut seen, a, &mut out);
                    use_cell(&mut seen, b, &mut out);
                    use_cell(&mut seen, o, &mut out);
                }
            }
            Step::Lookup { x, out: o, .. } => {
                use_cell(&mut seen, *x, &mut out);
                out.push(if seen[*o] {
                    Occurrence::Copy
                } else {
                    Occurrence::FreshLookup
                });
                seen[*o] = true;
            }
            Step::Witness { cells } => {
                for &c in cells {
                    out.push(Occurrence::Free);
                    seen[c] = true;
                }
            }
            Step::Equal { .. } | Step::Output { .. } | Step::Hash { .. } => {}
        }
    }
    out
}

impl ModelCircuit {
    /// The names of the regions synthesis lays out, in order: each node's region, and for a
    /// digest the label of the Poseidon regions the gadget lays out itself.
    pub fn region_names(&self) -> Vec<String> {
        let plan = &*self.plan;
        plan.regions()
            .into_iter()
            .map(|rp| {
                let steps = &plan.steps[rp.steps.clone()];
                match steps.first() {
                    Some((_, Step::Hash { label, .. })) => format!("digest: {label}"),
                    _ => node_region_name(plan, rp.node, steps),
                }
            })
            .collect()
    }
}

/// Rows halo2 reserves at the end of every column for blinding (plus one), for our gate set.
pub fn reserved_rows(layout: Layout) -> usize {
    with_layout(layout, || {
        let mut cs = ConstraintSystem::<Fp>::default();
        let _ = ModelCircuit::configure(&mut cs);
        cs.minimum_rows()
    })
}

/// The circuit description (`circuit.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitInfo {
    pub format: u32,
    pub zkreceipt_version: String,
    pub halo2_proofs_version: String,
    pub proof_system: String,
    pub k: u32,
    pub rows: usize,
    pub table_rows: usize,
    pub layout: Layout,
    pub advice_columns: usize,
    pub fixed_columns: usize,
    pub instance_columns: usize,
    pub lookups: usize,
    pub gates: Vec<String>,
    pub tables: Vec<TableSpec>,
    /// Tables of constants selected by runtime indices (tree ensembles), without their entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_tables: Vec<plan::DataTableInfo>,
    pub activation_bits: u32,
    pub public_inputs: usize,
    pub public_outputs: usize,
    /// With hashed parameters: each parameter tensor, in the order the weights digest takes
    /// them, with the signed bits it is range-checked to.
    #[serde(default)]
    pub param_tensors: Vec<plan::ParamTensor>,
    /// Rows per quantized-model node (and for input/output), in evaluation order.
    pub rows_per_node: Vec<NodeRows>,
}

impl CircuitInfo {
    /// What sets k, in words: the largest of the gates' rows, the lookup tables' rows and the
    /// public values, plus the rows halo2 reserves, rounded up to a power of two (at least 2^4).
    pub fn k_reason(&self) -> String {
        let reserved = reserved_rows(self.layout);
        let public = self.public_inputs + self.public_outputs;
        let mut parts = [
            ("the gates' rows", self.rows),
            ("the lookup tables' rows", self.table_rows),
            ("the public values", public),
        ];
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let (what, n) = parts[0];
        let need = n + reserved;
        let others = parts[1..]
            .iter()
            .filter(|p| p.1 > 0)
            .map(|(w, n)| format!("{} {n}", w.trim_start_matches("the ")))
            .collect::<Vec<_>>()
            .join(", ");
        let others = if others.is_empty() {
            String::new()
        } else {
            format!(" ({others})")
        };
        if need <= 1 << 4 {
            return format!("the smallest circuit, 2^4 rows{others}");
        }
        format!(
            "{what}: {n} + {reserved} reserved = {need} ≤ 2^{}{others}",
            self.k
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRows {
    pub node: String,
    pub origin: String,
    pub op: String,
    pub rows: usize,
}

/// A compiled circuit: its description and plan.
pub struct Compiled {
    pub info: CircuitInfo,
    pub circuit: ModelCircuit,
}

/// Why a model does not compile (planning or layout), naming the node.
#[derive(Debug, Clone)]
pub struct CompileError {
    pub node: String,
    pub msg: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node `{}`: {}", self.node, self.msg)
    }
}

#[cfg(test)]
mod tests;
