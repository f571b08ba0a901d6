// lstm_backward.wgsl — backward of lstm_step_forward, one time step fused,
// and the gradient of the initial state.
//   lstm_step_backward         dh = dout + dG_next·W_hh (grad_h_n at the row's
//                              last step), dc = dh⊙o⊙(1−tanh²c) + dc_next;
//                              writes dG (pre-activation gate gradients, N×G)
//                              and dc_{t-1} = dc⊙f per packed row
//   lstm_grad_initial_state    grad_h0 = dG_first·W_hh, grad_c0 = dc_{t-1}
//                              of the row's first step
// Steps run in reverse of the forward order; dG of step t+1 (forward
// direction) is complete before step t reads it (separate dispatches).
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (G, H)
//   3 gates     read        (N, G) activations i, f, g, o
//   4 cell      read        (N, H) c per packed row
//   5 c0        read        (L·D, B, H)
//   6 grad_out  read        (N, D·H) gradient of the layer output
//   7 grad_h_n  read        (L·D, B, H)
//   8 grad_c_n  read        (L·D, B, H)
//   9 dgates    read_write  (N, G)
//   10 dcarry   read_write  (N, H) dc_{t-1}
//   11 grad_h0  read_write  (L·D, B, H)   (initial-state kernel only)
//   12 grad_c0  read_write  (L·D, B, H)   (initial-state kernel only)
// Workgroup mapping: WG invocations along H; workgroup y = sorted row s
// (dispatch y = batch_size(t), or B for the initial-state kernel).
// Saves nothing.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> cell: array<f32>;
@group(0) @binding(5) var<storage, read> c0: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(8) var<storage, read> grad_c_n: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(10) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad_h0: array<f32>;
@group(0) @binding(12) var<storage, read_write> grad_c0: array<f32>;

// Σ_q dG[row, q] · W_hh[q, j]: the gradient reaching h_{t-1}[j] through the
// recurrent product of the step at `row`.
fn recurrent_grad(row: u32, j: u32) -> f32 {
    let g4 = 4u * p.hidden;
    var acc = 0.0;
    for (var q = 0u; q < g4; q++) {
        acc += dgates[row * g4 + q] * w_hh[q * p.hidden + j];
    }
    return acc;
}

@compute @workgroup_size(WG)
fn lstm_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let s = wg.y;
    let g4 = 4u * h;
    let row = step_offset(p.t) + s;
    let next = next_row(s);
    var dh = grad_out[row * p.out_stride + p.out_offset + j];
    var dc_in: f32;
    if (next == NO_ROW) {
        dh += grad_h_n[state_at(s, j)];
        dc_in = grad_c_n[state_at(s, j)];
    } else {
        dh += recurrent_grad(next, j);
        dc_in = dcarry[next * h + j];
    }
    let prev = previous_row(s);
    var c_prev: f32;
    if (prev == NO_ROW) { c_prev = c0[state_at(s, j)]; } else { c_prev = cell[prev * h + j]; }
    let i = gates[row * g4 + j];
    let f = gates[row * g4 + h + j];
    let g = gates[row * g4 + 2u * h + j];
    let o = gates[row * g4 + 3u * h + j];
    let tc = tanh_stable(cell[row * h + j]);
    let dc = dh * o * (1.0 - tc * tc) + dc_in;
    dgates[row * g4 + j] = dc * g * i * (1.0 - i);
    dgates[row * g4 + h + j] = dc * c_prev * f * (1.0 - f);
    dgates[row * g4 + 2u * h + j] = dc * i * (1.0 - g * g);
    dgates[row * g4 + 3u * h + j] = dh * tc * o * (1.0 - o);
    dcarry[row * h + j] = dc * f;
}

@compute @workgroup_size(WG)
fn lstm_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    if (j >= p.hidden) { return; }
    let s = wg.y;
    let row = first_row(s);
    grad_h0[state_at(s, j)] = recurrent_grad(row, j);
    grad_c0[state_at(s, j)] = dcarry[row * p.hidden + j];
}
