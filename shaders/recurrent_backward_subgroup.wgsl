// recurrent_backward_subgroup.wgsl — `recurrent_step_backward_vec4` (one
// time step backward of any cell, H % 4 == 0, no projection) with the
// hidden-side gate gradients dG_h of the step processed before shared by
// the 8 lanes of a subgroup. The registry appends it to the backward
// module (prelude, constants, recurrent.wgsl, the cell,
// recurrent_backward.wgsl), so it uses that module's bindings and helpers;
// it is built only on devices with subgroups of SUBGROUP_SIZE = 8.
//   recurrent_step_backward_vec4_subgroup
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
