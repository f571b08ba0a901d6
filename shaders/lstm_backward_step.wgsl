// lstm_backward_step.wgsl — shared by lstm_backward.wgsl (scalar loads) and
// lstm_backward_vec4.wgsl (vec4 loads, H % 4 == 0), prepended by the kernel
// registry: the bindings both backward step kernels share and the step's
// epilogue. The two files differ only in how they read W_hh (binding 2) and
// dG of the step processed before (binding 8) for the recurrent gradient.
//
// Backward step: dh = dout + dG_next·W_hh (+ grad_h_n at the row's last
// step), dc = dh⊙o⊙(1−tanh²c) + dc_next; writes dG (pre-activation gate
// gradients) per packed row and per sorted row, and dc_{t-1} = dc⊙f.
// Steps run in reverse of the forward order. dG of the step processed just
// before comes from a dense (B, G) buffer in sorted row order (dgs_in) and
// this step's goes to another (dgs_out); they swap every step and both
// start at zero, so a row at its last step reads zero. dc is one dense
// (B, H) buffer (dcarry) updated in place, starting as grad_c_n.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh      read        (G, H)           declared by each kernel file
//   3 gates     read        (N, G) activations i, f, g, o
//   4 cell      read        (N, H) c per packed row
//   5 c0        read        (L·D, B, H)
//   6 grad_out  read        (N, D·H) gradient of the layer output
//   7 grad_h_n  read        (L·D, B, H)
//   8 dgs_in    read        (B, G) dG of the step processed before, sorted
//                           rows; declared by each kernel file
//   9 dgates    read_write  (N, G) dG per packed row (for the weight GEMMs)
//   10 dcarry   read_write  (B, H) dc, sorted rows
//   13 dgs_out  read_write  (B, G) this step's dG, sorted rows
// Workgroup mapping: WG invocations, each owning UNITS consecutive hidden
// units for a tile of ROWS active rows (workgroup y): every W_hh load
// serves ROWS rows and every dG load UNITS units.
// Saves nothing.

override WG: u32 = 64u;

@group(0) @binding(3) var<storage, read> gates: array<f32>;
@group(0) @binding(4) var<storage, read> cell: array<f32>;
@group(0) @binding(5) var<storage, read> c0: array<f32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(10) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgs_out: array<f32>;

// Finishes units j0.. for the live rows of the tile starting at s0, given
// the recurrent gradient dG_next·W_hh of each (row, unit).
fn lstm_backward_finish(s0: u32, live: u32, j0: u32, acc: array<vec4<f32>, ROWS>) {
    let h = p.hidden;
    let g4 = 4u * h;
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
            let d = vec4<f32>(dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                              dh * tc * o * (1.0 - o));
            for (var k = 0u; k < 4u; k++) {
                dgates[row * g4 + k * h + j] = d[k];
                dgs_out[s * g4 + k * h + j] = d[k];
            }
            dcarry[s * h + j] = dc * f;
        }
    }
}
