//! Pooling on the tape (shaders/pooling.wgsl): mean, max and last-state
//! pooling of a packed recurrent output, forward and backward. One name per
//! kernel: the WGSL entry points `pool_mean_forward`, `pool_mean_backward`,
//! `pool_max_forward`, `pool_max_backward`, `pool_last_forward`,
//! `pool_last_backward` are the launchers below; the CPU references are
//! [`reference::pool_mean`], [`reference::pool_max`], [`reference::pool_last`].

use crate::autograd::{Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::dim_u32;
use crate::rnn::PackedBatch;
use crate::tensor::{DType, Tensor};

use Access::{Read as R, ReadWrite as W};

const POOL_MEAN_FORWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_mean_forward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const POOL_MEAN_BACKWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_mean_backward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const POOL_MAX_FORWARD: Kernel = Kernel {
    shader: Shader::Pooling,
    entry: "pool_max_forward",
    storage: &[(1, R), (2, R), (3, W), (4, W)],
    cell: &[],
};
const POOL_MAX_BACKWARD: Kernel = Kernel {
    shader: Shader::Pooling,
    entry: "pool_max_backward",
    storage: &[(1, R), (2, R), (3, W), (4, W)],
    cell: &[],
};
const POOL_LAST_FORWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_last_forward", storage: &[(2, R), (3, W)], cell: &[] };
const POOL_LAST_BACKWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_last_backward", storage: &[(2, R), (3, W)], cell: &[] };

/// Invocations per workgroup of the pooling kernels.
const WG: u32 = 64;

fn groups(t: &Tensor, invocations: usize, wg: u32) -> Result<[u32; 3]> {
    let n = dim_u32("launch", "invocations", invocations)?;
    Ok(grid(n.div_ceil(wg), t.device().rt.limits.max_compute_workgroups_per_dimension))
}

impl Tape {
    /// Mean over each row's valid steps: packed (N, F) → (B, F).
    pub fn pool_mean(&mut self, x: Var, batch: &PackedBatch) -> Result<Var> {
        self.pool(x, batch, false)
    }

    /// Max over each row's valid steps: packed (N, F) → (B, F).
    pub fn pool_max(&mut self, x: Var, batch: &PackedBatch) -> Result<Var> {
        self.pool(x, batch, true)
    }

    fn pool(&mut self, x: Var, batch: &PackedBatch, max: bool) -> Result<Var> {
        let xv = self.value(x)?;
        if xv.shape().len() != 2 || xv.shape()[0] != batch.total() {
            return Err(Error::Shape {
                op: "pool",
                message: format!("expected a packed ({}, F) tensor, got {:?}", batch.total(), xv.shape()),
            });
        }
        let (out, argmax) = if max { pool_max_forward(xv, batch)? } else { (pool_mean_forward(xv, batch)?, None) };
        Ok(self.record(out, PoolBackward { x, batch: batch.clone(), argmax }))
    }

    /// The last layer's final hidden state, both directions concatenated:
    /// h_n (L·D, B, H) → (B, D·H) — what Keras/PyTorch classifiers feed to
    /// their head.
    pub fn pool_last(&mut self, h_n: Var, directions: usize) -> Result<Var> {
        let shape = self.value(h_n)?.shape().to_vec();
        if shape.len() != 3 || directions == 0 || !shape[0].is_multiple_of(directions) {
            return Err(Error::Shape {
                op: "pool_last",
                message: format!("h_n must be (L·D, B, H) with D = {directions}, got {shape:?}"),
            });
        }
        let out = pool_last_forward(self.value(h_n)?, directions)?;
        Ok(self.record(out, PoolLastBackward { h_n, directions }))
    }
}

/// Backward of [`Tape::pool_mean`] and [`Tape::pool_max`].
#[derive(Debug)]
struct PoolBackward {
    x: Var,
    batch: PackedBatch,
    argmax: Option<Tensor>,
}

impl Backward for PoolBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        ctx.accumulate(self.x, pool_backward(g, &self.batch, self.argmax.as_ref())?)
    }
}

/// Backward of [`Tape::pool_last`].
#[derive(Debug)]
struct PoolLastBackward {
    h_n: Var,
    directions: usize,
}

impl Backward for PoolLastBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        let shape = ctx.value(self.h_n).shape().to_vec();
        ctx.accumulate(self.h_n, pool_last_backward(g, &shape, self.directions)?)
    }
}

crate::kernels::shader_params! {
    /// Mirrors `PoolParams` in shaders/pooling.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct PoolParams mirrors "PoolParams" in Pooling {
        batch: u32,
        steps: u32,
        features: u32,
        hidden: u32,
        first_state: u32,
        states: u32,
        _pad: [u32; 2],
    }
}

fn pool_params(batch: &PackedBatch, features: usize) -> Result<PoolParams> {
    const OP: &str = "pooling";
    Ok(PoolParams {
        batch: dim_u32(OP, "batch", batch.batch())?,
        steps: dim_u32(OP, "steps", batch.max_len())?,
        features: dim_u32(OP, "features", features)?,
        hidden: 0,
        first_state: 0,
        states: 0,
        _pad: [0; 2],
    })
}

/// Mean over each row's valid steps of a packed (N, F) tensor → (B, F).
fn pool_mean_forward(x: &Tensor, batch: &PackedBatch) -> Result<Tensor> {
    let f = x.shape()[1];
    let p = pool_params(batch, f)?;
    let dev = x.device();
    let out = Tensor::uninit(dev, &[batch.batch(), f], DType::F32)?;
    let g = groups(x, batch.batch() * f, WG)?;
    dev.rt.launch(
        POOL_MEAN_FORWARD,
        &[("WG", f64::from(WG))],
        &p,
        &[batch.info.buffer(), x.buffer(), out.buffer()],
        g,
    )?;
    Ok(out)
}

/// Max over each row's valid steps of a packed (N, F) tensor → (B, F), and
/// the packed row of each maximum (for backward).
fn pool_max_forward(x: &Tensor, batch: &PackedBatch) -> Result<(Tensor, Option<Tensor>)> {
    let f = x.shape()[1];
    let p = pool_params(batch, f)?;
    let dev = x.device();
    let out = Tensor::uninit(dev, &[batch.batch(), f], DType::F32)?;
    let argmax = Tensor::uninit(dev, &[batch.batch(), f], DType::U32)?;
    let g = groups(x, batch.batch() * f, WG)?;
    let bufs = [batch.info.buffer(), x.buffer(), out.buffer(), argmax.buffer()];
    dev.rt.launch(POOL_MAX_FORWARD, &[("WG", f64::from(WG))], &p, &bufs, g)?;
    Ok((out, Some(argmax)))
}

/// Gradient of mean pooling (`argmax` = None: `pool_mean_backward`) or max
/// pooling (`pool_max_backward`): (B, F) → packed (N, F).
fn pool_backward(grad: &Tensor, batch: &PackedBatch, argmax: Option<&Tensor>) -> Result<Tensor> {
    let f = grad.shape()[1];
    let p = pool_params(batch, f)?;
    let dev = grad.device();
    let out = Tensor::uninit(dev, &[batch.total(), f], DType::F32)?;
    let g = groups(grad, batch.batch() * f, WG)?;
    let c = [("WG", f64::from(WG))];
    match argmax {
        Some(a) => dev.rt.launch(
            POOL_MAX_BACKWARD,
            &c,
            &p,
            &[batch.info.buffer(), grad.buffer(), out.buffer(), a.buffer()],
            g,
        )?,
        None => dev.rt.launch(POOL_MEAN_BACKWARD, &c, &p, &[batch.info.buffer(), grad.buffer(), out.buffer()], g)?,
    }
    Ok(out)
}

fn last_params(h_n: &Tensor, directions: usize) -> Result<PoolParams> {
    const OP: &str = "pool_last";
    let &[states, b, h] = h_n.shape() else { unreachable!("validated by the tape") };
    Ok(PoolParams {
        batch: dim_u32(OP, "batch", b)?,
        steps: 0,
        features: dim_u32(OP, "features", directions * h)?,
        hidden: dim_u32(OP, "hidden", h)?,
        first_state: dim_u32(OP, "state", states - directions)?,
        states: dim_u32(OP, "states", states)?,
        _pad: [0; 2],
    })
}

/// Last layer's final states, directions concatenated: (L·D, B, H) → (B, D·H).
fn pool_last_forward(h_n: &Tensor, directions: usize) -> Result<Tensor> {
    let p = last_params(h_n, directions)?;
    let out = Tensor::uninit(h_n.device(), &[p.batch as usize, p.features as usize], DType::F32)?;
    let g = groups(h_n, out.numel(), WG)?;
    h_n.device().rt.launch(POOL_LAST_FORWARD, &[("WG", f64::from(WG))], &p, &[h_n.buffer(), out.buffer()], g)?;
    Ok(out)
}

/// Gradient of `pool_last_forward`: (B, D·H) → (L·D, B, H), zero outside
/// the last layer.
fn pool_last_backward(grad: &Tensor, h_n_shape: &[usize], directions: usize) -> Result<Tensor> {
    let out = Tensor::uninit(grad.device(), h_n_shape, DType::F32)?;
    let p = last_params(&out, directions)?;
    let g = groups(grad, out.numel(), WG)?;
    grad.device().rt.launch(POOL_LAST_BACKWARD, &[("WG", f64::from(WG))], &p, &[grad.buffer(), out.buffer()], g)?;
    Ok(out)
}

/// CPU references.
pub mod reference {
    /// Mean over each row's first `lengths[b]` steps of a padded (B, T, F) tensor.
    pub fn pool_mean(x: &[f64], lengths: &[usize], max_len: usize, features: usize) -> Vec<f64> {
        let mut out = vec![0.0; lengths.len() * features];
        for (b, &len) in lengths.iter().enumerate() {
            for f in 0..features {
                out[b * features + f] = (0..len).map(|t| x[(b * max_len + t) * features + f]).sum::<f64>() / len as f64;
            }
        }
        out
    }

    /// Max over each row's valid steps of a padded (B, T, F) tensor; returns
    /// the values and the winning step (first maximum).
    pub fn pool_max(x: &[f64], lengths: &[usize], max_len: usize, features: usize) -> (Vec<f64>, Vec<usize>) {
        let mut out = vec![0.0; lengths.len() * features];
        let mut arg = vec![0; lengths.len() * features];
        for (b, &len) in lengths.iter().enumerate() {
            for f in 0..features {
                let mut best = (x[b * max_len * features + f], 0);
                for t in 1..len {
                    let v = x[(b * max_len + t) * features + f];
                    if v > best.0 {
                        best = (v, t);
                    }
                }
                out[b * features + f] = best.0;
                arg[b * features + f] = best.1;
            }
        }
        (out, arg)
    }

    /// Last layer's states, directions concatenated: (L·D, B, H) → (B, D·H).
    pub fn pool_last(h_n: &[f64], states: usize, batch: usize, hidden: usize, directions: usize) -> Vec<f64> {
        let mut out = vec![0.0; batch * directions * hidden];
        for b in 0..batch {
            for d in 0..directions {
                for j in 0..hidden {
                    out[b * directions * hidden + d * hidden + j] =
                        h_n[((states - directions + d) * batch + b) * hidden + j];
                }
            }
        }
        out
    }
}
