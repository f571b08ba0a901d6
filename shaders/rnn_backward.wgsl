// rnn_backward.wgsl — backward of rnn_step_forward, one time step fused, and
// the gradient of the initial state.
//   rnn_step_backward        dh = dout + dG_next·W_hh (+ grad_h_n at the
//                            row's last step); dG = dh⊙act'(h')
//   rnn_grad_initial_state   grad_h0 = dG_first·W_hh
// Steps run in reverse of the forward order. dG of the step processed just
// before comes from a dense (B, H) buffer (dgs_in), this step's goes to
// another (dgs_out); they swap every step and both start at zero. Sorted rows.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (H, H)
//   3 gates     read        (N, H) h' per packed row
//   4 grad_out  read        (N, D·H)
//   5 grad_h_n  read        (L·D, B, H)
//   6 dgs_in    read        (B, H) dG of the step processed before
//   7 dgates    read_write  (N, H) dG per packed row
//   8 grad_h0   read_write  (L·D, B, H)   (initial-state kernel only)
//   9 dgs_out   read_write  (B, H) this step's dG
// Workgroup mapping (step kernel): WG invocations, each owning UNITS
// consecutive units for a tile of ROWS active rows (workgroup y).
// Initial-state kernel: one invocation per unit, workgroup (y, z) = row
// z·65535 + y.
// Saves nothing.

override WG: u32 = 64u;
override RELU: bool = false;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(6) var<storage, read> dgs_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad_h0: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgs_out: array<f32>;

@compute @workgroup_size(WG)
fn rnn_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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
    for (var q = 0u; q < h; q++) {
        let w = vec4<f32>(w_hh[q * h + j0], w_hh[q * h + min(j0 + 1u, last)],
                          w_hh[q * h + min(j0 + 2u, last)], w_hh[q * h + min(j0 + 3u, last)]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec4<f32>(dgs_in[base[r] + q]), w, acc[r]);
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
            var dh = grad_out[row * p.out_stride + p.out_offset + j] + acc[r][u];
            if (is_last) { dh += grad_h_n[state_at(s, j)]; }
            let hv = gates[row * h + j];
            var deriv: f32;
            if (RELU) { deriv = select(0.0, 1.0, hv > 0.0); } else { deriv = 1.0 - hv * hv; }
            dgates[row * h + j] = dh * deriv;
            dgs_out[s * h + j] = dh * deriv;
        }
    }
}

@compute @workgroup_size(WG)
fn rnn_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    let s = wg.z * 65535u + wg.y;
    if (j >= p.hidden || s >= p.batch) { return; }
    let row = first_row(s);
    var acc = 0.0;
    for (var q = 0u; q < p.hidden; q++) {
        acc += dgates[row * p.hidden + q] * w_hh[q * p.hidden + j];
    }
    grad_h0[state_at(s, j)] = acc;
}
