//! Circuit planning of Linear, Conv (dot products; hashed weights through the pair-dot gate) and
//! MatMul of two runtime tensors (pair dots). `Builder::node` dispatches here; the family's lowering and evaluation
//! are in `quantize/dense.rs`.

use super::*;
use crate::quantize::QNode;

impl Builder<'_> {
    pub(super) fn plan_linear(
        &mut self,
        n: &QNode,
        k: &usize,
        nout: &usize,
        weight: &[i64],
        bias: &Option<Vec<i64>>,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let rows = x.len() / k;
            let mut out = vec![];
            for r in 0..rows {
                for j in 0..*nout {
                    let mut terms = vec![];
                    for i in 0..*k {
                        let w = self.weight(0, i * nout + j, weight[i * nout + j]);
                        terms.push((x[r * k + i], w));
                    }
                    let c = match bias {
                        Some(b) => self.weight(1, j, b[j]),
                        None => Param::Fixed(0),
                    };
                    out.push(self.weighted_sum(terms, c));
                }
            }
            out
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan_conv(
        &mut self,
        n: &QNode,
        out_shape: &[usize],
        out_channels: &usize,
        kernel: &[usize],
        st: &[usize],
        pads_begin: &[usize],
        dilations: &[usize],
        weight: &[i64],
        bias: &Option<Vec<i64>>,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let xs = self.shape(n.inputs[0]).to_vec();
            let win = Window::new(&xs, st, pads_begin, Some(dilations));
            let mut out = vec![];
            win.each_conv_output(&out_shape[2..], *out_channels, kernel, |o, taps| {
                let mut terms = vec![];
                for &(off, wi) in taps {
                    let w = self.weight(0, wi, weight[wi]);
                    terms.push((x[off], w));
                }
                let c = match bias {
                    Some(bv) => self.weight(1, o, bv[o]),
                    None => Param::Fixed(0),
                };
                out.push(self.weighted_sum(terms, c));
            });
            out
        })
    }

    pub(super) fn plan_mat_mul(
        &mut self,
        n: &QNode,
        batch: &usize,
        m: &usize,
        k: &usize,
        cols: &usize,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let a = self.value_cells(n.inputs[0])?;
            let b = self.value_cells(n.inputs[1])?;
            let mut out = Vec::with_capacity(batch * m * cols);
            for t in 0..*batch {
                let (ao, bo) = matmul_offsets(t, a.len(), b.len(), *m, *k, *cols);
                for i in 0..*m {
                    for j in 0..*cols {
                        let pairs = (0..*k)
                            .map(|l| (a[ao + i * k + l], b[bo + l * cols + j]))
                            .collect();
                        out.push(self.pair_dot(pairs));
                    }
                }
            }
            out
        })
    }
}
