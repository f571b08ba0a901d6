// embedding.wgsl — gradient of an embedding lookup, deterministic (WGSL has
// no float atomics; and atomics would make the sum order, hence the bits,
// vary between runs):
//   embedding_backward       grad_weight[id_u, e] += Σ_{p ∈ bucket u} grad_out[positions[p], e]
//   embedding_backward_vec4  the same, four features per invocation (E % 4 == 0)
// The host sorts the looked-up ids into buckets (one per distinct id, the
// padding index left out), so each output row is summed by one invocation
// per feature in a fixed order. (The forward lookup is gather_rows.)
//
// Bindings:
//   0 p            uniform     EmbeddingParams
//   1 grad_out     read        (count, E)
//   2 buckets      read        u32: ids[U] | offsets[U + 1] | positions[count]
//   3 grad_weight  read_write  (V, E)
//   4 grad_out4    read        (count, E) as vec4 (embedding_backward_vec4)
//   5 grad_weight4 read_write  (V, E) as vec4 (embedding_backward_vec4)
// Workgroup mapping: embedding_backward: WG invocations along E; workgroup
// y = bucket u (y is split over x and z beyond 65535 buckets: u = wg.z ·
// 65535 + wg.y). embedding_backward_vec4: one invocation per (bucket,
// feature quad), buckets one after another, workgroups over x and y.
// Saves nothing.

override WG: u32 = 64u;

// Mirrors `EmbeddingParams` in src/autograd/launch.rs.
struct EmbeddingParams {
    unique: u32,
    dim: u32,
    count: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: EmbeddingParams;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read> buckets: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad_weight: array<f32>;

@compute @workgroup_size(WG)
fn embedding_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let e = wg.x * WG + lid;
    let u = wg.z * 65535u + wg.y;
    if (e >= p.dim || u >= p.unique) { return; }
    let id = buckets[u];
    let start = buckets[p.unique + u];
    let end = buckets[p.unique + u + 1u];
    var acc = 0.0;
    for (var q = start; q < end; q++) {
        acc += grad_out[buckets[2u * p.unique + 1u + q] * p.dim + e];
    }
    grad_weight[id * p.dim + e] += acc;
}

@group(0) @binding(4) var<storage, read> grad_out4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> grad_weight4: array<vec4<f32>>;

// Why a vec4 entry: on lavapipe every load is a loop over the SIMD lanes
// per component, and the scalar entry pays the bucket's three index loads
// (and each position's) once per feature; here once per four. The sums
// are the scalar entry's, feature by feature, so the bits are the same.
@compute @workgroup_size(WG)
fn embedding_backward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let dim4 = p.dim / 4u;
    let i = linear_workgroup(wg, nwg) * WG + lid;
    if (i >= p.unique * dim4) { return; }
    let u = i / dim4;
    let f = i - u * dim4;
    let id = buckets[u];
    let start = buckets[p.unique + u];
    let end = buckets[p.unique + u + 1u];
    var acc = vec4<f32>(0.0);
    for (var q = start; q < end; q++) {
        acc += grad_out4[buckets[2u * p.unique + 1u + q] * dim4 + f];
    }
    grad_weight4[id * dim4 + f] += acc;
}
