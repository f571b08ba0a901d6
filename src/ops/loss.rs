//! Losses on the tape (shaders/loss.wgsl): mean softmax cross-entropy (with
//! `ignore_index` and label smoothing) and BCE with logits, forward and
//! backward, with their metrics (right predictions, perplexity) computed on
//! the GPU. One name per kernel: the WGSL entry points
//! `cross_entropy_forward`, `cross_entropy_backward`, `bce_forward`,
//! `bce_backward` and `loss_reduce`; the CPU references are
//! [`reference::cross_entropy`] and [`reference::bce_with_logits`].

use crate::autograd::{Backward, BackwardContext, Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::ops::dim_u32;
use crate::tensor::{DType, Tensor};

use Access::{Read as R, ReadWrite as W};

const CROSS_ENTROPY_FORWARD: Kernel =
    Kernel { shader: Shader::Loss, entry: "cross_entropy_forward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const CROSS_ENTROPY_BACKWARD: Kernel = Kernel {
    shader: Shader::Loss,
    entry: "cross_entropy_backward",
    storage: &[(1, R), (2, R), (3, W), (4, W), (5, R)],
    cell: &[],
};
const BCE_FORWARD: Kernel =
    Kernel { shader: Shader::Loss, entry: "bce_forward", storage: &[(1, R), (2, R), (3, W)], cell: &[] };
const BCE_BACKWARD: Kernel =
    Kernel { shader: Shader::Loss, entry: "bce_backward", storage: &[(1, R), (2, R), (4, W), (5, R)], cell: &[] };
const LOSS_REDUCE: Kernel =
    Kernel { shader: Shader::Loss, entry: "loss_reduce", storage: &[(3, W), (6, W), (7, W)], cell: &[] };

/// Invocations per workgroup of the loss kernels.
const WG: u32 = 64;

fn groups(t: &Tensor, invocations: usize, wg: u32) -> Result<[u32; 3]> {
    let n = dim_u32("launch", "invocations", invocations)?;
    Ok(grid(n.div_ceil(wg), t.device().rt.limits.max_compute_workgroups_per_dimension))
}

/// Outputs of a loss: the scalar to call `backward` on and its metrics,
/// computed on the GPU and read only when asked.
#[derive(Debug, Clone)]
pub struct LossVars {
    /// (1) mean loss over the rows not ignored.
    pub loss: Var,
    /// (1) what backward starts from: `loss`, plus any penalties added with
    /// [`LossVars::with_penalty`] (which the reported loss leaves out, as
    /// AWD-LSTM reports the plain cross-entropy).
    pub objective: Var,
    /// (2): count of rows whose prediction is right (argmax = target, or the
    /// sign agrees for BCE), and the perplexity exp(mean loss).
    pub metrics: Tensor,
    /// Rows counted (not ignored).
    pub count: usize,
}

impl LossVars {
    /// Adds a (1) penalty (AR, TAR) to the objective, not to the loss.
    pub fn with_penalty(mut self, tape: &mut Tape, penalty: Var) -> Result<Self> {
        self.objective = tape.add(self.objective, penalty)?;
        Ok(self)
    }

    /// Reads the mean loss from `tape` (submits pending work and waits).
    /// A NaN or infinite loss is an error: training diverged, and continuing
    /// would only spread NaN through every weight.
    pub fn value(&self, tape: &Tape) -> Result<f32> {
        let v = tape.value(self.loss)?.to_vec()?[0];
        if !v.is_finite() {
            return Err(Error::NonFinite(format!(
                "the loss is {v}: training diverged (lower the learning rate, clip gradients, or check the inputs)"
            )));
        }
        Ok(v)
    }

    /// Fraction of counted rows predicted right (reads the GPU).
    pub fn accuracy(&self) -> Result<f32> {
        Ok(self.metrics.to_vec()?[0] / self.count.max(1) as f32)
    }

    /// Right predictions, as a count (reads the GPU).
    pub fn correct(&self) -> Result<f32> {
        Ok(self.metrics.to_vec()?[0])
    }

    /// exp(mean loss): the perplexity of a language model (reads the GPU).
    pub fn perplexity(&self) -> Result<f32> {
        Ok(self.metrics.to_vec()?[1])
    }
}

impl Tape {
    /// Mean softmax cross-entropy of logits (M, C) against class ids (M),
    /// as `torch.nn.functional.cross_entropy(logits, targets, ignore_index,
    /// label_smoothing)`. Rows whose target is `ignore_index` count for
    /// nothing; any other target ≥ C is an error.
    pub fn cross_entropy(
        &mut self,
        logits: Var,
        targets: &[u32],
        ignore_index: Option<u32>,
        label_smoothing: f32,
    ) -> Result<LossVars> {
        const OP: &str = "cross_entropy";
        let lv = self.value(logits)?;
        let &[m, c] = lv.shape() else {
            return Err(Error::Shape { op: OP, message: format!("logits must be (M, C), got {:?}", lv.shape()) });
        };
        if targets.len() != m {
            return Err(Error::Shape { op: OP, message: format!("{} targets for {m} rows of logits", targets.len()) });
        }
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(Error::Config(format!("label_smoothing must be in [0, 1], got {label_smoothing}")));
        }
        if let Some((row, &y)) = targets.iter().enumerate().find(|(_, &y)| y as usize >= c && Some(y) != ignore_index) {
            return Err(Error::OutOfRange {
                op: OP,
                message: format!("target {y} of row {row} is not a class of {c}"),
            });
        }
        let count = targets.iter().filter(|&&y| Some(y) != ignore_index).count();
        let t = Tensor::from_u32(self.device(), targets, &[m])?;
        let params = LossParams {
            rows: dim_u32(OP, "rows", m)?,
            classes: dim_u32(OP, "classes", c)?,
            ignore_index: ignore_index.unwrap_or(u32::MAX),
            smoothing: label_smoothing,
            scale: if count > 0 { 1.0 / count as f32 } else { 0.0 },
            _pad: [0; 3],
        };
        self.loss(logits, t, params, false, count)
    }

    /// Mean binary cross-entropy with logits, logits (M) or (M, 1) against
    /// labels in [0, 1], as `torch.nn.functional.binary_cross_entropy_with_logits`.
    pub fn bce_with_logits(&mut self, logits: Var, targets: &[f32]) -> Result<LossVars> {
        const OP: &str = "bce_with_logits";
        let m = self.value(logits)?.numel();
        if !matches!(self.value(logits)?.shape(), [_] | [_, 1]) || targets.len() != m {
            return Err(Error::Shape {
                op: OP,
                message: format!(
                    "logits {:?} and {} targets: need (M) or (M, 1) and M labels",
                    self.value(logits)?.shape(),
                    targets.len()
                ),
            });
        }
        if let Some((row, y)) = targets.iter().enumerate().find(|(_, y)| !(0.0..=1.0).contains(*y)) {
            return Err(Error::OutOfRange { op: OP, message: format!("label {y} of row {row} is outside [0, 1]") });
        }
        let bits: Vec<u32> = targets.iter().map(|y| y.to_bits()).collect();
        let t = Tensor::from_u32(self.device(), &bits, &[m])?;
        let params = LossParams {
            rows: dim_u32(OP, "rows", m)?,
            classes: 1,
            ignore_index: u32::MAX,
            smoothing: 0.0,
            scale: 1.0 / m as f32,
            _pad: [0; 3],
        };
        self.loss(logits, t, params, true, m)
    }

    fn loss(&mut self, logits: Var, targets: Tensor, params: LossParams, bce: bool, count: usize) -> Result<LossVars> {
        let LossForward { stats, loss, metrics } = loss_forward(self.value(logits)?, &targets, params, bce)?;
        let loss = self.record(loss, LossBackward { logits, targets, stats, params, bce });
        Ok(LossVars { loss, objective: loss, metrics, count })
    }
}

/// Backward of the losses: the gradient of the mean loss for the logits.
#[derive(Debug)]
struct LossBackward {
    logits: Var,
    targets: Tensor,
    stats: Tensor,
    params: LossParams,
    bce: bool,
}

impl Backward for LossBackward {
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()> {
        let d = loss_backward(ctx.value(self.logits), &self.targets, &self.stats, g, self.params, self.bce)?;
        ctx.accumulate(self.logits, d)
    }
}

crate::kernels::shader_params! {
    /// Mirrors `LossParams` in shaders/loss.wgsl.
    #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct LossParams mirrors "LossParams" in Loss {
        pub(crate) rows: u32,
        pub(crate) classes: u32,
        pub(crate) ignore_index: u32,
        pub(crate) smoothing: f32,
        pub(crate) scale: f32,
        pub(crate) _pad: [u32; 3],
    }
}

/// Per-row statistics (M, 3), scalar loss (1) and metrics (2): correct
/// count, perplexity.
struct LossForward {
    pub stats: Tensor,
    pub loss: Tensor,
    pub metrics: Tensor,
}

/// Cross-entropy (`bce = false`: logits (M, C), u32 targets) or BCE with
/// logits (`bce = true`: logits (M), f32 targets as bits), reduced by mean.
fn loss_forward(logits: &Tensor, targets: &Tensor, p: LossParams, bce: bool) -> Result<LossForward> {
    let dev = logits.device();
    let stats = Tensor::uninit(dev, &[p.rows as usize, 3], DType::F32)?;
    let loss = Tensor::uninit(dev, &[1], DType::F32)?;
    let metrics = Tensor::uninit(dev, &[2], DType::F32)?;
    let rt = &dev.rt;
    let kernel = if bce { BCE_FORWARD } else { CROSS_ENTROPY_FORWARD };
    let c = [("WG", f64::from(WG))];
    rt.launch(
        kernel,
        &c,
        &p,
        &[logits.buffer(), targets.buffer(), stats.buffer()],
        groups(logits, p.rows as usize, WG)?,
    )?;
    rt.launch(LOSS_REDUCE, &c, &p, &[stats.buffer(), loss.buffer(), metrics.buffer()], [1, 1, 1])?;
    Ok(LossForward { stats, loss, metrics })
}

/// Gradient of the mean loss with respect to the logits.
fn loss_backward(
    logits: &Tensor,
    targets: &Tensor,
    stats: &Tensor,
    grad_loss: &Tensor,
    p: LossParams,
    bce: bool,
) -> Result<Tensor> {
    let grad = Tensor::uninit(logits.device(), logits.shape(), DType::F32)?;
    let rt = &logits.device().rt;
    let c = [("WG", f64::from(WG))];
    if bce {
        let bufs = [logits.buffer(), targets.buffer(), grad.buffer(), grad_loss.buffer()];
        rt.launch(BCE_BACKWARD, &c, &p, &bufs, groups(logits, p.rows as usize, WG)?)?;
    } else {
        let bufs = [logits.buffer(), targets.buffer(), stats.buffer(), grad.buffer(), grad_loss.buffer()];
        rt.launch(CROSS_ENTROPY_BACKWARD, &c, &p, &bufs, groups(logits, logits.numel(), WG)?)?;
    }
    Ok(grad)
}

/// CPU references.
pub mod reference {
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
            logits.iter().zip(targets).map(|(&x, &y)| x.max(0.0) - x * y + (1.0 + (-x.abs()).exp()).ln()).sum::<f64>()
                / m;
        let grad = logits.iter().zip(targets).map(|(&x, &y)| (1.0 / (1.0 + (-x).exp()) - y) / m).collect();
        (loss, grad)
    }
}
