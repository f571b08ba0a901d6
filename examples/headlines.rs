//! Word-level language model of news headlines that then writes new ones
//! (the PyTorch Lightning / fastai lesson: "generate 20 headlines of 4 to
//! 15 words"). Each headline is `<bos> w1 … wn <eos>`, one packed row with
//! zero initial state; every next token is predicted; the validation
//! perplexity is printed every epoch.
//!
//! `cargo run --release --example headlines` trains on the titles of the
//! bundled AG News file (row i → validation when i % 5 == 4); `--csv FILE
//! --col NAME` reads any CSV of headlines. `--awd` adds AWD-LSTM's
//! regularizers (`--drop-mult` scales them). `--checkpoint PATH
//! --generate 20` writes headlines from a saved model alone.

mod lm_cli;

use std::path::PathBuf;

use clap::Parser;
use lm_cli::{Defaults, LmArgs};
use wgrnn::data::{read_csv, split_every_fifth, Cleanup, Column, CsvFormat, EmptyText};
use wgrnn::data::{TextVectorizer, TextVectorizerConfig};
use wgrnn::lm::{GenerateOptions, SentenceBatches, TextLm};

/// Word-level LSTM language model of headlines.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// AG News CSV (`class,title,description`); its titles are the headlines.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ag_news/test.csv.gz"))]
    data: PathBuf,
    /// Any CSV of headlines instead (with a header row), read from --col.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Column of --csv holding the headline (name or 0-based index).
    #[arg(long, default_value = "title")]
    col: String,
    /// Headlines to generate after training (or from --checkpoint alone).
    #[arg(long, default_value_t = 20)]
    generate: usize,
    /// Fewest words per generated headline.
    #[arg(long, default_value_t = 4)]
    min_words: usize,
    /// Most words per generated headline.
    #[arg(long, default_value_t = 15)]
    max_words: usize,
    /// Use only the first N headlines of the file (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Let generated headlines contain the out-of-vocabulary token (banned by default:
    /// a headline of `[UNK]`s says nothing).
    #[arg(long)]
    allow_unk: bool,
    #[command(flatten)]
    lm: LmArgs,
}

const DEFAULTS: Defaults =
    Defaults { layers: 2, hidden: 256, embed: 128, batch: 64, lr: 2e-3, clip: 1.0, dropout: 0.3, epochs: 10 };

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    lm_cli::run(|device| {
        let args = &cli.lm;
        if let Some(path) = &args.checkpoint {
            return print_headlines(&TextLm::load(device, path)?, &cli);
        }
        let (path, format) = match &cli.csv {
            Some(p) => {
                let col = Column::parse(&cli.col);
                (p.clone(), CsvFormat::new(col.clone(), col).with_header(true))
            }
            None => {
                (cli.data.clone(), CsvFormat::new(Column::Index(1), Column::Index(0)).with_cleanup(Cleanup::AgNews))
            }
        };
        let mut rows = read_csv(&path, &format.with_empty(EmptyText::Skip))?.examples;
        rows.truncate(cli.limit.unwrap_or(usize::MAX));
        let (train, valid) = split_every_fifth(rows);
        let vectorizer = TextVectorizer::adapt(
            TextVectorizerConfig::words().with_min_count(2).with_specials(&["<bos>", "<eos>"]),
            train.iter().map(|e| e.text.as_str()),
        )?;
        let (bos, eos) = (vectorizer.id("<bos>").unwrap_or(2), vectorizer.id("<eos>").unwrap_or(3));
        let sentences = |part: &[wgrnn::data::Example]| -> Vec<Vec<u32>> {
            part.iter()
                .map(|e| {
                    let mut ids = vec![bos];
                    ids.extend(vectorizer.encode(&e.text));
                    ids.push(eos);
                    ids
                })
                .collect()
        };
        let batch = args.batch(&DEFAULTS);
        let train_set = SentenceBatches::new(sentences(&train), batch, Some(args.seed))?;
        let valid_set = SentenceBatches::new(sentences(&valid), 256, None)?;
        println!(
            "headlines: {} train / {} validation headlines ({} / {} tokens to predict), vocabulary {}",
            train.len(),
            valid.len(),
            train_set.targets_per_epoch(),
            valid_set.targets_per_epoch(),
            vectorizer.vocab_size()
        );
        let config = args.model_config(vectorizer.vocab_size(), &DEFAULTS);
        let mut model = TextLm::new(device, vectorizer, config)?;
        let mut optimizer = args.optimizer(&model, &DEFAULTS)?;
        let fit_config = args.fit_config("headlines", &DEFAULTS, train_set.epoch(0).len())?.with_perplexity(true);
        let report = lm_cli::train(&mut model, &mut optimizer, &train_set, &valid_set, &fit_config)?;
        let (Some(last), Some(best)) = (report.last(), report.best.as_ref()) else {
            println!("interrupted=true steps={} seconds={:.1}", report.steps, report.seconds);
            return Ok(());
        };
        let ppl = |r: &wgrnn::train::EpochRecord| r.val_loss.map_or(f32::NAN, f32::exp);
        println!(
            "best_val_ppl={:.2} best_epoch={} val_ppl={:.2} train_loss={:.4} tokens_per_s={:.0} epochs={} steps={} \
             seconds={:.1} checkpoint={}",
            ppl(best),
            best.epoch,
            ppl(last),
            last.train_loss,
            report.tokens_per_s,
            last.epoch,
            report.steps,
            report.seconds,
            args.out_dir("headlines").join("best.safetensors").display()
        );
        // Generate from the best epoch's weights, as the lesson does.
        let best_model = TextLm::load(device, args.out_dir("headlines").join("best.safetensors"))?;
        print_headlines(&best_model, &cli)
    })
}

/// Prints `--generate` headlines of `--min-words`..`--max-words` words.
fn print_headlines(model: &TextLm, cli: &Cli) -> wgrnn::Result<()> {
    if cli.generate == 0 {
        return Ok(());
    }
    let eos = model.special("<eos>").ok_or_else(|| wgrnn::Error::Config("the vocabulary has no <eos>".into()))?;
    let prompt_words = model.vectorizer.tokens(&cli.lm.prompt).len();
    let mut options = GenerateOptions {
        max_len: cli.max_words.saturating_sub(prompt_words) + 1,
        min_len: cli.min_words.saturating_sub(prompt_words),
        stop: vec![eos],
        ..cli.lm.generate_options(0)
    };
    if !cli.allow_unk {
        options.sample = options.sample.with_banned(&[wgrnn::data::TextVectorizer::OOV])?;
    }
    println!("--- {} generated headlines (temperature {}) ---", cli.generate, cli.lm.temperature);
    for words in model.generate_text(&cli.lm.prompt, cli.generate, &options)? {
        let words: Vec<&str> =
            words.iter().map(String::as_str).take(cli.max_words - prompt_words.min(cli.max_words)).collect();
        let prompt = model.vectorizer.standardize(&cli.lm.prompt);
        println!(
            "{}",
            [prompt.trim(), &words.join(" ")].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}
