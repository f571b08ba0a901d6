// cells/gru.wgsl — the GRU cell's equations (torch.nn.GRU, gate order r, z,
// n; G = 3H), forward and backward, for the shared step kernels in
// recurrent_forward.wgsl and recurrent_backward.wgsl.
//   forward:  x_* = xW_ihᵀ + b_ih (in `gates`), h_* = h_{t-1}·W_hhᵀ + b_hh;
//             r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r⊙h_n),
//             h = (1−z)⊙n + z⊙h_{t-1}
//   backward: dh += dcarry (the direct path z⊙h_{t-1} of the step after);
//             with dn = dh⊙(1−z): input side dG = (dr⊙r(1−r), dz⊙z(1−z),
//             dn⊙(1−n²)); the hidden side is the same but its n part ⊙ r
//             (n's r⊙h_n term); dcarry = dh⊙z; grad_h0 adds the last dcarry
//
// Bindings (the step kernels' own are listed in recurrent_*.wgsl):
//   20 hn_lin   read_write  (N, H) h_n = W_hn h_{t-1} + b_hn per packed row (saved by forward)
//   21 dgh      read_write  (N, G) hidden-side dG per packed row (for dW_hh, b_hh)
//   22 dcarry   read_write  (B, H) dh⊙z, sorted rows; starts at zero
//   50–52       vec4 views of 20–22 (vec4 step kernels)
// Workgroup mapping: that of the step kernels (one call per row and unit;
// `cell_forward4` and `cell_backward4` per row and four units).
// Saves for backward: the activations r, z, n in `gates`, and hn_lin.

@group(0) @binding(20) var<storage, read_write> hn_lin: array<f32>;
@group(0) @binding(21) var<storage, read_write> dgh: array<f32>;
@group(0) @binding(22) var<storage, read_write> dcarry: array<f32>;
// Vec4 views (binding + 30, same access) for `cell_forward4` and `cell_backward4`.
@group(0) @binding(50) var<storage, read_write> hn_lin4: array<vec4<f32>>;
@group(0) @binding(51) var<storage, read_write> dgh4: array<vec4<f32>>;
@group(0) @binding(52) var<storage, read_write> dcarry4: array<vec4<f32>>;

// Sequence kernels, before the first step: nothing to set forward; the
// carried gradient starts at zero.
fn cell_sequence_start(s: u32, j: u32) {}

fn cell_sequence_backward_start(s: u32, j: u32) {
    dcarry[s * p.hidden + j] = 0.0;
}

fn cell_forward(s: u32, row: u32, j: u32, rec: vec4<f32>, h_own: f32, is_last: bool) -> f32 {
    let h = p.hidden;
    let g3 = 3u * h;
    let a = rec.xyz + vec3<f32>(b_hh[j], b_hh[h + j], b_hh[2u * h + j]);
    let r = sigmoid(gates[row * g3 + j] + a.x);
    let z = sigmoid(gates[row * g3 + h + j] + a.y);
    let n = tanh_stable(gates[row * g3 + 2u * h + j] + r * a.z);
    gates[row * g3 + j] = r;
    gates[row * g3 + h + j] = z;
    gates[row * g3 + 2u * h + j] = n;
    hn_lin[row * h + j] = a.z;
    return (1.0 - z) * n + z * h_own;
}

// `cell_forward` for units j0..j0+3 through the vec4 views (the vec4 step
// kernel; j0 % 4 == 0): column g of `rec` is gate g of the four units,
// and of `bias` their b_hh (`gate_bias4`).
fn cell_forward4(s: u32, row: u32, j0: u32, rec: mat4x4<f32>, bias: mat4x4<f32>, h_own: vec4<f32>,
                 is_last: bool) -> vec4<f32> {
    let h = p.hidden;
    let hq = h / 4u;
    let gq = (row * 3u * h + j0) / 4u;
    let a_r = rec[0] + bias[0];
    let a_z = rec[1] + bias[1];
    let a_n = rec[2] + bias[2];
    let r = sigmoid4(gates4[gq] + a_r);
    let z = sigmoid4(gates4[gq + hq] + a_z);
    let n = tanh_stable4(gates4[gq + 2u * hq] + r * a_n);
    gates4[gq] = r;
    gates4[gq + hq] = z;
    gates4[gq + 2u * hq] = n;
    hn_lin4[(row * h + j0) / 4u] = a_n;
    return (1.0 - z) * n + z * h_own;
}

fn cell_backward(s: u32, row: u32, j: u32, dh_in: f32) -> CellGrad {
    let h = p.hidden;
    let g3 = 3u * h;
    let dh = dh_in + dcarry[s * h + j];
    let r = gates[row * g3 + j];
    let z = gates[row * g3 + h + j];
    let n = gates[row * g3 + 2u * h + j];
    let dpre_n = dh * (1.0 - z) * (1.0 - n * n);
    let dpre_r = dpre_n * hn_lin[row * h + j] * r * (1.0 - r);
    let dpre_z = dh * (h_prev[row * h + j] - n) * z * (1.0 - z);
    dcarry[s * h + j] = dh * z;
    let hidden = vec4<f32>(dpre_r, dpre_z, dpre_n * r, 0.0);
    dgh[row * g3 + j] = hidden.x;
    dgh[row * g3 + h + j] = hidden.y;
    dgh[row * g3 + 2u * h + j] = hidden.z;
    return CellGrad(vec4<f32>(dpre_r, dpre_z, dpre_n, 0.0), hidden);
}

// `cell_backward` for units j0..j0+3 through the vec4 views (the vec4 step
// kernel; j0 % 4 == 0, no projection so h_prev has H features).
fn cell_backward4(s: u32, row: u32, j0: u32, dh_in: vec4<f32>) -> CellGrad4 {
    let h = p.hidden;
    let g3 = 3u * h;
    let dh = dh_in + dcarry4[(s * h + j0) / 4u];
    let r = gates4[(row * g3 + j0) / 4u];
    let z = gates4[(row * g3 + h + j0) / 4u];
    let n = gates4[(row * g3 + 2u * h + j0) / 4u];
    let dpre_n = dh * (1.0 - z) * (1.0 - n * n);
    let dpre_r = dpre_n * hn_lin4[(row * h + j0) / 4u] * r * (1.0 - r);
    let dpre_z = dh * (h_prev4[(row * h + j0) / 4u] - n) * z * (1.0 - z);
    dcarry4[(s * h + j0) / 4u] = dh * z;
    let hidden = mat4x4<f32>(dpre_r, dpre_z, dpre_n * r, vec4<f32>(0.0));
    dgh4[(row * g3 + j0) / 4u] = hidden[0];
    dgh4[(row * g3 + h + j0) / 4u] = hidden[1];
    dgh4[(row * g3 + 2u * h + j0) / 4u] = hidden[2];
    return CellGrad4(mat4x4<f32>(dpre_r, dpre_z, dpre_n, vec4<f32>(0.0)), hidden);
}

fn cell_hidden_grad(row: u32, q: u32, input_side: f32) -> f32 {
    return dgh[row * 3u * p.hidden + q];
}

fn cell_grad_initial_state(s: u32, j: u32, dh0: f32) -> f32 {
    return dh0 + dcarry[s * p.hidden + j];
}
