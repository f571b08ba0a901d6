//! Finite-difference gradient checks (f64) of the CPU reference of the
//! recurrent stack: the reference is what the GPU is tested against, so its
//! backward pass must be right first.

#![allow(clippy::needless_range_loop)]

mod common;

use common::{assert_close, random};
use wgrnn::reference::rnn::{rnn_backward, rnn_forward, DropoutSpec, LayerWeights, RnnInputs};
use wgrnn::rnn::{RnnMode, RnnSpec};

/// Central differences with step 1e-5 in f64 have truncation error
/// O(step²·f''') ≈ 1e-10 and rounding error ≈ 1e-16/1e-5 = 1e-11 relative to
/// the loss's magnitude (≈ 1–10 here).
const FD_STEP: f64 = 1e-5;
/// Analytic against central-difference gradients, relative to max(1, |g|)
/// (the floor: both error terms above scale with the loss, not with the
/// gradient). Measured worst: 2.7e-10 (CPU only: the same on both backends)
/// over 170 comparisons, projections included; this bound is 11× that,
/// while any wrong term is order 1e-2 or larger.
const FD_TOL: f64 = 3e-9;

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

struct Problem {
    spec: RnnSpec,
    weights: Vec<LayerWeights>,
    input: Vec<f64>,
    lengths: Vec<usize>,
    max_len: usize,
    h0: Vec<f64>,
    c0: Vec<f64>,
    go: Vec<f64>,
    ghn: Vec<f64>,
    gcn: Vec<f64>,
    dropout: Option<DropoutSpec>,
}

impl Problem {
    fn new(mode: RnnMode, layers: usize, bidirectional: bool, dropout: Option<DropoutSpec>, proj_size: usize) -> Self {
        let spec = RnnSpec { mode, input_size: 3, hidden_size: 4, num_layers: layers, bidirectional, proj_size };
        let (b, t, d, h, s) = (3, 4, spec.directions(), spec.hidden_size, spec.state_size());
        let mut seed = 1;
        let mut rnd = |n: usize| {
            seed += 1;
            to64(&random(n, seed))
        };
        let weights = (0..layers * d)
            .map(|i| {
                let z = LayerWeights::zeros(&spec, i / d);
                LayerWeights {
                    w_ih: rnd(z.w_ih.len()),
                    w_hh: rnd(z.w_hh.len()),
                    b_ih: rnd(z.b_ih.len()),
                    b_hh: rnd(z.b_hh.len()),
                    w_hr: rnd(z.w_hr.len()),
                }
            })
            .collect();
        // h has S features (P with a projection), the cell state H.
        let (hstate, cstate) = (layers * d * b * s, layers * d * b * h);
        Problem {
            spec,
            weights,
            input: rnd(b * t * 3),
            lengths: vec![2, 4, 1],
            max_len: t,
            h0: rnd(hstate),
            c0: rnd(cstate),
            go: rnd(b * t * d * s),
            ghn: rnd(hstate),
            gcn: rnd(cstate),
            dropout,
        }
    }

    fn loss(&self) -> f64 {
        let inputs = RnnInputs {
            input: &self.input,
            lengths: &self.lengths,
            max_len: self.max_len,
            h0: &self.h0,
            c0: &self.c0,
            dropout: self.dropout,
        };
        let tr = rnn_forward(&self.spec, &self.weights, &inputs);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        dot(&tr.output, &self.go) + dot(&tr.h_n, &self.ghn) + dot(&tr.c_n, &self.gcn)
    }
}

/// Which value of a problem to perturb.
#[derive(Clone, Copy)]
enum Var {
    Input,
    H0,
    C0,
    /// (layer·D + dir, 0..5 = w_ih, w_hh, b_ih, b_hh, w_hr)
    Weight(usize, usize),
}

fn get(p: &mut Problem, v: Var) -> &mut Vec<f64> {
    match v {
        Var::Input => &mut p.input,
        Var::H0 => &mut p.h0,
        Var::C0 => &mut p.c0,
        Var::Weight(i, 0) => &mut p.weights[i].w_ih,
        Var::Weight(i, 1) => &mut p.weights[i].w_hh,
        Var::Weight(i, 2) => &mut p.weights[i].b_ih,
        Var::Weight(i, 3) => &mut p.weights[i].b_hh,
        Var::Weight(i, _) => &mut p.weights[i].w_hr,
    }
}

/// Compares an analytic gradient with central differences of `loss`
/// perturbing every element of `var`.
fn check(name: &str, p: &mut Problem, analytic: &[f64], var: Var) {
    let mut fd = vec![0.0; analytic.len()];
    for i in 0..analytic.len() {
        let orig = get(p, var)[i];
        get(p, var)[i] = orig + FD_STEP;
        let up = p.loss();
        get(p, var)[i] = orig - FD_STEP;
        let down = p.loss();
        get(p, var)[i] = orig;
        fd[i] = (up - down) / (2.0 * FD_STEP);
    }
    let scale: Vec<f64> = analytic.iter().map(|g| g.abs().max(1.0)).collect();
    assert_close(&format!("{name}: analytic vs finite difference"), analytic, &fd, &scale, FD_TOL);
}

fn gradcheck(mode: RnnMode, layers: usize, bidirectional: bool, dropout: Option<DropoutSpec>) {
    gradcheck_projected(mode, layers, bidirectional, dropout, 0);
}

fn gradcheck_projected(mode: RnnMode, layers: usize, bidirectional: bool, dropout: Option<DropoutSpec>, proj: usize) {
    let mut p = Problem::new(mode, layers, bidirectional, dropout, proj);
    let inputs = RnnInputs { input: &p.input, lengths: &p.lengths, max_len: p.max_len, h0: &p.h0, c0: &p.c0, dropout };
    let tr = rnn_forward(&p.spec, &p.weights, &inputs);
    let g = rnn_backward(&p.spec, &p.weights, &tr, &p.go, &p.ghn, &p.gcn);
    let tag = format!("{mode:?} L={layers} bidir={bidirectional} dropout={} proj={proj}", dropout.is_some());
    check(&format!("{tag} input"), &mut p, &g.input, Var::Input);
    check(&format!("{tag} h0"), &mut p, &g.h0, Var::H0);
    if mode.has_cell_state() {
        check(&format!("{tag} c0"), &mut p, &g.c0, Var::C0);
    }
    for (idx, gw) in g.weights.iter().enumerate() {
        let all = [("w_ih", &gw.w_ih), ("w_hh", &gw.w_hh), ("b_ih", &gw.b_ih), ("b_hh", &gw.b_hh), ("w_hr", &gw.w_hr)];
        for (which, (name, grad)) in all.into_iter().enumerate().filter(|(_, (_, g))| !g.is_empty()) {
            check(&format!("{tag} {name}[{idx}]"), &mut p, grad, Var::Weight(idx, which));
        }
    }
}

const MODES: [RnnMode; 4] = [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh, RnnMode::RnnRelu];

#[test]
fn reference_gradients_match_finite_differences_single_layer() {
    for mode in MODES {
        gradcheck(mode, 1, false, None);
    }
}

#[test]
fn reference_gradients_match_finite_differences_stacked_bidirectional() {
    for mode in MODES {
        gradcheck(mode, 2, true, None);
    }
}

#[test]
fn reference_gradients_match_finite_differences_with_dropout() {
    for mode in MODES {
        gradcheck(mode, 2, false, Some(DropoutSpec { p: 0.4, seed: 99 }));
    }
}

/// Padded steps produce zero output and take no part in h_n.
#[test]
fn reference_padding_is_inert() {
    let p = Problem::new(RnnMode::Lstm, 1, true, None, 0);
    let mut input2 = p.input.clone();
    // Overwrite the padded steps of row 0 (length 2) with garbage.
    for t in 2..4 {
        for f in 0..3 {
            input2[t * 3 + f] = 1e3;
        }
    }
    let run = |input: &[f64]| {
        let inputs = RnnInputs { input, lengths: &p.lengths, max_len: 4, h0: &p.h0, c0: &p.c0, dropout: None };
        rnn_forward(&p.spec, &p.weights, &inputs)
    };
    let (a, b) = (run(&p.input), run(&input2));
    assert_eq!(a.output, b.output);
    assert_eq!(a.h_n, b.h_n);
    let h = 4 * 2;
    assert!(a.output[2 * h..4 * h].iter().all(|&v| v == 0.0));
}

/// LSTM with projections (`torch.nn.LSTM(proj_size=P)`): h = W_hr·(o⊙tanh c)
/// with P = 3 < H = 4, stacked and bidirectional, with dropout; the
/// weight_hr gradient included.
#[test]
fn reference_gradients_match_finite_differences_with_projections() {
    gradcheck_projected(RnnMode::Lstm, 1, false, None, 3);
    gradcheck_projected(RnnMode::Lstm, 2, true, Some(DropoutSpec { p: 0.3, seed: 5 }), 2);
}

/// proj_size is LSTM-only and smaller than H, as PyTorch requires.
#[test]
fn projection_sizes_are_checked() {
    let spec = |mode, proj_size| RnnSpec {
        mode,
        input_size: 3,
        hidden_size: 4,
        num_layers: 1,
        bidirectional: false,
        proj_size,
    };
    assert!(spec(RnnMode::Lstm, 3).validate().is_ok());
    let err = spec(RnnMode::Lstm, 4).validate().unwrap_err().to_string();
    assert!(err.contains("must be smaller than hidden_size"), "{err}");
    let err = spec(RnnMode::Gru, 2).validate().unwrap_err().to_string();
    assert!(err.contains("only for LSTM"), "{err}");
    let shapes = spec(RnnMode::Lstm, 3).parameter_shapes(0, 0);
    assert_eq!(shapes[1], ("weight_hh_l0".to_string(), vec![16, 3]));
    assert_eq!(shapes[4], ("weight_hr_l0".to_string(), vec![3, 4]));
}
