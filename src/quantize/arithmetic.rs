//! Lowering of Add, Sub, Mul, Div (integer division folded with truncation), Pow, Neg, the
//! comparisons, Not, Where and Cast to an integer (Truncate) into integer ops (`QOp`);
//! `Lowering::lower_op` dispatches here.

use super::*;
use crate::model::Variadic;

impl Lowering<'_> {
    pub(super) fn lower_add_sub_mul(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        let b_name = input(node, 1).ok_or_else(|| self.fail("needs two inputs"))?;
        self.binary(&node.op, self.operand(&arg0)?, self.operand(&b_name)?)
    }

    /// Max, Min, Sum and Mean of several tensors, folded pairwise with broadcasting, exact at
    /// one scale: max(a, b) = b + relu(a − b), min(a, b) = a − relu(a − b); Mean multiplies the
    /// sum by 1/n.
    pub(super) fn lower_variadic(&mut self, node: &Node, of: Variadic) -> Result<Operand> {
        let names: Vec<&String> = node.inputs.iter().filter(|s| !s.is_empty()).collect();
        let first = names.first().ok_or_else(|| self.fail("needs an input"))?;
        let mut acc = self.operand(first)?;
        for name in &names[1..] {
            let b = self.operand(name)?;
            acc = match of {
                Variadic::Sum | Variadic::Mean => self.binary(&Op::Add, acc, b)?,
                Variadic::Max => {
                    let d = self.binary(&Op::Sub, acc, b.clone())?;
                    let r = self.relu_operand(d)?;
                    self.binary(&Op::Add, b, r)?
                }
                Variadic::Min => {
                    let d = self.binary(&Op::Sub, acc.clone(), b)?;
                    let r = self.relu_operand(d)?;
                    self.binary(&Op::Sub, acc, r)?
                }
            };
        }
        if of == Variadic::Mean && names.len() > 1 {
            let n = Tensor::new(vec![], vec![1.0 / names.len() as f64]);
            acc = self.binary(&Op::Mul, acc, Operand::Const(n))?;
        }
        Ok(acc)
    }

    pub(super) fn lower_truncate(&mut self, arg0: String) -> Result<Operand> {
        match self.operand(&arg0)? {
            Operand::Const(t) => Ok(Operand::Const(t.map(|&v| v.trunc()))),
            Operand::Value(x) => self.truncate(x).map(Operand::Value),
        }
    }

    pub(super) fn lower_compare(
        &mut self,
        node: &Node,
        arg0: String,
        less: &bool,
        or_equal: &bool,
    ) -> Result<Operand> {
        // a < b ⟺ b − a − 1 ≥ 0 on integers at one scale; a ≤ b ⟺ b − a ≥ 0.
        let b_name = input(node, 1).ok_or_else(|| self.fail("needs two inputs"))?;
        let (a, b) = (self.operand(&arg0)?, self.operand(&b_name)?);
        let diff = if *less {
            self.binary(&Op::Sub, b, a)?
        } else {
            self.binary(&Op::Sub, a, b)?
        };
        match diff {
            Operand::Const(t) => Ok(Operand::Const(t.map(|&v| {
                if v > 0.0 || (*or_equal && v == 0.0) {
                    1.0
                } else {
                    0.0
                }
            }))),
            Operand::Value(d) => {
                let (sh, s) = (self.shape(d), self.s);
                let op = QOp::Step {
                    offset: if *or_equal { 0 } else { -1 },
                    one: 1i64 << s,
                };
                Ok(Operand::Value(self.push(op, vec![d], sh, s)?))
            }
        }
    }

    pub(super) fn lower_not(&mut self, arg0: String) -> Result<Operand> {
        let one = Operand::Const(Tensor::new(vec![], vec![1.0]));
        self.binary(&Op::Sub, one, self.operand(&arg0)?)
    }

    pub(super) fn lower_where(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        // y + c·(x − y) with c ∈ {0, 1}.
        let (x_name, y_name) = match (input(node, 1), input(node, 2)) {
            (Some(x), Some(y)) => (x, y),
            _ => return Err(self.fail("Where needs three inputs")),
        };
        let (c, x, y) = (
            self.operand(&arg0)?,
            self.operand(&x_name)?,
            self.operand(&y_name)?,
        );
        let diff = self.binary(&Op::Sub, x, y.clone())?;
        let picked = match self.binary(&Op::Mul, c, diff)? {
            Operand::Value(v) => {
                let s = self.s;
                Operand::Value(self.rescale_to(v, s)?)
            }
            k => k,
        };
        self.binary(&Op::Add, y, picked)
    }

    pub(super) fn lower_neg(&mut self, arg0: String) -> Result<Operand> {
        let minus = Operand::Const(Tensor::new(vec![], vec![-1.0]));
        self.binary(&Op::Mul, self.operand(&arg0)?, minus)
    }

    pub(super) fn lower_pow(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        let p = self.constant(&input(node, 1).ok_or_else(|| self.fail("no exponent"))?)?;
        let x = self.value(&arg0)?;
        // A tensor of one repeated exponent is that exponent, if it does not widen the output.
        let widens = broadcast_shape(&self.shape(x), &p.shape).as_deref() != Some(&self.shape(x));
        if p.is_empty() || p.data.iter().any(|&e| e != p.data[0]) || widens {
            return Err(self.fail(
                "a Pow exponent tensor must hold one repeated value and not widen the output",
            ));
        }
        if p.data[0] == 2.0 {
            // x² exactly, by the product gate.
            let xo = Operand::Value(x);
            return self.binary(&Op::Mul, xo.clone(), xo);
        }
        self.table(x, TableFn::Pow { p: p.data[0] })
    }

    pub(super) fn lower_div(&mut self, node: &Node, arg0: String) -> Result<Operand> {
        let b_name = input(node, 1).ok_or_else(|| self.fail("needs two inputs"))?;
        let integer = self.model.integer_tensors();
        if node
            .inputs
            .iter()
            .chain(&node.outputs)
            .any(|t| integer.contains(t))
        {
            // Integer division truncates toward zero (the preflight refuses it on
            // runtime tensors, so both operands are static here).
            let (Operand::Const(a), Operand::Const(b)) =
                (self.operand(&arg0)?, self.operand(&b_name)?)
            else {
                return Err(self.fail("integer division of runtime tensors"));
            };
            if b.data.contains(&0.0) {
                return Err(self.fail("integer division by 0"));
            }
            let q = zip_broadcast(&a, &b, |p, q| (*p / *q).trunc()).ok_or_else(|| {
                self.fail(format!(
                    "shapes {:?} and {:?} do not broadcast",
                    a.shape, b.shape
                ))
            })?;
            return Ok(Operand::Const(q));
        }
        match self.operand(&b_name)? {
            // Division by a constant: a product with its reciprocal.
            Operand::Const(t) => {
                if t.data.contains(&0.0) {
                    return Err(self.fail("division by a constant 0"));
                }
                let r = t.map(|v| 1.0 / v);
                self.binary(&Op::Mul, self.operand(&arg0)?, Operand::Const(r))
            }
            // By a runtime tensor: a product with its reciprocal (exact arithmetic).
            Operand::Value(b) => {
                let r = self.reciprocal(b)?;
                self.binary(&Op::Mul, self.operand(&arg0)?, Operand::Value(r))
            }
        }
    }

    /// `x` rounded toward zero, at scale 0: with the sign bit `s` of a range check,
    /// `|x| = 2·x·s − x`, `q = floor(|x| / 2^sx)` (a rescale of `|x| − 2^(sx−1)`), and
    /// `q·(2s − 1)`.
    pub(super) fn truncate(&mut self, x: usize) -> Result<usize> {
        let sx = self.scale_of(x);
        if sx <= 0 {
            return Ok(x);
        }
        let sh = self.shape(x);
        let double = |this: &mut Self, v: usize, sc: i32| {
            let shape = this.shape(v);
            this.push(QOp::ShiftLeft { bits: 1 }, vec![v], shape, sc)
        };
        let s = self.push(QOp::Step { offset: 0, one: 1 }, vec![x], sh.clone(), 0)?;
        let xs = self.push(QOp::Mul, vec![x, s], sh.clone(), sx)?;
        let xs2 = double(self, xs, sx)?;
        let abs = self.push(QOp::Sub, vec![xs2, x], sh.clone(), sx)?;
        let half = self.const_value(&Tensor::new(vec![1], vec![0.5]), sx)?;
        let below = self.push(QOp::Sub, vec![abs, half], sh.clone(), sx)?;
        let q = self.push(
            QOp::Rescale {
                divisor: vec![1u64 << sx],
            },
            vec![below],
            sh.clone(),
            0,
        )?;
        let qs = self.push(QOp::Mul, vec![q, s], sh.clone(), 0)?;
        let qs2 = double(self, qs, 0)?;
        self.push(QOp::Sub, vec![qs2, q], sh, 0)
    }
}

// Evaluation of the integer ops this family introduces: the specification the circuit matches.

/// Add / Sub / Mul: see [`QOp::Add`].
pub(super) fn eval_add_sub_mul(
    op: &QOp,
    inputs: &[&Tensor<i64>],
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let (a, b) = (inputs[0], inputs[1]);
        let mut err = None;
        let t = zip_broadcast(a, b, |&p, &q| {
            let r = match op {
                QOp::Add => p.checked_add(q),
                QOp::Sub => p.checked_sub(q),
                _ => p.checked_mul(q),
            };
            r.unwrap_or_else(|| {
                err = Some(format!(
                    "{} of {p} and {q} overflows 64-bit integers: lower the scale",
                    op.name()
                ));
                0
            })
        })
        .ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))?;
        if let Some(e) = err {
            return Err(e);
        }
        t
    })
}

/// ShiftLeft: see [`QOp::ShiftLeft`].
pub(super) fn eval_shift_left(
    x: Option<&Tensor<i64>>,
    bits: &u32,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("shift needs an input")?;
        let f = 1i128 << bits;
        let data = x
            .data
            .iter()
            .map(|&v| to_i64(v as i128 * f, "a scale alignment"))
            .collect::<std::result::Result<_, _>>()?;
        Tensor::new(x.shape.clone(), data)
    })
}

/// Sqrt: see [`QOp::Sqrt`]. Defined for `x ≥ 0` and `x·2^shift < 2^96` (what the circuit
/// proves); the caller's range checks bound it further.
pub(super) fn eval_sqrt(
    x: Option<&Tensor<i64>>,
    shift: u32,
) -> std::result::Result<Tensor<i64>, String> {
    let x = x.ok_or("sqrt needs an input")?;
    if shift > 64 {
        return Err(format!("sqrt shift {shift} exceeds 64"));
    }
    let mut data = Vec::with_capacity(x.len());
    for &v in &x.data {
        if v < 0 {
            return Err(format!("sqrt of the negative input {v}"));
        }
        let big = (v as u128) << shift;
        data.push(to_i64(big.isqrt() as i128, "a square root")?);
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

/// Recip: see [`QOp::Recip`]. Defined for `x ≥ 1` (a reciprocal of 0 is a division by zero).
pub(super) fn eval_recip(
    x: Option<&Tensor<i64>>,
    num: u64,
) -> std::result::Result<Tensor<i64>, String> {
    let x = x.ok_or("recip needs an input")?;
    let mut data = Vec::with_capacity(x.len());
    for &v in &x.data {
        if v < 1 {
            return Err(format!(
                "a division by {v} (at the divisor's scale): only divisors of magnitude at least one unit are supported"
            ));
        }
        let (n, v) = (num as i128, v as i128);
        data.push(to_i64((n + v / 2) / v, "a reciprocal")?);
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

/// Rescale: see [`QOp::Rescale`].
pub(super) fn eval_rescale(
    x: Option<&Tensor<i64>>,
    divisor: &[u64],
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        let x = x.ok_or("rescale needs an input")?;
        let data = x
            .data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                rescale(
                    v,
                    if divisor.len() == 1 {
                        divisor[0]
                    } else {
                        divisor[i]
                    },
                )
            })
            .collect();
        Tensor::new(x.shape.clone(), data)
    })
}

/// Step: see [`QOp::Step`].
pub(super) fn eval_step(
    x: Option<&Tensor<i64>>,
    offset: &i64,
    one: &i64,
) -> std::result::Result<Tensor<i64>, String> {
    Ok({
        x.ok_or("step needs an input")?.map(|&v| {
            if v as i128 + *offset as i128 >= 0 {
                *one
            } else {
                0
            }
        })
    })
}
