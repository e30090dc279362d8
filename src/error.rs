//! Errors of the receipt chain. Each names the file and what is wrong with it, and maps to the
//! stable exit codes of the command line (design.md §2).

use std::fmt;

/// One node the compiler cannot handle, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    pub node: String,
    pub op_type: String,
    pub reason: String,
    /// A known workaround, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` ({}): {}",
            self.node, self.op_type, self.reason
        )?;
        match &self.hint {
            Some(h) => write!(f, "\n      what to do: {h}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file or artifact that cannot be read or is not valid: exit 3. `field` names the
    /// JSON field at fault when there is one (`input_data[0][3]`, `output[0].values`).
    #[error("{file}: {msg}")]
    Invalid {
        file: String,
        field: Option<String>,
        msg: String,
    },
    /// A value of a graph input that the quantization cannot take (too large for the scale or
    /// the activation bits): exit 3. Whoever read the input file names it ([`Error::in_input`]).
    #[error("input `{input}`: {msg}")]
    InputValue {
        input: String,
        field: Option<String>,
        msg: String,
    },
    /// A command that cannot run as asked (the inspector without a terminal): exit 2, like a
    /// usage error, with what to do instead.
    #[error("{0}")]
    Usage(String),
    /// A model with nodes the chain cannot handle: exit 3, every such node named.
    #[error(
        "{file}: {} unsupported node(s):\n{}\n(what is supported, and what to do: README.md, \
         \"Supported ops\" and \"When an op is refused\")",
        nodes.len(),
        list(nodes)
    )]
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
            field: None,
            msg: msg.to_string(),
        }
    }

    /// [`Error::invalid`] naming the JSON field at fault.
    pub fn invalid_field(
        file: impl fmt::Display,
        field: impl fmt::Display,
        msg: impl fmt::Display,
    ) -> Self {
        Error::Invalid {
            file: file.to_string(),
            field: Some(field.to_string()),
            msg: msg.to_string(),
        }
    }

    /// An input value's error, told about the file the input came from (`source`: a path, or
    /// a path and line for JSON Lines). Other errors are returned as they are.
    pub fn in_input(self, source: &str) -> Self {
        match self {
            Error::InputValue { input, field, msg } => Error::Invalid {
                file: source.to_string(),
                field,
                msg: format!("input `{input}`: {msg}"),
            },
            other => other,
        }
    }

    /// The process exit code for this error (design.md §2).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Invalid { .. } | Error::InputValue { .. } | Error::Unsupported { .. } => 3,
            Error::Internal(_) => 4,
        }
    }

    /// The error as one JSON document, for `--json` (stdout; the human message still goes to
    /// stderr): `{"error": {"kind", "file", "field", "message"}}`, and the refused nodes of an
    /// unsupported model.
    pub fn to_json(&self) -> serde_json::Value {
        let (kind, file, field, message) = match self {
            Error::Usage(m) => ("usage", None, None, m.clone()),
            Error::Invalid { file, field, msg } => {
                ("invalid", Some(file), field.clone(), msg.clone())
            }
            Error::InputValue { field, .. } => ("invalid", None, field.clone(), self.to_string()),
            Error::Unsupported { file, .. } => ("unsupported", Some(file), None, self.to_string()),
            Error::Internal(_) => ("internal", None, None, self.to_string()),
        };
        let mut doc = serde_json::json!({
            "kind": kind,
            "file": file,
            "field": field,
            "message": message,
        });
        if let Error::Unsupported { nodes, .. } = self {
            doc["nodes"] = serde_json::json!(nodes);
        }
        serde_json::json!({ "error": doc })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
