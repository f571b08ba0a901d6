//! The training stack end to end: a synthetic sequence task learned to
//! ≥ 99% accuracy, bitwise reproducibility, checkpoints (round trip, resume,
//! corrupt files), and the tape's ops and errors.

mod common;

use common::{assert_close, assert_close_scalar, device, random};
use wgrnn::autograd::Tape;
use wgrnn::models::{Pooling, SequenceClassifier, SequenceClassifierConfig};
use wgrnn::nn::{named_parameters, EmbeddingConfig, Init, Module, RecurrentConfig, RnnInit};
use wgrnn::optim::Optimizer;
use wgrnn::reference::nn::{bce_with_logits, cross_entropy};
use wgrnn::rng::Rng;
use wgrnn::rnn::RnnMode;
use wgrnn::{checkpoint, Device, Error, Tensor};

/// Losses (cross-entropy with smoothing and ignore_index over ≤ 9 rows,
/// BCE) in f32 against f64, relative to max(1, |reference|) (losses are
/// O(1); the floor only matters for the 0.31 of one row): a log-sum-exp
/// per row and a mean, a few ulps. Measured worst: 6.2e-8 on lavapipe and
/// on llvmpipe GL over 4 comparisons; this bound is 11× that.
const LOSS_TOL: f64 = 7e-7;
/// `perplexity()` against exp(loss) of the same f32 loss on the host,
/// relative: one exp in f32 on each side. Measured worst: 6.8e-8 on
/// lavapipe and on llvmpipe GL over 2 comparisons; this bound is 10× that.
const PERPLEXITY_TOL: f32 = 7e-7;
/// Embedding row gradients (sums of σ(y)/4 over 1–2 positions) against the
/// same formula on the host in f32, relative: a few roundings of exp and
/// division on each side. Measured worst: 2.1e-7 on lavapipe and on
/// llvmpipe GL over 1 comparison of 2 values; this bound is 15× that.
const EMBEDDING_GRAD_TOL: f32 = 3e-6;
/// A linear layer's weight gradient through cross-entropy (a softmax per
/// row, then a sum of 6 products) against f64, relative to Σ|dlogits·x|.
/// Measured worst: 1.5e-7 on lavapipe and on llvmpipe GL over 1 comparison
/// of 12 values; this bound is 10× that.
const LINEAR_GRAD_TOL: f32 = 1.5e-6;
/// Gradients of a sum of adds (σ(w)/3, doubled for the input used twice)
/// against σ(7)/3 on the host in f32, relative. Measured worst: 9.0e-8 on
/// lavapipe and on llvmpipe GL over 6 comparisons; this bound is 10× that.
const ADD_GRAD_TOL: f32 = 9e-7;
/// Dot products (24 terms, f32) of an orthogonal init's columns against 0
/// or 1. Absolute: the columns have unit norm, so 1 is every dot product's
/// scale. Measured worst: 1.2e-7 (the init runs on the host: the same on
/// both backends) over 1 comparison of 36 values; this bound is 13× that.
const ORTHOGONAL_TOL: f32 = 1.5e-6;
/// Sample standard deviation of 10,000 normal draws against 0.5:
/// statistical, not rounding. The standard error is 0.5/√20000 ≈ 0.0035,
/// so this is about 6 standard errors (seeded, so not flaky; measured:
/// 0.0018 off, drawn on the host).
const STD_SLACK: f32 = 0.02;

/// "Does token A (1) appear before token B (2)?" — each row holds exactly
/// one A and one B among noise tokens 3..10, length 4..=16, padded with 0.
fn a_before_b(rng: &mut Rng, batch: usize) -> (Vec<u32>, Vec<usize>, Vec<u32>, usize) {
    const T: usize = 16;
    let mut ids = vec![0u32; batch * T];
    let mut lengths = Vec::with_capacity(batch);
    let mut labels = Vec::with_capacity(batch);
    for b in 0..batch {
        let len = 4 + (rng.next_u64() % 13) as usize;
        for t in 0..len {
            ids[b * T + t] = 3 + (rng.next_u64() % 7) as u32;
        }
        let pa = (rng.next_u64() % len as u64) as usize;
        let mut pb = (rng.next_u64() % (len as u64 - 1)) as usize;
        if pb >= pa {
            pb += 1;
        }
        ids[b * T + pa] = 1;
        ids[b * T + pb] = 2;
        lengths.push(len);
        labels.push(u32::from(pa < pb));
    }
    (ids, lengths, labels, T)
}

fn task_model(dev: &Device, seed: u64) -> SequenceClassifier {
    SequenceClassifierConfig::new(10, 16, 32, 2).with_padding_idx(0).with_seed(seed).init(dev).unwrap()
}

/// One training step: forward, loss, backward, Adam. Returns the loss var's
/// tape so callers can read it if they want.
fn train_step(
    model: &SequenceClassifier,
    opt: &mut Optimizer,
    ids: &[u32],
    lengths: &[usize],
    labels: &[u32],
    t: usize,
    seed: u64,
) -> Tape {
    let mut tape = Tape::train(model.embedding.weight.value.device(), seed);
    let logits = model.forward(&mut tape, ids, lengths, t).unwrap();
    let loss = tape.cross_entropy(logits, labels, None, 0.0).unwrap();
    opt.zero_grad().unwrap();
    tape.backward(loss.loss).unwrap();
    opt.clip_grad_norm(5.0).unwrap();
    opt.step().unwrap();
    tape
}

fn accuracy(model: &SequenceClassifier, ids: &[u32], lengths: &[usize], labels: &[u32], t: usize) -> f32 {
    let mut tape = Tape::eval(model.embedding.weight.value.device());
    let logits = model.forward(&mut tape, ids, lengths, t).unwrap();
    let l = tape.cross_entropy(logits, labels, None, 0.0).unwrap();
    l.accuracy().unwrap()
}

/// The bar: ≥ 99% held-out accuracy (512 held-out rows) within a
/// bounded number of steps (600) on lavapipe; checked every 5 steps.
#[test]
fn learns_a_before_b_to_99_percent() {
    let dev = device();
    let model = task_model(dev, 3);
    let mut opt = Optimizer::adam(named_parameters(&model), 1e-2).unwrap();
    let mut rng = Rng::new(11);
    let (test_ids, test_len, test_y, t) = a_before_b(&mut Rng::new(999), 512);
    let start = std::time::Instant::now();
    let mut reached = None;
    for step in 1..=600u64 {
        let (ids, lengths, labels, t) = a_before_b(&mut rng, 32);
        train_step(&model, &mut opt, &ids, &lengths, &labels, t, step);
        if step % 5 == 0 && accuracy(&model, &test_ids, &test_len, &test_y, t) >= 0.99 {
            reached = Some(step);
            break;
        }
    }
    let elapsed = start.elapsed();
    let acc = accuracy(&model, &test_ids, &test_len, &test_y, t);
    eprintln!("a-before-b: reached {acc:.4} after {reached:?} steps in {elapsed:.2?}");
    assert!(reached.is_some() && acc >= 0.99, "held-out accuracy {acc} after 600 steps");
}

fn snapshot(model: &dyn Module) -> Vec<Vec<u32>> {
    named_parameters(model)
        .iter()
        .map(|(_, p)| p.value.to_vec().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Same seed, same adapter → the same bits after N steps (no
/// nondeterministic reductions anywhere, dropout from hashed masks).
#[test]
fn training_is_bitwise_reproducible() {
    let dev = device();
    let run = || {
        let model = SequenceClassifierConfig::new(10, 8, 12, 2)
            .with_layers(2)
            .with_bidirectional(true)
            .with_dropout(0.3)
            .with_mode(RnnMode::Gru)
            .with_pooling(Pooling::Max)
            .with_seed(21)
            .init(dev)
            .unwrap();
        let mut opt = Optimizer::adamw(named_parameters(&model), 5e-3).unwrap();
        let mut rng = Rng::new(5);
        for step in 0..6 {
            let (ids, lengths, labels, t) = a_before_b(&mut rng, 8);
            train_step(&model, &mut opt, &ids, &lengths, &labels, t, step);
        }
        snapshot(&model)
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b, "two identical runs differ");
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wgrnn-test-{}-{name}.safetensors", std::process::id()))
}

/// Save after k steps, train j more; load into fresh objects and train the
/// same j steps: identical bits (optimizer state and step count restored).
#[test]
fn checkpoint_resume_continues_exactly() {
    let dev = device();
    let path = temp_path("resume");
    let batches: Vec<_> = {
        let mut rng = Rng::new(8);
        (0..6).map(|_| a_before_b(&mut rng, 8)).collect()
    };
    let model = task_model(dev, 4);
    let mut opt = Optimizer::rmsprop(named_parameters(&model), 3e-3).unwrap();
    for (i, (ids, l, y, t)) in batches[..3].iter().enumerate() {
        train_step(&model, &mut opt, ids, l, y, *t, i as u64);
    }
    checkpoint::save(&path, &model, Some(&mut opt)).unwrap();
    for (i, (ids, l, y, t)) in batches[3..].iter().enumerate() {
        train_step(&model, &mut opt, ids, l, y, *t, 3 + i as u64);
    }
    let uninterrupted = snapshot(&model);

    let resumed = task_model(dev, 99); // different init: all must come from the file
    let mut opt2 = Optimizer::rmsprop(named_parameters(&resumed), 3e-3).unwrap();
    checkpoint::load(&path, &resumed, Some(&mut opt2)).unwrap();
    assert_eq!(opt2.steps(), 3);
    for (i, (ids, l, y, t)) in batches[3..].iter().enumerate() {
        train_step(&resumed, &mut opt2, ids, l, y, *t, 3 + i as u64);
    }
    assert_eq!(snapshot(&resumed), uninterrupted);
    std::fs::remove_file(&path).ok();
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let dev = device();
    let path = temp_path("roundtrip");
    let model = SequenceClassifierConfig::new(10, 6, 5, 3)
        .with_mode(RnnMode::Lstm)
        .with_bidirectional(true)
        .with_seed(1)
        .init(dev)
        .unwrap();
    checkpoint::save(&path, &model, None).unwrap();
    let copy = SequenceClassifierConfig::new(10, 6, 5, 3)
        .with_mode(RnnMode::Lstm)
        .with_bidirectional(true)
        .with_seed(2)
        .init(dev)
        .unwrap();
    checkpoint::load(&path, &copy, None).unwrap();
    let (ids, lengths, _, t) = a_before_b(&mut Rng::new(3), 5);
    let logits = |m: &SequenceClassifier| {
        let mut tape = Tape::eval(dev);
        let v = m.forward(&mut tape, &ids, &lengths, t).unwrap();
        tape.value(v).unwrap().to_vec().unwrap()
    };
    assert_eq!(logits(&model), logits(&copy));
    let names: Vec<String> = named_parameters(&model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(&names[..3], ["embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0"]);
    assert_eq!(&names[names.len() - 2..], ["fc.weight", "fc.bias"]);
    std::fs::remove_file(&path).ok();
}

#[test]
fn corrupt_or_mismatched_checkpoints_are_errors() {
    let dev = device();
    let path = temp_path("corrupt");
    let model = task_model(dev, 1);
    let mut opt = Optimizer::adam(named_parameters(&model), 1e-3).unwrap();
    checkpoint::save(&path, &model, Some(&mut opt)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let before = snapshot(&model);

    let fails = |bytes: &[u8], model: &SequenceClassifier| {
        std::fs::write(&path, bytes).unwrap();
        let err = checkpoint::load(&path, model, None).unwrap_err();
        assert!(matches!(err, Error::Format(_)), "{err}");
        err.to_string()
    };
    assert!(fails(&good[..good.len() - 100], &model).contains("not a valid safetensors file"));
    assert!(fails(b"", &model).contains("not a valid safetensors file"));
    let bigger = SequenceClassifierConfig::new(11, 16, 32, 2).init(dev).unwrap();
    std::fs::write(&path, &good).unwrap();
    let err = checkpoint::load(&path, &bigger, None).unwrap_err().to_string();
    assert!(err.contains("tensor `embedding.weight` has shape [10, 16], the model expects [11, 16]"), "{err}");
    let gru = SequenceClassifierConfig::new(10, 16, 32, 2).with_mode(RnnMode::Gru).init(dev).unwrap();
    let err = checkpoint::load(&path, &gru, None).unwrap_err().to_string();
    assert!(err.contains("rnn.weight_ih_l0"), "{err}");
    let two_layers = SequenceClassifierConfig::new(10, 16, 32, 2).with_layers(2).init(dev).unwrap();
    let err = checkpoint::load(&path, &two_layers, None).unwrap_err().to_string();
    assert!(err.contains("missing tensor `rnn.weight_ih_l1`"), "{err}");
    let mut sgd = Optimizer::sgd(named_parameters(&model), 1e-3).unwrap();
    let err = checkpoint::load(&path, &model, Some(&mut sgd)).unwrap_err().to_string();
    assert!(err.contains("optimizer state of Some(\"adam\")"), "{err}");
    // Nothing was modified by the failed loads.
    assert_eq!(snapshot(&model), before);
    assert!(checkpoint::load(temp_path("does-not-exist"), &model, None).is_err());
    std::fs::remove_file(&path).ok();
}

#[test]
fn embedding_rejects_bad_ids_and_skips_padding_gradient() {
    let dev = device();
    let emb = EmbeddingConfig::new(5, 3).with_padding_idx(0).init(dev).unwrap();
    assert_eq!(emb.weight.value.to_vec().unwrap()[..3], [0.0, 0.0, 0.0]);
    let mut tape = Tape::train(dev, 0);
    let err = tape.embedding(&emb, &[1, 5]).unwrap_err();
    assert!(err.to_string().contains("token id 5 at position 1 is out of range for a vocabulary of 5"), "{err}");
    // Gradient: ids [0, 2, 2, 4], upstream all ones → rows 2: 2, 4: 1, 0 (padding): 0.
    let x = tape.embedding(&emb, &[0, 2, 2, 4]).unwrap();
    let fc = wgrnn::nn::LinearConfig::new(3, 1).with_init(Init::Constant(1.0)).with_bias(false).init(dev).unwrap();
    let y = tape.linear(&fc, x).unwrap();
    let loss = tape.bce_with_logits(y, &[0.0; 4]).unwrap();
    tape.backward(loss.loss).unwrap();
    let g = emb.weight.grad.to_vec().unwrap();
    assert_eq!(&g[..3], [0.0, 0.0, 0.0], "padding row got a gradient");
    assert_eq!(&g[3..6], [0.0, 0.0, 0.0]);
    // d loss / d x = σ(y)/4 per position; rows 2 and 4 sum their positions.
    let yv = tape.value(y).unwrap().to_vec().unwrap();
    let s = |v: f32| 1.0 / (1.0 + (-v).exp()) / 4.0;
    let want = [s(yv[1]) + s(yv[2]), s(yv[3])];
    let scale = want.map(f32::abs);
    assert_close("embedding rows 2 and 4: gradient", &[g[6], g[12]], &want, &scale, EMBEDDING_GRAD_TOL);
}

#[test]
fn losses_match_reference() {
    let dev = device();
    let (m, c) = (9, 5);
    let logits = random(m * c, 3).iter().map(|v| v * 4.0).collect::<Vec<_>>();
    let l64: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    let targets = [0u32, 4, 2, 7, 1, 3, 7, 2, 0]; // 7 = ignore_index
    for smoothing in [0.0f32, 0.1] {
        let mut tape = Tape::train(dev, 0);
        let x = tape.input(Tensor::from_slice(dev, &logits, &[m, c]).unwrap());
        let l = tape.cross_entropy(x, &targets, Some(7), smoothing).unwrap();
        let (want, _) = cross_entropy(&l64, c, &targets, Some(7), f64::from(smoothing));
        let got = tape.value(l.loss).unwrap().to_vec().unwrap()[0];
        let what = format!("cross-entropy smoothing {smoothing}");
        assert_close_scalar(&what, f64::from(got), want, want.abs().max(1.0), LOSS_TOL);
        assert_eq!(l.count, 7);
        let correct = l.correct().unwrap();
        let what = format!("smoothing {smoothing}: perplexity is exp(loss)");
        assert_close_scalar(&what, l.perplexity().unwrap(), got.exp(), got.exp(), PERPLEXITY_TOL);
        let want_correct = (0..m)
            .filter(|&r| targets[r] != 7)
            .filter(|&r| {
                let row = &logits[r * c..(r + 1) * c];
                let arg = (0..c).fold(0, |a, k| if row[k] > row[a] { k } else { a });
                arg == targets[r] as usize
            })
            .count();
        assert_eq!(correct, want_correct as f32);
    }
    let y: Vec<f32> = (0..m).map(|i| (i % 2) as f32).collect();
    let mut tape = Tape::train(dev, 0);
    let x = tape.input(Tensor::from_slice(dev, &logits[..m], &[m]).unwrap());
    let l = tape.bce_with_logits(x, &y).unwrap();
    let (want, _) = bce_with_logits(&l64[..m], &y.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    let got = tape.value(l.loss).unwrap().to_vec().unwrap()[0];
    assert_close_scalar("bce", f64::from(got), want, want.abs().max(1.0), LOSS_TOL);
    assert!(tape.bce_with_logits(x, &[2.0; 9]).is_err());
}

/// The loss gradient reaching a linear layer's weight: checks the
/// cross-entropy backward (with ignore_index and smoothing) numerically.
#[test]
fn cross_entropy_gradient_matches_reference() {
    let dev = device();
    let (m, c, f) = (6, 4, 3);
    let x = random(m * f, 1);
    let fc = wgrnn::nn::LinearConfig::new(f, c).with_seed(4).init(dev).unwrap();
    let targets = [3u32, 9, 0, 1, 2, 1];
    let mut tape = Tape::train(dev, 0);
    let xv = tape.input(Tensor::from_slice(dev, &x, &[m, f]).unwrap());
    let logits = tape.linear(&fc, xv).unwrap();
    let l = tape.cross_entropy(logits, &targets, Some(9), 0.2).unwrap();
    tape.backward(l.loss).unwrap();
    let lv: Vec<f64> = tape.value(logits).unwrap().to_vec().unwrap().iter().map(|&v| f64::from(v)).collect();
    let (_, dlogits) = cross_entropy(&lv, c, &targets, Some(9), 0.2);
    let (mut dw, mut scale) = (vec![0.0f64; c * f], vec![0.0f64; c * f]);
    for r in 0..m {
        for k in 0..c {
            for j in 0..f {
                dw[k * f + j] += dlogits[r * c + k] * f64::from(x[r * f + j]);
                scale[k * f + j] += (dlogits[r * c + k] * f64::from(x[r * f + j])).abs();
            }
        }
    }
    let (dw, scale): (Vec<f32>, Vec<f32>) = dw.iter().zip(&scale).map(|(&d, &s)| (d as f32, s as f32)).unzip();
    assert_close("fc.weight grad", &fc.weight.grad.to_vec().unwrap(), &dw, &scale, LINEAR_GRAD_TOL);
}

/// A diverged (NaN) loss is an error when read, not a number.
#[test]
fn nan_loss_is_an_error() {
    let dev = device();
    let mut tape = Tape::train(dev, 0);
    let x = tape.input(Tensor::from_slice(dev, &[f32::NAN, 0.0], &[1, 2]).unwrap());
    let l = tape.cross_entropy(x, &[0], None, 0.0).unwrap();
    let err = l.value(&tape).unwrap_err();
    assert!(matches!(err, Error::NonFinite(_)) && err.to_string().contains("diverged"), "{err}");
    let mut ok = Tape::train(dev, 0);
    let y = ok.input(Tensor::from_slice(dev, &[1.0, 0.0], &[1, 2]).unwrap());
    let l = ok.cross_entropy(y, &[0], None, 0.0).unwrap();
    let want = (1.0f64 + (-1.0f64).exp()).ln();
    assert_close_scalar("cross-entropy of [1, 0]", f64::from(l.value(&ok).unwrap()), want, 1.0, LOSS_TOL);
}

#[test]
fn tape_errors() {
    let dev = device();
    let mut other = Tape::train(dev, 0);
    let foreign = other.input(Tensor::zeros(dev, &[1]).unwrap());
    let mut tape = Tape::train(dev, 0);
    tape.input(Tensor::zeros(dev, &[1]).unwrap());
    assert!(tape.value(foreign).is_err());
    assert!(tape.backward(foreign).is_err());
    let mut tape = Tape::eval(dev);
    let x = tape.input(Tensor::zeros(dev, &[1]).unwrap());
    assert!(tape.backward(x).unwrap_err().to_string().contains("evaluation tape"));
    let mut tape = Tape::train(dev, 0);
    let m = tape.metric("accuracy", Tensor::zeros(dev, &[1]).unwrap());
    let err = tape.backward(m).unwrap_err().to_string();
    assert!(err.contains("no backward rule for op `accuracy`"), "{err}");
    let mut tape = Tape::train(dev, 0);
    let v = tape.input(Tensor::zeros(dev, &[2]).unwrap());
    assert!(matches!(tape.backward(v), Err(Error::Shape { .. })));
    assert!(tape.cross_entropy(v, &[0], None, 0.0).is_err());
    assert!(tape.dropout(v, 1.0).is_err());
}

/// A tape runs backward once: the second call is an error and leaves the
/// parameter gradients of the first untouched (not doubled).
#[test]
fn backward_twice_is_an_error() {
    let dev = device();
    let fc = wgrnn::nn::LinearConfig::new(3, 2).with_seed(1).init(dev).unwrap();
    let mut tape = Tape::train(dev, 0);
    let x = tape.input(Tensor::from_slice(dev, &[0.5, -1.0, 2.0], &[1, 3]).unwrap());
    let logits = tape.linear(&fc, x).unwrap();
    let l = tape.cross_entropy(logits, &[1], None, 0.0).unwrap();
    tape.backward(l.loss).unwrap();
    let once = fc.weight.grad.to_vec().unwrap();
    assert!(once.iter().any(|&g| g != 0.0));
    let err = tape.backward(l.loss).unwrap_err().to_string();
    assert!(err.contains("backward already ran"), "{err}");
    assert_eq!(fc.weight.grad.to_vec().unwrap(), once, "the failed second pass changed the gradients");
}

/// `a + b` gives each input its own gradient buffer: accumulating into one
/// later must not change the other or the sum's own gradient.
#[test]
fn add_gradients_do_not_alias() {
    let dev = device();
    let mut tape = Tape::train(dev, 0);
    let mut mk = |v: f32| tape.input(Tensor::full(dev, &[3], v).unwrap());
    let (a, b, c) = (mk(1.0), mk(2.0), mk(3.0));
    let s = tape.add(a, b).unwrap();
    let u = tape.add(a, c).unwrap();
    let w = tape.add(s, u).unwrap();
    let l = tape.bce_with_logits(w, &[0.0, 0.0, 0.0]).unwrap();
    let grads = tape.backward(l.loss).unwrap();
    let g = |v| grads.get(v).unwrap().to_vec().unwrap();
    // d loss / d w = σ(w)/3 with w = (1+2) + (1+3) = 7; s, u, b, c get the
    // same, a gets it twice.
    let e = (1.0 / (1.0 + (-7.0f32).exp())) / 3.0;
    for (name, v, k) in
        [("w", g(w), 1.0), ("s", g(s), 1.0), ("u", g(u), 1.0), ("b", g(b), 1.0), ("c", g(c), 1.0), ("a", g(a), 2.0)]
    {
        let want = vec![k * e; v.len()];
        assert_close(&format!("add gradients: {name}"), &v, &want, &want, ADD_GRAD_TOL);
    }
}

#[test]
fn initializers() {
    let dev = device();
    let h = 6;
    let keras = RecurrentConfig::new(RnnMode::Lstm, 5, h).with_init(RnnInit::Keras).init(dev).unwrap();
    let p = &keras.layer.params()[0];
    let w_hh = p.weight_hh().value.to_vec().unwrap();
    // Orthogonal: columns of the (4H, H) matrix are orthonormal. Absolute:
    // the columns have unit norm, so 1 is each dot product's scale.
    let (mut dots, mut want) = (Vec::new(), Vec::new());
    for a in 0..h {
        for b in 0..h {
            dots.push((0..4 * h).map(|r| w_hh[r * h + a] * w_hh[r * h + b]).sum::<f32>());
            want.push(if a == b { 1.0 } else { 0.0 });
        }
    }
    assert_close("orthogonal init: column dot products", &dots, &want, &vec![1.0; h * h], ORTHOGONAL_TOL);
    let b_ih = p.bias_ih().value.to_vec().unwrap();
    assert!(b_ih[h..2 * h].iter().all(|&v| v == 1.0) && b_ih[..h].iter().all(|&v| v == 0.0), "unit forget bias");
    let limit = (6.0f32 / (5 + 4 * h) as f32).sqrt();
    assert!(p.weight_ih().value.to_vec().unwrap().iter().all(|v| v.abs() <= limit), "glorot limit");
    let irnn = RecurrentConfig::new(RnnMode::RnnRelu, 2, 3)
        .with_init(RnnInit::Identity { input_std: 0.001 })
        .init(dev)
        .unwrap();
    assert_eq!(
        irnn.layer.params()[0].weight_hh().value.to_vec().unwrap(),
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
    let normal = EmbeddingConfig::new(100, 100).with_init(Init::Normal(0.5)).with_seed(3).init(dev).unwrap();
    let v = normal.weight.value.to_vec().unwrap();
    let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    common::report("normal init: |std − 0.5| (statistical)", f64::from((std - 0.5).abs()), f64::from(STD_SLACK));
    assert!((std - 0.5).abs() < STD_SLACK, "std {std}");
    let uni = EmbeddingConfig::new(10, 10).with_init(Init::Uniform(2.0, 3.0)).init(dev).unwrap();
    assert!(uni.weight.value.to_vec().unwrap().iter().all(|v| (2.0..3.0).contains(v)));
}

/// `visit` hands out the recurrent layer's own parameters, values and
/// gradients alike: what an optimizer writes through them is what the layer
/// computes with (no copies to keep in sync).
#[test]
fn recurrent_visit_hands_out_the_real_parameters() {
    let dev = device();
    let rec = RecurrentConfig::new(RnnMode::Gru, 3, 4).with_bidirectional(true).init(dev).unwrap();
    let visited = named_parameters(&rec);
    let names: Vec<&str> = visited.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 8);
    assert_eq!(names[..4], ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
    assert_eq!(names[7], "bias_hh_l0_reverse");
    for (k, (_, p)) in visited.iter().enumerate() {
        wgrnn::ops::elementwise_fill(&p.value, k as f32).unwrap();
        wgrnn::ops::elementwise_fill(&p.grad, -(k as f32)).unwrap();
    }
    let own: Vec<_> = rec.layer.params().iter().flat_map(|l| l.iter().cloned()).collect();
    for (k, p) in own.iter().enumerate() {
        assert!(p.value.to_vec().unwrap().iter().all(|&v| v == k as f32), "value {k} is not shared");
        assert!(p.grad.to_vec().unwrap().iter().all(|&v| v == -(k as f32)), "gradient {k} is not shared");
    }
}
