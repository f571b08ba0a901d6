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
        k_begin: u32,
        k_end: u32,
        n_begin: u32,
        n_end: u32,
        b_shift: u32,
        k_continue: u32,
        has_bias: u32,
        wg_cols: u32,
        slab_elems: u32,
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
/// Bindings of the windowed GEMM: [`BINDINGS`], the uniform window of B and
/// the partial product a split over k continues from.
const WINDOW_BINDINGS: &[(u32, Access)] = &[
    (1, Access::Read),
    (2, Access::Read),
    (3, Access::Read),
    (4, Access::ReadWrite),
    (6, Access::Uniform),
    (9, Access::Uniform),
    (10, Access::Uniform),
    (11, Access::Uniform),
    (7, Access::Read),
];
/// `gemm_subgroup` with op(B) from uniform windows (up to four per dispatch).
const GEMM_SUBGROUP_WINDOW: Kernel =
    Kernel { shader: Shader::GemmSubgroupWindow, entry: "gemm_subgroup_window", storage: WINDOW_BINDINGS, cell: &[] };
/// `gemm_subgroup_sums` with op(B) from a uniform window.
const GEMM_SUBGROUP_WINDOW_SUMS: Kernel = Kernel {
    shader: Shader::GemmSubgroupWindow,
    entry: "gemm_subgroup_window_sums",
    storage: &[
        (1, Access::Read),
        (2, Access::Read),
        (3, Access::Read),
        (4, Access::ReadWrite),
        (5, Access::ReadWrite),
        (6, Access::Uniform),
        (9, Access::Uniform),
        (10, Access::Uniform),
        (11, Access::Uniform),
        (7, Access::Read),
        (8, Access::Read),
    ],
    cell: &[],
};
/// Bytes of the uniform window `gemm_subgroup_window` reads op(B) from
/// (its `B_WINDOW_VEC4S` vec4s): the 64 KiB every adapter allows a uniform
/// binding (WebGPU's default `max_uniform_buffer_binding_size`).
pub(crate) const B_WINDOW_BYTES: u64 = 65536;
/// ... in f32 elements.
const B_WINDOW_ELEMENTS: usize = (B_WINDOW_BYTES / 4) as usize;
/// Most windows one dispatch over k reads B from (bindings 6, 9, 10, 11 of
/// gemm_b_uniform.wgsl, one loop each). Each window of a k split makes the
/// dispatch continue from the partial product before it; at one window
/// per dispatch that traffic was twice the A loads in the bench step's
/// weight gradients. Four: those GEMMs took 30% less time (20 → 5
/// dispatches each), and a cold start of the bench 27% more (82 → 105 s
/// of LLVM compiles).
const B_WINDOW_SLABS: usize = 4;
/// At most this many dispatches for one windowed GEMM; a larger op(B) runs
/// unsplit (`gemm_subgroup`), where the launches would cost more than the
/// loads saved.
const MAX_WINDOWS: usize = 64;

/// Columns of C one `gemm_subgroup` workgroup (one subgroup) computes:
/// [`VEC4_TILE_COLS`] per lane.
const SUBGROUP_BLOCK_COLS: u32 = crate::device::SUBGROUP_SIZE * VEC4_TILE_COLS;

/// `gemm_register` workgroup shape (x over N, y over M); each invocation
/// owns a 4×4 block of C. The shape barely matters on lavapipe (3.1–3.6
/// GFLOP/s at 512³ for every shape tried): loads dominate.
const REGISTER_WG: (u32, u32) = (16, 16);
/// Invocations of a `gemm_vec4` workgroup: one 8-lane SIMD group on
/// lavapipe. An earlier sweep there (2 cores, tiles of 16×16, 16×32 and
/// 32×8 per invocation, workgroups of 8×1, 8×2, 8×4, 16×1) found 16×1
/// best or near-best (~20–25 GFLOP/s; single runs vary by ±20%); 8 per
/// workgroup (wide N: two 8×1 workgroups where one was 16×1) ran the
/// bench step on GL as fast (2026-12-07: 721–755 ms against 737–771).
/// Later (issue 10, third session), with the bench step's four GEMMs timed
/// in place: 32×16 tiles 45 ms per step, 16×16 53, 16×32 67, 32×32 59.
const VEC4_WG_SIZE: u32 = 8;

/// How `gemm_vec4`'s [`VEC4_WG_SIZE`] invocations lie for N columns
/// (`GemmParams.wg_cols`): all along N, or fewer (and the rest along M)
/// when N has fewer than 8 column tiles, so no invocation computes a tile
/// past N that is never stored (dW_hh of H = 64 has 4). The layout changes
/// no result: each invocation's arithmetic is the same. It is a run-time
/// field, not an override, so every N shares one pipeline per transpose
/// pair (lavapipe compiles each for 8–27 s). (Vec4 runs on software
/// adapters, where a narrow x costs no coalescing.)
fn vec4_wg_cols(n: u32) -> u32 {
    n.div_ceil(VEC4_TILE_COLS).next_power_of_two().min(VEC4_WG_SIZE)
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
    /// [`GemmVariant::Subgroup`] reading op(B) from 64 KiB uniform windows
    /// instead of its storage binding, split into dispatches: over k when B
    /// is stored (K, N) (up to four windows per dispatch, 128 k-rows each of
    /// a 128-wide B), over columns when B is stored (N, K) with K ≤ 128 (one
    /// window per dispatch). On lavapipe a uniform array read
    /// at a per-lane index is one gather, a storage load a loop over the lanes
    /// that stalls on each lane's insert: 1.7–1.9× faster than `Subgroup` on
    /// the bench step's GEMMs. The same bits as `Subgroup`: each window over k
    /// continues from the previous one's partial product in the unsplit k order
    /// (in C when alpha is 1, beta 0 and there is no bias, else in a scratch
    /// product the last window finishes). Shapes it cannot split (batched,
    /// op(B) too wide for a window, windows the buffer cannot place) run as
    /// `Subgroup`. Needs subgroups of [`crate::device::SUBGROUP_SIZE`] and
    /// 64 KiB uniform bindings.
    SubgroupWindow,
}

impl GemmVariant {
    /// The variant wgrnn uses on a device: on software adapters the
    /// windowed subgroup kernel where the device has subgroups of
    /// [`crate::device::SUBGROUP_SIZE`] (and 64 KiB uniform bindings; else
    /// the plain subgroup kernel), else vec4 register tiles; shared-memory
    /// tiles elsewhere.
    pub fn for_device(device: &crate::Device) -> Self {
        let info = device.info();
        let windows = device.limits().max_uniform_buffer_binding_size >= B_WINDOW_BYTES;
        match (info.is_software, info.subgroup_size) {
            (true, Some(crate::device::SUBGROUP_SIZE)) if windows => GemmVariant::SubgroupWindow,
            (true, Some(crate::device::SUBGROUP_SIZE)) => GemmVariant::Subgroup,
            (true, _) => GemmVariant::Vec4,
            (false, _) => GemmVariant::Shared,
        }
    }

    /// Every variant, in declaration order.
    pub const ALL: [GemmVariant; 5] = [
        GemmVariant::Register,
        GemmVariant::Vec4,
        GemmVariant::Shared,
        GemmVariant::Subgroup,
        GemmVariant::SubgroupWindow,
    ];

    /// The variant's name in `WGRNN_KERNEL=gemm=NAME` and in the tuner's
    /// cache: `register`, `vec4`, `shared`, `subgroup`, `subgroup_window`.
    pub fn name(self) -> &'static str {
        match self {
            GemmVariant::Register => "register",
            GemmVariant::Vec4 => "vec4",
            GemmVariant::Shared => "shared",
            GemmVariant::Subgroup => "subgroup",
            GemmVariant::SubgroupWindow => "subgroup_window",
        }
    }

    /// The variant named `text` ([`GemmVariant::name`]); `Err` listing the
    /// names otherwise.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        Self::ALL.into_iter().find(|v| v.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
            Error::Config(format!("unknown GEMM variant {text:?}; accepted: {}", names.join(", ")))
        })
    }

    /// Whether the two variants compute the same bits for every shape:
    /// `Register` and `Shared` accumulate each element with `fma` in k
    /// order; `Vec4`, `Subgroup` and `SubgroupWindow` with vec4 multiplies
    /// and adds in k order (and take the shapes they cannot tile the same
    /// way). Across the two families results differ in the last bits
    /// (`tests/gemm.rs` checks both). The tuner only chooses between
    /// variants with the same bits, so timing never changes a result.
    pub fn same_bits(self, other: GemmVariant) -> bool {
        let fma = |v| matches!(v, GemmVariant::Register | GemmVariant::Shared);
        fma(self) == fma(other)
    }

    /// Whether the device can run this variant (only the subgroup ones
    /// need anything: subgroups of [`crate::device::SUBGROUP_SIZE`], and
    /// 64 KiB uniform bindings for [`GemmVariant::SubgroupWindow`]).
    pub fn runs_on(self, device: &crate::Device) -> bool {
        let subgroups = device.info().subgroup_size == Some(crate::device::SUBGROUP_SIZE);
        match self {
            GemmVariant::Subgroup => subgroups,
            GemmVariant::SubgroupWindow => {
                subgroups && device.limits().max_uniform_buffer_binding_size >= B_WINDOW_BYTES
            }
            _ => true,
        }
    }
}

impl std::fmt::Display for GemmVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The GEMM kernels' override constants: the transposes (everything else
/// is a `GemmParams` field, so it compiles no pipeline of its own).
fn transpose_flags(opts: GemmOptions) -> [(&'static str, f64); 2] {
    [("TRANS_A", f64::from(u8::from(opts.trans_a))), ("TRANS_B", f64::from(u8::from(opts.trans_b)))]
}

/// A 2-D or 3-D (batched) tensor as (batch or None, rows, cols).
fn dims(op: &'static str, name: &str, t: &Tensor) -> Result<(Option<usize>, usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((None, r, c)),
        [b, r, c] => Ok((Some(b), r, c)),
        ref s => Err(Error::Shape { op, message: format!("{name} must be 2-D or 3-D (batched), got {s:?}") }),
    }
}

/// `C = alpha · op(A) · op(B) + beta · C + bias`, with the kernel forced
/// for the device (`WGRNN_KERNEL=gemm=...`,
/// [`crate::Device::set_gemm_variant`]), else tuned for this adapter and
/// shape ([`crate::ops::gemm_tune`]), else [`GemmVariant::for_device`].
///
/// Shapes: op(A) (M, K), op(B) (K, N), C (M, N), bias (N) broadcast over
/// rows. Batched: any of A, B given as (batch, ·, ·) multiplies batch by
/// batch; a 2-D A or B is shared by every batch; C must then be
/// (batch, M, N).
pub fn gemm(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, c: &Tensor, opts: GemmOptions) -> Result<()> {
    gemm_impl(a, b, bias, c, opts, None, None)
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
    gemm_impl(a, b, bias, c, opts, Some(variant), None)
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
    gemm_impl(a, b, None, c, opts, None, Some(sums))
}

/// [`gemm_and_sum_a`] with an explicit kernel choice (the tuner times it).
pub(crate) fn gemm_and_sum_a_with_variant(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: GemmOptions,
    sums: &Tensor,
    variant: GemmVariant,
) -> Result<()> {
    gemm_impl(a, b, None, c, opts, Some(variant), Some(sums))
}

/// [`gemm_with_variant`] (the variant chosen here when `None`), and the
/// column sums of A into `a_sums` when given ([`gemm_and_sum_a`]).
fn gemm_impl(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    opts: GemmOptions,
    variant: Option<GemmVariant>,
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

    let variant = match variant {
        Some(v) => v,
        None => {
            let shape = crate::ops::gemm_tune::GemmShape {
                m,
                n,
                k,
                batch,
                trans_a: opts.trans_a,
                trans_b: opts.trans_b,
                sums: a_sums.is_some(),
            };
            crate::ops::gemm_tune::gemm_variant(a.device(), shape)?
        }
    };
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
        k_begin: 0,
        k_end: u("K", k)?,
        n_begin: 0,
        n_end: u("N", n)?,
        b_shift: 0,
        k_continue: 0,
        has_bias: u32::from(bias.is_some()),
        wg_cols: 0,
        slab_elems: 0,
    };
    let batch = u("batch", batch)?;
    let flags = transpose_flags(opts);
    // Without a bias, binding 3 gets A: legal (both read-only), never read.
    let bias_buffer = bias.map_or(a.buffer(), |t| t.buffer());
    let buffers = [a.buffer(), b.buffer(), bias_buffer, c.buffer()];
    let rt = &a.device().rt;
    if !variant.runs_on(a.device()) {
        return Err(Error::Config(format!(
            "gemm: the {variant:?} kernel needs subgroups of {} lanes{}; this device ({}) has {} and {} bytes",
            crate::device::SUBGROUP_SIZE,
            if variant == GemmVariant::SubgroupWindow {
                format!(" and uniform bindings of {B_WINDOW_BYTES} bytes")
            } else {
                String::new()
            },
            a.device().info().name,
            a.device().info().subgroup_size.map_or("none".to_string(), |s| format!("subgroups of {s}")),
            a.device().limits().max_uniform_buffer_binding_size,
        )));
    }
    let vec4_family = matches!(variant, GemmVariant::Vec4 | GemmVariant::Subgroup | GemmVariant::SubgroupWindow);
    let vec4_ok = k % 4 == 0 && n % 4 == 0 && (!opts.trans_a || m % 4 == 0);
    if variant == GemmVariant::SubgroupWindow && batch == 1 && vec4_ok {
        if let Some(windows) = window_plan(b, opts.trans_b, [m, n, k], bc, a.device().limits()) {
            return launch_windows(&windows, [a, b, c], bias, a_sums, &params, opts);
        }
    }
    // Everything the windows cannot take runs as the plain subgroup kernel.
    let variant = if variant == GemmVariant::SubgroupWindow { GemmVariant::Subgroup } else { variant };
    if let Some(sums) = a_sums {
        if variant != GemmVariant::Subgroup || batch != 1 || !vec4_ok {
            // No fused kernel here: the two passes, the same bits.
            gemm_impl(a, b, bias, c, opts, Some(variant), None)?;
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
            let constants = [flags[0], flags[1], ("WG_X", f64::from(wx)), ("WG_Y", f64::from(wy))];
            let groups = [params.n.div_ceil(wx * 4), params.m.div_ceil(wy * 4), batch];
            rt.launch(GEMM_REGISTER, &constants, &params, &buffers, groups)
        }
        GemmVariant::Vec4 => {
            let wx = vec4_wg_cols(params.n);
            let wy = VEC4_WG_SIZE / wx;
            let params = GemmParams { wg_cols: wx, ..params };
            let groups = [params.n.div_ceil(wx * VEC4_TILE_COLS), params.m.div_ceil(wy * VEC4_TILE_ROWS), batch];
            rt.launch(GEMM_VEC4, &flags, &params, &buffers, groups)
        }
        GemmVariant::Shared => {
            let groups = [params.n.div_ceil(SHARED_BLOCK), params.m.div_ceil(SHARED_BLOCK), batch];
            rt.launch(GEMM_SHARED, &flags, &params, &buffers, groups)
        }
        GemmVariant::Subgroup | GemmVariant::SubgroupWindow => {
            let groups = [params.n.div_ceil(SUBGROUP_BLOCK_COLS), params.m.div_ceil(VEC4_TILE_ROWS), batch];
            rt.launch(GEMM_SUBGROUP, &flags, &params, &buffers, groups)
        }
    }
}

/// One dispatch of a windowed GEMM: op(A)'s columns `k` and C's columns
/// `n` it covers, where its first uniform window of B starts (an element
/// of B's buffer), and, where it reads more than one, how many and how far
/// apart (in elements; each holds whole k-rows or 128-column blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    k: (u32, u32),
    n: (u32, u32),
    start: usize,
    slabs: usize,
    slab_elems: usize,
}

/// The dispatches a `gemm_subgroup_window` GEMM of `[m, n, k]` splits into,
/// or None where it cannot split: over k for B stored (K, N), a multiple of
/// 4 k-rows; over columns for B stored (N, K), a multiple of
/// [`SUBGROUP_BLOCK_COLS`] columns. `ldb` is B's row length. A dispatch
/// reads up to [`B_WINDOW_SLABS`] windows, each starting `slab_elems`
/// after the one before, aligned as the device binds uniform buffers; where
/// those would run past the buffer's end it reads one window that starts
/// at or before the first element it reads and holds the last (starting
/// earlier where it would run past the end), and where none fits the GEMM
/// runs unsplit.
fn window_plan(
    b: &Tensor,
    trans_b: bool,
    [_m, n, k]: [usize; 3],
    ldb: usize,
    limits: &wgpu::Limits,
) -> Option<Vec<Window>> {
    if limits.max_uniform_buffer_binding_size < B_WINDOW_BYTES || ldb == 0 {
        return None;
    }
    let align = (limits.min_uniform_buffer_offset_alignment as usize / 4).max(4);
    let buffer_len = b.storage_len();
    let origin = b.offset();
    if buffer_len < B_WINDOW_ELEMENTS {
        return None;
    }
    // The range it splits, and its unit (rows of a k-step, a workgroup's columns).
    let (total, unit) = if trans_b { (n, SUBGROUP_BLOCK_COLS as usize) } else { (k, 4) };
    // What one window holds, from any start ...
    let one = (B_WINDOW_ELEMENTS / ldb) / unit * unit;
    if one == 0 {
        return None;
    }
    // ... and what each of several holds: whole units, the windows' starts
    // aligned, room for the first one's offset where B's start is not.
    // Only over k: there the windows save the partial products a split
    // reloads and stores; over columns they save only launches, and
    // lavapipe runs every window's loads of a k-step (masked), not just the
    // one a workgroup reads, so there they cost more than they save.
    let room = if origin.is_multiple_of(align) { B_WINDOW_ELEMENTS } else { B_WINDOW_ELEMENTS - (align - 1) };
    let per =
        (1..=room / ldb / unit).rev().map(|u| u * unit).find(|&r| (r * ldb).is_multiple_of(align)).filter(|_| !trans_b);
    let mut windows = Vec::new();
    let mut lo = 0;
    while lo < total {
        // B stored (K, N): rows lo.. of n; stored (N, K): rows lo.. of k.
        let first = origin + lo * ldb;
        let aligned = first / align * align;
        let several = per.filter(|&r| first - aligned + r * ldb <= B_WINDOW_ELEMENTS).map(|r| {
            let fit = (0..B_WINDOW_SLABS).take_while(|j| aligned + (j * r * ldb) + B_WINDOW_ELEMENTS <= buffer_len);
            (r, fit.count())
        });
        let (hi, start, slabs, slab_elems) = match several {
            Some((r, fit)) if fit > 1 => {
                let hi = (lo + fit * r).min(total);
                (hi, aligned, (hi - lo).div_ceil(r), r * ldb)
            }
            _ => {
                let hi = (lo + one).min(total);
                let end = origin + (hi - 1) * ldb + if trans_b { k } else { n };
                let mut start = aligned;
                if start + B_WINDOW_ELEMENTS > buffer_len {
                    start = (buffer_len - B_WINDOW_ELEMENTS) / align * align;
                }
                if start > first || end > start + B_WINDOW_ELEMENTS {
                    return None;
                }
                (hi, start, 1, 0)
            }
        };
        let (l, h) = (lo as u32, hi as u32);
        windows.push(if trans_b {
            Window { k: (0, k as u32), n: (l, h), start, slabs, slab_elems }
        } else {
            Window { k: (l, h), n: (0, n as u32), start, slabs, slab_elems }
        });
        if windows.len() > MAX_WINDOWS {
            return None;
        }
        lo = hi;
    }
    Some(windows)
}

/// Launches the windowed GEMM: one dispatch per entry of `windows`, on
/// `params` (the whole GEMM's), with the unsplit kernel's bits. A split
/// over k adds each dispatch's k to the bare partial product of the ones
/// before, in the unsplit order: in C itself where alpha is 1, beta 0 and there is
/// no bias (C then holds nothing else), else in a scratch product (and
/// scratch sums) that the last window continues from while it applies
/// alpha, bias and beta · C. A split over columns needs no partials, and
/// computes the sums in its first window only.
fn launch_windows(
    windows: &[Window],
    [a, b, c]: [&Tensor; 3],
    bias: Option<&Tensor>,
    a_sums: Option<&Tensor>,
    params: &GemmParams,
    opts: GemmOptions,
) -> Result<()> {
    let rt = &a.device().rt;
    let split_k = windows.iter().any(|w| w.k.0 > 0);
    let bare = opts.alpha == 1.0 && opts.beta == 0.0 && bias.is_none();
    // Where the windows before the last accumulate the bare product.
    let scratch = if split_k && !bare {
        let m = params.m as usize;
        let product = Tensor::uninit(a.device(), &[m, params.n as usize], DType::F32)?;
        let sums = a_sums.map(|_| Tensor::uninit(a.device(), &[m], DType::F32)).transpose()?;
        Some((product, sums))
    } else {
        None
    };
    for (i, w) in windows.iter().enumerate() {
        let last = i + 1 == windows.len();
        let mut p = *params;
        (p.k_begin, p.k_end, p.n_begin, p.n_end) = (w.k.0, w.k.1, w.n.0, w.n.1);
        // B's element e is element origin + e of the buffer, window element origin + e − start.
        p.b_shift = (b.offset() as u32).wrapping_sub(w.start as u32);
        p.slab_elems = if w.slabs > 1 { w.slab_elems as u32 } else { 0 };
        let (mut out, mut out_sums, mut partial) = (c, a_sums, None);
        if let Some((product, sums)) = &scratch {
            if last {
                (p.k_continue, partial) = (2, Some((product, sums.as_ref())));
            } else {
                (out, out_sums) = (product, sums.as_ref());
                (p.alpha, p.beta, p.k_continue) = (1.0, 0.0, u32::from(i > 0));
            }
        } else if w.k.0 > 0 {
            p.k_continue = 1;
        }
        let with_bias = bias.is_some() && (!split_k || (last && scratch.is_some()));
        p.has_bias = u32::from(with_bias);
        let flags = transpose_flags(opts);
        let bias_buffer = bias.filter(|_| with_bias).map_or(a.buffer(), |t| t.buffer());
        // Slab j at start + j·64 KiB; those past the buffer repeat slab 0
        // (the plan never reads them).
        // Windows past those the dispatch reads repeat the first (never read).
        let slab = |j: usize| b.buffer_window(w.start + if j < w.slabs { j * w.slab_elems } else { 0 }, B_WINDOW_BYTES);
        let [w0, w1, w2, w3] = [slab(0)?, slab(1)?, slab(2)?, slab(3)?];
        // Bound to `a` and never read where nothing continues from them.
        let partial_buffer = partial.map_or(a.buffer(), |(t, _)| t.buffer());
        let groups = [(w.n.1 - w.n.0).div_ceil(SUBGROUP_BLOCK_COLS), p.m.div_ceil(VEC4_TILE_ROWS), 1];
        match out_sums {
            // A column split sums all of k in its first window.
            Some(sums) if split_k || w.n.0 == 0 => {
                let partial_sums = partial.and_then(|(_, s)| s).map_or(a.buffer(), |t| t.buffer());
                let buffers = [
                    a.buffer(),
                    b.buffer(),
                    bias_buffer,
                    out.buffer(),
                    sums.buffer(),
                    w0,
                    w1,
                    w2,
                    w3,
                    partial_buffer,
                    partial_sums,
                ];
                rt.launch(GEMM_SUBGROUP_WINDOW_SUMS, &flags, &p, &buffers, groups)?;
            }
            _ => {
                let buffers = [a.buffer(), b.buffer(), bias_buffer, out.buffer(), w0, w1, w2, w3, partial_buffer];
                rt.launch(GEMM_SUBGROUP_WINDOW, &flags, &p, &buffers, groups)?;
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::{gemm_impl, window_plan, GemmOptions, GemmVariant};
    use crate::tensor::Tensor;

    /// Values that make every product and sum of these shapes exact in
    /// f32 (multiples of 1/4 in [−2, 2]: products are multiples of 1/16,
    /// sums of ≤ 1,000 of them stay below 2^12), so the windowed kernel
    /// must match the f64 reference exactly, whatever its split.
    fn exact(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) / 4.0).collect()
    }

    /// Splits over k (B stored (K, N): 128 k-rows per window at N = 128,
    /// 256 at N = 64, a ragged last window) and over columns (B stored
    /// (N, K), K ≤ 128: a ragged last column window), ragged M, with and
    /// without alpha, beta, bias and the column sums: the f64 reference's
    /// values exactly, and more than one window each time.
    #[test]
    fn windowed_gemm_splits_match_reference_exactly() {
        let dev = crate::Device::new().unwrap();
        if !GemmVariant::SubgroupWindow.runs_on(&dev) {
            return;
        }
        // (m, k, n, trans_a, trans_b)
        let shapes = [
            (100, 520, 128, false, false),
            (96, 600, 64, true, false),
            (70, 128, 300, false, true),
            (36, 64, 260, true, true),
        ];
        for (i, &(m, k, n, trans_a, trans_b)) in shapes.iter().enumerate() {
            for (alpha, beta, with_bias) in [(1.0, 0.0, false), (0.5, 0.75, true), (1.0, 1.0, false)] {
                let opts = GemmOptions { trans_a, trans_b, alpha, beta };
                let a_shape = if trans_a { [k, m] } else { [m, k] };
                let b_shape = if trans_b { [n, k] } else { [k, n] };
                let (a, b, c0, bias) = (exact(m * k, i), exact(k * n, i + 1), exact(m * n, i + 2), exact(n, i + 3));
                let ta = Tensor::from_slice(&dev, &a, &a_shape).unwrap();
                let tb = Tensor::from_slice(&dev, &b, &b_shape).unwrap();
                let tc = Tensor::from_slice(&dev, &c0, &[m, n]).unwrap();
                let tbias = Tensor::from_slice(&dev, &bias, &[n]).unwrap();
                let ldb = b_shape[1];
                let windows = window_plan(&tb, trans_b, [m, n, k], ldb, dev.limits()).unwrap();
                assert!(windows.len() > 1, "({m}, {k}, {n}) trans_b {trans_b}: {windows:?}");
                // The column sums ride along where A is transposed.
                let s0 = exact(m, i + 4);
                let sums = Tensor::from_slice(&dev, &s0, &[m]).unwrap();
                let bias_t = with_bias.then_some(&tbias);
                let sums_t = (trans_a && !with_bias).then_some(&sums);
                gemm_impl(&ta, &tb, bias_t, &tc, opts, Some(GemmVariant::SubgroupWindow), sums_t).unwrap();

                let mut want = c0.clone();
                let bias_r = with_bias.then_some(&bias[..]);
                crate::reference::gemm(&a, a_shape, &b, b_shape, bias_r, &mut want, opts);
                let what =
                    format!("({m}, {k}, {n}) trans {trans_a}/{trans_b} alpha {alpha} beta {beta} bias {with_bias}");
                assert_eq!(tc.to_vec().unwrap(), want, "{what}");
                if sums_t.is_some() {
                    let want: Vec<f32> =
                        (0..m).map(|col| (0..k).map(|r| a[r * m + col]).sum::<f32>() + beta * s0[col]).collect();
                    assert_eq!(sums.to_vec().unwrap(), want, "{what}: sums");
                }
            }
        }
    }

    /// A B that ends near its buffer's end: the last window starts before
    /// the rows it reads (it cannot run past the buffer), and the result
    /// is still exact; a buffer shorter than one window runs unsplit.
    #[test]
    fn windowed_gemm_places_the_last_window_inside_the_buffer() {
        let dev = crate::Device::new().unwrap();
        if !GemmVariant::SubgroupWindow.runs_on(&dev) {
            return;
        }
        let (m, k, n) = (40usize, 520usize, 128usize);
        let align = (dev.limits().min_storage_buffer_offset_alignment as usize / 4).max(4);
        let len = k * n + 2 * align + 16;
        // B as a view ending 16 + align elements before the buffer's end.
        let start = align;
        let flat = Tensor::from_slice(&dev, &exact(len, 5), &[len]).unwrap();
        let tb = flat.storage_view(start, &[k, n]).unwrap();
        let windows = window_plan(&tb, false, [m, n, k], n, dev.limits()).unwrap();
        let last = windows.last().unwrap();
        assert!(last.start + 16384 <= len && last.start < start + last.k.0 as usize * n, "{windows:?}");
        let a = exact(m * k, 6);
        let ta = Tensor::from_slice(&dev, &a, &[m, k]).unwrap();
        let tc = Tensor::zeros(&dev, &[m, n]).unwrap();
        gemm_impl(&ta, &tb, None, &tc, GemmOptions::default(), Some(GemmVariant::SubgroupWindow), None).unwrap();
        let b = tb.to_vec().unwrap();
        let mut want = vec![0.0; m * n];
        crate::reference::gemm(&a, [m, k], &b, [k, n], None, &mut want, GemmOptions::default());
        assert_eq!(tc.to_vec().unwrap(), want);

        let small = Tensor::from_slice(&dev, &exact(64 * 128, 7), &[64, 128]).unwrap();
        assert_eq!(window_plan(&small, false, [m, 128, 64], 128, dev.limits()), None);
    }
}
