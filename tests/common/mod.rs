//! Helpers shared by the GPU test binaries: one device per test binary,
//! deterministic random data, and a closeness check that reports where and
//! by how much the GPU differs from the CPU reference.

#![allow(dead_code)]

use std::sync::OnceLock;

use wgrnn::Device;

/// The device every test in a binary shares (device creation costs ~100 ms
/// on lavapipe; tests run on parallel threads and the runtime is `Sync`).
pub fn device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| {
        let dev = Device::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        eprintln!("running on {}", dev.info());
        dev
    })
}

/// Deterministic values in [-1, 1) from the crate's seeded generator.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    wgrnn::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0)
}

/// Asserts `|got[i] - want[i]| <= tol * scale[i]` for every i; on failure
/// reports the first differing elements and the largest difference.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], scale: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    let mut bad = Vec::new();
    let mut worst = (0usize, 0.0f32);
    for i in 0..got.len() {
        let diff = (got[i] - want[i]).abs();
        let allowed = tol * scale[i].max(f32::MIN_POSITIVE);
        if diff > worst.1 {
            worst = (i, diff);
        }
        // NaN must count as a mismatch, so test for "not within".
        if diff.is_nan() || diff > allowed {
            bad.push(i);
        }
    }
    if !bad.is_empty() {
        let first: Vec<String> = bad
            .iter()
            .take(5)
            .map(|&i| format!("[{i}] got {} want {} (allowed ±{})", got[i], want[i], tol * scale[i]))
            .collect();
        panic!(
            "{what}: {} of {} elements differ; first: {}; max |diff| {} at [{}]",
            bad.len(),
            got.len(),
            first.join(", "),
            worst.1,
            worst.0
        );
    }
}

/// Shapes the issue asks every kernel to be tested on (1, 3, 17, 63, 64, 65,
/// 129, 257 and one ≥ 1024).
pub const AWKWARD: [usize; 9] = [1, 3, 17, 63, 64, 65, 129, 257, 1031];
