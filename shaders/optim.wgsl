// optim.wgsl — fused optimizer updates (PyTorch's formulas and defaults),
// global gradient-norm clipping and the non-finite guard, all without a
// readback:
//   grad_sumsq_partial   partials[offset + i] = Σ grad[i·CHUNK .. (i+1)·CHUNK]²,
//                        and guard.pending = 1 if any of them is NaN or ±inf
//   clip_coefficient     guard.norm = ‖all grads‖₂ = sqrt(Σ partials),
//                        guard.coef = min(1, max_norm / (norm + 1e-6)) or 1
//   check_finite         guard.pending = 1 if any grad[i] is NaN or ±inf
//   guard_step           guard.skip = pending (then pending = 0); a skipped
//                        step is counted, the first one's step number kept
//   guard_clear          guard.skip = 0, pending = 0 (the guard turned off)
//   accumulate_unless_skipped
//                        param[i] += lr·grad[i] (i < n) unless guard.skip;
//                        a skipped step adds lr to param[n] instead, so a
//                        running sum (of losses, say) leaves out exactly the
//                        steps the optimizer skipped and counts them
//   sgd_step             torch.optim.SGD (momentum, dampening, nesterov,
//                        weight_decay)
//   adam_step            torch.optim.Adam, or AdamW when DECOUPLED
//   rmsprop_step         torch.optim.RMSprop (alpha, eps, momentum, centered); EPS_IN_SQRT = Keras
//   sparse_adam_step     torch.optim.SparseAdam on the listed rows of a
//                        sparse embedding (V, E): element i is row
//                        rows[i / E], feature i % E
//   check_finite_rows    check_finite over the listed rows only
//   zero_rows            param[rows[r], ·] = 0 (a sparse embedding's
//                        gradient, bound at `param`: zero_grad of its rows)
// Every update reads its gradient as coef·grad when the step clips (p.use_clip),
// so clipping costs two small dispatches and no host round trip. Every update
// does nothing when guard.skip is set (PyTorch's GradScaler skipping a step
// with found_inf), and counts its step as p.step − guard.skipped, so the
// steps it skipped do not advance bias correction or first-step momentum.
//
// The update kernels and grad_sumsq_partial run over n elements: one
// parameter, or a flat run of them (src/optim.rs `Segment`: views at
// multiples of CHUNK elements, the zeros between them included), with the
// same per-element arithmetic either way. The row kernels run over
// n = rows·E elements of a (V, E) tensor; every row not listed has a zero
// gradient (src/nn/embedding.rs `SparseRows`).
//
// Bindings:
//   0 p         uniform     OptimParams
//   1 grad      read        (n) the gradient (check_finite: any tensor)
//   2 partials  read_write  (P) partial sums of squares
//   3 guard     read_write  StepState (8 words)
//   4 param     read_write  (n)
//   5 state1    read_write  (n) momentum_buffer / exp_avg / square_avg
//   6 state2    read_write  (n) exp_avg_sq / grad_avg (centered RMSprop)
//   7 state3    read_write  (n) momentum_buffer (RMSprop)
//   8 rows      read        (R) u32 row ids, ascending, distinct (row kernels)
// Workgroup mapping: one invocation per UPDATE_ELEMENTS elements for the
// dense updates (sgd_step, adam_step, rmsprop_step), per element for the
// rest (per chunk for grad_sumsq_partial; one invocation for
// clip_coefficient, guard_step and guard_clear),
// grids over x, y.
// Saves nothing.

override WG: u32 = 256u;
override DECOUPLED: bool = false;
override NESTEROV: bool = false;
override CENTERED: bool = false;
override EPS_IN_SQRT: bool = false;

// Mirrors `OptimParams` in src/optim.rs.
struct OptimParams {
    n: u32,
    step: u32,         // 1-based step count, skipped steps included
    offset: u32,       // grad_sumsq_partial: first slot; clip_coefficient: slot count
    use_clip: u32,     // 1: scale gradients by guard.coef
    lr: f32,
    beta1: f32,        // Adam β1 / SGD and RMSprop momentum
    beta2: f32,        // Adam β2 / RMSprop alpha
    eps: f32,
    weight_decay: f32,
    dampening: f32,
    max_norm: f32,     // ≤ 0: no clipping
    dim: u32,          // row kernels: E, the elements per row
}

// Mirrors `StepState` in src/optim.rs.
struct StepState {
    norm: f32,              // ‖g‖₂ from the last clip_coefficient
    coef: f32,              // its clip coefficient
    skip: u32,              // 1: this step's updates do nothing
    skipped: u32,           // steps skipped so far
    first_bad: u32,         // p.step of the first skipped step; 0 = none
    pending: atomic<u32>,   // a checked tensor held NaN/inf since guard_step
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> guard: StepState;
@group(0) @binding(4) var<storage, read_write> param: array<f32>;
@group(0) @binding(5) var<storage, read_write> state1: array<f32>;
@group(0) @binding(6) var<storage, read_write> state2: array<f32>;
@group(0) @binding(7) var<storage, read_write> state3: array<f32>;
@group(0) @binding(8) var<storage, read> rows: array<u32>;

fn invocation(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wg, nwg) * WG + lid;
}

@compute @workgroup_size(WG)
fn grad_sumsq_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = invocation(wg, nwg, lid);
    let start = i * CHUNK;
    if (start >= p.n) { return; }
    var acc = 0.0;
    var bad = false;
    for (var k = start; k < min(start + CHUNK, p.n); k++) {
        let g = grad[k];
        acc += g * g;
        bad = bad || (bitcast<u32>(g) & 0x7f800000u) == 0x7f800000u;
    }
    partials[p.offset + i] = acc;
    // The non-finite guard's check, done here while the gradient is read
    // anyway: a step that clips needs no separate check_finite pass.
    if (bad) { atomicStore(&guard.pending, 1u); }
}

@compute @workgroup_size(1)
fn clip_coefficient() {
    var acc = 0.0;
    for (var i = 0u; i < p.offset; i++) { acc += partials[i]; }
    let norm = sqrt(acc);
    guard.norm = norm;
    guard.coef = select(1.0, min(1.0, p.max_norm / (norm + 1e-6)), p.max_norm > 0.0);
}

@compute @workgroup_size(WG)
fn check_finite(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = invocation(wg, nwg, lid);
    if (i >= p.n) { return; }
    // All-ones exponent bits = inf or NaN. A bit test, because a compiler
    // may assume no NaNs and fold `x != x` away.
    if ((bitcast<u32>(grad[i]) & 0x7f800000u) == 0x7f800000u) { atomicStore(&guard.pending, 1u); }
}

@compute @workgroup_size(1)
fn guard_step() {
    let bad = atomicLoad(&guard.pending);
    atomicStore(&guard.pending, 0u);
    guard.skip = bad;
    if (bad != 0u) {
        guard.skipped += 1u;
        if (guard.first_bad == 0u) { guard.first_bad = p.step; }
    }
}

@compute @workgroup_size(1)
fn guard_clear() {
    atomicStore(&guard.pending, 0u);
    guard.skip = 0u;
}

@compute @workgroup_size(WG)
fn accumulate_unless_skipped(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let i = invocation(wg, nwg, lid);
    if (i > p.n) { return; }
    let skipped = guard.skip != 0u;
    if (i == p.n) {
        if (skipped) { param[p.n] += p.lr; }
    } else if (!skipped) {
        param[i] += p.lr * grad[i];
    }
}

// The gradient scale of this step: the clip coefficient when it clips.
fn grad_scale() -> f32 {
    return select(1.0, guard.coef, p.use_clip != 0u);
}

// The step number the update rules see: skipped steps do not count.
fn applied_step() -> u32 {
    return p.step - guard.skipped;
}

// The dense updates give each invocation UPDATE_ELEMENTS consecutive
// elements: what every element shares (the guard's words, the bias
// corrections) is read or computed once per invocation. On lavapipe every
// storage load is a loop over the SIMD lanes, so the guard's three words
// per element cost as much as a third of Adam's time.
const UPDATE_ELEMENTS: u32 = 4u;

@compute @workgroup_size(WG)
fn sgd_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let first = invocation(wg, nwg, lid) * UPDATE_ELEMENTS;
    if (first >= p.n || guard.skip != 0u) { return; }
    let scale = grad_scale();
    let first_step = applied_step() == 1u;
    for (var e = 0u; e < UPDATE_ELEMENTS; e++) {
        let i = first + e;
        if (i >= p.n) { break; }
        var g = scale * grad[i] + p.weight_decay * param[i];
        if (p.beta1 != 0.0) {
            var buf: f32;
            if (first_step) { buf = g; } else { buf = p.beta1 * state1[i] + (1.0 - p.dampening) * g; }
            state1[i] = buf;
            if (NESTEROV) { g = g + p.beta1 * buf; } else { g = buf; }
        }
        param[i] = param[i] - p.lr * g;
    }
}

@compute @workgroup_size(WG)
fn adam_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let first = invocation(wg, nwg, lid) * UPDATE_ELEMENTS;
    if (first >= p.n || guard.skip != 0u) { return; }
    let scale = grad_scale();
    let t = f32(applied_step());
    let bias1 = 1.0 - pow(p.beta1, t);
    let bias2 = 1.0 - pow(p.beta2, t);
    for (var e = 0u; e < UPDATE_ELEMENTS; e++) {
        let i = first + e;
        if (i >= p.n) { break; }
        var g = scale * grad[i];
        var w = param[i];
        if (DECOUPLED) { w = w * (1.0 - p.lr * p.weight_decay); } else { g = g + p.weight_decay * w; }
        let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
        let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
        state1[i] = m;
        state2[i] = v;
        // torch: denom = sqrt(v) / sqrt(bias2) + eps; p -= lr / bias1 · m / denom
        let denom = sqrt(v) / sqrt(bias2) + p.eps;
        param[i] = w - (p.lr / bias1) * m / denom;
    }
}

@compute @workgroup_size(WG)
fn rmsprop_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let first = invocation(wg, nwg, lid) * UPDATE_ELEMENTS;
    if (first >= p.n || guard.skip != 0u) { return; }
    let scale = grad_scale();
    for (var e = 0u; e < UPDATE_ELEMENTS; e++) {
        let i = first + e;
        if (i >= p.n) { break; }
        let g = scale * grad[i] + p.weight_decay * param[i];
        let sq = p.beta2 * state1[i] + (1.0 - p.beta2) * g * g;
        state1[i] = sq;
        var variance = sq;
        if (CENTERED) {
            let ga = p.beta2 * state2[i] + (1.0 - p.beta2) * g;
            state2[i] = ga;
            variance = sq - ga * ga;
        }
        // PyTorch adds eps after the square root, Keras/TensorFlow inside it.
        var avg = sqrt(variance) + p.eps;
        if (EPS_IN_SQRT) { avg = sqrt(variance + p.eps); }
        if (p.beta1 > 0.0) {
            let buf = p.beta1 * state3[i] + g / avg;
            state3[i] = buf;
            param[i] = param[i] - p.lr * buf;
        } else {
            param[i] = param[i] - p.lr * g / avg;
        }
    }
}

// Element i of the listed rows: its index in the (V, E) tensor.
fn row_element(i: u32) -> u32 {
    return rows[i / p.dim] * p.dim + i % p.dim;
}

@compute @workgroup_size(WG)
fn sparse_adam_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = invocation(wg, nwg, lid);
    if (i >= p.n || guard.skip != 0u) { return; }
    let k = row_element(i);
    let g = grad_scale() * grad[k];
    // torch.optim.SparseAdam: old += (1 − β)·(new − old), only where the
    // gradient has rows; ε outside the bias correction.
    let m_old = state1[k];
    let v_old = state2[k];
    let m = m_old + (g - m_old) * (1.0 - p.beta1);
    let v = v_old + (g * g - v_old) * (1.0 - p.beta2);
    state1[k] = m;
    state2[k] = v;
    let t = f32(applied_step());
    let bias1 = 1.0 - pow(p.beta1, t);
    let bias2 = 1.0 - pow(p.beta2, t);
    let step_size = p.lr * sqrt(bias2) / bias1;
    param[k] = param[k] - step_size * (m / (sqrt(v) + p.eps));
}

@compute @workgroup_size(WG)
fn check_finite_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = invocation(wg, nwg, lid);
    if (i >= p.n) { return; }
    if ((bitcast<u32>(grad[row_element(i)]) & 0x7f800000u) == 0x7f800000u) { atomicStore(&guard.pending, 1u); }
}

@compute @workgroup_size(WG)
fn zero_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = invocation(wg, nwg, lid);
    if (i >= p.n) { return; }
    param[row_element(i)] = 0.0;
}
