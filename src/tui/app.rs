//! The inspector's state machine: actions in, commands for the worker out, worker events in.
//! No terminal and no threads here, so tests drive it headless.

pub use super::break_view::{BreakView, Row};
use super::jobs::{Command, Event, Loaded};
use crate::receipt::ChainLink;
use crate::receipt::audit::AuditReport;

/// The status of each link of the chain bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statuses([Status; 6]);

impl Statuses {
    pub fn all(s: Status) -> Self {
        Statuses([s; 6])
    }
}

impl std::ops::Index<ChainLink> for Statuses {
    type Output = Status;
    fn index(&self, l: ChainLink) -> &Status {
        &self.0[l.index()]
    }
}

impl std::ops::IndexMut<ChainLink> for Statuses {
    fn index_mut(&mut self, l: ChainLink) -> &mut Status {
        &mut self.0[l.index()]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Unchecked,
    Running,
    Holds,
    Broken,
    /// The audit could not check this link (a redacted folder, a hidden input): not holding.
    Skipped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Details,
    Gap,
}

/// What the user asks for (keys map onto these; see `keys` in the module root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Left,
    Right,
    Tab,
    /// Shift-Tab: the panes, as Tab; in the break test, the previous group.
    BackTab,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Sort the gap pane's elements by error, or back by index.
    Sort,
    Enter,
    Esc,
    Verify,
    BreakTest,
    Audit,
    Rebuild,
    /// Copy the selected link's full hash (OSC 52).
    Copy,
    /// Open the selected link's artifact in `$PAGER`.
    Open,
    /// `/`: search the details pane (node names and every other line).
    Search,
    /// `n`: the next match of the search.
    NextMatch,
    Help,
    Quit,
}

/// Work outside the screen that the event loop does for the App (the App itself does no I/O).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Put this text on the clipboard (OSC 52).
    Copy(String),
    /// Show this file in `$PAGER`, the screen suspended meanwhile.
    Page(std::path::PathBuf),
}

/// A job the worker is running.
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    pub what: String,
    pub stage: String,
    /// 0..=1 when the job knows how far it is.
    pub fraction: f64,
    pub elapsed_s: f64,
    /// A key pressed while this job runs, which it did not start: said on the gauge.
    pub refused: Option<&'static str>,
}

/// A search of the details pane: the query, whether it is still being typed, and which match
/// is shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    pub typing: bool,
    pub at: usize,
}

/// What is under the mouse pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Link(ChainLink),
    Pane(Pane),
}

/// The checks whose outcome the status line reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Verify,
    Audit,
}

pub struct App {
    pub loaded: Option<Box<Loaded>>,
    /// What to (re)build or open: the source of the chain.
    pub source: Command,
    pub selected: ChainLink,
    pub pane: Pane,
    pub status: Statuses,
    pub job: Option<Running>,
    pub verdict: Option<(bool, Option<String>, f64)>,
    pub audit: Option<AuditReport>,
    /// Which check finished last: the status line reports its outcome, not an older one.
    pub last: Option<Check>,
    pub breaking: Option<BreakView>,
    pub help: bool,
    pub error: Option<String>,
    pub quit: bool,
    /// Scroll offset of the details pane, and of the gap pane.
    pub scroll: u16,
    pub gap_scroll: u16,
    /// The gap pane lists elements by error, largest first.
    pub gap_sorted: bool,
    /// The largest useful scroll offset of each pane at the last frame (details, gap): the
    /// renderer records it, so scrolling stops at the end.
    scroll_max: std::cell::Cell<[u16; 2]>,
    /// The name shown in the title bar instead of the folder's path (the bundled sample).
    pub title: Option<String>,
    /// What the event loop should do next outside the screen.
    pub effect: Option<Effect>,
    /// A one-line message for the status line (what a key did), until the next key.
    pub note: Option<String>,
    pub search: Option<Search>,
    /// The wrapped rows of the details pane where the search matches, at the last frame (the
    /// renderer records them, as it records the scroll limits).
    search_rows: std::cell::RefCell<Vec<u16>>,
    /// Cancelled jobs whose results are still to come: dropped when they do (the worker runs
    /// one job at a time, so they come first).
    dropping: usize,
}

impl App {
    /// A new inspector that will run `source` (open a folder or build a chain) first.
    pub fn new(source: Command) -> Self {
        App {
            loaded: None,
            source,
            selected: ChainLink::FloatOnnx,
            pane: Pane::Details,
            status: Statuses::all(Status::Unchecked),
            job: None,
            verdict: None,
            audit: None,
            last: None,
            breaking: None,
            help: false,
            error: None,
            quit: false,
            scroll: 0,
            gap_scroll: 0,
            gap_sorted: false,
            scroll_max: std::cell::Cell::new([u16::MAX; 2]),
            title: None,
            effect: None,
            note: None,
            search: None,
            search_rows: std::cell::RefCell::new(vec![]),
            dropping: 0,
        }
    }

    /// The command to run at start.
    pub fn start(&mut self) -> Vec<Command> {
        self.begin(&self.source.describe());
        vec![self.source.clone()]
    }

    fn begin(&mut self, what: &str) {
        self.job = Some(Running {
            what: what.into(),
            stage: "starting".into(),
            fraction: 0.0,
            elapsed_s: 0.0,
            refused: None,
        });
        self.error = None;
    }

    /// Scroll the focused pane by `delta` lines, between its top and its last screenful.
    fn scroll_by(&mut self, delta: i32) {
        let max = self.scroll_max.get()[self.pane as usize];
        let s = match self.pane {
            Pane::Details => &mut self.scroll,
            Pane::Gap => &mut self.gap_scroll,
        };
        let clamped = (i64::from((*s).min(max)) + i64::from(delta)).clamp(0, i64::from(max));
        *s = clamped as u16;
    }

    /// A pane's scroll offset.
    pub fn scroll_of(&self, pane: Pane) -> u16 {
        match pane {
            Pane::Details => self.scroll,
            Pane::Gap => self.gap_scroll,
        }
    }

    /// Record a pane's largest useful scroll offset (the renderer's, at each frame).
    pub fn record_scroll_max(&self, pane: Pane, max: u16) {
        let mut m = self.scroll_max.get();
        m[pane as usize] = max;
        self.scroll_max.set(m);
    }

    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Why the chain never opened, if its first job failed and nothing has opened since.
    pub fn failed_start(&self) -> Option<&str> {
        match (&self.loaded, &self.error) {
            (None, Some(msg)) if !self.busy() => Some(msg),
            _ => None,
        }
    }

    /// Handle a user action; returns the commands the worker should run.
    pub fn handle(&mut self, a: Action) -> Vec<Command> {
        self.note = None;
        if a == Action::Quit {
            self.quit = true;
            return vec![];
        }
        if self.help {
            if matches!(a, Action::Esc | Action::Help | Action::Enter) {
                self.help = false;
            }
            return vec![];
        }
        if self.search.as_ref().is_some_and(|s| s.typing)
            || (self.search.is_some() && matches!(a, Action::Esc | Action::NextMatch))
        {
            self.handle_search(a);
            return vec![];
        }
        if a == Action::Esc && self.busy() {
            self.cancel();
            return vec![];
        }
        if self.breaking.is_some() {
            return self.handle_break(a);
        }
        // One job at a time: a key that would start another says so instead of vanishing.
        if let Some(j) = self.job.as_mut() {
            let key = match a {
                Action::Verify => Some("v"),
                Action::Audit => Some("a"),
                Action::Rebuild => Some("p"),
                Action::BreakTest => Some("b"),
                _ => None,
            };
            if key.is_some() {
                j.refused = key;
                return vec![];
            }
        }
        match a {
            Action::Left => {
                self.selected = self.selected.step(-1);
                self.scroll = 0;
            }
            Action::Right => {
                self.selected = self.selected.step(1);
                self.scroll = 0;
            }
            Action::Tab | Action::BackTab => {
                self.pane = match self.pane {
                    Pane::Details => Pane::Gap,
                    Pane::Gap => Pane::Details,
                }
            }
            Action::Up => self.scroll_by(-1),
            Action::Down => self.scroll_by(1),
            Action::PageUp => self.scroll_by(-10),
            Action::PageDown => self.scroll_by(10),
            Action::Home => self.scroll_by(i32::MIN),
            Action::End => self.scroll_by(i32::MAX),
            Action::Sort => {
                self.gap_sorted = !self.gap_sorted;
                self.gap_scroll = 0;
            }
            Action::Help => self.help = true,
            Action::Search => {
                self.pane = Pane::Details;
                self.search = Some(Search {
                    typing: true,
                    ..Search::default()
                });
            }
            Action::Copy => self.copy(),
            Action::Open => self.open(),
            Action::Verify if !self.busy() => {
                if let Some(folder) = self.loaded.as_ref().map(|l| l.folder.clone()) {
                    self.begin("verify");
                    self.status[ChainLink::VerifierKey] = Status::Running;
                    self.status[ChainLink::Proof] = Status::Running;
                    return vec![Command::Verify(Box::new(folder))];
                }
            }
            Action::Audit if !self.busy() => {
                if let Some(folder) = self.loaded.as_ref().map(|l| l.folder.clone()) {
                    self.begin("audit");
                    self.status = Statuses::all(Status::Running);
                    return vec![Command::Audit(Box::new(folder))];
                }
            }
            Action::Rebuild if !self.busy() => {
                self.verdict = None;
                self.audit = None;
                self.last = None;
                self.status = Statuses::all(Status::Unchecked);
                return self.start();
            }
            Action::BreakTest if !self.busy() => {
                if let Some(l) = &self.loaded {
                    self.breaking = Some(BreakView::open(&l.folder, self.status));
                }
            }
            _ => {}
        }
        vec![]
    }

    /// Whether keys are being typed into the search (they are text, not commands).
    pub fn typing(&self) -> bool {
        self.search.as_ref().is_some_and(|s| s.typing)
    }

    /// A character typed into the search, or `None` for Backspace.
    pub fn type_key(&mut self, c: Option<char>) {
        if let Some(s) = self.search.as_mut().filter(|s| s.typing) {
            match c {
                Some(c) => s.query.push(c),
                None => {
                    s.query.pop();
                }
            }
            s.at = 0;
        }
    }

    fn handle_search(&mut self, a: Action) {
        let Some(s) = self.search.as_mut() else {
            return;
        };
        match a {
            Action::Esc => self.search = None,
            Action::Enter if s.typing => {
                s.typing = false;
                self.show_match();
            }
            Action::NextMatch if !s.typing => {
                s.at += 1;
                self.show_match();
            }
            _ => {}
        }
    }

    /// Scroll the details pane to the current match.
    fn show_match(&mut self) {
        let rows = self.search_rows.borrow().clone();
        let Some(s) = self.search.as_mut() else {
            return;
        };
        if rows.is_empty() {
            self.note = Some(format!(
                "no line of the {} details has “{}”",
                self.selected.name(),
                s.query
            ));
            return;
        }
        s.at %= rows.len();
        self.pane = Pane::Details;
        self.scroll = rows[s.at].min(self.scroll_max.get()[Pane::Details as usize]);
    }

    /// Record where the search matches (the renderer's, at each frame).
    pub fn record_search_rows(&self, rows: Vec<u16>) {
        *self.search_rows.borrow_mut() = rows;
    }

    /// How many lines match the search, at the last frame.
    pub fn search_matches(&self) -> usize {
        self.search_rows.borrow().len()
    }

    /// Esc while a job runs: stop waiting for it. halo2 cannot be interrupted inside key
    /// generation or a proof check, so the worker finishes the job and its result is dropped.
    fn cancel(&mut self) {
        if self.loaded.is_none() {
            self.note = Some("nothing is open yet to go back to: q quits".into());
            return;
        }
        let Some(j) = self.job.take() else { return };
        self.dropping += 1;
        for s in self.status.0.iter_mut() {
            if *s == Status::Running {
                *s = Status::Unchecked;
            }
        }
        if let Some(b) = self.breaking.as_mut() {
            b.running = false;
        }
        self.note = Some(format!(
            "cancelled {}: it finishes in the background (halo2 cannot stop mid-way) and its \
             result is dropped; a new job waits for it",
            j.what
        ));
    }

    /// Copy the selected link's full hash.
    fn copy(&mut self) {
        let Some(l) = &self.loaded else { return };
        let r = &l.folder.receipt;
        let (what, hash) = match self.selected {
            ChainLink::FloatOnnx => ("model.onnx", &r.model_commitment.onnx_sha256),
            ChainLink::Quantized => ("quantized.json", &r.model_commitment.quantized_sha256),
            ChainLink::Circuit => ("circuit.json", &r.model_commitment.circuit_sha256),
            ChainLink::VerifierKey => ("the verifier key", &r.verifier.vk_sha256),
            ChainLink::Proof => ("proof.bin", &r.proof.sha256),
            ChainLink::Receipt => ("receipt.json", &l.receipt_sha256),
        };
        self.note = Some(format!(
            "copied the sha256 of {what} ({}) to the clipboard (OSC 52: if the terminal allows it)",
            hash
        ));
        self.effect = Some(Effect::Copy(hash.clone()));
    }

    /// Open the selected link's artifact in the pager, when it is text.
    fn open(&mut self) {
        let Some(l) = &self.loaded else { return };
        use crate::receipt::{
            CIRCUIT_FILE, MODEL_FILE, PROOF_FILE, QUANTIZED_FILE, RECEIPT_FILE, VK_FILE,
        };
        let file = match self.selected {
            ChainLink::FloatOnnx => MODEL_FILE,
            ChainLink::Quantized => QUANTIZED_FILE,
            ChainLink::Circuit => CIRCUIT_FILE,
            ChainLink::VerifierKey => VK_FILE,
            ChainLink::Proof => PROOF_FILE,
            ChainLink::Receipt => RECEIPT_FILE,
        };
        let path = l.folder.dir.join(file);
        self.note = Some(if file == MODEL_FILE || file == PROOF_FILE {
            format!(
                "{file} is binary: `zkreceipt model` describes a model, `xxd` shows the proof bytes"
            )
        } else if !path.is_file() {
            format!("{file} is not in this folder")
        } else {
            self.effect = Some(Effect::Page(path));
            return;
        });
    }

    /// A mouse click: on a link of the chain bar selects it; on a pane focuses it.
    pub fn click(&mut self, at: Target) {
        if self.breaking.is_some() || self.help {
            return;
        }
        match at {
            Target::Link(l) => {
                if l != self.selected {
                    self.selected = l;
                    self.scroll = 0;
                }
            }
            Target::Pane(p) => self.pane = p,
        }
    }

    /// The mouse wheel over a pane scrolls it (and focuses it).
    pub fn wheel(&mut self, at: Target, down: bool) {
        if let Target::Pane(p) = at
            && self.breaking.is_none()
            && !self.help
        {
            self.pane = p;
            self.scroll_by(if down { 3 } else { -3 });
        }
    }

    fn handle_break(&mut self, a: Action) -> Vec<Command> {
        let (Some(b), Some(l)) = (self.breaking.as_mut(), self.loaded.as_ref()) else {
            return vec![];
        };
        let folder = &l.folder;
        match a {
            // The folder was never changed: closing restores it, and the chain bar.
            Action::Esc if !b.running => {
                self.status = b.saved;
                self.breaking = None;
            }
            Action::Up => b.step(-1, folder),
            Action::Down => b.step(1, folder),
            Action::PageUp | Action::BackTab | Action::Left => b.jump(false, folder),
            Action::PageDown | Action::Tab | Action::Right => b.jump(true, folder),
            Action::Enter if !b.running && matches!(b.selected, Row::More(_)) => b.show_all(folder),
            Action::Enter if !b.running => {
                if let Some((index, c)) = b.change() {
                    let mut changed = folder.clone();
                    (c.tamper)(&mut changed);
                    let what = format!("break test: {}", c.item);
                    b.running = true;
                    b.verdict = None;
                    self.begin(&what);
                    return vec![Command::BreakCase(index, Box::new(changed))];
                }
            }
            _ => {}
        }
        vec![]
    }

    /// Take a worker event.
    pub fn on_event(&mut self, e: Event) {
        if self.dropping > 0 {
            // A cancelled job's progress or result.
            if !matches!(e, Event::Progress { .. }) {
                self.dropping -= 1;
            }
            return;
        }
        match e {
            Event::Progress {
                stage,
                fraction,
                elapsed_s,
            } => {
                if let Some(j) = self.job.as_mut() {
                    j.stage = stage;
                    j.fraction = fraction;
                    j.elapsed_s = elapsed_s;
                }
            }
            Event::Loaded(l) => {
                self.job = None;
                self.loaded = Some(l);
                self.status = Statuses::all(Status::Unchecked);
            }
            Event::Verified {
                verified,
                reason,
                seconds,
            } => {
                self.job = None;
                let s = if verified {
                    Status::Holds
                } else {
                    Status::Broken
                };
                self.status[ChainLink::VerifierKey] = s;
                self.status[ChainLink::Proof] = s;
                self.verdict = Some((verified, reason, seconds));
                self.last = Some(Check::Verify);
            }
            Event::Audited(report) => {
                self.job = None;
                // Each audit check onto the link it derives; the receipt holds when all do.
                let st = |ok: bool| if ok { Status::Holds } else { Status::Broken };
                for l in ChainLink::ALL {
                    self.status[l] = match l {
                        ChainLink::Receipt => st(report.holds),
                        _ => match report.verdict_at(l) {
                            None => Status::Unchecked,
                            Some(None) => Status::Skipped,
                            Some(Some(ok)) => st(ok),
                        },
                    };
                }
                self.audit = Some(report);
                self.last = Some(Check::Audit);
            }
            Event::BreakResult {
                index,
                verified,
                reason,
            } => {
                self.job = None;
                if let Some(b) = self.breaking.as_mut() {
                    b.running = false;
                    b.verdict = Some((index, verified, reason));
                    // The chain bar shows the changed folder: the link that should catch the
                    // change, as verify judged it.
                    self.status = b.saved;
                    if let Some(c) = b.items.get(index) {
                        self.status[c.link] = if verified {
                            Status::Holds
                        } else {
                            Status::Broken
                        };
                    }
                }
            }
            Event::Failed(msg) => {
                self.job = None;
                if let Some(b) = self.breaking.as_mut() {
                    b.running = false;
                }
                for s in self.status.0.iter_mut() {
                    if *s == Status::Running {
                        *s = Status::Unchecked;
                    }
                }
                self.error = Some(msg);
            }
        }
    }
}
