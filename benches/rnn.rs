//! Recurrent layer forward and backward, per mode and recurrent kernel
//! variant: `cargo bench --bench rnn`.
//!
//! What it measures, for one layer, one direction, input I = E = 128, over
//! a packed batch of mixed lengths (row b has T − (7b mod T/2) steps, as real
//! text batches have; N = Σ lengths packed rows):
//! - `forward`: `Rnn::forward_packed` (input projection GEMM, state set-up,
//!   the recurrence), what a training step saves for backward included;
//! - `backward`: `Rnn::backward_packed` given a saved forward (recurrent
//!   backward, initial-state gradient, dW_ih, dW_hh, dX GEMMs, bias sums).
//!
//! Each runs with the recurrent kernels forced (`Device::set_recurrent_kernel`):
//! - `step`: one dispatch per time step (`RecurrentKernel::Step`);
//! - `sequence`: one dispatch per layer and direction for the whole
//!   sequence (`RecurrentKernel::parse("sequence")`, rows per workgroup
//!   chosen for the batch);
//! - `sequence_uniform`: one dispatch per layer and direction, lanes owning
//!   rows and W_hh read from uniform windows
//!   (`RecurrentKernel::SequenceUniform`: subgroups of 8, H ≤ 128).
//!
//! Where the adapter cannot run a sequence variant at a hidden size,
//! forcing it falls back to another; the bench detects that (by counting
//! dispatches) and skips the variant there.
//!
//! Comparing the two on an adapter shows which wins where (what the
//! autotuner, `wgrnn::rnn::tune`, decides per shape). A table of the best
//! timed batch per case, with dispatch counts, is printed at the end.
//! Throughput is in packed rows (tokens) per second.
//!
//! Grid, default (two to three minutes on lavapipe, 2 cores): LSTM and
//! GRU, H ∈ {32, 64, 128, 256}, B = 64, T = 40. With `WGRNN_BENCH_FULL=1`:
//! LSTM, GRU, RNN-tanh and RNN-ReLU, H ∈ {32, 64, 128, 256, 512},
//! B ∈ {16, 64}, T ∈ {40, 100} (80 cases, 320 benches: hours on lavapipe;
//! filter it). H = 512 is left out of the default because criterion takes
//! at least 11 runs of each bench: on lavapipe an LSTM layer's four H = 512
//! benches take two to three minutes (forward about 1 s with the step
//! kernels, backward several seconds with the sequence kernels).
//!
//! Every timed batch of iterations ends with `Device::synchronize`, so the
//! time is the GPU's, not the recording's. Sampling is flat, 10 samples.
//!
//! Run:
//! - default grid: `cargo bench --bench rnn`
//! - a subset (criterion's regex filter on the id
//!   `rnn/<mode>/H<h>_B<b>_T<t>/<pass>/<kernel>`):
//!   `cargo bench --bench rnn -- 'lstm/H128'`,
//!   `cargo bench --bench rnn -- 'backward/sequence'`
//! - full grid: `WGRNN_BENCH_FULL=1 cargo bench --bench rnn`, or a part of
//!   it: `WGRNN_BENCH_FULL=1 cargo bench --bench rnn -- 'H512_B64_T40'`,
//!   `WGRNN_BENCH_FULL=1 cargo bench --bench rnn -- 'rnn_relu/.*_B16_T100'`
//! - shorter runs: `cargo bench --bench rnn -- --warm-up-time 0.2 --measurement-time 0.5`

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use wgrnn::rng::Rng;
use wgrnn::rnn::{PackedBatch, PackedForward, RecurrentKernel, Rnn, RnnConfig, RnnMode};
use wgrnn::{Device, Tensor};

/// Input features (the embedding width E).
const I: usize = 128;
/// Hidden sizes of the full grid; the default stops at 256.
const HIDDEN: [usize; 5] = [32, 64, 128, 256, 512];
const DEFAULT_MAX_HIDDEN: usize = 256;

/// One point of the grid.
#[derive(Clone, Copy)]
struct Case {
    mode: RnnMode,
    h: usize,
    b: usize,
    t: usize,
}

impl Case {
    fn label(&self) -> String {
        format!("{}/H{}_B{}_T{}", self.mode.name(), self.h, self.b, self.t)
    }

    /// Row b has T − (7b mod T/2) steps: lengths from T/2 + 1 to T.
    fn lengths(&self) -> Vec<usize> {
        (0..self.b).map(|b| self.t - (b * 7) % (self.t / 2)).collect()
    }
}

fn full_grid() -> bool {
    std::env::var("WGRNN_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn grid() -> Vec<Case> {
    let full = full_grid();
    let modes: &[RnnMode] = if full { &RnnMode::ALL } else { &[RnnMode::Lstm, RnnMode::Gru] };
    let batches: &[usize] = if full { &[16, 64] } else { &[64] };
    let steps: &[usize] = if full { &[40, 100] } else { &[40] };
    let mut cases = Vec::new();
    for &mode in modes {
        for h in HIDDEN.into_iter().filter(|&h| full || h <= DEFAULT_MAX_HIDDEN) {
            for &b in batches {
                for &t in steps {
                    cases.push(Case { mode, h, b, t });
                }
            }
        }
    }
    cases
}

/// The tensors of one case, made when its first bench runs.
struct Data {
    layer: Rnn,
    batch: PackedBatch,
    /// (N, I) packed input.
    x: Tensor,
    /// (N, H) packed output gradient.
    d_out: Tensor,
}

impl Data {
    fn new(dev: &Device, case: &Case) -> Self {
        let layer = RnnConfig::new(case.mode, I, case.h).with_seed(1).init(dev).expect("init");
        let batch = PackedBatch::new(dev, &case.lengths(), case.t).expect("batch");
        let n = batch.total();
        let mut rng = Rng::new(2);
        let x = Tensor::from_slice(dev, &rng.uniform_vec(n * I, -1.0, 1.0), &[n, I]).expect("x");
        let d_out = Tensor::from_slice(dev, &rng.uniform_vec(n * case.h, -0.1, 0.1), &[n, case.h]).expect("d_out");
        Self { layer, batch, x, d_out }
    }

    fn forward(&self) -> PackedForward {
        self.layer.forward_packed(&self.x, &self.batch, None, None, None).expect("forward")
    }

    fn backward(&self, fwd: &PackedForward) {
        self.layer.backward_packed(fwd, &self.d_out, None, None).expect("backward");
    }
}

/// Whether forcing the sequence kernels runs them for `mode` with `h`
/// units on this adapter, rather than falling back to the step kernels:
/// one tiny forward each way, compared by dispatch count (the step
/// kernels take one per time step, the sequence kernels one in all).
fn sequence_runs(dev: &Device, mode: RnnMode, h: usize, sequence: RecurrentKernel) -> bool {
    const STEPS: usize = 8;
    let layer = RnnConfig::new(mode, 4, h).init(dev).expect("init");
    let batch = PackedBatch::new(dev, &[STEPS], STEPS).expect("batch");
    let x = Tensor::full(dev, &[STEPS, 4], 0.1).expect("x");
    let dispatches = |kernel| {
        dev.set_recurrent_kernel(Some(kernel));
        let before = dev.dispatch_count();
        layer.forward_packed(&x, &batch, None, None, None).expect("forward");
        dev.dispatch_count() - before
    };
    let step = dispatches(RecurrentKernel::Step);
    let seq = dispatches(sequence);
    dev.set_recurrent_kernel(None);
    dev.synchronize().expect("sync");
    seq < step
}

/// What the summary table shows for one bench.
struct Row {
    best: Duration,
    dispatches: u64,
}

/// Results by (case index in the grid, pass, kernel).
type Results = BTreeMap<(usize, &'static str, &'static str), Row>;

fn bench_rnn(crit: &mut Criterion) {
    let dev = Device::new().expect("the recurrent bench needs an adapter");
    println!("adapter: {}", dev.info());
    let sequence = RecurrentKernel::parse("sequence").expect("a known variant");
    let kernels = [
        ("step", RecurrentKernel::Step),
        ("sequence", sequence),
        ("sequence_uniform", RecurrentKernel::SequenceUniform),
    ];
    let cases = grid();
    let results: RefCell<Results> = RefCell::new(BTreeMap::new());
    let mut fits: BTreeMap<(&'static str, usize, &'static str), bool> = BTreeMap::new();

    for (index, case) in cases.iter().enumerate() {
        let mut group = crit.benchmark_group(format!("rnn/{}", case.label()));
        group.sampling_mode(SamplingMode::Flat);
        let n: usize = case.lengths().iter().sum();
        group.throughput(Throughput::Elements(n as u64));
        let data: OnceCell<Data> = OnceCell::new();
        for (name, kernel) in kernels {
            let runs = kernel == RecurrentKernel::Step
                || *fits
                    .entry((case.mode.name(), case.h, name))
                    .or_insert_with(|| sequence_runs(&dev, case.mode, case.h, kernel));
            if !runs {
                println!(
                    "rnn/{}: the {name} kernels cannot run H={} here (forcing them falls back to another); skipped",
                    case.label(),
                    case.h
                );
                continue;
            }
            let save = |pass: &'static str, best: Duration, dispatches: u64| {
                let mut results = results.borrow_mut();
                let row = results.entry((index, pass, name)).or_insert(Row { best, dispatches });
                row.best = row.best.min(best);
            };

            let mut fwd_dispatches = None;
            group.bench_function(BenchmarkId::new("forward", name), |bch| {
                let d = data.get_or_init(|| Data::new(&dev, case));
                dev.set_recurrent_kernel(Some(kernel));
                // An untimed run builds the pipelines and counts dispatches.
                let dispatches = *fwd_dispatches.get_or_insert_with(|| {
                    let before = dev.dispatch_count();
                    d.forward();
                    let count = dev.dispatch_count() - before;
                    dev.synchronize().expect("sync");
                    count
                });
                bch.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        d.forward();
                    }
                    dev.synchronize().expect("sync");
                    let elapsed = start.elapsed();
                    save("forward", elapsed.div_f64(iters.max(1) as f64), dispatches);
                    elapsed
                })
            });

            // The forward that backward differentiates, saved once.
            let saved: OnceCell<(PackedForward, u64)> = OnceCell::new();
            group.bench_function(BenchmarkId::new("backward", name), |bch| {
                let d = data.get_or_init(|| Data::new(&dev, case));
                let (fwd, dispatches) = saved.get_or_init(|| {
                    dev.set_recurrent_kernel(Some(kernel));
                    let fwd = d.forward();
                    // An untimed run builds the pipelines and counts dispatches.
                    let before = dev.dispatch_count();
                    d.backward(&fwd);
                    let count = dev.dispatch_count() - before;
                    dev.synchronize().expect("sync");
                    (fwd, count)
                });
                bch.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        d.backward(fwd);
                    }
                    dev.synchronize().expect("sync");
                    let elapsed = start.elapsed();
                    save("backward", elapsed.div_f64(iters.max(1) as f64), *dispatches);
                    elapsed
                })
            });
        }
        group.finish();
    }
    dev.set_recurrent_kernel(None);
    print_table(&dev, &cases, &results.into_inner());
}

/// The best timed batch of each bench that ran, the variants side by side.
fn print_table(dev: &Device, cases: &[Case], results: &Results) {
    if results.is_empty() {
        return;
    }
    println!(
        "\nRecurrent layer on {}, I={I}, mixed lengths; ms per pass (dispatches), best timed batch:",
        dev.info().name
    );
    const KERNELS: [&str; 3] = ["step", "sequence", "sequence_uniform"];
    println!(
        "| mode | H | B | T | pass | step | sequence | sequence_uniform | fastest |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (index, case) in cases.iter().enumerate() {
        for pass in ["forward", "backward"] {
            let rows: Vec<Option<&Row>> = KERNELS.iter().map(|k| results.get(&(index, pass, *k))).collect();
            if rows.iter().all(Option::is_none) {
                continue;
            }
            let cell = |r: &Option<&Row>| {
                r.map_or("—".to_string(), |r| format!("{:.2} ({})", r.best.as_secs_f64() * 1e3, r.dispatches))
            };
            let timed: Vec<(&str, Duration)> =
                KERNELS.iter().zip(&rows).filter_map(|(k, r)| r.map(|r| (*k, r.best))).collect();
            let fastest = timed.iter().min_by_key(|(_, d)| *d).expect("one ran");
            // How much faster than the next best, where another ran.
            let runner_up = timed.iter().filter(|(k, _)| *k != fastest.0).map(|(_, d)| *d).min();
            let fastest = match runner_up {
                Some(d) => format!("{} ×{:.2}", fastest.0, d.as_secs_f64() / fastest.1.as_secs_f64()),
                None => fastest.0.to_string(),
            };
            println!(
                "| {} | {} | {} | {} | {pass} | {} | {} | {} | {fastest} |",
                case.mode.name(),
                case.h,
                case.b,
                case.t,
                cell(&rows[0]),
                cell(&rows[1]),
                cell(&rows[2])
            );
        }
    }
}

criterion_group! {
    name = benches;
    // Defaults the command line can override (--sample-size,
    // --warm-up-time, --measurement-time).
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500));
    targets = bench_rnn
}
criterion_main!(benches);
