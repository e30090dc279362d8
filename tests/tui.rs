//! The inspector, headless: the App state machine driven by actions with real jobs (run
//! synchronously on a real receipt folder), and snapshots of every screen at fixed sizes.

mod common;

use std::path::PathBuf;
use std::sync::{Once, OnceLock};

use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use zkreceipt::receipt::ChainLink;
use zkreceipt::receipt::break_test::Group;
use zkreceipt::tui::app::{Action, App, Status, Statuses};
use zkreceipt::tui::jobs::Command;
use zkreceipt::tui::ui::render;
use zkreceipt::tui::{act_sync, exec_sync};

static ENV: Once = Once::new();

/// Parameters go to the test's own cache, set once before any test reads the environment.
fn init() {
    ENV.call_once(|| {
        // SAFETY: every test calls init() first and Once blocks them until this returns, so no
        // other thread of this binary reads the environment meanwhile.
        unsafe {
            std::env::set_var(
                "ZKRECEIPT_CACHE",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params-cache"),
            )
        };
    });
}

/// One receipt folder of the digits sample, proved once per test binary (seeded).
fn folder() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        init();
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tui-receipt");
        let (m, i, _) = sample("digits");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_zkreceipt"))
            .args([
                "prove",
                m.to_str().unwrap(),
                "--input",
                i.to_str().unwrap(),
                "--out",
                d.to_str().unwrap(),
                "--seed",
                "3",
            ])
            .env(
                "ZKRECEIPT_CACHE",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params-cache"),
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Unbound and load-dependent: pinned for the snapshots (see below).
        edit_receipt(&d, |r| r["proof"]["prove_s"] = serde_json::json!(0.5));
        d
    })
    .clone()
}

/// Run the binary with the parameter cache `cache`; it must succeed.
fn zk_ok(cache: &std::path::Path, args: &[&str]) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zkreceipt"))
        .args(args)
        .env("ZKRECEIPT_CACHE", cache)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn exec(app: &mut App, cmds: Vec<Command>) {
    exec_sync(app, cmds);
}

fn act(app: &mut App, a: Action) {
    act_sync(app, a);
}

/// The inspector on a folder, once its opening job has run.
fn open(dir: PathBuf) -> App {
    let mut app = App::new(Command::Open(dir));
    let cmds = app.start();
    exec(&mut app, cmds);
    app
}

fn opened() -> App {
    init();
    let mut app = open(folder());
    assert!(app.error.is_none(), "{:?}", app.error);
    // The folder's path is volatile; the title is what a user opening the sample sees.
    app.title = Some("samples/digits".into());
    app
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn snap(name: &str, text: String) {
    insta::with_settings!({filters => vec![
        (r"\d+\.\d{3}s", "[secs]"),
        (r#""prove_s": [0-9.e-]+"#, r#""prove_s": [secs]"#),
    ]}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn state_machine_follows_the_chain() {
    let mut app = opened();
    assert!(app.loaded.is_some() && app.job.is_none());
    assert_eq!(app.status, Statuses::all(Status::Unchecked));
    for i in 1..=6 {
        act(&mut app, Action::Right);
        assert_eq!(app.selected, ChainLink::ALL[i % 6]);
    }
    act(&mut app, Action::Left);
    assert_eq!(app.selected, ChainLink::Receipt);
    act(&mut app, Action::Tab);
    assert_eq!(app.pane, zkreceipt::tui::app::Pane::Gap);

    // v verifies now. A key pressed while it runs says the inspector is busy and starts
    // nothing.
    let cmds = app.handle(Action::Verify);
    assert_eq!(cmds.len(), 1);
    assert!(app.handle(Action::Audit).is_empty());
    let s = screen(&app, 100, 30);
    assert!(s.contains("busy: press a again when this ends"), "{s}");
    exec(&mut app, cmds);
    assert!(app.job.is_none());
    assert_eq!(app.verdict.as_ref().map(|v| v.0), Some(true));
    assert_eq!(app.status[ChainLink::VerifierKey], Status::Holds);
    assert_eq!(app.status[ChainLink::Proof], Status::Holds);

    // b opens on the first output value; Enter changes it and the proof rejects it, and the
    // chain bar shows the Proof link broken for the changed folder.
    act(&mut app, Action::BreakTest);
    let b = app.breaking.as_ref().unwrap();
    let (_, c) = b.change().unwrap();
    assert!(c.item.starts_with("output"), "{}", c.item);
    let (before, after) = b.preview.clone().unwrap();
    assert_eq!(
        after.parse::<i64>().unwrap(),
        before.parse::<i64>().unwrap() + 1
    );
    act(&mut app, Action::Enter);
    let (_, verified, reason) = app.breaking.as_ref().unwrap().verdict.clone().unwrap();
    assert!(!verified);
    let reason = reason.unwrap();
    assert!(reason.contains("proof"), "{reason}");
    assert!(!reason.contains("ConstraintSystemFailure"), "{reason}");
    assert_eq!(app.status[ChainLink::Proof], Status::Broken);
    assert_eq!(app.status[ChainLink::VerifierKey], Status::Holds);
    // Tab jumps group by group to the unbound fields; one keeps the verdict.
    for _ in 0..10 {
        let b = app.breaking.as_ref().unwrap();
        if b.change().unwrap().1.group == Group::Unbound {
            break;
        }
        act(&mut app, Action::Tab);
    }
    while !app
        .breaking
        .as_ref()
        .unwrap()
        .change()
        .unwrap()
        .1
        .item
        .starts_with("proof.prove_s")
    {
        act(&mut app, Action::Down);
    }
    act(&mut app, Action::Enter);
    assert!(app.breaking.as_ref().unwrap().verdict.as_ref().unwrap().1);
    // Esc restores and closes; the folder still verifies.
    act(&mut app, Action::Esc);
    assert!(app.breaking.is_none());
    act(&mut app, Action::Verify);
    assert_eq!(app.verdict.as_ref().map(|v| v.0), Some(true));

    // a audits every link.
    act(&mut app, Action::Audit);
    assert_eq!(app.status, Statuses::all(Status::Holds));
    assert!(app.audit.as_ref().unwrap().holds);

    act(&mut app, Action::Help);
    assert!(app.help);
    act(&mut app, Action::Verify);
    assert!(
        app.help,
        "keys other than Esc/?/Enter do nothing under help"
    );
    act(&mut app, Action::Esc);
    assert!(!app.help);
    act(&mut app, Action::Quit);
    assert!(app.quit);
}

#[test]
fn a_broken_folder_shows_broken_links() {
    init();
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tui-broken");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(folder()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    let p = d.join("proof.bin");
    let mut b = std::fs::read(&p).unwrap();
    b[9] ^= 1;
    std::fs::write(&p, b).unwrap();
    let mut app = open(d);
    act(&mut app, Action::Verify);
    assert_eq!(app.verdict.as_ref().map(|v| v.0), Some(false));
    assert_eq!(app.status[ChainLink::Proof], Status::Broken);
    act(&mut app, Action::Audit);
    assert_eq!(app.status[ChainLink::FloatOnnx], Status::Holds);
    assert_eq!(app.status[ChainLink::Proof], Status::Broken);
    assert_eq!(app.status[ChainLink::Receipt], Status::Broken);
}

#[test]
fn a_redacted_folder_opens_verifies_and_says_what_it_lacks() {
    // Hashed weights, redacted: no model.onnx, no weights. The inspector opens it, verifies
    // it, and says why the float model and the gap cannot be shown.
    init();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (full, red) = (base.join("tui-hashed"), base.join("tui-redacted"));
    let (m, i, _) = sample("digits");
    let cache = base.join("params-cache");
    let run = |args: &[&str]| zk_ok(&cache, args);
    let o = prove_seeded(&m, &i, &full, "3", &["--param-visibility", "hashed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The proving time is unbound and varies with the machine's load: pinned, so that the
    // snapshots' widths do not move with it.
    edit_receipt(&full, |r| r["proof"]["prove_s"] = serde_json::json!(2.5));
    run(&[
        "redact",
        full.to_str().unwrap(),
        "--out",
        red.to_str().unwrap(),
    ]);
    let mut app = open(red);
    assert!(app.error.is_none(), "{:?}", app.error);
    act(&mut app, Action::Verify);
    assert_eq!(app.verdict.as_ref().map(|v| v.0), Some(true));
    let s = screen(&app, 120, 40);
    assert!(s.contains("Redacted folder"), "{s}");
    assert!(s.contains("The folder is redacted (no model.onnx)"), "{s}");
    // The audit cannot check model.onnx here: skipped, drawn as such, not as holding.
    act(&mut app, Action::Audit);
    assert_eq!(app.status[ChainLink::FloatOnnx], Status::Skipped);
    assert_eq!(app.status[ChainLink::Proof], Status::Holds);
    assert_eq!(app.status[ChainLink::Quantized], Status::Skipped);
    let s = screen(&app, 120, 40);
    assert!(s.contains("1c95b2f0 –"), "{s}");
    // The details say which checks were skipped and why; the status line reports the audit
    // (not the verify before it), skipped links counted apart.
    app.title = Some("digits, redacted".into());
    let s = screen(&app, 120, 40);
    assert!(s.contains("model.onnx → sha256: skipped"), "{s}");
    assert!(s.contains("✓ audit:") && s.contains("skipped"), "{s}");
    snap("redacted_audited_float_onnx_120x40", s);
    app.selected = ChainLink::Receipt;
    snap("redacted_audited_receipt_120x40", screen(&app, 120, 40));

    // A broken proof of a hashed-weights receipt: the audit's extra check (the weights
    // commitment) does not shift its verdict onto another link; the checklist shows it.
    let broken = base.join("tui-hashed-bad-proof");
    copy_folder(&full, &broken);
    let mut proof = std::fs::read(broken.join("proof.bin")).unwrap();
    proof[40] ^= 1;
    std::fs::write(broken.join("proof.bin"), proof).unwrap();
    let mut app = open(broken);
    app.title = Some("digits, hashed weights, proof changed".into());
    act(&mut app, Action::Audit);
    assert_eq!(app.status[ChainLink::Quantized], Status::Holds);
    assert_eq!(app.status[ChainLink::VerifierKey], Status::Holds);
    assert_eq!(app.status[ChainLink::Proof], Status::Broken);
    app.selected = ChainLink::Proof;
    let s = screen(&app, 120, 40);
    assert!(
        s.contains("✗ audit: 1 broken") && s.contains("proof: BROKEN"),
        "{s}"
    );
    snap("hashed_broken_proof_audited_120x40", s);
    app.selected = ChainLink::Receipt;
    let s = screen(&app, 120, 70);
    assert!(s.contains("✗ output bound"), "{s}");
    snap("hashed_broken_proof_checklist_120x70", s);

    // The audit's checks land on the links they derive, whatever their number: hashed weights
    // add one (the weights commitment, on Quantized), and a changed vk.txt shows on the key.
    let bad = base.join("tui-hashed-bad-key");
    copy_folder(&full, &bad);
    let vk = std::fs::read_to_string(bad.join("vk.txt")).unwrap();
    std::fs::write(bad.join("vk.txt"), vk.replacen("0x", "0y", 1)).unwrap();
    let mut app = open(bad);
    act(&mut app, Action::Audit);
    let audit = app.audit.as_ref().unwrap();
    assert!(
        audit
            .links
            .iter()
            .any(|l| l.link.contains("weights commitment"))
    );
    assert_eq!(app.status[ChainLink::Quantized], Status::Holds);
    assert_eq!(app.status[ChainLink::Circuit], Status::Holds);
    assert_eq!(app.status[ChainLink::VerifierKey], Status::Broken);
    assert_eq!(app.status[ChainLink::Receipt], Status::Broken);
}

fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A private receipt: the checklist does not tick an input binding, and what the proof does not
/// claim never says it binds the input values.
#[test]
fn a_private_receipt_claims_no_input_binding() {
    init();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let private = base.join("tui-private");
    let (m, i, _) = sample("digits");
    let o = prove_seeded(
        &m,
        &i,
        &private,
        "3",
        &["--input-visibility", "private", "--force"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut app = open(private);
    app.title = Some("digits, private input".into());
    app.selected = ChainLink::Receipt;
    let s = screen(&app, 120, 60);
    assert!(!s.contains("binds the input values"), "{s}");
    assert!(
        s.contains("– input: private, bound to nothing public"),
        "{s}"
    );
    // Nothing is ticked before a check runs; the prover's figures are never ticked by verify.
    assert!(s.contains("? output bound"), "{s}");
    assert!(
        s.contains("– quantization figures (the prover's report, unbound"),
        "{s}"
    );
    act(&mut app, Action::Verify);
    let s = screen(&app, 120, 60);
    assert!(s.contains("✓ output bound") && s.contains("✓ proof checked by this verifier"));
    assert!(s.contains("– quantization figures"), "{s}");
    snap("private_receipt_verified_120x60", s);
}

#[test]
fn a_missing_folder_is_an_error_on_screen_not_a_panic() {
    init();
    let mut app = App::new(Command::Open(PathBuf::from("/nonexistent/receipt")));
    let cmds = app.start();
    assert_eq!(app.failed_start(), None, "still opening");
    exec(&mut app, cmds);
    let missing = "/nonexistent/receipt: cannot read it: no such file or folder";
    assert!(app.error.as_ref().unwrap().contains(missing));
    assert!(screen(&app, 100, 30).contains("error: "));
    // Quitting now exits non-zero with this error (tui::run).
    assert!(app.failed_start().unwrap().contains(missing));
}

#[test]
fn snapshot_while_building_the_chain() {
    init();
    // Relative paths: the job is never run, and the screen must not depend on the checkout.
    let mut app = App::new(Command::Build {
        model: PathBuf::from("samples/digits/model.onnx"),
        input: PathBuf::from("samples/digits/input.json"),
        out: PathBuf::from("unused"),
    });
    // Started, not yet run: what the first frame shows while the worker builds.
    let _ = app.start();
    app.on_event(zkreceipt::tui::jobs::Event::Progress {
        stage: "keygen".into(),
        fraction: 0.5,
        elapsed_s: 1.25,
    });
    let text = screen(&app, 100, 30);
    assert!(text.contains("keygen"));
    snap(
        "building_100x30",
        text.replace(env!("CARGO_MANIFEST_DIR"), "[repo]"),
    );
}

#[test]
fn snapshots_of_every_screen() {
    let mut app = opened();
    for (i, name) in [
        "float_onnx",
        "quantized",
        "circuit",
        "verifier_key",
        "proof",
        "receipt",
    ]
    .iter()
    .enumerate()
    {
        app.selected = ChainLink::ALL[i];
        snap(&format!("link_{name}_120x40"), screen(&app, 120, 40));
    }
    app.selected = ChainLink::FloatOnnx;
    snap("overview_80x24", screen(&app, 80, 24));
    snap("too_small_60x20", screen(&app, 60, 20));
    act(&mut app, Action::Verify);
    app.selected = ChainLink::Proof;
    snap("verified_proof_100x30", screen(&app, 100, 30));
    act(&mut app, Action::Audit);
    app.selected = ChainLink::Receipt;
    snap("audited_receipt_120x40", screen(&app, 120, 40));
    // Scrolled down to the receipt's JSON, its six bound fields highlighted.
    app.scroll = 44;
    snap("receipt_json_120x40", screen(&app, 120, 40));
    app.scroll = 0;
    act(&mut app, Action::BreakTest);
    act(&mut app, Action::Enter);
    snap("break_test_rejected_100x30", screen(&app, 100, 30));
    act(&mut app, Action::Esc);
    act(&mut app, Action::Help);
    snap("help_100x30", screen(&app, 100, 30));
}

/// A receipt proved against a package shows the package's data-set gap in the Quantized link,
/// marked as the prover's unbound report; it verifies and audits like any other.
#[test]
fn a_package_receipt_shows_the_data_set_gap() {
    init();
    let w = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tui-package");
    let d = root().join("samples").join("digits");
    let (pkg, out) = (w.join("pkg"), w.join("r"));
    let run = |args: &[&str]| {
        zk_ok(
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params-cache"),
            args,
        )
    };
    let cal = d.join("calibration.jsonl");
    let model = d.join("model.onnx");
    let input = d.join("input.json");
    run(&[
        "setup",
        model.to_str().unwrap(),
        "--calibration",
        cal.to_str().unwrap(),
        "--out",
        pkg.to_str().unwrap(),
    ]);
    run(&[
        "prove",
        pkg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    let mut app = open(out);
    assert!(app.error.is_none(), "{:?}", app.error);
    act(&mut app, Action::Right);
    assert_eq!(app.selected, ChainLink::Quantized);
    let text = screen(&app, 140, 60);
    assert!(
        text.contains("data set: 100 calibration samples, margin 2×"),
        "{text}"
    );
    assert!(text.contains("unbound"), "{text}");
    assert!(
        text.contains("accuracy 100.0% float, 100.0% circuit (100 labelled)"),
        "{text}"
    );
    act(&mut app, Action::Audit);
    assert!(app.audit.as_ref().unwrap().holds);
}

/// The gap pane: Tab gives it focus and scrolling, End goes to its last screenful and no
/// further, s sorts the elements by error; elements are at tensor coordinates, with their error
/// in output steps, the top-2 margin and the local error per layer.
#[test]
fn the_gap_pane_scrolls_to_its_end_and_sorts_by_error() {
    let mut app = opened();
    let s = screen(&app, 100, 30);
    assert!(s.contains("[0,2]") && s.contains("lsb"), "{s}");
    act(&mut app, Action::Tab);
    act(&mut app, Action::End);
    let s = screen(&app, 100, 30);
    assert!(
        s.contains("top-2 margin (circuit)") && s.contains("local"),
        "{s}"
    );
    snap("gap_scrolled_to_end_100x30", s);
    let end = app.gap_scroll;
    act(&mut app, Action::Down);
    act(&mut app, Action::PageDown);
    assert_eq!(app.gap_scroll, end, "scrolling stops at the end");
    act(&mut app, Action::Home);
    assert_eq!(app.gap_scroll, 0);
    // The details pane kept its own offset.
    assert_eq!(app.scroll, 0);
    act(&mut app, Action::Sort);
    let s = screen(&app, 100, 30);
    assert!(s.contains("Quantization gap, largest error first"), "{s}");
    // The element with the largest error comes first when sorted.
    let o = &app
        .loaded
        .as_ref()
        .unwrap()
        .report
        .as_ref()
        .unwrap()
        .outputs[0];
    let err = |i: usize| (o.float[i] - o.quantized[i]).abs();
    let worst = (0..o.float.len())
        .max_by(|&a, &b| err(a).total_cmp(&err(b)))
        .unwrap();
    let first_row = s.lines().find(|l| l.contains("[0,")).unwrap();
    assert!(first_row.contains(&format!("[0,{worst}]")), "{first_row}");
}

/// The conventions a terminal user expects: y copies the selected link's full hash (OSC 52),
/// o opens its file in the pager (binary files are refused with a hint), the mouse selects links
/// and panes, Esc cancels a running job (its result is dropped), NO_COLOR strips colours, and
/// the break test shows a sample of the outputs until asked for all.
#[test]
fn copy_open_mouse_cancel_no_color_and_all_outputs() {
    use ratatui::layout::Rect;
    use zkreceipt::tui::app::{Effect, Pane, Row, Target};
    use zkreceipt::tui::ui::{strip_colors, target_at};

    let mut app = opened();
    let sha = app
        .loaded
        .as_ref()
        .unwrap()
        .folder
        .receipt
        .proof
        .sha256
        .clone();
    app.click(Target::Link(ChainLink::Proof));
    assert_eq!(app.selected, ChainLink::Proof);
    act(&mut app, Action::Copy);
    assert_eq!(app.effect.take(), Some(Effect::Copy(sha)));
    assert!(app.note.as_ref().unwrap().contains("copied"));
    assert_eq!(zkreceipt::tui::base64_encode(b"hello"), "aGVsbG8=");
    assert_eq!(zkreceipt::tui::base64_encode(b"hi"), "aGk=");
    // The proof is binary: no pager, a hint.
    act(&mut app, Action::Open);
    assert!(app.effect.is_none());
    assert!(app.note.as_ref().unwrap().contains("binary"));
    app.click(Target::Link(ChainLink::Quantized));
    act(&mut app, Action::Open);
    match app.effect.take() {
        Some(Effect::Page(p)) => assert!(p.ends_with("quantized.json"), "{p:?}"),
        e => panic!("{e:?}"),
    }

    // `/` searches the details pane: typed text, Enter scrolls to the first match, n the next.
    app.click(Target::Link(ChainLink::Circuit));
    act(&mut app, Action::Search);
    assert!(app.typing());
    for c in "FC".chars() {
        app.type_key(Some(c));
    }
    app.type_key(Some('x'));
    app.type_key(None);
    let s = screen(&app, 100, 30);
    assert!(s.contains("/FC▏"), "{s}");
    let found = app.search_matches();
    assert!(found >= 2, "{s}");
    act(&mut app, Action::Enter);
    assert!(!app.typing());
    let s = screen(&app, 100, 30);
    assert!(s.contains(&format!("/FC: match 1 of {found}")), "{s}");
    act(&mut app, Action::NextMatch);
    assert!(screen(&app, 100, 30).contains(&format!("match 2 of {found}")));
    act(&mut app, Action::Esc);
    assert!(app.search.is_none());

    // The mouse: what lies where, on a 100×30 screen.
    let area = Rect::new(0, 0, 100, 30);
    assert_eq!(
        target_at(area, 3, 1),
        Some(Target::Link(ChainLink::FloatOnnx))
    );
    assert_eq!(
        target_at(area, 97, 2),
        Some(Target::Link(ChainLink::Receipt))
    );
    assert_eq!(target_at(area, 10, 10), Some(Target::Pane(Pane::Details)));
    assert_eq!(target_at(area, 80, 10), Some(Target::Pane(Pane::Gap)));
    assert_eq!(target_at(Rect::new(0, 0, 40, 10), 3, 1), None);
    app.wheel(Target::Pane(Pane::Gap), true);
    assert_eq!(app.pane, Pane::Gap);
    assert!(app.gap_scroll > 0);

    // Esc cancels a running verify: its result, when it comes, is dropped.
    let cmds = app.handle(Action::Verify);
    assert!(app.busy());
    act(&mut app, Action::Esc);
    assert!(!app.busy());
    assert!(app.note.as_ref().unwrap().contains("cancelled verify"));
    assert_eq!(app.status[ChainLink::Proof], Status::Unchecked);
    exec(&mut app, cmds);
    assert!(app.verdict.is_none());
    // The next verify is heard.
    act(&mut app, Action::Verify);
    assert_eq!(app.verdict.as_ref().map(|v| v.0), Some(true));

    // NO_COLOR: no colour left in the frame.
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| {
        render(&app, f);
        strip_colors(f.buffer_mut());
    })
    .unwrap();
    let buf = t.backend().buffer();
    assert!(
        buf.content
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset)
    );

    // The break test: a sample of the output elements, then all of them.
    act(&mut app, Action::BreakTest);
    let shown = |app: &App| app.breaking.as_ref().unwrap().rows().len();
    let before = shown(&app);
    while !matches!(app.breaking.as_ref().unwrap().selected, Row::More(_)) {
        act(&mut app, Action::Down);
    }
    act(&mut app, Action::Enter);
    let b = app.breaking.as_ref().unwrap();
    assert!(b.all_outputs);
    // 10 outputs, an integer and a float change each: 20 rows where the sample had 8 and "more".
    assert_eq!(shown(&app), before + 20 - 8 - 1);
    assert!(b.change().unwrap().1.item.starts_with("output"));
}
