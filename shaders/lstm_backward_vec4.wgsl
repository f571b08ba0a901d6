// lstm_backward_vec4.wgsl — lstm_step_backward for H % 4 == 0, reading W_hh
// and dG as vec4: per 4 gate rows q, 4 + ROWS vec4 loads feed 16·ROWS
// multiply-adds (the scalar kernel needs 4× the loads). Otherwise identical
// to lstm_backward.wgsl (initial-state kernel there), described below.
//
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
//   2 w_hh      read        (G, H) as vec4
//   3 gates     read        (N, G) activations i, f, g, o
//   4 cell      read        (N, H) c per packed row
//   5 c0        read        (L·D, B, H)
//   6 grad_out  read        (N, D·H) gradient of the layer output
//   7 grad_h_n  read        (L·D, B, H)
//   8 dgs_in    read        (B, G) dG of the step processed before, sorted rows, as vec4
//   9 dgates    read_write  (N, G) dG per packed row (for the weight GEMMs)
//   10 dcarry   read_write  (B, H) dc, sorted rows
//   13 dgs_out  read_write  (B, G) this step's dG, sorted rows
// Workgroup mapping (step kernel): WG invocations, each owning UNITS
// consecutive hidden units for a tile of ROWS active rows (workgroup y):
// every W_hh load serves ROWS rows and every dG load UNITS units.
// Saves nothing.

override WG: u32 = 64u;
const ROWS: u32 = 8u;
const UNITS: u32 = 4u;

@group(0) @binding(2) var<storage, read> w_hh: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> cell: array<f32>;
@group(0) @binding(5) var<storage, read> c0: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(8) var<storage, read> dgs_in: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(10) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgs_out: array<f32>;

@compute @workgroup_size(WG)
fn lstm_step_backward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let g4 = 4u * h;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // dh_rec[r][u] = Σ_q dG_next[s0 + r, q] · W_hh[q, j0 + u]; rows past the
    // live ones and units past H repeat in-bounds values and store nothing.
    // G = 4H, so rows of dG are whole vec4s; H % 4 == 0, so units j0..j0+3
    // of a W_hh row are one vec4.
    let h4 = h / 4u;
    let j4 = j0 / 4u;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h;
        acc[r] = vec4<f32>(0.0);
    }
    for (var qc = 0u; qc < h; qc++) {
        let q = 4u * qc;
        let w = mat4x4<f32>(w_hh[q * h4 + j4], w_hh[(q + 1u) * h4 + j4], w_hh[(q + 2u) * h4 + j4], w_hh[(q + 3u) * h4 + j4]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += w * dgs_in[base[r] + qc];
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
