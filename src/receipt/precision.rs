//! The quantization a proof proves, chosen on purpose: precision against proof size.
//!
//! A finer activation scale shrinks the rounding error of every op (2× per bit) and costs no
//! rows where only range checks of a fixed width see it; it costs rows where tables grow with
//! it or rescales check more bits, and fails where an activation no longer fits the budget. So
//! each candidate is quantized, compiled (for k) and evaluated against the float run: every
//! scale from the default up to the finest that fits, with 16- and 20-bit weights (unless
//! `--param-bits` fixes them), with interpolated, exact, and finer-input interpolated tables, and,
//! where the calibration is the proven input alone, without the calibration margin once the
//! activations fill their bits. The most accurate within the target's k budget is kept:
//! - `resources`: the default scale and weights; other tables only where they cost no larger k;
//! - `balanced` (default): no larger k than `resources`, or up to k = 10 (proofs of a few
//!   hundred milliseconds), whichever is larger; up to 11 where `resources`' own rows need 10
//!   bits (more than 512: the work, not a table, would then set k = 11);
//! - `accuracy`: up to two more than `resources`' k, or up to k = 12.

use serde::Serialize;

use super::*;
use crate::model::FloatRun;
use crate::quantize::pipeline::QuantizedRun;
use crate::quantize::report::{OutputReport, analyze, output_reports};
use crate::quantize::{QOp, Target};

/// The finest activation scale tried.
const FINEST: u32 = 20;
/// The finer weights tried beside the default 16 bits (with a scale of up to 2^20).
const FINE_PARAM_BITS: u32 = 20;
/// Balanced proofs may grow to this k (a proof of a few hundred milliseconds), or one more where
/// the default's rows already fill more than half of it: wide lane shapes fit some models in
/// k = 10 whose finer scales need 11, and a budget of 10 would cost them the accuracy that their
/// rows, by the measure "k ≤ ⌈log2 rows⌉ + 1", are entitled to.
const BALANCED_K: u32 = 10;
/// Accuracy may grow k to this, or by two.
const ACCURACY_K: u32 = 12;

/// Where a scan of the scales stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reached {
    /// At this scale the activations fill their bits.
    Fit(u32),
    /// Over the k budget.
    Budget,
}

type Tried = Vec<(Candidate, QuantizedModel)>;

/// Try `base` at each automatic scale bound from `from` to `to` (with its table variants where
/// it has interpolated tables), until the scale stops growing or k leaves the budget.
fn scan(
    base: &QuantConfig,
    from: u32,
    to: u32,
    budget: u32,
    try_one: &mut impl FnMut(&QuantConfig) -> Option<(Candidate, QuantizedModel)>,
    tried: &mut Tried,
) -> Option<Reached> {
    let interpolated =
        |q: &QuantizedModel| q.nodes.iter().any(|n| matches!(n.op, QOp::Interp { .. }));
    let mut last_scale = None;
    // A table variant over budget at one scale is over it at every finer one.
    let (mut exact_over, mut fine_over) = (false, false);
    for max_scale in from..=to {
        let c = QuantConfig {
            max_scale,
            ..base.clone()
        };
        let Some(first) = try_one(&c) else {
            return last_scale.map(Reached::Fit);
        };
        // The scale stopped growing: the activations fill the budget.
        if last_scale == Some(first.0.scale) {
            return last_scale.map(Reached::Fit);
        }
        last_scale = Some(first.0.scale);
        // k only grows with the scale: finer scales would not fit either.
        if first.0.k > budget {
            tried.push(first);
            return Some(Reached::Budget);
        }
        // Tables: exact, and interpolated with finer inputs.
        let mut variants = vec![];
        if interpolated(&first.1) && !exact_over {
            variants.push(QuantConfig {
                exact_tables: true,
                ..c.clone()
            });
        }
        if interpolated(&first.1) && !fine_over {
            variants.push(QuantConfig {
                fine_tables: true,
                ..c.clone()
            });
        }
        tried.push(first);
        for v in variants {
            if let Some(t) = try_one(&v) {
                if t.0.k > budget {
                    exact_over |= v.exact_tables;
                    fine_over |= v.fine_tables;
                }
                tried.push(t);
            }
        }
    }
    last_scale.map(Reached::Fit)
}

/// One quantization tried.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub scale: u32,
    /// Signed bits of a weight.
    pub param_bits: u32,
    pub exact_tables: bool,
    pub fine_tables: bool,
    /// The calibration margin (1: the proven input's own range, no headroom).
    pub margin: f64,
    pub k: u32,
    /// max |circuit − float| / max(1, |float|) over the outputs, on this input.
    pub error: f64,
}

/// What the compiler chose, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub target: Target,
    /// The k every candidate had to stay within.
    pub k_budget: u32,
    pub chosen: Candidate,
    pub candidates: Vec<Candidate>,
    pub why: String,
}

/// The relative error the corpus measures: per output, max |error| / max(1, max |float|).
pub fn relative_error(outputs: &[OutputReport]) -> f64 {
    outputs
        .iter()
        .map(|o| {
            let size = o.float.iter().fold(1f64, |m, v| m.max(v.abs()));
            o.max_abs_error / size
        })
        .fold(0.0, f64::max)
}

/// The error of `qm` on one input (`floats`, whose float run is `float`): the outputs'
/// [`relative_error`], as [`analyze`] would report it without re-running each layer alone; with
/// the integer values, for the activation budget.
pub fn error_on(
    model: &Model,
    qm: &QuantizedModel,
    floats: &[Tensor<f64>],
    float: &FloatRun,
) -> Result<(f64, Vec<Tensor<i64>>)> {
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    let values = qm.evaluate(&qm.quantize_inputs(floats, &names)?)?;
    let outputs = output_reports(model, qm, float, &values)?;
    Ok((relative_error(&outputs), values))
}

/// Replace `run`'s quantization by the most accurate candidate within its target's budget, and
/// say what was chosen. An explicit `--scale` is kept as given (only the tables are chosen).
pub fn choose(
    run: &mut QuantizedRun,
    dis: Disclosure,
    progress: &mut dyn FnMut(&str),
) -> Result<Choice> {
    let base_error = relative_error(&run.report.outputs);
    let (choice, qm) = {
        let run: &QuantizedRun = run;
        choose_among(&run.qm, base_error, dis, true, progress, |c| {
            let qm = crate::quantize::quantize(&run.model, &run.floats, &run.float, c).ok()?;
            let (error, values) = error_on(&run.model, &qm, &run.floats, &run.float).ok()?;
            qm.check_activation_budget(&values).ok()?;
            Some((qm, error))
        })?
    };
    if let Some(qm) = qm {
        let names: Vec<String> = run.model.inputs.iter().map(|i| i.name.clone()).collect();
        run.report = analyze(&run.model, &qm, &run.floats, &run.float)?;
        run.inputs = qm.quantize_inputs(&run.floats, &names)?;
        run.qm = qm;
    }
    Ok(choice)
}

/// The most accurate of the candidates `attempt` makes (a quantized model and its error, or
/// `None` where the configuration does not quantize within the budget) for each scale from
/// `base`'s up, with interpolated and exact tables, within the k budget of `base`'s target.
/// `tight`: the calibration is the proven input alone, so a margin-1 candidate is tried where
/// the activations limit the scale. The model is `None` when `base` stays.
pub fn choose_among(
    base: &QuantizedModel,
    base_error: f64,
    dis: Disclosure,
    tight: bool,
    progress: &mut dyn FnMut(&str),
    mut attempt: impl FnMut(&QuantConfig) -> Option<(QuantizedModel, f64)>,
) -> Result<(Choice, Option<QuantizedModel>)> {
    let cfg = base.config.clone();
    let k_of = |q: &QuantizedModel| circuit::compile_as(q, dis, None).map(|c| c.info.k).ok();
    let (base_k, base_rows) = circuit::compile_as(base, dis, None)
        .map(|c| (c.info.k, c.info.rows))
        .map_err(|_| Error::Internal("the default quantization does not compile".into()))?;
    let mut tried: Tried = vec![];
    let mut try_one = |c: &QuantConfig| -> Option<(Candidate, QuantizedModel)> {
        let (qm, error) = attempt(c)?;
        // `base`'s own configuration quantizes to `base`: its k is known.
        let k = if *c == cfg { base_k } else { k_of(&qm)? };
        progress(&format!(
            "precision: scale 2^{}, {}-bit weights{} → k={k}, error {error:.1e}",
            qm.scale,
            c.param_bits,
            match (c.exact_tables, c.fine_tables) {
                (true, _) => ", exact tables",
                (_, true) => ", finer tables",
                _ => "",
            },
        ));
        let cand = Candidate {
            scale: qm.scale,
            param_bits: c.param_bits,
            exact_tables: c.exact_tables,
            fine_tables: c.fine_tables,
            margin: c.margin,
            k,
            error,
        };
        Some((cand, qm))
    };
    let finest = match (cfg.target, cfg.scale) {
        (Target::Resources, _) | (_, Some(_)) => cfg.max_scale,
        _ => FINEST.max(cfg.max_scale),
    };
    let budget = match cfg.target {
        Target::Resources => base_k,
        Target::Balanced => {
            let work_k = base_rows.max(1).next_power_of_two().trailing_zeros() + 1;
            base_k.max(BALANCED_K).max(work_k.min(BALANCED_K + 1))
        }
        Target::Accuracy => (base_k + 2).max(ACCURACY_K),
    };
    // Finer weights where the target allows a search and --param-bits did not fix them.
    let mut params = vec![cfg.param_bits];
    if cfg.target != Target::Resources && !cfg.param_bits_given && cfg.param_bits < FINE_PARAM_BITS
    {
        params.push(FINE_PARAM_BITS);
    }
    for param_bits in params {
        let weights = QuantConfig {
            param_bits,
            max_param_scale: cfg.max_param_scale.max(param_bits),
            exact_tables: false,
            fine_tables: false,
            ..cfg.clone()
        };
        let reached = scan(
            &weights,
            cfg.max_scale,
            finest,
            budget,
            &mut try_one,
            &mut tried,
        );
        // Calibrated on the proven input alone, the margin guards no other input: without
        // it, one more bit may fit where the activations set the scale.
        if let (true, Some(Reached::Fit(s))) = (tight, reached)
            && cfg.margin > 1.0
        {
            let tight_cfg = QuantConfig {
                margin: 1.0,
                ..weights
            };
            scan(&tight_cfg, s + 1, finest, budget, &mut try_one, &mut tried);
        }
    }
    // The most accurate within budget; on a tie (within 1%), the smaller k, then the coarser.
    let best = tried
        .iter()
        .enumerate()
        .filter(|(_, t)| t.0.k <= budget)
        .min_by(|(_, a), (_, b)| {
            let (a, b) = (&a.0, &b.0);
            if (a.error - b.error).abs() <= 0.01 * a.error.max(b.error) {
                (a.k, a.param_bits, a.scale).cmp(&(b.k, b.param_bits, b.scale))
            } else {
                a.error.total_cmp(&b.error)
            }
        })
        .map(|(i, _)| i);
    let candidates: Vec<Candidate> = tried.iter().map(|t| t.0.clone()).collect();
    let base_candidate = Candidate {
        scale: base.scale,
        param_bits: cfg.param_bits,
        exact_tables: cfg.exact_tables,
        fine_tables: cfg.fine_tables,
        margin: cfg.margin,
        k: base_k,
        error: base_error,
    };
    let Some(i) = best else {
        let choice = Choice {
            target: cfg.target,
            k_budget: budget,
            chosen: base_candidate,
            candidates,
            why: "no other candidate quantized: the default stands".into(),
        };
        return Ok((choice, None));
    };
    let (chosen, qm) = tried.swap_remove(i);
    let why = format!(
        "{}: the smallest error of {} candidates with k ≤ {budget}: scale 2^{}{}, {}-bit weights{}, \
         k={}, error {:.1e} (the default scale 2^{}: k={base_k}, error {:.1e})",
        cfg.target.name(),
        candidates.len(),
        chosen.scale,
        if chosen.margin == 1.0 && cfg.margin != 1.0 {
            " (no headroom: the activations of this input fill their bits)"
        } else {
            ""
        },
        chosen.param_bits,
        match (chosen.exact_tables, chosen.fine_tables) {
            (true, _) => ", exact tables",
            (_, true) => ", interpolated tables of finer input",
            _ => "",
        },
        chosen.k,
        chosen.error,
        base_candidate.scale,
        base_error,
    );
    let choice = Choice {
        target: cfg.target,
        k_budget: budget,
        chosen,
        candidates,
        why,
    };
    Ok((choice, Some(qm)))
}
