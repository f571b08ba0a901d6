//! Flat parameter storage and the fused optimizer (issue 10, item 3): a
//! model's parameters as views of one value buffer and one gradient buffer
//! (`nn::flatten_parameters`), updated with one dispatch per pass, and
//! bitwise what the per-tensor path computes.
//!
//! Every comparison here is exact (bit patterns): the fused kernels run the
//! per-tensor formulas element for element, and the clip's partial sums
//! cover the same 256-element chunks in the same order, so any difference
//! is a bug, not rounding.

mod common;

use common::{device, random};
use wgrnn::autograd::Tape;
use wgrnn::models::{SequenceClassifier, SequenceClassifierConfig};
use wgrnn::nn::{flatten_parameters, named_parameters, Module, Parameter};
use wgrnn::optim::{Algorithm, Optimizer};
use wgrnn::rnn::RnnMode;
use wgrnn::{ops, Device, Tensor};

/// Shapes around the 256-element view alignment: below, at, just past it,
/// and a single element. Lengths that are multiples of 4 update through the
/// vec4 entries, the others (and the flat run, 2,305 elements with padding)
/// through the scalar ones, so the bitwise comparison covers both.
const SHAPES: [&[usize]; 6] = [&[7, 5], &[300], &[1], &[256], &[2, 300], &[257]];

/// Asserts equal bit patterns; on failure names the first differing
/// elements and the largest difference.
fn assert_bitwise(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
    if !bad.is_empty() {
        let worst = bad.iter().map(|&i| f64::from(got[i]) - f64::from(want[i])).fold(0.0f64, |m, d| m.max(d.abs()));
        let first: Vec<String> =
            bad.iter().take(5).map(|&i| format!("[{i}] got {:e} want {:e}", got[i], want[i])).collect();
        panic!(
            "{what}: {} of {} elements differ; first: {}; worst |diff| {worst:e}",
            bad.len(),
            got.len(),
            first.join(", ")
        );
    }
}

/// A named parameter list (a module, see `nn::Module`).
type Named = Vec<(String, Parameter)>;

/// Two lists of parameters with equal values: one parameter per buffer,
/// and the same flattened.
fn parameter_lists(dev: &Device) -> (Named, Named) {
    let make = || -> Named {
        SHAPES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.iter().product();
                (format!("p{i}"), Parameter::new(dev, &random(n, 40 + i as u64), s).unwrap())
            })
            .collect()
    };
    let split = make();
    let mut flat = make();
    flatten_parameters(&mut flat).unwrap();
    (split, flat)
}

/// Steps both optimizers with equal gradients and compares parameters,
/// state, norms and skip counts bit for bit. With the guard on, step 2's
/// gradient holds a NaN and must be skipped by both.
fn run_both(alg: Algorithm, name: &str, clip: Option<f32>, guard: bool) {
    let dev = device();
    let (split, flat) = parameter_lists(dev);
    let lr = 1e-2;
    let make = |params: &Vec<(String, Parameter)>| {
        Optimizer::sgd(params.clone(), lr).unwrap().with_algorithm(alg).unwrap().with_non_finite_guard(guard).unwrap()
    };
    let (mut per_tensor, mut fused) = (make(&split), make(&flat));
    assert_eq!(per_tensor.dispatches_per_pass(), SHAPES.len(), "{name}: per-tensor segments");
    assert_eq!(fused.dispatches_per_pass(), 1, "{name}: a flat list is one segment");
    let what = format!("{name} clip={clip:?} guard={guard}");
    for step in 1..=4u64 {
        per_tensor.zero_grad().unwrap();
        fused.zero_grad().unwrap();
        for ((_, a), (_, b)) in split.iter().zip(&flat) {
            assert!(b.grad.to_vec().unwrap().iter().all(|&g| g == 0.0), "{what}: zero_grad left a gradient");
            let mut g: Vec<f32> = random(a.grad.numel(), 100 * step + a.grad.numel() as u64);
            g.iter_mut().for_each(|v| *v *= 3.0);
            if guard && step == 2 && a.grad.numel() == 300 {
                g[17] = f32::NAN;
            }
            a.grad.write(&g).unwrap();
            b.grad.write(&g).unwrap();
        }
        if let Some(max_norm) = clip {
            let want = per_tensor.clip_grad_norm(max_norm).unwrap().value().unwrap();
            let got = fused.clip_grad_norm(max_norm).unwrap().value().unwrap();
            assert_bitwise(&format!("{what}: norm at step {step}"), &[got], &[want]);
        }
        per_tensor.step().unwrap();
        fused.step().unwrap();
        for ((pname, a), (_, b)) in split.iter().zip(&flat) {
            let label = format!("{what}: {pname} after step {step}");
            assert_bitwise(&label, &b.value.to_vec().unwrap(), &a.value.to_vec().unwrap());
        }
    }
    let (want, got) = (per_tensor.named_state().unwrap(), fused.named_state().unwrap());
    assert_eq!(want.len(), got.len(), "{what}: state tensors");
    for ((wname, w), (gname, g)) in want.iter().zip(&got) {
        assert_eq!((wname, w.shape()), (gname, g.shape()), "{what}: state names and shapes");
        assert_bitwise(&format!("{what}: {gname}"), &g.to_vec().unwrap(), &w.to_vec().unwrap());
    }
    assert_eq!(fused.non_finite_steps().unwrap(), per_tensor.non_finite_steps().unwrap(), "{what}");
    if guard {
        assert_eq!(fused.non_finite_steps().unwrap().skipped, 1, "{what}: the NaN step is skipped");
    }
}

#[test]
fn fused_steps_are_bitwise_the_per_tensor_steps() {
    for (alg, name) in common::update_rules() {
        for clip in [None, Some(1.0), Some(1e3)] {
            for guard in [false, true] {
                run_both(alg, name, clip, guard);
            }
        }
    }
}

/// Flattening copies values and gradients bit for bit, is idempotent, and
/// views read and write only their own elements.
#[test]
fn flattening_keeps_values_and_views_stay_apart() {
    let dev = device();
    let (split, mut flat) = parameter_lists(dev);
    for ((_, a), (_, b)) in split.iter().zip(&flat) {
        assert_bitwise("flattened value", &b.value.to_vec().unwrap(), &a.value.to_vec().unwrap());
        assert!(b.grad.to_vec().unwrap().iter().all(|&g| g == 0.0), "flattened gradient");
    }
    // Gradients are copied too, and a second flatten changes nothing.
    for (i, (_, p)) in flat.iter().enumerate() {
        p.grad.write(&random(p.grad.numel(), 7 + i as u64)).unwrap();
    }
    let before: Vec<Vec<f32>> = flat.iter().map(|(_, p)| p.grad.to_vec().unwrap()).collect();
    let kept = flat[0].1.value.clone();
    flatten_parameters(&mut flat).unwrap();
    for ((_, p), b) in flat.iter().zip(&before) {
        assert_bitwise("gradient after a second flatten", &p.grad.to_vec().unwrap(), b);
    }
    kept.write(&vec![5.0; kept.numel()]).unwrap();
    assert_eq!(flat[0].1.value.to_vec().unwrap(), vec![5.0; kept.numel()], "a second flatten made new buffers");

    // Writing one view leaves its neighbours (whose padding lies between).
    let values: Vec<Vec<f32>> = flat.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
    let p1 = &flat[1].1.value;
    p1.write(&vec![-2.5; p1.numel()]).unwrap();
    for (i, (_, p)) in flat.iter().enumerate().filter(|&(i, _)| i != 1) {
        assert_bitwise(&format!("p{i} after writing p1"), &p.value.to_vec().unwrap(), &values[i]);
    }
    assert_eq!(p1.to_vec().unwrap(), vec![-2.5; p1.numel()]);
}

/// Kernels that read one view and write another of the same buffer work
/// (wgpu forbids a buffer bound read-only and read-write in one dispatch,
/// so the launcher stages the read); overlapping views are rejected.
#[test]
fn kernels_bind_views_of_one_buffer() {
    let dev = device();
    let mut list: Vec<(String, Parameter)> =
        (0..3).map(|i| (format!("q{i}"), Parameter::new(dev, &random(70, 90 + i), &[7, 10]).unwrap())).collect();
    flatten_parameters(&mut list).unwrap();
    let (q0, q1, q2) = (&list[0].1.value, &list[1].1.value, &list[2].1.value);
    let (h0, h2) = (q0.to_vec().unwrap(), q2.to_vec().unwrap());
    ops::elementwise_copy(q0, q1).unwrap();
    assert_bitwise("copy between views of one buffer", &q1.to_vec().unwrap(), &h0);
    ops::elementwise_add(q0, q2, q1).unwrap();
    let sum: Vec<f32> = h0.iter().zip(&h2).map(|(a, b)| a + b).collect();
    assert_bitwise("add of two views into a third", &q1.to_vec().unwrap(), &sum);
    ops::elementwise_axpy(2.0, q2, q0).unwrap();
    let axpy: Vec<f32> = h0.iter().zip(&h2).map(|(a, b)| a + 2.0 * b).collect();
    assert_bitwise("axpy between views", &q0.to_vec().unwrap(), &axpy);
    assert_bitwise("the view only read is unchanged", &q2.to_vec().unwrap(), &h2);

    // A view overlapping the output is aliasing, still rejected.
    let err = ops::elementwise_add(q0, q1, &q0.clone()).unwrap_err();
    assert!(err.to_string().contains("must not share its buffer"), "{err}");
    let err = ops::elementwise_copy(&q1.reshape(&[70]).unwrap(), &q1.clone()).unwrap_err();
    assert!(err.to_string().contains("must not share its buffer"), "{err}");

    // A GEMM reading two views of one buffer computes what it computes on
    // copies of them in buffers of their own.
    let opts = ops::GemmOptions { trans_b: true, ..Default::default() };
    let (on_views, on_copies) = (Tensor::zeros(dev, &[7, 7]).unwrap(), Tensor::zeros(dev, &[7, 7]).unwrap());
    ops::gemm(q0, q2, None, &on_views, opts).unwrap();
    let own = |t: &Tensor| Tensor::from_slice(dev, &t.to_vec().unwrap(), t.shape()).unwrap();
    ops::gemm(&own(q0), &own(q2), None, &on_copies, opts).unwrap();
    assert_bitwise("gemm of two views", &on_views.to_vec().unwrap(), &on_copies.to_vec().unwrap());
}

/// A model without `visit_mut`, and parameters that share storage, cannot
/// be flattened; the error names the problem and nothing changes.
#[test]
fn flatten_rejects_what_it_cannot_flatten() {
    struct Opaque(Parameter);
    impl Module for Opaque {
        fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
            f(wgrnn::nn::join(prefix, "w"), &self.0);
        }
    }
    let dev = device();
    let mut opaque = Opaque(Parameter::new(dev, &[1.0, 2.0], &[2]).unwrap());
    let err = flatten_parameters(&mut opaque).unwrap_err();
    assert!(err.to_string().contains("visit_mut"), "{err}");
    assert_eq!(opaque.0.value.to_vec().unwrap(), [1.0, 2.0]);

    let p = Parameter::new(dev, &[1.0, 2.0], &[2]).unwrap();
    let mut shared = vec![("a".to_string(), p.clone()), ("b".to_string(), p)];
    let err = flatten_parameters(&mut shared).unwrap_err();
    assert!(err.to_string().contains("share storage"), "{err}");

    let mut empty: Vec<(String, Parameter)> = Vec::new();
    flatten_parameters(&mut empty).unwrap();
}

/// One training step of a flat model dispatches one `zero_grad` fill and
/// one update for all 7 parameters (the per-tensor list: 7 each); the clip
/// pass is one partial-sum dispatch, the guard's check one. Its own device:
/// the dispatch counter is per device. Flattening hands the old per-tensor
/// buffers back to the driver, not to the pool's cache.
#[test]
fn a_flat_model_steps_in_one_dispatch_per_pass() {
    let dev = Device::new().unwrap();
    let cached = dev.memory_stats().cached;
    let model = SequenceClassifierConfig::new(30, 8, 12, 3).with_seed(3).init(&dev).unwrap();
    dev.synchronize().unwrap();
    assert_eq!(dev.memory_stats().cached, cached, "flattening left the old buffers in the pool's cache");
    let params = named_parameters(&model);
    assert_eq!(params.len(), 7);
    let split: Vec<(String, Parameter)> = params
        .iter()
        .map(|(n, p)| (n.clone(), Parameter::new(&dev, &p.value.to_vec().unwrap(), p.shape()).unwrap()))
        .collect();
    let (t, lengths) = (5, [5usize, 3]);
    let ids: Vec<u32> = (0..2 * t).map(|i| (i * 7 % 30) as u32).collect();
    let count = |f: &mut dyn FnMut()| {
        let before = dev.dispatch_count();
        f();
        dev.dispatch_count() - before
    };
    for (list, per_pass) in [(params.clone(), 1u64), (split, 7)] {
        let mut opt = Optimizer::adam(list, 1e-2).unwrap().with_non_finite_guard(true).unwrap();
        assert_eq!(opt.dispatches_per_pass() as u64, per_pass);
        // The first step also makes the optimizer state.
        opt.zero_grad().unwrap();
        opt.step().unwrap();
        // zero_grad clears the gradients: a transfer command, no dispatch.
        assert_eq!(count(&mut || opt.zero_grad().unwrap()), 0, "zero_grad");
        let mut tape = Tape::train(&dev, 1);
        let logits = model.forward(&mut tape, &ids, &lengths, t).unwrap();
        let loss = tape.cross_entropy(logits, &[0, 2], None, 0.0).unwrap();
        tape.backward(loss.loss).unwrap();
        // Guarded, not clipping: the check, guard_step, the update.
        assert_eq!(count(&mut || opt.step().unwrap()), 2 * per_pass + 1, "guarded step");
        // Clipping: the partial sums, the coefficient, the norm's copy; the
        // step then needs no check of its own.
        assert_eq!(count(&mut || drop(opt.clip_grad_norm(1.0).unwrap())), per_pass + 2, "clip_grad_norm");
        assert_eq!(count(&mut || opt.step().unwrap()), per_pass + 1, "guarded step after clipping");
        let mut opt = opt.with_non_finite_guard(false).unwrap();
        assert_eq!(count(&mut || opt.step().unwrap()), per_pass, "plain step");
    }
}

/// Training a flat model and the same model with one buffer per parameter
/// (Adam, clipping, the guard) gives bitwise equal weights, losses and
/// optimizer state; the checkpoint of either loads into the other.
#[test]
fn flat_and_per_tensor_models_train_identically() {
    let dev = device();
    let config = SequenceClassifierConfig::new(40, 8, 12, 3)
        .with_mode(RnnMode::Gru)
        .with_layers(2)
        .with_bidirectional(true)
        .with_seed(11);
    let flat = config.init(dev).unwrap();
    let mut split: SequenceClassifier = flat.clone();
    split.visit_mut("", &mut |_, p| {
        *p = Parameter::new(dev, &p.value.to_vec().unwrap(), p.shape()).unwrap();
    });
    let make = |m: &SequenceClassifier| {
        Optimizer::adam(named_parameters(m), 1e-2).unwrap().with_non_finite_guard(true).unwrap()
    };
    let (mut opt_flat, mut opt_split) = (make(&flat), make(&split));
    assert_eq!((opt_flat.dispatches_per_pass(), opt_split.dispatches_per_pass()), (1, named_parameters(&flat).len()));
    let (t, lengths) = (6, [6usize, 2, 4]);
    for step in 0..3u32 {
        let ids: Vec<u32> = (0..3 * t).map(|i| (i as u32 * 13 + step * 5) % 40).collect();
        let mut losses = Vec::new();
        for (model, opt) in [(&flat, &mut opt_flat), (&split, &mut opt_split)] {
            let mut tape = Tape::train(dev, u64::from(step) + 1);
            let logits = model.forward(&mut tape, &ids, &lengths, t).unwrap();
            let loss = tape.cross_entropy(logits, &[0, 1, 2], None, 0.0).unwrap();
            opt.zero_grad().unwrap();
            tape.backward(loss.loss).unwrap();
            opt.clip_grad_norm(0.5).unwrap();
            opt.step().unwrap();
            losses.push(tape.value(loss.loss).unwrap().to_vec().unwrap());
        }
        assert_bitwise(&format!("loss at step {step}"), &losses[0], &losses[1]);
    }
    for ((name, a), (_, b)) in named_parameters(&flat).iter().zip(&named_parameters(&split)) {
        assert_bitwise(&format!("{name} after training"), &a.value.to_vec().unwrap(), &b.value.to_vec().unwrap());
    }
    let dir = std::env::temp_dir().join(format!("wgrnn-flat-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flat.safetensors");
    wgrnn::checkpoint::save(&path, &flat, Some(&mut opt_flat)).unwrap();
    // Into a per-tensor model and optimizer: same names, shapes, values.
    let target = split.clone();
    target.visit("", &mut |_, p| p.value.write(&vec![0.0; p.value.numel()]).unwrap());
    let mut opt_target = make(&target);
    wgrnn::checkpoint::load(&path, &target, Some(&mut opt_target)).unwrap();
    let (want, got) = (opt_flat.named_state().unwrap(), opt_target.named_state().unwrap());
    for ((wn, w), (gn, g)) in want.iter().zip(&got) {
        assert_eq!(wn, gn);
        assert_bitwise(&format!("{gn} reloaded"), &g.to_vec().unwrap(), &w.to_vec().unwrap());
    }
    for ((name, a), (_, b)) in named_parameters(&flat).iter().zip(&named_parameters(&target)) {
        assert_bitwise(&format!("{name} reloaded"), &b.value.to_vec().unwrap(), &a.value.to_vec().unwrap());
    }
    // And back into a fresh flat model: its views receive the values.
    let fresh = config.with_seed(99).init(dev).unwrap();
    let mut opt_fresh = make(&fresh);
    wgrnn::checkpoint::load(&path, &fresh, Some(&mut opt_fresh)).unwrap();
    for ((name, a), (_, b)) in named_parameters(&flat).iter().zip(&named_parameters(&fresh)) {
        assert_bitwise(&format!("{name} into a flat model"), &b.value.to_vec().unwrap(), &a.value.to_vec().unwrap());
    }
    assert_eq!(opt_fresh.dispatches_per_pass(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// A language model's tied decoder weight is still the embedding's after
/// flattening (the model visits it once and re-ties it): a write to one is
/// seen through the other, and the optimizer updates it once.
#[test]
fn tied_weights_stay_tied_when_flat() {
    let dev = device();
    let lm = wgrnn::lm::LanguageModelConfig::new(11, 6, 9).with_tied_weights(true).with_seed(2).init(dev).unwrap();
    let names: Vec<String> = named_parameters(&lm).into_iter().map(|(n, _)| n).collect();
    assert!(!names.contains(&"decoder.weight".to_string()), "{names:?}");
    let values: Vec<f32> = (0..66).map(|i| i as f32 * 0.25).collect();
    lm.embedding.weight.value.write(&values).unwrap();
    assert_bitwise("decoder weight after writing the embedding's", &lm.decoder.weight.value.to_vec().unwrap(), &values);
    assert_eq!(Optimizer::adam(named_parameters(&lm), 1e-3).unwrap().dispatches_per_pass(), 1);
}
