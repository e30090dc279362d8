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

use crate::circuit::{ModelCircuit, with_layout};
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

/// The IPA parameters for 2^k rows, read from the cache or made (deterministically: they
/// depend on k alone) and cached. `progress` hears when they have to be made, which is slow.
/// Returns the parameters and the seconds spent making them (0 when cached).
pub fn params(k: u32, progress: &mut dyn FnMut(&str)) -> Result<(Params<EqAffine>, f64)> {
    let Some(dir) = cache_dir_opt() else {
        progress(&format!(
            "making IPA parameters for k={k} (no cache folder: set ZKRECEIPT_CACHE or HOME)"
        ));
        let t = Instant::now();
        let p = Params::<EqAffine>::new(k);
        return Ok((p, t.elapsed().as_secs_f64()));
    };
    let path = dir.join(format!("params-ipa-pasta-k{k}.bin"));
    if let Ok(bytes) = std::fs::read(&path) {
        match Params::<EqAffine>::read(&mut &bytes[..]) {
            Ok(p) if p.k() == k => return Ok((p, 0.0)),
            // A damaged cache entry is remade, not trusted.
            _ => progress(&format!(
                "cached parameters {} are damaged; remaking",
                path.display()
            )),
        }
    }
    progress(&format!(
        "making IPA parameters for k={k} (once; cached in {})",
        dir.display()
    ));
    let t = Instant::now();
    let p = Params::<EqAffine>::new(k);
    let secs = t.elapsed().as_secs_f64();
    let mut bytes = vec![];
    p.write(&mut bytes)
        .map_err(|e| Error::invalid(path.display(), e))?;
    // A cache we cannot write only costs time next run.
    if let Err(e) = write_atomic(&path, &bytes) {
        progress(&format!("could not cache parameters: {e}"));
    }
    Ok((p, secs))
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
    Error::invalid("circuit", format!("{what}: {e:?}"))
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
    .map_err(|e| halo2_err("proving", e))?;
    Ok(transcript.finalize())
}

/// Check `proof` against the verifier key and the public instance. Err carries halo2's reason.
pub fn verify(
    params: &Params<EqAffine>,
    vk: &VerifyingKey<EqAffine>,
    instance: &[Fp],
    proof: &[u8],
) -> std::result::Result<(), String> {
    let strategy = SingleVerifier::new(params);
    let mut transcript = Blake2bRead::<_, EqAffine, Challenge255<_>>::init(proof);
    verify_proof(params, vk, strategy, &[&[instance]], &mut transcript)
        .map_err(|e| format!("{e:?}"))
}
