//! The command line as scripts and newcomers meet it: `--out` never deletes what zkreceipt did
//! not write, `--json` failures are one JSON document on stdout, `--version`, shell completions
//! and the manual page.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn digits() -> (String, String) {
    let (m, i, _) = sample("digits");
    (m.to_str().unwrap().into(), i.to_str().unwrap().into())
}

fn prove_into(out: &Path, extra: &[&str]) -> std::process::Output {
    let (m, i) = digits();
    prove_seeded(Path::new(&m), Path::new(&i), out, "7", extra)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn out_replaces_only_what_zkreceipt_wrote() {
    let dir = work_dir("cli-out");
    let r = dir.join("receipt");
    let o = prove_into(&r, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("replaced"), "{}", stderr(&o));

    // Its own receipt folder is replaced, and the report says so (stderr, and "replaced" in
    // the JSON document).
    let o = prove_into(&r, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!(
        "replaced the existing receipt folder {}",
        r.display()
    )));
    assert_eq!(stdout_json(&o)["replaced"], true);

    // A file of the user's in it: refused before any work, naming the file; nothing changes.
    std::fs::write(r.join("notes.txt"), "mine").unwrap();
    let before = std::fs::read(r.join("proof.bin")).unwrap();
    let o = prove_into(&r, &["--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("`notes.txt`") && err.contains("--force"),
        "{err}"
    );
    assert!(
        !err.contains("quantize"),
        "refused after work started: {err}"
    );
    assert_eq!(stdout_json(&o)["error"]["kind"], "invalid");
    assert_eq!(
        std::fs::read_to_string(r.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read(r.join("proof.bin")).unwrap(), before);

    // A folder of the user's that happens to hold receipt file names but no receipt.json (their
    // model and input): refused too.
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    let (m, _) = digits();
    std::fs::copy(&m, mine.join("model.onnx")).unwrap();
    let o = prove_into(&mine, &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no receipt.json"), "{}", stderr(&o));
    assert_eq!(names(&mine), ["model.onnx"]);

    // --force replaces whatever is there, and says so.
    let o = prove_into(&r, &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("replaced the existing receipt folder"));
    assert!(!r.join("notes.txt").exists());
    assert_eq!(verify(&r).0, 0);

    // A file at --out is never replaced; an empty folder is written into.
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    let o = prove_into(&file, &["--force"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("is not a folder"), "{}", stderr(&o));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = prove_into(&empty, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("replaced"));
}

#[test]
fn setup_and_redact_refuse_a_folder_holding_other_files() {
    let dir = work_dir("cli-out-kinds");
    let busy = dir.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("todo.md"), "mine").unwrap();
    let (m, i) = digits();
    let out = busy.to_str().unwrap();
    let o = zk(&["setup", &m, "--calibration", &i, "--out", out]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("`todo.md`") && stderr(&o).contains("package"));
    // A receipt folder is not a package either.
    let r = dir.join("hashed");
    let o = prove_into(&r, &["--param-visibility", "hashed"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = zk(&[
        "setup",
        &m,
        "--calibration",
        &i,
        "--out",
        r.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("`proof.bin`"), "{}", stderr(&o));
    let o = zk(&["redact", r.to_str().unwrap(), "--out", out]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("`todo.md`"), "{}", stderr(&o));
    assert_eq!(names(&busy), ["todo.md"]);
    let o = zk(&["redact", r.to_str().unwrap(), "--out", out, "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("replaced the existing receipt folder"));
    assert!(!busy.join("todo.md").exists());
}

/// The error document of a failed `--json` command: one JSON document on stdout, the human
/// message on stderr, the exit code kept.
fn json_error(args: &[&str], code: i32) -> Value {
    let o = zk(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains("error"), "{args:?}: {}", stderr(&o));
    let doc = stdout_json(&o);
    let e = &doc["error"];
    for key in ["kind", "file", "field", "message"] {
        assert!(e.get(key).is_some(), "{args:?}: no `{key}` in {doc}");
    }
    assert!(!e["message"].as_str().unwrap().is_empty());
    doc
}

#[test]
fn json_failures_are_one_document_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = digits();
    let bad = dir.path().join("bad.json");
    let mut data = vec!["0.1"; 64];
    data[5] = "false";
    std::fs::write(&bad, format!("{{\"input_data\": [[{}]]}}", data.join(","))).unwrap();
    let bad = bad.to_str().unwrap();
    let e = &json_error(&["run", &m, "--input", bad, "--json"], 3)["error"];
    assert_eq!(e["kind"], "invalid");
    assert_eq!(e["file"], bad);
    assert_eq!(e["field"], "input_data[0][5]");

    let e = &json_error(&["verify", "no/such/receipt", "--json"], 3)["error"];
    assert_eq!(e["file"], "no/such/receipt");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no such file or folder")
    );

    let (u, _, _) = test_data("unsupported");
    // (`model --json` reports an unsupported model in its own document; `run` refuses it.)
    let e = &json_error(&["run", u.to_str().unwrap(), "--input", bad, "--json"], 3)["error"];
    assert_eq!(e["kind"], "unsupported");
    let nodes: Vec<&str> = e["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert!(nodes == ["my_hardmax"], "{e}");

    // A usage error clap finds, and one the command finds.
    let e = &json_error(&["prove", &m, "--json"], 2)["error"];
    assert_eq!(e["kind"], "usage");
    assert!(e["message"].as_str().unwrap().contains("--input"), "{e}");
    let (i_, i2) = (digits().1, digits().1);
    let e = &json_error(
        &[
            "prove", &m, "--input", &i_, "--input", &i2, "--out", "x", "--json",
        ],
        2,
    )["error"];
    assert!(e["message"].as_str().unwrap().contains("package"), "{e}");

    // Without --json, stdout stays empty on failure.
    let o = zk(&["run", &m, "--input", bad]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());
}

#[test]
fn version_completions_and_manual_page() {
    let o = zk(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let v = String::from_utf8(o.stdout).unwrap();
    assert_eq!(v.trim(), format!("zkreceipt {}", env!("CARGO_PKG_VERSION")));
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef zkreceipt"),
        ("fish", "complete -c zkreceipt"),
    ] {
        let o = zk(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains(marker), "{shell}: no `{marker}`");
        // Every command and a nested flag are completed.
        for word in ["break-test", "setup", "param-visibility"] {
            assert!(text.contains(word), "{shell}: no `{word}`");
        }
    }
    let o = zk(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));

    let o = zk(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.contains(".TH zkreceipt 1") && page.contains("break\\-test"));
    let dir = tempfile::tempdir().unwrap();
    let o = zk(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pages = names(dir.path());
    assert!(pages.contains(&"zkreceipt.1".to_string()));
    let prove = std::fs::read_to_string(dir.path().join("zkreceipt-prove.1")).unwrap();
    assert!(prove.contains("\\-\\-force"), "{prove}");
}
