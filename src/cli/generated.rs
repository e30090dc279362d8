//! What zkreceipt generates about itself: the manual pages and shell completions (from the
//! command-line definition) and the inspector's screenshots.

use std::io::Write;

use super::{Cli, stderr_progress};
use crate::error::Result;
use crate::quantize::QuantConfig;
use crate::receipt::{ProofRng, ProveOptions, prove_folder};

/// A shell completion script on stdout.
pub(super) fn cmd_completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "zkreceipt", &mut std::io::stdout());
    Ok(0)
}

/// The manual page on stdout, or every page into `out`.
pub(super) fn cmd_man(out: Option<&std::path::Path>) -> Result<i32> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = out else {
        let mut stdout = std::io::stdout().lock();
        clap_mangen::Man::new(cmd)
            .render(&mut stdout)
            .and_then(|()| stdout.flush())
            .map_err(|e| crate::error::Error::invalid("stdout", e))?;
        return Ok(0);
    };
    let io = |e: std::io::Error| crate::error::Error::invalid(dir.display(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    clap_mangen::generate_to(cmd, dir).map_err(io)?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    for p in pages {
        println!("{}", p.display());
    }
    Ok(0)
}

pub(super) fn cmd_screenshots(out: &std::path::Path) -> Result<i32> {
    let mut progress = stderr_progress();
    let source = crate::tui::default_source()?;
    let crate::tui::jobs::Command::Build { model, input, .. } = source else {
        // The default chain is cached: prove it afresh anyway, seeded, so the images are
        // reproducible.
        let dir = crate::proof::cache_dir().join("default-digits");
        return screenshots_from(
            &dir.join("model.onnx"),
            &dir.join("input.json"),
            out,
            &mut progress,
        );
    };
    screenshots_from(&model, &input, out, &mut progress)
}

fn screenshots_from(
    model: &std::path::Path,
    input: &std::path::Path,
    out: &std::path::Path,
    progress: &mut dyn FnMut(&str),
) -> Result<i32> {
    let receipt = crate::proof::cache_dir().join("screenshots-receipt");
    let opts = ProveOptions {
        rng: ProofRng::Seeded(1),
        ..ProveOptions::default()
    };
    prove_folder(
        model,
        input,
        &receipt,
        &QuantConfig::default(),
        &opts,
        progress,
    )?;
    progress("render screens");
    for p in crate::tui::screenshot::write_screenshots(&receipt, crate::tui::DEFAULT_TITLE, out)? {
        println!("{}", p.display());
    }
    Ok(0)
}
