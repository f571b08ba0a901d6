//! The buffer pool: after a warm-up iteration, a loop that makes and drops
//! the same tensors creates no new GPU buffers. Its own test binary so no
//! concurrent test shares (and allocates on) the device.

use wgrnn::ops::{gemm, GemmOptions};
use wgrnn::{Device, Tensor};

fn step(dev: &Device, w: &Tensor) -> f32 {
    let x = Tensor::from_slice(dev, &[0.5; 64 * 32], &[64, 32]).unwrap();
    let y = Tensor::zeros(dev, &[64, 16]).unwrap();
    gemm(&x, w, None, &y, GemmOptions::default()).unwrap();
    let s = Tensor::zeros(dev, &[16]).unwrap();
    wgrnn::ops::sum_cols(&y, &s, 0.0).unwrap();
    s.to_vec().unwrap()[0]
}

#[test]
fn steady_state_loop_allocates_no_buffers() {
    // No pool budget, whatever WGRNN_POOL_BUDGET says: this is about reuse.
    let dev = Device::with_options(&wgrnn::DeviceOptions::from_env().unwrap().with_pool_budget(None)).unwrap();
    let w = Tensor::from_slice(&dev, &[0.25; 32 * 16], &[32, 16]).unwrap();
    let first = step(&dev, &w);
    let after_warm_up = dev.buffers_created();
    for _ in 0..20 {
        // Every step computes the same value: 64 rows · 32 · 0.5 · 0.25.
        assert_eq!(step(&dev, &w), first);
    }
    assert_eq!(first, 64.0 * 32.0 * 0.5 * 0.25);
    assert_eq!(dev.buffers_created(), after_warm_up, "the pool missed after warm-up");
}

/// Dispatches per recurrent layer and direction, as the README states.
/// Step kernels: forward = 1 input-projection GEMM + 3 to set up the dense
/// states from a given h0 and c0 (h0 gathered into sorted order, copied for
/// double buffering, c0 gathered; none for zeros, which start as buffer
/// clears) + one fused step kernel per time step; backward = 1 state
/// set-up (grad_c_n gathered; the two dG buffers start zeroed by clears,
/// which are no dispatches) + one step kernel per time step + 1
/// initial-state kernel + 3 GEMMs (dW_ih, dW_hh, dX) + 2 bias sums, which
/// ride in the dW GEMMs where the subgroup GEMM runs and its shapes fit
/// (K = Σ lengths a multiple of 4). Sequence kernels: forward = the GEMM +
/// 1; backward = 1 + the 3 GEMMs and 2 sums, whatever T. Plus one gather
/// to pack the input and
/// one to unpack the output (padded API), and the same two for the
/// gradients. Its own device: counts (and the forced variant) are per
/// device.
#[test]
fn recurrent_dispatch_budget() {
    use wgrnn::rnn::{RecurrentKernel, RnnConfig, RnnMode};
    let dev = Device::new().unwrap();
    let (b, t, layers, dirs) = (3, 7, 2, 2);
    let rnn = RnnConfig::new(RnnMode::Lstm, 4, 8).with_num_layers(layers).with_bidirectional(true).init(&dev).unwrap();
    let x = Tensor::zeros(&dev, &[b, t, 4]).unwrap();
    let go = Tensor::zeros(&dev, &[b, t, 16]).unwrap();
    let lengths = [7, 3, 5];
    let h0 = Tensor::zeros(&dev, &[layers * dirs, b, 8]).unwrap();
    let count_from = |kernel, lengths: &[usize], h0: Option<&Tensor>| {
        dev.set_recurrent_kernel(Some(kernel));
        let before = dev.dispatch_count();
        let fwd = rnn.forward(&x, lengths, h0, h0, None).unwrap();
        let forward = dev.dispatch_count() - before;
        let before = dev.dispatch_count();
        rnn.backward(&fwd, &go, None, None).unwrap();
        (forward, dev.dispatch_count() - before)
    };
    let count = |kernel, lengths: &[usize]| count_from(kernel, lengths, None);
    let pairs = (layers * dirs) as u64;
    // h0 and c0 default to zeros (buffer clears, no dispatch), as do
    // grad_h_n and grad_c_n; then the pack and unpack gathers.
    // Σ lengths = 15 rows: K % 4 ≠ 0, so the bias sums are dispatches.
    let (forward, backward) = count(RecurrentKernel::Step, &lengths);
    assert_eq!(forward, pairs * (1 + t as u64) + 2);
    assert_eq!(backward, pairs * (1 + t as u64 + 1 + 3 + 2) + 2);
    // A given h0 and c0 (zeros here, but tensors): the three set-up gathers.
    let (forward, backward_from_h0) = count_from(RecurrentKernel::Step, &lengths, Some(&h0));
    assert_eq!(forward, pairs * (1 + 3 + t as u64) + 2);
    assert_eq!(backward_from_h0, backward);
    let (forward, backward) = count(RecurrentKernel::Sequence { rows: 4 }, &lengths);
    assert_eq!(forward, pairs * (1 + 1) + 2);
    assert_eq!(backward, pairs * (1 + 3 + 2) + 2);
    // Σ lengths = 16: on a device with the subgroup GEMM the sums ride in
    // the dW GEMMs (I = 4, 2H = 16 and 4H = 32 are multiples of 4 too).
    let fused = matches!(
        wgrnn::ops::GemmVariant::for_device(&dev),
        wgrnn::ops::GemmVariant::Subgroup | wgrnn::ops::GemmVariant::SubgroupWindow
    );
    let sums = if fused { 0 } else { 2 };
    let (_, backward) = count(RecurrentKernel::Step, &[7, 5, 4]);
    assert_eq!(backward, pairs * (1 + t as u64 + 1 + 3 + sums) + 2);
    let (_, backward) = count(RecurrentKernel::Sequence { rows: 4 }, &[7, 5, 4]);
    assert_eq!(backward, pairs * (1 + 3 + sums) + 2);
}

/// A whole training step (forward, loss, backward, clipping, Adam) is
/// recorded without a single submission; reading the loss submits exactly
/// one command buffer. Its own device: counts are per device.
#[test]
fn training_step_is_one_submission() {
    use wgrnn::autograd::Tape;
    use wgrnn::models::SequenceClassifierConfig;
    use wgrnn::nn::named_parameters;
    use wgrnn::optim::Optimizer;
    let dev = Device::new().unwrap();
    let model = SequenceClassifierConfig::new(20, 8, 12, 3).with_bidirectional(true).with_layers(2).init(&dev).unwrap();
    let mut opt = Optimizer::adam(named_parameters(&model), 1e-3).unwrap();
    let ids: Vec<u32> = (0..4 * 6).map(|i| (i % 20) as u32).collect();
    let step = |opt: &mut Optimizer| {
        let mut tape = Tape::train(&dev, 1);
        let logits = model.forward(&mut tape, &ids, &[6, 2, 5, 1], 6).unwrap();
        let loss = tape.cross_entropy(logits, &[0, 1, 2, 0], None, 0.0).unwrap();
        opt.zero_grad().unwrap();
        tape.backward(loss.loss).unwrap();
        opt.clip_grad_norm(1.0).unwrap();
        opt.step().unwrap();
        (tape, loss)
    };
    let _warm_up = step(&mut opt); // compiles every pipeline
    dev.synchronize().unwrap();
    let before = dev.submission_count();
    let (tape, loss) = step(&mut opt);
    assert_eq!(dev.submission_count(), before, "the step submitted before anything was read");
    let value = tape.value(loss.loss).unwrap().to_vec().unwrap()[0];
    assert!(value.is_finite());
    assert_eq!(dev.submission_count(), before + 1);
}

/// Memory accounting and the pool budget: tensors of ever-new shapes (as
/// with random batch sizes) leave the pool's cache within the budget once
/// they are dropped and the work submitted, bytes in use return to what the
/// live tensors hold, and the peak covers both. Without a budget the cache
/// keeps every size class it has seen.
#[test]
fn pool_budget_bounds_cached_memory() {
    let run = |budget: Option<u64>| {
        let options = wgrnn::DeviceOptions::from_env().unwrap().with_pool_budget(budget);
        let dev = Device::with_options(&options).unwrap();
        let keep = Tensor::zeros(&dev, &[1000]).unwrap();
        let baseline = dev.memory_stats();
        assert!(baseline.in_use >= 4000, "{baseline:?}");
        for n in 1..13usize {
            // A new size class every time: n MiB (classes are whole MiB past 1 MiB).
            let a = Tensor::zeros(&dev, &[n << 18]).unwrap();
            let b = Tensor::zeros(&dev, &[n * 100]).unwrap();
            wgrnn::ops::elementwise_fill(&a, n as f32).unwrap();
            wgrnn::ops::elementwise_fill(&b, 1.0).unwrap();
            assert_eq!(b.to_vec().unwrap()[0], 1.0);
        }
        dev.synchronize().unwrap();
        let stats = dev.memory_stats();
        assert_eq!(stats.in_use, baseline.in_use, "only `keep` is alive: {stats:?}");
        assert!(stats.peak >= stats.in_use + stats.cached, "{stats:?}");
        assert!(stats.peak >= 12 << 20, "a 12 MiB tensor was alive: {stats:?}");
        drop(keep);
        stats
    };
    let budget = 4 << 20;
    let bounded = run(Some(budget));
    assert!(bounded.cached <= budget, "cache past the budget: {bounded:?}");
    assert_eq!(bounded.budget, Some(budget));
    let unbounded = run(None);
    // 1 + 2 + … + 12 MiB of tensors, plus the small ones and staging.
    assert!(unbounded.cached >= 78 << 20, "without a budget every size class stays cached: {unbounded:?}");
}

/// Steady state over many shapes, with a budget: training steps that cycle
/// through eight packed batch shapes (batch sizes 1–17, lengths 1–23)
/// create buffers in the first cycle only, while the cache stays within a
/// budget big enough for the cycle's size classes; and the bytes lent at
/// the start of every step are the same. Its own device: counts are per
/// device.
#[test]
fn many_shapes_reach_a_steady_state_within_the_budget() {
    use wgrnn::autograd::Tape;
    use wgrnn::models::SequenceClassifierConfig;
    use wgrnn::nn::named_parameters;
    use wgrnn::optim::Optimizer;
    let budget = 32 << 20;
    let dev = Device::with_options(&wgrnn::DeviceOptions::from_env().unwrap().with_pool_budget(Some(budget))).unwrap();
    let model = SequenceClassifierConfig::new(50, 16, 24, 3).with_layers(2).init(&dev).unwrap();
    let mut opt = Optimizer::adam(named_parameters(&model), 1e-3).unwrap().with_non_finite_guard(true).unwrap();
    let shapes: Vec<Vec<usize>> = (0..8)
        .map(|s| {
            let rows = 1 + (s * 7) % 17;
            (0..rows).map(|r| 1 + (r * 5 + s * 3) % 23).collect()
        })
        .collect();
    let step = |opt: &mut Optimizer, lengths: &[usize]| {
        let t = *lengths.iter().max().unwrap();
        let ids: Vec<u32> = (0..lengths.len() * t).map(|i| (i % 50) as u32).collect();
        let labels: Vec<u32> = (0..lengths.len()).map(|r| (r % 3) as u32).collect();
        let mut tape = Tape::train(&dev, 1);
        let logits = model.forward(&mut tape, &ids, lengths, t).unwrap();
        let loss = tape.cross_entropy(logits, &labels, None, 0.0).unwrap();
        opt.zero_grad().unwrap();
        tape.backward(loss.loss).unwrap();
        opt.clip_grad_norm(1.0).unwrap();
        opt.step().unwrap();
        dev.flush().unwrap();
    };
    for lengths in &shapes {
        step(&mut opt, lengths); // first cycle: pipelines and buffers
    }
    dev.synchronize().unwrap();
    let (created, lent) = (dev.buffers_created(), dev.memory_stats().in_use);
    for cycle in 0..3 {
        for lengths in &shapes {
            assert_eq!(dev.memory_stats().in_use, lent, "cycle {cycle}: bytes lent at a step's start changed");
            step(&mut opt, lengths);
        }
    }
    dev.synchronize().unwrap();
    assert_eq!(dev.buffers_created(), created, "steps after the first cycle created buffers");
    let stats = dev.memory_stats();
    assert!(stats.cached <= budget, "{stats:?}");
    assert!(opt.non_finite_steps().unwrap().skipped == 0);
}

/// The step profile (`Device::start_profile`): every dispatch of a training
/// step lands in its kernel family — with the step kernels T forward and
/// T backward (the classifier's h0 is zeros, no variable: no initial-state
/// gradient kernel), with the sequence kernels one each; one input
/// projection per layer, the
/// embedding's lookup and gradient — the counts add up to the device's
/// dispatch counter, the optimizer is one fill and one update for the
/// whole (flat) model, and a profiled step computes bitwise what an
/// unprofiled one does, with either variant. Its own device: counts (and
/// the forced variant) are per device.
#[test]
fn step_profile_attributes_every_dispatch() {
    use wgrnn::autograd::Tape;
    use wgrnn::models::SequenceClassifierConfig;
    use wgrnn::nn::named_parameters;
    use wgrnn::optim::Optimizer;
    use wgrnn::profile::Family;
    use wgrnn::rnn::RecurrentKernel;
    let dev = Device::new().unwrap();
    let (t, lengths) = (6, [6usize, 4, 5]);
    let ids: Vec<u32> = (0..3 * t).map(|i| (i % 20) as u32).collect();
    let run = |profiled: bool| {
        let model = SequenceClassifierConfig::new(20, 8, 12, 3).with_seed(3).init(&dev).unwrap();
        let mut opt = Optimizer::adam(named_parameters(&model), 1e-2).unwrap();
        let step = |opt: &mut Optimizer| {
            let mut tape = Tape::train(&dev, 1);
            let logits = model.forward(&mut tape, &ids, &lengths, t).unwrap();
            let loss = tape.cross_entropy(logits, &[0, 1, 2], None, 0.0).unwrap();
            opt.zero_grad().unwrap();
            tape.backward(loss.loss).unwrap();
            opt.step().unwrap();
        };
        step(&mut opt); // compiles every pipeline, makes the optimizer state
        let before = dev.dispatch_count();
        let profile = profiled.then(|| dev.start_profile().unwrap());
        step(&mut opt);
        let profile = profile.map(|_| dev.finish_profile().unwrap());
        let dispatched = dev.dispatch_count() - before;
        let weights: Vec<Vec<f32>> = named_parameters(&model).iter().map(|(_, p)| p.value.to_vec().unwrap()).collect();
        (profile, dispatched, weights)
    };
    for (kernel, forward, backward) in
        [(RecurrentKernel::Step, t as u64, t as u64), (RecurrentKernel::Sequence { rows: 4 }, 1, 1)]
    {
        dev.set_recurrent_kernel(Some(kernel));
        let (profile, dispatched, profiled_weights) = run(true);
        let (_, _, plain_weights) = run(false);
        assert_eq!(profiled_weights, plain_weights, "{kernel}: profiling changed what a step computes");
        let profile = profile.unwrap();
        let count = |f: Family| profile.families.iter().find(|x| x.family == f).unwrap().dispatches;
        assert_eq!(profile.total().0, dispatched, "{kernel}: {profile}");
        assert_eq!(count(Family::RecurrentForward), forward, "{kernel}: {profile}");
        assert_eq!(count(Family::RecurrentBackward), backward, "{kernel}: {profile}");
        assert_eq!(count(Family::InputProjection), 1, "{kernel}: {profile}");
        assert_eq!(count(Family::Embedding), 2, "{kernel}: {profile}");
        assert!(count(Family::WeightGradients) >= 5, "{kernel}: {profile}");
        // The model's parameters are flat: one Adam update (zero_grad is a
        // buffer clear, no dispatch).
        assert_eq!(count(Family::Optimizer), 1, "{kernel}: {profile}");
        assert!(count(Family::HeadLoss) >= 3, "{kernel}: {profile}");
        assert!(profile.total().1 > std::time::Duration::ZERO, "{kernel}: {profile}");
    }
    assert!(dev.finish_profile().is_err(), "a second finish has no profile");
}
