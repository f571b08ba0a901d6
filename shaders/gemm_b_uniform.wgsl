// gemm_b_uniform.wgsl — the windowed module's B fragments and k-steps
// (k_loop) for gemm_subgroup.wgsl: op(B) read from uniform windows of
// B_WINDOW_VEC4S vec4s (64 KiB each) instead of its storage binding
// (prepended after gemm_vec4_common.wgsl by the kernel registry).
//
// Why: on lavapipe a storage load is a loop over the 8 SIMD lanes that
// inserts each lane's value through the stack, and the reload of the
// vector after a partial store stalls store-to-load forwarding: perf puts
// ~80% of gemm_subgroup's time on those reloads, ~70% on B's 16 loads per
// k-step (A's 4 are shared by the subgroup). A uniform array read at a
// per-lane index is one gather. 64 KiB holds 128 k-rows of a 128-wide B,
// so src/ops/gemm.rs splits a GEMM into dispatches over k (B stored
// (K, N)) or over columns (B stored (N, K)). A dispatch over k reads up to
// four windows (bindings 6, 9, 10, 11: consecutive ranges of B's buffer,
// GemmParams.slab_elems apart, each holding whole k-rows), so it reloads
// and stores the partial product a quarter as often: for the bench
// step's weight gradients that traffic was twice A's loads per window.
//
// Bindings:
//   6 b_window      uniform  B_WINDOW_VEC4S vec4s of B's buffer; B's element e
//                            (as b_fragment in gemm_b_storage.wgsl counts it,
//                            batch 0) is vec4 (e + p.b_shift) / 4
//   9, 10, 11       uniform  windows 1–3 likewise, each slab_elems elements
//                            further into B's buffer (bound to window 0's
//                            range and never read where the dispatch has fewer)
//   7 partial       read     (M, N) as vec4: the partial product to continue
//                            from when k_continue is 2 (bound to `a` and never
//                            read otherwise)
//   8 partial_sums  read     (M) as vec4: the partial column sums likewise
//                            (`_sums` entry only)
// Workgroup mapping: the including kernel's.

@group(0) @binding(6) var<uniform> b_window: array<vec4<f32>, B_WINDOW_VEC4S>;
@group(0) @binding(9) var<uniform> b_window1: array<vec4<f32>, B_WINDOW_VEC4S>;
@group(0) @binding(10) var<uniform> b_window2: array<vec4<f32>, B_WINDOW_VEC4S>;
@group(0) @binding(11) var<uniform> b_window3: array<vec4<f32>, B_WINDOW_VEC4S>;

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

// Index in window j's array of B's element e (as b_fragment in
// gemm_b_storage.wgsl counts it, batch 0).
fn window_index(j: u32, e: u32) -> u32 {
    return (e + p.b_shift - j * p.slab_elems) / 4u;
}

// B's elements of fragment (k0, col0), vec4 i: gemm_b_storage.wgsl's
// b_fragment addresses. Columns clamp to this dispatch's (n_end), rows are
// in range by construction (k_begin ≤ k0 < k_end, all inside the windows).
fn fragment_element(base: u32, k0: u32, col0: u32, i: u32) -> u32 {
    if (TRANS_B) {
        return base + min(col0 + i, p.n_end - 1u) * p.ldb + k0;
    }
    return base + (k0 + i) * p.ldb + min(col0, p.n - 4u);
}

// A fragment from its four vec4s, laid out as b_fragment's.
fn fragment(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) -> mat4x4<f32> {
    if (TRANS_B) { return mat4x4<f32>(v0, v1, v2, v3); }
    return transpose(mat4x4<f32>(v0, v1, v2, v3));
}

// Fragment (k0, col0) from window 0, 1, 2 or 3: one function per window,
// since WGSL takes no binding as an argument.
fn fragment_w0(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    return fragment(b_window[window_index(0u, fragment_element(base, k0, col0, 0u))],
                    b_window[window_index(0u, fragment_element(base, k0, col0, 1u))],
                    b_window[window_index(0u, fragment_element(base, k0, col0, 2u))],
                    b_window[window_index(0u, fragment_element(base, k0, col0, 3u))]);
}

fn fragment_w1(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    return fragment(b_window1[window_index(1u, fragment_element(base, k0, col0, 0u))],
                    b_window1[window_index(1u, fragment_element(base, k0, col0, 1u))],
                    b_window1[window_index(1u, fragment_element(base, k0, col0, 2u))],
                    b_window1[window_index(1u, fragment_element(base, k0, col0, 3u))]);
}

fn fragment_w2(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    return fragment(b_window2[window_index(2u, fragment_element(base, k0, col0, 0u))],
                    b_window2[window_index(2u, fragment_element(base, k0, col0, 1u))],
                    b_window2[window_index(2u, fragment_element(base, k0, col0, 2u))],
                    b_window2[window_index(2u, fragment_element(base, k0, col0, 3u))]);
}

fn fragment_w3(base: u32, k0: u32, col0: u32) -> mat4x4<f32> {
    return fragment(b_window3[window_index(3u, fragment_element(base, k0, col0, 0u))],
                    b_window3[window_index(3u, fragment_element(base, k0, col0, 1u))],
                    b_window3[window_index(3u, fragment_element(base, k0, col0, 2u))],
                    b_window3[window_index(3u, fragment_element(base, k0, col0, 3u))]);
}

// The four fragments of a k-step from window j (columns col0, col0 + 4,
// + 8, + 12), as gemm_b_storage.wgsl's b_fragments.
struct BFrags { f0: mat4x4<f32>, f1: mat4x4<f32>, f2: mat4x4<f32>, f3: mat4x4<f32> }

// The windowed module's k-steps: one loop per window, each reading only
// its own window. Windows hold whole k-rows (B stored (K, N)); a dispatch
// over columns (B stored (N, K)) has one window and all of k.
//
// Why four loops and not one with a switch over the windows: lavapipe
// runs both sides of every branch, masked, so a switch per k-step would
// load every window's fragments at every k-step; a loop whose range is
// empty runs its body once, masked, and is done.
fn k_loop(acc: ptr<function, Acc>, a_sums: ptr<function, vec4<f32>>, a_base: u32, b_base: u32, row0: u32,
          col0: u32, lane: u32) {
    // k-rows per window (all of this dispatch's k with one window).
    var per = p.k_end - p.k_begin;
    if (p.slab_elems != 0u) { per = p.slab_elems / p.ldb; }
    let base = b_base;
    let k1 = min(p.k_begin + per, p.k_end);
    let k2 = min(k1 + per, p.k_end);
    let k3 = min(k2 + per, p.k_end);
    for (var k0 = p.k_begin; k0 < k1; k0 += 4u) {
        k_step(acc, a_sums, a_base, row0, k0, lane, BFrags(fragment_w0(base, k0, col0), fragment_w0(base, k0, col0 + 4u),
                                     fragment_w0(base, k0, col0 + 8u), fragment_w0(base, k0, col0 + 12u)));
    }
    for (var k0 = k1; k0 < k2; k0 += 4u) {
        k_step(acc, a_sums, a_base, row0, k0, lane, BFrags(fragment_w1(base, k0, col0), fragment_w1(base, k0, col0 + 4u),
                                     fragment_w1(base, k0, col0 + 8u), fragment_w1(base, k0, col0 + 12u)));
    }
    for (var k0 = k2; k0 < k3; k0 += 4u) {
        k_step(acc, a_sums, a_base, row0, k0, lane, BFrags(fragment_w2(base, k0, col0), fragment_w2(base, k0, col0 + 4u),
                                     fragment_w2(base, k0, col0 + 8u), fragment_w2(base, k0, col0 + 12u)));
    }
    for (var k0 = k3; k0 < p.k_end; k0 += 4u) {
        k_step(acc, a_sums, a_base, row0, k0, lane, BFrags(fragment_w3(base, k0, col0), fragment_w3(base, k0, col0 + 4u),
                                     fragment_w3(base, k0, col0 + 8u), fragment_w3(base, k0, col0 + 12u)));
    }
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
