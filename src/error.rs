//! Errors of the receipt chain. Each names the file and what is wrong with it, and maps to the
//! stable exit codes of the command line (design.md §2).

use std::fmt;

/// One node the compiler cannot handle, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    pub node: String,
    pub op_type: String,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` ({}): {}",
            self.node, self.op_type, self.reason
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file or artifact that cannot be read or is not valid: exit 3.
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
    /// A command that cannot run as asked (the inspector without a terminal): exit 2, like a
    /// usage error, with what to do instead.
    #[error("{0}")]
    Usage(String),
    /// A model with nodes the chain cannot handle: exit 3, every such node named.
    #[error("{file}: {} unsupported node(s):\n{}", nodes.len(), list(nodes))]
    Unsupported {
        file: String,
        nodes: Vec<Unsupported>,
    },
    /// zkreceipt contradicted itself (a proof it just made does not verify, a circuit whose
    /// public values differ from its own evaluator's): a bug in the tool, not in the input: exit 4.
    #[error("internal error, a bug in zkreceipt (not in your input; please report it): {0}")]
    Internal(String),
}

fn list(nodes: &[Unsupported]) -> String {
    nodes
        .iter()
        .map(|n| format!("  - {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn invalid(file: impl fmt::Display, msg: impl fmt::Display) -> Self {
        Error::Invalid {
            file: file.to_string(),
            msg: msg.to_string(),
        }
    }

    /// The process exit code for this error (design.md §2).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Invalid { .. } | Error::Unsupported { .. } => 3,
            Error::Internal(_) => 4,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
