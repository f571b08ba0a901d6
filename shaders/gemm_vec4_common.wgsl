// gemm_vec4_common.wgsl — shared by gemm_vec4.wgsl and gemm_subgroup.wgsl
// (prepended after gemm_params.wgsl by the kernel registry): the vec4
// storage bindings and the C loads and stores. Both kernels store C the
// same way; they differ in how A reaches a lane. `b_fragment`, the B
// load, comes after this file: from storage (gemm_b_storage.wgsl) or
// from a uniform window (gemm_b_uniform.wgsl).
//
// Bindings:
//   1 a     read        (batch, M, K) or (batch, K, M) as vec4
//   2 b     read        (batch, K, N) or (batch, N, K) as vec4
//   3 bias  read        (N) as vec4; bound to `a` and never read when p.has_bias is 0
//   4 c     read_write  (batch, M, N) as vec4
// Workgroup mapping: the including kernel's.

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>;

// The bias of columns col0..col0+3 (zeros past N or without a bias).
// Loaded once per column group for the whole tile, not per row stored:
// on lavapipe every load is a loop over the lanes, and 32 rows reloading
// the same bias cost the input projection (K = 128) 4–8% of its time.
fn bias_group(col0: u32) -> vec4<f32> {
    if (p.has_bias != 0u && col0 < p.n) { return bias[col0 / 4u]; }
    return vec4<f32>(0.0);
}

// Stores row `row` of C, columns col0..col0+3, as one vec4; `bias4` is
// bias_group(col0).
fn store_row(z: u32, row: u32, col0: u32, v: vec4<f32>, bias4: vec4<f32>) {
    if (row >= p.m || col0 >= p.n_end) { return; }
    let ci = (z * p.stride_c + row * p.ldc + col0) / 4u;
    var out = p.alpha * v;
    if (p.has_bias != 0u) { out += bias4; }
    if (p.beta != 0.0) { out += p.beta * c[ci]; }
    c[ci] = out;
}

// Stores a 4×4 accumulator (column j = column col0 + j of C, rows row0..)
// one vec4 per row, unrolled: stores are per-lane loops on lavapipe too,
// and a loop indexing the matrix would go through memory.
fn store_block(z: u32, row0: u32, col0: u32, acc: mat4x4<f32>, bias4: vec4<f32>) {
    let rows = transpose(acc);
    store_row(z, row0, col0, rows[0], bias4);
    store_row(z, row0 + 1u, col0, rows[1], bias4);
    store_row(z, row0 + 2u, col0, rows[2], bias4);
    store_row(z, row0 + 3u, col0, rows[3], bias4);
}


// The stored 4×4 block of C at rows row0.., columns col0.. in
// store_block's layout (column j = column col0 + j), zeros where it lies
// past M or N: a split GEMM's partial results (GemmParams.k_continue).
// Unrolled like store_block.
fn load_block(z: u32, row0: u32, col0: u32) -> mat4x4<f32> {
    return transpose(mat4x4<f32>(load_row(z, row0, col0), load_row(z, row0 + 1u, col0),
                                 load_row(z, row0 + 2u, col0), load_row(z, row0 + 3u, col0)));
}

fn load_row(z: u32, row: u32, col0: u32) -> vec4<f32> {
    if (row >= p.m || col0 >= p.n_end) { return vec4<f32>(0.0); }
    return c[(z * p.stride_c + row * p.ldc + col0) / 4u];
}
