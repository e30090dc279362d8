//! The commands on a model: `model` (ops, shapes, preflight) and `run` (float against
//! quantized, per-node error).

use super::*;

pub(super) fn cmd_model(path: &std::path::Path, json: bool) -> Result<i32> {
    let m = Model::load(path)?;
    let unsupported = m.preflight();
    let shapes = m.output_shapes(&m.input_shapes(None)?)?;
    let code = if unsupported.is_empty() { 0 } else { 3 };
    if json {
        let nodes: Vec<_> = m
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "op_type": n.op_type,
                    "inputs": n.inputs,
                    "outputs": n.outputs,
                    "output_shapes": n.outputs.iter().map(|o| shapes.get(o)).collect::<Vec<_>>(),
                    "attributes": n.attributes,
                    "supported": !unsupported.iter().any(|u| u.node == n.name),
                })
            })
            .collect();
        print_json(&json!({
            "path": m.file(),
            "sha256": m.sha256,
            "bytes": m.bytes,
            "ir_version": m.ir_version,
            "opset": m.opset,
            "producer": m.producer,
            "inputs": m.inputs,
            "outputs": m.outputs,
            "params": m.param_count(),
            "op_counts": m.op_counts(),
            "nodes": nodes,
            "supported": unsupported.is_empty(),
            "unsupported": unsupported,
        }));
        return Ok(code);
    }
    println!("model     {}", m.file());
    println!("sha256    {}", m.sha256);
    println!(
        "size      {} bytes · ir {} · opset {} · producer {}",
        m.bytes,
        m.ir_version,
        m.opset,
        if m.producer.is_empty() {
            "-"
        } else {
            &m.producer
        }
    );
    for i in &m.inputs {
        println!("input     {} {} {}", i.name, i.dtype, dims_str(&i.dims));
    }
    for o in &m.outputs {
        println!(
            "output    {} {} {}",
            o.name,
            o.dtype,
            shapes
                .get(&o.name)
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| dims_str(&o.dims))
        );
    }
    println!("params    {}", m.param_count());
    let counts: Vec<String> = m
        .op_counts()
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    println!("ops       {}", counts.join(" "));
    println!();
    let rows: Vec<Vec<String>> = m
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let attrs: Vec<String> = n
                .attributes
                .iter()
                .filter(|(k, _)| k.as_str() != "value")
                .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
                .collect();
            let shape = n
                .outputs
                .first()
                .and_then(|o| shapes.get(o))
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| "?".into());
            let ok = if unsupported.iter().any(|u| u.node == n.name) {
                "✗"
            } else {
                "✓"
            };
            vec![
                i.to_string(),
                n.name.clone(),
                n.op_type.clone(),
                shape,
                ok.into(),
                attrs.join(" "),
            ]
        })
        .collect();
    print_table(
        &["#", "node", "op", "output shape", "ok", "attributes"],
        &rows,
    );
    println!();
    if unsupported.is_empty() {
        println!("support   all {} nodes supported", m.nodes.len());
    } else {
        println!("support   {} unsupported node(s):", unsupported.len());
        for u in &unsupported {
            println!("  ✗ {u}");
        }
        println!(
            "          what is supported, and what to do: README.md, \"Supported ops\" and \
             \"When an op is refused\""
        );
    }
    Ok(code)
}

/// Load, preflight, run float, quantize and compare.
pub fn quantize_and_compare(
    model_path: &std::path::Path,
    input: &std::path::Path,
    cfg: &QuantConfig,
) -> Result<(
    Model,
    crate::quantize::QuantizedModel,
    RunReport,
    crate::receipt::precision::Choice,
)> {
    // What `prove` would prove (default visibility), at the precision the target chooses.
    let (run, choice) = crate::receipt::quantize_for_proof(
        model_path,
        input,
        cfg,
        crate::circuit::Disclosure::default(),
        &mut stderr_progress(),
    )?;
    Ok((run.model, run.qm, run.report, choice))
}

pub(super) fn cmd_run(
    model: &std::path::Path,
    input: &std::path::Path,
    cfg: &QuantConfig,
    json: bool,
) -> Result<i32> {
    let (_m, qm, report, choice) = quantize_and_compare(model, input, cfg)?;
    if json {
        print_json(&json!({
            "model": report.model,
            "sha256": report.sha256,
            "scale": report.scale,
            "config": qm.config,
            "precision": choice,
            "outputs": report.outputs,
            "layers": report.layers,
            "error_enters": report.error_enters,
        }));
        return Ok(0);
    }
    println!(
        "model     {} (sha256 {}…)",
        report.model,
        short(&report.sha256)
    );
    println!(
        "scale     activations 2^{} · weights ≤ {} bits each · activations ≤ {} bits",
        qm.scale, qm.config.param_bits, qm.config.activation_bits
    );
    println!("precision {}", choice.why);
    for o in &report.outputs {
        println!();
        println!("output `{}` {:?} (scale 2^{})", o.name, o.shape, o.scale);
        let rows: Vec<Vec<String>> = o
            .float
            .iter()
            .zip(&o.quantized)
            .zip(&o.integers)
            .enumerate()
            .take(64)
            .map(|(i, ((f, q), n))| {
                vec![
                    i.to_string(),
                    format!("{f:.6}"),
                    format!("{q:.6}"),
                    n.to_string(),
                    format!("{:.2e}", (f - q).abs()),
                ]
            })
            .collect();
        print_table(
            &["i", "float (tract)", "quantized", "integer", "abs err"],
            &rows,
        );
        if o.float.len() > 64 {
            println!("  … {} more elements (see --json)", o.float.len() - 64);
        }
        println!(
            "  max abs error {:.3e} · max rel error {:.3e}",
            o.max_abs_error, o.max_rel_error
        );
        if let Some(a) = &o.argmax {
            println!(
                "  argmax    float {} · quantized {} · {}",
                a.float,
                a.quantized,
                if a.agree { "agree" } else { "DISAGREE" }
            );
        }
    }
    println!();
    println!("per-node error (float = tract; local = the node alone, fed quantized float inputs)");
    let rows: Vec<Vec<String>> = report
        .layers
        .iter()
        .map(|l| {
            vec![
                l.node.clone(),
                l.op_type.clone(),
                format!("{:?}", l.shape),
                l.param_scale
                    .map(|s| format!("2^{s}"))
                    .unwrap_or_else(|| "-".into()),
                format!("[{}, {}]", l.range.0, l.range.1),
                format!("{}/{}", l.bits, qm.config.activation_bits),
                format!("{:.2e}", l.max_abs_error),
                format!("{:.2e}", l.max_rel_error),
                format!("{:.2e}", l.local_abs_error),
                if report.error_enters.as_deref() == Some(l.node.as_str()) {
                    "◀ enters".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    print_table(
        &[
            "node",
            "op",
            "shape",
            "weights",
            "int range",
            "bits",
            "max abs",
            "max rel",
            "local",
            "",
        ],
        &rows,
    );
    Ok(0)
}
