//! Whole-model gradient check: embedding → recurrent stack → pooling →
//! linear → cross-entropy, as recorded on the tape, against a CPU reference
//! of the same model in f64 — whose own gradients are checked against
//! finite differences first.

#![allow(clippy::needless_range_loop)]

mod common;

use common::{assert_close, assert_close_scalar, device};
use wgrnn::autograd::Tape;
use wgrnn::models::{Pooling, SequenceClassifierConfig};
use wgrnn::nn::named_parameters;
use wgrnn::reference::nn::{cross_entropy, embedding_backward, pool_last, pool_max, pool_mean};
use wgrnn::reference::rnn::{rnn_backward, rnn_forward, LayerWeights, RnnInputs};
use wgrnn::rnn::{RnnMode, RnnSpec};

/// Tape gradients, GPU f32 against the CPU model in f64 through the whole
/// model, relative to max(1, |reference|) (the floor: parameters and inputs
/// are O(1), so a near-zero element's error is that of the O(1) terms it
/// sums). The recurrent part accumulates the error (see tests/rnn_gpu.rs),
/// over ≤ 4 steps here. Measured worst: 6.0e-8 on lavapipe, 6.7e-8 on
/// llvmpipe GL over 48 comparisons; this bound is 10× that and still
/// catches any missing or doubled term.
const GRAD_TOL: f32 = 7e-7;
/// The CPU model's analytic gradients against central differences in f64
/// (step 1e-6), relative to max(1, |gradient|) (the floor: the differences'
/// rounding error, ≈ 1e-16/1e-6 = 1e-10, is relative to the O(1) loss, not
/// to the gradient); truncation is ≈ step² = 1e-12. Measured worst: 2.5e-10
/// (CPU only: the same on both backends) over 48 comparisons; this bound is
/// 12× that, and any wrong term is orders of magnitude larger.
const FD_TOL: f64 = 3e-9;
/// The loss (cross-entropy of 3 rows, f32) against f64, relative to
/// max(1, |reference|). Measured worst: 9.3e-8 on lavapipe and on llvmpipe
/// GL over 4 comparisons; this bound is 11× that.
const LOSS_TOL: f64 = 1e-6;

const V: usize = 7;
const E: usize = 3;
const H: usize = 4;
const C: usize = 3;
const T: usize = 4;

/// Host copy of the classifier's parameters, in `named_parameters` order.
#[derive(Clone)]
struct HostModel {
    params: Vec<(String, Vec<f64>)>,
}

impl HostModel {
    fn get(&self, name: &str) -> &[f64] {
        &self.params.iter().find(|(n, _)| n == name).unwrap().1
    }
}

/// The model on the CPU: returns the loss and, when `grads`, the gradient
/// of every parameter (same order).
fn reference(
    spec: &RnnSpec,
    pooling: Pooling,
    m: &HostModel,
    ids: &[u32],
    lengths: &[usize],
    targets: &[u32],
    grads: bool,
) -> (f64, Vec<Vec<f64>>) {
    let b = lengths.len();
    let d = spec.directions();
    let emb = m.get("embedding.weight");
    let mut x = vec![0.0; b * T * E];
    for (p, &id) in ids.iter().enumerate() {
        x[p * E..(p + 1) * E].copy_from_slice(&emb[id as usize * E..(id as usize + 1) * E]);
    }
    let weights: Vec<LayerWeights> = (0..spec.num_layers * d)
        .map(|i| {
            let s = RnnSpec::suffix(i / d, i % d);
            LayerWeights {
                w_ih: m.get(&format!("rnn.weight_ih_{s}")).to_vec(),
                w_hh: m.get(&format!("rnn.weight_hh_{s}")).to_vec(),
                b_ih: m.get(&format!("rnn.bias_ih_{s}")).to_vec(),
                b_hh: m.get(&format!("rnn.bias_hh_{s}")).to_vec(),
                w_hr: Vec::new(),
            }
        })
        .collect();
    let state = spec.num_layers * d * b * H;
    let zeros = vec![0.0; state];
    let inputs = RnnInputs { input: &x, lengths, max_len: T, h0: &zeros, c0: &zeros, dropout: None };
    let tr = rnn_forward(spec, &weights, &inputs);
    let f = d * H;
    let (feat, argmax) = match pooling {
        Pooling::Last => (pool_last(&tr.h_n, spec.num_layers * d, b, H, d), vec![]),
        Pooling::Mean => (pool_mean(&tr.output, lengths, T, f), vec![]),
        Pooling::Max => pool_max(&tr.output, lengths, T, f),
    };
    let (w, bias) = (m.get("fc.weight"), m.get("fc.bias"));
    let mut logits = vec![0.0; b * C];
    for r in 0..b {
        for c in 0..C {
            logits[r * C + c] = bias[c] + (0..f).map(|k| w[c * f + k] * feat[r * f + k]).sum::<f64>();
        }
    }
    let (loss, dlogits) = cross_entropy(&logits, C, targets, None, 0.0);
    if !grads {
        return (loss, vec![]);
    }
    let mut dw = vec![0.0; C * f];
    let mut db = vec![0.0; C];
    let mut dfeat = vec![0.0; b * f];
    for r in 0..b {
        for c in 0..C {
            let g = dlogits[r * C + c];
            db[c] += g;
            for k in 0..f {
                dw[c * f + k] += g * feat[r * f + k];
                dfeat[r * f + k] += g * w[c * f + k];
            }
        }
    }
    let mut d_out = vec![0.0; b * T * f];
    let mut d_hn = vec![0.0; state];
    let d_cn = vec![0.0; state];
    for r in 0..b {
        for k in 0..f {
            let g = dfeat[r * f + k];
            match pooling {
                Pooling::Last => {
                    let (dir, j) = (k / H, k % H);
                    d_hn[((spec.num_layers * d - d + dir) * b + r) * H + j] += g;
                }
                Pooling::Mean => (0..lengths[r]).for_each(|t| d_out[(r * T + t) * f + k] += g / lengths[r] as f64),
                Pooling::Max => d_out[(r * T + argmax[r * f + k]) * f + k] += g,
            }
        }
    }
    let rg = rnn_backward(spec, &weights, &tr, &d_out, &d_hn, &d_cn);
    let mut demb = vec![0.0; V * E];
    // Only valid steps carry gradient (padded ones have zero input grads).
    embedding_backward(&rg.input, ids, E, None, &mut demb);
    let mut out = Vec::new();
    for (name, _) in &m.params {
        let g = if name == "embedding.weight" {
            demb.clone()
        } else if name == "fc.weight" {
            dw.clone()
        } else if name == "fc.bias" {
            db.clone()
        } else {
            let pname = name.trim_start_matches("rnn.");
            let idx = (0..spec.num_layers * d)
                .find(|&i| {
                    pname.ends_with(&RnnSpec::suffix(i / d, i % d)) && !(i % d == 0 && pname.ends_with("_reverse"))
                })
                .unwrap();
            let lw = &rg.weights[idx];
            match pname.split("_l").next().unwrap() {
                "weight_ih" => lw.w_ih.clone(),
                "weight_hh" => lw.w_hh.clone(),
                "bias_ih" => lw.b_ih.clone(),
                _ => lw.b_hh.clone(),
            }
        };
        out.push(g);
    }
    (loss, out)
}

fn check(mode: RnnMode, layers: usize, bidirectional: bool, pooling: Pooling) {
    let dev = device();
    let config = SequenceClassifierConfig::new(V, E, H, C)
        .with_mode(mode)
        .with_layers(layers)
        .with_bidirectional(bidirectional)
        .with_pooling(pooling)
        .with_seed(5);
    let model = config.init(dev).unwrap();
    let lengths = [2usize, 4, 1];
    // Padded ids; the padded positions hold arbitrary ids that must not matter.
    let ids: Vec<u32> = (0..lengths.len() * T).map(|i| ((i * 5 + 1) % V) as u32).collect();
    let targets = [2u32, 0, 1];

    let mut tape = Tape::train(dev, 1);
    let logits = model.forward(&mut tape, &ids, &lengths, T).unwrap();
    let loss = tape.cross_entropy(logits, &targets, None, 0.0).unwrap();
    tape.backward(loss.loss).unwrap();
    let gpu_loss = tape.value(loss.loss).unwrap().to_vec().unwrap()[0];

    let named = named_parameters(&model);
    let host = HostModel {
        params: named
            .iter()
            .map(|(n, p)| (n.clone(), p.value.to_vec().unwrap().iter().map(|&v| f64::from(v)).collect()))
            .collect(),
    };
    let spec = *model.rnn.layer.spec();
    let (want_loss, want) = reference(&spec, pooling, &host, &ids_valid_only(&ids, &lengths), &lengths, &targets, true);
    let tag = format!("{mode:?} L={layers} bidir={bidirectional} {pooling:?}");
    assert_close_scalar(&format!("{tag}: loss"), f64::from(gpu_loss), want_loss, want_loss.abs().max(1.0), LOSS_TOL);

    // Finite differences of the CPU model, every parameter.
    for (pi, (name, values)) in host.params.iter().enumerate() {
        let mut fd = vec![0.0; values.len()];
        for i in 0..values.len() {
            let mut m = host.clone();
            m.params[pi].1[i] += 1e-6;
            let up = reference(&spec, pooling, &m, &ids_valid_only(&ids, &lengths), &lengths, &targets, false).0;
            m.params[pi].1[i] -= 2e-6;
            let down = reference(&spec, pooling, &m, &ids_valid_only(&ids, &lengths), &lengths, &targets, false).0;
            fd[i] = (up - down) / 2e-6;
        }
        let scale: Vec<f64> = want[pi].iter().map(|v| v.abs().max(1.0)).collect();
        assert_close(&format!("{tag}: CPU {name} analytic vs finite difference"), &want[pi], &fd, &scale, FD_TOL);
    }
    // GPU tape gradients against the CPU model's.
    for ((name, p), w) in named.iter().zip(&want) {
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let scale: Vec<f32> = w32.iter().map(|v| v.abs().max(1.0)).collect();
        assert_close(&format!("{tag}: grad {name}"), &p.grad.to_vec().unwrap(), &w32, &scale, GRAD_TOL);
    }
}

/// The reference gathers embeddings for every padded position, so padded
/// positions are given id 0 there; their rows never reach the loss, and
/// their input gradients are zero, so this changes nothing but makes the
/// embedding gradient's padded contributions exactly zero on both sides.
fn ids_valid_only(ids: &[u32], lengths: &[usize]) -> Vec<u32> {
    ids.iter().enumerate().map(|(p, &id)| if p % T < lengths[p / T] { id } else { 0 }).collect()
}

#[test]
fn lstm_bidirectional_stacked_last_state() {
    check(RnnMode::Lstm, 2, true, Pooling::Last);
}

#[test]
fn gru_mean_pooling() {
    check(RnnMode::Gru, 1, true, Pooling::Mean);
}

#[test]
fn rnn_tanh_max_pooling() {
    check(RnnMode::RnnTanh, 2, false, Pooling::Max);
}

#[test]
fn lstm_unidirectional_mean() {
    check(RnnMode::Lstm, 1, false, Pooling::Mean);
}
