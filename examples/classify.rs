//! Train a text classifier on your own CSV: pick the text column(s) and the
//! label column by name or 0-based index; labels are any strings (sorted
//! numerically when they are all integers, else alphabetically) and become
//! the classes. Test on another file (`--test FILE`) or a seeded random
//! part of the data (`--split FRACTION`, default 0.2).
//!
//! ```text
//! cargo run --release --example classify -- --data reviews.csv --header \
//!     --text-col review --label-col stars --split 0.1 --epochs 3
//! cargo run --release --example classify -- --predict "great stuff" \
//!     --checkpoint runs/classify/best.safetensors
//! ```
//! With no `--data` it trains on the bundled IMDB sample
//! (data/imdb_sample/train.csv.gz: header, columns `text` and `label`).

mod text_cli;

use std::path::PathBuf;

use clap::Parser;
use text_cli::TrainArgs;
use wgrnn::classify::TextClassifier;
use wgrnn::data::{read_csv, split_fraction, Column, CsvFormat, EmptyText, LabelSet, TextVectorizer};
use wgrnn::data::{TextVectorizerConfig, Truncate};
use wgrnn::Error;

/// Text classification on any CSV file.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The CSV file (.gz is read directly). Default: the bundled IMDB sample.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The first line holds column names.
    #[arg(long)]
    header: bool,
    /// Text column(s), by name or 0-based index; several are joined with a space.
    #[arg(long = "text-col", value_delimiter = ',')]
    text_col: Vec<String>,
    /// Label column, by name or 0-based index.
    #[arg(long = "label-col")]
    label_col: Option<String>,
    /// Field delimiter.
    #[arg(long, default_value = ",")]
    delimiter: char,
    /// Test file in the same format (default: --split of the data).
    #[arg(long)]
    test: Option<PathBuf>,
    /// Fraction of the data held out for testing when there is no --test.
    #[arg(long, default_value_t = 0.2)]
    split: f64,
    /// Skip rows with an empty text (counted) instead of stopping with an error.
    #[arg(long)]
    skip_empty: bool,
    /// Keep each text's first N tokens (or the last N with --keep-end).
    #[arg(long)]
    maxlen: Option<usize>,
    /// With --maxlen, keep the end of long texts instead of the beginning.
    #[arg(long)]
    keep_end: bool,
    #[command(flatten)]
    train: TrainArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = &cli.train;
    text_cli::run("classify", args, |device| {
        let (data, format) = match &cli.data {
            None => (
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/imdb_sample/train.csv.gz")),
                CsvFormat::new(Column::parse("text"), Column::parse("label")).with_header(true),
            ),
            Some(path) => {
                let (Some(label), false) = (&cli.label_col, cli.text_col.is_empty()) else {
                    return Err(Error::Config("--data needs --text-col and --label-col".into()));
                };
                let text = cli.text_col.iter().map(|c| Column::parse(c)).collect();
                let delimiter = u8::try_from(cli.delimiter)
                    .map_err(|_| Error::Config(format!("--delimiter {:?} is not one byte", cli.delimiter)))?;
                let f = CsvFormat::new(Column::parse(&cli.text_col[0]), Column::parse(label))
                    .with_text_columns(text)
                    .with_header(cli.header)
                    .with_delimiter(delimiter);
                (path.clone(), f)
            }
        };
        let format = format.with_empty(if cli.skip_empty { EmptyText::Skip } else { EmptyText::Error });
        let rows = read_csv(&data, &format)?;
        if rows.skipped_empty > 0 {
            println!("skipped {} rows with an empty text in {}", rows.skipped_empty, rows.file);
        }
        let (train, test, test_file) = match &cli.test {
            Some(path) => {
                let t = read_csv(path, &format)?;
                (rows.examples, t.examples, t.file)
            }
            None => {
                let (train, test) = split_fraction(rows.examples, cli.split, args.seed)?;
                (train, test, rows.file.clone())
            }
        };
        let mut vconfig = TextVectorizerConfig::words().with_max_tokens(args.vocab);
        if let Some(n) = cli.maxlen {
            vconfig = vconfig.with_output_sequence_length(n).with_truncate(if cli.keep_end {
                Truncate::KeepBack
            } else {
                Truncate::KeepFront
            });
        }
        let vectorizer = TextVectorizer::adapt(vconfig, train.iter().map(|e| e.text.as_str()))?;
        let labels = LabelSet::from_labels(train.iter().map(|e| e.label.as_str()))?;
        let config = args.model_config(vectorizer.vocab_size(), labels.len());
        let mut model = TextClassifier::new(device, vectorizer, labels, config)?;
        let train_set = args.train_batches(model.encode(&rows.file, &train)?)?;
        let test_set = args.eval_batches(model.encode(&test_file, &test)?)?;
        let mut optimizer = args.optimizer(&model)?;
        let fit_config = args.fit_config("classify")?;
        text_cli::train("classify", args, fit_config, &mut model, &mut optimizer, &train_set, &test_set)?;
        Ok(())
    })
}
