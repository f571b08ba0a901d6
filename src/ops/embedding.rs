//! Embedding lookup on the tape: `weight[ids]` forward (a row gather), and
//! its gradient, a deterministic bucketed sum per looked-up id (no float
//! atomics): the launcher `embedding_backward` (shaders/embedding.wgsl,
//! entry point `embedding_backward`) and its CPU reference
//! [`reference::embedding_backward`].

use crate::autograd::{check_parameter, Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::nn::{Embedding, Parameter, SparseRows};
use crate::ops::dim_u32;
use crate::tensor::Tensor;

use Access::{Read as R, ReadWrite as W};

const EMBEDDING_BACKWARD: Kernel =
    Kernel { shader: Shader::Embedding, entry: "embedding_backward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };

/// [`EMBEDDING_BACKWARD`] four features per invocation (E % 4 == 0).
const EMBEDDING_BACKWARD_VEC4: Kernel = Kernel {
    shader: Shader::Embedding,
    entry: "embedding_backward_vec4",
    storage: &[(4, R), (2, R), (5, W)],
    cell: &[],
};

/// Invocations per workgroup of `embedding_backward`.
const WG: u32 = 64;

impl Tape {
    /// `embedding.weight[ids]`: (count) host ids → (count, E). Ids ≥ V are
    /// an error before any GPU work.
    pub fn embedding(&mut self, emb: &Embedding, ids: &[u32]) -> Result<Var> {
        check_parameter("embedding", "weight", &emb.weight, 2)?;
        let vocab = emb.vocab();
        if let Some((pos, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(Error::OutOfRange {
                op: "embedding",
                message: format!("token id {id} at position {pos} is out of range for a vocabulary of {vocab}"),
            });
        }
        if ids.is_empty() {
            return Err(Error::Empty { op: "embedding", what: "ids".into() });
        }
        self.device()
            .check_tensor(&format!("embedding output ({} ids × {})", ids.len(), emb.dim()), &[ids.len(), emb.dim()])?;
        let idx = Tensor::from_u32(self.device(), ids, &[ids.len()])?;
        let _family = crate::profile::scope(crate::profile::Family::Embedding);
        let value = crate::ops::gather_rows(&emb.weight.value, &idx)?;
        if !self.is_training() {
            return Ok(self.push(value, None));
        }
        let (buckets, unique) = embedding_buckets(ids, emb.padding_idx);
        // A sparse embedding logs the rows its backward adds to (the
        // buckets start with the distinct ids).
        let rows = emb.sparse.clone().map(|log| (log, buckets[..unique].to_vec()));
        // An all-padding batch has no buckets; keep a valid 1-element tensor.
        let buckets = if buckets.len() > 1 { buckets } else { vec![0, 0] };
        let buckets = Tensor::from_u32(self.device(), &buckets, &[buckets.len()])?;
        Ok(self.record(value, EmbeddingBackward { weight: emb.weight.clone(), buckets, unique, rows }))
    }
}

/// Backward of [`Tape::embedding`]: the looked-up rows' gradients summed
/// into the weight's gradient, bucketed by id.
#[derive(Debug)]
struct EmbeddingBackward {
    weight: Parameter,
    buckets: Tensor,
    unique: usize,
    /// A sparse embedding's row log and the distinct ids looked up.
    rows: Option<(SparseRows, Vec<u32>)>,
}

impl Backward for EmbeddingBackward {
    fn backward(&self, g: &Tensor, _: &mut BackwardContext<'_>) -> Result<()> {
        embedding_backward(g, &self.buckets, self.unique, &self.weight.grad)?;
        if let Some((log, rows)) = &self.rows {
            log.record(rows);
        }
        Ok(())
    }
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
fn embedding_buckets(ids: &[u32], padding_idx: Option<u32>) -> (Vec<u32>, usize) {
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
    let buffers = [grad_out.buffer(), buckets.buffer(), grad_weight.buffer()];
    // Whole vec4s per row, on 16-byte aligned bindings: the vec4 entry,
    // which adds the same values in the same order.
    let vec4 = params.dim.is_multiple_of(4) && buffers.iter().all(|b| b.offset.is_multiple_of(16));
    launch_embedding_backward(grad_out, &params, &buffers, vec4)
}

/// Records [`embedding_backward`]'s dispatch: the vec4 entry or the scalar one.
fn launch_embedding_backward(
    grad_out: &Tensor,
    params: &EmbeddingParams,
    buffers: &[crate::runtime::BufferRange<'_>],
    vec4: bool,
) -> Result<()> {
    const OP: &str = "embedding_backward";
    let rt = &grad_out.device().rt;
    let constants = [("WG", f64::from(WG))];
    let (unique, dim) = (params.unique as usize, params.dim as usize);
    if vec4 {
        let invocations = dim_u32(OP, "ids × feature quads", unique * (dim / 4))?;
        let groups = grid(invocations.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
        return rt.launch(EMBEDDING_BACKWARD_VEC4, &constants, params, buffers, groups);
    }
    let (y, z) = (params.unique.min(65_535), params.unique.div_ceil(65_535));
    rt.launch(EMBEDDING_BACKWARD, &constants, params, buffers, [params.dim.div_ceil(WG), y, z])
}

/// CPU reference.
pub mod reference {
    /// `grad_weight[ids[i]] += grad_out[i]`, padding rows skipped.
    pub fn embedding_backward(
        grad_out: &[f64],
        ids: &[u32],
        dim: usize,
        padding_idx: Option<u32>,
        grad_weight: &mut [f64],
    ) {
        for (i, &id) in ids.iter().enumerate() {
            if Some(id) == padding_idx {
                continue;
            }
            for e in 0..dim {
                grad_weight[id as usize * dim + e] += grad_out[i * dim + e];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{embedding_backward, embedding_buckets, launch_embedding_backward, reference, EmbeddingParams};
    use crate::tensor::Tensor;

    /// Both entries against the f64 reference, with repeated ids and a
    /// padding id; where E % 4 == 0 the vec4 entry also against the scalar
    /// one, bit for bit (they add the same values in the same order).
    #[test]
    fn embedding_backward_entries_match_reference() {
        let device = crate::Device::new().unwrap();
        let (vocab, count) = (37usize, 61usize);
        for dim in [1usize, 3, 4, 128, 130] {
            let ids: Vec<u32> = (0..count).map(|i| ((i * i * 7 + 3) % vocab) as u32).collect();
            let padding = Some(ids[5]);
            let grad_out: Vec<f32> = (0..count * dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0).collect();
            let start: Vec<f32> = (0..vocab * dim).map(|i| (i % 7) as f32 / 8.0).collect();
            let (buckets, unique) = embedding_buckets(&ids, padding);
            let g = Tensor::from_slice(&device, &grad_out, &[count, dim]).unwrap();
            let b = Tensor::from_u32(&device, &buckets, &[buckets.len()]).unwrap();
            let w = Tensor::from_slice(&device, &start, &[vocab, dim]).unwrap();
            embedding_backward(&g, &b, unique, &w).unwrap();
            let got = w.to_vec().unwrap();

            let mut want: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
            let g64: Vec<f64> = grad_out.iter().map(|&v| f64::from(v)).collect();
            reference::embedding_backward(&g64, &ids, dim, padding, &mut want);
            // The inputs are multiples of 1/16 below 8 in magnitude and at
            // most a few of them meet in a row: every sum is exact in f32.
            let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            assert_eq!(got, want, "E = {dim}");

            if dim % 4 == 0 {
                let scalar = Tensor::from_slice(&device, &start, &[vocab, dim]).unwrap();
                let params = EmbeddingParams { unique: unique as u32, dim: dim as u32, count: count as u32, _pad: 0 };
                launch_embedding_backward(&g, &params, &[g.buffer(), b.buffer(), scalar.buffer()], false).unwrap();
                assert_eq!(scalar.to_vec().unwrap(), got, "E = {dim}: scalar and vec4 entries");
            }
        }
    }
}
