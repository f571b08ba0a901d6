//! Multiplies two random matrices on the GPU, checks the product against the
//! CPU reference and prints what it ran on and how fast.
//!
//! `cargo run --release --example matmul -- [M K N]` (default 512 512 512).

use std::process::ExitCode;
use std::time::Instant;

use wgrnn::ops::{gemm, GemmOptions, GemmVariant};
use wgrnn::{reference, Device, Tensor};

/// Deterministic values in [-1, 1), so runs compare.
fn random(n: usize, seed: u64) -> Vec<f32> {
    wgrnn::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0)
}

fn run() -> wgrnn::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (m, k, n) = match args[..] {
        [m, k, n] => (m, k, n),
        _ => (512, 512, 512),
    };
    let dev = Device::new()?;
    println!("adapter: {}", dev.info());
    let (a, b) = (random(m * k, 1), random(k * n, 2));
    let ta = Tensor::from_slice(&dev, &a, &[m, k])?;
    let tb = Tensor::from_slice(&dev, &b, &[k, n])?;
    let tc = Tensor::zeros(&dev, &[m, n])?;
    gemm(&ta, &tb, None, &tc, GemmOptions::default())?;
    let gpu = tc.to_vec()?;

    let mut cpu = vec![0.0; m * n];
    reference::gemm(&a, [m, k], &b, [k, n], None, &mut cpu, GemmOptions::default());
    let max_err = gpu.iter().zip(&cpu).map(|(g, c)| (g - c).abs()).fold(0.0f32, f32::max);

    let reps = 10;
    let start = Instant::now();
    for _ in 0..reps {
        gemm(&ta, &tb, None, &tc, GemmOptions::default())?;
    }
    dev.synchronize()?;
    let secs = start.elapsed().as_secs_f64() / f64::from(reps);
    let gflops = 2.0 * (m * k * n) as f64 / secs / 1e9;
    println!(
        "gemm {m}x{k} · {k}x{n} ({:?} kernel): max |gpu - cpu| = {max_err:.3e}, {:.2} ms, {gflops:.1} GFLOP/s",
        GemmVariant::for_device(&dev),
        secs * 1e3
    );
    // f32 dot products of length K drift from the f64 reference by about
    // sqrt(K)·eps·|a||b|; 1e-4·sqrt(K) leaves a wide margin for inputs in [-1, 1).
    let tol = 1e-4 * (k as f32).sqrt();
    if max_err > tol {
        return Err(wgrnn::Error::Gpu(format!("GPU result differs from the CPU reference by {max_err} (> {tol})")));
    }
    println!("ok: GPU matches the CPU reference within {tol:.1e}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
