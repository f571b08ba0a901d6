//! Parameter initializers: PyTorch's defaults and the Keras-style ones
//! (glorot-uniform input weights, orthogonal recurrent weights, unit forget
//! bias), identity recurrent (IRNN), normal and uniform. All are computed on
//! the host from a seeded [`Rng`] so the same seed gives the same weights on
//! every adapter.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// How to fill a parameter of shape (rows, cols) (or (n) for biases).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in [low, high).
    Uniform(f32, f32),
    /// Normal with mean 0 and this standard deviation.
    Normal(f32),
    /// Glorot/Xavier uniform: U(±√(6 / (fan_in + fan_out))).
    GlorotUniform,
    /// (Semi-)orthogonal: the matrix's columns (rows if fewer) orthonormal,
    /// as `torch.nn.init.orthogonal_` / Keras `Orthogonal` (gain 1).
    Orthogonal,
    /// Identity in every square block (IRNN recurrent weights).
    Identity,
    /// All equal to this value.
    Constant(f32),
}

impl Init {
    /// Values for a tensor of `shape`; `fan_in`/`fan_out` as Keras counts
    /// them for the layer (used by `GlorotUniform`).
    pub fn values(self, shape: &[usize], fan_in: usize, fan_out: usize, rng: &mut Rng) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        Ok(match self {
            Init::Uniform(low, high) => rng.uniform_vec(n, low, high),
            Init::Normal(std) => (0..n).map(|_| std * normal(rng)).collect(),
            Init::GlorotUniform => {
                let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                rng.uniform_vec(n, -limit, limit)
            }
            Init::Orthogonal => {
                let &[rows, cols] = shape else {
                    return Err(Error::Config(format!("orthogonal init needs a matrix, got shape {shape:?}")));
                };
                orthogonal(rows, cols, rng)
            }
            Init::Identity => {
                let &[rows, cols] = shape else {
                    return Err(Error::Config(format!("identity init needs a matrix, got shape {shape:?}")));
                };
                (0..rows * cols).map(|e| if (e / cols) % cols == e % cols { 1.0 } else { 0.0 }).collect()
            }
            Init::Constant(v) => vec![v; n],
        })
    }
}

/// Standard normal by Box–Muller.
pub fn normal(rng: &mut Rng) -> f32 {
    let u1 = (rng.next_f32() as f64).max(1e-12);
    let u2 = rng.next_f32() as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A (rows, cols) matrix whose columns are orthonormal when rows ≥ cols
/// (rows orthonormal otherwise): QR of a Gaussian matrix by modified
/// Gram–Schmidt in f64, signs fixed so the distribution is uniform (Haar).
fn orthogonal(rows: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // q: `short` orthonormal vectors of length `tall`.
    let mut q: Vec<Vec<f64>> = (0..short).map(|_| (0..tall).map(|_| f64::from(normal(rng))).collect()).collect();
    for i in 0..short {
        for j in 0..i {
            let dot: f64 = (0..tall).map(|k| q[i][k] * q[j][k]).sum();
            for k in 0..tall {
                q[i][k] -= dot * q[j][k];
            }
        }
        let norm = q[i].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
        for v in q[i].iter_mut() {
            *v /= norm;
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Columns orthonormal (tall) or rows orthonormal (wide).
            out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
        }
    }
    out
}
