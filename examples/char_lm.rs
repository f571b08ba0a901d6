//! Character-level language model on Tiny Shakespeare (char-rnn's lesson):
//! the text cut into B parallel streams, trained with truncated BPTT and
//! carried state, validation loss in nats (and bits) per character, and a
//! sample generated from a prompt.
//!
//! `cargo run --release --example char_lm` trains briefly on the bundled
//! sample (data/tiny_shakespeare/sample.txt.gz). The full run of the
//! README: `--data ../shared/data/tiny_shakespeare/input.txt.gz --steps 2000`.
//! Split: the first 90% of characters train, the last 10% validate.
//! `--generate --checkpoint runs/char_lm/best.safetensors --prompt "ROMEO:"
//! --len 500 --temperature 0.8 --top-k 40` samples from a saved model.

mod lm_cli;

use std::path::PathBuf;

use clap::Parser;
use lm_cli::{Defaults, LmArgs};
use wgrnn::data::{read_text, TextVectorizer, TextVectorizerConfig};
use wgrnn::lm::{Bptt, StreamBatches, TextLm};

/// Character-level LSTM language model.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Text file (.gz read directly).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tiny_shakespeare/sample.txt.gz"))]
    data: PathBuf,
    /// Truncated-BPTT window (characters).
    #[arg(long, default_value_t = 100)]
    bptt: usize,
    /// AWD-LSTM's variable BPTT length (with --awd it is on).
    #[arg(long)]
    variable_bptt: bool,
    /// Only generate from --checkpoint.
    #[arg(long)]
    generate: bool,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    len: usize,
    #[command(flatten)]
    lm: LmArgs,
}

const DEFAULTS: Defaults =
    Defaults { layers: 2, hidden: 256, embed: 64, batch: 32, lr: 2e-3, clip: 1.0, dropout: 0.0, epochs: 1 };

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    lm_cli::run(|device| {
        let args = &cli.lm;
        let out = args.out_dir("char_lm");
        if cli.generate {
            let path = args.checkpoint.clone().unwrap_or_else(|| out.join("best.safetensors"));
            return print_sample(&TextLm::load(device, path)?, &cli);
        }
        let text = read_text(&cli.data)?;
        let chars: Vec<char> = text.chars().collect();
        let split = chars.len() * 9 / 10;
        let train_text: String = chars[..split].iter().collect();
        let valid_text: String = chars[split..].iter().collect();
        let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::characters(), [train_text.as_str()])?;
        let config = args.model_config(vectorizer.vocab_size(), &DEFAULTS);
        let mut model = TextLm::new(device, vectorizer, config)?;
        let batch = args.batch(&DEFAULTS);
        let bptt =
            if cli.variable_bptt || args.awd { Bptt::variable(cli.bptt, args.seed) } else { Bptt::fixed(cli.bptt) };
        let train = StreamBatches::new(&model.vectorizer.encode(&train_text), batch, bptt)?;
        let valid = StreamBatches::new(&model.vectorizer.encode(&valid_text), batch, Bptt::fixed(cli.bptt))?;
        println!(
            "char_lm: {} train / {} validation characters, vocabulary {}, {} batches per epoch",
            train_text.len(),
            valid_text.len(),
            model.vectorizer.vocab_size(),
            train.epoch(0).len()
        );
        let mut optimizer = args.optimizer(&model, &DEFAULTS)?;
        let config = args.fit_config("char_lm", &DEFAULTS, train.epoch(0).len())?;
        let report = lm_cli::train(&mut model, &mut optimizer, &train, &valid, &config)?;
        let Some(last) = report.last() else {
            println!("interrupted=true steps={} seconds={:.1}", report.steps, report.seconds);
            return Ok(());
        };
        let val = last.val_loss.unwrap_or(f32::NAN);
        println!(
            "val_nats_per_char={val:.4} val_bits_per_char={:.4} train_loss={:.4} tokens_per_s={:.0} epochs={} \
             steps={} seconds={:.1} checkpoint={}",
            val / std::f32::consts::LN_2,
            last.train_loss,
            report.tokens_per_s,
            last.epoch,
            report.steps,
            report.seconds,
            out.join("last.safetensors").display()
        );
        print_sample(&model, &cli)
    })
}

/// Prints `--len` characters continuing `--prompt` (default: a newline).
fn print_sample(model: &TextLm, cli: &Cli) -> wgrnn::Result<()> {
    if cli.len == 0 {
        return Ok(());
    }
    let prompt = if cli.lm.prompt.is_empty() { "\n" } else { cli.lm.prompt.as_str() };
    // An unseen character decodes as "[UNK]": not text either.
    let mut options = cli.lm.generate_options(cli.len);
    options.sample = options.sample.with_banned(&[wgrnn::data::TextVectorizer::OOV])?;
    let rows = model.generate_text(prompt, 1, &options)?;
    println!("--- sample (temperature {}, top-k {}) ---", cli.lm.temperature, cli.lm.top_k);
    println!("{prompt}{}", rows[0].concat());
    Ok(())
}
