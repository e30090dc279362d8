//! The command line (design.md §2, stable). Every command prints a human report, or exactly one
//! JSON document on stdout with `--json`; progress and logs go to stderr.

mod bench;
mod folder;
mod generated;
mod model;
mod package;

use folder::{cmd_audit, cmd_break_test, cmd_export, cmd_redact, cmd_verify};
pub use model::quantize_and_compare;
use model::{cmd_model, cmd_run};

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::json;

use crate::circuit::{ParamVisibility, Visibility, commit::parse_salt};
use crate::error::Result;
use crate::model::{Model, dims_str};
use crate::quantize::QuantConfig;
use crate::quantize::report::RunReport;
use crate::receipt::audit::audit;
use crate::receipt::break_test::break_test;
use crate::receipt::{Folder, ProofRng, ProveOptions, prove_folder, verify_folder};

#[derive(Parser, Debug)]
#[command(
    name = "zkreceipt",
    version,
    about = "Make zkML inference proofs inspectable: float ONNX → quantized model → circuit → verifier key → proof → receipt",
    after_help = "Without a command, zkreceipt opens the inspector (a terminal UI) on the bundled digits sample, building its chain into the cache the first time.\n\nExit codes: 0 ok, 1 verification rejected, 2 usage error, 3 unreadable or invalid input (the message names the file and field)."
)]
pub struct Cli {
    /// Without a command, the inspector opens on the bundled digits sample.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the inspector (TUI) on a receipt folder, or build a model's chain live and open it.
    Inspect {
        /// A receipt folder (or its receipt.json), or an ONNX model with --input.
        target: PathBuf,
        /// Input JSON, when the target is a model.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Show a model's ops, shapes, parameters and sha256, and check that every op is supported
    /// (exit 3 naming each unsupported node).
    Model {
        /// The ONNX model.
        model: PathBuf,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Run a model in float (tract) and quantized (integer evaluator) and compare them: outputs,
    /// argmax, and error per node.
    /// With --calibration, the gap over a data set instead: per output the max and mean error,
    /// argmax agreement and accuracy against labels, per layer the spread of its error.
    Run {
        /// The ONNX model (or, with --calibration, a package folder made by `setup`).
        model: PathBuf,
        /// Input JSON: {"input_data": [[...]]}, one flattened array per graph input.
        #[arg(
            long,
            required_unless_present = "calibration",
            conflicts_with = "calibration"
        )]
        input: Option<PathBuf>,
        /// A data set (input files, JSON Lines files, folders of input files): the model is
        /// calibrated on all of it (a package: its own calibration) and compared on every sample.
        #[arg(long, num_args = 1..)]
        calibration: Vec<PathBuf>,
        #[command(flatten)]
        quant: QuantArgs,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Prove a model's quantized inference on an input and write a receipt folder: model.onnx,
    /// input.json, quantized.json, circuit.json, vk.txt, proof.bin, receipt.json. Given a
    /// package (from `setup`), prove against it: every receipt shares its quantized model,
    /// circuit and verifier key; several inputs make one receipt folder each under --out, with
    /// one key generation.
    Prove {
        /// The ONNX model, or a package folder made by `setup`.
        model: PathBuf,
        /// Input JSON: {"input_data": [[...]]}, one flattened array per graph input. With a
        /// package, repeat it, or give a JSON Lines file (one input per line) or a folder of
        /// input files.
        #[arg(long, required = true)]
        input: Vec<PathBuf>,
        /// The receipt folder to write (written under a temporary name, renamed when complete;
        /// an existing receipt folder there is replaced, and the report says so). For several
        /// inputs, the folder that receives one receipt folder per input.
        #[arg(long)]
        out: PathBuf,
        /// Replace the folder at --out even when it holds files zkreceipt did not write there
        /// (without it, only an empty folder or one of zkreceipt's own is replaced).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        quant: QuantArgs,
        #[command(flatten)]
        disclosure: DisclosureArgs,
        /// Seed the prover's randomness (reproducible proofs for demos and tests; such a proof
        /// is sound but not zero-knowledge). Default: the OS random source.
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Set a model up once for many inferences: calibrate on a data set, quantize, compile and
    /// derive the verifier key, and write a package folder (model.onnx, quantized.json,
    /// circuit.json, vk.txt, calibration.json, package.json) to prove inputs against.
    Setup {
        /// The ONNX model.
        model: PathBuf,
        /// Calibration data: input files, JSON Lines files (one input object per line, with an
        /// optional integer "label") or folders of input files. Scales and tables cover every
        /// sample, with --margin.
        #[arg(long, required = true, num_args = 1..)]
        calibration: Vec<PathBuf>,
        /// The package folder to write (atomically; an existing package there is replaced, and
        /// the report says so).
        #[arg(long)]
        out: PathBuf,
        /// Replace the folder at --out even when it holds files zkreceipt did not write there
        /// (without it, only an empty folder or one of zkreceipt's own is replaced).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        quant: QuantArgs,
        /// Safety margin: the scale covers magnitudes up to this many times the largest the
        /// calibration samples reach, and each table its input's calibrated range widened this
        /// many times about its centre.
        #[arg(long, default_value_t = crate::quantize::DEFAULT_MARGIN)]
        margin: f64,
        #[command(flatten)]
        disclosure: DisclosureArgs,
        /// Hashed inputs proved against the package carry a secret salt (each prove then takes
        /// --salt).
        #[arg(long)]
        salted: bool,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Verify a receipt folder: re-derive the verifier key from quantized.json and circuit.json,
    /// check it against vk.txt and the receipt, and check the proof against the public input and
    /// output the receipt shows. Exit 0 verified, 1 rejected, 3 unreadable.
    Verify {
        /// The receipt folder, or its receipt.json.
        receipt: PathBuf,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Re-derive every link of a receipt folder (model file, quantized model, circuit, verifier
    /// key, proof, input commitment, output and error) and say per link whether it holds.
    /// Exit 0 when all hold, 1 otherwise.
    Audit {
        /// The receipt folder.
        dir: PathBuf,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Change every item the proof binds (each output value, the input and its commitment, the
    /// weights, the circuit, the verifier key, proof bytes), in memory, and expect verify to
    /// reject each; change unbound fields and expect the verdict to stand. Exit 0 when all
    /// behave, 1 otherwise.
    #[command(name = "break-test")]
    BreakTest {
        /// The receipt folder.
        dir: PathBuf,
        /// Print one JSON document instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Export a verified receipt folder as JSON shaped after the ERC-7992 draft (ModelCommitment,
    /// inputCommitment, ABI-encoded output, proof). There is no EVM verifier for these proofs.
    Export {
        /// The format: ERC-7992 (the only one so far).
        #[arg(long, required = true)]
        erc7992: bool,
        /// The receipt folder.
        dir: PathBuf,
    },
    /// Write a verifier's copy of a verified receipt folder with hashed weights: quantized.json
    /// without its weights (their widths kept), no model.onnx; the copy verifies like the
    /// original. Exit 0 written, 1 when a folder does not verify, 3 for fixed weights.
    Redact {
        /// The receipt folder (made with --param-visibility hashed).
        dir: PathBuf,
        /// Where to write the copy (an existing receipt folder there is replaced, and the
        /// report says so).
        #[arg(long)]
        out: PathBuf,
        /// Replace the folder at --out even when it holds files zkreceipt did not write there
        /// (without it, only an empty folder or one of zkreceipt's own is replaced).
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `zkreceipt completions bash > ~/.local/share/bash-completion/completions/zkreceipt`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout: `zkreceipt man > zkreceipt.1 && man ./zkreceipt.1`.
    /// With --out, write it and one page per command (zkreceipt-prove.1, …) into a folder.
    Man {
        /// The folder to write every page into.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Regenerate the inspector's screenshots (SVG, colours kept): proves the bundled digits
    /// sample with a fixed seed and renders every screen.
    Screenshots {
        /// Where to write them.
        #[arg(long, default_value = "screenshots")]
        out: PathBuf,
    },
    /// Measure the chain on models (default: the bundled samples): k, rows, columns, keygen,
    /// prove and verify seconds, proof bytes, peak memory, error.
    Bench {
        /// ONNX models, each followed by its --input.
        models: Vec<PathBuf>,
        /// Input JSON for each model, in the same order.
        #[arg(long)]
        input: Vec<PathBuf>,
        /// Runs per model; prove and verify report the median.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Instead: every model of a corpus folder with a census.json (e.g. ../shared/corpus/ezkl):
        /// preflight, float vs onnxruntime, quantize, compile, prove, verify.
        #[arg(long, conflicts_with_all = ["models", "input"])]
        corpus: Option<PathBuf>,
        /// Instead: time N proofs per model, as N separate `prove` runs and as `setup` plus one
        /// batch of N against the package (what proving many inputs with one key saves).
        #[arg(long, value_name = "N", conflicts_with = "corpus")]
        batch: Option<usize>,
        /// With --corpus: the largest k to prove at (larger circuits are compiled, not proved).
        #[arg(long, default_value_t = 16)]
        max_k: u32,
        /// Benchmark with the input public, hashed or private (not with --corpus).
        #[arg(
            long,
            default_value = "public",
            value_name = "public|hashed|private",
            conflicts_with = "corpus"
        )]
        input_visibility: Visibility,
        /// Benchmark with the weights fixed or hashed (not with --corpus).
        #[arg(
            long,
            default_value = "fixed",
            value_name = "fixed|hashed",
            conflicts_with = "corpus"
        )]
        param_visibility: ParamVisibility,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// How the input and the weights enter the proof.
#[derive(Args, Debug, Clone)]
pub struct DisclosureArgs {
    /// How the input enters the proof: public (its integers are public values), hashed (only
    /// its Poseidon digest is public; input.json is not copied into the folder), or private
    /// (bound to nothing public). Default: public; with a package, the package's.
    #[arg(long, value_name = "public|hashed|private")]
    pub input_visibility: Option<Visibility>,
    /// Secret salt for a hashed input (hex, up to 30 digits = 120 bits), so a low-entropy
    /// input cannot be found by hashing candidates. Keep it to open the commitment later.
    #[arg(long, value_parser = parse_salt)]
    pub salt: Option<i128>,
    /// How the weights, biases and constants enter the proof: fixed (columns of the circuit,
    /// part of the verifier key) or hashed (private cells; only their Poseidon digest is public,
    /// and the verifier key depends on the architecture alone). Default: fixed; with a package,
    /// the package's.
    #[arg(long, value_name = "fixed|hashed")]
    pub param_visibility: Option<ParamVisibility>,
}

/// What proving may cost.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Refuse circuits of more than 2^K rows (the time and memory of proving double with each
    /// step of k).
    #[arg(long, value_name = "K", default_value_t = crate::circuit::MAX_K)]
    pub max_k: u32,
    /// Prove even when the forecast peak memory exceeds the memory available (printed before
    /// parameters or keys are made).
    #[arg(long)]
    pub ignore_memory_forecast: bool,
}

impl DisclosureArgs {
    /// Prove options from these flags (visibility defaults: public input, fixed weights).
    pub fn options(&self, seed: Option<u64>, limits: &LimitArgs) -> ProveOptions {
        ProveOptions {
            input: self.input_visibility.unwrap_or_default(),
            params: self.param_visibility.unwrap_or_default(),
            salt: self.salt,
            rng: seed.map_or(ProofRng::Os, ProofRng::Seeded),
            max_k: limits.max_k,
            over_memory: limits.ignore_memory_forecast,
            force: false,
        }
    }
}

/// Quantization settings.
#[derive(Args, Debug, Clone)]
pub struct QuantArgs {
    /// Activation scale S (values are stored as round(x·2^S)); default: the largest ≤ 12 that
    /// keeps every activation, with one bit of headroom, within --activation-bits.
    #[arg(long)]
    pub scale: Option<u32>,
    /// Signed bits per quantized weight; each constant gets the largest scale that fits.
    /// Default: 16, or 20 where --target finds that more accurate within its budget.
    #[arg(long)]
    pub param_bits: Option<u32>,
    /// Signed bits an activation may use.
    #[arg(long, default_value_t = QuantConfig::default().activation_bits)]
    pub activation_bits: u32,
    /// What the scale and tables are chosen for: resources (the default scale, the smallest
    /// circuit), balanced (the most accurate that keeps k at most max(that k, 10), or 11 where that circuit has over 512 rows) or accuracy
    /// (the most accurate within two more k, or k 12). Each candidate scale is compiled and
    /// measured on the input; `run` and `prove` say what was chosen and why.
    #[arg(long, value_enum, default_value_t = TargetArg::Balanced)]
    pub target: TargetArg,
}

/// `--target` (see [`crate::quantize::Target`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetArg {
    Resources,
    Balanced,
    Accuracy,
}

impl From<TargetArg> for crate::quantize::Target {
    fn from(t: TargetArg) -> Self {
        match t {
            TargetArg::Resources => crate::quantize::Target::Resources,
            TargetArg::Balanced => crate::quantize::Target::Balanced,
            TargetArg::Accuracy => crate::quantize::Target::Accuracy,
        }
    }
}

impl QuantArgs {
    pub fn config(&self) -> QuantConfig {
        QuantConfig {
            scale: self.scale,
            param_bits: self.param_bits.unwrap_or(QuantConfig::default().param_bits),
            param_bits_given: self.param_bits.is_some(),
            activation_bits: self.activation_bits,
            target: self.target.into(),
            ..QuantConfig::default()
        }
    }
}

impl Cli {
    /// Whether the command writes JSON on stdout (`--json`, or `export`, whose output is JSON):
    /// its failures are then a JSON document there too.
    pub fn json_output(&self) -> bool {
        match &self.command {
            None
            | Some(Command::Inspect { .. })
            | Some(Command::Redact { .. })
            | Some(Command::Screenshots { .. })
            | Some(Command::Completions { .. })
            | Some(Command::Man { .. }) => false,
            Some(Command::Export { .. }) => true,
            Some(
                Command::Model { json, .. }
                | Command::Run { json, .. }
                | Command::Prove { json, .. }
                | Command::Setup { json, .. }
                | Command::Verify { json, .. }
                | Command::Audit { json, .. }
                | Command::BreakTest { json, .. }
                | Command::Bench { json, .. },
            ) => *json,
        }
    }
}

pub fn print_json<T: Serialize>(v: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

/// Run a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let Some(command) = cli.command else {
        crate::tui::need_terminal()?;
        return crate::tui::run(
            crate::tui::default_source()?,
            Some(crate::tui::DEFAULT_TITLE.into()),
        );
    };
    match command {
        Command::Inspect { target, input } => {
            // The arguments first (a bad folder is exit 3 anywhere), then the terminal.
            let source = crate::tui::inspect_source(&target, input.as_deref())?;
            crate::tui::need_terminal()?;
            crate::tui::run(source, None)
        }
        Command::Model { model, json } => cmd_model(&model, json),
        Command::Run {
            model,
            input,
            calibration,
            quant,
            json,
        } => match input {
            Some(input) => cmd_run(&model, &input, &quant.config(), json),
            None => package::cmd_run_data_set(&model, &calibration, &quant, json),
        },
        Command::Prove {
            model,
            input,
            out,
            quant,
            disclosure,
            force,
            seed,
            limits,
            json,
        } => {
            let opts = ProveOptions {
                force,
                ..disclosure.options(seed, &limits)
            };
            if crate::receipt::package::Package::is_package(&model) {
                return package::cmd_prove_package(
                    &model,
                    &input,
                    &out,
                    &quant,
                    &disclosure,
                    &opts,
                    json,
                );
            }
            let [input] = &input[..] else {
                return Err(crate::error::Error::Usage(
                    "several inputs are proved against a package: make one with `zkreceipt setup MODEL --calibration DATA --out PKG`, then `zkreceipt prove PKG --input ...`".into(),
                ));
            };
            let progress = &mut stderr_progress();
            let p = prove_folder(&model, input, &out, &quant.config(), &opts, progress)?;
            print_proved(&p, json);
            Ok(0)
        }
        Command::Setup {
            model,
            calibration,
            out,
            quant,
            margin,
            disclosure,
            salted,
            force,
            limits,
            json,
        } => {
            let mut opts = ProveOptions {
                force,
                ..disclosure.options(None, &limits)
            };
            if salted {
                opts.salt = Some(0);
            }
            let cfg = QuantConfig {
                margin,
                ..quant.config()
            };
            package::cmd_setup(&model, &calibration, &out, &cfg, &opts, json)
        }
        Command::Verify { receipt, json } => cmd_verify(&receipt, json),
        Command::Audit { dir, json } => cmd_audit(&dir, json),
        Command::BreakTest { dir, json } => cmd_break_test(&dir, json),
        Command::Export { erc7992: _, dir } => cmd_export(&dir),
        Command::Redact { dir, out, force } => cmd_redact(&dir, &out, force),
        Command::Screenshots { out } => generated::cmd_screenshots(&out),
        Command::Completions { shell } => generated::cmd_completions(shell),
        Command::Man { out } => generated::cmd_man(out.as_deref()),
        Command::Bench {
            models,
            input,
            runs,
            corpus,
            batch,
            max_k,
            input_visibility,
            param_visibility,
            json,
        } => {
            if let Some(n) = batch {
                return bench::cmd_batch(&models, &input, n, json);
            }
            let dis = crate::circuit::Disclosure {
                input: input_visibility,
                params: param_visibility,
                salt: None,
            };
            match corpus {
                Some(dir) => bench::cmd_corpus(&dir, max_k, json),
                None => bench::cmd_bench(&models, &input, runs, dis, json),
            }
        }
    }
}

/// Progress on stderr: elapsed seconds and the stage.
pub fn stderr_progress() -> impl FnMut(&str) {
    let start = std::time::Instant::now();
    move |stage: &str| eprintln!("[{:>6.1}s] {stage}", start.elapsed().as_secs_f64())
}

/// A proved receipt: one JSON document, or the report.
pub fn print_proved(p: &crate::receipt::Proved, json: bool) {
    let r = &p.receipt;
    if p.replaced {
        eprintln!("replaced the existing receipt folder {}", p.dir.display());
    }
    if json {
        print_json(&json!({
            "out": p.dir,
            "replaced": p.replaced,
            "receipt": r,
            "circuit": {
                "k": p.circuit.k,
                "rows": p.circuit.rows,
                "advice_columns": p.circuit.advice_columns,
                "lanes": p.circuit.layout.lanes,
                "lane_groups": p.circuit.layout.groups,
            },
            "timings": p.timings,
            "precision": p.precision,
        }));
        return;
    }
    println!("receipt   {}", p.dir.display());
    println!("statement {}", r.statement);
    if let Some(c) = &p.precision {
        println!("precision {}", c.why);
    }
    println!(
        "circuit   k={} · {} rows used of {} · {} advice columns ({}) · {} lookup table rows",
        p.circuit.k,
        p.circuit.rows,
        1u64 << p.circuit.k,
        p.circuit.advice_columns,
        p.circuit.layout.lanes_text(),
        p.circuit.table_rows
    );
    println!("vk        sha256 {}", r.verifier.vk_sha256);
    let ic = &r.input_commitment;
    println!(
        "input     {}{}",
        ic.visibility.name(),
        match ic.visibility {
            Visibility::Public => format!(" · sha256 {}", ic.value),
            Visibility::Hashed => format!(
                " · Poseidon digest {}{} · input.json not copied into the folder",
                ic.value,
                if ic.salted {
                    " (salted)"
                } else {
                    " (unsalted: a guessable input can be found by hashing candidates)"
                }
            ),
            Visibility::Private =>
                " · bound to nothing public; input.json not copied into the folder".into(),
        }
    );
    let mc = &r.model_commitment;
    println!(
        "weights   {}{}",
        mc.param_visibility.name(),
        match mc.param_visibility {
            ParamVisibility::Fixed => " · in the verifier key".to_string(),
            ParamVisibility::Hashed => format!(
                " · Poseidon digest {} · {} integers in {} tensors",
                mc.weights_commitment,
                p.circuit.param_tensors.iter().map(|t| t.len).sum::<usize>(),
                p.circuit.param_tensors.len()
            ),
        }
    );
    println!(
        "proof     {} bytes · sha256 {}",
        r.proof.bytes, r.proof.sha256
    );
    let t = &p.timings;
    println!(
        "time      params {:.2}s · keygen {:.2}s · prove {:.2}s · verify {:.3}s",
        t.params_s, t.keygen_s, t.prove_s, t.verify_s
    );
    for o in &r.output {
        let shown: Vec<String> = o
            .floats
            .iter()
            .take(10)
            .map(|x| format!("{x:.4}"))
            .collect();
        println!(
            "output    `{}` {:?}: [{}{}]",
            o.name,
            o.shape,
            shown.join(", "),
            if o.floats.len() > 10 { ", …" } else { "" }
        );
    }
    println!(
        "error     max abs {:.3e} vs float (tract){}",
        r.quantization.max_abs_error,
        match r.quantization.argmax_agree {
            Some(true) => " · argmax agrees",
            Some(false) => " · argmax DISAGREES",
            None => "",
        }
    );
}

/// A hash as the reports show it: its first 12 characters.
fn short(h: &str) -> &str {
    crate::model::short_hash(h, 12)
}

/// A plain left-aligned table with two-space gutters.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("  {}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect());
    }
}
