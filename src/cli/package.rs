//! `setup` (a package from a model and a data set) and `prove PKG` (inputs against it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::{
    DisclosureArgs, QuantArgs, print_json, print_proved, print_table, short, stderr_progress,
};
use crate::error::{Error, Result};
use crate::quantize::QuantConfig;
use crate::quantize::dataset::DataSetReport;
use crate::receipt::package::{PACKAGE_FOLDER, Package, calibrate, read_inputs};
use crate::receipt::{ProveOptions, RECEIPT_FOLDER};

pub fn cmd_setup(
    model: &Path,
    data: &[PathBuf],
    out: &Path,
    cfg: &QuantConfig,
    opts: &ProveOptions,
    json: bool,
) -> Result<i32> {
    if !crate::quantize::MARGINS.contains(&cfg.margin) {
        return Err(Error::Usage(format!(
            "--margin {}: give a factor from 1 to 1024",
            cfg.margin
        )));
    }
    crate::files::replaces(out, &PACKAGE_FOLDER, opts.force)?;
    let progress = &mut stderr_progress();
    let clock = Instant::now();
    let (pkg, keys) = Package::setup(model, data, cfg, opts, progress)?;
    progress("write package");
    if pkg.write(out, opts.force)? {
        eprintln!("replaced the existing package {}", out.display());
    }
    let setup_s = clock.elapsed().as_secs_f64();
    let id = &pkg.identity;
    if json {
        print_json(&json!({
            "out": out,
            "package": id,
            "calibration": pkg.calibration,
            "circuit": {
                "k": pkg.info().k,
                "rows": pkg.info().rows,
                "advice_columns": pkg.info().advice_columns,
            },
            "timings": {"setup_s": setup_s, "params_s": keys.params_s, "keygen_s": keys.keygen_s},
        }));
        return Ok(0);
    }
    println!("package   {}", out.display());
    println!(
        "circuit   k={} · {} rows used of {} · input {} · weights {}",
        pkg.info().k,
        pkg.info().rows,
        1u64 << pkg.info().k,
        pkg.info().layout.input.name(),
        pkg.info().layout.params.name()
    );
    print_gap(&pkg.calibration);
    println!(
        "time      {setup_s:.2}s in all · params {:.2}s · keygen {:.2}s",
        keys.params_s, keys.keygen_s
    );
    println!("identity  (every receipt proved against this package carries the first four)");
    for (what, h) in [
        ("model.onnx", &id.onnx_sha256),
        ("quantized.json", &id.quantized_sha256),
        ("circuit.json", &id.circuit_sha256),
        ("vk.txt", &id.vk_sha256),
        ("calibration.json", &id.calibration_sha256),
    ] {
        println!("  {what:<17} sha256 {h}");
    }
    Ok(0)
}

/// The data-set gap: per output, then the layers.
pub fn print_gap(g: &DataSetReport) {
    println!(
        "data set  {} sample(s) · activation scale 2^{} · margin {}×",
        g.samples, g.scale, g.margin
    );
    let pct = |x: Option<f64>| x.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v));
    let rows: Vec<Vec<String>> = g
        .outputs
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                format!("{:.3e}", o.max_abs_error),
                format!("{:.3e}", o.mean_abs_error),
                pct(o.argmax_agreement),
                if o.labelled > 0 {
                    format!(
                        "{} / {} ({})",
                        pct(o.float_accuracy),
                        pct(o.quantized_accuracy),
                        o.labelled
                    )
                } else {
                    "–".into()
                },
            ]
        })
        .collect();
    print_table(
        &[
            "output",
            "max |err|",
            "mean |err|",
            "argmax agrees",
            "accuracy float / circuit (labelled)",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = g
        .layers
        .iter()
        .map(|l| {
            vec![
                l.node.clone(),
                format!("2^{}", l.scale),
                format!("{} bits, {} spare", l.bits, l.headroom_bits),
                format!("{:.2e}", l.error.median),
                format!("{:.2e}", l.error.p99),
                format!("{:.2e}", l.error.max),
            ]
        })
        .collect();
    print_table(
        &[
            "layer",
            "scale",
            "range",
            "err median",
            "err p99",
            "err max",
        ],
        &rows,
    );
}

pub fn cmd_prove_package(
    dir: &Path,
    inputs: &[PathBuf],
    out: &Path,
    quant: &QuantArgs,
    disclosure: &DisclosureArgs,
    opts: &ProveOptions,
    json: bool,
) -> Result<i32> {
    fixed_by_package(quant)?;
    if disclosure.input_visibility.is_some() || disclosure.param_visibility.is_some() {
        return Err(Error::Usage(
            "the package fixes how the input and weights enter the proof: give --input-visibility and --param-visibility to setup".into(),
        ));
    }
    let progress = &mut stderr_progress();
    progress("read package");
    let pkg = Package::read(dir)?;
    let samples = read_inputs(&pkg, inputs)?;
    let opts = pkg.options(opts)?;
    let single = samples.len() == 1
        && inputs.len() == 1
        && inputs[0].is_file()
        && inputs[0].extension().is_none_or(|x| x != "jsonl");
    if single {
        crate::files::replaces(out, &RECEIPT_FOLDER, opts.force)?;
        let keys = pkg.keys(&opts, progress)?;
        let p = pkg.prove(&keys, &samples[0], out, &opts, progress)?;
        print_proved(&p, json);
        return Ok(0);
    }
    // One receipt folder per input, named after it (a repeated name gets its position); each
    // destination is checked before the keys are made.
    if out.exists() && !out.is_dir() {
        return Err(Error::invalid(
            out.display(),
            "exists and is not a folder; choose another --out",
        ));
    }
    let mut names: Vec<String> = vec![];
    for (i, s) in samples.iter().enumerate() {
        let name = if names.contains(&s.name) {
            format!("{}-{}", s.name, i + 1)
        } else {
            s.name.clone()
        };
        crate::files::replaces(&out.join(&name), &RECEIPT_FOLDER, opts.force)?;
        names.push(name);
    }
    let keys = pkg.keys(&opts, progress)?;
    std::fs::create_dir_all(out).map_err(|e| Error::invalid(out.display(), e))?;
    let mut rows = vec![];
    let mut docs = vec![];
    for (i, (s, name)) in samples.iter().zip(&names).enumerate() {
        progress(&format!("prove {}/{}: {}", i + 1, samples.len(), s.source));
        let dest = out.join(name);
        let p = pkg.prove(&keys, s, &dest, &opts, &mut |_| {})?;
        if p.replaced {
            eprintln!("replaced the existing receipt folder {}", dest.display());
        }
        let argmax = p
            .report
            .outputs
            .first()
            .and_then(|o| o.argmax.as_ref())
            .map(|a| a.quantized);
        rows.push(vec![
            s.source.clone(),
            argmax.map_or("–".into(), |a| a.to_string()),
            format!("{:.2}", p.timings.prove_s),
            "yes".into(),
            dest.display().to_string(),
        ]);
        docs.push(json!({
            "input": s.source,
            "out": dest,
            "argmax": argmax,
            "label": s.label,
            "prove_s": p.timings.prove_s,
            "verified": true,
            "replaced": p.replaced,
        }));
    }
    let id = &pkg.identity;
    if json {
        print_json(&json!({
            "out": out,
            "package": id,
            "params_s": keys.params_s,
            "keygen_s": keys.keygen_s,
            "receipts": docs,
        }));
        return Ok(0);
    }
    println!(
        "{} receipts against package {} (vk sha256 {}…) · params {:.2}s · keygen {:.2}s once",
        samples.len(),
        dir.display(),
        short(&id.vk_sha256),
        keys.params_s,
        keys.keygen_s
    );
    print_table(
        &["input", "output argmax", "prove s", "verified", "receipt"],
        &rows,
    );
    Ok(0)
}

/// `run --calibration`: the quantization gap over a data set, for a model calibrated on it or
/// for a package's own quantized model.
pub fn cmd_run_data_set(
    model: &Path,
    data: &[PathBuf],
    quant: &QuantArgs,
    json: bool,
) -> Result<i32> {
    let progress = &mut stderr_progress();
    let gap = if Package::is_package(model) {
        fixed_by_package(quant)?;
        let pkg = Package::read(model)?;
        pkg.gap_on(data, progress)?
    } else {
        calibrate(
            model,
            data,
            &quant.config(),
            crate::circuit::Disclosure::default(),
            progress,
        )?
        .3
    };
    if json {
        print_json(&gap);
    } else {
        print_gap(&gap);
    }
    Ok(0)
}

/// A package fixes the quantization: its flags belong to `setup`.
fn fixed_by_package(quant: &QuantArgs) -> Result<()> {
    if quant.config() != QuantConfig::default() {
        return Err(Error::Usage(
            "the package fixes the quantization: give --scale, --param-bits, --activation-bits and --target to setup".into(),
        ));
    }
    Ok(())
}
