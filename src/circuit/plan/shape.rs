//! Circuit planning of Transpose and Concat: rewiring, no rows. `Builder::node` dispatches here;
//! the family's lowering and evaluation are in `quantize/shape.rs`.

use super::*;
use crate::quantize::QNode;

impl Builder<'_> {
    pub(super) fn plan_transpose(&mut self, n: &QNode, perm: &[usize]) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            Tensor::new(self.shape(n.inputs[0]).to_vec(), x)
                .transpose(perm)
                .data
        })
    }

    pub(super) fn plan_concat(&mut self, n: &QNode, axis: &usize) -> PResult<Vec<CellId>> {
        Ok({
            let parts: Vec<Tensor<CellId>> = n
                .inputs
                .iter()
                .map(|&i| Ok(Tensor::new(self.shape(i).to_vec(), self.value_cells(i)?)))
                .collect::<PResult<_>>()?;
            let refs: Vec<&Tensor<CellId>> = parts.iter().collect();
            concat_cells(&refs, *axis)
        })
    }
}
