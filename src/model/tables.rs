//! The element-wise functions the circuit computes through a lookup table: one variant each,
//! with its ONNX form (`parse`), its real function (`apply`, which the quantizer tabulates) and
//! its name. Adding a table op is one variant and its three arms here: the quantizer, the
//! evaluator and the circuit handle every `TableFn` alike.

use super::parse::Attrs;
use super::*;

/// An element-wise function, evaluated by the circuit through a lookup table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFn {
    Sigmoid,
    Tanh,
    Elu {
        alpha: f64,
    },
    Selu {
        alpha: f64,
        gamma: f64,
    },
    Softplus,
    Erf,
    /// Square root; 0 below 0 (where ONNX gives NaN).
    Sqrt,
    HardSigmoid {
        alpha: f64,
        beta: f64,
    },
    /// `x · HardSigmoid(x)` with α = 1/6, β = 1/2 (MobileNetV3).
    HardSwish,
    /// `x · tanh(softplus(x))`.
    Mish,
    /// `x · Φ(x)`, or with `tanh` its tanh approximation (opset 20's `approximate`).
    Gelu {
        tanh: bool,
    },
    Sin,
    Cos,
    Exp,
    Abs,
    /// `x^p` for a constant exponent; 0 where it is not a real number.
    Pow {
        p: f64,
    },
    /// `1/x`, for division by a runtime tensor; 0 at 0.
    Reciprocal,
    Tan,
    /// Acos and Asin: 0 outside [-1, 1] (where ONNX gives NaN).
    Acos,
    Asin,
    Atan,
    Sign,
    /// Natural logarithm; 0 at and below 0 (where ONNX gives −∞ or NaN).
    Log,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `x` above `alpha`, else 0.
    ThresholdedRelu {
        alpha: f64,
    },
    /// `max(0, x) + min(0, α·(exp(x/α) − 1))`.
    Celu {
        alpha: f64,
    },
    Floor,
    Ceil,
    /// To the nearest integer, ties to even (as ONNX says).
    Round,
}

impl TableFn {
    /// The table function an ONNX op of this type is (`None` for an op that is not one). Its
    /// attributes come from `a`.
    pub(super) fn parse(op_type: &str, a: &Attrs) -> Option<TableFn> {
        Some(match op_type {
            "Elu" => TableFn::Elu {
                alpha: a.float("alpha", 1.0),
            },
            "Selu" => TableFn::Selu {
                alpha: a.float("alpha", 1.673_263_192_176_818_8),
                gamma: a.float("gamma", 1.050_701_022_148_132_3),
            },
            "Softplus" => TableFn::Softplus,
            "Erf" => TableFn::Erf,
            "Sqrt" => TableFn::Sqrt,
            "HardSigmoid" => TableFn::HardSigmoid {
                alpha: a.float("alpha", 0.2),
                beta: a.float("beta", 0.5),
            },
            "HardSwish" => TableFn::HardSwish,
            "Mish" => TableFn::Mish,
            "Gelu" => TableFn::Gelu {
                tanh: a.string("approximate").is_some_and(|s| s == "tanh"),
            },
            "Sin" => TableFn::Sin,
            "Cos" => TableFn::Cos,
            "Exp" => TableFn::Exp,
            "Abs" => TableFn::Abs,
            "Reciprocal" => TableFn::Reciprocal,
            "Tan" => TableFn::Tan,
            "Acos" => TableFn::Acos,
            "Asin" => TableFn::Asin,
            "Atan" => TableFn::Atan,
            "Sign" => TableFn::Sign,
            "Log" => TableFn::Log,
            "Softsign" => TableFn::Softsign,
            "ThresholdedRelu" => TableFn::ThresholdedRelu {
                alpha: a.float("alpha", 1.0),
            },
            // tract, which runs the float model, leaves α out of the negative branch; for
            // α = 1 (the default) it agrees with ONNX, and the parser refuses any other α.
            "Celu" => TableFn::Celu {
                alpha: a.float("alpha", 1.0),
            },
            "Floor" => TableFn::Floor,
            "Ceil" => TableFn::Ceil,
            "Round" => TableFn::Round,
            _ => return None,
        })
    }

    pub fn apply(self, x: f64) -> f64 {
        let y = match self {
            TableFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            TableFn::Tanh => x.tanh(),
            TableFn::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            TableFn::Selu { alpha, gamma } => gamma * if x > 0.0 { x } else { alpha * x.exp_m1() },
            TableFn::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            TableFn::Erf => libm::erf(x),
            TableFn::Sqrt => x.max(0.0).sqrt(),
            TableFn::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            TableFn::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            TableFn::Mish => x * (x.max(0.0) + (-x.abs()).exp().ln_1p()).tanh(),
            TableFn::Gelu { tanh: false } => {
                0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
            }
            TableFn::Gelu { tanh: true } => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            TableFn::Sin => x.sin(),
            TableFn::Cos => x.cos(),
            TableFn::Exp => x.exp(),
            TableFn::Abs => x.abs(),
            TableFn::Pow { p } => x.powf(p),
            TableFn::Reciprocal => 1.0 / x,
            TableFn::Tan => x.tan(),
            TableFn::Acos => x.acos(),
            TableFn::Asin => x.asin(),
            TableFn::Atan => x.atan(),
            TableFn::Log => x.ln(),
            TableFn::Softsign => x / (1.0 + x.abs()),
            TableFn::ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            TableFn::Celu { alpha } => x.max(0.0) + (alpha * (x / alpha).exp_m1()).min(0.0),
            TableFn::Floor => x.floor(),
            TableFn::Ceil => x.ceil(),
            TableFn::Round => x.round_ties_even(),
            TableFn::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
        };
        if y.is_finite() { y } else { 0.0 }
    }

    /// The ONNX op this table stands for.
    pub fn name(self) -> &'static str {
        match self {
            TableFn::Sigmoid => "Sigmoid",
            TableFn::Tanh => "Tanh",
            TableFn::Elu { .. } => "Elu",
            TableFn::Selu { .. } => "Selu",
            TableFn::Softplus => "Softplus",
            TableFn::Erf => "Erf",
            TableFn::Sqrt => "Sqrt",
            TableFn::HardSigmoid { .. } => "HardSigmoid",
            TableFn::HardSwish => "HardSwish",
            TableFn::Mish => "Mish",
            TableFn::Gelu { .. } => "Gelu",
            TableFn::Sin => "Sin",
            TableFn::Cos => "Cos",
            TableFn::Exp => "Exp",
            TableFn::Abs => "Abs",
            TableFn::Pow { .. } => "Pow",
            TableFn::Reciprocal => "Reciprocal",
            TableFn::Tan => "Tan",
            TableFn::Acos => "Acos",
            TableFn::Asin => "Asin",
            TableFn::Atan => "Atan",
            TableFn::Sign => "Sign",
            TableFn::Log => "Log",
            TableFn::Softsign => "Softsign",
            TableFn::ThresholdedRelu { .. } => "ThresholdedRelu",
            TableFn::Celu { .. } => "Celu",
            TableFn::Floor => "Floor",
            TableFn::Ceil => "Ceil",
            TableFn::Round => "Round",
        }
    }
}
