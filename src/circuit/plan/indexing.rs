//! Circuit planning of Gather (rewiring, with one shared cell for the fill value) and Select
//! (a lookup in a table of the constant, or a one-hot choice among cells). `Builder::node`
//! dispatches here; the family's lowering and evaluation are in `quantize/indexing.rs`.

use super::*;
use crate::quantize::QNode;

impl Builder<'_> {
    pub(super) fn plan_gather(
        &mut self,
        n: &QNode,
        index: &[i64],
        fill: &i64,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let mut fill_cell = None;
            let mut out = Vec::with_capacity(index.len());
            for &i in index {
                out.push(if i >= 0 {
                    x[i as usize]
                } else if let Some(c) = fill_cell {
                    c
                } else {
                    // One constant cell for all the fill positions of this node.
                    let c = if *fill == 0 {
                        self.zero()
                    } else {
                        self.constant(*fill)
                    };
                    fill_cell = Some(c);
                    c
                });
            }
            out
        })
    }

    /// Select: with fixed weights and a constant to select from, each output is one lookup of
    /// its index in a table of the constant (one table per distinct base); otherwise (a runtime
    /// value, or hashed weights whose constant is private cells) a one-hot choice.
    pub(super) fn plan_select(
        &mut self,
        n: &QNode,
        sel: &Selection,
        data: Option<&[i64]>,
    ) -> PResult<Vec<CellId>> {
        let idx = self.value_cells(n.inputs[0])?;
        let hashed = self.params.as_ref().and_then(|p| p.get(&(self.node, 0)));
        match (data, hashed.cloned()) {
            (Some(data), None) => self.select_by_lookup(&idx, sel, data),
            (Some(_), Some(cells)) => self.select_one_hot(&idx, sel, &cells),
            (None, _) => {
                let x = self.value_cells(n.inputs[1])?;
                self.select_one_hot(&idx, sel, &x)
            }
        }
    }

    /// The position index cell `i` selects (None without a witness); an index that selects
    /// nothing has no witness, as the evaluator refuses it.
    fn selected(&self, i: CellId, sel: &Selection) -> PResult<Option<usize>> {
        match self.val(i)? {
            None => Ok(None),
            Some(v) => i64::try_from(v)
                .ok()
                .and_then(|v| sel.position(v))
                .map(Some)
                .ok_or_else(|| self.err(format!("index {v} selects nothing"))),
        }
    }

    /// ```text
    ///  row | a_0 (index) | acc (output) | c (table id)     (index, output) is an entry of the
    ///  r   | i           | y            | id_base           table of the constant for this base
    /// ```
    fn select_by_lookup(
        &mut self,
        idx: &[CellId],
        sel: &Selection,
        data: &[i64],
    ) -> PResult<Vec<CellId>> {
        let mut ids: HashMap<usize, u64> = HashMap::new();
        let mut out = Vec::with_capacity(sel.at.len());
        for e in 0..sel.at.len() {
            let id = match ids.get(&sel.base[e]) {
                Some(&id) => id,
                None => {
                    let values = sel.candidates(e).map(|(_, p)| data[p]).collect();
                    let id = self.data_table_id(sel.first(), sel.shift, values);
                    ids.insert(sel.base[e], id);
                    id
                }
            };
            let x = idx[sel.at[e]];
            let v = self
                .selected(x, sel)?
                .map(|m| data[sel.base[e] + m * sel.stride] as i128);
            let y = self.cell(v);
            self.push(Step::Lookup {
                table: id,
                x,
                out: y,
            });
            out.push(y);
        }
        Ok(out)
    }

    /// One-hot choice among candidate cells: per index element, a cell `z_c` per candidate
    /// index `c` (in `-n..n`, or `0..n` without negative indices) with `z_c·z_c = z_c` (a
    /// bit), `Σ z_c = 1` (exactly one) and `Σ c·2^shift·z_c = i` (the one set is the index);
    /// each output is `Σ z_c·x_c`. The bits are shared by the outputs that read the same index
    /// element.
    ///
    /// ```text
    ///  witness: z_c (a row of lanes)     mul: z_c · z_c = z_c      z_c · x_c = p_c
    ///  dot:     Σ z_c − 1 = 0            dot: Σ c·2^shift·z_c = i  dot: y = Σ p_c
    /// ```
    fn select_one_hot(
        &mut self,
        idx: &[CellId],
        sel: &Selection,
        x: &[CellId],
    ) -> PResult<Vec<CellId>> {
        let mut hot: HashMap<usize, Vec<CellId>> = HashMap::new();
        let mut products = Vec::with_capacity(sel.at.len());
        for e in 0..sel.at.len() {
            let i = sel.at[e];
            let z = match hot.get(&i) {
                Some(z) => z.clone(),
                None => {
                    let z = self.one_hot(idx[i], sel)?;
                    hot.insert(i, z.clone());
                    z
                }
            };
            let p: Vec<CellId> = sel
                .candidates(e)
                .zip(&z)
                .map(|((_, pos), &zc)| self.mul(zc, x[pos]))
                .collect();
            products.push(p);
        }
        Ok(products
            .into_iter()
            .map(|p| self.dot(p.into_iter().map(|c| (c, 1)).collect(), 0))
            .collect())
    }

    /// The bits `z_c` (`c` in `first()..n`) of index cell `i` for [`Self::select_one_hot`].
    fn one_hot(&mut self, i: CellId, sel: &Selection) -> PResult<Vec<CellId>> {
        let (first, n) = (sel.first(), sel.n as i64);
        // The hot candidate is the index itself (m, or m − n counted from the end).
        let hot = match (self.selected(i, sel)?, self.val(i)?) {
            (Some(_), Some(v)) => Some((v >> sel.shift) as i64),
            _ => None,
        };
        let z: Vec<CellId> = (first..n)
            .map(|c| self.cell(hot.map(|h| i128::from(h == c))))
            .collect();
        // The prover's choice, laid out as witnesses: the gates below bind them together.
        self.push(Step::Witness { cells: z.clone() });
        for &zc in &z {
            self.push(Step::Mul {
                items: vec![(zc, zc, zc)],
            });
        }
        let one = self.dot(z.iter().map(|&zc| (zc, 1)).collect(), -1);
        let zero = self.zero();
        self.equal(one, zero);
        let terms = z
            .iter()
            .zip(first..n)
            .map(|(&zc, c)| (zc, i128::from(c) << sel.shift))
            .collect();
        let at = self.dot(terms, 0);
        self.equal(at, i);
        Ok(z)
    }

    /// Scatter: the one-hot bits of every index element (as for Select); per data element `p`
    /// that some index element's row reaches, `h = Σ` the bits that put a write at `p`, with
    /// `h·h = h` (at most one write), and `out = data + Σ bit·update − h·data`. Elements no
    /// row reaches are the data's cells.
    ///
    /// ```text
    ///  dot:  h = Σ z_q,c               (c: the index values that land on p)
    ///  mul:  h · h = h                 u_q · z_q,c = w_q,c      h · data_p = g
    ///  dot:  out_p = data_p + Σ w_q,c − g
    /// ```
    pub(super) fn plan_scatter(&mut self, n: &QNode, sel: &Selection) -> PResult<Vec<CellId>> {
        let idx = self.value_cells(n.inputs[0])?;
        let data = self.value_cells(n.inputs[1])?;
        let updates = self.value_cells(n.inputs[2])?;
        let z: Vec<Vec<CellId>> = idx
            .iter()
            .map(|&i| self.one_hot(i, sel))
            .collect::<PResult<_>>()?;
        let mut writers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (q, &b) in sel.base.iter().enumerate() {
            writers.entry(b).or_default().push(q);
        }
        let (first, len, z) = (sel.first(), sel.n as i64, &z);
        let mut out = data.clone();
        for (p, cell) in out.iter_mut().enumerate() {
            // p's coordinate on the axis, and its row's base.
            let k = (p / sel.stride) as i64 % len;
            let Some(row) = writers.get(&(p - k as usize * sel.stride)) else {
                continue;
            };
            // Index values k and (counted from the end) k − n land on p.
            let hits: Vec<(CellId, usize)> = row
                .iter()
                .flat_map(|&q| {
                    [k, k - len]
                        .into_iter()
                        .filter(|&c| c >= first)
                        .map(move |c| (z[q][(c - first) as usize], q))
                })
                .collect();
            let h = self.dot(hits.iter().map(|&(bit, _)| (bit, 1)).collect(), 0);
            if self.val(h)?.is_some_and(|h| h > 1) {
                return Err(self.err(format!("two indices write element {p}")));
            }
            self.push(Step::Mul {
                items: vec![(h, h, h)],
            });
            let mut terms: Vec<(CellId, i128)> = hits
                .iter()
                .map(|&(bit, q)| (self.mul(bit, updates[q]), 1))
                .collect();
            terms.push((self.mul(h, data[p]), -1));
            terms.push((data[p], 1));
            *cell = self.dot(terms, 0);
        }
        Ok(out)
    }
}
