// gemm_params.wgsl — shared by gemm.wgsl and gemm_vec4.wgsl (prepended by
// the kernel registry): the overrides and the params struct of
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z] (+ bias broadcast over rows)
// Each kernel file declares the storage bindings 1–4 (A, B, bias, C) with
// its own element type (f32 or vec4).
//
// Bindings:
//   0 p  uniform  GemmParams
// Workgroup mapping: WG_X × WG_Y invocations, x over N, y over M, z over
// the batch (the tile per invocation is the kernel file's; gemm_vec4 takes
// its shape from p.wg_cols instead).
//
// Only what changes the generated loops is an override (the transposes,
// and gemm.wgsl's workgroup shape): every override value is a pipeline of
// its own, which lavapipe compiles for 8–30 s when the 32×16 vec4 tiles
// meet it. The bias and gemm_vec4's workgroup shape are run-time fields
// below, read once per tile.

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;

// Mirrors `GemmParams` in src/ops/gemm.rs.
struct GemmParams {
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
    // What one dispatch of a split GEMM covers (gemm_subgroup_window;
    // every other dispatch: 0, K, 0, N, 0, 0): op(A)'s columns k_begin..k_end
    // and C's columns n_begin..n_end, ...
    k_begin: u32,
    k_end: u32,
    n_begin: u32,
    n_end: u32,
    // ... where B's element e is element (e + b_shift) / 4 (wrapping) of the
    // uniform window as vec4s, ...
    b_shift: u32,
    // ... and 1: the accumulators (and column sums) start from C's (and
    // the sums') stored values, the previous k range's partial results.
    k_continue: u32,
    // 1: add bias (binding 3) to every row of C; 0: binding 3 is never read.
    has_bias: u32,
    // gemm_vec4 only: invocations of its 8 per workgroup along N (1, 2, 4
    // or 8; the other 8 / wg_cols go along M). Fewer than 8 where N has
    // fewer column tiles, so no invocation computes a tile past N.
    wg_cols: u32,
    // Windowed kernels: elements of B between the starts of consecutive
    // windows of one dispatch (whole k-rows for B stored (K, N), whole
    // 128-column blocks for B stored (N, K)); 0 with one window.
    slab_elems: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
