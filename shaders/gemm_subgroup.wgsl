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
// 1–4 and the C loads and stores in gemm_vec4_common.wgsl; b_fragments in
// gemm_b_storage.wgsl and k_loop in gemm_no_continue.wgsl, or both in
// gemm_b_uniform.wgsl for the windowed module.
//
// The windowed module (Shader::GemmSubgroupWindow: the same file with
// gemm_b_uniform.wgsl; entries gemm_subgroup_window and
// gemm_subgroup_window_sums) reads op(B) from 64 KiB uniform windows
// (bindings 6, 9, 10, 11), and each dispatch covers what
// GemmParams.k_begin..k_end and n_begin..n_end say: src/ops/gemm.rs splits
// a GEMM into such dispatches.
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

// The 32 accumulator blocks of a lane's 32×16 tile of C: block 4q + c
// holds rows row0 + 4q.. and columns col0 + 4c... Indexed by constants
// only, so the compiler keeps them in registers.
alias Acc = array<mat4x4<f32>, 32>;

// One k-step (k0..k0+3) of the tile: A's fragments from the lanes that
// loaded them, times B's four fragments `bf` (b_fragments), into `acc`;
// A's column sums into `a_sums` when TRANS_A.
fn k_step(acc: ptr<function, Acc>, a_sums: ptr<function, vec4<f32>>, a_base: u32, row0: u32, k0: u32, lane: u32,
          bf: BFrags) {
    let b0 = bf.f0;
    let b1 = bf.f1;
    let b2 = bf.f2;
    let b3 = bf.f3;
    // Fragment q of A (rows row0 + 4q..): gemm_vec4's a_fragment, put
    // together from the lanes that loaded its rows.
    var v = a_parts(a_base, row0, k0, lane);
    if (TRANS_A) {
        // Never taken (k0 < p.k here); it keeps the load alive.
        v.v0 = select(v.v0, vec4<f32>(a_next_lines(a_base, row0, k0, lane)), p.k == 0u);
    }
    // k in order, one at a time: sum_cols_vec4's order, so its bits.
    if (TRANS_A) { *a_sums += v.v0; *a_sums += v.v1; *a_sums += v.v2; *a_sums += v.v3; }
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
    (*acc)[0u] += a0 * b0; (*acc)[1u] += a0 * b1; (*acc)[2u] += a0 * b2; (*acc)[3u] += a0 * b3;
    (*acc)[4u] += a1 * b0; (*acc)[5u] += a1 * b1; (*acc)[6u] += a1 * b2; (*acc)[7u] += a1 * b3;
    (*acc)[8u] += a2 * b0; (*acc)[9u] += a2 * b1; (*acc)[10u] += a2 * b2; (*acc)[11u] += a2 * b3;
    (*acc)[12u] += a3 * b0; (*acc)[13u] += a3 * b1; (*acc)[14u] += a3 * b2; (*acc)[15u] += a3 * b3;
    (*acc)[16u] += a4 * b0; (*acc)[17u] += a4 * b1; (*acc)[18u] += a4 * b2; (*acc)[19u] += a4 * b3;
    (*acc)[20u] += a5 * b0; (*acc)[21u] += a5 * b1; (*acc)[22u] += a5 * b2; (*acc)[23u] += a5 * b3;
    (*acc)[24u] += a6 * b0; (*acc)[25u] += a6 * b1; (*acc)[26u] += a6 * b2; (*acc)[27u] += a6 * b3;
    (*acc)[28u] += a7 * b0; (*acc)[29u] += a7 * b1; (*acc)[30u] += a7 * b2; (*acc)[31u] += a7 * b3;
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
    var acc = Acc();
    if (p.k_continue != 0u) {
        // A loop over the 32 blocks, not 32 unrolled block loads: each load
        // is a per-lane loop on lavapipe, and unrolled they multiplied the
        // pipeline's LLVM compile time. The bound comes from the uniform so
        // the compiler does not unroll it again; it is 32 whenever taken.
        // Loaded into an array of its own: indexed at run time, it lives in
        // memory, and `acc` must not.
        var init: Acc;
        let blocks = 32u * min(p.k_continue, 1u);
        for (var i = 0u; i < blocks; i++) {
            init[i] = continued_block(z, row0 + 4u * (i / 4u), col0 + 4u * (i % 4u));
        }
        acc = init;
    }
    var a_sums = sums0;
    // The k-steps of this dispatch (the module's: one loop over storage,
    // or one per uniform window).
    k_loop(&acc, &a_sums, a_base, b_base, row0, col0, lane);
    let bias0 = bias_group(col0); let bias1 = bias_group(col0 + 4u);
    let bias2 = bias_group(col0 + 8u); let bias3 = bias_group(col0 + 12u);
    store_block(z, row0 + 0u, col0 + 0u, acc[0u], bias0); store_block(z, row0 + 0u, col0 + 4u, acc[1u], bias1); store_block(z, row0 + 0u, col0 + 8u, acc[2u], bias2); store_block(z, row0 + 0u, col0 + 12u, acc[3u], bias3);
    store_block(z, row0 + 4u, col0 + 0u, acc[4u], bias0); store_block(z, row0 + 4u, col0 + 4u, acc[5u], bias1); store_block(z, row0 + 4u, col0 + 8u, acc[6u], bias2); store_block(z, row0 + 4u, col0 + 12u, acc[7u], bias3);
    store_block(z, row0 + 8u, col0 + 0u, acc[8u], bias0); store_block(z, row0 + 8u, col0 + 4u, acc[9u], bias1); store_block(z, row0 + 8u, col0 + 8u, acc[10u], bias2); store_block(z, row0 + 8u, col0 + 12u, acc[11u], bias3);
    store_block(z, row0 + 12u, col0 + 0u, acc[12u], bias0); store_block(z, row0 + 12u, col0 + 4u, acc[13u], bias1); store_block(z, row0 + 12u, col0 + 8u, acc[14u], bias2); store_block(z, row0 + 12u, col0 + 12u, acc[15u], bias3);
    store_block(z, row0 + 16u, col0 + 0u, acc[16u], bias0); store_block(z, row0 + 16u, col0 + 4u, acc[17u], bias1); store_block(z, row0 + 16u, col0 + 8u, acc[18u], bias2); store_block(z, row0 + 16u, col0 + 12u, acc[19u], bias3);
    store_block(z, row0 + 20u, col0 + 0u, acc[20u], bias0); store_block(z, row0 + 20u, col0 + 4u, acc[21u], bias1); store_block(z, row0 + 20u, col0 + 8u, acc[22u], bias2); store_block(z, row0 + 20u, col0 + 12u, acc[23u], bias3);
    store_block(z, row0 + 24u, col0 + 0u, acc[24u], bias0); store_block(z, row0 + 24u, col0 + 4u, acc[25u], bias1); store_block(z, row0 + 24u, col0 + 8u, acc[26u], bias2); store_block(z, row0 + 24u, col0 + 12u, acc[27u], bias3);
    store_block(z, row0 + 28u, col0 + 0u, acc[28u], bias0); store_block(z, row0 + 28u, col0 + 4u, acc[29u], bias1); store_block(z, row0 + 28u, col0 + 8u, acc[30u], bias2); store_block(z, row0 + 28u, col0 + 12u, acc[31u], bias3);
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
