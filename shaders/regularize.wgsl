// regularize.wgsl — the activation penalties of AWD-LSTM (Merity et al.
// 2017) over a packed (N, F) activation, as one scalar:
//   square_sum_forward    out[0] = scale · Σ_r Σ_f d[r, f]²
//   square_sum_backward   dx[r, f] = 2·scale·g · (d[r, f] − d[next[r], f])
// where d[r, f] = x[r, f] − x[prev[r], f] for temporal differences (TAR,
// `temporal` = 1: rows with no previous step contribute nothing) and
// d[r, f] = x[r, f] for the activation itself (AR, `temporal` = 0).
// `links[2r] = prev[r]`, `links[2r + 1] = next[r]`: the packed row of the
// same sequence one step earlier / later, 0xFFFFFFFF where there is none.
// CPU reference: `reference::lm::square_sum` (f64).
//
// Bindings:
//   0 p       uniform     SquareSumParams
//   1 x       read        (N, F)
//   2 links   read        (N, 2) u32 prev, next (read only when temporal = 1)
//   3 out     read_write  forward: (1) the penalty; backward: (N, F) dx
//   4 g       read        (1) gradient of the penalty (backward only)
// Workgroup mapping: forward is one workgroup of WG invocations striding
// over the N·F elements, then a tree reduction in workgroup memory (a fixed
// order, so the sum is deterministic); backward is one invocation per
// element, workgroups over x and y.
// Saves nothing (backward recomputes the differences from x).

const WG: u32 = 256u;
const NONE: u32 = 0xFFFFFFFFu;

// Mirrors `SquareSumParams` in src/ops/regularize.rs.
struct SquareSumParams {
    rows: u32,
    cols: u32,
    temporal: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: SquareSumParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> links: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;

var<workgroup> partial: array<f32, WG>;

// d[r, f], or 0 for a row with no previous step in temporal mode.
fn diff(r: u32, f: u32) -> f32 {
    if (p.temporal == 0u) { return x[r * p.cols + f]; }
    let prev = links[2u * r];
    if (prev == NONE) { return 0.0; }
    return x[r * p.cols + f] - x[prev * p.cols + f];
}

@compute @workgroup_size(WG)
fn square_sum_forward(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    let total = p.rows * p.cols;
    for (var e = lid; e < total; e += WG) {
        let r = e / p.cols;
        let d = diff(r, e - r * p.cols);
        acc += d * d;
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) { partial[lid] += partial[lid + stride]; }
        workgroupBarrier();
    }
    if (lid == 0u) { out[0] = p.scale * partial[0]; }
}

@compute @workgroup_size(WG)
fn square_sum_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let e = linear_workgroup(wg, nwg) * WG + lid;
    if (e >= p.rows * p.cols) { return; }
    let r = e / p.cols;
    let f = e - r * p.cols;
    var d = diff(r, f);
    if (p.temporal == 1u) {
        let next = links[2u * r + 1u];
        if (next != NONE) { d -= diff(next, f); }
    }
    out[e] = 2.0 * p.scale * g[0] * d;
}
