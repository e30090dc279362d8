//! Lowering of Shape, Squeeze, Unsqueeze, Flatten, Reshape, Transpose, Concat, Tile, Expand and
//! ConstantOfShape into integer ops (`QOp`); `Lowering::lower_op` dispatches here.

use super::*;

impl Lowering<'_> {
    /// Axis i of the result is axis `perm[i]` of `o`: folded on a constant, rewiring of a value.
    pub(super) fn transpose_operand(&mut self, o: Operand, perm: &[usize]) -> Result<Operand> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(o);
        }
        Ok(match o {
            Operand::Const(t) => Operand::Const(t.transpose(perm)),
            Operand::Value(v) => {
                let sh = self.shape(v);
                let out = perm.iter().map(|&p| sh[p]).collect();
                let sc = self.scale_of(v);
                let op = QOp::Transpose {
                    perm: perm.to_vec(),
                };
                Operand::Value(self.push(op, vec![v], out, sc)?)
            }
        })
    }

    /// ONNX axes (negative from the end) of a tensor of rank `r`, each checked.
    pub(super) fn axes_of(&self, axes: &[i64], r: usize) -> Result<Vec<usize>> {
        axes.iter()
            .map(|&a| axis_index(a, r))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.fail(e))
    }

    pub(super) fn lower_constant_of_shape(&mut self, arg0: String, value: &f64) -> Result<Operand> {
        // The shape is static (shape arithmetic on fixed shapes), so the fill is a
        // constant.
        let dims = crate::model::folded_dims(&self.constant(&arg0)?).map_err(|e| self.fail(e))?;
        Ok(Operand::Const(Tensor::filled(dims, *value)))
    }

    /// The input's dimensions `start..end` as a constant (ONNX clamps both to the rank, and a
    /// negative one counts from the end).
    pub(super) fn lower_shape(
        &mut self,
        arg0: String,
        start: i64,
        end: Option<i64>,
    ) -> Result<Operand> {
        let sh = self.shape_of(&arg0)?;
        let rank = sh.len() as i64;
        let at = |i: i64| (if i < 0 { i + rank } else { i }).clamp(0, rank) as usize;
        let (a, b) = (at(start), at(end.unwrap_or(rank)));
        let dims: Vec<f64> = sh[a..b.max(a)].iter().map(|&d| d as f64).collect();
        Ok(Operand::Const(Tensor::new(vec![dims.len()], dims)))
    }

    pub(super) fn lower_squeeze(
        &mut self,
        node: &Node,
        arg0: String,
        axes: &Option<Vec<i64>>,
        unsqueeze: &bool,
    ) -> Result<Operand> {
        let sh = self.shape_of(&arg0)?;
        let axes: Option<Vec<i64>> = match (axes, input(node, 1)) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(n)) => Some(self.constant_ints(&n)?),
            (None, None) => None,
        };
        let target = if *unsqueeze {
            let axes = axes.ok_or_else(|| self.fail("Unsqueeze needs axes"))?;
            let r = sh.len() + axes.len();
            let mut at = self.axes_of(&axes, r)?;
            at.sort_unstable();
            let mut out = sh.clone();
            for a in at {
                out.insert(a, 1);
            }
            out
        } else {
            let r = sh.len();
            let drop: Vec<usize> = match axes {
                Some(a) => self.axes_of(&a, r)?,
                None => (0..r).filter(|&d| sh[d] == 1).collect(),
            };
            if drop.iter().any(|&d| sh[d] != 1) {
                return Err(self.fail(format!("cannot squeeze axes {drop:?} of {sh:?}")));
            }
            sh.iter()
                .enumerate()
                .filter(|(d, _)| !drop.contains(d))
                .map(|(_, &n)| n)
                .collect()
        };
        self.reshape(&arg0, target)
    }

    pub(super) fn lower_tile(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let reps = self.constant_ints(&input(node, 1).ok_or_else(|| self.fail("no repeats"))?)?;
        if reps.len() != xs.len() || reps.iter().any(|&v| v < 0) {
            return Err(self.fail(format!("repeats {reps:?} for shape {xs:?}")));
        }
        let out: Vec<usize> = xs
            .iter()
            .zip(&reps)
            .map(|(&n, &k)| n * k as usize)
            .collect();
        let index = index_map(&xs, &out, |d, o| Some(o % xs[d].max(1)));
        self.rewire(&arg0, out, index, 0.0)
    }

    /// DepthToSpace and SpaceToDepth: rewiring. With block b and C' = C/b², DepthToSpace puts
    /// input channel `(i·b + j)·C' + c` (DCR) or `c·b² + i·b + j` (CRD) at output channel `c`,
    /// row `h·b + i`, column `w·b + j`; SpaceToDepth (DCR) is its inverse.
    pub(super) fn lower_depth_space(
        &mut self,
        arg0: String,
        b: usize,
        crd: bool,
        to_depth: bool,
    ) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let [n, c, h, w] = xs[..] else {
            return Err(self.fail(format!("input {xs:?}: a [N, C, H, W] tensor is needed")));
        };
        let bb = b * b;
        let fits = if to_depth {
            h % b == 0 && w % b == 0
        } else {
            c % bb == 0
        };
        if !fits {
            return Err(self.fail(format!("input {xs:?} does not divide into blocks of {b}")));
        }
        // Both directions pair a "deep" tensor [N, C', H, W]·b² with a "wide" one.
        let (cd, hd, wd) = if to_depth {
            (c, h / b, w / b)
        } else {
            (c / bb, h, w)
        };
        let deep = |n_: usize, ch: usize, i: usize, j: usize, y: usize, x: usize| {
            let k = if crd {
                ch * bb + i * b + j
            } else {
                (i * b + j) * cd + ch
            };
            ((n_ * cd * bb + k) * hd + y) * wd + x
        };
        let wide = |n_: usize, ch: usize, i: usize, j: usize, y: usize, x: usize| {
            ((n_ * cd + ch) * hd * b + y * b + i) * wd * b + x * b + j
        };
        let out = if to_depth {
            vec![n, cd * bb, hd, wd]
        } else {
            vec![n, cd, hd * b, wd * b]
        };
        let mut index = vec![0i64; n * cd * bb * hd * wd];
        for n_ in 0..n {
            for ch in 0..cd {
                for i in 0..b {
                    for j in 0..b {
                        for y in 0..hd {
                            for x in 0..wd {
                                let (d, s) = (deep(n_, ch, i, j, y, x), wide(n_, ch, i, j, y, x));
                                let (to, from) = if to_depth { (d, s) } else { (s, d) };
                                index[to] = from as i64;
                            }
                        }
                    }
                }
            }
        }
        self.rewire(&arg0, out, index, 0.0)
    }

    pub(super) fn lower_expand(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        let xs = self.shape_of(&arg0)?;
        let shape = self.constant_ints(&input(node, 1).ok_or_else(|| self.fail("no shape"))?)?;
        let want: Vec<usize> = shape.iter().map(|&v| v.max(0) as usize).collect();
        let out = broadcast_shape(&xs, &want)
            .ok_or_else(|| self.fail(format!("shape {xs:?} does not broadcast to {want:?}")))?;
        let index = broadcast_index_map(&xs, &out)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        self.rewire(&arg0, out, index, 0.0)
    }

    pub(super) fn lower_flatten(&mut self, arg0: String, axis: &i64) -> Result<Operand> {
        let sh = self.shape_of(&arg0)?;
        let a = if *axis < 0 {
            *axis + sh.len() as i64
        } else {
            *axis
        };
        if a < 0 || a as usize > sh.len() {
            return Err(self.fail(format!("axis {axis} is out of range for rank {}", sh.len())));
        }
        let a = a as usize;
        self.reshape(
            &arg0,
            vec![sh[..a].iter().product(), sh[a..].iter().product()],
        )
    }

    pub(super) fn lower_reshape(
        &mut self,
        node: &Node,
        arg0: String,
        allowzero: &bool,
    ) -> Result<Operand> {
        let sh = self.shape_of(&arg0)?;
        let spec =
            self.constant(&input(node, 1).ok_or_else(|| self.fail("Reshape needs a shape"))?)?;
        let target = reshape_target(&sh, &spec.data, *allowzero).map_err(|e| self.fail(e))?;
        self.reshape(&arg0, target)
    }

    pub(super) fn lower_transpose(
        &mut self,
        arg0: String,
        perm: &Option<Vec<usize>>,
    ) -> Result<Operand> {
        let sh = self.shape_of(&arg0)?;
        let perm = perm
            .clone()
            .unwrap_or_else(|| (0..sh.len()).rev().collect());
        let mut check = perm.clone();
        check.sort();
        if check != (0..sh.len()).collect::<Vec<_>>() {
            return Err(self.fail(format!(
                "perm {perm:?} is not a permutation of rank {}",
                sh.len()
            )));
        }
        let x = self.operand(&arg0)?;
        self.transpose_operand(x, &perm)
    }

    pub(super) fn lower_concat(&mut self, node: &Node, axis: &i64) -> Result<Operand> {
        let s = self.s;
        let names: Vec<String> = node
            .inputs
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        let ops: Vec<Operand> = names
            .iter()
            .map(|n| self.operand(n))
            .collect::<Result<_>>()?;
        let shapes: Vec<Vec<usize>> = names
            .iter()
            .map(|n| self.shape_of(n))
            .collect::<Result<_>>()?;
        let rank = shapes[0].len();
        let ax = axis_index(*axis, rank).map_err(|e| self.fail(e))?;
        for sh in &shapes {
            if sh.len() != rank || (0..rank).any(|d| d != ax && sh[d] != shapes[0][d]) {
                return Err(self.fail(format!(
                    "Concat inputs {shapes:?} do not match off axis {ax}"
                )));
            }
        }
        if ops.iter().all(|o| matches!(o, Operand::Const(_))) {
            let ts: Vec<Tensor<f64>> = ops
                .into_iter()
                .map(|o| {
                    if let Operand::Const(t) = o {
                        t
                    } else {
                        unreachable!()
                    }
                })
                .collect();
            return Ok(Operand::Const(concat(&ts.iter().collect::<Vec<_>>(), ax)));
        }
        let target = ops
            .iter()
            .map(|o| {
                if let Operand::Value(v) = o {
                    self.scale_of(*v)
                } else {
                    s
                }
            })
            .max()
            .unwrap_or(s);
        let mut ids = vec![];
        for o in ops {
            let v = match o {
                Operand::Value(v) => v,
                Operand::Const(t) => self.const_value(&t, target)?,
            };
            ids.push(self.rescale_to(v, target)?);
        }
        let mut out = shapes[0].clone();
        out[ax] = shapes.iter().map(|sh| sh[ax]).sum();
        Ok(Operand::Value(self.push(
            QOp::Concat { axis: ax },
            ids,
            out,
            target,
        )?))
    }
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// Reshape: see [`QOp::Reshape`].
pub(super) fn eval_reshape(
    x: Option<&Tensor<i64>>,
    out_shape: &[usize],
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        x.ok_or("reshape needs an input")?
            .reshaped(out_shape.to_vec())
    })
}
