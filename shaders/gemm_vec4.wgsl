// gemm_vec4.wgsl — the same GEMM as gemm.wgsl for shapes whose contiguous
// dimensions are multiples of 4, reading A and B as vec4:
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z] (+ bias broadcast over rows)
// Requires K % 4 == 0, N % 4 == 0 and M % 4 == 0 when TRANS_A
// (src/ops/gemm.rs checks and falls back to gemm_register otherwise).
//
// The 32×16 tile is a const, not an override: the 32 accumulators are
// written out by hand so they stay in registers (an array indexed in a
// loop would live in memory). The transposes are overrides; the
// workgroup's shape is p.wg_cols, at run time (src/ops/gemm.rs picks it
// per N), so every N shares the pipelines of its transposes.
//
// Why: on lavapipe every storage-buffer load or store is a loop over the 8
// SIMD lanes with a bounds check per component, whatever the address
// pattern, so the count of load instructions per multiply-add is what sets
// the speed. Each invocation owns a 32×16 block of C as 32 mat4x4
// accumulators; per k-step of 4 it loads twelve 4×4 fragments (48 vec4
// loads) for 2048 multiply-adds, written as mat4x4 products. (16×16 tiles
// load 32 per 1024: the step's GEMMs took 53 ms with them, 45 with these.) Fragment
// transposes are free there (SoA registers) and cheap on GPUs. The
// accumulators exceed the register file and spill, which costs far less
// than the loads saved.
//
// Bindings:
//   0 p     uniform     GemmParams (same struct as gemm.wgsl)
//   1 a     read        (batch, M, K) or (batch, K, M) as vec4
//   2 b     read        (batch, K, N) or (batch, N, K) as vec4
//   3 bias  read        (N) as vec4; bound to `a` and never read when p.has_bias is 0
//   4 c     read_write  (batch, M, N) as vec4
// Workgroup mapping: 8 invocations (one SIMD group on lavapipe), laid out
// as p.wg_cols along N by 8 / p.wg_cols along M; workgroup (x, y, z) owns
// that many 32×16 tiles of batch z, and invocation i the tile
// (i % wg_cols, i / wg_cols) of them.
// Edges: loads clamp to the matrix, stores skip rows ≥ M and columns ≥ N.
// Saves nothing for backward.

// Overrides, GemmParams and binding 0 are in gemm_params.wgsl; bindings
// 1–4, b_fragment and the stores in gemm_vec4_common.wgsl.

// Fragment of op(A): rows row0..row0+3, k0..k0+3, as a matrix whose column
// kk holds the four rows at k0 + kk.
fn a_fragment(base: u32, row0: u32, k0: u32) -> mat4x4<f32> {
    if (TRANS_A) {
        // A stored (K, M): rows are contiguous; clamp the group to the matrix.
        let r = min(row0, p.m - 4u);
        return mat4x4<f32>(a[(base + k0 * p.lda + r) / 4u], a[(base + (k0 + 1u) * p.lda + r) / 4u],
                           a[(base + (k0 + 2u) * p.lda + r) / 4u], a[(base + (k0 + 3u) * p.lda + r) / 4u]);
    }
    // A stored (M, K): each row's four k values are contiguous.
    let last = p.m - 1u;
    return transpose(mat4x4<f32>(a[(base + min(row0, last) * p.lda + k0) / 4u],
                                 a[(base + min(row0 + 1u, last) * p.lda + k0) / 4u],
                                 a[(base + min(row0 + 2u, last) * p.lda + k0) / 4u],
                                 a[(base + min(row0 + 3u, last) * p.lda + k0) / 4u]));
}

// VEC4_TILE_ROWS and VEC4_TILE_COLS come from Rust (they size the
// dispatch); the 8×4 accumulators below are written out for exactly 32×16.
const_assert VEC4_TILE_ROWS == 32u;
const_assert VEC4_TILE_COLS == 16u;

@compute @workgroup_size(8)
fn gemm_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let z = wg.z;
    let wg_rows = 8u / p.wg_cols;
    let row0 = (wg.y * wg_rows + li / p.wg_cols) * VEC4_TILE_ROWS;
    let col0 = (wg.x * p.wg_cols + li % p.wg_cols) * VEC4_TILE_COLS;
    let a_base = z * p.stride_a;
    let b_base = z * p.stride_b;
    var acc0_0 = mat4x4<f32>();
    var acc0_1 = mat4x4<f32>();
    var acc0_2 = mat4x4<f32>();
    var acc0_3 = mat4x4<f32>();
    var acc1_0 = mat4x4<f32>();
    var acc1_1 = mat4x4<f32>();
    var acc1_2 = mat4x4<f32>();
    var acc1_3 = mat4x4<f32>();
    var acc2_0 = mat4x4<f32>();
    var acc2_1 = mat4x4<f32>();
    var acc2_2 = mat4x4<f32>();
    var acc2_3 = mat4x4<f32>();
    var acc3_0 = mat4x4<f32>();
    var acc3_1 = mat4x4<f32>();
    var acc3_2 = mat4x4<f32>();
    var acc3_3 = mat4x4<f32>();
    var acc4_0 = mat4x4<f32>();
    var acc4_1 = mat4x4<f32>();
    var acc4_2 = mat4x4<f32>();
    var acc4_3 = mat4x4<f32>();
    var acc5_0 = mat4x4<f32>();
    var acc5_1 = mat4x4<f32>();
    var acc5_2 = mat4x4<f32>();
    var acc5_3 = mat4x4<f32>();
    var acc6_0 = mat4x4<f32>();
    var acc6_1 = mat4x4<f32>();
    var acc6_2 = mat4x4<f32>();
    var acc6_3 = mat4x4<f32>();
    var acc7_0 = mat4x4<f32>();
    var acc7_1 = mat4x4<f32>();
    var acc7_2 = mat4x4<f32>();
    var acc7_3 = mat4x4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let b0 = b_fragment(b_base, k0, col0 + 0u);
        let b1 = b_fragment(b_base, k0, col0 + 4u);
        let b2 = b_fragment(b_base, k0, col0 + 8u);
        let b3 = b_fragment(b_base, k0, col0 + 12u);
        let a0 = a_fragment(a_base, row0 + 0u, k0);
        acc0_0 += a0 * b0; acc0_1 += a0 * b1; acc0_2 += a0 * b2; acc0_3 += a0 * b3;
        let a1 = a_fragment(a_base, row0 + 4u, k0);
        acc1_0 += a1 * b0; acc1_1 += a1 * b1; acc1_2 += a1 * b2; acc1_3 += a1 * b3;
        let a2 = a_fragment(a_base, row0 + 8u, k0);
        acc2_0 += a2 * b0; acc2_1 += a2 * b1; acc2_2 += a2 * b2; acc2_3 += a2 * b3;
        let a3 = a_fragment(a_base, row0 + 12u, k0);
        acc3_0 += a3 * b0; acc3_1 += a3 * b1; acc3_2 += a3 * b2; acc3_3 += a3 * b3;
        let a4 = a_fragment(a_base, row0 + 16u, k0);
        acc4_0 += a4 * b0; acc4_1 += a4 * b1; acc4_2 += a4 * b2; acc4_3 += a4 * b3;
        let a5 = a_fragment(a_base, row0 + 20u, k0);
        acc5_0 += a5 * b0; acc5_1 += a5 * b1; acc5_2 += a5 * b2; acc5_3 += a5 * b3;
        let a6 = a_fragment(a_base, row0 + 24u, k0);
        acc6_0 += a6 * b0; acc6_1 += a6 * b1; acc6_2 += a6 * b2; acc6_3 += a6 * b3;
        let a7 = a_fragment(a_base, row0 + 28u, k0);
        acc7_0 += a7 * b0; acc7_1 += a7 * b1; acc7_2 += a7 * b2; acc7_3 += a7 * b3;
    }
    let bias0 = bias_group(col0); let bias1 = bias_group(col0 + 4u);
    let bias2 = bias_group(col0 + 8u); let bias3 = bias_group(col0 + 12u);
    store_block(z, row0 + 0u, col0 + 0u, acc0_0, bias0);
    store_block(z, row0 + 0u, col0 + 4u, acc0_1, bias1);
    store_block(z, row0 + 0u, col0 + 8u, acc0_2, bias2);
    store_block(z, row0 + 0u, col0 + 12u, acc0_3, bias3);
    store_block(z, row0 + 4u, col0 + 0u, acc1_0, bias0);
    store_block(z, row0 + 4u, col0 + 4u, acc1_1, bias1);
    store_block(z, row0 + 4u, col0 + 8u, acc1_2, bias2);
    store_block(z, row0 + 4u, col0 + 12u, acc1_3, bias3);
    store_block(z, row0 + 8u, col0 + 0u, acc2_0, bias0);
    store_block(z, row0 + 8u, col0 + 4u, acc2_1, bias1);
    store_block(z, row0 + 8u, col0 + 8u, acc2_2, bias2);
    store_block(z, row0 + 8u, col0 + 12u, acc2_3, bias3);
    store_block(z, row0 + 12u, col0 + 0u, acc3_0, bias0);
    store_block(z, row0 + 12u, col0 + 4u, acc3_1, bias1);
    store_block(z, row0 + 12u, col0 + 8u, acc3_2, bias2);
    store_block(z, row0 + 12u, col0 + 12u, acc3_3, bias3);
    store_block(z, row0 + 16u, col0 + 0u, acc4_0, bias0);
    store_block(z, row0 + 16u, col0 + 4u, acc4_1, bias1);
    store_block(z, row0 + 16u, col0 + 8u, acc4_2, bias2);
    store_block(z, row0 + 16u, col0 + 12u, acc4_3, bias3);
    store_block(z, row0 + 20u, col0 + 0u, acc5_0, bias0);
    store_block(z, row0 + 20u, col0 + 4u, acc5_1, bias1);
    store_block(z, row0 + 20u, col0 + 8u, acc5_2, bias2);
    store_block(z, row0 + 20u, col0 + 12u, acc5_3, bias3);
    store_block(z, row0 + 24u, col0 + 0u, acc6_0, bias0);
    store_block(z, row0 + 24u, col0 + 4u, acc6_1, bias1);
    store_block(z, row0 + 24u, col0 + 8u, acc6_2, bias2);
    store_block(z, row0 + 24u, col0 + 12u, acc6_3, bias3);
    store_block(z, row0 + 28u, col0 + 0u, acc7_0, bias0);
    store_block(z, row0 + 28u, col0 + 4u, acc7_1, bias1);
    store_block(z, row0 + 28u, col0 + 8u, acc7_2, bias2);
    store_block(z, row0 + 28u, col0 + 12u, acc7_3, bias3);
}
