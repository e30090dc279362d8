//! Circuit planning of Gather: rewiring, with one shared cell for the fill value. `Builder::node`
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
}
