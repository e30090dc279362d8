//! Lowering of ReLU, LeakyReLU, PRelu, Sigmoid, Tanh, the table functions (`TableFn`) and Softmax
//! into integer ops (`QOp`); `Lowering::lower_op` dispatches here.

use super::*;

impl Lowering<'_> {
    pub(super) fn lower_relu(&mut self, arg0: String) -> Result<Operand> {
        let x = self.value(&arg0)?;
        let sh = self.shape(x);
        let sc = self.scale_of(x);
        Ok(Operand::Value(self.push(QOp::Relu, vec![x], sh, sc)?))
    }

    /// ReLU of a value, or of a constant (folded).
    pub(super) fn relu_operand(&mut self, o: Operand) -> Result<Operand> {
        match o {
            Operand::Const(t) => Ok(Operand::Const(t.map(|&v| v.max(0.0)))),
            Operand::Value(v) => {
                let (sh, sc) = (self.shape(v), self.scale_of(v));
                Ok(Operand::Value(self.push(QOp::Relu, vec![v], sh, sc)?))
            }
        }
    }

    /// Clip(x, lo, hi) = min(max(x, lo), hi) through two ReLUs, exact at the input's scale:
    /// max(x, lo) = lo + relu(x − lo) and min(y, hi) = hi − relu(hi − y). ReLU6 (lo = 0) needs
    /// the first ReLU alone; a missing or infinite bound does not clip.
    pub(super) fn lower_clip(
        &mut self,
        node: &Node,
        arg0: String,
        min: Option<f64>,
        max: Option<f64>,
    ) -> Result<Operand> {
        let bound = |this: &Self, i: usize, attr: Option<f64>| -> Result<Option<f64>> {
            let v = match input(node, i) {
                Some(name) => {
                    let t = this.constant(&name)?;
                    if t.len() != 1 {
                        return Err(this.fail("Clip's min and max must be scalars"));
                    }
                    Some(t.data[0])
                }
                None => attr,
            };
            // Exporters write "no bound" as ±inf or the largest float.
            Ok(v.filter(|b| b.is_finite() && b.abs() < 1e30))
        };
        let (lo, hi) = (bound(self, 1, min)?, bound(self, 2, max)?);
        let c = |v: f64| Operand::Const(Tensor::new(vec![], vec![v]));
        let relu = |this: &mut Self, o: Operand| this.relu_operand(o);
        let mut y = Operand::Value(self.value(&arg0)?);
        if let Some(lo) = lo {
            y = if lo == 0.0 {
                relu(self, y)?
            } else {
                let d = self.binary(&Op::Sub, y, c(lo))?;
                let r = relu(self, d)?;
                self.binary(&Op::Add, r, c(lo))?
            };
        }
        if let Some(hi) = hi {
            let d = self.binary(&Op::Sub, c(hi), y)?;
            let r = relu(self, d)?;
            y = self.binary(&Op::Sub, c(hi), r)?;
        }
        Ok(y)
    }

    pub(super) fn lower_leaky_relu(&mut self, arg0: String, alpha: &f64) -> Result<Operand> {
        let x = self.value(&arg0)?;
        let a = Tensor::new(vec![], vec![*alpha]);
        let sa = self.param_scale(&a);
        let q = self.quant(&a, sa)?[0];
        let sh = self.shape(x);
        let sc = self.scale_of(x);
        Ok(Operand::Value(self.push(
            QOp::LeakyRelu {
                alpha: q,
                shift: sa as u32,
            },
            vec![x],
            sh,
            sc + sa,
        )?))
    }

    pub(super) fn lower_sigmoid_tanh(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        let func = if node.op == Op::Sigmoid {
            TableFn::Sigmoid
        } else {
            TableFn::Tanh
        };
        let x = self.value(&arg0)?;
        self.table(x, func)
    }

    pub(super) fn lower_unary(&mut self, arg0: String, func: &TableFn) -> Result<Operand> {
        let x = self.value(&arg0)?;
        match func {
            TableFn::Sqrt => Ok(Operand::Value(self.sqrt(x)?)),
            TableFn::Reciprocal => Ok(Operand::Value(self.reciprocal(x)?)),
            _ => self.table(x, *func),
        }
    }

    /// `1/x` at the activation scale for `x` of at least one unit: `⌊(2^(S+sx) + ⌊x/2⌋) / x⌋`,
    /// the nearest integer, proved exactly (no table).
    pub(super) fn reciprocal_positive(&mut self, x: usize) -> Result<usize> {
        self.reciprocal_at(x, self.s)
    }

    /// [`Self::reciprocal_positive`] at output scale `scale`.
    pub(super) fn reciprocal_at(&mut self, x: usize, scale: i32) -> Result<usize> {
        let (sh, sx) = (self.shape(x), self.scale_of(x));
        let bits = scale + sx;
        if !(0..62).contains(&bits) {
            return Err(self.fail(format!("a reciprocal at scale 2^{bits} is out of reach")));
        }
        self.push(QOp::Recip { num: 1 << bits }, vec![x], sh, scale)
    }

    /// `1/x` of either sign: `|x| = 2·x·s − x` with `s` the sign step, the reciprocal of
    /// `|x|`, and the sign put back the same way. A divisor below one unit (0 in particular)
    /// is refused by the evaluator, as a division by zero.
    pub(super) fn reciprocal(&mut self, x: usize) -> Result<usize> {
        let (sh, sx) = (self.shape(x), self.scale_of(x));
        let s = self.push(QOp::Step { offset: 0, one: 1 }, vec![x], sh.clone(), 0)?;
        let signed = |this: &mut Self, v: usize, sc: i32| -> Result<usize> {
            let vs = this.push(QOp::Mul, vec![v, s], sh.clone(), sc)?;
            let vs2 = this.push(QOp::ShiftLeft { bits: 1 }, vec![vs], sh.clone(), sc)?;
            this.push(QOp::Sub, vec![vs2, v], sh.clone(), sc)
        };
        let abs = signed(self, x, sx)?;
        let r = self.reciprocal_positive(abs)?;
        signed(self, r, self.s)
    }

    /// `√x` (0 for x < 0, as ONNX's NaN is taken everywhere else) in exact arithmetic, no
    /// table: `⌊√(max(x, 0)·2^shift)⌋` at scale S + 1, then a rescale by 2, which rounds to
    /// nearest (ties up): `⌊(⌊2√X⌋ + 1) / 2⌋ = ⌊√X + ½⌋`.
    pub(super) fn sqrt(&mut self, x: usize) -> Result<usize> {
        let (sh, target) = (self.shape(x), self.s + 1);
        // √(x / 2^sx) · 2^target = √(x · 2^(2·target − sx)).
        let x = if self.scale_of(x) > 2 * target {
            self.rescale_to(x, 2 * target)?
        } else {
            x
        };
        let sx = self.scale_of(x);
        let r = self.push(QOp::Relu, vec![x], sh.clone(), sx)?;
        let shift = (2 * target - sx) as u32;
        let m = self.push(QOp::Sqrt { shift }, vec![r], sh, target)?;
        self.rescale_to(m, self.s)
    }

    pub(super) fn lower_prelu(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        // max(x, 0) + slope·min(x, 0), with min(x, 0) = x − max(x, 0).
        let slope = self.constant(&input(node, 1).ok_or_else(|| self.fail("no slope"))?)?;
        let x = self.value(&arg0)?;
        let (sh, sc) = (self.shape(x), self.scale_of(x));
        let r = self.push(QOp::Relu, vec![x], sh, sc)?;
        let neg = self.binary(&Op::Sub, Operand::Value(x), Operand::Value(r))?;
        let scaled = match self.binary(&Op::Mul, neg, Operand::Const(slope))? {
            Operand::Value(v) => Operand::Value(self.rescale_to(v, sc)?),
            c => c,
        };
        self.binary(&Op::Add, Operand::Value(r), scaled)
    }

    pub(super) fn lower_softmax(
        &mut self,
        arg0: String,
        axis: &i64,
        flatten: &bool,
        log: bool,
    ) -> Result<Operand> {
        // exp(x − max) / Σ exp(x − max): max and sum over the axes, exp and the
        // reciprocal of the sum through tables, one product.
        let x = self.value(&arg0)?;
        let xs = self.shape(x);
        let a = axis_index(*axis, xs.len()).map_err(|e| self.fail(e))?;
        let axes: Vec<usize> = if *flatten {
            (a..xs.len()).collect()
        } else {
            vec![a]
        };
        if log {
            // x − log Σ exp(x), the second as ReduceLogSumExp computes it.
            let lse = self.log_sum_exp(x, &axes, true)?;
            let x = self.rescale_to(x, self.s)?;
            return self.binary(&Op::Sub, Operand::Value(x), Operand::Value(lse));
        }
        let sc = self.scale_of(x);
        let m = self.push(
            QOp::ReduceMax {
                axes: axes.clone(),
                keepdims: true,
                min: false,
            },
            vec![x],
            reduced_shape(&xs, &axes, true),
            sc,
        )?;
        let d = self.binary(&Op::Sub, Operand::Value(x), Operand::Value(m))?;
        let d = self.runtime_value(d, "softmax")?;
        // exp and the reciprocal kept SOFTMAX_GUARD_BITS finer than the output (exp ≤ 1, so
        // the bits are free of range), so the one rounding that counts is the last.
        let fine = self.s + SOFTMAX_GUARD_BITS;
        // x − max ≤ 0: the table stops at 0, where exp is gentlest, which lets the
        // interpolation step widen.
        let e = self.table_at(d, TableFn::Exp, fine, (f64::NEG_INFINITY, 0.0))?;
        let e = self.runtime_value(e, "softmax")?;
        let (sum, _) = self.reduce_sum(e, &axes, true)?;
        // The sum is at least exp(0) = one unit: its reciprocal is exact arithmetic.
        let r = self.reciprocal_at(sum, fine)?;
        let y = self.binary(&Op::Mul, Operand::Value(e), Operand::Value(r))?;
        let y = self.runtime_value(y, "softmax")?;
        self.rescale_to(y, self.s).map(Operand::Value)
    }

    /// A table function of a value, at the activation scale.
    pub(super) fn apply(&mut self, x: usize, func: TableFn) -> Result<usize> {
        let y = self.table(x, func)?;
        let y = self.runtime_value(y, "a recurrent layer's activation")?;
        self.rescale_to(y, self.s)
    }

    /// A lookup table over the calibrated input range (the margin times the largest magnitude
    /// seen, at least ±1.0). The table's input scale is the largest that keeps it within `table_bits`; the table
    /// is interpolated (see [`QOp::Interp`]) with the widest step that stays within one output
    /// unit of the exact table over the whole range.
    pub(super) fn table(&mut self, x: usize, func: TableFn) -> Result<Operand> {
        self.table_at(x, func, self.s, (f64::NEG_INFINITY, f64::INFINITY))
    }

    /// [`Self::table`] with outputs at scale `s`, and no entries outside `bounds` where the op
    /// guarantees its inputs stay within them.
    pub(super) fn table_at(
        &mut self,
        x: usize,
        func: TableFn,
        s: i32,
        bounds: (f64, f64),
    ) -> Result<Operand> {
        let sx = self.scale_of(x);
        let (mn, mx) = self.values[x].range;
        let (lo, hi) = table_span(mn, mx, sx, self.cfg.margin);
        let (lo, hi) = (lo.max(bounds.0), hi.min(bounds.1));
        let Some((t, lo, hi, step_bits)) = self.table_resolution(func, (lo, hi), sx, s) else {
            return Err(self.fail(format!(
                "inputs span {:.3} to {:.3}, too wide for a {} table of 2^{} entries",
                mn as f64 / 2f64.powi(sx),
                mx as f64 / 2f64.powi(sx),
                func.name(),
                self.cfg.table_bits
            )));
        };
        let xin = self.rescale_to(x, t)?;
        let sh = self.shape(xin);
        let op = if step_bits >= 2 {
            QOp::Interp {
                func,
                in_scale: t,
                out_scale: s,
                lo,
                hi,
                step_bits,
            }
        } else {
            QOp::Table {
                func,
                in_scale: t,
                out_scale: s,
                lo,
                hi,
            }
        };
        Ok(Operand::Value(self.push(op, vec![xin], sh, s)?))
    }
}

impl Lowering<'_> {
    /// The input scale `t ≤ sx` of a table of `func` over the real interval `lo..hi` (outputs
    /// at scale `s`), its integer bounds and its interpolation step: points 2^b apart, the
    /// widest b that stays within one output unit of the exact table everywhere in range (0:
    /// exact). `t` is the finest at which the span has at most 2^table_bits values; with
    /// `fine_tables`, the finest at which the interpolated table has at most 2^table_bits
    /// points, so the input's rounding, not the table, sets the error (scales whose span
    /// exceeds 2^(table_bits + 4) values are not tried: checking an interpolation visits every
    /// value).
    fn table_resolution(
        &self,
        func: TableFn,
        (lo, hi): (f64, f64),
        sx: i32,
        s: i32,
    ) -> Option<(i32, i64, i64, u32)> {
        let bits = self.cfg.table_bits as i32;
        (0..=sx).rev().find_map(|t| {
            let (lo, hi) = (
                (lo * 2f64.powi(t)).floor() as i64,
                (hi * 2f64.powi(t)).ceil() as i64,
            );
            let values = hi - lo + 1;
            let most = if self.cfg.fine_tables { bits + 4 } else { bits };
            if values > 1i64 << most {
                return None;
            }
            let step_bits = (1..=10u32)
                .rev()
                .filter(|_| !self.cfg.exact_tables)
                .find(|&b| {
                    let (lo, hi) = interp_domain(lo, hi, b);
                    (lo..=hi).all(|v| {
                        let e = table_entry(func, v, t, s);
                        (interp_entry(func, v, t, s, b) - e).abs() <= 1
                    })
                })
                .unwrap_or(0);
            let step_bits = if step_bits >= 2 { step_bits } else { 0 };
            let points = (values >> step_bits) + 1;
            (points <= 1i64 << bits).then_some((t, lo, hi, step_bits))
        })
    }
}

/// Bits finer than the output at which Softmax keeps exp and the reciprocal of the sum.
pub(super) const SOFTMAX_GUARD_BITS: i32 = 4;

/// The real interval a table covers for inputs calibrated to the integers `mn..=mx` at scale
/// `scale`: that range widened about its centre by `margin` (an input of a package may fall a
/// little outside what calibration saw), and at least 2^-6 wide on each side, so a range of
/// one value still has neighbours. What the model uses sets the table's size, not the largest
/// magnitude: a function the model evaluates near one point pays for a few entries.
fn table_span(mn: i64, mx: i64, scale: i32, margin: f64) -> (f64, f64) {
    let unit = 2f64.powi(-scale);
    let (a, b) = (mn as f64 * unit, mx as f64 * unit);
    let half = ((b - a) / 2.0).max(1.0 / 64.0);
    let centre = (a + b) / 2.0;
    (centre - margin * half, centre + margin * half)
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// LeakyRelu: see [`QOp::LeakyRelu`].
pub(super) fn eval_leaky_relu(
    x: Option<&Tensor<i64>>,
    alpha: &i64,
    shift: &u32,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("leaky relu needs an input")?;
        let data = x
            .data
            .iter()
            .map(|&v| {
                to_i64(
                    if v >= 0 {
                        (v as i128) << shift
                    } else {
                        v as i128 * *alpha as i128
                    },
                    "a leaky relu",
                )
            })
            .collect::<std::result::Result<_, _>>()?;
        Tensor::new(x.shape.clone(), data)
    })
}

/// Table / Interp: see [`QOp::Table`].
pub(super) fn eval_table_interp(
    op: &QOp,
    x: Option<&Tensor<i64>>,
    func: &TableFn,
    in_scale: &i32,
    out_scale: &i32,
    lo: &i64,
    hi: &i64,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let step_bits = match op {
            QOp::Interp { step_bits, .. } => *step_bits,
            _ => 0,
        };
        let (lo, hi) = &match op {
            QOp::Interp { step_bits, .. } => interp_domain(*lo, *hi, *step_bits),
            _ => (*lo, *hi),
        };
        let x = x.ok_or("table needs an input")?;
        let mut data = Vec::with_capacity(x.len());
        for &v in &x.data {
            if v < *lo || v > *hi {
                return Err(format!(
                    "input {v} (= {:.6}) is outside the {} table range [{lo}, {hi}] (= [{:.4}, {:.4}])",
                    v as f64 / 2f64.powi(*in_scale),
                    func.name(),
                    *lo as f64 / 2f64.powi(*in_scale),
                    *hi as f64 / 2f64.powi(*in_scale)
                ));
            }
            data.push(if step_bits > 0 {
                interp_entry(*func, v, *in_scale, *out_scale, step_bits)
            } else {
                table_entry(*func, v, *in_scale, *out_scale)
            });
        }
        Tensor::new(x.shape.clone(), data)
    })
}
