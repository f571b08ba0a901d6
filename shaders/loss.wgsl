// loss.wgsl — losses and their metrics, per row, then reduced to scalars
// on the GPU (no readback until the caller asks):
//   cross_entropy_forward   stats[m] = (logsumexp, loss, correct) of softmax
//                           cross-entropy with label smoothing ε:
//                           loss = −(1−ε)·log p_y − ε/C·Σ_c log p_c; rows whose
//                           target is ignore_index get (lse, 0, 0)
//   cross_entropy_backward  grad[m, c] = g·scale·(p_c − (1−ε)·[c = y] − ε/C)
//   bce_forward             stats[m] = (0, loss, correct) of binary
//                           cross-entropy with logits, label y ∈ [0, 1]
//   bce_backward            grad[m] = g·scale·(σ(x) − y)
//   loss_reduce             loss_out = scale·Σ_m stats[m].loss,
//                           metrics = (Σ_m stats[m].correct, exp(loss_out))
//                           — correct count and perplexity — in a fixed order
// where g = grad_loss[0] (the gradient of the scalar loss) and scale =
// 1 / (number of rows not ignored), as PyTorch's reduction='mean'.
//
// Bindings:
//   0 p            uniform     LossParams
//   1 logits       read        (M, C) or (M) for BCE
//   2 targets      read        (M) u32 class ids, or f32 labels for BCE (as bits)
//   3 stats        read_write  (M, 3)
//   4 grad_logits  read_write  (M, C) or (M)
//   5 grad_loss    read        (1)
//   6 loss_out     read_write  (1)
//   7 metrics      read_write  (2) correct count, perplexity
// Workgroup mapping: forward kernels one invocation per row; backward one
// per element; loss_reduce a single invocation. All grids over x and y.
// Saves for backward: stats (the log-sum-exp per row).

override WG: u32 = 64u;

// Mirrors `LossParams` in src/autograd/launch.rs.
struct LossParams {
    rows: u32,
    classes: u32,
    ignore_index: u32,
    smoothing: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_logits: array<f32>;
@group(0) @binding(5) var<storage, read> grad_loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> metrics: array<f32>;

fn invocation(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wg, nwg) * WG + lid;
}

@compute @workgroup_size(WG)
fn cross_entropy_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let m = invocation(wg, nwg, lid);
    if (m >= p.rows) { return; }
    let base = m * p.classes;
    var mx = logits[base];
    var arg = 0u;
    for (var c = 1u; c < p.classes; c++) {
        let v = logits[base + c];
        if (v > mx) { mx = v; arg = c; }
    }
    var sum = 0.0;
    var total = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let v = logits[base + c];
        sum += exp(v - mx);
        total += v;
    }
    let lse = mx + log(sum);
    let y = targets[m];
    stats[3u * m] = lse;
    if (y == p.ignore_index || y >= p.classes) {
        stats[3u * m + 1u] = 0.0;
        stats[3u * m + 2u] = 0.0;
        return;
    }
    let nll = lse - logits[base + y];
    let uniform_nll = lse - total / f32(p.classes);
    stats[3u * m + 1u] = (1.0 - p.smoothing) * nll + p.smoothing * uniform_nll;
    stats[3u * m + 2u] = select(0.0, 1.0, arg == y);
}

@compute @workgroup_size(WG)
fn cross_entropy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let e = invocation(wg, nwg, lid);
    if (e >= p.rows * p.classes) { return; }
    let m = e / p.classes;
    let c = e - m * p.classes;
    let y = targets[m];
    if (y == p.ignore_index || y >= p.classes) {
        grad_logits[e] = 0.0;
        return;
    }
    let prob = exp(logits[e] - stats[3u * m]);
    let q = select(0.0, 1.0 - p.smoothing, c == y) + p.smoothing / f32(p.classes);
    grad_logits[e] = grad_loss[0] * p.scale * (prob - q);
}

@compute @workgroup_size(WG)
fn bce_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let m = invocation(wg, nwg, lid);
    if (m >= p.rows) { return; }
    let x = logits[m];
    let y = bitcast<f32>(targets[m]);
    // max(x, 0) − x·y + log(1 + exp(−|x|)): stable for any x.
    stats[3u * m] = 0.0;
    stats[3u * m + 1u] = max(x, 0.0) - x * y + log(1.0 + exp(-abs(x)));
    stats[3u * m + 2u] = select(0.0, 1.0, (x > 0.0) == (y > 0.5));
}

@compute @workgroup_size(WG)
fn bce_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let m = invocation(wg, nwg, lid);
    if (m >= p.rows) { return; }
    grad_logits[m] = grad_loss[0] * p.scale * (sigmoid(logits[m]) - bitcast<f32>(targets[m]));
}

@compute @workgroup_size(1)
fn loss_reduce() {
    var loss = 0.0;
    var correct = 0.0;
    for (var m = 0u; m < p.rows; m++) {
        loss += stats[3u * m + 1u];
        correct += stats[3u * m + 2u];
    }
    loss_out[0] = loss * p.scale;
    metrics[0] = correct;
    metrics[1] = exp(loss * p.scale);
}
