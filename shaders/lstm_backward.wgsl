// lstm_backward.wgsl — backward of lstm_step_forward, one time step fused,
// and the gradient of the initial state.
//   lstm_step_backward         dh = dout + dG_next·W_hh (+ grad_h_n at the
//                              row's last step), dc = dh⊙o⊙(1−tanh²c) + dc_next;
//                              writes dG (pre-activation gate gradients) per
//                              packed row and dc_{t-1} = dc⊙f per row
//   lstm_grad_initial_state    grad_h0 = dG_first·W_hh, grad_c0 = dc_{t-1}
//                              of the row's first step
// Steps run in reverse of the forward order. dG of the step processed just
// before comes from a dense (B, G) buffer in sorted row order (dgs_in) and
// this step's goes to another (dgs_out); they swap every step and both
// start at zero, so a row at its last step reads zero. dc is one dense
// (B, H) buffer (dcarry) updated in place, starting as grad_c_n.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (G, H)
//   3 gates     read        (N, G) activations i, f, g, o
//   4 cell      read        (N, H) c per packed row
//   5 c0        read        (L·D, B, H)
//   6 grad_out  read        (N, D·H) gradient of the layer output
//   7 grad_h_n  read        (L·D, B, H)
//   8 dgs_in    read        (B, G) dG of the step processed before, sorted rows
//   9 dgates    read_write  (N, G) dG per packed row (for the weight GEMMs)
//   10 dcarry   read_write  (B, H) dc, sorted rows
//   11 grad_h0  read_write  (L·D, B, H)   (initial-state kernel only)
//   12 grad_c0  read_write  (L·D, B, H)   (initial-state kernel only)
//   13 dgs_out  read_write  (B, G) this step's dG, sorted rows
// Workgroup mapping (step kernel): WG invocations, each owning UNITS
// consecutive hidden units for a tile of ROWS active rows (workgroup y):
// every W_hh load serves ROWS rows and every dG load UNITS units.
// Initial-state kernel: one invocation per unit, workgroup (y, z) = row
// z·65535 + y.
// Saves nothing.

override WG: u32 = 64u;
const ROWS: u32 = 8u;
const UNITS: u32 = 4u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> cell: array<f32>;
@group(0) @binding(5) var<storage, read> c0: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(8) var<storage, read> dgs_in: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(10) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad_h0: array<f32>;
@group(0) @binding(12) var<storage, read_write> grad_c0: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgs_out: array<f32>;

@compute @workgroup_size(WG)
fn lstm_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let g4 = 4u * h;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // dh_rec[r][u] = Σ_q dG_next[s0 + r, q] · W_hh[q, j0 + u]; rows past the
    // live ones and units past H repeat in-bounds values and store nothing.
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * g4;
        acc[r] = vec4<f32>(0.0);
    }
    let last = h - 1u;
    for (var q = 0u; q < g4; q++) {
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
        let prev = previous_row(s);
        for (var u = 0u; u < UNITS; u++) {
            let j = j0 + u;
            if (j >= h) { break; }
            var dh = grad_out[row * p.out_stride + p.out_offset + j] + acc[r][u];
            if (is_last) { dh += grad_h_n[state_at(s, j)]; }
            var c_prev: f32;
            if (prev == NO_ROW) { c_prev = c0[state_at(s, j)]; } else { c_prev = cell[prev * h + j]; }
            let i = gates[row * g4 + j];
            let f = gates[row * g4 + h + j];
            let g = gates[row * g4 + 2u * h + j];
            let o = gates[row * g4 + 3u * h + j];
            let tc = tanh_stable(cell[row * h + j]);
            let dc = dh * o * (1.0 - tc * tc) + dcarry[s * h + j];
            let d_i = dc * g * i * (1.0 - i);
            let d_f = dc * c_prev * f * (1.0 - f);
            let d_g = dc * i * (1.0 - g * g);
            let d_o = dh * tc * o * (1.0 - o);
            dgates[row * g4 + j] = d_i;
            dgates[row * g4 + h + j] = d_f;
            dgates[row * g4 + 2u * h + j] = d_g;
            dgates[row * g4 + 3u * h + j] = d_o;
            dgs_out[s * g4 + j] = d_i;
            dgs_out[s * g4 + h + j] = d_f;
            dgs_out[s * g4 + 2u * h + j] = d_g;
            dgs_out[s * g4 + 3u * h + j] = d_o;
            dcarry[s * h + j] = dc * f;
        }
    }
}

@compute @workgroup_size(WG)
fn lstm_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    let s = wg.z * 65535u + wg.y;
    if (j >= p.hidden || s >= p.batch) { return; }
    let row = first_row(s);
    let g4 = 4u * p.hidden;
    var acc = 0.0;
    for (var q = 0u; q < g4; q++) {
        acc += dgates[row * g4 + q] * w_hh[q * p.hidden + j];
    }
    grad_h0[state_at(s, j)] = acc;
    grad_c0[state_at(s, j)] = dcarry[s * p.hidden + j];
}
