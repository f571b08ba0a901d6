// gru_backward.wgsl — backward of gru_step_forward, one time step fused, and
// the gradient of the initial state.
//   gru_step_backward        dh = dout + dGh_next·W_hh + dcarry (+ grad_h_n at
//                            the row's last step); with dn = dh⊙(1−z):
//                            dGx = (dr⊙r(1−r), dz⊙z(1−z), dn⊙(1−n²)) for the
//                            input side, dGh = the same but the n part ⊙ r for
//                            the hidden side (n's r⊙(W_hn h + b_hn) term);
//                            dcarry = dh⊙z, the direct path to h_{t-1}
//   gru_grad_initial_state   grad_h0 = dGh_first·W_hh + dcarry
// Steps run in reverse of the forward order. dGh of the step processed
// just before comes from a dense (B, G) buffer (dgs_in), this step's goes to
// another (dgs_out); they swap every step and both start at zero. dcarry is
// one dense (B, H) buffer updated in place, starting at zero. Sorted rows.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (G, H)
//   3 gates     read        (N, G) activations r, z, n
//   4 hn_lin    read        (N, H) W_hn h_{t-1} + b_hn
//   5 h_prev    read        (N, H)
//   6 grad_out  read        (N, D·H)
//   7 grad_h_n  read        (L·D, B, H)
//   8 dgs_in    read        (B, G) dGh of the step processed before
//   9 dgx       read_write  (N, G) input-side pre-activation gradients
//   10 dgh      read_write  (N, G) hidden-side pre-activation gradients
//   11 dcarry   read_write  (B, H) dh⊙z
//   12 grad_h0  read_write  (L·D, B, H)   (initial-state kernel only)
//   13 dgs_out  read_write  (B, G) this step's dGh
// Workgroup mapping (step kernel): WG invocations, each owning UNITS
// consecutive units for a tile of ROWS active rows (workgroup y).
// Initial-state kernel: one invocation per unit, workgroup (y, z) = row
// z·65535 + y.
// Saves nothing.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> hn_lin: array<f32>;
@group(0) @binding(5) var<storage, read> h_prev: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(8) var<storage, read> dgs_in: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgx: array<f32>;
@group(0) @binding(10) var<storage, read_write> dgh: array<f32>;
@group(0) @binding(11) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(12) var<storage, read_write> grad_h0: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgs_out: array<f32>;

@compute @workgroup_size(WG)
fn gru_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let g3 = 3u * h;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * g3;
        acc[r] = vec4<f32>(0.0);
    }
    let last = h - 1u;
    for (var q = 0u; q < g3; q++) {
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
            var dh = grad_out[row * p.out_stride + p.out_offset + j] + acc[r][u] + dcarry[s * h + j];
            if (is_last) { dh += grad_h_n[state_at(s, j)]; }
            let rg = gates[row * g3 + j];
            let z = gates[row * g3 + h + j];
            let n = gates[row * g3 + 2u * h + j];
            let dpre_n = dh * (1.0 - z) * (1.0 - n * n);
            let dpre_r = dpre_n * hn_lin[row * h + j] * rg * (1.0 - rg);
            let dpre_z = dh * (h_prev[row * h + j] - n) * z * (1.0 - z);
            dgx[row * g3 + j] = dpre_r;
            dgx[row * g3 + h + j] = dpre_z;
            dgx[row * g3 + 2u * h + j] = dpre_n;
            dgh[row * g3 + j] = dpre_r;
            dgh[row * g3 + h + j] = dpre_z;
            dgh[row * g3 + 2u * h + j] = dpre_n * rg;
            dgs_out[s * g3 + j] = dpre_r;
            dgs_out[s * g3 + h + j] = dpre_z;
            dgs_out[s * g3 + 2u * h + j] = dpre_n * rg;
            dcarry[s * h + j] = dh * z;
        }
    }
}

@compute @workgroup_size(WG)
fn gru_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    let s = wg.z * 65535u + wg.y;
    if (j >= p.hidden || s >= p.batch) { return; }
    let row = first_row(s);
    let g3 = 3u * p.hidden;
    var acc = dcarry[s * p.hidden + j];
    for (var q = 0u; q < g3; q++) {
        acc += dgh[row * g3 + q] * w_hh[q * p.hidden + j];
    }
    grad_h0[state_at(s, j)] = acc;
}
