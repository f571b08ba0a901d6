//! The non-recurrent parts of a training step: the embedding and the
//! optimizer. `cargo bench --bench train_parts`.
//!
//! Embedding, V = 20000, E = 128, B·T random ids for B ∈ {16, 64},
//! T ∈ {40, 100} (id `embedding/B<b>_T<t>/<bench>`):
//! - `forward`: the lookup (a row gather) on an evaluation tape;
//! - `forward_train`: the lookup on a training tape, which also buckets the
//!   ids by value on the host and uploads the buckets for backward;
//! - `backward`: `Tape::backward` from a stand-in scalar loss on the
//!   looked-up rows (`Tape::activation_penalty`, mean of squares): the
//!   loss's backward (one elementwise pass over the (B·T, E) rows) and the
//!   embedding gradient (the deterministic bucketed sum into the (V, E)
//!   weight gradient). The tape is built and its forward run outside the
//!   timing; each timed backward starts and ends with the device idle;
//! - `loss_backward`: the stand-in loss's backward alone, on a tape input
//!   instead of an embedding, so `backward` − `loss_backward` is the
//!   embedding gradient.
//!
//! Optimizer, over the bench example's model (embedding 20000→128, LSTM
//! 128→128, linear 128→4: 2.69 M parameters; id `optimizer/<bench>`):
//! `adam`, `adamw`, `rmsprop`, `sgd_momentum` (momentum 0.9) steps;
//! `adam_guard` (with the non-finite guard: one more pass over every
//! gradient), `adam_clip` (`clip_grad_norm(1.0)` then the step) and
//! `zero_grad`. Only the public optimizer API is used.
//!
//! Every timed batch of iterations ends with `Device::synchronize`, so the
//! time is the GPU's, not the recording's. Throughput: ids per second for
//! the embedding, parameters per second for the optimizer.
//!
//! Run:
//! - everything (about two minutes on lavapipe, 2 cores):
//!   `cargo bench --bench train_parts`
//! - a subset (criterion's regex filter): `cargo bench --bench train_parts -- 'embedding/B64_T40'`,
//!   `cargo bench --bench train_parts -- 'optimizer/adam'`
//! - shorter runs: `cargo bench --bench train_parts -- --warm-up-time 0.2 --measurement-time 0.5`

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::autograd::Tape;
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{named_parameters, Embedding, EmbeddingConfig};
use wgrnn::optim::{Algorithm, Optimizer};
use wgrnn::rng::Rng;
use wgrnn::{Device, Tensor};

const V: usize = 20000;
const E: usize = 128;
/// Hidden size and classes of the optimizer's model.
const H: usize = 128;
const CLASSES: usize = 4;
const BATCHES: [usize; 2] = [16, 64];
const STEPS: [usize; 2] = [40, 100];

/// Times `step` over criterion's iteration count, waiting for the GPU at the end.
fn timed(dev: &Device, iters: u64, mut step: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        step();
    }
    dev.synchronize().expect("sync");
    start.elapsed()
}

/// Times only the backward of `iters` tapes that `build` records (each
/// built, its forward run, and the device idle before its backward starts).
fn timed_backward(dev: &Device, iters: u64, mut build: impl FnMut() -> (Tape, wgrnn::autograd::Var)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (mut tape, loss) = build();
        dev.synchronize().expect("sync");
        let start = Instant::now();
        tape.backward(loss).expect("backward");
        dev.synchronize().expect("sync");
        total += start.elapsed();
    }
    total
}

fn bench_embedding(crit: &mut Criterion, dev: &Device) {
    let emb: OnceCell<Embedding> = OnceCell::new();
    let emb = || emb.get_or_init(|| EmbeddingConfig::new(V, E).init(dev).expect("embedding"));
    for b in BATCHES {
        for t in STEPS {
            let tokens = b * t;
            let mut group = crit.benchmark_group(format!("embedding/B{b}_T{t}"));
            group.throughput(Throughput::Elements(tokens as u64));
            let mut rng = Rng::new(1);
            let ids: Vec<u32> = (0..tokens).map(|_| (rng.next_u64() % V as u64) as u32).collect();
            group.bench_function(BenchmarkId::from_parameter("forward"), |bch| {
                let emb = emb();
                bch.iter_custom(|iters| {
                    timed(dev, iters, || {
                        let mut tape = Tape::eval(dev);
                        tape.embedding(emb, &ids).expect("lookup");
                    })
                })
            });
            group.bench_function(BenchmarkId::from_parameter("forward_train"), |bch| {
                let emb = emb();
                bch.iter_custom(|iters| {
                    timed(dev, iters, || {
                        let mut tape = Tape::train(dev, 0);
                        tape.embedding(emb, &ids).expect("lookup");
                    })
                })
            });
            group.bench_function(BenchmarkId::from_parameter("backward"), |bch| {
                let emb = emb();
                bch.iter_custom(|iters| {
                    timed_backward(dev, iters, || {
                        let mut tape = Tape::train(dev, 0);
                        let rows = tape.embedding(emb, &ids).expect("lookup");
                        let loss = tape.activation_penalty(rows, 1.0).expect("loss");
                        (tape, loss)
                    })
                })
            });
            let rows: OnceCell<Tensor> = OnceCell::new();
            group.bench_function(BenchmarkId::from_parameter("loss_backward"), |bch| {
                let rows = rows.get_or_init(|| {
                    let values = Rng::new(2).uniform_vec(tokens * E, -0.1, 0.1);
                    Tensor::from_slice(dev, &values, &[tokens, E]).expect("rows")
                });
                bch.iter_custom(|iters| {
                    timed_backward(dev, iters, || {
                        let mut tape = Tape::train(dev, 0);
                        let x = tape.input(rows.clone());
                        let loss = tape.activation_penalty(x, 1.0).expect("loss");
                        (tape, loss)
                    })
                })
            });
            group.finish();
        }
    }
}

fn bench_optimizer(crit: &mut Criterion, dev: &Device) {
    let model = SequenceClassifierConfig::new(V, E, H, CLASSES).init(dev).expect("model");
    let count: usize = named_parameters(&model).iter().map(|(_, p)| p.value.numel()).sum();
    let mut group = crit.benchmark_group("optimizer");
    group.throughput(Throughput::Elements(count as u64));
    let sgd_momentum = Algorithm::Sgd { momentum: 0.9, dampening: 0.0, nesterov: false, weight_decay: 0.0 };
    let make = |name: &str| -> Optimizer {
        let params = named_parameters(&model);
        match name {
            "adam" | "adam_clip" | "zero_grad" => Optimizer::adam(params, 1e-3),
            "adam_guard" => Optimizer::adam(params, 1e-3).and_then(|o| o.with_non_finite_guard(true)),
            "adamw" => Optimizer::adamw(params, 1e-3),
            "rmsprop" => Optimizer::rmsprop(params, 1e-3),
            "sgd_momentum" => Optimizer::sgd(params, 1e-3).and_then(|o| o.with_algorithm(sgd_momentum)),
            other => unreachable!("no optimizer bench {other}"),
        }
        .expect("optimizer")
    };
    for name in ["adam", "adam_guard", "adam_clip", "adamw", "rmsprop", "sgd_momentum", "zero_grad"] {
        let mut opt: Option<Optimizer> = None;
        group.bench_function(BenchmarkId::from_parameter(name), |bch| {
            let opt = opt.get_or_insert_with(|| {
                let mut opt = make(name);
                // The first step allocates the state; keep it out of the timing.
                opt.step().expect("step");
                opt
            });
            bch.iter_custom(|iters| {
                timed(dev, iters, || match name {
                    "zero_grad" => opt.zero_grad().expect("zero_grad"),
                    "adam_clip" => {
                        opt.clip_grad_norm(1.0).expect("clip");
                        opt.step().expect("step");
                    }
                    _ => opt.step().expect("step"),
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

criterion_group! {
    name = parts;
    // Defaults the command line can override (--sample-size,
    // --warm-up-time, --measurement-time).
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(parts);
