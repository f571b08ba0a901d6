// elementwise.wgsl — one element per invocation:
//   elementwise_add   out[i] = x[i] + y[i]
//   elementwise_mul   out[i] = x[i] * y[i]
//   elementwise_scale out[i] = scalar * x[i]
//   elementwise_copy  out[i] = x[i]
//   elementwise_fill  out[i] = scalar
//   elementwise_axpy  out[i] = out[i] + scalar * x[i]   (gradient accumulation)
//
// Bindings (each entry binds only what it uses):
//   0 p    uniform     ElementwiseParams
//   1 x    read        (n)
//   2 y    read        (n)
//   3 out  read_write  (n)
// Workgroup mapping: WG invocations per workgroup, workgroups laid out over
// x and y (see linear_workgroup); invocations past n return.
// Saves nothing for backward.

override WG: u32 = 256u;

// Mirrors `ElementwiseParams` in src/ops/elementwise.rs.
struct ElementwiseParams {
    n: u32,
    scalar: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn element_index(wg: vec3<u32>, num_wg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wg, num_wg) * WG + lid;
}

@compute @workgroup_size(WG)
fn elementwise_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wg, nwg, lid);
    if (i < p.n) { out[i] = x[i] + y[i]; }
}

@compute @workgroup_size(WG)
fn elementwise_mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wg, nwg, lid);
    if (i < p.n) { out[i] = x[i] * y[i]; }
}

@compute @workgroup_size(WG)
fn elementwise_scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wg, nwg, lid);
    if (i < p.n) { out[i] = p.scalar * x[i]; }
}

@compute @workgroup_size(WG)
fn elementwise_copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wg, nwg, lid);
    if (i < p.n) { out[i] = x[i]; }
}

@compute @workgroup_size(WG)
fn elementwise_fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wg, nwg, lid);
    if (i < p.n) { out[i] = p.scalar; }
}

@compute @workgroup_size(WG)
fn elementwise_axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wg, nwg, lid);
    if (i < p.n) { out[i] = out[i] + p.scalar * x[i]; }
}
