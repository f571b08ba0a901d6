// cells/lstm.wgsl — the LSTM cell's equations (torch.nn.LSTM, gate order
// i, f, g, o; G = 4H), forward and backward, for the shared step kernels in
// recurrent_forward.wgsl and recurrent_backward.wgsl (which bring the
// recurrent product, the loops and h's bookkeeping).
//   forward:  a = xW_ihᵀ + b_ih (in `gates`) + h_{t-1}·W_hhᵀ + b_hh;
//             i, f, o = σ(a), g = tanh(a); c = f⊙c_{t-1} + i⊙g; h = o⊙tanh(c)
//   backward: dc = dh⊙o⊙(1−tanh²c) + dc_next; dG = (dc⊙g⊙i(1−i),
//             dc⊙c_{t-1}⊙f(1−f), dc⊙i⊙(1−g²), dh⊙tanh(c)⊙o(1−o));
//             dc_{t-1} = dc⊙f, carried in `dcarry`; grad_c0 = the last dc_{t-1}
//
// The cell state is one dense (B, H) buffer in sorted row order (cell_state),
// starting as c0 and updated in place by the invocation owning (s, j).
//
// Bindings (the step kernels' own are listed in recurrent_*.wgsl):
//   20 cell_state  read_write  (B, H) c, sorted rows        forward
//   21 cell        read_write  (N, H) c per packed row      saved by forward
//   22 c_n         read_write  (L·D, B, H)                  forward
//   23 c0          read        (L·D, B, H)                  backward
//   24 dcarry      read_write  (B, H) dc, sorted rows; starts as grad_c_n
//   25 grad_c0     read_write  (L·D, B, H)                  initial-state kernel
//   26 grad_c_n    read        (L·D, B, H)                  sequence backward kernel
//   50–56          vec4 views of 20–26                      vec4 step kernels
// Workgroup mapping: that of the step kernels (one call per row and unit;
// `cell_forward4` and `cell_backward4` per row and four units).
// Saves for backward: the activations i, f, g, o in `gates`, and `cell`.

@group(0) @binding(20) var<storage, read_write> cell_state: array<f32>;
@group(0) @binding(21) var<storage, read_write> cell: array<f32>;
@group(0) @binding(22) var<storage, read_write> c_n: array<f32>;
@group(0) @binding(23) var<storage, read> c0: array<f32>;
@group(0) @binding(24) var<storage, read_write> dcarry: array<f32>;
@group(0) @binding(25) var<storage, read_write> grad_c0: array<f32>;
@group(0) @binding(26) var<storage, read> grad_c_n: array<f32>;
// Vec4 views (binding + 30, same access) for `cell_forward4` and `cell_backward4`.
@group(0) @binding(50) var<storage, read_write> cell_state4: array<vec4<f32>>;
@group(0) @binding(51) var<storage, read_write> cell4: array<vec4<f32>>;
@group(0) @binding(52) var<storage, read_write> c_n4: array<vec4<f32>>;
@group(0) @binding(53) var<storage, read> c0_4: array<vec4<f32>>;
@group(0) @binding(54) var<storage, read_write> dcarry4: array<vec4<f32>>;

// Sequence kernels, before the first step: c starts as c0 ...
fn cell_sequence_start(s: u32, j: u32) {
    cell_state[s * p.hidden + j] = c0[state_at(s, j)];
}

// ... and its gradient as grad_c_n.
fn cell_sequence_backward_start(s: u32, j: u32) {
    dcarry[s * p.hidden + j] = grad_c_n[state_at(s, j)];
}

fn cell_forward(s: u32, row: u32, j: u32, rec: vec4<f32>, h_own: f32, is_last: bool) -> f32 {
    let h = p.hidden;
    let g4 = 4u * h;
    let bias = vec4<f32>(b_hh[j], b_hh[h + j], b_hh[2u * h + j], b_hh[3u * h + j]);
    let a = rec + bias + vec4<f32>(gates[row * g4 + j], gates[row * g4 + h + j],
                                   gates[row * g4 + 2u * h + j], gates[row * g4 + 3u * h + j]);
    let i = sigmoid(a.x);
    let f = sigmoid(a.y);
    let g = tanh_stable(a.z);
    let o = sigmoid(a.w);
    let c = f * cell_state[s * h + j] + i * g;
    gates[row * g4 + j] = i;
    gates[row * g4 + h + j] = f;
    gates[row * g4 + 2u * h + j] = g;
    gates[row * g4 + 3u * h + j] = o;
    cell_state[s * h + j] = c;
    cell[row * h + j] = c;
    if (is_last) { c_n[state_at(s, j)] = c; }
    return o * tanh_stable(c);
}

// `cell_forward` for units j0..j0+3 through the vec4 views (the vec4 step
// kernel; j0 % 4 == 0): column g of `rec` is gate g of the four units,
// and of `bias` their b_hh (`gate_bias4`).
fn cell_forward4(s: u32, row: u32, j0: u32, rec: mat4x4<f32>, bias: mat4x4<f32>, h_own: vec4<f32>,
                 is_last: bool) -> vec4<f32> {
    let h = p.hidden;
    let hq = h / 4u;
    let gq = (row * 4u * h + j0) / 4u;
    let i = sigmoid4(rec[0] + bias[0] + gates4[gq]);
    let f = sigmoid4(rec[1] + bias[1] + gates4[gq + hq]);
    let g = tanh_stable4(rec[2] + bias[2] + gates4[gq + 2u * hq]);
    let o = sigmoid4(rec[3] + bias[3] + gates4[gq + 3u * hq]);
    let at = (s * h + j0) / 4u;
    let c = f * cell_state4[at] + i * g;
    gates4[gq] = i;
    gates4[gq + hq] = f;
    gates4[gq + 2u * hq] = g;
    gates4[gq + 3u * hq] = o;
    cell_state4[at] = c;
    cell4[(row * h + j0) / 4u] = c;
    if (is_last) { c_n4[state_at(s, j0) / 4u] = c; }
    return o * tanh_stable4(c);
}

fn cell_backward(s: u32, row: u32, j: u32, dh: f32) -> CellGrad {
    let h = p.hidden;
    let g4 = 4u * h;
    let prev = previous_row(s);
    var c_prev: f32;
    if (prev == NO_ROW) { c_prev = c0[state_at(s, j)]; } else { c_prev = cell[prev * h + j]; }
    let i = gates[row * g4 + j];
    let f = gates[row * g4 + h + j];
    let g = gates[row * g4 + 2u * h + j];
    let o = gates[row * g4 + 3u * h + j];
    let tc = tanh_stable(cell[row * h + j]);
    let dc = dh * o * (1.0 - tc * tc) + dcarry[s * h + j];
    dcarry[s * h + j] = dc * f;
    let d = vec4<f32>(dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                      dh * tc * o * (1.0 - o));
    return CellGrad(d, d);
}

// `cell_backward` for units j0..j0+3 through the vec4 views (the vec4 step
// kernel; j0 % 4 == 0): the same operations per unit.
fn cell_backward4(s: u32, row: u32, j0: u32, dh: vec4<f32>) -> CellGrad4 {
    let h = p.hidden;
    let g4 = 4u * h;
    let prev = previous_row(s);
    var c_prev: vec4<f32>;
    if (prev == NO_ROW) { c_prev = c0_4[state_at(s, j0) / 4u]; } else { c_prev = cell4[(prev * h + j0) / 4u]; }
    let i = gates4[(row * g4 + j0) / 4u];
    let f = gates4[(row * g4 + h + j0) / 4u];
    let g = gates4[(row * g4 + 2u * h + j0) / 4u];
    let o = gates4[(row * g4 + 3u * h + j0) / 4u];
    let tc = tanh_stable4(cell4[(row * h + j0) / 4u]);
    let dc = dh * o * (1.0 - tc * tc) + dcarry4[(s * h + j0) / 4u];
    dcarry4[(s * h + j0) / 4u] = dc * f;
    let d = mat4x4<f32>(dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                        dh * tc * o * (1.0 - o));
    return CellGrad4(d, d);
}

// The hidden-side gate gradients equal the input-side ones.
fn cell_hidden_grad(row: u32, q: u32, input_side: f32) -> f32 {
    return input_side;
}

fn cell_grad_initial_state(s: u32, j: u32, dh0: f32) -> f32 {
    grad_c0[state_at(s, j)] = dcarry[s * p.hidden + j];
    return dh0;
}
