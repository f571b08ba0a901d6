// lstm_vec4.wgsl — lstm_step_forward for H % 4 == 0, reading W_hh and
// h_{t-1} as vec4 along k: per 4 steps of k, 4 + ROWS vec4 loads feed
// 16·ROWS multiply-adds (lstm.wgsl needs 4× the loads). The math, state
// handling and the other bindings are in lstm_step.wgsl.
//   lstm_step_forward_vec4
//
// Bindings (the rest in lstm_step.wgsl):
//   2 w_hh      read  (G, H) as vec4
//   4 state_in  read  (B, H) h_{t-1}, sorted rows, as vec4
// Workgroup mapping: WG invocations along H; workgroup y is a tile of ROWS
// active rows (see lstm_step.wgsl).

@group(0) @binding(2) var<storage, read> w_hh: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> state_in: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn lstm_step_forward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    let h4 = h / 4u;
    var acc: array<vec4<f32>, ROWS>;
    var h_own: array<f32, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h4;
        acc[r] = vec4<f32>(0.0);
        h_own[r] = state_in[base[r] + j / 4u][j % 4u];
    }
    for (var c = 0u; c < h4; c++) {
        let wi = w_hh[j * h4 + c];
        let wf = w_hh[(h + j) * h4 + c];
        let wg = w_hh[(2u * h + j) * h4 + c];
        let wo = w_hh[(3u * h + j) * h4 + c];
        for (var r = 0u; r < ROWS; r++) {
            let x = state_in[base[r] + c];
            acc[r] += vec4<f32>(dot(x, wi), dot(x, wf), dot(x, wg), dot(x, wo));
        }
    }
    lstm_forward_finish(s0, live, j, acc, h_own);
}
