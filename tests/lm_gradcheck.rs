//! Whole language-model gradient check: embedding → AWD-LSTM's embedding
//! and locked dropout → recurrent layers with weight-dropped `weight_hh`
//! and a carried initial state → locked dropout → (tied) decoder →
//! cross-entropy over every packed step + AR + TAR, as recorded on the
//! tape, against a CPU model in f64 built from the library's references
//! (`reference::lm` masks, `reference::rnn`, `reference::nn`) in the
//! padded layout — whose own gradients are checked against finite
//! differences first. The masks are rebuilt from the tape seed
//! (`autograd::mask_seed`), so a match also proves the GPU masks are the
//! documented ones, bit for bit.

#![allow(clippy::needless_range_loop)]

mod common;

use common::{assert_close, assert_close_scalar, device};
use wgrnn::autograd::{mask_seed, Tape};
use wgrnn::lm::{AwdConfig, LanguageModelConfig, LayerState};
use wgrnn::nn::named_parameters;
use wgrnn::reference::lm::{dropout_dense, dropout_keyed};
use wgrnn::reference::nn::{cross_entropy, embedding_backward};
use wgrnn::reference::rnn::{rnn_backward, rnn_forward, LayerWeights, RnnInputs};
use wgrnn::rnn::{PackedBatch, RnnMode, RnnSpec};
use wgrnn::Tensor;

/// Tape gradients, GPU f32 against the CPU model in f64, relative to
/// max(1, |reference|) (the floor: parameters, inputs and upstream
/// gradients are O(1), so a near-zero element's error is that of the O(1)
/// terms it sums). The recurrent part dominates the error (see
/// tests/rnn_gpu.rs), over only 5 steps here. Measured worst: 1.8e-7 on
/// lavapipe, 5.2e-8 on llvmpipe GL over 42 comparisons; this bound is 11×
/// that and still catches any missing, doubled or unmasked term (each is
/// ≥ 1e-3 at these sizes).
const GRAD_TOL: f32 = 2e-6;
/// Cross-entropy and objective (a mean of 10 f32 log-softmax terms plus
/// AR/TAR) against f64, relative to max(1, |reference|). Measured worst:
/// 9.1e-8 on lavapipe and on llvmpipe GL over 8 comparisons; this bound is
/// 11× that.
const LOSS_TOL: f64 = 1e-6;
/// The CPU model's analytic gradients against central differences in f64
/// (step 1e-6), relative to max(1, |gradient|) (the floor: the differences'
/// rounding error, ≈ 1e-16/1e-6 = 1e-10, is relative to the O(1) objective,
/// not to the gradient); truncation is ≈ step² = 1e-12. Measured worst:
/// 7.0e-10 (CPU only: the same on both backends) over 42 comparisons; this
/// bound is 11× that, and any wrong term is ≥ 1e-3.
const FD_TOL: f64 = 8e-9;

const V: usize = 9;
const E: usize = 4;
const H: usize = 5;
const T: usize = 5;
const LENGTHS: [usize; 3] = [3, 5, 2];
const B: usize = LENGTHS.len();
const TAPE_SEED: u64 = 0x5eed_0042;

/// One configuration of the model under test.
#[derive(Clone, Copy)]
struct Case {
    mode: RnnMode,
    layers: usize,
    tie: bool,
    awd: Option<AwdConfig>,
    dropout: f32,
    carried: bool,
}

impl Case {
    fn config(&self) -> LanguageModelConfig {
        let mut c = LanguageModelConfig::new(V, E, H)
            .with_mode(self.mode)
            .with_layers(self.layers)
            .with_tied_weights(self.tie)
            .with_dropout(self.dropout)
            .with_seed(3);
        if let Some(a) = self.awd {
            c = c.with_awd(a);
        }
        c
    }
}

/// The masks of one training tape, as padded (B, T, F) factors (0 or
/// 1/(1 − p); 1 where there is no dropout) and per-layer `weight_hh` factors.
struct Masks {
    /// On the embedding output: embedding dropout × locked input dropout.
    input: Vec<f64>,
    /// After layer k (locked or plain dropout).
    after: Vec<Vec<f64>>,
    /// On layer k's `weight_hh` (G, H_k).
    weight: Vec<Vec<f64>>,
}

fn ones(n: usize) -> Vec<f32> {
    vec![1.0; n]
}

fn to_f64(v: Vec<f32>) -> Vec<f64> {
    v.into_iter().map(f64::from).collect()
}

/// Rebuilds the masks in the order the model draws them from the tape
/// (see `LanguageModel::forward_embedded`).
fn masks(case: &Case, cfg: &LanguageModelConfig, batch: &PackedBatch, ids: &[u32]) -> Masks {
    let mut n = 0;
    let mut next = || {
        n += 1;
        mask_seed(TAPE_SEED, n)
    };
    // Padded index b·T + t of every packed row.
    let padded_of: Vec<usize> = batch.pack_host(&(0..B * T).collect::<Vec<_>>()).unwrap();
    let row_keys: Vec<u32> = (0..B * T).map(|i| (i / T) as u32).collect();
    let locked = |p: f32, f: usize, seed: u64| to_f64(dropout_keyed(&ones(B * T * f), f, &row_keys, false, p, seed));
    let mut input = vec![1.0; B * T * E];
    let mut after = Vec::new();
    let mut weight = Vec::new();
    if let Some(a) = case.awd {
        if a.embed_p > 0.0 {
            let m = to_f64(dropout_keyed(&ones(B * T * E), E, ids, true, a.embed_p, next()));
            input.iter_mut().zip(m).for_each(|(x, m)| *x *= m);
        }
        if a.input_p > 0.0 {
            let m = locked(a.input_p, E, next());
            input.iter_mut().zip(m).for_each(|(x, m)| *x *= m);
        }
    }
    for k in 0..case.layers {
        let hk = cfg.layer_hidden(k);
        let g = case.mode.gates() * hk;
        let wp = case.awd.map_or(0.0, |a| a.weight_p);
        weight.push(if wp > 0.0 { to_f64(dropout_dense(&ones(g * hk), wp, next())) } else { vec![1.0; g * hk] });
        next(); // the recurrent stack's own inter-layer seed (unused by one layer)
        let last = k + 1 == case.layers;
        after.push(match case.awd {
            Some(a) => {
                let p = if last { a.output_p } else { a.hidden_p };
                if p > 0.0 {
                    locked(p, hk, next())
                } else {
                    vec![1.0; B * T * hk]
                }
            }
            None if case.dropout > 0.0 => {
                let packed = dropout_dense(&ones(batch.total() * hk), case.dropout, next());
                let mut m = vec![1.0; B * T * hk];
                for (r, &pi) in padded_of.iter().enumerate() {
                    for f in 0..hk {
                        m[pi * hk + f] = f64::from(packed[r * hk + f]);
                    }
                }
                m
            }
            None => vec![1.0; B * T * hk],
        });
    }
    Masks { input, after, weight }
}

/// Host copy of the model's parameters, in `named_parameters` order.
#[derive(Clone)]
struct HostModel {
    params: Vec<(String, Vec<f64>)>,
}

impl HostModel {
    fn get(&self, name: &str) -> &[f64] {
        &self.params.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no parameter {name}")).1
    }
}

/// Everything the reference needs besides the parameters.
struct Problem<'a> {
    case: Case,
    cfg: LanguageModelConfig,
    masks: &'a Masks,
    /// (B, T) padded ids (0 at padding) and next-token targets.
    ids: &'a [u32],
    targets: &'a [u32],
    /// Per layer: (B, H_k) initial h and c.
    h0: &'a [Vec<f64>],
    c0: &'a [Vec<f64>],
}

fn valid(b: usize, t: usize) -> bool {
    t < LENGTHS[b]
}

/// The model on the CPU: returns (cross-entropy, objective) and, when
/// `grads`, the gradient of the objective w.r.t. every parameter (same order).
fn reference(p: &Problem<'_>, m: &HostModel, grads: bool) -> (f64, f64, Vec<Vec<f64>>) {
    let (case, cfg, masks) = (p.case, p.cfg, p.masks);
    let n_tokens: usize = LENGTHS.iter().sum();
    let emb = m.get("embedding.weight");
    let mut x = vec![0.0; B * T * E];
    for b in 0..B {
        for t in (0..T).filter(|&t| valid(b, t)) {
            let (i, id) = (b * T + t, p.ids[b * T + t] as usize);
            for e in 0..E {
                x[i * E + e] = emb[id * E + e] * masks.input[i * E + e];
            }
        }
    }
    let mut traces = Vec::new();
    let mut layer_weights = Vec::new();
    let mut raw = Vec::new();
    for k in 0..case.layers {
        let (nin, hk) = (if k == 0 { E } else { cfg.layer_hidden(k - 1) }, cfg.layer_hidden(k));
        let spec = RnnSpec {
            mode: case.mode,
            input_size: nin,
            hidden_size: hk,
            num_layers: 1,
            bidirectional: false,
            proj_size: 0,
        };
        let name = |w: &str| m.get(&format!("rnns.{k}.{w}_l0")).to_vec();
        let w_hh: Vec<f64> = name("weight_hh").iter().zip(&masks.weight[k]).map(|(w, f)| w * f).collect();
        let lw = LayerWeights {
            w_ih: name("weight_ih"),
            w_hh,
            b_ih: name("bias_ih"),
            b_hh: name("bias_hh"),
            w_hr: Vec::new(),
        };
        let inputs = RnnInputs { input: &x, lengths: &LENGTHS, max_len: T, h0: &p.h0[k], c0: &p.c0[k], dropout: None };
        let tr = rnn_forward(&spec, std::slice::from_ref(&lw), &inputs);
        raw = tr.output.clone();
        x = raw.iter().zip(&masks.after[k]).map(|(v, f)| v * f).collect();
        traces.push((spec, tr));
        layer_weights.push(lw);
    }
    let f = cfg.layer_hidden(case.layers - 1);
    let dec_w = if case.tie { m.get("embedding.weight") } else { m.get("decoder.weight") };
    let dec_b = m.get("decoder.bias");
    // Valid steps in padded order; the loss is a mean over them.
    let rows: Vec<usize> = (0..B * T).filter(|&i| valid(i / T, i % T)).collect();
    let mut logits = vec![0.0; rows.len() * V];
    for (r, &i) in rows.iter().enumerate() {
        for v in 0..V {
            logits[r * V + v] = dec_b[v] + (0..f).map(|j| dec_w[v * f + j] * x[i * f + j]).sum::<f64>();
        }
    }
    let targets: Vec<u32> = rows.iter().map(|&i| p.targets[i]).collect();
    let (ce, dlogits) = cross_entropy(&logits, V, &targets, None, 0.0);
    let (alpha, beta) = case.awd.map_or((0.0, 0.0), |a| (f64::from(a.alpha), f64::from(a.beta)));
    let ar_scale = alpha / (n_tokens * f) as f64;
    let pairs = n_tokens - B;
    let tar_scale = beta / (pairs * f) as f64;
    let ar: f64 = rows.iter().map(|&i| (0..f).map(|j| x[i * f + j].powi(2)).sum::<f64>()).sum::<f64>() * ar_scale;
    let tar: f64 = rows
        .iter()
        .filter(|&&i| i % T > 0)
        .map(|&i| (0..f).map(|j| (raw[i * f + j] - raw[(i - 1) * f + j]).powi(2)).sum::<f64>())
        .sum::<f64>()
        * tar_scale;
    let objective = ce + if case.awd.is_some() { ar + tar } else { 0.0 };
    if !grads {
        return (ce, objective, vec![]);
    }

    // Decoder.
    let mut d_dec_w = vec![0.0; V * f];
    let mut d_dec_b = vec![0.0; V];
    let mut dx = vec![0.0; B * T * f];
    for (r, &i) in rows.iter().enumerate() {
        for v in 0..V {
            let g = dlogits[r * V + v];
            d_dec_b[v] += g;
            for j in 0..f {
                d_dec_w[v * f + j] += g * x[i * f + j];
                dx[i * f + j] += g * dec_w[v * f + j];
            }
        }
    }
    // AR on the dropped output, then its mask, then TAR on the raw output.
    let mut d_raw = vec![0.0; B * T * f];
    for &i in &rows {
        for j in 0..f {
            let e = i * f + j;
            d_raw[e] = (dx[e] + 2.0 * ar_scale * x[e]) * masks.after[case.layers - 1][e];
        }
    }
    if case.awd.is_some() {
        for &i in rows.iter().filter(|&&i| i % T > 0) {
            for j in 0..f {
                let d = 2.0 * tar_scale * (raw[i * f + j] - raw[(i - 1) * f + j]);
                d_raw[i * f + j] += d;
                d_raw[(i - 1) * f + j] -= d;
            }
        }
    }
    // Layers, last first.
    let mut layer_grads = vec![None; case.layers];
    let mut d_out = d_raw;
    let mut d_x0 = Vec::new();
    for k in (0..case.layers).rev() {
        let (spec, tr) = &traces[k];
        let hk = spec.hidden_size;
        let zeros = vec![0.0; B * hk];
        let rg = rnn_backward(spec, std::slice::from_ref(&layer_weights[k]), tr, &d_out, &zeros, &zeros);
        let mut lw = rg.weights[0].clone();
        lw.w_hh.iter_mut().zip(&masks.weight[k]).for_each(|(g, f)| *g *= f);
        layer_grads[k] = Some(lw);
        if k > 0 {
            d_out = rg.input.iter().zip(&masks.after[k - 1]).map(|(g, f)| g * f).collect();
        } else {
            d_x0 = rg.input.iter().zip(&masks.input).map(|(g, f)| g * f).collect();
        }
    }
    let mut d_emb = vec![0.0; V * E];
    let valid_ids: Vec<u32> = (0..B * T).map(|i| if valid(i / T, i % T) { p.ids[i] } else { 0 }).collect();
    embedding_backward(&d_x0, &valid_ids, E, None, &mut d_emb);
    if case.tie {
        d_emb.iter_mut().zip(&d_dec_w).for_each(|(g, d)| *g += d);
    }
    let out = m
        .params
        .iter()
        .map(|(name, _)| match name.as_str() {
            "embedding.weight" => d_emb.clone(),
            "decoder.weight" => d_dec_w.clone(),
            "decoder.bias" => d_dec_b.clone(),
            other => {
                let rest = other.strip_prefix("rnns.").expect("a recurrent parameter");
                let (k, pname) = rest.split_once('.').unwrap();
                let lw = layer_grads[k.parse::<usize>().unwrap()].as_ref().unwrap();
                match pname {
                    "weight_ih_l0" => lw.w_ih.clone(),
                    "weight_hh_l0" => lw.w_hh.clone(),
                    "bias_ih_l0" => lw.b_ih.clone(),
                    "bias_hh_l0" => lw.b_hh.clone(),
                    _ => panic!("unexpected parameter {other}"),
                }
            }
        })
        .collect();
    (ce, objective, out)
}

fn check(case: Case) -> f32 {
    let dev = device();
    let cfg = case.config();
    let model = cfg.init(dev).unwrap();
    let names: Vec<String> = named_parameters(&model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.contains(&"decoder.weight".to_string()), !case.tie, "a tied decoder weight is the embedding's");

    let ids: Vec<u32> = (0..B * T).map(|i| if valid(i / T, i % T) { ((i * 5 + 2) % V) as u32 } else { 0 }).collect();
    let targets: Vec<u32> = (0..B * T).map(|i| ((i * 7 + 1) % V) as u32).collect();
    let batch = PackedBatch::new(dev, &LENGTHS, T).unwrap();
    let mut h0 = Vec::new();
    let mut c0 = Vec::new();
    let mut state = Vec::new();
    for k in 0..case.layers {
        let hk = cfg.layer_hidden(k);
        let (h, c) = if case.carried {
            (common::random(B * hk, 40 + k as u64), common::random(B * hk, 50 + k as u64))
        } else {
            (vec![0.0; B * hk], vec![0.0; B * hk])
        };
        state.push(LayerState {
            h: Tensor::from_slice(dev, &h, &[1, B, hk]).unwrap(),
            c: case.mode.has_cell_state().then(|| Tensor::from_slice(dev, &c, &[1, B, hk]).unwrap()),
        });
        h0.push(to_f64(h));
        c0.push(to_f64(c));
    }

    let mut tape = Tape::train(dev, TAPE_SEED);
    let packed_ids = batch.pack_host(&ids).unwrap();
    let fwd = model.forward(&mut tape, &packed_ids, &batch, case.carried.then_some(&state[..])).unwrap();
    let mut loss = tape.cross_entropy(fwd.logits, &batch.pack_host(&targets).unwrap(), None, 0.0).unwrap();
    assert_eq!(fwd.penalty.is_some(), case.awd.is_some(), "AR/TAR come with AWD only");
    if let Some(p) = fwd.penalty {
        loss = loss.with_penalty(&mut tape, p).unwrap();
    }
    tape.backward(loss.objective).unwrap();
    let gpu_ce = f64::from(tape.value(loss.loss).unwrap().to_vec().unwrap()[0]);
    let gpu_objective = f64::from(tape.value(loss.objective).unwrap().to_vec().unwrap()[0]);

    let named = named_parameters(&model);
    let host =
        HostModel { params: named.iter().map(|(n, p)| (n.clone(), to_f64(p.value.to_vec().unwrap()))).collect() };
    let masks = masks(&case, &cfg, &batch, &ids);
    let problem = Problem { case, cfg, masks: &masks, ids: &ids, targets: &targets, h0: &h0, c0: &c0 };
    let (want_ce, want_objective, want) = reference(&problem, &host, true);
    let tag = format!(
        "{:?} L={} tied={} awd={} dropout={} carried={}",
        case.mode,
        case.layers,
        case.tie,
        case.awd.is_some(),
        case.dropout,
        case.carried
    );
    assert_close_scalar(&format!("{tag}: cross-entropy"), gpu_ce, want_ce, want_ce.abs().max(1.0), LOSS_TOL);
    let scale = want_objective.abs().max(1.0);
    assert_close_scalar(&format!("{tag}: objective"), gpu_objective, want_objective, scale, LOSS_TOL);
    if case.awd.is_some() {
        assert!(want_objective > want_ce + 1e-3, "{tag}: AR/TAR should add a visible penalty");
    }

    // Finite differences of the CPU model's objective, every parameter.
    for (pi, (name, values)) in host.params.iter().enumerate() {
        let mut fd = vec![0.0; values.len()];
        for i in 0..values.len() {
            let mut m = host.clone();
            m.params[pi].1[i] += 1e-6;
            let up = reference(&problem, &m, false).1;
            m.params[pi].1[i] -= 2e-6;
            let down = reference(&problem, &m, false).1;
            fd[i] = (up - down) / 2e-6;
        }
        let scale: Vec<f64> = want[pi].iter().map(|v| v.abs().max(1.0)).collect();
        assert_close(&format!("{tag}: CPU {name} analytic vs finite difference"), &want[pi], &fd, &scale, FD_TOL);
    }
    // GPU tape gradients against the CPU model's.
    let mut worst = 0.0f32;
    for ((name, p), w) in named.iter().zip(&want) {
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let got = p.grad.to_vec().unwrap();
        let scale: Vec<f32> = w32.iter().map(|v| v.abs().max(1.0)).collect();
        assert_close(&format!("{tag}: grad {name}"), &got, &w32, &scale, GRAD_TOL);
        worst = got.iter().zip(&w32).zip(&scale).map(|((g, w), s)| (g - w).abs() / s).fold(worst, f32::max);
    }
    eprintln!("{tag}: worst gradient error {worst:e}");
    worst
}

fn awd() -> AwdConfig {
    AwdConfig { embed_p: 0.2, input_p: 0.3, hidden_p: 0.25, output_p: 0.35, weight_p: 0.4, alpha: 2.0, beta: 1.0 }
}

#[test]
fn awd_lstm_tied_with_carried_state() {
    check(Case { mode: RnnMode::Lstm, layers: 2, tie: true, awd: Some(awd()), dropout: 0.0, carried: true });
}

#[test]
fn awd_gru_untied_three_layers() {
    check(Case { mode: RnnMode::Gru, layers: 3, tie: false, awd: Some(awd()), dropout: 0.0, carried: false });
}

#[test]
fn plain_dropout_lstm_untied_with_carried_state() {
    check(Case { mode: RnnMode::Lstm, layers: 2, tie: false, awd: None, dropout: 0.3, carried: true });
}

#[test]
fn tied_rnn_tanh_without_dropout() {
    check(Case { mode: RnnMode::RnnTanh, layers: 1, tie: true, awd: None, dropout: 0.0, carried: false });
}
