//! Row gather by index (shaders/gather.wgsl).

use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::{check_same_device, dim_u32};
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` override).
const WG: u32 = 256;

crate::kernels::shader_params! {
    /// Mirrors `GatherParams` in shaders/gather.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct GatherParams mirrors "GatherParams" in Gather {
        rows: u32,
        cols: u32,
        count: u32,
        _pad: u32,
    }
}

const GATHER_ROWS: Kernel = Kernel {
    shader: Shader::Gather,
    entry: "gather_rows",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
    cell: &[],
};

/// [`GATHER_ROWS`] four columns per invocation (cols % 4 == 0).
const GATHER_ROWS_VEC4: Kernel = Kernel {
    shader: Shader::Gather,
    entry: "gather_rows_vec4",
    storage: &[(4, Access::Read), (2, Access::Read), (5, Access::ReadWrite)],
    cell: &[],
};

/// `out[i, :] = table[idx[i], :]` — table (rows, cols) f32, idx any shape of
/// u32 with `count` elements, returns (count, cols).
///
/// Indices must have been uploaded from the host (their maximum is checked
/// here, before any GPU work); an index ≥ rows is an `Err`.
pub fn gather_rows(table: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let cols = checked_gather(table, idx)?;
    let out = Tensor::uninit(table.device(), &[idx.numel(), cols], DType::F32)?;
    launch_gather(table, idx, &out)?;
    Ok(out)
}

/// [`gather_rows`] into `out`, which must be f32 (count, cols): a caller
/// that needs the rows in a buffer of its own (a padded one) saves a copy.
pub(crate) fn gather_rows_into(table: &Tensor, idx: &Tensor, out: &Tensor) -> Result<()> {
    let cols = checked_gather(table, idx)?;
    if out.shape() != [idx.numel(), cols] || out.dtype() != DType::F32 {
        return Err(Error::Shape {
            op: "gather_rows",
            message: format!("output must be f32 ({}, {cols}), got {:?}", idx.numel(), out.shape()),
        });
    }
    launch_gather(table, idx, out)
}

/// Checks `gather_rows`' operands; returns the table's columns.
fn checked_gather(table: &Tensor, idx: &Tensor) -> Result<usize> {
    const OP: &str = "gather_rows";
    check_same_device(OP, &[table, idx])?;
    table.expect_dtype(OP, DType::F32)?;
    idx.expect_dtype(OP, DType::U32)?;
    let &[rows, cols] = table.shape() else {
        return Err(Error::Shape {
            op: OP,
            message: format!("table must be 2-D (rows, cols), got {:?}", table.shape()),
        });
    };
    match idx.max_index() {
        Some(max) if (max as usize) < rows => {}
        Some(max) => {
            return Err(Error::OutOfRange {
                op: OP,
                message: format!("index {max} is out of range for a table of {rows} rows"),
            })
        }
        None => {
            return Err(Error::OutOfRange {
                op: OP,
                message: "index tensor has no host-checked bound; upload indices with Tensor::from_u32".into(),
            })
        }
    }
    Ok(cols)
}

/// [`gather_rows`] where an index ≥ rows deliberately yields a zero row
/// (unpacking: padded positions). For index tensors wgrnn builds itself,
/// so no host-side bound is required.
pub(crate) fn gather_rows_or_zero(table: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let &[_, cols] = table.shape() else {
        return Err(Error::Shape { op: "gather_rows", message: format!("table must be 2-D, got {:?}", table.shape()) });
    };
    let out = Tensor::uninit(table.device(), &[idx.numel(), cols], DType::F32)?;
    launch_gather(table, idx, &out)?;
    Ok(out)
}

/// Records `out[i, :] = table[idx[i], :]` (zero past the table's rows);
/// out is (count, cols).
fn launch_gather(table: &Tensor, idx: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "gather_rows";
    let &[rows, cols] = table.shape() else { unreachable!("callers check the table is 2-D") };
    let count = idx.numel();
    let total = dim_u32(OP, "output elements", count * cols)?;
    let params = GatherParams {
        rows: dim_u32(OP, "rows", rows)?,
        cols: dim_u32(OP, "cols", cols)?,
        count: dim_u32(OP, "count", count)?,
        _pad: 0,
    };
    let rt = &table.device().rt;
    let buffers = [table.buffer(), idx.buffer(), out.buffer()];
    // Whole vec4s per row, on 16-byte aligned bindings: the vec4 entry,
    // which copies the same values.
    let (kernel, invocations) = if cols.is_multiple_of(4) && buffers.iter().all(|b| b.offset.is_multiple_of(16)) {
        (GATHER_ROWS_VEC4, total / 4)
    } else {
        (GATHER_ROWS, total)
    };
    let groups = grid(invocations.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    rt.launch(kernel, &[("WG", f64::from(WG))], &params, &buffers, groups)
}
