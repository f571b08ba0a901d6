// recurrent_backward_subgroup.wgsl — `recurrent_step_backward_vec4` (one
// time step backward of any cell, H % 4 == 0, no projection) with the
// hidden-side gate gradients dG_h of the step processed before shared by
// the 8 lanes of a subgroup. The registry appends it to the backward
// module (prelude, constants, recurrent.wgsl, the cell,
// recurrent_backward.wgsl), so it uses that module's bindings and helpers;
// it is built only on devices with subgroups of SUBGROUP_SIZE = 8.
//   recurrent_step_backward_vec4_subgroup
//   recurrent_step_backward_vec4_uniform   dG_h from uniform arrays (below)
//
// Why: on lavapipe one load instruction is a loop over the 8 SIMD lanes.
// The lanes of a subgroup own different units of the same ROWS = 16 rows,
// so in the vec4 kernel each lane loads the same 16 dG_h vec4s per four
// gates. Here lane l loads rows l and 8 + l and `subgroupBroadcast` hands
// them round (a register move on a CPU driver): 4 + 2 loads per four gates
// where the vec4 kernel has 4 + 16. The arithmetic and its order are the
// vec4 kernel's, and the epilogue is its function (`backward_finish_vec4`),
// so both give the same bits (tests/rnn_variants.rs compares them).
//
// Bindings: recurrent_backward.wgsl's, as `recurrent_step_backward_vec4`
// binds them (w_hh4, dgs_in4, the vec4 views, the cell's vec4 views).
// Workgroup mapping: `recurrent_step_backward_vec4`'s. Lanes past S load
// the last units' values (in bounds) so every broadcast has all 8 lanes,
// and store nothing; a subgroup wholly past S returns.
// Saves nothing.

const_assert SUBGROUP_SIZE == 8u;
const_assert ROWS == 2u * SUBGROUP_SIZE;
const_assert UNITS == 4u;

@compute @workgroup_size(WG)
fn recurrent_step_backward_vec4_subgroup(@builtin(workgroup_id) wg: vec3<u32>,
                                         @builtin(local_invocation_index) lid: u32,
                                         @builtin(subgroup_invocation_id) lane: u32) {
    cur_t = p.t;
    let j_own = (wg.x * WG + lid) * UNITS;
    if (subgroupAll(j_own >= p.state)) { return; }
    // S % 4 == 0: the last quad of units, for lanes past S.
    let j0 = min(j_own, p.state - 4u);
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let h4 = p.state / 4u;
    let g4 = GATES * p.hidden / 4u;
    let j4 = j0 / 4u;
    // This lane's rows of the tile (rows past the live ones repeat the last
    // live row, as the vec4 kernel's base[r] does).
    let mine0 = min(s0 + lane, live - 1u) * g4;
    let mine1 = min(s0 + SUBGROUP_SIZE + lane, live - 1u) * g4;
    var acc: array<vec4<f32>, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        acc[r] = vec4<f32>(0.0);
    }
    for (var qc = 0u; qc < g4; qc++) {
        let q = 4u * qc;
        let w = mat4x4<f32>(w_hh4[q * h4 + j4], w_hh4[(q + 1u) * h4 + j4], w_hh4[(q + 2u) * h4 + j4],
                            w_hh4[(q + 3u) * h4 + j4]);
        let v0 = dgs_in4[mine0 + qc];
        let v1 = dgs_in4[mine1 + qc];
        acc[0] += w * subgroupBroadcast(v0, 0u);
        acc[1] += w * subgroupBroadcast(v0, 1u);
        acc[2] += w * subgroupBroadcast(v0, 2u);
        acc[3] += w * subgroupBroadcast(v0, 3u);
        acc[4] += w * subgroupBroadcast(v0, 4u);
        acc[5] += w * subgroupBroadcast(v0, 5u);
        acc[6] += w * subgroupBroadcast(v0, 6u);
        acc[7] += w * subgroupBroadcast(v0, 7u);
        acc[8] += w * subgroupBroadcast(v1, 0u);
        acc[9] += w * subgroupBroadcast(v1, 1u);
        acc[10] += w * subgroupBroadcast(v1, 2u);
        acc[11] += w * subgroupBroadcast(v1, 3u);
        acc[12] += w * subgroupBroadcast(v1, 4u);
        acc[13] += w * subgroupBroadcast(v1, 5u);
        acc[14] += w * subgroupBroadcast(v1, 6u);
        acc[15] += w * subgroupBroadcast(v1, 7u);
    }
    if (j_own < p.state) {
        backward_finish_vec4(s0, live, j0, acc);
    }
}

// ---------------------------------------------------------------------------
//   recurrent_step_backward_vec4_uniform
// The same step with the operands' roles swapped and dG_h read from two
// uniform arrays (as `recurrent_step_forward_vec4_uniform` does forward:
// on lavapipe a uniform read at a per-lane index is one hardware gather,
// about 9× cheaper than a storage load). The lanes of a subgroup own
// different rows (lane + 8r, r < UNIFORM_ROWS) and the same 8 quads of
// units: lane l loads the W_hh block of quad l (four vec4s per four gates)
// and `subgroupBroadcast` hands it to the others; each lane gathers its
// rows of dG_h. Per four gates: 4 storage loads and UNIFORM_ROWS gathers
// feed 8·16·UNIFORM_ROWS multiply-adds, where the subgroup kernel above
// has 6 storage loads per 256. Each (row, unit) sums the vec4 kernel's
// products in its order and ends in its epilogue (`backward_finish_quad`),
// so the bits are the same (tests/rnn_variants.rs compares them).
//
// Needs B ≤ 64 (one tile of rows) and 32·G·4 ≤ 64 KiB: rows 0–31 of dG_h
// (B, G) are read from dgs_lo, rows 32–63 from dgs_hi, which Rust binds
// 32 rows further into the same padded buffer.
//
// Bindings: 41 dgs_lo, 42 dgs_hi (uniform, UNIFORM_STATE_VEC4S vec4s each);
// the rest as `recurrent_step_backward_vec4` binds them, but dgs_in4.
// Workgroup mapping: one subgroup per workgroup; workgroup x owns 8 quads
// of units (a lane's quad past S loads the last quad's weights: in
// bounds, stored nowhere); the rows of the one tile are the lanes'.

const_assert SUBGROUP_SIZE * UNIFORM_ROWS == 64u;
const UNIFORM_HALF_ROWS: u32 = 32u;

@group(0) @binding(41) var<uniform> dgs_lo: array<vec4<f32>, UNIFORM_STATE_VEC4S>;
@group(0) @binding(42) var<uniform> dgs_hi: array<vec4<f32>, UNIFORM_STATE_VEC4S>;

// Adds quad u's products for gates 4qc..4qc+3 (its W_hh block w) to the
// accumulators of the lane's rows.
fn uniform_accumulate(acc: ptr<function, array<array<vec4<f32>, SUBGROUP_SIZE>, UNIFORM_ROWS>>,
                      x: ptr<function, array<vec4<f32>, UNIFORM_ROWS>>, u: u32, w: mat4x4<f32>) {
    for (var r = 0u; r < UNIFORM_ROWS; r++) {
        (*acc)[r][u] += w * (*x)[r];
    }
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn recurrent_step_backward_vec4_uniform(@builtin(workgroup_id) wg: vec3<u32>,
                                        @builtin(subgroup_invocation_id) lane: u32) {
    cur_t = p.t;
    let j_sub = wg.x * SUBGROUP_SIZE * 4u;
    // S % 4 == 0: the last quad of units, for lanes past S.
    let j_lane = min(j_sub + 4u * lane, p.state - 4u);
    let live = batch_size(p.t);
    let h4 = p.state / 4u;
    let g4 = GATES * p.hidden / 4u;
    let j4 = j_lane / 4u;
    // Rows past the live ones repeat the last live row of their half (in
    // bounds of the padded buffer); the epilogue stores nothing for them.
    var base: array<u32, UNIFORM_ROWS>;
    var acc: array<array<vec4<f32>, SUBGROUP_SIZE>, UNIFORM_ROWS>;
    for (var r = 0u; r < UNIFORM_ROWS; r++) {
        let s = min(lane + r * SUBGROUP_SIZE, live - 1u);
        if (r * SUBGROUP_SIZE < UNIFORM_HALF_ROWS) {
            base[r] = s * g4;
        } else {
            base[r] = (max(s, UNIFORM_HALF_ROWS) - UNIFORM_HALF_ROWS) * g4;
        }
        for (var u = 0u; u < SUBGROUP_SIZE; u++) {
            acc[r][u] = vec4<f32>(0.0);
        }
    }
    for (var qc = 0u; qc < g4; qc++) {
        let q = 4u * qc;
        var x: array<vec4<f32>, UNIFORM_ROWS>;
        for (var r = 0u; r < UNIFORM_ROWS; r++) {
            if (r * SUBGROUP_SIZE < UNIFORM_HALF_ROWS) {
                x[r] = dgs_lo[base[r] + qc];
            } else {
                x[r] = dgs_hi[base[r] + qc];
            }
        }
        let wa = w_hh4[q * h4 + j4];
        let wb = w_hh4[(q + 1u) * h4 + j4];
        let wc = w_hh4[(q + 2u) * h4 + j4];
        let wd = w_hh4[(q + 3u) * h4 + j4];
        uniform_accumulate(&acc, &x, 0u, mat4x4<f32>(subgroupBroadcast(wa, 0u), subgroupBroadcast(wb, 0u),
                                                     subgroupBroadcast(wc, 0u), subgroupBroadcast(wd, 0u)));
        uniform_accumulate(&acc, &x, 1u, mat4x4<f32>(subgroupBroadcast(wa, 1u), subgroupBroadcast(wb, 1u),
                                                     subgroupBroadcast(wc, 1u), subgroupBroadcast(wd, 1u)));
        uniform_accumulate(&acc, &x, 2u, mat4x4<f32>(subgroupBroadcast(wa, 2u), subgroupBroadcast(wb, 2u),
                                                     subgroupBroadcast(wc, 2u), subgroupBroadcast(wd, 2u)));
        uniform_accumulate(&acc, &x, 3u, mat4x4<f32>(subgroupBroadcast(wa, 3u), subgroupBroadcast(wb, 3u),
                                                     subgroupBroadcast(wc, 3u), subgroupBroadcast(wd, 3u)));
        uniform_accumulate(&acc, &x, 4u, mat4x4<f32>(subgroupBroadcast(wa, 4u), subgroupBroadcast(wb, 4u),
                                                     subgroupBroadcast(wc, 4u), subgroupBroadcast(wd, 4u)));
        uniform_accumulate(&acc, &x, 5u, mat4x4<f32>(subgroupBroadcast(wa, 5u), subgroupBroadcast(wb, 5u),
                                                     subgroupBroadcast(wc, 5u), subgroupBroadcast(wd, 5u)));
        uniform_accumulate(&acc, &x, 6u, mat4x4<f32>(subgroupBroadcast(wa, 6u), subgroupBroadcast(wb, 6u),
                                                     subgroupBroadcast(wc, 6u), subgroupBroadcast(wd, 6u)));
        uniform_accumulate(&acc, &x, 7u, mat4x4<f32>(subgroupBroadcast(wa, 7u), subgroupBroadcast(wb, 7u),
                                                     subgroupBroadcast(wc, 7u), subgroupBroadcast(wd, 7u)));
    }
    // The subgroup's quads inside S, a bound known only at run time: the
    // quad loop is not unrolled, the row loop inside it is (8 copies of
    // the cell's epilogue, not 64, over which LLVM takes minutes; and rows
    // indexed at run time would put every accumulator in addressable memory).
    let quads = min(SUBGROUP_SIZE, (p.state - j_sub) / 4u);
    for (var u = 0u; u < quads; u++) {
        for (var r = 0u; r < UNIFORM_ROWS; r++) {
            let s = lane + r * SUBGROUP_SIZE;
            if (s < live) {
                backward_finish_quad(s, j_sub + 4u * u, pick_of_8(acc[r], u));
            }
        }
    }
}

// ---------------------------------------------------------------------------
//   recurrent_sequence_backward_uniform
// Every step of one layer and direction backward in one dispatch, lanes
// owning rows, as `recurrent_sequence_forward_uniform` runs forward: lane
// l owns sorted row 8·wg + l. Per step it reads its row's dG_h of the step
// processed before once, into a private array; per block of 8 quads of
// units and four gates, lane l reads the W_hh block of quad l from the
// uniform windows and `subgroupBroadcast` hands it to the others. The
// products are the vec4 kernel's in its order (gates ascending) and the
// epilogue is `backward_finish_quad`, so the bits are the step kernels'
// (tests/rnn_variants.rs compares them). The initial-state gradient stays
// the step path's own kernel, which reads what this one stores.
//
// Needs what the forward needs (H % 4 == 0, no projection, H ≤
// SEQ_UNIFORM_HIDDEN).
// Bindings: 44–47 the W_hh windows (recurrent.wgsl); 39 dgs_out4 the
// dense dG_h (B, G), sorted rows, starting at zero (a row at its last step
// reads zero) and rewritten in place as each row's units finish; the rest
// as `recurrent_step_backward_vec4` binds them, but w_hh4 and dgs_in4.
// Workgroup mapping: as the forward's; backward runs each direction's
// steps in reverse of its forward order.
// Saves nothing.

// Adds gate `gate`'s part of dG_h·W_hh to the accumulators of the 8 quads
// of units the lanes own (lane l's quad starts at unit 4·j4): per four
// gate rows q, lane u's W_hh block (rows q..q+3, its quad) times dG_h there.
fn sequence_gate_product(acc: ptr<function, array<vec4<f32>, SUBGROUP_SIZE>>,
                         x: ptr<function, array<vec4<f32>, GATES * SEQ_UNIFORM_HIDDEN / 4u>>, gate: u32, j4: u32) {
    let h = p.hidden;
    for (var qq = 0u; qq < h; qq += 4u) {
        let wa = w_window_at(gate, qq, j4);
        let wb = w_window_at(gate, qq + 1u, j4);
        let wc = w_window_at(gate, qq + 2u, j4);
        let wd = w_window_at(gate, qq + 3u, j4);
        let xc = (*x)[(gate * h + qq) / 4u];
        // One line per lane: subgroupBroadcast takes the lane as a constant.
        (*acc)[0] += mat4x4<f32>(subgroupBroadcast(wa, 0u), subgroupBroadcast(wb, 0u), subgroupBroadcast(wc, 0u),
                                   subgroupBroadcast(wd, 0u)) * xc;
        (*acc)[1] += mat4x4<f32>(subgroupBroadcast(wa, 1u), subgroupBroadcast(wb, 1u), subgroupBroadcast(wc, 1u),
                                   subgroupBroadcast(wd, 1u)) * xc;
        (*acc)[2] += mat4x4<f32>(subgroupBroadcast(wa, 2u), subgroupBroadcast(wb, 2u), subgroupBroadcast(wc, 2u),
                                   subgroupBroadcast(wd, 2u)) * xc;
        (*acc)[3] += mat4x4<f32>(subgroupBroadcast(wa, 3u), subgroupBroadcast(wb, 3u), subgroupBroadcast(wc, 3u),
                                   subgroupBroadcast(wd, 3u)) * xc;
        (*acc)[4] += mat4x4<f32>(subgroupBroadcast(wa, 4u), subgroupBroadcast(wb, 4u), subgroupBroadcast(wc, 4u),
                                   subgroupBroadcast(wd, 4u)) * xc;
        (*acc)[5] += mat4x4<f32>(subgroupBroadcast(wa, 5u), subgroupBroadcast(wb, 5u), subgroupBroadcast(wc, 5u),
                                   subgroupBroadcast(wd, 5u)) * xc;
        (*acc)[6] += mat4x4<f32>(subgroupBroadcast(wa, 6u), subgroupBroadcast(wb, 6u), subgroupBroadcast(wc, 6u),
                                   subgroupBroadcast(wd, 6u)) * xc;
        (*acc)[7] += mat4x4<f32>(subgroupBroadcast(wa, 7u), subgroupBroadcast(wb, 7u), subgroupBroadcast(wc, 7u),
                                   subgroupBroadcast(wd, 7u)) * xc;
    }
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn recurrent_sequence_backward_uniform(@builtin(workgroup_id) wg: vec3<u32>,
                                       @builtin(subgroup_invocation_id) lane: u32) {
    let g4 = GATES * p.hidden / 4u;
    let s0 = wg.x * SUBGROUP_SIZE;
    let own = s0 + lane < p.batch;
    let s = min(s0 + lane, p.batch - 1u);
    // The tile's first row is its longest; every lane loops as often.
    let steps = row_length(s0);
    for (var k = 0u; k < steps; k++) {
        var t = steps - 1u - k;
        if (p.reverse == 1u) { t = k; }
        cur_t = t;
        let live = own && t < row_length(s);
        var x: array<vec4<f32>, GATES * SEQ_UNIFORM_HIDDEN / 4u>;
        for (var qc = 0u; qc < g4; qc++) {
            x[qc] = dgs_out4[s * g4 + qc];
        }
        for (var j_sub = 0u; j_sub < p.state; j_sub += 4u * SUBGROUP_SIZE) {
            // S % 4 == 0: a lane past S takes the last quad (in bounds,
            // stored nowhere).
            let j4 = min(j_sub + 4u * lane, p.state - 4u) / 4u;
            var acc: array<vec4<f32>, SUBGROUP_SIZE>;
            for (var u = 0u; u < SUBGROUP_SIZE; u++) {
                acc[u] = vec4<f32>(0.0);
            }
            // One call per gate, each with a constant gate (its window).
            sequence_gate_product(&acc, &x, 0u, j4);
            if (GATES > 1u) { sequence_gate_product(&acc, &x, 1u, j4); }
            if (GATES > 2u) { sequence_gate_product(&acc, &x, 2u, j4); }
            if (GATES > 3u) { sequence_gate_product(&acc, &x, 3u, j4); }
            if (live) {
                let quads = min(SUBGROUP_SIZE, (p.state - j_sub) / 4u);
                for (var qd = 0u; qd < quads; qd++) {
                    backward_finish_quad(s, j_sub + 4u * qd, pick_of_8(acc, qd));
                }
            }
        }
    }
}
