//! zkreceipt: make zkML inference proofs inspectable.
//!
//! The receipt chain, one module per stage:
//! float ONNX ([`model`]) → quantized model ([`quantize`]) → circuit ([`circuit`]) → verifier key and proof
//! ([`proof`]) → receipt ([`receipt`]).
//! The stages never depend on the user interfaces ([`cli`], [`tui`]).

pub mod bench;
pub mod circuit;
pub mod cli;
pub mod error;
pub mod files;
pub mod json;
pub mod model;
pub mod panics;
pub mod proof;
pub mod quantize;
pub mod receipt;
pub mod tensor;
pub mod tui;

pub use error::{Error, Result};
