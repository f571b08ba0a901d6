//! CPU references (f64) of the tape's ops and the optimizers. The tape ops'
//! references live with their ops (`crate::ops::{loss, pooling,
//! embedding}::reference`) and are re-exported here: `cross_entropy`,
//! `bce_with_logits`, `pool_mean`/`pool_max`/`pool_last`,
//! `embedding_backward`; the optimizers' are below: `clip_coefficient`,
//! `optimizer_step`, `sparse_adam_step`.

pub use crate::ops::embedding::reference::embedding_backward;
pub use crate::ops::loss::reference::{bce_with_logits, cross_entropy};
pub use crate::ops::pooling::reference::{pool_last, pool_max, pool_mean};

use crate::optim::Algorithm;

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

/// One `torch.optim.SparseAdam` step on the rows `rows` (distinct) of a
/// (V, `dim`) parameter, PyTorch's formulas: `state` is (exp_avg,
/// exp_avg_sq), `step` 1-based, the gradient scaled by `clip` first; rows
/// not listed, and their state, are left alone.
#[allow(clippy::too_many_arguments)] // mirrors the kernel's inputs one to one
pub fn sparse_adam_step(
    (beta1, beta2, eps): (f32, f32, f32),
    lr: f64,
    step: u32,
    clip: f64,
    rows: &[u32],
    dim: usize,
    param: &mut [f64],
    grad: &[f64],
    state: &mut [Vec<f64>],
) {
    let (b1, b2, eps) = (f64::from(beta1), f64::from(beta2), f64::from(eps));
    let step_size = lr * (1.0 - b2.powi(step as i32)).sqrt() / (1.0 - b1.powi(step as i32));
    for &row in rows {
        for i in row as usize * dim..(row as usize + 1) * dim {
            let g = clip * grad[i];
            state[0][i] += (1.0 - b1) * (g - state[0][i]);
            state[1][i] += (1.0 - b2) * (g * g - state[1][i]);
            param[i] -= step_size * state[0][i] / (state[1][i].sqrt() + eps);
        }
    }
}
