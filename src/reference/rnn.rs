//! CPU reference of the recurrent stack, forward and backward, in f64:
//! every mode, stacked, bidirectional, variable lengths, inter-layer dropout.
//! The time loop, layers, directions and the affine maps are written here
//! once; each cell's step equations are its own reference functions
//! (`src/cells/<cell>.rs`).
//!
//! Written in the padded layout one row at a time (each row runs over its own
//! valid steps, the reverse direction from its own end), so it checks the
//! GPU's packed bookkeeping rather than sharing it.

use crate::cells::ReferenceStep;
use crate::rnn::spec::{dropout_keep, RnnMode, RnnSpec};

/// Weights of one (layer, direction), PyTorch shapes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// (G, In)
    pub w_ih: Vec<f64>,
    /// (G, S): S = P with a projection, else H.
    pub w_hh: Vec<f64>,
    /// (G)
    pub b_ih: Vec<f64>,
    /// (G)
    pub b_hh: Vec<f64>,
    /// (P, H) the projection `weight_hr`; empty without one.
    pub w_hr: Vec<f64>,
}

impl LayerWeights {
    /// All-zero weights shaped for (layer, dir) of `spec`.
    pub fn zeros(spec: &RnnSpec, layer: usize) -> Self {
        let g = spec.gate_size();
        Self {
            w_ih: vec![0.0; g * spec.layer_input_size(layer)],
            w_hh: vec![0.0; g * spec.state_size()],
            b_ih: vec![0.0; g],
            b_hh: vec![0.0; g],
            w_hr: vec![0.0; spec.proj_size * spec.hidden_size],
        }
    }
}

/// Inter-layer dropout: probability and seed (see [`dropout_keep`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutSpec {
    /// Probability of zeroing a unit.
    pub p: f32,
    /// Mask seed.
    pub seed: u64,
}

/// The inputs of one forward pass.
#[derive(Debug, Clone)]
pub struct RnnInputs<'a> {
    /// (B, T, I) batch-first; padded steps are ignored.
    pub input: &'a [f64],
    /// B lengths, each 1..=T.
    pub lengths: &'a [usize],
    /// T: padded sequence length.
    pub max_len: usize,
    /// (L·D, B, S) initial hidden state (S = P with a projection, else H).
    pub h0: &'a [f64],
    /// (L·D, B, H) initial cell state (LSTM only; ignored otherwise).
    pub c0: &'a [f64],
    /// Dropout on the input of layers ≥ 1 (training only).
    pub dropout: Option<DropoutSpec>,
}

/// What one step saves for backward: the cell's step, its inputs, and the
/// hidden-side pre-activations.
#[derive(Debug, Clone)]
struct StepCache {
    h_prev: Vec<f64>,
    c_prev: Vec<f64>,
    /// (G) W_hh h_{t-1} + b_hh.
    hh: Vec<f64>,
    /// The cell's step; `step.h` is h̃, before any projection.
    step: ReferenceStep,
    /// (S) h_t: W_hr·h̃ with a projection, else h̃.
    h: Vec<f64>,
}

#[derive(Debug, Clone)]
struct LayerTrace {
    /// (B, T, In) the layer's input after dropout.
    input: Vec<f64>,
    /// Per direction, per padded (b, t): the step cache (None at padding).
    steps: Vec<Vec<Option<StepCache>>>,
}

/// Forward results plus what backward needs.
#[derive(Debug, Clone)]
pub struct RnnTrace {
    /// (B, T, D·S); zero at padded steps.
    pub output: Vec<f64>,
    /// (L·D, B, H): state at each row's last valid step (for the reverse
    /// direction, after its step 0).
    pub h_n: Vec<f64>,
    /// (L·D, B, H) LSTM cell state; empty otherwise.
    pub c_n: Vec<f64>,
    layers: Vec<LayerTrace>,
    batch: usize,
    max_len: usize,
    lengths: Vec<usize>,
    dropout: Option<DropoutSpec>,
}

/// Gradients of a scalar loss with respect to every input of the forward.
#[derive(Debug, Clone)]
pub struct RnnGradients {
    /// (B, T, I); zero at padded steps.
    pub input: Vec<f64>,
    /// (L·D, B, H)
    pub h0: Vec<f64>,
    /// (L·D, B, H) (LSTM; zeros otherwise)
    pub c0: Vec<f64>,
    /// Per (layer, dir) in `layer·D + dir` order.
    pub weights: Vec<LayerWeights>,
}

/// `out[g] = b[g] + Σ_k w[g, k]·v[k]` for w (G, K).
fn affine(w: &[f64], b: &[f64], v: &[f64]) -> Vec<f64> {
    let k = v.len();
    b.iter().enumerate().map(|(g, &bg)| bg + (0..k).map(|kk| w[g * k + kk] * v[kk]).sum::<f64>()).collect()
}

/// One step of one row: the shared affine maps around the cell's own
/// reference forward.
fn step_forward(mode: RnnMode, w: &LayerWeights, x: &[f64], h_prev: &[f64], c_prev: &[f64]) -> StepCache {
    let xi = affine(&w.w_ih, &w.b_ih, x);
    let hh = affine(&w.w_hh, &w.b_hh, h_prev);
    let step = (mode.cell().reference_forward)(mode, &xi, &hh, h_prev, c_prev);
    let h = if w.w_hr.is_empty() {
        step.h.clone()
    } else {
        affine(&w.w_hr, &vec![0.0; w.w_hr.len() / step.h.len()], &step.h)
    };
    StepCache { h_prev: h_prev.to_vec(), c_prev: c_prev.to_vec(), hh, step, h }
}

#[allow(clippy::too_many_arguments)] // mirrors the step's inputs one to one
/// Backward of one step: the cell's own reference backward, then the shared
/// affine maps: accumulates weight gradients into `gw`, adds the input
/// gradient into `dx`; returns (dh_prev, dc_prev).
fn step_backward(
    mode: RnnMode,
    w: &LayerWeights,
    gw: &mut LayerWeights,
    x: &[f64],
    cache: &StepCache,
    dh: &[f64],
    dc_in: &[f64],
    dx: &mut [f64],
) -> (Vec<f64>, Vec<f64>) {
    let s = dh.len();
    // Through the projection h = W_hr·h̃ (P, H): dW_hr += dh ⊗ h̃, dh̃ = W_hrᵀ·dh.
    let dh_cell: Vec<f64> = if w.w_hr.is_empty() {
        dh.to_vec()
    } else {
        let units = cache.step.h.len();
        for p in 0..s {
            for j in 0..units {
                gw.w_hr[p * units + j] += dh[p] * cache.step.h[j];
            }
        }
        (0..units).map(|j| (0..s).map(|p| w.w_hr[p * units + j] * dh[p]).sum()).collect()
    };
    let d =
        (mode.cell().reference_backward)(mode, &cache.step, &cache.hh, &cache.h_prev, &cache.c_prev, &dh_cell, dc_in);
    // The cell's direct path to h_{t-1} (GRU's z⊙h), if any.
    let mut dh_prev = if d.h_prev.is_empty() { vec![0.0; s] } else { d.h_prev };
    let nin = x.len();
    for g in 0..d.input.len() {
        gw.b_ih[g] += d.input[g];
        gw.b_hh[g] += d.hidden[g];
        for k in 0..nin {
            gw.w_ih[g * nin + k] += d.input[g] * x[k];
            dx[k] += d.input[g] * w.w_ih[g * nin + k];
        }
        for k in 0..s {
            gw.w_hh[g * s + k] += d.hidden[g] * cache.h_prev[k];
            dh_prev[k] += d.hidden[g] * w.w_hh[g * s + k];
        }
    }
    (dh_prev, d.c_prev)
}

/// Multiplies the (B, T, F) input of layer `layer` by its dropout mask
/// scaled by 1/(1 − p), in place.
fn apply_dropout(v: &mut [f64], layer: usize, d: DropoutSpec) {
    let scale = 1.0 / (1.0 - f64::from(d.p));
    for (e, x) in v.iter_mut().enumerate() {
        *x = if dropout_keep(d.seed, layer as u32, e as u32, d.p) { *x * scale } else { 0.0 };
    }
}

/// Forward pass of the whole stack. `weights` is indexed `layer·D + dir`.
pub fn rnn_forward(spec: &RnnSpec, weights: &[LayerWeights], inputs: &RnnInputs<'_>) -> RnnTrace {
    // h has S features (P with a projection), the cell state H.
    let (h, sz, dirs, t_max) = (spec.hidden_size, spec.state_size(), spec.directions(), inputs.max_len);
    let batch = inputs.lengths.len();
    let mut layer_input = inputs.input.to_vec();
    let mut h_n = vec![0.0; spec.num_layers * dirs * batch * sz];
    let mut c_n = if spec.mode.has_cell_state() { vec![0.0; spec.num_layers * dirs * batch * h] } else { Vec::new() };
    let mut layers = Vec::new();
    let mut output = Vec::new();
    for layer in 0..spec.num_layers {
        let nin = spec.layer_input_size(layer);
        if layer > 0 {
            if let Some(d) = inputs.dropout {
                apply_dropout(&mut layer_input, layer, d);
            }
        }
        output = vec![0.0; batch * t_max * dirs * sz];
        let mut steps = Vec::new();
        for dir in 0..dirs {
            let w = &weights[layer * dirs + dir];
            let mut dir_steps = vec![None; batch * t_max];
            for b in 0..batch {
                let index = (layer * dirs + dir) * batch + b;
                let (hstate, cstate) = (index * sz, index * h);
                let mut hs = inputs.h0[hstate..hstate + sz].to_vec();
                let mut cs =
                    if spec.mode.has_cell_state() { inputs.c0[cstate..cstate + h].to_vec() } else { Vec::new() };
                let len = inputs.lengths[b];
                let order: Vec<usize> = if dir == 0 { (0..len).collect() } else { (0..len).rev().collect() };
                for t in order {
                    let x = &layer_input[(b * t_max + t) * nin..(b * t_max + t + 1) * nin];
                    let cache = step_forward(spec.mode, w, x, &hs, &cs);
                    cs = cache.step.c.clone();
                    let o = (b * t_max + t) * dirs * sz + dir * sz;
                    output[o..o + sz].copy_from_slice(&cache.h);
                    hs = cache.h.clone();
                    dir_steps[b * t_max + t] = Some(cache);
                }
                h_n[hstate..hstate + sz].copy_from_slice(&hs);
                if spec.mode.has_cell_state() {
                    c_n[cstate..cstate + h].copy_from_slice(&cs);
                }
            }
            steps.push(dir_steps);
        }
        layers.push(LayerTrace { input: layer_input, steps });
        layer_input = output.clone();
    }
    RnnTrace {
        output,
        h_n,
        c_n,
        layers,
        batch,
        max_len: t_max,
        lengths: inputs.lengths.to_vec(),
        dropout: inputs.dropout,
    }
}

/// Backward pass: gradients of `Σ output·grad_output + Σ h_n·grad_h_n
/// (+ Σ c_n·grad_c_n)`. `grad_output` at padded steps is ignored (the
/// output there is a constant zero).
pub fn rnn_backward(
    spec: &RnnSpec,
    weights: &[LayerWeights],
    trace: &RnnTrace,
    grad_output: &[f64],
    grad_h_n: &[f64],
    grad_c_n: &[f64],
) -> RnnGradients {
    let (h, sz, dirs) = (spec.hidden_size, spec.state_size(), spec.directions());
    let (t_max, batch) = (trace.max_len, trace.batch);
    let mut grads: Vec<LayerWeights> =
        (0..spec.num_layers * dirs).map(|i| LayerWeights::zeros(spec, i / dirs)).collect();
    let mut g_h0 = vec![0.0; spec.num_layers * dirs * batch * sz];
    let mut g_c0 = vec![0.0; spec.num_layers * dirs * batch * h];
    let mut d_out = grad_output.to_vec();
    for layer in (0..spec.num_layers).rev() {
        let nin = spec.layer_input_size(layer);
        let lt = &trace.layers[layer];
        let mut d_in = vec![0.0; batch * t_max * nin];
        for dir in 0..dirs {
            let idx = layer * dirs + dir;
            for b in 0..batch {
                let (hstate, cstate) = ((idx * batch + b) * sz, (idx * batch + b) * h);
                let mut dh_carry = grad_h_n[hstate..hstate + sz].to_vec();
                let mut dc_carry =
                    if spec.mode.has_cell_state() { grad_c_n[cstate..cstate + h].to_vec() } else { Vec::new() };
                let len = trace.lengths[b];
                // Reverse of the forward processing order.
                let order: Vec<usize> = if dir == 0 { (0..len).rev().collect() } else { (0..len).collect() };
                for t in order {
                    let cache = lt.steps[dir][b * t_max + t].as_ref().expect("valid step has a cache");
                    let o = (b * t_max + t) * dirs * sz + dir * sz;
                    let dh: Vec<f64> = (0..sz).map(|j| d_out[o + j] + dh_carry[j]).collect();
                    let x = &lt.input[(b * t_max + t) * nin..(b * t_max + t + 1) * nin];
                    let dx = &mut d_in[(b * t_max + t) * nin..(b * t_max + t + 1) * nin];
                    let (dhp, dcp) =
                        step_backward(spec.mode, &weights[idx], &mut grads[idx], x, cache, &dh, &dc_carry, dx);
                    dh_carry = dhp;
                    dc_carry = dcp;
                }
                g_h0[hstate..hstate + sz].copy_from_slice(&dh_carry);
                if spec.mode.has_cell_state() {
                    g_c0[cstate..cstate + h].copy_from_slice(&dc_carry);
                }
            }
        }
        if layer > 0 {
            if let Some(d) = trace.dropout {
                apply_dropout(&mut d_in, layer, d);
            }
        }
        d_out = d_in;
    }
    RnnGradients { input: d_out, h0: g_h0, c0: g_c0, weights: grads }
}
