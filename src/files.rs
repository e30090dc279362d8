//! Reading user-supplied and receipt-folder files into memory, never more than a cap.
//!
//! Every file zkreceipt reads whole goes through [`read_capped`]: an endless or huge source
//! (`/dev/zero`, a runaway pipe, a damaged folder) is refused with the file and the cap named
//! instead of being read until memory runs out. Pipes stay welcome (`--input <(gen-input)`):
//! they are read through the cap like any file. Devices are refused outright: a model or an
//! input never lives on one, and the endless ones would otherwise cost the whole cap in memory
//! before being refused.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// An ONNX model, and the quantized model (its weights as JSON): protobuf's own 2 GiB message
/// limit. Larger ONNX models keep their weights in external data files, which tract reads.
pub const MODEL_CAP: u64 = 2 * GIB;

/// Input JSON and the other receipt-folder files (receipt, circuit, verifier key, proof) and the
/// corpus census: 256 MiB holds tens of millions of numbers, far more than any circuit takes,
/// and keeps a runaway source from costing more memory than that.
pub const FILE_CAP: u64 = 256 * MIB;

/// Read `path` whole, refusing it when it holds more than `cap` bytes. `what` names the file
/// in messages ("the model", "the input").
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let fail = |msg: String| Error::invalid(path.display(), format!("cannot read {what}: {msg}"));
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if is_device(&meta) {
        return Err(fail("it is a device, not a file or a pipe".into()));
    }
    // A regular file's size is known: refuse it before reading a byte.
    if meta.is_file() && meta.len() > cap {
        return Err(fail(format!(
            "{} bytes, larger than the {} cap",
            meta.len(),
            human(cap)
        )));
    }
    let hint = if meta.is_file() {
        meta.len().min(cap)
    } else {
        0
    };
    match read_to_cap(file, cap, hint as usize) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(fail(format!(
            "more than {} (the cap); stopped reading there",
            human(cap)
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Everything `r` holds, or None when that is more than `cap` bytes (at most cap + 1 are read).
fn read_to_cap(r: impl Read, cap: u64, hint: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::with_capacity(hint);
    r.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

#[cfg(unix)]
fn is_device(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    t.is_char_device() || t.is_block_device()
}

#[cfg(not(unix))]
fn is_device(_meta: &std::fs::Metadata) -> bool {
    false
}

/// A cap as people write it: "2 GiB", "256 MiB".
fn human(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Remove what a killed run left in `dir`: entries named `prefix` + the id of a process that no
/// longer runs (the temporary names of [`crate::proof::write_atomic`] and of receipt folders). Entries of a
/// live process, and names that do not parse, are left alone.
pub fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_runs(pid) {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Whether process `pid` runs (Linux's /proc; elsewhere every process is taken to run, so
/// nothing is removed that might be in use).
fn process_runs(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// A kind of folder zkreceipt writes at an `--out` path, for deciding what it may replace: a
/// folder is zkreceipt's when it holds `marker` and nothing but `files`.
pub struct FolderKind {
    /// What the folder is called in messages ("receipt folder", "package").
    pub what: &'static str,
    pub marker: &'static str,
    /// Every file name a folder of this kind may hold.
    pub files: &'static [&'static str],
}

/// Whether writing a folder of `kind` at `out` replaces one that holds files (true), or writes
/// where there is nothing or an empty folder (false). A folder holding anything zkreceipt did
/// not write there is refused, naming what, unless `force`: it may be the user's. Commands ask
/// before their work starts, so a refusal costs nothing; [`write_folder`] asks again.
pub fn replaces(out: &Path, kind: &FolderKind, force: bool) -> Result<bool> {
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(false);
    };
    if !meta.is_dir() {
        return Err(Error::invalid(
            out.display(),
            "exists and is not a folder; choose another --out",
        ));
    }
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(out)
        .map_err(|e| Error::invalid(out.display(), e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::invalid(out.display(), e))?;
    if entries.is_empty() {
        return Ok(false);
    }
    if force {
        return Ok(true);
    }
    let mut foreign: Vec<String> = entries
        .iter()
        .filter(|e| {
            let name = e.file_name();
            let ours = name.to_str().is_some_and(|n| kind.files.contains(&n));
            !ours || !e.file_type().is_ok_and(|t| t.is_file())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    foreign.sort();
    let refuse = |why: String| {
        Err(Error::invalid(
            out.display(),
            format!(
                "{why}; choose another --out, or add --force to replace the folder and \
                 everything in it"
            ),
        ))
    };
    if !foreign.is_empty() {
        let shown = foreign
            .iter()
            .take(3)
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>();
        let more = match foreign.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        return refuse(format!(
            "holds {}{more}, which zkreceipt does not write into a {}",
            shown.join(", "),
            kind.what
        ));
    }
    if !out.join(kind.marker).is_file() {
        return refuse(format!(
            "holds files but no {}: not a {} zkreceipt wrote",
            kind.marker, kind.what
        ));
    }
    Ok(true)
}

/// Write the files into a temporary sibling folder, then rename it to `out`, so a reader never
/// sees half a folder. An empty folder at `out` is replaced; so is a folder of the same `kind`
/// (holding its marker and only its files), or with `force` any folder. Returns whether a
/// folder holding files was replaced, for the report to say so.
pub fn write_folder(
    out: &Path,
    files: &[(&str, Vec<u8>)],
    kind: &FolderKind,
    force: bool,
) -> Result<bool> {
    let name = out
        .file_name()
        .ok_or_else(|| Error::invalid(out.display(), "not a folder name"))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    debug_assert!(
        files.iter().all(|(f, _)| kind.files.contains(f)),
        "{} lists every file it writes",
        kind.what
    );
    let replaced = replaces(out, kind, force)?;
    let io = |e: std::io::Error| Error::invalid(out.display(), e);
    std::fs::create_dir_all(&parent).map_err(io)?;
    // What a killed run left of this folder goes first.
    for stage in ["tmp", "old"] {
        remove_stale_temps(&parent, &format!(".{name}.{stage}-"));
    }
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(io)?;
    let written = files
        .iter()
        .try_for_each(|(f, bytes)| std::fs::write(tmp.join(f), bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io(e));
    }
    if out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(io)?;
        std::fs::rename(&tmp, out).map_err(io)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(io)?;
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_source_stops_at_the_cap() {
        assert_eq!(read_to_cap(std::io::repeat(0), 10, 0).unwrap(), None);
        let ten = read_to_cap(&[7u8; 10][..], 10, 0).unwrap().unwrap();
        assert_eq!(ten, vec![7; 10]);
        assert_eq!(read_to_cap(&[7u8; 11][..], 10, 0).unwrap(), None);
    }

    #[test]
    fn files_over_the_cap_are_refused_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, [b'1'; 100]).unwrap();
        assert_eq!(read_capped(&p, 100, "the input").unwrap().len(), 100);
        let e = read_capped(&p, 99, "the input").unwrap_err().to_string();
        assert!(e.contains("big.json") && e.contains("100 bytes, larger than the 99 bytes cap"));
        assert_eq!(human(MODEL_CAP), "2 GiB");
        assert_eq!(human(FILE_CAP), "256 MiB");
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused_before_reading() {
        let e = read_capped(Path::new("/dev/zero"), MODEL_CAP, "the model")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/zero: cannot read the model: it is a device"),
            "{e}"
        );
    }
}
