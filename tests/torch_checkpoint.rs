//! PyTorch-saved weights load into wgrnn: a state dict written by
//! `scripts/torch_checkpoint.py fixture` (torch.nn.Embedding + LSTM + Linear,
//! attributes embedding/rnn/fc) loads with `checkpoint::load` and the model
//! reproduces torch's float64 logits.

mod common;

use common::{assert_close, device};
use safetensors::SafeTensors;
use wgrnn::autograd::Tape;
use wgrnn::checkpoint;
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::rnn::RnnMode;

/// The f32 model's logits against float64 torch through two bidirectional
/// layers, relative to max(1, |torch|) (the logits are below 1 in
/// magnitude, so in effect absolute: their error comes from the O(1)
/// activations they sum, not their own size). Measured worst: 4.8e-8 on
/// lavapipe and on llvmpipe GL over 1 comparison (`scripts/torch_checkpoint.py
/// check` measures 4e-8 the other way, wgrnn → torch); this bound is 10×
/// that.
const TOL: f64 = 5e-7;

#[test]
fn pytorch_state_dict_loads_and_matches() {
    let path = format!("{}/tests/fixtures/torch_classifier.safetensors", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["fixture_version"], "1");
    let num = |k: &str| meta[k].parse::<usize>().unwrap();
    let model = SequenceClassifierConfig::new(num("vocab"), num("embed_dim"), num("hidden"), num("classes"))
        .with_mode(RnnMode::parse(&meta["mode"]).unwrap())
        .with_layers(num("layers"))
        .with_bidirectional(meta["bidirectional"] == "true")
        .with_padding_idx(num("padding_idx") as u32)
        .init(device())
        .unwrap();
    checkpoint::load(&path, &model, None).unwrap();

    let int64 = |name: &str| -> Vec<i64> { bytemuck::pod_collect_to_vec(st.tensor(name).unwrap().data()) };
    let ids: Vec<u32> = int64("input_ids").iter().map(|&v| v as u32).collect();
    let lengths: Vec<usize> = int64("lengths").iter().map(|&v| v as usize).collect();
    let t = ids.len() / lengths.len();
    let expected: Vec<f64> = bytemuck::pod_collect_to_vec(st.tensor("expected_logits").unwrap().data());

    let mut tape = Tape::eval(device());
    let logits = model.forward(&mut tape, &ids, &lengths, t).unwrap();
    let got = tape.value(logits).unwrap().to_vec().unwrap();
    let got: Vec<f64> = got.iter().map(|&g| f64::from(g)).collect();
    let scale: Vec<f64> = expected.iter().map(|w| w.abs().max(1.0)).collect();
    assert_close("torch classifier logits", &got, &expected, &scale, TOL);
}
