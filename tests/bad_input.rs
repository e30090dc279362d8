//! Bad input gets a clear error naming the file and what is wrong, exit 3, never a panic.

mod common;

use common::*;
use prost::Message;
use std::path::Path;
use tract_onnx::pb;

fn expect_error(args: &[&str], must_contain: &[&str]) {
    let out = zkreceipt(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "args {args:?}: stderr {err}");
    assert!(!err.contains("panicked"), "{err}");
    for m in must_contain {
        assert!(err.contains(m), "expected `{m}` in: {err}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn digits() -> (String, String) {
    let (m, i, _) = sample("digits");
    (m.to_str().unwrap().into(), i.to_str().unwrap().into())
}

#[test]
fn missing_model_file() {
    expect_error(
        &["model", "no/such/model.onnx"],
        &["no/such/model.onnx", "cannot read"],
    );
    let (_, i) = digits();
    expect_error(
        &["run", "no/such/model.onnx", "--input", &i],
        &["no/such/model.onnx"],
    );
}

#[test]
fn bytes_that_are_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let junk = write(
        dir.path(),
        "junk.onnx",
        "this is not a protobuf at all, just text\n",
    );
    expect_error(&["model", &junk], &["junk.onnx", "not"]);
    let empty = write(dir.path(), "empty.onnx", "");
    expect_error(&["model", &empty], &["empty.onnx", "empty"]);
    // Valid JSON is not ONNX either.
    let (_, i) = digits();
    expect_error(&["model", &i], &["input.json"]);
}

#[test]
fn unsupported_ops_are_named_before_any_other_work() {
    let (m, _, _) = test_data("unsupported");
    let m = m.to_str().unwrap();
    let out = zkreceipt(&["model", m]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("my_hardmax") && text.contains("Hardmax"),
        "{text}"
    );
    // Sum of several tensors is supported now: only Hardmax is named.
    assert!(!text.contains("✗ node `fine_relu`") && !text.contains("✗ node `my_sum`"));
    // `run` refuses before reading the (missing) input file.
    expect_error(
        &["run", m, "--input", "missing.json"],
        &["my_hardmax", "Hardmax", "1 unsupported"],
    );
}

#[test]
fn input_files_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = digits();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "short.json",
            format!("{{\"input_data\": [[{}]]}}", vec!["0.5"; 63].join(",")),
            vec!["63 values", "needs 64"],
        ),
        (
            "two.json",
            "{\"input_data\": [[1.0], [2.0]]}".into(),
            vec!["2 array(s)", "1 input(s)"],
        ),
        (
            "text.json",
            format!("{{\"input_data\": [[\"a\"{}]]}}", ",0.1".repeat(63)),
            vec!["input_data[0][0]", "not a number"],
        ),
        (
            "nan.json",
            format!("{{\"input_data\": [[NaN{}]]}}", ",0.1".repeat(63)),
            vec![
                "not valid JSON",
                "`NaN` is not a JSON number",
                "allow_nan=False",
            ],
        ),
        (
            "infinity.json",
            format!(
                "{{\"input_data\": [[0.1, -Infinity{}]]}}",
                ",0.1".repeat(62)
            ),
            vec!["`Infinity` is not a JSON number"],
        ),
        (
            "bool.json",
            format!("{{\"input_data\": [[0.1, true{}]]}}", ",0.1".repeat(62)),
            vec!["`input_data[0][1]` is true, not a number: input `input` is float (write 1 or 0)"],
        ),
        (
            "twice.json",
            format!(
                "{{\"input_data\": [[1]], \"input_data\": [[0.1{}]]}}",
                ",0.1".repeat(63)
            ),
            vec!["key `input_data` appears twice"],
        ),
        (
            "inf.json",
            format!("{{\"input_data\": [[1e999{}]]}}", ",0.1".repeat(63)),
            vec!["not valid JSON"],
        ),
        (
            "nokey.json",
            "{\"data\": [[1.0]]}".into(),
            vec!["missing field `input_data`"],
        ),
        (
            "broken.json",
            "{\"input_data\": [[1.0,".into(),
            vec!["not valid JSON"],
        ),
    ];
    for (name, text, msgs) in cases {
        let p = write(dir.path(), name, &text);
        let mut want = vec![name];
        want.extend(msgs);
        expect_error(&["run", &m, "--input", &p], &want);
    }
    expect_error(
        &["run", &m, "--input", "no/such/input.json"],
        &["no/such/input.json", "cannot read"],
    );
    // A UTF-8 byte order mark (Windows editors write one) is not an error.
    let (_, i) = digits();
    let mut bom = "\u{feff}".to_string();
    bom.push_str(&std::fs::read_to_string(&i).unwrap());
    let p = write(dir.path(), "bom.json", &bom);
    let out = zkreceipt(&["run", &m, "--input", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_value_too_large_for_the_chosen_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = digits();
    let p = write(
        dir.path(),
        "big.json",
        &format!("{{\"input_data\": [[100000.0{}]]}}", ",0.1".repeat(63)),
    );
    expect_error(
        &["run", &m, "--input", &p, "--scale", "12"],
        &[
            "big.json: input `input`",
            "element 0",
            "too large for scale 12",
        ],
    );
    // With the scale left to calibration, a tensor beyond the budget even at scale 0 is named.
    let p = write(
        dir.path(),
        "huge.json",
        &format!("{{\"input_data\": [[1e12{}]]}}", ",0.1".repeat(63)),
    );
    // The input file is at fault, and named (not the model).
    expect_error(
        &["run", &m, "--input", &p],
        &["huge.json: input `input`", "too large", "activation bits"],
    );
}

/// No panic report reaches the user, whatever went wrong.
fn assert_no_panic_report(err: &str) {
    let lower = err.to_lowercase();
    for bad in ["panicked", "backtrace", "crashed"] {
        assert!(!lower.contains(bad), "`{bad}` in stderr: {err}");
    }
}

/// The protobuf of the model `src`, changed by `edit`, written to `dir/name`.
fn mutated(src: &Path, dir: &Path, name: &str, edit: impl FnOnce(&mut pb::GraphProto)) -> String {
    let mut proto = pb::ModelProto::decode(&std::fs::read(src).unwrap()[..]).unwrap();
    edit(proto.graph.as_mut().unwrap());
    let p = dir.join(name);
    std::fs::write(&p, proto.encode_to_vec()).unwrap();
    p.to_str().unwrap().into()
}

type Edit = Box<dyn FnOnce(&mut pb::GraphProto)>;

#[test]
fn malformed_onnx_is_refused_without_a_panic_report() {
    let dir = tempfile::tempdir().unwrap();
    let (digits_model, input, _) = sample("digits");
    let i = input.to_str().unwrap();
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "ghost_output.onnx",
            Box::new(|g| g.output[0].name = "ghost".into()),
            "graph output `ghost`",
        ),
        (
            "huge_dims.onnx",
            Box::new(|g| g.initializer[0].dims = vec![1 << 24, 1 << 24]),
            "initializer `",
        ),
        (
            "overflowing_dims.onnx",
            Box::new(|g| g.initializer[0].dims = vec![1 << 40, 1 << 40]),
            "initializer `",
        ),
        (
            "negative_dim.onnx",
            Box::new(|g| g.initializer[0].dims[0] = -32),
            "negative",
        ),
        (
            "short_data.onnx",
            Box::new(|g| g.initializer[0].dims[0] += 1),
            "initializer `",
        ),
        (
            "typed_data.onnx",
            Box::new(|g| {
                let t = &mut g.initializer[0];
                t.float_data = vec![0.5; 3];
                t.raw_data.clear();
            }),
            "need 2048 values, the tensor carries 3",
        ),
        (
            "dangling_input.onnx",
            Box::new(|g| g.node[1].input[0] = "nowhere".into()),
            "reads `nowhere`",
        ),
    ];
    for (name, edit, what) in cases {
        let m = mutated(&digits_model, dir.path(), name, edit);
        expect_error(&["model", &m], &[name, what]);
        assert_no_panic_report(&stderr(&zkreceipt(&["model", &m])));
        let out = zkreceipt(&["model", &m, "--json"]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", stderr(&out));
        assert_no_panic_report(&stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("\"supported\": true"), "{name}: {text}");
        let out = zkreceipt(&["run", &m, "--input", i]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", stderr(&out));
        assert_no_panic_report(&stderr(&out));
    }
    // tract panics analysing a ReduceSum over axis 2^46: `model` says so, not "supported".
    let (multi_io, _, _) = test_data("multi_io");
    let m = mutated(&multi_io, dir.path(), "far_axis.onnx", |g| {
        let axes = g.initializer.iter_mut().find(|t| t.name == "axes").unwrap();
        axes.raw_data = (1i64 << 46).to_le_bytes().to_vec();
    });
    let out = zkreceipt(&["model", &m, "--json"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("far_axis.onnx"), "{err}");
    assert_no_panic_report(&err);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"supported\": true"));
}

/// Run the binary with the tests' parameter cache (proving needs IPA parameters).
fn zk_cached(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_zkreceipt"))
        .args(args)
        .env(
            "ZKRECEIPT_CACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("params-cache"),
        )
        .output()
        .unwrap()
}

/// A named pipe at `dir/name`, fed by a thread that writes `chunk` `times` times (endless when
/// None) once a reader opens it; the writer stops when the reader goes away.
#[cfg(unix)]
fn fifo(dir: &Path, name: &str, chunk: Vec<u8>, times: Option<usize>) -> String {
    let p = dir.join(name);
    let made = std::process::Command::new("mkfifo").arg(&p).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", p.display());
    let path = p.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        for _ in 0..times.unwrap_or(usize::MAX) {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    p.to_str().unwrap().to_string()
}

#[cfg(unix)]
#[test]
fn endless_and_huge_files_are_refused_quickly() {
    let start = std::time::Instant::now();
    let (m, _) = digits();
    expect_error(&["model", "/dev/zero"], &["/dev/zero", "a device"]);
    expect_error(
        &["run", &m, "--input", "/dev/zero"],
        &["/dev/zero", "the input", "a device"],
    );
    // A regular file over the cap is refused by its size, before a byte is read.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.onnx");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((2 << 30) + 1)
        .unwrap();
    expect_error(
        &["model", big.to_str().unwrap()],
        &["big.onnx", "2147483649 bytes", "2 GiB cap"],
    );
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

#[cfg(unix)]
#[test]
fn inputs_may_come_through_pipes_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (m, i) = digits();
    // A pipe (as from `--input <(…)`) is read once, like a file.
    let good = fifo(dir.path(), "good", std::fs::read(&i).unwrap(), Some(1));
    let out = zkreceipt(&["run", &m, "--input", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // `prove` too: the receipt keeps the input as read (it used to read the file twice and
    // wait forever on the emptied pipe).
    let input_bytes = std::fs::read(&i).unwrap();
    let good = fifo(dir.path(), "again", input_bytes.clone(), Some(1));
    let receipt = dir.path().join("receipt");
    let r = receipt.to_str().unwrap();
    let out = zk_cached(&["prove", &m, "--input", &good, "--seed", "1", "--out", r]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(receipt.join("input.json")).unwrap(),
        input_bytes
    );
    // An endless one stops at the input cap.
    let endless = fifo(dir.path(), "endless", vec![b' '; 1 << 16], None);
    expect_error(
        &["run", &m, "--input", &endless],
        &["endless", "more than 256 MiB (the cap)"],
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (m, i) = digits();
    let receipt = dir.path().join("receipt");
    let r = receipt.to_str().unwrap();
    let out = zk_cached(&["prove", &m, "--input", &i, "--seed", "1", "--out", r]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for args in [
        vec!["model", &m],
        vec!["model", &m, "--json"],
        vec!["verify", r],
    ] {
        // `| head -1` at its harshest: the reader is gone before the first line is written.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zkreceipt"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_inspector_without_a_terminal_says_what_to_use_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (m, i) = digits();
    let receipt = dir.path().join("receipt");
    let r = receipt.to_str().unwrap();
    let out = zk_cached(&["prove", &m, "--input", &i, "--seed", "1", "--out", r]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Output captures stdout and gives stdin no terminal: neither is one.
    for args in [
        vec![],
        vec!["inspect", r],
        vec!["inspect", &m, "--input", &i],
    ] {
        let out = zk_cached(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for want in [
            "needs a terminal",
            "zkreceipt verify DIR",
            "zkreceipt audit DIR",
            "zkreceipt break-test DIR",
            "zkreceipt --help",
        ] {
            assert!(err.contains(want), "{args:?}: `{want}` not in {err}");
        }
        assert_no_panic_report(&err);
    }
    // A folder that cannot be opened is an error before the terminal matters.
    let cases = [
        (
            "no/such/folder",
            "no/such/folder: cannot read it: no such file or folder",
        ),
        ("no/such/folder/receipt.json", "cannot read"),
        (dir.path().to_str().unwrap(), "receipt.json: cannot read"),
    ];
    for (target, want) in cases {
        let out = zk_cached(&["inspect", target]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{target}: {err}");
        assert!(err.contains(want), "{target}: `{want}` not in {err}");
        assert_no_panic_report(&err);
    }
}
