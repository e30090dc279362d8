//! `zkreceipt screenshots`: every screen of the inspector, rendered headless into ratatui's
//! TestBackend and written as SVG with its colours, for the README.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use super::app::{Action, App};
use super::jobs::Command;
use super::{act_sync, exec_sync, ui};
use crate::error::{Error, Result};
use crate::receipt::ChainLink;

const BG: &str = "#1d1f21";
const FG: &str = "#d0d0d0";

fn hex(c: Color, default: &str) -> String {
    match c {
        Color::Reset => default.into(),
        Color::Black => "#1d1f21".into(),
        Color::Red => "#e0605a".into(),
        Color::Green => "#7cc36e".into(),
        Color::Yellow => "#e5c07b".into(),
        Color::Blue => "#5f87d7".into(),
        Color::Magenta => "#c678dd".into(),
        Color::Cyan => "#56b6c2".into(),
        Color::Gray => "#a0a0a0".into(),
        Color::DarkGray => "#6c6c6c".into(),
        Color::LightRed => "#ff8787".into(),
        Color::LightGreen => "#afd787".into(),
        Color::LightYellow => "#ffd787".into(),
        Color::LightBlue => "#87afff".into(),
        Color::LightMagenta => "#d787d7".into(),
        Color::LightCyan => "#87d7d7".into(),
        Color::White => "#ffffff".into(),
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(i) => format!("#{0:02x}{0:02x}{0:02x}", i),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A buffer as SVG: one text row per line, a run of cells with one style per `tspan`.
pub fn svg(buf: &Buffer) -> String {
    let (w, h) = (buf.area.width, buf.area.height);
    let (cw, lh) = (8.4f64, 18.0f64);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="14">"#,
        (w as f64 * cw).ceil(),
        (h as f64 * lh).ceil()
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="{BG}"/>"#);
    for y in 0..h {
        // Backgrounds first, then the text on top.
        for x in 0..w {
            let c = &buf[(x, y)];
            let reversed = c.modifier.contains(Modifier::REVERSED);
            let bg = if reversed {
                hex(c.fg, FG)
            } else {
                hex(c.bg, BG)
            };
            if bg != BG {
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{cw:.1}" height="{lh:.1}" fill="{bg}"/>"#,
                    x as f64 * cw,
                    y as f64 * lh
                );
            }
        }
        let _ = write!(
            s,
            r#"<text y="{:.1}" xml:space="preserve">"#,
            y as f64 * lh + 13.5
        );
        for x in 0..w {
            let c = &buf[(x, y)];
            let sym = c.symbol();
            if sym.trim().is_empty() {
                continue;
            }
            let reversed = c.modifier.contains(Modifier::REVERSED);
            let fg = if reversed {
                hex(c.bg, BG)
            } else {
                hex(c.fg, FG)
            };
            let weight = if c.modifier.contains(Modifier::BOLD) {
                r#" font-weight="bold""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<tspan x="{:.1}" fill="{fg}"{weight}>{}</tspan>"#,
                x as f64 * cw,
                escape(sym)
            );
        }
        let _ = writeln!(s, "</text>");
    }
    s.push_str("</svg>\n");
    s
}

fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    t.draw(|f| ui::render(app, f)).expect("draw");
    t.backend().buffer().clone()
}

/// Open `receipt`, drive the inspector through every screen and write one SVG per screen into
/// `out` (written to temporary names, then renamed). Returns the files written.
pub fn write_screenshots(receipt: &Path, title: &str, out: &Path) -> Result<Vec<PathBuf>> {
    let mut app = App::new(Command::Open(receipt.to_path_buf()));
    let cmds = app.start();
    exec_sync(&mut app, cmds);
    if let Some(e) = &app.error {
        return Err(Error::invalid(receipt.display(), e));
    }
    app.title = Some(title.into());
    let (w, h) = (120, 36);
    let mut shots: Vec<(String, Buffer)> = vec![];
    for (i, name) in ["float-onnx", "quantized", "circuit", "verifier-key"]
        .iter()
        .enumerate()
    {
        app.selected = ChainLink::ALL[i];
        shots.push((format!("{}-{name}", i + 1), render(&app, w, h)));
    }
    act_sync(&mut app, Action::Verify);
    app.selected = ChainLink::Proof;
    shots.push(("5-proof-verified".into(), render(&app, w, h)));
    act_sync(&mut app, Action::Audit);
    app.selected = ChainLink::Receipt;
    shots.push(("6-receipt-audited".into(), render(&app, w, h)));
    act_sync(&mut app, Action::BreakTest);
    act_sync(&mut app, Action::Enter);
    shots.push(("7-break-test-rejected".into(), render(&app, w, h)));
    act_sync(&mut app, Action::Esc);
    act_sync(&mut app, Action::Help);
    shots.push(("8-help".into(), render(&app, w, h)));
    act_sync(&mut app, Action::Esc);
    app.selected = ChainLink::FloatOnnx;
    shots.push(("9-small-80x24".into(), render(&app, 80, 24)));

    std::fs::create_dir_all(out).map_err(|e| Error::invalid(out.display(), e))?;
    let mut written = vec![];
    for (name, buf) in shots {
        let p = out.join(format!("{name}.svg"));
        crate::proof::write_atomic(&p, svg(&buf).as_bytes())
            .map_err(|e| Error::invalid(p.display(), e))?;
        written.push(p);
    }
    Ok(written)
}
