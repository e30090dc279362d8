//! Synthesis: the plan laid out in regions, one per quantized node, through the chips; digests
//! through halo2_gadgets' Poseidon chip; the lookup tables loaded.

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
        // A Poseidon chip per lane group (up to one per chain), on the group's first four lanes
        // (state and partial S-box; its gates have their own selectors), each with six fixed
        // columns of round constants, so the chains of a digest run side by side.
        let mut poseidon = vec![];
        if layout.hashes() {
            // The sponges' initial states are constants. halo2's floor planner writes a region's
            // constants below the end of the first constant column right after the region, so
            // they get a column no region uses: in a chip's own column they would push that
            // chip's next region down.
            let constants = meta.fixed_column();
            meta.enable_constant(constants);
            for g in 0..layout.chips {
                let rc_a = [(); 3].map(|_| meta.fixed_column());
                let rc_b = [(); 3].map(|_| meta.fixed_column());
                let l = cols.group_lanes(g);
                poseidon.push(Pow5Chip::configure::<P128Pow5T3>(
                    meta,
                    [l[0], l[1], l[2]],
                    l[3],
                    rc_a,
                    rc_b,
                ));
            }
        }
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
            load_tables(t, &plan.tables, &mut layouter)?;
        }
        let dot = DotChip {
            config: config.dot.clone(),
        };
        let mul = MulChip {
            config: config.mul.clone(),
        };
        let table = config.table.clone().map(|c| TableChip { config: c });
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
                let digest = hash_chain(&config.poseidon, msg, zero, label, &mut layouter)?;
                layouter.constrain_instance(digest.cell(), cols.instance, *row)?;
                continue;
            }
            let node = rp.node;
            let steps = &plan.steps[i..j];
            let name = node_region_name(plan, node, steps);
            let start_occ = occ;
            let (local, used) = layouter.assign_region(
                || name.clone(),
                |mut region| {
                    let mut local: HashMap<CellId, ACell> = HashMap::new();
                    let mut occ = start_occ;
                    let value = |c: CellId, o: usize| -> Value<Fp> {
                        let mut v = plan.values[c];
                        if let Some((idx, delta)) = self.tamper
                            && idx == o
                        {
                            v = v.map(|x| x + fe(delta));
                        }
                        v.map(Value::known).unwrap_or_else(Value::unknown)
                    };
                    // Place cell `c` at (col, offset): fresh the first time, else a copy.
                    let put = |region: &mut halo2_proofs::circuit::Region<'_, Fp>,
                               local: &mut HashMap<CellId, ACell>,
                               col: halo2_proofs::plonk::Column<halo2_proofs::plonk::Advice>,
                               offset: usize,
                               c: CellId,
                               occ: &mut usize|
                     -> Result<ACell, Error> {
                        let a = region.assign_advice(|| "cell", col, offset, || value(c, *occ))?;
                        *occ += 1;
                        if let Some(prev) = local.get(&c).or(assigned[c].as_ref()) {
                            region.constrain_equal(prev.cell(), a.cell())?;
                        } else {
                            local.insert(c, a.clone());
                        }
                        Ok(a)
                    };
                    let mut outs = vec![];
                    for ((_, s), place) in steps.iter().zip(&rp.places) {
                        let mut offset = place.row;
                        let g = place.group;
                        match s {
                            Step::Input { cells } => {
                                for (k, &(c, row)) in cells.iter().enumerate() {
                                    let (r, l) = (k / plan.lanes, k % plan.lanes);
                                    let a = region.assign_advice_from_instance(
                                        || "input",
                                        cols.instance,
                                        row,
                                        cols.lanes[l],
                                        offset + r,
                                    )?;
                                    if let Some((idx, delta)) = self.tamper
                                        && idx == occ
                                    {
                                        // Overwrite the copied input with a different value.
                                        let v = a.value().map(|x| *x + fe(delta));
                                        let b = region.assign_advice(
                                            || "input",
                                            cols.lanes[l],
                                            offset + r,
                                            || v,
                                        )?;
                                        local.insert(c, b);
                                    } else {
                                        local.insert(c, a);
                                    }
                                    occ += 1;
                                }
                            }
                            Step::Witness { cells } => {
                                for (k, &c) in cells.iter().enumerate() {
                                    let (r, l) = (k / plan.lanes, k % plan.lanes);
                                    put(
                                        &mut region,
                                        &mut local,
                                        cols.lanes[l],
                                        offset + r,
                                        c,
                                        &mut occ,
                                    )?;
                                }
                            }
                            Step::Hash { .. } => return Err(Error::Synthesis),
                            Step::Dot {
                                terms,
                                c,
                                digits,
                                out,
                            } => {
                                let width = plan.width();
                                let lanes = cols.group_lanes(g);
                                let rows = terms.len().max(1).div_ceil(width);
                                let mut acc_val: Option<Fp> = Some(fe(*c));
                                let mut dot_rows = vec![];
                                for r in 0..rows {
                                    let chunk = &terms[(r * width).min(terms.len())
                                        ..((r + 1) * width).min(terms.len())];
                                    for (l, &(cell, w)) in chunk.iter().enumerate() {
                                        put(
                                            &mut region,
                                            &mut local,
                                            lanes[l],
                                            offset + r,
                                            cell,
                                            &mut occ,
                                        )?;
                                        acc_val = acc_val
                                            .zip(plan.values[cell])
                                            .map(|(a, v)| a + v * fe(w));
                                    }
                                    for &lane in &lanes[chunk.len()..] {
                                        region.assign_advice(
                                            || "pad",
                                            lane,
                                            offset + r,
                                            || Value::known(Fp::zero()),
                                        )?;
                                    }
                                    dot_rows.push(DotRow {
                                        weights: chunk.iter().map(|&(_, w)| w).collect(),
                                        c: if r == 0 { *c } else { 0 },
                                        first: r == 0,
                                    });
                                    if r + 1 < rows {
                                        // Running sum: a fresh cell bound by the next row's gate.
                                        let mut v = acc_val;
                                        if let Some((idx, delta)) = self.tamper
                                            && idx == occ
                                        {
                                            v = v.map(|x| x + fe(delta));
                                        }
                                        region.assign_advice(
                                            || "partial sum",
                                            cols.accs[g],
                                            offset + r,
                                            || v.map(Value::known).unwrap_or_else(Value::unknown),
                                        )?;
                                        occ += 1;
                                    } else {
                                        put(
                                            &mut region,
                                            &mut local,
                                            cols.accs[g],
                                            offset + r,
                                            *out,
                                            &mut occ,
                                        )?;
                                    }
                                }
                                dot.dot_rows(&mut region, g, offset, &dot_rows, *digits)?;
                            }
                            Step::Mul { items } => {
                                let triples = MulConfig::triples(cols);
                                for row in items.chunks(triples.len()) {
                                    for (t, &(a, b, out)) in row.iter().enumerate() {
                                        let [xc, yc, zc] = triples[t];
                                        put(&mut region, &mut local, xc, offset, a, &mut occ)?;
                                        put(&mut region, &mut local, yc, offset, b, &mut occ)?;
                                        put(&mut region, &mut local, zc, offset, out, &mut occ)?;
                                    }
                                    for t in &triples[row.len()..] {
                                        for &col in t {
                                            region.assign_advice(
                                                || "pad",
                                                col,
                                                offset,
                                                || Value::known(Fp::zero()),
                                            )?;
                                        }
                                    }
                                    mul.enable(&mut region, offset)?;
                                    offset += 1;
                                }
                            }
                            Step::Lookup { table: id, x, out } => {
                                put(&mut region, &mut local, cols.lanes[0], offset, *x, &mut occ)?;
                                put(
                                    &mut region,
                                    &mut local,
                                    cols.accs[0],
                                    offset,
                                    *out,
                                    &mut occ,
                                )?;
                                table.as_ref().ok_or(Error::Synthesis)?.enable(
                                    &mut region,
                                    offset,
                                    *id,
                                )?;
                            }
                            Step::Equal { a, b } => {
                                let ca = local
                                    .get(a)
                                    .or(assigned[*a].as_ref())
                                    .ok_or(Error::Synthesis)?
                                    .cell();
                                let cb = local
                                    .get(b)
                                    .or(assigned[*b].as_ref())
                                    .ok_or(Error::Synthesis)?
                                    .cell();
                                region.constrain_equal(ca, cb)?;
                            }
                            Step::Output { cell, row } => outs.push((*cell, *row)),
                        }
                    }
                    Ok((local, (occ, outs)))
                },
            )?;
            for (c, a) in local {
                assigned[c] = Some(a);
            }
            occ = used.0;
            outputs.extend(used.1);
        }
        for (c, row) in outputs {
            let cell = assigned[c].as_ref().ok_or(Error::Synthesis)?.cell();
            layouter.constrain_instance(cell, cols.instance, row)?;
        }
        Ok(())
    }
}

/// The chains of [`commit::chain`] in circuit: one fixed-length Poseidon sponge per block (the
/// plan has padded the message to whole blocks), chain `j` on chip `j mod P` (the chips sit in
/// different lane groups, so their regions share rows), then the join on chip 0.
pub(super) fn hash_chain<L: Layouter<Fp>>(
    chips: &[Pow5Config<Fp, 3, 2>],
    msg: &[ACell],
    zero: &ACell,
    label: &str,
    layouter: &mut L,
) -> Result<ACell, Error> {
    if chips.is_empty() {
        return Err(Error::Synthesis);
    }
    let mut block = |cfg: &Pow5Config<Fp, 3, 2>,
                     h: &ACell,
                     words: &[ACell],
                     name: String|
     -> Result<ACell, Error> {
        let input: [ACell; commit::BLOCK + 1] = std::iter::once(h)
            .chain(words)
            .chain(std::iter::repeat(zero))
            .take(commit::BLOCK + 1)
            .cloned()
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| Error::Synthesis)?;
        let hasher =
            PoseidonHash::<_, _, P128Pow5T3, ConstantLength<{ commit::BLOCK + 1 }>, 3, 2>::init(
                Pow5Chip::construct(cfg.clone()),
                layouter.namespace(|| format!("{name} init")),
            )?;
        hasher.hash(layouter.namespace(|| name), input)
    };
    let tag = &msg[0];
    let s = commit::chains(msg.len());
    let mut h = vec![tag.clone(); s];
    for (i, words) in msg[1..].chunks(commit::BLOCK).enumerate() {
        let j = i % s;
        h[j] = block(
            &chips[j % chips.len()],
            &h[j],
            words,
            format!("{label}: chain {j} block {}", i / s),
        )?;
    }
    if s == 1 {
        return Ok(h.swap_remove(0));
    }
    block(&chips[0], tag, &h, format!("{label}: join"))
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
    tables: &[TableSpec],
    layouter: &mut impl Layouter<Fp>,
) -> Result<(), Error> {
    layouter.assign_table(
        || "lookup tables",
        |mut t| {
            let mut row = 0;
            let mut put = |t: &mut halo2_proofs::circuit::Table<'_, Fp>,
                           id: u64,
                           x: i64,
                           y: i64|
             -> Result<(), Error> {
                t.assign_cell(|| "id", cfg.t_id, row, || Value::known(Fp::from(id)))?;
                t.assign_cell(|| "x", cfg.t_in, row, || Value::known(fe(x as i128)))?;
                t.assign_cell(|| "y", cfg.t_out, row, || Value::known(fe(y as i128)))?;
                row += 1;
                Ok(())
            };
            put(&mut t, 0, 0, 0)?;
            for spec in tables {
                for (x, y) in spec.rows() {
                    put(&mut t, spec.id, x, y)?;
                }
            }
            Ok(())
        },
    )
}
