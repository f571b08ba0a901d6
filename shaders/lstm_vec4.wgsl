// lstm_vec4.wgsl — lstm_step_forward for H % 4 == 0, reading W_hh and the
// state as vec4 along k: per 4 steps of k, 4 + ROWS vec4 loads feed 16·ROWS
// multiply-adds (the scalar kernel in lstm.wgsl needs 4× the loads).
// Otherwise identical to lstm.wgsl, whose description follows.
//
// lstm.wgsl — one LSTM time step forward, fused: the recurrent product
// h_{t-1}·W_hhᵀ, the gate nonlinearities and the state update, for the rows
// active at step t (backward: lstm_backward.wgsl).
//   lstm_step_forward   a = xW_ihᵀ + b_ih (precomputed for all steps by one
//                       GEMM) + b_hh + h_{t-1}·W_hhᵀ; i, f, o = σ(a), g = tanh(a);
//                       c = f⊙c_{t-1} + i⊙g; h = o⊙tanh(c)
// G = 4H; gate order i, f, g, o (PyTorch). N = packed rows.
//
// State: h_{t-1} comes from a dense (B, H) buffer in sorted row order
// (state_in) and h_t goes to another (state_out); the two swap every step
// and both start as h0, so a row that has not started yet (reverse
// direction) still reads h0. The cell state is one dense (B, H) buffer,
// read and written in place by the invocation that owns (s, j).
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh        read        (G, H) as vec4
//   3 b_hh        read        (G)
//   4 state_in    read        (B, H) h_{t-1}, sorted rows, as vec4
//   5 cell_state  read_write  (B, H) c, sorted rows
//   6 gates       read_write  (N, G): in xW_ihᵀ + b_ih, out the activations i, f, g, o
//   7 out         read_write  (N, D·H): h of both directions (next layer's input)
//   8 cell        read_write  (N, H): c per packed row (for backward)
//   9 h_prev      read_write  (N, H): h_{t-1} per packed row (for dW_hh)
//   10 h_n        read_write  (L·D, B, H)
//   11 c_n        read_write  (L·D, B, H)
//   12 state_out  read_write  (B, H) h_t, sorted rows
// Workgroup mapping: WG invocations along the H units; workgroup y is a
// tile of ROWS active rows. Each invocation computes unit j for all rows of
// its tile, so every W_hh value it loads serves ROWS rows (loads, not
// arithmetic, bound this kernel on lavapipe and on GPUs alike).
// Saves for backward: gates (activations), cell, h_prev; out holds h.

override WG: u32 = 64u;
const ROWS: u32 = 8u;

@group(0) @binding(2) var<storage, read> w_hh: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> cell_state: array<f32>;
@group(0) @binding(6) var<storage, read_write> gates: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> cell: array<f32>;
@group(0) @binding(9) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(10) var<storage, read_write> h_n: array<f32>;
@group(0) @binding(11) var<storage, read_write> c_n: array<f32>;
@group(0) @binding(12) var<storage, read_write> state_out: array<f32>;

@compute @workgroup_size(WG)
fn lstm_step_forward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // Rows past the active ones repeat the last active row (in bounds) and
    // store nothing.
    let h4 = h / 4u;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h4;
        acc[r] = vec4<f32>(0.0);
    }
    for (var c = 0u; c < h4; c++) {
        let wi = w_hh[j * h4 + c];
        let wf = w_hh[(h + j) * h4 + c];
        let wg = w_hh[(2u * h + j) * h4 + c];
        let wo = w_hh[(3u * h + j) * h4 + c];
        for (var r = 0u; r < ROWS; r++) {
            let x = state_in[base[r] + c];
            acc[r] += vec4<f32>(dot(x, wi), dot(x, wf), dot(x, wg), dot(x, wo));
        }
    }
    let bias = vec4<f32>(b_hh[j], b_hh[h + j], b_hh[2u * h + j], b_hh[3u * h + j]);
    let g4 = 4u * h;
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let a = acc[r] + bias + vec4<f32>(gates[row * g4 + j], gates[row * g4 + h + j],
                                           gates[row * g4 + 2u * h + j], gates[row * g4 + 3u * h + j]);
        let i = sigmoid(a.x);
        let f = sigmoid(a.y);
        let g = tanh_stable(a.z);
        let o = sigmoid(a.w);
        let c = f * cell_state[s * h + j] + i * g;
        let hv = o * tanh_stable(c);
        gates[row * g4 + j] = i;
        gates[row * g4 + h + j] = f;
        gates[row * g4 + 2u * h + j] = g;
        gates[row * g4 + 3u * h + j] = o;
        cell_state[s * h + j] = c;
        cell[row * h + j] = c;
        h_prev[row * h + j] = state_in[s * h4 + j / 4u][j % 4u];
        out[row * p.out_stride + p.out_offset + j] = hv;
        state_out[s * h + j] = hv;
        if (next_row(s) == NO_ROW) {
            h_n[state_at(s, j)] = hv;
            c_n[state_at(s, j)] = c;
        }
    }
}
