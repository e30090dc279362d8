//! Lowering of LayerNormalization, InstanceNormalization and GroupNormalization into integer ops
//! (`QOp`);
//! `Lowering::lower_op` dispatches here.

use super::*;

impl Lowering<'_> {
    pub(super) fn lower_normalization(
        &mut self,
        node: &Node,
        arg0: String,
        (axis, epsilon): (i64, f64),
        instance: bool,
        groups: Option<usize>,
    ) -> Result<Operand> {
        // (x − mean) · rsqrt(var + ε) · scale + bias: means by sums and rescales, the
        // square and the normalizing product by the mul gate, rsqrt in exact arithmetic.
        let x = self.value(&arg0)?;
        let xs = self.shape(x);
        let r = xs.len();
        let sc = self.scale_of(x);
        // Groups: [N, C, …] is normalized as [N, G, C/G·…] over its last axis (no rows).
        let (x, axes) = match groups {
            Some(g) if r >= 2 && g > 0 && xs[0] > 0 && xs[1].is_multiple_of(g) => {
                let per = numel(&xs) / (xs[0] * g);
                (
                    self.push(QOp::Reshape, vec![x], vec![xs[0], g, per], sc)?,
                    vec![2],
                )
            }
            Some(g) => {
                return Err(self.fail(format!("{g} groups for an input of shape {xs:?}")));
            }
            None => {
                let a = axis_index(axis, r).map_err(|e| self.fail(e))?;
                (x, (a..r).collect())
            }
        };
        const WHAT: &str = "normalization";
        let as_value = |this: &mut Self, o: Operand| -> Result<usize> {
            let v = this.runtime_value(o, WHAT)?;
            this.rescale_to(v, sc)
        };
        let mean = self.mean(x, axes.clone(), true)?;
        let d = self.binary(&Op::Sub, Operand::Value(x), mean)?;
        let d = as_value(self, d)?;
        // The variance is kept finer than the activations, so the table can read it
        // finely (rsqrt is steep for small variances): the sum of squares (scale 2·S) is
        // divided by the count and brought to that scale in one rescale.
        let sq = self.binary(&Op::Mul, Operand::Value(d), Operand::Value(d))?;
        let sq = self.runtime_value(sq, WHAT)?;
        let (sum, count) = self.reduce_sum(sq, &axes, true)?;
        let sq_scale = self.scale_of(sum);
        // The finest scale at which the calibrated variance (plus ε, with a bit of
        // headroom) still fits the activation range, but no coarser than S + 4.
        let var_max =
            self.values[sum].range.1.max(0) as f64 / count.max(1) as f64 / 2f64.powi(sq_scale)
                + epsilon;
        let limit = 2f64.powi(self.cfg.activation_bits as i32 - 3);
        let mut fine = sq_scale;
        while fine > sc + 4 && var_max * 2f64.powi(fine) >= limit {
            fine -= 1;
        }
        let fine = fine.min(sq_scale);
        let divisor = count.max(1) << (sq_scale - fine);
        let var_shape = self.shape(sum);
        let var = Operand::Value(self.push(
            QOp::Rescale {
                divisor: vec![divisor],
            },
            vec![sum],
            var_shape,
            fine,
        )?);
        let eps = Operand::Const(Tensor::new(vec![], vec![epsilon]));
        let ve = self.binary(&Op::Add, var, eps)?;
        let ve = self.runtime_value(ve, WHAT)?;
        let inv = self.rsqrt(ve)?;
        let y = self.binary(&Op::Mul, Operand::Value(d), Operand::Value(inv))?;
        let mut y = as_value(self, y)?;
        if groups.is_some() {
            y = self.push(QOp::Reshape, vec![y], xs.clone(), sc)?;
        }
        // Scale and bias: over the normalized axes, or per channel (instance, groups; a
        // per-group one, as opset 18 gives it, repeated over the group's channels).
        let channels = xs.get(1).copied().unwrap_or(1);
        let shape_for = |t: Tensor<f64>| -> Tensor<f64> {
            if !instance {
                return t;
            }
            let t = match groups {
                Some(g) if t.len() == g && g != channels => {
                    let per = channels / g;
                    let data = t.data.iter().flat_map(|&v| std::iter::repeat_n(v, per));
                    Tensor::new(vec![channels], data.collect())
                }
                _ => t,
            };
            let mut sh = vec![t.len()];
            sh.extend(std::iter::repeat_n(1, r - 2));
            t.reshaped(sh)
        };
        if let Some(n) = input(node, 1) {
            let g = shape_for(self.constant(&n)?);
            let o = self.binary(&Op::Mul, Operand::Value(y), Operand::Const(g))?;
            y = as_value(self, o)?;
        }
        match input(node, 2) {
            Some(n) => {
                let b = shape_for(self.constant(&n)?);
                self.binary(&Op::Add, Operand::Value(y), Operand::Const(b))
            }
            None => Ok(Operand::Value(y)),
        }
    }

    /// `1/√v` at the activation scale for a variance `v` of at least one unit, in exact
    /// arithmetic (no table): `m = ⌊√(v·2^shift)⌋` at scale `t`, with as many bits as the
    /// calibrated range (times the margin) leaves below the activation bits, then
    /// `2^(S+t) / m` to nearest. The many bits of `m` keep its rounding far below one output
    /// unit, down to variances of one unit.
    pub(super) fn rsqrt(&mut self, v: usize) -> Result<usize> {
        let (sh, f) = (self.shape(v), self.scale_of(v));
        let bits = self.cfg.activation_bits as i32;
        let reach = self.values[v].range.1.max(1) as f64 * self.cfg.margin;
        // m² ≈ V·2^shift stays below 2^(2·bits − 4), so m < 2^(bits − 2); t = (f + shift) / 2
        // must be whole, and 2^(S+t) must fit the reciprocal's numerator.
        let mut shift = (2 * bits - 4 - reach.log2().ceil() as i32).max(0);
        if (f + shift) % 2 != 0 {
            shift = if shift > 0 { shift - 1 } else { 1 };
        }
        let mut t = (f + shift) / 2;
        while self.s + t > 60 && shift >= 2 {
            shift -= 2;
            t -= 1;
        }
        if shift < 0 || t < 0 || self.s + t > 60 {
            return Err(self.fail(format!("a variance at scale 2^{f} is out of reach")));
        }
        let m = self.push(
            QOp::Sqrt {
                shift: shift as u32,
            },
            vec![v],
            sh.clone(),
            t,
        )?;
        self.push(
            QOp::Recip {
                num: 1 << (self.s + t),
            },
            vec![m],
            sh,
            self.s,
        )
    }
}
