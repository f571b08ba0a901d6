// dropout.wgsl — inverted dropout with a mask recomputed from a hash, so
// nothing is stored and backward applies the same op to the gradient:
//   dropout_apply   packed (N, F): out[r, f] = keep(seed, layer, e) ? x[r, f] / (1 − prob) : 0
//                   where e = (b·T + t)·F + f is the padded index of packed
//                   row r (pack_index[r] = b·T + t), so the mask does not
//                   depend on packing
//   dropout_dense   any tensor: the same with e = the element's own index
//   dropout_keyed   (N, F) with a key per row (AWD-LSTM's locked and
//                   embedding dropout): e = key[r]·F + f when `whole_rows`
//                   is 0 (one mask per key and feature, shared by every row
//                   with that key: a sequence's mask shared over time), or
//                   e = key[r] when it is 1 (the whole row kept or dropped
//                   together: a word dropped everywhere it occurs)
// All match `rnn::spec::dropout_keep` on the CPU bit for bit.
//
// Bindings:
//   0 p           uniform     DropoutParams
//   1 x           read        (N, F)
//   2 pack_index  read        (N) u32: b·T + t of each packed row (dropout_apply),
//                             or the key of each row (dropout_keyed)
//   3 out         read_write  (N, F)
// Workgroup mapping: one invocation per element, WG per workgroup,
// workgroups over x and y.
// Saves nothing (the mask is a pure function of its indices).

override WG: u32 = 256u;

// Mirrors `DropoutParams` in src/ops/dropout.rs.
struct DropoutParams {
    rows: u32,
    cols: u32,
    seed_lo: u32,
    seed_hi: u32,
    layer: u32,
    prob: f32,
    scale: f32,
    whole_rows: u32,
}

@group(0) @binding(0) var<uniform> p: DropoutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pack_index: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// PCG-RXS-M-XS 32-bit hash; `pcg_hash` in src/rnn/spec.rs.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn dropout_keep(element: u32) -> bool {
    let h = pcg_hash(pcg_hash(element ^ pcg_hash(p.layer ^ pcg_hash(p.seed_lo ^ pcg_hash(p.seed_hi)))));
    return f32(h >> 8u) * (1.0 / 16777216.0) >= p.prob;
}

@compute @workgroup_size(WG)
fn dropout_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = linear_workgroup(wg, nwg) * WG + lid;
    if (e >= p.rows * p.cols) { return; }
    let r = e / p.cols;
    let f = e - r * p.cols;
    let padded = pack_index[r] * p.cols + f;
    out[e] = select(0.0, x[e] * p.scale, dropout_keep(padded));
}

@compute @workgroup_size(WG)
fn dropout_dense(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = linear_workgroup(wg, nwg) * WG + lid;
    if (e >= p.rows * p.cols) { return; }
    out[e] = select(0.0, x[e] * p.scale, dropout_keep(e));
}

@compute @workgroup_size(WG)
fn dropout_keyed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = linear_workgroup(wg, nwg) * WG + lid;
    if (e >= p.rows * p.cols) { return; }
    let r = e / p.cols;
    let f = e - r * p.cols;
    let unit = select(pack_index[r] * p.cols + f, pack_index[r], p.whole_rows == 1u);
    out[e] = select(0.0, x[e] * p.scale, dropout_keep(unit));
}
