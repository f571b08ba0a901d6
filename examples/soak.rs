//! Soak test: thousands of training steps where every batch has a new
//! shape (random batch size and row lengths, packed), with a checkpoint
//! every `--every` steps (one `fit` epoch each), an evaluation pass after
//! each, and every checkpoint reloaded into a fresh model as it is written.
//! Prints the device memory the buffer pool holds and the process's
//! resident memory at the `--report` steps, and fails (exit code 1) if
//! memory does not plateau:
//! - the bytes lent to tensors at the start of every training step are the
//!   same from the second step on (nothing leaks from one step to the next);
//! - the pool's cached bytes never exceed its budget;
//! - resident memory grows by less than `--rss-slack-mib` from the first
//!   report to the last.
//!
//! ```text
//! cargo run --release --example soak                       # 10,000 steps
//! cargo run --release --example soak -- --steps 300 --every 100 --report 100,200,300
//! ```
//! The last line is a `key=value` summary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use wgrnn::autograd::{LossVars, Tape};
use wgrnn::classify::TextClassifier;
use wgrnn::data::{LabelSet, TextBatch, TextVectorizer, TextVectorizerConfig};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{Module, Parameter};
use wgrnn::optim::Optimizer;
use wgrnn::rng::Rng;
use wgrnn::train::{fit, Batches, FitConfig, Progress, Task};
use wgrnn::{checkpoint, Device, DeviceOptions, Error, MemoryStats};

/// A soak run with bounded memory.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Training steps in all.
    #[arg(long, default_value_t = 10_000)]
    steps: usize,
    /// Steps per epoch: a checkpoint and an evaluation after each.
    #[arg(long, default_value_t = 500)]
    every: usize,
    /// Steps after which memory is reported (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    report: Vec<usize>,
    /// The pool's cache budget in MiB (WGRNN_POOL_BUDGET overrides it when set).
    #[arg(long, default_value_t = 64)]
    budget_mib: u64,
    /// Largest batch size drawn.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Longest row drawn.
    #[arg(long, default_value_t = 100)]
    max_len: usize,
    /// Allowed growth of resident memory from the first report to the last.
    #[arg(long, default_value_t = 64)]
    rss_slack_mib: u64,
    /// Where the checkpoints go.
    #[arg(long, default_value = "runs/soak")]
    out: PathBuf,
    /// Seed of the shapes, tokens and weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

const VOCAB: usize = 5000;
/// Classes (the labels "0" to "3").
const CLASSES: usize = 4;

/// Batches of random shape: every batch a new (batch size, lengths) draw.
/// The label is the last token's id mod 4, so there is something to learn
/// (the classifier reads the last hidden state).
struct RandomShapes {
    batches: usize,
    max_batch: usize,
    max_len: usize,
    seed: u64,
}

impl Batches for RandomShapes {
    type Batch = TextBatch;

    fn epoch(&self, epoch: usize) -> wgrnn::Result<Vec<TextBatch>> {
        let mut rng = Rng::for_stream(self.seed, epoch as u64);
        let mut draw = |n: usize| 1 + (rng.next_u64() % n as u64) as usize;
        Ok((0..self.batches)
            .map(|_| {
                let rows = draw(self.max_batch);
                let lengths: Vec<usize> = (0..rows).map(|_| draw(self.max_len)).collect();
                let max_len = *lengths.iter().max().unwrap_or(&1);
                let mut ids = vec![0u32; rows * max_len];
                for (r, &len) in lengths.iter().enumerate() {
                    for t in 0..len {
                        ids[r * max_len + t] = draw(VOCAB - 1) as u32;
                    }
                }
                let labels = (0..rows).map(|r| ids[r * max_len + lengths[r] - 1] % CLASSES as u32).collect();
                TextBatch { ids, lengths, labels, max_len }
            })
            .collect())
    }
}

/// One memory reading.
#[derive(Debug, Clone, Copy)]
struct Sample {
    step: usize,
    pool: MemoryStats,
    rss: Option<u64>,
    buffers_created: u64,
}

/// The classifier, watched: memory at every training step's start, and
/// every checkpoint reloaded as the next epoch begins.
struct Watched {
    inner: TextClassifier,
    device: Device,
    steps: usize,
    evaluating: bool,
    /// Bytes lent to tensors at the start of step 2 (step 1 allocates the
    /// optimizer state).
    baseline: Option<u64>,
    /// Steps whose starting `in_use` differed from the baseline.
    leaks: Vec<(usize, u64)>,
    /// Most bytes cached seen at a step start.
    max_cached: u64,
    report_at: Vec<usize>,
    samples: Vec<Sample>,
    checkpoint: PathBuf,
    reloaded: usize,
}

impl Watched {
    fn sample(&mut self) {
        self.samples.push(Sample {
            step: self.steps,
            pool: self.device.memory_stats(),
            rss: resident_bytes(),
            buffers_created: self.device.buffers_created(),
        });
    }
}

impl Module for Watched {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.inner.visit(prefix, f);
    }
}

impl Task for Watched {
    type Batch = TextBatch;

    fn loss(&mut self, tape: &mut Tape, batch: &TextBatch) -> wgrnn::Result<LossVars> {
        if !self.evaluating {
            // The previous step's tape is gone: what is lent now is the
            // model, its gradients, the optimizer state and the epoch sums.
            let stats = self.device.memory_stats();
            self.max_cached = self.max_cached.max(stats.cached);
            if self.steps == 1 {
                self.baseline = Some(stats.in_use);
            } else if self.baseline.is_some_and(|b| b != stats.in_use) {
                self.leaks.push((self.steps + 1, stats.in_use));
            }
            if self.report_at.contains(&self.steps) {
                self.sample();
            }
            self.steps += 1;
        }
        self.inner.loss(tape, batch)
    }

    fn start_epoch(&mut self, epoch: usize) -> wgrnn::Result<()> {
        self.evaluating = false;
        if epoch > 0 {
            // The checkpoint of the epoch just ended must load on its own.
            let config = *self.inner.model.config();
            let fresh =
                TextClassifier::new(&self.device, self.inner.vectorizer.clone(), self.inner.labels.clone(), config)?;
            checkpoint::load(&self.checkpoint, &fresh, None)?;
            self.reloaded += 1;
        }
        Ok(())
    }

    fn start_evaluation(&mut self) -> wgrnn::Result<()> {
        self.evaluating = true;
        Ok(())
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.inner.metadata()
    }

    fn batch_tokens(&self, batch: &TextBatch) -> usize {
        batch.tokens()
    }
}

/// Resident set size of this process (Linux), in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

fn run(cli: &Cli) -> wgrnn::Result<()> {
    if cli.every == 0 || cli.steps == 0 || cli.max_batch == 0 || cli.max_len == 0 {
        return Err(Error::Config("--steps, --every, --max-batch and --max-len must be at least 1".into()));
    }
    let mut options = DeviceOptions::from_env()?;
    if options.pool_budget.is_none() {
        options = options.with_pool_budget(Some(cli.budget_mib << 20));
    }
    let budget = options.pool_budget;
    let device = Device::with_options(&options)?;
    println!("device: {}", device.info());

    let words: Vec<String> = (1..VOCAB).map(|i| format!("t{i}")).collect();
    let vectorizer = TextVectorizer::from_vocabulary(TextVectorizerConfig::words(), words)?;
    let labels = LabelSet::from_labels(["0", "1", "2", "3"])?;
    let config =
        SequenceClassifierConfig::new(vectorizer.vocab_size(), 64, 64, CLASSES).with_padding_idx(0).with_seed(cli.seed);
    let inner = TextClassifier::new(&device, vectorizer, labels, config)?;
    std::fs::create_dir_all(&cli.out)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", cli.out.display())))?;
    let mut task = Watched {
        inner,
        device: device.clone(),
        steps: 0,
        evaluating: false,
        baseline: None,
        leaks: Vec::new(),
        max_cached: 0,
        report_at: cli.report.clone(),
        samples: Vec::new(),
        checkpoint: cli.out.join("last.safetensors"),
        reloaded: 0,
    };
    let train = RandomShapes { batches: cli.every, max_batch: cli.max_batch, max_len: cli.max_len, seed: cli.seed };
    let valid = RandomShapes { batches: 20, ..RandomShapes { seed: cli.seed ^ 0x5eed, ..train } };
    let mut optimizer = Optimizer::adam(task.inner.parameters(), 2e-3)?;
    let epochs = cli.steps.div_ceil(cli.every);
    let fit_config = FitConfig::new(epochs, 2e-3)
        .with_max_steps(cli.steps as u64)
        .with_clip(5.0)
        .with_seed(cli.seed)
        .with_checkpoint_dir(&cli.out)
        .with_progress(Progress::Quiet);
    let started = Instant::now();
    let report = fit(&mut task, &mut optimizer, &train, Some(&valid), &fit_config)?;
    // The last report step is the end of the run.
    if task.report_at.contains(&task.steps) {
        task.sample();
    }

    for s in &task.samples {
        println!(
            "step={} in_use_mib={} cached_mib={} peak_mib={} rss_mib={} buffers_created={}",
            s.step,
            mib(s.pool.in_use),
            mib(s.pool.cached),
            mib(s.pool.peak),
            s.rss.map_or("n/a".into(), mib),
            s.buffers_created
        );
    }
    let mut failures = Vec::new();
    if let Some((step, bytes)) = task.leaks.first() {
        failures.push(format!(
            "{} steps started with other than the {} bytes lent at step 2 (first: step {step}, {bytes} bytes)",
            task.leaks.len(),
            task.baseline.unwrap_or(0)
        ));
    }
    if let Some(b) = budget.filter(|&b| task.max_cached > b) {
        failures.push(format!("the pool cached {} bytes, over its budget of {b}", task.max_cached));
    }
    let rss_growth = match (task.samples.first().and_then(|s| s.rss), task.samples.last().and_then(|s| s.rss)) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    };
    if rss_growth > cli.rss_slack_mib << 20 {
        failures.push(format!("resident memory grew by {} MiB between the first and last report", mib(rss_growth)));
    }
    let last = report.last().ok_or_else(|| Error::Config("no epoch finished".into()))?;
    println!(
        "steps={} epochs={} checkpoints_reloaded={} val_loss={:.4} val_accuracy={:.4} in_use_flat={} \
         max_cached_mib={} budget_mib={} rss_growth_mib={} seconds={:.0}",
        report.steps,
        report.history.len(),
        task.reloaded,
        last.val_loss.unwrap_or(f32::NAN),
        last.val_accuracy.unwrap_or(f32::NAN),
        task.leaks.is_empty(),
        mib(task.max_cached),
        budget.map_or("none".into(), mib),
        mib(rss_growth),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(format!("memory did not plateau: {}", failures.join("; "))))
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
