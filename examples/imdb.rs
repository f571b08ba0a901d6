//! IMDB sentiment (neg/pos) with a recurrent network: the Keras IMDB
//! lesson. `--maxlen N` keeps each review's last N tokens (Keras
//! `pad_sequences` truncates at the front by default). `--preset seed001`
//! reproduces the Keras notebook: SimpleRNN(5, relu) with identity
//! recurrent weights, N(0, 0.001) input weights and one zero bias, Keras's
//! U(−0.05, 0.05) embedding of 50, a Dense(1) sigmoid head with glorot
//! weights, vocabulary 20,000, last 30 tokens, Keras's RMSprop (lr 1e-4,
//! rho 0.9, ε = 1e-7 inside the square root), batch 32, 10 epochs.
//!
//! `cargo run --release --example imdb` runs on a bundled sample
//! (data/imdb_sample); `--data DIR` reads a folder with `train.csv.gz` and
//! `test.csv.gz` as in the shared IMDB data (`id,rating,label,text`).

mod text_cli;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use text_cli::{Cell, TrainArgs};
use wgrnn::classify::TextClassifier;
use wgrnn::data::{read_csv, CsvFormat, LabelSet, TextVectorizer, TextVectorizerConfig, Truncate};
use wgrnn::nn::{Init, RnnInit};
use wgrnn::optim::Optimizer;

/// Recipes that set every model and optimizer flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    /// The Keras IMDB SimpleRNN notebook (see the example's docs).
    Seed001,
}

/// IMDB sentiment classification with a recurrent network.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Folder holding train.csv.gz and test.csv.gz (`id,rating,label,text`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/imdb_sample"))]
    data: PathBuf,
    /// Keep each review's last N tokens.
    #[arg(long)]
    maxlen: Option<usize>,
    /// A recipe that sets the model and optimizer flags.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    #[command(flatten)]
    train: TrainArgs,
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let defaulted = |id: &str| matches.value_source(id) != Some(ValueSource::CommandLine);
    let mut args = cli.train.clone();
    let mut maxlen = cli.maxlen;
    if let Some(Preset::Seed001) = cli.preset {
        // The recipe's values, except where a flag was given explicitly.
        if defaulted("cell") {
            args.cell = Cell::RnnRelu;
        }
        let set = |id: &str, field: &mut usize, value: usize| {
            if defaulted(id) {
                *field = value;
            }
        };
        set("hidden", &mut args.hidden, 5);
        set("embed", &mut args.embed, 50);
        set("vocab", &mut args.vocab, 20000);
        set("batch", &mut args.batch, 32);
        set("epochs", &mut args.epochs, 10);
        if defaulted("lr") {
            args.lr = 1e-4;
        }
        if defaulted("maxlen") {
            maxlen = Some(30);
        }
    }
    text_cli::run("imdb", &args, |device| {
        let train_path = cli.data.join("train.csv.gz");
        let test_path = cli.data.join("test.csv.gz");
        let train = read_csv(&train_path, &CsvFormat::imdb())?;
        let test = read_csv(&test_path, &CsvFormat::imdb())?;
        let mut vconfig = TextVectorizerConfig::words().with_max_tokens(args.vocab).with_truncate(Truncate::KeepBack);
        if let Some(n) = maxlen {
            vconfig = vconfig.with_output_sequence_length(n);
        }
        let vectorizer = TextVectorizer::adapt(vconfig, train.examples.iter().map(|e| e.text.as_str()))?;
        let labels = LabelSet::from_labels(train.examples.iter().map(|e| e.label.as_str()))?;
        let seed001 = cli.preset.is_some();
        // The Keras recipe has one sigmoid output; otherwise one logit per class.
        let classes = if seed001 { 1 } else { labels.len() };
        let mut config = args.model_config(vectorizer.vocab_size(), classes);
        if seed001 {
            config = config
                .with_init(RnnInit::Identity { input_std: 0.001 })
                .with_embedding_init(Init::Uniform(-0.05, 0.05))
                .with_head_init(Init::GlorotUniform);
            config.padding_idx = None; // Keras's Embedding has no padding row
        }
        let mut model = TextClassifier::new(device, vectorizer, labels, config)?;
        let train_set = args.train_batches(model.encode(&train.file, &train.examples)?)?;
        let test_set = args.eval_batches(model.encode(&test.file, &test.examples)?)?;
        let mut optimizer = if seed001 {
            // Keras's SimpleRNN has one bias: keep torch-style bias_hh at
            // zero by leaving it out of the optimizer.
            let params = model.parameters().into_iter().filter(|(n, _)| !n.starts_with("rnn.bias_hh")).collect();
            Optimizer::rmsprop_keras(params, args.lr)?
        } else {
            args.optimizer(&model)?
        };
        let fit_config = args.fit_config("imdb")?;
        text_cli::train("imdb", &args, fit_config, &mut model, &mut optimizer, &train_set, &test_set)?;
        Ok(())
    })
}
