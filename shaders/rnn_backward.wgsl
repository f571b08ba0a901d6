// rnn_backward.wgsl — backward of rnn_step_forward, one time step fused, and
// the gradient of the initial state.
//   rnn_step_backward        dh = dout + dG_next·W_hh (grad_h_n at the row's
//                            last step); dG = dh⊙act'(h')
//   rnn_grad_initial_state   grad_h0 = dG_first·W_hh
// Steps run in reverse of the forward order.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (H, H)
//   3 gates     read        (N, H) h' per packed row
//   4 grad_out  read        (N, D·H)
//   5 grad_h_n  read        (L·D, B, H)
//   6 dgates    read_write  (N, H)
//   7 grad_h0   read_write  (L·D, B, H)   (initial-state kernel only)
// Workgroup mapping: WG invocations along H; workgroup y = sorted row s
// (dispatch y = batch_size(t), or B for the initial-state kernel).
// Saves nothing.

override WG: u32 = 64u;
override RELU: bool = false;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_h0: array<f32>;

fn recurrent_grad(row: u32, j: u32) -> f32 {
    var acc = 0.0;
    for (var q = 0u; q < p.hidden; q++) {
        acc += dgates[row * p.hidden + q] * w_hh[q * p.hidden + j];
    }
    return acc;
}

@compute @workgroup_size(WG)
fn rnn_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let s = wg.y;
    let row = step_offset(p.t) + s;
    let next = next_row(s);
    var dh = grad_out[row * p.out_stride + p.out_offset + j];
    if (next == NO_ROW) {
        dh += grad_h_n[state_at(s, j)];
    } else {
        dh += recurrent_grad(next, j);
    }
    let hv = gates[row * h + j];
    var deriv: f32;
    if (RELU) { deriv = select(0.0, 1.0, hv > 0.0); } else { deriv = 1.0 - hv * hv; }
    dgates[row * h + j] = dh * deriv;
}

@compute @workgroup_size(WG)
fn rnn_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    if (j >= p.hidden) { return; }
    let s = wg.y;
    grad_h0[state_at(s, j)] = recurrent_grad(first_row(s), j);
}
