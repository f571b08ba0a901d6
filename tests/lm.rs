//! Language models: the sampling kernel against its CPU reference, the
//! regularizers' semantics (a locked mask shared over time, a dropped word
//! dropped everywhere, AR/TAR over many workgroups), truncated BPTT's
//! carried state, generation (reproducible, greedy = teacher-forced argmax,
//! stop tokens, minimum length), the batch sources, checkpoints and a short
//! `fit`. Gradients are checked in tests/lm_gradcheck.rs.

mod common;

use common::{assert_close, assert_close_scalar, device, random, report};
use wgrnn::autograd::{mask_seed, Tape};
use wgrnn::data::{TextVectorizer, TextVectorizerConfig};
use wgrnn::lm::{Bptt, GenerateOptions, LanguageModelConfig, SentenceBatches, StreamBatches, TextLm, IGNORE};
use wgrnn::ops::{sample_logits, temporal_links, SampleOptions};
use wgrnn::optim::Optimizer;
use wgrnn::reference::lm as reference;
use wgrnn::rnn::{PackedBatch, RnnMode};
use wgrnn::train::{fit, FitConfig, Progress};
use wgrnn::{Error, Tensor};

/// A draw whose uniform lies closer than this (relative to the kept mass)
/// to a boundary of the cumulative distribution may differ between the
/// f32 GPU walk and the f64 reference: f32 sums of ≤ 1031 terms round at
/// ≈ 1e-7·√V relative typically, ≈ 1e-7·V at worst. Such draws are skipped
/// (and counted, so the test still checks almost every draw). Not an error
/// bound but a skip threshold, so not tightened to the measurement: no draw
/// differed at all on lavapipe or llvmpipe GL (the largest margin of a
/// differing draw, reported, is 0), and 1e-5 skips 1 draw of 882.
const SAMPLE_MARGIN: f64 = 1e-5;
/// Eval forward of the same arithmetic split in two windows vs one: exact.
/// The GEMMs sum each output over K in the same order whatever the number
/// of rows (a zero-padded copy only adds exact zeros), and every other
/// kernel is elementwise or per row, so the windows compute the same bits.
/// Measured: 0 on lavapipe and llvmpipe GL (LSTM and GRU).
const CARRY_TOL: f32 = 0.0;
/// AR/TAR penalty values (≈ 3,400 squares summed in f32 by a tree) against
/// f64, relative: ≈ log2(N)·eps. Measured worst: 4.9e-8 on lavapipe and on
/// llvmpipe GL over 2 comparisons; this bound is 10× that.
const PENALTY_TOL: f32 = 5e-7;
/// AR/TAR gradients (2·scale·x, or of differences of neighbouring steps)
/// against f64, relative to max(|reference|, PENALTY_GRAD_FLOOR): a few
/// roundings per element. Measured worst: 1.2e-7 on lavapipe and on
/// llvmpipe GL over 2 comparisons; this bound is 13× that.
const PENALTY_GRAD_TOL: f32 = 1.5e-6;
/// Scale floor for the AR/TAR gradient: elements near zero (x ≈ 0, or TAR's
/// neighbouring activations cancelling) are held to the gradient's typical
/// size, 2·scale·O(1) ≈ 1e-3 here, since their error comes from O(1e-3)
/// terms, not from their own small value.
const PENALTY_GRAD_FLOOR: f32 = 1e-3;
/// Locked dropout's kept values against the host's f32 1/(1 − p): exact,
/// as the mask is bit for bit the reference's (checked below). Measured: 0
/// on lavapipe and llvmpipe GL.
const DROPOUT_SCALE_TOL: f32 = 0.0;
/// Kept fraction of a locked mask against 1 − p: statistical, not
/// rounding. The mask is locked per sequence, so there are only 4 × 40
/// independent draws, weighted by length: the fraction's standard deviation
/// is ≈ 0.042 and 0.1 is ≈ 2.4 σ (seeded, so not flaky; measured: 0.0087
/// off on both backends). It catches p and 1 − p swapped (0.2 off); the
/// exact mask is checked bit for bit below.
const KEPT_FRACTION_SLACK: f32 = 0.1;
/// A variable BPTT window's lr scale against max_len / 70 on the host:
/// both are the same correctly rounded f32 division, so exact. Measured: 0.
const LR_SCALE_TOL: f32 = 0.0;

#[test]
fn sampling_matches_the_cpu_reference() {
    let dev = device();
    let options = [
        SampleOptions { temperature: 0.0, ..SampleOptions::default() },
        SampleOptions { temperature: 1.0, seed: 3, ..SampleOptions::default() },
        SampleOptions { temperature: 0.7, top_k: 5, seed: 4, ..SampleOptions::default() },
        SampleOptions { temperature: 1.3, top_k: 1, seed: 5, ..SampleOptions::default() },
        SampleOptions { temperature: 0.8, top_p: 0.9, seed: 6, ..SampleOptions::default() },
        SampleOptions { temperature: 1.0, top_k: 40, top_p: 0.5, seed: 7, ..SampleOptions::default() },
        SampleOptions { temperature: 0.5, seed: 8, ..SampleOptions::default() }.with_banned(&[0, 2]).unwrap(),
        SampleOptions { temperature: 0.0, ..SampleOptions::default() }.with_banned(&[1]).unwrap(),
        SampleOptions { temperature: 1.0, seed: 9, ..SampleOptions::default() }
            .with_banned(&[16, 3, 5, 7, 1, 0, 2, 11])
            .unwrap(),
    ];
    let (mut checked, mut skipped) = (0, 0);
    // The largest margin of any draw where the GPU and the reference differ.
    let mut mismatch_margin = 0.0f64;
    for &vocab in &[1usize, 3, 17, 257, 1031] {
        let rows = 7;
        // Logits with a wide range and some exact ties.
        let mut logits: Vec<f32> = random(rows * vocab, vocab as u64).iter().map(|v| v * 6.0).collect();
        if vocab > 3 {
            logits[1] = logits[2];
        }
        let t = Tensor::from_slice(dev, &logits, &[rows, vocab]).unwrap();
        for (oi, o) in options.iter().enumerate() {
            if o.banned.iter().flatten().any(|&b| b as usize >= vocab) && vocab == 1 {
                continue;
            }
            let next = Tensor::from_u32(dev, &vec![0; rows], &[rows]).unwrap();
            let steps = 3;
            let tokens = Tensor::from_u32(dev, &vec![0; steps * rows], &[steps, rows]).unwrap();
            for step in 0..steps {
                sample_logits(&t, &next, &tokens, step, o).unwrap();
            }
            let got = tokens.to_vec_u32().unwrap();
            assert_eq!(&got[(steps - 1) * rows..], &next.to_vec_u32().unwrap()[..], "next holds the last draw");
            for step in 0..steps {
                for r in 0..rows {
                    let row = &logits[r * vocab..(r + 1) * vocab];
                    let g = got[step * rows + r];
                    assert!((g as usize) < vocab, "V={vocab} option {oi}: drew {g}");
                    let banned_all = (0..vocab).all(|i| o.banned.contains(&Some(i as u32)));
                    if !banned_all {
                        assert!(!o.banned.contains(&Some(g)), "V={vocab} option {oi}: drew banned id {g}");
                    }
                    let want = reference::sample_logits(row, o, step as u32, r as u32);
                    if o.temperature > 0.0 {
                        let margin = reference::sample_margin(row, o, step as u32, r as u32);
                        if g != want {
                            mismatch_margin = mismatch_margin.max(margin);
                        }
                        if margin < SAMPLE_MARGIN {
                            skipped += 1;
                            continue;
                        }
                    }
                    assert_eq!(g, want, "V={vocab} option {oi} step {step} row {r}");
                    checked += 1;
                }
            }
        }
    }
    report(
        &format!("sampling: largest margin of a differing draw ({skipped} skipped, {checked} checked)"),
        mismatch_margin,
        SAMPLE_MARGIN,
    );
    assert!(skipped * 100 < checked, "too many draws near a boundary: {skipped} skipped, {checked} checked");
}

#[test]
fn top_k_one_and_greedy_pick_the_maximum() {
    let dev = device();
    let logits = [0.1f32, 2.0, -1.0, 1.9, 2.0];
    let t = Tensor::from_slice(dev, &logits, &[1, 5]).unwrap();
    for o in [
        SampleOptions { temperature: 0.0, ..SampleOptions::default() },
        SampleOptions { temperature: 5.0, top_k: 1, seed: 9, ..SampleOptions::default() },
    ] {
        let next = Tensor::from_u32(dev, &[7], &[1]).unwrap();
        let tokens = Tensor::from_u32(dev, &[7], &[1, 1]).unwrap();
        sample_logits(&t, &next, &tokens, 0, &o).unwrap();
        let id = next.to_vec_u32().unwrap()[0];
        // top-k keeps ties at the k-th value (1 and 4); greedy takes the first.
        if o.temperature == 0.0 {
            assert_eq!(id, 1);
        } else {
            assert!(id == 1 || id == 4, "top-1 drew {id}");
        }
    }
}

#[test]
fn bad_sampling_options_are_errors() {
    let dev = device();
    let t = Tensor::from_slice(dev, &[0.0; 6], &[2, 3]).unwrap();
    let next = Tensor::from_u32(dev, &[0; 2], &[2]).unwrap();
    let tokens = Tensor::from_u32(dev, &[0; 2], &[1, 2]).unwrap();
    let ok = SampleOptions::default();
    for bad in [
        SampleOptions { temperature: 1e-39, ..ok },
        SampleOptions { temperature: -1.0, ..ok },
        SampleOptions { temperature: f32::NAN, ..ok },
        SampleOptions { top_p: 0.0, ..ok },
        SampleOptions { top_p: 1.5, ..ok },
    ] {
        assert!(matches!(sample_logits(&t, &next, &tokens, 0, &bad), Err(Error::Config(_))), "{bad:?}");
    }
    assert!(sample_logits(&t, &next, &tokens, 1, &ok).is_err(), "step past the token grid");
    let wrong_next = Tensor::from_u32(dev, &[0; 3], &[3]).unwrap();
    assert!(sample_logits(&t, &wrong_next, &tokens, 0, &ok).is_err(), "next of the wrong length");
}

#[test]
fn locked_dropout_shares_one_mask_over_time_and_embedding_dropout_drops_whole_words() {
    let dev = device();
    let (lengths, t_max, f) = ([6usize, 2, 9, 9], 9, 40);
    let batch = PackedBatch::new(dev, &lengths, t_max).unwrap();
    let n = batch.total();
    let x = Tensor::full(dev, &[n, f], 1.0).unwrap();
    let p = 0.4;
    let mut tape = Tape::train(dev, 21);
    let xv = tape.input(x.clone());
    let out = tape.locked_dropout(xv, &batch, p).unwrap();
    let got = tape.value(out).unwrap().to_vec().unwrap();
    // Row (b, t) of the packed layout.
    let origin: Vec<usize> = batch.pack_host(&(0..lengths.len() * t_max).collect::<Vec<_>>()).unwrap();
    let scale = 1.0 / (1.0 - p);
    let mut first: Vec<Option<Vec<f32>>> = vec![None; lengths.len()];
    // Values are 0 or 1/(1 − p).
    let mut kept_values = Vec::new();
    for (r, &o) in origin.iter().enumerate() {
        let row = got[r * f..(r + 1) * f].to_vec();
        kept_values.extend(row.iter().copied().filter(|&v| v != 0.0));
        match &first[o / t_max] {
            Some(m) => assert_eq!(m, &row, "sequence {}: the mask changed over time", o / t_max),
            None => first[o / t_max] = Some(row),
        }
    }
    let kept = kept_values.len();
    let scales = vec![scale; kept];
    assert_close("locked dropout: kept values are 1/(1 − p)", &kept_values, &scales, &scales, DROPOUT_SCALE_TOL);
    let masks: Vec<Vec<f32>> = first.into_iter().map(Option::unwrap).collect();
    assert!(masks.windows(2).all(|w| w[0] != w[1]), "each sequence draws its own mask");
    let rate = kept as f32 / (n * f) as f32;
    report(
        "locked dropout: kept fraction − (1 − p) (statistical)",
        f64::from((rate - (1.0 - p)).abs()),
        f64::from(KEPT_FRACTION_SLACK),
    );
    assert!((rate - (1.0 - p)).abs() < KEPT_FRACTION_SLACK, "kept fraction {rate} for p = {p}");
    // Bit for bit the documented mask (the tape's first).
    let keys: Vec<u32> = origin.iter().map(|&o| (o / t_max) as u32).collect();
    let want = reference::dropout_keyed(&vec![1.0; n * f], f, &keys, false, p, mask_seed(21, 1));
    assert_eq!(got, want);

    // Embedding dropout: rows with the same id are kept or dropped together.
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 5) % 13).collect();
    let y = tape.input(Tensor::from_slice(dev, &random(n * f, 2), &[n, f]).unwrap());
    let dropped = tape.embedding_dropout(y, &ids, 0.5).unwrap();
    let got = tape.value(dropped).unwrap().to_vec().unwrap();
    let zero_row: Vec<bool> = (0..n).map(|r| got[r * f..(r + 1) * f].iter().all(|&v| v == 0.0)).collect();
    let mut dropped_word = std::collections::HashMap::new();
    for r in 0..n {
        let first = *dropped_word.entry(ids[r]).or_insert(zero_row[r]);
        assert_eq!(zero_row[r], first, "id {} kept in one row, dropped in another", ids[r]);
    }
    assert!(zero_row.iter().any(|&z| z) && zero_row.iter().any(|&z| !z), "p = 0.5 over 13 words drops some");
    // An evaluation tape leaves both alone.
    let mut eval = Tape::eval(dev);
    let xv = eval.input(x.clone());
    let same = eval.locked_dropout(xv, &batch, p).unwrap();
    assert_eq!(eval.value(same).unwrap().to_vec().unwrap(), x.to_vec().unwrap());
    assert!(tape.locked_dropout(xv, &batch, 1.0).is_err(), "p = 1 is an error");
}

#[test]
fn activation_penalties_match_the_reference_over_many_workgroups() {
    let dev = device();
    let (lengths, t_max, f) = ([40usize, 37, 1, 25], 40, 33);
    let batch = PackedBatch::new(dev, &lengths, t_max).unwrap();
    let n = batch.total();
    let x = random(n * f, 12);
    let links = temporal_links(&batch);
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for temporal in [false, true] {
        let mut tape = Tape::train(dev, 1);
        let xv = tape.input(Tensor::from_slice(dev, &x, &[n, f]).unwrap());
        let (pen, scale) = if temporal {
            let pairs = n - lengths.len();
            (tape.temporal_penalty(xv, &batch, 1.5).unwrap(), 1.5 / (pairs * f) as f64)
        } else {
            (tape.activation_penalty(xv, 2.0).unwrap(), 2.0 / (n * f) as f64)
        };
        let grads = tape.backward(pen).unwrap();
        let (want, want_grad) = reference::square_sum(&x64, f, temporal.then_some(&links[..]), scale);
        let got = tape.value(pen).unwrap().to_vec().unwrap()[0];
        assert_close_scalar(
            &format!("temporal={temporal}: penalty"),
            f64::from(got),
            want,
            want.abs(),
            f64::from(PENALTY_TOL),
        );
        let want_grad: Vec<f32> = want_grad.iter().map(|&v| v as f32).collect();
        let scale: Vec<f32> = want_grad.iter().map(|v| v.abs().max(PENALTY_GRAD_FLOOR)).collect();
        let got_grad = grads.get(xv).expect("x gets a gradient").to_vec().unwrap();
        assert_close(&format!("temporal={temporal}: grad"), &got_grad, &want_grad, &scale, PENALTY_GRAD_TOL);
    }
}

fn small_lm(mode: RnnMode, vocab: usize) -> LanguageModelConfig {
    LanguageModelConfig::new(vocab, 8, 12).with_layers(2).with_mode(mode).with_seed(2)
}

#[test]
fn carried_state_continues_the_sequence_exactly() {
    let dev = device();
    for mode in [RnnMode::Lstm, RnnMode::Gru] {
        let model = small_lm(mode, 11).init(dev).unwrap();
        let (b, t) = (3, 10);
        let ids: Vec<u32> = (0..b * t).map(|i| ((i * 7 + 3) % 11) as u32).collect();
        let logits_of = |ids: &[u32], len: usize, state| {
            let batch = PackedBatch::new(dev, &vec![len; b], len).unwrap();
            let mut tape = Tape::eval(dev);
            let fwd = model.forward(&mut tape, &batch.pack_host(ids).unwrap(), &batch, state).unwrap();
            let padded = batch.unpack(tape.value(fwd.logits).unwrap()).unwrap().to_vec().unwrap();
            (padded, fwd.state)
        };
        let (whole, _) = logits_of(&ids, t, None);
        let split = 4;
        let window = |from: usize, to: usize| -> Vec<u32> {
            (0..b).flat_map(|r| ids[r * t + from..r * t + to].iter().copied()).collect()
        };
        let (first, state) = logits_of(&window(0, split), split, None);
        let (second, _) = logits_of(&window(split, t), t - split, Some(&state));
        let v = 11;
        let mut joined = Vec::new();
        for r in 0..b {
            joined.extend_from_slice(&first[r * split * v..(r + 1) * split * v]);
            joined.extend_from_slice(&second[r * (t - split) * v..(r + 1) * (t - split) * v]);
        }
        let scale: Vec<f32> = whole.iter().map(|x| x.abs().max(1.0)).collect();
        assert_close(&format!("{mode:?} carried logits"), &joined, &whole, &scale, CARRY_TOL);
    }
}

#[test]
fn generation_is_reproducible_and_greedy_follows_the_model() {
    let dev = device();
    let model = small_lm(RnnMode::Lstm, 13).init(dev).unwrap();
    let prompt = [2u32, 5, 7];
    let sampled = GenerateOptions {
        sample: SampleOptions { temperature: 1.0, seed: 17, ..SampleOptions::default() },
        ..GenerateOptions::new(20)
    };
    let a = model.generate(&prompt, 4, &sampled).unwrap();
    let b = model.generate(&prompt, 4, &sampled).unwrap();
    assert_eq!(a, b, "same seed, same tokens");
    assert!(a.iter().all(|r| r.len() == 20));
    assert!(a.windows(2).any(|w| w[0] != w[1]), "rows draw independently");
    let other = GenerateOptions { sample: SampleOptions { seed: 18, ..sampled.sample }, ..sampled.clone() };
    assert_ne!(model.generate(&prompt, 4, &other).unwrap(), a, "another seed, other tokens");

    // Greedy: each token is the argmax of a teacher-forced pass over the
    // prompt and the tokens before it (checks the state carried from step
    // to step on the GPU).
    let greedy = GenerateOptions {
        sample: SampleOptions { temperature: 0.0, ..SampleOptions::default() },
        ..GenerateOptions::new(6)
    };
    let out = model.generate(&prompt, 1, &greedy).unwrap().remove(0);
    let mut seq = prompt.to_vec();
    seq.extend(&out);
    let len = seq.len() - 1;
    let batch = PackedBatch::new(dev, &[len], len).unwrap();
    let mut tape = Tape::eval(dev);
    let fwd = model.forward(&mut tape, &seq[..len], &batch, None).unwrap();
    let logits = tape.value(fwd.logits).unwrap().to_vec().unwrap();
    for (i, &tok) in out.iter().enumerate() {
        let row = &logits[(prompt.len() - 1 + i) * 13..(prompt.len() + i) * 13];
        let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(row[tok as usize], best, "greedy token {i} is not the argmax");
    }
}

#[test]
fn stop_tokens_and_minimum_length() {
    let dev = device();
    let model = small_lm(RnnMode::Gru, 6).init(dev).unwrap();
    let stop = 3;
    let options = GenerateOptions {
        max_len: 40,
        min_len: 0,
        stop: vec![stop],
        sample: SampleOptions { temperature: 2.0, seed: 1, ..SampleOptions::default() },
    };
    let rows = model.generate(&[1], 8, &options).unwrap();
    for r in &rows {
        assert!(!r.is_empty() && r.len() <= 40);
        let first_stop = r.iter().position(|&t| t == stop);
        match first_stop {
            Some(i) => assert_eq!(i + 1, r.len(), "a row ends at its first stop token"),
            None => assert_eq!(r.len(), 40),
        }
    }
    assert!(rows.iter().any(|r| r.len() < 40), "at temperature 2 over 6 ids some row stops");
    let min = GenerateOptions { min_len: 10, ..options.clone() };
    for r in model.generate(&[1], 8, &min).unwrap() {
        assert!(!r[..10.min(r.len())].contains(&stop), "a stop token before the minimum length");
        assert!(r.len() > 10, "rows reach the minimum length");
    }
    // Every banned slot taken: no room to ban the stop token.
    let full =
        GenerateOptions { sample: options.sample.with_banned(&[0, 1, 2, 4, 5, 6, 7, 8]).unwrap(), ..min.clone() };
    assert!(options.sample.with_banned(&[0, 1, 2, 4, 5, 6, 7, 8, 9]).is_err(), "nine bans");
    assert!(matches!(model.generate(&[1], 1, &full), Err(Error::Config(_))));
    assert!(matches!(model.generate(&[6], 1, &options), Err(Error::OutOfRange { .. })), "prompt id ≥ V");
    assert!(model.generate(&[], 1, &options).is_err(), "empty prompt");
    let endless = GenerateOptions::new(usize::MAX);
    assert!(matches!(model.generate(&[1], 2, &endless), Err(Error::OutOfRange { .. })), "checked before allocating");
    assert!(model.generate(&[1], 0, &options).is_err(), "zero rows");
}

#[test]
fn stream_batches_cut_the_text_into_parallel_streams() {
    let ids: Vec<u32> = (0..103).collect();
    let s = StreamBatches::new(&ids, 4, Bptt::fixed(7)).unwrap();
    // 4 streams of 25 tokens (the last 3 dropped, as batchify does).
    let batches = s.epoch(0);
    assert_eq!(s.targets_per_epoch(), 4 * 24);
    assert_eq!(batches.iter().map(|b| b.max_len).collect::<Vec<_>>(), vec![7, 7, 7, 3]);
    for (i, b) in batches.iter().enumerate() {
        assert!(b.carry_state && b.lr_scale == 1.0);
        for r in 0..4 {
            for t in 0..b.max_len {
                let want = (r * 25 + i * 7 + t) as u32;
                assert_eq!(b.inputs[r * b.max_len + t], want);
                assert_eq!(b.targets[r * b.max_len + t], want + 1, "the target is the next token");
            }
        }
    }
    // AWD-LSTM's variable length: seeded, bounded, covering every target once.
    let long: Vec<u32> = (0..20_000).collect();
    let v = StreamBatches::new(&long, 8, Bptt::variable(70, 3)).unwrap();
    let (e0, e1) = (v.epoch(0), v.epoch(1));
    assert_eq!(e0, v.epoch(0), "an epoch's windows are reproducible");
    assert_ne!(e0.iter().map(|b| b.max_len).collect::<Vec<_>>(), e1.iter().map(|b| b.max_len).collect::<Vec<_>>());
    assert_eq!(e0.iter().map(|b| b.max_len).sum::<usize>(), 20_000 / 8 - 1);
    let last = e0.len() - 1;
    for (i, b) in e0.iter().enumerate() {
        assert!((5..=90).contains(&b.max_len) || i == last, "window {}", b.max_len);
    }
    // The lr scales by the window's length.
    let got: Vec<f32> = e0[..last].iter().map(|b| b.lr_scale).collect();
    let want: Vec<f32> = e0[..last].iter().map(|b| b.max_len as f32 / 70.0).collect();
    assert_close("variable windows: lr_scale = max_len / 70", &got, &want, &want, LR_SCALE_TOL);
    assert!(e0.iter().any(|b| b.max_len < 50), "half-length windows occur (p = 0.05 over ~35 windows)");
    // Epochs draw independent streams, not shifted copies of one (each
    // window takes three draws, so a shift would repeat after 3 epochs).
    let lens = |e: usize| StreamBatches::new(&long, 8, Bptt::variable(70, 0)).unwrap().epoch(e);
    let (z0, z3) = (lens(0), lens(3));
    assert_ne!(
        z3.iter().map(|b| b.max_len).take(20).collect::<Vec<_>>(),
        z0.iter().skip(1).map(|b| b.max_len).take(20).collect::<Vec<_>>()
    );
    assert!(StreamBatches::new(&ids, 0, Bptt::fixed(7)).is_err());
    assert!(StreamBatches::new(&ids, 4, Bptt::fixed(0)).is_err());
    assert!(StreamBatches::new(&ids[..7], 4, Bptt::fixed(7)).is_err(), "streams of one token predict nothing");
}

#[test]
fn sentence_batches_predict_every_next_token() {
    let sentences = vec![vec![2, 5, 6, 3], vec![2, 3], vec![2, 7, 8, 9, 10, 3]];
    let s = SentenceBatches::new(sentences.clone(), 2, None).unwrap();
    assert_eq!(s.targets_per_epoch(), 3 + 1 + 5);
    let batches = s.epoch(0);
    assert_eq!(batches.len(), 2);
    let b = &batches[0];
    assert_eq!((b.lengths.clone(), b.max_len), (vec![3, 1], 3));
    assert_eq!(b.inputs, vec![2, 5, 6, 2, 0, 0]);
    assert_eq!(b.targets, vec![5, 6, 3, 3, IGNORE, IGNORE]);
    assert!(!b.carry_state, "each sentence starts from a zero state");
    let shuffled = SentenceBatches::new(sentences.clone(), 1, Some(4)).unwrap();
    let mut seen: Vec<Vec<u32>> = shuffled.epoch(0).into_iter().map(|b| b.inputs).collect();
    seen.sort();
    assert_eq!(seen.len(), 3, "every sentence once per epoch");
    assert!(SentenceBatches::new(vec![vec![2]], 1, None).is_err(), "a one-token sentence predicts nothing");
    assert!(SentenceBatches::new(vec![], 1, None).is_err());
    assert!(SentenceBatches::new(sentences, 0, None).is_err());
}

fn char_text() -> String {
    "the quick brown fox jumps over the lazy dog. ".repeat(30)
}

#[test]
fn fit_trains_a_character_lm_and_the_checkpoint_alone_generates() {
    let dev = device();
    let dir = std::env::temp_dir().join(format!("wgrnn-lm-test-{}", std::process::id()));
    let text = char_text();
    let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::characters(), [text.as_str()]).unwrap();
    let ids = vectorizer.encode(&text);
    let cfg = LanguageModelConfig::new(vectorizer.vocab_size(), 8, 32).with_layers(1).with_seed(1);
    let mut lm = TextLm::new(dev, vectorizer, cfg).unwrap();
    let train = StreamBatches::new(&ids, 4, Bptt::fixed(16)).unwrap();
    let valid = StreamBatches::new(&ids[..400], 2, Bptt::fixed(16)).unwrap();
    let mut opt = Optimizer::adam(lm.parameters(), 1e-2).unwrap();
    let config = FitConfig::new(4, 1e-2).with_checkpoint_dir(&dir).with_clip(1.0).with_progress(Progress::Quiet);
    let report = fit(&mut lm, &mut opt, &train, Some(&valid), &config).unwrap();
    assert_eq!(report.history.len(), 4);
    let (first, last) = (&report.history[0], report.last().unwrap());
    assert!(last.train_loss < first.train_loss * 0.8, "loss {} → {}", first.train_loss, last.train_loss);
    assert!(last.val_loss.unwrap() < 2.0, "a repeated sentence is easy: val loss {:?}", last.val_loss);

    // A step limit at an epoch boundary ends the run there: no empty epoch.
    let per_epoch = train.epoch(0).len() as u64;
    let mut other = TextLm::new(dev, lm.vectorizer.clone(), cfg).unwrap();
    let mut opt2 = Optimizer::adam(other.parameters(), 1e-2).unwrap();
    let mut limited = FitConfig::new(4, 1e-2).with_progress(Progress::Quiet);
    limited.max_steps = Some(2 * per_epoch);
    let report = fit(&mut other, &mut opt2, &train, Some(&valid), &limited).unwrap();
    assert_eq!((report.steps, report.history.len()), (2 * per_epoch, 2));

    let loaded = TextLm::load(dev, dir.join("last.safetensors")).unwrap();
    assert_eq!(loaded.vectorizer.vocab_size(), lm.vectorizer.vocab_size());
    let options = GenerateOptions {
        sample: SampleOptions { temperature: 0.5, seed: 2, ..SampleOptions::default() },
        ..GenerateOptions::new(30)
    };
    let from_file = loaded.generate_text("the ", 2, &options).unwrap();
    assert_eq!(from_file, lm.generate_text("the ", 2, &options).unwrap(), "the file alone generates the same");
    assert!(from_file[0].concat().contains(' '), "learned text has spaces: {:?}", from_file[0].concat());
    // A classifier (or any other) checkpoint is not a language model.
    let wrong = dir.join("wrong.safetensors");
    wgrnn::checkpoint::save(&wrong, &lm.model, None).unwrap();
    assert!(matches!(TextLm::load(dev, &wrong), Err(Error::Format(_))));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resuming_inside_an_epoch_carries_the_state_and_matches_bitwise() {
    let dev = device();
    let text = char_text();
    let vectorizer = TextVectorizer::adapt(TextVectorizerConfig::characters(), [text.as_str()]).unwrap();
    let ids = vectorizer.encode(&text);
    let train = StreamBatches::new(&ids, 4, Bptt::variable(12, 5)).unwrap();
    let per_epoch = train.epoch(0).len();
    let make = |seed| {
        let cfg = LanguageModelConfig::new(vectorizer.vocab_size(), 8, 16)
            .with_layers(2)
            .with_awd(wgrnn::lm::AwdConfig::fastai(0.5))
            .with_tied_weights(true)
            .with_seed(seed);
        TextLm::new(dev, vectorizer.clone(), cfg).unwrap()
    };
    let weights =
        |lm: &TextLm| -> Vec<Vec<f32>> { lm.parameters().iter().map(|(_, p)| p.value.to_vec().unwrap()).collect() };
    let dir = |tag: &str| std::env::temp_dir().join(format!("wgrnn-lm-resume-{tag}-{}", std::process::id()));
    let base = |d: &std::path::Path| {
        FitConfig::new(2, 3e-3).with_seed(9).with_clip(0.5).with_checkpoint_dir(d).with_progress(Progress::Quiet)
    };

    let mut straight = make(1);
    let mut opt = Optimizer::adam(straight.parameters(), 3e-3).unwrap();
    fit(&mut straight, &mut opt, &train, None, &base(&dir("a"))).unwrap();

    // Stopped inside the first epoch (the carried state is mid-stream) ...
    let stop_at = per_epoch as u64 / 2;
    let mut first = make(1);
    let mut opt = Optimizer::adam(first.parameters(), 3e-3).unwrap();
    let mut stopped = base(&dir("b"));
    stopped.max_steps = Some(stop_at);
    assert_eq!(fit(&mut first, &mut opt, &train, None, &stopped).unwrap().steps, stop_at);
    let saved = wgrnn::checkpoint::running_state(dir("b").join("last.safetensors")).unwrap();
    assert_eq!(saved.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["c.0", "c.1", "h.0", "h.1"]);
    // ... and resumed by a fresh model: the same weights as never stopping.
    let mut resumed = make(2);
    let mut opt = Optimizer::adam(resumed.parameters(), 3e-3).unwrap();
    let report =
        fit(&mut resumed, &mut opt, &train, None, &base(&dir("b")).with_resume(dir("b").join("last.safetensors")))
            .unwrap();
    assert_eq!(report.steps, (per_epoch + train.epoch(1).len()) as u64, "variable windows: epochs differ in length");
    assert_eq!(weights(&resumed), weights(&straight), "resumed weights differ from the uninterrupted run");
    for tag in ["a", "b"] {
        std::fs::remove_dir_all(dir(tag)).ok();
    }
}
