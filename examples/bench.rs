//! Times whole training steps (../shared/DESIGN.md §3.2): random token ids →
//! embedding → recurrent stack → linear on the last hidden state (both
//! directions concatenated) → cross-entropy → Adam (lr 1e-3).
//!
//! `cargo run --release --example bench -- --cell lstm --vocab 20000 --input 128
//! --hidden 128 --layers 1 [--bidirectional] --batch 64 --seq 40 --classes 4
//! --steps 20 [--warmup 3] [--json] [--profile] [--tune] [--sparse]`
//!
//! `--tune` first prints what the autotuners compare for this model's
//! first layer: forward + backward time of every recurrent kernel variant
//! the adapter can run (`wgrnn::rnn::tune`), and the time of each GEMM
//! variant the GEMM tuner compares for its input projection, weight
//! gradient and input gradient (`wgrnn::ops::gemm_tune`).
//!
//! `--sparse` makes the embedding's gradient sparse and updates only the
//! looked-up rows (`torch.optim.SparseAdam` for the embedding, Adam for the
//! rest: `Optimizer::with_sparse_embedding`).
//!
//! `--profile` then runs the steps once more under the step profile
//! (`wgrnn::profile`): every dispatch attributed to a kernel family and
//! timed alone (timestamp queries where the adapter has them), printed as
//! a per-step table, then split by kernel entry point (and as `"profile"`
//! in the JSON).
//!
//! Timed steps end with the device idle (the queue is waited for), after
//! warm-up steps that compile every pipeline. `--json` prints one line:
//! `{"impl":"wgrnn","adapter":…,"backend":…,"cell":…,"ms_per_step":…,
//! "tokens_per_s":…,"loss":…,"dispatches_per_step":…,"submits_per_step":…,
//! …configuration}`. Dispatches and submits are counted on the device over
//! the timed steps; a submit comes from the arena filling up or from a
//! readback, and the timed loop reads nothing back.

use std::process::ExitCode;
use std::time::Instant;

use wgrnn::autograd::Tape;
use wgrnn::models::{Pooling, SequenceClassifierConfig};
use wgrnn::nn::named_parameters;
use wgrnn::optim::Optimizer;
use wgrnn::rng::Rng;
use wgrnn::rnn::RnnMode;
use wgrnn::Device;

/// Command-line configuration.
struct Args {
    cell: RnnMode,
    vocab: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    batch: usize,
    seq: usize,
    classes: usize,
    steps: usize,
    warmup: usize,
    json: bool,
    profile: bool,
    tune: bool,
    sparse: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cell: RnnMode::Lstm,
        vocab: 20000,
        input: 128,
        hidden: 128,
        layers: 1,
        bidirectional: false,
        batch: 64,
        seq: 40,
        classes: 4,
        steps: 20,
        warmup: 3,
        json: false,
        profile: false,
        tune: false,
        sparse: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<usize>().map_err(|_| format!("{name} expects a whole number, got {v:?}"))
        };
        match flag.as_str() {
            "--cell" => {
                let v = it.next().ok_or("--cell needs a value")?;
                a.cell = RnnMode::parse(if v == "rnn" { "rnn_tanh" } else { &v }).map_err(|e| e.to_string())?;
            }
            "--vocab" => a.vocab = value("--vocab")?,
            "--input" => a.input = value("--input")?,
            "--hidden" => a.hidden = value("--hidden")?,
            "--layers" => a.layers = value("--layers")?,
            "--batch" => a.batch = value("--batch")?,
            "--seq" => a.seq = value("--seq")?,
            "--classes" => a.classes = value("--classes")?,
            "--steps" => a.steps = value("--steps")?,
            "--warmup" => a.warmup = value("--warmup")?,
            "--bidirectional" => a.bidirectional = true,
            "--json" => a.json = true,
            "--profile" => a.profile = true,
            "--tune" => a.tune = true,
            "--sparse" => a.sparse = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if [a.vocab, a.input, a.hidden, a.layers, a.batch, a.seq, a.classes, a.steps].contains(&0) {
        return Err("every size and --steps must be ≥ 1".into());
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(), String> {
    let dev = Device::new().map_err(|e| e.to_string())?;
    if a.tune {
        let timings = wgrnn::rnn::tune::time_recurrent_kernels(&dev, a.cell, a.hidden, a.batch, a.seq)
            .map_err(|e| e.to_string())?;
        println!("recurrent kernels, {} H={} B={} T={} forward + backward:", a.cell.name(), a.hidden, a.batch, a.seq);
        for (kernel, time) in &timings {
            println!("  {:<12} {:>9.3} ms", kernel.to_string(), time.as_secs_f64() * 1e3);
        }
        // The first layer's GEMMs (N = T·B packed rows, G gate rows):
        // input projection X·W_ihᵀ, dW_ih = dGᵀ·X with db, dX = dG·W_ih.
        let (rows, gates) = (a.batch * a.seq, a.cell.gates() * a.hidden);
        let products = [
            ("input projection", [rows, gates, a.input], false, true, false),
            ("dW_ih and db", [gates, a.input, rows], true, false, true),
            ("dX", [rows, a.input, gates], false, false, false),
        ];
        for (what, [m, n, k], trans_a, trans_b, sums) in products {
            let timings = wgrnn::ops::gemm_tune::time_gemm_variants(&dev, [m, n, k], trans_a, trans_b, sums)
                .map_err(|e| e.to_string())?;
            println!("GEMM {what}, M={m} N={n} K={k}:");
            for (variant, time) in &timings {
                println!("  {:<16} {:>9.3} ms", variant.to_string(), time.as_secs_f64() * 1e3);
            }
        }
    }
    let model = SequenceClassifierConfig::new(a.vocab, a.input, a.hidden, a.classes)
        .with_mode(a.cell)
        .with_layers(a.layers)
        .with_bidirectional(a.bidirectional)
        .with_pooling(Pooling::Last)
        .with_sparse_embedding(a.sparse)
        .init(&dev)
        .map_err(|e| e.to_string())?;
    let mut opt = Optimizer::adam(named_parameters(&model), 1e-3).map_err(|e| e.to_string())?;
    if a.sparse {
        opt = opt.with_sparse_embedding(&model.embedding).map_err(|e| e.to_string())?;
    }
    let mut rng = Rng::new(0);
    let lengths = vec![a.seq; a.batch];
    let mut step = |seed: u64| -> Result<(Tape, wgrnn::autograd::LossVars), String> {
        let ids: Vec<u32> = (0..a.batch * a.seq).map(|_| (rng.next_u64() % a.vocab as u64) as u32).collect();
        let labels: Vec<u32> = (0..a.batch).map(|_| (rng.next_u64() % a.classes as u64) as u32).collect();
        let mut tape = Tape::train(&dev, seed);
        let logits = model.forward(&mut tape, &ids, &lengths, a.seq).map_err(|e| e.to_string())?;
        let loss = tape.cross_entropy(logits, &labels, None, 0.0).map_err(|e| e.to_string())?;
        opt.zero_grad().map_err(|e| e.to_string())?;
        tape.backward(loss.loss).map_err(|e| e.to_string())?;
        opt.step().map_err(|e| e.to_string())?;
        Ok((tape, loss))
    };
    for i in 0..a.warmup {
        step(i as u64)?;
    }
    dev.synchronize().map_err(|e| e.to_string())?;
    let (dispatches, submits) = (dev.dispatch_count(), dev.submission_count());
    let start = Instant::now();
    let mut last = None;
    for i in 0..a.steps {
        last = Some(step((a.warmup + i) as u64)?);
    }
    dev.synchronize().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let per_step = |n: u64| n as f64 / a.steps as f64;
    let dispatches = per_step(dev.dispatch_count() - dispatches);
    let submits = per_step(dev.submission_count() - submits);
    // Read after timing: the loss stays on the GPU during the timed steps.
    let (tape, loss) = last.ok_or("no steps")?;
    let loss_value = loss.value(&tape).map_err(|e| e.to_string())?;
    let profile = if a.profile {
        dev.start_profile().map_err(|e| e.to_string())?;
        for i in 0..a.steps {
            step((a.warmup + a.steps + i) as u64)?;
        }
        Some(dev.finish_profile().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let ms = secs * 1e3 / a.steps as f64;
    let tokens = (a.batch * a.seq) as f64 / (ms / 1e3);
    let info = dev.info();
    if a.json {
        let profile_json = profile.as_ref().map_or(String::new(), |p| {
            let families: Vec<String> = p
                .per_step(a.steps)
                .iter()
                .map(|(f, n, t)| {
                    format!("\"{}\":{{\"dispatches\":{n:.1},\"ms\":{:.3}}}", f.name(), t.as_secs_f64() * 1e3)
                })
                .collect();
            format!(",\"profile\":{{\"timing\":\"{:?}\",{}}}", p.timing, families.join(","))
        });
        println!(
            "{{\"impl\":\"wgrnn\",\"adapter\":{:?},\"backend\":{:?},\"cell\":{:?},\"ms_per_step\":{ms:.3},\"tokens_per_s\":{tokens:.0},\"loss\":{loss_value:.6},\"dispatches_per_step\":{dispatches:.1},\"submits_per_step\":{submits:.2},\"vocab\":{},\"input\":{},\"hidden\":{},\"layers\":{},\"bidirectional\":{},\"batch\":{},\"seq\":{},\"classes\":{},\"steps\":{},\"sparse\":{}{profile_json}}}",
            info.name, info.backend, a.cell.name(), a.vocab, a.input, a.hidden, a.layers, a.bidirectional, a.batch, a.seq, a.classes, a.steps, a.sparse
        );
    } else {
        println!("adapter: {info}");
        println!(
            "{} vocab={} input={} hidden={} layers={} bidirectional={} batch={} seq={} classes={}{}: {ms:.2} ms/step, {tokens:.0} tokens/s, loss {loss_value:.4}, {dispatches:.1} dispatches and {submits:.2} submits per step",
            a.cell.name(), a.vocab, a.input, a.hidden, a.layers, a.bidirectional, a.batch, a.seq, a.classes, if a.sparse { " sparse" } else { "" }
        );
        if let Some(p) = &profile {
            println!("step profile ({:?}), per step:", p.timing);
            println!("{:<20} {:>10} {:>10} {:>7}", "family", "dispatches", "ms", "share");
            let total: f64 = p.per_step(a.steps).iter().map(|(_, _, t)| t.as_secs_f64()).sum();
            for (family, n, t) in p.per_step(a.steps) {
                let share = t.as_secs_f64() / total.max(1e-12) * 100.0;
                println!("{:<20} {n:>10.1} {:>10.3} {share:>6.1}%", family.name(), t.as_secs_f64() * 1e3);
            }
            println!("by kernel, per step:");
            println!("{:<20} {:<36} {:>10} {:>10}", "family", "entry point", "dispatches", "ms");
            let steps = a.steps.max(1) as f64;
            for k in &p.kernels {
                println!(
                    "{:<20} {:<36} {:>10.1} {:>10.3}",
                    k.family.name(),
                    k.entry,
                    k.dispatches as f64 / steps,
                    k.time.as_secs_f64() * 1e3 / steps
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
