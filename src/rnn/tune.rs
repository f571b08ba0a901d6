//! The autotuner of the recurrent kernels: which [`RecurrentKernel`] runs
//! a layer on this adapter. A forced choice (`WGRNN_KERNEL`,
//! [`crate::Device::set_recurrent_kernel`]) wins. Otherwise, for a layer
//! shape big enough to matter, every variant the adapter can run is timed
//! once (forward and backward of a one-layer stand-in with random weights,
//! best of a few runs) and the fastest is kept, in memory and in a JSON
//! file keyed by adapter, driver, wgrnn version and shape, so a later
//! process on the same machine reuses it. Smaller shapes take the sequence
//! kernels where they fit (one dispatch instead of one per step is what
//! matters when there is little work per step).
//!
//! Every variant computes the same bits, so the choice never changes a
//! result, only its speed. The cache file is `WGRNN_TUNE_CACHE` if set,
//! else `$XDG_CACHE_HOME/wgrnn/tune.json` or `~/.cache/wgrnn/tune.json`;
//! `WGRNN_TUNE=off` skips timing (the default rule then applies).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::device::Device;
use crate::error::Result;
use crate::rnn::packed::PackedBatch;
use crate::rnn::variant::{sequence_rows, sequence_unfit, RecurrentKernel};
use crate::rnn::{RnnConfig, RnnSpec};
use crate::tensor::Tensor;

/// Multiply-adds of one direction's recurrence (B·T·G·H) below which a
/// shape is not timed: there the per-step launches dominate, which the
/// sequence kernels remove, and timing would cost more than it could save.
pub const TUNE_MIN_WORK: u64 = 1 << 24;
/// Timed runs of each variant; the best counts (the others absorb a cold
/// cache or a busy machine).
const RUNS: usize = 3;
/// Most time steps of the stand-in (the per-step cost is what differs).
const MAX_TUNE_STEPS: usize = 32;

/// What is tuned: one layer direction's recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Shape {
    cell: &'static str,
    hidden: usize,
    /// Batch rows rounded up to a power of two.
    batch: usize,
    /// Steps, capped at [`MAX_TUNE_STEPS`], rounded up to a power of two.
    steps: usize,
}

impl Shape {
    fn of(spec: &RnnSpec, batch: &PackedBatch) -> Self {
        Self {
            cell: spec.mode.name(),
            hidden: spec.hidden_size,
            batch: batch.batch().next_power_of_two(),
            steps: batch.longest().min(MAX_TUNE_STEPS).next_power_of_two(),
        }
    }

    fn key(&self) -> String {
        format!("{} H{} B{} T{}", self.cell, self.hidden, self.batch, self.steps)
    }

    fn work(&self) -> u64 {
        let gates = self.hidden as u64 * 4;
        (self.batch * self.steps * self.hidden) as u64 * gates
    }
}

/// The device's kernel choices: what is forced, and what was tuned.
#[derive(Debug, Default)]
pub(crate) struct KernelChoices {
    forced: Mutex<Option<RecurrentKernel>>,
    /// Choices by shape key; also held while a shape is being timed, so
    /// threads sharing the device time it once.
    tuned: Mutex<Option<BTreeMap<String, String>>>,
    /// `WGRNN_TUNE=off`, read once with the device (not on every forward).
    tuning_off: bool,
}

impl KernelChoices {
    /// Choices starting with `forced` (from `WGRNN_KERNEL`).
    pub(crate) fn new(forced: Option<RecurrentKernel>) -> Self {
        let tuning_off = std::env::var("WGRNN_TUNE").is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0");
        Self { forced: Mutex::new(forced), tuned: Mutex::new(None), tuning_off }
    }

    /// Forces `kernel` for every later launch, or lifts the force (`None`).
    pub(crate) fn force(&self, kernel: Option<RecurrentKernel>) {
        *self.forced.lock().unwrap_or_else(|p| p.into_inner()) = kernel;
    }

    fn forced(&self) -> Option<RecurrentKernel> {
        *self.forced.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The variant that runs `spec`'s recurrence over `batch` on `device`. A
/// forced sequence variant the layer cannot use (a projection, a hidden
/// size past the adapter's limits) falls back to the largest row count
/// that fits, then to the step kernels, so forcing never fails a model.
pub(crate) fn recurrent_kernel(device: &Device, spec: &RnnSpec, batch: &PackedBatch) -> Result<RecurrentKernel> {
    let limits = &device.rt.limits;
    let fitting = sequence_rows(limits, spec, batch.batch()).map(|rows| RecurrentKernel::Sequence { rows });
    let default = fitting.unwrap_or(RecurrentKernel::Step);
    match device.rt.kernels.forced() {
        Some(RecurrentKernel::Step) => return Ok(RecurrentKernel::Step),
        Some(RecurrentKernel::Sequence { rows }) if rows > 0 && sequence_unfit(limits, spec, rows).is_none() => {
            return Ok(RecurrentKernel::Sequence { rows });
        }
        Some(RecurrentKernel::Sequence { .. }) => return Ok(default),
        None => {}
    }
    let shape = Shape::of(spec, batch);
    if fitting.is_none() || shape.work() < TUNE_MIN_WORK || device.rt.kernels.tuning_off {
        return Ok(default);
    }
    tuned(device, spec, shape)
}

/// The tuned choice for `shape`: from memory, the cache file, or timing.
fn tuned(device: &Device, spec: &RnnSpec, shape: Shape) -> Result<RecurrentKernel> {
    let choices = &device.rt.kernels;
    let mut tuned = choices.tuned.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = adapter_key(device);
    let map = tuned.get_or_insert_with(|| read_cache(&prefix));
    if let Some(kernel) = map.get(&shape.key()).and_then(|k| RecurrentKernel::parse(k).ok()) {
        if kernel == RecurrentKernel::Step
            || matches!(kernel, RecurrentKernel::Sequence { rows } if rows > 0 && sequence_unfit(&device.rt.limits, spec, rows).is_none())
        {
            return Ok(kernel);
        }
    }
    let timings = time_variants(device, spec, shape)?;
    let best = timings.iter().min_by_key(|(_, d)| *d).map(|(k, _)| *k).unwrap_or(RecurrentKernel::Step);
    map.insert(shape.key(), best.to_string());
    write_cache(&prefix, map);
    Ok(best)
}

/// Times every recurrent kernel variant the adapter can run for one layer
/// direction of `mode` with `hidden` units over `batch` rows of `steps`
/// steps (forward and backward, best of 3 runs after one that builds the
/// pipelines), fastest first: what the autotuner compares.
pub fn time_recurrent_kernels(
    device: &Device,
    mode: crate::rnn::RnnMode,
    hidden: usize,
    batch: usize,
    steps: usize,
) -> Result<Vec<(RecurrentKernel, Duration)>> {
    let spec = *RnnConfig::new(mode, hidden, hidden).init(device)?.spec();
    time_variants(device, &spec, Shape { cell: mode.name(), hidden, batch, steps })
}

/// Forward and backward time of every variant that can run `shape` (best
/// of [`RUNS`]), fastest first.
fn time_variants(device: &Device, spec: &RnnSpec, shape: Shape) -> Result<Vec<(RecurrentKernel, Duration)>> {
    let layer = RnnConfig::new(spec.mode, spec.hidden_size, spec.hidden_size).with_seed(1).init(device)?;
    let (b, t, h) = (shape.batch, shape.steps, spec.hidden_size);
    let rng = |n: usize, seed: u64| crate::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0);
    let x = Tensor::from_slice(device, &rng(b * t * h, 2), &[b, t, h])?;
    let grad = Tensor::from_slice(device, &rng(b * t * h, 3), &[b, t, h])?;
    let lengths = vec![t; b];
    let mut candidates = vec![RecurrentKernel::Step];
    for rows in crate::rnn::gpu::SEQUENCE_ROW_CHOICES {
        if (rows as usize) <= b && sequence_unfit(&device.rt.limits, spec, rows).is_none() {
            candidates.push(RecurrentKernel::Sequence { rows });
        }
    }
    let mut timings = Vec::new();
    for kernel in candidates {
        let mut best = Duration::MAX;
        // One untimed run builds the pipelines.
        for run in 0..=RUNS {
            device.synchronize()?;
            let start = Instant::now();
            let fwd = layer.forward_as(&x, &lengths, kernel)?;
            layer.backward(&fwd, &grad, None, None)?;
            device.synchronize()?;
            if run > 0 {
                best = best.min(start.elapsed());
            }
        }
        timings.push((kernel, best));
    }
    timings.sort_by_key(|(_, d)| *d);
    Ok(timings)
}

/// What a cached choice is valid for: the adapter, its driver and backend,
/// whether the step kernels use subgroups (they are other kernels, with
/// other speeds), this version of wgrnn, and the text of the recurrent
/// kernels that were timed (a changed kernel, even within a version, is
/// timed again).
fn adapter_key(device: &Device) -> String {
    let info = device.info();
    let subgroups = info.subgroup_size.map_or("no subgroups".to_string(), |s| format!("subgroups {s}"));
    format!(
        "{} | {} | {} | {subgroups} | wgrnn {} | kernels {:016x}",
        info.name,
        info.driver,
        info.backend,
        env!("CARGO_PKG_VERSION"),
        kernels_revision()
    )
}

/// FNV-1a of every source the recurrent kernels are built from (the shared
/// templates and each cell's equations), hashed once per process: the key
/// is built on every tuned forward.
fn kernels_revision() -> u64 {
    static REVISION: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *REVISION.get_or_init(|| {
        use crate::kernels::{
            PRELUDE, RECURRENT, RECURRENT_BACKWARD, RECURRENT_BACKWARD_SUBGROUP, RECURRENT_FORWARD,
            RECURRENT_FORWARD_SUBGROUP,
        };
        let cells = crate::cells::all_cells().into_iter().map(|c| c.wgsl);
        [
            PRELUDE,
            RECURRENT,
            RECURRENT_FORWARD,
            RECURRENT_BACKWARD,
            RECURRENT_FORWARD_SUBGROUP,
            RECURRENT_BACKWARD_SUBGROUP,
        ]
        .into_iter()
        .chain(cells)
        .flat_map(str::bytes)
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
    })
}

/// The cache file, if a place for it is known.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WGRNN_TUNE_CACHE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|p| !p.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wgrnn").join("tune.json"))
}

/// The whole file: adapter key → shape key → variant.
type CacheFile = BTreeMap<String, BTreeMap<String, String>>;

/// This adapter's cached choices; an unreadable or corrupt file is an
/// empty cache (it is only a cache: timing again is always correct).
fn read_cache(adapter: &str) -> BTreeMap<String, String> {
    let Some(path) = cache_path() else { return BTreeMap::new() };
    let file: CacheFile = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    file.get(adapter).cloned().unwrap_or_default()
}

/// Saves this adapter's choices, keeping other adapters' entries. A file
/// that cannot be written costs only a re-tune in the next process.
fn write_cache(adapter: &str, choices: &BTreeMap<String, String>) {
    let Some(path) = cache_path() else { return };
    let mut file: CacheFile =
        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    file.insert(adapter.to_string(), choices.clone());
    let Ok(text) = serde_json::to_vec_pretty(&file) else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Written whole under a unique name and renamed, so a reader never sees
    // half a file.
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
