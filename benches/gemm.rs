//! GEMM throughput: `cargo bench --bench gemm`.
//!
//! Criterion reports throughput in "elem/s" where one element is one
//! floating-point operation (2·M·K·N per GEMM), i.e. Gelem/s = GFLOP/s.
//! A plain table of GFLOP/s (best of 5 runs) is printed at the end for the
//! README. Shapes: squares, and the tall-skinny products an RNN runs:
//! the input projection X(T·B, I)·W_ihᵀ, the weight gradient dGᵀ·X over all
//! steps, and one recurrent step h(B, H)·W_hhᵀ.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::ops::{gemm_with_variant, GemmOptions, GemmVariant};
use wgrnn::{Device, Tensor};

/// (label, M, K, N, trans_a, trans_b)
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("square 256", 256, 256, 256, false, false),
    ("square 512", 512, 512, 512, false, false),
    ("square 1024", 1024, 1024, 1024, false, false),
    ("input projection (T·B=2560, I=128)·W_ihᵀ(128, 4H=512)", 2560, 128, 512, false, true),
    ("weight gradient dGᵀ(512, 2560)·X(2560, 128)", 512, 2560, 128, true, false),
    ("recurrent step h(B=64, H=128)·W_hhᵀ(128, 512)", 64, 128, 512, false, true),
];

struct Case {
    a: Tensor,
    b: Tensor,
    c: Tensor,
    opts: GemmOptions,
    flops: u64,
}

fn case(dev: &Device, m: usize, k: usize, n: usize, trans_a: bool, trans_b: bool) -> Case {
    let fill = |len: usize| (0..len).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect::<Vec<_>>();
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    Case {
        a: Tensor::from_slice(dev, &fill(m * k), &a_shape).expect("upload A"),
        b: Tensor::from_slice(dev, &fill(k * n), &b_shape).expect("upload B"),
        c: Tensor::zeros(dev, &[m, n]).expect("alloc C"),
        opts: GemmOptions { trans_a, trans_b, ..GemmOptions::default() },
        flops: 2 * (m * k * n) as u64,
    }
}

/// Runs `iters` GEMMs and waits for the GPU; returns the wall time.
fn run(dev: &Device, c: &Case, variant: GemmVariant, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        gemm_with_variant(&c.a, &c.b, None, &c.c, c.opts, variant).expect("gemm");
    }
    dev.synchronize().expect("synchronize");
    start.elapsed()
}

fn variants(dev: &Device) -> Vec<GemmVariant> {
    let default = GemmVariant::for_device(dev);
    let mut v = vec![default];
    v.extend([GemmVariant::Vec4, GemmVariant::Shared, GemmVariant::Register].into_iter().filter(|x| *x != default));
    v
}

fn bench_gemm(crit: &mut Criterion) {
    let dev = Device::new().expect("the GEMM bench needs an adapter");
    println!("adapter: {}", dev.info());
    let default = GemmVariant::for_device(&dev);
    let mut group = crit.benchmark_group("gemm");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for &(label, m, k, n, ta, tb) in SHAPES {
        let c = case(&dev, m, k, n, ta, tb);
        group.throughput(Throughput::Elements(c.flops));
        // The default kernel on every shape; the others on 512³ only, to compare.
        let vs = if m == 512 && k == 512 { variants(&dev) } else { vec![default] };
        for v in vs {
            run(&dev, &c, v, 1); // compile the pipeline outside the timing
            group.bench_with_input(BenchmarkId::new(format!("{v:?}"), label), &c, |bch, c| {
                bch.iter_custom(|iters| run(&dev, c, v, iters))
            });
        }
    }
    group.finish();

    println!("\nGFLOP/s (best of 5 runs of 5 GEMMs) on {}:", dev.info().name);
    println!("| shape | kernel | ms | GFLOP/s |\n|---|---|---|---|");
    for &(label, m, k, n, ta, tb) in SHAPES {
        let c = case(&dev, m, k, n, ta, tb);
        let vs = if m == 512 && k == 512 { variants(&dev) } else { vec![default] };
        for v in vs {
            run(&dev, &c, v, 1);
            let best = (0..5).map(|_| run(&dev, &c, v, 5) / 5).min().expect("five runs");
            let gflops = c.flops as f64 / best.as_secs_f64() / 1e9;
            println!("| {label} | {v:?} | {:.2} | {gflops:.1} |", best.as_secs_f64() * 1e3);
        }
    }
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
