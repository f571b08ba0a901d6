// lstm_step.wgsl — shared by lstm.wgsl (scalar loads) and lstm_vec4.wgsl
// (vec4 loads, H % 4 == 0), prepended by the kernel registry: the bindings
// both forward kernels share and the step's epilogue. The two files differ
// only in how they read W_hh (binding 2) and h_{t-1} (binding 4) for the
// recurrent product.
//
// Forward step: a = xW_ihᵀ + b_ih (precomputed for all steps by one GEMM)
// + b_hh + h_{t-1}·W_hhᵀ; i, f, o = σ(a), g = tanh(a); c = f⊙c_{t-1} + i⊙g;
// h = o⊙tanh(c). G = 4H, gate order i, f, g, o (PyTorch). N = packed rows.
//
// State: h_{t-1} comes from a dense (B, H) buffer in sorted row order
// (state_in) and h_t goes to another (state_out); the two swap every step
// and both start as h0, so a row that has not started yet (reverse
// direction) still reads h0. The cell state is one dense (B, H) buffer,
// read and written in place by the invocation that owns (s, j).
//
// Bindings (after recurrent.wgsl's 0 p, 1 info):
//   2 w_hh        read        (G, H)               declared by each kernel file
//   3 b_hh        read        (G)
//   4 state_in    read        (B, H) h_{t-1}       declared by each kernel file
//   5 cell_state  read_write  (B, H) c, sorted rows
//   6 gates       read_write  (N, G): in xW_ihᵀ + b_ih, out the activations i, f, g, o
//   7 out         read_write  (N, D·H): h of both directions (next layer's input)
//   8 cell        read_write  (N, H): c per packed row (for backward)
//   9 h_prev      read_write  (N, H): h_{t-1} per packed row (for dW_hh)
//   10 h_n        read_write  (L·D, B, H)
//   11 c_n        read_write  (L·D, B, H)
//   12 state_out  read_write  (B, H) h_t, sorted rows
// Workgroup mapping: WG invocations along the H units; workgroup y is a
// tile of ROWS active rows. Each invocation computes unit j for all rows of
// its tile, so every W_hh value it loads serves ROWS rows.
// Saves for backward: gates (activations), cell, h_prev; out holds h.

override WG: u32 = 64u;

@group(0) @binding(3) var<storage, read> b_hh: array<f32>;
@group(0) @binding(5) var<storage, read_write> cell_state: array<f32>;
@group(0) @binding(6) var<storage, read_write> gates: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> cell: array<f32>;
@group(0) @binding(9) var<storage, read_write> h_prev: array<f32>;
@group(0) @binding(10) var<storage, read_write> h_n: array<f32>;
@group(0) @binding(11) var<storage, read_write> c_n: array<f32>;
@group(0) @binding(12) var<storage, read_write> state_out: array<f32>;

// Finishes unit j for the live rows of the tile starting at s0, given the
// recurrent products (i, f, g, o) and h_{t-1}[s, j] of each row.
fn lstm_forward_finish(s0: u32, live: u32, j: u32, acc: array<vec4<f32>, ROWS>, h_own: array<f32, ROWS>) {
    let h = p.hidden;
    let bias = vec4<f32>(b_hh[j], b_hh[h + j], b_hh[2u * h + j], b_hh[3u * h + j]);
    let g4 = 4u * h;
    for (var r = 0u; r < ROWS; r++) {
        let s = s0 + r;
        if (s >= live) { break; }
        let row = step_offset(p.t) + s;
        let a = acc[r] + bias + vec4<f32>(gates[row * g4 + j], gates[row * g4 + h + j],
                                           gates[row * g4 + 2u * h + j], gates[row * g4 + 3u * h + j]);
        let i = sigmoid(a.x);
        let f = sigmoid(a.y);
        let g = tanh_stable(a.z);
        let o = sigmoid(a.w);
        let c = f * cell_state[s * h + j] + i * g;
        let hv = o * tanh_stable(c);
        gates[row * g4 + j] = i;
        gates[row * g4 + h + j] = f;
        gates[row * g4 + 2u * h + j] = g;
        gates[row * g4 + 3u * h + j] = o;
        cell_state[s * h + j] = c;
        cell[row * h + j] = c;
        h_prev[row * h + j] = h_own[r];
        out[row * p.out_stride + p.out_offset + j] = hv;
        state_out[s * h + j] = hv;
        if (next_row(s) == NO_ROW) {
            h_n[state_at(s, j)] = hv;
            c_n[state_at(s, j)] = c;
        }
    }
}
