// recurrent_backward.wgsl — one time step backward of any recurrent cell and
// the gradient of the initial state, the part every cell shares: the
// recurrent gradient dG_next·W_hh tiled over rows and units, the incoming
// dh (layer output gradient, plus grad_h_n at each row's last step), and
// storing the gate gradients the cell returns. The cell's own derivative
// comes from `cell_backward` in shaders/cells/<cell>.wgsl.
//   recurrent_step_backward        reads W_hh and dG one float at a time (any H)
//   recurrent_step_backward_vec4   reads them as vec4 (H % 4 == 0 and S % 4 == 0),
//                                  and finishes its four units as one vec4
//   recurrent_step_backward_projected   with a projection: dh per packed row
//   recurrent_cell_backward        then dh̃ = W_hrᵀ·dh and the cell's
//                                  derivative, for every unit of H
//   recurrent_grad_initial_state   grad_h0 = dG_h(first step)·W_hh, finished
//                                  by `cell_grad_initial_state`
//   recurrent_grad_initial_state_vec4   the same as vec4 over a tile of ROWS
//                                  rows and UNITS units (H % 4 == 0, no projection)
//
// h has S features: H, or P with a projection. Then
// `recurrent_step_backward_projected` runs over the S features of h and
// stores dh per packed row (dh_rows, for dW_hr and for
// `recurrent_cell_backward`, which runs next) instead of calling the cell.
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
//   2 w_hh      read        (G, S)                   scalar kernels
//   3 gates     read_write  (N, G) what the cell saved (read_write because
//                           the cell's forward code in this module writes it)
//   4 h_prev    read        (N, S) h_{t-1} per packed row
//   5 grad_out  read        (N, D·S) gradient of the layer output
//   6 grad_h_n  read        (L·D, B, S)
//   7 dgs_in    read        (B, G) dG_h of the step processed before, sorted
//                           rows                     scalar step kernel
//   8 dgates    read_write  (N, G) input-side dG per packed row
//   9 dgs_out   read_write  (B, G) this step's dG_h, sorted rows
//   10 grad_h0  read_write  (L·D, B, S)              initial-state kernel
//   11 w_hh4    read        (G, S/4) vec4            vec4 step and initial-state kernels
//   12 dgs_in4  read        (B, G/4) vec4            vec4 step kernel
//   14 dh_rows  read_write  (N, S) dh per packed row (projected kernels)
//   15 w_hr     read        (S, H) the projection (projected kernels)
//   33–39       vec4 views (binding + 30) of 3–9: the vec4 step kernel's
//               epilogue (`backward_finish_vec4`, `cell_backward4`) handles
//               its four units with one load or store per buffer
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
@group(0) @binding(14) var<storage, read_write> dh_rows: array<f32>;
@group(0) @binding(15) var<storage, read> w_hr: array<f32>;
// Vec4 views (binding + 30) of the buffers the vec4 step kernel's epilogue
// reads and writes, four consecutive units at a time.
@group(0) @binding(33) var<storage, read_write> gates4: array<vec4<f32>>;
// Declared only so the cell's forward code compiles (as b_hh above).
@group(0) @binding(43) var<storage, read> b_hh4: array<vec4<f32>>;
@group(0) @binding(34) var<storage, read> h_prev4: array<vec4<f32>>;
@group(0) @binding(35) var<storage, read> grad_out4: array<vec4<f32>>;
@group(0) @binding(36) var<storage, read> grad_h_n4: array<vec4<f32>>;
@group(0) @binding(38) var<storage, read_write> dgates4: array<vec4<f32>>;
@group(0) @binding(39) var<storage, read_write> dgs_out4: array<vec4<f32>>;

// Stores a cell's gate gradients for (row, unit j).
fn store_cell_grad(s: u32, row: u32, j: u32, d: CellGrad) {
    let g = GATES * p.hidden;
    for (var q = 0u; q < GATES; q++) {
        dgates[row * g + q * p.hidden + j] = d.input[q];
        dgs_out[s * g + q * p.hidden + j] = d.hidden[q];
    }
}

// Finishes units j0.. for the live rows of the tile starting at s0, given
// the recurrent gradient dG_next·W_hh of each (row, unit).
fn backward_finish(s0: u32, live: u32, j0: u32, acc: array<vec4<f32>, ROWS>) {
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let is_last = next_row(s) == NO_ROW;
        for (var u = 0u; u < UNITS; u++) {
            let j = j0 + u;
            if (j >= p.state) { break; }
            store_cell_grad(s, row, j, cell_backward(s, row, j, incoming_dh(s, row, j, acc[r][u], is_last)));
        }
    }
}

// `backward_finish` for the four units j0.. (j0 % 4 == 0, H % 4 == 0, no
// projection) through the vec4 views: the same arithmetic per unit, a
// quarter of the loads and stores (on lavapipe each is a loop over the
// SIMD lanes, vec4 or not).
fn backward_finish_vec4(s0: u32, live: u32, j0: u32, acc: array<vec4<f32>, ROWS>) {
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        backward_finish_quad(s, j0, acc[r]);
    }
}

// Finishes units j0..j0+3 of live sorted row s, given their recurrent
// gradient dG_next·W_hh.
fn backward_finish_quad(s: u32, j0: u32, rec: vec4<f32>) {
    let g = GATES * p.hidden;
    let row = step_offset(cur_t) + s;
    var dh = grad_out4[(row * p.out_stride + p.out_offset + j0) / 4u] + rec;
    if (next_row(s) == NO_ROW) { dh += grad_h_n4[hstate_at(s, j0) / 4u]; }
    let d = cell_backward4(s, row, j0, dh);
    for (var q = 0u; q < GATES; q++) {
        dgates4[(row * g + q * p.hidden + j0) / 4u] = d.input[q];
        dgs_out4[(s * g + q * p.hidden + j0) / 4u] = d.hidden[q];
    }
}

// acc[r][u] = Σ_q dG_next[s0 + r, q] · W_hh[q, j0 + u], reading W_hh and
// dG one float at a time; rows past the live ones and features past S
// repeat in-bounds values, stored nowhere.
fn product_scalar(s0: u32, live: u32, j0: u32) -> array<vec4<f32>, ROWS> {
    let sz = p.state;
    let g = GATES * p.hidden;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * g;
        acc[r] = vec4<f32>(0.0);
    }
    let last = sz - 1u;
    for (var q = 0u; q < g; q++) {
        let w = vec4<f32>(w_hh[q * sz + j0], w_hh[q * sz + min(j0 + 1u, last)],
                          w_hh[q * sz + min(j0 + 2u, last)], w_hh[q * sz + min(j0 + 3u, last)]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec4<f32>(dgs_in[base[r] + q]), w, acc[r]);
        }
    }
    return acc;
}

// dh of (row, feature j): the output gradient, the recurrent gradient, and
// grad_h_n at the row's last step (`is_last`, found once per row: it costs
// storage loads).
fn incoming_dh(s: u32, row: u32, j: u32, recurrent: f32, is_last: bool) -> f32 {
    var dh = grad_out[row * p.out_stride + p.out_offset + j] + recurrent;
    if (is_last) { dh += grad_h_n[hstate_at(s, j)]; }
    return dh;
}

@compute @workgroup_size(WG)
fn recurrent_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= p.state) { return; }
    let live = batch_size(p.t);
    backward_finish(wg.y * ROWS, live, j0, product_scalar(wg.y * ROWS, live, j0));
}

// With a projection: dh (S features) per packed row, for
// `recurrent_cell_backward`, which runs next, and for dW_hr.
@compute @workgroup_size(WG)
fn recurrent_step_backward_projected(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= p.state) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let acc = product_scalar(s0, live, j0);
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let is_last = next_row(s) == NO_ROW;
        for (var u = 0u; u < UNITS; u++) {
            let j = j0 + u;
            if (j >= p.state) { break; }
            dh_rows[row * p.state + j] = incoming_dh(s, row, j, acc[r][u], is_last);
        }
    }
}

// H % 4 == 0 and S % 4 == 0, so a row of dG (G = GATES·H) is G/4 whole
// vec4s and features j0..j0+3 of a W_hh row (S wide) are one vec4.
@compute @workgroup_size(WG)
fn recurrent_step_backward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= p.state) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let h4 = p.state / 4u;
    let g4 = GATES * p.hidden / 4u;
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
    backward_finish_vec4(s0, live, j0, acc);
}

@compute @workgroup_size(WG)
fn recurrent_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let j = wg.x * WG + lid;
    let s = wg.z * 65535u + wg.y;
    if (j >= p.hidden || s >= p.batch) { return; }
    let row = first_row(s);
    let g = GATES * p.hidden;
    // h0 has S features; the cell's own initial state (LSTM's c0) has H.
    var acc = 0.0;
    if (j < p.state) {
        for (var q = 0u; q < g; q++) {
            acc += cell_hidden_grad(row, q, dgates[row * g + q]) * w_hh[q * p.state + j];
        }
    }
    let dh0 = cell_grad_initial_state(s, j, acc);
    if (j < p.state) { grad_h0[hstate_at(s, j)] = dh0; }
}

// H % 4 == 0, no projection: the same sum as `recurrent_grad_initial_state`
// as the vec4 step kernel forms it (four W_hh rows × units j0..j0+3 as one
// matrix per four gates), for a tile of ROWS sorted rows (workgroup y, then
// z past 65535 tiles) and UNITS units per invocation: per four gates, 4 +
// ROWS·4 loads feed 16·ROWS multiply-adds instead of 2 loads per one.
// `recurrent_sequence_backward` ends with the same arithmetic.
@compute @workgroup_size(WG)
fn recurrent_grad_initial_state_vec4(@builtin(workgroup_id) wg: vec3<u32>,
                                     @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    let s0 = (wg.z * 65535u + wg.y) * ROWS;
    if (j0 >= h || s0 >= p.batch) { return; }
    let g = GATES * h;
    let h4 = h / 4u;
    let j4 = j0 / 4u;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        // Rows past the batch repeat the last one (stored nowhere).
        base[r] = first_row(min(s0 + r, p.batch - 1u)) * g;
        acc[r] = vec4<f32>(0.0);
    }
    for (var q = 0u; q < g; q += 4u) {
        let w = mat4x4<f32>(w_hh4[q * h4 + j4], w_hh4[(q + 1u) * h4 + j4], w_hh4[(q + 2u) * h4 + j4],
                            w_hh4[(q + 3u) * h4 + j4]);
        for (var r = 0u; r < ROWS; r++) {
            let row = base[r] / g;
            let d = vec4<f32>(cell_hidden_grad(row, q, dgates[base[r] + q]),
                              cell_hidden_grad(row, q + 1u, dgates[base[r] + q + 1u]),
                              cell_hidden_grad(row, q + 2u, dgates[base[r] + q + 2u]),
                              cell_hidden_grad(row, q + 3u, dgates[base[r] + q + 3u]));
            acc[r] += w * d;
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= p.batch) { break; }
        for (var u = 0u; u < UNITS; u++) {
            let j = j0 + u;
            grad_h0[hstate_at(s, j)] = cell_grad_initial_state(s, j, acc[r][u]);
        }
    }
}

// With a projection, after `recurrent_step_backward_projected` stored dh (S) per row:
// dh̃ = W_hrᵀ·dh for unit j of H, then the cell's derivative. Invocation j
// owns unit j for a tile of ROWS live rows (one W_hr load serves ROWS rows).
@compute @workgroup_size(WG)
fn recurrent_cell_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let j = wg.x * WG + lid;
    let h = p.hidden;
    if (j >= h) { return; }
    let sz = p.state;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    var acc: array<f32, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = (step_offset(p.t) + min(s0 + r, live - 1u)) * sz;
        acc[r] = 0.0;
    }
    for (var q = 0u; q < sz; q++) {
        let w = w_hr[q * h + j];
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(dh_rows[base[r] + q], w, acc[r]);
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        store_cell_grad(s, row, j, cell_backward(s, row, j, acc[r]));
    }
}

// ---------------------------------------------------------------------------
// Sequence-resident backward: one dispatch runs every step of one layer and
// direction, in reverse of the forward order, and then the initial-state
// gradient. A workgroup owns SEQ_ROWS consecutive sorted rows and every
// hidden unit (invocation i owns units 4i..4i+3 of each row, as in the step
// kernels) and keeps the hidden-side gate gradients dG_h of the step
// processed before in workgroup memory (SEQ_ROWS·G floats; two barriers per
// step: every invocation reads all of a row's dG_h before any is
// overwritten). They start at zero, so a row at its last step reads zero;
// a row that is done (reverse direction) keeps its last dG_h, that of its
// first forward step, which the initial-state gradient then reads.
//   recurrent_sequence_backward   no projection: S = H
// Each (row, unit) does exactly the arithmetic of the step kernels and the
// initial-state kernel, in the same order, so both give the same bits.
// Needs ⌈H / UNITS⌉ ≤ SEQ_WG invocations and SEQ_ROWS·⌈G/4⌉ vec4s of
// workgroup memory.
// Bindings: the backward bindings above (info, w_hh, gates, h_prev,
// w_hh4 (w_hh again when SEQ_VEC4; else a stand-in never read), grad_out,
// grad_h_n, dgates, grad_h0)
// and the cell's, including what
// `cell_sequence_backward_start` reads (LSTM's grad_c_n).

override SEQ_WG: u32 = 64u;
// H of the launched layer: sizes the workgroup tile.
override SEQ_HIDDEN: u32 = 4u;
// 1 when H % 4 == 0: the products read 4 gates at a time, as the vec4 step kernel.
override SEQ_VEC4: bool = false;

// The tile's step count, read once and shared so every invocation loops
// (and reaches each barrier) the same number of times.
var<workgroup> seq_steps: u32;
// dG_h of the tile's rows, each row ⌈G/4⌉ vec4s: a vec4 load feeds four
// gates at once (on lavapipe every load is a loop over the SIMD lanes, so
// load count sets the speed).
var<workgroup> seq_dg: array<vec4<f32>, SEQ_ROWS * ((GATES * SEQ_HIDDEN + 3u) / 4u)>;

// Gate q of row r.
fn seq_dg_get(r: u32, q: u32) -> f32 {
    let gc = (GATES * p.hidden + 3u) / 4u;
    return seq_dg[r * gc + q / 4u][q % 4u];
}

fn seq_dg_set(r: u32, q: u32, v: f32) {
    let gc = (GATES * p.hidden + 3u) / 4u;
    seq_dg[r * gc + q / 4u][q % 4u] = v;
}

@compute @workgroup_size(SEQ_WG)
fn recurrent_sequence_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let g = GATES * h;
    let s0 = wg.x * SEQ_ROWS;
    let rows = min(SEQ_ROWS, p.batch - s0);
    let j0 = lid * UNITS;
    let last = h - 1u;
    let gc = (g + 3u) / 4u;
    for (var i = lid; i < SEQ_ROWS * gc; i += SEQ_WG) { seq_dg[i] = vec4<f32>(0.0); }
    for (var r = 0u; r < SEQ_ROWS; r++) {
        if (r >= rows) { break; }
        for (var u = 0u; u < UNITS; u++) {
            if (j0 + u < h) { cell_sequence_backward_start(s0 + r, j0 + u); }
        }
    }
    workgroupBarrier();
    if (lid == 0u) { seq_steps = row_length(s0); }
    let steps = workgroupUniformLoad(&seq_steps);
    for (var k = 0u; k < steps; k++) {
        // Backward runs each direction in reverse: forward t descending.
        var t = steps - 1u - k;
        if (p.reverse == 1u) { t = k; }
        cur_t = t;
        // acc[r][u] = Σ_q dG_h[r, q]·W_hh[q, j0 + u]; rows past the tile
        // and units past H repeat in-bounds values, stored nowhere.
        var acc: array<vec4<f32>, SEQ_ROWS>;
        var base: array<u32, SEQ_ROWS>;
        for (var r = 0u; r < SEQ_ROWS; r++) {
            acc[r] = vec4<f32>(0.0);
            base[r] = min(r, rows - 1u) * gc;
        }
        if (SEQ_VEC4) {
            // As `recurrent_step_backward_vec4`: features j0..j0+3 of four
            // W_hh rows as one matrix (idle invocations read the last four).
            let h4 = h / 4u;
            let j4 = min(j0, h - 4u) / 4u;
            for (var qc = 0u; qc < gc; qc++) {
                let q = 4u * qc;
                let w = mat4x4<f32>(w_hh4[q * h4 + j4], w_hh4[(q + 1u) * h4 + j4], w_hh4[(q + 2u) * h4 + j4],
                                    w_hh4[(q + 3u) * h4 + j4]);
                for (var r = 0u; r < SEQ_ROWS; r++) {
                    acc[r] += w * seq_dg[base[r] + qc];
                }
            }
        } else {
            for (var q = 0u; q < g; q++) {
                let w = vec4<f32>(w_hh[q * h + min(j0, last)], w_hh[q * h + min(j0 + 1u, last)],
                                  w_hh[q * h + min(j0 + 2u, last)], w_hh[q * h + min(j0 + 3u, last)]);
                for (var r = 0u; r < SEQ_ROWS; r++) {
                    acc[r] = fma(vec4<f32>(seq_dg[base[r] + q / 4u][q % 4u]), w, acc[r]);
                }
            }
        }
        // Every invocation has read dG_h; now this step's replace it.
        workgroupBarrier();
        // Constant trip counts and no `break`: the loops unroll, so acc[r]
        // stays in registers (dynamically indexed, it would live in memory).
        for (var r = 0u; r < SEQ_ROWS; r++) {
            let s = s0 + min(r, rows - 1u);
            let live = r < rows && t < row_length(s);
            let row = step_offset(t) + s;
            let is_last = live && next_row(s) == NO_ROW;
            for (var u = 0u; u < UNITS; u++) {
                let j = j0 + u;
                if (live && j < h) {
                    let d = cell_backward(s, row, j, incoming_dh(s, row, j, acc[r][u], is_last));
                    for (var q = 0u; q < GATES; q++) {
                        dgates[row * g + q * h + j] = d.input[q];
                        seq_dg_set(r, q * h + j, d.hidden[q]);
                    }
                }
            }
        }
        workgroupBarrier();
    }
    // grad_h0 (and the cell's own initial-state gradient) from each row's
    // first-step dG_h, summed as `recurrent_grad_initial_state_vec4` does
    // (or, without SEQ_VEC4, `recurrent_grad_initial_state`).
    if (SEQ_VEC4) {
        let h4 = h / 4u;
        let j4 = min(j0, h - 4u) / 4u;
        var acc: array<vec4<f32>, SEQ_ROWS>;
        for (var r = 0u; r < SEQ_ROWS; r++) { acc[r] = vec4<f32>(0.0); }
        for (var qc = 0u; qc < gc; qc++) {
            let q = 4u * qc;
            let w = mat4x4<f32>(w_hh4[q * h4 + j4], w_hh4[(q + 1u) * h4 + j4], w_hh4[(q + 2u) * h4 + j4],
                                w_hh4[(q + 3u) * h4 + j4]);
            for (var r = 0u; r < SEQ_ROWS; r++) {
                acc[r] += w * seq_dg[min(r, rows - 1u) * gc + qc];
            }
        }
        for (var r = 0u; r < SEQ_ROWS; r++) {
            for (var u = 0u; u < UNITS; u++) {
                let j = j0 + u;
                if (r < rows && j < h) {
                    grad_h0[hstate_at(s0 + r, j)] = cell_grad_initial_state(s0 + r, j, acc[r][u]);
                }
            }
        }
        return;
    }
    for (var r = 0u; r < SEQ_ROWS; r++) {
        if (r >= rows) { break; }
        for (var u = 0u; u < UNITS; u++) {
            let j = j0 + u;
            if (j >= h) { break; }
            var dh0 = 0.0;
            for (var q = 0u; q < g; q++) {
                dh0 += seq_dg_get(r, q) * w_hh[q * h + j];
            }
            grad_h0[hstate_at(s0 + r, j)] = cell_grad_initial_state(s0 + r, j, dh0);
        }
    }
}
