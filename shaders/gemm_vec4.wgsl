// gemm_vec4.wgsl — the same GEMM as gemm.wgsl for shapes whose contiguous
// dimensions are multiples of 4, reading A and B as vec4:
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z] (+ bias broadcast over rows)
// Requires K % 4 == 0, N % 4 == 0 and M % 4 == 0 when TRANS_A
// (src/ops/gemm.rs checks and falls back to gemm_register otherwise).
//
// The 16×16 tile is a const, not an override: WGSL sizes function-scope
// arrays with consts only, and the sixteen accumulators are written out by
// hand so they stay in registers. Workgroup shape and transposes are
// overrides (src/ops/gemm.rs picks them per adapter).
//
// Why: on lavapipe every storage-buffer load or store is a loop over the 8
// SIMD lanes with a bounds check per component, whatever the address
// pattern, so the count of load instructions per multiply-add is what sets
// the speed. Each invocation owns a 16×16 block of C as sixteen mat4x4
// accumulators; per k-step of 4 it loads eight 4×4 fragments (32 vec4
// loads) for 1024 multiply-adds, written as mat4x4 products. Fragment
// transposes are free there (SoA registers) and cheap on GPUs. The
// accumulators exceed the register file and spill, which costs far less
// than the loads saved.
//
// Bindings:
//   0 p     uniform     GemmParams (same struct as gemm.wgsl)
//   1 a     read        (batch, M, K) or (batch, K, M) as vec4
//   2 b     read        (batch, K, N) or (batch, N, K) as vec4
//   3 bias  read        (N) as vec4; bound to `a` and never read when HAS_BIAS is false
//   4 c     read_write  (batch, M, N) as vec4
// Workgroup mapping: (WG_X, WG_Y) invocations, x over N, y over M, z over
// the batch; invocation (x, y) owns rows 16y.., columns 16x.. of its block.
// Edges: loads clamp to the matrix, stores skip rows ≥ M and columns ≥ N.
// Saves nothing for backward.

// Overrides, GemmParams and binding 0 are in gemm_params.wgsl.
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>;

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

// Fragment of op(B): k0..k0+3, columns col0..col0+3, as a matrix whose
// column j holds the four k values of column col0 + j.
fn b_fragment(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        // B stored (N, K): each column's four k values are contiguous.
        let last = p.n - 1u;
        return mat4x4<f32>(b[(base + min(col0, last) * p.ldb + k0) / 4u],
                           b[(base + min(col0 + 1u, last) * p.ldb + k0) / 4u],
                           b[(base + min(col0 + 2u, last) * p.ldb + k0) / 4u],
                           b[(base + min(col0 + 3u, last) * p.ldb + k0) / 4u]);
    }
    // B stored (K, N): columns are contiguous; clamp the group to the matrix.
    let cc = min(col0, p.n - 4u);
    return transpose(mat4x4<f32>(b[(base + k0 * p.ldb + cc) / 4u], b[(base + (k0 + 1u) * p.ldb + cc) / 4u],
                                 b[(base + (k0 + 2u) * p.ldb + cc) / 4u], b[(base + (k0 + 3u) * p.ldb + cc) / 4u]));
}

// Stores row `row` of C, columns col0..col0+3, as one vec4.
fn store_row(z: u32, row: u32, col0: u32, v: vec4<f32>) {
    if (row >= p.m || col0 >= p.n) { return; }
    let ci = (z * p.stride_c + row * p.ldc + col0) / 4u;
    var out = p.alpha * v;
    if (HAS_BIAS) { out += bias[col0 / 4u]; }
    if (p.beta != 0.0) { out += p.beta * c[ci]; }
    c[ci] = out;
}

// Stores a 4×4 accumulator (column j = column col0 + j of C, rows row0..)
// one vec4 per row, unrolled: stores are per-lane loops on lavapipe too,
// and a loop indexing the matrix would go through memory.
fn store_block(z: u32, row0: u32, col0: u32, acc: mat4x4<f32>) {
    let rows = transpose(acc);
    store_row(z, row0, col0, rows[0]);
    store_row(z, row0 + 1u, col0, rows[1]);
    store_row(z, row0 + 2u, col0, rows[2]);
    store_row(z, row0 + 3u, col0, rows[3]);
}

// VEC4_TILE comes from Rust (it sizes the dispatch); the sixteen
// accumulators below are written out for exactly 16.
const_assert VEC4_TILE == 16u;

@compute @workgroup_size(WG_X, WG_Y)
fn gemm_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let row0 = (wg.y * WG_Y + lid.y) * VEC4_TILE;
    let col0 = (wg.x * WG_X + lid.x) * VEC4_TILE;
    let a_base = z * p.stride_a;
    let b_base = z * p.stride_b;
    var acc00 = mat4x4<f32>();
    var acc01 = mat4x4<f32>();
    var acc02 = mat4x4<f32>();
    var acc03 = mat4x4<f32>();
    var acc10 = mat4x4<f32>();
    var acc11 = mat4x4<f32>();
    var acc12 = mat4x4<f32>();
    var acc13 = mat4x4<f32>();
    var acc20 = mat4x4<f32>();
    var acc21 = mat4x4<f32>();
    var acc22 = mat4x4<f32>();
    var acc23 = mat4x4<f32>();
    var acc30 = mat4x4<f32>();
    var acc31 = mat4x4<f32>();
    var acc32 = mat4x4<f32>();
    var acc33 = mat4x4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let b0 = b_fragment(b_base, k0, col0 + 0u);
        let b1 = b_fragment(b_base, k0, col0 + 4u);
        let b2 = b_fragment(b_base, k0, col0 + 8u);
        let b3 = b_fragment(b_base, k0, col0 + 12u);
        let a0 = a_fragment(a_base, row0 + 0u, k0);
        acc00 += a0 * b0; acc01 += a0 * b1; acc02 += a0 * b2; acc03 += a0 * b3;
        let a1 = a_fragment(a_base, row0 + 4u, k0);
        acc10 += a1 * b0; acc11 += a1 * b1; acc12 += a1 * b2; acc13 += a1 * b3;
        let a2 = a_fragment(a_base, row0 + 8u, k0);
        acc20 += a2 * b0; acc21 += a2 * b1; acc22 += a2 * b2; acc23 += a2 * b3;
        let a3 = a_fragment(a_base, row0 + 12u, k0);
        acc30 += a3 * b0; acc31 += a3 * b1; acc32 += a3 * b2; acc33 += a3 * b3;
    }
    store_block(z, row0 + 0u, col0 + 0u, acc00);
    store_block(z, row0 + 0u, col0 + 4u, acc01);
    store_block(z, row0 + 0u, col0 + 8u, acc02);
    store_block(z, row0 + 0u, col0 + 12u, acc03);
    store_block(z, row0 + 4u, col0 + 0u, acc10);
    store_block(z, row0 + 4u, col0 + 4u, acc11);
    store_block(z, row0 + 4u, col0 + 8u, acc12);
    store_block(z, row0 + 4u, col0 + 12u, acc13);
    store_block(z, row0 + 8u, col0 + 0u, acc20);
    store_block(z, row0 + 8u, col0 + 4u, acc21);
    store_block(z, row0 + 8u, col0 + 8u, acc22);
    store_block(z, row0 + 8u, col0 + 12u, acc23);
    store_block(z, row0 + 12u, col0 + 0u, acc30);
    store_block(z, row0 + 12u, col0 + 4u, acc31);
    store_block(z, row0 + 12u, col0 + 8u, acc32);
    store_block(z, row0 + 12u, col0 + 12u, acc33);
}
