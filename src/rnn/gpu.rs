//! GPU launchers of the recurrent stack. Per layer and direction:
//! forward = one GEMM (input projection of every packed row, b_ih fused) +
//! one fused step kernel per time step; backward = one fused step kernel per
//! time step + one initial-state kernel + three GEMMs (dW_ih, dW_hh, dX) and
//! two column sums (biases). Everything is recorded into the device's open
//! command buffer; nothing is read back.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel, Shader};
use crate::ops::{gemm, sum_cols, GemmOptions};
use crate::rnn::layer::{Rnn, RnnParams};
use crate::rnn::packed::PackedBatch;
use crate::rnn::spec::RnnMode;
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup along H (the shaders' `WG` override).
const WG: u32 = 64;
/// Storage buffers the largest recurrent kernel binds (lstm_step_forward).
const STORAGE_BUFFERS_NEEDED: u32 = 12;

/// Rows per invocation of the tiled step kernels (their `ROWS`).
pub(crate) const ROWS: u32 = 8;
/// Hidden units per invocation of the tiled kernels that share h/dG loads (their `UNITS`).
pub(crate) const UNITS: u32 = 4;

crate::kernels::shader_params! {
    /// Mirrors `StepParams` in shaders/recurrent.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct StepParams mirrors "StepParams" in Lstm {
        t: u32,
        reverse: u32,
        hidden: u32,
        batch: u32,
        steps: u32,
        out_stride: u32,
        out_offset: u32,
        state_index: u32,
    }
}

use Access::{Read as R, ReadWrite as W};

const LSTM_STEP_FORWARD: Kernel = Kernel {
    shader: Shader::Lstm,
    entry: "lstm_step_forward",
    storage: &[(1, R), (2, R), (3, R), (4, R), (5, W), (6, W), (7, W), (8, W), (9, W), (10, W), (11, W), (12, W)],
};
const LSTM_STEP_BACKWARD: Kernel = Kernel {
    shader: Shader::LstmBackward,
    entry: "lstm_step_backward",
    storage: &[(1, R), (2, R), (3, R), (4, R), (5, R), (6, R), (7, R), (8, R), (9, W), (10, W), (13, W)],
};
/// `lstm_step_forward` reading vec4s; for H % 4 == 0.
const LSTM_STEP_FORWARD_VEC4: Kernel =
    Kernel { shader: Shader::LstmVec4, entry: "lstm_step_forward_vec4", storage: LSTM_STEP_FORWARD.storage };
/// `lstm_step_backward` reading vec4s; for H % 4 == 0.
const LSTM_STEP_BACKWARD_VEC4: Kernel =
    Kernel { shader: Shader::LstmBackwardVec4, entry: "lstm_step_backward_vec4", storage: LSTM_STEP_BACKWARD.storage };
const LSTM_GRAD_INITIAL_STATE: Kernel = Kernel {
    shader: Shader::LstmBackward,
    entry: "lstm_grad_initial_state",
    storage: &[(1, R), (2, R), (9, W), (10, W), (11, W), (12, W)],
};
const GRU_STEP_FORWARD: Kernel = Kernel {
    shader: Shader::Gru,
    entry: "gru_step_forward",
    storage: &[(1, R), (2, R), (3, R), (4, R), (5, W), (6, W), (7, W), (8, W), (9, W), (10, W)],
};
const GRU_STEP_BACKWARD: Kernel = Kernel {
    shader: Shader::GruBackward,
    entry: "gru_step_backward",
    storage: &[(1, R), (2, R), (3, R), (4, R), (5, R), (6, R), (7, R), (8, R), (9, W), (10, W), (11, W), (13, W)],
};
const GRU_GRAD_INITIAL_STATE: Kernel = Kernel {
    shader: Shader::GruBackward,
    entry: "gru_grad_initial_state",
    storage: &[(1, R), (2, R), (10, W), (11, W), (12, W)],
};
const RNN_STEP_FORWARD: Kernel = Kernel {
    shader: Shader::Rnn,
    entry: "rnn_step_forward",
    storage: &[(1, R), (2, R), (3, R), (4, R), (5, W), (6, W), (7, W), (8, W), (9, W)],
};
const RNN_STEP_BACKWARD: Kernel = Kernel {
    shader: Shader::RnnBackward,
    entry: "rnn_step_backward",
    storage: &[(1, R), (2, R), (3, R), (4, R), (5, R), (6, R), (7, W), (9, W)],
};
const RNN_GRAD_INITIAL_STATE: Kernel =
    Kernel { shader: Shader::RnnBackward, entry: "rnn_grad_initial_state", storage: &[(1, R), (2, R), (7, W), (8, W)] };

/// What a packed forward pass returns and saves for backward.
#[derive(Debug, Clone)]
pub struct PackedForward {
    /// The layer that ran it (backward checks it is given the same).
    spec: crate::rnn::RnnSpec,
    /// The packed batch layout.
    pub batch: PackedBatch,
    /// (N, D·H) output of the last layer, packed.
    pub output: Tensor,
    /// (L·D, B, H)
    pub h_n: Tensor,
    /// (L·D, B, H) for LSTM.
    pub c_n: Option<Tensor>,
    c0: Option<Tensor>,
    layers: Vec<LayerSaved>,
    dropout: Option<(f32, u64)>,
}

#[derive(Debug, Clone)]
struct LayerSaved {
    /// (N, In): the layer's input after dropout.
    input: Tensor,
    dirs: Vec<DirSaved>,
}

#[derive(Debug, Clone)]
struct DirSaved {
    /// (N, G) gate activations.
    gates: Tensor,
    /// (N, H): LSTM cell state or GRU's W_hn h + b_hn.
    aux: Option<Tensor>,
    /// (N, H) h_{t-1} per packed row.
    h_prev: Tensor,
}

/// Checks the device can bind what the recurrent kernels need.
pub(crate) fn check_device(device: &Device) -> Result<()> {
    let have = device.info().max_storage_buffers_per_shader_stage;
    if have < STORAGE_BUFFERS_NEEDED {
        return Err(Error::Config(format!(
            "the recurrent kernels bind {STORAGE_BUFFERS_NEEDED} storage buffers, adapter {} allows {have}",
            device.info().name
        )));
    }
    Ok(())
}

fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    crate::ops::dim_u32(op, "size", v)
}

/// Validates an optional (L·D, B, H) state tensor, or makes zeros.
fn state_or_zeros(
    op: &'static str,
    name: &str,
    t: Option<&Tensor>,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor> {
    match t {
        Some(t) if t.shape() == shape && t.dtype() == DType::F32 => Ok(t.clone()),
        Some(t) => Err(Error::Shape {
            op,
            message: format!("{name} must be an f32 tensor of shape {shape:?}, got {:?}", t.shape()),
        }),
        None => Tensor::zeros(device, shape),
    }
}

/// [`state_or_zeros`] for a cell-state tensor: present (given or zeros) for
/// LSTM, absent otherwise, and an error if given to another mode.
fn cell_state_or_zeros(
    op: &'static str,
    name: &str,
    mode: RnnMode,
    t: Option<&Tensor>,
    shape: &[usize],
    device: &Device,
) -> Result<Option<Tensor>> {
    match (mode.has_cell_state(), t) {
        (true, t) => state_or_zeros(op, name, t, shape, device).map(Some),
        (false, None) => Ok(None),
        (false, Some(_)) => {
            Err(Error::Shape { op, message: format!("{name} is only for LSTM, this is {}", mode.name()) })
        }
    }
}

/// The mode's `RELU` override, for the RNN kernels.
fn mode_constants(mode: RnnMode) -> Vec<(&'static str, f64)> {
    let mut c = vec![("WG", f64::from(WG))];
    if matches!(mode, RnnMode::RnnTanh | RnnMode::RnnRelu) {
        c.push(("RELU", f64::from(u8::from(mode == RnnMode::RnnRelu))));
    }
    c
}

/// Step `k` of the processing order of direction `dir` over `steps` steps.
fn step_time(dir: usize, k: usize, steps: usize, backward: bool) -> usize {
    // Forward direction runs t ascending; reverse descending; backward
    // passes run each direction in the opposite order.
    if (dir == 1) != backward {
        steps - 1 - k
    } else {
        k
    }
}

pub(crate) fn forward(
    rnn: &Rnn,
    x: &Tensor,
    batch: &PackedBatch,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    dropout: Option<(f32, u64)>,
) -> Result<PackedForward> {
    const OP: &str = "Rnn::forward";
    let spec = *rnn.spec();
    let dev = x.device();
    let (n, b, h, dirs) = (batch.total(), batch.batch(), spec.hidden_size, spec.directions());
    if x.shape() != [n, spec.input_size] || x.dtype() != DType::F32 {
        return Err(Error::Shape {
            op: OP,
            message: format!("packed input must be f32 ({n}, {}), got {:?}", spec.input_size, x.shape()),
        });
    }
    let state_shape = [spec.num_layers * dirs, b, h];
    let h0 = state_or_zeros(OP, "h0", h0, &state_shape, dev)?;
    let c0 = cell_state_or_zeros(OP, "c0", spec.mode, c0, &state_shape, dev)?;
    let h_n = Tensor::uninit(dev, &state_shape, DType::F32)?;
    let c_n = c0.as_ref().map(|_| Tensor::uninit(dev, &state_shape, DType::F32)).transpose()?;
    let steps = batch.longest();
    let g = spec.gate_size();
    let constants = mode_constants(spec.mode);
    let rt = &dev.rt;

    let mut layer_input = x.clone();
    let mut layers = Vec::with_capacity(spec.num_layers);
    for layer in 0..spec.num_layers {
        if let (true, Some((p, seed))) = (layer > 0, dropout) {
            layer_input = crate::ops::dropout_packed(&layer_input, &batch.pack_index, layer, p, seed)?;
        }
        let out = Tensor::uninit(dev, &[n, dirs * h], DType::F32)?;
        let mut saved = Vec::with_capacity(dirs);
        for dir in 0..dirs {
            let params = &rnn.params()[layer * dirs + dir];
            let gates = Tensor::uninit(dev, &[n, g], DType::F32)?;
            let proj = GemmOptions { trans_b: true, ..GemmOptions::default() };
            gemm(&layer_input, &params.weight_ih, Some(&params.bias_ih), &gates, proj)?;
            let aux = match spec.mode {
                RnnMode::Lstm | RnnMode::Gru => Some(Tensor::uninit(dev, &[n, h], DType::F32)?),
                _ => None,
            };
            let h_prev = Tensor::uninit(dev, &[n, h], DType::F32)?;
            // Dense (B, H) states in sorted row order: h double-buffered
            // (both start as h0), then c (LSTM).
            let state_index = layer * dirs + dir;
            let h_a = sorted_state(batch, &h0, state_index)?;
            let h_b = Tensor::uninit(dev, h_a.shape(), DType::F32)?;
            crate::ops::elementwise_copy(&h_a, &h_b)?;
            let cell_state = c0.as_ref().map(|c| sorted_state(batch, c, state_index)).transpose()?;
            let (w_hh, b_hh, info) = (params.weight_hh.buffer(), params.bias_hh.buffer(), batch.info.buffer());
            for k in 0..steps {
                let t = step_time(dir, k, steps, false);
                let sp = step_params(batch, &spec, layer, dir, t)?;
                let tiles = u32_of(OP, batch.batch_sizes()[t])?.div_ceil(ROWS);
                let (s_in, s_out) =
                    if k % 2 == 0 { (h_a.buffer(), h_b.buffer()) } else { (h_b.buffer(), h_a.buffer()) };
                let (gates, out, h_prev, h_n) = (gates.buffer(), out.buffer(), h_prev.buffer(), h_n.buffer());
                match spec.mode {
                    RnnMode::Lstm => {
                        let (cs, cell, c_n) = (opt_ref(&cell_state), aux_ref(&aux), opt_ref(&c_n));
                        let bufs = [info, w_hh, b_hh, s_in, cs, gates, out, cell, h_prev, h_n, c_n, s_out];
                        let kernel = if h % 4 == 0 { LSTM_STEP_FORWARD_VEC4 } else { LSTM_STEP_FORWARD };
                        rt.launch(kernel, &constants, &sp, &bufs, [sp.hidden.div_ceil(WG), tiles, 1])?;
                    }
                    RnnMode::Gru => {
                        let bufs = [info, w_hh, b_hh, s_in, gates, out, aux_ref(&aux), h_prev, h_n, s_out];
                        rt.launch(GRU_STEP_FORWARD, &constants, &sp, &bufs, [sp.hidden.div_ceil(WG), tiles, 1])?;
                    }
                    RnnMode::RnnTanh | RnnMode::RnnRelu => {
                        let bufs = [info, w_hh, b_hh, s_in, gates, out, h_prev, h_n, s_out];
                        rt.launch(RNN_STEP_FORWARD, &constants, &sp, &bufs, [sp_units(h, OP)?, tiles, 1])?;
                    }
                }
            }
            saved.push(DirSaved { gates, aux, h_prev });
        }
        layers.push(LayerSaved { input: layer_input, dirs: saved });
        layer_input = out;
    }
    Ok(PackedForward { spec, batch: batch.clone(), output: layer_input, h_n, c_n, c0, layers, dropout })
}

/// Rows of `state_index` of an (L·D, B, H) state, in sorted row order: (B, H).
fn sorted_state(batch: &PackedBatch, state: &Tensor, state_index: usize) -> Result<Tensor> {
    let &[states, b, h] = state.shape() else { unreachable!("state tensors are validated (L·D, B, H)") };
    let idx: Vec<u32> = batch.sorted_rows().iter().map(|&r| (state_index * b + r) as u32).collect();
    let idx = Tensor::from_u32(state.device(), &idx, &[b])?;
    crate::ops::gather_rows(&state.reshape(&[states * b, h])?, &idx)
}

/// Workgroups along H for kernels whose invocations own `UNITS` units.
fn sp_units(h: usize, op: &'static str) -> Result<u32> {
    Ok(u32_of(op, h)?.div_ceil(UNITS).div_ceil(WG))
}

fn opt_tensor(t: &Option<Tensor>) -> &Tensor {
    t.as_ref().expect("LSTM has cell states")
}

fn aux_ref(t: &Option<Tensor>) -> &wgpu::Buffer {
    t.as_ref().expect("LSTM/GRU save an auxiliary tensor").buffer()
}

fn opt_ref(t: &Option<Tensor>) -> &wgpu::Buffer {
    t.as_ref().expect("LSTM has cell states").buffer()
}

fn step_params(
    batch: &PackedBatch,
    spec: &crate::rnn::RnnSpec,
    layer: usize,
    dir: usize,
    t: usize,
) -> Result<StepParams> {
    const OP: &str = "recurrent step";
    let (h, dirs) = (spec.hidden_size, spec.directions());
    Ok(StepParams {
        t: u32_of(OP, t)?,
        reverse: u32_of(OP, dir)?,
        hidden: u32_of(OP, h)?,
        batch: u32_of(OP, batch.batch())?,
        steps: u32_of(OP, batch.max_len())?,
        out_stride: u32_of(OP, dirs * h)?,
        out_offset: u32_of(OP, dir * h)?,
        state_index: u32_of(OP, layer * dirs + dir)?,
    })
}

/// Backward pass. Parameter gradients go into `param_grads` (one set per
/// (layer, dir), parameter shapes): added to what is there when
/// `accumulate`, else overwriting it. Returns the gradients of the packed
/// input, h0 and c0.
pub(crate) fn backward(
    rnn: &Rnn,
    fwd: &PackedForward,
    grad_output: &Tensor,
    grad_h_n: Option<&Tensor>,
    grad_c_n: Option<&Tensor>,
    param_grads: &[RnnParams],
    accumulate: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    const OP: &str = "Rnn::backward";
    let spec = *rnn.spec();
    if fwd.spec != spec {
        return Err(Error::Shape {
            op: OP,
            message: format!("the forward pass was run by a different layer ({:?}, this is {:?})", fwd.spec, spec),
        });
    }
    let batch = &fwd.batch;
    let dev = grad_output.device();
    let (n, b, h, dirs, g) = (batch.total(), batch.batch(), spec.hidden_size, spec.directions(), spec.gate_size());
    if grad_output.shape() != [n, dirs * h] {
        return Err(Error::Shape {
            op: OP,
            message: format!("packed grad_output must be ({n}, {}), got {:?}", dirs * h, grad_output.shape()),
        });
    }
    let state_shape = [spec.num_layers * dirs, b, h];
    let grad_h_n = state_or_zeros(OP, "grad_h_n", grad_h_n, &state_shape, dev)?;
    let grad_c_n = cell_state_or_zeros(OP, "grad_c_n", spec.mode, grad_c_n, &state_shape, dev)?;
    let grad_h0 = Tensor::uninit(dev, &state_shape, DType::F32)?;
    let grad_c0 = fwd.c0.as_ref().map(|_| Tensor::uninit(dev, &state_shape, DType::F32)).transpose()?;
    let steps = batch.longest();
    let constants = mode_constants(spec.mode);
    let rt = &dev.rt;

    if param_grads.len() != spec.num_layers * dirs {
        return Err(Error::Shape {
            op: OP,
            message: format!(
                "{} gradient sets for {} (layer, direction) pairs",
                param_grads.len(),
                spec.num_layers * dirs
            ),
        });
    }
    let beta_acc = if accumulate { 1.0 } else { 0.0 };
    let mut d_out = grad_output.clone();
    for layer in (0..spec.num_layers).rev() {
        let saved = &fwd.layers[layer];
        let in_size = spec.layer_input_size(layer);
        let d_in = Tensor::uninit(dev, &[n, in_size], DType::F32)?;
        for dir in 0..dirs {
            let idx = layer * dirs + dir;
            let params = &rnn.params()[idx];
            let s = &saved.dirs[dir];
            let dgx = Tensor::uninit(dev, &[n, g], DType::F32)?;
            let dgh = if spec.mode == RnnMode::Gru { Some(Tensor::uninit(dev, &[n, g], DType::F32)?) } else { None };
            let (info, w_hh) = (batch.info.buffer(), params.weight_hh.buffer());
            // Dense state in sorted row order: the recurrent gradient (dG,
            // or dGh for GRU) double-buffered from zero, and the carried
            // elementwise gradient (LSTM dc from grad_c_n, GRU dh⊙z from 0).
            let state_index = layer * dirs + dir;
            let dg_a = Tensor::zeros(dev, &[b, g])?;
            let dg_b = Tensor::zeros(dev, &[b, g])?;
            let carry = match spec.mode {
                RnnMode::Lstm => Some(sorted_state(batch, opt_tensor(&grad_c_n), state_index)?),
                RnnMode::Gru => Some(Tensor::zeros(dev, &[b, h])?),
                RnnMode::RnnTanh | RnnMode::RnnRelu => None,
            };
            let unit_groups = sp_units(h, OP)?;
            for k in 0..steps {
                let t = step_time(dir, k, steps, true);
                let sp = step_params(batch, &spec, layer, dir, t)?;
                let tiles = [unit_groups, u32_of(OP, batch.batch_sizes()[t])?.div_ceil(ROWS), 1];
                let (dg_in, dg_out) =
                    if k % 2 == 0 { (dg_a.buffer(), dg_b.buffer()) } else { (dg_b.buffer(), dg_a.buffer()) };
                let (gates, d_out, g_h_n) = (s.gates.buffer(), d_out.buffer(), grad_h_n.buffer());
                match spec.mode {
                    RnnMode::Lstm => {
                        let (cell, c0, carry) = (aux_ref(&s.aux), opt_ref(&fwd.c0), opt_ref(&carry));
                        let bufs = [info, w_hh, gates, cell, c0, d_out, g_h_n, dg_in, dgx.buffer(), carry, dg_out];
                        let kernel = if h % 4 == 0 { LSTM_STEP_BACKWARD_VEC4 } else { LSTM_STEP_BACKWARD };
                        rt.launch(kernel, &constants, &sp, &bufs, tiles)?;
                    }
                    RnnMode::Gru => {
                        let (hn_lin, h_prev) = (aux_ref(&s.aux), s.h_prev.buffer());
                        let bufs = [
                            info,
                            w_hh,
                            gates,
                            hn_lin,
                            h_prev,
                            d_out,
                            g_h_n,
                            dg_in,
                            dgx.buffer(),
                            aux_ref(&dgh),
                            opt_ref(&carry),
                            dg_out,
                        ];
                        rt.launch(GRU_STEP_BACKWARD, &constants, &sp, &bufs, tiles)?;
                    }
                    RnnMode::RnnTanh | RnnMode::RnnRelu => {
                        let bufs = [info, w_hh, gates, d_out, g_h_n, dg_in, dgx.buffer(), dg_out];
                        rt.launch(RNN_STEP_BACKWARD, &constants, &sp, &bufs, tiles)?;
                    }
                }
            }
            // Initial-state gradient: every row, at its first step.
            let sp = step_params(batch, &spec, layer, dir, 0)?;
            // One workgroup row per batch row, over y then z (≤ 65535 each).
            let groups = [sp.hidden.div_ceil(WG), sp.batch.min(65_535), sp.batch.div_ceil(65_535)];
            match spec.mode {
                RnnMode::Lstm => {
                    let bufs = [info, w_hh, dgx.buffer(), opt_ref(&carry), grad_h0.buffer(), opt_ref(&grad_c0)];
                    rt.launch(LSTM_GRAD_INITIAL_STATE, &constants, &sp, &bufs, groups)?;
                }
                RnnMode::Gru => {
                    let bufs = [info, w_hh, aux_ref(&dgh), opt_ref(&carry), grad_h0.buffer()];
                    rt.launch(GRU_GRAD_INITIAL_STATE, &constants, &sp, &bufs, groups)?;
                }
                RnnMode::RnnTanh | RnnMode::RnnRelu => {
                    let bufs = [info, w_hh, dgx.buffer(), grad_h0.buffer()];
                    rt.launch(RNN_GRAD_INITIAL_STATE, &constants, &sp, &bufs, groups)?;
                }
            }
            // Parameter gradients over all steps at once.
            let dgh_t = dgh.as_ref().unwrap_or(&dgx);
            let grads = &param_grads[idx];
            let at = GemmOptions { trans_a: true, beta: beta_acc, ..GemmOptions::default() };
            gemm(&dgx, &saved.input, None, &grads.weight_ih, at)?;
            gemm(dgh_t, &s.h_prev, None, &grads.weight_hh, at)?;
            sum_cols(&dgx, &grads.bias_ih, beta_acc)?;
            sum_cols(dgh_t, &grads.bias_hh, beta_acc)?;
            // Input gradient, both directions summed.
            let beta = if dir == 0 { 0.0 } else { 1.0 };
            gemm(&dgx, &params.weight_ih, None, &d_in, GemmOptions { beta, ..GemmOptions::default() })?;
        }
        d_out = match (layer > 0, fwd.dropout) {
            (true, Some((p, seed))) => crate::ops::dropout_packed(&d_in, &batch.pack_index, layer, p, seed)?,
            _ => d_in,
        };
    }
    Ok((d_out, grad_h0, grad_c0))
}
