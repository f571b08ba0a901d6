//! The training loop every example (and user) calls instead of writing
//! one: [`fit`] runs epochs over a batch source, evaluates after each,
//! schedules the learning rate per step, clips gradients, keeps best/last
//! checkpoints, stops early, logs metrics as CSV and an SVG plot, and stops
//! cleanly on request (Ctrl-C) with a checkpoint that `resume` continues
//! from bit for bit. With [`FitConfig::with_checkpoint_every`] it writes
//! that checkpoint every N steps too, so a killed process loses at most N.
//!
//! Speed: each step is recorded into one command buffer and submitted; the
//! loss and accuracy are summed on the GPU and read at most every
//! `refresh` (250 ms) for the progress bar, never per step.
//!
//! What is trained is a [`Task`] (a module that turns a batch into a loss on
//! a tape); what it iterates is a [`Batches`] source. The text classifier
//! ([`crate::classify::TextClassifier`]) is one task; a language model is
//! another.

mod interrupt;
mod metrics;
mod plot;
mod progress;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::autograd::{LossVars, Tape};
use crate::checkpoint::{self, HostTensor};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::{LrSchedule, Optimizer};
use crate::rnn::spec::pcg_hash;
use crate::tensor::Tensor;

pub use interrupt::{ctrl_c_flag, StopFlag};
pub use metrics::MetricRow;
pub use progress::Progress;

use metrics::{MetricSums, MetricsCsv, Reading};

/// Something `fit` can train: a module that records a batch's forward pass
/// and loss on a tape.
pub trait Task: Module {
    /// What one step consumes.
    type Batch;

    /// Records the forward pass of `batch` and its loss on `tape` (a
    /// training or an evaluation tape). `LossVars::count` is what the mean
    /// loss averages over (rows, or target tokens).
    fn loss(&mut self, tape: &mut Tape, batch: &Self::Batch) -> Result<LossVars>;

    /// Called before each epoch's first step (e.g. to reset carried state).
    fn start_epoch(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// Called before an evaluation pass (e.g. to reset carried state).
    fn start_evaluation(&mut self) -> Result<()> {
        Ok(())
    }

    /// Factor on the learning rate for this batch (AWD-LSTM scales it by
    /// the batch's BPTT length); 1 by default.
    fn lr_scale(&self, _batch: &Self::Batch) -> f32 {
        1.0
    }

    /// Running state that is not a parameter but that the next step
    /// depends on (a language model's carried h/c between truncated-BPTT
    /// windows): `fit` stores it in the checkpoints it writes mid-epoch and
    /// hands it back on resume, so a resumed run continues bit for bit.
    fn running_state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Restores what [`Task::running_state`] returned; called on resume,
    /// after the weights load and [`Task::start_epoch`]. A task without
    /// running state rejects any.
    fn restore_running_state(&mut self, state: Vec<HostTensor>) -> Result<()> {
        match state.first() {
            None => Ok(()),
            Some(HostTensor { name, .. }) => {
                Err(Error::Format(format!("this task keeps no running state, the checkpoint has `{name}`")))
            }
        }
    }

    /// String metadata stored in every checkpoint `fit` writes (vocabulary,
    /// label names, architecture), so the file alone rebuilds the model.
    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Tokens a batch feeds through the model (for tokens/s).
    fn batch_tokens(&self, batch: &Self::Batch) -> usize;
}

/// A source of batches, epoch by epoch. The same epoch must give the same
/// batches every time (a seeded shuffle), which is what makes a resumed run
/// continue exactly where the interrupted one stopped.
pub trait Batches {
    /// The batch type.
    type Batch;
    /// The batches of epoch `epoch` (0-based).
    fn epoch(&self, epoch: usize) -> Result<Vec<Self::Batch>>;
}

impl Batches for crate::data::TextBatches {
    type Batch = crate::data::TextBatch;
    fn epoch(&self, epoch: usize) -> Result<Vec<Self::Batch>> {
        Ok(crate::data::TextBatches::epoch(self, epoch))
    }
}

/// Which validation number decides "best" and early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// Validation loss, lower is better.
    ValLoss,
    /// Validation accuracy, higher is better.
    ValAccuracy,
}

/// Everything `fit` can be told. Start from [`FitConfig::new`].
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Epochs to train (a resumed run counts those already done).
    pub epochs: usize,
    /// Stop after this many optimizer steps in total (quick runs).
    pub max_steps: Option<u64>,
    /// Base learning rate, shaped per step by `schedule`.
    pub lr: f32,
    /// Learning-rate schedule over optimizer steps.
    pub schedule: LrSchedule,
    /// Global gradient-norm clipping (`clip_grad_norm_`).
    pub clip: Option<f32>,
    /// Seed of the per-step dropout masks.
    pub seed: u64,
    /// What "best" means.
    pub monitor: Monitor,
    /// Stop after this many epochs without improvement of `monitor`.
    pub patience: Option<usize>,
    /// Improvement smaller than this does not count.
    pub min_delta: f32,
    /// Writes `last.safetensors` after every epoch (and on a stop request)
    /// and `best.safetensors` when `monitor` improves.
    pub checkpoint_dir: Option<PathBuf>,
    /// Also writes `last.safetensors` inside an epoch after every this
    /// many optimizer steps (counted over the whole run), so a crash loses
    /// at most that many steps. See [`FitConfig::with_checkpoint_every`].
    pub checkpoint_every: Option<u64>,
    /// Metrics log (CSV).
    pub metrics_csv: Option<PathBuf>,
    /// SVG plot of the curves, redrawn after every epoch.
    pub plot: Option<PathBuf>,
    /// Continue from this checkpoint (model, optimizer and loop state).
    pub resume: Option<PathBuf>,
    /// What to print.
    pub progress: Progress,
    /// Shortest time between metric readbacks for the bar.
    pub refresh: Duration,
    /// Stop request (e.g. [`ctrl_c_flag`]).
    pub stop: Option<StopFlag>,
    /// Print the validation perplexity exp(val_loss) in the epoch lines
    /// (language models).
    pub show_perplexity: bool,
    /// What a NaN or ±inf in a step's loss or gradients does.
    pub non_finite: NonFinite,
}

/// What [`fit`] does with a step whose loss or gradients hold NaN or ±inf.
/// Either way the step is caught on the GPU by the optimizer's non-finite
/// guard ([`Optimizer::with_non_finite_guard`], which `fit` turns on for
/// its run) and its update is not applied, without a per-step readback;
/// `fit` learns of it at its next metrics reading (at most every
/// [`FitConfig::refresh`], and at the end of every epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Return an [`Error::NonFinite`] naming the first such step (the
    /// default: a diverging run should not go on unnoticed).
    #[default]
    Stop,
    /// Skip such steps and go on, like PyTorch's `GradScaler`; the count
    /// is in [`EpochRecord::skipped_steps`] and [`FitReport::skipped_steps`].
    SkipStep,
}

impl FitConfig {
    /// `epochs` epochs at a constant `lr`, no clipping, no files, a bar.
    pub fn new(epochs: usize, lr: f32) -> Self {
        Self {
            epochs,
            max_steps: None,
            lr,
            schedule: LrSchedule::Constant,
            clip: None,
            seed: 0,
            monitor: Monitor::ValLoss,
            patience: None,
            min_delta: 0.0,
            checkpoint_dir: None,
            checkpoint_every: None,
            metrics_csv: None,
            plot: None,
            resume: None,
            progress: Progress::Bar,
            refresh: Duration::from_millis(250),
            stop: None,
            show_perplexity: false,
            non_finite: NonFinite::Stop,
        }
    }

    /// Learning-rate schedule over steps.
    pub fn with_schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = schedule;
        self
    }
    /// Gradient-norm clipping.
    pub fn with_clip(mut self, max_norm: f32) -> Self {
        self.clip = Some(max_norm);
        self
    }
    /// Dropout seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Step limit.
    pub fn with_max_steps(mut self, steps: u64) -> Self {
        self.max_steps = Some(steps);
        self
    }
    /// Early stopping on `monitor` after `patience` epochs without improvement.
    pub fn with_early_stopping(mut self, monitor: Monitor, patience: usize) -> Self {
        self.monitor = monitor;
        self.patience = Some(patience);
        self
    }
    /// Best/last checkpoints in `dir`.
    pub fn with_checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }
    /// Writes `last.safetensors` every `steps` optimizer steps inside an
    /// epoch too (at steps that are multiples of `steps`, counted over the
    /// whole run), with the same loop and running state a stop request
    /// saves, so `resume` from it continues bit for bit. A process killed
    /// at any moment then loses at most `steps` steps: the write is atomic
    /// and durable (see [`crate::checkpoint::save`]). Each such checkpoint
    /// costs one readback of the weights, optimizer state and metric sums;
    /// the steps in between read nothing back. Needs a checkpoint folder;
    /// `fit` rejects `steps == 0` with [`Error::Config`].
    pub fn with_checkpoint_every(mut self, steps: u64) -> Self {
        self.checkpoint_every = Some(steps);
        self
    }
    /// CSV metrics log.
    pub fn with_metrics_csv(mut self, path: impl Into<PathBuf>) -> Self {
        self.metrics_csv = Some(path.into());
        self
    }
    /// SVG plot.
    pub fn with_plot(mut self, path: impl Into<PathBuf>) -> Self {
        self.plot = Some(path.into());
        self
    }
    /// Resume from a checkpoint.
    pub fn with_resume(mut self, path: impl Into<PathBuf>) -> Self {
        self.resume = Some(path.into());
        self
    }
    /// Output.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
    /// Validation perplexity in the epoch lines.
    pub fn with_perplexity(mut self, show: bool) -> Self {
        self.show_perplexity = show;
        self
    }
    /// What a step with a NaN or ±inf loss or gradient does.
    pub fn with_non_finite(mut self, policy: NonFinite) -> Self {
        self.non_finite = policy;
        self
    }

    /// Stop request.
    pub fn with_stop(mut self, stop: StopFlag) -> Self {
        self.stop = Some(stop);
        self
    }
}

/// The numbers of one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Steps taken by the end of it.
    pub step: u64,
    /// Mean training loss over the epoch.
    pub train_loss: f32,
    /// Training accuracy over the epoch.
    pub train_accuracy: f32,
    /// Validation loss.
    pub val_loss: Option<f32>,
    /// Validation accuracy.
    pub val_accuracy: Option<f32>,
    /// Learning rate at the epoch's last step.
    pub lr: f32,
    /// Training tokens per second.
    pub tokens_per_s: f64,
    /// Seconds of training and evaluation in this epoch.
    pub seconds: f64,
    /// Steps of this epoch skipped for a NaN or ±inf loss or gradient
    /// ([`NonFinite::SkipStep`]).
    #[serde(default)]
    pub skipped_steps: u64,
}

/// How a [`fit`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Every finished epoch (including those before a resume).
    pub history: Vec<EpochRecord>,
    /// Optimizer steps taken in total.
    pub steps: u64,
    /// The epoch with the best `monitor` value.
    pub best: Option<EpochRecord>,
    /// A stop request ended the run (a checkpoint was written).
    pub interrupted: bool,
    /// Early stopping ended the run.
    pub stopped_early: bool,
    /// Seconds this call ran.
    pub seconds: f64,
    /// Training tokens per second over this call.
    pub tokens_per_s: f64,
    /// Steps of this call skipped for a NaN or ±inf loss or gradient
    /// ([`NonFinite::SkipStep`]).
    pub skipped_steps: u64,
}

impl FitReport {
    /// The last finished epoch.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.history.last()
    }
}

/// Loss and accuracy of a task over a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Fraction right.
    pub accuracy: f32,
    /// Rows (or tokens) counted.
    pub count: u64,
}

/// Evaluates `task` on every batch of `batches` (epoch 0) with an
/// evaluation tape: no dropout, no gradients, sums kept on the GPU and read
/// once at the end.
pub fn evaluate<T: Task, B: Batches<Batch = T::Batch>>(task: &mut T, batches: &B) -> Result<Evaluation> {
    let device = task_device(task)?;
    task.start_evaluation()?;
    let mut sums: Option<MetricSums> = None;
    for batch in batches.epoch(0)? {
        let mut tape = Tape::eval(&device);
        let loss = task.loss(&mut tape, &batch)?;
        match &mut sums {
            Some(s) => s.add(&tape, &loss, None)?,
            None => {
                let mut s = MetricSums::new(tape.device())?;
                s.add(&tape, &loss, None)?;
                sums = Some(s);
            }
        }
    }
    let r = sums.ok_or_else(|| Error::Config("evaluation set has no batches".into()))?.read()?;
    let (loss, accuracy) = r.means();
    if !loss.is_finite() {
        return Err(Error::NonFinite(format!("the evaluation loss is {loss}")));
    }
    Ok(Evaluation { loss, accuracy, count: r.count })
}

fn task_device(task: &dyn Module) -> Result<crate::Device> {
    let mut device = None;
    task.visit("", &mut |_, p| {
        device.get_or_insert_with(|| p.value.device().clone());
    });
    device.ok_or_else(|| Error::Config("the task has no parameters".into()))
}

/// Where an interrupted or finished run stands; stored in checkpoints under
/// the metadata key `trainer` so `resume` continues exactly.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct LoopState {
    /// Epoch in progress (0-based).
    epoch: usize,
    /// Batches of that epoch already trained.
    batch: usize,
    /// Steps taken.
    step: u64,
    /// Sums of the epoch in progress.
    partial: Reading,
    /// Tokens of the epoch in progress.
    partial_tokens: u64,
    /// Seconds of the epoch in progress.
    partial_seconds: f64,
    /// Seconds of the whole run.
    elapsed: f64,
    /// Best monitored value and the epochs since it improved.
    best: Option<f32>,
    best_epoch: Option<usize>,
    bad_epochs: usize,
    history: Vec<EpochRecord>,
    rows: Vec<MetricRow>,
}

/// Metadata key of the loop state.
const TRAINER_KEY: &str = "trainer";

/// The dropout seed of step `step`: distinct per step, fixed by the run seed.
fn step_seed(seed: u64, step: u64) -> u64 {
    let lo = pcg_hash(seed as u32 ^ pcg_hash(step as u32));
    let hi = pcg_hash((seed >> 32) as u32 ^ pcg_hash((step >> 32) as u32 ^ lo));
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Trains `task` with `optimizer` on `train` for `config.epochs` epochs,
/// evaluating on `valid` after each. See the module docs.
pub fn fit<T, B>(
    task: &mut T,
    optimizer: &mut Optimizer,
    train: &B,
    valid: Option<&B>,
    config: &FitConfig,
) -> Result<FitReport>
where
    T: Task,
    B: Batches<Batch = T::Batch>,
{
    // The guard is what catches a NaN step on the GPU; the caller's
    // setting comes back afterwards, whatever the outcome.
    let guarded = optimizer.non_finite_guard();
    optimizer.set_non_finite_guard(true)?;
    let report = fit_guarded(task, optimizer, train, valid, config);
    // The run's own error, if any, is the one to report.
    let restored = optimizer.set_non_finite_guard(guarded);
    let report = report?;
    restored?;
    Ok(report)
}

/// [`fit`] with the optimizer's non-finite guard on.
fn fit_guarded<T, B>(
    task: &mut T,
    optimizer: &mut Optimizer,
    train: &B,
    valid: Option<&B>,
    config: &FitConfig,
) -> Result<FitReport>
where
    T: Task,
    B: Batches<Batch = T::Batch>,
{
    if config.epochs == 0 {
        return Err(Error::Config("fit needs at least one epoch".into()));
    }
    if config.patience.is_some() && valid.is_none() {
        return Err(Error::Config("early stopping needs a validation set".into()));
    }
    match (config.checkpoint_every, &config.checkpoint_dir) {
        (Some(0), _) => return Err(Error::Config("checkpoint_every must be at least 1 step".into())),
        (Some(_), None) => return Err(Error::Config("checkpoint_every needs a checkpoint folder".into())),
        _ => {}
    }
    if let Some(dir) = &config.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Data {
            file: dir.display().to_string(),
            line: None,
            message: format!("cannot create the checkpoint folder: {e}"),
        })?;
    }
    let device = optimizer.device().clone();
    let (mut state, mut resumed_running) = match &config.resume {
        Some(path) => resume(path, task, optimizer)?,
        None => (LoopState::default(), Vec::new()),
    };
    let resumed_at = config.resume.as_ref().map(|_| state.step);
    let mut csv = config.metrics_csv.as_deref().map(|p| MetricsCsv::open(p, resumed_at)).transpose()?;
    let started = Instant::now();
    let elapsed_before = state.elapsed;
    let (mut run_tokens, mut interrupted, mut stopped_early) = (0u64, false, false);
    let mut skips = SkipWatch::default();

    'epochs: while state.epoch < config.epochs {
        if config.max_steps.is_some_and(|m| state.step >= m) {
            // Reached at an epoch boundary (or resumed from a run that
            // stopped there): no empty epoch to record.
            break;
        }
        let epoch = state.epoch;
        task.start_epoch(epoch)?;
        if state.batch > 0 {
            // Resumed inside this epoch: carry on from the saved state.
            task.restore_running_state(std::mem::take(&mut resumed_running))?;
        }
        let batches = train.epoch(epoch)?;
        if batches.is_empty() {
            return Err(Error::Config(format!("epoch {} has no training batches", epoch + 1)));
        }
        if state.batch > batches.len() {
            return Err(Error::Config(format!(
                "the checkpoint stopped after batch {} of epoch {}, but this epoch has {} batches: resume with \
                 the data and batch size of the interrupted run",
                state.batch,
                epoch + 1,
                batches.len()
            )));
        }
        let bar = EpochBar::new(config.progress, epoch + 1, config.epochs, batches.len(), state.batch);
        let mut sums = MetricSums::from_reading(&device, &state.partial)?;
        let epoch_clock = EpochClock { before: state.partial_seconds, start: Instant::now() };
        let mut tokens = state.partial_tokens;
        let mut shown = (state.partial, Instant::now(), tokens);
        for batch in &batches[state.batch..] {
            if config.max_steps.is_some_and(|m| state.step >= m) {
                break;
            }
            let lr =
                config.schedule.lr_at(config.lr, u32::try_from(state.step).unwrap_or(u32::MAX)) * task.lr_scale(batch);
            optimizer.set_lr(lr)?;
            let mut tape = Tape::train(&device, step_seed(config.seed, state.step));
            let loss = task.loss(&mut tape, batch)?;
            optimizer.zero_grad()?;
            tape.backward(loss.objective)?;
            if let Some(max_norm) = config.clip {
                optimizer.clip_grad_norm(max_norm)?;
            }
            optimizer.check_finite(tape.value(loss.loss)?)?;
            optimizer.step()?;
            sums.add(&tape, &loss, Some(optimizer))?;
            drop(tape);
            device.flush()?;
            let n = task.batch_tokens(batch) as u64;
            tokens += n;
            run_tokens += n;
            state.step += 1;
            state.batch += 1;
            let stop = config.stop.as_ref().is_some_and(StopFlag::is_requested);
            if shown.1.elapsed() >= config.refresh || state.batch == batches.len() || stop {
                let reading = sums.read()?;
                skips.update(optimizer, config.non_finite, state.step, epoch)?;
                let (loss, accuracy) = reading.since(&shown.0);
                if !loss.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "the training loss became {loss} by step {} (epoch {}): training diverged; lower the \
                         learning rate or clip gradients",
                        state.step,
                        epoch + 1
                    )));
                }
                let tps = (tokens - shown.2) as f64 / shown.1.elapsed().as_secs_f64().max(1e-9);
                let row = MetricRow {
                    kind: "train".into(),
                    epoch: epoch + 1,
                    step: state.step,
                    progress: epoch as f64 + state.batch as f64 / batches.len() as f64,
                    loss,
                    accuracy,
                    lr,
                    tokens_per_s: tps,
                    elapsed_s: elapsed_before + started.elapsed().as_secs_f64(),
                };
                log_row(&mut csv, &mut state.rows, row)?;
                let (mean_loss, mean_acc) = reading.means();
                bar.set_position(state.batch);
                bar.show(mean_loss, mean_acc, tokens as f64 / epoch_clock.seconds().max(1e-9));
                shown = (reading, Instant::now(), tokens);
            }
            // A periodic checkpoint; not at the epoch's end or the step
            // limit, where the checkpoint after the epoch follows anyway.
            let due = !stop
                && config.checkpoint_every.is_some_and(|n| state.step % n == 0)
                && state.batch < batches.len()
                && config.max_steps != Some(state.step);
            if stop || due {
                // What resume needs to continue this epoch exactly.
                state.partial = sums.read()?;
                state.partial_tokens = tokens;
                state.partial_seconds = epoch_clock.seconds();
                state.elapsed = elapsed_before + started.elapsed().as_secs_f64();
            }
            if due {
                save(config, "last.safetensors", task, optimizer, &state, &task.running_state())?;
            }
            if stop {
                // Consume the request so a later fit with the same flag runs.
                if let Some(flag) = &config.stop {
                    flag.clear();
                }
                bar.finish(&format!(
                    "stopped at step {} (epoch {}, batch {}/{}){}",
                    state.step,
                    epoch + 1,
                    state.batch,
                    batches.len(),
                    match &config.checkpoint_dir {
                        Some(dir) => format!("; checkpoint {}", dir.join("last.safetensors").display()),
                        None => String::new(),
                    }
                ));
                save(config, "last.safetensors", task, optimizer, &state, &task.running_state())?;
                interrupted = true;
                break 'epochs;
            }
        }
        let partial_epoch = state.batch < batches.len();
        // Taken before evaluation, which resets it: a checkpoint inside the
        // epoch continues from it.
        let running = if partial_epoch { task.running_state() } else { Vec::new() };
        // The epoch's numbers.
        let reading = sums.read()?;
        let skipped_steps = skips.update(optimizer, config.non_finite, state.step, epoch)?;
        let (train_loss, train_accuracy) = reading.means();
        let train_seconds = epoch_clock.seconds();
        let tokens_per_s = tokens as f64 / train_seconds.max(1e-9);
        let (val_loss, val_accuracy) = match valid {
            Some(v) => {
                let e = evaluate(task, v)?;
                (Some(e.loss), Some(e.accuracy))
            }
            None => (None, None),
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            step: state.step,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            lr: optimizer.lr(),
            tokens_per_s,
            seconds: epoch_clock.seconds(),
            skipped_steps,
        };
        let elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let progress = epoch as f64 + state.batch as f64 / batches.len() as f64;
        let row = |kind: &str, loss: f32, accuracy: f32, tps: f64| MetricRow {
            kind: kind.into(),
            epoch: epoch + 1,
            step: state.step,
            progress,
            loss,
            accuracy,
            lr: record.lr,
            tokens_per_s: tps,
            elapsed_s,
        };
        let epoch_row = row("epoch", train_loss, train_accuracy, tokens_per_s);
        let valid_row = val_loss.zip(val_accuracy).map(|(l, a)| row("valid", l, a, 0.0));
        log_row(&mut csv, &mut state.rows, epoch_row)?;
        if let Some(r) = valid_row {
            log_row(&mut csv, &mut state.rows, r)?;
        }
        bar.finish(&epoch_line(&record, config.epochs, config.show_perplexity));
        skips.next_epoch();
        state.history.push(record.clone());

        // Best checkpoint and early stopping on the monitored value.
        let monitored = match config.monitor {
            Monitor::ValLoss => val_loss,
            Monitor::ValAccuracy => val_accuracy.map(|a| -a),
        };
        let mut improved = false;
        if let Some(m) = monitored {
            if state.best.is_none_or(|b| m < b - config.min_delta) {
                state.best = Some(m);
                state.best_epoch = Some(epoch + 1);
                state.bad_epochs = 0;
                improved = true;
            } else {
                state.bad_epochs += 1;
            }
        }
        state.elapsed = elapsed_s;
        if partial_epoch {
            // max_steps ended the run inside the epoch: the checkpoint
            // continues that epoch, like a stop request's.
            state.partial = reading;
            state.partial_tokens = tokens;
            state.partial_seconds = train_seconds;
        } else {
            state.epoch += 1;
            state.batch = 0;
            state.partial = Reading::default();
            state.partial_tokens = 0;
            state.partial_seconds = 0.0;
        }
        // Best before last: a crash between the two resumes from the older
        // `last`, redoes this epoch and rewrites the same `best`; the other
        // order could lose this epoch's `best` for good.
        if improved {
            save(config, "best.safetensors", task, optimizer, &state, &running)?;
        }
        save(config, "last.safetensors", task, optimizer, &state, &running)?;
        if let Some(path) = &config.plot {
            plot::write_svg(path, &state.rows, "wgrnn training")?;
        }
        if partial_epoch {
            break; // max_steps reached inside the epoch
        }
        if config.patience.is_some_and(|p| state.bad_epochs > p) {
            stopped_early = true;
            if config.progress != Progress::Quiet {
                println!("early stopping: no improvement for {} epochs", state.bad_epochs);
            }
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let best = state.best_epoch.and_then(|e| state.history.iter().find(|r| r.epoch == e).cloned());
    Ok(FitReport {
        history: state.history,
        steps: state.step,
        best,
        interrupted,
        stopped_early,
        seconds,
        tokens_per_s: run_tokens as f64 / seconds.max(1e-9),
        skipped_steps: u64::from(skips.seen),
    })
}

/// Follows the optimizer's count of skipped (non-finite) steps across the
/// metric readings of one [`fit`] call.
#[derive(Debug, Default)]
struct SkipWatch {
    /// Skips seen at the last reading.
    seen: u32,
    /// Skips seen at the end of the last epoch.
    at_epoch_start: u32,
}

impl SkipWatch {
    /// Reads the guard's counters (one small readback). Under
    /// [`NonFinite::Stop`], new skips are an error naming the first one's
    /// step; otherwise returns the skips of this epoch so far. `step` is the
    /// loop's step count, `epoch` 0-based.
    fn update(&mut self, opt: &Optimizer, policy: NonFinite, step: u64, epoch: usize) -> Result<u64> {
        let steps = opt.non_finite_steps()?;
        if steps.skipped > self.seen {
            if policy == NonFinite::Stop {
                // The optimizer and the loop count the same steps, so the
                // first skip is as many steps back as their difference.
                let back = steps.first.map_or(0, |f| u64::from(opt.steps().saturating_sub(f)));
                return Err(Error::NonFinite(format!(
                    "step {} (epoch {}) had a NaN or infinite loss or gradient; its update was not applied, and \
                     the run stopped at step {step}. Lower the learning rate or clip gradients, or pass \
                     FitConfig::with_non_finite(NonFinite::SkipStep) to skip such steps and go on",
                    step.saturating_sub(back),
                    epoch + 1
                )));
            }
            self.seen = steps.skipped;
        }
        let this_epoch = self.seen - self.at_epoch_start;
        Ok(u64::from(this_epoch))
    }

    /// Starts counting a new epoch.
    fn next_epoch(&mut self) {
        self.at_epoch_start = self.seen;
    }
}

use progress::EpochBar;

/// Seconds spent in an epoch, counting the part before a resume.
struct EpochClock {
    before: f64,
    start: Instant,
}

impl EpochClock {
    fn seconds(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}

/// Training-interval rows kept for the plot (and in checkpoints); past it,
/// every other one is dropped, so a long run's state stays small while the
/// curve keeps its shape. The CSV keeps every row.
const MAX_PLOT_ROWS: usize = 4000;

fn log_row(csv: &mut Option<MetricsCsv>, rows: &mut Vec<MetricRow>, row: MetricRow) -> Result<()> {
    if let Some(c) = csv {
        c.write(&row)?;
    }
    rows.push(row);
    if rows.len() > MAX_PLOT_ROWS {
        let mut keep = false;
        rows.retain(|r| {
            keep = !keep;
            r.kind != "train" || keep
        });
    }
    Ok(())
}

/// The plain per-epoch line.
fn epoch_line(r: &EpochRecord, epochs: usize, perplexity: bool) -> String {
    let mut line =
        format!("epoch {}/{epochs}: train_loss={:.4} train_accuracy={:.4}", r.epoch, r.train_loss, r.train_accuracy);
    if let (Some(l), Some(a)) = (r.val_loss, r.val_accuracy) {
        line += &format!(" val_loss={l:.4} val_accuracy={a:.4}");
        if perplexity {
            line += &format!(" val_ppl={:.2}", l.exp());
        }
    }
    line += &format!(" lr={:.3e} tokens_per_s={:.0} seconds={:.1}", r.lr, r.tokens_per_s, r.seconds);
    if r.skipped_steps > 0 {
        line += &format!(" skipped_steps={}", r.skipped_steps);
    }
    line
}

/// Writes a checkpoint with the task's metadata and the loop state.
fn save<T: Task>(
    config: &FitConfig,
    name: &str,
    task: &T,
    opt: &mut Optimizer,
    state: &LoopState,
    running: &[(String, Tensor)],
) -> Result<()> {
    let Some(dir) = &config.checkpoint_dir else { return Ok(()) };
    let mut meta = task.metadata();
    let json = serde_json::to_string(state).map_err(|e| Error::Format(format!("trainer state: {e}")))?;
    meta.insert(TRAINER_KEY.into(), json);
    checkpoint::save_with_state(dir.join(name), task, Some(opt), &meta, running)
}

/// Loads model, optimizer, loop state and the task's running state from `path`.
fn resume<T: Task>(path: &Path, task: &mut T, opt: &mut Optimizer) -> Result<(LoopState, Vec<HostTensor>)> {
    let meta = checkpoint::metadata(path)?;
    let json = meta.get(TRAINER_KEY).ok_or_else(|| {
        Error::Format(format!("checkpoint {}: no trainer state to resume from (not written by fit)", path.display()))
    })?;
    let state: LoopState = serde_json::from_str(json)
        .map_err(|e| Error::Format(format!("checkpoint {}: bad trainer state: {e}", path.display())))?;
    checkpoint::load(path, task, Some(opt))?;
    Ok((state, checkpoint::running_state(path)?))
}
