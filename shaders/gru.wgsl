// gru.wgsl — one GRU time step forward, fused: the recurrent product
// h_{t-1}·W_hhᵀ, the gates and the state update for the rows active at
// step t (backward: gru_backward.wgsl).
//   gru_step_forward   r = σ(x_r + b_hr + W_hr h), z = σ(x_z + b_hz + W_hz h),
//                      n = tanh(x_n + r⊙(W_hn h + b_hn)), h' = (1−z)⊙n + z⊙h
//                      where x_* = xW_ihᵀ + b_ih, precomputed for all steps
// G = 3H; gate order r, z, n (PyTorch). N = packed rows.
//
// State: h_{t-1} from a dense (B, H) buffer in sorted row order (state_in),
// h_t to another (state_out); they swap every step and both start as h0.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh       read        (G, H)
//   3 b_hh       read        (G)
//   4 state_in   read        (B, H) h_{t-1}, sorted rows
//   5 gates      read_write  (N, G): in xW_ihᵀ + b_ih, out the activations r, z, n
//   6 out        read_write  (N, D·H): h of both directions
//   7 hn_lin     read_write  (N, H): W_hn h_{t-1} + b_hn (for dr)
//   8 h_prev     read_write  (N, H): h_{t-1} per packed row
//   9 h_n        read_write  (L·D, B, H)
//   10 state_out read_write  (B, H) h_t, sorted rows
// Workgroup mapping: WG invocations along H; workgroup y is a tile of ROWS
// active rows, each invocation computing its unit for all of them (one
// W_hh load serves ROWS rows).
// Saves for backward: gates, hn_lin, h_prev.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> gates: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> hn_lin: array<f32>;
@group(0) @binding(8) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(9) var<storage, read_write> h_n: array<f32>;
@group(0) @binding(10) var<storage, read_write> state_out: array<f32>;

@compute @workgroup_size(WG)
fn gru_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    var acc: array<vec3<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h;
        acc[r] = vec3<f32>(0.0);
    }
    for (var k = 0u; k < h; k++) {
        let w = vec3<f32>(w_hh[j * h + k], w_hh[(h + j) * h + k], w_hh[(2u * h + j) * h + k]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec3<f32>(state_in[base[r] + k]), w, acc[r]);
        }
    }
    let bias = vec3<f32>(b_hh[j], b_hh[h + j], b_hh[2u * h + j]);
    let g3 = 3u * h;
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let a = acc[r] + bias;
        let h_own = state_in[s * h + j];
        let rg = sigmoid(gates[row * g3 + j] + a.x);
        let z = sigmoid(gates[row * g3 + h + j] + a.y);
        let n = tanh_stable(gates[row * g3 + 2u * h + j] + rg * a.z);
        let hv = (1.0 - z) * n + z * h_own;
        gates[row * g3 + j] = rg;
        gates[row * g3 + h + j] = z;
        gates[row * g3 + 2u * h + j] = n;
        hn_lin[row * h + j] = a.z;
        h_prev[row * h + j] = h_own;
        out[row * p.out_stride + p.out_offset + j] = hv;
        state_out[s * h + j] = hv;
        if (next_row(s) == NO_ROW) {
            h_n[state_at(s, j)] = hv;
        }
    }
}
