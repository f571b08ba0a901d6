//! What a recurrent layer stack is: mode, sizes, PyTorch parameter names and
//! shapes, and the length validation shared by the GPU path and the CPU
//! reference.

pub use crate::cells::RnnMode;
use crate::error::{Error, Result};

/// Shape of a recurrent stack: everything but the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RnnSpec {
    /// Cell type.
    pub mode: RnnMode,
    /// I: features of the first layer's input.
    pub input_size: usize,
    /// H: hidden units per direction.
    pub hidden_size: usize,
    /// L: stacked layers (≥ 1).
    pub num_layers: usize,
    /// D = 2 when bidirectional, else 1.
    pub bidirectional: bool,
    /// P: `torch.nn.LSTM(proj_size=P)`: h = W_hr·(o⊙tanh c) has P < H
    /// features (c keeps H); 0 = no projection.
    pub proj_size: usize,
}

impl RnnSpec {
    /// D: directions.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// G: gate rows of each weight matrix.
    pub fn gate_size(&self) -> usize {
        self.mode.gates() * self.hidden_size
    }

    /// S: features of h (P with a projection, else H).
    pub fn state_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Input features of layer `layer` (I for the first, D·S after).
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.directions() * self.state_size()
        }
    }

    /// Checks sizes are usable.
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err(Error::Config(format!(
                "input_size, hidden_size and num_layers must be ≥ 1, got {}, {}, {}",
                self.input_size, self.hidden_size, self.num_layers
            )));
        }
        if self.proj_size > 0 && self.mode != RnnMode::Lstm {
            return Err(Error::Config(format!("proj_size is only for LSTM (as in PyTorch), not {}", self.mode.name())));
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return Err(Error::Config(format!(
                "proj_size ({}) must be smaller than hidden_size ({})",
                self.proj_size, self.hidden_size
            )));
        }
        Ok(())
    }

    /// PyTorch name suffix of (layer, direction): `l0`, `l1_reverse`, …
    pub fn suffix(layer: usize, dir: usize) -> String {
        if dir == 1 {
            format!("l{layer}_reverse")
        } else {
            format!("l{layer}")
        }
    }

    /// The parameters of (layer, dir) with PyTorch names and shapes, in
    /// PyTorch's order: `weight_ih, weight_hh, bias_ih, bias_hh` (the first
    /// four of every cell, at these indices: [`WEIGHT_IH`], …), then
    /// `weight_hr` (P, H) with a projection ([`WEIGHT_HR`]).
    pub fn parameter_shapes(&self, layer: usize, dir: usize) -> Vec<(String, Vec<usize>)> {
        let g = self.gate_size();
        let s = Self::suffix(layer, dir);
        let mut shapes = vec![
            (format!("weight_ih_{s}"), vec![g, self.layer_input_size(layer)]),
            (format!("weight_hh_{s}"), vec![g, self.state_size()]),
            (format!("bias_ih_{s}"), vec![g]),
            (format!("bias_hh_{s}"), vec![g]),
        ];
        if self.proj_size > 0 {
            shapes.push((format!("weight_hr_{s}"), vec![self.proj_size, self.hidden_size]));
        }
        shapes
    }
}

/// Index of `weight_ih_l{k}` in a (layer, dir)'s parameters.
pub const WEIGHT_IH: usize = 0;
/// Index of `weight_hh_l{k}`.
pub const WEIGHT_HH: usize = 1;
/// Index of `bias_ih_l{k}`.
pub const BIAS_IH: usize = 2;
/// Index of `bias_hh_l{k}`.
pub const BIAS_HH: usize = 3;
/// Index of `weight_hr_l{k}` (with a projection).
pub const WEIGHT_HR: usize = 4;

/// Checks lengths for a batch padded to `max_len` steps: one per row, each
/// in 1..=max_len.
pub fn validate_lengths(lengths: &[usize], batch: usize, max_len: usize) -> Result<()> {
    const OP: &str = "recurrent layer";
    if lengths.len() != batch {
        return Err(Error::Shape {
            op: OP,
            message: format!("{} lengths given for a batch of {batch} rows", lengths.len()),
        });
    }
    if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, &l)| l == 0 || l > max_len) {
        return Err(Error::OutOfRange {
            op: OP,
            message: format!("length {len} of row {row} is outside 1..={max_len} (the padded sequence length)"),
        });
    }
    Ok(())
}

/// Whether a unit of a dropout mask is kept: a counter-based hash of
/// (seed, layer, element), identical in WGSL (`dropout_keep` in
/// shaders/dropout.wgsl), so the mask needs no storage and the CPU
/// reference reproduces it exactly. `element` is the padded index
/// `(b·T + t)·F + f` so the mask does not depend on packing.
pub fn dropout_keep(seed: u64, layer: u32, element: u32, p: f32) -> bool {
    let mut h = pcg_hash(element ^ pcg_hash(layer ^ pcg_hash(seed as u32 ^ pcg_hash((seed >> 32) as u32))));
    h = pcg_hash(h);
    // 24 high bits → uniform in [0, 1) exactly representable in f32.
    let u = (h >> 8) as f32 * (1.0 / 16_777_216.0);
    u >= p
}

/// PCG-RXS-M-XS 32-bit hash (Jarzynski & Olano, "Hash Functions for GPU
/// Rendering", 2020).
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}
