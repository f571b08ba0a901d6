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

crate::kernels::shader_params! {
    /// Mirrors `DropoutParams` in shaders/dropout.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct DropoutParams mirrors "DropoutParams" in Dropout {
        rows: u32,
        cols: u32,
        seed_lo: u32,
        seed_hi: u32,
        layer: u32,
        prob: f32,
        scale: f32,
        whole_rows: u32,
    }
}

const DROPOUT_APPLY: Kernel = Kernel {
    shader: Shader::Dropout,
    entry: "dropout_apply",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};
const DROPOUT_KEYED: Kernel = Kernel {
    shader: Shader::Dropout,
    entry: "dropout_keyed",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};
const DROPOUT_DENSE: Kernel =
    Kernel { shader: Shader::Dropout, entry: "dropout_dense", storage: &[(1, Access::Read), (3, Access::ReadWrite)], cell: &[] };

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
            whole_rows: 0,
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

/// Dropout of (N, F) rows with a key per row (`keys`, (N) u32): with
/// `whole_rows` the mask unit is the key (every row with that key kept or
/// dropped as a whole: AWD-LSTM's embedding dropout, keyed by token id);
/// without, it is (key, feature) (a mask shared by every row with the same
/// key: locked/variational dropout keyed by sequence, so one mask is shared
/// over time). Backward is the same op on the gradient.
pub(crate) fn dropout_keyed(x: &Tensor, keys: &Tensor, whole_rows: bool, p: f32, seed: u64) -> Result<Tensor> {
    const OP: &str = "dropout_keyed";
    let &[rows, cols] = x.shape() else {
        return Err(crate::error::Error::Shape { op: OP, message: format!("x must be (N, F), got {:?}", x.shape()) });
    };
    if keys.shape() != [rows] || keys.dtype() != DType::U32 {
        return Err(crate::error::Error::Shape {
            op: OP,
            message: format!("keys must be ({rows}) u32, got {:?} {:?}", keys.shape(), keys.dtype()),
        });
    }
    let mut params = DropoutParams::new(rows, cols, 0, p, seed)?;
    params.whole_rows = u32::from(whole_rows);
    if !whole_rows {
        // The mask index key·F + f must stay in u32.
        let max_key = keys.max_index().unwrap_or(0) as usize;
        dim_u32(OP, "key · features", (max_key + 1) * cols)?;
    }
    launch(DROPOUT_KEYED, x, Some(keys), params)
}
