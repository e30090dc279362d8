//! Lowering of ArgMax, ArgMin and TopK into integer ops (`QOp`); `Lowering::lower_op` dispatches
//! here.

use super::*;

impl Lowering<'_> {
    pub(super) fn lower_arg_max(
        &mut self,
        arg0: String,
        axis: &i64,
        keepdims: &bool,
        last: &bool,
        min: &bool,
    ) -> Result<Operand> {
        let x = self.value(&arg0)?;
        self.arg_extreme(x, *axis, *keepdims, *last, *min)
            .map(Operand::Value)
    }

    pub(super) fn lower_top_k(
        &mut self,
        node: &Node,
        arg0: String,
        axis: &i64,
        largest: &bool,
        k: &Option<i64>,
    ) -> Result<Operand> {
        let k = match k {
            Some(k) => *k,
            None => {
                let name = input(node, 1).ok_or_else(|| self.fail("TopK needs k"))?;
                *self
                    .constant_ints(&name)?
                    .first()
                    .ok_or_else(|| self.fail("k is empty"))?
            }
        };
        let x = self.value(&arg0)?;
        self.top_k(x, *axis, k, *largest)
    }

    /// A tensor of shape `xs` seen as rows along axis `axis`: `n` positions per row, one row per
    /// index of the other axes; `pos(row, j)` is the flat offset of position `j` of `row`.
    pub(super) fn axis_rows(&self, xs: &[usize], axis: i64) -> Result<AxisRows> {
        let a = axis_index(axis, xs.len()).map_err(|e| self.fail(e))?;
        Ok(AxisRows {
            axis: a,
            n: xs[a],
            inner: xs[a + 1..].iter().product(),
            rows: xs.iter().product::<usize>() / xs[a].max(1),
        })
    }

    /// The position of the maximum (or minimum) along `axis`, at scale 0: the extreme `m` of
    /// each row (the max chip); `e_j = [x_j = m]` (a sign bit of `x_j − m`); `z_0 = 1`,
    /// `z_(j+1) = z_j·(1 − e_j)` is 1 while no extreme has been seen, so the first position is
    /// `Σ_(j≥1) z_j` (the last: the same from the other end).
    pub(super) fn arg_extreme(
        &mut self,
        x: usize,
        axis: i64,
        keepdims: bool,
        last: bool,
        min: bool,
    ) -> Result<usize> {
        let xs = self.shape(x);
        let g = self.axis_rows(&xs, axis)?;
        let (a, n, rows) = (g.axis, g.n, g.rows);
        let sx = self.scale_of(x);
        // Row r, position j: in scan order (reversed for the last index).
        let at = |r: usize, j: usize| g.pos(r, if last { n - 1 - j } else { j });
        let grid = (0..rows)
            .flat_map(|r| (0..n).map(move |j| at(r, j)))
            .collect();
        let p = self.rewire_value(x, vec![rows, n], grid)?;
        let m = self.push(
            QOp::ReduceMax {
                axes: vec![1],
                keepdims: true,
                min,
            },
            vec![p],
            vec![rows, 1],
            sx,
        )?;
        // x_j − m ≤ 0 for a maximum (m − x_j for a minimum): it is ≥ 0 exactly at the extreme.
        let (l, r) = if min { (m, p) } else { (p, m) };
        let d = self.push(QOp::Sub, vec![l, r], vec![rows, n], sx)?;
        let e = self.push(QOp::Step { offset: 0, one: 1 }, vec![d], vec![rows, n], 0)?;
        let mut z = self.const_value(&Tensor::new(vec![rows], vec![1.0; rows]), 0)?;
        let mut seen = vec![];
        for j in 0..n.saturating_sub(1) {
            let col = (0..rows).map(|r| (r * n + j) as i64).collect();
            let ej = self.rewire_value(e, vec![rows], col)?;
            let hit = self.push(QOp::Mul, vec![z, ej], vec![rows], 0)?;
            z = self.push(QOp::Sub, vec![z, hit], vec![rows], 0)?;
            seen.push(z);
        }
        let count = match seen.len() {
            0 => self.const_value(&Tensor::new(vec![rows], vec![0.0; rows]), 0)?,
            1 => seen[0],
            k => {
                let all = self.push(QOp::Concat { axis: 0 }, seen, vec![k * rows], 0)?;
                let stacked = self.push(QOp::Reshape, vec![all], vec![k, rows], 0)?;
                self.push(
                    QOp::ReduceSum {
                        axes: vec![0],
                        keepdims: false,
                    },
                    vec![stacked],
                    vec![rows],
                    0,
                )?
            }
        };
        let pos = if last {
            let top = self.const_value(&Tensor::new(vec![1], vec![(n - 1) as f64]), 0)?;
            self.push(QOp::Sub, vec![top, count], vec![rows], 0)?
        } else {
            count
        };
        let mut out = xs.clone();
        if keepdims {
            out[a] = 1;
        } else {
            out.remove(a);
        }
        self.push(QOp::Reshape, vec![pos], out, 0)
    }

    /// The `k` largest (or smallest) along `axis`, sorted, by bubble passes: pass `r` carries
    /// the extreme of positions `r..n` down to `r` through compare-swaps of neighbours. A
    /// compare-swap of all rows at once is one maximum (or minimum) of the pairs (the max chip),
    /// the other element as the pair's sum minus it, and rewiring.
    pub(super) fn top_k(&mut self, x: usize, axis: i64, k: i64, largest: bool) -> Result<Operand> {
        let xs = self.shape(x);
        let g = self.axis_rows(&xs, axis)?;
        let (a, n, rows, inner) = (g.axis, g.n, g.rows, g.inner);
        if k < 1 || k as usize > n {
            return Err(self.fail(format!("k = {k} for an axis of {n}")));
        }
        let k = k as usize;
        let total = rows * n;
        let pos = |row: usize, j: usize| g.pos(row, j);
        let sc = self.scale_of(x);
        let mut cur = self.push(QOp::Reshape, vec![x], vec![total], sc)?;
        for r in 0..k {
            for j in (r + 1..n).rev() {
                let pairs = (0..rows)
                    .flat_map(|row| [pos(row, j - 1), pos(row, j)])
                    .collect();
                let p = self.rewire_value(cur, vec![rows, 2], pairs)?;
                let first = self.push(
                    QOp::ReduceMax {
                        axes: vec![1],
                        keepdims: false,
                        min: !largest,
                    },
                    vec![p],
                    vec![rows],
                    sc,
                )?;
                let sum = self.push(
                    QOp::ReduceSum {
                        axes: vec![1],
                        keepdims: false,
                    },
                    vec![p],
                    vec![rows],
                    sc,
                )?;
                let second = self.push(QOp::Sub, vec![sum, first], vec![rows], sc)?;
                let all = self.push(
                    QOp::Concat { axis: 0 },
                    vec![cur, first, second],
                    vec![total + 2 * rows],
                    sc,
                )?;
                let mut index: Vec<i64> = (0..total as i64).collect();
                for row in 0..rows {
                    index[pos(row, j - 1) as usize] = (total + row) as i64;
                    index[pos(row, j) as usize] = (total + rows + row) as i64;
                }
                cur = self.rewire_value(all, vec![total], index)?;
            }
        }
        let mut out = xs.clone();
        out[a] = k;
        // In output order: the outer index, then the first k positions, then the inner index.
        let index = (0..rows / inner.max(1))
            .flat_map(|o| (0..k).flat_map(move |j| (0..inner).map(move |i| pos(o * inner + i, j))))
            .collect();
        Ok(Operand::Value(self.rewire_value(cur, out, index)?))
    }
}
