//! Optimizer updates on the GPU against the CPU reference of PyTorch's
//! formulas, with and without global-norm clipping; LR schedules.

mod common;

use common::{assert_close, assert_close_scalar, device, random};
use wgrnn::nn::Parameter;
use wgrnn::optim::{Algorithm, LrSchedule, Optimizer};
use wgrnn::reference::nn::{clip_coefficient, optimizer_step};
use wgrnn::Tensor;

/// Parameters after 1–3 SGD or RMSprop steps against the f64 reference,
/// relative to max(1, |reference|) (parameters are O(1); the floor keeps
/// a near-zero parameter to the error of its O(1) terms). A step is a
/// handful of f32 operations per element (≈ 6e-8 each). Measured worst:
/// 1.2e-7 on lavapipe and on llvmpipe GL over 162 comparisons; this bound
/// is 13× that and catches any formula error (≥ 1e-4 for lr = 1e-2).
const STEP_TOL: f32 = 1.5e-6;
/// The same for Adam and AdamW, whose bias corrections 1 − β^t are computed
/// on the GPU with `pow`, which WGSL only requires to be as accurate as
/// exp2(t·log2 β): its absolute error of a few 1e-7, against
/// 1 − 0.999³ ≈ 3e-3, is a relative error of ≈ 3e-4 in the step size
/// (lr = 1e-2), i.e. ≈ 1e-6 in the parameter. Measured worst: 1.4e-6 on
/// lavapipe and on llvmpipe GL over 81 comparisons (AdamW, β2 = 0.999,
/// step 3); this bound is 10× that.
const ADAM_STEP_TOL: f32 = 1.5e-5;
/// `clip_grad_norm`'s norm (a sum of ~340 squares in f32, then a square
/// root) against f64, relative. Measured worst: 5.4e-8 on lavapipe and on
/// llvmpipe GL over 54 comparisons; this bound is 11× that.
const NORM_TOL: f64 = 6e-7;
/// LR schedules evaluated in f32 on the host against exact values,
/// relative to the base rate 1. Measured worst: 6.0e-8 (one ulp at 0.55)
/// over 1 comparison of 3 values; this bound is 10× that.
const SCHEDULE_TOL: f32 = 6e-7;

fn run(alg: Algorithm, name: &str, clip: Option<f32>) {
    let dev = device();
    let shapes = [vec![7usize, 5], vec![300], vec![1]];
    let params: Vec<(String, Parameter)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("p{i}"), Parameter::new(dev, &random(s.iter().product(), 40 + i as u64), s).unwrap()))
        .collect();
    let mut host_p: Vec<Vec<f64>> =
        params.iter().map(|(_, p)| p.value.to_vec().unwrap().iter().map(|&v| f64::from(v)).collect()).collect();
    let mut host_state: Vec<Vec<Vec<f64>>> = host_p.iter().map(|p| vec![vec![0.0; p.len()]; 3]).collect();
    let lr = 1e-2;
    let mut opt = Optimizer::sgd(params.clone(), lr).unwrap().with_algorithm(alg).unwrap();
    for step in 1..=3u32 {
        let grads: Vec<Vec<f32>> = params
            .iter()
            .enumerate()
            .map(|(i, (_, p))| random(p.value.numel(), 100 * u64::from(step) + i as u64))
            .collect();
        for ((_, p), g) in params.iter().zip(&grads) {
            p.grad.write(&g.iter().map(|v| v * 3.0).collect::<Vec<_>>()).unwrap();
        }
        let g64: Vec<Vec<f64>> = grads.iter().map(|g| g.iter().map(|&v| f64::from(v * 3.0)).collect()).collect();
        let mut coef = 1.0;
        if let Some(max_norm) = clip {
            let norm = opt.clip_grad_norm(max_norm).unwrap();
            let refs: Vec<&[f64]> = g64.iter().map(|g| g.as_slice()).collect();
            let (want_norm, c) = clip_coefficient(&refs, f64::from(max_norm));
            coef = c;
            let got = f64::from(norm.value().unwrap());
            assert_close_scalar(&format!("{name}: clip norm step {step}"), got, want_norm, want_norm, NORM_TOL);
        }
        opt.step().unwrap();
        for (i, p) in host_p.iter_mut().enumerate() {
            optimizer_step(&alg, f64::from(lr), step, coef, p, &g64[i], &mut host_state[i]);
        }
        for (i, (_, p)) in params.iter().enumerate() {
            let want: Vec<f32> = host_p[i].iter().map(|&v| v as f32).collect();
            let scale: Vec<f32> = want.iter().map(|w| w.abs().max(1.0)).collect();
            let tol = if matches!(alg, Algorithm::Adam { .. }) { ADAM_STEP_TOL } else { STEP_TOL };
            assert_close(
                &format!("{name} clip={clip:?} step {step} p{i}"),
                &p.value.to_vec().unwrap(),
                &want,
                &scale,
                tol,
            );
        }
    }
    assert_eq!(opt.steps(), 3);
}

#[test]
fn updates_match_pytorch_formulas() {
    for (alg, name) in common::update_rules() {
        run(alg, name, None);
    }
}

#[test]
fn clipping_matches_clip_grad_norm() {
    for (alg, name) in common::update_rules() {
        // Gradients have norm ≈ 30: 1.0 clips hard, 1e3 not at all.
        run(alg, name, Some(1.0));
        run(alg, name, Some(1e3));
    }
}

/// Each `clip_grad_norm` returns its own norm, unchanged by later calls.
#[test]
fn grad_norms_are_independent() {
    let dev = device();
    let p = Parameter::new(dev, &[0.0; 2], &[2]).unwrap();
    let mut opt = Optimizer::sgd(vec![("w".into(), p.clone())], 0.1).unwrap();
    p.grad.write(&[3.0, 4.0]).unwrap();
    let first = opt.clip_grad_norm(1.0).unwrap();
    p.grad.write(&[30.0, 40.0]).unwrap();
    let second = opt.clip_grad_norm(1.0).unwrap();
    assert_eq!((first.value().unwrap(), second.value().unwrap()), (5.0, 50.0));
}

#[test]
fn zero_grad_and_bad_settings() {
    let dev = device();
    let p = Parameter::new(dev, &[1.0, 2.0], &[2]).unwrap();
    let p2 = p.clone();
    p.grad.write(&[3.0, 4.0]).unwrap();
    let mut opt = Optimizer::adam(vec![("w".into(), p.clone())], 0.1).unwrap();
    opt.zero_grad().unwrap();
    assert_eq!(p.grad.to_vec().unwrap(), [0.0, 0.0]);
    assert!(opt.clip_grad_norm(0.0).is_err());
    assert!(Optimizer::sgd(vec![], 0.1).is_err());
    assert!(Optimizer::sgd(vec![("w".into(), p)], f32::NAN).is_err());
    opt.set_lr(0.5).unwrap();
    assert_eq!(opt.lr(), 0.5);
    assert!(opt.set_lr(f32::NAN).is_err());
    // Settings PyTorch rejects.
    let nesterov_without_momentum = Algorithm::Sgd { momentum: 0.0, dampening: 0.0, nesterov: true, weight_decay: 0.0 };
    let beta2_one = Algorithm::Adam { beta1: 0.9, beta2: 1.0, eps: 1e-8, weight_decay: 0.0, decoupled: false };
    for bad in [nesterov_without_momentum, beta2_one] {
        assert!(Optimizer::sgd(vec![("w".into(), p2.clone())], 0.1).unwrap().with_algorithm(bad).is_err(), "{bad:?}");
    }
    // Value and gradient of different shapes.
    let mismatched = Parameter { value: Tensor::zeros(dev, &[3]).unwrap(), grad: Tensor::zeros(dev, &[2]).unwrap() };
    assert!(Optimizer::adam(vec![("m".into(), mismatched)], 0.1).is_err());
    // The algorithm cannot change after a step.
    opt.step().unwrap();
    assert!(opt.with_algorithm(beta2_one).is_err());
}

#[test]
fn schedules() {
    let step = LrSchedule::Step { step_size: 10, gamma: 0.5 };
    assert_eq!(
        (step.lr_at(1.0, 0), step.lr_at(1.0, 9), step.lr_at(1.0, 10), step.lr_at(1.0, 25)),
        (1.0, 1.0, 0.5, 0.25)
    );
    let cos = LrSchedule::Cosine { t_max: 100, eta_min: 0.1 };
    let got = [0, 50, 100].map(|t| cos.lr_at(1.0, t));
    assert_close("cosine schedule", &got, &[1.0, 0.55, 0.1], &[1.0; 3], SCHEDULE_TOL);
    let warm = LrSchedule::LinearWarmup { warmup: 4, after: Box::new(LrSchedule::Constant) };
    assert_eq!([0, 1, 3, 4, 100].map(|t| warm.lr_at(2.0, t)), [0.5, 1.0, 2.0, 2.0, 2.0]);
}

/// The non-finite guard, for every update rule: a step whose gradients (or
/// a tensor given to `check_finite`) hold NaN or ±inf changes nothing —
/// parameters and optimizer state stay bitwise as they were — and is
/// counted on the GPU with no readback; the steps after it land bitwise
/// where an optimizer that never saw the bad steps puts them (bias
/// correction and first-step momentum count applied steps only).
#[test]
fn non_finite_steps_are_skipped_and_counted() {
    // Its own device: readbacks are counted per device.
    let dev = &wgrnn::Device::new().unwrap();
    for (alg, name) in common::update_rules() {
        let shapes = [vec![7usize, 5], vec![300]];
        let make = || -> Vec<(String, Parameter)> {
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (format!("p{i}"), Parameter::new(dev, &random(s.iter().product(), 70 + i as u64), s).unwrap())
                })
                .collect()
        };
        let (guarded_params, plain_params) = (make(), make());
        let mut guarded = Optimizer::sgd(guarded_params.clone(), 1e-2)
            .unwrap()
            .with_algorithm(alg)
            .unwrap()
            .with_non_finite_guard(true)
            .unwrap();
        let mut plain = Optimizer::sgd(plain_params.clone(), 1e-2).unwrap().with_algorithm(alg).unwrap();
        let loss = Tensor::from_slice(dev, &[0.5], &[1]).unwrap();
        let bad_loss = Tensor::from_slice(dev, &[f32::INFINITY], &[1]).unwrap();
        // Step 1 is bad (NaN gradient), 2 good, 3 bad (infinite loss), 4 good.
        for step in 1..=4u64 {
            let grads: Vec<Vec<f32>> =
                shapes.iter().enumerate().map(|(i, s)| random(s.iter().product(), 10 * step + i as u64)).collect();
            for ((_, p), g) in guarded_params.iter().zip(&grads) {
                p.grad.write(g).unwrap();
            }
            let before: Vec<Vec<f32>> = guarded_params.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
            let state_before: Vec<Vec<f32>> =
                guarded.named_state().unwrap().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
            let readbacks = dev.readback_count();
            match step {
                1 => {
                    let mut g = grads[1].clone();
                    g[123] = f32::NAN;
                    guarded_params[1].1.grad.write(&g).unwrap();
                    guarded.check_finite(&loss).unwrap();
                }
                3 => guarded.check_finite(&bad_loss).unwrap(),
                _ => guarded.check_finite(&loss).unwrap(),
            }
            guarded.step().unwrap();
            assert_eq!(dev.readback_count(), readbacks, "{name}: the guard reads nothing back");
            let after: Vec<Vec<f32>> = guarded_params.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
            if step % 2 == 1 {
                assert_eq!(after, before, "{name}: skipped step {step} changed the parameters");
                let state: Vec<Vec<f32>> =
                    guarded.named_state().unwrap().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
                assert_eq!(state, state_before, "{name}: skipped step {step} changed the optimizer state");
            } else {
                for ((_, p), g) in plain_params.iter().zip(&grads) {
                    p.grad.write(g).unwrap();
                }
                plain.step().unwrap();
                let want: Vec<Vec<f32>> = plain_params.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
                assert_eq!(after, want, "{name}: step {step} differs from an optimizer that never saw the bad steps");
            }
        }
        // With clipping, the norm's pass does the check.
        let mut g = random(300, 99);
        g[7] = f32::NEG_INFINITY;
        guarded_params[1].1.grad.write(&g).unwrap();
        let before: Vec<Vec<f32>> = guarded_params.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
        let dispatches = dev.dispatch_count();
        guarded.clip_grad_norm(1.0).unwrap();
        guarded.step().unwrap();
        let after: Vec<Vec<f32>> = guarded_params.iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
        assert_eq!(after, before, "{name}: a clipped step with an infinite gradient changed the parameters");
        // 2 partial sums + coefficient + norm copy + guard + 2 updates: no check pass.
        assert_eq!(dev.dispatch_count() - dispatches, 7, "{name}");
        let report = guarded.non_finite_steps().unwrap();
        assert_eq!((report.skipped, report.first), (3, Some(1)), "{name}");
        assert_eq!((guarded.steps(), guarded.applied_steps().unwrap()), (5, 2), "{name}");
        // Off again: a NaN gradient goes through, as in PyTorch.
        guarded.set_non_finite_guard(false).unwrap();
        guarded_params[0].1.grad.write(&[f32::NAN; 35]).unwrap();
        guarded.step().unwrap();
        assert!(guarded_params[0].1.value.to_vec().unwrap().iter().all(|v| v.is_nan()), "{name}");
    }
}
