//! The quantized model as a specification: quantizing inputs, evaluating (refusing exactly what
//! the circuit refuses), the calibration budget, and what a quantized.json read from disk must be.

use super::*;

impl QuantizedModel {
    /// Quantize float inputs at the input values' scales, checking the activation budget.
    pub fn quantize_inputs(
        &self,
        inputs: &[Tensor<f64>],
        input_names: &[String],
    ) -> Result<Vec<Tensor<i64>>> {
        let limit = 1i64 << (self.config.activation_bits - 1);
        let mut out = vec![];
        for (i, &v) in self.inputs.iter().enumerate() {
            let val = &self.values[v];
            let t = &inputs[i];
            let f = 2f64.powi(val.scale);
            let mut data = Vec::with_capacity(t.len());
            for (j, &x) in t.data.iter().enumerate() {
                match round_to_i64(x * f) {
                    Some(q) if q.unsigned_abs() < limit.unsigned_abs() => data.push(q),
                    _ => {
                        return Err(Error::InputValue {
                            input: input_names.get(i).cloned().unwrap_or_default(),
                            field: Some(format!("input_data[{i}][{j}]")),
                            msg: format!(
                                "element {j} = {x} is too large for scale {} (|x·2^{}| must stay below 2^{}); choose a smaller --scale",
                                val.scale,
                                val.scale,
                                self.config.activation_bits - 1
                            ),
                        });
                    }
                }
            }
            out.push(Tensor::new(t.shape.clone(), data));
        }
        Ok(out)
    }

    /// Run the integer evaluator: the value of every tensor, by value id.
    pub fn evaluate(&self, inputs: &[Tensor<i64>]) -> Result<Vec<Tensor<i64>>> {
        let mut vals: Vec<Option<Tensor<i64>>> = vec![None; self.values.len()];
        for node in &self.nodes {
            let out_info = &self.values[node.output];
            let t = if let QOp::Input { index } = node.op {
                inputs
                    .get(index)
                    .cloned()
                    .ok_or_else(|| Error::invalid(&node.name, "missing input"))?
            } else {
                let args: Vec<&Tensor<i64>> = node
                    .inputs
                    .iter()
                    .map(|&i| {
                        vals[i].as_ref().ok_or_else(|| {
                            Error::invalid(
                                &node.name,
                                format!("value {i} used before it is computed"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                eval_op(&node.op, &args, &out_info.shape)
                    .and_then(|t| {
                        self.check_circuit_ranges(&node.op, &args, &t)?;
                        Ok(t)
                    })
                    .map_err(|e| Error::invalid(format!("node `{}`", node.origin), e))?
            };
            vals[node.output] = Some(t);
        }
        vals.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| Error::invalid(&self.values[i].name, "value is never computed"))
            })
            .collect()
    }

    /// The range checks the circuit makes (`circuit::plan`), made here alike, so that the
    /// evaluator refuses exactly the inputs for which the circuit has no witness: rescale and
    /// interpolation outputs, ReLU and comparison inputs are signed `activation_bits` values,
    /// and a max or min lies within `2^activation_bits` of every element it is taken over.
    pub(super) fn check_circuit_ranges(
        &self,
        op: &QOp,
        args: &[&Tensor<i64>],
        out: &Tensor<i64>,
    ) -> std::result::Result<(), String> {
        let bits = self.config.activation_bits;
        let half = 1i128 << (bits - 1);
        let signed = |what: &str, t: &Tensor<i64>, offset: i64| match t
            .data
            .iter()
            .map(|&v| v as i128 + offset as i128)
            .find(|v| *v < -half || *v >= half)
        {
            Some(v) => Err(format!(
                "{what} {v} is outside the {bits}-bit activation range the circuit checks: \
                 choose a smaller --scale"
            )),
            None => Ok(()),
        };
        let spread = |spreads: Vec<i128>| match spreads.into_iter().find(|&s| s >= 2 * half) {
            Some(s) => Err(format!(
                "a max or min is {s} away from an element it is taken over, more than the \
                 {bits}-bit range the circuit checks: choose a smaller --scale"
            )),
            None => Ok(()),
        };
        let x = args.first().copied();
        match op {
            QOp::Rescale { .. } | QOp::Interp { .. } => signed("output", out, 0),
            // x − 1, ⌊x/2⌋, r and x − 1 − r are range-checked to `bits` unsigned bits.
            QOp::Recip { .. } => match x
                .ok_or("no input")?
                .data
                .iter()
                .find(|&&v| v as i128 > half * 2)
            {
                Some(v) => Err(format!(
                    "the divisor {v} is outside the {bits}-bit range the circuit checks: choose a smaller --scale"
                )),
                None => Ok(()),
            },
            // y, X − y² and y² + 2y − X are each range-checked to `bits` unsigned bits.
            QOp::Sqrt { shift } => {
                let x = x.ok_or("no input")?;
                let limit = 1i128 << bits;
                let bad = x.data.iter().zip(&out.data).find(|&(&x, &m)| {
                    let (big, m) = ((x as i128) << shift, m as i128);
                    m >= limit || big - m * m >= limit || m * m + 2 * m - big >= limit
                });
                match bad {
                    Some((x, m)) => Err(format!(
                        "the square root {m} of {x} is outside the {bits}-bit range the circuit \
                         checks: choose a smaller --scale"
                    )),
                    None => Ok(()),
                }
            }
            QOp::Relu | QOp::LeakyRelu { .. } => signed("input", x.ok_or("no input")?, 0),
            QOp::Step { offset, .. } => signed("input", x.ok_or("no input")?, *offset),
            QOp::ReduceMax { axes, .. } => {
                let x = x.ok_or("no input")?;
                let (map, outs) = reduction_map(&x.shape, axes);
                let mut lo = vec![i128::MAX; outs];
                let mut hi = vec![i128::MIN; outs];
                for (i, &v) in x.data.iter().enumerate() {
                    lo[map[i]] = lo[map[i]].min(v as i128);
                    hi[map[i]] = hi[map[i]].max(v as i128);
                }
                spread(hi.iter().zip(&lo).map(|(h, l)| h - l).collect())
            }
            QOp::MaxPool {
                kernel,
                strides,
                pads_begin,
                dilations,
            } => {
                let x = x.ok_or("no input")?;
                let lo = pool(
                    x,
                    &out.shape,
                    kernel,
                    strides,
                    pads_begin,
                    Some(dilations),
                    i128::MAX,
                    |a, v| a.min(v as i128),
                )?;
                spread(
                    out.data
                        .iter()
                        .zip(&lo.data)
                        .map(|(&m, &l)| m as i128 - l as i128)
                        .collect(),
                )
            }
            // No range check in the circuit: the evaluator's 64-bit arithmetic is the same.
            QOp::Input { .. }
            | QOp::Const { .. }
            | QOp::Linear { .. }
            | QOp::Conv { .. }
            | QOp::Add
            | QOp::Sub
            | QOp::Mul
            | QOp::ShiftLeft { .. }
            | QOp::Table { .. }
            | QOp::SumPool { .. }
            | QOp::ReduceSum { .. }
            | QOp::Reshape
            | QOp::Transpose { .. }
            | QOp::Concat { .. }
            | QOp::Gather { .. }
            | QOp::Select { .. }
            | QOp::Scatter { .. }
            | QOp::MatMul { .. } => Ok(()),
        }
    }

    /// The calibration budget: every tensor between ONNX nodes fits the activation bits. This
    /// is the prover's guidance for choosing a scale, not part of the specification: the
    /// evaluator computes past it exactly as the circuit does, and refuses only what the
    /// circuit's own range checks and tables refuse.
    pub fn check_activation_budget(&self, vals: &[Tensor<i64>]) -> Result<()> {
        let limit = 1i64 << (self.config.activation_bits - 1);
        for node in &self.nodes {
            let out_info = &self.values[node.output];
            if out_info.onnx.is_some()
                && let Some(bad) = vals[node.output]
                    .data
                    .iter()
                    .find(|v| v.unsigned_abs() >= limit.unsigned_abs())
            {
                return Err(Error::invalid(
                    format!("node `{}`", node.origin),
                    format!(
                        "value {bad} (= {:.4}) needs more than the {} activation bits at scale {}: choose a smaller --scale",
                        *bad as f64 / 2f64.powi(out_info.scale),
                        self.config.activation_bits,
                        out_info.scale
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Check the structure a quantized.json read from disk must have before the evaluator or
    /// the circuit compiler index into it: value ids in range and computed before use, and
    /// every op's parameters sized for its shapes. Err names the node and the problem.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !MARGINS.contains(&self.config.margin) {
            return Err(format!(
                "config.margin {} is outside {}..={}",
                self.config.margin,
                MARGINS.start(),
                MARGINS.end()
            ));
        }
        let nv = self.values.len();
        let in_range = |v: usize| v < nv;
        if let Some(v) = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .find(|&&v| !in_range(v))
        {
            return Err(format!("value id {v} in inputs/outputs is out of range"));
        }
        // The planner and the evaluator must read one graph: each value has one producer,
        // graph input i is the value of the one `Input { index: i }` node, operands come first.
        let mut seen_input = vec![false; nv];
        if let Some(v) = self
            .inputs
            .iter()
            .find(|&&v| std::mem::replace(&mut seen_input[v], true))
        {
            return Err(format!("value {v} is listed twice in inputs"));
        }
        let mut input_nodes = vec![false; self.inputs.len()];
        let mut ready = vec![false; nv];
        for n in &self.nodes {
            let bad = |msg: String| Err(format!("node `{}`: {msg}", n.name));
            if !in_range(n.output) || n.inputs.iter().any(|&i| !in_range(i)) {
                return bad("a value id is out of range".into());
            }
            if ready[n.output] {
                return bad(format!("value {} has a second producer", n.output));
            }
            if let Some(&i) = n.inputs.iter().find(|&&i| !ready[i]) {
                return bad(format!("value {i} is used before it is computed"));
            }
            if let QOp::Input { index } = n.op {
                match input_nodes.get_mut(index) {
                    Some(seen) if !*seen && self.inputs[index] == n.output => *seen = true,
                    _ => {
                        return bad(format!(
                            "input index {index} does not name graph input {index} (value {}) exactly once",
                            n.output
                        ));
                    }
                }
            }
            if MAX_WINDOW_PARAM
                < window_params(&n.op)
                    .into_iter()
                    .flatten()
                    .copied()
                    .max()
                    .unwrap_or(0)
            {
                return bad(format!("a window parameter exceeds {MAX_WINDOW_PARAM}"));
            }
            if let Err(msg) = self.node_fits(n) {
                return bad(msg);
            }
            ready[n.output] = true;
        }
        if let Some(v) = self.outputs.iter().find(|&&v| !ready[v]) {
            return Err(format!("output value {v} is never computed"));
        }
        if let Some(i) = input_nodes.iter().position(|&seen| !seen) {
            return Err(format!("graph input {i} has no input node"));
        }
        Ok(())
    }

    /// A node's arity, and its parameters sized for its shapes (see [`QuantizedModel::validate`]).
    fn node_fits(&self, n: &QNode) -> std::result::Result<(), String> {
        let shape = |v: usize| self.values[v].shape.as_slice();
        let out = shape(n.output);
        let arity = match &n.op {
            QOp::Input { .. } | QOp::Const { .. } => 0,
            QOp::Add | QOp::Sub | QOp::Mul | QOp::MatMul { .. } => 2,
            QOp::Concat { .. } => n.inputs.len().max(1),
            QOp::Select { data, .. } => 1 + usize::from(data.is_none()),
            QOp::Scatter { .. } => 3,
            QOp::Linear { .. }
            | QOp::Conv { .. }
            | QOp::ShiftLeft { .. }
            | QOp::Rescale { .. }
            | QOp::Sqrt { .. }
            | QOp::Recip { .. }
            | QOp::Relu
            | QOp::LeakyRelu { .. }
            | QOp::Table { .. }
            | QOp::Interp { .. }
            | QOp::SumPool { .. }
            | QOp::MaxPool { .. }
            | QOp::ReduceSum { .. }
            | QOp::ReduceMax { .. }
            | QOp::Reshape
            | QOp::Transpose { .. }
            | QOp::Step { .. }
            | QOp::Gather { .. } => 1,
        };
        if n.inputs.len() != arity {
            return Err(format!("{} inputs, expected {arity}", n.inputs.len()));
        }
        let x = n.inputs.first().map(|&i| shape(i)).unwrap_or(&[]);
        // A window op on [N, C, *spatial]: one entry per spatial axis in each parameter list.
        let windowed = |lists: &[&Vec<usize>]| {
            x.len() >= 3 && out.len() == x.len() && lists.iter().all(|l| l.len() == x.len() - 2)
        };
        let ok = match &n.op {
            QOp::Input { index } => *index < self.inputs.len(),
            QOp::Const { data } => data.len() == numel(out),
            QOp::Linear {
                k,
                n: m,
                weight,
                bias,
            } => {
                *k > 0
                    && weight.len() == k * m
                    && bias.as_ref().is_none_or(|b| b.len() == *m)
                    && numel(x).is_multiple_of(*k)
                    && numel(out) == numel(x) / k * m
            }
            QOp::Conv {
                out_channels,
                kernel,
                strides,
                pads_begin,
                dilations,
                weight,
                bias,
            } => {
                windowed(&[kernel, strides, pads_begin, dilations])
                    && weight.len() == out_channels * x[1] * numel(kernel)
                    && bias.as_ref().is_none_or(|b| b.len() == *out_channels)
                    && out[0] == x[0]
                    && out[1] == *out_channels
            }
            QOp::SumPool {
                kernel,
                strides,
                pads_begin,
                dilations,
            } => {
                windowed(&[kernel, strides, pads_begin])
                    && (dilations.is_empty() || windowed(&[dilations]))
                    && out[..2] == x[..2]
            }
            QOp::MaxPool {
                kernel,
                strides,
                pads_begin,
                dilations,
            } => {
                windowed(&[kernel, strides, pads_begin, dilations])
                    && out[..2] == x[..2]
                    && Window::new(x, strides, pads_begin, Some(dilations))
                        .every_window_reads(&out[2..], kernel)
            }
            QOp::Add | QOp::Sub | QOp::Mul => n
                .inputs
                .iter()
                .all(|&i| broadcast_shape(shape(i), out).as_deref() == Some(out)),
            QOp::ShiftLeft { .. }
            | QOp::Relu
            | QOp::LeakyRelu { .. }
            | QOp::Table { .. }
            | QOp::Interp { .. }
            | QOp::Step { .. } => x == out,
            QOp::Sqrt { shift } => x == out && *shift <= 64,
            QOp::Recip { num } => x == out && (1..1 << 62).contains(num),
            QOp::Rescale { divisor } => {
                x == out && (divisor.len() == 1 || divisor.len() == numel(out))
            }
            QOp::ReduceSum { axes, .. } => axes.iter().all(|&a| a < x.len()),
            // A max over nothing has no value.
            QOp::ReduceMax { axes, .. } => axes.iter().all(|&a| a < x.len() && x[a] > 0),
            QOp::Reshape => numel(x) == numel(out),
            QOp::Transpose { perm } => {
                let mut p = perm.clone();
                p.sort_unstable();
                p == (0..x.len()).collect::<Vec<_>>()
                    && out.len() == x.len()
                    && perm.iter().enumerate().all(|(i, &d)| out[i] == x[d])
            }
            QOp::Gather { index, .. } => {
                index.len() == numel(out) && index.iter().all(|&i| i < numel(x) as i64)
            }
            QOp::Select {
                n: len,
                stride,
                shift,
                base,
                negative: _,
                at,
                data,
            } => {
                let from = match data {
                    Some(d) => d.len(),
                    None => n.inputs.get(1).map_or(0, |&v| numel(shape(v))),
                };
                // The last candidate of every output lies in the data.
                let last = (*len as u128).saturating_sub(1) * *stride as u128;
                *len > 0
                    && *shift <= 62
                    && base.len() == numel(out)
                    && at.len() == numel(out)
                    && at.iter().all(|&i| i < numel(x))
                    && base.iter().all(|&b| (b as u128 + last) < from as u128)
            }
            QOp::Scatter {
                n: len,
                stride,
                shift,
                base,
                ..
            } => {
                let (data, updates) = (n.inputs.get(1), n.inputs.get(2));
                let last = (*len as u128).saturating_sub(1) * *stride as u128;
                *len > 0
                    && *shift <= 62
                    && base.len() == numel(x)
                    && updates.is_some_and(|&u| numel(shape(u)) == numel(x))
                    && data.is_some_and(|&d| shape(d) == out)
                    && base
                        .iter()
                        .all(|&b| (b as u128 + last) < numel(out) as u128)
            }
            QOp::MatMul {
                batch,
                m,
                k,
                n: cols,
            } => {
                let one_or = |len: usize, per: usize| len == per || len == batch * per;
                one_or(numel(x), m * k)
                    && n.inputs
                        .get(1)
                        .is_some_and(|&b| one_or(numel(shape(b)), k * cols))
                    && numel(out) == batch * m * cols
            }
            QOp::Concat { axis } => {
                *axis < out.len()
                    && n.inputs.iter().all(|&i| shape(i).len() == out.len())
                    && n.inputs.iter().map(|&i| numel(shape(i))).sum::<usize>() == numel(out)
            }
        };
        if !ok {
            return Err(format!(
                "parameters do not fit the shapes ({} → {:?})",
                n.op.name(),
                out
            ));
        }
        Ok(())
    }

    pub fn dequantize(&self, value: usize, t: &Tensor<i64>) -> Vec<f64> {
        let f = 2f64.powi(-self.values[value].scale);
        t.data.iter().map(|&q| q as f64 * f).collect()
    }

    /// Number of multiply-adds and table lookups, a first measure of circuit cost.
    pub fn op_counts(&self) -> HashMap<&'static str, usize> {
        let mut m = HashMap::new();
        for n in &self.nodes {
            *m.entry(n.op.name()).or_insert(0) += 1;
        }
        m
    }
}
