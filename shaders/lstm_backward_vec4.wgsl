// lstm_backward_vec4.wgsl — lstm_step_backward for H % 4 == 0, reading W_hh
// and dG as vec4: per 4 gate rows q, 4 + ROWS vec4 loads feed 16·ROWS
// multiply-adds (lstm_backward.wgsl needs 4× the loads). The step's math,
// state handling and the other bindings are in lstm_backward_step.wgsl.
//   lstm_step_backward_vec4
//
// Bindings (the rest in lstm_backward_step.wgsl):
//   2 w_hh    read  (G, H) as vec4
//   8 dgs_in  read  (B, G) dG of the step processed before, sorted rows, as vec4
// Workgroup mapping: as lstm_backward_step.wgsl.

@group(0) @binding(2) var<storage, read> w_hh: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> dgs_in: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn lstm_step_backward_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = p.hidden;
    let j0 = (wg.x * WG + lid) * UNITS;
    if (j0 >= h) { return; }
    let live = batch_size(p.t);
    let s0 = wg.y * ROWS;
    // G = 4H, so a row of dG is H whole vec4s; H % 4 == 0, so units
    // j0..j0+3 of a W_hh row are one vec4.
    let h4 = h / 4u;
    let j4 = j0 / 4u;
    var acc: array<vec4<f32>, ROWS>;
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        base[r] = min(s0 + r, live - 1u) * h;
        acc[r] = vec4<f32>(0.0);
    }
    for (var qc = 0u; qc < h; qc++) {
        let q = 4u * qc;
        let w = mat4x4<f32>(w_hh[q * h4 + j4], w_hh[(q + 1u) * h4 + j4], w_hh[(q + 2u) * h4 + j4], w_hh[(q + 3u) * h4 + j4]);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += w * dgs_in[base[r] + qc];
        }
    }
    lstm_backward_finish(s0, live, j0, acc);
}
