//! The fuzz targets: each a `fn(&[u8]) -> Verdict` that decodes a
//! structured input from the bytes (`engine::Input`) and drives public API with
//! it. A target never panics by itself; what it checks on an accepted
//! result (ids < V, lengths in 1..=T, finite outputs for moderate inputs,
//! a lossless JSON round trip) turns a silently wrong result into a
//! [`Verdict::Wrong`]. GPU targets end with a readback or a flush, so a
//! validation error the device reports late is counted on the execution
//! that caused it.
//!
//! One module per area: `data` (CSV, text, vectorizer), `checkpoint`,
//! `packed`, `tape`. Shared, not copied: `examples/fuzz/main.rs` (long
//! runs), `tests/fuzz.rs` (bounded CI runs) and `fuzz/` (libFuzzer) all
//! include this module.

#![allow(dead_code)]

mod checkpoint;
mod data;
mod packed;
mod tape;

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use wgrnn::{Device, DeviceOptions};

use crate::engine::{Target, Verdict};

/// Every target, in the order the driver and the CI test run them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "csv",
        about: "data::read_csv_from (read_csv's parser): CSV bytes, gzip or not, any columns/header/delimiter",
        run: data::csv_target,
        seeds: data::csv_seeds,
        max_len: 2048,
    },
    Target {
        name: "text",
        about: "data::read_text_from / read_lines_from: text bytes, gzip (truncated or not) or plain",
        run: data::text_target,
        seeds: data::text_seeds,
        max_len: 1024,
    },
    Target {
        name: "vectorizer",
        about: "TextVectorizer::adapt / from_vocabulary / from_json / encode / decode with any config and texts",
        run: data::vectorizer_target,
        seeds: data::vectorizer_seeds,
        max_len: 1024,
    },
    Target {
        name: "checkpoint",
        about: "checkpoint::metadata / running_state / load (with optimizer state), TextClassifier::load, \
                TextLm::load + restore_running_state on mutated checkpoints the crate wrote",
        run: checkpoint::checkpoint_target,
        seeds: checkpoint::checkpoint_seeds,
        max_len: 16384,
    },
    Target {
        name: "packed",
        about: "PackedBatch::new(lengths, T) and its pack/unpack round trip on the GPU",
        run: packed::packed_target,
        seeds: packed::packed_seeds,
        max_len: 256,
    },
    Target {
        name: "tape",
        about: "Embedding/Recurrent/Linear/pooling/dropouts/losses on the Tape, backward, Rnn::forward/backward, \
                LanguageModel::forward (AWD, carried state): any shapes (0 included), ids, lengths, NaN/inf",
        run: tape::tape_target,
        seeds: tape::tape_seeds,
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

/// This process's scratch directory.
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("wgrnn-fuzz-{}", std::process::id()))
}

/// Removes this process's scratch files (call when no target runs).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch_dir());
}

/// A scratch file for this thread (targets that only take paths).
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = scratch_dir();
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{:?}-{name}", std::thread::current().id()).replace(['(', ')'], ""))
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}
