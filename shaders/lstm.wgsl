// lstm.wgsl — one LSTM time step forward, fused (h_{t-1}·W_hhᵀ, gates,
// state update) for the rows active at step t, reading W_hh and h_{t-1} one
// float at a time (any H). The math, state handling and the other bindings
// are in lstm_step.wgsl, prepended by the registry; lstm_vec4.wgsl is the
// same kernel with vec4 reads for H % 4 == 0. Backward: lstm_backward.wgsl.
//   lstm_step_forward
//
// Bindings (the rest in lstm_step.wgsl):
//   2 w_hh      read  (G, H)
//   4 state_in  read  (B, H) h_{t-1}, sorted rows
// Workgroup mapping: WG invocations along H; workgroup y is a tile of ROWS
// active rows (see lstm_step.wgsl).

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<f32>;

@compute @workgroup_size(WG)
fn lstm_step_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j = wg.x * WG + lid;
    if (j >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // Rows past the live ones repeat the last live row (in bounds); the
    // epilogue stores nothing for them.
    var acc: array<vec4<f32>, ROWS>;
    var h_own: array<f32, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h;
        acc[r] = vec4<f32>(0.0);
        h_own[r] = state_in[base[r] + j];
    }
    for (var k = 0u; k < h; k++) {
        let w = vec4<f32>(w_hh[j * h + k], w_hh[(h + j) * h + k], w_hh[(2u * h + j) * h + k], w_hh[(3u * h + j) * h + k]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec4<f32>(state_in[base[r] + k]), w, acc[r]);
        }
    }
    lstm_forward_finish(s0, live, j, acc, h_own);
}
