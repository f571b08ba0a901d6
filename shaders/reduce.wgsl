// reduce.wgsl — deterministic sums of a row-major (M, N) matrix; each output
// is summed by one invocation in a fixed order, so results are bitwise
// reproducible (no atomics):
//   sum_rows  out[m] = Σ_n x[m, n]  + beta · out[m]     out: (M)
//   sum_cols  out[n] = Σ_m x[m, n]  + beta · out[n]     out: (N)  (bias gradients)
//   sum_cols_vec4  the same for N % 4 == 0, four columns per invocation
//             through vec4 views (a quarter of the loads; each column's
//             sum has the same order, so the same bits)
// With beta == 0 the old contents of out are never read (may be garbage).
//
// Bindings:
//   0 p    uniform     ReduceParams
//   1 x    read        (M, N)
//   2 out  read_write  (M) or (N)
//   3 x4   read        (M, N/4) vec4 view of x      sum_cols_vec4
//   4 out4 read_write  (N/4) vec4 view of out       sum_cols_vec4
// Workgroup mapping: one invocation per output element (sum_cols_vec4:
// per four), WG per workgroup.
// Saves nothing for backward.

override WG: u32 = 64u;

// Mirrors `ReduceParams` in src/ops/reduce.rs.
struct ReduceParams {
    m: u32,
    n: u32,
    beta: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn sum_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = linear_workgroup(wg, nwg) * WG + lid;
    if (row >= p.m) { return; }
    var acc = 0.0;
    let base = row * p.n;
    for (var j = 0u; j < p.n; j++) { acc += x[base + j]; }
    if (p.beta != 0.0) { acc += p.beta * out[row]; }
    out[row] = acc;
}

@compute @workgroup_size(WG)
fn sum_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let col = linear_workgroup(wg, nwg) * WG + lid;
    if (col >= p.n) { return; }
    var acc = 0.0;
    for (var i = 0u; i < p.m; i++) { acc += x[i * p.n + col]; }
    if (p.beta != 0.0) { acc += p.beta * out[col]; }
    out[col] = acc;
}

// On lavapipe a load is a loop over the SIMD lanes whatever its width, so
// one vec4 load for four columns is a quarter of sum_cols' cost.
@compute @workgroup_size(WG)
fn sum_cols_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let col4 = linear_workgroup(wg, nwg) * WG + lid;
    let n4 = p.n / 4u;
    if (col4 >= n4) { return; }
    var acc = vec4<f32>(0.0);
    for (var i = 0u; i < p.m; i++) { acc += x4[i * n4 + col4]; }
    if (p.beta != 0.0) { acc += p.beta * out4[col4]; }
    out4[col4] = acc;
}
