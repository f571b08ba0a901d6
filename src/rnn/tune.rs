//! The autotuner of the recurrent kernels: which [`RecurrentKernel`] runs
//! a layer on this adapter. A forced choice (`WGRNN_KERNEL`,
//! [`crate::Device::set_recurrent_kernel`]) wins. Otherwise, for a layer
//! shape big enough to matter, every variant the adapter can run is timed
//! once (forward and backward of a one-layer stand-in with random weights,
//! best of a few interleaved runs) and the fastest is kept (a sequence
//! variant over the step kernels unless they are more than 25% faster),
//! in memory and in a JSON
//! file keyed by adapter, driver, wgrnn version and shape, so a later
//! process on the same machine reuses it. Smaller shapes take a sequence
//! variant where one fits, the sequence-uniform kernels first (one
//! dispatch instead of one per step is what matters when there is little
//! work per step).
//!
//! Every variant computes the same bits, so the choice never changes a
//! result, only its speed. The cache file and `WGRNN_TUNE=off` are
//! [`crate::tune`]'s (the default rule then applies).

use std::time::Duration;

use crate::device::Device;
use crate::error::Result;
use crate::rnn::packed::PackedBatch;
use crate::rnn::variant::{sequence_rows, sequence_unfit, sequence_uniform_unfit, RecurrentKernel};
use crate::rnn::{RnnConfig, RnnSpec};
use crate::tensor::Tensor;
use crate::tune::{adapter_key, best_times, lock, read_cache, write_cache};

/// The cache file ([`crate::tune::cache_path`]).
pub use crate::tune::cache_path;

/// How much faster than the fastest sequence variant the step kernels must
/// time to be chosen. The timing runs one layer alone, and it strays: on
/// lavapipe (2 cores, the bench's reference layer) one process timed the
/// step kernels 20% faster than the sequence-uniform ones, another 14%
/// slower, while whole training steps with either forced took the same
/// time (five interleaved pairs of 10-step runs: 238 and 242 ms mean).
/// Where the timing cannot tell them apart, fewer dispatches win: the step
/// kernels pay encoding and, on a CPU driver, a wake-up of the worker
/// threads per time step, the sequence kernels per layer and direction.
pub(crate) const STEP_MARGIN: f64 = 1.25;

/// Multiply-adds of one direction's recurrence (B·T·G·H) below which a
/// shape is not timed: there the per-step launches dominate, which the
/// sequence kernels remove, and timing would cost more than it could save.
pub const TUNE_MIN_WORK: u64 = 1 << 24;
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

/// The variant that runs `spec`'s recurrence over `batch` on `device`.
/// Untimed (a small layer, tuning off), a sequence variant where one
/// fits: the sequence-uniform kernels first (only adapters with fixed
/// 8-lane subgroups run them, which in practice are CPU drivers, and on
/// lavapipe they ran small layers' training steps about twice as fast as
/// the other two), then the largest row count of the sequence kernels.
/// A forced sequence variant the layer cannot use (a projection, a hidden
/// size past the adapter's limits) falls back to the largest row count
/// that fits, then to the step kernels, so forcing never fails a model.
pub(crate) fn recurrent_kernel(device: &Device, spec: &RnnSpec, batch: &PackedBatch) -> Result<RecurrentKernel> {
    let limits = &device.rt.limits;
    let rows_fit = sequence_rows(limits, spec, batch.batch()).map(|rows| RecurrentKernel::Sequence { rows });
    let uniform_fits = sequence_uniform_unfit(device, spec).is_none();
    let fallback = rows_fit.unwrap_or(RecurrentKernel::Step);
    let default = if uniform_fits { RecurrentKernel::SequenceUniform } else { fallback };
    match device.rt.kernels.forced_recurrent() {
        Some(RecurrentKernel::Step) => return Ok(RecurrentKernel::Step),
        Some(RecurrentKernel::Sequence { rows }) if rows > 0 && sequence_unfit(limits, spec, rows).is_none() => {
            return Ok(RecurrentKernel::Sequence { rows });
        }
        Some(RecurrentKernel::Sequence { .. }) => return Ok(fallback),
        Some(RecurrentKernel::SequenceUniform) if uniform_fits => return Ok(RecurrentKernel::SequenceUniform),
        Some(RecurrentKernel::SequenceUniform) => return Ok(fallback),
        None => {}
    }
    let shape = Shape::of(spec, batch);
    if default == RecurrentKernel::Step || shape.work() < TUNE_MIN_WORK || device.rt.kernels.tuning_off {
        return Ok(default);
    }
    tuned(device, spec, shape)
}

/// The tuned choice for `shape`: from memory, the cache file, or timing.
fn tuned(device: &Device, spec: &RnnSpec, shape: Shape) -> Result<RecurrentKernel> {
    let choices = &device.rt.kernels;
    let mut tuned = lock(&choices.recurrent);
    // The adapter's key is built only to load or save the cache.
    let map = tuned.get_or_insert_with(|| read_cache(&adapter_key(device)));
    if let Some(kernel) = map.get(&shape.key()).and_then(|k| RecurrentKernel::parse(k).ok()) {
        let runs = match kernel {
            RecurrentKernel::Step => true,
            RecurrentKernel::Sequence { rows } => rows > 0 && sequence_unfit(&device.rt.limits, spec, rows).is_none(),
            RecurrentKernel::SequenceUniform => sequence_uniform_unfit(device, spec).is_none(),
        };
        if runs {
            return Ok(kernel);
        }
    }
    let timings = time_variants(device, spec, shape)?;
    let best = pick(&timings);
    map.insert(shape.key(), best.to_string());
    write_cache(&adapter_key(device), map);
    Ok(best)
}

/// The variant to keep from `timings`: the fastest, but a sequence variant
/// over the step kernels unless they are more than [`STEP_MARGIN`] faster
/// (25%).
fn pick(timings: &[(RecurrentKernel, Duration)]) -> RecurrentKernel {
    let Some(&(fastest, time)) = timings.iter().min_by_key(|(_, d)| *d) else { return RecurrentKernel::Step };
    let sequence = timings.iter().filter(|(k, _)| *k != RecurrentKernel::Step).min_by_key(|(_, d)| *d);
    match sequence {
        Some(&(kernel, d))
            if fastest == RecurrentKernel::Step && d.as_secs_f64() <= time.as_secs_f64() * STEP_MARGIN =>
        {
            kernel
        }
        _ => fastest,
    }
}

/// Times every recurrent kernel variant the adapter can run for one layer
/// direction of `mode` with `hidden` units over `batch` rows of `steps`
/// steps (forward and backward, best of 5 interleaved rounds after one that builds the
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
/// of [`crate::tune::RUNS`]), fastest first.
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
    if sequence_uniform_unfit(device, spec).is_none() {
        candidates.push(RecurrentKernel::SequenceUniform);
    }
    let times = best_times(device, candidates.len(), |i| {
        let fwd = layer.forward_as(&x, &lengths, candidates[i])?;
        layer.backward(&fwd, &grad, None, None).map(drop)
    })?;
    let mut timings: Vec<(RecurrentKernel, Duration)> = candidates.into_iter().zip(times).collect();
    timings.sort_by_key(|(_, d)| *d);
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_kernels_must_win_by_the_margin() {
        let ms = Duration::from_millis;
        let uniform = RecurrentKernel::SequenceUniform;
        let rows = RecurrentKernel::Sequence { rows: 4 };
        // Within 25%: the sequence variant, the fastest of them.
        assert_eq!(pick(&[(RecurrentKernel::Step, ms(100)), (rows, ms(124)), (uniform, ms(120))]), uniform);
        // More than 25%: the step kernels.
        assert_eq!(pick(&[(RecurrentKernel::Step, ms(100)), (uniform, ms(126))]), RecurrentKernel::Step);
        // A faster sequence variant needs no margin.
        assert_eq!(pick(&[(RecurrentKernel::Step, ms(100)), (rows, ms(90))]), rows);
        assert_eq!(pick(&[(RecurrentKernel::Step, ms(100))]), RecurrentKernel::Step);
        assert_eq!(pick(&[]), RecurrentKernel::Step);
    }
}
