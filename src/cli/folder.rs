//! The commands on a receipt folder: verify, audit, break-test, export and redact.

use super::*;

pub(super) fn cmd_verify(path: &std::path::Path, json: bool) -> Result<i32> {
    let folder = Folder::load(path)?;
    let mut progress = stderr_progress();
    let v = verify_folder(&folder, &mut progress)?;
    let code = if v.verified { 0 } else { 1 };
    if json {
        print_json(&v);
        return Ok(code);
    }
    for c in &v.checks {
        println!(
            "  {} {}{}",
            if c.holds { "✓" } else { "✗" },
            c.name,
            c.detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    if v.verified {
        println!(
            "verified  k={} · vk {} · proof checked in {:.3}s",
            v.k,
            short(&v.vk_sha256),
            v.verify_s
        );
    } else {
        println!(
            "REJECTED  {}",
            v.reason.as_deref().unwrap_or("verification failed")
        );
    }
    Ok(code)
}

pub(super) fn cmd_audit(dir: &std::path::Path, json: bool) -> Result<i32> {
    let folder = Folder::load(dir)?;
    let mut progress = stderr_progress();
    let a = audit(&folder, &mut progress)?;
    let code = if a.holds { 0 } else { 1 };
    if json {
        print_json(&a);
        return Ok(code);
    }
    for l in &a.links {
        println!(
            "  {} {:44} {}",
            if l.skipped {
                "– skipped"
            } else if l.holds {
                "✓ holds  "
            } else {
                "✗ BROKEN "
            },
            l.link,
            l.detail
        );
    }
    println!(
        "{}",
        if a.holds {
            "audit     every checkable link holds"
        } else {
            "audit     BROKEN links above"
        }
    );
    Ok(code)
}

pub(super) fn cmd_break_test(dir: &std::path::Path, json: bool) -> Result<i32> {
    let folder = Folder::load(dir)?;
    let mut progress = stderr_progress();
    let b = break_test(&folder, &mut progress)?;
    let code = if b.passed { 0 } else { 1 };
    if json {
        print_json(&b);
        return Ok(code);
    }
    if !b.honest_verified {
        println!(
            "the untouched folder does not verify ({}): nothing to break",
            b.honest_reason.as_deref().unwrap_or("rejected")
        );
        return Ok(1);
    }
    let mut group = None;
    for c in &b.cases {
        if group != Some(c.group) {
            println!("{}", c.group.title());
            group = Some(c.group);
        }
        let verdict = if c.verified { "verified" } else { "rejected" };
        let expect = if c.bound { "bound  " } else { "unbound" };
        println!(
            "  {} {expect} {verdict:8} {} [{} → {}]{}",
            if c.ok { "✓" } else { "✗" },
            c.item,
            crate::model::shortened(&c.before, 40),
            crate::model::shortened(&c.after, 40),
            c.reason
                .as_ref()
                .filter(|_| !c.verified)
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        );
    }
    let bound = b.cases.iter().filter(|c| c.bound).count();
    let rejected = b.cases.iter().filter(|c| c.bound && !c.verified).count();
    let unbound = b.cases.len() - bound;
    let kept = b.cases.iter().filter(|c| !c.bound && c.verified).count();
    println!(
        "break-test {rejected}/{bound} bound changes rejected · {kept}/{unbound} unbound changes kept the verdict · {}",
        if b.passed { "PASSED" } else { "FAILED" }
    );
    Ok(code)
}

pub(super) fn cmd_export(dir: &std::path::Path) -> Result<i32> {
    let folder = Folder::load(dir)?;
    let mut progress = stderr_progress();
    let v = verify_folder(&folder, &mut progress)?;
    if !v.verified {
        eprintln!(
            "not exported: the folder does not verify ({})",
            v.reason.as_deref().unwrap_or("rejected")
        );
        return Ok(1);
    }
    print_json(&crate::receipt::export::export(&folder));
    Ok(0)
}

pub(super) fn cmd_redact(dir: &std::path::Path, out: &std::path::Path, force: bool) -> Result<i32> {
    let folder = Folder::load(dir)?;
    crate::receipt::redactable(&folder)?;
    crate::files::replaces(out, &crate::receipt::RECEIPT_FOLDER, force)?;
    let mut progress = stderr_progress();
    let v = verify_folder(&folder, &mut progress)?;
    if !v.verified {
        eprintln!(
            "not redacted: the folder does not verify ({})",
            v.reason.as_deref().unwrap_or("rejected")
        );
        return Ok(1);
    }
    progress("redact");
    let (files, replaced) = crate::receipt::redact_folder(&folder, out, force)?;
    if replaced {
        eprintln!("replaced the existing receipt folder {}", out.display());
    }
    let copy = Folder::load(out)?;
    let v = verify_folder(&copy, &mut progress)?;
    if !v.verified {
        eprintln!(
            "the redacted copy in {} does not verify ({}); it was removed",
            out.display(),
            v.reason.as_deref().unwrap_or("rejected")
        );
        let _ = std::fs::remove_dir_all(out);
        return Ok(1);
    }
    println!("redacted  {}", out.display());
    println!("files     {}", files.join(", "));
    println!(
        "weights   none in the copy: quantized.json keeps the architecture and each tensor's width; the proof binds the weights to {}",
        folder.receipt.model_commitment.weights_commitment
    );
    println!(
        "verified  the copy verifies (vk {})",
        &v.vk_sha256[..12.min(v.vk_sha256.len())]
    );
    Ok(0)
}
