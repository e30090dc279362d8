//! Stage 4 and 5 of the chain: parameters, verifier key and proof (halo2, IPA over Pasta).
//!
//! `halo2_proofs` 0.4.1 cannot serialize keys, but keygen is deterministic: the verifier key's
//! artifact is its pinned form (`vk.txt`, the `Debug` string halo2 itself hashes into the
//! transcript), and a verifier re-derives the key from the circuit description and checks the
//! pinned form's sha256 before it verifies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use halo2_proofs::pasta::{EqAffine, Fp};
use halo2_proofs::plonk::{
    ProvingKey, SingleVerifier, VerifyingKey, create_proof, keygen_pk, keygen_vk, verify_proof,
};
use halo2_proofs::poly::commitment::Params;
use halo2_proofs::transcript::{Blake2bRead, Blake2bWrite, Challenge255};
use rand::Rng;

use crate::circuit::{Layout, MAX_K, ModelCircuit, with_layout};
use crate::error::{Error, Result};
use crate::model::sha256_hex;

/// Where parameters are cached: `$ZKRECEIPT_CACHE`, else `$XDG_CACHE_HOME/zkreceipt`, else
/// `~/.cache/zkreceipt`. With none of these there is no cache folder: a shared temp folder is
/// never used, since cached parameters are trusted and another user could plant forged ones.
pub fn cache_dir_opt() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ZKRECEIPT_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("zkreceipt"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("zkreceipt"))
}

/// The cache folder; without one (see [`cache_dir_opt`]), a `zkreceipt-cache` folder in the
/// working directory, for the receipt chains the inspector builds (not for parameters).
pub fn cache_dir() -> PathBuf {
    cache_dir_opt().unwrap_or_else(|| PathBuf::from("zkreceipt-cache"))
}

/// The smallest k a circuit has (see `circuit::k_for`).
pub const MIN_K: u32 = 4;

/// sha256 of the parameter file for each k from [`MIN_K`] to [`MAX_K`]: `Params::new(k)`
/// depends on k alone, so every honest file is exactly these bytes (measured with halo2_proofs
/// 0.4.1; `pinned_params_are_what_params_new_makes` re-makes them).
const PARAMS_SHA256: [&str; (MAX_K - MIN_K + 1) as usize] = [
    "5c0b8093a964af7191df4749a7310c00140ebc9977b118debe5715fda30efa7f",
    "106977185e775dffe917fe065308d3469d747e79617911bfb7d3f78e2bcb552c",
    "606ec71853588ea2414707e98ffb181091f6985d294d03d4165fb400a9a6b3a6",
    "432e492288c43ccabdffb913625109ca76f66312cd4625c9a258a2e33a28c400",
    "96d2448c483f4df37e69b4f72db328cd8520b09d49f5e7c801da7994150b9b33",
    "b7ea13dd3cfe5db384fab28fd90c4ca7327fb20d3fde16c12eb8b3f81538cb62",
    "65235f086265cdf98b12514ab36fe9b849198870918d73cd160903ceb0a954dc",
    "1eab6f93a080ce41b908d935c04bd2e3ed1ac23f277c15d11c499d56d28fa0f7",
    "1b97b06da453b9efb1ae18b9ba77c3d870f22dc72898297d5707e340c3f44865",
    "76ebe6b75b5281cb1dcc2eb04888968573758672b521522f62abedf6366bb876",
    "1cb278fe4d9cf5325e5cbc710d863c0deca3e961e1b8f6c8736890c43345c461",
    "e1fb29749c7bd0870768044d5329b4e293cb2d44dae24db2554605427b19d0dd",
    "174780f80c577d968d10bc3f0a8f819e55a96b9e882ffe73c15d55e9f94053e2",
    "7c65b8e3d12f2c1054f07c2721da8670d97f0f14c846df6bcf4d390dd62cbceb",
    "50645fa7a51508a3fe9e34b5b34ee31bfe6a19891364b682d801b3ca265afe33",
    "99e0ead628c6dd379468845cdbb9379f839856d502f122edae91059cd2a78ab5",
    "f4d375ececf32f64193b4c452a59313b92798ede9ee1f6419af82259c4f161c8",
];

/// The pinned sha256 of the parameter file for `k`; None outside [`MIN_K`]..=[`MAX_K`].
pub fn pinned_params_sha256(k: u32) -> Option<&'static str> {
    (MIN_K..=MAX_K)
        .contains(&k)
        .then(|| PARAMS_SHA256[(k - MIN_K) as usize])
}

/// The IPA parameters for 2^k rows, read from the cache or made (deterministically: they
/// depend on k alone) and cached. A cached file is used only when its sha256 is the pinned one:
/// a damaged or planted file is remade (and `progress` hears why), never trusted. `progress`
/// hears when parameters have to be made, which is slow. Returns the parameters and the
/// seconds spent making them (0 when cached).
pub fn params(k: u32, progress: &mut dyn FnMut(&str)) -> Result<(Params<EqAffine>, f64)> {
    params_in(cache_dir_opt().as_deref(), k, progress)
}

/// [`params`] with the cache folder `dir` (None: no cache).
fn params_in(
    dir: Option<&Path>,
    k: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<(Params<EqAffine>, f64)> {
    let pin = pinned_params_sha256(k).ok_or_else(|| {
        Error::invalid(
            "circuit",
            format!("k={k} is outside the {MIN_K}..={MAX_K} this version has parameters for"),
        )
    })?;
    let Some(dir) = dir else {
        progress(&format!(
            "making IPA parameters for k={k} (no cache folder: set ZKRECEIPT_CACHE or HOME)"
        ));
        return make_params(k, pin);
    };
    let name = params_file_name(k);
    crate::files::remove_stale_temps(dir, &format!(".{name}.tmp"));
    let path = dir.join(&name);
    // A parameter file at k=20 is 64 MiB: anything beyond the cap is not one.
    if let Ok(bytes) = crate::files::read_capped(&path, crate::files::FILE_CAP, "parameters") {
        if sha256_hex(&bytes) == pin
            && let Ok(p) = Params::<EqAffine>::read(&mut &bytes[..])
        {
            return Ok((p, 0.0));
        }
        progress(&format!(
            "cached parameters {} are not the pinned ones for k={k} (damaged or replaced); remaking",
            path.display()
        ));
    }
    progress(&format!(
        "making IPA parameters for k={k} (once; cached in {})",
        dir.display()
    ));
    let (p, secs) = make_params(k, pin)?;
    let mut bytes = vec![];
    p.write(&mut bytes)
        .map_err(|e| Error::invalid(path.display(), e))?;
    // A cache we cannot write only costs time next run.
    if let Err(e) = write_atomic(&path, &bytes) {
        progress(&format!("could not cache parameters: {e}"));
    }
    Ok((p, secs))
}

fn params_file_name(k: u32) -> String {
    format!("params-ipa-pasta-k{k}.bin")
}

/// `Params::new(k)`, checked against its pin.
fn make_params(k: u32, pin: &str) -> Result<(Params<EqAffine>, f64)> {
    let t = Instant::now();
    let p = Params::<EqAffine>::new(k);
    let secs = t.elapsed().as_secs_f64();
    let mut bytes = vec![];
    p.write(&mut bytes)
        .map_err(|e| Error::Internal(format!("writing parameters: {e}")))?;
    if sha256_hex(&bytes) != pin {
        return Err(Error::Internal(format!(
            "the parameters made for k={k} differ from the pinned ones: another halo2_proofs?"
        )));
    }
    Ok((p, secs))
}

/// What making the parameters, the keys and one proof of a circuit will cost on this machine
/// kind (2 cores), estimated from k and the committed polynomials per row before any of it
/// starts. Calibrated on measured runs (README, Benchmarks; release build): proving and keygen
/// take about 0.1 s plus 11 µs, and peak memory 15 MiB plus 1.4 KB, per polynomial-row
/// (digits, MLP, CNN, Sigmoid, fixed and hashed weights, k = 7 to 16: within a factor 1.5,
/// memory erring high); making parameters about 0.7 ms per row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Forecast {
    pub k: u32,
    /// None when the parameters for k are cached.
    pub params_s: Option<f64>,
    pub keygen_s: f64,
    pub prove_s: f64,
    pub peak_mib: f64,
}

/// Seconds per polynomial-row for keygen and for proving, and bytes of peak memory per
/// polynomial-row (see [`Forecast`]).
const SECONDS_PER_POLY_ROW: f64 = 5.5e-6;
const BYTES_PER_POLY_ROW: f64 = 1_400.0;
const BASE_MIB: f64 = 15.0;
/// What keygen and proving take at any size (measured at k = 7).
const BASE_SECONDS: f64 = 0.1;
const PARAMS_SECONDS_PER_ROW: f64 = 0.7e-3;

/// The forecast for a circuit of 2^k rows with `layout`.
pub fn forecast(layout: Layout, k: u32) -> Forecast {
    let units = (layout.committed_polys() << k) as f64;
    let cached = cache_dir_opt().is_some_and(|d| d.join(params_file_name(k)).is_file());
    Forecast {
        k,
        params_s: (!cached).then(|| PARAMS_SECONDS_PER_ROW * (1u64 << k) as f64),
        keygen_s: BASE_SECONDS + SECONDS_PER_POLY_ROW * units,
        prove_s: BASE_SECONDS + SECONDS_PER_POLY_ROW * units,
        peak_mib: BASE_MIB + BYTES_PER_POLY_ROW * units / (1u64 << 20) as f64,
    }
}

impl Forecast {
    /// One line for the progress stream.
    pub fn describe(&self, available_mib: Option<f64>) -> String {
        let params = match self.params_s {
            Some(s) => format!("parameters ~{} (once), ", seconds(s)),
            None => String::new(),
        };
        let avail = available_mib
            .map(|a| format!(" of {a:.0} MiB available"))
            .unwrap_or_default();
        format!(
            "forecast for k={}: {params}keygen ~{}, prove ~{}, peak memory ~{:.0} MiB{avail}",
            self.k,
            seconds(self.keygen_s),
            seconds(self.prove_s),
            self.peak_mib
        )
    }
}

fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// Say what making the parameters, keys and a proof at 2^k rows will cost (before any of it
/// starts), and refuse, naming `what`, when the forecast peak memory exceeds what the machine
/// has available, unless `over_memory`.
pub fn check_fits(
    layout: Layout,
    k: u32,
    over_memory: bool,
    what: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Forecast> {
    let fc = forecast(layout, k);
    let avail = available_mib();
    progress(&fc.describe(avail));
    if let Some(a) = avail
        && fc.peak_mib > a
        && !over_memory
    {
        return Err(Error::invalid(
            what,
            format!(
                "proving at k={k} needs about {:.0} MiB of memory, and {a:.0} MiB is available: \
                 it would run out of memory (pass --ignore-memory-forecast to try anyway, or \
                 lower --scale / the model's size)",
                fc.peak_mib
            ),
        ));
    }
    Ok(fc)
}

/// Memory this machine can give a new process (MemAvailable of /proc/meminfo, in MiB); None
/// where that is not known.
pub fn available_mib() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// A verifier key with its pinned form and that form's sha256.
pub struct Vk {
    pub vk: VerifyingKey<EqAffine>,
    pub pinned: String,
    pub sha256: String,
}

impl Vk {
    fn new(vk: VerifyingKey<EqAffine>) -> Self {
        let pinned = format!("{:#?}\n", vk.pinned());
        let sha256 = sha256_hex(pinned.as_bytes());
        Vk { vk, pinned, sha256 }
    }
}

fn halo2_err(what: &str, e: halo2_proofs::plonk::Error) -> Error {
    Error::invalid("circuit", format!("{what}: {e}"))
}

/// Why halo2 rejected a proof, in words.
fn plain(e: halo2_proofs::plonk::Error) -> String {
    use halo2_proofs::plonk::Error as E;
    match e {
        E::ConstraintSystemFailure => {
            "its constraints fail for this key and these public values".into()
        }
        E::Opening => "the proof's polynomial openings do not check out".into(),
        E::Transcript(e) => format!("the proof bytes end early or cannot be read ({e})"),
        E::InvalidInstances => "the public values do not fit the circuit".into(),
        e => e.to_string(),
    }
}

/// The verifier key of `circuit` (a circuit without witness suffices).
pub fn keygen_vk_only(params: &Params<EqAffine>, circuit: &ModelCircuit) -> Result<Vk> {
    // keygen reads only the structure and the fixed columns, never the witness.
    with_layout(circuit.layout(), || keygen_vk(params, circuit))
        .map(Vk::new)
        .map_err(|e| halo2_err("keygen (verifier key)", e))
}

/// Verifier and proving keys of `circuit`.
pub fn keygen(
    params: &Params<EqAffine>,
    circuit: &ModelCircuit,
) -> Result<(Vk, ProvingKey<EqAffine>)> {
    with_layout(circuit.layout(), || {
        let vk = keygen_vk(params, circuit).map_err(|e| halo2_err("keygen (verifier key)", e))?;
        let pk = keygen_pk(params, vk.clone(), circuit)
            .map_err(|e| halo2_err("keygen (proving key)", e))?;
        Ok((Vk::new(vk), pk))
    })
}

/// Prove `circuit` (with its witness) against the public `instance`.
pub fn prove(
    params: &Params<EqAffine>,
    pk: &ProvingKey<EqAffine>,
    circuit: &ModelCircuit,
    instance: &[Fp],
    rng: impl Rng,
) -> Result<Vec<u8>> {
    let mut transcript = Blake2bWrite::<_, EqAffine, Challenge255<_>>::init(vec![]);
    with_layout(circuit.layout(), || {
        create_proof(
            params,
            pk,
            std::slice::from_ref(circuit),
            &[&[instance]],
            rng,
            &mut transcript,
        )
    })
    // Our own circuit with its own witness: a failure here is a bug, not bad input.
    .map_err(|e| Error::Internal(format!("proving: {e:?}")))?;
    Ok(transcript.finalize())
}

/// Check a proof this tool has just made: one that does not verify is a bug in the tool (exit
/// 4), never a verdict on the user's input.
pub fn check_fresh(
    params: &Params<EqAffine>,
    vk: &VerifyingKey<EqAffine>,
    instance: &[Fp],
    proof: &[u8],
) -> Result<()> {
    verify(params, vk, instance, proof)
        .map_err(|e| Error::Internal(format!("the proof just made does not verify: {e}")))
}

/// Check `proof` against the verifier key and the public instance. Err carries halo2's reason.
/// The transcript must be the whole of `proof`: bytes after it would let one proof have many
/// hashes, so they are rejected.
pub fn verify(
    params: &Params<EqAffine>,
    vk: &VerifyingKey<EqAffine>,
    instance: &[Fp],
    proof: &[u8],
) -> std::result::Result<(), String> {
    let strategy = SingleVerifier::new(params);
    let mut rest = proof;
    let mut transcript = Blake2bRead::<_, EqAffine, Challenge255<_>>::init(&mut rest);
    verify_proof(params, vk, strategy, &[&[instance]], &mut transcript).map_err(plain)?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} bytes follow the proof's transcript (of {} bytes)",
            rest.len(),
            proof.len() - rest.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made_sha256(k: u32) -> String {
        let mut bytes = vec![];
        Params::<EqAffine>::new(k).write(&mut bytes).unwrap();
        sha256_hex(&bytes)
    }

    /// The pins are what `Params::new` makes (the small k here; all of them, slowly, with
    /// `cargo test --release -- --ignored pinned_params`).
    #[test]
    fn pinned_params_are_what_params_new_makes() {
        for k in MIN_K..=10 {
            assert_eq!(
                Some(made_sha256(k).as_str()),
                pinned_params_sha256(k),
                "k={k}"
            );
        }
        assert_eq!(pinned_params_sha256(MIN_K - 1), None);
        assert_eq!(pinned_params_sha256(MAX_K + 1), None);
    }

    /// A layout; with `hash_lanes` > 0, hashed weights on that many Poseidon lanes.
    fn layout(lanes: usize, groups: usize, hash_lanes: usize) -> Layout {
        Layout {
            lanes,
            groups,
            lookups: false,
            input: crate::circuit::Visibility::Public,
            params: if hash_lanes > 0 {
                crate::circuit::ParamVisibility::Hashed
            } else {
                crate::circuit::ParamVisibility::Fixed
            },
            hash_lanes,
            salted: false,
        }
    }

    /// The forecast against runs measured on this machine kind (README, Benchmarks), and the
    /// refusal of a Gemm 4096×4096 (k=20), which would need far more than this machine has.
    #[test]
    fn forecasts_follow_measured_runs_and_refuse_what_cannot_fit() {
        // (layout, k, measured prove s, measured peak MiB): digits, CNN fixed; digits, MLP
        // with hashed weights (6 and 5 Poseidon lanes). `zkreceipt bench --runs 3`, with and
        // without `--param-visibility hashed`, 2026-12-02.
        for (l, k, prove_s, peak) in [
            (layout(40, 5, 0), 7, 0.12, 27.0),
            (layout(48, 3, 0), 12, 1.60, 281.0),
            (layout(32, 4, 6), 10, 0.70, 96.0),
            (layout(40, 5, 5), 14, 9.30, 1340.0),
        ] {
            let f = forecast(l, k);
            assert!((0.5..2.0).contains(&(f.prove_s / prove_s)), "k={k}: {f:?}");
            assert!((0.5..2.0).contains(&(f.peak_mib / peak)), "k={k}: {f:?}");
        }
        let big = forecast(layout(32, 1, 0), 20);
        assert!(big.peak_mib > 48.0 * 1024.0, "{big:?}");
        let mut heard = vec![];
        let r = check_fits(layout(32, 1, 0), 20, false, "gemm.onnx", &mut |m: &str| {
            heard.push(m.to_string())
        });
        if available_mib().is_some_and(|a| a < big.peak_mib) {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("gemm.onnx") && e.contains("--ignore-memory-forecast"),
                "{e}"
            );
        }
        assert!(heard[0].starts_with("forecast for k=20"), "{heard:?}");
        assert!(check_fits(layout(32, 1, 0), 20, true, "gemm.onnx", &mut |_| {}).is_ok());
    }

    #[test]
    #[ignore = "makes the parameters for every k up to MAX_K: about 25 minutes on 2 cores"]
    fn pinned_params_all() {
        let made: Vec<String> = (MIN_K..=MAX_K)
            .map(|k| {
                let sha = made_sha256(k);
                eprintln!("k={k} {sha}");
                sha
            })
            .collect();
        let pins: Vec<&str> = (MIN_K..=MAX_K).filter_map(pinned_params_sha256).collect();
        assert_eq!(made, pins);
    }

    #[test]
    fn a_damaged_or_planted_cache_file_is_remade_and_stale_temps_go() {
        let dir = tempfile::tempdir().unwrap();
        let k = 5;
        let path = dir.path().join(params_file_name(k));
        let honest = {
            let mut b = vec![];
            Params::<EqAffine>::new(k).write(&mut b).unwrap();
            b
        };
        // A flipped bit in a generator, then in the trailing w/u, then a header of another k.
        for at in [40, honest.len() - 3, 0] {
            let mut bad = honest.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            // A leftover temp file of a process that is gone (pid beyond any pid_max).
            let stale = dir
                .path()
                .join(format!(".{}.tmp4999999", params_file_name(k)));
            std::fs::write(&stale, b"partial").unwrap();
            let mut heard = vec![];
            let (p, _) = params_in(Some(dir.path()), k, &mut |m: &str| {
                heard.push(m.to_string())
            })
            .unwrap();
            assert_eq!(p.k(), k);
            assert!(
                heard.iter().any(|m| m.contains("not the pinned ones")),
                "{heard:?}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), honest, "remade and cached");
            assert!(!stale.exists(), "the stale temp file is removed");
        }
    }
}
