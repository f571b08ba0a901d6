//! CPU reference of the recurrent stack, forward and backward, in f64:
//! every mode, stacked, bidirectional, variable lengths, inter-layer dropout.
//!
//! Written in the padded layout one row at a time (each row runs over its own
//! valid steps, the reverse direction from its own end), so it checks the
//! GPU's packed bookkeeping rather than sharing it.

use crate::rnn::spec::{dropout_keep, RnnMode, RnnSpec};

/// Weights of one (layer, direction), PyTorch shapes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// (G, In)
    pub w_ih: Vec<f64>,
    /// (G, H)
    pub w_hh: Vec<f64>,
    /// (G)
    pub b_ih: Vec<f64>,
    /// (G)
    pub b_hh: Vec<f64>,
}

impl LayerWeights {
    /// All-zero weights shaped for (layer, dir) of `spec`.
    pub fn zeros(spec: &RnnSpec, layer: usize) -> Self {
        let g = spec.gate_size();
        Self {
            w_ih: vec![0.0; g * spec.layer_input_size(layer)],
            w_hh: vec![0.0; g * spec.hidden_size],
            b_ih: vec![0.0; g],
            b_hh: vec![0.0; g],
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
    /// (L·D, B, H) initial hidden state.
    pub h0: &'a [f64],
    /// (L·D, B, H) initial cell state (LSTM only; ignored otherwise).
    pub c0: &'a [f64],
    /// Dropout on the input of layers ≥ 1 (training only).
    pub dropout: Option<DropoutSpec>,
}

/// What one cell step saves for backward.
#[derive(Debug, Clone)]
struct StepCache {
    h_prev: Vec<f64>,
    c_prev: Vec<f64>,
    /// Post-activation gates (G): LSTM i,f,g,o; GRU r,z,n; RNN h'.
    gates: Vec<f64>,
    /// LSTM: c'.
    c: Vec<f64>,
    /// GRU: W_hn h + b_hn.
    hn_lin: Vec<f64>,
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
    /// (B, T, D·H); zero at padded steps.
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

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `out[g] = b[g] + Σ_k w[g, k]·v[k]` for w (G, K).
fn affine(w: &[f64], b: &[f64], v: &[f64]) -> Vec<f64> {
    let k = v.len();
    b.iter().enumerate().map(|(g, &bg)| bg + (0..k).map(|kk| w[g * k + kk] * v[kk]).sum::<f64>()).collect()
}

fn cell_forward(mode: RnnMode, w: &LayerWeights, x: &[f64], h_prev: &[f64], c_prev: &[f64]) -> (Vec<f64>, StepCache) {
    let h = h_prev.len();
    let xi = affine(&w.w_ih, &w.b_ih, x);
    let hh = affine(&w.w_hh, &w.b_hh, h_prev);
    let mut cache = StepCache {
        h_prev: h_prev.to_vec(),
        c_prev: c_prev.to_vec(),
        gates: vec![0.0; xi.len()],
        c: Vec::new(),
        hn_lin: Vec::new(),
    };
    let h_new: Vec<f64> = match mode {
        RnnMode::Lstm => {
            let pre: Vec<f64> = xi.iter().zip(&hh).map(|(a, b)| a + b).collect();
            let mut c = vec![0.0; h];
            let mut out = vec![0.0; h];
            for j in 0..h {
                let (i, f, g, o) =
                    (sigmoid(pre[j]), sigmoid(pre[h + j]), pre[2 * h + j].tanh(), sigmoid(pre[3 * h + j]));
                cache.gates[j] = i;
                cache.gates[h + j] = f;
                cache.gates[2 * h + j] = g;
                cache.gates[3 * h + j] = o;
                c[j] = f * c_prev[j] + i * g;
                out[j] = o * c[j].tanh();
            }
            cache.c = c;
            out
        }
        RnnMode::Gru => {
            let mut out = vec![0.0; h];
            cache.hn_lin = hh[2 * h..].to_vec();
            for j in 0..h {
                let r = sigmoid(xi[j] + hh[j]);
                let z = sigmoid(xi[h + j] + hh[h + j]);
                let n = (xi[2 * h + j] + r * hh[2 * h + j]).tanh();
                cache.gates[j] = r;
                cache.gates[h + j] = z;
                cache.gates[2 * h + j] = n;
                out[j] = (1.0 - z) * n + z * h_prev[j];
            }
            out
        }
        RnnMode::RnnTanh | RnnMode::RnnRelu => {
            let out: Vec<f64> = xi
                .iter()
                .zip(&hh)
                .map(|(a, b)| if mode == RnnMode::RnnTanh { (a + b).tanh() } else { (a + b).max(0.0) })
                .collect();
            cache.gates.copy_from_slice(&out);
            out
        }
    };
    (h_new, cache)
}

#[allow(clippy::too_many_arguments)] // mirrors the cell's inputs one to one
/// Backward of one step: accumulates weight gradients into `gw`, adds the
/// input gradient into `dx`; returns (dh_prev, dc_prev).
fn cell_backward(
    mode: RnnMode,
    w: &LayerWeights,
    gw: &mut LayerWeights,
    x: &[f64],
    cache: &StepCache,
    dh: &[f64],
    dc_in: &[f64],
    dx: &mut [f64],
) -> (Vec<f64>, Vec<f64>) {
    let h = dh.len();
    let g_size = cache.gates.len();
    // Gradients of the x-side and h-side pre-activations (they differ only
    // for GRU's n gate).
    let mut dgx = vec![0.0; g_size];
    let mut dgh = vec![0.0; g_size];
    let mut dh_prev = vec![0.0; h];
    let mut dc_prev = vec![0.0; h];
    match mode {
        RnnMode::Lstm => {
            for j in 0..h {
                let (i, f, g, o) = (cache.gates[j], cache.gates[h + j], cache.gates[2 * h + j], cache.gates[3 * h + j]);
                let tc = cache.c[j].tanh();
                let d_o = dh[j] * tc;
                let dc = dh[j] * o * (1.0 - tc * tc) + dc_in[j];
                dgx[j] = dc * g * i * (1.0 - i);
                dgx[h + j] = dc * cache.c_prev[j] * f * (1.0 - f);
                dgx[2 * h + j] = dc * i * (1.0 - g * g);
                dgx[3 * h + j] = d_o * o * (1.0 - o);
                dc_prev[j] = dc * f;
            }
            dgh.copy_from_slice(&dgx);
        }
        RnnMode::Gru => {
            for j in 0..h {
                let (r, z, n) = (cache.gates[j], cache.gates[h + j], cache.gates[2 * h + j]);
                let dn = dh[j] * (1.0 - z);
                let dz = dh[j] * (cache.h_prev[j] - n);
                dh_prev[j] = dh[j] * z;
                let dpre_n = dn * (1.0 - n * n);
                let dr = dpre_n * cache.hn_lin[j];
                dgx[j] = dr * r * (1.0 - r);
                dgx[h + j] = dz * z * (1.0 - z);
                dgx[2 * h + j] = dpre_n;
                dgh[j] = dgx[j];
                dgh[h + j] = dgx[h + j];
                dgh[2 * h + j] = dpre_n * r;
            }
        }
        RnnMode::RnnTanh | RnnMode::RnnRelu => {
            for j in 0..h {
                let out = cache.gates[j];
                let deriv = if mode == RnnMode::RnnTanh {
                    1.0 - out * out
                } else if out > 0.0 {
                    1.0
                } else {
                    0.0
                };
                dgx[j] = dh[j] * deriv;
            }
            dgh.copy_from_slice(&dgx);
        }
    }
    let nin = x.len();
    for g in 0..g_size {
        gw.b_ih[g] += dgx[g];
        gw.b_hh[g] += dgh[g];
        for k in 0..nin {
            gw.w_ih[g * nin + k] += dgx[g] * x[k];
            dx[k] += dgx[g] * w.w_ih[g * nin + k];
        }
        for k in 0..h {
            gw.w_hh[g * h + k] += dgh[g] * cache.h_prev[k];
            dh_prev[k] += dgh[g] * w.w_hh[g * h + k];
        }
    }
    (dh_prev, dc_prev)
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
    let (h, dirs, t_max) = (spec.hidden_size, spec.directions(), inputs.max_len);
    let batch = inputs.lengths.len();
    let mut layer_input = inputs.input.to_vec();
    let mut h_n = vec![0.0; spec.num_layers * dirs * batch * h];
    let mut c_n = if spec.mode.has_cell_state() { h_n.clone() } else { Vec::new() };
    let mut layers = Vec::new();
    let mut output = Vec::new();
    for layer in 0..spec.num_layers {
        let nin = spec.layer_input_size(layer);
        if layer > 0 {
            if let Some(d) = inputs.dropout {
                apply_dropout(&mut layer_input, layer, d);
            }
        }
        output = vec![0.0; batch * t_max * dirs * h];
        let mut steps = Vec::new();
        for dir in 0..dirs {
            let w = &weights[layer * dirs + dir];
            let mut dir_steps = vec![None; batch * t_max];
            for b in 0..batch {
                let state = ((layer * dirs + dir) * batch + b) * h;
                let mut hs = inputs.h0[state..state + h].to_vec();
                let mut cs =
                    if spec.mode.has_cell_state() { inputs.c0[state..state + h].to_vec() } else { vec![0.0; h] };
                let len = inputs.lengths[b];
                let order: Vec<usize> = if dir == 0 { (0..len).collect() } else { (0..len).rev().collect() };
                for t in order {
                    let x = &layer_input[(b * t_max + t) * nin..(b * t_max + t + 1) * nin];
                    let (h_new, cache) = cell_forward(spec.mode, w, x, &hs, &cs);
                    if spec.mode.has_cell_state() {
                        cs = cache.c.clone();
                    }
                    let o = (b * t_max + t) * dirs * h + dir * h;
                    output[o..o + h].copy_from_slice(&h_new);
                    hs = h_new;
                    dir_steps[b * t_max + t] = Some(cache);
                }
                h_n[state..state + h].copy_from_slice(&hs);
                if spec.mode.has_cell_state() {
                    c_n[state..state + h].copy_from_slice(&cs);
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
    let (h, dirs, t_max, batch) = (spec.hidden_size, spec.directions(), trace.max_len, trace.batch);
    let mut grads: Vec<LayerWeights> =
        (0..spec.num_layers * dirs).map(|i| LayerWeights::zeros(spec, i / dirs)).collect();
    let mut g_h0 = vec![0.0; spec.num_layers * dirs * batch * h];
    let mut g_c0 = g_h0.clone();
    let mut d_out = grad_output.to_vec();
    for layer in (0..spec.num_layers).rev() {
        let nin = spec.layer_input_size(layer);
        let lt = &trace.layers[layer];
        let mut d_in = vec![0.0; batch * t_max * nin];
        for dir in 0..dirs {
            let idx = layer * dirs + dir;
            for b in 0..batch {
                let state = (idx * batch + b) * h;
                let mut dh_carry = grad_h_n[state..state + h].to_vec();
                let mut dc_carry =
                    if spec.mode.has_cell_state() { grad_c_n[state..state + h].to_vec() } else { vec![0.0; h] };
                let len = trace.lengths[b];
                // Reverse of the forward processing order.
                let order: Vec<usize> = if dir == 0 { (0..len).rev().collect() } else { (0..len).collect() };
                for t in order {
                    let cache = lt.steps[dir][b * t_max + t].as_ref().expect("valid step has a cache");
                    let o = (b * t_max + t) * dirs * h + dir * h;
                    let dh: Vec<f64> = (0..h).map(|j| d_out[o + j] + dh_carry[j]).collect();
                    let x = &lt.input[(b * t_max + t) * nin..(b * t_max + t + 1) * nin];
                    let dx = &mut d_in[(b * t_max + t) * nin..(b * t_max + t + 1) * nin];
                    let (dhp, dcp) =
                        cell_backward(spec.mode, &weights[idx], &mut grads[idx], x, cache, &dh, &dc_carry, dx);
                    dh_carry = dhp;
                    dc_carry = dcp;
                }
                g_h0[state..state + h].copy_from_slice(&dh_carry);
                if spec.mode.has_cell_state() {
                    g_c0[state..state + h].copy_from_slice(&dc_carry);
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
