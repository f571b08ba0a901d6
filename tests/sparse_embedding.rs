//! Sparse embedding gradients and lazy updates (issue 10, item 3, the
//! optional part): `EmbeddingConfig::with_sparse` logs the rows backward
//! touches, and `Optimizer::with_sparse_embedding` zeroes, checks and
//! updates only those rows with `torch.optim.SparseAdam`'s rule, while the
//! other parameters follow Adam (PyTorch's `SparseAdam(embedding)` +
//! `Adam(rest)` pair).

mod common;

use common::{assert_close, device};
use wgrnn::autograd::Tape;
use wgrnn::models::SequenceClassifierConfig;
use wgrnn::nn::{flatten_parameters, join, named_parameters, Embedding, EmbeddingConfig, Linear, LinearConfig};
use wgrnn::nn::{Module, Parameter};
use wgrnn::optim::{Algorithm, Optimizer};
use wgrnn::reference::nn::{clip_coefficient, optimizer_step, sparse_adam_step};
use wgrnn::Device;

/// Parameters after 1–3 SparseAdam or Adam steps against the f64
/// reference, relative to max(1, |reference|). The bias corrections
/// 1 − βᵗ come from WGSL's `pow`, whose error of a few 1e-7 against
/// 1 − 0.999 ≈ 1e-3 (step 1) is a relative error of a few 1e-4 in the step
/// size (lr = 1e-2): tests/optim.rs's ADAM_STEP_TOL. Measured worst: 1.3e-6
/// on lavapipe and on llvmpipe GL over 30 comparisons (Adam on fc.weight;
/// the SparseAdam rows 9.5e-7); this bound is 11× that.
const ADAM_TOL: f32 = 1.5e-5;
/// The clip norm (a sum of ~100 squares in f32, then a square root)
/// against f64, relative: tests/optim.rs's NORM_TOL. Measured worst:
/// 3.3e-8 on lavapipe and on llvmpipe GL over 5 comparisons; this bound is
/// 18× that.
const NORM_TOL: f64 = 6e-7;

const V: usize = 12;
const E: usize = 5;
const CLASSES: usize = 3;
const PADDING: u32 = 0;

/// embedding (sparse) → linear, flattened: the optimizer sees a sparse
/// segment (the embedding) and a flat one (the linear layer).
#[derive(Debug, Clone)]
struct Model {
    emb: Embedding,
    fc: Linear,
}

impl Module for Model {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.emb.visit(&join(prefix, "emb"), f);
        self.fc.visit(&join(prefix, "fc"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        self.emb.visit_mut(&join(prefix, "emb"), f);
        self.fc.visit_mut(&join(prefix, "fc"), f);
    }
}

fn model(dev: &Device) -> Model {
    let emb = EmbeddingConfig::new(V, E).with_padding_idx(PADDING).with_sparse(true).with_seed(1).init(dev).unwrap();
    let mut m = Model { emb, fc: LinearConfig::new(E, CLASSES).with_seed(2).init(dev).unwrap() };
    flatten_parameters(&mut m).unwrap();
    m
}

/// Records forward and backward of one batch (after `zero_grad`).
fn backward(dev: &Device, m: &Model, opt: &Optimizer, ids: &[u32]) {
    let mut tape = Tape::train(dev, 1);
    let x = tape.embedding(&m.emb, ids).unwrap();
    let logits = tape.linear(&m.fc, x).unwrap();
    let labels: Vec<u32> = (0..ids.len()).map(|i| (i % CLASSES) as u32).collect();
    let loss = tape.cross_entropy(logits, &labels, None, 0.0).unwrap();
    opt.zero_grad().unwrap();
    tape.backward(loss.loss).unwrap();
}

fn host(t: &wgrnn::Tensor) -> Vec<f64> {
    t.to_vec().unwrap().into_iter().map(f64::from).collect()
}

/// Three steps against PyTorch's formulas: SparseAdam on the logged rows
/// (rows never looked up, and their state, stay bit for bit), Adam on the
/// linear layer; with and without clipping, and with the guard skipping a
/// step whose gradient holds a NaN.
fn run(clip: Option<f32>, guard: bool) {
    let dev = device();
    let m = model(dev);
    let (beta1, beta2, eps, lr) = (0.9, 0.999, 1e-8, 0.01);
    let adam = Algorithm::Adam { beta1, beta2, eps, weight_decay: 0.0, decoupled: false };
    let mut opt = Optimizer::adam(named_parameters(&m), lr as f32)
        .unwrap()
        .with_sparse_embedding(&m.emb)
        .unwrap()
        .with_non_finite_guard(guard)
        .unwrap();
    assert_eq!(opt.dispatches_per_pass(), 2, "a sparse segment and a flat one");
    let what = format!("clip={clip:?} guard={guard}");
    let params = named_parameters(&m);
    let mut want: Vec<Vec<f64>> = params.iter().map(|(_, p)| host(&p.value)).collect();
    let mut state: Vec<Vec<Vec<f64>>> = want.iter().map(|w| vec![vec![0.0; w.len()]; 2]).collect();
    let batches: [&[u32]; 3] = [&[3, 5, 3, 0, 7, 9], &[5, 0, 0, 11, 2, 5], &[1, 3, 4, 4, 10, 6]];
    let mut applied = 0;
    for (k, ids) in batches.iter().enumerate() {
        backward(dev, &m, &opt, ids);
        let mut rows: Vec<u32> = ids.iter().copied().filter(|&i| i != PADDING).collect();
        rows.sort_unstable();
        rows.dedup();
        let log = m.emb.sparse.as_ref().unwrap();
        assert_eq!(log.rows(), rows, "{what}: the rows backward logged at step {k}");
        let skip = guard && k == 1;
        if skip {
            let mut g = m.emb.weight.grad.to_vec().unwrap();
            g[rows[0] as usize * E + 2] = f32::NAN;
            m.emb.weight.grad.write(&g).unwrap();
        }
        let before: Vec<Vec<f32>> = params.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
        let grads: Vec<Vec<f64>> = params.iter().map(|(_, p)| host(&p.grad)).collect();
        let mut coef = 1.0;
        if let (Some(max_norm), false) = (clip, skip) {
            let norm = opt.clip_grad_norm(max_norm).unwrap().value().unwrap();
            let refs: Vec<&[f64]> = grads.iter().map(Vec::as_slice).collect();
            let (want_norm, c) = clip_coefficient(&refs, f64::from(max_norm));
            coef = c;
            common::assert_close_scalar(&format!("{what}: norm {k}"), f64::from(norm), want_norm, want_norm, NORM_TOL);
        }
        opt.step().unwrap();
        if skip {
            for ((name, p), b) in params.iter().zip(&before) {
                assert_eq!(&p.value.to_vec().unwrap(), b, "{what}: {name} changed in a skipped step");
            }
            continue;
        }
        applied += 1;
        sparse_adam_step((beta1, beta2, eps), lr, applied, coef, &rows, E, &mut want[0], &grads[0], &mut state[0]);
        for i in 1..params.len() {
            optimizer_step(&adam, lr, applied, coef, &mut want[i], &grads[i], &mut state[i]);
        }
        for (i, (name, p)) in params.iter().enumerate() {
            let got = p.value.to_vec().unwrap();
            let w: Vec<f32> = want[i].iter().map(|&v| v as f32).collect();
            let scale: Vec<f32> = w.iter().map(|v| v.abs().max(1.0)).collect();
            assert_close(&format!("{what}: {name} after step {k}"), &got, &w, &scale, ADAM_TOL);
        }
        // Rows not in this step's gradient did not move at all.
        let got = m.emb.weight.value.to_vec().unwrap();
        for r in (0..V as u32).filter(|r| !rows.contains(r)) {
            let span = r as usize * E..(r as usize + 1) * E;
            assert_eq!(got[span.clone()], before[0][span], "{what}: row {r} moved without a gradient");
        }
    }
    // Rows never looked up (8) and the padding row have zero moments.
    let named = opt.named_state().unwrap();
    let (exp_avg, exp_avg_sq) = (named[0].1.to_vec().unwrap(), named[1].1.to_vec().unwrap());
    assert_eq!(named[0].0, "emb.weight.exp_avg");
    for r in [0usize, 8] {
        let span = r * E..(r + 1) * E;
        assert!(exp_avg[span.clone()].iter().chain(&exp_avg_sq[span]).all(|&v| v == 0.0), "{what}: row {r} state");
    }
}

#[test]
fn sparse_adam_follows_torch_on_the_logged_rows() {
    for clip in [None, Some(0.3)] {
        for guard in [false, true] {
            run(clip, guard);
        }
    }
}

/// `zero_grad` zeroes exactly the logged rows (the gradient is then zero
/// everywhere) and empties the log; an evaluation tape logs nothing.
#[test]
fn zero_grad_clears_the_logged_rows() {
    let dev = device();
    let m = model(dev);
    let opt = Optimizer::adam(named_parameters(&m), 0.01).unwrap().with_sparse_embedding(&m.emb).unwrap();
    backward(dev, &m, &opt, &[2, 4, 4, 0]);
    let log = m.emb.sparse.as_ref().unwrap();
    assert_eq!(log.rows(), [2, 4]);
    let g = m.emb.weight.grad.to_vec().unwrap();
    assert!(g[2 * E..3 * E].iter().any(|&v| v != 0.0) && g[4 * E..5 * E].iter().any(|&v| v != 0.0));
    opt.zero_grad().unwrap();
    assert!(log.rows().is_empty());
    assert!(m.emb.weight.grad.to_vec().unwrap().iter().all(|&v| v == 0.0), "a logged row kept its gradient");
    let mut tape = Tape::eval(dev);
    tape.embedding(&m.emb, &[1, 2, 3]).unwrap();
    assert!(log.rows().is_empty(), "an evaluation tape logged rows");
}

/// With a sparse embedding a flat classifier's step is two dispatches per
/// pass (the embedding's rows, the rest; zeroing the rest is a buffer
/// clear, no dispatch); with no logged row the embedding's update and
/// zeroing are skipped. Its own device: the counter
/// is per device.
#[test]
fn a_sparse_embedding_is_its_own_segment() {
    let dev = Device::new().unwrap();
    let model =
        SequenceClassifierConfig::new(30, 8, 12, 3).with_sparse_embedding(true).with_seed(4).init(&dev).unwrap();
    let mut opt =
        Optimizer::adam(named_parameters(&model), 1e-2).unwrap().with_sparse_embedding(&model.embedding).unwrap();
    assert_eq!(opt.dispatches_per_pass(), 2);
    let (t, lengths) = (4, [4usize, 2]);
    let ids: Vec<u32> = (0..2 * t).map(|i| (i * 5 % 30) as u32).collect();
    let count = |f: &mut dyn FnMut()| {
        let before = dev.dispatch_count();
        f();
        dev.dispatch_count() - before
    };
    opt.step().unwrap(); // makes the state; no row logged: the embedding's update is skipped
    let mut tape = Tape::train(&dev, 1);
    let logits = model.forward(&mut tape, &ids, &lengths, t).unwrap();
    let loss = tape.cross_entropy(logits, &[0, 1], None, 0.0).unwrap();
    // The dense rest is zeroed by a buffer clear (no dispatch); the
    // embedding's rows by a kernel, once rows were logged.
    assert_eq!(count(&mut || opt.zero_grad().unwrap()), 0, "zero_grad with no logged row");
    tape.backward(loss.loss).unwrap();
    assert_eq!(count(&mut || opt.step().unwrap()), 2, "step");
    assert_eq!(count(&mut || opt.zero_grad().unwrap()), 1, "zero_grad");
}

/// What cannot be updated lazily is an error naming the fix.
#[test]
fn sparse_updates_reject_what_they_cannot_do() {
    let dev = device();
    let m = model(dev);
    let dense = EmbeddingConfig::new(V, E).init(dev).unwrap();
    let params = named_parameters(&m);
    let err = Optimizer::adam(params.clone(), 0.01).unwrap().with_sparse_embedding(&dense).unwrap_err();
    assert!(err.to_string().contains("with_sparse(true)"), "{err}");
    let err = Optimizer::adamw(params.clone(), 0.01).unwrap().with_sparse_embedding(&m.emb).unwrap_err();
    assert!(err.to_string().contains("SparseAdam"), "{err}");
    let err = Optimizer::sgd(params.clone(), 0.01).unwrap().with_sparse_embedding(&m.emb).unwrap_err();
    assert!(err.to_string().contains("SparseAdam"), "{err}");
    let other = model(dev);
    let err = Optimizer::adam(params.clone(), 0.01).unwrap().with_sparse_embedding(&other.emb).unwrap_err();
    assert!(err.to_string().contains("not one of this optimizer's parameters"), "{err}");
    let opt = Optimizer::adam(params.clone(), 0.01).unwrap().with_sparse_embedding(&m.emb).unwrap();
    let sgd = Algorithm::Sgd { momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 };
    assert!(opt.with_algorithm(sgd).is_err(), "the rule cannot leave Adam");
    let mut opt = Optimizer::adam(params, 0.01).unwrap();
    opt.step().unwrap();
    let err = opt.with_sparse_embedding(&m.emb).unwrap_err();
    assert!(err.to_string().contains("before the first step"), "{err}");
}
