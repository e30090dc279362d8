//! Circuit planning of SumPool, MaxPool, ReduceSum and ReduceMax/Min (the max chip: range-checked
//! differences whose product is zero). `Builder::node` dispatches here; the family's lowering and
//! evaluation are in `quantize/pooling.rs`.

use super::*;
use crate::quantize::QNode;

impl Builder<'_> {
    pub(super) fn plan_sum_pool(
        &mut self,
        n: &QNode,
        out_shape: &[usize],
        kernel: &[usize],
        st: &[usize],
        pads_begin: &[usize],
        dilations: &[usize],
    ) -> PResult<Vec<CellId>> {
        Ok({
            let dil = (!dilations.is_empty()).then_some(dilations);
            let windows = self.windows(n.inputs[0], out_shape, kernel, st, pads_begin, dil)?;
            windows
                .into_iter()
                .map(|w| self.dot(w.into_iter().map(|c| (c, 1)).collect(), 0))
                .collect()
        })
    }

    pub(super) fn plan_max_pool(
        &mut self,
        n: &QNode,
        out_shape: &[usize],
        kernel: &[usize],
        st: &[usize],
        pads_begin: &[usize],
        dilations: &[usize],
    ) -> PResult<Vec<CellId>> {
        Ok({
            let windows = self.windows(
                n.inputs[0],
                out_shape,
                kernel,
                st,
                pads_begin,
                Some(dilations),
            )?;
            let mut out = vec![];
            for w in windows {
                out.push(self.max(&w)?);
            }
            out
        })
    }

    pub(super) fn plan_reduce_sum(&mut self, n: &QNode, axes: &[usize]) -> PResult<Vec<CellId>> {
        Ok({
            self.reduction_groups(n.inputs[0], axes)?
                .into_iter()
                .map(|g| self.dot(g.into_iter().map(|c| (c, 1)).collect(), 0))
                .collect()
        })
    }

    pub(super) fn plan_reduce_max(
        &mut self,
        n: &QNode,
        axes: &[usize],
        min: &bool,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let groups = self.reduction_groups(n.inputs[0], axes)?;
            let min = *min;
            groups
                .iter()
                .map(|g| self.extreme(g, min))
                .collect::<PResult<Vec<_>>>()?
        })
    }

    /// The cells of value `v`, grouped by the output element of a reduction over `axes`.
    pub(super) fn reduction_groups(
        &mut self,
        v: usize,
        axes: &[usize],
    ) -> PResult<Vec<Vec<CellId>>> {
        let x = self.value_cells(v)?;
        let (map, outs) = reduction_map(self.shape(v), axes);
        let mut groups = vec![vec![]; outs];
        for (i, c) in x.into_iter().enumerate() {
            groups[map[i]].push(c);
        }
        Ok(groups)
    }

    pub(super) fn max(&mut self, w: &[CellId]) -> PResult<CellId> {
        self.extreme(w, false)
    }

    /// The maximum (or with `min`, the minimum) m of `w`: every `±(m − v_i) ≥ 0` (range
    /// checked) and `Π (m − v_i) = 0`, so m is one of them.
    pub(super) fn extreme(&mut self, w: &[CellId], min: bool) -> PResult<CellId> {
        if w.len() == 1 {
            return Ok(w[0]);
        }
        let mv = if self.witness {
            w.iter()
                .map(|&c| self.val(c))
                .collect::<PResult<Option<Vec<_>>>>()?
                .and_then(|v| {
                    if min {
                        v.into_iter().min()
                    } else {
                        v.into_iter().max()
                    }
                })
        } else {
            None
        };
        let m = self.cell(mv);
        let sign = if min { -1 } else { 1 };
        let mut prod: Option<CellId> = None;
        for &v in w {
            let d = self.dot(vec![(m, sign), (v, -sign)], 0);
            self.unsigned_range(d)?;
            prod = Some(match prod {
                None => d,
                Some(p) => self.mul(p, d),
            });
        }
        let z = self.zero();
        self.equal(prod.unwrap(), z);
        Ok(m)
    }

    pub(super) fn windows(
        &mut self,
        input: usize,
        out_shape: &[usize],
        kernel: &[usize],
        st: &[usize],
        pads_begin: &[usize],
        dilations: Option<&[usize]>,
    ) -> PResult<Vec<Vec<CellId>>> {
        let x = self.value_cells(input)?;
        let xs = self.shape(input).to_vec();
        let window = Window::new(&xs, st, pads_begin, dilations);
        let mut out = vec![];
        window.each_window(&out_shape[2..], kernel, |taps| {
            out.push(taps.iter().map(|&off| x[off]).collect());
        });
        Ok(out)
    }
}
