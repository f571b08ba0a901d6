//! Bounded fuzzing in CI: every target of `examples/fuzz/targets/` (the
//! long-run driver's targets, shared, not copied) runs a fixed number of
//! executions from a fixed seed, capped in time so that one pass of the
//! suite spends at most about 20 s here, and must end with no panic, hang,
//! GPU error or wrong result. Then the regression tests: one per bug the
//! fuzzer found, calling the public API directly.
//!
//! Long runs: `cargo run --release --example fuzz -- --target NAME --execs 1000000`.

#[path = "../examples/fuzz/engine.rs"]
mod engine;
#[path = "../examples/fuzz/targets/mod.rs"]
mod targets;

use std::time::Duration;

/// Executions per target per CI pass (the time caps below end the GPU
/// targets first on lavapipe).
const CI_EXECS: u64 = 20_000;

/// Wall-time cap of a host-only target (they reach `CI_EXECS` in about a
/// second on the 2-core CI machine).
const CPU_SECONDS: f64 = 2.0;

/// Wall-time caps of the GPU targets. Their seeds run first and compile
/// every kernel they reach (seconds on lavapipe, more with bounds-checked
/// shaders), so they get longer. The six caps add up to 20 s of test
/// threads; on two threads a pass spends about 10 s here.
const CHECKPOINT_SECONDS: f64 = 4.0;
/// See [`CHECKPOINT_SECONDS`].
const TAPE_SECONDS: f64 = 8.0;

/// One execution longer than this fails the test as a hang.
const HANG_SECONDS: f64 = 10.0;

/// Runs target `name` from the fixed seed for at most `CI_EXECS`
/// executions or `seconds`, on `jobs` threads (GPU targets mostly wait on
/// the adapter, so two jobs nearly double their executions), and fails on
/// any panic, hang, GPU error or wrong result, showing the inputs.
fn fuzz(name: &str, seconds: f64, jobs: usize) {
    engine::quiet_panics();
    let target = targets::target(name).unwrap_or_else(|| panic!("no target {name}"));
    let config = engine::RunConfig {
        seed: 0x5eed,
        execs: CI_EXECS,
        time: Duration::from_secs_f64(seconds),
        hang_after: Duration::from_secs_f64(HANG_SECONDS),
        out_dir: None,
        progress_every: 0,
    };
    let summary = engine::run_parallel(target, &config, jobs);
    eprintln!("{}", summary.line());
    let failures: Vec<String> = summary
        .failures
        .iter()
        .take(5)
        .map(|f| format!("{}: {} (input {})", f.kind, f.message, engine::hex(&f.input)))
        .collect();
    assert_eq!(summary.failed(), 0, "fuzz target {name} failed:\n{}", failures.join("\n"));
    assert!(summary.execs > 0, "fuzz target {name} ran no execution");
}

#[test]
fn fuzz_csv() {
    fuzz("csv", CPU_SECONDS, 1);
}

#[test]
fn fuzz_text() {
    fuzz("text", CPU_SECONDS, 1);
}

#[test]
fn fuzz_vectorizer() {
    fuzz("vectorizer", CPU_SECONDS, 1);
}

#[test]
fn fuzz_checkpoint() {
    fuzz("checkpoint", CHECKPOINT_SECONDS, 2);
}

#[test]
fn fuzz_packed() {
    fuzz("packed", CPU_SECONDS, 1);
}

#[test]
fn fuzz_tape() {
    fuzz("tape", TAPE_SECONDS, 2);
}

// ---------------------------------------------------------------- regressions
//
// One test per bug the fuzz targets found (or, where noted, that writing
// a target exposed before it ran), through the public API.

use std::collections::BTreeMap;
use std::io::Cursor;

use wgrnn::checkpoint;
use wgrnn::classify::TextClassifier;
use wgrnn::data::{read_csv_from, Column, CsvFormat, LabelSet, Standardize, TextVectorizer, TextVectorizerConfig};
use wgrnn::lm::{LanguageModelConfig, TextLm};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{EmbeddingConfig, LinearConfig, RecurrentConfig};
use wgrnn::rnn::{PackedBatch, RnnMode};
use wgrnn::train::Task;
use wgrnn::Error;

/// `csv` target: a column index of usize::MAX (what `Column::parse`
/// makes of "18446744073709551615") wrapped the fields-needed count to 0
/// and indexing the record panicked. Now: a data error naming the row.
#[test]
fn csv_column_index_usize_max_is_an_error() {
    let format = CsvFormat::new(Column::Index(usize::MAX), Column::Index(0));
    let r = read_csv_from(Cursor::new(b"a,b\n".to_vec()), "max.csv", &format);
    match r {
        Err(Error::Data { message, line: Some(1), .. }) => assert!(message.contains("2 fields"), "{message}"),
        other => panic!("expected a data error on line 1, got {other:?}"),
    }
    let format = CsvFormat::new(Column::Index(1), Column::parse("18446744073709551615"));
    assert!(matches!(read_csv_from(Cursor::new(b"a,b\n".to_vec()), "max.csv", &format), Err(Error::Data { .. })));
}

/// `vectorizer` target: with no standardization, a training text holding
/// the OOV entry's spelling "[UNK]" made `adapt` fail ("vocabulary entry 2
/// is \"[UNK]\", which is reserved"). It now maps to the OOV id.
#[test]
fn adapt_accepts_texts_that_spell_the_oov_token() {
    let config = TextVectorizerConfig::words().with_standardize(Standardize::None);
    let v = TextVectorizer::adapt(config, ["[UNK] a", "[UNK]"]).expect("adapt");
    assert_eq!(v.vocabulary(), ["", "[UNK]", "a"]);
    assert_eq!(v.encode("[UNK] a b"), [TextVectorizer::OOV, 2, TextVectorizer::OOV]);
}

/// `packed` target: a padded length T of usize::MAX overflowed `T + 1`,
/// and a huge T or B·T built host tables of T and B·T entries before any
/// check (an allocation failure aborts the process). Now an error.
#[test]
fn packed_batch_with_a_huge_padded_length_is_an_error() {
    let dev = targets::device();
    for max_len in [usize::MAX, u32::MAX as usize + 1, 1 << 40] {
        let r = PackedBatch::new(dev, &[1], max_len);
        assert!(matches!(r, Err(Error::TooLarge { .. })), "T = {max_len}: {r:?}");
    }
    let rows = vec![1usize; 1 << 16];
    let r = PackedBatch::new(dev, &rows, 1 << 16);
    assert!(matches!(r, Err(Error::TooLarge { .. } | Error::OutOfRange { .. })), "{r:?}");
}

/// `tape` target (found as a hang): `num_layers = usize::MAX` initialised
/// layer after layer for ever. Modules also drew the initial values of a
/// parameter of any size on the host before the device's buffer limit was
/// checked (found writing the target).
#[test]
fn module_sizes_are_checked_before_initialising() {
    let dev = targets::device();
    let r = RecurrentConfig::new(RnnMode::Lstm, 2, 2).with_num_layers(usize::MAX).init(dev);
    assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
    let r = RecurrentConfig::new(RnnMode::Gru, 1, 1 << 20).init(dev);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    let r = RecurrentConfig::new(RnnMode::Lstm, 1, usize::MAX / 2).init(dev);
    assert!(matches!(r, Err(Error::Config(_) | Error::TooLarge { .. })), "{r:?}");
    let r = EmbeddingConfig::new(usize::MAX, 3).init(dev);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    let r = LinearConfig::new(1 << 31, 1 << 31).init(dev);
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
}

/// `checkpoint` target (found writing it): the loaders built a model as
/// large as the architecture metadata said before comparing it with the
/// file's tensors, so a corrupt size allocated (or hung on) whatever it
/// named. Now the shapes are checked from the header first.
#[test]
fn loaders_check_the_architecture_against_the_tensors_first() {
    let dev = targets::device();
    let dir = std::env::temp_dir().join(format!("wgrnn-fuzz-regression-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::words(), ["good film", "bad film"]).unwrap();
    let labels = LabelSet::from_labels(["neg", "pos"]).unwrap();
    let config = SequenceClassifierConfig::new(vectorizer.vocab_size(), 3, 2, 2);
    let clf = TextClassifier::new(dev, vectorizer, labels, config).unwrap();
    for (field, value) in [("hidden", "1073741824"), ("layers", "1000000"), ("embed_dim", "4294967296")] {
        let mut meta: BTreeMap<String, String> = clf.metadata();
        let mut model: serde_json::Value = serde_json::from_str(&meta["model"]).unwrap();
        model[field] = serde_json::from_str(value).unwrap();
        meta.insert("model".into(), model.to_string());
        let path = dir.join(format!("classifier-{field}.safetensors"));
        checkpoint::save_with_metadata(&path, &clf, None, &meta).unwrap();
        match TextClassifier::load(dev, &path) {
            Err(Error::Format(m) | Error::Config(m)) => {
                assert!(m.contains("tensor") || m.contains("num_layers"), "{field}: {m}")
            }
            other => panic!("{field} = {value}: expected a format error, got {other:?}"),
        }
    }

    let chars = TextVectorizer::adapt(TextVectorizerConfig::characters(), ["abc"]).unwrap();
    let lm = TextLm::new(dev, chars, LanguageModelConfig::new(5, 2, 3)).unwrap();
    for (field, value) in [("layers", "1099511627776"), ("hidden", "1073741824")] {
        let mut meta = lm.metadata();
        let mut model: serde_json::Value = serde_json::from_str(&meta["model"]).unwrap();
        model[field] = serde_json::from_str(value).unwrap();
        meta.insert("model".into(), model.to_string());
        let path = dir.join(format!("lm-{field}.safetensors"));
        checkpoint::save_with_metadata(&path, &lm, None, &meta).unwrap();
        let r = TextLm::load(dev, &path);
        assert!(matches!(r, Err(Error::Format(_) | Error::Config(_))), "{field} = {value}: {r:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
