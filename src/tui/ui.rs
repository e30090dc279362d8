//! Rendering: one function per pane, from the App's state; nothing here changes state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Gauge, Paragraph, Wrap};

use super::app::{App, Check, Pane, Row, Status, Target};
use crate::circuit::{ParamVisibility, Visibility};
use crate::receipt::ChainLink;

mod details;
mod gap;
use details::details;
use gap::gap;

pub const MIN_W: u16 = 80;
pub const MIN_H: u16 = 24;

/// A hash as the inspector shows it: its first 8 characters.
fn short(h: &str) -> &str {
    crate::model::short_hash(h, 8)
}

fn status_span(s: Status) -> Span<'static> {
    match s {
        Status::Unchecked => Span::styled("·", Style::new().fg(Color::DarkGray)),
        Status::Running => Span::styled("…", Style::new().fg(Color::Yellow)),
        Status::Holds => Span::styled("✓", Style::new().fg(Color::Green).bold()),
        Status::Broken => Span::styled("✗", Style::new().fg(Color::Red).bold()),
        Status::Skipped => Span::styled("–", Style::new().fg(Color::DarkGray)),
    }
}

pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width < MIN_W || area.height < MIN_H {
        let msg = format!(
            "The terminal is {}×{}; zkreceipt needs at least {MIN_W}×{MIN_H}. Enlarge it, or press q to quit.",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, body, status, footer] = regions(area);
    chain_bar(app, f, top);
    let [left, right] = panes(body);
    details(app, f, left);
    gap(app, f, right);
    status_line(app, f, status);
    f.render_widget(
        Paragraph::new(Line::from(footer_spans())).style(Style::new().fg(Color::Gray)),
        footer,
    );
    if app.breaking.is_some() {
        break_overlay(app, f, area);
    }
    if app.help {
        help_overlay(f, area);
    }
}

/// The screen's rows: the chain bar, the panes, the status line and the footer.
fn regions(area: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// The details pane and the gap pane, side by side.
fn panes(body: Rect) -> [Rect; 2] {
    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body)
}

/// The chain bar's six cells, one per link.
fn link_cells(top: Rect) -> std::rc::Rc<[Rect]> {
    Layout::horizontal([Constraint::Ratio(1, 6); 6]).split(Block::bordered().inner(top))
}

/// What lies at column `x`, row `y` of a screen of size `area`, as [`render`] lays it out: a
/// link of the chain bar or a pane (for the mouse).
pub fn target_at(area: Rect, x: u16, y: u16) -> Option<Target> {
    if area.width < MIN_W || area.height < MIN_H {
        return None;
    }
    let at = ratatui::layout::Position { x, y };
    let [top, body, _, _] = regions(area);
    if top.contains(at) {
        let cells = link_cells(top);
        return ChainLink::ALL
            .into_iter()
            .zip(cells.iter())
            .find(|(_, c)| c.contains(at))
            .map(|(l, _)| Target::Link(l));
    }
    let [left, right] = panes(body);
    if left.contains(at) {
        Some(Target::Pane(Pane::Details))
    } else if right.contains(at) {
        Some(Target::Pane(Pane::Gap))
    } else {
        None
    }
}

/// NO_COLOR (no-color.org): the drawn frame without colours; bold, reverse and the other
/// modifiers stay, so the selection still shows.
pub fn strip_colors(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        cell.set_fg(Color::Reset);
        cell.set_bg(Color::Reset);
    }
}

fn chain_bar(app: &App, f: &mut Frame, area: Rect) {
    let title = app
        .title
        .clone()
        .or_else(|| app.loaded.as_ref().map(|l| l.title.clone()))
        .unwrap_or_else(|| "…".into());
    let block = Block::bordered().title(Line::from(format!(" zkreceipt · {title} ")).bold());
    f.render_widget(block, area);
    let cells = link_cells(area);
    for link in ChainLink::ALL {
        let (i, name) = (link.index(), link.name());
        let sel = link == app.selected;
        let name_style = if sel {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new().bold()
        };
        // The arrow that fits the cell: " ─▶", " ▶" or "▶".
        let room = cells[i].width as usize - name.chars().count().min(cells[i].width as usize);
        let arrow = match (link != ChainLink::Receipt, room) {
            (false, _) => "",
            (true, r) if r >= 3 => " ─▶",
            (true, 2) => " ▶",
            _ => "▶",
        };
        let id = link_id(app, link);
        let lines = vec![
            Line::from(vec![Span::styled(name, name_style), Span::raw(arrow)]),
            Line::from(vec![
                Span::raw(format!("{id} ")),
                status_span(app.status[link]),
            ]),
        ];
        f.render_widget(Paragraph::new(lines), cells[i]);
    }
}

/// The short identity shown under each link.
fn link_id(app: &App, link: ChainLink) -> String {
    let Some(l) = &app.loaded else {
        return "—".into();
    };
    let r = &l.folder.receipt;
    match link {
        ChainLink::FloatOnnx => short(&r.model_commitment.onnx_sha256).into(),
        ChainLink::Quantized => short(&r.model_commitment.quantized_sha256).into(),
        ChainLink::Circuit => format!("k={}", l.folder.circuit.k),
        ChainLink::VerifierKey => short(&r.verifier.vk_sha256).into(),
        ChainLink::Proof => format!("{:.1} KiB", r.proof.bytes as f64 / 1024.0),
        ChainLink::Receipt => match &app.verdict {
            Some((true, _, _)) => "verified".into(),
            Some((false, _, _)) => "rejected".into(),
            None => "unverified".into(),
        },
    }
}

/// A pane's text in its block, wrapped, at its scroll offset ([`scrolled`]). In the details
/// pane, the lines that match the search are highlighted and their rows recorded.
fn render_pane(
    app: &App,
    pane: Pane,
    mut lines: Vec<Line>,
    block: Block,
    f: &mut Frame,
    area: Rect,
) {
    if pane == Pane::Details {
        mark_matches(app, &mut lines, area);
    }
    let scroll = scrolled(app, pane, &lines, area);
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

/// Highlight the lines holding the search's query (ignoring case) and record their wrapped
/// rows, so that Enter and `n` can scroll to them.
fn mark_matches(app: &App, lines: &mut [Line], area: Rect) {
    let Some(q) = app.search.as_ref().filter(|s| !s.query.is_empty()) else {
        app.record_search_rows(vec![]);
        return;
    };
    let q = q.query.to_lowercase();
    let w = area.width.saturating_sub(2).max(1) as usize;
    let (mut row, mut rows) = (0usize, vec![]);
    for line in lines.iter_mut() {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        if text.to_lowercase().contains(&q) {
            rows.push(row.min(u16::MAX as usize) as u16);
            *line = std::mem::take(line).style(Style::new().bg(Color::Yellow).fg(Color::Black));
        }
        row += line.width().max(1).div_ceil(w);
    }
    app.record_search_rows(rows);
}

/// The scroll offset to draw `pane` at: the app's, stopped at the last screenful of `lines`
/// (as wrapped into `area`), which is recorded so that scrolling further does nothing.
fn scrolled(app: &App, pane: Pane, lines: &[Line], area: Rect) -> u16 {
    let (w, h) = (
        area.width.saturating_sub(2).max(1) as usize,
        area.height.saturating_sub(2) as usize,
    );
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(w)).sum();
    let max = rows.saturating_sub(h).min(u16::MAX as usize) as u16;
    app.record_scroll_max(pane, max);
    app.scroll_of(pane).min(max)
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let b = Block::bordered().title(Line::from(title).bold());
    if focused {
        b.border_style(Style::new().fg(Color::Cyan))
    } else {
        b
    }
}

fn kv(k: &str, v: impl Into<String>) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:<14}"), Style::new().fg(Color::Gray)),
        Span::raw(v.into()),
    ])
}

fn bar(frac: f64, width: usize) -> String {
    let n = (frac.clamp(0.0, 1.0) * width as f64).round() as usize;
    "█".repeat(n) + &" ".repeat(width - n)
}

/// The width of a column of names: the longest name when the pane leaves `room` for it, else
/// `room`, and never below `least` (names longer than the column are cut with `…`).
fn name_width<'a>(names: impl Iterator<Item = &'a str>, least: usize, room: usize) -> usize {
    let longest = names.map(|n| n.chars().count()).max().unwrap_or(0);
    longest.min(room).max(least)
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

fn status_line(app: &App, f: &mut Frame, area: Rect) {
    if let Some(j) = &app.job {
        let busy = j
            .refused
            .map(|k| format!(" · busy: press {k} again when this ends"))
            .unwrap_or_default();
        let label = format!("{} · {} · {:.1}s{busy}", j.what, j.stage, j.elapsed_s);
        f.render_widget(
            Gauge::default()
                .ratio(j.fraction.clamp(0.0, 1.0))
                .label(label)
                .gauge_style(Style::new().fg(Color::Blue).bg(Color::Black)),
            area,
        );
        return;
    }
    let line = if let Some(e) = &app.error {
        Line::from(format!(" error: {e}")).red().bold()
    } else if let Some(s) = &app.search {
        let n = app.search_matches();
        Line::from(if s.typing {
            format!(" /{}▏ {n} matching lines · Enter: go · Esc: close", s.query)
        } else if n == 0 {
            format!(" /{}: no match · Esc: close", s.query)
        } else {
            format!(
                " /{}: match {} of {n} · n: next · Esc: close",
                s.query,
                s.at % n + 1
            )
        })
        .fg(Color::Yellow)
    } else if let Some(n) = &app.note {
        Line::from(format!(" {n}"))
    } else if let (Some(Check::Verify), Some((ok, reason, secs))) = (app.last, &app.verdict) {
        if *ok {
            Line::from(format!(" ✓ verified in {secs:.3}s"))
                .green()
                .bold()
        } else {
            Line::from(format!(
                " ✗ rejected: {}",
                reason.clone().unwrap_or_default()
            ))
            .red()
            .bold()
        }
    } else if let (Some(Check::Audit), Some(a)) = (app.last, &app.audit) {
        let count = |f: &dyn Fn(&crate::receipt::audit::Link) -> bool| {
            a.links.iter().filter(|l| f(l)).count()
        };
        let (holds, skipped) = (count(&|l| l.holds), count(&|l| l.skipped));
        let broken = a.links.len() - holds - skipped;
        let skipped = match skipped {
            0 => String::new(),
            n => format!(", {n} skipped (–: not checkable here, not holding)"),
        };
        if broken == 0 {
            Line::from(format!(" ✓ audit: {holds} links hold{skipped}"))
                .green()
                .bold()
        } else {
            let first = a.links.iter().find(|l| !l.holds && !l.skipped);
            Line::from(format!(
                " ✗ audit: {broken} broken{skipped}; first: {}",
                first.map_or(String::new(), |l| l.link.clone())
            ))
            .red()
            .bold()
        }
    } else {
        Line::from(" press v to verify, b for the break test, a to audit").fg(Color::Gray)
    };
    f.render_widget(Paragraph::new(line), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn break_overlay(app: &App, f: &mut Frame, area: Rect) {
    let Some(b) = &app.breaking else { return };
    let r = centered(
        area,
        area.width.saturating_sub(8),
        area.height.saturating_sub(6),
    );
    f.render_widget(Clear, r);
    let block = Block::bordered()
        .title(Line::from(" Break test: change one item, verify, expect rejection ").bold())
        .border_style(Style::new().fg(Color::Red));
    let verdict = match &b.verdict {
        None if b.running => Line::from("verifying the changed folder…").fg(Color::Yellow),
        None => Line::from("nothing changed yet: the folder on disk is never touched"),
        Some((i, verified, reason)) => {
            let c = &b.items[*i];
            if !verified {
                Line::from(format!(
                    "{}: rejected — {}",
                    c.item,
                    reason.clone().unwrap_or_default()
                ))
                .red()
                .bold()
            } else if c.bound {
                Line::from(format!(
                    "{}: VERIFIED — a bound change was not caught",
                    c.item
                ))
                .red()
                .bold()
            } else {
                Line::from(format!(
                    "{}: still verified (not bound by the proof)",
                    c.item
                ))
                .green()
                .bold()
            }
        }
    };
    // The list gets what the keys line, the value and the (wrapped) verdict leave.
    let inner_w = r.width.saturating_sub(2).max(1) as usize;
    let inner_h = r.height.saturating_sub(2) as usize;
    let verdict_h = verdict.width().max(1).div_ceil(inner_w);
    let list_h = inner_h.saturating_sub(2 + verdict_h).max(1);
    let rows = b.rows();
    let at = rows.iter().position(|x| *x == b.selected).unwrap_or(0);
    let first = at
        .saturating_sub(list_h / 2)
        .min(rows.len().saturating_sub(list_h));
    let mut lines: Vec<Line> = vec![
        Line::from(
            "↑/↓ choose · Tab/Shift-Tab group · Enter change and verify · Esc restore, close",
        )
        .fg(Color::Gray),
    ];
    for row in rows.iter().skip(first).take(list_h) {
        let mark = if *row == b.selected { "▶" } else { " " };
        let line = match row {
            Row::Header(g) => Line::from(format!("── {} ──", g.title())).bold(),
            Row::Item(i) => {
                let c = &b.items[*i];
                let tag = if c.bound { "bound  " } else { "unbound" };
                Line::from(format!("{mark} {tag} {}", c.item))
            }
            Row::More(n) => Line::from(format!(
                "{mark} … {n} more (shown: first, last, largest, runner-up) · Enter: all"
            ))
            .fg(Color::Gray),
        };
        lines.push(if *row == b.selected {
            line.add_modifier(Modifier::REVERSED)
        } else {
            line
        });
    }
    lines.push(match &b.preview {
        Some((before, after)) => Line::from(format!("value: {before} → {after}")),
        None => Line::from(""),
    });
    lines.push(verdict);
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        r,
    );
}

/// The footer: each binding it shows, as "keys word", from [`super::BINDINGS`].
fn footer_spans() -> Vec<Span<'static>> {
    let shown: Vec<(&str, &str)> = super::BINDINGS.iter().filter_map(|b| b.footer).collect();
    let mut spans = vec![];
    for (i, (keys, word)) in shown.iter().enumerate() {
        let lead = if i == 0 { " " } else { "" };
        let gap = if i + 1 < shown.len() { "  " } else { "" };
        spans.push(format!("{lead}{keys} ").bold());
        spans.push(format!("{word}{gap}").into());
    }
    spans
}

fn help_overlay(f: &mut Frame, area: Rect) {
    let lines = vec![
        Line::from(
            "The chain: float ONNX → quantized model → circuit → verifier key → proof → receipt. A proof is a receipt for execution: it binds what the receipt shows, not whether the model is good.",
        ),
        Line::from(""),
    ];
    let lines: Vec<Line> = lines
        .into_iter()
        .chain(
            super::BINDINGS
                .iter()
                .filter_map(|b| b.help.map(|h| Line::from(format!("{:<13}{h}", b.keys)))),
        )
        .collect();
    // As tall as its wrapped lines, within the window.
    let width = 72u16.min(area.width);
    let inner = width.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let r = centered(area, width, (rows + 2).min(u16::MAX as usize) as u16);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" Help ".bold()))
            .wrap(Wrap { trim: false }),
        r,
    );
}
