//! The recurrent stack on the tape: forward through [`Rnn::forward_packed`]
//! and the backward rule that runs [`Rnn::backward_packed_into`], adding
//! into the layer's parameter gradients; with AWD-LSTM's weight drop, the
//! masked recurrent weights' gradient is routed back through the mask.

use crate::autograd::{Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::nn::Recurrent;
use crate::ops::elementwise_axpy;
use crate::rnn::{LayerParams, PackedBatch, PackedForward, Rnn};
use crate::tensor::{DType, Tensor};

/// Outputs of [`Tape::recurrent`].
#[derive(Debug, Clone, Copy)]
pub struct RecurrentVars {
    /// (N, D·H) packed output of the last layer.
    pub output: Var,
    /// (L·D, B, H) final hidden states.
    pub h_n: Var,
    /// (L·D, B, H) final cell states (LSTM).
    pub c_n: Option<Var>,
}

impl Tape {
    /// A recurrent stack over a packed input (N, I); `h0`/`c0` default to
    /// zeros. Inter-layer dropout applies on a training tape.
    pub fn recurrent(
        &mut self,
        module: &Recurrent,
        x: Var,
        batch: &PackedBatch,
        h0: Option<Var>,
        c0: Option<Var>,
    ) -> Result<RecurrentVars> {
        self.recurrent_weight_drop(module, x, batch, h0, c0, 0.0)
    }

    /// [`Tape::recurrent`] with AWD-LSTM's weight drop: on a training tape
    /// every `weight_hh` is replaced by a DropConnect copy (each weight
    /// zeroed with probability `p`, the rest scaled by 1/(1 − p); one mask
    /// per call, i.e. per batch, hashed from the tape seed), and its
    /// gradient flows back through the same mask. The identity on an
    /// evaluation tape or with `p = 0`.
    pub fn recurrent_weight_drop(
        &mut self,
        module: &Recurrent,
        x: Var,
        batch: &PackedBatch,
        h0: Option<Var>,
        c0: Option<Var>,
        p: f32,
    ) -> Result<RecurrentVars> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Config(format!("weight drop probability must be in [0, 1), got {p}")));
        }
        let params = module.layer.params();
        // Names are formatted only to report a bad parameter (this runs every step).
        let consistent = params.iter().flat_map(LayerParams::iter).all(|p| {
            p.value.shape() == p.grad.shape() && p.value.dtype() == DType::F32 && p.grad.dtype() == DType::F32
        });
        if !consistent {
            for (name, p) in module.layer.named_parameters() {
                crate::autograd::check_parameter("recurrent", &name, &p, p.shape().len())?;
            }
        }
        let (mut layer, mut weight_drop) = (module.layer.clone(), None);
        if self.is_training() && p > 0.0 {
            let seeds: Vec<u64> = params.iter().map(|_| self.next_seed()).collect();
            let masked = params
                .iter()
                .zip(&seeds)
                .map(|(w, &seed)| crate::ops::dropout_dense(&w.weight_hh().value, p, seed))
                .collect::<Result<Vec<_>>>()?;
            layer = layer.with_weight_hh(masked)?;
            let real = params.iter().map(|w| w.weight_hh().grad.clone()).collect();
            weight_drop = Some(WeightDrop { p, seeds, grads: real });
        }
        let seed = self.is_training().then(|| self.next_seed());
        let fwd = layer.forward_packed(
            self.value(x)?,
            batch,
            h0.map(|v| self.value(v)).transpose()?,
            c0.map(|v| self.value(v)).transpose()?,
            seed,
        )?;
        let (output, h_n_t, c_n_t) = (fwd.output.clone(), fwd.h_n.clone(), fwd.c_n.clone());
        // The state nodes come after the recurrent node so that, walking in
        // reverse, their gradients are complete when it runs.
        let h_n = self.next_var(1);
        let c_n = c_n_t.as_ref().map(|_| self.next_var(2));
        let rule = RecurrentBackward { layer, x, h0, c0, h_n, c_n, saved: Box::new(fwd), weight_drop };
        let output = self.record(output, rule);
        let h_n_var = self.push(h_n_t, None);
        let c_n_var = c_n_t.map(|t| self.push(t, None));
        debug_assert_eq!((h_n_var, c_n_var), (h_n, c_n));
        Ok(RecurrentVars { output, h_n: h_n_var, c_n: c_n_var })
    }
}

/// What backward needs to route the gradient of DropConnect-masked
/// recurrent weights to the real ones.
#[derive(Debug)]
struct WeightDrop {
    p: f32,
    /// Mask seed per (layer, dir).
    seeds: Vec<u64>,
    /// The real `weight_hh` gradients per (layer, dir).
    grads: Vec<Tensor>,
}

/// Backward of [`Tape::recurrent`]: consumes the gradients of the output,
/// h_n and c_n.
#[derive(Debug)]
struct RecurrentBackward {
    /// The layer that ran (with weight drop, masked `weight_hh` copies that
    /// have their own gradients).
    layer: Rnn,
    x: Var,
    h0: Option<Var>,
    c0: Option<Var>,
    h_n: Var,
    c_n: Option<Var>,
    saved: Box<PackedForward>,
    weight_drop: Option<WeightDrop>,
}

impl Backward for RecurrentBackward {
    fn consumes(&self) -> Vec<Var> {
        std::iter::once(self.h_n).chain(self.c_n).collect()
    }

    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        let g_h_n = ctx.grad(self.h_n).cloned();
        let g_c_n = self.c_n.and_then(|v| ctx.grad(v).cloned());
        // The h0 gradient only where h0 is a variable (zeros from `None`
        // are not): with the step kernels it is a dispatch of its own.
        let dh0 = self.h0.map(|_| self.layer.initial_state_grad(&self.saved)).transpose()?;
        let (dx, dc0) =
            self.layer.backward_packed_accumulate(&self.saved, g, g_h_n.as_ref(), g_c_n.as_ref(), dh0.as_ref())?;
        if let Some(WeightDrop { p, seeds, grads: real }) = &self.weight_drop {
            // d weight_hh = mask ⊙ d(masked copy) / (1 − p).
            for ((masked, &seed), real) in self.layer.params().iter().zip(seeds).zip(real) {
                let d = crate::ops::dropout_dense(&masked.weight_hh().grad, *p, seed)?;
                elementwise_axpy(1.0, &d, real)?;
            }
        }
        ctx.accumulate(self.x, dx)?;
        if let (Some(v), Some(d)) = (self.h0, dh0) {
            ctx.accumulate(v, d)?;
        }
        if let (Some(v), Some(d)) = (self.c0, dc0) {
            ctx.accumulate(v, d)?;
        }
        Ok(())
    }
}
