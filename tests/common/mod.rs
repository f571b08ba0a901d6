//! Helpers shared by the GPU test binaries: one device per test binary,
//! deterministic random data, and a closeness check that reports where and
//! by how much the GPU differs from the CPU reference.
//!
//! # Measuring the tolerances
//!
//! Every tolerance in these tests is a named constant whose doc comment
//! gives the worst error measured over the cases that use it; the bound is
//! kept at about 10× that worst, so a regression of an order of magnitude
//! fails. To measure, point `WGRNN_ERROR_REPORT` at a file:
//!
//! ```text
//! WGRNN_ERROR_REPORT=/tmp/tol_vk.tsv cargo test --release
//! WGRNN_BACKEND=gl WGRNN_ERROR_REPORT=/tmp/tol_gl.tsv cargo test --release
//! ```
//!
//! Every [`assert_close`] (and every [`report`]) then appends one line
//! `<test binary>: <what>\t<worst |got − want| / scale>\t<tol>` to that file
//! (opened in append mode and written with one `write_all` per line, so the
//! test threads' lines do not interleave). The worst ratio is the number to
//! compare with the tolerance; the largest over a constant's lines, on each
//! backend, is what its doc comment quotes. Unset, nothing is written.

#![allow(dead_code)]

use std::fmt::Display;
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

/// Appends `<test binary>: <what>\t<worst>\t<tol>` to the file named by
/// `WGRNN_ERROR_REPORT`, if set (see the module documentation). `worst` is
/// the measured error in the units of `tol`.
pub fn report(what: &str, worst: f64, tol: f64) {
    use std::io::Write;
    let Some(path) = std::env::var_os("WGRNN_ERROR_REPORT") else { return };
    let what = what.replace(['\t', '\n'], " ");
    let line = format!("{}: {what}\t{worst:e}\t{tol:e}\n", env!("CARGO_CRATE_NAME"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("WGRNN_ERROR_REPORT={}: {e}", path.to_string_lossy()));
    file.write_all(line.as_bytes()).unwrap_or_else(|e| panic!("WGRNN_ERROR_REPORT: {e}"));
}

/// Asserts `|got[i] - want[i]| <= tol * scale[i]` for every i (in f64, for
/// f32 or f64 values); on failure reports the first differing elements and
/// the largest difference relative to its scale. The worst ratio goes to
/// [`report`] either way.
pub fn assert_close<T: Copy + Into<f64> + Display>(what: &str, got: &[T], want: &[T], scale: &[T], tol: T) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    assert_eq!(got.len(), scale.len(), "{what}: scale length differs");
    let tol64: f64 = tol.into();
    // A zero scale allows no difference at all (and avoids 0/0).
    let ratio = |i: usize| {
        let diff = (got[i].into() - want[i].into()).abs();
        let r = diff / scale[i].into().max(f64::from(f32::MIN_POSITIVE));
        // NaN must count as a mismatch.
        if r.is_nan() {
            f64::INFINITY
        } else {
            r
        }
    };
    let mut bad = Vec::new();
    let mut worst = (0usize, 0.0f64);
    for i in 0..got.len() {
        let r = ratio(i);
        if r > worst.1 {
            worst = (i, r);
        }
        if r > tol64 {
            bad.push(i);
        }
    }
    report(what, worst.1, tol64);
    if !bad.is_empty() {
        let first: Vec<String> = bad
            .iter()
            .take(5)
            .map(|&i| format!("[{i}] got {} want {} (allowed ±{:e})", got[i], want[i], tol64 * scale[i].into()))
            .collect();
        panic!(
            "{what}: {} of {} elements differ; first: {}; worst |diff|/scale {:e} at [{}] (tolerance {tol64:e})",
            bad.len(),
            got.len(),
            first.join(", "),
            worst.1,
            worst.0
        );
    }
}

/// [`assert_close`] for one value: `|got - want| <= tol * scale`.
pub fn assert_close_scalar<T: Copy + Into<f64> + Display>(what: &str, got: T, want: T, scale: T, tol: T) {
    assert_close(what, &[got], &[want], &[scale], tol);
}

/// Shapes the issue asks every kernel to be tested on (1, 3, 17, 63, 64, 65,
/// 129, 257 and one ≥ 1024).
pub const AWKWARD: [usize; 9] = [1, 3, 17, 63, 64, 65, 129, 257, 1031];

/// Nine update rules that cover every optimizer kernel variant (momentum,
/// dampening, Nesterov, L2 and decoupled decay, centred RMSprop, ε inside
/// the square root).
pub fn update_rules() -> Vec<(wgrnn::optim::Algorithm, &'static str)> {
    let rms = |alpha, eps, momentum, centered, weight_decay, eps_in_sqrt| wgrnn::optim::Algorithm::RmsProp {
        alpha,
        eps,
        momentum,
        centered,
        weight_decay,
        eps_in_sqrt,
    };
    vec![
        (wgrnn::optim::Algorithm::Sgd { momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }, "sgd"),
        (
            wgrnn::optim::Algorithm::Sgd { momentum: 0.9, dampening: 0.1, nesterov: false, weight_decay: 0.01 },
            "sgd momentum",
        ),
        (
            wgrnn::optim::Algorithm::Sgd { momentum: 0.9, dampening: 0.0, nesterov: true, weight_decay: 0.0 },
            "sgd nesterov",
        ),
        (
            wgrnn::optim::Algorithm::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false },
            "adam",
        ),
        (
            wgrnn::optim::Algorithm::Adam { beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1, decoupled: false },
            "adam l2",
        ),
        (
            wgrnn::optim::Algorithm::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true },
            "adamw",
        ),
        (rms(0.99, 1e-8, 0.0, false, 0.0, false), "rmsprop"),
        (rms(0.9, 1e-6, 0.5, true, 0.05, false), "rmsprop centered momentum"),
        (rms(0.9, 1e-7, 0.0, false, 0.0, true), "rmsprop keras"),
    ]
}
