// prelude.wgsl — prepended to every wgrnn shader by the kernel registry
// (src/kernels.rs). Holds helpers more than one shader needs.

// Linear workgroup id of a dispatch split over x and y because one dimension
// is capped at 65535 workgroups (see `kernels::grid` in Rust).
fn linear_workgroup(wg: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg.y * num_wg.x + wg.x;
}

// Logistic sigmoid that never overflows: exp is only taken of -|x|.
fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// tanh that is exact to f32 at large |x| on every backend (some drivers'
// builtin tanh returns NaN for |x| > ~88 because exp(2x) overflows).
fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// The same two, four at a time (the vec4 step kernels' epilogues): the same
// operations per component, so the same bits as the scalar ones.
fn sigmoid4(x: vec4<f32>) -> vec4<f32> {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
}

fn tanh_stable4(x: vec4<f32>) -> vec4<f32> {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}
