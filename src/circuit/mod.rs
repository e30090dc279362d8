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
pub mod plan;
pub mod poseidon;
mod synthesis;

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
use plan::{CellId, Plan, Step, TableSpec};
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    for (_, s) in &plan.steps {
        match s {
            Step::Input { cells } => {
                for &(c, _) in cells {
                    out.push(Occurrence::Copy);
                    seen[c] = true;
                }
            }
            Step::Dot { terms, out: o, .. } => {
                let rows = plan.step_rows(s);
                for r in 0..rows {
                    let chunk = &terms[(r * plan.width()).min(terms.len())
                        ..((r + 1) * plan.width()).min(terms.len())];
                    for &(c, _) in chunk {
                        use_cell(&mut seen, c, &mut out);
                    }
                    if r + 1 < rows {
                        out.push(Occurrence::Fresh);
                    } else {
                        use_cell(&mut seen, *o, &mut out);
                    }
                }
            }
            Step::PairDot { pairs, out: o } => {
                let rows = plan.step_rows(s);
                let per = plan.pairs_per_row();
                for r in 0..rows {
                    for &(a, b) in
                        &pairs[(r * per).min(pairs.len())..((r + 1) * per).min(pairs.len())]
                    {
                        use_cell(&mut seen, a, &mut out);
                        use_cell(&mut seen, b, &mut out);
                    }
                    if r + 1 < rows {
                        out.push(Occurrence::Fresh);
                    } else {
                        use_cell(&mut seen, *o, &mut out);
                    }
                }
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
/// (Memoized: the compiler asks for every layout it weighs, and configuring is not free.)
pub fn reserved_rows(layout: Layout) -> usize {
    thread_local! {
        static RESERVED: std::cell::RefCell<HashMap<Layout, usize>> = Default::default();
    }
    if let Some(&n) = RESERVED.with(|r| r.borrow().get(&layout).copied()).as_ref() {
        return n;
    }
    let n = with_layout(layout, || {
        let mut cs = ConstraintSystem::<Fp>::default();
        let _ = ModelCircuit::configure(&mut cs);
        cs.minimum_rows()
    });
    RESERVED.with(|r| r.borrow_mut().insert(layout, n));
    n
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

/// The largest k we prove at (the cached parameters grow as 2^k).
pub const MAX_K: u32 = 20;

/// The lane shapes the compiler weighs: (lanes per group, groups). Groups of 4, 8 and 16
/// lanes, one to eight of them (at most 64 lanes), and a few others: a 16-bit range check
/// (eight base-4 digits) fills a row of an 8-lane group, so hashed weights want those.
pub fn lane_choices() -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = [4, 8, 16]
        .into_iter()
        .flat_map(|w| (1..=8).map(move |g| (w, g)))
        .filter(|&(w, g)| w * g <= 64)
        .collect();
    out.extend([(6, 4), (12, 2), (32, 1), (32, 2), (64, 1)]);
    out
}

/// The smallest k whose 2^k rows hold the used rows, the tables and the public instance, plus
/// halo2's reserved rows.
fn k_for(rows: usize, table_rows: usize, instance: usize, layout: Layout) -> u32 {
    k_reserving(rows, table_rows, instance, reserved_rows(layout))
}

fn k_reserving(rows: usize, table_rows: usize, instance: usize, reserved: usize) -> u32 {
    let need = rows.max(table_rows).max(instance) + reserved;
    (need.next_power_of_two().trailing_zeros()).max(4)
}

/// Compile a quantized model at the lane count that makes proving cheapest; with `witness` (the
/// integer evaluator's value of every tensor) the circuit carries the assignment for proving.
/// Inputs are public and weights fixed; see [`compile_as`] for the other visibilities.
pub fn compile(
    qm: &QuantizedModel,
    witness: Option<&[Tensor<i64>]>,
) -> Result<Compiled, CompileError> {
    compile_as(qm, Disclosure::default(), witness)
}

/// [`compile`] with the input's and the parameters' visibility (and a hashed input's salt).
///
/// Proving cost grows with committed polynomials × 2^k (design.md §7): each advice column, one
/// permutation product per three equality columns (the gates have degree 5), four quotient
/// pieces and three per lookup. Each lane shape of [`lane_choices`] is scored by that; the
/// plan's steps do not depend on the shape, only its rows.
pub fn compile_as(
    qm: &QuantizedModel,
    dis: Disclosure,
    witness: Option<&[Tensor<i64>]>,
) -> Result<Compiled, CompileError> {
    let mut p = plan::plan(qm, DEFAULT_LANES, 1, dis, None)?;
    let lookups = p.has_lookups();
    let table_rows = if lookups { p.table_rows() } else { 0 };
    // The digests' rows depend only on the Poseidon lanes, the model's only on the lane shape.
    let digest_rows: Vec<(usize, usize)> = (1..=p.max_chains.max(1))
        .map(|h| {
            p.hash_lanes = h;
            (h, p.digest_rows())
        })
        .collect();
    let mut best = None;
    let mut reserved = None;
    for (width, groups) in lane_choices() {
        let lanes = width * groups;
        p.lanes = lanes;
        p.groups = groups;
        let model = p.model_and_digest_rows().0;
        for &(hash_lanes, digests) in &digest_rows {
            let layout = Layout {
                lanes,
                groups,
                lookups,
                input: dis.input,
                params: dis.params,
                hash_lanes,
                salted: p.salted,
            };
            // halo2's reserved rows follow the gates' queries, the same in every shape.
            let reserved = *reserved.get_or_insert_with(|| reserved_rows(layout));
            let k = k_reserving(model.max(digests), table_rows, p.instance_len, reserved);
            let cost = (layout.committed_polys() << k, lanes, groups, hash_lanes);
            if best.is_none_or(|b| cost < b) {
                best = Some(cost);
            }
        }
    }
    let (_, lanes, groups, hash_lanes) = best.unwrap_or((0, DEFAULT_LANES, 1, 1));
    compile_hashing(qm, lanes, groups, Some(hash_lanes), dis, witness)
}

/// Compile with a given lane count (multiply-adds per row, one group), inputs public.
pub fn compile_with_lanes(
    qm: &QuantizedModel,
    lanes: usize,
    witness: Option<&[Tensor<i64>]>,
) -> Result<Compiled, CompileError> {
    compile_layout(qm, lanes, 1, Disclosure::default(), witness)
}

/// Compile with a given lane count, split into `groups` groups, and visibilities.
pub fn compile_layout(
    qm: &QuantizedModel,
    lanes: usize,
    groups: usize,
    dis: Disclosure,
    witness: Option<&[Tensor<i64>]>,
) -> Result<Compiled, CompileError> {
    compile_hashing(qm, lanes, groups, None, dis, witness)
}

/// Compile in the layout a circuit description records (lanes, groups and Poseidon lanes), with
/// `dis` (the visibilities, and a hashed input's salt): how a verifier re-derives a circuit.
pub fn compile_for(
    qm: &QuantizedModel,
    layout: Layout,
    dis: Disclosure,
    witness: Option<&[Tensor<i64>]>,
) -> Result<Compiled, CompileError> {
    let hash_lanes = Some(layout.hash_lanes);
    compile_hashing(qm, layout.lanes, layout.groups, hash_lanes, dis, witness)
}

/// [`compile_layout`] with the Poseidon chip's lanes (None: [`plan::DEFAULT_HASH_LANES`], or
/// fewer when no digest has that many chains).
pub fn compile_hashing(
    qm: &QuantizedModel,
    lanes: usize,
    groups: usize,
    hash_lanes: Option<usize>,
    dis: Disclosure,
    witness: Option<&[Tensor<i64>]>,
) -> Result<Compiled, CompileError> {
    check_lanes(lanes, groups)?;
    let mut plan = plan::plan(qm, lanes, groups, dis, witness)?;
    if let Some(h) = hash_lanes.filter(|_| plan.max_chains > 0) {
        plan.hash_lanes = h.clamp(1, plan.max_chains);
    }
    finish(qm, plan, dis)
}

/// Whether `lanes` in `groups` groups is a layout.
fn check_lanes(lanes: usize, groups: usize) -> Result<(), CompileError> {
    // A group needs two lanes (its first two carry the bits of a range check).
    let min = 2;
    if !(2..=256).contains(&lanes)
        || groups == 0
        || !lanes.is_multiple_of(groups)
        || lanes / groups < min
    {
        return Err(CompileError {
            node: "model".into(),
            msg: format!(
                "lane count {lanes} in {groups} groups is not a layout (at most 256 lanes, at \
                 least {min} per group)"
            ),
        });
    }
    Ok(())
}

/// k and the description of a planned circuit.
fn finish(qm: &QuantizedModel, plan: Plan, dis: Disclosure) -> Result<Compiled, CompileError> {
    let input = dis.input;
    let circuit = ModelCircuit::new(plan);
    let layout = circuit.layout();
    let plan = &circuit.plan;
    let rows = plan.rows();
    let table_rows = if plan.has_lookups() {
        plan.table_rows()
    } else {
        0
    };
    let k = k_for(rows, table_rows, plan.instance_len, layout);
    if k > MAX_K {
        return Err(CompileError {
            node: "model".into(),
            msg: format!("needs 2^{k} rows ({rows} used), more than the 2^{MAX_K} supported"),
        });
    }
    let (per, io) = plan.rows_per_node(qm.nodes.len());
    let mut rows_per_node = vec![NodeRows {
        node: "inputs/outputs".into(),
        origin: "io".into(),
        op: "io".into(),
        rows: io,
    }];
    for (n, r) in qm.nodes.iter().zip(per) {
        rows_per_node.push(NodeRows {
            node: n.name.clone(),
            origin: n.origin.clone(),
            op: n.op.name().into(),
            rows: r,
        });
    }
    let digests = plan.model_and_digest_rows().1;
    if digests > 0 {
        rows_per_node.push(NodeRows {
            node: format!(
                "digests (Poseidon, {} lanes beside the model's rows)",
                layout.hash_lanes
            ),
            origin: "io".into(),
            op: "poseidon".into(),
            rows: digests,
        });
    }
    let gates = {
        let mut g: Vec<String> = [
            chips::GATE_DOT_START,
            chips::GATE_DOT_CHAIN,
            chips::GATE_DIGITS,
            chips::GATE_PAIR_START,
            chips::GATE_PAIR_CHAIN,
            chips::GATE_MUL,
        ]
        .map(String::from)
        .to_vec();
        if layout.lookups {
            g.push("table lookup".into());
        }
        if layout.hashes() {
            g.extend(
                [
                    poseidon::GATE_START,
                    poseidon::GATE_ABSORB,
                    poseidon::GATE_FULL,
                    poseidon::GATE_PARTIAL,
                ]
                .map(String::from),
            );
        }
        g
    };
    // Public instance rows before the outputs: the inputs, their digest, or none; then the
    // weights digest when the parameters are hashed.
    let hashed = usize::from(dis.params == ParamVisibility::Hashed);
    let n_in: usize = match input {
        Visibility::Public => qm
            .inputs
            .iter()
            .map(|&v| crate::tensor::numel(&qm.values[v].shape))
            .sum(),
        Visibility::Hashed => 1,
        Visibility::Private => 0,
    };
    let info = CircuitInfo {
        format: CIRCUIT_FORMAT,
        zkreceipt_version: env!("CARGO_PKG_VERSION").into(),
        halo2_proofs_version: HALO2_VERSION.into(),
        proof_system: "halo2 PLONKish, IPA over Pasta (Vesta), Blake2b transcript".into(),
        k,
        rows,
        table_rows,
        layout,
        advice_columns: layout.lanes
            + layout.groups
            + if layout.hashes() {
                6 * layout.hash_lanes
            } else {
                0
            },
        // weights; per group the constant and the two digit kinds; the three table columns and
        // Poseidon's six round-constant columns; selectors come on top.
        fixed_columns: layout.lanes
            + 3 * layout.groups
            + if layout.lookups { 3 } else { 0 }
            + if layout.hashes() { 6 } else { 0 },
        instance_columns: 1,
        lookups: usize::from(layout.lookups),
        gates,
        tables: plan.tables.clone(),
        data_tables: plan.data_tables.iter().map(|t| t.info()).collect(),
        activation_bits: plan.activation_bits,
        public_inputs: n_in,
        public_outputs: plan.instance_len - n_in - hashed,
        param_tensors: plan.param_tensors.clone(),
        rows_per_node,
    };
    Ok(Compiled { info, circuit })
}

#[cfg(test)]
mod tests;
