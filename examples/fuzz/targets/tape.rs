//! The layer and tape entry points.

use wgrnn::autograd::Tape;
use wgrnn::lm::{AwdConfig, LanguageModelConfig, IGNORE};
use wgrnn::nn::{EmbeddingConfig, LinearConfig, RecurrentConfig};
use wgrnn::rnn::{PackedBatch, RnnMode};
use wgrnn::Tensor;

use super::device;
use crate::engine::{Input, Verdict};

// ---------------------------------------------------------------- tape

fn mode(input: &mut Input<'_>) -> RnnMode {
    [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh, RnnMode::RnnRelu][input.below(4)]
}

/// Whether every value is finite.
fn finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// Largest input magnitude for which an output must be finite. Finite is
/// not enough: a state of f32::MAX overflows the first product it meets
/// (in PyTorch as here), so inputs that large may give inf or NaN.
const MODERATE: f32 = 1e4;

/// Whether every value is finite and at most [`MODERATE`] in magnitude.
fn moderate(values: &[f32]) -> bool {
    values.iter().all(|v| v.abs() <= MODERATE)
}

pub(super) fn tape_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let path = input.u8() % 5;
    let dispatches = device().dispatch_count();
    let result = match path {
        0 | 1 => classifier_step(&mut input),
        2 => rnn_direct(&mut input),
        3 => tape_misuse(&mut input),
        _ => lm_step(&mut input),
    };
    // Submit what was recorded (a failed op may leave dispatches behind)
    // and wait for it, so a validation error or a kernel that runs for
    // ever is charged to this execution, not a later one. An input
    // rejected before any dispatch costs nothing here.
    let result = if device().dispatch_count() != dispatches {
        result.and_then(|v| device().synchronize().map(|()| v))
    } else {
        result
    };
    match result {
        Ok(v) => v,
        Err(e) => Verdict::from_error(&e),
    }
}

/// embedding → recurrent → pooling → linear → loss → backward on a
/// training tape, every size and value from the input.
fn classifier_step(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let (vocab, embed, hidden) = (input.size(5), input.size(3), input.size(3));
    let (cell, layers, bidirectional) = (mode(input), input.size(2), input.bool());
    let batch = input.size(3);
    let max_len = input.size(4);
    let lengths: Vec<usize> = (0..batch.min(64)).map(|_| input.size(max_len.min(6) + 1)).collect();
    let ids: Vec<u32> = (0..lengths.iter().sum::<usize>().min(512))
        .map(|_| if input.u8() < 250 { input.below(vocab.min(64) + 1) as u32 } else { input.u32() })
        .collect();
    let classes = input.size(3);
    let targets: Vec<u32> = (0..batch.min(64)).map(|_| input.below(classes.min(8) + 2) as u32).collect();
    let pooling = input.u8() % 4;
    let with_state = input.u8() % 4;
    let dropout = if input.u8() < 200 { 0.0 } else { input.f32() };

    let embedding = EmbeddingConfig::new(vocab, embed).init(dev)?;
    let rnn = RecurrentConfig::new(cell, embed, hidden)
        .with_num_layers(layers)
        .with_bidirectional(bidirectional)
        .with_dropout(dropout)
        .init(dev)?;
    let dirs = if bidirectional { 2 } else { 1 };
    let fc = LinearConfig::new(dirs * hidden, classes).init(dev)?;

    let mut tape = Tape::train(dev, u64::from(input.u8()));
    let packed = PackedBatch::new(dev, &lengths, max_len)?;
    if lengths.iter().any(|&l| l == 0 || l > max_len) {
        return Ok(Verdict::Wrong(format!("PackedBatch accepted lengths {lengths:?} for T = {max_len}")));
    }
    let x = tape.embedding(&embedding, &ids)?;
    if ids.iter().any(|&i| i as usize >= vocab) {
        return Ok(Verdict::Wrong(format!("embedding accepted ids {ids:?} for V = {vocab}")));
    }
    // Initial states: none, right-shaped (finite or not), or wrong-shaped.
    let states = layers * dirs;
    let (mut h0, mut c0, mut finite_inputs) = (None, None, true);
    if with_state > 0 {
        let shape = if with_state == 3 { [states, batch + 1, hidden] } else { [states.max(1), batch, hidden] };
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n.min(4096)).map(|_| if with_state == 2 { input.f32() } else { 0.1 }).collect();
        finite_inputs = moderate(&values);
        let t = Tensor::from_slice(dev, &values, &shape)?;
        h0 = Some(tape.input(t.clone()));
        if cell == RnnMode::Lstm {
            c0 = Some(tape.input(t));
        }
    }
    let r = tape.recurrent(&rnn, x, &packed, h0, c0)?;
    let features = match pooling {
        0 => tape.pool_last(r.h_n, dirs)?,
        1 => tape.pool_mean(r.output, &packed)?,
        2 => tape.pool_max(r.output, &packed)?,
        _ => r.output,
    };
    let features = tape.dropout(features, if dropout.is_finite() { dropout.abs() % 1.0 } else { dropout })?;
    let logits = tape.linear(&fc, features)?;
    let rows = tape.value(logits)?.shape()[0];
    let loss = if classes == 1 && input.bool() {
        let t: Vec<f32> = (0..rows).map(|_| input.f32()).collect();
        tape.bce_with_logits(logits, &t)?
    } else {
        let targets: Vec<u32> = (0..rows).map(|i| targets.get(i).copied().unwrap_or(0)).collect();
        let ignore = if input.bool() { Some(input.below(4) as u32) } else { None };
        let l = tape.cross_entropy(logits, &targets, ignore, input.finite().abs() / 2.0)?;
        if targets.iter().any(|&y| y as usize >= classes && Some(y) != ignore) {
            return Ok(Verdict::Wrong(format!("cross_entropy accepted targets {targets:?} for C = {classes}")));
        }
        l
    };
    tape.backward(loss.loss)?;
    let value = loss.value(&tape)?;
    // One gradient read back (each readback waits for the GPU): the first
    // layer's input weights, which every other gradient flows into.
    let grad = rnn.layer.params()[0].weight_ih().grad.to_vec()?;
    if finite_inputs && (!value.is_finite() || !finite(&grad)) {
        return Ok(Verdict::Wrong(format!("moderate inputs gave loss {value} or a non-finite gradient")));
    }
    Ok(Verdict::Accepted(format!("step{pooling}")))
}

/// `Rnn::forward`/`backward` on padded host-built tensors, NaN/inf allowed.
fn rnn_direct(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let (cell, in_size, hidden) = (mode(input), input.size(3), input.size(3));
    let proj = if input.u8() > 230 { input.size(3) } else { 0 };
    // Through the module: `RnnConfig::init` draws initial values before
    // any device-size check (see the fuzzing notes in README).
    let mut config =
        RecurrentConfig::new(cell, in_size, hidden).with_num_layers(input.size(2)).with_bidirectional(input.bool());
    config.rnn = config.rnn.with_proj_size(proj);
    let rnn = config.init(dev)?.layer;
    let spec = *rnn.spec();
    let (batch, max_len) = (input.size(3).min(64), input.size(4).min(64));
    let features = if input.u8() < 240 { spec.input_size } else { input.size(4) };
    let lengths: Vec<usize> = (0..batch).map(|_| input.size(max_len + 1)).collect();
    let n = batch * max_len * features;
    let values: Vec<f32> =
        (0..n.min(8192)).map(|_| if input.u8() < 240 { input.finite() } else { input.f32() }).collect();
    let x = Tensor::from_slice(dev, &values, &[batch, max_len, features])?;
    let states = spec.num_layers * spec.directions();
    let mut h0_finite = true;
    let h0 = if input.bool() {
        let shape = [states, batch, spec.state_size() + usize::from(input.u8() > 240)];
        let h: Vec<f32> = (0..shape.iter().product::<usize>().min(4096)).map(|_| input.f32()).collect();
        h0_finite = moderate(&h);
        Some(Tensor::from_slice(dev, &h, &shape)?)
    } else {
        None
    };
    let fwd = rnn.forward(&x, &lengths, h0.as_ref(), None, None)?;
    if lengths.iter().any(|&l| l == 0 || l > max_len) {
        return Ok(Verdict::Wrong(format!("Rnn::forward accepted lengths {lengths:?} for T = {max_len}")));
    }
    let out = fwd.output.to_vec()?;
    let h_ok = h0_finite;
    if moderate(&values) && h_ok && !finite(&out) && cell != RnnMode::RnnRelu {
        return Ok(Verdict::Wrong("moderate inputs gave a non-finite output".into()));
    }
    // Padded steps must be zero whatever the input.
    let width = out.len() / (batch * max_len).max(1);
    for (b, &len) in lengths.iter().enumerate() {
        for t in len..max_len {
            let row = &out[(b * max_len + t) * width..(b * max_len + t + 1) * width];
            if row.iter().any(|&v| v != 0.0) {
                return Ok(Verdict::Wrong(format!("output at padded step ({b}, {t}) is not zero")));
            }
        }
    }
    if input.bool() {
        let shape = if input.u8() < 240 { fwd.output.shape().to_vec() } else { vec![batch, max_len, width + 1] };
        let g: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| input.finite()).collect();
        let g = Tensor::from_slice(dev, &g, &shape)?;
        let grads = rnn.backward(&fwd, &g, None, None)?;
        let dx = grads.input.to_vec()?;
        if moderate(&values) && h_ok && cell != RnnMode::RnnRelu && !finite(&dx) {
            return Ok(Verdict::Wrong("moderate inputs gave a non-finite input gradient".into()));
        }
    }
    Ok(Verdict::Accepted("rnn".into()))
}

/// A language-model step: embedding (and AWD's embedding and locked
/// dropout, weight drop, AR/TAR penalties), stacked layers with carried
/// state of any shape, the decoder, cross-entropy with ignored targets,
/// backward.
fn lm_step(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let (vocab, embed, hidden) = (input.size(5), input.size(3), input.size(3));
    let mut config = LanguageModelConfig::new(vocab, embed, hidden)
        .with_layers(input.size(2))
        .with_mode(mode(input))
        .with_tied_weights(input.u8() < 64);
    match input.u8() % 3 {
        0 => config = config.with_dropout(if input.u8() < 200 { 0.25 } else { input.f32() }),
        1 => {
            let mut awd = AwdConfig::fastai(1.0);
            if input.u8() > 200 {
                awd.weight_p = input.f32();
                awd.beta = input.f32();
            }
            config = config.with_awd(awd);
        }
        _ => {}
    }
    let model = config.init(dev)?;
    let batch = input.size(3);
    let max_len = input.size(4);
    let lengths: Vec<usize> = (0..batch.min(64)).map(|_| input.size(max_len.min(6) + 1)).collect();
    let packed = PackedBatch::new(dev, &lengths, max_len)?;
    let n = packed.total();
    let ids: Vec<u32> = (0..n + usize::from(input.u8() > 240)).map(|_| input.below(vocab.min(64) + 1) as u32).collect();
    let targets: Vec<u32> =
        (0..n).map(|_| if input.u8() < 32 { IGNORE } else { input.below(vocab.min(64) + 1) as u32 }).collect();
    let state = match input.u8() % 3 {
        0 => None,
        1 => Some(model.zero_state(dev, batch)?),
        _ => Some(model.zero_state(dev, batch + 1)?),
    };
    let mut tape = Tape::train(dev, u64::from(input.u8()));
    let fwd = model.forward(&mut tape, &ids, &packed, state.as_deref())?;
    if ids.iter().any(|&i| i as usize >= vocab) || ids.len() != n {
        return Ok(Verdict::Wrong(format!("LanguageModel::forward accepted ids {ids:?} for V = {vocab}, N = {n}")));
    }
    let mut loss = tape.cross_entropy(fwd.logits, &targets, Some(IGNORE), 0.0)?;
    if let Some(p) = fwd.penalty {
        loss = loss.with_penalty(&mut tape, p)?;
    }
    tape.backward(loss.objective)?;
    let value = loss.value(&tape)?;
    if !value.is_finite() && targets.iter().any(|&t| t != IGNORE) {
        return Ok(Verdict::Wrong(format!("a language-model step gave loss {value}")));
    }
    Ok(Verdict::Accepted("lm".into()))
}

/// Misuse of the tape: mismatched shapes to linear/add, a var of another
/// tape, backward twice, backward on a non-scalar or an eval tape,
/// dropout probabilities outside [0, 1).
fn tape_misuse(input: &mut Input<'_>) -> wgrnn::Result<Verdict> {
    let dev = device();
    let train = input.u8() < 200;
    let mut tape = if train { Tape::train(dev, 1) } else { Tape::eval(dev) };
    let mut other = Tape::train(dev, 2);
    let (m, k) = (input.size(3), input.size(3));
    let values: Vec<f32> = (0..m.saturating_mul(k).min(4096)).map(|_| input.f32()).collect();
    let x = tape.input(Tensor::from_slice(dev, &values, &[m, k])?);
    let y = other.input(Tensor::from_slice(dev, &[1.0], &[1])?);
    let layer = LinearConfig::new(input.size(3), input.size(3)).init(dev)?;
    let mut v = match input.u8() % 5 {
        0 => tape.linear(&layer, x)?,
        1 => tape.add(x, y)?,
        2 => tape.dropout(x, input.f32())?,
        3 => tape.linear(&layer, y)?,
        _ => tape.add(x, x)?,
    };
    if input.bool() {
        let layer2 = LinearConfig::new(tape.value(v)?.shape()[1], 1).init(dev)?;
        v = tape.linear(&layer2, v)?;
        v = tape.pool_last(v, input.size(2))?;
    }
    tape.backward(v)?;
    if input.bool() {
        tape.backward(v)?;
        return Ok(Verdict::Wrong("a second backward on one tape was accepted".into()));
    }
    if !train {
        return Ok(Verdict::Wrong("backward on an evaluation tape was accepted".into()));
    }
    Ok(Verdict::Accepted("misuse".into()))
}

/// A `classifier_step` input: V 5, E 3, H 2, one layer, B 2, T 3,
/// lengths 3 and 1, ids 1–4, two classes, with the given cell, pooling,
/// directions and initial state (0 none, 1 zeros, 2 from the input).
fn classifier_seed(cell: u8, pooling: u8, bidirectional: bool, state: u8) -> Vec<u8> {
    let mut s = vec![0, 5, 3, 2, cell, 1, u8::from(bidirectional), 2, 3, 3, 1];
    s.extend([0, 1, 0, 2, 0, 3, 0, 4]); // ids
    s.extend([2, 0, 1, pooling, state, 0, 7]); // classes, targets, pooling, state, dropout, tape seed
    if state == 2 {
        s.extend([140, 120, 100, 160, 130, 110, 90, 170]); // h0 (and c0) values
    }
    s.extend([0, 128]); // no ignore_index, no smoothing
    s
}

pub(super) fn tape_seeds() -> Vec<Vec<u8>> {
    // Every cell × pooling × direction first: these compile every kernel
    // the target reaches, before the hang watchdog is strict.
    let mut seeds = Vec::new();
    for cell in 0..4 {
        for pooling in 0..4 {
            for bidirectional in [false, true] {
                seeds.push(classifier_seed(cell, pooling, bidirectional, u8::from(bidirectional) * 2));
            }
        }
    }
    seeds.extend([
        // classifier_step: V 5, E 3, H 2, LSTM, 1 layer, uni, B 2, T 3, lengths 3 1, ids, classes 2…
        vec![0, 5, 3, 2, 0, 1, 0, 2, 3, 3, 1, 1, 2, 3, 4, 2, 0, 1, 0, 0, 0, 0],
        vec![1, 5, 3, 2, 1, 2, 1, 2, 3, 3, 1, 1, 2, 3, 4, 2, 0, 1, 1, 2, 0, 0],
        vec![0, 4, 2, 3, 2, 1, 0, 1, 2, 2, 1, 3, 1, 1, 2, 1, 0, 1, 0],
        // rnn_direct: GRU I 2 H 3, B 2, T 2.
        vec![2, 1, 2, 3, 0, 1, 0, 2, 2, 0, 2, 1, 10, 20, 30, 40, 50, 60, 70, 80, 1, 1, 0],
        vec![2, 0, 1, 2, 0, 2, 1, 1, 3, 0, 3, 5, 6, 7, 0, 1, 2, 1],
        // tape_misuse.
        vec![3, 0, 2, 2, 1, 2, 3, 2, 2, 0, 1, 1],
        vec![3, 250, 1, 1, 9, 1, 1, 1, 0],
    ]);
    // lm_step: V 5, E 3, H 2, one layer, each cell, plain / AWD / none,
    // B 2, T 3, lengths 3 and 2, ids, targets, carried zero state.
    for cell in 0..4 {
        for reg in 0..3 {
            let mut s = vec![4, 5, 3, 2, 1, cell, 200, reg, 0, 2, 3, 3, 2, 0];
            s.extend([1, 2, 3, 4, 1]); // ids (N = 5)
            s.extend([64, 2, 64, 3, 64, 4, 64, 1, 0]); // targets, the last ignored
            s.extend([1, 9]); // zero state, tape seed
            seeds.push(s);
        }
    }
    seeds
}
