//! The linear layer on the tape: `x·Wᵀ + b` forward (one GEMM with the bias
//! fused) and its backward (dX = g·W; dW += gᵀ·x with db += column sums of g
//! in the same pass),
//! all through the GEMM and reduction launchers, whose CPU references are
//! `crate::reference::{gemm, sum_cols}`.

use crate::autograd::{check_parameter, Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::nn::{Linear, Parameter};
use crate::ops::{gemm, gemm_and_sum_a, GemmOptions};
use crate::tensor::{DType, Tensor};

impl Tape {
    /// `x·Wᵀ + b`: x (M, in) → (M, out).
    pub fn linear(&mut self, layer: &Linear, x: Var) -> Result<Var> {
        check_parameter("linear", "weight", &layer.weight, 2)?;
        if let Some(b) = &layer.bias {
            check_parameter("linear", "bias", b, 1)?;
            if b.shape() != [layer.out_features()] {
                return Err(Error::Shape {
                    op: "linear",
                    message: format!("bias {:?} does not fit weight {:?}", b.shape(), layer.weight.shape()),
                });
            }
        }
        let xv = self.value(x)?;
        let (m, inf) = match *xv.shape() {
            [m, i] => (m, i),
            ref s => {
                return Err(Error::Shape { op: "linear", message: format!("input must be 2-D (M, in), got {s:?}") })
            }
        };
        if inf != layer.in_features() {
            return Err(Error::Shape {
                op: "linear",
                message: format!("input has {inf} features, the layer expects {}", layer.in_features()),
            });
        }
        let out = Tensor::uninit(self.device(), &[m, layer.out_features()], DType::F32)?;
        let _family = crate::profile::scope(crate::profile::Family::HeadLoss);
        let opts = GemmOptions { trans_b: true, ..GemmOptions::default() };
        gemm(xv, &layer.weight.value, layer.bias.as_ref().map(|b| &b.value), &out, opts)?;
        Ok(self.record(out, LinearBackward { x, weight: layer.weight.clone(), bias: layer.bias.clone() }))
    }
}

/// Backward of [`Tape::linear`].
#[derive(Debug)]
struct LinearBackward {
    x: Var,
    weight: Parameter,
    bias: Option<Parameter>,
}

impl Backward for LinearBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        let _family = crate::profile::scope(crate::profile::Family::HeadLoss);
        let xv = ctx.value(self.x);
        let dx = Tensor::uninit(ctx.device(), xv.shape(), DType::F32)?;
        gemm(g, &self.weight.value, None, &dx, GemmOptions::default())?;
        let acc = GemmOptions { trans_a: true, beta: 1.0, ..GemmOptions::default() };
        match &self.bias {
            // The bias gradient summed in the weight gradient's pass.
            Some(b) => gemm_and_sum_a(g, xv, &self.weight.grad, acc, &b.grad)?,
            None => gemm(g, xv, None, &self.weight.grad, acc)?,
        }
        ctx.accumulate(self.x, dx)
    }
}
