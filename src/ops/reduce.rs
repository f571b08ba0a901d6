//! Row and column sums (shaders/reduce.wgsl).

use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::{check_no_alias, check_same_device, dim_u32};
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup (the shader's `WG` override).
const WG: u32 = 64;

crate::kernels::shader_params! {
    /// Mirrors `ReduceParams` in shaders/reduce.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct ReduceParams mirrors "ReduceParams" in Reduce {
        m: u32,
        n: u32,
        beta: f32,
        _pad: u32,
    }
}

const BINDINGS: &[(u32, Access)] = &[(1, Access::Read), (2, Access::ReadWrite)];
const SUM_ROWS: Kernel = Kernel { shader: Shader::Reduce, entry: "sum_rows", storage: BINDINGS, cell: &[] };
const SUM_COLS: Kernel = Kernel { shader: Shader::Reduce, entry: "sum_cols", storage: BINDINGS, cell: &[] };
const SUM_COLS_VEC4: Kernel = Kernel {
    shader: Shader::Reduce,
    entry: "sum_cols_vec4",
    storage: &[(3, Access::Read), (4, Access::ReadWrite)],
    cell: &[],
};

/// Validates x (M, N) and out (`out_len`); returns (M, N).
fn check(op: &'static str, x: &Tensor, out: &Tensor, rows_out: bool) -> Result<(u32, u32)> {
    check_same_device(op, &[x, out])?;
    check_no_alias(op, out, &[x])?;
    x.expect_dtype(op, DType::F32)?;
    out.expect_dtype(op, DType::F32)?;
    let &[m, n] = x.shape() else {
        return Err(Error::Shape { op, message: format!("x must be 2-D (M, N), got {:?}", x.shape()) });
    };
    let want = if rows_out { m } else { n };
    if out.shape() != [want] {
        return Err(Error::Shape {
            op,
            message: format!("x is {:?} so out must be [{want}], got {:?}", x.shape(), out.shape()),
        });
    }
    Ok((dim_u32(op, "M", m)?, dim_u32(op, "N", n)?))
}

fn launch(kernel: Kernel, x: &Tensor, out: &Tensor, m: u32, n: u32, beta: f32, outputs: u32) -> Result<()> {
    let rt = &out.device().rt;
    let groups = grid(outputs.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    let params = ReduceParams { m, n, beta, _pad: 0 };
    rt.launch(kernel, &[("WG", f64::from(WG))], &params, &[x.buffer(), out.buffer()], groups)
}

/// `out[m] = Σ_n x[m, n] + beta · out[m]`: x (M, N), out (M). With
/// `beta == 0` the old contents of `out` are ignored.
pub fn sum_rows(x: &Tensor, out: &Tensor, beta: f32) -> Result<()> {
    let (m, n) = check("sum_rows", x, out, true)?;
    launch(SUM_ROWS, x, out, m, n, beta, m)
}

/// `out[n] = Σ_m x[m, n] + beta · out[n]`: x (M, N), out (N). The bias
/// gradient of a linear layer; `beta = 1` accumulates.
pub fn sum_cols(x: &Tensor, out: &Tensor, beta: f32) -> Result<()> {
    let (m, n) = check("sum_cols", x, out, false)?;
    if n.is_multiple_of(4) {
        // Four columns per invocation, the same sums (sum_cols_vec4).
        return launch(SUM_COLS_VEC4, x, out, m, n, beta, n / 4);
    }
    launch(SUM_COLS, x, out, m, n, beta, n)
}
