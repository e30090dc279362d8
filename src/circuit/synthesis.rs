//! Synthesis: the plan laid out in regions, one per quantized node, through the chips; digests
//! through the Poseidon chip, beside them; the lookup tables loaded.

use halo2_proofs::circuit::{Cell, Region};
use halo2_proofs::plonk::{Advice, Column};

use super::plan::Place;
use super::*;

impl Circuit<Fp> for ModelCircuit {
    type Config = Config;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        let mut p = (*self.plan).clone();
        p.values.iter_mut().for_each(|v| *v = None);
        p.instance = None;
        ModelCircuit {
            plan: Arc::new(p),
            tamper: None,
        }
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> Config {
        let layout = LAYOUT.with(|l| l.get());
        let cols = Columns::configure(meta, layout.lanes, layout.groups);
        let dot = DotChip::configure(meta, &cols);
        let mul = MulChip::configure(meta, &cols);
        let table = layout.lookups.then(|| TableChip::configure(meta, &cols));
        // The Poseidon chip in columns of its own, so the digests run beside the model's rows.
        let poseidon = layout
            .hashes()
            .then(|| PoseidonChip::configure(meta, layout.hash_lanes.max(1)));
        Config {
            dot,
            mul,
            table,
            poseidon,
        }
    }

    fn synthesize(&self, config: Config, mut layouter: impl Layouter<Fp>) -> Result<(), Error> {
        let plan = &*self.plan;
        if let Some(t) = &config.table {
            load_tables(t, plan, &mut layouter)?;
        }
        let chips = NodeChips {
            dot: DotChip {
                config: config.dot.clone(),
            },
            mul: MulChip {
                config: config.mul.clone(),
            },
            table: config.table.clone().map(|c| TableChip { config: c }),
        };
        let cols = &config.dot.cols;
        let mut assigned: Vec<Option<ACell>> = vec![None; plan.values.len()];
        let mut occ = 0usize;
        let mut outputs: Vec<(CellId, usize)> = vec![];

        // One region per quantized node (steps placed by `Plan::regions`), in plan order.
        for rp in plan.regions() {
            let (i, j) = (rp.steps.start, rp.steps.end);
            // A digest (input or weights): halo2_gadgets' Poseidon chip lays out its own regions.
            if let (
                _,
                Step::Hash {
                    msg,
                    zero,
                    row,
                    label,
                },
            ) = &plan.steps[i]
            {
                let cells: Vec<ACell> = msg
                    .iter()
                    .chain([zero])
                    .map(|&c| assigned[c].clone().ok_or(Error::Synthesis))
                    .collect::<Result<_, _>>()?;
                let (zero, msg) = cells.split_last().ok_or(Error::Synthesis)?;
                let chip = PoseidonChip {
                    config: config.poseidon.clone().ok_or(Error::Synthesis)?,
                };
                let digest = hash_chain(&chip, plan.hash_lanes, msg, zero, label, &mut layouter)?;
                layouter.constrain_instance(digest.cell(), cols.instance, *row)?;
                continue;
            }
            let steps = &plan.steps[i..j];
            let name = node_region_name(plan, rp.node, steps);
            // The floor planner may run this closure more than once (to measure the region
            // first): each run starts from the same state.
            let (local, used, outs) = layouter.assign_region(
                || name.clone(),
                |region| {
                    let mut node = NodeRegion {
                        region,
                        plan,
                        cols,
                        chips: &chips,
                        tamper: self.tamper,
                        assigned: &assigned,
                        local: HashMap::new(),
                        occ,
                    };
                    let mut outs = vec![];
                    for ((_, step), place) in steps.iter().zip(&rp.places) {
                        if let Step::Output { cell, row } = step {
                            outs.push((*cell, *row));
                        } else {
                            node.step(step, place)?;
                        }
                    }
                    Ok((node.local, node.occ, outs))
                },
            )?;
            for (c, a) in local {
                assigned[c] = Some(a);
            }
            occ = used;
            outputs.extend(outs);
        }
        for (c, row) in outputs {
            let cell = assigned[c].as_ref().ok_or(Error::Synthesis)?.cell();
            layouter.constrain_instance(cell, cols.instance, row)?;
        }
        Ok(())
    }
}

/// The chips a node's region lays its steps out with.
struct NodeChips {
    dot: DotChip,
    mul: MulChip,
    table: Option<TableChip>,
}

/// One node's region while it is laid out: the cells placed in it so far (`local`), those of
/// earlier regions (`assigned`), and the count of advice assignments made in the whole circuit
/// (`occ`), which is how a tamper test names the one assignment it changes.
struct NodeRegion<'r, 'a> {
    region: Region<'r, Fp>,
    plan: &'a Plan,
    cols: &'a Columns,
    chips: &'a NodeChips,
    tamper: Option<(usize, i128)>,
    assigned: &'a [Option<ACell>],
    local: HashMap<CellId, ACell>,
    occ: usize,
}

impl NodeRegion<'_, '_> {
    /// Lay out one step at its place (outputs are bound after all regions, by the caller).
    fn step(&mut self, step: &Step, place: &Place) -> Result<(), Error> {
        let offset = place.row;
        match step {
            Step::Input { cells } => self.input(cells, offset),
            Step::Witness { cells } => {
                let cols = self.cols;
                for (k, &c) in cells.iter().enumerate() {
                    let (r, l) = (k / self.plan.lanes, k % self.plan.lanes);
                    self.put(cols.lanes[l], offset + r, c)?;
                }
                Ok(())
            }
            Step::Dot {
                terms,
                c,
                digits,
                out,
            } => self.dot(place, terms, *c, *digits, *out),
            Step::PairDot { pairs, out } => self.pair_dot(place, pairs, *out),
            Step::Mul { items } => self.mul(offset, items),
            Step::Lookup { table, x, out } => {
                let cols = self.cols;
                self.put(cols.lanes[0], offset, *x)?;
                self.put(cols.accs[0], offset, *out)?;
                let chip = self.chips.table.as_ref().ok_or(Error::Synthesis)?;
                chip.enable(&mut self.region, offset, *table)
            }
            Step::Equal { a, b } => {
                let (a, b) = (self.placed(*a)?, self.placed(*b)?);
                self.region.constrain_equal(a, b)
            }
            // Digests have regions of their own; outputs are not assignments.
            Step::Hash { .. } | Step::Output { .. } => Err(Error::Synthesis),
        }
    }

    /// The value of the next assignment: the plan's, changed by the tamper delta if this is the
    /// tampered assignment (unknown without a witness).
    fn value(&self, v: Option<Fp>) -> Value<Fp> {
        let v = match self.tamper {
            Some((idx, delta)) if idx == self.occ => v.map(|x| x + fe(delta)),
            _ => v,
        };
        v.map(Value::known).unwrap_or_else(Value::unknown)
    }

    /// The cell already holding `c`, in this region or an earlier one.
    fn placed(&self, c: CellId) -> Result<Cell, Error> {
        let a = self.local.get(&c).or(self.assigned[c].as_ref());
        a.map(|a| a.cell()).ok_or(Error::Synthesis)
    }

    /// Place cell `c` at (col, offset): fresh the first time, else a copy bound to the first.
    fn put(&mut self, col: Column<Advice>, offset: usize, c: CellId) -> Result<(), Error> {
        let v = self.value(self.plan.values[c]);
        let a = self.region.assign_advice(|| "cell", col, offset, || v)?;
        self.occ += 1;
        match self.placed(c) {
            Ok(prev) => self.region.constrain_equal(prev, a.cell()),
            Err(_) => {
                self.local.insert(c, a);
                Ok(())
            }
        }
    }

    fn pad(&mut self, col: Column<Advice>, offset: usize) -> Result<(), Error> {
        let zero = Value::known(Fp::zero());
        self.region.assign_advice(|| "pad", col, offset, || zero)?;
        Ok(())
    }

    /// Graph inputs, copied from the instance column, `lanes` per row.
    fn input(&mut self, cells: &[(CellId, usize)], offset: usize) -> Result<(), Error> {
        let cols = self.cols;
        for (k, &(c, row)) in cells.iter().enumerate() {
            let (r, l) = (k / self.plan.lanes, k % self.plan.lanes);
            let (lane, at) = (cols.lanes[l], offset + r);
            let a = self.region.assign_advice_from_instance(
                || "input",
                cols.instance,
                row,
                lane,
                at,
            )?;
            let a = match self.tamper {
                // Overwrite the copied input with a different value.
                Some((idx, delta)) if idx == self.occ => {
                    let v = a.value().map(|x| *x + fe(delta));
                    self.region.assign_advice(|| "input", lane, at, || v)?
                }
                _ => a,
            };
            self.local.insert(c, a);
            self.occ += 1;
        }
        Ok(())
    }

    /// `out = c + Σ cell·weight`, `width` terms per row of the place's lane group, with a running
    /// sum in the group's accumulator column.
    fn dot(
        &mut self,
        place: &Place,
        terms: &[(CellId, i128)],
        c: i128,
        digits: Option<u8>,
        out: CellId,
    ) -> Result<(), Error> {
        let (g, offset) = (place.group, place.row);
        let cols = self.cols;
        let width = self.plan.width();
        let lanes = cols.group_lanes(g);
        let rows = terms.len().max(1).div_ceil(width);
        let mut acc_val: Option<Fp> = Some(fe(c));
        let mut dot_rows = vec![];
        for (r, chunk) in plan::row_chunks(terms, width).enumerate() {
            for (l, &(cell, w)) in chunk.iter().enumerate() {
                self.put(lanes[l], offset + r, cell)?;
                acc_val = acc_val
                    .zip(self.plan.values[cell])
                    .map(|(a, v)| a + v * fe(w));
            }
            for &lane in &lanes[chunk.len()..] {
                self.pad(lane, offset + r)?;
            }
            dot_rows.push(DotRow {
                weights: chunk.iter().map(|&(_, w)| w).collect(),
                c: if r == 0 { c } else { 0 },
                first: r == 0,
            });
            self.accumulate(g, offset + r, r + 1 == rows, acc_val, out)?;
        }
        let chip = &self.chips.dot;
        chip.dot_rows(&mut self.region, g, offset, &dot_rows, digits)
    }

    /// The accumulator of a running sum's row at `at` in group `g`: a fresh partial sum, bound
    /// by the next row's gate, or on the last row the output cell.
    fn accumulate(
        &mut self,
        g: usize,
        at: usize,
        last: bool,
        acc: Option<Fp>,
        out: CellId,
    ) -> Result<(), Error> {
        let col = self.cols.accs[g];
        if last {
            return self.put(col, at, out);
        }
        let v = self.value(acc);
        self.region.assign_advice(|| "partial sum", col, at, || v)?;
        self.occ += 1;
        Ok(())
    }

    /// `out = Σ a·b`, a group's lane pairs per row, with a running sum in its accumulator.
    fn pair_dot(
        &mut self,
        place: &Place,
        pairs: &[(CellId, CellId)],
        out: CellId,
    ) -> Result<(), Error> {
        let (g, offset) = (place.group, place.row);
        let cols = self.cols;
        let per = self.plan.pairs_per_row();
        let lanes = cols.group_lanes(g);
        let rows = pairs.len().max(1).div_ceil(per);
        let mut acc_val: Option<Fp> = Some(Fp::zero());
        for (r, chunk) in plan::row_chunks(pairs, per).enumerate() {
            for (i, &(a, b)) in chunk.iter().enumerate() {
                self.put(lanes[2 * i], offset + r, a)?;
                self.put(lanes[2 * i + 1], offset + r, b)?;
                let (va, vb) = (self.plan.values[a], self.plan.values[b]);
                acc_val = acc_val.zip(va.zip(vb)).map(|(s, (x, y))| s + x * y);
            }
            for &lane in &lanes[2 * chunk.len()..] {
                self.pad(lane, offset + r)?;
            }
            self.accumulate(g, offset + r, r + 1 == rows, acc_val, out)?;
        }
        self.chips.dot.pair_rows(&mut self.region, g, offset, rows)
    }

    /// `out = a·b` for each item, as many per row as the multiplication chip has triples.
    fn mul(&mut self, mut offset: usize, items: &[(CellId, CellId, CellId)]) -> Result<(), Error> {
        let triples = MulConfig::triples(self.cols);
        for row in items.chunks(triples.len()) {
            for (t, &(a, b, out)) in row.iter().enumerate() {
                let [xc, yc, zc] = triples[t];
                self.put(xc, offset, a)?;
                self.put(yc, offset, b)?;
                self.put(zc, offset, out)?;
            }
            for t in &triples[row.len()..] {
                for &col in t {
                    self.pad(col, offset)?;
                }
            }
            self.chips.mul.enable(&mut self.region, offset)?;
            offset += 1;
        }
        Ok(())
    }
}

/// The chains of [`commit::chain`] in circuit, laid out by [`plan::hash_schedule`]: a region per
/// slot, each lane's block of the slot side by side; a chain's next block starts from its
/// previous digest, the join from the chains' digests. Returns the digest's cell.
pub(super) fn hash_chain<L: Layouter<Fp>>(
    chip: &PoseidonChip,
    lanes: usize,
    msg: &[ACell],
    zero: &ACell,
    label: &str,
    layouter: &mut L,
) -> Result<ACell, Error> {
    let tag = &msg[0];
    let s = commit::chains(msg.len());
    // Each chain's latest digest (its start: the tag).
    let mut h: Vec<ACell> = vec![tag.clone(); s];
    let mut digest = None;
    for (t, slot) in plan::hash_schedule(msg.len(), lanes)
        .into_iter()
        .enumerate()
    {
        let outs = layouter.assign_region(
            || format!("{label}: blocks {t}"),
            |mut region| {
                chip.assign_constants(&mut region, 0)?;
                let mut outs = vec![];
                for &(lane, job) in &slot {
                    let (start, words): (&ACell, Vec<&ACell>) = match job {
                        plan::HashJob::Chain { chain, index } => {
                            let i = index * s + chain;
                            let w = &msg[1 + i * commit::BLOCK..1 + (i + 1) * commit::BLOCK];
                            (&h[chain], w.iter().collect())
                        }
                        plan::HashJob::Join => (tag, h.iter().collect()),
                    };
                    let input: [ACell; poseidon::ABSORBED] = std::iter::once(start)
                        .chain(words)
                        .chain(std::iter::repeat(zero))
                        .take(poseidon::ABSORBED)
                        .cloned()
                        .collect::<Vec<_>>()
                        .try_into()
                        .map_err(|_| Error::Synthesis)?;
                    outs.push((job, chip.block(&mut region, lane, 0, &input)?));
                }
                Ok(outs)
            },
        )?;
        for (job, out) in outs {
            match job {
                plan::HashJob::Chain { chain, .. } => h[chain] = out,
                plan::HashJob::Join => digest = Some(out),
            }
        }
    }
    match digest {
        Some(d) => Ok(d),
        None if s == 1 => Ok(h.swap_remove(0)),
        None => Err(Error::Synthesis),
    }
}

/// A region is named after the quantized node it lays out (e.g. `fc0/linear#1`), so a
/// MockProver failure points at the model.
pub(super) fn node_region_name(plan: &Plan, node: usize, steps: &[(usize, Step)]) -> String {
    match plan.node_names.get(node) {
        Some(name) => name.clone(),
        None if matches!(
            steps.first(),
            Some((_, Step::Input { .. } | Step::Witness { .. }))
        ) =>
        {
            "inputs".into()
        }
        None => "outputs".into(),
    }
}

pub(super) fn load_tables(
    cfg: &TableConfig,
    plan: &Plan,
    layouter: &mut impl Layouter<Fp>,
) -> Result<(), Error> {
    layouter.assign_table(
        || "lookup tables",
        |mut t| {
            let mut row = 0;
            let mut put = |t: &mut halo2_proofs::circuit::Table<'_, Fp>,
                           id: u64,
                           x: i128,
                           y: i64|
             -> Result<(), Error> {
                t.assign_cell(|| "id", cfg.t_id, row, || Value::known(Fp::from(id)))?;
                t.assign_cell(|| "x", cfg.t_in, row, || Value::known(fe(x)))?;
                t.assign_cell(|| "y", cfg.t_out, row, || Value::known(fe(y as i128)))?;
                row += 1;
                Ok(())
            };
            put(&mut t, 0, 0, 0)?;
            for spec in &plan.tables {
                for (x, y) in spec.rows() {
                    put(&mut t, spec.id, x.into(), y)?;
                }
            }
            for table in &plan.data_tables {
                for (x, y) in table.rows() {
                    put(&mut t, table.id, x, y)?;
                }
            }
            Ok(())
        },
    )
}
