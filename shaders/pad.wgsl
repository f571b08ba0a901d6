// pad.wgsl — copies a (batch, rows, cols) block between row strides,
// writing zeros outside it:
//   copy_padded  out[z, r, c] = r < rows && c < cols ? src[z·src_batch + r·src_ld + c] : 0
//                for every (z, r, c) of out (batch, out_rows, out_cols)
// What it is for: the vec4 GEMM needs its contiguous dimensions to be
// multiples of 4; src/ops/gemm.rs pads unaligned operands into zeroed
// grids of aligned width (out wider than src) and copies the product back
// (out narrower than src), which costs a few memory passes against a
// GEMM that runs ~5× faster on lavapipe than the scalar fallback.
//
// Bindings:
//   0 p    uniform     PadParams
//   1 src  read        (batch, ·, src_ld) (a 2-D source has src_batch 0)
//   2 out  read_write  (batch, out_rows, out_cols)
// Workgroup mapping: one invocation per output element, WG per workgroup,
// workgroups over x and y.
// Saves nothing.

override WG: u32 = 256u;

// Mirrors `PadParams` in src/ops/pad.rs.
struct PadParams {
    rows: u32,
    cols: u32,
    src_ld: u32,
    src_batch: u32,
    out_rows: u32,
    out_cols: u32,
    batch: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: PadParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn copy_padded(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_workgroup(wg, nwg) * WG + lid;
    let plane = p.out_rows * p.out_cols;
    if (e >= p.batch * plane) { return; }
    let z = e / plane;
    let r = (e - z * plane) / p.out_cols;
    let c = e - z * plane - r * p.out_cols;
    let inside = r < p.rows && c < p.cols;
    // Clamped so the (unused) read of a zero element stays in bounds.
    let si = z * p.src_batch + min(r, p.rows - 1u) * p.src_ld + min(c, p.cols - 1u);
    out[e] = select(0.0, src[si], inside);
}
