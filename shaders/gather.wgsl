// gather.wgsl — row gather by index (embedding lookup):
//   gather_rows       out[i, :] = table[idx[i], :]
//   gather_rows_vec4  the same, four columns per invocation (cols % 4 == 0)
// An index ≥ rows writes a zero row instead of reading out of bounds; the
// Rust launcher rejects such indices before launching, this is a second
// line of defence.
//
// Bindings:
//   0 p      uniform     GatherParams
//   1 table  read        (rows, cols)
//   2 idx    read        (count) u32
//   3 out    read_write  (count, cols)
//   4 table4 read        (rows, cols) as vec4 (gather_rows_vec4)
//   5 out4   read_write  (count, cols) as vec4 (gather_rows_vec4)
// Workgroup mapping: one invocation per output element (vec4 for
// gather_rows_vec4), WG per workgroup, workgroups over x and y.
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

@group(0) @binding(4) var<storage, read> table4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

// Why a vec4 entry: on lavapipe every load is a loop over the SIMD lanes
// per component, so the index load is paid once per four columns here.
@compute @workgroup_size(WG)
fn gather_rows_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let cols4 = p.cols / 4u;
    let e = linear_workgroup(wg, nwg) * WG + lid;
    if (e >= p.count * cols4) { return; }
    let i = e / cols4;
    let j = e - i * cols4;
    let r = idx[i];
    out4[e] = select(vec4<f32>(0.0), table4[min(r, p.rows - 1u) * cols4 + j], r < p.rows);
}
