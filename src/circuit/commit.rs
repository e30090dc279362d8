//! The Poseidon commitments, natively (out of circuit); the circuit computes the same chain with
//! its own Poseidon chip ([`super::poseidon`]), which is halo2_gadgets' P128Pow5T3 permutation
//! (width 3, rate 2) in gates of degree 5.
//!
//! A message is a domain tag followed by words. It is hashed in blocks of [`BLOCK`] words, each
//! block absorbed together with a running digest through halo2_gadgets' fixed-length sponge
//! (`ConstantLength<17>`: nine permutations for sixteen words, near the sponge's full rate of two
//! words per permutation), the last block padded with zeros. Block `i` goes to chain `i mod s`,
//! with `s = min(CHAINS, blocks)` chains, so that the circuit can run them side by side in
//! different lanes: every chain starts at `h = tag` and takes `h = H(h, block)` for each of its
//! blocks; with one chain its `h` is the digest, else the digest is `H(tag, [h₀ … h₍ₛ₋₁₎])`
//! (at most [`CHAINS`] = 16 digests: one block). Every message ends with its count of integers,
//! and its length is fixed by the circuit, so the padding is unambiguous.
//!
//! Integers of `b` signed bits are offset to `[0, 2^b)` and packed [`per_word`]`(b)` to a field
//! element, `Σ_j (x_j + 2^(b-1))·2^(b·j)`: two halves of `⌊126/b⌋` integers each, so at most 252
//! bits, below the field's modulus (injective for integers in range).
//!
//! The input digest (hashed inputs) covers `[tag, salt, words…, n]`: the input integers (each in
//! the signed activation range `[-2^(A-1), 2^(A-1))`) packed; `n` counts them. The tag
//! `zkreceipt/in/v2` separates this use of Poseidon from any other; the salt (up to 120 bits, 0
//! when none is given) keeps low-entropy inputs from being found by trying them all.
//!
//! The weights digest (hashed parameters, [`params_digest`]) covers `[tag, words…, n]` over the
//! model's parameter tensors ([`param_tensors`]), each packed on its own at its range-checked
//! width ([`param_bits`]); `n` counts the parameter integers; the tag is `zkreceipt/wt/v2`.
//! (Version 1 packed one half per word and ran at most four chains.)

use halo2_gadgets::poseidon::primitives::{ConstantLength, Hash, P128Pow5T3};
use halo2_proofs::pasta::Fp;
use halo2_proofs::pasta::group::ff::PrimeField;

use super::chips::fe;
use crate::quantize::QuantizedModel;

/// Domain tag: the bytes of `zkreceipt/in/v2`, little-endian, as an integer (< 2^120).
pub fn tag() -> i128 {
    tag_of(b"zkreceipt/in/v2")
}

/// The weights digest's domain tag, `zkreceipt/wt/v2`.
pub fn params_tag() -> i128 {
    tag_of(b"zkreceipt/wt/v2")
}

fn tag_of(s: &[u8; 15]) -> i128 {
    s.iter().rev().fold(0i128, |acc, &b| (acc << 8) | b as i128)
}

/// One parameter tensor of a quantized model: its node, which of the node's tensors it is, and
/// its integers.
pub struct ParamRef<'a> {
    pub node: usize,
    /// 0: a Linear or Conv weight, or a constant's data; 1: a Linear or Conv bias.
    pub index: usize,
    pub kind: &'static str,
    pub data: &'a [i64],
}

/// Every parameter tensor, in the order the weights digest takes them: node by node, a weight
/// before its bias. Other numbers of the model (scales, slopes, table ranges, padding values)
/// are its architecture and stay in the circuit.
pub fn param_tensors(qm: &QuantizedModel) -> Vec<ParamRef<'_>> {
    qm.nodes
        .iter()
        .enumerate()
        .flat_map(|(node, n)| {
            n.op.params()
                .into_iter()
                .enumerate()
                .map(move |(index, (kind, data))| ParamRef {
                    node,
                    index,
                    kind,
                    data,
                })
        })
        .collect()
}

/// Signed bits a parameter tensor is range-checked to (so packing is injective): at least
/// `param_bits`, enough for its largest magnitude, rounded up to a multiple of 8 so the width
/// (which the verifier key fixes) says little about the values.
pub fn param_bits(data: &[i64], param_bits: u32) -> u32 {
    let need = data
        .iter()
        .map(|&x| {
            // x ∈ [−2^(b−1), 2^(b−1)) needs b signed bits.
            let m = if x < 0 { !x } else { x } as u64;
            65 - m.leading_zeros()
        })
        .max()
        .unwrap_or(1);
    need.max(param_bits).max(2).div_ceil(8) * 8
}

/// The range-checked width of every parameter tensor, in [`param_tensors`] order: recorded in a
/// redacted model, else [`param_bits`] of the data.
pub fn param_widths(qm: &QuantizedModel) -> Vec<u32> {
    match &qm.redacted {
        Some(w) => w.clone(),
        None => param_tensors(qm)
            .iter()
            .map(|t| param_bits(t.data, qm.config.param_bits))
            .collect(),
    }
}

/// The integers of parameter tensor `index` of `node` (see [`ParamRef`]).
pub fn param_data_mut(qm: &mut QuantizedModel, node: usize, index: usize) -> Option<&mut Vec<i64>> {
    qm.nodes
        .get_mut(node)?
        .op
        .params_mut()
        .into_iter()
        .nth(index)
}

/// The model without its parameters: every weight, bias and constant set to zero, and their
/// widths recorded. With hashed weights it compiles to the same circuit and verifier key, so a
/// verifier can check a proof without them.
pub fn redact(qm: &QuantizedModel) -> QuantizedModel {
    let widths = param_widths(qm);
    let places: Vec<(usize, usize)> = param_tensors(qm)
        .iter()
        .map(|t| (t.node, t.index))
        .collect();
    let mut r = qm.clone();
    for (node, index) in places {
        if let Some(d) = param_data_mut(&mut r, node, index) {
            d.iter_mut().for_each(|x| *x = 0);
        }
    }
    r.redacted = Some(widths);
    r
}

/// The message of the weights digest: tag, packed words of every tensor, count. (Of a full
/// model: a redacted one has no weights to hash.)
pub fn params_message(qm: &QuantizedModel) -> Vec<Fp> {
    let mut m = vec![fe(params_tag())];
    let mut n = 0;
    for (t, bits) in param_tensors(qm).into_iter().zip(param_widths(qm)) {
        m.extend(pack(t.data, bits));
        n += t.data.len();
    }
    m.push(fe(n as i128));
    m
}

/// The weights digest of a quantized model.
pub fn params_digest(qm: &QuantizedModel) -> Fp {
    chain(&params_message(qm))
}

/// Integers per half of a packed word, for `bits`-bit values (at most 126 bits: an `i128`).
pub fn per_half(bits: u32) -> usize {
    (126 / bits).max(1) as usize
}

/// Integers per packed field element: two halves.
pub fn per_word(bits: u32) -> usize {
    2 * per_half(bits)
}

/// The packed words: `lo + 2^(bits·m)·hi` with `m = per_half(bits)`, each half
/// `Σ_j (x_j + 2^(bits-1))·2^(bits·j)` over up to `m` integers.
pub fn pack(values: &[i64], bits: u32) -> Vec<Fp> {
    let half = 1i128 << (bits - 1);
    let part = |g: &[i64]| -> i128 {
        g.iter()
            .enumerate()
            .map(|(j, &x)| (x as i128 + half) << (bits as usize * j))
            .sum()
    };
    let m = per_half(bits);
    let shift = fe(1i128 << (bits as usize * m));
    values
        .chunks(per_word(bits))
        .map(|g| {
            let (lo, hi) = g.split_at(g.len().min(m));
            fe(part(lo)) + shift * fe(part(hi))
        })
        .collect()
}

/// Words per block of the chain.
pub const BLOCK: usize = 16;

/// The running digest and one block: `ConstantLength<{BLOCK + 1}>` Poseidon.
pub fn h_block(h: Fp, block: &[Fp]) -> Fp {
    let mut m = [Fp::zero(); BLOCK + 1];
    m[0] = h;
    m[1..=block.len()].copy_from_slice(block);
    Hash::<Fp, P128Pow5T3, ConstantLength<{ BLOCK + 1 }>, 3, 2>::init().hash(m)
}

/// Length of a message once its words (all but the tag) are padded to whole blocks.
pub fn padded_len(len: usize) -> usize {
    1 + blocks(len) * BLOCK
}

/// The message the chain absorbs: tag, salt, packed words, count.
pub fn message(values: &[i64], bits: u32, salt: i128) -> Vec<Fp> {
    let mut m = vec![fe(tag()), fe(salt)];
    m.extend(pack(values, bits));
    m.push(fe(values.len() as i128));
    m
}

/// Most chains a message is hashed in (see the module's comment): as many digests as one block
/// holds, so the join is one block.
pub const CHAINS: usize = BLOCK;

/// Blocks of a message of `len` elements (tag included).
pub fn blocks(len: usize) -> usize {
    len.saturating_sub(1).div_ceil(BLOCK).max(1)
}

/// Chains of a message of `len` elements.
pub fn chains(len: usize) -> usize {
    blocks(len).min(CHAINS)
}

/// Hash a message (`[tag, words…]`) block by block through [`h_block`], in [`chains`] chains.
pub fn chain(msg: &[Fp]) -> Fp {
    let tag = msg[0];
    let s = chains(msg.len());
    let mut h = vec![tag; s];
    for (i, block) in msg[1..].chunks(BLOCK).enumerate() {
        h[i % s] = h_block(h[i % s], block);
    }
    if s == 1 { h[0] } else { h_block(tag, &h) }
}

/// The digest of `values` (all graph inputs, flattened, in graph order).
pub fn input_digest(values: &[i64], bits: u32, salt: i128) -> Fp {
    chain(&message(values, bits, salt))
}

/// A field element as `0x` + 64 hex digits (big-endian).
pub fn fp_hex(x: Fp) -> String {
    let mut r = x.to_repr();
    r.reverse();
    let mut s = String::from("0x");
    for b in r {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parse [`fp_hex`]'s form; None for anything else or a non-canonical value.
pub fn parse_fp_hex(s: &str) -> Option<Fp> {
    let h = s.strip_prefix("0x")?;
    if h.len() != 64 || !h.is_ascii() {
        return None;
    }
    let mut r = [0u8; 32];
    for (i, b) in r.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()?;
    }
    r.reverse();
    Option::from(Fp::from_repr(r))
}

/// Parse a salt given as hex (at most 30 digits, i.e. 120 bits).
pub fn parse_salt(s: &str) -> Result<i128, String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if h.is_empty() || h.len() > 30 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{s}` is not a salt: give 1 to 30 hex digits (up to 120 bits)"
        ));
    }
    i128::from_str_radix(h, 16).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_is_injective_within_the_range() {
        let a = pack(&[-8, 7, 0], 4);
        let b = pack(&[7, -8, 0], 4);
        assert_ne!(a, b);
        assert_eq!(pack(&[-8], 4), vec![Fp::zero()]);
        assert_eq!(pack(&[7, 7], 4), vec![fe(15 + (15 << 4))]);
        assert_eq!((per_half(24), per_word(24), per_word(16)), (5, 10, 14));
        // The second half sits right above the first: one positional packing of 14 integers.
        let v: Vec<i64> = (0..14).map(|i| i * 1000 - 7000).collect();
        let w = v.iter().rev().fold(Fp::zero(), |acc, &x| {
            acc * fe(1 << 16) + fe(x as i128 + (1 << 15))
        });
        assert_eq!(pack(&v, 16), vec![w]);
        assert_eq!(pack(&[0; 15], 16).len(), 2);
    }

    #[test]
    fn parameter_widths_cover_the_values_in_whole_bytes() {
        assert_eq!(param_bits(&[1, -1], 16), 16);
        assert_eq!(param_bits(&[32767, -32768], 16), 16);
        assert_eq!(param_bits(&[32768], 16), 24);
        assert_eq!(param_bits(&[-32769], 16), 24);
        assert_eq!(param_bits(&[i64::MIN, i64::MAX], 16), 64);
        assert_eq!(param_bits(&[], 4), 8);
        // In range at that width: packing stays injective.
        for x in [32767i64, -32768] {
            let b = param_bits(&[x], 16);
            assert!(x >= -(1 << (b - 1)) && x < 1 << (b - 1));
        }
    }

    #[test]
    fn chains_split_the_blocks_and_join_in_order() {
        let f = |x: u64| Fp::from(x);
        // 40 words: three blocks, three chains.
        let msg: Vec<Fp> = (0..41).map(f).collect();
        let pad = |b: &[Fp]| {
            let mut v = b.to_vec();
            v.resize(BLOCK, Fp::zero());
            v
        };
        let h: Vec<Fp> = (0..3)
            .map(|i| h_block(f(0), &pad(&msg[1 + 16 * i..(1 + 16 * (i + 1)).min(41)])))
            .collect();
        assert_eq!(chain(&msg), h_block(f(0), &h));
        // One block: one chain, no join; the zero padding is the native one.
        assert_eq!(chain(&msg[..5]), h_block(f(0), &msg[1..5]));
        let mut padded = msg[..5].to_vec();
        padded.resize(padded_len(5), Fp::zero());
        assert_eq!(chain(&padded), chain(&msg[..5]));
        assert_eq!(padded_len(41), 49);
        assert_eq!(chains(padded_len(1000)), CHAINS);
    }

    #[test]
    fn digest_depends_on_every_part() {
        let d = input_digest(&[1, 2, 3], 24, 0);
        assert_ne!(d, input_digest(&[1, 2, 4], 24, 0));
        assert_ne!(d, input_digest(&[1, 2, 3], 24, 1));
        assert_ne!(d, input_digest(&[1, 2, 3, 0], 24, 0), "the count is hashed");
        assert_eq!(parse_fp_hex(&fp_hex(d)), Some(d));
        assert_eq!(parse_salt("0xff"), Ok(255));
        assert!(parse_salt("xyz").is_err());
        assert!(parse_salt(&"f".repeat(31)).is_err());
    }
}
