//! Writes a freshly initialised text classifier as a PyTorch-loadable
//! checkpoint plus sample inputs and wgrnn's logits for them, so
//! `scripts/torch_checkpoint.py check` can load the weights into
//! `torch.nn.Embedding/LSTM/Linear` (strict `load_state_dict`) and compare.
//!
//! `cargo run --release --example export_classifier -- MODEL.safetensors IO.safetensors [lstm|gru|rnn_tanh|rnn_relu] [LAYERS] [bidirectional]`

use std::process::ExitCode;

use wgrnn::autograd::Tape;
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::rnn::RnnMode;
use wgrnn::{checkpoint, Device, Tensor};

fn run(args: &[String]) -> Result<(), String> {
    let [model_path, io_path, rest @ ..] = args else {
        return Err("usage: export_classifier MODEL.safetensors IO.safetensors [MODE] [LAYERS] [bidirectional]".into());
    };
    let mode = RnnMode::parse(rest.first().map_or("lstm", String::as_str)).map_err(|e| e.to_string())?;
    let layers: usize = rest.get(1).map_or(Ok(2), |s| s.parse()).map_err(|_| "LAYERS must be a number")?;
    let bidirectional = rest.get(2).is_some_and(|s| s == "bidirectional");
    let dev = Device::new().map_err(|e| e.to_string())?;
    let (v, t, lengths) = (50usize, 9usize, [9usize, 3, 7, 1]);
    let model = SequenceClassifierConfig::new(v, 8, 6, 4)
        .with_mode(mode)
        .with_layers(layers)
        .with_bidirectional(bidirectional)
        .with_padding_idx(0)
        .with_seed(17)
        .init(&dev)
        .map_err(|e| e.to_string())?;
    checkpoint::save(model_path, &model, None).map_err(|e| e.to_string())?;
    let ids: Vec<u32> = (0..lengths.len() * t)
        .map(|i| if i % t < lengths[i / t] { 1 + ((i * 37) % (v - 1)) as u32 } else { 0 })
        .collect();
    let mut tape = Tape::eval(&dev);
    let logits = model.forward(&mut tape, &ids, &lengths, t).map_err(|e| e.to_string())?;
    let logits = tape.value(logits).map_err(|e| e.to_string())?.clone();
    let as_f32 = |v: Vec<f32>, shape: &[usize]| Tensor::from_slice(&dev, &v, shape).map_err(|e| e.to_string());
    let tensors = vec![
        ("input_ids".to_string(), as_f32(ids.iter().map(|&x| x as f32).collect(), &[lengths.len(), t])?),
        ("lengths".to_string(), as_f32(lengths.iter().map(|&x| x as f32).collect(), &[lengths.len()])?),
        ("logits".to_string(), logits),
    ];
    let meta = [
        ("mode", mode.name().to_string()),
        ("layers", layers.to_string()),
        ("bidirectional", bidirectional.to_string()),
        ("vocab", v.to_string()),
        ("embed_dim", "8".into()),
        ("hidden", "6".into()),
        ("classes", "4".into()),
        ("padding_idx", "0".into()),
    ];
    let meta = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let bytes = wgrnn::rnn::parity::write_f32_tensors_with_metadata(&tensors, Some(meta)).map_err(|e| e.to_string())?;
    std::fs::write(io_path, bytes).map_err(|e| format!("writing {io_path}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
