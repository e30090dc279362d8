//! `zkreceipt bench`: printing what `crate::bench` measures.

use std::path::{Path, PathBuf};

use super::{print_json, print_table, stderr_progress};
use crate::bench::{CorpusRow, batch_rows, bench_rows, corpus_rows};
use crate::circuit::Disclosure;
use crate::error::Result;

/// `bench [MODEL --input IN ...]`: the table (or JSON) of every model's figures.
pub fn cmd_bench(
    models: &[PathBuf],
    inputs: &[PathBuf],
    runs: usize,
    dis: Disclosure,
    json: bool,
) -> Result<i32> {
    let rows = bench_rows(models, inputs, runs, dis, &mut stderr_progress())?;
    if json {
        print_json(&serde_json::json!({ "models": rows }));
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.k.to_string(),
                r.rows.to_string(),
                format!(
                    "{} ({})",
                    r.advice_columns,
                    crate::circuit::lanes_text(r.lanes, r.lane_groups)
                ),
                format!(
                    "{:.2}{}",
                    r.params_s,
                    if r.params_cached { " (cached)" } else { "" }
                ),
                format!("{:.2}", r.keygen_s),
                format!("{:.2}", r.prove_s),
                format!("{:.3}", r.verify_s),
                r.proof_bytes.to_string(),
                format!("{:.0}", r.peak_rss_mib),
                format!("{:.1e}", r.max_abs_error),
            ]
        })
        .collect();
    print_table(
        &[
            "model",
            "k",
            "rows",
            "advice",
            "params s",
            "keygen s",
            "prove s",
            "verify s",
            "proof B",
            "peak MiB",
            "max abs err",
        ],
        &table,
    );
    println!(
        "  prove and verify: median of {} run(s); verify is the proof check with the key in memory",
        runs.max(1)
    );
    Ok(0)
}

/// `bench --corpus DIR`: every model of the corpus, in census order, with a summary per tier.
pub fn cmd_corpus(dir: &Path, max_k: u32, json: bool) -> Result<i32> {
    let rows = corpus_rows(dir, max_k, &mut stderr_progress())?;
    if json {
        print_json(&serde_json::json!({ "models": rows }));
        return Ok(0);
    }
    let opt =
        |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$e}")).unwrap_or_else(|| "-".into());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.tier.to_string(),
                if r.supported {
                    "yes".into()
                } else {
                    r.unsupported.join(", ")
                },
                r.k.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
                r.rows.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
                r.prove_s
                    .map(|s| format!("{s:.2}"))
                    .unwrap_or_else(|| "-".into()),
                opt(r.float_max_diff, 1),
                opt(r.max_abs_error, 1),
                match (r.verified, &r.stopped) {
                    (Some(true), _) => "✓".into(),
                    (Some(false), _) => "✗ REJECTED".into(),
                    (None, Some(s)) if r.supported => s.clone(),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    print_table(
        &[
            "model",
            "tier",
            "supported",
            "k",
            "rows",
            "prove s",
            "float vs ort",
            "circuit vs ort",
            "verified",
        ],
        &table,
    );
    for tier in 1..=3 {
        let of: Vec<&CorpusRow> = rows.iter().filter(|r| r.tier == tier).collect();
        let proved = of.iter().filter(|r| r.verified == Some(true)).count();
        println!("  tier {tier}: {proved}/{} proved and verified", of.len());
    }
    Ok(0)
}

/// `bench --batch N`: N proofs per model, separately and in one batch against a package.
pub fn cmd_batch(models: &[PathBuf], inputs: &[PathBuf], n: usize, json: bool) -> Result<i32> {
    let rows = batch_rows(models, inputs, n, &mut stderr_progress())?;
    if json {
        print_json(&serde_json::json!({ "batch": rows }));
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.proofs.to_string(),
                format!("{:.2}", r.separate_s),
                format!("{:.2}", r.setup_s),
                format!("{:.2}", r.batch_s),
                format!("{:.3}", r.separate_s / r.proofs as f64),
                format!("{:.3}", r.batch_s / r.proofs as f64),
                format!("{:.2}×", r.ratio),
            ]
        })
        .collect();
    print_table(
        &[
            "model",
            "proofs",
            "separate s",
            "setup s",
            "batch s (setup incl.)",
            "s/proof separate",
            "s/proof batch",
            "batch / separate",
        ],
        &table,
    );
    Ok(0)
}
