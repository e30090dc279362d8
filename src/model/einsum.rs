//! Einsum's equation, parsed: one letter per axis of each operand, the output's letters, and
//! the forms refused because tract (which runs the float model) computes them wrongly.

use super::*;
use ops::ELLIPSIS;

/// An Einsum equation as letters: `"bij,bjk->bik"`, or implicit (`"ij,jk"`: the output is the
/// letters that appear once, in alphabetical order). An ellipsis becomes the one character
/// [`ELLIPSIS`].
pub(super) fn einsum(equation: &str) -> std::result::Result<Op, String> {
    let eq: String = equation
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("...", &ELLIPSIS.to_string());
    let refuse = |why: &str| Err(format!("Einsum `{equation}`: {why} is not supported"));
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let inputs: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    if inputs.is_empty() || inputs.len() > 2 {
        return refuse("other than one or two operands");
    }
    let term = |t: &[char]| {
        t.iter().all(|&c| c.is_ascii_alphabetic() || c == ELLIPSIS)
            && t.iter().filter(|&&c| c == ELLIPSIS).count() <= 1
    };
    if !inputs.iter().all(|t| term(t)) {
        return refuse("a term that is not letters and one ellipsis");
    }
    // tract, which runs the float model, loses axes when only some operands have an ellipsis,
    // and miscomputes a diagonal beside a second operand: both are refused.
    let ellipsis = inputs.iter().flatten().any(|&c| c == ELLIPSIS);
    if ellipsis && !inputs.iter().all(|t| t.contains(&ELLIPSIS)) {
        return refuse("an ellipsis in only some operands");
    }
    let diagonal = |t: &Vec<char>| (1..t.len()).any(|i| t[..i].contains(&t[i]));
    if inputs.len() == 2 && inputs.iter().any(diagonal) {
        return refuse("a letter twice in one operand (a diagonal) beside a second operand");
    }
    let output: Vec<char> = match rhs {
        Some(r) => r.chars().collect(),
        None => {
            let mut seen: Vec<char> = inputs
                .iter()
                .flatten()
                .copied()
                .filter(|&c| c != ELLIPSIS)
                .collect();
            seen.sort_unstable();
            let once = |c: &char| seen.iter().filter(|d| *d == c).count() == 1;
            let mut out: Vec<char> = seen.iter().copied().filter(once).collect();
            out.dedup();
            if ellipsis {
                return refuse(
                    "an ellipsis with an implicit output (tract drops its axes; write the output after `->`)",
                );
            }
            out
        }
    };
    if !term(&output)
        || (1..output.len()).any(|i| output[..i].contains(&output[i]))
        || output
            .iter()
            .any(|c| !inputs.iter().flatten().any(|d| d == c))
    {
        return refuse("that output");
    }
    Ok(Op::Einsum { inputs, output })
}
