//! Compiling a quantized model: the layout (lane shape and Poseidon lanes) that makes proving
//! cheapest, k, and the circuit's description (`circuit.json`).

use super::*;
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
        let model = p.model_rows();
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
    let digests = plan.digest_rows();
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
