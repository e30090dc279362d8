//! The hashed-input commitment, natively (out of circuit); the circuit computes the same chain
//! with halo2_gadgets' Poseidon chip (`Pow5Chip`, P128Pow5T3).
//!
//! The input integers (each in the signed activation range `[-2^(A-1), 2^(A-1))`) are offset to
//! `[0, 2^A)` and packed `⌊126/A⌋` to a field element, then chained through two-to-one Poseidon:
//! `h = H(tag, salt)`, `h = H(h, p)` for every packed word `p`, and the digest is `H(h, n)` with
//! `n` the number of input integers. The tag separates this use of Poseidon from any other; the
//! salt (up to 120 bits, 0 when none is given) keeps low-entropy inputs from being found by trying
//! them all.

use halo2_gadgets::poseidon::primitives::{ConstantLength, Hash, P128Pow5T3};
use halo2_proofs::pasta::Fp;
use halo2_proofs::pasta::group::ff::PrimeField;

/// Domain tag: the bytes of `zkreceipt/in/v1`, little-endian, as an integer (< 2^120).
pub fn tag() -> i128 {
    b"zkreceipt/in/v1"
        .iter()
        .rev()
        .fold(0i128, |acc, &b| (acc << 8) | b as i128)
}

/// Input integers per packed field element, for `bits`-bit values.
pub fn per_word(bits: u32) -> usize {
    (126 / bits).max(1) as usize
}

/// The packed words: `Σ_j (x_j + 2^(A-1))·2^(A·j)` over groups of `per_word(A)`.
pub fn pack(values: &[i64], bits: u32) -> Vec<i128> {
    let half = 1i128 << (bits - 1);
    values
        .chunks(per_word(bits))
        .map(|g| {
            g.iter()
                .enumerate()
                .map(|(j, &x)| (x as i128 + half) << (bits as usize * j))
                .sum()
        })
        .collect()
}

/// Two-to-one Poseidon.
pub fn h2(a: Fp, b: Fp) -> Fp {
    Hash::<Fp, P128Pow5T3, ConstantLength<2>, 3, 2>::init().hash([a, b])
}

/// The message the chain absorbs: tag, salt, packed words, count.
pub fn message(values: &[i64], bits: u32, salt: i128) -> Vec<i128> {
    let mut m = vec![tag(), salt];
    m.extend(pack(values, bits));
    m.push(values.len() as i128);
    m
}

/// Chain a message through [`h2`].
pub fn chain(msg: &[Fp]) -> Fp {
    msg[2..].iter().fold(h2(msg[0], msg[1]), |h, &m| h2(h, m))
}

/// The digest of `values` (all graph inputs, flattened, in graph order).
pub fn input_digest(values: &[i64], bits: u32, salt: i128) -> Fp {
    let msg: Vec<Fp> = message(values, bits, salt)
        .into_iter()
        .map(super::chips::fe)
        .collect();
    chain(&msg)
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
        assert_eq!(pack(&[-8], 4), vec![0]);
        assert_eq!(pack(&[7, 7], 4), vec![15 + (15 << 4)]);
        assert_eq!(per_word(24), 5);
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
