//! Every recurrent kernel variant computes the same bits: the step kernels
//! (one dispatch per time step), the sequence-resident kernels (one
//! dispatch per layer and direction) with 1, 2, 4 and 8 rows per workgroup,
//! and the sequence-uniform kernels (where the device has subgroups of 8;
//! elsewhere forcing them falls back to the default), forward and backward, for every mode, on the scalar (H % 4 ≠ 0) and vec4
//! paths, stacked, bidirectional, ragged, with dropout. The step kernels
//! are checked against the f64 CPU reference in rnn_gpu.rs; equal bits
//! carry that check to every variant. Its own binary: forcing a variant
//! applies to the whole device, which no other test here shares.

mod common;

use common::{device, random};
use wgrnn::rnn::{RecurrentKernel, RnnConfig, RnnMode};
use wgrnn::Tensor;

const MODES: [RnnMode; 4] = [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh, RnnMode::RnnRelu];

const VARIANTS: [RecurrentKernel; 6] = [
    RecurrentKernel::Step,
    RecurrentKernel::Sequence { rows: 1 },
    RecurrentKernel::Sequence { rows: 2 },
    RecurrentKernel::Sequence { rows: 4 },
    RecurrentKernel::Sequence { rows: 8 },
    RecurrentKernel::SequenceUniform,
];

struct Case {
    input: usize,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    lengths: Vec<usize>,
    max_len: usize,
    dropout: f32,
}

/// Every output and gradient of one forward and backward, as bit patterns,
/// with their names.
fn run(dev: &wgrnn::Device, mode: RnnMode, case: &Case, seed: u64) -> Vec<(String, Vec<u32>)> {
    let rnn = RnnConfig::new(mode, case.input, case.hidden)
        .with_num_layers(case.layers)
        .with_bidirectional(case.bidirectional)
        .with_dropout(case.dropout)
        .with_seed(seed)
        .init(dev)
        .unwrap();
    let spec = *rnn.spec();
    let (b, t, d, h) = (case.lengths.len(), case.max_len, spec.directions(), case.hidden);
    let states = [spec.num_layers * d, b, h];
    let lstm = mode == RnnMode::Lstm;
    let x = Tensor::from_slice(dev, &random(b * t * case.input, seed + 1), &[b, t, case.input]).unwrap();
    let h0 = Tensor::from_slice(dev, &random(states.iter().product(), seed + 2), &states).unwrap();
    let c0 = Tensor::from_slice(dev, &random(states.iter().product(), seed + 3), &states).unwrap();
    let train_seed = (case.dropout > 0.0).then_some(seed + 77);
    let fwd = rnn.forward(&x, &case.lengths, Some(&h0), lstm.then_some(&c0), train_seed).unwrap();
    let go = Tensor::from_slice(dev, &random(b * t * d * h, seed + 4), &[b, t, d * h]).unwrap();
    let ghn = Tensor::from_slice(dev, &random(states.iter().product(), seed + 5), &states).unwrap();
    let gcn = Tensor::from_slice(dev, &random(states.iter().product(), seed + 6), &states).unwrap();
    let grads = rnn.backward(&fwd, &go, Some(&ghn), lstm.then_some(&gcn)).unwrap();
    let bits = |t: &Tensor| t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut all = vec![
        ("output".to_string(), bits(&fwd.output)),
        ("h_n".to_string(), bits(&fwd.h_n)),
        ("grad_input".to_string(), bits(&grads.input)),
        ("grad_h0".to_string(), bits(&grads.h0)),
    ];
    if lstm {
        all.push(("c_n".to_string(), bits(fwd.c_n.as_ref().unwrap())));
        all.push(("grad_c0".to_string(), bits(grads.c0.as_ref().unwrap())));
    }
    for (i, layer) in grads.params.iter().enumerate() {
        for (k, g) in layer.iter().enumerate() {
            all.push((format!("param grad [{i}][{k}]"), bits(g)));
        }
    }
    all
}

#[test]
fn every_variant_computes_the_same_bits() {
    let cases = [
        // vec4 path, stacked, bidirectional, ragged (5 rows: the 8-row
        // workgroup is part empty).
        Case {
            input: 3,
            hidden: 8,
            layers: 2,
            bidirectional: true,
            lengths: vec![3, 6, 2, 6, 1],
            max_len: 6,
            dropout: 0.0,
        },
        // Scalar path (H = 5), lengths unsorted, 13 steps.
        Case {
            input: 7,
            hidden: 5,
            layers: 2,
            bidirectional: true,
            lengths: vec![4, 13, 9],
            max_len: 13,
            dropout: 0.0,
        },
        // Wide batch (17 rows: tiles of every size end part full), H = 31
        // (RNN's 4 units per invocation end past H).
        Case {
            input: 2,
            hidden: 31,
            layers: 1,
            bidirectional: true,
            lengths: (0..17).map(|i| 1 + (i * 7) % 3).collect(),
            max_len: 3,
            dropout: 0.0,
        },
        // Padding beyond the longest row, dropout between layers, H = 100.
        Case {
            input: 7,
            hidden: 100,
            layers: 3,
            bidirectional: false,
            lengths: vec![5, 11, 1],
            max_len: 13,
            dropout: 0.3,
        },
    ];
    let dev = device();
    // The step kernels without subgroups too: where the test device has
    // subgroups of 8 (lavapipe), its step kernels are the subgroup ones, and
    // a second device runs the plain vec4 kernels they must equal.
    let plain = (dev.info().subgroup_size.is_some()).then(|| {
        let options = wgrnn::DeviceOptions::from_env().unwrap().with_subgroups(false);
        let plain = wgrnn::Device::with_options(&options).unwrap();
        plain.set_recurrent_kernel(Some(RecurrentKernel::Step));
        plain
    });
    for mode in MODES {
        for (c, case) in cases.iter().enumerate() {
            let seed = 40 + c as u64;
            let mut runs = Vec::new();
            for variant in VARIANTS {
                dev.set_recurrent_kernel(Some(variant));
                runs.push((variant.to_string(), run(dev, mode, case, seed)));
            }
            if let Some(plain) = &plain {
                runs.push(("step without subgroups".to_string(), run(plain, mode, case, seed)));
            }
            let (_, want) = &runs[0];
            for (variant, got) in &runs[1..] {
                for ((name, got), (_, want)) in got.iter().zip(want) {
                    let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
                    assert_eq!(
                        differ,
                        0,
                        "{mode:?} case {c} {name}: {variant} differs from the step kernels in {differ} of {} values",
                        got.len()
                    );
                }
            }
        }
    }
    dev.set_recurrent_kernel(None);
    if let Some(plain) = &plain {
        the_uniform_step_kernels_run_where_they_fit(plain);
        the_sequence_uniform_kernels_run_where_they_fit(plain);
    }
    sequence_kernels_do_not_grow_with_the_sequence();
    the_tuner_times_once_and_caches_on_disk();
}

/// On a device with subgroups, the step kernels that read h_{t-1} and dG_h
/// from uniform arrays run where those fit (forward: B·S·4 ≤ 64 KiB;
/// backward: B ≤ 64 and 32·G·4 ≤ 64 KiB) and the subgroup kernels where
/// not, and each gives the bits of the plain vec4 kernels on `plain` (a
/// device without subgroups): at 64 rows (the backward's limit), at 65 (two
/// row tiles forward, the subgroup kernel backward) and where h does not
/// fit a uniform array (65 rows × 256). (Called from the test above, which
/// owns the device.)
fn the_uniform_step_kernels_run_where_they_fit(plain: &wgrnn::Device) {
    let dev = device();
    dev.set_recurrent_kernel(Some(RecurrentKernel::Step));
    let shapes = [(64, 8, true, true), (65, 8, true, false), (65, 256, false, false)];
    for mode in [RnnMode::Lstm, RnnMode::Gru] {
        for (b, hidden, forward_uniform, backward_uniform) in shapes {
            let lengths: Vec<usize> = (0..b).map(|i| 1 + (i * 7) % 3).collect();
            let case = Case { input: 4, hidden, layers: 1, bidirectional: false, lengths, max_len: 3, dropout: 0.0 };
            dev.start_profile().unwrap();
            let got = run(dev, mode, &case, 9);
            let profile = dev.finish_profile().unwrap();
            let ran = |entry: &str| profile.kernels.iter().any(|k| k.entry == entry);
            let which = |uniform: bool, pass: &str| {
                format!("recurrent_step_{pass}_vec4_{}", if uniform { "uniform" } else { "subgroup" })
            };
            for (uniform, pass) in [(forward_uniform, "forward"), (backward_uniform, "backward")] {
                assert!(ran(&which(uniform, pass)), "{mode:?} B {b} H {hidden}: {} did not run", which(uniform, pass));
                assert!(!ran(&which(!uniform, pass)), "{mode:?} B {b} H {hidden}: {} ran", which(!uniform, pass));
            }
            let want = run(plain, mode, &case, 9);
            for ((name, got), (_, want)) in got.iter().zip(&want) {
                let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{mode:?} B {b} H {hidden} {name}: {differ} of {} values differ", got.len());
            }
        }
    }
    dev.set_recurrent_kernel(None);
}

/// Forced, the sequence-uniform kernels run where they fit (subgroups of 8,
/// H % 4 == 0, H ≤ 128, no projection) and the default kernels elsewhere
/// (H = 132, H = 6), and every run gives the bits of the plain step
/// kernels on `plain`, for every mode, with 9 rows (the second workgroup
/// has one live lane) and one reverse direction. (Called from the test
/// above, which owns the device.)
fn the_sequence_uniform_kernels_run_where_they_fit(plain: &wgrnn::Device) {
    let dev = device();
    dev.set_recurrent_kernel(Some(RecurrentKernel::SequenceUniform));
    for mode in MODES {
        for (hidden, fits) in [(128, true), (12, true), (132, false), (6, false)] {
            let lengths = vec![4, 1, 7, 7, 2, 5, 3, 6, 1];
            let case = Case { input: 5, hidden, layers: 1, bidirectional: true, lengths, max_len: 8, dropout: 0.0 };
            dev.start_profile().unwrap();
            let got = run(dev, mode, &case, 11);
            let profile = dev.finish_profile().unwrap();
            for pass in ["forward", "backward"] {
                let entry = format!("recurrent_sequence_{pass}_uniform");
                let ran = profile.kernels.iter().any(|k| k.entry == entry);
                assert_eq!(ran, fits, "{mode:?} H {hidden}: {entry} ran: {ran}");
            }
            let want = run(plain, mode, &case, 11);
            for ((name, got), (_, want)) in got.iter().zip(&want) {
                let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{mode:?} H {hidden} {name}: {differ} of {} values differ", got.len());
            }
        }
    }
    dev.set_recurrent_kernel(None);
}

/// One dispatch per layer and direction forward (after the input GEMM and
/// W_hhᵀ) and backward: the dispatch count does not grow with T. (Called
/// from the test above: forcing a variant applies to the whole device, so
/// the two must not run at once.)
fn sequence_kernels_do_not_grow_with_the_sequence() {
    let dev = device();
    let rnn = RnnConfig::new(RnnMode::Lstm, 8, 16).with_seed(3).init(dev).unwrap();
    let count = |steps: usize| {
        let b = 4;
        let x = Tensor::from_slice(dev, &random(b * steps * 8, 1), &[b, steps, 8]).unwrap();
        let lengths = vec![steps; b];
        dev.synchronize().unwrap();
        let before = dev.dispatch_count();
        let fwd = rnn.forward(&x, &lengths, None, None, None).unwrap();
        let go = Tensor::from_slice(dev, &random(b * steps * 16, 2), &[b, steps, 16]).unwrap();
        rnn.backward(&fwd, &go, None, None).unwrap();
        dev.dispatch_count() - before
    };
    if dev.info().subgroup_size.is_some() {
        dev.set_recurrent_kernel(Some(RecurrentKernel::SequenceUniform));
        assert_eq!(count(5), count(40), "sequence-uniform kernels: dispatches for T = 5 and T = 40");
    }
    dev.set_recurrent_kernel(Some(RecurrentKernel::Sequence { rows: 4 }));
    let (short, long) = (count(5), count(40));
    dev.set_recurrent_kernel(Some(RecurrentKernel::Step));
    let (step_short, step_long) = (count(5), count(40));
    dev.set_recurrent_kernel(None);
    assert_eq!(short, long, "sequence kernels: dispatches for T = 5 and T = 40");
    assert_eq!(step_long - step_short, 2 * 35, "step kernels: one forward and one backward dispatch per step");
    assert!(long + 60 < step_long, "sequence {long} vs step {step_long} dispatches at T = 40");
}

/// The autotuner: a shape big enough to time (B·T·G·H ≥ `TUNE_MIN_WORK`)
/// is timed on its first forward, and the choice lands in the cache file
/// under this adapter; a corrupt cache file is only a cache miss. (Called
/// from the test above, which owns the device and the environment.)
fn the_tuner_times_once_and_caches_on_disk() {
    let dir = std::env::temp_dir().join(format!("wgrnn-tune-test-{}", std::process::id()));
    let path = dir.join("tune.json");
    // This binary runs one test, on this thread: nothing else reads the
    // environment meanwhile.
    std::env::set_var("WGRNN_TUNE_CACHE", &path);
    let (b, t, h) = (64, 16, 64);
    assert!((b * t * h * 4 * h) as u64 >= wgrnn::rnn::tune::TUNE_MIN_WORK);
    let train = |dev: &wgrnn::Device| {
        let rnn = RnnConfig::new(RnnMode::Lstm, 8, h).with_seed(5).init(dev).unwrap();
        let x = Tensor::from_slice(dev, &random(b * t * 8, 1), &[b, t, 8]).unwrap();
        let fwd = rnn.forward(&x, &vec![t; b], None, None, None).unwrap();
        let go = Tensor::from_slice(dev, &random(b * t * h, 2), &[b, t, h]).unwrap();
        rnn.backward(&fwd, &go, None, None).unwrap().input.to_vec().unwrap()
    };
    let first = train(device());
    let text = std::fs::read_to_string(&path).expect("the tuner wrote its cache file");
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let adapter = file.as_object().unwrap().values().next().expect("an entry for this adapter");
    let choice = adapter["lstm H64 B64 T16"].as_str().expect("the tuned shape");
    RecurrentKernel::parse(choice).unwrap();

    // Every variant that fits was timed, the step kernels included.
    let timings = wgrnn::rnn::tune::time_recurrent_kernels(device(), RnnMode::Lstm, h, b, t).unwrap();
    let timed: Vec<String> = timings.iter().map(|(k, _)| k.to_string()).collect();
    for want in ["step", "sequence/1", "sequence/8"] {
        assert!(timed.iter().any(|k| k == want), "{want} not timed: {timed:?}");
    }
    let uniform_timed = timed.iter().any(|k| k == "sequence_uniform");
    assert_eq!(uniform_timed, device().info().subgroup_size.is_some(), "sequence_uniform timed: {timed:?}");

    // A fresh device reads the file; a corrupt one is re-timed and rewritten.
    std::fs::write(&path, "not json").unwrap();
    let dev = wgrnn::Device::new().unwrap();
    assert_eq!(train(&dev), first, "the tuned variant computed other bits");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "cache file not rewritten: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}
