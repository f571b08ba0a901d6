//! PyTorch-saved weights load into wgrnn: a state dict written by
//! `scripts/torch_checkpoint.py fixture` (torch.nn.Embedding + LSTM + Linear,
//! attributes embedding/rnn/fc) loads with `checkpoint::load` and the model
//! reproduces torch's float64 logits.

mod common;

use common::device;
use safetensors::SafeTensors;
use wgrnn::autograd::Tape;
use wgrnn::checkpoint;
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::rnn::RnnMode;

/// Measured 4e-8 (wgrnn → torch, `scripts/torch_checkpoint.py check`); the
/// f32 model against float64 torch through two bidirectional layers. 1e-5
/// absolute on logits of magnitude < 1 is the f32 per-op budget with margin.
const TOL: f64 = 1e-5;

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
    assert_eq!(got.len(), expected.len());
    for (i, (g, w)) in got.iter().zip(&expected).enumerate() {
        assert!((f64::from(*g) - w).abs() <= TOL, "logit {i}: wgrnn {g} vs torch {w}");
    }
}
