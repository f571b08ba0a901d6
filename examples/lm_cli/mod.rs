//! What the language-model examples (`char_lm`, `headlines`) share: model,
//! training and generation flags, building the model and optimizer,
//! running `fit`, and generation from a checkpoint.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wgrnn::lm::{AwdConfig, GenerateOptions, LanguageModelConfig, TextLm};
use wgrnn::nn::Init;
use wgrnn::ops::SampleOptions;
use wgrnn::optim::Optimizer;
use wgrnn::rnn::RnnMode;
use wgrnn::train::{ctrl_c_flag, fit, Batches, FitConfig, FitReport, Progress};
use wgrnn::{Device, Result};

/// Recurrent cell.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum Cell {
    /// LSTM.
    Lstm,
    /// GRU.
    Gru,
    /// Elman RNN with tanh.
    RnnTanh,
}

/// Flags of both language-model examples.
#[derive(Debug, Args)]
pub struct LmArgs {
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    pub cell: Cell,
    /// Stacked recurrent layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Hidden units per layer.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Embedding width.
    #[arg(long)]
    pub embed: Option<usize>,
    /// Rows per batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Global gradient-norm clipping (0 = off).
    #[arg(long)]
    pub clip: Option<f32>,
    /// Dropout after every recurrent layer (between layers and before the decoder).
    #[arg(long)]
    pub dropout: Option<f32>,
    /// AWD-LSTM regularizers (weight drop, locked and embedding dropout, AR,
    /// TAR) with fastai's dropouts times --drop-mult, tied weights (unless
    /// --untied).
    #[arg(long)]
    pub awd: bool,
    /// Scale of the AWD dropouts.
    #[arg(long, default_value_t = 1.0)]
    pub drop_mult: f32,
    /// With --awd: keep a separate decoder weight (and the last layer's
    /// --hidden) instead of tying it to the embedding.
    #[arg(long)]
    pub untied: bool,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed of the initializers, the shuffles and the dropout masks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder for checkpoints and metrics (default runs/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write OUT/training.svg.
    #[arg(long)]
    pub plot: bool,
    /// Also write OUT/last.safetensors every N steps inside an epoch, so a
    /// crash or kill loses at most N steps (resume with --resume).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Continue from OUT/last.safetensors.
    #[arg(long)]
    pub resume: bool,
    /// Only generate, from this checkpoint (default OUT/best.safetensors after training).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Text the generation continues.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this probability (1 = all).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Milliseconds between progress readbacks.
    #[arg(long, default_value_t = 250, hide = true)]
    pub refresh_ms: u64,
}

/// Defaults an example gives the model and training flags.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub layers: usize,
    pub hidden: usize,
    pub embed: usize,
    pub batch: usize,
    pub lr: f32,
    pub clip: f32,
    pub dropout: f32,
    pub epochs: usize,
}

impl LmArgs {
    /// The output folder.
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name))
    }

    /// Rows per batch.
    pub fn batch(&self, d: &Defaults) -> usize {
        self.batch.unwrap_or(d.batch)
    }

    /// The network's configuration for a vocabulary of `vocab`.
    pub fn model_config(&self, vocab: usize, d: &Defaults) -> LanguageModelConfig {
        let mode = match self.cell {
            Cell::Lstm => RnnMode::Lstm,
            Cell::Gru => RnnMode::Gru,
            Cell::RnnTanh => RnnMode::RnnTanh,
        };
        let mut c = LanguageModelConfig::new(vocab, self.embed.unwrap_or(d.embed), self.hidden.unwrap_or(d.hidden))
            .with_layers(self.layers.unwrap_or(d.layers))
            .with_mode(mode)
            .with_dropout(self.dropout.unwrap_or(d.dropout))
            .with_seed(self.seed);
        if self.awd {
            // AWD-LSTM: tied weights and a U(±0.1) embedding (so the tied
            // decoder starts with small logits).
            c = c
                .with_awd(AwdConfig::fastai(self.drop_mult))
                .with_tied_weights(!self.untied)
                .with_embedding_init(Init::Uniform(-0.1, 0.1));
        }
        c
    }

    /// Adam over every parameter.
    pub fn optimizer(&self, model: &TextLm, d: &Defaults) -> Result<Optimizer> {
        Optimizer::adam(model.parameters(), self.lr.unwrap_or(d.lr))
    }

    /// The fit configuration; `batches_per_epoch` turns --steps into epochs.
    pub fn fit_config(&self, name: &str, d: &Defaults, batches_per_epoch: usize) -> Result<FitConfig> {
        let out = self.out_dir(name);
        let epochs = match (self.steps, self.epochs) {
            (Some(s), None) => (s as usize).div_ceil(batches_per_epoch.max(1)),
            (_, Some(e)) => e,
            (None, None) => d.epochs,
        };
        let mut c = FitConfig::new(epochs.max(1), self.lr.unwrap_or(d.lr))
            .with_seed(self.seed)
            .with_checkpoint_dir(&out)
            .with_metrics_csv(out.join("metrics.csv"))
            .with_stop(ctrl_c_flag()?)
            .with_progress(Progress::Bar);
        c.refresh = std::time::Duration::from_millis(self.refresh_ms);
        let clip = self.clip.unwrap_or(d.clip);
        if clip > 0.0 {
            c = c.with_clip(clip);
        }
        c.max_steps = self.steps;
        if self.plot {
            c = c.with_plot(out.join("training.svg"));
        }
        if let Some(n) = self.checkpoint_every {
            c = c.with_checkpoint_every(n);
        }
        if self.resume {
            c = c.with_resume(out.join("last.safetensors"));
        }
        Ok(c)
    }

    /// Sampling options from the flags.
    pub fn sample(&self) -> SampleOptions {
        SampleOptions {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
            ..SampleOptions::default()
        }
    }

    /// Generation options for `max_len` tokens.
    pub fn generate_options(&self, max_len: usize) -> GenerateOptions {
        GenerateOptions { sample: self.sample(), ..GenerateOptions::new(max_len) }
    }
}

/// Trains `model` on `train`, validating on `valid` every epoch.
pub fn train<B: Batches<Batch = wgrnn::lm::LmBatch>>(
    model: &mut TextLm,
    optimizer: &mut Optimizer,
    train: &B,
    valid: &B,
    config: &FitConfig,
) -> Result<FitReport> {
    let device = model.model.embedding.weight.value.device().clone();
    println!("adapter: {}", device.info());
    fit(model, optimizer, train, Some(valid), config)
}

/// An example's `main`: opens the device and runs `body`; an error is
/// printed and the exit code is non-zero.
pub fn run(body: impl FnOnce(&Device) -> Result<()>) -> std::process::ExitCode {
    match Device::new().and_then(|device| body(&device)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
