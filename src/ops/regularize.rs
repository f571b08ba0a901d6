//! AWD-LSTM's activation penalties over a packed activation
//! (shaders/regularize.wgsl): AR = scale·Σ x² and TAR = scale·Σ (x_t − x_{t−1})²
//! over the steps of each sequence, as tape ops with their backward. CPU
//! reference: [`crate::reference::lm::square_sum`].

use crate::autograd::{Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::{check_same_device, dim_u32};
use crate::rnn::PackedBatch;
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` constant).
const WG: u32 = 256;
/// "No such row" in the links table (the shader's `NONE`).
const NONE: u32 = u32::MAX;

crate::kernels::shader_params! {
    /// Mirrors `SquareSumParams` in shaders/regularize.wgsl.
    #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct SquareSumParams mirrors "SquareSumParams" in Regularize {
        rows: u32,
        cols: u32,
        temporal: u32,
        scale: f32,
    }
}

const SQUARE_SUM_FORWARD: Kernel = Kernel {
    shader: Shader::Regularize,
    entry: "square_sum_forward",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};
const SQUARE_SUM_BACKWARD: Kernel = Kernel {
    shader: Shader::Regularize,
    entry: "square_sum_backward",
    storage: &[(1, Access::Read), (2, Access::Read), (4, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};

/// For every packed row of `batch`, the packed row of the same sequence
/// one step earlier and one step later (`u32::MAX` where there is none),
/// flattened as (N, 2) `prev, next`: what TAR differences.
pub fn temporal_links(batch: &PackedBatch) -> Vec<u32> {
    let (offsets, sizes) = (batch.offsets(), batch.batch_sizes());
    let mut links = vec![NONE; 2 * batch.total()];
    for t in 0..batch.max_len() {
        for s in 0..sizes[t] {
            let r = offsets[t] + s;
            if t > 0 {
                // Rows are sorted longest first, so s was active at t − 1.
                links[2 * r] = (offsets[t - 1] + s) as u32;
            }
            if t + 1 < batch.max_len() && s < sizes[t + 1] {
                links[2 * r + 1] = (offsets[t + 1] + s) as u32;
            }
        }
    }
    links
}

/// The penalty `scale · Σ d²` of x (N, F) as a (1) tensor, with
/// d = x (AR, `links` = None) or d = x_t − x_{t−1} (TAR, `links` from
/// [`temporal_links`] uploaded as (2N) u32). Returns it and the params
/// backward needs.
pub(crate) fn square_sum_forward(
    x: &Tensor,
    links: Option<&Tensor>,
    scale: f32,
) -> Result<(Tensor, Tensor, SquareSumParams)> {
    const OP: &str = "square_sum_forward";
    x.expect_dtype(OP, DType::F32)?;
    let &[rows, cols] = x.shape() else {
        return Err(Error::Shape { op: OP, message: format!("x must be (N, F), got {:?}", x.shape()) });
    };
    let temporal = links.is_some();
    let links = match links {
        Some(l) => {
            check_same_device(OP, &[x, l])?;
            if l.shape() != [2 * rows] || l.dtype() != DType::U32 {
                return Err(Error::Shape {
                    op: OP,
                    message: format!("links must be ({}) u32, got {:?} {:?}", 2 * rows, l.shape(), l.dtype()),
                });
            }
            l.clone()
        }
        // AR reads no links; the binding still needs a buffer.
        None => Tensor::from_u32(x.device(), &[NONE, NONE], &[2])?,
    };
    let params = SquareSumParams {
        rows: dim_u32(OP, "rows", rows)?,
        cols: dim_u32(OP, "cols", cols)?,
        temporal: u32::from(temporal),
        scale,
    };
    dim_u32(OP, "elements", rows * cols)?;
    let out = Tensor::zeros(x.device(), &[1])?;
    x.device().rt.launch(SQUARE_SUM_FORWARD, &[], &params, &[x.buffer(), links.buffer(), out.buffer()], [1, 1, 1])?;
    Ok((out, links, params))
}

/// dx (N, F) of the penalty given its gradient `g` (1).
pub(crate) fn square_sum_backward(x: &Tensor, links: &Tensor, g: &Tensor, params: SquareSumParams) -> Result<Tensor> {
    let dx = Tensor::uninit(x.device(), x.shape(), DType::F32)?;
    let rt = &x.device().rt;
    let groups = grid((params.rows * params.cols).div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    rt.launch(SQUARE_SUM_BACKWARD, &[], &params, &[x.buffer(), links.buffer(), g.buffer(), dx.buffer()], groups)?;
    Ok(dx)
}

impl Tape {
    /// Activation regularization (AR): `alpha · mean(x²)` over a packed
    /// (N, F) activation, a (1) var (AWD-LSTM applies it to the dropped
    /// output of the last layer).
    pub fn activation_penalty(&mut self, x: Var, alpha: f32) -> Result<Var> {
        let numel = self.value(x)?.numel().max(1);
        let (out, links, params) = square_sum_forward(self.value(x)?, None, alpha / numel as f32)?;
        Ok(self.record(out, SquarePenaltyBackward { x, links, params }))
    }

    /// Temporal activation regularization (TAR): `beta · mean((x_t −
    /// x_{t−1})²)` over every pair of consecutive steps of each sequence in
    /// a packed (N, F) activation (AWD-LSTM applies it to the last layer's
    /// output before dropout). Zero when no sequence has two steps.
    pub fn temporal_penalty(&mut self, x: Var, batch: &PackedBatch, beta: f32) -> Result<Var> {
        let xv = self.value(x)?;
        let &[rows, cols] = xv.shape() else {
            return Err(Error::Shape {
                op: "temporal_penalty",
                message: format!("x must be (N, F), got {:?}", xv.shape()),
            });
        };
        if rows != batch.total() {
            return Err(Error::Shape {
                op: "temporal_penalty",
                message: format!("expected {} packed rows, got {rows}", batch.total()),
            });
        }
        let pairs = rows - batch.batch_sizes().first().copied().unwrap_or(0);
        let scale = if pairs == 0 { 0.0 } else { beta / (pairs * cols) as f32 };
        let links = temporal_links(batch);
        let links = Tensor::from_u32(self.device(), &links, &[links.len()])?;
        let (out, links, params) = square_sum_forward(self.value(x)?, Some(&links), scale)?;
        Ok(self.record(out, SquarePenaltyBackward { x, links, params }))
    }
}

/// Backward of the AR / TAR penalties.
#[derive(Debug)]
struct SquarePenaltyBackward {
    x: Var,
    links: Tensor,
    params: SquareSumParams,
}

impl Backward for SquarePenaltyBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        let dx = square_sum_backward(ctx.value(self.x), &self.links, g, self.params)?;
        ctx.accumulate(self.x, dx)
    }
}
