//! The inspector: a terminal UI that follows the receipt chain.
//!
//! State ([`app`]), rendering ([`ui`]) and background work ([`jobs`]) are apart: keys become
//! [`app::Action`]s, the App answers with commands for the worker thread, and the worker's
//! events come back into the App. Rendering reads the App and changes nothing.

pub mod app;
pub mod break_view;
pub mod jobs;
pub mod screenshot;
pub mod ui;

use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event as TermEvent, KeyCode, KeyEventKind,
    KeyModifiers, MouseButton, MouseEventKind,
};

use crate::error::{Error, Result};
use crate::files::{FILE_CAP, MODEL_CAP, read_capped};
use app::{Action, App, Effect};
use jobs::{Command, Worker};

/// The bundled default sample, so `zkreceipt` works after `cargo install` too.
const DEFAULT_MODEL: &[u8] = include_bytes!("../../samples/digits/model.onnx");
const DEFAULT_INPUT: &[u8] = include_bytes!("../../samples/digits/input.json");

/// A key binding: the keys, their action, and how the footer and the help name them.
pub struct Binding {
    pub codes: &'static [KeyCode],
    pub action: Action,
    /// The keys as the help writes them.
    pub keys: &'static str,
    /// (keys, word) in the footer, for the bindings it shows.
    pub footer: Option<(&'static str, &'static str)>,
    /// The help line, for the bindings it explains.
    pub help: Option<&'static str>,
}

const fn bind(codes: &'static [KeyCode], action: Action) -> Binding {
    Binding {
        codes,
        action,
        keys: "",
        footer: None,
        help: None,
    }
}

const fn shown(
    codes: &'static [KeyCode],
    action: Action,
    keys: &'static str,
    footer: Option<(&'static str, &'static str)>,
    help: &'static str,
) -> Binding {
    Binding {
        codes,
        action,
        keys,
        footer,
        help: Some(help),
    }
}

/// The stable key bindings (design.md §6), written once: the keys map to actions through this
/// table, and the footer and the help are rendered from it.
pub const BINDINGS: &[Binding] = &[
    shown(
        &[KeyCode::Left, KeyCode::Char('h')],
        Action::Left,
        "←/→ or h/l",
        Some(("←/→", "select")),
        "select a link of the chain",
    ),
    bind(&[KeyCode::Right, KeyCode::Char('l')], Action::Right),
    shown(
        &[KeyCode::Tab],
        Action::Tab,
        "Tab",
        Some(("Tab", "pane")),
        "switch pane (details / gap) and what scrolls; break test: next group",
    ),
    bind(&[KeyCode::BackTab], Action::BackTab),
    shown(
        &[KeyCode::Up, KeyCode::Char('k')],
        Action::Up,
        "↑/↓ or k/j",
        None,
        "scroll (PgUp/PgDn by ten; Home/End or g/G: the ends)",
    ),
    bind(&[KeyCode::Down, KeyCode::Char('j')], Action::Down),
    bind(&[KeyCode::PageUp], Action::PageUp),
    bind(&[KeyCode::PageDown], Action::PageDown),
    bind(&[KeyCode::Home, KeyCode::Char('g')], Action::Home),
    bind(&[KeyCode::End, KeyCode::Char('G')], Action::End),
    shown(
        &[KeyCode::Char('s')],
        Action::Sort,
        "s",
        None,
        "sort the gap by error (again: by index)",
    ),
    bind(&[KeyCode::Enter], Action::Enter),
    shown(
        &[KeyCode::Esc],
        Action::Esc,
        "Esc",
        None,
        "close an overlay; while a job runs, cancel it (result dropped)",
    ),
    shown(
        &[KeyCode::Char('v')],
        Action::Verify,
        "v",
        Some(("v", "verify")),
        "verify now (re-derive the key, check the proof)",
    ),
    shown(
        &[KeyCode::Char('b')],
        Action::BreakTest,
        "b",
        Some(("b", "break")),
        "break test: change a bound item, watch it fail",
    ),
    shown(
        &[KeyCode::Char('a')],
        Action::Audit,
        "a",
        Some(("a", "audit")),
        "audit: re-derive every link",
    ),
    shown(
        &[KeyCode::Char('p')],
        Action::Rebuild,
        "p",
        Some(("p", "rebuild")),
        "rebuild the chain",
    ),
    shown(
        &[KeyCode::Char('/')],
        Action::Search,
        "/ and n",
        None,
        "search the details (node names and all): Enter goes, n the next match",
    ),
    bind(&[KeyCode::Char('n')], Action::NextMatch),
    shown(
        &[KeyCode::Char('y')],
        Action::Copy,
        "y",
        None,
        "copy the selected link's full sha256 to the clipboard (OSC 52)",
    ),
    shown(
        &[KeyCode::Char('o')],
        Action::Open,
        "o",
        None,
        "open the selected link's file in $PAGER (default: less)",
    ),
    shown(
        &[KeyCode::Char('?')],
        Action::Help,
        "?",
        Some(("?", "help")),
        "this help (Esc closes)",
    ),
    shown(
        &[KeyCode::Char('q')],
        Action::Quit,
        "q",
        Some(("q", "quit")),
        "quit",
    ),
];

/// A key's action (see [`BINDINGS`]); Ctrl-C quits too.
pub fn action_for(code: KeyCode, mods: KeyModifiers) -> Option<Action> {
    if code == KeyCode::Char('c') && mods.contains(KeyModifiers::CONTROL) {
        return Some(Action::Quit);
    }
    BINDINGS
        .iter()
        .find(|b| b.codes.contains(&code))
        .map(|b| b.action)
}

/// What to open: the default sample's chain, built once into the cache.
pub fn default_source() -> Result<Command> {
    let dir = crate::proof::cache_dir().join("default-digits");
    let receipt = dir.join("receipt");
    if crate::receipt::Folder::load(&receipt).is_ok() {
        return Ok(Command::Open(receipt));
    }
    let io = |e: std::io::Error| Error::invalid(dir.display(), e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let (model, input) = (dir.join("model.onnx"), dir.join("input.json"));
    crate::proof::write_atomic(&model, DEFAULT_MODEL).map_err(io)?;
    crate::proof::write_atomic(&input, DEFAULT_INPUT).map_err(io)?;
    Ok(Command::Build {
        model,
        input,
        out: receipt,
    })
}

/// What `inspect` opens: a receipt folder, or a model and input whose chain is built live into
/// the cache (a folder per model and input file contents). A folder that cannot be read is an
/// error here, before any screen.
pub fn inspect_source(target: &Path, input: Option<&Path>) -> Result<Command> {
    let missing = std::fs::metadata(target).is_err();
    if missing || target.is_dir() || target.file_name().is_some_and(|n| n == "receipt.json") {
        let dir = crate::receipt::Folder::load(target)?.dir;
        // `inspect receipt.json` inside the folder: its parent is the empty path.
        let dir = if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir
        };
        return Ok(Command::Open(dir));
    }
    let Some(input) = input else {
        return Err(Error::invalid(
            target.display(),
            "not a receipt folder; to build a chain from a model, also give --input IN.json",
        ));
    };
    let mut key = read_capped(target, MODEL_CAP, "the model")?;
    let input_bytes = read_capped(input, FILE_CAP, "the input")?;
    key.extend(&input_bytes);
    let id = &crate::model::sha256_hex(&key)[..16];
    // The build reads the input as read here: it may be a pipe (`--input <(…)`), read once.
    let dir = crate::proof::cache_dir().join("inspect");
    let copy = dir.join(format!("{id}.input.json"));
    let io = |e: std::io::Error| Error::invalid(dir.display(), e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    crate::proof::write_atomic(&copy, &input_bytes).map_err(io)?;
    Ok(Command::Build {
        model: target.to_path_buf(),
        input: copy,
        out: dir.join(id),
    })
}

/// The title of the bundled sample.
pub const DEFAULT_TITLE: &str = "samples/digits (bundled)";

/// What to use instead of the inspector, where there is no terminal.
const WITHOUT_A_TERMINAL: &str = "without one, use the command line: `zkreceipt verify DIR`, \
     `zkreceipt audit DIR`, `zkreceipt break-test DIR`; `zkreceipt --help` lists every command";

/// The inspector draws on stdout and reads keys from stdin: both must be a terminal. Checked
/// before anything is built, so a script or a pipe gets a usage error, not a panic.
pub fn need_terminal() -> Result<()> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the inspector needs a terminal (stdin and stdout are not both one); {WITHOUT_A_TERMINAL}"
    )))
}

/// Run the inspector on `source` until the user quits. The terminal is restored on quit, on
/// error and on panic (ratatui's init installs the panic hook). When the chain never opened
/// (its folder or build failed), the error is returned once the screen is gone: exit 3.
pub fn run(source: Command, title: Option<String>) -> Result<i32> {
    let mut app = App::new(source);
    app.title = title;
    let mut terminal = ratatui::try_init().map_err(|e| {
        let _ = ratatui::try_restore();
        Error::Usage(format!(
            "the inspector cannot use this terminal: {e}; {WITHOUT_A_TERMINAL}"
        ))
    })?;
    // ratatui's panic hook restores the terminal; a panic the worker catches quietly (tract on
    // a malformed model) must not, so the quiet hook goes outside it.
    crate::panics::install_hook();
    let _ = ratatui::crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    let r = event_loop(&mut terminal, &mut app);
    let _ = ratatui::crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    r.map_err(|e| Error::invalid("terminal", e))?;
    match app.failed_start() {
        Some(msg) => Err(Error::invalid(app.source.describe(), msg)),
        None => Ok(0),
    }
}

fn event_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App) -> std::io::Result<()> {
    let worker = Worker::spawn();
    let send = |cmds: Vec<Command>| {
        for c in cmds {
            let _ = worker.commands.send(c);
        }
    };
    send(app.start());
    let mut job_started: Option<Instant> = None;
    // no-color.org: set and not empty.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    loop {
        while let Ok(e) = worker.events.try_recv() {
            app.on_event(e);
        }
        // The clock of the running job, ticking between the worker's reports.
        match (&mut app.job, job_started) {
            (Some(j), Some(t)) => j.elapsed_s = t.elapsed().as_secs_f64(),
            (Some(_), None) => job_started = Some(Instant::now()),
            (None, _) => job_started = None,
        }
        terminal.draw(|f| {
            ui::render(app, f);
            if no_color {
                ui::strip_colors(f.buffer_mut());
            }
        })?;
        if event::poll(Duration::from_millis(100))? {
            match event::read()? {
                TermEvent::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                    // Typing a search: characters are text.
                    KeyCode::Char(c)
                        if app.typing() && !k.modifiers.contains(KeyModifiers::CONTROL) =>
                    {
                        app.type_key(Some(c))
                    }
                    KeyCode::Backspace if app.typing() => app.type_key(None),
                    _ => {
                        if let Some(a) = action_for(k.code, k.modifiers) {
                            send(app.handle(a));
                        }
                    }
                },
                TermEvent::Mouse(m) => {
                    let size = terminal.size()?;
                    let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
                    if let Some(at) = ui::target_at(area, m.column, m.row) {
                        match m.kind {
                            MouseEventKind::Down(MouseButton::Left) => app.click(at),
                            MouseEventKind::ScrollDown => app.wheel(at, true),
                            MouseEventKind::ScrollUp => app.wheel(at, false),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = app.effect.take() {
            perform(e, terminal, app)?;
        }
        if app.quit {
            return Ok(());
        }
    }
}

/// Do what the App asked for outside the screen.
fn perform(
    e: Effect,
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
) -> std::io::Result<()> {
    use std::io::Write;
    match e {
        // OSC 52: the terminal puts the text on the clipboard (where it allows this).
        Effect::Copy(text) => {
            let mut out = std::io::stdout();
            write!(out, "\x1b]52;c;{}\x07", base64_encode(text.as_bytes()))?;
            out.flush()
        }
        // The pager gets the terminal: the screen is suspended and restored after.
        Effect::Page(path) => {
            let pager = std::env::var("PAGER")
                .ok()
                .filter(|p| !p.trim().is_empty())
                .unwrap_or_else(|| "less".into());
            let _ = ratatui::crossterm::execute!(std::io::stdout(), DisableMouseCapture);
            ratatui::restore();
            // $PAGER may carry arguments (`less -R`): the shell splits it.
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{pager} \"$0\""))
                .arg(&path)
                .status();
            *terminal = ratatui::try_init()?;
            let _ = ratatui::crossterm::execute!(std::io::stdout(), EnableMouseCapture);
            terminal.clear()?;
            if !status.is_ok_and(|s| s.success()) {
                app.note = Some(format!(
                    "the pager `{pager}` could not show {}",
                    path.display()
                ));
            }
            Ok(())
        }
    }
}

/// Standard base64 (RFC 4648, with padding), for OSC 52.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ABC[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Run commands on this thread and feed their events to the App, with elapsed times zeroed:
/// the headless driver of tests and screenshots.
pub fn exec_sync(app: &mut App, cmds: Vec<Command>) {
    let mut keys = crate::receipt::KeyCache::default();
    for c in cmds {
        let events = std::cell::RefCell::new(vec![]);
        jobs::run(c, &mut keys, &|e| events.borrow_mut().push(e));
        for e in events.into_inner() {
            app.on_event(match e {
                jobs::Event::Progress {
                    stage, fraction, ..
                } => jobs::Event::Progress {
                    stage,
                    fraction,
                    elapsed_s: 0.0,
                },
                e => e,
            });
        }
    }
}

/// Apply an action headless, running what it starts to completion.
pub fn act_sync(app: &mut App, a: Action) {
    let cmds = app.handle(a);
    exec_sync(app, cmds);
}
