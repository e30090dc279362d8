//! The preflight: every node the chain cannot handle, named with the reason, before anything
//! runs. The rules are one exhaustive match over `Op`, grouped by op family, so a new op must
//! say what it refuses (or `None`) before it compiles. They check what needs no shapes: which
//! operands are constants, which outputs are used, element types; the quantizer re-checks the
//! rest.

use super::*;

/// What the preflight knows of the graph's tensors without shapes.
struct Facts<'m> {
    model: &'m Model,
    /// Static tensors: constants, shapes of tensors (all shapes are fixed once the inputs are),
    /// and what is computed from static tensors alone (shape arithmetic).
    fixed: HashSet<&'m str>,
    /// Tensors of an integer element type.
    integer: HashSet<String>,
    /// Tensors of the bool element type.
    boolean: HashSet<String>,
}

impl<'m> Facts<'m> {
    fn of(model: &'m Model) -> Self {
        let mut fixed: HashSet<&str> = model.constants.keys().map(String::as_str).collect();
        for n in &model.nodes {
            let from_static = n
                .inputs
                .iter()
                .all(|i| i.is_empty() || fixed.contains(i.as_str()));
            if matches!(n.op, Op::Shape { .. }) || (from_static && !n.inputs.is_empty()) {
                fixed.extend(n.outputs.iter().map(String::as_str));
            }
        }
        Facts {
            model,
            fixed,
            integer: model.integer_tensors(),
            boolean: model.bool_tensors(),
        }
    }

    /// A tensor known only at run time (an empty name is an absent optional input).
    fn runtime(&self, name: &str) -> bool {
        !name.is_empty() && !self.fixed.contains(name)
    }

    /// Input `i` of `n` is known only at run time.
    fn runtime_input(&self, n: &Node, i: usize) -> bool {
        self.runtime(input(n, i))
    }

    /// Some input of `n` after the first is known only at run time.
    fn runtime_operands(&self, n: &Node) -> bool {
        n.inputs.iter().skip(1).any(|i| self.runtime(i))
    }

    /// A tensor some node reads, or a graph output.
    fn used(&self, name: &str) -> bool {
        !name.is_empty()
            && (self
                .model
                .nodes
                .iter()
                .any(|m| m.inputs.iter().any(|i| i == name))
                || self.model.outputs.iter().any(|o| o.name == name))
    }
}

/// Input `i` of `n`, or "" if absent.
fn input(n: &Node, i: usize) -> &str {
    n.inputs.get(i).map_or("", String::as_str)
}

fn refuse(reason: &str) -> Option<String> {
    Some(reason.into())
}

impl Model {
    /// Every node the chain cannot handle, with the reason.
    pub fn preflight(&self) -> Vec<Unsupported> {
        let facts = Facts::of(self);
        self.nodes
            .iter()
            .filter_map(|n| {
                refusal(n, &facts).map(|reason| Unsupported {
                    node: n.name.clone(),
                    op_type: n.op_type.clone(),
                    hint: hints::hint(n, &reason).map(String::from),
                    reason,
                })
            })
            .collect()
    }
}

/// Why the chain cannot handle node `n`, or `None`.
fn refusal(n: &Node, f: &Facts) -> Option<String> {
    match &n.op {
        Op::Unsupported { reason } => Some(reason.clone()),
        // Dense.
        Op::Gemm { .. } => (n.inputs.len() < 2).then(|| "Gemm needs two inputs".into()),
        Op::Conv { .. } => conv(n, f),
        Op::ConvTranspose { .. } => (n.inputs.len() < 2 || f.runtime_operands(n))
            .then(|| "ConvTranspose weights and bias must be constant".into()),
        Op::BatchNormalization { .. } => f
            .runtime_operands(n)
            .then(|| "BatchNormalization parameters must be constant".into()),
        Op::MatMul | Op::Einsum { .. } => None,
        // Arithmetic.
        Op::Div => integer_division(n, f),
        Op::Pow => pow(n, f),
        Op::Add | Op::Sub | Op::Mul | Op::Neg | Op::Compare { .. } | Op::Not | Op::Where => None,
        Op::Variadic { .. } => None,
        Op::Truncate => None,
        // Activations and tables.
        Op::PRelu => (n.inputs.len() < 2 || f.runtime_input(n, 1))
            .then(|| "PRelu with a runtime slope is not supported".into()),
        Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh | Op::Unary(_) => None,
        Op::Clip { .. } => (f.runtime_input(n, 1) || f.runtime_input(n, 2))
            .then(|| "Clip with a runtime min or max is not supported".into()),
        Op::Softmax { .. } => None,
        // Normalizations.
        Op::Normalization { .. } => normalization(n, f),
        // Pooling.
        Op::MaxPool { .. } => n
            .outputs
            .get(1)
            .is_some_and(|o| f.used(o))
            .then(|| "MaxPool's Indices output is not supported".into()),
        Op::AveragePool { .. } | Op::GlobalAveragePool => None,
        // Reductions.
        Op::Reduce { .. } if f.boolean.contains(input(n, 0)) => refuse(
            "a reduction of a bool tensor is not supported (tract cannot evaluate it): Cast it to float first",
        ),
        Op::Reduce { .. } => f
            .runtime_input(n, 1)
            .then(|| "reduction with runtime axes is not supported".into()),
        Op::ArgMax { .. } => None,
        Op::TopK { k, .. } => top_k(n, f, k.is_none()),
        // Shape and rewiring.
        Op::Reshape { .. } => (n.inputs.len() < 2 || f.runtime_input(n, 1))
            .then(|| "Reshape with a runtime shape is not supported".into()),
        Op::Tile | Op::Expand => runtime_second_input(n, f),
        Op::DepthSpace { .. } => None,
        Op::ConstantOfShape { .. } => f
            .runtime_input(n, 0)
            .then(|| "ConstantOfShape with a runtime shape is not supported".into()),
        Op::Flatten { .. } | Op::Transpose { .. } | Op::Concat { .. } | Op::Squeeze { .. } => None,
        // Dropout is Identity at inference; its mask is not computed.
        Op::Identity => n
            .outputs
            .iter()
            .skip(1)
            .any(|o| f.used(o))
            .then(|| format!("{}'s mask output is not supported", n.op_type)),
        Op::Constant | Op::Shape { .. } => None,
        // Indexing.
        Op::Pad { .. } | Op::Slice { .. } | Op::Resize { .. } | Op::Split { .. } => {
            runtime_second_input(n, f)
        }
        Op::OneHot { .. } => (n.inputs.len() < 3 || (1..3).any(|i| f.runtime_input(n, i)))
            .then(|| "OneHot's depth and values must be constant".into()),
        Op::Gather { .. } | Op::GatherElements { .. } | Op::ScatterElements { .. } => None,
        // Recurrent.
        Op::Recurrent { .. } => recurrent(n, f),
    }
}

fn conv(n: &Node, f: &Facts) -> Option<String> {
    if n.inputs.len() < 2 || f.runtime_input(n, 1) {
        refuse("Conv weights must be constant")
    } else if f.runtime_input(n, 2) {
        refuse("Conv bias must be constant")
    } else {
        None
    }
}

/// ONNX divides integers with truncation (7 / 2 = 3); the fixed-point chain divides the real
/// numbers. Folded on static tensors, refused at run time.
fn integer_division(n: &Node, f: &Facts) -> Option<String> {
    let integer = n
        .inputs
        .iter()
        .chain(&n.outputs)
        .any(|t| f.integer.contains(t));
    (integer && n.inputs.iter().any(|i| f.runtime(i))).then(|| {
        "integer division (ONNX truncates toward zero) of runtime tensors is not supported: the \
         chain divides real numbers"
            .into()
    })
}

fn normalization(n: &Node, f: &Facts) -> Option<String> {
    if f.runtime_operands(n) {
        Some(format!(
            "{} with a runtime scale or bias is not supported",
            n.op_type
        ))
    } else if n.outputs.iter().skip(1).any(|o| f.used(o)) {
        refuse("LayerNormalization's mean and inverse deviation outputs are not supported")
    } else {
        None
    }
}

fn pow(n: &Node, f: &Facts) -> Option<String> {
    if n.inputs.len() < 2 || f.runtime_input(n, 1) {
        return refuse("Pow with a runtime exponent is not supported");
    }
    // One table computes one power: an exponent tensor must repeat one value.
    let p = f.model.constants.get(input(n, 1))?;
    p.data
        .iter()
        .any(|&e| e != p.data[0])
        .then(|| "Pow with different exponents per element is not supported".into())
}

fn top_k(n: &Node, f: &Facts, k_from_input: bool) -> Option<String> {
    if k_from_input && (n.inputs.len() < 2 || f.runtime_input(n, 1)) {
        refuse("TopK with a runtime k is not supported")
    } else if n.outputs.get(1).is_some_and(|i| f.used(i)) {
        refuse("TopK's Indices output is not supported (only its Values)")
    } else {
        None
    }
}

fn runtime_second_input(n: &Node, f: &Facts) -> Option<String> {
    f.runtime_operands(n).then(|| {
        format!(
            "{} with a runtime (non-constant) second input is not supported",
            n.op_type
        )
    })
}

fn recurrent(n: &Node, f: &Facts) -> Option<String> {
    if n.inputs.len() < 3 || (1..4).any(|i| f.runtime_input(n, i)) {
        Some(format!("{} weights and biases must be constant", n.op_type))
    } else if !input(n, 4).is_empty() {
        refuse("sequence_lens is not supported: every sequence is full length")
    } else if !input(n, 7).is_empty() {
        refuse("LSTM peepholes are not supported")
    } else {
        None
    }
}
