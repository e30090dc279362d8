//! Circuit planning of the digests: the hashed parameters (range-checked private cells, packed
//! into words for the weights digest) and how a digest's blocks are laid out on the Poseidon
//! chip's lanes.

use super::*;

/// One block of a digest's layout: a block of chain `chain` (its `index`-th), or the join of
/// the chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashJob {
    Chain { chain: usize, index: usize },
    Join,
}

/// The blocks of hashing a message of `len` elements (padded) on `lanes` lanes of the Poseidon
/// chip, slot by slot (a slot is [`crate::circuit::poseidon::BLOCK_ROWS`] rows, one block per lane): each
/// slot runs the next block of the chains with the most blocks left (a chain may change lanes
/// from one block to the next: its digest is copied), so the lanes fill evenly; the join of the
/// chains takes a slot of its own after them, on lane 0.
pub fn hash_schedule(len: usize, lanes: usize) -> Vec<Vec<(usize, HashJob)>> {
    let (b, s, p) = (commit::blocks(len), commit::chains(len), lanes.max(1));
    let total: Vec<usize> = (0..s).map(|j| b / s + usize::from(j < b % s)).collect();
    let mut done = vec![0usize; s];
    let mut out = vec![];
    loop {
        let mut next: Vec<usize> = (0..s).filter(|&j| done[j] < total[j]).collect();
        if next.is_empty() {
            break;
        }
        next.sort_by_key(|&j| (std::cmp::Reverse(total[j] - done[j]), j));
        next.truncate(p);
        next.sort_unstable();
        out.push(
            next.iter()
                .enumerate()
                .map(|(lane, &chain)| {
                    done[chain] += 1;
                    let index = done[chain] - 1;
                    (lane, HashJob::Chain { chain, index })
                })
                .collect(),
        );
    }
    if s > 1 {
        out.push(vec![(0, HashJob::Join)]);
    }
    out
}

/// Hashed parameters: every parameter integer a private cell, range-checked to its tensor's
/// width (its digits are the range check, so the cell costs nothing more); each tensor packed
/// into words, and the words hashed into instance `row`. Returns the tensors' descriptions.
pub(super) fn plan_hashed_params(
    b: &mut Builder,
    qm: &QuantizedModel,
    instance: &mut Option<Vec<Fp>>,
    row: usize,
) -> PResult<Vec<ParamTensor>> {
    let mut param_tensors = vec![];
    let mut cells = HashMap::new();
    let mut msg = vec![b.constant_i128(commit::params_tag())];
    let mut count = 0;
    let widths = commit::param_widths(qm);
    for (t, &bits) in commit::param_tensors(qm).into_iter().zip(&widths) {
        b.node = t.node;
        let cs: Vec<CellId> = t
            .data
            .iter()
            .map(|&x| {
                let v = b.witness.then_some(x as i128);
                b.checked_cell(v, bits)
            })
            .collect::<PResult<_>>()?;
        msg.extend(b.pack(&cs, bits));
        count += cs.len();
        param_tensors.push(ParamTensor {
            node: qm.nodes[t.node].name.clone(),
            kind: t.kind.into(),
            len: cs.len(),
            bits,
        });
        cells.insert((t.node, t.index), cs);
    }
    b.node = usize::MAX;
    msg.push(b.constant_i128(count as i128));
    if let Some(inst) = instance.as_mut() {
        inst.push(commit::params_digest(qm));
    }
    b.hash(msg, row, "weights digest");
    b.params = Some(cells);
    Ok(param_tensors)
}
