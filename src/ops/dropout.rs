//! Inverted dropout with hashed masks (shaders/dropout.wgsl): the mask is a
//! pure function of (seed, layer, element), so nothing is stored, backward
//! applies the same op to the gradient, and the CPU reference
//! (`rnn::spec::dropout_keep`) reproduces it bit for bit.

use crate::error::Result;
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::dim_u32;
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` override).
const WG: u32 = 256;

/// Mirrors `DropoutParams` in shaders/dropout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    rows: u32,
    cols: u32,
    seed_lo: u32,
    seed_hi: u32,
    layer: u32,
    prob: f32,
    scale: f32,
    _pad: u32,
}

const DROPOUT_APPLY: Kernel = Kernel {
    shader: Shader::Dropout,
    entry: "dropout_apply",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
};
const DROPOUT_DENSE: Kernel =
    Kernel { shader: Shader::Dropout, entry: "dropout_dense", storage: &[(1, Access::Read), (3, Access::ReadWrite)] };

impl DropoutParams {
    fn new(rows: usize, cols: usize, layer: usize, p: f32, seed: u64) -> Result<Self> {
        const OP: &str = "dropout";
        Ok(Self {
            rows: dim_u32(OP, "rows", rows)?,
            cols: dim_u32(OP, "cols", cols)?,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            layer: dim_u32(OP, "layer", layer)?,
            prob: p,
            scale: 1.0 / (1.0 - p),
            _pad: 0,
        })
    }
}

fn launch(kernel: Kernel, x: &Tensor, pack_index: Option<&Tensor>, params: DropoutParams) -> Result<Tensor> {
    let out = Tensor::uninit(x.device(), x.shape(), DType::F32)?;
    let rt = &x.device().rt;
    let elements = params.rows * params.cols;
    let groups = grid(elements.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    let mut buffers = vec![x.buffer()];
    buffers.extend(pack_index.map(Tensor::buffer));
    buffers.push(out.buffer());
    rt.launch(kernel, &[("WG", f64::from(WG))], &params, &buffers, groups)?;
    Ok(out)
}

/// Dropout of a packed (N, F) activation feeding recurrent layer `layer`,
/// with the mask indexed by padded position (`pack_index[r] = b·T + t`), so
/// it does not depend on packing.
pub(crate) fn dropout_packed(x: &Tensor, pack_index: &Tensor, layer: usize, p: f32, seed: u64) -> Result<Tensor> {
    let &[rows, cols] = x.shape() else { unreachable!("packed activations are 2-D") };
    launch(DROPOUT_APPLY, x, Some(pack_index), DropoutParams::new(rows, cols, layer, p, seed)?)
}

/// Dropout of any tensor, the mask indexed by element.
pub(crate) fn dropout_dense(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    launch(DROPOUT_DENSE, x, None, DropoutParams::new(1, x.numel(), 0, p, seed)?)
}
