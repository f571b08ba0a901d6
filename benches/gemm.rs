//! GEMM throughput at the shapes a training step runs:
//! `cargo bench --bench gemm`.
//!
//! What it measures: the products of one recurrent layer direction that go
//! through the GEMM kernel (`src/rnn/gpu.rs`), with the operands laid out
//! and transposed as the layer lays them out:
//!
//! | id      | product                                   | M × K × N  |
//! |---------|-------------------------------------------|------------|
//! | `proj`  | input projection X(N, I)·W_ihᵀ + b_ih     | N × I × G  |
//! | `dW_ih` | weight gradient dGᵀ(G, N)·X(N, I), β = 1  | G × N × I  |
//! | `dW_hh` | weight gradient dGᵀ(G, N)·H_prev(N, H), β = 1 | G × N × H |
//! | `dX`    | input gradient dG(N, G)·W_ih(G, I)        | N × G × I  |
//!
//! The weight gradients accumulate (β = 1), as the tape's backward does
//! into each parameter's gradient.
//!
//! Grid: H ∈ {32, 64, 128, 256, 512} with LSTM gates (G = 4H, the largest
//! cell; GRU has 3H, the plain RNN H), N = B·T packed rows with B = 64,
//! T = 40 (every row full length, N = 2560), I = E = 128 (the embedding
//! width of the reference model, so the first layer's input). Each shape runs
//! the kernel wgrnn picks for the adapter (`GemmVariant::for_device`);
//! `square/512` runs every kernel variant, to compare them. With
//! `WGRNN_BENCH_FULL=1` every variant runs on every shape.
//!
//! Throughput: criterion's `Throughput::Elements` counts multiply-adds
//! (M·K·N per product), so its "elem/s" are multiply-adds per second and
//! GFLOP/s = 2 × Gelem/s. A table of GFLOP/s is printed at the end, from the
//! best per-product time of criterion's timed batches, for the benches the
//! filter let run.
//!
//! Every timed batch of iterations ends with `Device::synchronize`, so the
//! time is the GPU's, not the recording's.
//!
//! Run:
//! - everything (about a minute and a half on lavapipe, 2 cores):
//!   `cargo bench --bench gemm`
//! - one size or one product (criterion's regex filter on the id
//!   `gemm/<product>/<kernel>/H<h>`):
//!   `cargo bench --bench gemm -- 'H128'`, `cargo bench --bench gemm -- 'dW_'`
//! - every kernel on every shape: `WGRNN_BENCH_FULL=1 cargo bench --bench gemm`
//! - shorter runs: `cargo bench --bench gemm -- --warm-up-time 0.2 --measurement-time 0.5`

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::ops::{gemm_with_variant, GemmOptions, GemmVariant};
use wgrnn::{Device, Tensor};

/// Hidden sizes of the grid.
const HIDDEN: [usize; 5] = [32, 64, 128, 256, 512];
/// Batch rows and steps: N = B·T packed rows.
const B: usize = 64;
const T: usize = 40;
/// Input features of the layer (the embedding width E).
const I: usize = 128;

/// One product: C (M, N) = op(A)·op(B) (+ bias), with A stored (K, M) when
/// `trans_a` and B stored (N, K) when `trans_b`.
struct Shape {
    /// Criterion id: `<product>` and the size label.
    product: &'static str,
    size: String,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    /// Adds a bias row (N) to C, as the input projection does.
    bias: bool,
    /// Scale of the old C (1 = accumulate).
    beta: f32,
}

impl Shape {
    fn macs(&self) -> u64 {
        (self.m * self.k * self.n) as u64
    }
}

/// The shapes one layer direction with `h` hidden units runs, N = B·T rows.
fn layer_shapes(h: usize) -> [Shape; 4] {
    let (n, g) = (B * T, 4 * h);
    let size = format!("H{h}");
    let shape = |product, m, k, nn, trans_a, trans_b, bias, beta| Shape {
        product,
        size: size.clone(),
        m,
        k,
        n: nn,
        trans_a,
        trans_b,
        bias,
        beta,
    };
    [
        shape("proj", n, I, g, false, true, true, 0.0),
        shape("dW_ih", g, n, I, true, false, false, 1.0),
        shape("dW_hh", g, n, h, true, false, false, 1.0),
        shape("dX", n, g, I, false, false, false, 0.0),
    ]
}

/// The operands of one product.
struct Case {
    /// A (M, K), or (K, M) when transposed.
    a: Tensor,
    /// B (K, N), or (N, K) when transposed.
    b: Tensor,
    /// (N) when the product adds a bias.
    bias: Option<Tensor>,
    /// C (M, N)
    c: Tensor,
    opts: GemmOptions,
}

fn case(dev: &Device, s: &Shape) -> Case {
    let fill = |len: usize| (0..len).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect::<Vec<_>>();
    let a_shape = if s.trans_a { [s.k, s.m] } else { [s.m, s.k] };
    let b_shape = if s.trans_b { [s.n, s.k] } else { [s.k, s.n] };
    Case {
        a: Tensor::from_slice(dev, &fill(s.m * s.k), &a_shape).expect("upload A"),
        b: Tensor::from_slice(dev, &fill(s.k * s.n), &b_shape).expect("upload B"),
        bias: s.bias.then(|| Tensor::from_slice(dev, &fill(s.n), &[s.n]).expect("upload bias")),
        c: Tensor::zeros(dev, &[s.m, s.n]).expect("alloc C"),
        opts: GemmOptions { trans_a: s.trans_a, trans_b: s.trans_b, beta: s.beta, ..GemmOptions::default() },
    }
}

/// Runs `iters` GEMMs and waits for the GPU; returns the wall time.
fn run(dev: &Device, c: &Case, variant: GemmVariant, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        gemm_with_variant(&c.a, &c.b, c.bias.as_ref(), &c.c, c.opts, variant).expect("gemm");
    }
    dev.synchronize().expect("synchronize");
    start.elapsed()
}

/// The adapter's kernel first, then the others.
fn variants(dev: &Device) -> Vec<GemmVariant> {
    let default = GemmVariant::for_device(dev);
    let mut v = vec![default];
    v.extend([GemmVariant::Vec4, GemmVariant::Shared, GemmVariant::Register].into_iter().filter(|x| *x != default));
    v
}

fn full_grid() -> bool {
    std::env::var("WGRNN_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Best time per product seen in criterion's timed batches, by bench id.
struct Best {
    id: String,
    macs: u64,
    best: Duration,
}

fn bench_gemm(crit: &mut Criterion) {
    let dev = Device::new().expect("the GEMM bench needs an adapter");
    println!("adapter: {}", dev.info());
    let full = full_grid();
    let default = GemmVariant::for_device(&dev);
    let best: RefCell<Vec<Best>> = RefCell::new(Vec::new());

    let square = Shape {
        product: "square",
        size: "512".into(),
        m: 512,
        k: 512,
        n: 512,
        trans_a: false,
        trans_b: false,
        bias: false,
        beta: 0.0,
    };
    let mut shapes: Vec<Shape> = HIDDEN.iter().flat_map(|&h| layer_shapes(h)).collect();
    shapes.push(square);

    let mut group = crit.benchmark_group("gemm");
    for s in &shapes {
        // Operands are made when a bench of this shape first runs, so a
        // filter skips their allocation too.
        let operands: std::cell::OnceCell<Case> = std::cell::OnceCell::new();
        group.throughput(Throughput::Elements(s.macs()));
        let vs = if full || s.product == "square" { variants(&dev) } else { vec![default] };
        for v in vs {
            let id = BenchmarkId::new(format!("{}/{v:?}", s.product), &s.size);
            let label = format!("{}/{v:?}/{}", s.product, s.size);
            let mut compiled = false;
            group.bench_function(id, |bch| {
                let c = operands.get_or_init(|| case(&dev, s));
                if !compiled {
                    run(&dev, c, v, 1); // builds the pipeline outside the timing
                    compiled = true;
                }
                bch.iter_custom(|iters| {
                    let elapsed = run(&dev, c, v, iters);
                    record(&best, &label, s.macs(), elapsed.div_f64(iters.max(1) as f64));
                    elapsed
                })
            });
        }
    }
    group.finish();

    let best = best.into_inner();
    if !best.is_empty() {
        println!(
            "\nGFLOP/s on {} (B={B}, T={T}, N={}, I={I}, G=4H; best timed batch, per product):",
            dev.info().name,
            B * T
        );
        println!("| product/kernel/size | M×K×N | ms | GFLOP/s |\n|---|---|---|---|");
        for b in &best {
            let gflops = 2.0 * b.macs as f64 / b.best.as_secs_f64() / 1e9;
            println!("| {} | {:.1} M | {:.3} | {gflops:.1} |", b.id, b.macs as f64 / 1e6, b.best.as_secs_f64() * 1e3);
        }
    }
}

/// Keeps the shortest per-product time seen for `id`.
fn record(best: &RefCell<Vec<Best>>, id: &str, macs: u64, per_iter: Duration) {
    let mut best = best.borrow_mut();
    match best.iter_mut().find(|b| b.id == id) {
        Some(b) => b.best = b.best.min(per_iter),
        None => best.push(Best { id: id.to_string(), macs, best: per_iter }),
    }
}

criterion_group! {
    name = benches;
    // Defaults the command line can override (--sample-size,
    // --warm-up-time, --measurement-time).
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_gemm
}
criterion_main!(benches);
