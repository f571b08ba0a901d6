// lstm_backward.wgsl — backward of lstm_step_forward, one time step fused,
// reading W_hh and dG one float at a time (any H), and the gradient of the
// initial state. The step's math, state handling and the other bindings are
// in lstm_backward_step.wgsl, prepended by the registry;
// lstm_backward_vec4.wgsl is the same step kernel with vec4 reads.
//   lstm_step_backward         see lstm_backward_step.wgsl
//   lstm_grad_initial_state    grad_h0 = dG_first·W_hh, grad_c0 = dc_{t-1}
//                              of the row's first step
//
// Bindings (the rest in lstm_backward_step.wgsl):
//   2 w_hh      read        (G, H)
//   8 dgs_in    read        (B, G) dG of the step processed before, sorted rows
//   11 grad_h0  read_write  (L·D, B, H)   (initial-state kernel only)
//   12 grad_c0  read_write  (L·D, B, H)   (initial-state kernel only)
// Workgroup mapping: step kernel as lstm_backward_step.wgsl; initial-state
// kernel one invocation per unit, workgroup (y, z) = row z·65535 + y.

@group(0) @binding(2) var<storage, read> w_hh: array<f32>;
@group(0) @binding(8) var<storage, read> dgs_in: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad_h0: array<f32>;
@group(0) @binding(12) var<storage, read_write> grad_c0: array<f32>;

@compute @workgroup_size(WG)
fn lstm_step_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let g4 = 4u * h;
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // acc[r][u] = Σ_q dG_next[s0 + r, q] · W_hh[q, j0 + u]; rows past the
    // live ones and units past H repeat in-bounds values, stored nowhere.
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * g4;
        acc[r] = vec4<f32>(0.0);
    }
    let last = h - 1u;
    for (var q = 0u; q < g4; q++) {
        let w = vec4<f32>(w_hh[q * h + j0], w_hh[q * h + min(j0 + 1u, last)],
                          w_hh[q * h + min(j0 + 2u, last)], w_hh[q * h + min(j0 + 3u, last)]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] = fma(vec4<f32>(dgs_in[base[r] + q]), w, acc[r]);
        }
    }
    lstm_backward_finish(s0, live, j0, acc);
}

@compute @workgroup_size(WG)
fn lstm_grad_initial_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = wg.x * WG + lid;
    let s = wg.z * 65535u + wg.y;
    if (j >= p.hidden || s >= p.batch) { return; }
    let row = first_row(s);
    let g4 = 4u * p.hidden;
    var acc = 0.0;
    for (var q = 0u; q < g4; q++) {
        acc += dgates[row * g4 + q] * w_hh[q * p.hidden + j];
    }
    grad_h0[state_at(s, j)] = acc;
    grad_c0[state_at(s, j)] = dcarry[s * p.hidden + j];
}
