//! The fuzz targets: each a `fn(&[u8]) -> Verdict` that decodes a
//! structured input from the bytes ([`Input`]) and drives public API with
//! it. A target never panics by itself; what it checks on an accepted
//! result (ids < V, lengths in 1..=T, finite outputs for finite inputs, a
//! lossless JSON round trip) turns a silently wrong result into a
//! [`Verdict::Wrong`]. GPU targets end with a readback or a flush, so a
//! validation error the device reports late is counted on the execution
//! that caused it.
//!
//! Shared, not copied: `examples/fuzz/main.rs` (long runs) and
//! `tests/fuzz.rs` (bounded CI runs) both include this file.

// Index loops mirror the definitions of the packed layout they check.
#![allow(dead_code, clippy::needless_range_loop)]

use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use wgrnn::autograd::Tape;
use wgrnn::checkpoint;
use wgrnn::classify::TextClassifier;
use wgrnn::data::{
    open_reader, read_csv_from, read_lines_from, read_text_from, Cleanup, Column, CsvFormat, EmptyText, LabelSet,
    Split, Standardize, TextVectorizer, TextVectorizerConfig, Truncate,
};
use wgrnn::lm::{AwdConfig, LanguageModelConfig, TextLm, IGNORE};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{EmbeddingConfig, LinearConfig, RecurrentConfig};
use wgrnn::optim::Optimizer;
use wgrnn::rnn::{PackedBatch, RnnMode};
use wgrnn::train::Task;
use wgrnn::{Device, DeviceOptions, Error, Tensor};

use crate::engine::{Input, Target, Verdict};

/// Every target, in the order the driver and the CI test run them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "csv",
        about: "data::read_csv_from (read_csv's parser): CSV bytes, gzip or not, any columns/header/delimiter",
        run: csv_target,
        seeds: csv_seeds,
        max_len: 2048,
    },
    Target {
        name: "text",
        about: "data::read_text_from / read_lines_from: text bytes, gzip (truncated or not) or plain",
        run: text_target,
        seeds: text_seeds,
        max_len: 1024,
    },
    Target {
        name: "vectorizer",
        about: "TextVectorizer::adapt / from_vocabulary / from_json / encode / decode with any config and texts",
        run: vectorizer_target,
        seeds: vectorizer_seeds,
        max_len: 1024,
    },
    Target {
        name: "checkpoint",
        about: "checkpoint::metadata / running_state / load (with optimizer state), TextClassifier::load, \
                TextLm::load + restore_running_state on mutated checkpoints the crate wrote",
        run: checkpoint_target,
        seeds: checkpoint_seeds,
        max_len: 16384,
    },
    Target {
        name: "packed",
        about: "PackedBatch::new(lengths, T) and its pack/unpack round trip on the GPU",
        run: packed_target,
        seeds: packed_seeds,
        max_len: 256,
    },
    Target {
        name: "tape",
        about: "Embedding/Recurrent/Linear/pooling/dropouts/losses on the Tape, backward, Rnn::forward/backward, \
                LanguageModel::forward (AWD, carried state): any shapes (0 included), ids, lengths, NaN/inf",
        run: tape_target,
        seeds: tape_seeds,
        max_len: 512,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs target `name` on one libFuzzer input (`fuzz/`): a rejection is
/// fine; a GPU error or a wrong result panics, which libFuzzer reports as
/// a crash with the input saved, as it does a panic of the target itself.
pub fn libfuzzer(name: &str, data: &[u8]) {
    let Some(t) = target(name) else { panic!("no fuzz target {name}") };
    match (t.run)(data) {
        Verdict::Accepted(_) | Verdict::Rejected(_) => {}
        Verdict::Gpu(m) => panic!("GPU error: {m}"),
        Verdict::Wrong(m) => panic!("wrong result: {m}"),
    }
}

/// Bytes of free buffers the fuzzing device keeps for reuse (unless
/// `WGRNN_POOL_BUDGET` says otherwise). Fuzzing makes a new shape almost
/// every execution; an unbounded pool would keep them all and every
/// allocation would search a growing free list.
const POOL_BUDGET: u64 = 16 << 20;

/// The device every GPU target shares (one per process).
pub fn device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        let make = || {
            let mut options = DeviceOptions::from_env()?;
            if options.pool_budget.is_none() {
                options = options.with_pool_budget(Some(POOL_BUDGET));
            }
            Device::with_options(&options)
        };
        make().unwrap_or_else(|e| panic!("the GPU fuzz targets need an adapter: {e}"))
    })
}

/// A scratch file for this thread (targets that only take paths).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{:?}-{name}", std::thread::current().id()).replace(['(', ')'], ""))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

// ---------------------------------------------------------------- csv

/// Words the column and label decoders draw from.
const COLUMN_NAMES: &[&str] = &["text", "label", "title", "", " text ", "18446744073709551615", "\u{feff}text"];

fn column(input: &mut Input<'_>) -> Column {
    if input.u8() < 160 {
        Column::Index(input.size(4))
    } else {
        Column::parse(&input.string(8, COLUMN_NAMES))
    }
}

fn csv_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let flags = input.u8();
    let delimiter = [b',', b';', b'\t', b'|', b'"', b'\n', 0, b' '][usize::from(flags >> 5)];
    let mut format = CsvFormat::new(column(&mut input), column(&mut input))
        .with_header(flags & 2 != 0)
        .with_cleanup([Cleanup::None, Cleanup::AgNews, Cleanup::Imdb, Cleanup::None][usize::from(flags >> 2) & 3])
        .with_empty(if flags & 16 != 0 { EmptyText::Skip } else { EmptyText::Error })
        .with_delimiter(delimiter);
    let extra = input.below(4);
    let mut text = format.text.clone();
    text.extend((0..extra).map(|_| column(&mut input)));
    if input.u8() == 255 {
        text.clear();
    }
    format = format.with_text_columns(text);
    let body = input.rest();
    let bytes = if flags & 1 != 0 { gzip(body) } else { body.to_vec() };
    let result = open_reader(Cursor::new(bytes), "fuzz.csv").and_then(|r| read_csv_from(r, "fuzz.csv", &format));
    match result {
        Ok(rows) => {
            if rows.examples.is_empty() {
                return Verdict::Wrong("read_csv accepted a file with no rows".into());
            }
            let mut last = 0;
            for e in &rows.examples {
                if e.label.is_empty() || e.label.trim() != e.label {
                    return Verdict::Wrong(format!("line {}: label {:?} is empty or untrimmed", e.line, e.label));
                }
                if e.text.is_empty() || e.text.trim() != e.text {
                    return Verdict::Wrong(format!("line {}: text {:?} is empty or untrimmed", e.line, e.text));
                }
                if e.line < last.max(1) {
                    return Verdict::Wrong(format!("line numbers go backwards: {} after {last}", e.line));
                }
                last = e.line;
            }
            Verdict::Accepted(format!("rows{}", rows.examples.len().min(3)))
        }
        Err(e) => match e {
            Error::Data { .. } | Error::Config(_) => Verdict::from_error(&e),
            other => Verdict::Wrong(format!("read_csv failed with a non-data error: {other}")),
        },
    }
}

fn csv_seeds() -> Vec<Vec<u8>> {
    let bodies: [&[u8]; 5] = [
        b"\"3\",\"Wall St. Bears\",\"Reuters - Short-sellers\\nare back\"\n\"1\",\"b\",\"c\"\n",
        b"text,label\n\"a \"\"quoted\"\" text\",pos\n\"multi\nline\",neg\n\n",
        b"\xef\xbb\xbftext,label\nhi,A\n,B\n",
        b"id,rating,label,text\n1,10,pos,great<br />film\n",
        b"a;b;L\nc;d;M\n",
    ];
    let mut out = Vec::new();
    for (k, body) in bodies.iter().enumerate() {
        // flags (header for the ones with one), text column 1, label column 0.
        let header = u8::from(k == 1 || k == 2 || k == 3) << 1;
        // Column choices: text = index 1, label = index 0, no extra text
        // column, keep the text columns.
        let mut s = vec![header, 0, 1, 0, 0, 0, 0];
        s.extend_from_slice(body);
        out.push(s.clone());
        s[0] |= 1; // gzip
        out.push(s);
    }
    out
}

// ---------------------------------------------------------------- text

fn text_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let flags = input.u8();
    let body = input.rest();
    let mut bytes = if flags & 1 != 0 { gzip(body) } else { body.to_vec() };
    if flags & 2 != 0 && !bytes.is_empty() {
        // A truncated or damaged gzip stream must be an error, not a panic.
        let cut = usize::from(flags >> 2) % bytes.len();
        bytes.truncate(bytes.len() - cut.max(1));
    }
    let expected = if flags & 1 != 0 && flags & 2 == 0 { std::str::from_utf8(body).ok() } else { None };
    let text = open_reader(Cursor::new(bytes.clone()), "fuzz.txt").and_then(|r| read_text_from(r, "fuzz.txt"));
    match (&text, expected) {
        (Ok(t), Some(want)) if t != want => return Verdict::Wrong("gunzipped text differs from the original".into()),
        (Err(e), Some(_)) => return Verdict::Wrong(format!("a valid gzip of UTF-8 text was rejected: {e}")),
        _ => {}
    }
    if flags & 3 == 0 && text.is_ok() != std::str::from_utf8(body).is_ok() {
        // Plain bytes (unless they happen to start with the gzip magic).
        if !body.starts_with(&[0x1f, 0x8b]) {
            return Verdict::Wrong("read_text's UTF-8 verdict differs from std's".into());
        }
    }
    let lines = open_reader(Cursor::new(bytes), "fuzz.txt").and_then(|r| read_lines_from(r, "fuzz.txt"));
    match lines {
        Ok(lines) => {
            if lines.is_empty() || lines.iter().any(|l| l.is_empty() || l.trim() != l) {
                return Verdict::Wrong("read_lines returned an empty or untrimmed line".into());
            }
            Verdict::Accepted("lines".into())
        }
        Err(e @ Error::Data { .. }) => Verdict::from_error(&e),
        Err(e) => Verdict::Wrong(format!("read_lines failed with a non-data error: {e}")),
    }
}

fn text_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for flags in [0u8, 1, 3, 0x0b] {
        for body in [&b"hello\nworld\n"[..], b"\n a \n\nb\n", b"caf\xc3\xa9 \xe2\x82\xac\r\n", b"\xff\xfe"] {
            let mut s = vec![flags];
            s.extend_from_slice(body);
            out.push(s);
        }
    }
    out
}

// ---------------------------------------------------------------- vectorizer

/// Tokens worth planting: the reserved entries, specials, case and
/// punctuation edge cases, characters whose lowercase is longer.
const WORDS: &[&str] =
    &["[UNK]", "[unk]", "", " ", "a", "A", "b", "<bos>", "<eos>", "don't", "İ", "ß", "\u{0}", "a b a", "\t\n", "…"];

fn vectorizer_config(input: &mut Input<'_>) -> TextVectorizerConfig {
    let flags = input.u8();
    let mut c = TextVectorizerConfig::words();
    if flags & 1 != 0 {
        c = c.with_max_tokens(input.size(12));
    }
    if flags & 2 != 0 {
        c = c.with_output_sequence_length(input.size(6));
    }
    c = c.with_truncate(if flags & 4 != 0 { Truncate::KeepBack } else { Truncate::KeepFront });
    c = c.with_standardize(
        [Standardize::LowerAndStripPunctuation, Standardize::Lower, Standardize::None, Standardize::None]
            [usize::from(flags >> 3) & 3],
    );
    c = c.with_split(if flags & 32 != 0 { Split::Character } else { Split::Whitespace });
    c = c.with_min_count(if flags & 64 != 0 { input.size(3) as u64 } else { 0 });
    let specials: Vec<String> = (0..input.below(4)).map(|_| input.string(6, WORDS)).collect();
    c.specials = specials;
    c
}

/// Whether `adapt` has to accept: the configuration is valid, the
/// specials are distinct and not reserved, and some text has a token.
fn adapt_must_succeed(c: &TextVectorizerConfig, texts: &[String]) -> bool {
    let valid = c.max_tokens.is_none_or(|m| m >= 3 && m >= c.specials.len() + 2) && c.output_sequence_length != Some(0);
    let mut sorted = c.specials.clone();
    sorted.sort();
    sorted.dedup();
    let specials_ok = sorted.len() == c.specials.len() && c.specials.iter().all(|s| !s.is_empty() && s != "[UNK]");
    let probe = TextVectorizer::from_vocabulary(TextVectorizerConfig { specials: Vec::new(), ..c.clone() }, vec![]);
    let has_token = probe.is_ok_and(|p| texts.iter().any(|t| !p.tokens(t).is_empty()));
    valid && specials_ok && has_token
}

fn check_vectorizer(v: &TextVectorizer, texts: &[String]) -> Result<(), String> {
    let vocab = v.vocabulary();
    if vocab.len() < 2 || !vocab[0].is_empty() || vocab[1] != "[UNK]" {
        return Err("the vocabulary does not start with padding and OOV".into());
    }
    if let Some(m) = v.config().max_tokens.filter(|&m| vocab.len() > m) {
        return Err(format!("{} entries exceed max_tokens {m}", vocab.len()));
    }
    for (id, token) in vocab.iter().enumerate().skip(2) {
        if v.id(token) != Some(id as u32) {
            return Err(format!("token {token:?} maps to {:?}, not {id}", v.id(token)));
        }
    }
    for t in texts {
        let ids = v.encode(t);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= v.vocab_size()) {
            return Err(format!("encode gave id {bad} ≥ V = {}", v.vocab_size()));
        }
        if v.config().output_sequence_length.is_some_and(|n| ids.len() > n) {
            return Err(format!("encode gave {} ids, more than output_sequence_length", ids.len()));
        }
        if v.decode(&ids).len() != ids.len() {
            return Err("decode lost ids".into());
        }
    }
    match TextVectorizer::from_json(&v.to_json()) {
        Ok(back) if back == *v => Ok(()),
        Ok(_) => Err("the JSON round trip changed the vectorizer".into()),
        Err(e) => Err(format!("the vectorizer's own JSON does not load: {e}")),
    }
}

fn vectorizer_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let mode = input.u8() % 4;
    let config = vectorizer_config(&mut input);
    let texts: Vec<String> = (0..input.below(6)).map(|_| input.string(24, WORDS)).collect();
    match mode {
        0 | 1 => {
            let must = adapt_must_succeed(&config, &texts);
            match TextVectorizer::adapt(config, texts.iter().map(String::as_str)) {
                Ok(v) => match check_vectorizer(&v, &texts) {
                    Ok(()) => Verdict::Accepted("adapt".into()),
                    Err(m) => Verdict::Wrong(m),
                },
                Err(e) if must => Verdict::Wrong(format!("adapt rejected valid texts {texts:?}: {e}")),
                Err(e) => Verdict::from_error(&e),
            }
        }
        2 => match TextVectorizer::from_vocabulary(config, texts.clone()) {
            Ok(v) => match check_vectorizer(&v, &texts) {
                Ok(()) => Verdict::Accepted("from_vocabulary".into()),
                Err(m) => Verdict::Wrong(m),
            },
            Err(e) => Verdict::from_error(&e),
        },
        _ => {
            // JSON: the bytes as written, or a real vectorizer's JSON with a
            // splice of the input.
            let base = TextVectorizer::from_vocabulary(TextVectorizerConfig::words(), vec!["a".into(), "b".into()])
                .map(|v| v.to_json())
                .unwrap_or_default();
            let rest = String::from_utf8_lossy(input.rest()).into_owned();
            let json = if rest.starts_with('{') {
                rest
            } else {
                let at = texts.len() * 7 % base.len().max(1);
                let at = (0..=at).rev().find(|&i| base.is_char_boundary(i)).unwrap_or(0);
                format!("{}{rest}{}", &base[..at], &base[at..])
            };
            match TextVectorizer::from_json(&json) {
                Ok(v) => match check_vectorizer(&v, &texts) {
                    Ok(()) => Verdict::Accepted("from_json".into()),
                    Err(m) => Verdict::Wrong(m),
                },
                Err(e) => Verdict::from_error(&e),
            }
        }
    }
}

fn vectorizer_seeds() -> Vec<Vec<u8>> {
    vec![
        vec![0, 0, 2, 2, b'a', b' ', 200, b'b'],
        vec![1, 1 | 2 | 16, 5, 3, 1, 0, 3, 0, 1],
        vec![0, 16, 0, 2, 0, 0, 0, 1],
        vec![0, 32 | 16, 0, 1, 4, b'a', b'b', b'c', b'a'],
        vec![2, 0, 0, 3, 4, b'a', 4, b'b', 4, b'a'],
        b"\x03\x00\x00\x00{\"config\":{\"max_tokens\":3,\"output_sequence_length\":null,\"truncate\":\"KeepFront\",\
\"standardize\":\"None\",\"split\":\"Whitespace\"},\"vocabulary\":[\"\",\"[UNK]\",\"a\"]}"
            .to_vec(),
    ]
}

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
            let a = std::fs::read(&path).map_err(|e| Error::Config(e.to_string()))?;

            let chars = TextVectorizer::adapt(TextVectorizerConfig::characters(), ["abc ab"])?;
            let lm_config = LanguageModelConfig::new(chars.vocab_size(), 2, 3).with_mode(RnnMode::Gru);
            let lm = TextLm::new(dev, chars, lm_config)?;
            let state = vec![("h.0".to_string(), Tensor::zeros(dev, &[1, 2, 3])?)];
            let path = scratch("seed-lm.safetensors");
            checkpoint::save_with_state(&path, &lm, None, &lm.metadata(), &state)?;
            let b = std::fs::read(&path).map_err(|e| Error::Config(e.to_string()))?;
            Ok(vec![a, b])
        };
        build().unwrap_or_else(|e| panic!("writing the seed checkpoints failed: {e}"))
    })
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

fn checkpoint_target(data: &[u8]) -> Verdict {
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

fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (k, file) in checkpoint_files().iter().enumerate() {
        let mut raw = vec![0u8];
        raw.extend_from_slice(file);
        out.push(raw);
        out.push(vec![1, k as u8, 0, 5, 3]);
    }
    out
}

// ---------------------------------------------------------------- packed

fn packed_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let rows = if input.u8() == 255 { 1 << input.below(18) } else { input.below(9) };
    let pattern: Vec<usize> = (0..rows.min(8)).map(|_| input.size(8)).collect();
    let lengths: Vec<usize> = (0..rows).map(|b| pattern[b % pattern.len().max(1)]).collect();
    let max_len = input.size(8);
    let valid = !lengths.is_empty() && lengths.iter().all(|&l| l >= 1 && l <= max_len);
    let small = rows.checked_mul(max_len).is_some_and(|n| n <= 1 << 16);
    let dev = device();
    let batch = match PackedBatch::new(dev, &lengths, max_len) {
        Ok(b) => b,
        Err(e) if valid && small => {
            return Verdict::Wrong(format!("valid lengths {lengths:?} with T = {max_len} were rejected: {e}"))
        }
        Err(e) => return Verdict::from_error(&e),
    };
    if !valid {
        return Verdict::Wrong(format!("lengths {lengths:?} with T = {max_len} were accepted"));
    }
    if let Err(m) = check_packed(&batch, &lengths, max_len) {
        return Verdict::Wrong(m);
    }
    // The GPU copy of the layout: pack (B, T, 1) positions, compare with
    // the host, and unpack back (zeros at padding).
    if small && input.u8() < 128 {
        let positions: Vec<f32> = (0..rows * max_len).map(|i| i as f32).collect();
        let check = || -> wgrnn::Result<Result<(), String>> {
            let padded = Tensor::from_slice(dev, &positions, &[rows, max_len, 1])?;
            let packed = batch.pack(&padded)?.to_vec()?;
            let want = batch.pack_host(&positions)?;
            if packed != want {
                return Ok(Err("the GPU packing differs from pack_host".into()));
            }
            let packed = Tensor::from_slice(dev, &want, &[want.len(), 1])?;
            let back = batch.unpack(&packed)?.to_vec()?;
            for (i, (&got, &pos)) in back.iter().zip(&positions).enumerate() {
                let (b, t) = (i / max_len, i % max_len);
                let expect = if t < lengths[b] { pos } else { 0.0 };
                if got != expect {
                    return Ok(Err(format!("unpack at ({b}, {t}) gave {got}, expected {expect}")));
                }
            }
            Ok(Ok(()))
        };
        match check() {
            Ok(Ok(())) => return Verdict::Accepted("packed+gpu".into()),
            Ok(Err(m)) => return Verdict::Wrong(m),
            Err(e) => return Verdict::from_error(&e),
        }
    }
    Verdict::Accepted("packed".into())
}

/// The host layout of an accepted batch against its definition.
fn check_packed(batch: &PackedBatch, lengths: &[usize], max_len: usize) -> Result<(), String> {
    let total: usize = lengths.iter().sum();
    if batch.batch() != lengths.len() || batch.max_len() != max_len || batch.total() != total {
        return Err(format!("batch {} / T {} / N {} do not match the input", batch.batch(), batch.max_len(), total));
    }
    let sizes = batch.batch_sizes();
    for t in 0..max_len {
        if sizes[t] != lengths.iter().filter(|&&l| l > t).count() {
            return Err(format!("batch_sizes[{t}] = {} is wrong", sizes[t]));
        }
        if batch.offsets()[t + 1] != batch.offsets()[t] + sizes[t] {
            return Err(format!("offsets[{}] is wrong", t + 1));
        }
    }
    let mut seen = vec![false; lengths.len()];
    let sorted = batch.sorted_rows();
    for (s, &b) in sorted.iter().enumerate() {
        if b >= lengths.len() || std::mem::replace(&mut seen[b], true) {
            return Err("sorted_rows is not a permutation".into());
        }
        if s > 0 {
            let prev = sorted[s - 1];
            if lengths[prev] < lengths[b] || (lengths[prev] == lengths[b] && prev > b) {
                return Err("sorted_rows is not a stable sort by length, longest first".into());
            }
        }
    }
    let order: Vec<usize> = (0..lengths.len() * max_len).collect();
    let packed = batch.pack_host(&order).map_err(|e| e.to_string())?;
    let mut want = Vec::with_capacity(total);
    for t in 0..max_len {
        for &b in sorted.iter().take(sizes[t]) {
            want.push(b * max_len + t);
        }
    }
    if packed != want {
        return Err("pack_host is not time-major over the sorted rows".into());
    }
    Ok(())
}

fn packed_seeds() -> Vec<Vec<u8>> {
    vec![vec![3, 2, 5, 1, 5], vec![1, 1, 1], vec![4, 3, 3, 1, 2, 3], vec![2, 0, 1, 1], vec![2, 4, 1, 3]]
}

// ---------------------------------------------------------------- tape

fn mode(input: &mut Input<'_>) -> RnnMode {
    [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh, RnnMode::RnnRelu][input.below(4)]
}

/// Whether every value is finite.
fn finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// Largest input magnitude for which an output must be finite. Finite is
/// not enough: a state of f32::MAX overflows the first product it meets
/// (in PyTorch as here), so inputs that large may give inf or NaN.
const MODERATE: f32 = 1e4;

/// Whether every value is finite and at most [`MODERATE`] in magnitude.
fn moderate(values: &[f32]) -> bool {
    values.iter().all(|v| v.abs() <= MODERATE)
}

fn tape_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let path = input.u8() % 5;
    let dispatches = device().dispatch_count();
    let result = match path {
        0 | 1 => classifier_step(&mut input),
        2 => rnn_direct(&mut input),
        3 => tape_misuse(&mut input),
        _ => lm_step(&mut input),
    };
    // Submit what was recorded (a failed op may leave dispatches behind)
    // and wait for it, so a validation error or a kernel that runs for
    // ever is charged to this execution, not a later one. An input
    // rejected before any dispatch costs nothing here.
    let result = if device().dispatch_count() != dispatches {
        result.and_then(|v| device().synchronize().map(|()| v))
    } else {
        result
    };
    match result {
        Ok(v) => v,
        Err(e) => Verdict::from_error(&e),
    }
}

/// embedding → recurrent → pooling → linear → loss → backward on a
/// training tape, every size and value from the input.
fn classifier_step(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let (vocab, embed, hidden) = (input.size(5), input.size(3), input.size(3));
    let (cell, layers, bidirectional) = (mode(input), input.size(2), input.bool());
    let batch = input.size(3);
    let max_len = input.size(4);
    let lengths: Vec<usize> = (0..batch.min(64)).map(|_| input.size(max_len.min(6) + 1)).collect();
    let ids: Vec<u32> = (0..lengths.iter().sum::<usize>().min(512))
        .map(|_| if input.u8() < 250 { input.below(vocab.min(64) + 1) as u32 } else { input.u32() })
        .collect();
    let classes = input.size(3);
    let targets: Vec<u32> = (0..batch.min(64)).map(|_| input.below(classes.min(8) + 2) as u32).collect();
    let pooling = input.u8() % 4;
    let with_state = input.u8() % 4;
    let dropout = if input.u8() < 200 { 0.0 } else { input.f32() };

    let embedding = EmbeddingConfig::new(vocab, embed).init(dev)?;
    let rnn = RecurrentConfig::new(cell, embed, hidden)
        .with_num_layers(layers)
        .with_bidirectional(bidirectional)
        .with_dropout(dropout)
        .init(dev)?;
    let dirs = if bidirectional { 2 } else { 1 };
    let fc = LinearConfig::new(dirs * hidden, classes).init(dev)?;

    let mut tape = Tape::train(dev, u64::from(input.u8()));
    let packed = PackedBatch::new(dev, &lengths, max_len)?;
    if lengths.iter().any(|&l| l == 0 || l > max_len) {
        return Ok(Verdict::Wrong(format!("PackedBatch accepted lengths {lengths:?} for T = {max_len}")));
    }
    let x = tape.embedding(&embedding, &ids)?;
    if ids.iter().any(|&i| i as usize >= vocab) {
        return Ok(Verdict::Wrong(format!("embedding accepted ids {ids:?} for V = {vocab}")));
    }
    // Initial states: none, right-shaped (finite or not), or wrong-shaped.
    let states = layers * dirs;
    let (mut h0, mut c0, mut finite_inputs) = (None, None, true);
    if with_state > 0 {
        let shape = if with_state == 3 { [states, batch + 1, hidden] } else { [states.max(1), batch, hidden] };
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n.min(4096)).map(|_| if with_state == 2 { input.f32() } else { 0.1 }).collect();
        finite_inputs = moderate(&values);
        let t = Tensor::from_slice(dev, &values, &shape)?;
        h0 = Some(tape.input(t.clone()));
        if cell == RnnMode::Lstm {
            c0 = Some(tape.input(t));
        }
    }
    let r = tape.recurrent(&rnn, x, &packed, h0, c0)?;
    let features = match pooling {
        0 => tape.pool_last(r.h_n, dirs)?,
        1 => tape.pool_mean(r.output, &packed)?,
        2 => tape.pool_max(r.output, &packed)?,
        _ => r.output,
    };
    let features = tape.dropout(features, if dropout.is_finite() { dropout.abs() % 1.0 } else { dropout })?;
    let logits = tape.linear(&fc, features)?;
    let rows = tape.value(logits)?.shape()[0];
    let loss = if classes == 1 && input.bool() {
        let t: Vec<f32> = (0..rows).map(|_| input.f32()).collect();
        tape.bce_with_logits(logits, &t)?
    } else {
        let targets: Vec<u32> = (0..rows).map(|i| targets.get(i).copied().unwrap_or(0)).collect();
        let ignore = if input.bool() { Some(input.below(4) as u32) } else { None };
        let l = tape.cross_entropy(logits, &targets, ignore, input.finite().abs() / 2.0)?;
        if targets.iter().any(|&y| y as usize >= classes && Some(y) != ignore) {
            return Ok(Verdict::Wrong(format!("cross_entropy accepted targets {targets:?} for C = {classes}")));
        }
        l
    };
    tape.backward(loss.loss)?;
    let value = loss.value(&tape)?;
    // One gradient read back (each readback waits for the GPU): the first
    // layer's input weights, which every other gradient flows into.
    let grad = rnn.layer.params()[0].weight_ih().grad.to_vec()?;
    if finite_inputs && (!value.is_finite() || !finite(&grad)) {
        return Ok(Verdict::Wrong(format!("moderate inputs gave loss {value} or a non-finite gradient")));
    }
    Ok(Verdict::Accepted(format!("step{pooling}")))
}

/// `Rnn::forward`/`backward` on padded host-built tensors, NaN/inf allowed.
fn rnn_direct(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let (cell, in_size, hidden) = (mode(input), input.size(3), input.size(3));
    let proj = if input.u8() > 230 { input.size(3) } else { 0 };
    // Through the module: `RnnConfig::init` draws initial values before
    // any device-size check (see the fuzzing notes in README).
    let mut config =
        RecurrentConfig::new(cell, in_size, hidden).with_num_layers(input.size(2)).with_bidirectional(input.bool());
    config.rnn = config.rnn.with_proj_size(proj);
    let rnn = config.init(dev)?.layer;
    let spec = *rnn.spec();
    let (batch, max_len) = (input.size(3).min(64), input.size(4).min(64));
    let features = if input.u8() < 240 { spec.input_size } else { input.size(4) };
    let lengths: Vec<usize> = (0..batch).map(|_| input.size(max_len + 1)).collect();
    let n = batch * max_len * features;
    let values: Vec<f32> =
        (0..n.min(8192)).map(|_| if input.u8() < 240 { input.finite() } else { input.f32() }).collect();
    let x = Tensor::from_slice(dev, &values, &[batch, max_len, features])?;
    let states = spec.num_layers * spec.directions();
    let mut h0_finite = true;
    let h0 = if input.bool() {
        let shape = [states, batch, spec.state_size() + usize::from(input.u8() > 240)];
        let h: Vec<f32> = (0..shape.iter().product::<usize>().min(4096)).map(|_| input.f32()).collect();
        h0_finite = moderate(&h);
        Some(Tensor::from_slice(dev, &h, &shape)?)
    } else {
        None
    };
    let fwd = rnn.forward(&x, &lengths, h0.as_ref(), None, None)?;
    if lengths.iter().any(|&l| l == 0 || l > max_len) {
        return Ok(Verdict::Wrong(format!("Rnn::forward accepted lengths {lengths:?} for T = {max_len}")));
    }
    let out = fwd.output.to_vec()?;
    let h_ok = h0_finite;
    if moderate(&values) && h_ok && !finite(&out) && cell != RnnMode::RnnRelu {
        return Ok(Verdict::Wrong("moderate inputs gave a non-finite output".into()));
    }
    // Padded steps must be zero whatever the input.
    let width = out.len() / (batch * max_len).max(1);
    for (b, &len) in lengths.iter().enumerate() {
        for t in len..max_len {
            let row = &out[(b * max_len + t) * width..(b * max_len + t + 1) * width];
            if row.iter().any(|&v| v != 0.0) {
                return Ok(Verdict::Wrong(format!("output at padded step ({b}, {t}) is not zero")));
            }
        }
    }
    if input.bool() {
        let shape = if input.u8() < 240 { fwd.output.shape().to_vec() } else { vec![batch, max_len, width + 1] };
        let g: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| input.finite()).collect();
        let g = Tensor::from_slice(dev, &g, &shape)?;
        let grads = rnn.backward(&fwd, &g, None, None)?;
        let dx = grads.input.to_vec()?;
        if moderate(&values) && h_ok && cell != RnnMode::RnnRelu && !finite(&dx) {
            return Ok(Verdict::Wrong("moderate inputs gave a non-finite input gradient".into()));
        }
    }
    Ok(Verdict::Accepted("rnn".into()))
}

/// A language-model step: embedding (and AWD's embedding and locked
/// dropout, weight drop, AR/TAR penalties), stacked layers with carried
/// state of any shape, the decoder, cross-entropy with ignored targets,
/// backward.
fn lm_step(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let (vocab, embed, hidden) = (input.size(5), input.size(3), input.size(3));
    let mut config = LanguageModelConfig::new(vocab, embed, hidden)
        .with_layers(input.size(2))
        .with_mode(mode(input))
        .with_tied_weights(input.u8() < 64);
    match input.u8() % 3 {
        0 => config = config.with_dropout(if input.u8() < 200 { 0.25 } else { input.f32() }),
        1 => {
            let mut awd = AwdConfig::fastai(1.0);
            if input.u8() > 200 {
                awd.weight_p = input.f32();
                awd.beta = input.f32();
            }
            config = config.with_awd(awd);
        }
        _ => {}
    }
    let model = config.init(dev)?;
    let batch = input.size(3);
    let max_len = input.size(4);
    let lengths: Vec<usize> = (0..batch.min(64)).map(|_| input.size(max_len.min(6) + 1)).collect();
    let packed = PackedBatch::new(dev, &lengths, max_len)?;
    let n = packed.total();
    let ids: Vec<u32> = (0..n + usize::from(input.u8() > 240)).map(|_| input.below(vocab.min(64) + 1) as u32).collect();
    let targets: Vec<u32> =
        (0..n).map(|_| if input.u8() < 32 { IGNORE } else { input.below(vocab.min(64) + 1) as u32 }).collect();
    let state = match input.u8() % 3 {
        0 => None,
        1 => Some(model.zero_state(dev, batch)?),
        _ => Some(model.zero_state(dev, batch + 1)?),
    };
    let mut tape = Tape::train(dev, u64::from(input.u8()));
    let fwd = model.forward(&mut tape, &ids, &packed, state.as_deref())?;
    if ids.iter().any(|&i| i as usize >= vocab) || ids.len() != n {
        return Ok(Verdict::Wrong(format!("LanguageModel::forward accepted ids {ids:?} for V = {vocab}, N = {n}")));
    }
    let mut loss = tape.cross_entropy(fwd.logits, &targets, Some(IGNORE), 0.0)?;
    if let Some(p) = fwd.penalty {
        loss = loss.with_penalty(&mut tape, p)?;
    }
    tape.backward(loss.objective)?;
    let value = loss.value(&tape)?;
    if !value.is_finite() && targets.iter().any(|&t| t != IGNORE) {
        return Ok(Verdict::Wrong(format!("a language-model step gave loss {value}")));
    }
    Ok(Verdict::Accepted("lm".into()))
}

/// Misuse of the tape: mismatched shapes to linear/add, a var of another
/// tape, backward twice, backward on a non-scalar or an eval tape,
/// dropout probabilities outside [0, 1).
fn tape_misuse(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let train = input.u8() < 200;
    let mut tape = if train { Tape::train(dev, 1) } else { Tape::eval(dev) };
    let mut other = Tape::train(dev, 2);
    let (m, k) = (input.size(3), input.size(3));
    let values: Vec<f32> = (0..(m * k).min(4096)).map(|_| input.f32()).collect();
    let x = tape.input(Tensor::from_slice(dev, &values, &[m, k])?);
    let y = other.input(Tensor::from_slice(dev, &[1.0], &[1])?);
    let layer = LinearConfig::new(input.size(3), input.size(3)).init(dev)?;
    let mut v = match input.u8() % 5 {
        0 => tape.linear(&layer, x)?,
        1 => tape.add(x, y)?,
        2 => tape.dropout(x, input.f32())?,
        3 => tape.linear(&layer, y)?,
        _ => tape.add(x, x)?,
    };
    if input.bool() {
        let layer2 = LinearConfig::new(tape.value(v)?.shape()[1], 1).init(dev)?;
        v = tape.linear(&layer2, v)?;
        let rows = tape.value(v)?.shape()[0];
        v = tape.pool_last(v, input.size(2))?;
        let _ = rows;
    }
    tape.backward(v)?;
    if input.bool() {
        tape.backward(v)?;
        return Ok(Verdict::Wrong("a second backward on one tape was accepted".into()));
    }
    if !train {
        return Ok(Verdict::Wrong("backward on an evaluation tape was accepted".into()));
    }
    Ok(Verdict::Accepted("misuse".into()))
}

/// A `classifier_step` input: V 5, E 3, H 2, one layer, B 2, T 3,
/// lengths 3 and 1, ids 1–4, two classes, with the given cell, pooling,
/// directions and initial state (0 none, 1 zeros, 2 from the input).
fn classifier_seed(cell: u8, pooling: u8, bidirectional: bool, state: u8) -> Vec<u8> {
    let mut s = vec![0, 5, 3, 2, cell, 1, u8::from(bidirectional), 2, 3, 3, 1];
    s.extend([0, 1, 0, 2, 0, 3, 0, 4]); // ids
    s.extend([2, 0, 1, pooling, state, 0, 7]); // classes, targets, pooling, state, dropout, tape seed
    if state == 2 {
        s.extend([140, 120, 100, 160, 130, 110, 90, 170]); // h0 (and c0) values
    }
    s.extend([0, 128]); // no ignore_index, no smoothing
    s
}

fn tape_seeds() -> Vec<Vec<u8>> {
    // Every cell × pooling × direction first: these compile every kernel
    // the target reaches, before the hang watchdog is strict.
    let mut seeds = Vec::new();
    for cell in 0..4 {
        for pooling in 0..4 {
            for bidirectional in [false, true] {
                seeds.push(classifier_seed(cell, pooling, bidirectional, u8::from(bidirectional) * 2));
            }
        }
    }
    seeds.extend([
        // classifier_step: V 5, E 3, H 2, LSTM, 1 layer, uni, B 2, T 3, lengths 3 1, ids, classes 2…
        vec![0, 5, 3, 2, 0, 1, 0, 2, 3, 3, 1, 1, 2, 3, 4, 2, 0, 1, 0, 0, 0, 0],
        vec![1, 5, 3, 2, 1, 2, 1, 2, 3, 3, 1, 1, 2, 3, 4, 2, 0, 1, 1, 2, 0, 0],
        vec![0, 4, 2, 3, 2, 1, 0, 1, 2, 2, 1, 3, 1, 1, 2, 1, 0, 1, 0],
        // rnn_direct: GRU I 2 H 3, B 2, T 2.
        vec![2, 1, 2, 3, 0, 1, 0, 2, 2, 0, 2, 1, 10, 20, 30, 40, 50, 60, 70, 80, 1, 1, 0],
        vec![2, 0, 1, 2, 0, 2, 1, 1, 3, 0, 3, 5, 6, 7, 0, 1, 2, 1],
        // tape_misuse.
        vec![3, 0, 2, 2, 1, 2, 3, 2, 2, 0, 1, 1],
        vec![3, 250, 1, 1, 9, 1, 1, 1, 0],
    ]);
    // lm_step: V 5, E 3, H 2, one layer, each cell, plain / AWD / none,
    // B 2, T 3, lengths 3 and 2, ids, targets, carried zero state.
    for cell in 0..4 {
        for reg in 0..3 {
            let mut s = vec![4, 5, 3, 2, 1, cell, 200, reg, 0, 2, 3, 3, 2, 0];
            s.extend([1, 2, 3, 4, 1]); // ids (N = 5)
            s.extend([64, 2, 64, 3, 64, 4, 64, 1, 0]); // targets, the last ignored
            s.extend([1, 9]); // zero state, tape seed
            seeds.push(s);
        }
    }
    seeds
}
