//! The GEMM autotuner: which [`GemmVariant`] runs a product on this
//! adapter. A forced variant (`WGRNN_KERNEL=gemm=...`,
//! [`crate::Device::set_gemm_variant`]) wins. Otherwise, for a product big
//! enough to matter (M·N·K ≥ [`GEMM_TUNE_MIN_WORK`]), every variant the
//! adapter can run that computes the same bits as the device's default
//! ([`GemmVariant::same_bits`]) is timed once on operands of the product's
//! shape, and the fastest (the default unless another beats it by more
//! than 10%) is kept in memory and in the tuner's cache file
//! ([`crate::tune`]) under the adapter and the shape (M, N, K rounded up to
//! powers of two, the transposes, whether A's column sums are fused in).
//! Smaller products, batched ones, and devices with one candidate take
//! [`GemmVariant::for_device`].
//!
//! Because the candidates share their bits, tuning changes how fast a
//! product runs, never its result: a run on a fresh machine and one that
//! reads the cache give the same numbers.

use std::time::Duration;

use crate::device::Device;
use crate::error::Result;
use crate::ops::gemm::gemm_and_sum_a_with_variant;
use crate::ops::{gemm_with_variant, GemmOptions, GemmVariant};
use crate::tensor::Tensor;
use crate::tune::{adapter_key, best_times, lock, read_cache, write_cache};

/// Multiply-adds (M·N·K) below which a product is not timed: there the
/// launch, not the kernel, is most of the cost, and timing would cost more
/// than it could save.
pub const GEMM_TUNE_MIN_WORK: u64 = 1 << 24;
/// Most bytes of scratch operands the timing may allocate; a larger
/// product takes the default rule instead of doubling its memory.
const MAX_TUNE_BYTES: u64 = 256 << 20;
/// How much slower than the fastest candidate the default may be and still
/// be kept: another variant must win by more than 10%. (On lavapipe the
/// bench step's weight gradients time within 5–20% of each other from run
/// to run between `subgroup_window` and `subgroup`.)
pub(crate) const DEFAULT_MARGIN: f64 = 1.10;

/// What is tuned: one product's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GemmShape {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// Products in the batch (1: not batched).
    pub batch: usize,
    /// A is stored (K, M).
    pub trans_a: bool,
    /// B is stored (N, K).
    pub trans_b: bool,
    /// A's column sums are computed too ([`crate::ops::gemm_and_sum_a`]).
    pub sums: bool,
}

impl GemmShape {
    /// The cache key: M, N, K rounded up to powers of two (nearby shapes,
    /// e.g. a ragged last batch, share a choice), op(A)/op(B) as N or T.
    fn key(&self) -> String {
        let t = |b: bool| if b { 'T' } else { 'N' };
        format!(
            "gemm M{} N{} K{} {}{}{}",
            self.m.next_power_of_two(),
            self.n.next_power_of_two(),
            self.k.next_power_of_two(),
            t(self.trans_a),
            t(self.trans_b),
            if self.sums { " sums" } else { "" }
        )
    }

    fn work(&self) -> u64 {
        (self.m as u64).saturating_mul(self.n as u64).saturating_mul(self.k as u64)
    }

    /// Bytes of A, B and C (and the sums) at this shape.
    fn bytes(&self) -> u64 {
        let (m, n, k) = (self.m as u64, self.n as u64, self.k as u64);
        4 * (m * k + k * n + m * n + if self.sums { m } else { 0 })
    }
}

/// The variants the tuner compares on `device`: those it can run with the
/// default's bits, the default first.
fn candidates(device: &Device) -> Vec<GemmVariant> {
    let default = GemmVariant::for_device(device);
    let mut out = vec![default];
    out.extend(GemmVariant::ALL.into_iter().filter(|&v| v != default && v.same_bits(default) && v.runs_on(device)));
    out
}

/// The variant that runs a product of `shape` on `device`.
pub(crate) fn gemm_variant(device: &Device, shape: GemmShape) -> Result<GemmVariant> {
    let choices = &device.rt.kernels;
    if let Some(forced) = choices.forced_gemm() {
        return Ok(forced);
    }
    let default = GemmVariant::for_device(device);
    if choices.tuning_off || shape.batch != 1 || shape.work() < GEMM_TUNE_MIN_WORK || shape.bytes() > MAX_TUNE_BYTES {
        return Ok(default);
    }
    // Every big product of every step comes here: the adapter's key is
    // built only to load or save the cache, the candidates only to time.
    let mut tuned = lock(&choices.gemm);
    let map = tuned.get_or_insert_with(|| read_cache(&adapter_key(device)));
    let key = shape.key();
    let cached = map.get(&key).and_then(|name| GemmVariant::parse(name).ok());
    if let Some(variant) = cached.filter(|v| v.same_bits(default) && v.runs_on(device)) {
        return Ok(variant);
    }
    if candidates(device).len() < 2 {
        return Ok(default);
    }
    let best = pick(&time_variants(device, shape)?, default);
    map.insert(key, best.to_string());
    write_cache(&adapter_key(device), map);
    Ok(best)
}

/// The fastest of `timings` (fastest first), unless `default` is within
/// [`DEFAULT_MARGIN`] of it: the default rule comes from many measurements,
/// one timing from a few runs on a machine that may be busy.
fn pick(timings: &[(GemmVariant, Duration)], default: GemmVariant) -> GemmVariant {
    let Some(&(fastest, best)) = timings.first() else { return default };
    match timings.iter().find(|(v, _)| *v == default) {
        Some((_, d)) if d.as_secs_f64() <= best.as_secs_f64() * DEFAULT_MARGIN => default,
        _ => fastest,
    }
}

/// Times every GEMM variant the tuner compares on `device` for a product
/// op(A)·op(B) of (M, K)·(K, N) with these transposes, fused column sums of
/// A or not (best of 5 interleaved rounds after one that builds the pipelines), fastest
/// first: what the tuner compares.
pub fn time_gemm_variants(
    device: &Device,
    [m, n, k]: [usize; 3],
    trans_a: bool,
    trans_b: bool,
    sums: bool,
) -> Result<Vec<(GemmVariant, Duration)>> {
    time_variants(device, GemmShape { m, n, k, batch: 1, trans_a, trans_b, sums })
}

/// Runs of every candidate on random operands of `shape`, fastest first.
fn time_variants(device: &Device, shape: GemmShape) -> Result<Vec<(GemmVariant, Duration)>> {
    let GemmShape { m, n, k, trans_a, trans_b, sums, .. } = shape;
    let rng = |len: usize, seed: u64| crate::rng::Rng::new(seed).uniform_vec(len, -1.0, 1.0);
    let a = Tensor::from_slice(device, &rng(m * k, 1), &if trans_a { [k, m] } else { [m, k] })?;
    let b = Tensor::from_slice(device, &rng(k * n, 2), &if trans_b { [n, k] } else { [k, n] })?;
    let c = Tensor::zeros(device, &[m, n])?;
    let col_sums = Tensor::zeros(device, &[m])?;
    let opts = GemmOptions { trans_a, trans_b, ..GemmOptions::default() };
    let variants = candidates(device);
    let times = best_times(device, variants.len(), |i| {
        if sums {
            gemm_and_sum_a_with_variant(&a, &b, &c, opts, &col_sums, variants[i])
        } else {
            gemm_with_variant(&a, &b, None, &c, opts, variants[i])
        }
    })?;
    let mut timings: Vec<(GemmVariant, Duration)> = variants.into_iter().zip(times).collect();
    timings.sort_by_key(|(_, d)| *d);
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_keys_round_and_name_the_transposes() {
        let s = GemmShape { m: 2500, n: 512, k: 100, batch: 1, trans_a: true, trans_b: false, sums: true };
        assert_eq!(s.key(), "gemm M4096 N512 K128 TN sums");
        let s = GemmShape { sums: false, trans_a: false, trans_b: true, ..s };
        assert_eq!(s.key(), "gemm M4096 N512 K128 NT");
    }

    #[test]
    fn the_default_wins_unless_another_is_clearly_faster() {
        let ms = Duration::from_millis;
        let (window, plain) = (GemmVariant::SubgroupWindow, GemmVariant::Subgroup);
        assert_eq!(pick(&[(plain, ms(100)), (window, ms(109))], window), window);
        assert_eq!(pick(&[(plain, ms(100)), (window, ms(111))], window), plain);
        assert_eq!(pick(&[(window, ms(100)), (plain, ms(150))], window), window);
        assert_eq!(pick(&[], window), window);
    }
}
