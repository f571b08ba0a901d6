//! GPU launchers of the tape's own ops: embedding gradient, losses,
//! pooling (shaders/embedding.wgsl, loss.wgsl, pooling.wgsl).

use crate::error::Result;
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::dim_u32;
use crate::rnn::PackedBatch;
use crate::tensor::{DType, Tensor};

use Access::{Read as R, ReadWrite as W};

const EMBEDDING_BACKWARD: Kernel =
    Kernel { shader: Shader::Embedding, entry: "embedding_backward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const CROSS_ENTROPY_FORWARD: Kernel =
    Kernel { shader: Shader::Loss, entry: "cross_entropy_forward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const CROSS_ENTROPY_BACKWARD: Kernel = Kernel {
    shader: Shader::Loss,
    entry: "cross_entropy_backward",
    storage: &[(1, R), (2, R), (3, W), (4, W), (5, R)],
    cell: &[],
};
const BCE_FORWARD: Kernel = Kernel { shader: Shader::Loss, entry: "bce_forward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const BCE_BACKWARD: Kernel =
    Kernel { shader: Shader::Loss, entry: "bce_backward", storage: &[(1, R), (2, R), (4, W), (5, R)], cell: &[] };
const LOSS_REDUCE: Kernel = Kernel { shader: Shader::Loss, entry: "loss_reduce", storage: &[(3, W), (6, W), (7, W)], cell: &[] };
const POOL_MEAN_FORWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_mean_forward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const POOL_MEAN_BACKWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_mean_backward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const POOL_MAX_FORWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_max_forward", storage: &[(1, R), (2, R), (3, W), (4, W)], cell: &[] };
const POOL_MAX_BACKWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_max_backward", storage: &[(1, R), (2, R), (3, W), (4, W)], cell: &[] };
const POOL_LAST_FORWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_last_forward", storage: &[(2, R), (3, W)], cell: &[] };
const POOL_LAST_BACKWARD: Kernel =
    Kernel { shader: Shader::Pooling, entry: "pool_last_backward", storage: &[(2, R), (3, W)], cell: &[] };

/// Invocations per workgroup of the loss and pooling kernels.
const WG: u32 = 64;

fn groups(t: &Tensor, invocations: usize, wg: u32) -> Result<[u32; 3]> {
    let n = dim_u32("launch", "invocations", invocations)?;
    Ok(grid(n.div_ceil(wg), t.device().rt.limits.max_compute_workgroups_per_dimension))
}

crate::kernels::shader_params! {
    /// Mirrors `EmbeddingParams` in shaders/embedding.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct EmbeddingParams mirrors "EmbeddingParams" in Embedding {
        unique: u32,
        dim: u32,
        count: u32,
        _pad: u32,
    }
}

/// Host-side buckets of looked-up ids for the deterministic embedding
/// gradient: `ids[U] | offsets[U + 1] | positions[count]`, padding left out.
pub(crate) fn embedding_buckets(ids: &[u32], padding_idx: Option<u32>) -> (Vec<u32>, usize) {
    let mut order: Vec<u32> = (0..ids.len() as u32).filter(|&p| Some(ids[p as usize]) != padding_idx).collect();
    order.sort_by_key(|&p| (ids[p as usize], p)); // by id, then position: a fixed order
    let mut unique = Vec::new();
    let mut offsets = Vec::new();
    for (k, &p) in order.iter().enumerate() {
        if unique.last() != Some(&ids[p as usize]) {
            unique.push(ids[p as usize]);
            offsets.push(k as u32);
        }
    }
    offsets.push(order.len() as u32);
    let u = unique.len();
    let mut buckets = unique;
    buckets.extend(offsets);
    buckets.extend(order);
    (buckets, u)
}

/// `grad_weight[id] += Σ grad_out[positions of id]`.
pub(crate) fn embedding_backward(
    grad_out: &Tensor,
    buckets: &Tensor,
    unique: usize,
    grad_weight: &Tensor,
) -> Result<()> {
    const OP: &str = "embedding_backward";
    if unique == 0 {
        return Ok(());
    }
    let dim = grad_weight.shape()[1];
    let params = EmbeddingParams {
        unique: dim_u32(OP, "ids", unique)?,
        dim: dim_u32(OP, "dim", dim)?,
        count: dim_u32(OP, "count", grad_out.shape()[0])?,
        _pad: 0,
    };
    let (y, z) = (params.unique.min(65_535), params.unique.div_ceil(65_535));
    let rt = &grad_out.device().rt;
    rt.launch(
        EMBEDDING_BACKWARD,
        &[("WG", f64::from(WG))],
        &params,
        &[grad_out.buffer(), buckets.buffer(), grad_weight.buffer()],
        [params.dim.div_ceil(WG), y, z],
    )
}

crate::kernels::shader_params! {
    /// Mirrors `LossParams` in shaders/loss.wgsl.
    #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct LossParams mirrors "LossParams" in Loss {
        pub(crate) rows: u32,
        pub(crate) classes: u32,
        pub(crate) ignore_index: u32,
        pub(crate) smoothing: f32,
        pub(crate) scale: f32,
        pub(crate) _pad: [u32; 3],
    }
}

/// Per-row statistics (M, 3), scalar loss (1) and metrics (2): correct
/// count, perplexity.
pub(crate) struct LossForward {
    pub stats: Tensor,
    pub loss: Tensor,
    pub metrics: Tensor,
}

/// Cross-entropy (`bce = false`: logits (M, C), u32 targets) or BCE with
/// logits (`bce = true`: logits (M), f32 targets as bits), reduced by mean.
pub(crate) fn loss_forward(logits: &Tensor, targets: &Tensor, p: LossParams, bce: bool) -> Result<LossForward> {
    let dev = logits.device();
    let stats = Tensor::uninit(dev, &[p.rows as usize, 3], DType::F32)?;
    let loss = Tensor::uninit(dev, &[1], DType::F32)?;
    let metrics = Tensor::uninit(dev, &[2], DType::F32)?;
    let rt = &dev.rt;
    let kernel = if bce { BCE_FORWARD } else { CROSS_ENTROPY_FORWARD };
    let c = [("WG", f64::from(WG))];
    rt.launch(
        kernel,
        &c,
        &p,
        &[logits.buffer(), targets.buffer(), stats.buffer()],
        groups(logits, p.rows as usize, WG)?,
    )?;
    rt.launch(LOSS_REDUCE, &c, &p, &[stats.buffer(), loss.buffer(), metrics.buffer()], [1, 1, 1])?;
    Ok(LossForward { stats, loss, metrics })
}

/// Gradient of the mean loss with respect to the logits.
pub(crate) fn loss_backward(
    logits: &Tensor,
    targets: &Tensor,
    stats: &Tensor,
    grad_loss: &Tensor,
    p: LossParams,
    bce: bool,
) -> Result<Tensor> {
    let grad = Tensor::uninit(logits.device(), logits.shape(), DType::F32)?;
    let rt = &logits.device().rt;
    let c = [("WG", f64::from(WG))];
    if bce {
        let bufs = [logits.buffer(), targets.buffer(), grad.buffer(), grad_loss.buffer()];
        rt.launch(BCE_BACKWARD, &c, &p, &bufs, groups(logits, p.rows as usize, WG)?)?;
    } else {
        let bufs = [logits.buffer(), targets.buffer(), stats.buffer(), grad.buffer(), grad_loss.buffer()];
        rt.launch(CROSS_ENTROPY_BACKWARD, &c, &p, &bufs, groups(logits, logits.numel(), WG)?)?;
    }
    Ok(grad)
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

/// Mean (`max = false`) or max over each row's valid steps of a packed
/// (N, F) tensor → (B, F); returns the argmax rows for max pooling.
pub(crate) fn pool_forward(x: &Tensor, batch: &PackedBatch, max: bool) -> Result<(Tensor, Option<Tensor>)> {
    let f = x.shape()[1];
    let p = pool_params(batch, f)?;
    let dev = x.device();
    let out = Tensor::uninit(dev, &[batch.batch(), f], DType::F32)?;
    let g = groups(x, batch.batch() * f, WG)?;
    let c = [("WG", f64::from(WG))];
    if max {
        let argmax = Tensor::uninit(dev, &[batch.batch(), f], DType::U32)?;
        let bufs = [batch.info.buffer(), x.buffer(), out.buffer(), argmax.buffer()];
        dev.rt.launch(POOL_MAX_FORWARD, &c, &p, &bufs, g)?;
        Ok((out, Some(argmax)))
    } else {
        dev.rt.launch(POOL_MEAN_FORWARD, &c, &p, &[batch.info.buffer(), x.buffer(), out.buffer()], g)?;
        Ok((out, None))
    }
}

/// Gradient of [`pool_forward`]: (B, F) → packed (N, F).
pub(crate) fn pool_backward(grad: &Tensor, batch: &PackedBatch, argmax: Option<&Tensor>) -> Result<Tensor> {
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
pub(crate) fn pool_last_forward(h_n: &Tensor, directions: usize) -> Result<Tensor> {
    let p = last_params(h_n, directions)?;
    let out = Tensor::uninit(h_n.device(), &[p.batch as usize, p.features as usize], DType::F32)?;
    let g = groups(h_n, out.numel(), WG)?;
    h_n.device().rt.launch(POOL_LAST_FORWARD, &[("WG", f64::from(WG))], &p, &[h_n.buffer(), out.buffer()], g)?;
    Ok(out)
}

/// Gradient of [`pool_last_forward`]: (B, D·H) → (L·D, B, H), zero outside
/// the last layer.
pub(crate) fn pool_last_backward(grad: &Tensor, h_n_shape: &[usize], directions: usize) -> Result<Tensor> {
    let out = Tensor::uninit(grad.device(), h_n_shape, DType::F32)?;
    let p = last_params(&out, directions)?;
    let g = groups(grad, out.numel(), WG)?;
    grad.device().rt.launch(POOL_LAST_BACKWARD, &[("WG", f64::from(WG))], &p, &[grad.buffer(), out.buffer()], g)?;
    Ok(out)
}
