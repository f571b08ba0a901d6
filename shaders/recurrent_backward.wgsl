// recurrent_backward.wgsl — one time step backward of any recurrent cell and
// the gradient of the initial state, the part every cell shares: the
// recurrent gradient dG_next·W_hh tiled over rows and units, the incoming
// dh (layer output gradient, plus grad_h_n at each row's last step), and
// storing the gate gradients the cell returns. The cell's own derivative
// comes from `cell_backward` in shaders/cells/<cell>.wgsl.
//   recurrent_step_backward        reads W_hh and dG one float at a time (any H)
//   recurrent_step_backward_vec4   reads them as vec4 (H % 4 == 0)
//   recurrent_grad_initial_state   grad_h0 = dG_h(first step)·W_hh, finished
//                                  by `cell_grad_initial_state`
//
// Steps run in reverse of the forward order. The hidden-side gate gradients
// dG_h of the step processed just before come from a dense (B, G) buffer in
// sorted row order (dgs_in) and this step's go to another (dgs_out); they
// swap every step and both start at zero, so a row at its last step reads
// zero. `cell_backward` returns the input-side gradients (stored per packed
// row in dgates, for dW_ih, b_ih and dX) and the hidden-side ones (stored in
// dgs_out); they differ only for GRU, which also saves its own per row.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info; the cell's own from 20):
//   2 w_hh      read        (G, H)                   scalar kernels
//   3 gates     read_write  (N, G) what the cell saved (read_write because
//                           the cell's forward code in this module writes it)
//   4 h_prev    read        (N, H) h_{t-1} per packed row
//   5 grad_out  read        (N, D·H) gradient of the layer output
//   6 grad_h_n  read        (L·D, B, H)
//   7 dgs_in    read        (B, G) dG_h of the step processed before, sorted
//                           rows                     scalar step kernel
//   8 dgates    read_write  (N, G) input-side dG per packed row
//   9 dgs_out   read_write  (B, G) this step's dG_h, sorted rows
//   10 grad_h0  read_write  (L·D, B, H)              initial-state kernel
//   11 w_hh4    read        (G, H/4) vec4            vec4 step kernel
//   12 dgs_in4  read        (B, G/4) vec4            vec4 step kernel
// Workgroup mapping: step kernels: WG invocations, each owning UNITS
// consecutive hidden units for a tile of ROWS active rows (workgroup y):
// every W_hh load serves ROWS rows and every dG load UNITS units.
// Initial-state kernel: one invocation per unit, workgroup (y, z) = row
// z·65535 + y.
// Saves nothing.

override WG: u32 = 64u;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read_write> gates: array<f32>;
@group(0) @binding(4) var<storage, read> h_prev: array<f32>;
@group(0) @binding(5) var<storage, read> grad_out: array<f32>;
@group(0) @binding(6) var<storage, read> grad_h_n: array<f32>;
@group(0) @binding(7) var<storage, read> dgs_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgs_out: array<f32>;
@group(0) @binding(10) var<storage, read_write> grad_h0: array<f32>;
@group(0) @binding(11) var<storage, read> w_hh4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> dgs_in4: array<vec4<f32>>;
// Declared only so the cell's forward code, part of this module, compiles;
// no kernel here uses it.
@group(0) @binding(13) var<storage, read> b_hh: array<f32>;

// Finishes units j0.. for the live rows of the tile starting at s0, given
// the recurrent gradient dG_next·W_hh of each (row, unit).
fn backward_finish(s0: u32, live: u32, j0: u32, acc: array<vec4<f32>, ROWS>) {
    let h = p.hidden;
    let g = GATES * h;
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
            let d = cell_backward(s, row, j, dh);
            for (var q = 0u; q < GATES; q++) {
                dgates[row * g + q * h + j] = d.input[q];
                dgs_out[s * g + q * h + j] = d.hidden[q];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn recurrent_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let g = GATES * h;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // acc[r][u] = Σ_q dG_next[s0 + r, q] · W_hh[q, j0 + u]; rows past the
    // live ones and units past H repeat in-bounds values, stored nowhere.
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * g;
        acc[r] = vec4<f32>(0.0);
    }
    let last = h - 1u;
    for (var q = 0u; q < g; q++) {
        let w = vec4<f32>(w_hh[q * h + j0], w_hh[q * h + min(j0 + 1u, last)],
                          w_hh[q * h + min(j0 + 2u, last)], w_hh[q * h + min(j0 + 3u, last)]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec4<f32>(dgs_in[base[r] + q]), w, acc[r]);
        }
    }
    backward_finish(s0, live, j0, acc);
}

// H % 4 == 0, so a row of dG (G = GATES·H) is G/4 whole vec4s and units
// j0..j0+3 of a W_hh row are one vec4.
@compute @workgroup_size(WG)
fn recurrent_step_backward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let h4 = h / 4u;
    let g4 = GATES * h4;
    let j4 = j0 / 4u;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * g4;
        acc[r] = vec4<f32>(0.0);
    }
    for (var qc = 0u; qc < g4; qc++) {
        let q = 4u * qc;
        let w = mat4x4<f32>(w_hh4[q * h4 + j4], w_hh4[(q + 1u) * h4 + j4], w_hh4[(q + 2u) * h4 + j4],
                            w_hh4[(q + 3u) * h4 + j4]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += w * dgs_in4[base[r] + qc];
        }
    }
    backward_finish(s0, live, j0, acc);
}

@compute @workgroup_size(WG)
fn recurrent_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    let s = wg.z * 65535u + wg.y;
    if (j >= p.hidden || s >= p.batch) { return; }
    let row = first_row(s);
    let g = GATES * p.hidden;
    var acc = 0.0;
    for (var q = 0u; q < g; q++) {
        acc += cell_hidden_grad(row, q, dgates[row * g + q]) * w_hh[q * p.hidden + j];
    }
    grad_h0[state_at(s, j)] = cell_grad_initial_state(s, j, acc);
}
