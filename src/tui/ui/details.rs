//! The details pane: one function per link of the chain, and the reviewer's checklist.

use super::*;
use crate::quantize::dataset::DataSetReport;
use crate::tui::jobs::Loaded;

pub(super) fn details(app: &App, f: &mut Frame, area: Rect) {
    let title = format!(" {} ", app.selected.name());
    let block = pane_block(title, app.pane == Pane::Details);
    let Some(l) = &app.loaded else {
        let mut lines = vec![Line::from(if app.error.is_some() {
            "Nothing is open. Press p to try again, q to quit."
        } else {
            "Opening the receipt chain: see the progress below."
        })];
        lines.push(Line::from(""));
        lines.extend(error_lines(app));
        f.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            area,
        );
        return;
    };
    let qm = &l.folder.qm;
    let w = area.width.saturating_sub(4) as usize;
    let mut lines = match app.selected {
        ChainLink::FloatOnnx if qm.redacted.is_some() => float_onnx_redacted_lines(l),
        ChainLink::FloatOnnx => float_onnx_lines(l),
        ChainLink::Quantized => quantized_lines(l, w),
        ChainLink::Circuit => circuit_lines(l, w),
        ChainLink::VerifierKey => verifier_key_lines(l),
        ChainLink::Proof => proof_lines(app, l),
        ChainLink::Receipt => receipt_lines(app, l),
    };
    lines.extend(audit_lines(app));
    if app.error.is_some() {
        let mut first: Vec<Line> = error_lines(app);
        first.push(Line::from(""));
        first.append(&mut lines);
        lines = first;
    }
    super::render_pane(app, Pane::Details, lines, block, f, area);
}

/// The last error in full (the status line has room for its start only), one line per line.
fn error_lines(app: &App) -> Vec<Line<'static>> {
    app.error
        .iter()
        .flat_map(|e| {
            format!("error: {e}")
                .lines()
                .map(|l| Line::from(l.to_string()).red())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The details of the float onnx link (a redacted folder).
fn float_onnx_redacted_lines<'a>(l: &'a Loaded) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let r = &l.folder.receipt;

    lines.push(kv("sha256", r.model_commitment.onnx_sha256.clone()));
    lines.push(Line::from(""));
    lines.push(Line::from(
            "Redacted folder: model.onnx and the weights stay with their owner. The proof binds the weights to the weights commitment; quantized.json keeps the architecture and each parameter tensor's width.",
        ));

    lines
}

/// The details of the float onnx link.
fn float_onnx_lines<'a>(l: &'a Loaded) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let r = &l.folder.receipt;

    lines.push(kv("sha256", r.model_commitment.onnx_sha256.clone()));
    lines.push(kv(
        "file",
        format!("{} bytes · opset {}", l.onnx_bytes, l.opset),
    ));
    lines.push(kv("parameters", l.params.to_string()));
    for i in &l.inputs {
        lines.push(kv("input", i.clone()));
    }
    for o in &l.outputs {
        lines.push(kv("output", o.clone()));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(format!("{} nodes:", l.ops.len())).bold());
    for op in &l.ops {
        lines.push(Line::from(format!("  {:<12} {}", op.op_type, op.name)));
    }

    lines
}

/// The details of the quantized link.
fn quantized_lines<'a>(l: &'a Loaded, w: usize) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let r = &l.folder.receipt;
    let qm = &l.folder.qm;

    lines.push(kv("sha256", r.model_commitment.quantized_sha256.clone()));
    lines.push(kv(
        "scale",
        format!(
            "activations 2^{} · ≤ {} bits · weights ≤ {} bits",
            qm.scale, qm.config.activation_bits, qm.config.param_bits
        ),
    ));
    lines.push(kv("rounding", "rescale: nearest, ties toward +∞"));
    lines.push(Line::from(""));
    match &l.report {
        Some(rep) => {
            // The rest of a row takes 45 columns.
            let nw = name_width(
                rep.layers.iter().map(|l| l.node.as_str()),
                13,
                w.saturating_sub(46),
            );
            lines.push(
                Line::from(format!(
                    "{:<nw$} range             bits  headroom  max err",
                    "node"
                ))
                .bold(),
            );
            for layer in &rep.layers {
                lines.push(Line::from(format!(
                    "{:<nw$} [{}, {}]{}{:>2}/{:<2}  {:>5}     {:.1e}",
                    trunc(&layer.node, nw),
                    layer.range.0,
                    layer.range.1,
                    " ".repeat(
                        16usize.saturating_sub(
                            format!("[{}, {}]", layer.range.0, layer.range.1).len()
                        )
                    ),
                    layer.bits,
                    qm.config.activation_bits,
                    layer.headroom_bits,
                    layer.max_abs_error
                )));
            }
        }
        None => {
            lines.push(Line::from("value         range (calibration)").bold());
            for v in qm.values.iter().filter(|v| v.onnx.is_some()) {
                lines.push(Line::from(format!(
                    "{:<13} [{}, {}]",
                    trunc(&v.name, 13),
                    v.range.0,
                    v.range.1
                )));
            }
        }
    }
    if let Some(g) = &l.folder.calibration {
        data_set_lines(g, &mut lines);
    }
    lines
}

/// A package's data-set report: the gap over its calibration data, marked as the prover's
/// figures (the proof binds none of them).
fn data_set_lines(g: &DataSetReport, lines: &mut Vec<Line<'_>>) {
    lines.push(Line::from(""));
    lines.push(
        Line::from(format!(
            "data set: {} calibration samples, margin {}× (calibration.json; unbound: the prover's report)",
            g.samples, g.margin
        ))
        .bold(),
    );
    let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
    for o in &g.outputs {
        lines.push(Line::from(format!(
            "{:<13} max err {:.1e} · mean {:.1e} · argmax agrees {}{}",
            trunc(&o.name, 13),
            o.max_abs_error,
            o.mean_abs_error,
            pct(o.argmax_agreement),
            if o.labelled > 0 {
                format!(
                    " · accuracy {} float, {} circuit ({} labelled)",
                    pct(o.float_accuracy),
                    pct(o.quantized_accuracy),
                    o.labelled
                )
            } else {
                String::new()
            }
        )));
    }
    lines.push(Line::from("layer         err median  p99      max      spare bits").bold());
    for layer in &g.layers {
        lines.push(Line::from(format!(
            "{:<13} {:<11.1e} {:<8.1e} {:<8.1e} {}",
            trunc(&layer.node, 13),
            layer.error.median,
            layer.error.p99,
            layer.error.max,
            layer.headroom_bits
        )));
    }
}

/// The details of the circuit link.
fn circuit_lines<'a>(l: &'a Loaded, w: usize) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let c = &l.folder.circuit;

    let total = 1u64 << c.k;
    lines.push(kv(
        "k",
        format!(
            "{} · {} of {} rows used ({:.0}%)",
            c.k,
            c.rows,
            total,
            100.0 * c.rows as f64 / total as f64
        ),
    ));
    lines.push(kv("set by", l.k_reason.clone()));
    let fc = &l.forecast;
    lines.push(kv(
        "cost",
        format!(
            "at k={}: keygen ~{:.1} s, prove ~{:.1} s, peak memory ~{:.0} MiB (forecast from \
             the layout; each step of k doubles it)",
            fc.k, fc.keygen_s, fc.prove_s, fc.peak_mib
        ),
    ));
    lines.push(kv(
        "columns",
        format!(
            "{} advice ({}) · {} fixed · {} inst",
            c.advice_columns,
            c.layout.lanes_text(),
            c.fixed_columns,
            c.instance_columns
        ),
    ));
    lines.push(kv(
        "lookups",
        format!("{} ({} table rows)", c.lookups, c.table_rows),
    ));
    lines.push(kv("input", c.layout.input.name()));
    lines.push(kv("gates", c.gates.join(", ")));
    lines.push(Line::from(""));
    lines.push(Line::from("rows per node").bold());
    let max = c
        .rows_per_node
        .iter()
        .map(|n| n.rows)
        .max()
        .unwrap_or(1)
        .max(1);
    // A row: the name, 8 columns of count, a bar of at least 8.
    let nw = name_width(
        c.rows_per_node.iter().map(|n| n.node.as_str()),
        16,
        w.saturating_sub(17),
    );
    let bw = w.saturating_sub(nw + 14).max(5);
    for n in &c.rows_per_node {
        lines.push(Line::from(format!(
            "{:<nw$} {:>6} {}",
            trunc(&n.node, nw),
            n.rows,
            bar(n.rows as f64 / max as f64, bw)
        )));
    }

    lines
}

/// The details of the verifier key link.
fn verifier_key_lines<'a>(l: &'a Loaded) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let r = &l.folder.receipt;

    lines.push(kv("sha256", r.verifier.vk_sha256.clone()));
    lines.push(kv(
        "pinned form",
        format!("vk.txt, {} bytes", l.folder.vk_txt.len()),
    ));
    lines.push(kv("k", r.verifier.k.to_string()));
    lines.push(kv(
        "versions",
        format!(
            "zkreceipt {} · halo2_proofs {} · circuit format {}",
            r.verifier.zkreceipt_version,
            r.verifier.halo2_proofs_version,
            r.verifier.circuit_format
        ),
    ));
    lines.push(Line::from(""));
    lines.push(Line::from(
            "halo2_proofs 0.4.1 cannot serialize keys: verify re-derives the key from quantized.json and circuit.json and checks it against this hash.",
        ));

    lines
}

/// The details of the proof link.
fn proof_lines<'a>(app: &'a App, l: &'a Loaded) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let r = &l.folder.receipt;

    lines.push(kv("system", r.proof.system.clone()));
    lines.push(kv("transcript", r.proof.transcript.clone()));
    lines.push(kv("size", format!("{} bytes", r.proof.bytes)));
    lines.push(kv(
        "proving time",
        format!("{:.3}s (the prover's report, unbound)", r.proof.prove_s),
    ));
    lines.push(kv("sha256", r.proof.sha256.clone()));
    if let Some((ok, reason, secs)) = &app.verdict {
        lines.push(Line::from(""));
        lines.push(if *ok {
            Line::from(format!("verified in {secs:.3}s")).green().bold()
        } else {
            Line::from(format!("REJECTED: {}", reason.clone().unwrap_or_default()))
                .red()
                .bold()
        });
    }

    lines
}

/// The details of the receipt link.
fn receipt_lines<'a>(app: &'a App, l: &'a Loaded) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = vec![];
    let r = &l.folder.receipt;

    lines.push(Line::from("statement").bold());
    lines.push(Line::from(r.statement.clone()));
    lines.push(Line::from(""));
    let ic = &r.input_commitment;
    for (k, v) in [
        (
            "model_commitment",
            match r.model_commitment.param_visibility {
                ParamVisibility::Fixed => format!(
                    "onnx {}…, weights fixed in the vk",
                    short(&r.model_commitment.onnx_sha256)
                ),
                ParamVisibility::Hashed => format!(
                    "onnx {}…, weights hashed {}…",
                    short(&r.model_commitment.onnx_sha256),
                    short(&r.model_commitment.weights_commitment)
                ),
            },
        ),
        (
            "input_commitment",
            match ic.visibility {
                Visibility::Private => "private: bound to nothing public".into(),
                v => format!("{} {}…", v.name(), short(&ic.value)),
            },
        ),
        (
            "output",
            r.output
                .iter()
                .map(|o| format!("{} {:?} at 2^{}", o.name, o.shape, o.scale))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "proof",
            format!(
                "{} bytes, sha256 {}…",
                r.proof.bytes,
                short(&r.proof.sha256)
            ),
        ),
        (
            "verifier",
            format!("vk {}… k={}", short(&r.verifier.vk_sha256), r.verifier.k),
        ),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:<17}"), Style::new().fg(Color::Cyan).bold()),
            Span::raw(v),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("not claimed").bold());
    for n in &r.not_claimed {
        lines.push(Line::from(format!("• {n}")));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("not bound (verify accepts any value)").bold());
    for u in crate::receipt::Unbound::ALL {
        lines.push(Line::from(format!("• {}: {}", u.field(), u.why())));
    }
    lines.push(Line::from(""));
    lines.extend(checklist(app));
    // The receipt itself, its six bound fields highlighted (↑/↓ scrolls).
    lines.push(Line::from(""));
    lines.push(Line::from("receipt.json").bold());
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    const SIX: [&str; 6] = [
        "\"model_commitment\"",
        "\"input_commitment\"",
        "\"output\"",
        "\"proof\"",
        "\"verifier\"",
        "\"statement\"",
    ];
    for l in json.lines() {
        let top = l.strip_prefix("  ").filter(|t| !t.starts_with(' '));
        let key = top.is_some_and(|t| SIX.iter().any(|k| t.starts_with(k)));
        lines.push(if key {
            Line::from(l.to_string()).fg(Color::Cyan).bold()
        } else {
            Line::from(l.to_string())
        });
    }

    lines
}

/// The audit's verdict on every check that derives the selected link (on the receipt: every
/// check), with its reason: what `a` established, link by link.
fn audit_lines(app: &App) -> Vec<Line<'static>> {
    let Some(a) = &app.audit else { return vec![] };
    let of: Vec<_> = a
        .links
        .iter()
        .filter(|l| app.selected == ChainLink::Receipt || l.stage == app.selected)
        .collect();
    if of.is_empty() {
        return vec![];
    }
    let mut lines = vec![Line::from(""), Line::from("audit").bold()];
    for l in of {
        let mark = if l.skipped {
            Mark::Skipped
        } else if l.holds {
            Mark::Holds
        } else {
            Mark::Broken
        };
        let verdict = match mark {
            Mark::Holds => "holds",
            Mark::Broken => "BROKEN",
            _ => "skipped",
        };
        lines.push(mark.line(format!("{}: {verdict}: {}", l.link, l.detail)));
    }
    lines
}

/// What a checklist line says was established since the folder was opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mark {
    /// A check ran and holds.
    Holds,
    /// A check ran and failed.
    Broken,
    /// No check has run yet (the key in the text runs one).
    Unchecked,
    /// The audit could not check it here (a redacted folder, a hidden input).
    Skipped,
    /// No check can establish it: the prover's report, or bound to nothing.
    Unbound,
}

impl Mark {
    fn line(self, text: String) -> Line<'static> {
        let (sym, style) = match self {
            Mark::Holds => ("✓", Style::new().fg(Color::Green)),
            Mark::Broken => ("✗", Style::new().fg(Color::Red)),
            Mark::Unchecked => ("?", Style::new().fg(Color::Yellow)),
            Mark::Skipped | Mark::Unbound => ("–", Style::new().fg(Color::Gray)),
        };
        Line::from(vec![
            Span::styled(format!("{sym} "), style),
            Span::raw(text),
        ])
    }

    /// The audit's verdict on a chain link.
    fn of_audit(app: &App, link: ChainLink) -> Mark {
        match app.audit.as_ref().and_then(|a| a.verdict_at(link)) {
            None => Mark::Unchecked,
            Some(None) => Mark::Skipped,
            Some(Some(true)) => Mark::Holds,
            Some(Some(false)) => Mark::Broken,
        }
    }

    /// The audit's verdict on the check named `name`.
    fn of_audit_check(app: &App, name: &str) -> Mark {
        match app
            .audit
            .as_ref()
            .and_then(|a| a.links.iter().find(|l| l.link == name))
        {
            None => Mark::Unchecked,
            Some(l) if l.skipped => Mark::Skipped,
            Some(l) if l.holds => Mark::Holds,
            Some(_) => Mark::Broken,
        }
    }

    /// A verdict from `verify` or the audit, whichever ran (a failure of either wins).
    fn either(a: Mark, b: Mark) -> Mark {
        use Mark::*;
        match (a, b) {
            (Broken, _) | (_, Broken) => Broken,
            (Holds, _) | (_, Holds) => Holds,
            (Skipped, _) | (_, Skipped) => Skipped,
            _ => Unchecked,
        }
    }

    /// Every one of several verdicts (all must hold).
    fn all(marks: &[Mark]) -> Mark {
        use Mark::*;
        [Broken, Unchecked, Skipped, Unbound]
            .into_iter()
            .find(|m| marks.contains(m))
            .unwrap_or(Holds)
    }
}

/// The reviewer's checklist: ticked only for what a check (`v` verify, `a` audit) established
/// since the folder was opened; the prover's own figures and unbound items are marked `–`.
fn checklist(app: &App) -> Vec<Line<'static>> {
    let Some(l) = &app.loaded else { return vec![] };
    let r = &l.folder.receipt;
    let verified = match &app.verdict {
        None => Mark::Unchecked,
        Some((true, ..)) => Mark::Holds,
        Some((false, ..)) => Mark::Broken,
    };
    // `verify` re-derives the key and checks the proof against the receipt's public values;
    // the audit does that and more.
    let proof = Mark::either(verified, Mark::of_audit(app, ChainLink::Proof));
    let key = Mark::either(verified, Mark::of_audit(app, ChainLink::VerifierKey));
    let q = &r.quantization;
    let commitment = Mark::all(&[
        Mark::of_audit(app, ChainLink::Quantized),
        Mark::of_audit(app, ChainLink::Circuit),
        Mark::of_audit(app, ChainLink::VerifierKey),
    ]);
    let input = match r.input_commitment.visibility {
        Visibility::Private => Mark::Unbound,
        _ => proof,
    };
    let figures = match Mark::of_audit_check(app, crate::receipt::audit::OUTPUT_FIGURES) {
        Mark::Unchecked | Mark::Skipped => Mark::Unbound,
        m => m,
    };
    vec![
        Line::from("reviewer checklist").bold(),
        commitment.line(match r.model_commitment.param_visibility {
            ParamVisibility::Fixed => format!(
                "model and circuit commitment: weights fixed in the circuit, vk {}… (a: audit)",
                short(&r.verifier.vk_sha256)
            ),
            ParamVisibility::Hashed => format!(
                "model and circuit commitment: weights hashed to {}…, vk {}… (a: audit)",
                short(&r.model_commitment.weights_commitment),
                short(&r.verifier.vk_sha256)
            ),
        }),
        input.line(match r.input_commitment.visibility {
            Visibility::Private => "input: private, bound to nothing public".to_string(),
            v => format!(
                "input commitment: {} ({}) (v: verify)",
                v.name(),
                r.input_commitment.covers
            ),
        }),
        proof.line(format!(
            "output bound: {} public output integers (v: verify)",
            r.output.iter().map(|o| o.integers.len()).sum::<usize>()
        )),
        key.line("verifier key re-derived from the circuit (v: verify)".into()),
        proof.line(format!(
            "proof checked by this verifier: halo2 IPA over Pasta, halo2_proofs {}, circuit format {}",
            r.verifier.halo2_proofs_version, r.verifier.circuit_format
        )),
        figures.line(format!(
            "quantization figures{}: scale 2^{}, max abs error {:.1e} vs float{}",
            if figures == Mark::Unbound {
                " (the prover's report, unbound; a: audit re-computes them)"
            } else {
                " (re-computed by the audit)"
            },
            q.activation_scale,
            q.max_abs_error,
            match q.argmax_agree {
                Some(true) => ", argmax agrees",
                Some(false) => ", argmax DISAGREES",
                None => "",
            }
        )),
        Line::from(format!(
            "· {} things the proof does not claim, listed above",
            r.not_claimed.len()
        )),
    ]
}
