//! Calibration: what the quantizer measures ranges on. Either float runs on samples (one input,
//! or a data set: scales and tables then cover every sample), or the ranges a quantized model
//! records, which re-derive that same quantized model from the ONNX file alone: this is how
//! `verify` ties a receipt to the ONNX file it names without the input.

use super::*;

/// One calibration sample: the inputs and tract's float run on them.
pub type Sample<'a> = (&'a [Tensor<f64>], &'a FloatRun);

/// What the quantizer is calibrated on.
pub enum Calibration<'a> {
    /// Float runs on one or more samples: every range covers all of them.
    Samples(Vec<Sample<'a>>),
    /// The scale and ranges this quantized model records (no data needed).
    Recorded(&'a QuantizedModel),
}

/// Choose the activation scale from float runs: the largest (≤ max_scale) at which every
/// activation of every run, with the margin, fits in `activation_bits`.
pub fn choose_scale(model: &Model, floats: &[&FloatRun], cfg: &QuantConfig) -> Result<u32> {
    if let Some(s) = cfg.scale {
        return Ok(s);
    }
    let mut worst = (0f64, String::new());
    let names = model
        .nodes
        .iter()
        .filter(|n| !matches!(n.op, Op::Constant))
        .flat_map(|n| &n.outputs)
        .chain(model.inputs.iter().map(|i| &i.name));
    for name in names {
        for float in floats {
            if let Some(t) = float.values.get(name) {
                let m = t.data.iter().fold(0f64, |a, &x| a.max(x.abs()));
                if m > worst.0 {
                    worst = (m, name.clone());
                }
            }
        }
    }
    let Some(s) = fit_scale(worst.0 * cfg.margin, cfg.activation_bits, cfg.max_scale) else {
        let why = format!(
            "reaches {:.4e}, too large for {} activation bits even at scale 0",
            worst.0, cfg.activation_bits
        );
        // The input's own values: the input file is at fault, not the model.
        if let Some(i) = model.inputs.iter().position(|i| i.name == worst.1) {
            return Err(Error::InputValue {
                input: worst.1,
                field: Some(format!("input_data[{i}]")),
                msg: why,
            });
        }
        return Err(Error::invalid(
            model.file(),
            format!("tensor `{}` {why}", worst.1),
        ));
    };
    Ok(s as u32)
}

/// Quantize `model`, calibrated on one float run `float` on the inputs `inputs`.
pub fn quantize(
    model: &Model,
    inputs: &[Tensor<f64>],
    float: &FloatRun,
    cfg: &QuantConfig,
) -> Result<QuantizedModel> {
    quantize_calibrated(model, &Calibration::Samples(vec![(inputs, float)]), cfg)
}

/// The smallest and largest element over tensors (0, 0 when there are none).
pub(super) fn range_of<'t>(ts: impl IntoIterator<Item = &'t Tensor<i64>>) -> (i64, i64) {
    let mut r: Option<(i64, i64)> = None;
    for t in ts {
        for &v in &t.data {
            r = Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
        }
    }
    r.unwrap_or((0, 0))
}

/// Quantize `model` with the given calibration. With `Recorded(qm)`, the scale, configuration
/// and every range come from `qm`, and the result equals `qm` exactly when `qm` was made from
/// this ONNX file.
pub fn quantize_calibrated(
    model: &Model,
    calibration: &Calibration,
    cfg: &QuantConfig,
) -> Result<QuantizedModel> {
    model.check_supported()?;
    let (s, cfg, recorded) = match calibration {
        Calibration::Samples(samples) => {
            if samples.is_empty() {
                return Err(Error::Usage("calibration needs at least one sample".into()));
            }
            let floats: Vec<&FloatRun> = samples.iter().map(|(_, f)| *f).collect();
            (choose_scale(model, &floats, cfg)? as i32, cfg.clone(), None)
        }
        Calibration::Recorded(qm) => (qm.scale as i32, qm.config.clone(), Some(&qm.values[..])),
    };
    let mut lw = Lowering {
        model,
        cfg: cfg.clone(),
        s,
        values: vec![],
        nodes: vec![],
        ints: vec![],
        recorded,
        env: HashMap::new(),
        origin: String::new(),
        origin_type: String::new(),
        extra_outputs: vec![],
    };
    for (name, t) in &model.constants {
        lw.env.insert(name.clone(), Operand::Const(t.clone()));
    }
    let mut skeleton = QuantizedModel {
        format: FORMAT_VERSION,
        source_sha256: model.sha256.clone(),
        config: cfg,
        scale: s as u32,
        rounding: "inputs and constants: round half away from zero; rescale: floor((x + floor(d/2)) / d), nearest with ties toward +inf".into(),
        inputs: vec![],
        outputs: vec![],
        values: vec![],
        nodes: vec![],
        redacted: None,
    };
    let names: Vec<String> = model.inputs.iter().map(|i| i.name.clone()).collect();
    // Each graph input: its shape, and its integers on each sample (none when recorded).
    let mut graph_inputs: Vec<(Vec<usize>, Vec<Tensor<i64>>)> = vec![];
    match calibration {
        Calibration::Samples(samples) => {
            // Input values are quantized with the checks of the evaluator.
            let shapes: Vec<Vec<usize>> = samples[0].0.iter().map(|t| t.shape.clone()).collect();
            skeleton.values = shapes
                .iter()
                .zip(&names)
                .map(|(shape, n)| QValue {
                    name: n.clone(),
                    shape: shape.clone(),
                    scale: s,
                    onnx: Some(n.clone()),
                    range: (0, 0),
                })
                .collect();
            skeleton.inputs = (0..shapes.len()).collect();
            graph_inputs = shapes.into_iter().map(|sh| (sh, vec![])).collect();
            for (inputs, _) in samples {
                let same = inputs.len() == graph_inputs.len()
                    && inputs
                        .iter()
                        .zip(&graph_inputs)
                        .all(|(t, g)| t.shape == g.0);
                if !same {
                    return Err(Error::Usage(
                        "every calibration sample must have the same input shapes".into(),
                    ));
                }
                let qin = skeleton.quantize_inputs(inputs, &names)?;
                for (g, t) in graph_inputs.iter_mut().zip(qin) {
                    g.1.push(t);
                }
            }
        }
        Calibration::Recorded(qm) => {
            skeleton.inputs = (0..names.len()).collect();
            for i in 0..names.len() {
                let v = qm.values.get(i).ok_or_else(|| lw.not_recorded(i))?;
                graph_inputs.push((v.shape.clone(), vec![]));
            }
        }
    }
    for (i, ((shape, ts), name)) in graph_inputs.into_iter().zip(&names).enumerate() {
        lw.origin = name.clone();
        lw.origin_type = "input".into();
        let id = lw.values.len();
        let range = match lw.recorded {
            Some(rec) => rec.get(id).ok_or_else(|| lw.not_recorded(id))?.range,
            None => range_of(&ts),
        };
        lw.values.push(QValue {
            name: name.clone(),
            shape,
            scale: s,
            onnx: Some(name.clone()),
            range,
        });
        lw.nodes.push(QNode {
            name: format!("{name}/input"),
            origin: name.clone(),
            op: QOp::Input { index: i },
            inputs: vec![],
            output: id,
        });
        lw.ints.push(ts);
        lw.env.insert(name.clone(), Operand::Value(id));
    }
    let folds = batchnorm_folds(model);
    let folded: Vec<usize> = folds.values().copied().collect();
    for (i, node) in model.nodes.iter().enumerate() {
        if folded.contains(&i) || node.op == Op::Constant {
            continue;
        }
        let bn = folds.get(&i).map(|&b| &model.nodes[b]);
        lw.lower(node, bn)?;
    }
    let mut outputs = vec![];
    for o in &model.outputs {
        lw.origin = o.name.clone();
        lw.origin_type = "output".into();
        let v = lw.value(&o.name)?;
        if lw.values[v].onnx.is_none() {
            lw.values[v].onnx = Some(o.name.clone());
        }
        outputs.push(v);
    }
    Ok(QuantizedModel {
        inputs: skeleton.inputs,
        outputs,
        values: lw.values,
        nodes: lw.nodes,
        ..skeleton
    })
}
