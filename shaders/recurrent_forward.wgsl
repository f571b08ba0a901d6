// recurrent_forward.wgsl — one time step forward of any recurrent cell, the
// part every cell shares: the recurrent product h_{t-1}·W_hhᵀ tiled over
// rows and units, and the bookkeeping of the step (h_{t-1} saved per packed
// row, h written to the layer output, the double-buffered dense state and
// h_n at each row's last step). The cell's own equations come from
// `cell_forward` in shaders/cells/<cell>.wgsl, which the registry prepends
// (after the prelude, the constants from Rust and recurrent.wgsl).
//   recurrent_step_forward        reads W_hh and h_{t-1} one float at a time (any H)
//   recurrent_step_forward_vec4   reads them as vec4 along k (H % 4 == 0 and S % 4 == 0)
//   recurrent_step_forward_projected   the same with a projection: stores h̃
//   recurrent_project_forward     then h = W_hr·h̃ for the live rows
//
// Lanes: an invocation accumulates, for each of its rows, a vec4 whose lane
// l is the recurrent product of W_hh row (l % GATES)·H + j0 + l / GATES:
// every gate of UNITS_PER_INVOCATION consecutive units (LSTM: 4 gates of 1
// unit; GRU: 3 gates of 1 unit; RNN: 1 gate of 4 units). `cell_forward`
// gets the lanes of one unit as a vec4 in gate order (unused lanes zero).
//
// State: h_{t-1} comes from a dense (B, S) buffer in sorted row order
// (state_in) and h_t goes to another (state_out); the two swap every step
// and both start as h0, so a row that has not started yet (reverse
// direction) still reads h0. S = H, or P with a projection (LSTM's
// proj_size): then `recurrent_step_forward_projected` stores the cell's
// output h̃ (N, H) and `recurrent_project_forward` computes h = W_hr·h̃
// and does h's bookkeeping.
//
// Bindings (after recurrent.wgsl's 0 p, 1 info; the cell's own from 20):
//   2 w_hh        read        (G, S)              scalar kernel
//   3 b_hh        read        (G)                 read by the cell
//   4 state_in    read        (B, S) h_{t-1}      step kernels
//   5 gates       read_write  (N, G): in xW_ihᵀ + b_ih, out what the cell saves
//   6 out         read_write  (N, D·S): h of both directions (next layer's input)
//   7 h_prev      read_write  (N, S): h_{t-1} per packed row (for dW_hh)
//   8 h_n         read_write  (L·D, B, S)
//   9 state_out   read_write  (B, S) h_t, sorted rows
//   10 w_hh4      read        (G, S/4) vec4       vec4 kernel
//   11 state_in4  read        (B, S/4) vec4       vec4 kernel
//   33–39         vec4 views (binding + 30) of 3–9: the vec4 kernel's epilogue
//   14 h_tilde    read_write  (N, H) the cell's output h̃ (projected kernels; for dW_hr)
//   15 w_hr       read        (S, H) the projection (projected kernels)
// Workgroup mapping: WG invocations along the units, UNITS_PER_INVOCATION
// each (VEC4_GROUPS times that in the vec4 kernel); workgroup y is a tile
// of ROWS active rows, so every W_hh load serves ROWS rows.
// Saves for backward: h_prev, and what the cell writes (gates and its own).

override WG: u32 = 64u;

const_assert GATES <= 4u;
// Units per invocation and the lanes they fill (≤ 4).
const UNITS_PER_INVOCATION: u32 = max(1u, 4u / GATES);
const LANES: u32 = GATES * UNITS_PER_INVOCATION;

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> gates: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(8) var<storage, read_write> h_n: array<f32>;
@group(0) @binding(9) var<storage, read_write> state_out: array<f32>;
@group(0) @binding(10) var<storage, read> w_hh4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> state_in4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> h_tilde: array<f32>;
@group(0) @binding(15) var<storage, read> w_hr: array<f32>;
// Vec4 views (binding + 30) of the buffers the vec4 step kernel's epilogue
// reads and writes, four consecutive units at a time.
@group(0) @binding(33) var<storage, read> b_hh4: array<vec4<f32>>;
@group(0) @binding(35) var<storage, read_write> gates4: array<vec4<f32>>;
@group(0) @binding(36) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(37) var<storage, read_write> h_prev4: array<vec4<f32>>;
@group(0) @binding(38) var<storage, read_write> h_n4: array<vec4<f32>>;
@group(0) @binding(39) var<storage, read_write> state_out4: array<vec4<f32>>;

// W_hh row of lane l for the invocation whose first unit is j0 (a unit past
// H repeats the last one: in bounds, and its result is stored nowhere).
fn lane_row(l: u32, j0: u32) -> u32 {
    return (l % GATES) * p.hidden + min(j0 + l / GATES, p.hidden - 1u);
}

// h_{t-1}[s, j] for a unit j (a unit past S, under a projection, reads
// the last feature: in bounds, and only h_prev below j < S keeps it).
fn own_state_index(row_base: u32, j: u32) -> u32 {
    return row_base + min(j, p.state - 1u);
}

// The lanes of unit u (0-based within the invocation), in gate order.
fn unit_lanes(a: vec4<f32>, u: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var g = 0u; g < GATES; g++) {
        v[g] = a[u * GATES + g];
    }
    return v;
}

// Finishes units j0.. for the live rows of the tile starting at s0, given
// the recurrent products and h_{t-1} of each (row, unit).
fn forward_finish(s0: u32, live: u32, j0: u32, acc: array<vec4<f32>, ROWS>, h_own: array<vec4<f32>, ROWS>) {
    let h = p.hidden;
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let is_last = next_row(s) == NO_ROW;
        for (var u = 0u; u < UNITS_PER_INVOCATION; u++) {
            let j = j0 + u;
            if (j >= h) { break; }
            let hv = cell_forward(s, row, j, unit_lanes(acc[r], u), h_own[r][u], is_last);
            h_prev[row * h + j] = h_own[r][u];
            out[row * p.out_stride + p.out_offset + j] = hv;
            state_out[s * h + j] = hv;
            if (is_last) { h_n[hstate_at(s, j)] = hv; }
        }
    }
}

// The recurrent products and h_{t-1} of the tile (s0, j0), reading W_hh
// and h_{t-1} one float at a time.
struct Tile {
    acc: array<vec4<f32>, ROWS>,
    h_own: array<vec4<f32>, ROWS>,
}

fn product_scalar(s0: u32, live: u32, j0: u32) -> Tile {
    // Rows past the live ones repeat the last live row (in bounds); the
    // epilogue stores nothing for them.
    var tile: Tile;
    var base: array<u32, ROWS>;
    let sz = p.state;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * sz;
        tile.acc[r] = vec4<f32>(0.0);
        for (var u = 0u; u < UNITS_PER_INVOCATION; u++) {
            tile.h_own[r][u] = state_in[own_state_index(base[r], j0 + u)];
        }
    }
    let w0 = lane_row(0u, j0) * sz;
    let w1 = lane_row(1u, j0) * sz;
    let w2 = lane_row(2u, j0) * sz;
    let w3 = lane_row(3u, j0) * sz;
    for (var k = 0u; k < sz; k++) {
        // Lanes past LANES stay zero (LANES is a constant: no branch survives).
        var w = vec4<f32>(w_hh[w0 + k], 0.0, 0.0, 0.0);
        if (LANES > 1u) { w.y = w_hh[w1 + k]; }
        if (LANES > 2u) { w.z = w_hh[w2 + k]; }
        if (LANES > 3u) { w.w = w_hh[w3 + k]; }
        for (var r = 0u; r < ROWS; r++) {
            tile.acc[r] = fma(vec4<f32>(state_in[base[r] + k]), w, tile.acc[r]);
        }
    }
    return tile;
}

@compute @workgroup_size(WG)
fn recurrent_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let j0 = (wg.x * WG + lid) * UNITS_PER_INVOCATION;
    if (j0 >= p.hidden) { return; }
    let live = batch_size(p.t);
    let tile = product_scalar(wg.y * ROWS, live, j0);
    forward_finish(wg.y * ROWS, live, j0, tile.acc, tile.h_own);
}

// With a projection: the cell's output h̃ is stored per packed row (for
// `recurrent_project_forward`, which runs next, and for dW_hr), and
// h_{t-1} (S features) per packed row for dW_hh.
@compute @workgroup_size(WG)
fn recurrent_step_forward_projected(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS_PER_INVOCATION;
    if (j0 >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let tile = product_scalar(s0, live, j0);
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let is_last = next_row(s) == NO_ROW;
        for (var u = 0u; u < UNITS_PER_INVOCATION; u++) {
            let j = j0 + u;
            if (j >= h) { break; }
            h_tilde[row * h + j] = cell_forward(s, row, j, unit_lanes(tile.acc[r], u), tile.h_own[r][u], is_last);
            if (j < p.state) { h_prev[row * p.state + j] = tile.h_own[r][u]; }
        }
    }
}

// Each invocation owns VEC4_GROUPS groups of UNITS_PER_INVOCATION units
// (LSTM, GRU: 4 groups of 1 unit; RNN: 2 groups of 4; Rust picks
// VEC4_GROUPS per cell so the units come in whole quads) for a tile of ROWS
// rows. Per 4 steps of k, VEC4_GROUPS·LANES + ROWS vec4 loads feed
// 4·VEC4_GROUPS·LANES·ROWS multiply-adds (on lavapipe every load is a loop
// over the SIMD lanes, so this ratio sets the speed). The epilogue then
// finishes four consecutive units at a time through the vec4 views
// (`cell_forward4`): one load or store per buffer where the scalar
// epilogue has four. Each (row, unit) does the arithmetic of the scalar
// kernel in the same order, so the bits do not depend on any of this.
const_assert 0u == UNITS_PER_INVOCATION * VEC4_GROUPS % 4u;
const VEC4_QUADS: u32 = UNITS_PER_INVOCATION * VEC4_GROUPS / 4u;

// The recurrent products of unit u (0-based in the invocation) for row r,
// in gate order.
fn group_unit_lanes(acc: array<array<vec4<f32>, ROWS>, VEC4_GROUPS>, r: u32, u: u32) -> vec4<f32> {
    return unit_lanes(acc[u / UNITS_PER_INVOCATION][r], u % UNITS_PER_INVOCATION);
}

// Adds the products of k = 4c..4c+3 to the accumulators of the
// invocation's VEC4_GROUPS groups (first unit j_first), given h_{t-1} of
// its ROWS rows at those k.
fn forward_accumulate_vec4(acc: ptr<function, array<array<vec4<f32>, ROWS>, VEC4_GROUPS>>,
                           x: ptr<function, array<vec4<f32>, ROWS>>, j_first: u32, c: u32, sz4: u32) {
    for (var gi = 0u; gi < VEC4_GROUPS; gi++) {
        let j0 = j_first + gi * UNITS_PER_INVOCATION;
        let wa = w_hh4[lane_row(0u, j0) * sz4 + c];
        var wb = vec4<f32>(0.0);
        var wc = vec4<f32>(0.0);
        var wd = vec4<f32>(0.0);
        if (LANES > 1u) { wb = w_hh4[lane_row(1u, j0) * sz4 + c]; }
        if (LANES > 2u) { wc = w_hh4[lane_row(2u, j0) * sz4 + c]; }
        if (LANES > 3u) { wd = w_hh4[lane_row(3u, j0) * sz4 + c]; }
        for (var r = 0u; r < ROWS; r++) {
            let xr = (*x)[r];
            (*acc)[gi][r] += vec4<f32>(dot(xr, wa), dot(xr, wb), dot(xr, wc), dot(xr, wd));
        }
    }
}

// The vec4 kernels' epilogue: finishes the live rows of the tile at s0 for
// the invocation's units from j_first, given their recurrent products.
// H % 4 == 0 and no projection (S = H): a quad past H is wholly past it.
fn forward_finish_vec4(s0: u32, live: u32, j_first: u32, acc: array<array<vec4<f32>, ROWS>, VEC4_GROUPS>) {
    let h = p.hidden;
    let sz4 = p.state / 4u;
    for (var qd = 0u; qd < VEC4_QUADS; qd++) {
        let j0 = j_first + 4u * qd;
        if (j0 >= h) { break; }
        let u = 4u * qd;
        let bias = gate_bias4(j0);
        for (var r = 0u; r < ROWS; r++) {
            let s = s0 + r;
            if (s >= live) { break; }
            let row = step_offset(p.t) + s;
            let is_last = next_row(s) == NO_ROW;
            // Column g: gate g of the four units.
            let rec = transpose(mat4x4<f32>(group_unit_lanes(acc, r, u), group_unit_lanes(acc, r, u + 1u),
                                            group_unit_lanes(acc, r, u + 2u), group_unit_lanes(acc, r, u + 3u)));
            forward_finish_quad(s, row, is_last, j0, rec, bias, state_in4[s * sz4 + j0 / 4u]);
        }
    }
}

// b_hh of units j0..j0+3 as `rec` holds their products (column g: gate g;
// zeros past GATES). The epilogues load it once per quad for all their
// rows: on lavapipe each load is a loop over the lanes, and per row it was
// a quarter of the LSTM epilogue's loads, the same values every time.
fn gate_bias4(j0: u32) -> mat4x4<f32> {
    let b = j0 / 4u;
    let hq = p.hidden / 4u;
    var bias = mat4x4<f32>();
    bias[0] = b_hh4[b];
    if (GATES > 1u) { bias[1] = b_hh4[b + hq]; }
    if (GATES > 2u) { bias[2] = b_hh4[b + 2u * hq]; }
    if (GATES > 3u) { bias[3] = b_hh4[b + 3u * hq]; }
    return bias;
}

// Finishes units j0..j0+3 of sorted row s (packed row `row`), given their
// recurrent products (column g: gate g of the four units), their
// gate_bias4 and h_{t-1}.
fn forward_finish_quad(s: u32, row: u32, is_last: bool, j0: u32, rec: mat4x4<f32>, bias: mat4x4<f32>,
                       h_own: vec4<f32>) {
    let h = p.hidden;
    let hv = cell_forward4(s, row, j0, rec, bias, h_own, is_last);
    h_prev4[(row * h + j0) / 4u] = h_own;
    out4[(row * p.out_stride + p.out_offset + j0) / 4u] = hv;
    state_out4[(s * h + j0) / 4u] = hv;
    if (is_last) { h_n4[hstate_at(s, j0) / 4u] = hv; }
}

@compute @workgroup_size(WG)
fn recurrent_step_forward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let h = p.hidden;
    let j_first = (wg.x * WG + lid) * UNITS_PER_INVOCATION * VEC4_GROUPS;
    if (j_first >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let sz4 = p.state / 4u;
    var acc: array<array<vec4<f32>, ROWS>, VEC4_GROUPS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * sz4;
    }
    for (var gi = 0u; gi < VEC4_GROUPS; gi++) {
        for (var r = 0u; r < ROWS; r++) {
            acc[gi][r] = vec4<f32>(0.0);
        }
    }
    for (var c = 0u; c < sz4; c++) {
        var x: array<vec4<f32>, ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            x[r] = state_in4[base[r] + c];
        }
        forward_accumulate_vec4(&acc, &x, j_first, c, sz4);
    }
    forward_finish_vec4(s0, live, j_first, acc);
}

// h = W_hr·h̃: invocation q owns feature q of h for a tile of ROWS
// live rows (one W_hr load serves ROWS rows), and does the bookkeeping
// forward_finish does without a projection.
@compute @workgroup_size(WG)
fn recurrent_project_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    cur_t = p.t;
    let q = wg.x * WG + lid;
    if (q >= p.state) { return; }
    let h = p.hidden;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    var acc: array<f32, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = (step_offset(p.t) + min(s0 + r, live - 1u)) * h;
        acc[r] = 0.0;
    }
    for (var j = 0u; j < h; j++) {
        let w = w_hr[q * h + j];
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(h_tilde[base[r] + j], w, acc[r]);
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        out[row * p.out_stride + p.out_offset + q] = acc[r];
        state_out[s * p.state + q] = acc[r];
        if (next_row(s) == NO_ROW) { h_n[hstate_at(s, q)] = acc[r]; }
    }
}

// ---------------------------------------------------------------------------
// Sequence-resident forward: one dispatch runs every time step of one layer
// and direction. A workgroup owns SEQ_ROWS consecutive sorted rows and every
// hidden unit (invocation i owns the units the step kernels give it, for
// each of its rows) and loops over the steps of its longest row, keeping h
// in workgroup memory (double-buffered: one barrier per step). Rows are
// independent, so workgroups never wait for each other. A row takes part
// from its first step to its last (forward: t < length; reverse: from
// t = length − 1 down) and keeps its h while inactive, so a reverse row
// that has not started still holds h0.
//   recurrent_sequence_forward    the steps (no projection: S = H)
// Each (row, unit) does exactly the arithmetic of the step kernels, in the
// same order (`dot` over 4 k at a time when H % 4 == 0, else one `fma` per
// k), so both give the same bits and choosing one never changes a result.
// Needs ⌈H / UNITS_PER_INVOCATION⌉ ≤ SEQ_WG invocations (the launcher checks
// the adapter's limits) and 2·SEQ_ROWS·⌈H/4⌉ vec4s of workgroup memory.
// Bindings: 17 h0 read (L·D, B, S); the forward bindings above (info,
// w_hh and w_hh4 (the same buffer when SEQ_VEC4; else a stand-in never
// read), b_hh, gates, out, h_prev, h_n) and the
// cell's, including what `cell_sequence_start` reads (LSTM's c0).

override SEQ_WG: u32 = 64u;
// H of the launched layer: sizes the workgroup tile.
override SEQ_HIDDEN: u32 = 4u;
// 1 when H % 4 == 0: the products read 4 k at a time, as the vec4 step kernel.
override SEQ_VEC4: bool = false;

@group(0) @binding(17) var<storage, read> h0: array<f32>;

// The tile's step count, read once and shared so every invocation loops
// (and reaches each barrier) the same number of times.
var<workgroup> seq_steps: u32;
// h of the tile's rows, two buffers of SEQ_ROWS rows, each row ⌈H/4⌉
// vec4s: a vec4 load feeds four k at once (on lavapipe every load is a
// loop over the SIMD lanes, so load count sets the speed).
var<workgroup> seq_h: array<vec4<f32>, 2u * SEQ_ROWS * ((SEQ_HIDDEN + 3u) / 4u)>;

// Feature k of row r of buffer `buf`.
fn seq_h_get(buf: u32, r: u32, k: u32) -> f32 {
    let hc = (p.hidden + 3u) / 4u;
    return seq_h[(buf * SEQ_ROWS + r) * hc + k / 4u][k % 4u];
}

fn seq_h_set(buf: u32, r: u32, k: u32, v: f32) {
    let hc = (p.hidden + 3u) / 4u;
    seq_h[(buf * SEQ_ROWS + r) * hc + k / 4u][k % 4u] = v;
}

@compute @workgroup_size(SEQ_WG)
fn recurrent_sequence_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let s0 = wg.x * SEQ_ROWS;
    let rows = min(SEQ_ROWS, p.batch - s0);
    // Invocations past H idle through every step (they must reach each
    // barrier); lane_row keeps their loads in bounds.
    let j0 = lid * UNITS_PER_INVOCATION;
    for (var r = 0u; r < SEQ_ROWS; r++) {
        if (r >= rows) { break; }
        for (var u = 0u; u < UNITS_PER_INVOCATION; u++) {
            let j = j0 + u;
            if (j < h) {
                seq_h_set(0u, r, j, h0[hstate_at(s0 + r, j)]);
                cell_sequence_start(s0 + r, j);
            }
        }
    }
    workgroupBarrier();
    // Sorted rows: the tile's first row is its longest.
    if (lid == 0u) { seq_steps = row_length(s0); }
    let steps = workgroupUniformLoad(&seq_steps);
    for (var k = 0u; k < steps; k++) {
        var t = k;
        if (p.reverse == 1u) { t = steps - 1u - k; }
        cur_t = t;
        let h_in = k % 2u;
        let h_out = (k + 1u) % 2u;
        let hc = (h + 3u) / 4u;
        // Rows past the tile's repeat its last one (stored nowhere).
        var acc: array<vec4<f32>, SEQ_ROWS>;
        var base: array<u32, SEQ_ROWS>;
        for (var r = 0u; r < SEQ_ROWS; r++) {
            acc[r] = vec4<f32>(0.0);
            base[r] = (h_in * SEQ_ROWS + min(r, rows - 1u)) * hc;
        }
        if (SEQ_VEC4) {
            let h4 = h / 4u;
            let w0 = lane_row(0u, j0) * h4;
            let w1 = lane_row(1u, j0) * h4;
            let w2 = lane_row(2u, j0) * h4;
            let w3 = lane_row(3u, j0) * h4;
            for (var c = 0u; c < h; c += 4u) {
                let wa = w_hh4[w0 + c / 4u];
                var wb = vec4<f32>(0.0);
                var wc = vec4<f32>(0.0);
                var wd = vec4<f32>(0.0);
                if (LANES > 1u) { wb = w_hh4[w1 + c / 4u]; }
                if (LANES > 2u) { wc = w_hh4[w2 + c / 4u]; }
                if (LANES > 3u) { wd = w_hh4[w3 + c / 4u]; }
                for (var r = 0u; r < SEQ_ROWS; r++) {
                    let x = seq_h[base[r] + c / 4u];
                    acc[r] += vec4<f32>(dot(x, wa), dot(x, wb), dot(x, wc), dot(x, wd));
                }
            }
        } else {
            let w0 = lane_row(0u, j0) * h;
            let w1 = lane_row(1u, j0) * h;
            let w2 = lane_row(2u, j0) * h;
            let w3 = lane_row(3u, j0) * h;
            for (var kk = 0u; kk < h; kk++) {
                var w = vec4<f32>(w_hh[w0 + kk], 0.0, 0.0, 0.0);
                if (LANES > 1u) { w.y = w_hh[w1 + kk]; }
                if (LANES > 2u) { w.z = w_hh[w2 + kk]; }
                if (LANES > 3u) { w.w = w_hh[w3 + kk]; }
                for (var r = 0u; r < SEQ_ROWS; r++) {
                    acc[r] = fma(vec4<f32>(seq_h[base[r] + kk / 4u][kk % 4u]), w, acc[r]);
                }
            }
        }
        // Constant trip counts and no `break`: the loops unroll, so acc[r]
        // stays in registers (dynamically indexed, it would live in memory).
        for (var r = 0u; r < SEQ_ROWS; r++) {
            let s = s0 + min(r, rows - 1u);
            let live = t < row_length(s);
            let is_last = live && next_row(s) == NO_ROW;
            for (var u = 0u; u < UNITS_PER_INVOCATION; u++) {
                let j = j0 + u;
                if (r < rows && j < h) {
                    let h_own = seq_h_get(h_in, r, j);
                    var hv = h_own;
                    if (live) {
                        let row = step_offset(t) + s;
                        hv = cell_forward(s, row, j, unit_lanes(acc[r], u), h_own, is_last);
                        h_prev[row * h + j] = h_own;
                        out[row * p.out_stride + p.out_offset + j] = hv;
                        if (is_last) { h_n[hstate_at(s, j)] = hv; }
                    }
                    seq_h_set(h_out, r, j, hv);
                }
            }
        }
        workgroupBarrier();
    }
}
