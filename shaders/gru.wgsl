// gru.wgsl — one GRU time step forward, fused: the recurrent product
// h_{t-1}·W_hhᵀ, the gates and the state update for the rows active at
// step t (backward: gru_backward.wgsl).
//   gru_step_forward   r = σ(x_r + b_hr + W_hr h), z = σ(x_z + b_hz + W_hz h),
//                      n = tanh(x_n + r⊙(W_hn h + b_hn)), h' = (1−z)⊙n + z⊙h
//                      where x_* = xW_ihᵀ + b_ih, precomputed for all steps
// G = 3H; gate order r, z, n (PyTorch). N = packed rows.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh    read        (G, H)
//   3 b_hh    read        (G)
//   4 h0      read        (L·D, B, H)
//   5 gates   read_write  (N, G): in xW_ihᵀ + b_ih, out the activations r, z, n
//   6 out     read_write  (N, D·H): h of both directions
//   7 hn_lin  read_write  (N, H): W_hn h_{t-1} + b_hn (for dr)
//   8 h_prev  read_write  (N, H): h_{t-1} per packed row
//   9 h_n     read_write  (L·D, B, H)
// Workgroup mapping: WG invocations along H; workgroup y = active sorted
// row s (dispatch y = batch_size(t)).
// Saves for backward: gates, hn_lin, h_prev.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> h0: array<f32>;
@group(0) @binding(5) var<storage, read_write> gates: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> hn_lin: array<f32>;
@group(0) @binding(8) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(9) var<storage, read_write> h_n: array<f32>;

@compute @workgroup_size(WG)
fn gru_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let s = wg.y;
    let g3 = 3u * h;
    let row = step_offset(p.t) + s;
    let prev = previous_row(s);
    var a_r = b_hh[j];
    var a_z = b_hh[h + j];
    var a_n = b_hh[2u * h + j];
    var h_own: f32;
    if (prev == NO_ROW) {
        let base = state_at(s, 0u);
        for (var k = 0u; k < h; k++) {
            let hk = h0[base + k];
            a_r += w_hh[j * h + k] * hk;
            a_z += w_hh[(h + j) * h + k] * hk;
            a_n += w_hh[(2u * h + j) * h + k] * hk;
        }
        h_own = h0[base + j];
    } else {
        let base = prev * p.out_stride + p.out_offset;
        for (var k = 0u; k < h; k++) {
            let hk = out[base + k];
            a_r += w_hh[j * h + k] * hk;
            a_z += w_hh[(h + j) * h + k] * hk;
            a_n += w_hh[(2u * h + j) * h + k] * hk;
        }
        h_own = out[base + j];
    }
    let r = sigmoid(gates[row * g3 + j] + a_r);
    let z = sigmoid(gates[row * g3 + h + j] + a_z);
    let n = tanh_stable(gates[row * g3 + 2u * h + j] + r * a_n);
    let hv = (1.0 - z) * n + z * h_own;
    gates[row * g3 + j] = r;
    gates[row * g3 + h + j] = z;
    gates[row * g3 + 2u * h + j] = n;
    hn_lin[row * h + j] = a_n;
    h_prev[row * h + j] = h_own;
    out[row * p.out_stride + p.out_offset + j] = hv;
    if (next_row(s) == NO_ROW) {
        h_n[state_at(s, j)] = hv;
    }
}
