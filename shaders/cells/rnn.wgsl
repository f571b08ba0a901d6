// cells/rnn.wgsl — the Elman RNN cell's equations (torch.nn.RNN; G = H),
// forward and backward, for the shared step kernels in
// recurrent_forward.wgsl and recurrent_backward.wgsl.
//   forward:  h = act(xW_ihᵀ + b_ih (in `gates`) + h_{t-1}·W_hhᵀ + b_hh),
//             act = tanh, or relu when the RELU override is set
//   backward: dG = dh⊙act'(h), from the saved h (tanh' = 1 − h²; relu' = [h > 0])
//
// Bindings: none of its own (the step kernels' are listed in recurrent_*.wgsl).
// Workgroup mapping: that of the step kernels (one call per row and unit;
// `cell_forward4` and `cell_backward4` per row and four units).
// Saves for backward: h in `gates`.

override RELU: bool = false;

// Sequence kernels, before the first step: the cell has no state of its own.
fn cell_sequence_start(s: u32, j: u32) {}

fn cell_sequence_backward_start(s: u32, j: u32) {}

fn cell_forward(s: u32, row: u32, j: u32, rec: vec4<f32>, h_own: f32, is_last: bool) -> f32 {
    let h = p.hidden;
    let a = rec.x + b_hh[j] + gates[row * h + j];
    var hv: f32;
    if (RELU) { hv = max(a, 0.0); } else { hv = tanh_stable(a); }
    gates[row * h + j] = hv;
    return hv;
}

// `cell_forward` for units j0..j0+3 through the vec4 views (the vec4 step
// kernel; j0 % 4 == 0): column 0 of `rec` holds the four units, and of
// `bias` their b_hh (`gate_bias4`).
fn cell_forward4(s: u32, row: u32, j0: u32, rec: mat4x4<f32>, bias: mat4x4<f32>, h_own: vec4<f32>,
                 is_last: bool) -> vec4<f32> {
    let at = (row * p.hidden + j0) / 4u;
    let a = rec[0] + bias[0] + gates4[at];
    var hv: vec4<f32>;
    if (RELU) { hv = max(a, vec4<f32>(0.0)); } else { hv = tanh_stable4(a); }
    gates4[at] = hv;
    return hv;
}

fn cell_backward(s: u32, row: u32, j: u32, dh: f32) -> CellGrad {
    let hv = gates[row * p.hidden + j];
    var deriv: f32;
    if (RELU) { deriv = select(0.0, 1.0, hv > 0.0); } else { deriv = 1.0 - hv * hv; }
    let d = vec4<f32>(dh * deriv, 0.0, 0.0, 0.0);
    return CellGrad(d, d);
}

// `cell_backward` for units j0..j0+3 through the vec4 views (the vec4 step
// kernel; j0 % 4 == 0).
fn cell_backward4(s: u32, row: u32, j0: u32, dh: vec4<f32>) -> CellGrad4 {
    let hv = gates4[(row * p.hidden + j0) / 4u];
    var deriv: vec4<f32>;
    if (RELU) { deriv = select(vec4<f32>(0.0), vec4<f32>(1.0), hv > vec4<f32>(0.0)); } else { deriv = 1.0 - hv * hv; }
    let d = mat4x4<f32>(dh * deriv, vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    return CellGrad4(d, d);
}

fn cell_hidden_grad(row: u32, q: u32, input_side: f32) -> f32 {
    return input_side;
}

fn cell_grad_initial_state(s: u32, j: u32, dh0: f32) -> f32 {
    return dh0;
}
