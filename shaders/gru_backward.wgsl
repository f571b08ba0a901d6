// gru_backward.wgsl — backward of gru_step_forward, one time step fused, and
// the gradient of the initial state.
//   gru_step_backward        dh = dout + dGh_next·W_hh + dcarry_next (grad_h_n
//                            at the row's last step); with dn = dh⊙(1−z):
//                            dGx = (dr⊙r(1−r), dz⊙z(1−z), dn⊙(1−n²)) for the
//                            input side, dGh = same but n part ⊙ r for the
//                            hidden side (n's r⊙(W_hn h + b_hn) term);
//                            dcarry = dh⊙z, the direct path to h_{t-1}
//   gru_grad_initial_state   grad_h0 = dGh_first·W_hh + dcarry_first
// Steps run in reverse of the forward order.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (G, H)
//   3 gates     read        (N, G) activations r, z, n
//   4 hn_lin    read        (N, H) W_hn h_{t-1} + b_hn
//   5 h_prev    read        (N, H)
//   6 grad_out  read        (N, D·H)
//   7 grad_h_n  read        (L·D, B, H)
//   8 dgx       read_write  (N, G) input-side pre-activation gradients
//   9 dgh       read_write  (N, G) hidden-side pre-activation gradients
//   10 dcarry   read_write  (N, H) dh⊙z
//   11 grad_h0  read_write  (L·D, B, H)   (initial-state kernel only)
// Workgroup mapping: WG invocations along H; workgroup y = sorted row s
// (dispatch y = batch_size(t), or B for the initial-state kernel).
// Saves nothing.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> hn_lin: array<f32>;
@group(0) @binding(5) var<storage, read> h_prev: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgx: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgh: array<f32>;
@group(0) @binding(10) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad_h0: array<f32>;

// Gradient reaching h_{t-1}[j] from the step at `row`: through the
// recurrent product and the direct z⊙h path.
fn recurrent_grad(row: u32, j: u32) -> f32 {
    let g3 = 3u * p.hidden;
    var acc = dcarry[row * p.hidden + j];
    for (var q = 0u; q < g3; q++) {
        acc += dgh[row * g3 + q] * w_hh[q * p.hidden + j];
    }
    return acc;
}

@compute @workgroup_size(WG)
fn gru_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let s = wg.y;
    let g3 = 3u * h;
    let row = step_offset(p.t) + s;
    let next = next_row(s);
    var dh = grad_out[row * p.out_stride + p.out_offset + j];
    if (next == NO_ROW) {
        dh += grad_h_n[state_at(s, j)];
    } else {
        dh += recurrent_grad(next, j);
    }
    let r = gates[row * g3 + j];
    let z = gates[row * g3 + h + j];
    let n = gates[row * g3 + 2u * h + j];
    let dpre_n = dh * (1.0 - z) * (1.0 - n * n);
    let dpre_r = dpre_n * hn_lin[row * h + j] * r * (1.0 - r);
    let dpre_z = dh * (h_prev[row * h + j] - n) * z * (1.0 - z);
    dgx[row * g3 + j] = dpre_r;
    dgx[row * g3 + h + j] = dpre_z;
    dgx[row * g3 + 2u * h + j] = dpre_n;
    dgh[row * g3 + j] = dpre_r;
    dgh[row * g3 + h + j] = dpre_z;
    dgh[row * g3 + 2u * h + j] = dpre_n * r;
    dcarry[row * h + j] = dh * z;
}

@compute @workgroup_size(WG)
fn gru_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    if (j >= p.hidden) { return; }
    let s = wg.y;
    grad_h0[state_at(s, j)] = recurrent_grad(first_row(s), j);
}
