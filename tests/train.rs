//! The `fit` loop and the text classifier: learning, evaluation, batching,
//! checkpoints with their metadata, stop-and-resume bit for bit, early
//! stopping, step limits, diverged losses, metrics CSV and the SVG plot.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{assert_close_scalar, device};
use wgrnn::autograd::{LossVars, Tape};
use wgrnn::classify::TextClassifier;
use wgrnn::data::{BatchConfig, EncodedTexts, LabelSet, TextBatch, TextBatches, TextVectorizer, TextVectorizerConfig};
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{named_parameters, Module, Parameter};
use wgrnn::optim::Optimizer;
use wgrnn::rng::Rng;
use wgrnn::train::{evaluate, fit, FitConfig, Monitor, Progress, StopFlag, Task};
use wgrnn::{checkpoint, Error};

/// `evaluate`'s loss (an f32 row-weighted mean of 4 batch losses) against
/// the same batch losses averaged in f64, relative: a few roundings.
/// Measured worst: 6.0e-8 on lavapipe and on llvmpipe GL over 1
/// comparison; this bound is 10× that.
const EVAL_LOSS_TOL: f64 = 6e-7;
/// A prediction's class probabilities (an f32 softmax over 2 classes)
/// summed against 1: one or two roundings. Measured worst: 6.0e-8 on
/// lavapipe and on llvmpipe GL over 4 comparisons; this bound is 10× that.
const PROBABILITY_SUM_TOL: f32 = 6e-7;

/// A fresh folder under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Words w2..w9 plus the two markers `a` and `b`; the label says whether
/// `a` comes before `b` (the a-before-b task, as text).
fn vectorizer() -> TextVectorizer {
    let words = ["a", "b", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"].map(String::from).to_vec();
    TextVectorizer::from_vocabulary(TextVectorizerConfig::words(), words).unwrap()
}

fn labels() -> LabelSet {
    LabelSet::from_labels(["after", "before"]).unwrap()
}

/// `n` texts of the a-before-b task with lengths 4..=12, as token ids.
fn task_data(v: &TextVectorizer, n: usize, seed: u64) -> EncodedTexts {
    let mut rng = Rng::new(seed);
    let (mut ids, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let len = 4 + (rng.next_u64() % 9) as usize;
        let mut words: Vec<String> = (0..len).map(|_| format!("w{}", 2 + rng.next_u64() % 8)).collect();
        let pa = (rng.next_u64() % len as u64) as usize;
        let mut pb = (rng.next_u64() % (len as u64 - 1)) as usize;
        pb += usize::from(pb >= pa);
        words[pa] = "a".into();
        words[pb] = "b".into();
        ids.push(v.encode(&words.join(" ")));
        ys.push(u32::from(pa < pb));
    }
    EncodedTexts::new(ids, ys).unwrap()
}

fn classifier(seed: u64) -> TextClassifier {
    let v = vectorizer();
    let config = SequenceClassifierConfig::new(v.vocab_size(), 16, 24, 2).with_padding_idx(0).with_seed(seed);
    TextClassifier::new(device(), v, labels(), config).unwrap()
}

fn quiet(epochs: usize, lr: f32) -> FitConfig {
    FitConfig::new(epochs, lr).with_progress(Progress::Quiet).with_seed(9)
}

fn weights(m: &dyn Module) -> Vec<Vec<f32>> {
    named_parameters(m).iter().map(|(_, p)| p.value.to_vec().unwrap()).collect()
}

#[test]
fn fit_learns_and_logs_csv_and_svg() {
    let mut model = classifier(1);
    let train = TextBatches::new(task_data(&model.vectorizer, 512, 1), BatchConfig::new(32).shuffled(4)).unwrap();
    let test = TextBatches::new(task_data(&model.vectorizer, 256, 2), BatchConfig::new(128)).unwrap();
    let before = evaluate(&mut model, &test).unwrap();
    let dir = temp_dir("learns");
    let mut opt = Optimizer::adam(model.parameters(), 1e-2).unwrap();
    let config = quiet(4, 1e-2)
        .with_metrics_csv(dir.join("metrics.csv"))
        .with_plot(dir.join("training.svg"))
        .with_checkpoint_dir(dir.join("ckpt"));
    let report = fit(&mut model, &mut opt, &train, Some(&test), &config).unwrap();
    assert_eq!(report.history.len(), 4);
    assert_eq!(report.steps, 4 * 16);
    let last = report.last().unwrap();
    let after = evaluate(&mut model, &test).unwrap();
    // The loop's own evaluation is the same computation as evaluate().
    assert_eq!(last.val_loss, Some(after.loss));
    assert_eq!(after.count, 256);
    assert!(after.loss < 0.5 * before.loss, "loss {} -> {}", before.loss, after.loss);
    assert!(after.accuracy > 0.9, "accuracy {}", after.accuracy);
    assert!(report.history[0].train_loss > last.train_loss);

    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "kind,epoch,step,progress,loss,accuracy,lr,tokens_per_s,elapsed_s");
    let kinds: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "epoch").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "valid").count(), 4);
    assert!(kinds.contains(&"train"));
    let svg = std::fs::read_to_string(dir.join("training.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("accuracy"), "not a curve plot");
    assert!(dir.join("ckpt/last.safetensors").exists() && dir.join("ckpt/best.safetensors").exists());
}

#[test]
fn evaluate_equals_the_mean_over_batches() {
    let mut model = classifier(2);
    let data = task_data(&model.vectorizer, 100, 3);
    let batches = TextBatches::new(data, BatchConfig::new(30)).unwrap();
    let e = evaluate(&mut model, &batches).unwrap();
    let (mut loss_sum, mut correct) = (0.0f64, 0.0f64);
    for b in batches.epoch(0) {
        let mut tape = Tape::eval(device());
        let l = model.loss(&mut tape, &b).unwrap();
        loss_sum += f64::from(l.value(&tape).unwrap()) * b.rows() as f64;
        correct += f64::from(l.correct().unwrap());
    }
    let want = loss_sum / 100.0;
    assert_close_scalar("evaluate: mean loss over batches", f64::from(e.loss), want, want.abs(), EVAL_LOSS_TOL);
    assert_eq!(e.accuracy, (correct / 100.0) as f32);
}

/// A task that raises a stop flag during its `at`-th loss (1-based).
struct StopAt {
    inner: TextClassifier,
    calls: usize,
    at: usize,
    flag: StopFlag,
}

impl Module for StopAt {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.inner.visit(prefix, f);
    }
}

impl Task for StopAt {
    type Batch = TextBatch;
    fn loss(&mut self, tape: &mut Tape, batch: &TextBatch) -> wgrnn::Result<LossVars> {
        self.calls += 1;
        if self.calls == self.at {
            self.flag.request();
        }
        self.inner.loss(tape, batch)
    }
    fn metadata(&self) -> BTreeMap<String, String> {
        self.inner.metadata()
    }
    fn batch_tokens(&self, batch: &TextBatch) -> usize {
        batch.tokens()
    }
}

/// Ctrl-C semantics: the step in progress finishes, a checkpoint is
/// written, and `resume` continues to weights bitwise equal to a run that
/// never stopped (same batches, dropout masks, Adam state, lr schedule).
#[test]
fn stop_and_resume_is_bitwise_identical() {
    let data = task_data(&vectorizer(), 96, 5);
    let train = TextBatches::new(data, BatchConfig::new(16).shuffled(7).with_bucketing(2)).unwrap();
    let base = |dir: &PathBuf| {
        quiet(3, 5e-3)
            .with_checkpoint_dir(dir)
            .with_clip(1.0)
            .with_schedule(wgrnn::optim::LrSchedule::Cosine { t_max: 18, eta_min: 1e-4 })
    };
    let dropout = |seed| {
        let v = vectorizer();
        let c =
            SequenceClassifierConfig::new(v.vocab_size(), 8, 12, 2).with_layers(2).with_dropout(0.3).with_seed(seed);
        TextClassifier::new(device(), v, labels(), c).unwrap()
    };

    let mut straight = dropout(11);
    let mut opt = Optimizer::adam(straight.parameters(), 5e-3).unwrap();
    let dir_a = temp_dir("straight");
    fit(&mut straight, &mut opt, &train, None, &base(&dir_a)).unwrap();

    let flag = StopFlag::new();
    let mut stopping = StopAt { inner: dropout(11), calls: 0, at: 8, flag: flag.clone() };
    let mut opt = Optimizer::adam(stopping.inner.parameters(), 5e-3).unwrap();
    let dir_b = temp_dir("stopped");
    let report = fit(&mut stopping, &mut opt, &train, None, &base(&dir_b).with_stop(flag.clone())).unwrap();
    assert!(report.interrupted);
    assert_eq!(report.steps, 8, "the step in progress finishes, then the run stops");
    assert!(!flag.is_requested(), "the request is consumed");

    // A new process: other initial weights, everything from the checkpoint.
    let mut resumed = dropout(99);
    let mut opt = Optimizer::adam(resumed.parameters(), 5e-3).unwrap();
    let config = base(&dir_b).with_resume(dir_b.join("last.safetensors"));
    let report = fit(&mut resumed, &mut opt, &train, None, &config).unwrap();
    assert!(!report.interrupted);
    assert_eq!(report.steps, 18);
    assert_eq!(report.history.len(), 3);
    assert_eq!(weights(&resumed), weights(&straight), "resumed weights differ from the uninterrupted run");

    // Resuming mid-epoch with other data (fewer batches than the stop point) is an error, not a panic.
    let small = TextBatches::new(task_data(&vectorizer(), 16, 5), BatchConfig::new(16)).unwrap();
    let mut other = dropout(99);
    let mut opt = Optimizer::adam(other.parameters(), 5e-3).unwrap();
    let dir_c = temp_dir("stopped-again");
    let flag = StopFlag::new();
    let mut stopping = StopAt { inner: dropout(11), calls: 0, at: 3, flag: flag.clone() };
    let mut o = Optimizer::adam(stopping.inner.parameters(), 5e-3).unwrap();
    fit(&mut stopping, &mut o, &train, None, &base(&dir_c).with_stop(flag)).unwrap();
    let config = base(&dir_c).with_resume(dir_c.join("last.safetensors"));
    assert!(matches!(fit(&mut other, &mut opt, &small, None, &config), Err(Error::Config(_))));
}

#[test]
fn early_stopping_max_steps_and_divergence() {
    let mut model = classifier(3);
    let train = TextBatches::new(task_data(&model.vectorizer, 64, 6), BatchConfig::new(16)).unwrap();
    let test = TextBatches::new(task_data(&model.vectorizer, 32, 7), BatchConfig::new(32)).unwrap();

    // lr 0: the validation loss never improves, so patience 1 stops after epoch 3.
    let mut opt = Optimizer::adam(model.parameters(), 0.0).unwrap();
    let config = quiet(10, 0.0).with_early_stopping(Monitor::ValLoss, 1);
    let report = fit(&mut model, &mut opt, &train, Some(&test), &config).unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.history.len(), 3);
    assert_eq!(report.best.as_ref().unwrap().epoch, 1);

    let config = quiet(10, 1e-3).with_max_steps(6);
    let mut opt = Optimizer::adam(model.parameters(), 1e-3).unwrap();
    let report = fit(&mut model, &mut opt, &train, None, &config).unwrap();
    assert_eq!(report.steps, 6);

    assert!(matches!(
        fit(&mut model, &mut opt, &train, None, &quiet(1, 1e-3).with_early_stopping(Monitor::ValLoss, 1)),
        Err(Error::Config(_))
    ));

    // A NaN weight makes the loss NaN: fit stops with an error naming the
    // first bad step, having applied none of the NaN updates.
    let w = &model.model.fc.weight.value;
    let mut values = w.to_vec().unwrap();
    values[0] = f32::NAN;
    w.write(&values).unwrap();
    let before = weights(&model);
    let err = fit(&mut model, &mut opt, &train, None, &quiet(1, 1e-3)).unwrap_err();
    assert!(matches!(err, Error::NonFinite(ref m) if m.contains("step 1 (epoch 1)")), "{err}");
    let after = weights(&model);
    assert!(after.iter().flatten().zip(before.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// A task whose loss is infinite at the given (1-based) calls.
struct PoisonAt {
    inner: TextClassifier,
    calls: usize,
    at: Vec<usize>,
}

impl Module for PoisonAt {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.inner.visit(prefix, f);
    }
}

impl Task for PoisonAt {
    type Batch = TextBatch;
    fn loss(&mut self, tape: &mut Tape, batch: &TextBatch) -> wgrnn::Result<LossVars> {
        self.calls += 1;
        let mut vars = self.inner.loss(tape, batch)?;
        if self.at.contains(&self.calls) {
            let inf = tape.input(wgrnn::Tensor::from_slice(tape.device(), &[f32::INFINITY], &[1])?);
            vars.loss = tape.add(vars.loss, inf)?;
            vars.objective = vars.loss;
        }
        Ok(vars)
    }
    fn metadata(&self) -> BTreeMap<String, String> {
        self.inner.metadata()
    }
    fn batch_tokens(&self, batch: &TextBatch) -> usize {
        batch.tokens()
    }
}

/// `NonFinite::SkipStep`: steps with an infinite loss are skipped on the
/// GPU and counted; the run ends with the weights of a loop that never took
/// those steps (bitwise), and finite metrics. `NonFinite::Stop` (the
/// default) names the first bad step.
#[test]
fn non_finite_steps_are_skipped_or_stop_the_run() {
    use wgrnn::train::NonFinite;
    let train = TextBatches::new(task_data(&vectorizer(), 64, 21), BatchConfig::new(16).shuffled(3)).unwrap();
    let poisoned = [3usize, 6];

    let mut skipping = PoisonAt { inner: classifier(5), calls: 0, at: poisoned.to_vec() };
    let mut opt = Optimizer::adam(skipping.inner.parameters(), 1e-2).unwrap();
    let config = quiet(2, 1e-2).with_non_finite(NonFinite::SkipStep);
    let report = fit(&mut skipping, &mut opt, &train, None, &config).unwrap();
    assert_eq!(report.skipped_steps, 2);
    assert_eq!(report.history.iter().map(|r| r.skipped_steps).collect::<Vec<_>>(), [1, 1]);
    assert!(report.history.iter().all(|r| r.train_loss.is_finite()), "{:?}", report.history);
    assert!(!opt.non_finite_guard(), "fit restores the caller's guard setting");

    // The same batches by hand, leaving the poisoned ones out.
    let mut by_hand = classifier(5);
    let mut opt = Optimizer::adam(by_hand.parameters(), 1e-2).unwrap();
    let mut call = 0;
    for epoch in 0..2 {
        for batch in train.epoch(epoch) {
            call += 1;
            if poisoned.contains(&call) {
                continue;
            }
            let mut tape = Tape::train(device(), 0);
            let vars = by_hand.loss(&mut tape, &batch).unwrap();
            opt.zero_grad().unwrap();
            tape.backward(vars.objective).unwrap();
            opt.step().unwrap();
        }
    }
    assert_eq!(weights(&skipping.inner), weights(&by_hand), "skipped steps left a trace");

    let mut stopping = PoisonAt { inner: classifier(5), calls: 0, at: vec![3] };
    let mut opt = Optimizer::adam(stopping.inner.parameters(), 1e-2).unwrap();
    let err = fit(&mut stopping, &mut opt, &train, None, &quiet(2, 1e-2)).unwrap_err();
    assert!(matches!(err, Error::NonFinite(ref m) if m.contains("step 3 (epoch 1)")), "{err}");
}

#[test]
fn classifier_checkpoint_predicts_alone() {
    let mut model = classifier(4);
    let train = TextBatches::new(task_data(&model.vectorizer, 256, 8), BatchConfig::new(32).shuffled(1)).unwrap();
    let mut opt = Optimizer::adam(model.parameters(), 1e-2).unwrap();
    fit(&mut model, &mut opt, &train, None, &quiet(2, 1e-2)).unwrap();
    let dir = temp_dir("predict");
    let path = dir.join("model.safetensors");
    model.save(&path).unwrap();

    let loaded = TextClassifier::load(device(), &path).unwrap();
    assert_eq!(loaded.vectorizer, model.vectorizer);
    assert_eq!(loaded.labels, model.labels);
    assert_eq!(weights(&loaded), weights(&model));
    let texts = ["w3 a w4 w5 b w2", "b w9 w9 a", "", "unknown words only"];
    let (p1, p2) = (model.predict(&texts).unwrap(), loaded.predict(&texts).unwrap());
    assert_eq!(p1, p2);
    for p in &p1 {
        let sum: f32 = p.probabilities.iter().map(|(_, v)| v).sum();
        assert_close_scalar("probabilities sum to 1", sum, 1.0, 1.0, PROBABILITY_SUM_TOL);
        assert_eq!(p.probabilities.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["after", "before"]);
    }

    // Not a classifier checkpoint: a plain one has no vocabulary.
    let plain = dir.join("plain.safetensors");
    checkpoint::save(&plain, &model, None).unwrap();
    assert!(matches!(TextClassifier::load(device(), &plain), Err(Error::Format(_))));
    assert!(matches!(
        checkpoint::save_with_metadata(&plain, &model, None, &BTreeMap::from([("format".into(), "x".into())])),
        Err(Error::Config(_))
    ));

    // Wrong sizes for the vocabulary or labels are configuration errors.
    let v = vectorizer();
    let bad = SequenceClassifierConfig::new(v.vocab_size() + 1, 4, 4, 2);
    assert!(matches!(TextClassifier::new(device(), v.clone(), labels(), bad), Err(Error::Config(_))));
    let bad = SequenceClassifierConfig::new(v.vocab_size(), 4, 4, 3);
    assert!(matches!(TextClassifier::new(device(), v, labels(), bad), Err(Error::Config(_))));
}

#[test]
fn binary_head_trains_with_bce() {
    let v = vectorizer();
    let config = SequenceClassifierConfig::new(v.vocab_size(), 16, 24, 1).with_seed(5);
    let mut model = TextClassifier::new(device(), v, labels(), config).unwrap();
    let train = TextBatches::new(task_data(&model.vectorizer, 512, 9), BatchConfig::new(32).shuffled(2)).unwrap();
    let test = TextBatches::new(task_data(&model.vectorizer, 256, 10), BatchConfig::new(256)).unwrap();
    let mut opt = Optimizer::rmsprop_keras(model.parameters(), 1e-2).unwrap();
    fit(&mut model, &mut opt, &train, None, &quiet(4, 1e-2)).unwrap();
    let e = evaluate(&mut model, &test).unwrap();
    assert!(e.accuracy > 0.85, "binary accuracy {}", e.accuracy);
    let p = model.predict(&["w2 a b"]).unwrap();
    assert_eq!(p[0].probabilities.len(), 2);
}

#[test]
fn batches_cover_every_row_once_and_are_reproducible() {
    let ids: Vec<Vec<u32>> = (0..50).map(|i| vec![2 + (i as u32 % 7); i % 9]).collect();
    let labels: Vec<u32> = (0..50).map(|i| i as u32 % 3).collect();
    let data = EncodedTexts::new(ids.clone(), labels).unwrap();
    for config in [
        BatchConfig::new(8),
        BatchConfig::new(8).shuffled(3),
        BatchConfig::new(8).shuffled(3).with_bucketing(3),
        BatchConfig::new(7).with_pack(false),
    ] {
        let b = TextBatches::new(data.clone(), config).unwrap();
        let epoch0 = b.epoch(0);
        assert_eq!(epoch0, b.epoch(0), "same epoch, same batches");
        assert_eq!(epoch0.len(), b.len());
        let mut seen: Vec<Vec<u32>> = Vec::new();
        for batch in &epoch0 {
            assert_eq!(batch.ids.len(), batch.rows() * batch.max_len);
            for (r, &len) in batch.lengths.iter().enumerate() {
                assert!((1..=batch.max_len).contains(&len));
                if !config.pack {
                    assert_eq!(len, batch.max_len, "unpacked rows run the padded length");
                }
                let row = &batch.ids[r * batch.max_len..(r + 1) * batch.max_len];
                let tokens: Vec<u32> = row.iter().copied().take_while(|&t| t != 0).collect();
                assert!(row[tokens.len()..].iter().all(|&t| t == 0), "padding at the end only");
                seen.push(tokens);
            }
            if config.bucket_batches > 0 {
                // Bucketed batches hold similar lengths: at most the spread of one window.
                assert!(batch.lengths.windows(2).all(|w| w[0] <= w[1]));
            }
        }
        let mut want = ids.clone();
        want.sort();
        seen.sort();
        assert_eq!(seen, want, "every row exactly once per epoch ({config:?})");
        if config.shuffle {
            assert_ne!(b.epoch(0), b.epoch(1), "a new order each epoch");
        }
    }
    assert!(matches!(TextBatches::new(data.clone(), BatchConfig::new(0)), Err(Error::Config(_))));
    assert!(matches!(EncodedTexts::new(vec![vec![1]], vec![]), Err(Error::Shape { .. })));
}
