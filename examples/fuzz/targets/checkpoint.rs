//! The checkpoint loaders on mutated checkpoints the crate wrote.

use std::sync::OnceLock;

use wgrnn::checkpoint;
use wgrnn::classify::TextClassifier;
use wgrnn::data::{LabelSet, TextVectorizer, TextVectorizerConfig};
use wgrnn::lm::{LanguageModelConfig, TextLm};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::optim::Optimizer;
use wgrnn::rnn::RnnMode;
use wgrnn::train::Task;
use wgrnn::{Error, Tensor};

use super::data::WORDS;
use super::{device, scratch};
use crate::engine::{Input, Verdict};

// ---------------------------------------------------------------- checkpoint

/// Real checkpoints written by the crate, built once per process: a text
/// classifier with Adam state, and a character language model (GRU) with
/// carried state.
fn checkpoint_files() -> &'static [Vec<u8>] {
    static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dev = device();
        let build = || -> wgrnn::Result<Vec<Vec<u8>>> {
            let texts = ["good film", "bad film", "a good plot"];
            let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::words(), texts)?;
            let labels = LabelSet::from_labels(["neg", "pos"])?;
            let config = SequenceClassifierConfig::new(vectorizer.vocab_size(), 3, 2, 2).with_padding_idx(0);
            let clf = TextClassifier::new(dev, vectorizer, labels, config)?;
            let mut opt = Optimizer::adam(clf.parameters(), 1e-3)?;
            let path = scratch("seed-classifier.safetensors");
            checkpoint::save_with_metadata(&path, &clf, Some(&mut opt), &clf.metadata())?;
            let a = canonical(std::fs::read(&path).map_err(|e| Error::Config(e.to_string()))?);

            let chars = TextVectorizer::adapt(TextVectorizerConfig::characters(), ["abc ab"])?;
            let lm_config = LanguageModelConfig::new(chars.vocab_size(), 2, 3).with_mode(RnnMode::Gru);
            let lm = TextLm::new(dev, chars, lm_config)?;
            let state = vec![("h.0".to_string(), Tensor::zeros(dev, &[1, 2, 3])?)];
            let path = scratch("seed-lm.safetensors");
            checkpoint::save_with_state(&path, &lm, None, &lm.metadata(), &state)?;
            let b = canonical(std::fs::read(&path).map_err(|e| Error::Config(e.to_string()))?);
            Ok(vec![a, b])
        };
        build().unwrap_or_else(|e| panic!("writing the seed checkpoints failed: {e}"))
    })
}

/// The file with its header's keys sorted: safetensors writes the
/// metadata map in hash order, which differs between processes, and the
/// seeds must not (the CI runs are deterministic).
fn canonical(file: Vec<u8>) -> Vec<u8> {
    match split_safetensors(&file) {
        Some((header, data)) => join_safetensors(&header, data),
        None => file,
    }
}

/// A file as (header JSON, data), or `None` when it is not one.
fn split_safetensors(file: &[u8]) -> Option<(serde_json::Value, &[u8])> {
    let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
    let header = file.get(8..8usize.checked_add(n)?)?;
    Some((serde_json::from_slice(header).ok()?, &file[8 + n..]))
}

fn join_safetensors(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap_or_default();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// Numbers worth planting in shapes, offsets and architecture fields.
fn edge_number(input: &mut Input<'_>) -> serde_json::Value {
    let v: i128 = match input.u8() % 12 {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => 3,
        4 => 1 << 20,
        5 => 1 << 31,
        6 => 1 << 32,
        7 => u64::MAX as i128,
        8 => 1_000_000_007,
        9 => 100_000,
        10 => i128::from(input.u8()),
        _ => 2,
    };
    if v < 0 {
        serde_json::json!(-1)
    } else if v > u64::MAX as i128 {
        serde_json::json!(u64::MAX)
    } else {
        serde_json::json!(v as u64)
    }
}

/// Mutates one leaf of a JSON value (a number, a string, an array entry,
/// an object key) as `input` says.
fn mutate_json(value: &mut serde_json::Value, input: &mut Input<'_>, depth: usize) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() && depth < 6 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[input.below(keys.len())].clone();
            match input.u8() % 8 {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let v = map.remove(&key).unwrap_or(Value::Null);
                    map.insert(input.string(6, WORDS), v);
                }
                _ => {
                    if let Some(v) = map.get_mut(&key) {
                        mutate_json(v, input, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 6 => match input.u8() % 6 {
            0 => {
                items.pop();
            }
            1 => {
                let i = input.below(items.len());
                items.push(items[i].clone());
            }
            2 => items.push(edge_number(input)),
            _ => {
                let i = input.below(items.len());
                mutate_json(&mut items[i], input, depth + 1);
            }
        },
        Value::String(s) => {
            // A string may hold nested JSON (the vectorizer, the model).
            if let Ok(mut inner) = serde_json::from_str::<Value>(s) {
                if inner.is_object() || inner.is_array() {
                    mutate_json(&mut inner, input, depth + 1);
                    *s = inner.to_string();
                    return;
                }
            }
            *value = match input.u8() % 5 {
                0 => edge_number(input),
                1 => Value::Null,
                _ => Value::String(input.string(8, CHECKPOINT_WORDS)),
            };
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => {
            *value = match input.u8() % 6 {
                0 => Value::String(input.string(8, CHECKPOINT_WORDS)),
                1 => Value::Bool(input.bool()),
                2 => serde_json::json!(input.f32() as f64),
                _ => edge_number(input),
            };
        }
        _ => *value = edge_number(input),
    }
}

/// Strings worth planting in a checkpoint: dtypes, cell names, the
/// reserved tokens, kinds, numbers as text.
const CHECKPOINT_WORDS: &[&str] = &[
    "F32",
    "F16",
    "BF16",
    "F64",
    "I64",
    "U8",
    "BOOL",
    "lstm",
    "gru",
    "rnn_tanh",
    "transformer",
    "text_classifier",
    "language_model",
    "wgrnn-checkpoint-1",
    "adam",
    "sgd",
    "NaN",
    "inf",
    "-1",
    "4294967296",
    "[UNK]",
    "",
];

fn mutate_checkpoint(input: &mut Input<'_>) -> Vec<u8> {
    let files = checkpoint_files();
    let base = &files[input.below(files.len())];
    let Some((mut header, data)) = split_safetensors(base) else { return base.clone() };
    let mut data = data.to_vec();
    let edits = 1 + input.below(4);
    for _ in 0..edits {
        match input.u8() % 10 {
            // Data: flip a byte (a NaN in a weight), cut the tail.
            0 if !data.is_empty() => {
                let i = input.below(data.len());
                data[i] = input.u8();
            }
            1 => {
                let keep = data.len().saturating_sub(input.size(64));
                data.truncate(keep);
            }
            2 => {
                // Rename a tensor to another's name or an optimizer/state name.
                if let Some(map) = header.as_object_mut() {
                    let keys: Vec<String> = map.keys().filter(|k| *k != "__metadata__").cloned().collect();
                    if !keys.is_empty() {
                        let k = keys[input.below(keys.len())].clone();
                        let v = map.remove(&k).unwrap_or_default();
                        let new = match input.u8() % 3 {
                            0 => keys[input.below(keys.len())].clone(),
                            1 => format!("state.{}", input.string(6, &["h.0", "c.0", "h.1", "h.9"])),
                            _ => format!("optimizer.{k}"),
                        };
                        map.insert(new, v);
                    }
                }
            }
            _ => mutate_json(&mut header, input, 0),
        }
    }
    let mut file = join_safetensors(&header, &data);
    if input.u8() == 0xff {
        // A header length that lies.
        let n = edge_number(input).as_u64().unwrap_or(0);
        file[..8].copy_from_slice(&n.to_le_bytes());
    }
    file
}

/// A model and optimizer shaped like the classifier seed, for
/// `checkpoint::load` with optimizer state (one per thread: loading
/// writes into them).
fn load_target() -> wgrnn::Result<(TextClassifier, Optimizer)> {
    let texts = ["good film", "bad film", "a good plot"];
    let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::words(), texts)?;
    let labels = LabelSet::from_labels(["neg", "pos"])?;
    let config = SequenceClassifierConfig::new(vectorizer.vocab_size(), 3, 2, 2).with_padding_idx(0);
    let clf = TextClassifier::new(device(), vectorizer, labels, config)?;
    let opt = Optimizer::adam(clf.parameters(), 1e-3)?;
    Ok((clf, opt))
}

thread_local! {
    static LOAD_TARGET: std::cell::RefCell<Option<(TextClassifier, Optimizer)>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// Executions of the checkpoint target on this thread.
    static SUBMITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub(super) fn checkpoint_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let file = match input.u8() % 4 {
        0 => input.rest().to_vec(),
        _ => mutate_checkpoint(&mut input),
    };
    let path = scratch("fuzz.safetensors");
    if let Err(e) = std::fs::write(&path, &file) {
        return Verdict::Wrong(format!("cannot write the scratch file: {e}"));
    }
    let mut accepted = Vec::new();
    let mut first_err = None;
    let mut note = |what: &'static str, r: wgrnn::Result<()>| -> Option<Verdict> {
        match r {
            Ok(()) => accepted.push(what),
            Err(e @ Error::Gpu(_)) => return Some(Verdict::from_error(&e)),
            Err(Error::Format(m)) | Err(Error::Config(m)) if m.trim().is_empty() => {
                return Some(Verdict::Wrong(format!("{what}: an empty error message")))
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        None
    };
    if let Some(v) = note("metadata", checkpoint::metadata(&path).map(|_| ())) {
        return v;
    }
    let state = checkpoint::running_state(&path);
    if let Ok(s) = &state {
        if s.iter().any(|t| t.values.iter().any(|v| !v.is_finite())) {
            return Verdict::Wrong("running_state returned a non-finite value".into());
        }
        if s.iter().any(|t| t.shape.iter().product::<usize>() != t.values.len()) {
            return Verdict::Wrong("running_state returned values that do not fill the shape".into());
        }
    }
    if let Some(v) = note("running_state", state.as_ref().map(|_| ()).map_err(|e| Error::Format(e.to_string()))) {
        return v;
    }
    let r = LOAD_TARGET.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(load_target()?);
        }
        let Some((clf, opt)) = cell.as_mut() else { return Ok(()) };
        checkpoint::load(&path, &*clf, Some(opt))
    });
    if let Some(v) = note("load", r) {
        return v;
    }
    let dev = device();
    match TextClassifier::load(dev, &path) {
        Ok(clf) => {
            note("classifier", Ok(()));
            if clf.model.config().vocab != clf.vectorizer.vocab_size() {
                return Verdict::Wrong("the loaded classifier's vocabulary differs from its vectorizer's".into());
            }
            if input.bool() {
                match clf.predict(&["good film", ""]) {
                    Ok(p) => {
                        let bad = p.iter().any(|p| {
                            let sum: f32 = p.probabilities.iter().map(|(_, q)| q).sum();
                            p.probabilities.iter().any(|(_, q)| !q.is_finite()) || (sum - 1.0).abs() > 1e-3
                        });
                        if bad {
                            return Verdict::Wrong("a loaded classifier predicted non-finite probabilities".into());
                        }
                    }
                    Err(e) => {
                        if let Some(v) = note("predict", Err(e)) {
                            return v;
                        }
                    }
                }
            }
        }
        Err(e) => {
            if let Some(v) = note("classifier", Err(e)) {
                return v;
            }
        }
    }
    match TextLm::load(dev, &path) {
        Ok(mut lm) => {
            note("lm", Ok(()));
            if lm.model.config().vocab != lm.vectorizer.vocab_size() {
                return Verdict::Wrong("the loaded model's vocabulary differs from its vectorizer's".into());
            }
            if let Ok(state) = checkpoint::running_state(&path) {
                if let Some(v) = note("restore", lm.restore_running_state(state)) {
                    return v;
                }
            }
        }
        Err(e) => {
            if let Some(v) = note("lm", Err(e)) {
                return v;
            }
        }
    }
    // Submit what the loads recorded (zeroed gradients, uploads): a
    // validation error surfaces here, on this execution. Waiting for the
    // adapter only every 64th execution keeps the queue short without
    // paying a round trip to the adapter's threads each time.
    let waited = SUBMITS.with(|n| {
        n.set(n.get() + 1);
        n.get().is_multiple_of(64)
    });
    let submitted = if waited { dev.synchronize() } else { dev.flush() };
    if let Err(e) = submitted {
        return Verdict::from_error(&e);
    }
    // The outcome: which loaders accepted, and the first rejection.
    match first_err {
        Some(e) if accepted.is_empty() => Verdict::from_error(&e),
        Some(e) => Verdict::Accepted(format!("{}|{}", accepted.join("+"), crate::engine::signature(&e.to_string()))),
        None => Verdict::Accepted(accepted.join("+")),
    }
}

pub(super) fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (k, file) in checkpoint_files().iter().enumerate() {
        let mut raw = vec![0u8];
        raw.extend_from_slice(file);
        out.push(raw);
        out.push(vec![1, k as u8, 0, 5, 3]);
    }
    out
}
