//! `export --erc7992`: the receipt in the shape of the ERC-7992 draft (Verifiable ML Model
//! Inference): a `ModelCommitment`, the input commitment, the ABI-encoded output and the proof.
//!
//! There is no EVM verifier for halo2 IPA proofs over the Pasta curves: this export is for
//! registries and off-chain verifiers that follow the draft's data model, not for an on-chain
//! `verifyInference` call.

use serde::Serialize;
use sha3::{Digest, Keccak256};

use super::Folder;
use crate::circuit::{ParamVisibility, Visibility};

/// The proof system's name, hashed into `proofSystemId`.
pub const PROOF_SYSTEM_NAME: &str = "halo2-ipa-pasta-v1";

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCommitment {
    /// sha256 of the ONNX file.
    pub model_hash: String,
    /// sha256 of circuit.json (canonical form).
    pub circuit_hash: String,
    /// sha256 of the verifier key's pinned form.
    pub vk_hash: String,
    /// First 4 bytes of keccak256(PROOF_SYSTEM_NAME).
    pub proof_system_id: String,
    pub uri: String,
    /// bytes32, an extension of the draft: the Poseidon digest of hashed weights (the proof's
    /// public weights commitment); zero when the weights are fixed in the verifier key.
    pub weights_commitment: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erc7992 {
    pub model_commitment: ModelCommitment,
    /// bytes32: the receipt's input commitment: sha256 of the public input integers, or the
    /// Poseidon digest of a hashed input; zero for a private input.
    pub input_commitment: String,
    /// ABI encoding of `int256[]`: every output integer, outputs in graph order, row-major.
    pub output: String,
    pub output_schema: String,
    pub proof: String,
    pub proof_system: String,
    pub note: String,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub fn proof_system_id() -> String {
    hex(&Keccak256::digest(PROOF_SYSTEM_NAME.as_bytes())[..4])
}

/// ABI encoding of a dynamic `int256[]` as the only argument: offset, length, elements.
pub fn abi_int256_array(values: &[i64]) -> Vec<u8> {
    let word = |v: i128| -> [u8; 32] {
        let mut w = if v < 0 { [0xff; 32] } else { [0; 32] };
        w[16..].copy_from_slice(&v.to_be_bytes());
        w
    };
    let mut out = Vec::with_capacity(64 + 32 * values.len());
    out.extend_from_slice(&word(32));
    out.extend_from_slice(&word(values.len() as i128));
    for &v in values {
        out.extend_from_slice(&word(v as i128));
    }
    out
}

pub fn export(f: &Folder) -> Erc7992 {
    let r = &f.receipt;
    let values: Vec<i64> = r.output.iter().flat_map(|o| o.integers.clone()).collect();
    let schema: Vec<String> = r
        .output
        .iter()
        .map(|o| format!("{} {:?} at scale 2^{}", o.name, o.shape, o.scale))
        .collect();
    Erc7992 {
        model_commitment: ModelCommitment {
            model_hash: format!("0x{}", r.model_commitment.onnx_sha256),
            circuit_hash: format!("0x{}", r.model_commitment.circuit_sha256),
            vk_hash: format!("0x{}", r.verifier.vk_sha256),
            proof_system_id: proof_system_id(),
            uri: format!("file://{}", f.dir.canonicalize().unwrap_or(f.dir.clone()).display()),
            weights_commitment: match r.model_commitment.param_visibility {
                ParamVisibility::Hashed => r.model_commitment.weights_commitment.clone(),
                ParamVisibility::Fixed => format!("0x{}", "00".repeat(32)),
            },
        },
        input_commitment: match r.input_commitment.visibility {
            Visibility::Public => format!("0x{}", r.input_commitment.value),
            Visibility::Hashed => r.input_commitment.value.clone(),
            Visibility::Private => format!("0x{}", "00".repeat(32)),
        },
        output: hex(&abi_int256_array(&values)),
        output_schema: format!(
            "int256[]: the fixed-point integers of {} (real value = integer / 2^scale)",
            schema.join("; ")
        ),
        proof: hex(&f.proof),
        proof_system: PROOF_SYSTEM_NAME.into(),
        note: "No EVM verifier exists for halo2 IPA proofs over Pasta: verify with `zkreceipt verify`, not on chain.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_encoding_of_int256_arrays() {
        let b = abi_int256_array(&[1, -2]);
        assert_eq!(b.len(), 128);
        assert_eq!(b[31], 0x20, "offset of the array");
        assert_eq!(b[63], 2, "length");
        assert_eq!(b[95], 1);
        assert!(
            b[96..128].iter().take(31).all(|&x| x == 0xff) && b[127] == 0xfe,
            "-2 in two's complement"
        );
    }

    #[test]
    fn proof_system_id_is_keccak_prefix() {
        // keccak256("") is the well-known c5d2460186f7233c…, so the hasher is Keccak, not SHA-3.
        assert_eq!(hex(&Keccak256::digest(b"")[..4]), "0xc5d24601");
        assert_eq!(proof_system_id().len(), 10);
    }
}
