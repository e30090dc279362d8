//! Lowering, the core every op family uses: operands (values or float constants), scales and
//! rescales, rewiring, broadcasting products and sums; `lower_op` dispatches to the families.

use super::calibrate::range_of;
use super::*;

// ----------------------------------------------------------------------------------------------
// Lowering: ONNX graph -> quantized graph, calibrated on one float run.

/// A tensor during lowering: a value of the quantized graph, or a float constant not yet
/// quantized (it gets a scale where it is used).
#[derive(Clone, Debug)]
pub(super) enum Operand {
    Value(usize),
    Const(Tensor<f64>),
}

pub(super) struct Lowering<'a> {
    pub(super) model: &'a Model,
    pub(super) cfg: QuantConfig,
    pub(super) s: i32,
    pub(super) values: Vec<QValue>,
    pub(super) nodes: Vec<QNode>,
    /// Integer value of each quantized value on each calibration sample (none when the ranges
    /// are recorded).
    pub(super) ints: Vec<Vec<Tensor<i64>>>,
    /// The recorded values whose ranges a re-derivation replays (see [`Calibration`]).
    pub(super) recorded: Option<&'a [QValue]>,
    pub(super) env: HashMap<String, Operand>,
    pub(super) origin: String,
    pub(super) origin_type: String,
    /// Further outputs of the node being lowered (an LSTM's last hidden and cell states), bound
    /// after its first.
    pub(super) extra_outputs: Vec<(String, Operand)>,
}

/// A window op's strides or dilations: ONNX's default of 1 per spatial axis when absent.
pub(super) fn or_ones(v: &[usize], spatial: usize) -> Vec<usize> {
    if v.is_empty() {
        vec![1; spatial]
    } else {
        v.to_vec()
    }
}

/// The name of input `i` of `node`, when it is given (ONNX marks an absent input with "").
pub(super) fn input(node: &Node, i: usize) -> Option<String> {
    node.inputs.get(i).filter(|s| !s.is_empty()).cloned()
}

/// See `Lowering::axis_rows`.
pub(super) struct AxisRows {
    pub(super) axis: usize,
    pub(super) n: usize,
    pub(super) inner: usize,
    pub(super) rows: usize,
}

impl AxisRows {
    pub(super) fn pos(&self, row: usize, j: usize) -> i64 {
        ((row / self.inner * self.n + j) * self.inner + row % self.inner) as i64
    }
}

pub(super) fn axis_index(axis: i64, rank: usize) -> std::result::Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank.max(1) {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// The largest scale at which every |x| fits in `bits` signed bits, capped at `cap`.
pub(super) fn fit_scale(max_abs: f64, bits: u32, cap: u32) -> Option<i32> {
    if max_abs == 0.0 {
        return Some(cap as i32);
    }
    let limit = ((1u64 << (bits - 1)) - 1) as f64;
    let s = (limit / max_abs).log2().floor();
    if s < 0.0 {
        None
    } else {
        Some((s as i32).min(cap as i32))
    }
}

impl<'a> Lowering<'a> {
    pub(super) fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Unsupported {
            file: self.model.file(),
            nodes: vec![Unsupported {
                node: self.origin.clone(),
                op_type: self.origin_type.clone(),
                reason: reason.into(),
                hint: None,
            }],
        }
    }

    /// A re-derivation ran past the values the quantized model records.
    pub(super) fn not_recorded(&self, id: usize) -> Error {
        Error::invalid(
            format!("{}: node `{}`", self.model.file(), self.origin),
            format!(
                "the quantized model records no value {id}: it was not made from this ONNX file"
            ),
        )
    }

    /// Add an op, evaluate it on every calibration sample (or take its recorded range), and
    /// return its value id.
    pub(super) fn push(
        &mut self,
        op: QOp,
        inputs: Vec<usize>,
        shape: Vec<usize>,
        scale: i32,
    ) -> Result<usize> {
        let id = self.values.len();
        let mut outs = vec![];
        let range = if let Some(rec) = self.recorded {
            rec.get(id).ok_or_else(|| self.not_recorded(id))?.range
        } else {
            // A value computed from constants alone has one tensor, the same for every sample.
            let samples = inputs
                .iter()
                .map(|&i| self.ints[i].len())
                .max()
                .unwrap_or(1);
            for k in 0..samples {
                let args: Vec<&Tensor<i64>> = inputs
                    .iter()
                    .map(|&i| &self.ints[i][if self.ints[i].len() == 1 { 0 } else { k }])
                    .collect();
                let t = eval_op(&op, &args, &shape).map_err(|e| {
                    Error::invalid(format!("{}: node `{}`", self.model.file(), self.origin), e)
                })?;
                outs.push(t);
            }
            range_of(&outs)
        };
        let name = format!("{}/{}#{}", self.origin, op.name(), id);
        self.values.push(QValue {
            name: name.clone(),
            shape,
            scale,
            onnx: None,
            range,
        });
        self.nodes.push(QNode {
            name,
            origin: self.origin.clone(),
            op,
            inputs,
            output: id,
        });
        self.ints.push(outs);
        Ok(id)
    }

    pub(super) fn shape(&self, v: usize) -> Vec<usize> {
        self.values[v].shape.clone()
    }

    pub(super) fn scale_of(&self, v: usize) -> i32 {
        self.values[v].scale
    }

    /// Bring a value to `target` scale: a rescale down or a shift up.
    pub(super) fn rescale_to(&mut self, v: usize, target: i32) -> Result<usize> {
        let s = self.scale_of(v);
        let shape = self.shape(v);
        if s > target {
            self.push(
                QOp::Rescale {
                    divisor: vec![1u64 << (s - target)],
                },
                vec![v],
                shape,
                target,
            )
        } else if s < target {
            self.push(
                QOp::ShiftLeft {
                    bits: (target - s) as u32,
                },
                vec![v],
                shape,
                target,
            )
        } else {
            Ok(v)
        }
    }

    /// The scale for a constant: the largest that fits `param_bits`.
    pub(super) fn param_scale(&self, t: &Tensor<f64>) -> i32 {
        let m = t.data.iter().fold(0f64, |a, &x| a.max(x.abs()));
        fit_scale(m, self.cfg.param_bits, self.cfg.max_param_scale).unwrap_or(0)
    }

    pub(super) fn quant(&self, t: &Tensor<f64>, scale: i32) -> Result<Vec<i64>> {
        let f = 2f64.powi(scale);
        t.data
            .iter()
            .map(|&x| {
                round_to_i64(x * f).ok_or_else(|| {
                    self.fail(format!(
                        "constant {x} does not fit 64-bit integers at scale {scale}"
                    ))
                })
            })
            .collect()
    }

    pub(super) fn const_value(&mut self, t: &Tensor<f64>, scale: i32) -> Result<usize> {
        let data = self.quant(t, scale)?;
        self.push(QOp::Const { data }, vec![], t.shape.clone(), scale)
    }

    pub(super) fn operand(&self, name: &str) -> Result<Operand> {
        self.env.get(name).cloned().ok_or_else(|| {
            self.fail(format!(
                "input `{name}` is not produced by any earlier node"
            ))
        })
    }

    /// An operand as a value; constants are quantized at the activation scale.
    pub(super) fn value(&mut self, name: &str) -> Result<usize> {
        match self.operand(name)? {
            Operand::Value(v) => Ok(v),
            Operand::Const(t) => {
                let s = self.s;
                self.const_value(&t, s)
            }
        }
    }

    pub(super) fn constant(&self, name: &str) -> Result<Tensor<f64>> {
        match self.operand(name)? {
            Operand::Const(t) => Ok(t),
            Operand::Value(_) => Err(self.fail(format!("input `{name}` must be a constant"))),
        }
    }

    /// The value of an intermediate result of a composite op (`what`), which a runtime input
    /// makes runtime.
    pub(super) fn runtime_value(&self, o: Operand, what: &str) -> Result<usize> {
        match o {
            Operand::Value(v) => Ok(v),
            Operand::Const(_) => Err(self.fail(format!("{what} of a constant"))),
        }
    }

    /// A constant input read as integers (pads, starts, repeats, shapes).
    pub(super) fn constant_ints(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self
            .constant(name)?
            .data
            .iter()
            .map(|&v| v as i64)
            .collect())
    }

    /// Rewiring by a flat index map (negative: `fill`): folded on constants, a `Gather` node on
    /// values (no rows in the circuit).
    pub(super) fn rewire(
        &mut self,
        arg: &str,
        out: Vec<usize>,
        index: Vec<i64>,
        fill: f64,
    ) -> Result<Operand> {
        let o = self.operand(arg)?;
        self.rewire_operand(o, out, index, fill)
    }

    /// [`Self::rewire`] of an operand in hand.
    pub(super) fn rewire_operand(
        &mut self,
        o: Operand,
        out: Vec<usize>,
        index: Vec<i64>,
        fill: f64,
    ) -> Result<Operand> {
        match o {
            Operand::Const(t) => {
                let data = index
                    .iter()
                    .map(|&i| if i < 0 { fill } else { t.data[i as usize] })
                    .collect();
                Ok(Operand::Const(Tensor::new(out, data)))
            }
            Operand::Value(x) => {
                let sc = self.scale_of(x);
                let fill = (fill * 2f64.powi(sc)).round();
                if !fill.is_finite() || fill.abs() >= 2f64.powi(62) {
                    return Err(self.fail(format!("fill value {fill} does not fit")));
                }
                let op = QOp::Gather {
                    index,
                    fill: fill as i64,
                };
                Ok(Operand::Value(self.push(op, vec![x], out, sc)?))
            }
        }
    }

    /// Rewiring of a value by a flat index map (no rows in the circuit).
    pub(super) fn rewire_value(
        &mut self,
        x: usize,
        out: Vec<usize>,
        index: Vec<i64>,
    ) -> Result<usize> {
        let sc = self.scale_of(x);
        self.push(QOp::Gather { index, fill: 0 }, vec![x], out, sc)
    }

    /// An element-wise product or sum of two values, at the activation scale.
    pub(super) fn combine(&mut self, op: Op, a: usize, b: usize) -> Result<usize> {
        let y = self.binary(&op, Operand::Value(a), Operand::Value(b))?;
        let y = self.runtime_value(y, "a recurrent layer's state")?;
        self.rescale_to(y, self.s)
    }

    pub(super) fn shape_of(&self, name: &str) -> Result<Vec<usize>> {
        Ok(match self.operand(name)? {
            Operand::Value(v) => self.shape(v),
            Operand::Const(t) => t.shape,
        })
    }

    pub(super) fn lower(&mut self, node: &Node, fold_bn: Option<&Node>) -> Result<()> {
        self.origin = match fold_bn {
            Some(bn) => format!("{}+{}", node.name, bn.name),
            None => node.name.clone(),
        };
        self.origin_type = node.op_type.clone();
        let out_name = fold_bn
            .map(|bn| bn.outputs[0].clone())
            .unwrap_or_else(|| node.outputs[0].clone());
        let result = self.lower_op(node, fold_bn)?;
        let extra = std::mem::take(&mut self.extra_outputs);
        for (name, result) in std::iter::once((out_name, result)).chain(extra) {
            let result = match result {
                Operand::Value(v) => {
                    let v = self.rescale_to(v, self.s)?;
                    if self.values[v].onnx.is_none() {
                        self.values[v].onnx = Some(name.clone());
                    }
                    Operand::Value(v)
                }
                c => c,
            };
            self.env.insert(name, result);
        }
        Ok(())
    }

    /// One ONNX node, lowered by its op's family (`activations`, `arithmetic`, `dense`,
    /// `indexing`, `normalization`, `pooling`, `reductions`, `shape`; recurrent ops below).
    pub(super) fn lower_op(&mut self, node: &Node, fold_bn: Option<&Node>) -> Result<Operand> {
        let arg0 = input(node, 0).ok_or_else(|| self.fail("missing first input"))?;
        match &node.op {
            Op::Identity => self.operand(&arg0),
            Op::Constant => unreachable!("constants are bound before lowering"),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => self.lower_gemm(node, fold_bn, arg0, alpha, beta, trans_a, trans_b),
            Op::MatMul => self.lower_matmul(node, fold_bn, arg0),
            Op::Einsum { inputs, output } => self.lower_einsum(node, inputs, output),
            Op::Conv {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                group,
            } => self.lower_conv(
                node,
                fold_bn,
                arg0,
                kernel_shape,
                st,
                pads,
                dilations,
                *group,
            ),
            Op::ConvTranspose {
                strides: st,
                pads,
                dilations,
                output_padding,
            } => self.lower_conv_transpose(node, arg0, st, pads, dilations, output_padding),
            Op::Add | Op::Sub | Op::Mul => self.lower_add_sub_mul(node, arg0),
            Op::Variadic { of } => self.lower_variadic(node, *of),
            Op::Relu => self.lower_relu(arg0),
            Op::Clip { min, max } => self.lower_clip(node, arg0, *min, *max),
            Op::LeakyRelu { alpha } => self.lower_leaky_relu(arg0, alpha),
            Op::ConstantOfShape { value } => self.lower_constant_of_shape(arg0, value),
            Op::Recurrent { lstm, hidden } => self.recurrent(node, *lstm, *hidden),
            Op::ArgMax {
                axis,
                keepdims,
                last,
                min,
            } => self.lower_arg_max(arg0, axis, keepdims, last, min),
            Op::OneHot { axis } => self.lower_one_hot(node, arg0, axis),
            Op::Truncate => self.lower_truncate(arg0),
            Op::GatherElements { axis } => self.lower_gather_elements(node, arg0, axis),
            Op::ScatterElements { axis } => self.lower_scatter_elements(node, arg0, axis),
            Op::TopK { axis, largest, k } => self.lower_top_k(node, arg0, axis, largest, k),
            Op::Sigmoid | Op::Tanh => self.lower_sigmoid_tanh(node, arg0),
            Op::Unary(func) => self.lower_unary(arg0, func),
            Op::Compare { less, or_equal } => self.lower_compare(node, arg0, less, or_equal),
            Op::Not => self.lower_not(arg0),
            Op::Where => self.lower_where(node, arg0),
            Op::Neg => self.lower_neg(arg0),
            Op::Normalization {
                axis,
                epsilon,
                instance,
                groups,
            } => self.lower_normalization(node, arg0, (*axis, *epsilon), *instance, *groups),
            Op::PRelu => self.lower_prelu(node, arg0),
            Op::Softmax { axis, flatten, log } => self.lower_softmax(arg0, axis, flatten, *log),
            Op::Pow => self.lower_pow(node, arg0),
            Op::Div => self.lower_div(node, arg0),
            Op::AveragePool {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                count_include_pad,
                ceil_mode,
            } => self.lower_average_pool(
                arg0,
                kernel_shape,
                st,
                pads,
                dilations,
                (*count_include_pad, *ceil_mode),
            ),
            Op::MaxPool {
                kernel_shape,
                strides: st,
                pads,
                dilations,
                ceil_mode,
            } => self.lower_max_pool(arg0, kernel_shape, st, pads, dilations, ceil_mode),
            Op::GlobalAveragePool => self.lower_global_average_pool(arg0),
            Op::Pad { pads, value, mode } => self.lower_pad(node, arg0, pads, value, *mode),
            Op::Split { axis, split } => self.lower_split(node, arg0, *axis, split),
            Op::Slice { starts, ends, axes } => self.lower_slice(node, arg0, starts, ends, axes),
            Op::Gather { axis } => self.lower_gather(node, arg0, axis),
            Op::Resize {
                coordinate_mode,
                nearest_mode,
                scales,
                axes,
                keep_aspect,
            } => self.lower_resize(
                node,
                arg0,
                (coordinate_mode, nearest_mode),
                scales,
                axes,
                keep_aspect,
            ),
            Op::Shape { start, end } => self.lower_shape(arg0, *start, *end),
            Op::Squeeze { axes, unsqueeze } => self.lower_squeeze(node, arg0, axes, unsqueeze),
            Op::Tile => self.lower_tile(node, arg0),
            Op::DepthSpace {
                block,
                crd,
                to_depth,
            } => self.lower_depth_space(arg0, *block, *crd, *to_depth),
            Op::Expand => self.lower_expand(node, arg0),
            Op::Reduce {
                of,
                axes,
                keepdims,
                noop_with_empty_axes,
            } => self.lower_reduce(node, arg0, *of, axes, keepdims, noop_with_empty_axes),
            Op::Flatten { axis } => self.lower_flatten(arg0, axis),
            Op::Reshape { allowzero } => self.lower_reshape(node, arg0, allowzero),
            Op::Transpose { perm } => self.lower_transpose(arg0, perm),
            Op::Concat { axis } => self.lower_concat(node, axis),
            Op::BatchNormalization { .. } => self.lower_batch_normalization(node, arg0),
            Op::Unsupported { reason } => Err(self.fail(reason.clone())),
        }
    }

    pub(super) fn reshape(&mut self, name: &str, target: Vec<usize>) -> Result<Operand> {
        match self.operand(name)? {
            Operand::Const(t) => {
                if numel(&target) != t.len() {
                    return Err(self.fail(format!("cannot reshape {:?} to {:?}", t.shape, target)));
                }
                Ok(Operand::Const(t.reshaped(target)))
            }
            Operand::Value(x) => {
                if numel(&target) != numel(&self.shape(x)) {
                    return Err(self.fail(format!(
                        "cannot reshape {:?} to {:?}",
                        self.shape(x),
                        target
                    )));
                }
                let sc = self.scale_of(x);
                Ok(Operand::Value(self.push(
                    QOp::Reshape,
                    vec![x],
                    target,
                    sc,
                )?))
            }
        }
    }

    pub(super) fn binary(&mut self, op: &Op, a: Operand, b: Operand) -> Result<Operand> {
        let s = self.s;
        let check = |this: &Self, x: &[usize], y: &[usize]| {
            broadcast_shape(x, y)
                .ok_or_else(|| this.fail(format!("shapes {x:?} and {y:?} do not broadcast")))
        };
        match (a, b) {
            (Operand::Const(x), Operand::Const(y)) => {
                check(self, &x.shape, &y.shape)?;
                let r = zip_broadcast(&x, &y, |p, q| match op {
                    Op::Add => p + q,
                    Op::Sub => p - q,
                    _ => p * q,
                })
                .unwrap();
                Ok(Operand::Const(r))
            }
            (a, b) if *op == Op::Mul => {
                // One side constant: quantize it at its own scale; the product is rescaled later.
                let (x, other) = match (a, b) {
                    (Operand::Value(x), o) | (o, Operand::Value(x)) => (x, o),
                    _ => unreachable!(),
                };
                let y = match other {
                    Operand::Value(y) => y,
                    Operand::Const(c) => {
                        let sc = self.param_scale(&c);
                        self.const_value(&c, sc)?
                    }
                };
                let out = check(self, &self.shape(x), &self.shape(y))?;
                let sc = self.scale_of(x) + self.scale_of(y);
                Ok(Operand::Value(self.push(QOp::Mul, vec![x, y], out, sc)?))
            }
            (a, b) => {
                let target = [&a, &b]
                    .iter()
                    .map(|o| {
                        if let Operand::Value(v) = o {
                            self.scale_of(*v)
                        } else {
                            s
                        }
                    })
                    .max()
                    .unwrap();
                let mut ids = vec![];
                for o in [a, b] {
                    let v = match o {
                        Operand::Value(v) => v,
                        Operand::Const(c) => self.const_value(&c, target)?,
                    };
                    ids.push(self.rescale_to(v, target)?);
                }
                let out = check(self, &self.shape(ids[0]), &self.shape(ids[1]))?;
                let q = if *op == Op::Add { QOp::Add } else { QOp::Sub };
                Ok(Operand::Value(self.push(q, ids, out, target)?))
            }
        }
    }
}

/// For each element of `out` (row-major), the flat index into a tensor of shape `xs` of the
/// element it takes: `pick(axis, out index)` gives the input index on that axis, or None for a
/// fill element (-1).
pub(super) fn index_map(
    xs: &[usize],
    out: &[usize],
    mut pick: impl FnMut(usize, usize) -> Option<usize>,
) -> Vec<i64> {
    let st = strides(xs);
    let mut index = Vec::with_capacity(numel(out));
    for_each_index(out, |o| {
        let mut off = 0i64;
        for (d, &od) in o.iter().enumerate() {
            match pick(d, od) {
                Some(i) if i < xs[d] => off += (i * st[d]) as i64,
                _ => {
                    off = -1;
                    break;
                }
            }
        }
        index.push(off);
    });
    index
}

/// Where batch `t` of a batched matrix product starts in each operand (of `a_len` and `b_len`
/// elements): an operand holding a single matrix is used for every batch.
pub fn matmul_offsets(
    t: usize,
    a_len: usize,
    b_len: usize,
    m: usize,
    k: usize,
    n: usize,
) -> (usize, usize) {
    let ao = if a_len == m * k { 0 } else { t * m * k };
    let bo = if b_len == k * n { 0 } else { t * k * n };
    (ao, bo)
}

/// The shape of a reduction over `axes`: those axes become 1, or go with `keepdims` false.
pub(super) fn reduced_shape(xs: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    xs.iter()
        .enumerate()
        .filter(|&(d, _)| keepdims || !axes.contains(&d))
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect()
}

pub(super) fn squeeze_leading(t: Tensor<f64>) -> Tensor<f64> {
    let mut shape = t.shape.clone();
    while shape.len() > 2 && shape[0] == 1 {
        shape.remove(0);
    }
    t.reshaped(shape)
}

pub(super) fn float_matmul(a: &Tensor<f64>, b: &Tensor<f64>) -> Tensor<f64> {
    let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1]);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|l| a.data[i * k + l] * b.data[l * n + j]).sum();
        }
    }
    Tensor::new(vec![m, n], out)
}

/// ONNX Reshape's target: 0 copies the input dimension (unless allowzero), -1 is inferred.
pub(super) fn reshape_target(
    input: &[usize],
    spec: &[f64],
    allowzero: bool,
) -> std::result::Result<Vec<usize>, String> {
    let total = numel(input);
    let mut out = vec![];
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        let d = d as i64;
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *input
                    .get(i)
                    .ok_or("shape copies a dimension the input does not have")?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("invalid target shape {spec:?}")),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {spec:?}"));
        }
        out[i] = total / known;
    }
    if numel(&out) != total {
        return Err(format!("cannot reshape {input:?} to {spec:?}"));
    }
    Ok(out)
}
