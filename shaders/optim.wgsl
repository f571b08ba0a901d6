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
//   *_step_vec4          the same three over vec4 bindings (n % 4 == 0)
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
//   9–13        grad, param, state1–3 as vec4 (the *_step_vec4 entries)
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
    // A branch, not `select`: the coefficient is loaded only when used.
    if (p.use_clip != 0u) { return guard.coef; }
    return 1.0;
}

// The step number the update rules see: skipped steps do not count.
fn applied_step() -> u32 {
    return p.step - guard.skipped;
}

// The dense updates give each invocation UPDATE_ELEMENTS = 4 consecutive
// elements: what every element shares (the guard's words, the bias
// corrections) is read or computed once per invocation. On lavapipe every
// storage load is a loop over the SIMD lanes, so the guard's three words
// per element cost as much as a third of Adam's time, and a vec4 load
// costs little more than a scalar one. Each rule is one function over a
// group of four elements (`Dense`), called by two entries:
//   <rule>_step        reads and writes the group one element at a time
//                      (any n; lanes past n are zeros and stored nowhere)
//   <rule>_step_vec4   as vec4s (n % 4 == 0, bindings 9–13), VEC4_UPDATE_GROUPS
//                      groups per invocation: 1.8× faster on lavapipe (Adam
//                      over the reference model, 15.7 → 8.5 ms)
// Same function, same arithmetic per element: the bits do not depend on
// the entry. UPDATE_ELEMENTS (4: a vec4) and VEC4_UPDATE_GROUPS (groups per
// invocation of the vec4 entries; the guard's words are then read once per
// eight elements) come from Rust, which sizes the grid by them.
const_assert UPDATE_ELEMENTS == 4u;

@group(0) @binding(9) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> state14: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> state24: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> state34: array<vec4<f32>>;

// A group of four elements: the scaled gradient, the value and the state
// slots a rule uses (the others stay zero and are never stored).
struct Dense {
    g: vec4<f32>,
    w: vec4<f32>,
    s1: vec4<f32>,
    s2: vec4<f32>,
    s3: vec4<f32>,
}

// Which state slots the rules read and write.
// SGD's momentum buffer is read after the first applied step only.
fn sgd_uses_s1(first_step: bool) -> bool { return p.beta1 != 0.0 && !first_step; }
fn rmsprop_uses_s3() -> bool { return p.beta1 > 0.0; }

fn sgd_rule(x: Dense, first_step: bool) -> Dense {
    var y = x;
    var g = x.g + p.weight_decay * x.w;
    if (p.beta1 != 0.0) {
        var buf: vec4<f32>;
        if (first_step) { buf = g; } else { buf = p.beta1 * x.s1 + (1.0 - p.dampening) * g; }
        y.s1 = buf;
        if (NESTEROV) { g = g + p.beta1 * buf; } else { g = buf; }
    }
    y.w = x.w - p.lr * g;
    return y;
}

fn adam_rule(x: Dense, bias1: f32, bias2: f32) -> Dense {
    var y = x;
    var g = x.g;
    var w = x.w;
    if (DECOUPLED) { w = w * (1.0 - p.lr * p.weight_decay); } else { g = g + p.weight_decay * w; }
    y.s1 = p.beta1 * x.s1 + (1.0 - p.beta1) * g;
    y.s2 = p.beta2 * x.s2 + (1.0 - p.beta2) * g * g;
    // torch: denom = sqrt(v) / sqrt(bias2) + eps; p -= lr / bias1 · m / denom
    let denom = sqrt(y.s2) / sqrt(bias2) + p.eps;
    y.w = w - (p.lr / bias1) * y.s1 / denom;
    return y;
}

fn rmsprop_rule(x: Dense) -> Dense {
    var y = x;
    let g = x.g + p.weight_decay * x.w;
    y.s1 = p.beta2 * x.s1 + (1.0 - p.beta2) * g * g;
    var variance = y.s1;
    if (CENTERED) {
        y.s2 = p.beta2 * x.s2 + (1.0 - p.beta2) * g;
        variance = y.s1 - y.s2 * y.s2;
    }
    // PyTorch adds eps after the square root, Keras/TensorFlow inside it.
    var avg = sqrt(variance) + p.eps;
    if (EPS_IN_SQRT) { avg = sqrt(variance + p.eps); }
    if (rmsprop_uses_s3()) {
        y.s3 = p.beta1 * x.s3 + g / avg;
        y.w = x.w - p.lr * y.s3;
    } else {
        y.w = x.w - p.lr * g / avg;
    }
    return y;
}

// The Adam bias corrections 1 − β^t of this step (β1, β2).
fn adam_bias() -> vec2<f32> {
    let t = f32(applied_step());
    return vec2<f32>(1.0 - pow(p.beta1, t), 1.0 - pow(p.beta2, t));
}

// Scalar entries: group `first` (its lanes past n read as zero), with the
// state slots asked for.
fn dense_load(first: u32, s1: bool, s2: bool, s3: bool) -> Dense {
    var x: Dense;
    let scale = grad_scale();
    for (var e = 0u; e < UPDATE_ELEMENTS; e++) {
        let i = first + e;
        if (i >= p.n) { break; }
        x.g[e] = scale * grad[i];
        x.w[e] = param[i];
        if (s1) { x.s1[e] = state1[i]; }
        if (s2) { x.s2[e] = state2[i]; }
        if (s3) { x.s3[e] = state3[i]; }
    }
    return x;
}

fn dense_store(first: u32, y: Dense, s1: bool, s2: bool, s3: bool) {
    for (var e = 0u; e < UPDATE_ELEMENTS; e++) {
        let i = first + e;
        if (i >= p.n) { break; }
        param[i] = y.w[e];
        if (s1) { state1[i] = y.s1[e]; }
        if (s2) { state2[i] = y.s2[e]; }
        if (s3) { state3[i] = y.s3[e]; }
    }
}

// Vec4 entries: group q as vec4s.
fn dense_load4(q: u32, s1: bool, s2: bool, s3: bool) -> Dense {
    var x: Dense;
    x.g = grad_scale() * grad4[q];
    x.w = param4[q];
    if (s1) { x.s1 = state14[q]; }
    if (s2) { x.s2 = state24[q]; }
    if (s3) { x.s3 = state34[q]; }
    return x;
}

fn dense_store4(q: u32, y: Dense, s1: bool, s2: bool, s3: bool) {
    param4[q] = y.w;
    if (s1) { state14[q] = y.s1; }
    if (s2) { state24[q] = y.s2; }
    if (s3) { state34[q] = y.s3; }
}

// First group of this invocation (of `groups`), or none (past n, or the
// step is skipped).
fn dense_group(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, groups: u32) -> u32 {
    let q = invocation(wg, nwg, lid) * groups;
    if (q * UPDATE_ELEMENTS >= p.n || guard.skip != 0u) { return NO_GROUP; }
    return q;
}

// Whether group q holds elements (the vec4 entries' later groups).
fn group_in_range(q: u32) -> bool {
    return q * UPDATE_ELEMENTS < p.n;
}
const NO_GROUP: u32 = 0xffffffffu;

@compute @workgroup_size(WG)
fn sgd_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let q = dense_group(wg, nwg, lid, 1u);
    if (q == NO_GROUP) { return; }
    let first = q * UPDATE_ELEMENTS;
    let m = p.beta1 != 0.0;
    let first_step = applied_step() == 1u;
    dense_store(first, sgd_rule(dense_load(first, sgd_uses_s1(first_step), false, false), first_step), m, false, false);
}

@compute @workgroup_size(WG)
fn sgd_step_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let q0 = dense_group(wg, nwg, lid, VEC4_UPDATE_GROUPS);
    if (q0 == NO_GROUP) { return; }
    let m = p.beta1 != 0.0;
    let first_step = applied_step() == 1u;
    let s1 = sgd_uses_s1(first_step);
    // A constant trip count (unrolled) and a break: 15% faster than a loop bounded by n.
    for (var e = 0u; e < VEC4_UPDATE_GROUPS; e++) {
        let q = q0 + e;
        if (!group_in_range(q)) { break; }
        dense_store4(q, sgd_rule(dense_load4(q, s1, false, false), first_step), m, false, false);
    }
}

@compute @workgroup_size(WG)
fn adam_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let q = dense_group(wg, nwg, lid, 1u);
    if (q == NO_GROUP) { return; }
    let first = q * UPDATE_ELEMENTS;
    let bias = adam_bias();
    dense_store(first, adam_rule(dense_load(first, true, true, false), bias.x, bias.y), true, true, false);
}

@compute @workgroup_size(WG)
fn adam_step_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let q0 = dense_group(wg, nwg, lid, VEC4_UPDATE_GROUPS);
    if (q0 == NO_GROUP) { return; }
    let bias = adam_bias();
    // A constant trip count (unrolled) and a break: 15% faster than a loop bounded by n.
    for (var e = 0u; e < VEC4_UPDATE_GROUPS; e++) {
        let q = q0 + e;
        if (!group_in_range(q)) { break; }
        dense_store4(q, adam_rule(dense_load4(q, true, true, false), bias.x, bias.y), true, true, false);
    }
}

@compute @workgroup_size(WG)
fn rmsprop_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let q = dense_group(wg, nwg, lid, 1u);
    if (q == NO_GROUP) { return; }
    let first = q * UPDATE_ELEMENTS;
    let s3 = rmsprop_uses_s3();
    dense_store(first, rmsprop_rule(dense_load(first, true, CENTERED, s3)), true, CENTERED, s3);
}

@compute @workgroup_size(WG)
fn rmsprop_step_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let q0 = dense_group(wg, nwg, lid, VEC4_UPDATE_GROUPS);
    if (q0 == NO_GROUP) { return; }
    let s3 = rmsprop_uses_s3();
    // A constant trip count (unrolled) and a break: 15% faster than a loop bounded by n.
    for (var e = 0u; e < VEC4_UPDATE_GROUPS; e++) {
        let q = q0 + e;
        if (!group_in_range(q)) { break; }
        dense_store4(q, rmsprop_rule(dense_load4(q, true, CENTERED, s3)), true, CENTERED, s3);
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
