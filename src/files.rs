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
use std::path::Path;

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
