//! One model, one key: the quantized model is the ONNX file's (verify re-derives it from
//! model.onnx and its recorded ranges, in every visibility mode), packages made by `setup`, and
//! proving many inputs against one package.

mod common;

use std::path::Path;

use common::*;
use prost::Message;
use serde_json::Value;
use tract_onnx::pb;
use zkreceipt::model::sha256_hex;
use zkreceipt::quantize::QuantizedModel;
use zkreceipt::receipt::canonical_sha256;

/// The sample model with its first float initializer's first element moved by `delta`.
fn changed_model(m: &Path, delta: f32) -> Vec<u8> {
    let mut p = pb::ModelProto::decode(std::fs::read(m).unwrap().as_slice()).unwrap();
    let g = p.graph.as_mut().unwrap();
    let t = g
        .initializer
        .iter_mut()
        .find(|t| t.data_type == 1 && t.dims.iter().product::<i64>() > 1)
        .unwrap();
    if t.float_data.is_empty() {
        let x = f32::from_le_bytes(t.raw_data[..4].try_into().unwrap()) + delta;
        t.raw_data[..4].copy_from_slice(&x.to_le_bytes());
    } else {
        t.float_data[0] += delta;
    }
    p.encode_to_vec()
}

/// Rewrite quantized.json with `f`, then every hash and word of the receipt that follows it
/// (what a forger who controls the folder would do).
fn forge_quantized(d: &Path, f: impl FnOnce(&mut QuantizedModel)) {
    let p = d.join("quantized.json");
    let mut q: QuantizedModel = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let old_onnx = q.source_sha256.clone();
    f(&mut q);
    std::fs::write(&p, serde_json::to_vec_pretty(&q).unwrap()).unwrap();
    let (sha, onnx) = (canonical_sha256(&q), q.source_sha256.clone());
    edit_receipt(d, |r| {
        r["model_commitment"]["quantized_sha256"] = sha.into();
        r["model_commitment"]["onnx_sha256"] = onnx.clone().into();
        let st = r["statement"]
            .as_str()
            .unwrap()
            .replace(&old_onnx[..12], &onnx[..12]);
        r["statement"] = st.into();
    });
}

/// A model with one weight changed, proved with a hashed input and relabelled with the genuine
/// ONNX file and its hashes: its statement would be false, and verify rejects it.
#[test]
fn a_relabelled_model_is_rejected_with_a_hashed_input() {
    let w = work_dir("package-relabel");
    let (m, i, _) = sample("sigmoid");
    let changed = w.join("changed.onnx");
    std::fs::write(&changed, changed_model(&m, 0.5)).unwrap();
    let out = w.join("r");
    let o = prove_seeded(&changed, &i, &out, "7", &["--input-visibility", "hashed"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (code, v) = verify(&out);
    assert_eq!(code, 0, "{v}");
    let genuine = std::fs::read(&m).unwrap();
    let why = expect_rejected(&out, "relabelled", |d| {
        std::fs::write(d.join("model.onnx"), &genuine).unwrap();
        forge_quantized(d, |q| q.source_sha256 = sha256_hex(&genuine));
    });
    assert!(why.contains("not what model.onnx gives"), "{why}");
    // Left unrelabelled, the changed file itself is what a verifier sees named.
    let why = expect_rejected(&out, "onnx-swapped", |d| {
        std::fs::write(d.join("model.onnx"), &genuine).unwrap();
    });
    assert!(why.contains("model.onnx has sha256"), "{why}");
}

/// Lowering the output's scale by one (hashes and shown floats following) would show every
/// output doubled: the re-derived model has the true scale.
#[test]
fn a_changed_scale_is_rejected_in_every_input_mode() {
    let w = work_dir("package-scale");
    let (m, i, _) = sample("sigmoid");
    for vis in ["public", "hashed", "private"] {
        let out = w.join(vis);
        let o = prove_seeded(&m, &i, &out, "7", &["--input-visibility", vis]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let why = expect_rejected(&out, &format!("{vis}-scale"), |d| {
            let mut scale = 0;
            forge_quantized(d, |q| {
                let o = q.outputs[0];
                q.values[o].scale -= 1;
                scale = q.values[o].scale;
            });
            edit_receipt(d, |r| {
                let claim = &mut r["output"][0];
                claim["scale"] = scale.into();
                let doubled: Vec<Value> = claim["floats"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| (x.as_f64().unwrap() * 2.0).into())
                    .collect();
                claim["floats"] = doubled.into();
            });
        });
        assert!(why.contains("not what model.onnx gives"), "{vis}: {why}");
    }
}
