//! The quantization-gap pane: float (tract) against the circuit's output, every element at its
//! tensor coordinates (sortable by error), the error in output steps, the top-2 margin, and the
//! per-layer error with the local error the `◀` marker refers to.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{bar, name_width, pane_block, render_pane, trunc};
use crate::quantize::report::{OutputReport, RunReport};
use crate::tui::app::{App, Pane};

pub(super) fn gap(app: &App, f: &mut Frame, area: Rect) {
    let title = if app.gap_sorted {
        " Quantization gap, largest error first "
    } else {
        " Quantization gap: float vs circuit "
    };
    let block = pane_block(title.into(), app.pane == Pane::Gap);
    let Some(l) = &app.loaded else {
        f.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let w = area.width.saturating_sub(4) as usize;
    let mut lines: Vec<Line> = vec![];
    match &l.report {
        Some(rep) => {
            for o in &rep.outputs {
                output_lines(o, app.gap_sorted, w, &mut lines);
            }
            layer_lines(rep, w, &mut lines);
        }
        None => {
            lines.push(Line::from(if l.folder.qm.redacted.is_some() {
                "The folder is redacted (no model.onnx), so the float model cannot be re-run here."
                    .to_string()
            } else {
                format!(
                    "The input is {} and not in the folder, so the float model cannot be re-run here.",
                    l.folder.receipt.input_commitment.visibility.name()
                )
            }));
            lines.push(Line::from(format!(
                "The receipt reports max abs error {:.2e} against float (the prover's report, unbound).",
                l.folder.receipt.quantization.max_abs_error
            )));
            lines.push(Line::from(""));
            for o in &l.folder.receipt.output {
                lines.push(Line::from(format!("circuit output `{}`", o.name)).bold());
                for (i, v) in o.floats.iter().enumerate() {
                    lines.push(Line::from(format!("{:>9} {v:>10.4}", coords(i, &o.shape))));
                }
            }
        }
    }
    render_pane(app, Pane::Gap, lines, block, f, area);
}

/// Element `i` of a row-major tensor of `shape`, as its coordinates: `[0,3]`.
pub(super) fn coords(i: usize, shape: &[usize]) -> String {
    let mut rest = i;
    let mut at = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        let n = n.max(1);
        at[d] = rest % n;
        rest /= n;
    }
    format!(
        "[{}]",
        at.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// One output: every element (by index, or by error), its error in output steps (LSB), the
/// error summary, the argmax, and the margin between the circuit's two largest values.
fn output_lines(o: &OutputReport, sorted: bool, w: usize, lines: &mut Vec<Line<'static>>) {
    lines.push(
        Line::from(format!(
            "output `{}` {:?} (scale 2^{})",
            o.name, o.shape, o.scale
        ))
        .bold(),
    );
    let max = o
        .float
        .iter()
        .chain(&o.quantized)
        .fold(0f64, |a, &x| a.max(x.abs()))
        .max(1e-12);
    let at_w = coords(o.float.len().saturating_sub(1), &o.shape)
        .len()
        .max(2);
    // Rows are the coordinates, 40 characters of figures, and the bar.
    let bw = w.saturating_sub(at_w + 40).clamp(1, 24);
    lines.push(
        Line::from(format!(
            "{:>at_w$} {:>9} {:>9}  {:<bw$} {:>8} {:>5}",
            "at",
            "float",
            "circuit",
            if bw >= 7 { "|value|" } else { "" },
            "abs err",
            "lsb"
        ))
        .fg(Color::Gray),
    );
    let step = 2f64.powi(-o.scale);
    let err = |i: usize| (o.float[i] - o.quantized[i]).abs();
    let mut order: Vec<usize> = (0..o.float.len().min(o.quantized.len())).collect();
    if sorted {
        order.sort_by(|&a, &b| err(b).total_cmp(&err(a)).then(a.cmp(&b)));
    }
    for i in order {
        let (fv, cv) = (o.float[i], o.quantized[i]);
        let line = Line::from(format!(
            "{:>at_w$} {:>9.4} {:>9.4}  {} {:>8.1e} {:>5.1}",
            coords(i, &o.shape),
            fv,
            cv,
            bar(cv.abs() / max, bw),
            err(i),
            err(i) / step
        ));
        let is_max = o.argmax.as_ref().is_some_and(|a| a.quantized == i);
        lines.push(if is_max {
            line.bold().fg(Color::Cyan)
        } else {
            line
        });
    }
    lines.push(Line::from(format!(
        "max abs {:.2e} ({:.1} output steps) · max rel {:.2e}",
        o.max_abs_error,
        o.max_abs_error / step,
        o.max_rel_error
    )));
    if let Some(a) = &o.argmax {
        let agree = if a.agree {
            Span::styled("argmax agrees", Style::new().fg(Color::Green).bold())
        } else {
            Span::styled("argmax DISAGREES", Style::new().fg(Color::Red).bold())
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "float {} · circuit {} · ",
                coords(a.float, &o.shape),
                coords(a.quantized, &o.shape)
            )),
            agree,
        ]));
    }
    if let Some(line) = top_two_margin(o) {
        lines.push(line);
    }
    lines.push(Line::from(""));
}

/// The circuit's two largest output integers and their difference: a tie (0) means the argmax
/// is decided by position, not by value.
fn top_two_margin(o: &OutputReport) -> Option<Line<'static>> {
    let mut idx: Vec<usize> = (0..o.integers.len()).collect();
    idx.sort_by(|&a, &b| o.integers[b].cmp(&o.integers[a]).then(a.cmp(&b)));
    let (&first, &second) = (idx.first()?, idx.get(1)?);
    let margin = o.integers[first] - o.integers[second];
    let text = format!(
        "top-2 margin (circuit): {:.4} at {} − {:.4} at {} = {} output steps",
        o.quantized[first],
        coords(first, &o.shape),
        o.quantized[second],
        coords(second, &o.shape),
        margin
    );
    Some(if margin == 0 {
        Line::from(format!("{text}: a TIE, the argmax is the first of equals"))
            .red()
            .bold()
    } else {
        Line::from(text)
    })
}

/// Per layer: the error of the chain up to it (log bar) and the error it adds alone (local),
/// `◀` where the local error is largest.
fn layer_lines(rep: &RunReport, w: usize, lines: &mut Vec<Line<'static>>) {
    lines.push(
        Line::from("per-layer max abs error (log scale, 1e-8 … 1) · local: this node alone").bold(),
    );
    // A row: the name, 27 columns of figures, a bar of at least 8.
    let nw = name_width(
        rep.layers.iter().map(|l| l.node.as_str()),
        12,
        w.saturating_sub(36),
    );
    let bw = w.saturating_sub(nw + 21).max(4);
    for layer in &rep.layers {
        let lg = if layer.max_abs_error > 0.0 {
            ((layer.max_abs_error.log10() + 8.0) / 8.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mark = if rep.error_enters.as_deref() == Some(layer.node.as_str()) {
            " ◀"
        } else {
            ""
        };
        lines.push(Line::from(format!(
            "{:<nw$} {:>7.1e} local {:>7.1e} {}{mark}",
            trunc(&layer.node, nw),
            layer.max_abs_error,
            layer.local_abs_error,
            bar(lg, bw.saturating_sub(3))
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::coords;

    #[test]
    fn coordinates_are_row_major() {
        assert_eq!(coords(0, &[1, 10]), "[0,0]");
        assert_eq!(coords(7, &[1, 10]), "[0,7]");
        assert_eq!(coords(5, &[2, 3]), "[1,2]");
        assert_eq!(coords(13, &[2, 3, 4]), "[1,0,1]");
        assert_eq!(coords(3, &[]), "[]");
    }
}
