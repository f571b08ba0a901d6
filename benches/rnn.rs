//! Recurrent stack throughput: `cargo bench --bench rnn`.
//!
//! One forward + backward of a recurrent stack over a packed batch (no
//! readback until the end of each timed batch of iterations), for each mode,
//! at a text-classification size: B=64, T=40, I=128, H=128.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::rnn::{PackedBatch, RnnConfig, RnnMode};
use wgrnn::{Device, Tensor};

const B: usize = 64;
const T: usize = 40;
const I: usize = 128;
const H: usize = 128;

fn bench_rnn(crit: &mut Criterion) {
    let dev = Device::new().expect("the recurrent bench needs an adapter");
    println!("adapter: {}", dev.info());
    let mut group = crit.benchmark_group("rnn forward+backward B=64 T=40 I=128 H=128");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    // Mixed lengths, as real text batches have.
    let lengths: Vec<usize> = (0..B).map(|b| T - (b * 7) % (T / 2)).collect();
    let batch = PackedBatch::new(&dev, &lengths, T).expect("batch");
    let n = batch.total();
    group.throughput(Throughput::Elements(n as u64));
    for mode in [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh] {
        let rnn = RnnConfig::new(mode, I, H).init(&dev).expect("init");
        let x = Tensor::full(&dev, &[n, I], 0.1).expect("x");
        let d_out = Tensor::full(&dev, &[n, H], 0.01).expect("grad");
        let step = || {
            let fwd = rnn.forward_packed(&x, &batch, None, None, None).expect("forward");
            rnn.backward_packed(&fwd, &d_out, None, None).expect("backward");
        };
        step();
        dev.synchronize().expect("sync");
        group.bench_function(BenchmarkId::from_parameter(mode.name()), |bch| {
            bch.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    step();
                }
                dev.synchronize().expect("sync");
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_rnn);
criterion_main!(benches);
