// recurrent_forward_subgroup.wgsl — `recurrent_step_forward_vec4` (one time
// step forward of any cell, H % 4 == 0, no projection) with h_{t-1} shared
// by the 8 lanes of a subgroup. The registry appends it to the forward
// module (prelude, constants, recurrent.wgsl, the cell,
// recurrent_forward.wgsl), so it uses that module's bindings and helpers;
// it is built only on devices with subgroups of SUBGROUP_SIZE = 8.
//   recurrent_step_forward_vec4_subgroup
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
