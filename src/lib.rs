//! zkreceipt: make zkML inference proofs inspectable.
//!
//! The receipt chain, one module per stage:
//! float ONNX ([`model`]) → quantized model ([`quantize`]) → circuit → verifier key → proof → receipt.
//! The stages never depend on the user interface ([`cli`]).

pub mod cli;
pub mod error;
pub mod model;
pub mod quantize;
pub mod tensor;

pub use error::{Error, Result};
