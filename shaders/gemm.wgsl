// gemm.wgsl — general matrix multiply, optionally batched:
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z] (+ bias broadcast over rows)
// op(A) is (M, K): A stored (M, K) row-major, or (K, M) when TRANS_A.
// op(B) is (K, N): B stored (K, N) row-major, or (N, K) when TRANS_B.
// With beta == 0 the old contents of C are never read (BLAS semantics).
//
// Bindings:
//   0 p     uniform     GemmParams
//   1 a     read        (batch, M, K) or (batch, K, M), leading dimension lda
//   2 b     read        (batch, K, N) or (batch, N, K), leading dimension ldb
//   3 bias  read        (N); bound to `a` and never read when p.has_bias is 0
//   4 c     read_write  (batch, M, N), leading dimension ldc
//
// Two entry points, chosen per adapter by src/ops/gemm.rs:
//   gemm_register  register tiles only: each invocation owns a 4×4 block of
//                  C (rows contiguous, columns strided by WG_X so neighbouring
//                  invocations touch neighbouring addresses). No barriers:
//                  on lavapipe a barrier is a coroutine switch.
//   gemm_shared    shared-memory tiles (real GPUs): a workgroup stages a
//                  (64 × 16) slice of op(A) and a (16 × 64) slice of op(B) per
//                  k-step, then each invocation runs a 4×4 register tile on it.
// Workgroup mapping: x over N, y over M, z over the batch.
// Edges: loads clamp their row/column to the matrix (always in bounds, no
// branch in the inner loop); stores skip rows ≥ M and columns ≥ N.
// Saves nothing for backward.

// Overrides, GemmParams and binding 0 are in gemm_params.wgsl.
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Element (row, kk) of op(A) in batch z.
fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if (TRANS_A) { return a[base + kk * p.lda + row]; }
    return a[base + row * p.lda + kk];
}

// Element (kk, col) of op(B) in batch z.
fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if (TRANS_B) { return b[base + col * p.ldb + kk]; }
    return b[base + kk * p.ldb + col];
}

// Writes one row of a 4-column register tile: columns col0 + j·step.
fn store_row(z: u32, row: u32, col0: u32, step: u32, acc: vec4<f32>) {
    if (row >= p.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j * step;
        if (col < p.n) {
            let ci = z * p.stride_c + row * p.ldc + col;
            var v = p.alpha * acc[j];
            if (p.has_bias != 0u) { v += bias[col]; }
            if (p.beta != 0.0) { v += p.beta * c[ci]; }
            c[ci] = v;
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn gemm_register(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let row0 = (wg.y * WG_Y + lid.y) * 4u;
    let col0 = wg.x * WG_X * 4u + lid.x;
    let a_base = z * p.stride_a;
    let b_base = z * p.stride_b;
    // Clamped indices keep every load in bounds; their results are discarded.
    let r0 = min(row0, p.m - 1u);
    let r1 = min(row0 + 1u, p.m - 1u);
    let r2 = min(row0 + 2u, p.m - 1u);
    let r3 = min(row0 + 3u, p.m - 1u);
    let c0 = min(col0, p.n - 1u);
    let c1 = min(col0 + WG_X, p.n - 1u);
    let c2 = min(col0 + 2u * WG_X, p.n - 1u);
    let c3 = min(col0 + 3u * WG_X, p.n - 1u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(load_b(b_base, kk, c0), load_b(b_base, kk, c1),
                           load_b(b_base, kk, c2), load_b(b_base, kk, c3));
        acc0 = fma(vec4<f32>(load_a(a_base, r0, kk)), bv, acc0);
        acc1 = fma(vec4<f32>(load_a(a_base, r1, kk)), bv, acc1);
        acc2 = fma(vec4<f32>(load_a(a_base, r2, kk)), bv, acc2);
        acc3 = fma(vec4<f32>(load_a(a_base, r3, kk)), bv, acc3);
    }
    store_row(z, row0, col0, WG_X, acc0);
    store_row(z, row0 + 1u, col0, WG_X, acc1);
    store_row(z, row0 + 2u, col0, WG_X, acc2);
    store_row(z, row0 + 3u, col0, WG_X, acc3);
}

// Shared-memory variant: fixed 16×16 workgroup, SM_BLOCK×SM_BLOCK block of
// C (SM_BLOCK comes from Rust's SHARED_BLOCK, which sizes the dispatch),
// k-step 16. Each invocation owns a 4×4 patch, so the block must be 64.
const_assert SM_BLOCK == 64u;
const SM_K: u32 = 16u;
var<workgroup> tile_a: array<f32, SM_K * SM_BLOCK>; // tile_a[kk * SM_BLOCK + row]
var<workgroup> tile_b: array<f32, SM_K * SM_BLOCK>; // tile_b[kk * SM_BLOCK + col]

@compute @workgroup_size(16, 16)
fn gemm_shared(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let z = wg.z;
    let block_row = wg.y * SM_BLOCK;
    let block_col = wg.x * SM_BLOCK;
    let a_base = z * p.stride_a;
    let b_base = z * p.stride_b;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += SM_K) {
        // 256 invocations stage 1024 elements of each tile, 4 apiece.
        for (var s = 0u; s < 4u; s++) {
            let e = li + s * 256u;
            // tile_a: e = kk * 64 + row; consecutive invocations take
            // consecutive rows when TRANS_A (coalesced), else consecutive kk.
            var kk: u32; var rr: u32;
            if (TRANS_A) { kk = e / SM_BLOCK; rr = e % SM_BLOCK; } else { rr = e / SM_K; kk = e % SM_K; }
            let ga_row = min(block_row + rr, p.m - 1u);
            let ga_k = k0 + kk;
            tile_a[kk * SM_BLOCK + rr] = select(0.0, load_a(a_base, ga_row, min(ga_k, p.k - 1u)), ga_k < p.k);
            var kb: u32; var cc: u32;
            if (TRANS_B) { cc = e / SM_K; kb = e % SM_K; } else { kb = e / SM_BLOCK; cc = e % SM_BLOCK; }
            let gb_col = min(block_col + cc, p.n - 1u);
            let gb_k = k0 + kb;
            tile_b[kb * SM_BLOCK + cc] = select(0.0, load_b(b_base, min(gb_k, p.k - 1u), gb_col), gb_k < p.k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < SM_K; kk++) {
            let bv = vec4<f32>(tile_b[kk * SM_BLOCK + lid.x], tile_b[kk * SM_BLOCK + lid.x + 16u],
                               tile_b[kk * SM_BLOCK + lid.x + 32u], tile_b[kk * SM_BLOCK + lid.x + 48u]);
            let ab = kk * SM_BLOCK + lid.y * 4u;
            acc0 = fma(vec4<f32>(tile_a[ab]), bv, acc0);
            acc1 = fma(vec4<f32>(tile_a[ab + 1u]), bv, acc1);
            acc2 = fma(vec4<f32>(tile_a[ab + 2u]), bv, acc2);
            acc3 = fma(vec4<f32>(tile_a[ab + 3u]), bv, acc3);
        }
        workgroupBarrier();
    }
    let row0 = block_row + lid.y * 4u;
    let col0 = block_col + lid.x;
    store_row(z, row0, col0, 16u, acc0);
    store_row(z, row0 + 1u, col0, 16u, acc1);
    store_row(z, row0 + 2u, col0, 16u, acc2);
    store_row(z, row0 + 3u, col0, 16u, acc3);
}
