//! What the text-classification examples (`agnews`, `imdb`, `classify`)
//! share: the model/training flags, building the classifier and optimizer,
//! running `fit`, prediction from a checkpoint, and the summary line.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wgrnn::classify::TextClassifier;
use wgrnn::data::{BatchConfig, EncodedTexts, TextBatches};
use wgrnn::models::{Pooling, SequenceClassifierConfig};
use wgrnn::optim::Optimizer;
use wgrnn::rnn::RnnMode;
use wgrnn::train::{ctrl_c_flag, fit, FitConfig, FitReport, Progress};
use wgrnn::{Device, Result};

/// Recurrent cell.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum Cell {
    /// Elman RNN with tanh.
    RnnTanh,
    /// Elman RNN with relu.
    RnnRelu,
    /// LSTM.
    Lstm,
    /// GRU.
    Gru,
}

impl Cell {
    /// The library's mode for this cell.
    pub fn mode(self) -> RnnMode {
        match self {
            Cell::RnnTanh => RnnMode::RnnTanh,
            Cell::RnnRelu => RnnMode::RnnRelu,
            Cell::Lstm => RnnMode::Lstm,
            Cell::Gru => RnnMode::Gru,
        }
    }
}

/// Pooling of the recurrent outputs.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Pool {
    /// Final hidden state (both directions).
    Last,
    /// Mean over valid steps.
    Mean,
    /// Max over valid steps.
    Max,
}

/// Optimizer.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Optim {
    /// torch.optim.Adam.
    Adam,
    /// torch.optim.RMSprop.
    Rmsprop,
    /// torch.optim.SGD.
    Sgd,
}

/// Model and training flags shared by every classification example.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    pub cell: Cell,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Both directions.
    #[arg(long)]
    pub bidirectional: bool,
    /// How the sequence becomes one vector.
    #[arg(long, value_enum, default_value = "last")]
    pub pool: Pool,
    /// Embedding dimension E.
    #[arg(long, default_value_t = 64)]
    pub embed: usize,
    /// Hidden size H.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Vocabulary size, padding and out-of-vocabulary ids included (Keras max_tokens).
    #[arg(long, default_value_t = 20000)]
    pub vocab: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Optimizer (PyTorch defaults besides the learning rate).
    #[arg(long, value_enum, default_value = "adam")]
    pub optim: Optim,
    /// Seed of the initializers, the shuffles and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Dropout between recurrent layers and before the head.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Run every row over the padded length (an unpacked nn.LSTM reading padding).
    #[arg(long)]
    pub no_pack: bool,
    /// Bucket rows of similar length into batches (windows of N batches; 0 = off).
    #[arg(long, default_value_t = 0)]
    pub bucket: usize,
    /// Global gradient-norm clipping.
    #[arg(long)]
    pub clip: Option<f32>,
    /// Early stopping: epochs without validation-loss improvement.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Train on N training rows only, drawn at random with --seed (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop after this many steps in total (quick runs).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Folder for checkpoints (best/last.safetensors) and metrics.csv.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw the training curves to OUT/training.svg.
    #[arg(long)]
    pub plot: bool,
    /// Also write OUT/last.safetensors every N steps inside an epoch, so a
    /// crash or kill loses at most N steps (resume with --resume).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Continue an interrupted run from OUT/last.safetensors.
    #[arg(long)]
    pub resume: bool,
    /// Continue from this checkpoint (written by a run with the same flags).
    #[arg(long)]
    pub resume_from: Option<PathBuf>,
    /// Print the class probabilities of this text (repeatable) with the model of --checkpoint.
    #[arg(long)]
    pub predict: Vec<String>,
    /// Print the class probabilities of each line of this file.
    #[arg(long)]
    pub predict_file: Option<PathBuf>,
    /// Checkpoint for --predict (default OUT/best.safetensors).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Milliseconds between progress readbacks (0 = every step).
    #[arg(long, default_value_t = 250, hide = true)]
    pub refresh_ms: u64,
}

impl TrainArgs {
    /// The output folder (default runs/NAME).
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name))
    }

    /// Whether this run only predicts.
    pub fn predicting(&self) -> bool {
        !self.predict.is_empty() || self.predict_file.is_some()
    }

    /// The classifier architecture for `vocab` tokens and `classes` outputs.
    pub fn model_config(&self, vocab: usize, classes: usize) -> SequenceClassifierConfig {
        SequenceClassifierConfig::new(vocab, self.embed, self.hidden, classes)
            .with_mode(self.cell.mode())
            .with_layers(self.layers)
            .with_bidirectional(self.bidirectional)
            .with_dropout(self.dropout)
            .with_padding_idx(0)
            .with_pooling(match self.pool {
                Pool::Last => Pooling::Last,
                Pool::Mean => Pooling::Mean,
                Pool::Max => Pooling::Max,
            })
            .with_seed(self.seed)
    }

    /// Batching of the training set (`--limit` rows of it).
    pub fn train_batches(&self, mut data: EncodedTexts) -> Result<TextBatches> {
        if let Some(n) = self.limit.filter(|&n| n < data.len()) {
            // A seeded sample, not the first rows: files are often sorted by label.
            let mut rng = wgrnn::rng::Rng::new(self.seed);
            let mut keys: Vec<(u64, usize)> = (0..data.len()).map(|i| (rng.next_u64(), i)).collect();
            keys.sort_unstable();
            let mut keep: Vec<usize> = keys[..n].iter().map(|&(_, i)| i).collect();
            keep.sort_unstable();
            data = EncodedTexts::new(
                keep.iter().map(|&i| data.ids[i].clone()).collect(),
                keep.iter().map(|&i| data.labels[i]).collect(),
            )?;
        }
        let config =
            BatchConfig::new(self.batch).shuffled(self.seed).with_bucketing(self.bucket).with_pack(!self.no_pack);
        TextBatches::new(data, config)
    }

    /// Batching of an evaluation set (256 rows a batch, file order).
    pub fn eval_batches(&self, data: EncodedTexts) -> Result<TextBatches> {
        TextBatches::new(data, BatchConfig::new(256).with_pack(!self.no_pack))
    }

    /// The optimizer over every parameter.
    pub fn optimizer(&self, model: &TextClassifier) -> Result<Optimizer> {
        let params = model.parameters();
        match self.optim {
            Optim::Adam => Optimizer::adam(params, self.lr),
            Optim::Rmsprop => Optimizer::rmsprop(params, self.lr),
            Optim::Sgd => Optimizer::sgd(params, self.lr),
        }
    }

    /// The fit configuration: checkpoints and metrics in OUT, Ctrl-C stops cleanly.
    pub fn fit_config(&self, name: &str) -> Result<FitConfig> {
        let out = self.out_dir(name);
        let mut c = FitConfig::new(self.epochs, self.lr)
            .with_seed(self.seed)
            .with_checkpoint_dir(&out)
            .with_metrics_csv(out.join("metrics.csv"))
            .with_stop(ctrl_c_flag()?)
            .with_progress(Progress::Bar);
        c.refresh = std::time::Duration::from_millis(self.refresh_ms);
        c.clip = self.clip;
        c.max_steps = self.max_steps;
        if let Some(p) = self.patience {
            c = c.with_early_stopping(wgrnn::train::Monitor::ValLoss, p);
        }
        if self.plot {
            c = c.with_plot(out.join("training.svg"));
        }
        if let Some(n) = self.checkpoint_every {
            c = c.with_checkpoint_every(n);
        }
        if let Some(path) = &self.resume_from {
            c = c.with_resume(path);
        } else if self.resume {
            c = c.with_resume(out.join("last.safetensors"));
        }
        Ok(c)
    }
}

/// Trains `model` and prints the summary line; returns the report.
pub fn train(
    name: &str,
    args: &TrainArgs,
    config: FitConfig,
    model: &mut TextClassifier,
    optimizer: &mut Optimizer,
    train: &TextBatches,
    test: &TextBatches,
) -> Result<FitReport> {
    let device = model.model.embedding.weight.value.device().clone();
    println!("adapter: {}", device.info());
    println!(
        "{name}: {} train rows, {} test rows, vocabulary {}, classes {:?}",
        train.data().len(),
        test.data().len(),
        model.vectorizer.vocab_size(),
        model.labels.names()
    );
    let out = args.out_dir(name);
    if config.resume.is_none() {
        // The weights training starts from: with the batch order (a seeded
        // shuffle) they let another framework replay the run step by step
        // (scripts/torch_classify.py --init OUT/init.safetensors --wgrnn-order).
        std::fs::create_dir_all(&out)
            .map_err(|e| wgrnn::Error::Config(format!("cannot create {}: {e}", out.display())))?;
        model.save(out.join("init.safetensors"))?;
    }
    let report = fit(model, optimizer, train, Some(test), &config)?;
    if report.interrupted {
        println!("interrupted: resume with --resume (checkpoint {})", out.join("last.safetensors").display());
    }
    let Some(last) = report.last() else {
        // Stopped inside the first epoch: nothing to evaluate yet.
        println!(
            "interrupted=true steps={} seconds={:.1} checkpoint={}",
            report.steps,
            report.seconds,
            out.join("last.safetensors").display()
        );
        return Ok(report);
    };
    let best = report.best.as_ref().unwrap_or(last);
    println!(
        "test_accuracy={:.4} test_loss={:.4} train_loss={:.4} train_accuracy={:.4} best_epoch={} \
         tokens_per_s={:.0} epochs={} steps={} seconds={:.1} checkpoint={}",
        last.val_accuracy.unwrap_or(f32::NAN),
        last.val_loss.unwrap_or(f32::NAN),
        last.train_loss,
        last.train_accuracy,
        best.epoch,
        report.tokens_per_s,
        last.epoch,
        report.steps,
        report.seconds,
        out.join("best.safetensors").display()
    );
    Ok(report)
}

/// `--predict` / `--predict-file`: loads the checkpoint alone and prints
/// each text's class probabilities, most probable first.
pub fn predict(device: &Device, name: &str, args: &TrainArgs) -> Result<()> {
    let path = args.checkpoint.clone().unwrap_or_else(|| args.out_dir(name).join("best.safetensors"));
    let model = TextClassifier::load(device, &path)?;
    let mut texts = args.predict.clone();
    if let Some(file) = &args.predict_file {
        let text = wgrnn::data::read_text(file)?;
        texts.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for (text, p) in texts.iter().zip(model.predict(&refs)?) {
        let mut probs = p.probabilities.clone();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let shown: Vec<String> = probs.iter().map(|(n, p)| format!("{n}={p:.4}")).collect();
        println!("{}\t{}\t{}", p.label(), shown.join(" "), text);
    }
    Ok(())
}

/// An example's `main`: opens the device, then predicts (`--predict`) or
/// runs `train`; an error is printed and the exit code is non-zero.
pub fn run(name: &str, args: &TrainArgs, train: impl FnOnce(&Device) -> Result<()>) -> std::process::ExitCode {
    let result =
        Device::new().and_then(|device| if args.predicting() { predict(&device, name, args) } else { train(&device) });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
