//! Lowering of MatMul into integer ops (`QOp`), numpy semantics: a constant matrix on either
//! side folds into a linear layer (weights fixed in the gates); every other form (1-D operands,
//! broadcast leading axes, constants with batch axes, two runtime operands) is a product of
//! runtime tensors (`QOp::MatMul`). `Lowering::lower_op` dispatches here.

use super::*;
use crate::model::ELLIPSIS;

impl Lowering<'_> {
    pub(super) fn lower_matmul(
        &mut self,
        node: &Node,
        fold_bn: Option<&Node>,
        arg0: String,
    ) -> Result<Operand> {
        let b_name = input(node, 1).ok_or_else(|| self.fail("MatMul needs two inputs"))?;
        let (a, b) = (self.operand(&arg0)?, self.operand(&b_name)?);
        self.matmul_of(a, b, fold_bn)
    }

    /// MatMul of two operands (see [`Self::lower_matmul`]).
    pub(super) fn matmul_of(
        &mut self,
        a: Operand,
        b: Operand,
        fold_bn: Option<&Node>,
    ) -> Result<Operand> {
        let is_matrix = |t: &Tensor<f64>| squeeze_leading(t.clone()).rank() == 2;
        match (a, b) {
            (Operand::Const(a), Operand::Const(b)) if is_matrix(&a) && is_matrix(&b) => Ok(
                Operand::Const(float_matmul(&squeeze_leading(a), &squeeze_leading(b))),
            ),
            (Operand::Value(x), Operand::Const(w)) if is_matrix(&w) => {
                self.linear(x, squeeze_leading(w), None, fold_bn)
            }
            (Operand::Const(a), Operand::Value(x)) if is_matrix(&a) && self.shape(x).len() >= 2 => {
                self.constant_times(squeeze_leading(a), x, fold_bn)
            }
            (a, b) => {
                let a = self.matmul_operand(a)?;
                let b = self.matmul_operand(b)?;
                self.matmul_values(a, b).map(Operand::Value)
            }
        }
    }

    /// Einsum: operands transposed to `[batch…, free…, summed…]` and `[batch…, summed…,
    /// free…]`, each reshaped to three axes, one MatMul, then reshaped and transposed to the
    /// output (a single operand: a transpose and a sum). Letters of one operand that the output
    /// lacks are summed first.
    pub(super) fn lower_einsum(
        &mut self,
        node: &Node,
        terms: &[Vec<char>],
        output: &[char],
    ) -> Result<Operand> {
        let mut ops = vec![];
        for i in 0..terms.len() {
            let name = input(node, i).ok_or_else(|| self.fail("Einsum misses an operand"))?;
            ops.push((self.operand(&name)?, self.shape_of(&name)?));
        }
        let ranks: Vec<usize> = ops.iter().map(|(_, sh)| sh.len()).collect();
        let (terms, output) = expand_ellipsis(terms, output, &ranks).map_err(|e| self.fail(e))?;
        let output = output.as_slice();
        let mut ops: Vec<(Operand, Vec<char>, Vec<usize>)> = ops
            .into_iter()
            .zip(&terms)
            .map(|((o, sh), t)| (o, t.clone(), sh))
            .collect();
        for (o, t, sh) in ops.iter_mut() {
            if sh.len() != t.len() {
                return Err(self.fail(format!("term {t:?} for an operand of shape {sh:?}")));
            }
            // A letter twice in one operand: its diagonal.
            while let Some((p, q)) = repeated(t) {
                if sh[p] != sh[q] {
                    return Err(self.fail(format!("a diagonal of axes {p} and {q} of {sh:?}")));
                }
                *o = self.diagonal(o.clone(), sh, p, q)?;
                t.remove(q);
                sh.remove(q);
            }
        }
        let terms: Vec<Vec<char>> = ops.iter().map(|(_, t, _)| t.clone()).collect();
        // Sum the letters only one operand has and the output lacks.
        let others: Vec<Vec<char>> = terms.to_vec();
        for (j, (o, t, sh)) in ops.iter_mut().enumerate() {
            let lonely: Vec<usize> = (0..t.len())
                .filter(|&d| {
                    !output.contains(&t[d])
                        && !others
                            .iter()
                            .enumerate()
                            .any(|(k, u)| k != j && u.contains(&t[d]))
                })
                .collect();
            if lonely.is_empty() {
                continue;
            }
            let v = self.matmul_operand(o.clone())?;
            let (sum, _) = self.reduce_sum(v, &lonely, false)?;
            *o = Operand::Value(sum);
            for &d in lonely.iter().rev() {
                t.remove(d);
                sh.remove(d);
            }
        }
        let dim = |c: char| -> usize {
            ops.iter()
                .find_map(|(_, t, sh)| t.iter().position(|&d| d == c).map(|p| sh[p]))
                .unwrap_or(1)
        };
        let (y, letters) = match ops.as_slice() {
            [(a, ta, _)] => (a.clone(), ta.clone()),
            [(a, ta, _), (b, tb, _)] => {
                let both = |c: &&char| ta.contains(c) && tb.contains(c);
                let batch: Vec<char> = output.iter().filter(both).copied().collect();
                let summed: Vec<char> = ta
                    .iter()
                    .filter(|c| tb.contains(c) && !output.contains(c))
                    .copied()
                    .collect();
                let free_a: Vec<char> = ta.iter().filter(|c| !tb.contains(c)).copied().collect();
                let free_b: Vec<char> = tb.iter().filter(|c| !ta.contains(c)).copied().collect();
                let size = |cs: &[char]| cs.iter().map(|&c| dim(c)).product::<usize>();
                let (nb, m, k, n) = (size(&batch), size(&free_a), size(&summed), size(&free_b));
                let a = self.arrange(a.clone(), ta, [&batch, &free_a, &summed], [nb, m, k])?;
                let b = self.arrange(b.clone(), tb, [&batch, &summed, &free_b], [nb, k, n])?;
                let y = self.matmul_of(a, b, None)?;
                let letters: Vec<char> = [batch, free_a, free_b].concat();
                let shape: Vec<usize> = letters.iter().map(|&c| dim(c)).collect();
                (self.reshape_operand(y, shape)?, letters)
            }
            _ => return Err(self.fail("Einsum of more than two operands")),
        };
        // Letters left that the output lacks (one operand): summed; then the output's order.
        let gone: Vec<usize> = (0..letters.len())
            .filter(|&d| !output.contains(&letters[d]))
            .collect();
        let (y, letters) = if gone.is_empty() {
            (y, letters)
        } else {
            let v = self.matmul_operand(y)?;
            let (sum, _) = self.reduce_sum(v, &gone, false)?;
            let kept = letters.into_iter().filter(|c| output.contains(c)).collect();
            (Operand::Value(sum), kept)
        };
        let perm: Vec<usize> = output
            .iter()
            .map(|c| letters.iter().position(|d| d == c).unwrap_or(0))
            .collect();
        self.transpose_operand(y, &perm)
    }

    /// The diagonal of axes `p < q` of `o` (shape `sh`): axis `q` goes, and its index is axis
    /// `p`'s. Rewiring of a value, folded on a constant.
    fn diagonal(&mut self, o: Operand, sh: &[usize], p: usize, q: usize) -> Result<Operand> {
        let mut out = sh.to_vec();
        out.remove(q);
        let st = strides(sh);
        let mut index = Vec::with_capacity(numel(&out));
        for_each_index(&out, |c| {
            let mut at: Vec<usize> = c.to_vec();
            at.insert(q, c[p]);
            index.push(at.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>() as i64);
        });
        self.rewire_operand(o, out, index, 0.0)
    }

    /// Operand `o` (axes named by `letters`) transposed to the letters of `groups` in order and
    /// reshaped to `shape` (one axis per group).
    fn arrange(
        &mut self,
        o: Operand,
        letters: &[char],
        groups: [&[char]; 3],
        shape: [usize; 3],
    ) -> Result<Operand> {
        let perm: Vec<usize> = groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|c| letters.iter().position(|d| d == c).unwrap_or(0))
            .collect();
        let o = self.transpose_operand(o, &perm)?;
        self.reshape_operand(o, shape.to_vec())
    }

    fn reshape_operand(&mut self, o: Operand, shape: Vec<usize>) -> Result<Operand> {
        Ok(match o {
            Operand::Const(t) => Operand::Const(t.reshaped(shape)),
            Operand::Value(v) => Operand::Value(self.reshaped(v, shape)?),
        })
    }

    /// A MatMul operand as a value: a constant at its own parameter scale.
    fn matmul_operand(&mut self, o: Operand) -> Result<usize> {
        match o {
            Operand::Value(v) => Ok(v),
            Operand::Const(t) => {
                let s = self.param_scale(&t);
                self.const_value(&t, s)
            }
        }
    }

    /// `A·x` for a constant matrix `A`: `(xᵀ·Aᵀ)ᵀ` over the last two axes.
    fn constant_times(
        &mut self,
        a: Tensor<f64>,
        x: usize,
        fold_bn: Option<&Node>,
    ) -> Result<Operand> {
        let sh = self.shape(x);
        let r = sh.len();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 1, r - 2);
        let mut tsh = sh.clone();
        tsh.swap(r - 1, r - 2);
        let xt = self.push(
            QOp::Transpose { perm: perm.clone() },
            vec![x],
            tsh,
            self.scale_of(x),
        )?;
        let y = match self.linear(xt, a.transpose(&[1, 0]), None, fold_bn)? {
            Operand::Value(y) => y,
            c => return Ok(c),
        };
        let mut ysh = self.shape(y);
        ysh.swap(r - 1, r - 2);
        let sc = self.scale_of(y);
        Ok(Operand::Value(self.push(
            QOp::Transpose { perm },
            vec![y],
            ysh,
            sc,
        )?))
    }

    /// The product of two values with numpy's MatMul semantics: a 1-D operand gains a unit axis
    /// (`[k]` is `[1, k]` on the left, `[k, 1]` on the right) that the result drops; the leading
    /// axes broadcast (an operand is expanded by rewiring unless it is one matrix for all).
    fn matmul_values(&mut self, a: usize, b: usize) -> Result<usize> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa.is_empty() || sb.is_empty() {
            return Err(self.fail(format!("MatMul of {sa:?} × {sb:?}: a scalar operand")));
        }
        let (a1, b1) = (sa.len() == 1, sb.len() == 1);
        let a = if a1 {
            self.reshaped(a, vec![1, sa[0]])?
        } else {
            a
        };
        let b = if b1 {
            self.reshaped(b, vec![sb[0], 1])?
        } else {
            b
        };
        let (sa2, sb2) = (self.shape(a), self.shape(b));
        let (m, k) = (sa2[sa2.len() - 2], sa2[sa2.len() - 1]);
        let (k2, n) = (sb2[sb2.len() - 2], sb2[sb2.len() - 1]);
        let (la, lb) = (&sa2[..sa2.len() - 2], &sb2[..sb2.len() - 2]);
        let lead = match broadcast_shape(la, lb) {
            Some(l) if k == k2 => l,
            _ => return Err(self.fail(format!("MatMul shapes {sa:?} × {sb:?} do not match"))),
        };
        let a = self.expand_batch(a, la, &lead, [m, k])?;
        let b = self.expand_batch(b, lb, &lead, [k, n])?;
        let mut out = lead.clone();
        out.extend([m, n]);
        let sc = self.scale_of(a) + self.scale_of(b);
        let op = QOp::MatMul {
            batch: numel(&lead),
            m,
            k,
            n,
        };
        let y = self.push(op, vec![a, b], out.clone(), sc)?;
        // Drop the unit axes a 1-D operand brought.
        let r = out.len();
        let kept: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|&(d, _)| !((a1 && d == r - 2) || (b1 && d == r - 1)))
            .map(|(_, &n)| n)
            .collect();
        if kept.len() == out.len() {
            Ok(y)
        } else {
            self.reshaped(y, kept)
        }
    }

    /// Operand `v` (leading axes `from`, then `matrix`) with its leading axes broadcast to
    /// `lead`; unchanged when it already has them all, or is one matrix used for every batch.
    fn expand_batch(
        &mut self,
        v: usize,
        from: &[usize],
        lead: &[usize],
        matrix: [usize; 2],
    ) -> Result<usize> {
        if numel(from) == 1 || numel(from) == numel(lead) {
            return Ok(v);
        }
        let mut src = from.to_vec();
        src.extend(matrix);
        let mut target = lead.to_vec();
        target.extend(matrix);
        let index = broadcast_index_map(&src, &target)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        self.rewire_value(v, target, index)
    }

    /// The same data with a new shape (no rows).
    fn reshaped(&mut self, v: usize, shape: Vec<usize>) -> Result<usize> {
        let sc = self.scale_of(v);
        self.push(QOp::Reshape, vec![v], shape, sc)
    }
}

// Evaluation of the integer op this family introduces: the specification the circuit matches.

/// MatMul: see [`QOp::MatMul`].
pub(super) fn eval_matmul(
    inputs: &[&Tensor<i64>],
    out_shape: &[usize],
    batch: &usize,
    m: &usize,
    k: &usize,
    n: &usize,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let (a, b) = match inputs {
            [a, b] => (a, b),
            _ => return Err("matmul needs two inputs".into()),
        };
        let mut data = Vec::with_capacity(batch * m * n);
        for t in 0..*batch {
            let (ao, bo) = matmul_offsets(t, a.len(), b.len(), *m, *k, *n);
            for i in 0..*m {
                for j in 0..*n {
                    let acc: i128 = (0..*k)
                        .map(|l| a.data[ao + i * k + l] as i128 * b.data[bo + l * n + j] as i128)
                        .sum();
                    data.push(to_i64(acc, "a matrix product")?);
                }
            }
        }
        Tensor::new(out_shape.to_vec(), data)
    })
}

/// The first letter that `t` holds twice, as the positions `(p, q)`, `p < q`.
fn repeated(t: &[char]) -> Option<(usize, usize)> {
    (1..t.len()).find_map(|q| t[..q].iter().position(|&c| c == t[q]).map(|p| (p, q)))
}

/// Einsum terms with the ellipsis replaced by letters of their own, given the operands' ranks:
/// the ellipsis stands for the axes its term's letters leave, aligned at the right across
/// operands (numpy's rule), and the output's ellipsis for all of them.
fn expand_ellipsis(
    terms: &[Vec<char>],
    output: &[char],
    ranks: &[usize],
) -> std::result::Result<(Vec<Vec<char>>, Vec<char>), String> {
    let spans: Vec<usize> = terms
        .iter()
        .zip(ranks)
        .map(|(t, &r)| {
            if !t.contains(&ELLIPSIS) {
                return Ok(0);
            }
            r.checked_sub(t.len() - 1)
                .ok_or_else(|| format!("term {t:?} for an operand of rank {r}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let empty = terms
        .iter()
        .zip(&spans)
        .any(|(t, &n)| t.contains(&ELLIPSIS) && n == 0);
    if terms.len() > 1 && empty {
        // tract drops the output's ellipsis axes then.
        return Err("an ellipsis that spans no axis of one operand is not supported".into());
    }
    let most = spans.iter().copied().max().unwrap_or(0);
    // Letters no equation can use: ONNX allows only ASCII letters.
    let fresh: Vec<char> = (0..most as u32)
        .map(|k| char::from_u32(0x100 + k).unwrap_or('?'))
        .collect();
    let expand = |t: &[char], span: usize| -> Vec<char> {
        t.iter()
            .flat_map(|&c| {
                if c == ELLIPSIS {
                    fresh[most - span..].to_vec()
                } else {
                    vec![c]
                }
            })
            .collect()
    };
    let terms = terms
        .iter()
        .zip(&spans)
        .map(|(t, &span)| expand(t, span))
        .collect();
    Ok((terms, expand(output, most)))
}
