// recurrent_forward_subgroup.wgsl — `recurrent_step_forward_vec4` (one time
// step forward of any cell, H % 4 == 0, no projection) with h_{t-1} shared
// by the 8 lanes of a subgroup. The registry appends it to the forward
// module (prelude, constants, recurrent.wgsl, the cell,
// recurrent_forward.wgsl), so it uses that module's bindings and helpers;
// it is built only on devices with subgroups of SUBGROUP_SIZE = 8.
//   recurrent_step_forward_vec4_subgroup
//   recurrent_step_forward_vec4_uniform   h_{t-1} from a uniform array (below)
//
// Why: on lavapipe one load instruction is a loop over the 8 SIMD lanes.
// The lanes of a subgroup own different units of the same ROWS = 16 rows,
// so in the vec4 kernel each lane loads the same 16 h vec4s per 4 k. Here
// lane l loads rows l and 8 + l and `subgroupBroadcast` hands them round
// (a register move on a CPU driver): 2 + 16 loads per 4 k where the vec4
// kernel has 16 + 16. The arithmetic and its order are the vec4 kernel's,
// and the epilogue is its function, so both give the same bits
// (tests/rnn_variants.rs compares them).
//
// Bindings: recurrent_forward.wgsl's, as `recurrent_step_forward_vec4`
// binds them (w_hh4, state_in4, the vec4 views, the cell's vec4 views).
// Workgroup mapping: `recurrent_step_forward_vec4`'s. Lanes past H keep
// loading in-bounds values (lane_row clamps units) so every broadcast has
// all 8 lanes, and store nothing; a subgroup wholly past H returns.
// Saves for backward: what the vec4 kernel saves.

const_assert SUBGROUP_SIZE == 8u;
const_assert ROWS == 2u * SUBGROUP_SIZE;

@compute @workgroup_size(WG)
fn recurrent_step_forward_vec4_subgroup(@builtin(workgroup_id) wg: vec3<u32>,
                                        @builtin(local_invocation_index) lid: u32,
                                        @builtin(subgroup_invocation_id) lane: u32) {
    cur_t = p.t;
    let h = p.hidden;
    let j_first = (wg.x * WG + lid) * UNITS_PER_INVOCATION * VEC4_GROUPS;
    if (subgroupAll(j_first >= h)) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let sz4 = p.state / 4u;
    // This lane's rows of the tile (rows past the live ones repeat the last
    // live row, as the vec4 kernel's base[r] does).
    let mine0 = min(s0 + lane, live - 1u) * sz4;
    let mine1 = min(s0 + SUBGROUP_SIZE + lane, live - 1u) * sz4;
    var acc: array<array<vec4<f32>, ROWS>, VEC4_GROUPS>;
    for (var gi = 0u; gi < VEC4_GROUPS; gi++) {
        for (var r = 0u; r < ROWS; r++) {
            acc[gi][r] = vec4<f32>(0.0);
        }
    }
    for (var c = 0u; c < sz4; c++) {
        let v0 = state_in4[mine0 + c];
        let v1 = state_in4[mine1 + c];
        var x: array<vec4<f32>, ROWS>;
        x[0] = subgroupBroadcast(v0, 0u);
        x[1] = subgroupBroadcast(v0, 1u);
        x[2] = subgroupBroadcast(v0, 2u);
        x[3] = subgroupBroadcast(v0, 3u);
        x[4] = subgroupBroadcast(v0, 4u);
        x[5] = subgroupBroadcast(v0, 5u);
        x[6] = subgroupBroadcast(v0, 6u);
        x[7] = subgroupBroadcast(v0, 7u);
        x[8] = subgroupBroadcast(v1, 0u);
        x[9] = subgroupBroadcast(v1, 1u);
        x[10] = subgroupBroadcast(v1, 2u);
        x[11] = subgroupBroadcast(v1, 3u);
        x[12] = subgroupBroadcast(v1, 4u);
        x[13] = subgroupBroadcast(v1, 5u);
        x[14] = subgroupBroadcast(v1, 6u);
        x[15] = subgroupBroadcast(v1, 7u);
        forward_accumulate_vec4(&acc, &x, j_first, c, sz4);
    }
    if (j_first < h) {
        forward_finish_vec4(s0, live, j_first, acc);
    }
}

// ---------------------------------------------------------------------------
//   recurrent_step_forward_vec4_uniform
// The same step with the operands' roles swapped and h_{t-1} read from a
// uniform array. On lavapipe a uniform array read at a per-lane index is
// one hardware gather, about 9× cheaper than a storage load (a loop over
// the lanes), but a uniform binding holds 64 KiB: h_{t-1} (B·S·4 bytes)
// fits, W_hh does not. So here the lanes of a subgroup own different rows
// (lane + 8r, r < UNIFORM_ROWS) and the same 8 groups of units: lane l
// loads the W_hh rows of group l and `subgroupBroadcast` hands them to the
// others, and each lane gathers its own rows of h_{t-1}. Per 4 k: LANES
// storage loads and UNIFORM_ROWS gathers feed 8·UNIFORM_ROWS·LANES·4
// multiply-adds (LSTM: 4 + 8 loads for 1,024; the subgroup kernel above
// has 18 storage loads). Each (row, unit) sums the vec4 kernel's products
// in its order and ends in its epilogue (`forward_finish_quad`), so the
// bits are the same (tests/rnn_variants.rs compares them).
//
// Bindings: 41 state_u (uniform, UNIFORM_STATE_VEC4S vec4s) holds h_{t-1}
// (B, S) at its start; the rest as `recurrent_step_forward_vec4` binds
// them, but state_in4.
// Workgroup mapping: one subgroup per workgroup; workgroup x owns 8 groups
// of UNITS_PER_INVOCATION units (a lane's units past H repeat the last
// unit: in bounds, stored nowhere), workgroup y 8·UNIFORM_ROWS rows.

@group(0) @binding(41) var<uniform> state_u: array<vec4<f32>, UNIFORM_STATE_VEC4S>;

// Adds group u's products at k = 4c..4c+3 (its W_hh rows wa..wd, as the
// vec4 kernel's lanes) to the accumulators of the lane's rows.
fn uniform_accumulate(acc: ptr<function, array<array<vec4<f32>, SUBGROUP_SIZE>, UNIFORM_ROWS>>,
                      x: ptr<function, array<vec4<f32>, UNIFORM_ROWS>>, u: u32,
                      wa: vec4<f32>, wb: vec4<f32>, wc: vec4<f32>, wd: vec4<f32>) {
    for (var r = 0u; r < UNIFORM_ROWS; r++) {
        let xr = (*x)[r];
        (*acc)[r][u] += vec4<f32>(dot(xr, wa), dot(xr, wb), dot(xr, wc), dot(xr, wd));
    }
}

// The products of unit u (0-based in the subgroup's units), from one
// row's accumulators, in gate order.
fn uniform_unit_lanes(acc_row: array<vec4<f32>, SUBGROUP_SIZE>, u: u32) -> vec4<f32> {
    return unit_lanes(pick_of_8(acc_row, u / UNITS_PER_INVOCATION), u % UNITS_PER_INVOCATION);
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn recurrent_step_forward_vec4_uniform(@builtin(workgroup_id) wg: vec3<u32>,
                                       @builtin(subgroup_invocation_id) lane: u32) {
    cur_t = p.t;
    let h = p.hidden;
    let j_sub = wg.x * SUBGROUP_SIZE * UNITS_PER_INVOCATION;
    let j_lane = j_sub + lane * UNITS_PER_INVOCATION;
    let live = batch_size(p.t);
    let s0 = wg.y * SUBGROUP_SIZE * UNIFORM_ROWS;
    let sz4 = p.state / 4u;
    // Rows past the live ones repeat the last live row (in bounds); the
    // epilogue stores nothing for them.
    var base: array<u32, UNIFORM_ROWS>;
    var acc: array<array<vec4<f32>, SUBGROUP_SIZE>, UNIFORM_ROWS>;
    for (var r = 0u; r < UNIFORM_ROWS; r++) {
        base[r] = min(s0 + lane + r * SUBGROUP_SIZE, live - 1u) * sz4;
        for (var u = 0u; u < SUBGROUP_SIZE; u++) {
            acc[r][u] = vec4<f32>(0.0);
        }
    }
    let w0 = lane_row(0u, j_lane) * sz4;
    let w1 = lane_row(1u, j_lane) * sz4;
    let w2 = lane_row(2u, j_lane) * sz4;
    let w3 = lane_row(3u, j_lane) * sz4;
    for (var c = 0u; c < sz4; c++) {
        var x: array<vec4<f32>, UNIFORM_ROWS>;
        for (var r = 0u; r < UNIFORM_ROWS; r++) {
            x[r] = state_u[base[r] + c];
        }
        // Lanes past LANES stay zero, as in the vec4 kernel.
        let wa = w_hh4[w0 + c];
        var wb = vec4<f32>(0.0);
        var wc = vec4<f32>(0.0);
        var wd = vec4<f32>(0.0);
        if (LANES > 1u) { wb = w_hh4[w1 + c]; }
        if (LANES > 2u) { wc = w_hh4[w2 + c]; }
        if (LANES > 3u) { wd = w_hh4[w3 + c]; }
        uniform_accumulate(&acc, &x, 0u, subgroupBroadcast(wa, 0u), subgroupBroadcast(wb, 0u),
                           subgroupBroadcast(wc, 0u), subgroupBroadcast(wd, 0u));
        uniform_accumulate(&acc, &x, 1u, subgroupBroadcast(wa, 1u), subgroupBroadcast(wb, 1u),
                           subgroupBroadcast(wc, 1u), subgroupBroadcast(wd, 1u));
        uniform_accumulate(&acc, &x, 2u, subgroupBroadcast(wa, 2u), subgroupBroadcast(wb, 2u),
                           subgroupBroadcast(wc, 2u), subgroupBroadcast(wd, 2u));
        uniform_accumulate(&acc, &x, 3u, subgroupBroadcast(wa, 3u), subgroupBroadcast(wb, 3u),
                           subgroupBroadcast(wc, 3u), subgroupBroadcast(wd, 3u));
        uniform_accumulate(&acc, &x, 4u, subgroupBroadcast(wa, 4u), subgroupBroadcast(wb, 4u),
                           subgroupBroadcast(wc, 4u), subgroupBroadcast(wd, 4u));
        uniform_accumulate(&acc, &x, 5u, subgroupBroadcast(wa, 5u), subgroupBroadcast(wb, 5u),
                           subgroupBroadcast(wc, 5u), subgroupBroadcast(wd, 5u));
        uniform_accumulate(&acc, &x, 6u, subgroupBroadcast(wa, 6u), subgroupBroadcast(wb, 6u),
                           subgroupBroadcast(wc, 6u), subgroupBroadcast(wd, 6u));
        uniform_accumulate(&acc, &x, 7u, subgroupBroadcast(wa, 7u), subgroupBroadcast(wb, 7u),
                           subgroupBroadcast(wc, 7u), subgroupBroadcast(wd, 7u));
    }
    // The subgroup's quads inside H, a bound known only at run time: the
    // quad loop is not unrolled, the row loop inside it is (UNIFORM_ROWS
    // copies of the cell's epilogue, not up to 8 times that, over which
    // LLVM takes minutes; and rows indexed at run time would put every
    // accumulator in addressable memory).
    let quads = min(SUBGROUP_SIZE * UNITS_PER_INVOCATION / 4u, (h - j_sub) / 4u);
    for (var qd = 0u; qd < quads; qd++) {
        let j0 = j_sub + 4u * qd;
        let u = 4u * qd;
        let bias = gate_bias4(j0);
        for (var r = 0u; r < UNIFORM_ROWS; r++) {
            let s = s0 + lane + r * SUBGROUP_SIZE;
            if (s < live) {
                let row = step_offset(p.t) + s;
                // Column g: gate g of the four units.
                let rec = transpose(mat4x4<f32>(uniform_unit_lanes(acc[r], u), uniform_unit_lanes(acc[r], u + 1u),
                                                uniform_unit_lanes(acc[r], u + 2u), uniform_unit_lanes(acc[r], u + 3u)));
                forward_finish_quad(s, row, next_row(s) == NO_ROW, j0, rec, bias, state_u[s * sz4 + j0 / 4u]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
//   recurrent_sequence_forward_uniform
// Every step of one layer and direction in one dispatch, shaped as the
// uniform step kernel is for a CPU driver: lanes own rows. A workgroup is
// one subgroup; lane l owns sorted row 8·wg + l and every unit of it, so a
// row's recurrence needs nothing from another lane and the steps need no
// barrier (on lavapipe a barrier switches every lane group's coroutine).
// Per step, the lane reads h_{t-1} of its row once, into a private array.
// Per group of 8·UNITS_PER_INVOCATION units and four k, lane l reads the
// W_hh rows of unit group l from the uniform windows (W_hh never changes
// within the dispatch; a uniform read at a per-lane index is one gather on
// lavapipe, a storage read a loop over the lanes) and `subgroupBroadcast`
// hands them to the others: LANES window reads feed 8·LANES·4
// multiply-adds per lane. The products are the vec4 kernel's in its order
// and the epilogue is `forward_finish_quad`, so the bits are the step
// kernels' (tests/rnn_variants.rs compares them). With one dispatch per
// layer and direction, a step of the bench's reference model records 30
// dispatches instead of 108.
//
// Needs H % 4 == 0, no projection, and W_hh's gate blocks in the windows
// (H·S·4 bytes each ≤ 64 KiB: H ≤ SEQ_UNIFORM_HIDDEN).
// Bindings: 44–47 the W_hh windows (recurrent.wgsl); 39 state_out4 the
// dense h (B, S), sorted rows, which starts as h0 and is rewritten in place
// as each row's units finish (the products read the private copy); the
// rest as `recurrent_step_forward_vec4` binds them, but w_hh4 and
// state_in4.
// Workgroup mapping: workgroup x owns 8 sorted rows (lanes past the batch
// repeat its last row and store nothing) and loops over the steps of its
// longest row; a row takes part from its first step to its last and keeps
// its h while it does not (a reverse row that has not started holds h0).
// Saves for backward: what the step kernels save.

// Adds the products of four k (h_{t-1} of the lane's row there: x) with
// the W_hh rows lane u read (wa..wd, as the vec4 kernel's lanes) to the
// accumulators of unit group u.
fn sequence_accumulate(acc: ptr<function, array<vec4<f32>, SUBGROUP_SIZE>>, x: vec4<f32>,
                       wa: vec4<f32>, wb: vec4<f32>, wc: vec4<f32>, wd: vec4<f32>) {
    // One line per lane: subgroupBroadcast takes the lane as a constant.
    (*acc)[0] += vec4<f32>(dot(x, subgroupBroadcast(wa, 0u)), dot(x, subgroupBroadcast(wb, 0u)),
                         dot(x, subgroupBroadcast(wc, 0u)), dot(x, subgroupBroadcast(wd, 0u)));
    (*acc)[1] += vec4<f32>(dot(x, subgroupBroadcast(wa, 1u)), dot(x, subgroupBroadcast(wb, 1u)),
                         dot(x, subgroupBroadcast(wc, 1u)), dot(x, subgroupBroadcast(wd, 1u)));
    (*acc)[2] += vec4<f32>(dot(x, subgroupBroadcast(wa, 2u)), dot(x, subgroupBroadcast(wb, 2u)),
                         dot(x, subgroupBroadcast(wc, 2u)), dot(x, subgroupBroadcast(wd, 2u)));
    (*acc)[3] += vec4<f32>(dot(x, subgroupBroadcast(wa, 3u)), dot(x, subgroupBroadcast(wb, 3u)),
                         dot(x, subgroupBroadcast(wc, 3u)), dot(x, subgroupBroadcast(wd, 3u)));
    (*acc)[4] += vec4<f32>(dot(x, subgroupBroadcast(wa, 4u)), dot(x, subgroupBroadcast(wb, 4u)),
                         dot(x, subgroupBroadcast(wc, 4u)), dot(x, subgroupBroadcast(wd, 4u)));
    (*acc)[5] += vec4<f32>(dot(x, subgroupBroadcast(wa, 5u)), dot(x, subgroupBroadcast(wb, 5u)),
                         dot(x, subgroupBroadcast(wc, 5u)), dot(x, subgroupBroadcast(wd, 5u)));
    (*acc)[6] += vec4<f32>(dot(x, subgroupBroadcast(wa, 6u)), dot(x, subgroupBroadcast(wb, 6u)),
                         dot(x, subgroupBroadcast(wc, 6u)), dot(x, subgroupBroadcast(wd, 6u)));
    (*acc)[7] += vec4<f32>(dot(x, subgroupBroadcast(wa, 7u)), dot(x, subgroupBroadcast(wb, 7u)),
                         dot(x, subgroupBroadcast(wc, 7u)), dot(x, subgroupBroadcast(wd, 7u)));
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn recurrent_sequence_forward_uniform(@builtin(workgroup_id) wg: vec3<u32>,
                                      @builtin(subgroup_invocation_id) lane: u32) {
    let h = p.hidden;
    let sz4 = p.state / 4u;
    let s0 = wg.x * SUBGROUP_SIZE;
    let own = s0 + lane < p.batch;
    let s = min(s0 + lane, p.batch - 1u);
    // Sorted rows: the tile's first is its longest, and every lane loops as
    // often (the broadcasts need all 8).
    let steps = row_length(s0);
    let group_units = SUBGROUP_SIZE * UNITS_PER_INVOCATION;
    for (var k = 0u; k < steps; k++) {
        var t = k;
        if (p.reverse == 1u) { t = steps - 1u - k; }
        cur_t = t;
        let live = own && t < row_length(s);
        var x: array<vec4<f32>, SEQ_UNIFORM_HIDDEN / 4u>;
        for (var c = 0u; c < sz4; c++) {
            x[c] = state_out4[s * sz4 + c];
        }
        for (var j_sub = 0u; j_sub < h; j_sub += group_units) {
            // W_hh rows as lane_row gives them: a unit past H repeats the
            // last one (in bounds, stored nowhere).
            let j_lane = j_sub + lane * UNITS_PER_INVOCATION;
            var acc: array<vec4<f32>, SUBGROUP_SIZE>;
            for (var u = 0u; u < SUBGROUP_SIZE; u++) {
                acc[u] = vec4<f32>(0.0);
            }
            for (var c = 0u; c < sz4; c++) {
                // Lanes past LANES stay zero, as in the vec4 kernel.
                let wa = w_window_at(0u, min(j_lane, h - 1u), c);
                var wb = vec4<f32>(0.0);
                var wc = vec4<f32>(0.0);
                var wd = vec4<f32>(0.0);
                if (LANES > 1u) { wb = w_window_at(1u % GATES, min(j_lane + 1u / GATES, h - 1u), c); }
                if (LANES > 2u) { wc = w_window_at(2u % GATES, min(j_lane + 2u / GATES, h - 1u), c); }
                if (LANES > 3u) { wd = w_window_at(3u % GATES, min(j_lane + 3u / GATES, h - 1u), c); }
                sequence_accumulate(&acc, x[c], wa, wb, wc, wd);
            }
            if (live) {
                let row = step_offset(t) + s;
                let is_last = next_row(s) == NO_ROW;
                let quads = min(group_units / 4u, (h - j_sub) / 4u);
                for (var qd = 0u; qd < quads; qd++) {
                    let j0 = j_sub + 4u * qd;
                    let u = 4u * qd;
                    // Column g: gate g of the four units.
                    let rec = transpose(mat4x4<f32>(uniform_unit_lanes(acc, u), uniform_unit_lanes(acc, u + 1u),
                                                    uniform_unit_lanes(acc, u + 2u), uniform_unit_lanes(acc, u + 3u)));
                    forward_finish_quad(s, row, is_last, j0, rec, gate_bias4(j0), x[j0 / 4u]);
                }
            }
        }
    }
}
