// gather.wgsl — row gather by index (embedding lookup):
//   gather_rows  out[i, :] = table[idx[i], :]
// An index ≥ rows writes a zero row instead of reading out of bounds; the
// Rust launcher rejects such indices before launching, this is a second
// line of defence.
//
// Bindings:
//   0 p      uniform     GatherParams
//   1 table  read        (rows, cols)
//   2 idx    read        (count) u32
//   3 out    read_write  (count, cols)
// Workgroup mapping: one invocation per output element, WG per workgroup,
// workgroups over x and y.
// Saves nothing for backward.

override WG: u32 = 256u;

// Mirrors `GatherParams` in src/ops/gather.rs.
struct GatherParams {
    rows: u32,
    cols: u32,
    count: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: GatherParams;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn gather_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_workgroup(wg, nwg) * WG + lid;
    if (e >= p.count * p.cols) { return; }
    let i = e / p.cols;
    let j = e - i * p.cols;
    let r = idx[i];
    out[e] = select(0.0, table[min(r, p.rows - 1u) * p.cols + j], r < p.rows);
}
