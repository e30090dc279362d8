//! Goldens of the compiler: for every sample and every corpus model whose circuit fits k ≤ 12,
//! in each of the six visibility combinations (public, hashed or private input × fixed or hashed
//! weights; a fixed salt), the sha256 of `quantized.json` and `circuit.json` in canonical form,
//! the verifier key's hash and the sha256 of the region names. A reorganisation of the compiler
//! must leave every one of them as it is: they are what receipts bind.
//!
//! `ZKRECEIPT_BLESS=1 cargo test --test compiler_goldens` rewrites `tests/golden/compiler.json`;
//! do that only for a change meant to alter the compiler's output, and say so in its commit.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use common::*;
use halo2_proofs::pasta::EqAffine;
use halo2_proofs::poly::commitment::Params;
use zkreceipt::circuit::{Disclosure, ParamVisibility, Visibility, compile_as};
use zkreceipt::model::{Model, input::load_input, sha256_hex};
use zkreceipt::proof::keygen_vk_only;
use zkreceipt::quantize::{QuantConfig, quantize};
use zkreceipt::receipt::canonical_sha256;

const MAX_K: u32 = 12;

fn golden_path() -> PathBuf {
    root().join("tests").join("golden").join("compiler.json")
}

/// (name, model, input) of every sample and supported corpus model.
fn models() -> Vec<(String, PathBuf, PathBuf)> {
    let mut out = vec![];
    for s in ["digits", "mlp", "cnn", "sigmoid"] {
        let (m, i, _) = sample(s);
        out.push((format!("sample/{s}"), m, i));
    }
    if let Some(dir) = corpus() {
        for e in census(&dir)["examples"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            let d = dir.join(name);
            out.push((
                format!("corpus/{name}"),
                d.join("network.onnx"),
                d.join("input.json"),
            ));
        }
    }
    out
}

fn combos() -> Vec<(&'static str, Disclosure)> {
    let mut out = vec![];
    for (iname, input) in [
        ("public", Visibility::Public),
        ("hashed", Visibility::Hashed),
        ("private", Visibility::Private),
    ] {
        for (pname, params) in [
            ("fixed", ParamVisibility::Fixed),
            ("hashed", ParamVisibility::Hashed),
        ] {
            let salt = (input == Visibility::Hashed).then_some(0x5eed);
            let name: &'static str = Box::leak(format!("{iname}-input/{pname}-weights").into());
            out.push((
                name,
                Disclosure {
                    input,
                    params,
                    salt,
                },
            ));
        }
    }
    out
}

/// The goldens of one model, by combination; None when the model is not supported.
fn goldens_of(
    m: &Path,
    i: &Path,
    params: &mut HashMap<u32, Params<EqAffine>>,
) -> Option<BTreeMap<String, BTreeMap<&'static str, String>>> {
    let model = Model::load(m).unwrap();
    if !model.preflight().is_empty() {
        return None;
    }
    let inputs = load_input(i, &model).unwrap();
    let float = model.run_float(&inputs).unwrap();
    let qm = quantize(&model, &inputs, &float, &QuantConfig::default()).unwrap();
    let names: Vec<String> = model.inputs.iter().map(|x| x.name.clone()).collect();
    let values = qm
        .evaluate(&qm.quantize_inputs(&inputs, &names).unwrap())
        .unwrap();
    let mut out = BTreeMap::new();
    for (combo, dis) in combos() {
        // Planning without a witness is cheap and tells k; keygen only where it fits.
        let Ok(shape) = compile_as(&qm, dis, None) else {
            continue;
        };
        if shape.info.k > MAX_K {
            continue;
        }
        let c = compile_as(&qm, dis, Some(&values)).unwrap();
        assert_eq!(
            c.info, shape.info,
            "{combo}: the witness changed the circuit"
        );
        let p = params
            .entry(c.info.k)
            .or_insert_with(|| Params::new(c.info.k));
        let vk = keygen_vk_only(p, &c.circuit).unwrap();
        let regions = c.circuit.region_names().join("\n");
        out.insert(
            combo.to_string(),
            BTreeMap::from([
                ("quantized", canonical_sha256(&qm)),
                ("circuit", canonical_sha256(&c.info)),
                ("vk", vk.sha256),
                ("regions", sha256_hex(regions.as_bytes())),
            ]),
        );
    }
    Some(out)
}

#[test]
fn the_compiler_output_is_the_golden_one() {
    let mut params = HashMap::new();
    let mut all = BTreeMap::new();
    for (name, m, i) in models() {
        if let Some(g) = goldens_of(&m, &i, &mut params) {
            all.insert(name, g);
        }
    }
    let text = serde_json::to_string_pretty(&all).unwrap() + "\n";
    if std::env::var_os("ZKRECEIPT_BLESS").is_some() {
        std::fs::write(golden_path(), &text).unwrap();
        return;
    }
    let want: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> =
        serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
    let got: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> =
        serde_json::from_str(&text).unwrap();
    let combos: usize = got.values().map(BTreeMap::len).sum();
    assert!(
        combos >= 250,
        "only {combos} model × visibility combinations fit k ≤ {MAX_K}"
    );
    // Without the corpus (outside CI) only the samples are compared.
    for (name, g) in &got {
        assert_eq!(
            Some(g),
            want.get(name),
            "{name}: the compiler's output changed"
        );
    }
    if corpus().is_some() {
        assert_eq!(got.len(), want.len(), "models compared");
    }
}
