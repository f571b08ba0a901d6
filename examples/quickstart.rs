//! A user's own text classifier in 20 lines: data → vectorizer → model →
//! fit → predict (the program README.md shows).
//!
//! `cargo run --release --example quickstart`

use wgrnn::classify::TextClassifier;
use wgrnn::data::TextVectorizerConfig;
use wgrnn::data::{read_csv, split_every_fifth, BatchConfig, CsvFormat, LabelSet, TextBatches, TextVectorizer};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::optim::Optimizer;
use wgrnn::train::{fit, FitConfig};

fn main() -> wgrnn::Result<()> {
    let device = wgrnn::Device::new()?;
    let rows = read_csv("data/ag_news/test.csv.gz", &CsvFormat::ag_news())?;
    let (train, test) = split_every_fifth(rows.examples);
    let words = TextVectorizerConfig::words().with_max_tokens(20_000);
    let vectorizer = TextVectorizer::adapt(words, train.iter().map(|e| e.text.as_str()))?;
    let labels = LabelSet::from_labels(train.iter().map(|e| e.label.as_str()))?;
    let config = SequenceClassifierConfig::new(vectorizer.vocab_size(), 64, 32, labels.len()).with_padding_idx(0);
    let mut model = TextClassifier::new(&device, vectorizer, labels, config)?;
    let train = TextBatches::new(model.encode(&rows.file, &train)?, BatchConfig::new(16).shuffled(0))?;
    let test = TextBatches::new(model.encode(&rows.file, &test)?, BatchConfig::new(256))?;
    let mut optimizer = Optimizer::adam(model.parameters(), 1e-3)?;
    let report = fit(&mut model, &mut optimizer, &train, Some(&test), &FitConfig::new(2, 1e-3))?;
    model.save("agnews.safetensors")?;
    let model = TextClassifier::load(&device, "agnews.safetensors")?;
    let p = &model.predict(&["Oil prices fall as OPEC raises output"])?[0];
    println!(
        "test_accuracy={:.4} prediction={}",
        report.last().map_or(0.0, |r| r.val_accuracy.unwrap_or(0.0)),
        p.label()
    );
    Ok(())
}
