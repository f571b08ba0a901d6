//! The recurrent stack against PyTorch: fixtures written by
//! `scripts/torch_parity.py fixtures` (torch.nn.LSTM/GRU/RNN in float64 on the
//! same float32 inputs) run through the `torch_parity` contract. CI needs no
//! torch: the fixtures are committed.

mod common;

use std::collections::HashMap;

use common::{assert_close, device};
use safetensors::{Dtype, SafeTensors};
use wgrnn::rnn::parity::torch_parity;
use wgrnn::Error;

/// Every output and gradient of the fixtures against torch (float64),
/// relative to max(1, |reference|) (the floor: inputs and states are O(1),
/// so a near-zero element's error is that of the O(1) terms it sums).
/// Measured worst: 2.7e-7, the same on lavapipe and on llvmpipe GL, over
/// 114 comparisons (6 fixtures, one with LSTM projections); this bound is
/// 11× that. (`scripts/torch_parity.py check`, over 60 larger random
/// configurations with 8 projected LSTMs, measures up to 4.5e-7 forward and
/// 1.3e-6 gradients: the fixtures are small, and tests/rnn_gpu.rs covers
/// the larger sizes.)
const TOL: f64 = 3e-6;

const FIXTURES: [&str; 6] =
    ["lstm_l2_bi", "lstm_proj_l2_bi", "gru_l2_bi", "rnn_tanh_l1", "rnn_relu_l3_bi", "lstm_l1_h31"];

/// The f64 CPU reference against torch in float64 on the same values:
/// rounding only. Measured worst: 6.7e-16 over 26 tensors; this
/// bound is 15× that.
const REFERENCE_TOL: f64 = 1e-14;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/torch_{name}.safetensors", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every float tensor of a file as f64 (the expected values are float64).
fn float_tensors(bytes: &[u8]) -> HashMap<String, Vec<f64>> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter_map(|(n, v)| match v.dtype() {
            Dtype::F32 => {
                Some((n, bytemuck::pod_collect_to_vec::<u8, f32>(v.data()).into_iter().map(f64::from).collect()))
            }
            Dtype::F64 => Some((n, bytemuck::pod_collect_to_vec(v.data()))),
            _ => None,
        })
        .collect()
}

#[test]
fn matches_pytorch_fixtures() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["fixture_version"], "2", "{name}: regenerate the fixtures");
        let out = float_tensors(&torch_parity(device(), &bytes).unwrap());
        let expected = float_tensors(&bytes);
        let mut checked = 0;
        for (key, want) in expected.iter().filter(|(k, _)| k.starts_with("expected_")) {
            let out_name = &key["expected_".len()..];
            let got = out.get(out_name).unwrap_or_else(|| panic!("{name}: OUT lacks `{out_name}`"));
            assert_eq!(got.len(), want.len(), "{name}: {out_name} size");
            let scale: Vec<f64> = want.iter().map(|w| w.abs().max(1.0)).collect();
            assert_close(&format!("{name}: {out_name}"), got, want, &scale, TOL);
            checked += 1;
        }
        // output, h_n, grad_input, grad_h0, 4 per (layer, dir) at least.
        assert!(checked >= 8, "{name}: only {checked} outputs compared");
        assert!(out.keys().all(|k| expected.contains_key(&format!("expected_{k}"))), "{name}: OUT has extra tensors");
    }
}

/// Rewrites a fixture with one tensor dropped or replaced, or new metadata.
fn edited(name: &str, drop: &str, meta_edit: Option<(&str, &str)>) -> Vec<u8> {
    let bytes = fixture(name);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    if let Some((k, v)) = meta_edit {
        meta.insert(k.to_string(), v.to_string());
    }
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().filter(|(n, _)| n != drop).collect();
    safetensors::serialize(kept, Some(meta)).unwrap()
}

#[test]
fn bad_input_names_the_problem() {
    let dev = device();
    let msg = |bytes: Vec<u8>| torch_parity(dev, &bytes).unwrap_err().to_string();
    assert!(msg(edited("gru_l2_bi", "weight_hh_l1_reverse", None)).contains("missing tensor `weight_hh_l1_reverse`"));
    assert!(msg(edited("lstm_l2_bi", "c0", None)).contains("missing tensor `c0`"));
    assert!(
        msg(edited("gru_l2_bi", "", Some(("mode", "transformer")))).contains("unknown recurrent mode \"transformer\"")
    );
    assert!(msg(edited("gru_l2_bi", "", Some(("num_layers", "3")))).contains("missing tensor `weight_ih_l2`"));
    assert!(
        msg(edited("gru_l2_bi", "", Some(("bidirectional", "yes")))).contains("`bidirectional` must be true or false")
    );
    // Two layers claimed as one: layer 0's shapes still fit, h0 does not.
    assert!(msg(edited("gru_l2_bi", "", Some(("num_layers", "1")))).contains("tensor `h0` must have shape [2, 3, 5]"));
    assert!(matches!(torch_parity(dev, b"not a safetensors file"), Err(Error::Format(_))));
    let truncated = fixture("rnn_tanh_l1");
    assert!(matches!(torch_parity(dev, &truncated[..truncated.len() / 2]), Err(Error::Format(_))));
}

/// The CPU reference with LSTM projections against `torch.nn.LSTM(proj_size=3)`
/// (2 layers, bidirectional, unsorted lengths): every output and gradient,
/// weight_hr's included. Both sides compute in float64 from the same
/// float32 values, so they agree to rounding (see [`REFERENCE_TOL`]).
#[test]
fn reference_matches_pytorch_with_projections() {
    use wgrnn::reference::rnn::{rnn_backward, rnn_forward, LayerWeights, RnnInputs};
    use wgrnn::rnn::{RnnMode, RnnSpec};
    let bytes = fixture("lstm_proj_l2_bi");
    let t = float_tensors(&bytes);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let lengths: Vec<usize> = bytemuck::pod_collect_to_vec::<u8, i64>(st.tensor("lengths").unwrap().data())
        .iter()
        .map(|&l| l as usize)
        .collect();
    let (b, tmax, i) = (3, 6, 3);
    let spec = RnnSpec {
        mode: RnnMode::Lstm,
        input_size: i,
        hidden_size: 5,
        num_layers: 2,
        bidirectional: true,
        proj_size: 3,
    };
    spec.validate().unwrap();
    let weights: Vec<LayerWeights> = (0..4)
        .map(|k| {
            let s = RnnSpec::suffix(k / 2, k % 2);
            let w = |n: &str| t[&format!("{n}_{s}")].clone();
            LayerWeights {
                w_ih: w("weight_ih"),
                w_hh: w("weight_hh"),
                b_ih: w("bias_ih"),
                b_hh: w("bias_hh"),
                w_hr: w("weight_hr"),
            }
        })
        .collect();
    assert_eq!(t["input"].len(), b * tmax * i);
    let inputs =
        RnnInputs { input: &t["input"], lengths: &lengths, max_len: tmax, h0: &t["h0"], c0: &t["c0"], dropout: None };
    let tr = rnn_forward(&spec, &weights, &inputs);
    let g = rnn_backward(&spec, &weights, &tr, &t["grad_output"], &t["grad_h_n"], &t["grad_c_n"]);
    let mut got: Vec<(String, Vec<f64>)> = vec![
        ("output".into(), tr.output.clone()),
        ("h_n".into(), tr.h_n.clone()),
        ("c_n".into(), tr.c_n.clone()),
        ("grad_input".into(), g.input.clone()),
        ("grad_h0".into(), g.h0.clone()),
        ("grad_c0".into(), g.c0.clone()),
    ];
    for (k, w) in g.weights.iter().enumerate() {
        let s = RnnSpec::suffix(k / 2, k % 2);
        for (n, v) in [
            ("weight_ih", &w.w_ih),
            ("weight_hh", &w.w_hh),
            ("bias_ih", &w.b_ih),
            ("bias_hh", &w.b_hh),
            ("weight_hr", &w.w_hr),
        ] {
            got.push((format!("grad_{n}_{s}"), v.clone()));
        }
    }
    for (name, value) in &got {
        let want = &t[&format!("expected_{name}")];
        let scale: Vec<f64> = want.iter().map(|w| w.abs().max(1.0)).collect();
        assert_close(&format!("reference proj: {name}"), value, want, &scale, REFERENCE_TOL);
    }
    assert_eq!(got.len(), 26);
}
