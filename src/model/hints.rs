//! What to do about a refused node, where a workaround is known: the preflight attaches it to
//! the refusal. Most are a way to export the model differently, or the same computation in ops
//! that are supported (README.md, "Supported ops" and "When an op is refused").

use super::*;

/// A workaround for refused node `n` (refused for `reason`), if one is known.
pub(super) fn hint(n: &Node, reason: &str) -> Option<&'static str> {
    if reason.starts_with("operator domain") {
        return Some(if reason.contains("ai.onnx.ml") {
            "convert the estimator to tensor ops (hummingbird's ONNX export does, as the corpus's \
             tree ensembles are) or export its arithmetic as plain ONNX"
        } else {
            "export plain ONNX ops, and prove the model as exported, not a copy optimized by \
             onnxruntime"
        });
    }
    match &n.op {
        Op::Unsupported { .. } => unknown_op(&n.op_type),
        Op::Gemm { .. } => {
            Some("MatMul of two runtime tensors and Add are supported: write A·B + C with them")
        }
        Op::Conv { .. } | Op::ConvTranspose { .. } | Op::BatchNormalization { .. } => Some(
            "export with the weights as initializers (torch.onnx.export with \
             do_constant_folding=True), not computed in the graph",
        ),
        Op::Clip { .. } => Some(
            "Max and Min of runtime tensors are supported: Clip(x, lo, hi) is Min(Max(x, lo), hi)",
        ),
        Op::PRelu => Some(
            "with a runtime slope a, PRelu(x) is Relu(x) − a·Relu(−x) (Relu, Neg, Mul and Sub \
             are supported)",
        ),
        Op::Pow => Some(
            "a runtime or mixed exponent: for a positive base, Exp(y·Log(x)) is supported; one \
             Pow per distinct exponent also works",
        ),
        Op::Div => Some("Cast the operands to float before dividing"),
        Op::TopK { .. } | Op::MaxPool { .. } => {
            Some("use the values only; ArgMax gives the index of the largest one")
        }
        Op::Reshape { .. }
        | Op::Tile
        | Op::Expand
        | Op::ConstantOfShape { .. }
        | Op::Pad { .. }
        | Op::Slice { .. }
        | Op::Resize { .. }
        | Op::Split { .. }
        | Op::Reduce { .. } => Some(
            "a shape or axis computed at run time: export with fixed input shapes (no \
             dynamic_axes) and do_constant_folding=True, so that it becomes a constant",
        ),
        Op::Einsum { .. } => Some(EINSUM),
        Op::Recurrent { .. } => Some(
            "pad every sequence to the full length and export without sequence_lens; keep the \
             weights as initializers",
        ),
        Op::Normalization { .. } => Some(
            "export with scale and bias as initializers; compute the mean and deviation with \
             ReduceMean if the graph needs them",
        ),
        _ => None,
    }
}

const EINSUM: &str = "write the product with Transpose, MatMul and ReduceSum (all supported), \
                      or the equation with an ellipsis in every operand and an explicit output";

/// Workarounds for op types the chain does not parse, or for forms its parser refuses.
fn unknown_op(op_type: &str) -> Option<&'static str> {
    Some(match op_type {
        "Upsample" => "re-export with opset 11 or later, where it becomes Resize (nearest)",
        "NonZero" | "Unique" | "NonMaxSuppression" | "Loop" | "If" | "Scan" | "Compress" => {
            "its output's shape or path depends on the values, and a circuit is fixed: compute \
             it outside the model, or export a graph without it"
        }
        "QuantizeLinear"
        | "DequantizeLinear"
        | "QLinearConv"
        | "QLinearMatMul"
        | "MatMulInteger"
        | "ConvInteger"
        | "DynamicQuantizeLinear" => "export the float model: zkreceipt quantizes it itself",
        "RandomNormal" | "RandomUniform" | "RandomNormalLike" | "RandomUniformLike"
        | "Bernoulli" | "Multinomial" => {
            "randomness cannot be proved: export in eval mode, or pass the noise as an input"
        }
        "LpNormalization" => "x / ReduceL2(x, keepdims=1) is supported (p = 2)",
        "MeanVarianceNormalization" => {
            "(x − ReduceMean(x)) / Sqrt(ReduceMean((x − mean)²)) is supported"
        }
        "Hardmax" => "OneHot of ArgMax is supported",
        "ScatterND" | "GatherND" => {
            "ScatterElements and GatherElements with one index per element are supported"
        }
        "CumSum" => "a MatMul by a constant triangular matrix of ones is a cumulative sum",
        "Trilu" => "Mul by a constant triangular mask of ones is supported",
        "GlobalMaxPool" => "ReduceMax over the spatial axes (keepdims=1) is supported",
        "GRU" => "LSTM and RNN are supported; a GRU is not yet",
        "Equal" => {
            "for integer masks, Not(Less(a, b) or Greater(a, b)) is equality: Less, Greater and \
             Not are supported"
        }
        "ReduceProd" => "for positive x, Exp(ReduceSum(Log(x))) is supported",
        "Einsum" => EINSUM,
        "Celu" => "write it out: Relu(x) + Min(0, α·(Exp(x/α) − 1)), all supported",
        "Pad" => "wrap padding is a Concat of Slices of the input, all supported",
        "ScatterElements" | "Scatter" => {
            "with reduction add and one write per element: ScatterElements of the updates \
             into zeros, then Add"
        }
        _ => return None,
    })
}
