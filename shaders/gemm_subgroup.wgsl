// gemm_subgroup.wgsl — gemm_vec4.wgsl's GEMM with the A operand shared
// by the 8 lanes of a subgroup:
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z] (+ bias broadcast over rows)
//   gemm_subgroup_sums  the same (TRANS_A, one batch) and the column sums
//                       of A: a_sums[m] = Σ_k A[k, m] + beta · a_sums[m]
// Same shape requirements as gemm_vec4 (K % 4 == 0, N % 4 == 0, M % 4 == 0
// when TRANS_A; src/ops/gemm.rs checks) and needs subgroups of exactly
// SUBGROUP_SIZE = 8 lanes (src/device.rs asks for them only then).
//
// Why: on lavapipe one load instruction is a loop over the 8 SIMD lanes
// (a bounds check and a branch per lane and component). In gemm_vec4 every
// lane loads its own 32 rows of A and 16 columns of B per k-step of 4: 48
// vec4 loads per 2048 multiply-adds. Here the 8 lanes of a subgroup (one
// workgroup) own the same 32 rows and 8 different blocks of 16 columns, so
// they load the 32 A vec4s of a k-step together, four loads of 8 different
// vec4s, and hand them round with `subgroupBroadcast` (a register move on
// a CPU driver): 20 loads per 2048 multiply-adds. Every lane then does
// exactly gemm_vec4's arithmetic on the same fragments in the same order,
// so both kernels give the same bits (tests/gemm.rs compares them).
//
// Bindings:
//   0 p     uniform     GemmParams (gemm_params.wgsl)
//   1 a     read        (batch, M, K) or (batch, K, M) as vec4
//   2 b     read        (batch, K, N) or (batch, N, K) as vec4
//   3 bias  read        (N) as vec4; bound to `a` and never read when p.has_bias is 0
//   4 c     read_write  (batch, M, N) as vec4
//   5 a_sums read_write (M) as vec4 (gemm_subgroup_sums)
// Workgroup mapping: one subgroup of SUBGROUP_SIZE invocations per
// workgroup; workgroup (x, y, z) owns rows 32y.. of C and columns
// 128x.., lane l columns 128x + 16l.. (WG_X, WG_Y are ignored).
// Edges: loads clamp to the matrix (as gemm_vec4), stores skip rows ≥ M and
// columns ≥ N, and every lane runs every k-step (the broadcasts need all 8).
// Saves nothing for backward.

// Overrides, GemmParams and binding 0 are in gemm_params.wgsl; bindings
// 1–4 and the C loads and stores in gemm_vec4_common.wgsl; b_fragment in
// gemm_b_storage.wgsl, or in gemm_b_uniform.wgsl for the windowed module.
//
// The windowed module (Shader::GemmSubgroupWindow: the same file with
// gemm_b_uniform.wgsl; entries gemm_subgroup_window and
// gemm_subgroup_window_sums) reads op(B) from a 64 KiB uniform window at
// binding 6, and each dispatch covers what GemmParams.k_begin..k_end and
// n_begin..n_end say: src/ops/gemm.rs splits a GEMM into such dispatches.
// A dispatch with k_continue starts from the previous k range's partial
// product (and sums) and adds its k in the same order, so a split GEMM
// gives the unsplit kernel's bits (gemm_b_uniform.wgsl, continued_block).

// The 32×16 tile below is written out for 8 lanes of 16 columns.
const_assert SUBGROUP_SIZE == 8u;

// This lane's share of a k-step's 32 A vec4s (k0..k0+3 of rows row0..row0+31).
struct AParts { v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32> }

fn a_parts(base: u32, row0: u32, k0: u32, lane: u32) -> AParts {
    if (TRANS_A) {
        // A stored (K, M): part i is k0 + i, rows row0 + 4·lane.. (clamped
        // to the matrix as gemm_vec4's a_fragment clamps them).
        let r = min(row0 + 4u * lane, p.m - 4u);
        return AParts(a[(base + k0 * p.lda + r) / 4u], a[(base + (k0 + 1u) * p.lda + r) / 4u],
                      a[(base + (k0 + 2u) * p.lda + r) / 4u], a[(base + (k0 + 3u) * p.lda + r) / 4u]);
    }
    // A stored (M, K): part i is row row0 + 8i + lane, k0..k0+3.
    let last = p.m - 1u;
    return AParts(a[(base + min(row0 + lane, last) * p.lda + k0) / 4u],
                  a[(base + min(row0 + 8u + lane, last) * p.lda + k0) / 4u],
                  a[(base + min(row0 + 16u + lane, last) * p.lda + k0) / 4u],
                  a[(base + min(row0 + 24u + lane, last) * p.lda + k0) / 4u]);
}

// The first value of the A cache lines the next k-step reads when A is
// stored (K, M): rows k0 + 4 + lane / 2, one 16-float line each of the
// tile's two (row0 and row0 + 16; rows clamp to K, columns to M).
//
// Why: consecutive k rows are lda floats apart (2 KiB in the bench's
// dW = dYᵀ·X GEMMs), so every k-step starts on 8 new cache lines, and on
// lavapipe each of a_parts' four loads is a loop over the lanes that
// stalls on its own lines before the next loop issues: four misses one
// after another per k-step (perf puts a quarter of the GEMM's time on
// them). One scalar load here asks for all 8 lines at once, a k-step
// ahead, so they arrive together and a_parts finds them in cache.
fn a_next_lines(base: u32, row0: u32, k0: u32, lane: u32) -> f32 {
    let k = min(k0 + 4u + lane / 2u, p.k - 1u);
    let col = min(row0 + 16u * (lane % 2u), p.m - 4u);
    return a[(base + k * p.lda + col) / 4u].x;
}

// Computes and stores workgroup wg's tile of C; returns this lane's share
// of the column sums of A as stored (K, M) when TRANS_A (rows
// row0 + 4·lane.. of op(A), summed over k in order; zeros otherwise), for
// the `_sums` entry.
//
// `sums0`: where the column sums start (the stored sums when continuing).
fn subgroup_tile(wg: vec3<u32>, lane: u32, sums0: vec4<f32>) -> vec4<f32> {
    let z = wg.z;
    let row0 = wg.y * 32u;
    let col0 = p.n_begin + (wg.x * 8u + lane) * 16u;
    let a_base = z * p.stride_a;
    let b_base = z * p.stride_b;
    var acc0_0 = mat4x4<f32>(); var acc0_1 = mat4x4<f32>(); var acc0_2 = mat4x4<f32>(); var acc0_3 = mat4x4<f32>();
    var acc1_0 = mat4x4<f32>(); var acc1_1 = mat4x4<f32>(); var acc1_2 = mat4x4<f32>(); var acc1_3 = mat4x4<f32>();
    var acc2_0 = mat4x4<f32>(); var acc2_1 = mat4x4<f32>(); var acc2_2 = mat4x4<f32>(); var acc2_3 = mat4x4<f32>();
    var acc3_0 = mat4x4<f32>(); var acc3_1 = mat4x4<f32>(); var acc3_2 = mat4x4<f32>(); var acc3_3 = mat4x4<f32>();
    var acc4_0 = mat4x4<f32>(); var acc4_1 = mat4x4<f32>(); var acc4_2 = mat4x4<f32>(); var acc4_3 = mat4x4<f32>();
    var acc5_0 = mat4x4<f32>(); var acc5_1 = mat4x4<f32>(); var acc5_2 = mat4x4<f32>(); var acc5_3 = mat4x4<f32>();
    var acc6_0 = mat4x4<f32>(); var acc6_1 = mat4x4<f32>(); var acc6_2 = mat4x4<f32>(); var acc6_3 = mat4x4<f32>();
    var acc7_0 = mat4x4<f32>(); var acc7_1 = mat4x4<f32>(); var acc7_2 = mat4x4<f32>(); var acc7_3 = mat4x4<f32>();
    if (p.k_continue != 0u) {
        // A loop over the 32 blocks, not 32 unrolled block loads: each load
        // is a per-lane loop on lavapipe, and unrolled they multiplied the
        // pipeline's LLVM compile time. The bound comes from the uniform so
        // the compiler does not unroll it again; it is 32 whenever taken.
        var init: array<mat4x4<f32>, 32>;
        let blocks = 32u * min(p.k_continue, 1u);
        for (var i = 0u; i < blocks; i++) {
            init[i] = continued_block(z, row0 + 4u * (i / 4u), col0 + 4u * (i % 4u));
        }
        acc0_0 = init[0u]; acc0_1 = init[1u]; acc0_2 = init[2u]; acc0_3 = init[3u];
        acc1_0 = init[4u]; acc1_1 = init[5u]; acc1_2 = init[6u]; acc1_3 = init[7u];
        acc2_0 = init[8u]; acc2_1 = init[9u]; acc2_2 = init[10u]; acc2_3 = init[11u];
        acc3_0 = init[12u]; acc3_1 = init[13u]; acc3_2 = init[14u]; acc3_3 = init[15u];
        acc4_0 = init[16u]; acc4_1 = init[17u]; acc4_2 = init[18u]; acc4_3 = init[19u];
        acc5_0 = init[20u]; acc5_1 = init[21u]; acc5_2 = init[22u]; acc5_3 = init[23u];
        acc6_0 = init[24u]; acc6_1 = init[25u]; acc6_2 = init[26u]; acc6_3 = init[27u];
        acc7_0 = init[28u]; acc7_1 = init[29u]; acc7_2 = init[30u]; acc7_3 = init[31u];
    }
    var a_sums = sums0;
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += 4u) {
        let b0 = b_fragment(b_base, k0, col0 + 0u);
        let b1 = b_fragment(b_base, k0, col0 + 4u);
        let b2 = b_fragment(b_base, k0, col0 + 8u);
        let b3 = b_fragment(b_base, k0, col0 + 12u);
        // Fragment q of A (rows row0 + 4q..): gemm_vec4's a_fragment, put
        // together from the lanes that loaded its rows.
        var v = a_parts(a_base, row0, k0, lane);
        if (TRANS_A) {
            // Never taken (k0 < p.k here); it keeps the load alive.
            v.v0 = select(v.v0, vec4<f32>(a_next_lines(a_base, row0, k0, lane)), p.k == 0u);
        }
        // k in order, one at a time: sum_cols_vec4's order, so its bits.
        if (TRANS_A) { a_sums += v.v0; a_sums += v.v1; a_sums += v.v2; a_sums += v.v3; }
        var a0: mat4x4<f32>; var a1: mat4x4<f32>; var a2: mat4x4<f32>; var a3: mat4x4<f32>;
        var a4: mat4x4<f32>; var a5: mat4x4<f32>; var a6: mat4x4<f32>; var a7: mat4x4<f32>;
        if (TRANS_A) {
            a0 = mat4x4<f32>(subgroupBroadcast(v.v0, 0u), subgroupBroadcast(v.v1, 0u), subgroupBroadcast(v.v2, 0u), subgroupBroadcast(v.v3, 0u));
            a1 = mat4x4<f32>(subgroupBroadcast(v.v0, 1u), subgroupBroadcast(v.v1, 1u), subgroupBroadcast(v.v2, 1u), subgroupBroadcast(v.v3, 1u));
            a2 = mat4x4<f32>(subgroupBroadcast(v.v0, 2u), subgroupBroadcast(v.v1, 2u), subgroupBroadcast(v.v2, 2u), subgroupBroadcast(v.v3, 2u));
            a3 = mat4x4<f32>(subgroupBroadcast(v.v0, 3u), subgroupBroadcast(v.v1, 3u), subgroupBroadcast(v.v2, 3u), subgroupBroadcast(v.v3, 3u));
            a4 = mat4x4<f32>(subgroupBroadcast(v.v0, 4u), subgroupBroadcast(v.v1, 4u), subgroupBroadcast(v.v2, 4u), subgroupBroadcast(v.v3, 4u));
            a5 = mat4x4<f32>(subgroupBroadcast(v.v0, 5u), subgroupBroadcast(v.v1, 5u), subgroupBroadcast(v.v2, 5u), subgroupBroadcast(v.v3, 5u));
            a6 = mat4x4<f32>(subgroupBroadcast(v.v0, 6u), subgroupBroadcast(v.v1, 6u), subgroupBroadcast(v.v2, 6u), subgroupBroadcast(v.v3, 6u));
            a7 = mat4x4<f32>(subgroupBroadcast(v.v0, 7u), subgroupBroadcast(v.v1, 7u), subgroupBroadcast(v.v2, 7u), subgroupBroadcast(v.v3, 7u));
        } else {
            a0 = transpose(mat4x4<f32>(subgroupBroadcast(v.v0, 0u), subgroupBroadcast(v.v0, 1u), subgroupBroadcast(v.v0, 2u), subgroupBroadcast(v.v0, 3u)));
            a1 = transpose(mat4x4<f32>(subgroupBroadcast(v.v0, 4u), subgroupBroadcast(v.v0, 5u), subgroupBroadcast(v.v0, 6u), subgroupBroadcast(v.v0, 7u)));
            a2 = transpose(mat4x4<f32>(subgroupBroadcast(v.v1, 0u), subgroupBroadcast(v.v1, 1u), subgroupBroadcast(v.v1, 2u), subgroupBroadcast(v.v1, 3u)));
            a3 = transpose(mat4x4<f32>(subgroupBroadcast(v.v1, 4u), subgroupBroadcast(v.v1, 5u), subgroupBroadcast(v.v1, 6u), subgroupBroadcast(v.v1, 7u)));
            a4 = transpose(mat4x4<f32>(subgroupBroadcast(v.v2, 0u), subgroupBroadcast(v.v2, 1u), subgroupBroadcast(v.v2, 2u), subgroupBroadcast(v.v2, 3u)));
            a5 = transpose(mat4x4<f32>(subgroupBroadcast(v.v2, 4u), subgroupBroadcast(v.v2, 5u), subgroupBroadcast(v.v2, 6u), subgroupBroadcast(v.v2, 7u)));
            a6 = transpose(mat4x4<f32>(subgroupBroadcast(v.v3, 0u), subgroupBroadcast(v.v3, 1u), subgroupBroadcast(v.v3, 2u), subgroupBroadcast(v.v3, 3u)));
            a7 = transpose(mat4x4<f32>(subgroupBroadcast(v.v3, 4u), subgroupBroadcast(v.v3, 5u), subgroupBroadcast(v.v3, 6u), subgroupBroadcast(v.v3, 7u)));
        }
        acc0_0 += a0 * b0; acc0_1 += a0 * b1; acc0_2 += a0 * b2; acc0_3 += a0 * b3;
        acc1_0 += a1 * b0; acc1_1 += a1 * b1; acc1_2 += a1 * b2; acc1_3 += a1 * b3;
        acc2_0 += a2 * b0; acc2_1 += a2 * b1; acc2_2 += a2 * b2; acc2_3 += a2 * b3;
        acc3_0 += a3 * b0; acc3_1 += a3 * b1; acc3_2 += a3 * b2; acc3_3 += a3 * b3;
        acc4_0 += a4 * b0; acc4_1 += a4 * b1; acc4_2 += a4 * b2; acc4_3 += a4 * b3;
        acc5_0 += a5 * b0; acc5_1 += a5 * b1; acc5_2 += a5 * b2; acc5_3 += a5 * b3;
        acc6_0 += a6 * b0; acc6_1 += a6 * b1; acc6_2 += a6 * b2; acc6_3 += a6 * b3;
        acc7_0 += a7 * b0; acc7_1 += a7 * b1; acc7_2 += a7 * b2; acc7_3 += a7 * b3;
    }
    let bias0 = bias_group(col0); let bias1 = bias_group(col0 + 4u);
    let bias2 = bias_group(col0 + 8u); let bias3 = bias_group(col0 + 12u);
    store_block(z, row0 + 0u, col0 + 0u, acc0_0, bias0); store_block(z, row0 + 0u, col0 + 4u, acc0_1, bias1); store_block(z, row0 + 0u, col0 + 8u, acc0_2, bias2); store_block(z, row0 + 0u, col0 + 12u, acc0_3, bias3);
    store_block(z, row0 + 4u, col0 + 0u, acc1_0, bias0); store_block(z, row0 + 4u, col0 + 4u, acc1_1, bias1); store_block(z, row0 + 4u, col0 + 8u, acc1_2, bias2); store_block(z, row0 + 4u, col0 + 12u, acc1_3, bias3);
    store_block(z, row0 + 8u, col0 + 0u, acc2_0, bias0); store_block(z, row0 + 8u, col0 + 4u, acc2_1, bias1); store_block(z, row0 + 8u, col0 + 8u, acc2_2, bias2); store_block(z, row0 + 8u, col0 + 12u, acc2_3, bias3);
    store_block(z, row0 + 12u, col0 + 0u, acc3_0, bias0); store_block(z, row0 + 12u, col0 + 4u, acc3_1, bias1); store_block(z, row0 + 12u, col0 + 8u, acc3_2, bias2); store_block(z, row0 + 12u, col0 + 12u, acc3_3, bias3);
    store_block(z, row0 + 16u, col0 + 0u, acc4_0, bias0); store_block(z, row0 + 16u, col0 + 4u, acc4_1, bias1); store_block(z, row0 + 16u, col0 + 8u, acc4_2, bias2); store_block(z, row0 + 16u, col0 + 12u, acc4_3, bias3);
    store_block(z, row0 + 20u, col0 + 0u, acc5_0, bias0); store_block(z, row0 + 20u, col0 + 4u, acc5_1, bias1); store_block(z, row0 + 20u, col0 + 8u, acc5_2, bias2); store_block(z, row0 + 20u, col0 + 12u, acc5_3, bias3);
    store_block(z, row0 + 24u, col0 + 0u, acc6_0, bias0); store_block(z, row0 + 24u, col0 + 4u, acc6_1, bias1); store_block(z, row0 + 24u, col0 + 8u, acc6_2, bias2); store_block(z, row0 + 24u, col0 + 12u, acc6_3, bias3);
    store_block(z, row0 + 28u, col0 + 0u, acc7_0, bias0); store_block(z, row0 + 28u, col0 + 4u, acc7_1, bias1); store_block(z, row0 + 28u, col0 + 8u, acc7_2, bias2); store_block(z, row0 + 28u, col0 + 12u, acc7_3, bias3);
    return a_sums;
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn gemm_subgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    _ = subgroup_tile(wg, lane, vec4<f32>(0.0));
}

// gemm_subgroup (TRANS_A, one batch) that also writes
//   a_sums[m] = Σ_k A[k, m] + beta · a_sums[m]
// (beta == 0: the old contents are never read): the bias gradient that
// goes with a weight gradient dW = dYᵀ·X, in the same pass over dY. Every
// x-workgroup of a row tile sums the same rows; the first one stores them.
@group(0) @binding(5) var<storage, read_write> a_sums4: array<vec4<f32>>;

@compute @workgroup_size(SUBGROUP_SIZE)
fn gemm_subgroup_sums(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    tile_and_sums(wg, lane);
}

// gemm_subgroup_sums' work (also the windowed module's `_sums` entry).
fn tile_and_sums(wg: vec3<u32>, lane: u32) {
    let row = wg.y * 32u + 4u * lane;
    // Continuing: from the stored sums, so the k order is the unsplit one's.
    var sums0 = vec4<f32>(0.0);
    if (p.k_continue != 0u && row < p.m) { sums0 = continued_sums(row); }
    var sums = subgroup_tile(wg, lane, sums0);
    if (wg.x != 0u || row >= p.m) { return; }
    if (p.beta != 0.0) { sums += p.beta * a_sums4[row / 4u]; }
    a_sums4[row / 4u] = sums;
}
