// rnn.wgsl — one Elman RNN time step forward, fused: h' = act(xW_ihᵀ + b_ih
// + b_hh + h_{t-1}·W_hhᵀ) with act = tanh, or relu when RELU (backward:
// rnn_backward.wgsl).
//   rnn_step_forward
// G = H. N = packed rows.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh    read        (H, H)
//   3 b_hh    read        (H)
//   4 h0      read        (L·D, B, H)
//   5 gates   read_write  (N, H): in xW_ihᵀ + b_ih, out h' (for act')
//   6 out     read_write  (N, D·H): h of both directions
//   7 h_prev  read_write  (N, H): h_{t-1} per packed row
//   8 h_n     read_write  (L·D, B, H)
// Workgroup mapping: WG invocations along H; workgroup y = active sorted
// row s (dispatch y = batch_size(t)).
// Saves for backward: gates (h'), h_prev.

override WG: u32 = 64u;
override RELU: bool = false;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> h0: array<f32>;
@group(0) @binding(5) var<storage, read_write> gates: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(8) var<storage, read_write> h_n: array<f32>;

@compute @workgroup_size(WG)
fn rnn_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let s = wg.y;
    let row = step_offset(p.t) + s;
    let prev = previous_row(s);
    var a = gates[row * h + j] + b_hh[j];
    var h_own: f32;
    if (prev == NO_ROW) {
        let base = state_at(s, 0u);
        for (var k = 0u; k < h; k++) { a += w_hh[j * h + k] * h0[base + k]; }
        h_own = h0[base + j];
    } else {
        let base = prev * p.out_stride + p.out_offset;
        for (var k = 0u; k < h; k++) { a += w_hh[j * h + k] * out[base + k]; }
        h_own = out[base + j];
    }
    var hv: f32;
    if (RELU) { hv = max(a, 0.0); } else { hv = tanh_stable(a); }
    gates[row * h + j] = hv;
    h_prev[row * h + j] = h_own;
    out[row * p.out_stride + p.out_offset + j] = hv;
    if (next_row(s) == NO_ROW) {
        h_n[state_at(s, j)] = hv;
    }
}
