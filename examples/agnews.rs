//! AG News topic classification (World, Sports, Business, Sci/Tech): the
//! classic RNN lesson end to end on real data. Reads the CSV, learns the
//! vocabulary from the training part, trains embedding → RNN/LSTM/GRU →
//! linear with `fit`, and ends with a `key=value` summary line.
//!
//! `cargo run --release --example agnews` trains on the bundled file
//! (data/ag_news/test.csv.gz, the 7,600-row AG News test split; row i goes
//! to our test part when i % 5 == 4). `--data PATH` reads another file in
//! the same format (e.g. the full 120,000-row train.csv). `--help` lists
//! every flag; `--predict "text" --checkpoint runs/agnews/best.safetensors`
//! classifies with the saved model alone.

mod text_cli;

use std::path::PathBuf;

use clap::Parser;
use text_cli::TrainArgs;
use wgrnn::classify::TextClassifier;
use wgrnn::data::AG_NEWS_CLASSES;
use wgrnn::data::{read_csv, split_every_fifth, CsvFormat, LabelSet, TextVectorizer, TextVectorizerConfig};

/// AG News topic classification with a recurrent network.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// AG News CSV (`class,title,description`, no header; .gz is read directly).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ag_news/test.csv.gz"))]
    data: PathBuf,
    #[command(flatten)]
    train: TrainArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = &cli.train;
    text_cli::run("agnews", args, |device| {
        let file = cli.data.display().to_string();
        let rows = read_csv(&cli.data, &CsvFormat::ag_news())?;
        let (train, test) = split_every_fifth(rows.examples);
        let vectorizer = TextVectorizer::adapt(
            TextVectorizerConfig::words().with_max_tokens(args.vocab),
            train.iter().map(|e| e.text.as_str()),
        )?;
        let labels = LabelSet::from_labels(train.iter().map(|e| e.label.as_str()))?;
        let labels = if labels.len() == AG_NEWS_CLASSES.len() {
            labels.with_names(AG_NEWS_CLASSES.iter().map(|s| s.to_string()).collect())?
        } else {
            labels
        };
        let config = args.model_config(vectorizer.vocab_size(), labels.len());
        let mut model = TextClassifier::new(device, vectorizer, labels, config)?;
        let train_set = args.train_batches(model.encode(&file, &train)?)?;
        let test_set = args.eval_batches(model.encode(&file, &test)?)?;
        let mut optimizer = args.optimizer(&model)?;
        let fit_config = args.fit_config("agnews")?;
        text_cli::train("agnews", args, fit_config, &mut model, &mut optimizer, &train_set, &test_set)?;
        Ok(())
    })
}
