//! General matrix multiply (shaders/gemm.wgsl), the workhorse of input
//! projections and weight gradients.

use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel, Shader};
use crate::ops::{check_no_alias, check_same_device, copy_padded, copy_padded_into, dim_u32, Block};
use crate::tensor::{DType, Tensor};

crate::kernels::shader_params! {
    /// Mirrors `GemmParams` in shaders/gemm.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct GemmParams mirrors "GemmParams" in Gemm {
        m: u32,
        n: u32,
        k: u32,
        lda: u32,
        ldb: u32,
        ldc: u32,
        stride_a: u32,
        stride_b: u32,
        stride_c: u32,
        alpha: f32,
        beta: f32,
        _pad: u32,
    }
}

const BINDINGS: &[(u32, Access)] = &[(1, Access::Read), (2, Access::Read), (3, Access::Read), (4, Access::ReadWrite)];
const GEMM_REGISTER: Kernel = Kernel { shader: Shader::Gemm, entry: "gemm_register", storage: BINDINGS, cell: &[] };
const GEMM_VEC4: Kernel = Kernel { shader: Shader::GemmVec4, entry: "gemm_vec4", storage: BINDINGS, cell: &[] };
const GEMM_SHARED: Kernel = Kernel { shader: Shader::Gemm, entry: "gemm_shared", storage: BINDINGS, cell: &[] };
const GEMM_SUBGROUP: Kernel =
    Kernel { shader: Shader::GemmSubgroup, entry: "gemm_subgroup", storage: BINDINGS, cell: &[] };
/// `gemm_subgroup` that also writes the column sums of A at binding 5.
const GEMM_SUBGROUP_SUMS: Kernel = Kernel {
    shader: Shader::GemmSubgroup,
    entry: "gemm_subgroup_sums",
    storage: &[(1, Access::Read), (2, Access::Read), (3, Access::Read), (4, Access::ReadWrite), (5, Access::ReadWrite)],
    cell: &[],
};
/// Columns of C one `gemm_subgroup` workgroup (one subgroup) computes:
/// [`VEC4_TILE_COLS`] per lane.
const SUBGROUP_BLOCK_COLS: u32 = crate::device::SUBGROUP_SIZE * VEC4_TILE_COLS;

/// `gemm_register` workgroup shape (x over N, y over M); each invocation
/// owns a 4×4 block of C. The shape barely matters on lavapipe (3.1–3.6
/// GFLOP/s at 512³ for every shape tried): loads dominate.
const REGISTER_WG: (u32, u32) = (16, 16);
/// `gemm_vec4` workgroup shape. Swept on lavapipe (2 cores) over tiles of
/// 16×16, 16×32 and 32×8 per invocation and workgroups of 8×1, 8×2, 8×4,
/// 16×1 on 512³, 2560×128·128×512, 1024³ and 64×128·128×512: 16×16 tiles
/// in 16×1 workgroups were best or near-best on all four (~20–25 GFLOP/s;
/// single runs vary by ±20%). x stays a multiple of the 8-lane SIMD width.
/// Later (issue 10, third session), with the bench step's four GEMMs timed
/// in place: 32×16 tiles 45 ms per step, 16×16 53, 16×32 67, 32×32 59.
const VEC4_WG: (u32, u32) = (16, 1);

/// The `gemm_vec4` workgroup shape for N columns: [`VEC4_WG`], made
/// narrower in x (and as much taller in y) when N has fewer than 16 tiles,
/// so no invocation computes a tile past N that is never stored (N = 128,
/// the weight-gradient and dX GEMMs of H = 128, has 8: 16×1 wasted half of
/// every workgroup; dW_hh of H = 64 has 4). The shape changes no result:
/// each invocation's arithmetic is the same. Below 16 tiles a workgroup
/// is one 8-lane SIMD group (x·y = 8), not 16: the same useful lanes in
/// half the invocations, so a small M still spreads over several
/// workgroups (cores). (Vec4 runs on software adapters, where a narrow x
/// costs no coalescing.)
fn vec4_workgroup(n: u32) -> (u32, u32) {
    let (wx, wy) = VEC4_WG;
    let x = n.div_ceil(VEC4_TILE_COLS).next_power_of_two().min(wx);
    if x == wx {
        (wx, wy)
    } else {
        (x, (8 / x).max(1))
    }
}
/// Rows of C per `gemm_vec4` invocation (the shader's 8×4 grid of mat4x4
/// accumulators) ...
pub(crate) const VEC4_TILE_ROWS: u32 = 32;
/// ... and columns.
pub(crate) const VEC4_TILE_COLS: u32 = 16;
/// Block of C one `gemm_shared` workgroup computes.
pub(crate) const SHARED_BLOCK: u32 = 64;

/// Options of [`gemm`]: `C = alpha · op(A) · op(B) + beta · C (+ bias)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmOptions {
    /// Use Aᵀ: A is stored (K, M).
    pub trans_a: bool,
    /// Use Bᵀ: B is stored (N, K).
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old C; 0 means C's old contents are ignored.
    pub beta: f32,
}

impl Default for GemmOptions {
    fn default() -> Self {
        Self { trans_a: false, trans_b: false, alpha: 1.0, beta: 0.0 }
    }
}

/// Which GEMM kernel to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmVariant {
    /// Scalar loads into 4×4 register tiles, no barriers: works for every
    /// shape; the fallback of [`GemmVariant::Vec4`].
    Register,
    /// 32×16 register tiles fed by vec4 loads, no barriers: best on
    /// software adapters (lavapipe), where each load is a per-lane loop and
    /// a barrier a coroutine switch. Needs K % 4 == 0, N % 4 == 0 and
    /// M % 4 == 0 when `trans_a`; other shapes run on zero-padded copies
    /// of the operands when the product is large, else
    /// [`GemmVariant::Register`].
    Vec4,
    /// Shared-memory tiles: best on real GPUs.
    Shared,
    /// [`GemmVariant::Vec4`]'s tiles with the A operand loaded once per
    /// subgroup and shared by `subgroupBroadcast`: 20 loads per 2,048
    /// multiply-adds instead of 48, the same arithmetic, so the same bits.
    /// Best on lavapipe (1.7–2.4× `Vec4` on the bench step's GEMMs). Needs
    /// a device with subgroups of [`crate::device::SUBGROUP_SIZE`]
    /// ([`crate::DeviceInfo::subgroup_size`]; else an error); other shapes
    /// are handled as `Vec4` handles them (padded copies or `Register`).
    Subgroup,
}

impl GemmVariant {
    /// The variant wgrnn uses on a device: on software adapters the
    /// subgroup kernel where the device has subgroups of
    /// [`crate::device::SUBGROUP_SIZE`], else vec4 register tiles;
    /// shared-memory tiles elsewhere.
    pub fn for_device(device: &crate::Device) -> Self {
        let info = device.info();
        match (info.is_software, info.subgroup_size) {
            (true, Some(crate::device::SUBGROUP_SIZE)) => GemmVariant::Subgroup,
            (true, _) => GemmVariant::Vec4,
            (false, _) => GemmVariant::Shared,
        }
    }

    /// Whether the device can run this variant (only
    /// [`GemmVariant::Subgroup`] needs anything: subgroups of
    /// [`crate::device::SUBGROUP_SIZE`]).
    pub fn runs_on(self, device: &crate::Device) -> bool {
        self != GemmVariant::Subgroup || device.info().subgroup_size == Some(crate::device::SUBGROUP_SIZE)
    }
}

/// A 2-D or 3-D (batched) tensor as (batch or None, rows, cols).
fn dims(op: &'static str, name: &str, t: &Tensor) -> Result<(Option<usize>, usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((None, r, c)),
        [b, r, c] => Ok((Some(b), r, c)),
        ref s => Err(Error::Shape { op, message: format!("{name} must be 2-D or 3-D (batched), got {s:?}") }),
    }
}

/// `C = alpha · op(A) · op(B) + beta · C + bias`, with the kernel chosen
/// for the device ([`GemmVariant::for_device`]).
///
/// Shapes: op(A) (M, K), op(B) (K, N), C (M, N), bias (N) broadcast over
/// rows. Batched: any of A, B given as (batch, ·, ·) multiplies batch by
/// batch; a 2-D A or B is shared by every batch; C must then be
/// (batch, M, N).
pub fn gemm(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, c: &Tensor, opts: GemmOptions) -> Result<()> {
    gemm_with_variant(a, b, bias, c, opts, GemmVariant::for_device(a.device()))
}

/// [`gemm`] with an explicit kernel choice (tests and benchmarks run both).
pub fn gemm_with_variant(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    opts: GemmOptions,
    variant: GemmVariant,
) -> Result<()> {
    gemm_impl(a, b, bias, c, opts, variant, None)
}

/// `C = alpha · Aᵀ · op(B) + beta · C` (A stored (K, M): `opts.trans_a`
/// must be set) and `sums[m] = Σ_k A[k, m] + beta · sums[m]`: a weight
/// gradient dW = dYᵀ·X and its bias gradient Σ_rows dY (PyTorch's
/// `grad_weight`, `grad_bias`) in one pass over dY where the device runs
/// the subgroup kernel; elsewhere [`gemm`] then [`sum_cols`]. Either way
/// the same bits as those two calls. With `beta == 0` the old contents
/// of `c` and `sums` are ignored.
///
/// [`sum_cols`]: crate::ops::sum_cols
pub fn gemm_and_sum_a(a: &Tensor, b: &Tensor, c: &Tensor, opts: GemmOptions, sums: &Tensor) -> Result<()> {
    gemm_impl(a, b, None, c, opts, GemmVariant::for_device(a.device()), Some(sums))
}

/// [`gemm_with_variant`], and the column sums of A into `a_sums` when given
/// ([`gemm_and_sum_a`]).
fn gemm_impl(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    opts: GemmOptions,
    variant: GemmVariant,
    a_sums: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "gemm";
    if let Some(sums) = a_sums {
        check_a_sums(a, b, c, sums, opts)?;
    }
    let mut all = vec![a, b, c];
    all.extend(bias);
    check_same_device(OP, &all)?;
    for t in &all {
        t.expect_dtype(OP, DType::F32)?;
    }
    let mut inputs = vec![a, b];
    inputs.extend(bias);
    check_no_alias(OP, c, &inputs)?;

    let (ba, ar, ac) = dims(OP, "A", a)?;
    let (bb, br, bc) = dims(OP, "B", b)?;
    let (bc_, cr, cc) = dims(OP, "C", c)?;
    let (m, k) = if opts.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if opts.trans_b { (bc, br) } else { (br, bc) };
    if k != kb {
        return Err(Error::Shape {
            op: OP,
            message: format!(
                "inner dimensions differ: op(A) is ({m}, {k}) from A {:?} (trans_a={}), op(B) is ({kb}, {n}) from B {:?} (trans_b={})",
                a.shape(), opts.trans_a, b.shape(), opts.trans_b
            ),
        });
    }
    if (cr, cc) != (m, n) {
        return Err(Error::Shape {
            op: OP,
            message: format!("C must be ({m}, {n}) for op(A)·op(B), got {:?}", c.shape()),
        });
    }
    let batch = match (ba, bb) {
        (Some(x), Some(y)) if x != y => {
            return Err(Error::Shape { op: OP, message: format!("batch sizes differ: A {x}, B {y}") });
        }
        (Some(x), _) | (None, Some(x)) => x,
        (None, None) => 1,
    };
    if bc_.unwrap_or(1) != batch || (bc_.is_none() && (ba.is_some() || bb.is_some())) {
        return Err(Error::Shape {
            op: OP,
            message: format!("C must be ({batch}, {m}, {n}) for batched inputs, got {:?}", c.shape()),
        });
    }
    if let Some(bias) = bias {
        if bias.shape() != [n] {
            return Err(Error::Shape { op: OP, message: format!("bias must be [{n}], got {:?}", bias.shape()) });
        }
    }

    let u = |what, v| dim_u32(OP, what, v);
    let params = GemmParams {
        m: u("M", m)?,
        n: u("N", n)?,
        k: u("K", k)?,
        lda: u("lda", ac)?,
        ldb: u("ldb", bc)?,
        ldc: u("ldc", n)?,
        stride_a: if ba.is_some() { u("A batch stride", ar * ac)? } else { 0 },
        stride_b: if bb.is_some() { u("B batch stride", br * bc)? } else { 0 },
        stride_c: u("C batch stride", m * n)?,
        alpha: opts.alpha,
        beta: opts.beta,
        _pad: 0,
    };
    let batch = u("batch", batch)?;
    let flags = [
        ("TRANS_A", f64::from(u8::from(opts.trans_a))),
        ("TRANS_B", f64::from(u8::from(opts.trans_b))),
        ("HAS_BIAS", f64::from(u8::from(bias.is_some()))),
    ];
    // Without a bias, binding 3 gets A: legal (both read-only), never read.
    let bias_buffer = bias.map_or(a.buffer(), |t| t.buffer());
    let buffers = [a.buffer(), b.buffer(), bias_buffer, c.buffer()];
    let rt = &a.device().rt;
    if !variant.runs_on(a.device()) {
        return Err(Error::Config(format!(
            "gemm: the {variant:?} kernel needs subgroups of {} lanes; this device ({}) has {}",
            crate::device::SUBGROUP_SIZE,
            a.device().info().name,
            a.device().info().subgroup_size.map_or("none".to_string(), |s| format!("subgroups of {s}"))
        )));
    }
    let vec4_family = matches!(variant, GemmVariant::Vec4 | GemmVariant::Subgroup);
    let vec4_ok = k % 4 == 0 && n % 4 == 0 && (!opts.trans_a || m % 4 == 0);
    if let Some(sums) = a_sums {
        if variant != GemmVariant::Subgroup || batch != 1 || !vec4_ok {
            // No fused kernel here: the two passes, the same bits.
            gemm_impl(a, b, bias, c, opts, variant, None)?;
            return crate::ops::sum_cols(a, sums, opts.beta);
        }
        let groups = [params.n.div_ceil(SUBGROUP_BLOCK_COLS), params.m.div_ceil(VEC4_TILE_ROWS), 1];
        let buffers = [a.buffer(), b.buffer(), bias_buffer, c.buffer(), sums.buffer()];
        return rt.launch(GEMM_SUBGROUP_SUMS, &flags, &params, &buffers, groups);
    }
    if vec4_family && !vec4_ok && m * n * k >= PAD_MIN_MACS {
        return gemm_vec4_padded(a, b, bias, c, opts, [ba, bb, bc_], [m, n], variant);
    }
    let variant = if vec4_family && !vec4_ok { GemmVariant::Register } else { variant };
    match variant {
        GemmVariant::Register => {
            let (wx, wy) = REGISTER_WG;
            let constants = [flags[0], flags[1], flags[2], ("WG_X", f64::from(wx)), ("WG_Y", f64::from(wy))];
            let groups = [params.n.div_ceil(wx * 4), params.m.div_ceil(wy * 4), batch];
            rt.launch(GEMM_REGISTER, &constants, &params, &buffers, groups)
        }
        GemmVariant::Vec4 => {
            let (wx, wy) = vec4_workgroup(params.n);
            let constants = [flags[0], flags[1], flags[2], ("WG_X", f64::from(wx)), ("WG_Y", f64::from(wy))];
            let groups = [params.n.div_ceil(wx * VEC4_TILE_COLS), params.m.div_ceil(wy * VEC4_TILE_ROWS), batch];
            rt.launch(GEMM_VEC4, &constants, &params, &buffers, groups)
        }
        GemmVariant::Shared => {
            let groups = [params.n.div_ceil(SHARED_BLOCK), params.m.div_ceil(SHARED_BLOCK), batch];
            rt.launch(GEMM_SHARED, &flags, &params, &buffers, groups)
        }
        GemmVariant::Subgroup => {
            let groups = [params.n.div_ceil(SUBGROUP_BLOCK_COLS), params.m.div_ceil(VEC4_TILE_ROWS), batch];
            rt.launch(GEMM_SUBGROUP, &flags, &params, &buffers, groups)
        }
    }
}

/// The checks [`gemm_and_sum_a`] adds to [`gemm`]'s: a transposed A and
/// sums of shape (M) that share no memory with A, B or C.
fn check_a_sums(a: &Tensor, b: &Tensor, c: &Tensor, sums: &Tensor, opts: GemmOptions) -> Result<()> {
    const OP: &str = "gemm_and_sum_a";
    if !opts.trans_a {
        return Err(Error::Shape {
            op: OP,
            message: "A must be transposed (trans_a): its column sums are taken".into(),
        });
    }
    check_same_device(OP, &[a, sums])?;
    sums.expect_dtype(OP, DType::F32)?;
    let m = *a.shape().last().unwrap_or(&0);
    if a.shape().len() != 2 || sums.shape() != [m] {
        return Err(Error::Shape {
            op: OP,
            message: format!("A must be 2-D (K, M) and sums (M); got A {:?}, sums {:?}", a.shape(), sums.shape()),
        });
    }
    check_no_alias(OP, sums, &[a, b, c])
}

/// GEMMs at least this big (multiply-adds) whose shape the vec4 kernel
/// cannot take (a vocabulary of 4,415 as N, say) run it on zero-padded
/// copies instead of falling back to the scalar kernel: the copies cost a
/// few memory passes, the scalar kernel ~5× the time on lavapipe (2.4 vs
/// 14 GFLOP/s for (500×256)·(256×4415)). Smaller ones are not worth the
/// extra dispatches.
const PAD_MIN_MACS: usize = 1 << 18;

/// A vec4-family GEMM (`variant`: Vec4 or Subgroup) on copies of A, B,
/// bias (and C when beta ≠ 0) padded with
/// zeros to widths that are multiples of 4 (and M too when `trans_a`):
/// zero columns of K add nothing, extra rows and columns of C are dropped
/// when the product is copied back into `c`. `batches` are the batch
/// dimensions of A, B and C; `mn` is (M, N).
fn gemm_vec4_padded(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    opts: GemmOptions,
    batches: [Option<usize>; 3],
    [m, n]: [usize; 2],
    variant: GemmVariant,
) -> Result<()> {
    let up = |x: usize| x.div_ceil(4) * 4;
    // Each operand as stored, padded to aligned widths (and rows: a
    // transposed A reads M four rows at a time, a B's rows are K or N).
    let pad = |t: &Tensor, batch: Option<usize>, pad_rows: bool| -> Result<Tensor> {
        let &[.., rows, cols] = t.shape() else {
            return Err(Error::Shape {
                op: "gemm",
                message: format!("operand must be 2-D or 3-D, got {:?}", t.shape()),
            });
        };
        let (rows_p, cols_p) = (if pad_rows { up(rows) } else { rows }, up(cols));
        if (rows_p, cols_p) == (rows, cols) {
            return Ok(t.clone());
        }
        copy_padded(t, Block { rows, cols, ld: cols, batch_stride: rows * cols }, batch, rows_p, cols_p)
    };
    let [ba, bb, bc] = batches;
    let a_p = pad(a, ba, opts.trans_a)?;
    let b_p = pad(b, bb, true)?;
    let (m_p, n_p) = (if opts.trans_a { up(m) } else { m }, up(n));
    let bias_p = match bias {
        Some(t) => {
            Some(copy_padded(t, Block { rows: 1, cols: n, ld: n, batch_stride: 0 }, None, 1, n_p)?.reshape(&[n_p])?)
        }
        None => None,
    };
    let c_block = Block { rows: m, cols: n, ld: n, batch_stride: m * n };
    let c_p = if opts.beta != 0.0 {
        copy_padded(c, c_block, bc, m_p, n_p)?
    } else {
        let shape: Vec<usize> = bc.into_iter().chain([m_p, n_p]).collect();
        Tensor::uninit(c.device(), &shape, DType::F32)?
    };
    gemm_with_variant(&a_p, &b_p, bias_p.as_ref(), &c_p, opts, variant)?;
    copy_padded_into(&c_p, Block { rows: m, cols: n, ld: n_p, batch_stride: m_p * n_p }, c)
}

/// `A · B` for 2-D A (M, K) and B (K, N), returning a new (M, N) tensor.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (&m, &n) = match (a.shape().first(), b.shape().last()) {
        (Some(m), Some(n)) if a.shape().len() == 2 && b.shape().len() == 2 => (m, n),
        _ => {
            return Err(Error::Shape {
                op: "matmul",
                message: format!("matmul takes 2-D tensors, got {:?} and {:?}", a.shape(), b.shape()),
            })
        }
    };
    let c = Tensor::uninit(a.device(), &[m, n], DType::F32)?;
    gemm(a, b, None, &c, GemmOptions::default())?;
    Ok(c)
}
