// recurrent.wgsl — the header of every recurrent kernel (prepended by the
// kernel registry after the prelude and the constants from Rust: ROWS,
// UNITS, GATES): the per-step params, the packed batch description, index
// helpers, and what a cell's backward returns. Then come the cell's
// equations (shaders/cells/<cell>.wgsl) and the shared step kernels
// (recurrent_forward.wgsl or recurrent_backward.wgsl).
//
// Packed layout (PyTorch's pack_padded_sequence): rows sorted by length,
// longest first; at step t the first batch_size(t) sorted rows are active
// and occupy packed rows step_offset(t) .. step_offset(t) + batch_size(t).
// Each direction processes its active rows only; the reverse direction
// starts each row at its own last step.
//
// Bindings shared by every recurrent kernel:
//   0 p     uniform  StepParams
//   1 info  read     u32: step_offset[T + 1] | batch_size[T] | length[B] (sorted) | original_row[B]

// Mirrors `StepParams` in src/rnn/gpu.rs.
struct StepParams {
    t: u32,            // time step this dispatch processes
    reverse: u32,      // 1 for the reverse direction
    hidden: u32,       // H
    batch: u32,        // B
    steps: u32,        // T (padded length)
    out_stride: u32,   // D·H: row stride of the layer output
    out_offset: u32,   // dir·H: this direction's columns in the output
    state_index: u32,  // layer·D + dir: slice of (L·D, B, ·) state tensors
    state: u32,        // S: features of h (P with a projection, else H)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: StepParams;
@group(0) @binding(1) var<storage, read> info: array<u32>;

const NO_ROW: u32 = 0xffffffffu;

// The time step being processed: p.t in the per-step kernels, which set it
// first; the loop's step in the sequence kernels. The row helpers below
// read it, so the cells' equations work unchanged in both.
var<private> cur_t: u32;

// A cell's gate gradients for one (row, unit), in gate order: `input` is
// the gradient of the input-side pre-activations (xW_ihᵀ + b_ih: for dW_ih,
// db_ih, dX), `hidden` that of the hidden-side ones (h·W_hhᵀ + b_hh: for
// dW_hh, db_hh and the recurrent gradient). They differ only for GRU.
struct CellGrad {
    input: vec4<f32>,
    hidden: vec4<f32>,
}

// The same for four consecutive units (the vec4 step kernels): column q
// holds gate q of the four units.
struct CellGrad4 {
    input: mat4x4<f32>,
    hidden: mat4x4<f32>,
}

fn step_offset(t: u32) -> u32 { return info[t]; }
fn batch_size(t: u32) -> u32 { return info[p.steps + 1u + t]; }
fn row_length(s: u32) -> u32 { return info[2u * p.steps + 1u + s]; }
fn original_row(s: u32) -> u32 { return info[2u * p.steps + 1u + p.batch + s]; }

// Packed row of sorted row s at the step processed just before cur_t in this
// direction (t−1 forward, t+1 reverse), or NO_ROW at the row's first step.
fn previous_row(s: u32) -> u32 {
    if (p.reverse == 0u) {
        if (cur_t == 0u) { return NO_ROW; }
        return step_offset(cur_t - 1u) + s;
    }
    if (cur_t + 1u >= row_length(s)) { return NO_ROW; }
    return step_offset(cur_t + 1u) + s;
}

// Packed row of sorted row s at the step processed just after cur_t, or
// NO_ROW at the row's last step.
fn next_row(s: u32) -> u32 {
    if (p.reverse == 0u) {
        if (cur_t + 1u >= row_length(s)) { return NO_ROW; }
        return step_offset(cur_t + 1u) + s;
    }
    if (cur_t == 0u) { return NO_ROW; }
    return step_offset(cur_t - 1u) + s;
}

// Packed row of sorted row s at its first step in this direction.
fn first_row(s: u32) -> u32 {
    if (p.reverse == 0u) { return step_offset(0u) + s; }
    return step_offset(row_length(s) - 1u) + s;
}

// Index of (this layer and direction, sorted row s, unit j) in a
// (L·D, B, H) cell-state tensor, which is in the caller's (unsorted) row
// order.
fn state_at(s: u32, j: u32) -> u32 {
    return (p.state_index * p.batch + original_row(s)) * p.hidden + j;
}

// The same for an (L·D, B, S) hidden-state tensor (h0, h_n, their
// gradients): S = P with a projection, else H.
fn hstate_at(s: u32, j: u32) -> u32 {
    return (p.state_index * p.batch + original_row(s)) * p.state + j;
}

// a[k] for a k known only at run time, by selects over constant indices
// (the uniform step kernels' epilogues, which hold 8 accumulators per
// row): an array indexed at run time would live in addressable memory, and
// on lavapipe every access to it would become a loop over the lanes.
fn pick_of_8(a: array<vec4<f32>, 8>, k: u32) -> vec4<f32> {
    var v = a[0];
    for (var i = 1u; i < 8u; i++) {
        v = select(v, a[i], k == i);
    }
    return v;
}

// W_hh as uniform windows, read by the sequence-uniform kernels
// (recurrent_*_subgroup.wgsl): window g holds the H rows of gate g
// (W_hh rows g·H..(g+1)·H, S/4 vec4s each) from its start, so H·S·4 bytes
// must fit W_WINDOW_VEC4S vec4s (H ≤ 128 when S = H). Windows past GATES
// are bound to window 0 and never read.
@group(0) @binding(44) var<uniform> w_window0: array<vec4<f32>, W_WINDOW_VEC4S>;
@group(0) @binding(45) var<uniform> w_window1: array<vec4<f32>, W_WINDOW_VEC4S>;
@group(0) @binding(46) var<uniform> w_window2: array<vec4<f32>, W_WINDOW_VEC4S>;
@group(0) @binding(47) var<uniform> w_window3: array<vec4<f32>, W_WINDOW_VEC4S>;

// Vec4 c of row `row` of gate `gate`'s window. Every caller passes a
// constant gate, so the branches fold away (lavapipe would otherwise run
// each of them, masked).
fn w_window_at(gate: u32, row: u32, c: u32) -> vec4<f32> {
    let at = row * (p.state / 4u) + c;
    if (gate == 0u) { return w_window0[at]; }
    if (gate == 1u) { return w_window1[at]; }
    if (gate == 2u) { return w_window2[at]; }
    return w_window3[at];
}
