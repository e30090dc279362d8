//! Lowering of RNN and LSTM (forward): unrolled over time into dense layers, sigmoid and tanh
//! tables and products.

use super::*;

impl Lowering<'_> {
    /// RNN (`h = tanh(x·Wᵀ + h·Rᵀ + b)`) or LSTM (gates i, o, f by sigmoid and the cell candidate
    /// by tanh, `c = f·c + i·c̃`, `h = o·tanh(c)`), forward, unrolled over the sequence into
    /// dense layers, tables and products. Outputs `Y [T, 1, B, H]`, then `Y_h` and `Y_c`.
    pub(super) fn recurrent(&mut self, node: &Node, lstm: bool, h: usize) -> Result<Operand> {
        let inp = |i: usize| node.inputs.get(i).filter(|s| !s.is_empty()).cloned();
        let x = self.value(&node.inputs[0])?;
        let xs = self.shape(x);
        let [t_len, b, i_len] = xs[..] else {
            return Err(self.fail(format!("input of shape {xs:?}: expected [T, B, I]")));
        };
        let g = if lstm { 4 } else { 1 };
        let w = self.constant(&node.inputs[1])?;
        let r = self.constant(&node.inputs[2])?;
        if w.shape != [1, g * h, i_len] || r.shape != [1, g * h, h] {
            return Err(self.fail(format!(
                "weights {:?} and {:?}: expected [1, {}, {i_len}] and [1, {}, {h}]",
                w.shape,
                r.shape,
                g * h,
                g * h
            )));
        }
        let bias = match inp(3) {
            Some(n) => {
                let bt = self.constant(&n)?;
                if bt.len() != 2 * g * h {
                    return Err(self.fail(format!(
                        "bias {:?}: expected [1, {}]",
                        bt.shape,
                        2 * g * h
                    )));
                }
                Some(Tensor::new(
                    vec![g * h],
                    (0..g * h)
                        .map(|j| bt.data[j] + bt.data[g * h + j])
                        .collect(),
                ))
            }
            None => None,
        };
        let wt = Tensor::new(vec![g * h, i_len], w.data).transpose(&[1, 0]);
        let rt = Tensor::new(vec![g * h, h], r.data).transpose(&[1, 0]);
        // An initial state: None when absent or all zero (its terms vanish).
        let state = |this: &mut Self, idx: usize| -> Result<Option<usize>> {
            let Some(n) = inp(idx) else { return Ok(None) };
            match this.operand(&n)? {
                Operand::Const(t) if t.data.iter().all(|&v| v == 0.0) => Ok(None),
                o => {
                    let v = match o {
                        Operand::Value(v) => v,
                        Operand::Const(t) => {
                            let s = this.s;
                            this.const_value(&t, s)?
                        }
                    };
                    if this.shape(v).iter().product::<usize>() != b * h {
                        return Err(
                            this.fail(format!("initial state of shape {:?}", this.shape(v)))
                        );
                    }
                    let v = this.rescale_to(v, this.s)?;
                    Ok(Some(this.rewire_value(
                        v,
                        vec![b, h],
                        (0..(b * h) as i64).collect(),
                    )?))
                }
            }
        };
        let mut hs = state(self, 5)?;
        let mut cs = if lstm { state(self, 6)? } else { None };
        let mut ys = vec![];
        for t in 0..t_len {
            let at = (t * b * i_len) as i64;
            let xt =
                self.rewire_value(x, vec![b, i_len], (at..at + (b * i_len) as i64).collect())?;
            let mut pre = self.dense(xt, wt.clone(), bias.clone())?;
            if let Some(hv) = hs {
                let rh = self.dense(hv, rt.clone(), None)?;
                pre = self.combine(Op::Add, pre, rh)?;
            }
            let hn = if lstm {
                // Gate k of every row of `pre` ([B, 4H]), in ONNX's order i, o, f, c.
                let gate = |this: &mut Self, k: usize, func| -> Result<usize> {
                    let index = (0..b)
                        .flat_map(|row| (0..h).map(move |j| (row * 4 * h + k * h + j) as i64))
                        .collect();
                    let v = this.rewire_value(pre, vec![b, h], index)?;
                    this.apply(v, func)
                };
                let ig = gate(self, 0, TableFn::Sigmoid)?;
                let og = gate(self, 1, TableFn::Sigmoid)?;
                let fg = gate(self, 2, TableFn::Sigmoid)?;
                let cand = gate(self, 3, TableFn::Tanh)?;
                let mut c = self.combine(Op::Mul, ig, cand)?;
                if let Some(cv) = cs {
                    let kept = self.combine(Op::Mul, fg, cv)?;
                    c = self.combine(Op::Add, c, kept)?;
                }
                cs = Some(c);
                let tc = self.apply(c, TableFn::Tanh)?;
                self.combine(Op::Mul, og, tc)?
            } else {
                self.apply(pre, TableFn::Tanh)?
            };
            hs = Some(hn);
            ys.push(hn);
        }
        let s = self.s;
        let y = if ys.len() == 1 {
            ys[0]
        } else {
            self.push(QOp::Concat { axis: 0 }, ys, vec![t_len * b, h], s)?
        };
        let y = self.push(QOp::Reshape, vec![y], vec![t_len, 1, b, h], s)?;
        let last = |this: &mut Self, v: Option<usize>| -> Result<Option<usize>> {
            v.map(|v| this.push(QOp::Reshape, vec![v], vec![1, b, h], s))
                .transpose()
        };
        let outs: Vec<Option<usize>> =
            vec![last(self, hs)?, if lstm { last(self, cs)? } else { None }];
        for (name, v) in node.outputs.iter().skip(1).zip(outs) {
            if let (false, Some(v)) = (name.is_empty(), v) {
                self.extra_outputs.push((name.clone(), Operand::Value(v)));
            }
        }
        Ok(Operand::Value(y))
    }
}
