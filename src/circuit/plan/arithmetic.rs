//! Circuit planning of Add, Sub, Mul with broadcasting (constants folded into dot weights),
//! ShiftLeft, Rescale (a range-checked quotient and remainder) and Step (the sign bit).
//! `Builder::node` dispatches here; the family's lowering and evaluation are in
//! `quantize/arithmetic.rs`.

use super::*;
use crate::quantize::QNode;

impl Builder<'_> {
    pub(super) fn plan_shift_left(&mut self, n: &QNode, bits: &u32) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            x.into_iter()
                .map(|c| self.dot(vec![(c, 1i128 << bits)], 0))
                .collect()
        })
    }

    pub(super) fn plan_rescale(&mut self, n: &QNode, divisor: &[u64]) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let mut out = vec![];
            let mut signs = vec![];
            for (i, c) in x.into_iter().enumerate() {
                let d = if divisor.len() == 1 {
                    divisor[0]
                } else {
                    divisor[i]
                };
                if d == 1 {
                    out.push(c);
                    let s = self.signed_range(c)?;
                    signs.push(s);
                    continue;
                }
                let (y, s) = self.rescale(c, d)?;
                out.push(y);
                signs.push(s);
            }
            self.signs.insert(n.output, signs);
            out
        })
    }

    /// `m = ⌊√X⌋`, `X = x·2^shift`, proved by `m² ≤ X ≤ m² + 2m` (so `X < (m+1)²`) with `m`,
    /// `X − m²` and `m² + 2m − X` range-checked as unsigned: all far below the field's size,
    /// so nothing wraps.
    pub(super) fn plan_sqrt(&mut self, n: &QNode, shift: u32) -> PResult<Vec<CellId>> {
        let scale = 1i128 << shift;
        let x = self.value_cells(n.inputs[0])?;
        let mut out = Vec::with_capacity(x.len());
        for xc in x {
            let big = self.val(xc)?.map(|v| v * scale);
            // m is made by its own range check (the digits' sum), so it is bound from the start.
            let mv = big.map(|b| b.max(0).unsigned_abs().isqrt() as i128);
            let (m, _) = self.digits(mv, self.bits, 0, false)?;
            let square = self.mul(m, m);
            let below = self.dot(vec![(xc, scale), (square, -1)], 0);
            self.unsigned_range(below)?;
            let above = self.dot(vec![(square, 1), (m, 2), (xc, -scale)], 0);
            self.unsigned_range(above)?;
            out.push(m);
        }
        Ok(out)
    }

    /// `y = ⌊(num + h) / x⌋` with `h = ⌊x/2⌋`, proved by `x − 1 ≥ 0`, `x = 2h + e` (e a bit),
    /// `num + h = y·x + r` and `0 ≤ r ≤ x − 1`, every part range-checked (y to the bits of
    /// num, the rest to the activation bits): below the field's size, so nothing wraps.
    pub(super) fn plan_recip(&mut self, n: &QNode, num: u64) -> PResult<Vec<CellId>> {
        let num = num as i128;
        let ybits = 128 - num.leading_zeros();
        let x = self.value_cells(n.inputs[0])?;
        let mut out = Vec::with_capacity(x.len());
        for xc in x {
            let xv = self.val(xc)?;
            let less_one = self.dot(vec![(xc, 1)], -1);
            self.unsigned_range(less_one)?;
            let (h, _) = self.digits(xv.map(|v| v.div_euclid(2)), self.bits, 0, false)?;
            let (e, _) = self.digits(xv.map(|v| v.rem_euclid(2)), 1, 0, false)?;
            let halves = self.dot(vec![(h, 2), (e, 1)], 0);
            self.equal(halves, xc);
            let yv = xv.map(|v| (num + v.div_euclid(2)) / v.max(1));
            let (y, _) = self.digits(yv, ybits, 0, false)?;
            let rv = xv.zip(yv).map(|(v, y)| num + v.div_euclid(2) - y * v);
            let (r, _) = self.digits(rv, self.bits, 0, false)?;
            let room = self.dot(vec![(xc, 1), (r, -1)], -1);
            self.unsigned_range(room)?;
            let yx = self.mul(y, xc);
            let check = self.dot(vec![(yx, 1), (r, 1), (h, -1)], -num);
            let zero = self.zero();
            self.equal(check, zero);
            out.push(y);
        }
        Ok(out)
    }

    pub(super) fn plan_step(&mut self, n: &QNode, offset: &i64, one: &i64) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let mut out = vec![];
            for c in x {
                let v = if *offset == 0 {
                    c
                } else {
                    self.dot(vec![(c, 1)], *offset as i128)
                };
                let s = self.signed_range(v)?;
                out.push(self.dot(vec![(s, *one as i128)], 0));
            }
            out
        })
    }

    /// Add, Sub, Mul with broadcasting. A constant operand is folded into the dot product's
    /// constant or weight, so it costs no cells.
    pub(super) fn elementwise(&mut self, idx: usize) -> PResult<Vec<CellId>> {
        let n = &self.qm.nodes[idx];
        let (a, b) = (n.inputs[0], n.inputs[1]);
        let out_shape = self.qm.values[n.output].shape.clone();
        let ia = broadcast_index_map(self.shape(a), &out_shape);
        let ib = broadcast_index_map(self.shape(b), &out_shape);
        let ca = self.const_data(a).cloned();
        let cb = self.const_data(b).cloned();
        let op = n.op.clone();
        let xa = if ca.is_none() {
            Some(self.value_cells(a)?)
        } else {
            None
        };
        let xb = if cb.is_none() {
            Some(self.value_cells(b)?)
        } else {
            None
        };
        let sign: i128 = if op == QOp::Sub { -1 } else { 1 };
        let mut out = vec![];
        for i in 0..numel(&out_shape) {
            let cell = match (&xa, &xb, &ca, &cb) {
                (Some(xa), Some(xb), _, _) => match op {
                    QOp::Mul => self.mul(xa[ia[i]], xb[ib[i]]),
                    _ => self.dot(vec![(xa[ia[i]], 1), (xb[ib[i]], sign)], 0),
                },
                (Some(xa), None, _, Some(cb)) => match op {
                    QOp::Mul => self.dot(vec![(xa[ia[i]], cb[ib[i]] as i128)], 0),
                    _ => self.dot(vec![(xa[ia[i]], 1)], sign * cb[ib[i]] as i128),
                },
                (None, Some(xb), Some(ca), _) => match op {
                    QOp::Mul => self.dot(vec![(xb[ib[i]], ca[ia[i]] as i128)], 0),
                    _ => self.dot(vec![(xb[ib[i]], sign)], ca[ia[i]] as i128),
                },
                (None, None, Some(ca), Some(cb)) => {
                    let v = match op {
                        QOp::Add => ca[ia[i]] + cb[ib[i]],
                        QOp::Sub => ca[ia[i]] - cb[ib[i]],
                        _ => ca[ia[i]] * cb[ib[i]],
                    };
                    self.constant(v)
                }
                _ => unreachable!(),
            };
            out.push(cell);
        }
        Ok(out)
    }
}
