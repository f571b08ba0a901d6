//! The fit loop's cost contract, counted on the device (its own test binary,
//! so no other test shares the counters): every training step is one
//! command buffer, and the loss/accuracy shown by the progress display are
//! read back only when the refresh interval has passed and at epoch ends —
//! never per step.

mod common;

use std::time::Duration;

use common::device;
use wgrnn::classify::TextClassifier;
use wgrnn::data::{BatchConfig, EncodedTexts, LabelSet, TextBatches, TextVectorizer, TextVectorizerConfig};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::optim::Optimizer;
use wgrnn::train::{fit, FitConfig, Progress};

/// (submissions, readbacks) of a 2-epoch run over `rows` rows in batches of 8.
fn run(rows: usize) -> (u64, u64, u64) {
    let dev = device();
    let words: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
    let v = TextVectorizer::from_vocabulary(TextVectorizerConfig::words(), words).unwrap();
    let labels = LabelSet::from_labels(["x", "y"]).unwrap();
    let config = SequenceClassifierConfig::new(v.vocab_size(), 8, 8, 2).with_seed(1);
    let mut model = TextClassifier::new(dev, v, labels, config).unwrap();
    let ids: Vec<Vec<u32>> = (0..rows).map(|i| (0..3 + i % 5).map(|t| 2 + ((i + t) % 20) as u32).collect()).collect();
    let ys = (0..rows).map(|i| (i % 2) as u32).collect();
    let train = TextBatches::new(EncodedTexts::new(ids, ys).unwrap(), BatchConfig::new(8).shuffled(1)).unwrap();
    let mut opt = Optimizer::adam(model.parameters(), 1e-3).unwrap();
    let mut config = FitConfig::new(2, 1e-3).with_progress(Progress::Quiet);
    config.refresh = Duration::from_secs(3600);
    // Warm-up: pipelines compile and the pool fills outside the count.
    fit(&mut model, &mut opt, &train, None, &config.clone().with_max_steps(2)).unwrap();
    let (s0, r0) = (dev.submission_count(), dev.readback_count());
    let report = fit(&mut model, &mut opt, &train, None, &config).unwrap();
    (report.steps, dev.submission_count() - s0, dev.readback_count() - r0)
}

#[test]
fn one_submission_per_step_and_no_per_step_readback() {
    let (steps_a, submits_a, reads_a) = run(64);
    let (steps_b, submits_b, reads_b) = run(256);
    assert_eq!((steps_a, steps_b), (16, 64));
    // Readbacks depend on epochs, not steps: the same for 4× the steps
    // (per epoch: the last step's display reading and the epoch summary,
    // each reading the loss sums, the metric sums and the non-finite
    // guard's counters).
    assert_eq!(reads_a, reads_b, "readbacks grew with the number of steps");
    assert!(reads_a <= 12, "{reads_a} readbacks for 2 epochs");
    // One command buffer per step; each readback submits its copy.
    assert_eq!(submits_a, steps_a + reads_a);
    assert_eq!(submits_b, steps_b + reads_b);
}
