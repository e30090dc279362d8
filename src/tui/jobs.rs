//! Background work for the inspector: open or build a receipt folder, verify, audit, check one
//! break-test change. Each job runs on the worker thread and reports through events; [`run`] is
//! also callable directly (tests).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use crate::model::Model;
use crate::quantize::QuantConfig;
use crate::quantize::report::{RunReport, analyze};
use crate::receipt::audit::{AuditReport, audit_with};
use crate::receipt::{
    Folder, INPUT_FILE, KeyCache, MODEL_FILE, ProveOptions, prove_folder, verify_folder_with,
};

/// What the worker does.
#[derive(Clone)]
pub enum Command {
    /// Open a receipt folder.
    Open(PathBuf),
    /// Prove `model` on `input` into the folder `out`, then open it.
    Build {
        model: PathBuf,
        input: PathBuf,
        out: PathBuf,
    },
    Verify(Box<Folder>),
    Audit(Box<Folder>),
    /// Verify a changed copy of the folder (break-test item `index`).
    BreakCase(usize, Box<Folder>),
}

impl Command {
    pub fn describe(&self) -> String {
        match self {
            Command::Open(p) => format!("open {}", p.display()),
            Command::Build { model, .. } => format!("build the chain of {}", model.display()),
            Command::Verify(_) => "verify".into(),
            Command::Audit(_) => "audit".into(),
            Command::BreakCase(..) => "break test".into(),
        }
    }
}

/// What the worker reports.
pub enum Event {
    Progress {
        stage: String,
        fraction: f64,
        elapsed_s: f64,
    },
    Loaded(Box<Loaded>),
    Verified {
        verified: bool,
        reason: Option<String>,
        seconds: f64,
    },
    Audited(AuditReport),
    BreakResult {
        index: usize,
        verified: bool,
        reason: Option<String>,
    },
    Failed(String),
}

/// One ONNX node, for the Float ONNX view.
#[derive(Clone, Debug)]
pub struct OpRow {
    pub name: String,
    pub op_type: String,
}

/// A folder and what the views show of it, derived once when it is opened.
pub struct Loaded {
    pub title: String,
    pub folder: Folder,
    pub onnx_bytes: usize,
    pub opset: i64,
    pub params: usize,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub ops: Vec<OpRow>,
    /// Float (tract) against the circuit's output, when the input is in the folder.
    pub report: Option<RunReport>,
    /// What sets the circuit's k, and what proving at that k costs (the forecast `prove`
    /// prints), derived once here rather than on every frame.
    pub k_reason: String,
    pub forecast: crate::proof::Forecast,
    /// sha256 of receipt.json as read, the Receipt link's full hash.
    pub receipt_sha256: String,
}

/// Read a folder and derive the views' data: the ONNX summary and, when the input is there,
/// the float run for the quantization gap. A redacted folder has no model.onnx: its views show
/// what the folder holds.
pub fn load(dir: &std::path::Path, title: &str) -> crate::Result<Loaded> {
    let folder = Folder::load(dir)?;
    let k_reason = folder.circuit.k_reason();
    let forecast = crate::proof::forecast(folder.circuit.layout, folder.circuit.k);
    let receipt_sha256 = std::fs::read(folder.dir.join(crate::receipt::RECEIPT_FILE))
        .map(|b| crate::model::sha256_hex(&b))
        .unwrap_or_default();
    if folder.qm.redacted.is_some() && !folder.dir.join(MODEL_FILE).exists() {
        return Ok(Loaded {
            title: title.into(),
            onnx_bytes: 0,
            opset: 0,
            params: 0,
            inputs: vec![],
            outputs: vec![],
            ops: vec![],
            report: None,
            k_reason,
            forecast,
            receipt_sha256,
            folder,
        });
    }
    let model = Model::load(&folder.dir.join(MODEL_FILE))?;
    let input = folder.dir.join(INPUT_FILE);
    let report = if input.is_file() {
        let floats = crate::model::input::load_input(&input, &model)?;
        let float = model.run_float(&floats)?;
        Some(analyze(&model, &folder.qm, &floats, &float)?)
    } else {
        None
    };
    Ok(Loaded {
        title: title.into(),
        onnx_bytes: model.bytes,
        opset: model.opset,
        params: model.param_count(),
        inputs: model
            .inputs
            .iter()
            .map(|i| format!("{} {}", i.name, crate::model::dims_str(&i.dims)))
            .collect(),
        outputs: model.outputs.iter().map(|o| o.name.clone()).collect(),
        ops: model
            .nodes
            .iter()
            .map(|n| OpRow {
                name: n.name.clone(),
                op_type: n.op_type.clone(),
            })
            .collect(),
        report,
        k_reason,
        forecast,
        receipt_sha256,
        folder,
    })
}

const BUILD_STAGES: [&str; 6] = [
    "quantize",
    "circuit",
    "keygen",
    "prove",
    "verify",
    "write receipt folder",
];

/// Run one command, reporting through `send`.
/// `keys` keeps the last verifier key derived, so a repeated verify, audit or break-test item
/// on the open folder costs the proof check, not key generation.
pub fn run(cmd: Command, keys: &mut KeyCache, send: &dyn Fn(Event)) {
    let start = Instant::now();
    let progress = |stage: &str, fraction: f64| {
        send(Event::Progress {
            stage: stage.into(),
            fraction,
            elapsed_s: start.elapsed().as_secs_f64(),
        })
    };
    let result: crate::Result<Event> = match cmd {
        Command::Open(dir) => {
            progress("reading the folder and re-running the float model", 0.5);
            let title = dir.display().to_string();
            load(&dir, &title).map(|l| Event::Loaded(Box::new(l)))
        }
        Command::Build { model, input, out } => {
            let mut cb = |stage: &str| {
                let i = BUILD_STAGES
                    .iter()
                    .position(|s| stage.starts_with(s))
                    .unwrap_or(0);
                progress(stage, i as f64 / BUILD_STAGES.len() as f64);
            };
            let opts = ProveOptions::default();
            prove_folder(
                &model,
                &input,
                &out,
                &QuantConfig::default(),
                &opts,
                &mut cb,
            )
            .and_then(|_| load(&out, &model.display().to_string()))
            .map(|l| Event::Loaded(Box::new(l)))
        }
        Command::Verify(f) => {
            let mut cb = |stage: &str| progress(stage, 0.5);
            let t = Instant::now();
            verify_folder_with(&f, keys, &mut cb).map(|v| Event::Verified {
                verified: v.verified,
                reason: v.reason,
                seconds: t.elapsed().as_secs_f64(),
            })
        }
        Command::Audit(f) => {
            let mut cb = |stage: &str| progress(stage, 0.5);
            audit_with(&f, keys, &mut cb).map(Event::Audited)
        }
        Command::BreakCase(index, f) => {
            let mut cb = |stage: &str| progress(stage, 0.5);
            verify_folder_with(&f, keys, &mut cb).map(|v| Event::BreakResult {
                index,
                verified: v.verified,
                reason: v.reason,
            })
        }
    };
    send(result.unwrap_or_else(|e| Event::Failed(e.to_string())));
}

/// The worker thread: runs commands in order, sends events.
pub struct Worker {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
}

impl Worker {
    pub fn spawn() -> Worker {
        let (ctx, crx) = channel::<Command>();
        let (etx, erx) = channel::<Event>();
        std::thread::spawn(move || {
            let mut keys = KeyCache::default();
            for cmd in crx {
                let send = |e: Event| {
                    let _ = etx.send(e);
                };
                run(cmd, &mut keys, &send);
            }
        });
        Worker {
            commands: ctx,
            events: erx,
        }
    }
}
