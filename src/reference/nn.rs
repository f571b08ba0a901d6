//! CPU references (f64) of the tape's ops and the optimizers, with the same
//! names as the GPU launchers: `cross_entropy`, `bce_with_logits`,
//! `pool_mean`/`pool_max`/`pool_last`, `embedding_backward`, `sgd_step`,
//! `adam_step`, `rmsprop_step`, `clip_coefficient`.

use crate::optim::Algorithm;

/// Mean softmax cross-entropy of logits (M, C) with label smoothing; rows
/// with `ignore_index` skipped. Returns (loss, d loss / d logits).
pub fn cross_entropy(
    logits: &[f64],
    classes: usize,
    targets: &[u32],
    ignore_index: Option<u32>,
    smoothing: f64,
) -> (f64, Vec<f64>) {
    let m = targets.len();
    let count = targets.iter().filter(|&&y| Some(y) != ignore_index).count().max(1) as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0; m * classes];
    for (r, &y) in targets.iter().enumerate() {
        if Some(y) == ignore_index {
            continue;
        }
        let row = &logits[r * classes..(r + 1) * classes];
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
        let mean_logit = row.iter().sum::<f64>() / classes as f64;
        loss += (1.0 - smoothing) * (lse - row[y as usize]) + smoothing * (lse - mean_logit);
        for c in 0..classes {
            let q = if c == y as usize { 1.0 - smoothing } else { 0.0 } + smoothing / classes as f64;
            grad[r * classes + c] = ((row[c] - lse).exp() - q) / count;
        }
    }
    (loss / count, grad)
}

/// Mean binary cross-entropy with logits. Returns (loss, gradient).
pub fn bce_with_logits(logits: &[f64], targets: &[f64]) -> (f64, Vec<f64>) {
    let m = logits.len() as f64;
    let loss =
        logits.iter().zip(targets).map(|(&x, &y)| x.max(0.0) - x * y + (1.0 + (-x.abs()).exp()).ln()).sum::<f64>() / m;
    let grad = logits.iter().zip(targets).map(|(&x, &y)| (1.0 / (1.0 + (-x).exp()) - y) / m).collect();
    (loss, grad)
}

/// Mean over each row's first `lengths[b]` steps of a padded (B, T, F) tensor.
pub fn pool_mean(x: &[f64], lengths: &[usize], max_len: usize, features: usize) -> Vec<f64> {
    let mut out = vec![0.0; lengths.len() * features];
    for (b, &len) in lengths.iter().enumerate() {
        for f in 0..features {
            out[b * features + f] = (0..len).map(|t| x[(b * max_len + t) * features + f]).sum::<f64>() / len as f64;
        }
    }
    out
}

/// Max over each row's valid steps of a padded (B, T, F) tensor; returns
/// the values and the winning step (first maximum).
pub fn pool_max(x: &[f64], lengths: &[usize], max_len: usize, features: usize) -> (Vec<f64>, Vec<usize>) {
    let mut out = vec![0.0; lengths.len() * features];
    let mut arg = vec![0; lengths.len() * features];
    for (b, &len) in lengths.iter().enumerate() {
        for f in 0..features {
            let mut best = (x[b * max_len * features + f], 0);
            for t in 1..len {
                let v = x[(b * max_len + t) * features + f];
                if v > best.0 {
                    best = (v, t);
                }
            }
            out[b * features + f] = best.0;
            arg[b * features + f] = best.1;
        }
    }
    (out, arg)
}

/// Last layer's states, directions concatenated: (L·D, B, H) → (B, D·H).
pub fn pool_last(h_n: &[f64], states: usize, batch: usize, hidden: usize, directions: usize) -> Vec<f64> {
    let mut out = vec![0.0; batch * directions * hidden];
    for b in 0..batch {
        for d in 0..directions {
            for j in 0..hidden {
                out[b * directions * hidden + d * hidden + j] =
                    h_n[((states - directions + d) * batch + b) * hidden + j];
            }
        }
    }
    out
}

/// `grad_weight[ids[i]] += grad_out[i]`, padding rows skipped.
pub fn embedding_backward(
    grad_out: &[f64],
    ids: &[u32],
    dim: usize,
    padding_idx: Option<u32>,
    grad_weight: &mut [f64],
) {
    for (i, &id) in ids.iter().enumerate() {
        if Some(id) == padding_idx {
            continue;
        }
        for e in 0..dim {
            grad_weight[id as usize * dim + e] += grad_out[i * dim + e];
        }
    }
}

/// `min(1, max_norm / (‖g‖ + 1e-6))` over all gradients, and the norm.
pub fn clip_coefficient(grads: &[&[f64]], max_norm: f64) -> (f64, f64) {
    let norm = grads.iter().flat_map(|g| g.iter()).map(|v| v * v).sum::<f64>().sqrt();
    (norm, (max_norm / (norm + 1e-6)).min(1.0))
}

/// One optimizer step on one parameter, PyTorch's formulas; `state` holds
/// the algorithm's state tensors (in [`Algorithm::state_names`] order) and
/// `step` is 1-based. The gradient is scaled by `clip` first.
pub fn optimizer_step(
    alg: &Algorithm,
    lr: f64,
    step: u32,
    clip: f64,
    param: &mut [f64],
    grad: &[f64],
    state: &mut [Vec<f64>],
) {
    for i in 0..param.len() {
        let g0 = clip * grad[i];
        match *alg {
            Algorithm::Sgd { momentum, dampening, nesterov, weight_decay } => {
                let (m, damp, wd) = (f64::from(momentum), f64::from(dampening), f64::from(weight_decay));
                let mut g = g0 + wd * param[i];
                if m != 0.0 {
                    let buf = if step == 1 { g } else { m * state[0][i] + (1.0 - damp) * g };
                    state[0][i] = buf;
                    g = if nesterov { g + m * buf } else { buf };
                }
                param[i] -= lr * g;
            }
            Algorithm::Adam { beta1, beta2, eps, weight_decay, decoupled } => {
                let (b1, b2, eps, wd) = (f64::from(beta1), f64::from(beta2), f64::from(eps), f64::from(weight_decay));
                let mut g = g0;
                if decoupled {
                    param[i] *= 1.0 - lr * wd;
                } else {
                    g += wd * param[i];
                }
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * g;
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * g * g;
                let bias1 = 1.0 - b1.powi(step as i32);
                let bias2 = 1.0 - b2.powi(step as i32);
                let denom = state[1][i].sqrt() / bias2.sqrt() + eps;
                param[i] -= lr / bias1 * state[0][i] / denom;
            }
            Algorithm::RmsProp { alpha, eps, momentum, centered, weight_decay, eps_in_sqrt } => {
                let (a, eps, m, wd) = (f64::from(alpha), f64::from(eps), f64::from(momentum), f64::from(weight_decay));
                let g = g0 + wd * param[i];
                state[0][i] = a * state[0][i] + (1.0 - a) * g * g;
                let var = if centered {
                    state[1][i] = a * state[1][i] + (1.0 - a) * g;
                    state[0][i] - state[1][i] * state[1][i]
                } else {
                    state[0][i]
                };
                let avg = if eps_in_sqrt { (var + eps).sqrt() } else { var.sqrt() + eps };
                if m > 0.0 {
                    state[2][i] = m * state[2][i] + g / avg;
                    param[i] -= lr * state[2][i];
                } else {
                    param[i] -= lr * g / avg;
                }
            }
        }
    }
}
