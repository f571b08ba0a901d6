//! Strided block copy with zero fill (shaders/pad.wgsl): pads a GEMM
//! operand to aligned width and copies a padded product back. CPU
//! reference: [`crate::reference::copy_padded`].

use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::{check_same_device, dim_u32};
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` override).
const WG: u32 = 256;

crate::kernels::shader_params! {
    /// Mirrors `PadParams` in shaders/pad.wgsl.
    #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct PadParams mirrors "PadParams" in Pad {
        rows: u32,
        cols: u32,
        src_ld: u32,
        src_batch: u32,
        out_rows: u32,
        out_cols: u32,
        batch: u32,
        _pad: u32,
    }
}

const COPY_PADDED: Kernel = Kernel {
    shader: Shader::Pad,
    entry: "copy_padded",
    storage: &[(1, Access::Read), (2, Access::ReadWrite)],
    cell: &[],
};

/// A block of a source matrix: `rows` × `cols` elements, rows `ld` apart,
/// batches `batch_stride` apart (0: one matrix shared by every batch).
#[derive(Debug, Clone, Copy)]
pub struct Block {
    /// Rows of the block.
    pub rows: usize,
    /// Columns of the block.
    pub cols: usize,
    /// Elements between the starts of consecutive rows.
    pub ld: usize,
    /// Elements between batches (0: one matrix for every batch).
    pub batch_stride: usize,
}

/// Copies `block` of `src` into a new (batch, out_rows, out_cols) tensor
/// (2-D when `batch` is None) with zeros outside the block.
pub fn copy_padded(
    src: &Tensor,
    block: Block,
    batch: Option<usize>,
    out_rows: usize,
    out_cols: usize,
) -> Result<Tensor> {
    let shape: Vec<usize> = batch.into_iter().chain([out_rows, out_cols]).collect();
    let out = Tensor::uninit(src.device(), &shape, DType::F32)?;
    copy_padded_into(src, block, &out)?;
    Ok(out)
}

/// [`copy_padded`] into an existing `out` (its shape gives the grid).
pub fn copy_padded_into(src: &Tensor, block: Block, out: &Tensor) -> Result<()> {
    const OP: &str = "copy_padded";
    let (batch, out_rows, out_cols) = match *out.shape() {
        [r, c] => (1, r, c),
        [b, r, c] => (b, r, c),
        ref s => {
            return Err(Error::Shape { op: OP, message: format!("out must be 2-D or 3-D, got {s:?}") });
        }
    };
    if batch * out_rows * out_cols == 0 {
        return Ok(()); // nothing to write (a batch of 0)
    }
    if block.rows == 0 || block.cols == 0 {
        return Err(Error::Empty { op: OP, what: "source block".into() });
    }
    check_same_device(OP, &[src, out])?;
    src.expect_dtype(OP, DType::F32)?;
    out.expect_dtype(OP, DType::F32)?;
    // The last element the block reads must lie inside `src`.
    let last = (batch - 1) * block.batch_stride + (block.rows - 1) * block.ld + block.cols - 1;
    if block.cols > block.ld || last >= src.numel() {
        return Err(Error::Shape {
            op: OP,
            message: format!("{block:?} over {batch} batches reads past a source of {} elements", src.numel()),
        });
    }
    let params = PadParams {
        rows: dim_u32(OP, "rows", block.rows)?,
        cols: dim_u32(OP, "cols", block.cols)?,
        src_ld: dim_u32(OP, "src_ld", block.ld)?,
        src_batch: dim_u32(OP, "src batch stride", block.batch_stride)?,
        out_rows: dim_u32(OP, "out_rows", out_rows)?,
        out_cols: dim_u32(OP, "out_cols", out_cols)?,
        batch: dim_u32(OP, "batch", batch)?,
        _pad: 0,
    };
    let total = dim_u32(OP, "output elements", batch * out_rows * out_cols)?;
    let rt = &out.device().rt;
    let groups = grid(total.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    rt.launch(COPY_PADDED, &[("WG", f64::from(WG))], &params, &[src.buffer(), out.buffer()], groups)
}
