//! The non-recurrent parts of the bench step: `cargo bench --bench train_parts`.
//!
//! At the bench example's reference sizes (V = 20000, E = 128, H = 128,
//! B = 64, T = 40, 4 classes):
//! - the embedding lookup, and lookup + gradient on the tape (2560 ids);
//! - one Adam step over the whole model's parameters (2.69 M values), with
//!   and without the non-finite guard (one extra pass over every gradient),
//!   and with gradient clipping.
//!
//! Each timed batch of iterations ends with the device idle.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::autograd::Tape;
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{named_parameters, EmbeddingConfig, LinearConfig};
use wgrnn::optim::Optimizer;
use wgrnn::rng::Rng;
use wgrnn::Device;

const V: usize = 20000;
const E: usize = 128;
const TOKENS: usize = 64 * 40;

/// Times `step` over criterion's iteration count, waiting for the GPU at the end.
fn timed(dev: &Device, iters: u64, mut step: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        step();
    }
    dev.synchronize().expect("sync");
    start.elapsed()
}

fn bench_embedding(crit: &mut Criterion, dev: &Device) {
    let mut group = crit.benchmark_group("embedding V=20000 E=128, 2560 ids");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(TOKENS as u64));
    let emb = EmbeddingConfig::new(V, E).init(dev).expect("embedding");
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..TOKENS).map(|_| (rng.next_u64() % V as u64) as u32).collect();
    group.bench_function(BenchmarkId::from_parameter("forward"), |b| {
        b.iter_custom(|iters| {
            timed(dev, iters, || {
                let mut tape = Tape::eval(dev);
                tape.embedding(&emb, &ids).expect("lookup");
            })
        })
    });
    // A scalar to differentiate: a 4-way linear head and cross-entropy per
    // token (about 3% of the embedding's own work).
    let head = LinearConfig::new(E, 4).init(dev).expect("head");
    let labels: Vec<u32> = (0..TOKENS).map(|i| (i % 4) as u32).collect();
    group.bench_function(BenchmarkId::from_parameter("forward+backward (with a linear head)"), |b| {
        b.iter_custom(|iters| {
            timed(dev, iters, || {
                let mut tape = Tape::train(dev, 0);
                let out = tape.embedding(&emb, &ids).expect("lookup");
                let logits = tape.linear(&head, out).expect("head");
                let loss = tape.cross_entropy(logits, &labels, None, 0.0).expect("loss");
                tape.backward(loss.loss).expect("backward");
            })
        })
    });
    group.finish();
}

fn bench_optimizer(crit: &mut Criterion, dev: &Device) {
    let mut group = crit.benchmark_group("adam over the bench model (2.69 M parameters)");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    let model = SequenceClassifierConfig::new(V, E, 128, 4).init(dev).expect("model");
    let params = named_parameters(&model);
    let count: usize = params.iter().map(|(_, p)| p.value.numel()).sum();
    group.throughput(Throughput::Elements(count as u64));
    for (label, guard, clip) in
        [("step", false, false), ("step with the non-finite guard", true, false), ("clip + step", false, true)]
    {
        let mut opt = Optimizer::adam(params.clone(), 1e-3).expect("adam").with_non_finite_guard(guard).expect("guard");
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                timed(dev, iters, || {
                    if clip {
                        opt.clip_grad_norm(1.0).expect("clip");
                    }
                    opt.step().expect("step");
                })
            })
        });
    }
    group.finish();
}

fn benches(crit: &mut Criterion) {
    let dev = Device::new().expect("the bench needs an adapter");
    println!("adapter: {}", dev.info());
    bench_embedding(crit, &dev);
    bench_optimizer(crit, &dev);
}

criterion_group!(parts, benches);
criterion_main!(parts);
