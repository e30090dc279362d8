//! Circuit planning of ReLU and LeakyReLU (by the sign of a range check), tables and interpolated
//! tables (lookups). `Builder::node` dispatches here; the family's lowering and evaluation are in
//! `quantize/activations.rs`.

use super::*;
use crate::quantize::QNode;

impl Builder<'_> {
    pub(super) fn plan_relu(&mut self, n: &QNode) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let signs = self.signs_of(n.inputs[0], &x)?;
            x.iter().zip(signs).map(|(&c, s)| self.mul(c, s)).collect()
        })
    }

    pub(super) fn plan_leaky_relu(
        &mut self,
        n: &QNode,
        alpha: &i64,
        shift: &u32,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let x = self.value_cells(n.inputs[0])?;
            let signs = self.signs_of(n.inputs[0], &x)?;
            let (a, p) = (*alpha as i128, 1i128 << shift);
            let mut out = vec![];
            for (&c, s) in x.iter().zip(signs) {
                let t = self.mul(c, s);
                out.push(self.dot(vec![(c, a), (t, p - a)], 0));
            }
            out
        })
    }

    pub(super) fn plan_table(
        &mut self,
        n: &QNode,
        func: &TableFn,
        in_scale: &i32,
        out_scale: &i32,
        lo: &i64,
        hi: &i64,
    ) -> PResult<Vec<CellId>> {
        Ok({
            let id = self.table_id(TableSpec {
                id: 0,
                func: *func,
                in_scale: *in_scale,
                out_scale: *out_scale,
                lo: *lo,
                hi: *hi,
                step_bits: 0,
                next: false,
            });
            let x = self.value_cells(n.inputs[0])?;
            let mut out = vec![];
            for c in x {
                let v = match self.val(c)? {
                    Some(v) if v < *lo as i128 || v > *hi as i128 => {
                        return Err(self.table_range_error(v, *lo, *hi, *in_scale, *func));
                    }
                    Some(v) => Some(table_entry(*func, v as i64, *in_scale, *out_scale) as i128),
                    None => None,
                };
                let o = self.cell(v);
                self.push(Step::Lookup {
                    table: id,
                    x: c,
                    out: o,
                });
                out.push(o);
            }
            out
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan_interp(
        &mut self,
        n: &QNode,
        func: &TableFn,
        in_scale: &i32,
        out_scale: &i32,
        lo: &i64,
        hi: &i64,
        step_bits: &u32,
    ) -> PResult<Vec<CellId>> {
        Ok({
            // x = q·2^b + r; A, B = the (finer) table at q and q + 1 (two lookups, which also
            // bound q); y = rescale(A·2^b + (B − A)·r, 2^(b+e)).
            let b = *step_bits;
            let step = 1i64 << b;
            let fine = *out_scale + INTERP_FINE_BITS;
            let spec = |next| TableSpec {
                id: 0,
                func: *func,
                in_scale: *in_scale,
                out_scale: fine,
                lo: lo.div_euclid(step),
                hi: hi.div_euclid(step),
                step_bits: b,
                next,
            };
            let (ia, ib) = (self.table_id(spec(false)), self.table_id(spec(true)));
            let x = self.value_cells(n.inputs[0])?;
            let mut out = vec![];
            let (dlo, dhi) = interp_domain(*lo, *hi, b);
            for c in x {
                let v = self.val(c)?;
                if let Some(v) = v
                    && (v < dlo as i128 || v > dhi as i128)
                {
                    return Err(self.table_range_error(v, dlo, dhi, *in_scale, *func));
                }
                let qv = v.map(|v| v.div_euclid(step as i128));
                let q = self.cell(qv);
                let (r, _) = self.digits(v.map(|v| v.rem_euclid(step as i128)), b, 0, false)?;
                let chk = self.dot(vec![(q, step as i128), (r, 1)], 0);
                self.equal(chk, c);
                let entry = |next: i128| {
                    qv.map(|q| {
                        table_entry(*func, ((q + next) * step as i128) as i64, *in_scale, fine)
                            as i128
                    })
                };
                let (av, bv) = (entry(0), entry(1));
                let a = self.cell(av);
                self.push(Step::Lookup {
                    table: ia,
                    x: q,
                    out: a,
                });
                let bc = self.cell(bv);
                self.push(Step::Lookup {
                    table: ib,
                    x: q,
                    out: bc,
                });
                let diff = self.dot(vec![(bc, 1), (a, -1)], 0);
                let p = self.mul(diff, r);
                let v = self.dot(vec![(a, step as i128), (p, 1)], 0);
                let (y, _) = self.rescale(v, (step as u64) << INTERP_FINE_BITS)?;
                out.push(y);
            }
            out
        })
    }
}
