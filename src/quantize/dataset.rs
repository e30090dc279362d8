//! The quantization gap over a data set: the integer evaluator against tract on every sample,
//! per output (error, argmax agreement, accuracy against labels) and per layer (the spread of
//! its error over the samples, and the headroom its calibrated range leaves).

use serde::{Deserialize, Serialize};

use super::QuantizedModel;
use super::report::{RunReport, analyze};
use crate::error::Result;
use crate::model::input::DataSample;
use crate::model::{FloatRun, Model};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSetReport {
    pub samples: usize,
    /// The activation scale and the margin the quantized model was calibrated with.
    pub scale: u32,
    pub margin: f64,
    pub outputs: Vec<OutputGap>,
    pub layers: Vec<LayerGap>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputGap {
    pub name: String,
    /// Largest |float − quantized| over every element of every sample.
    pub max_abs_error: f64,
    /// Mean |float − quantized| over every element of every sample.
    pub mean_abs_error: f64,
    /// Share of samples whose float and quantized argmax agree (score vectors only).
    pub argmax_agreement: Option<f64>,
    /// Samples carrying a label, and the share the float and the quantized model classify
    /// right (the first score-vector output only).
    pub labelled: usize,
    pub float_accuracy: Option<f64>,
    pub quantized_accuracy: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerGap {
    pub node: String,
    pub output: String,
    pub scale: i32,
    /// Signed bits the largest sample needs, and what the activation budget leaves above it.
    pub bits: u32,
    pub headroom_bits: i64,
    /// The layer's max |error| per sample, over the samples.
    pub error: Spread,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Spread {
        xs.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value at least `q` of the samples do not exceed.
        let at = |q: f64| {
            let i = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len().max(1)) - 1;
            xs.get(i).copied().unwrap_or(0.0)
        };
        Spread {
            median: at(0.5),
            p99: at(0.99),
            max: xs.last().copied().unwrap_or(0.0),
        }
    }
}

/// Run every sample (with its float run) through `qm` and tract, and summarise the gap.
pub fn data_set_gap(
    model: &Model,
    qm: &QuantizedModel,
    samples: &[DataSample],
    floats: &[FloatRun],
    progress: &mut dyn FnMut(&str),
) -> Result<DataSetReport> {
    let mut runs: Vec<RunReport> = Vec::with_capacity(samples.len());
    for (i, (s, f)) in samples.iter().zip(floats).enumerate() {
        if i % 25 == 0 {
            progress(&format!("compare {}/{}", i + 1, samples.len()));
        }
        runs.push(analyze(model, qm, &s.inputs, f).map_err(|e| in_sample(e, s))?);
    }
    let n = runs.len().max(1) as f64;
    let mut outputs = vec![];
    for (k, first) in runs
        .first()
        .map(|r| &r.outputs[..])
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let outs: Vec<_> = runs.iter().map(|r| &r.outputs[k]).collect();
        let (mut sum, mut count) = (0.0, 0usize);
        for o in &outs {
            sum += o
                .float
                .iter()
                .zip(&o.quantized)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>();
            count += o.float.len();
        }
        let argmax_agreement = first.argmax.as_ref().map(|_| {
            outs.iter()
                .filter(|o| o.argmax.as_ref().is_some_and(|a| a.agree))
                .count() as f64
                / n
        });
        let labels: Vec<(i64, usize, usize)> = samples
            .iter()
            .zip(&outs)
            .filter_map(|(s, o)| {
                Some((
                    s.label?,
                    o.argmax.as_ref()?.float,
                    o.argmax.as_ref()?.quantized,
                ))
            })
            .collect();
        let accuracy = |pick: fn(&(i64, usize, usize)) -> usize| {
            (k == 0 && !labels.is_empty()).then(|| {
                labels.iter().filter(|l| l.0 == pick(l) as i64).count() as f64 / labels.len() as f64
            })
        };
        outputs.push(OutputGap {
            name: first.name.clone(),
            max_abs_error: outs.iter().map(|o| o.max_abs_error).fold(0.0, f64::max),
            mean_abs_error: if count == 0 { 0.0 } else { sum / count as f64 },
            argmax_agreement,
            labelled: if k == 0 { labels.len() } else { 0 },
            float_accuracy: accuracy(|l| l.1),
            quantized_accuracy: accuracy(|l| l.2),
        });
    }
    let mut layers = vec![];
    for (k, first) in runs
        .first()
        .map(|r| &r.layers[..])
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let ls: Vec<_> = runs.iter().map(|r| &r.layers[k]).collect();
        layers.push(LayerGap {
            node: first.node.clone(),
            output: first.output.clone(),
            scale: first.scale,
            bits: ls.iter().map(|l| l.bits).max().unwrap_or(0),
            headroom_bits: ls.iter().map(|l| l.headroom_bits).min().unwrap_or(0),
            error: Spread::of(ls.iter().map(|l| l.max_abs_error).collect()),
        });
    }
    Ok(DataSetReport {
        samples: runs.len(),
        scale: qm.scale,
        margin: qm.config.margin,
        outputs,
        layers,
    })
}

/// An error on one sample names the sample.
pub fn in_sample(e: crate::error::Error, s: &DataSample) -> crate::error::Error {
    use crate::error::Error;
    match e {
        Error::Invalid { file, field, msg } => Error::Invalid {
            file: format!("{} ({file})", s.source),
            field,
            msg,
        },
        other => other.in_input(&s.source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_nearest_ranks() {
        let s = Spread::of((1..=200).map(f64::from).collect());
        assert_eq!((s.median, s.p99, s.max), (100.0, 198.0, 200.0));
        let one = Spread::of(vec![3.0]);
        assert_eq!((one.median, one.p99, one.max), (3.0, 3.0, 3.0));
        let none = Spread::of(vec![]);
        assert_eq!(none.max, 0.0);
    }
}
