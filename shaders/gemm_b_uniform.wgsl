// gemm_b_uniform.wgsl — b_fragment for gemm_subgroup_window: op(B) read
// from a uniform window of B_WINDOW_VEC4S vec4s (64 KiB) instead of its
// storage binding (prepended after gemm_vec4_common.wgsl by the kernel
// registry).
//
// Why: on lavapipe a storage load is a loop over the 8 SIMD lanes that
// inserts each lane's value through the stack, and the reload of the
// vector after a partial store stalls store-to-load forwarding: perf puts
// ~80% of gemm_subgroup's time on those reloads, ~70% on B's 16 loads per
// k-step (A's 4 are shared by the subgroup). A uniform array read at a
// per-lane index is one gather. 64 KiB holds 128 k-rows of a 128-wide B,
// so src/ops/gemm.rs splits a GEMM into dispatches over k (B stored
// (K, N)) or over columns (B stored (N, K)) that each read one window.
//
// Bindings:
//   6 b_window      uniform  B_WINDOW_VEC4S vec4s of B's buffer; B's element e
//                            (as b_fragment in gemm_b_storage.wgsl counts it,
//                            batch 0) is vec4 (e + p.b_shift) / 4
//   7 partial       read     (M, N) as vec4: the partial product to continue
//                            from when k_continue is 2 (bound to `a` and never
//                            read otherwise)
//   8 partial_sums  read     (M) as vec4: the partial column sums likewise
//                            (`_sums` entry only)
// Workgroup mapping: the including kernel's.

@group(0) @binding(6) var<uniform> b_window: array<vec4<f32>, B_WINDOW_VEC4S>;

@group(0) @binding(7) var<storage, read> partial: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> partial_sums: array<vec4<f32>>;

// Where a continuing dispatch starts: k_continue 1, C's and the sums'
// stored values (alpha 1, beta 0, no bias: C holds the bare partial
// product); 2, the bare partial product in `partial` and `partial_sums`
// (the last window of any other GEMM, which then applies alpha, bias and
// beta · C as the unsplit kernel does).
fn continued_block(z: u32, row0: u32, col0: u32) -> mat4x4<f32> {
    if (p.k_continue == 2u) {
        return transpose(mat4x4<f32>(partial_row(row0, col0), partial_row(row0 + 1u, col0),
                                     partial_row(row0 + 2u, col0), partial_row(row0 + 3u, col0)));
    }
    return load_block(z, row0, col0);
}

fn partial_row(row: u32, col0: u32) -> vec4<f32> {
    if (row >= p.m || col0 >= p.n_end) { return vec4<f32>(0.0); }
    return partial[(row * p.ldc + col0) / 4u];
}

fn continued_sums(row: u32) -> vec4<f32> {
    if (p.k_continue == 2u) { return partial_sums[row / 4u]; }
    return a_sums4[row / 4u];
}

fn b_at(e: u32) -> vec4<f32> {
    return b_window[(e + p.b_shift) / 4u];
}

// gemm_b_storage.wgsl's b_fragment over the window: the same values in
// the same layout. Columns clamp to this dispatch's (n_end), rows are in
// range by construction (k_begin ≤ k0 < k_end, all inside the window).
fn b_fragment(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    if (TRANS_B) {
        let last = p.n_end - 1u;
        return mat4x4<f32>(b_at(base + min(col0, last) * p.ldb + k0), b_at(base + min(col0 + 1u, last) * p.ldb + k0),
                           b_at(base + min(col0 + 2u, last) * p.ldb + k0), b_at(base + min(col0 + 3u, last) * p.ldb + k0));
    }
    let cc = min(col0, p.n - 4u);
    return transpose(mat4x4<f32>(b_at(base + k0 * p.ldb + cc), b_at(base + (k0 + 1u) * p.ldb + cc),
                                 b_at(base + (k0 + 2u) * p.ldb + cc), b_at(base + (k0 + 3u) * p.ldb + cc)));
}

// The windowed module's entries: gemm_subgroup and gemm_subgroup_sums
// (gemm_subgroup.wgsl) with this b_fragment, under their own names so
// the step profile tells them apart.
@compute @workgroup_size(SUBGROUP_SIZE)
fn gemm_subgroup_window(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    _ = subgroup_tile(wg, lane, vec4<f32>(0.0));
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn gemm_subgroup_window_sums(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    tile_and_sums(wg, lane);
}
