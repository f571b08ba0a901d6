// rnn.wgsl — one Elman RNN time step forward, fused: h' = act(xW_ihᵀ + b_ih
// + b_hh + h_{t-1}·W_hhᵀ) with act = tanh, or relu when RELU (backward:
// rnn_backward.wgsl).
//   rnn_step_forward
// G = H. N = packed rows.
//
// State: h_{t-1} from a dense (B, H) buffer in sorted row order (state_in),
// h_t to another (state_out); they swap every step and both start as h0.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh       read        (H, H)
//   3 b_hh       read        (H)
//   4 state_in   read        (B, H) h_{t-1}, sorted rows
//   5 gates      read_write  (N, H): in xW_ihᵀ + b_ih, out h' (for act')
//   6 out        read_write  (N, D·H): h of both directions
//   7 h_prev     read_write  (N, H): h_{t-1} per packed row
//   8 h_n        read_write  (L·D, B, H)
//   9 state_out  read_write  (B, H) h_t, sorted rows
// Workgroup mapping: WG invocations, each owning UNITS consecutive units
// for a tile of ROWS active rows (workgroup y): every W_hh load serves ROWS
// rows and every h load UNITS units.
// Saves for backward: gates (h'), h_prev.

override WG: u32 = 64u;
override RELU: bool = false;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> gates: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(8) var<storage, read_write> h_n: array<f32>;
@group(0) @binding(9) var<storage, read_write> state_out: array<f32>;

@compute @workgroup_size(WG)
fn rnn_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h;
        acc[r] = vec4<f32>(0.0);
    }
    let last = h - 1u;
    let w0 = j0 * h;
    let w1 = min(j0 + 1u, last) * h;
    let w2 = min(j0 + 2u, last) * h;
    let w3 = min(j0 + 3u, last) * h;
    for (var k = 0u; k < h; k++) {
        let w = vec4<f32>(w_hh[w0 + k], w_hh[w1 + k], w_hh[w2 + k], w_hh[w3 + k]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec4<f32>(state_in[base[r] + k]), w, acc[r]);
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let is_last = next_row(s) == NO_ROW;
        for (var u = 0u; u < UNITS; u++) {
            let j = j0 + u;
            if (j >= h) { break; }
            let a = acc[r][u] + b_hh[j] + gates[row * h + j];
            var hv: f32;
            if (RELU) { hv = max(a, 0.0); } else { hv = tanh_stable(a); }
            gates[row * h + j] = hv;
            h_prev[row * h + j] = state_in[s * h + j];
            out[row * p.out_stride + p.out_offset + j] = hv;
            state_out[s * h + j] = hv;
            if (is_last) { h_n[state_at(s, j)] = hv; }
        }
    }
}
