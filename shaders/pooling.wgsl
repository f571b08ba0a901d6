// pooling.wgsl — sequence pooling for classifiers, over each row's own
// valid steps of a packed (N, F) output, and the last-hidden-state pick:
//   pool_mean_forward    out[b, f] = mean over t < len_b of x[packed(t, b), f]
//   pool_mean_backward   grad_x[packed(t, b), f] = g[b, f] / len_b
//   pool_max_forward     out[b, f] = max over t < len_b; argmax row saved
//   pool_max_backward    grad_x[row, f] = g[b, f] if row is the argmax, else 0
//   pool_last_forward    out[b, d·H + j] = h_n[(L−1)·D + d, b, j]
//                        (last layer, both directions concatenated)
//   pool_last_backward   grad_h_n = g in the last layer's slices, 0 elsewhere
// Output rows are in the caller's order (b), packed rows in sorted order.
//
// Bindings:
//   0 p       uniform     PoolParams
//   1 info    read        u32 packed layout (as shaders/recurrent.wgsl)
//   2 x       read        (N, F) packed, or h_n (L·D, B, H), or the upstream grad
//   3 out     read_write  (B, F) pooled, or the gradient being produced
//   4 argmax  read_write  (B, F) u32 packed row of each max
// Workgroup mapping: one invocation per element of the output written
// (per (row, feature) for mean/max, per element for last), WG per
// workgroup, grids over x and y.
// Saves for backward: argmax (max pooling).

override WG: u32 = 64u;

// Mirrors `PoolParams` in src/autograd/launch.rs.
struct PoolParams {
    batch: u32,     // B
    steps: u32,     // T (padded length, for the info layout)
    features: u32,  // F (= D·H)
    hidden: u32,    // H (last-state kernels)
    first_state: u32, // (L−1)·D (last-state kernels)
    states: u32,    // L·D (last-state kernels)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> argmax: array<u32>;

fn step_offset(t: u32) -> u32 { return info[t]; }
fn row_length(s: u32) -> u32 { return info[2u * p.steps + 1u + s]; }
fn original_row(s: u32) -> u32 { return info[2u * p.steps + 1u + p.batch + s]; }

fn invocation(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wg, nwg) * WG + lid;
}

@compute @workgroup_size(WG)
fn pool_mean_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.batch * p.features) { return; }
    let s = e / p.features;
    let f = e - s * p.features;
    let len = row_length(s);
    var acc = 0.0;
    for (var t = 0u; t < len; t++) { acc += x[(step_offset(t) + s) * p.features + f]; }
    out[original_row(s) * p.features + f] = acc / f32(len);
}

@compute @workgroup_size(WG)
fn pool_mean_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.batch * p.features) { return; }
    let s = e / p.features;
    let f = e - s * p.features;
    let len = row_length(s);
    let g = x[original_row(s) * p.features + f] / f32(len);
    for (var t = 0u; t < len; t++) { out[(step_offset(t) + s) * p.features + f] = g; }
}

@compute @workgroup_size(WG)
fn pool_max_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.batch * p.features) { return; }
    let s = e / p.features;
    let f = e - s * p.features;
    var best_row = s; // step 0: packed row step_offset(0) + s = s
    var best = x[s * p.features + f];
    for (var t = 1u; t < row_length(s); t++) {
        let row = step_offset(t) + s;
        let v = x[row * p.features + f];
        if (v > best) { best = v; best_row = row; }
    }
    let o = original_row(s) * p.features + f;
    out[o] = best;
    argmax[o] = best_row;
}

@compute @workgroup_size(WG)
fn pool_max_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.batch * p.features) { return; }
    let s = e / p.features;
    let f = e - s * p.features;
    let o = original_row(s) * p.features + f;
    let g = x[o];
    let win = argmax[o];
    for (var t = 0u; t < row_length(s); t++) {
        let row = step_offset(t) + s;
        out[row * p.features + f] = select(0.0, g, row == win);
    }
}

@compute @workgroup_size(WG)
fn pool_last_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.batch * p.features) { return; }
    let b = e / p.features;
    let col = e - b * p.features;
    let d = col / p.hidden;
    let j = col - d * p.hidden;
    out[e] = x[((p.first_state + d) * p.batch + b) * p.hidden + j];
}

@compute @workgroup_size(WG)
fn pool_last_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.states * p.batch * p.hidden) { return; }
    let state = e / (p.batch * p.hidden);
    let rest = e - state * p.batch * p.hidden;
    let b = rest / p.hidden;
    let j = rest - b * p.hidden;
    var g = 0.0;
    if (state >= p.first_state) { g = x[b * p.features + (state - p.first_state) * p.hidden + j]; }
    out[e] = g;
}
