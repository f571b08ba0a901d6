// lstm.wgsl — one LSTM time step forward, fused: the recurrent product
// h_{t-1}·W_hhᵀ, the gate nonlinearities and the state update, for the rows
// active at step t (backward: lstm_backward.wgsl).
//   lstm_step_forward   a = xW_ihᵀ + b_ih (precomputed for all steps by one
//                       GEMM) + b_hh + h_{t-1}·W_hhᵀ; i, f, o = σ(a), g = tanh(a);
//                       c = f⊙c_{t-1} + i⊙g; h = o⊙tanh(c)
// G = 4H; gate order i, f, g, o (PyTorch). N = packed rows (Σ lengths).
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh    read        (G, H)
//   3 b_hh    read        (G)
//   4 h0      read        (L·D, B, H)
//   5 c0      read        (L·D, B, H)
//   6 gates   read_write  (N, G): in xW_ihᵀ + b_ih, out the activations i, f, g, o
//   7 out     read_write  (N, D·H): h of both directions (next layer's input)
//   8 cell    read_write  (N, H): c per packed row
//   9 h_prev  read_write  (N, H): h_{t-1} per packed row (for dW_hh)
//   10 h_n    read_write  (L·D, B, H)
//   11 c_n    read_write  (L·D, B, H)
// Workgroup mapping: WG invocations along the H units; workgroup y is the
// active sorted row s (dispatch y = batch_size(t)).
// Saves for backward: gates (activations), cell, h_prev; out holds h.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> h0: array<f32>;
@group(0) @binding(5) var<storage, read> c0: array<f32>;
@group(0) @binding(6) var<storage, read_write> gates: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> cell: array<f32>;
@group(0) @binding(9) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(10) var<storage, read_write> h_n: array<f32>;
@group(0) @binding(11) var<storage, read_write> c_n: array<f32>;

@compute @workgroup_size(WG)
fn lstm_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let s = wg.y;
    let g4 = 4u * h;
    let row = step_offset(p.t) + s;
    let prev = previous_row(s);
    var a_i = gates[row * g4 + j] + b_hh[j];
    var a_f = gates[row * g4 + h + j] + b_hh[h + j];
    var a_g = gates[row * g4 + 2u * h + j] + b_hh[2u * h + j];
    var a_o = gates[row * g4 + 3u * h + j] + b_hh[3u * h + j];
    var c_prev: f32;
    var h_own: f32;
    if (prev == NO_ROW) {
        let base = state_at(s, 0u);
        for (var k = 0u; k < h; k++) {
            let hk = h0[base + k];
            a_i += w_hh[j * h + k] * hk;
            a_f += w_hh[(h + j) * h + k] * hk;
            a_g += w_hh[(2u * h + j) * h + k] * hk;
            a_o += w_hh[(3u * h + j) * h + k] * hk;
        }
        c_prev = c0[base + j];
        h_own = h0[base + j];
    } else {
        let base = prev * p.out_stride + p.out_offset;
        for (var k = 0u; k < h; k++) {
            let hk = out[base + k];
            a_i += w_hh[j * h + k] * hk;
            a_f += w_hh[(h + j) * h + k] * hk;
            a_g += w_hh[(2u * h + j) * h + k] * hk;
            a_o += w_hh[(3u * h + j) * h + k] * hk;
        }
        c_prev = cell[prev * h + j];
        h_own = out[base + j];
    }
    let i = sigmoid(a_i);
    let f = sigmoid(a_f);
    let g = tanh_stable(a_g);
    let o = sigmoid(a_o);
    let c = f * c_prev + i * g;
    let hv = o * tanh_stable(c);
    gates[row * g4 + j] = i;
    gates[row * g4 + h + j] = f;
    gates[row * g4 + 2u * h + j] = g;
    gates[row * g4 + 3u * h + j] = o;
    cell[row * h + j] = c;
    h_prev[row * h + j] = h_own;
    out[row * p.out_stride + p.out_offset + j] = hv;
    if (next_row(s) == NO_ROW) {
        h_n[state_at(s, j)] = hv;
        c_n[state_at(s, j)] = c;
    }
}
