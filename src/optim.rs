//! Optimizers with PyTorch's update formulas and defaults, fused GPU
//! kernels (shaders/optim.wgsl); global gradient-norm clipping computed and
//! applied on the GPU; learning-rate schedules.
//!
//! The kernels run over *segments*: runs of consecutive parameters whose
//! values and gradients are adjacent views of flat buffers
//! ([`crate::nn::flatten_parameters`]; the ready-made models are flat), or
//! else single parameters. A flat model is one segment, so `zero_grad`, the
//! clip pass, the non-finite check and the update are one dispatch each for
//! the whole model (PyTorch's foreach/fused optimizers); a hand-built
//! parameter list takes one dispatch per parameter. Both compute bitwise the
//! same numbers: the same per-element formulas, and the clip's partial sums
//! per 256-element chunk in the same order (views start at multiples of
//! 256 elements, and the zeros between them add nothing). The optimizer
//! state of a segment is flat too, with a view per parameter for
//! checkpoints.
//!
//! The padding between views holds value 0, gradient 0 and state 0, and an
//! update of a zero gradient keeps it so under every rule, weight decay
//! included, as it keeps a `padding_idx` embedding row; only degenerate
//! settings (ε = 0 with Adam or RMSprop, an infinite learning rate or
//! decay) turn it into NaN, as they do such a row in PyTorch. Nothing reads
//! the padding: kernels bind each parameter's own range.
//!
//! A sparse embedding ([`crate::nn::EmbeddingConfig::with_sparse`],
//! [`Optimizer::with_sparse_embedding`]) is a segment of its own whose
//! kernels visit only the rows its backward logged, with
//! `torch.optim.SparseAdam`'s rule: PyTorch's `sparse=True` embedding
//! trained by `SparseAdam`, the rest by `Adam`. Opt-in; each step then
//! uploads the logged row ids (a few KiB).
//!
//! A step records its dispatches into the device's open command buffer like
//! everything else: nothing is read back.
//!
//! The non-finite guard ([`Optimizer::with_non_finite_guard`]) is PyTorch's
//! `GradScaler` skip without the scaling: before each update a kernel looks
//! for NaN or ±inf in every gradient (and in whatever
//! [`Optimizer::check_finite`] was given, such as the loss); if it finds
//! one, that step's updates do nothing and the step is counted, all on the
//! GPU. [`Optimizer::non_finite_steps`] reads the count when the caller
//! wants it.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernels::{grid, Access, Kernel, Shader};
use crate::nn::{Embedding, Parameter, SparseRows};
use crate::ops::{dim_u32, elementwise_fill};
use crate::tensor::{DType, Tensor};

use Access::{Read as R, ReadWrite as W};

const GRAD_SUMSQ_PARTIAL: Kernel =
    Kernel { shader: Shader::Optim, entry: "grad_sumsq_partial", storage: &[(1, R), (2, W), (3, W)], cell: &[] };
const CLIP_COEFFICIENT: Kernel =
    Kernel { shader: Shader::Optim, entry: "clip_coefficient", storage: &[(2, W), (3, W)], cell: &[] };
const CHECK_FINITE: Kernel =
    Kernel { shader: Shader::Optim, entry: "check_finite", storage: &[(1, R), (3, W)], cell: &[] };
const GUARD_STEP: Kernel = Kernel { shader: Shader::Optim, entry: "guard_step", storage: &[(3, W)], cell: &[] };
const GUARD_CLEAR: Kernel = Kernel { shader: Shader::Optim, entry: "guard_clear", storage: &[(3, W)], cell: &[] };
const ACCUMULATE_UNLESS_SKIPPED: Kernel =
    Kernel { shader: Shader::Optim, entry: "accumulate_unless_skipped", storage: &[(1, R), (3, W), (4, W)], cell: &[] };
const STEP_BINDINGS: &[(u32, Access)] = &[(1, R), (3, W), (4, W), (5, W), (6, W), (7, W)];
const SGD_STEP: Kernel = Kernel { shader: Shader::Optim, entry: "sgd_step", storage: STEP_BINDINGS, cell: &[] };
const ADAM_STEP: Kernel = Kernel { shader: Shader::Optim, entry: "adam_step", storage: STEP_BINDINGS, cell: &[] };
const RMSPROP_STEP: Kernel = Kernel { shader: Shader::Optim, entry: "rmsprop_step", storage: STEP_BINDINGS, cell: &[] };
/// The vec4 entries of the dense updates (n % 4 == 0): grad, guard, param and
/// state slots at 9, 3, 10–13.
const STEP_BINDINGS_VEC4: &[(u32, Access)] = &[(9, R), (3, W), (10, W), (11, W), (12, W), (13, W)];
const SGD_STEP_VEC4: Kernel =
    Kernel { shader: Shader::Optim, entry: "sgd_step_vec4", storage: STEP_BINDINGS_VEC4, cell: &[] };
const ADAM_STEP_VEC4: Kernel =
    Kernel { shader: Shader::Optim, entry: "adam_step_vec4", storage: STEP_BINDINGS_VEC4, cell: &[] };
const RMSPROP_STEP_VEC4: Kernel =
    Kernel { shader: Shader::Optim, entry: "rmsprop_step_vec4", storage: STEP_BINDINGS_VEC4, cell: &[] };
/// The row kernels of a sparse embedding bind its row ids at 8.
const SPARSE_ADAM_STEP: Kernel = Kernel {
    shader: Shader::Optim,
    entry: "sparse_adam_step",
    storage: &[(1, R), (3, W), (4, W), (5, W), (6, W), (8, R)],
    cell: &[],
};
const CHECK_FINITE_ROWS: Kernel =
    Kernel { shader: Shader::Optim, entry: "check_finite_rows", storage: &[(1, R), (3, W), (8, R)], cell: &[] };
const ZERO_ROWS: Kernel = Kernel { shader: Shader::Optim, entry: "zero_rows", storage: &[(4, W), (8, R)], cell: &[] };

/// Elements summed by one invocation of `grad_sumsq_partial` (its `CHUNK`).
pub(crate) const CHUNK: usize = 256;
/// Invocations per workgroup of the update kernels.
const WG: u32 = 256;
/// Elements per group of the dense update kernels (their `UPDATE_ELEMENTS`):
/// one group per invocation of the scalar entries ...
pub(crate) const UPDATE_ELEMENTS: u32 = 4;
/// ... and `VEC4_UPDATE_GROUPS` per invocation of the vec4 entries.
pub(crate) const VEC4_UPDATE_GROUPS: u32 = 2;

crate::kernels::shader_params! {
    /// Mirrors `OptimParams` in shaders/optim.wgsl.
    #[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct OptimParams mirrors "OptimParams" in Optim {
        n: u32,
        step: u32,
        offset: u32,
        use_clip: u32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        dampening: f32,
        max_norm: f32,
        dim: u32,
    }
}

/// Words of the `StepState` the kernels share (shaders/optim.wgsl): norm,
/// coefficient, skip, skipped, first_bad, pending, two pads.
const STEP_STATE_WORDS: usize = 8;

/// The step state of a fresh optimizer: coefficient 1, nothing skipped.
/// Kept in an f32 tensor (so it can be copied like any other) whose words
/// the kernels read as the `StepState` struct: the u32 fields travel as
/// f32 bit patterns, never as float values.
fn initial_step_state() -> [f32; STEP_STATE_WORDS] {
    [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
}

/// What the non-finite guard has done so far ([`Optimizer::non_finite_steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NonFiniteSteps {
    /// Steps whose updates were skipped because a checked tensor held NaN
    /// or ±inf.
    pub skipped: u32,
    /// The optimizer step number ([`Optimizer::steps`] after it) of the
    /// first skipped step.
    pub first: Option<u32>,
}

/// A step state that never skips (for sums no optimizer guards).
pub(crate) fn never_skipping_step_state(device: &Device) -> Result<Tensor> {
    Tensor::from_slice(device, &initial_step_state(), &[STEP_STATE_WORDS])
}

/// `sums[..n] += alpha · x` unless the step `step_state` describes was
/// skipped, in which case `sums[n] += alpha` (n = x's length; `sums` has
/// n + 1 elements): running metrics that leave out, and count, what the
/// non-finite guard skipped.
pub(crate) fn accumulate_unless_skipped(step_state: &Tensor, alpha: f32, x: &Tensor, sums: &Tensor) -> Result<()> {
    const OP: &str = "accumulate_unless_skipped";
    if sums.numel() != x.numel() + 1 || x.dtype() != DType::F32 || sums.dtype() != DType::F32 {
        return Err(Error::Shape {
            op: OP,
            message: format!(
                "sums must be f32 with {} elements (x's and a count), got {}",
                x.numel() + 1,
                sums.numel()
            ),
        });
    }
    let n = dim_u32(OP, "elements", x.numel())?;
    let rt = &x.device().rt;
    let g = grid((n + 1).div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
    let params = OptimParams { n, lr: alpha, ..Default::default() };
    rt.launch(
        ACCUMULATE_UNLESS_SKIPPED,
        &[("WG", f64::from(WG))],
        &params,
        &[x.buffer(), step_state.buffer(), sums.buffer()],
        g,
    )
}

/// The update rule and its hyper-parameters (PyTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    /// `torch.optim.SGD`.
    Sgd {
        /// Momentum factor (0 = plain SGD).
        momentum: f32,
        /// Dampening of the momentum.
        dampening: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// `torch.optim.Adam` (`decoupled = false`) or `torch.optim.AdamW`.
    Adam {
        /// β1.
        beta1: f32,
        /// β2.
        beta2: f32,
        /// ε.
        eps: f32,
        /// L2 penalty (Adam) or decoupled decay (AdamW).
        weight_decay: f32,
        /// AdamW.
        decoupled: bool,
    },
    /// `torch.optim.RMSprop`.
    RmsProp {
        /// Smoothing constant α.
        alpha: f32,
        /// ε.
        eps: f32,
        /// Momentum factor.
        momentum: f32,
        /// Normalise by the centred second moment.
        centered: bool,
        /// L2 penalty.
        weight_decay: f32,
        /// Where ε goes: `false` = PyTorch, g / (√v + ε); `true` = Keras and
        /// TensorFlow, g / √(v + ε). With Keras's ε = 1e-7 the two differ
        /// early in training, when v is tiny, so a Keras recipe needs its own.
        eps_in_sqrt: bool,
    },
}

impl Algorithm {
    /// Names of the per-parameter state tensors, as in PyTorch's state dict.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Algorithm::Sgd { .. } => &["momentum_buffer"],
            Algorithm::Adam { .. } => &["exp_avg", "exp_avg_sq"],
            Algorithm::RmsProp { .. } => &["square_avg", "grad_avg", "momentum_buffer"],
        }
    }

    /// Which of the three state slots the update kernel uses.
    fn used_slots(&self) -> [bool; 3] {
        match *self {
            Algorithm::Sgd { momentum, .. } => [momentum != 0.0, false, false],
            Algorithm::Adam { .. } => [true, true, false],
            Algorithm::RmsProp { momentum, centered, .. } => [true, centered, momentum > 0.0],
        }
    }

    /// Rejects hyper-parameters PyTorch rejects (and β = 1, which would
    /// divide by zero in Adam's bias correction).
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32| Err(Error::Config(format!("invalid {} {what}: {v}", self.name())));
        let unit = |v: f32| (0.0..1.0).contains(&v);
        let nonneg = |v: f32| v >= 0.0; // false for NaN
        match *self {
            Algorithm::Sgd { momentum, dampening, nesterov, weight_decay } => {
                if !nonneg(momentum) {
                    return bad("momentum", momentum);
                }
                if !nonneg(weight_decay) {
                    return bad("weight_decay", weight_decay);
                }
                if !dampening.is_finite() {
                    return bad("dampening", dampening);
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(Error::Config("Nesterov momentum requires momentum > 0 and dampening 0".into()));
                }
            }
            Algorithm::Adam { beta1, beta2, eps, weight_decay, .. } => {
                if !unit(beta1) {
                    return bad("beta1 (must be in [0, 1))", beta1);
                }
                if !unit(beta2) {
                    return bad("beta2 (must be in [0, 1))", beta2);
                }
                if !nonneg(eps) {
                    return bad("eps", eps);
                }
                if !nonneg(weight_decay) {
                    return bad("weight_decay", weight_decay);
                }
            }
            Algorithm::RmsProp { alpha, eps, momentum, weight_decay, .. } => {
                if !nonneg(alpha) || alpha > 1.0 {
                    return bad("alpha (must be in [0, 1])", alpha);
                }
                if !nonneg(eps) {
                    return bad("eps", eps);
                }
                if !nonneg(momentum) {
                    return bad("momentum", momentum);
                }
                if !nonneg(weight_decay) {
                    return bad("weight_decay", weight_decay);
                }
            }
        }
        Ok(())
    }

    /// Short name for checkpoints.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Sgd { .. } => "sgd",
            Algorithm::Adam { decoupled: false, .. } => "adam",
            Algorithm::Adam { decoupled: true, .. } => "adamw",
            Algorithm::RmsProp { .. } => "rmsprop",
        }
    }
}

/// The global gradient norm computed by [`Optimizer::clip_grad_norm`], on
/// the GPU until read.
#[derive(Debug, Clone)]
pub struct GradNorm(Tensor);

impl GradNorm {
    /// Reads the norm (submits pending work and waits for it).
    pub fn value(&self) -> Result<f32> {
        Ok(self.0.to_vec()?[0])
    }
}

/// A run of consecutive parameters the kernels treat as one range of
/// elements: a single parameter, or adjacent views of flat value and
/// gradient buffers (see the module docs).
#[derive(Debug)]
struct Segment {
    /// Its parameters: `params[first..first + count]`.
    first: usize,
    count: usize,
    /// Each parameter's element offset from the segment's start (multiples
    /// of [`CHUNK`]; 0 for the first).
    offsets: Vec<usize>,
    /// Elements from the first parameter's start to the last one's end.
    len: usize,
    /// The values and gradients over that range (the parameter's own
    /// tensors when it is alone).
    value: Tensor,
    grad: Tensor,
    /// A sparse embedding's row log ([`Optimizer::with_sparse_embedding`]):
    /// the segment is that one (V, E) parameter, and the kernels visit only
    /// the logged rows.
    rows: Option<SparseRows>,
}

impl Segment {
    /// The segments of `params`, in order: each parameter joins the previous
    /// one's segment when its value and gradient views start in the same
    /// buffers right after the previous one's, padded to [`CHUNK`]; a
    /// sparse embedding (`sparse[i]`) is a segment of its own.
    fn split(params: &[(String, Parameter)], sparse: &[Option<SparseRows>]) -> Result<Vec<Segment>> {
        let mut out = Vec::new();
        let mut first = 0;
        while first < params.len() {
            let lead = &params[first].1;
            let aligned = |t: &Tensor| t.offset().is_multiple_of(CHUNK);
            let mut offsets = vec![0];
            let mut len = lead.value.numel();
            let mut next = first + 1;
            let joinable = |i: usize| sparse.get(i).is_none_or(Option::is_none);
            while aligned(&lead.value)
                && aligned(&lead.grad)
                && next < params.len()
                && joinable(first)
                && joinable(next)
            {
                let (prev, p) = (&params[next - 1].1, &params[next].1);
                let step = prev.value.numel().next_multiple_of(CHUNK);
                let follows = |a: &Tensor, b: &Tensor| b.same_storage(a) && b.offset() == a.offset() + step;
                if !follows(&prev.value, &p.value) || !follows(&prev.grad, &p.grad) {
                    break;
                }
                let at = p.value.offset() - lead.value.offset();
                offsets.push(at);
                len = at + p.value.numel();
                next += 1;
            }
            let count = next - first;
            let (value, grad) = if count == 1 {
                (lead.value.clone(), lead.grad.clone())
            } else {
                (
                    lead.value.storage_view(lead.value.offset(), &[len])?,
                    lead.grad.storage_view(lead.grad.offset(), &[len])?,
                )
            };
            let rows = sparse.get(first).cloned().flatten();
            out.push(Segment { first, count, offsets, len, value, grad, rows });
            first = next;
        }
        Ok(out)
    }

    /// Chunks of the clip pass's partial sums over this segment: those of
    /// its parameters on their own, as each starts a chunk.
    fn chunks(&self) -> usize {
        self.len.div_ceil(CHUNK)
    }
}

/// An optimizer over named parameters.
#[derive(Debug)]
pub struct Optimizer {
    device: Device,
    algorithm: Algorithm,
    lr: f32,
    params: Vec<(String, Parameter)>,
    /// What one dispatch covers (see the module docs).
    segments: Vec<Segment>,
    /// Per parameter, the row log of a sparse embedding
    /// ([`Optimizer::with_sparse_embedding`]).
    sparse: Vec<Option<SparseRows>>,
    /// Per segment, the three state slots the kernels bind: over the whole
    /// segment, or 1-element placeholders for slots the rule does not use.
    state: Vec<[Tensor; 3]>,
    /// Per parameter, its view of each used slot (for checkpoints).
    param_state: Vec<[Tensor; 3]>,
    step: u32,
    partials: Tensor,
    /// The `StepState` (clip norm and coefficient, skip flag and counters).
    guard: Tensor,
    /// Whether `clip_grad_norm` ran since the last step.
    clip_pending: bool,
    /// Whether each step checks its gradients for NaN/inf first.
    guard_non_finite: bool,
    /// Whether the guard was ever on (else nothing can have been skipped).
    guard_used: bool,
}

impl Optimizer {
    fn new(params: Vec<(String, Parameter)>, lr: f32, algorithm: Algorithm) -> Result<Self> {
        let device = params
            .first()
            .map(|(_, p)| p.value.device().clone())
            .ok_or_else(|| Error::Config("an optimizer needs at least one parameter".into()))?;
        check_lr(lr)?;
        algorithm.validate()?;
        for (name, p) in &params {
            if p.value.shape() != p.grad.shape() || p.value.dtype() != DType::F32 || p.grad.dtype() != DType::F32 {
                return Err(Error::Shape {
                    op: "Optimizer",
                    message: format!(
                        "parameter {name}: value {:?} and gradient {:?} must be f32 tensors of one shape",
                        p.value.shape(),
                        p.grad.shape()
                    ),
                });
            }
        }
        let sparse = vec![None; params.len()];
        let segments = Segment::split(&params, &sparse)?;
        let chunks: usize = segments.iter().map(Segment::chunks).sum();
        Ok(Self {
            algorithm,
            lr,
            segments,
            sparse,
            state: Vec::new(),
            param_state: Vec::new(),
            step: 0,
            partials: Tensor::zeros(&device, &[chunks])?,
            guard: never_skipping_step_state(&device)?,
            clip_pending: false,
            guard_non_finite: false,
            guard_used: false,
            params,
            device,
        })
    }

    /// `torch.optim.SGD(params, lr)`: no momentum, no weight decay.
    pub fn sgd(params: Vec<(String, Parameter)>, lr: f32) -> Result<Self> {
        Self::new(params, lr, Algorithm::Sgd { momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 })
    }

    /// `torch.optim.Adam(params, lr)`: betas (0.9, 0.999), eps 1e-8.
    pub fn adam(params: Vec<(String, Parameter)>, lr: f32) -> Result<Self> {
        Self::new(
            params,
            lr,
            Algorithm::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false },
        )
    }

    /// `torch.optim.AdamW(params, lr)`: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn adamw(params: Vec<(String, Parameter)>, lr: f32) -> Result<Self> {
        Self::new(
            params,
            lr,
            Algorithm::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true },
        )
    }

    /// `torch.optim.RMSprop(params, lr)`: alpha 0.99, eps 1e-8.
    pub fn rmsprop(params: Vec<(String, Parameter)>, lr: f32) -> Result<Self> {
        Self::new(
            params,
            lr,
            Algorithm::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.0,
                centered: false,
                weight_decay: 0.0,
                eps_in_sqrt: false,
            },
        )
    }

    /// Keras's `RMSprop(learning_rate=lr)`: rho 0.9, epsilon 1e-7 inside the
    /// square root (`v = ρv + (1−ρ)g²; w −= lr·g / √(v + ε)`).
    pub fn rmsprop_keras(params: Vec<(String, Parameter)>, lr: f32) -> Result<Self> {
        Self::new(
            params,
            lr,
            Algorithm::RmsProp {
                alpha: 0.9,
                eps: 1e-7,
                momentum: 0.0,
                centered: false,
                weight_decay: 0.0,
                eps_in_sqrt: true,
            },
        )
    }

    /// Replaces the hyper-parameters (same algorithm family or not); only
    /// before the first step, since the state would not match.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Result<Self> {
        if self.step > 0 {
            return Err(Error::Config("the algorithm can only be changed before the first step".into()));
        }
        algorithm.validate()?;
        if self.sparse.iter().any(Option::is_some) {
            check_sparse_algorithm(&algorithm)?;
        }
        self.algorithm = algorithm;
        self.state.clear();
        self.param_state.clear();
        Ok(self)
    }

    /// Updates `embedding`'s weight (one of this optimizer's parameters;
    /// made with [`crate::nn::EmbeddingConfig::with_sparse`]) lazily, as
    /// PyTorch's `torch.optim.SparseAdam` does: `zero_grad`, the non-finite
    /// check and the update visit only the rows its backward logged since
    /// the last `zero_grad` (at most B·T of V rows), and rows not looked up
    /// keep their moments undecayed. The other parameters follow Adam, so
    /// one optimizer is PyTorch's usual pair `SparseAdam(embedding)` +
    /// `Adam(rest)` with the same betas, ε and learning rate. Only before
    /// the first step; the algorithm must be Adam without weight decay
    /// (SparseAdam has none), and stays so. Clipping still reads the whole
    /// gradient (zeros outside the rows give the same norm).
    ///
    /// SparseAdam's update differs from Adam's beyond laziness: ε is added
    /// to √v before the bias correction (`lr·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε)`),
    /// as PyTorch's does; a row seen every step therefore does not match
    /// Adam bit for bit.
    pub fn with_sparse_embedding(mut self, embedding: &Embedding) -> Result<Self> {
        if self.step > 0 {
            return Err(Error::Config("a sparse embedding can only be set before the first step".into()));
        }
        let log = embedding.sparse.clone().ok_or_else(|| {
            Error::Config("the embedding has dense gradients: make it with EmbeddingConfig::with_sparse(true)".into())
        })?;
        check_sparse_algorithm(&self.algorithm)?;
        let w = &embedding.weight;
        let same = |a: &Tensor, b: &Tensor| a.same_storage(b) && a.offset() == b.offset() && a.shape() == b.shape();
        let index =
            self.params.iter().position(|(_, p)| same(&p.value, &w.value) && same(&p.grad, &w.grad)).ok_or_else(
                || Error::Config("the embedding's weight is not one of this optimizer's parameters".into()),
            )?;
        if w.shape().len() != 2 {
            return Err(Error::Shape {
                op: "Optimizer::with_sparse_embedding",
                message: format!("an embedding weight is (V, E), got {:?}", w.shape()),
            });
        }
        self.sparse[index] = Some(log);
        self.segments = Segment::split(&self.params, &self.sparse)?;
        self.state.clear();
        self.param_state.clear();
        Ok(self)
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The update rule.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// Current learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Sets the learning rate (schedules call this every step or epoch).
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_lr(lr)?;
        self.lr = lr;
        Ok(())
    }

    /// Steps taken.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// The parameters with their names.
    pub fn params(&self) -> &[(String, Parameter)] {
        &self.params
    }

    /// Sets every gradient to zero (`optimizer.zero_grad()`): one dispatch
    /// per segment (one for a flat model; a sparse embedding's zeroes its
    /// logged rows and empties the log).
    pub fn zero_grad(&self) -> Result<()> {
        let _family = crate::profile::scope(crate::profile::Family::Optimizer);
        for seg in &self.segments {
            let Some(log) = &seg.rows else {
                elementwise_fill(&seg.grad, 0.0)?;
                continue;
            };
            if let Some(rows) = self.logged_rows(seg, log)? {
                let params = OptimParams { n: rows.elements, dim: rows.dim, ..Default::default() };
                self.launch_rows(ZERO_ROWS, &[], &params, &[seg.grad.buffer(), rows.ids.buffer()])?;
            }
            log.clear();
        }
        Ok(())
    }

    /// The rows a sparse segment's log holds, on the GPU; `None` when no
    /// row received a gradient.
    fn logged_rows(&self, seg: &Segment, log: &SparseRows) -> Result<Option<LoggedRows>> {
        const OP: &str = "sparse embedding";
        let ids = log.rows();
        if ids.is_empty() {
            return Ok(None);
        }
        let dim = seg.value.shape().get(1).copied().unwrap_or(1);
        let elements = ids
            .len()
            .checked_mul(dim)
            .ok_or_else(|| Error::OutOfRange { op: OP, message: format!("{} rows of {dim} overflow", ids.len()) })?;
        Ok(Some(LoggedRows {
            ids: Tensor::from_u32(&self.device, &ids, &[ids.len()])?,
            elements: dim_u32(OP, "row elements", elements)?,
            dim: dim_u32(OP, "row length", dim)?,
        }))
    }

    /// Launches a row kernel over `params.n` elements.
    fn launch_rows(
        &self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
        params: &OptimParams,
        buffers: &[crate::runtime::BufferRange<'_>],
    ) -> Result<()> {
        let rt = &self.device.rt;
        let mut constants = constants.to_vec();
        constants.push(("WG", f64::from(WG)));
        let g = grid(params.n.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
        rt.launch(kernel, &constants, params, buffers, g)
    }

    /// Dispatches each of the clip pass, the non-finite check and the
    /// update takes per step (and buffer clears `zero_grad` records): 1
    /// when the parameters are one flat run
    /// ([`crate::nn::flatten_parameters`]), else up to one per parameter.
    pub fn dispatches_per_pass(&self) -> usize {
        self.segments.len()
    }

    /// Global gradient-norm clipping, like `torch.nn.utils.clip_grad_norm_`:
    /// computes ‖g‖₂ over all parameters and scales the gradients the next
    /// [`Optimizer::step`] applies by min(1, max_norm / (‖g‖₂ + 1e-6)). The
    /// scale is applied inside the update kernels, so the stored gradients
    /// stay unscaled. Returns the norm (still on the GPU).
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> Result<GradNorm> {
        if max_norm.is_nan() || max_norm <= 0.0 {
            return Err(Error::Config(format!("max_norm must be > 0, got {max_norm}")));
        }
        let rt = &self.device.rt;
        let mut offset = 0usize;
        for seg in &self.segments {
            let n = seg.len;
            let chunks = seg.chunks();
            let params = OptimParams {
                n: dim_u32("clip_grad_norm", "elements", n)?,
                offset: dim_u32("clip_grad_norm", "offset", offset)?,
                ..Default::default()
            };
            let g = grid(
                dim_u32("clip_grad_norm", "chunks", chunks)?.div_ceil(WG),
                rt.limits.max_compute_workgroups_per_dimension,
            );
            rt.launch(
                GRAD_SUMSQ_PARTIAL,
                &[("WG", f64::from(WG))],
                &params,
                &[seg.grad.buffer(), self.partials.buffer(), self.guard.buffer()],
                g,
            )?;
            offset += chunks;
        }
        let params =
            OptimParams { offset: dim_u32("clip_grad_norm", "chunks", offset)?, max_norm, ..Default::default() };
        rt.launch(CLIP_COEFFICIENT, &[], &params, &[self.partials.buffer(), self.guard.buffer()], [1, 1, 1])?;
        self.clip_pending = true;
        // Its own copy: the next call overwrites the step state.
        let norm = Tensor::uninit(&self.device, &[STEP_STATE_WORDS], DType::F32)?;
        crate::ops::elementwise_copy(&self.guard, &norm)?;
        Ok(GradNorm(norm))
    }

    fn ensure_state(&mut self) -> Result<()> {
        if self.state.len() == self.segments.len() {
            return Ok(());
        }
        let used = self.algorithm.used_slots();
        let (mut state, mut param_state) = (Vec::new(), Vec::new());
        for seg in &self.segments {
            let params = &self.params[seg.first..seg.first + seg.count];
            // A slot: the tensor the kernels bind, and each parameter's part.
            let slot = |in_use: bool| -> Result<(Tensor, Vec<Tensor>)> {
                if !in_use {
                    // Four elements: the vec4 entries bind it as one vec4.
                    let placeholder = Tensor::zeros(&self.device, &[4])?;
                    return Ok((placeholder.clone(), vec![placeholder; seg.count]));
                }
                if seg.count == 1 {
                    let t = Tensor::zeros(&self.device, params[0].1.shape())?;
                    return Ok((t.clone(), vec![t]));
                }
                // Laid out as the parameters are, so element i of the
                // segment has its state at element i.
                let shapes: Vec<&[usize]> = params.iter().map(|(_, p)| p.shape()).collect();
                let views = Tensor::zeros_views(&self.device, seg.len, &seg.offsets, &shapes)?;
                Ok((views[0].storage_view(0, &[seg.len])?, views))
            };
            let [s0, s1, s2] = [slot(used[0])?, slot(used[1])?, slot(used[2])?];
            for i in 0..seg.count {
                param_state.push([s0.1[i].clone(), s1.1[i].clone(), s2.1[i].clone()]);
            }
            state.push([s0.0, s1.0, s2.0]);
        }
        self.state = state;
        self.param_state = param_state;
        Ok(())
    }

    /// These options with the non-finite guard on or off: when on, each
    /// [`Optimizer::step`] first checks every gradient (and what
    /// [`Optimizer::check_finite`] was given since the last step) for NaN
    /// and ±inf on the GPU, and skips its updates if it finds any: the
    /// parameters and the optimizer state stay as they were, and the
    /// skipped step does not count towards bias correction. Costs one pass
    /// over the gradients per step, none when [`Optimizer::clip_grad_norm`]
    /// ran (its pass over the gradients does the check); nothing is read
    /// back.
    pub fn with_non_finite_guard(mut self, on: bool) -> Result<Self> {
        self.set_non_finite_guard(on)?;
        Ok(self)
    }

    /// Turns the non-finite guard on or off ([`Optimizer::with_non_finite_guard`]).
    pub fn set_non_finite_guard(&mut self, on: bool) -> Result<()> {
        if self.guard_non_finite != on {
            // A skip decided by the last guarded step must not stick, nor a
            // pending flag that clipping raised while the guard was off;
            // the counters stay for `non_finite_steps`.
            let params = OptimParams::default();
            self.device.rt.launch(GUARD_CLEAR, &[], &params, &[self.guard.buffer()], [1, 1, 1])?;
        }
        self.guard_non_finite = on;
        self.guard_used |= on;
        Ok(())
    }

    /// Whether the non-finite guard is on.
    pub fn non_finite_guard(&self) -> bool {
        self.guard_non_finite
    }

    /// Adds `tensor` (f32, e.g. the loss) to what the next guarded step
    /// checks for NaN and ±inf. Does nothing while the guard is off.
    pub fn check_finite(&self, tensor: &Tensor) -> Result<()> {
        if !self.guard_non_finite {
            return Ok(());
        }
        tensor.expect_dtype("Optimizer::check_finite", DType::F32)?;
        let n = dim_u32("check_finite", "elements", tensor.numel())?;
        let rt = &self.device.rt;
        let g = grid(n.div_ceil(WG), rt.limits.max_compute_workgroups_per_dimension);
        let params = OptimParams { n, ..Default::default() };
        rt.launch(CHECK_FINITE, &[("WG", f64::from(WG))], &params, &[tensor.buffer(), self.guard.buffer()], g)
    }

    /// How many steps the guard skipped and the first of them (a readback).
    pub fn non_finite_steps(&self) -> Result<NonFiniteSteps> {
        let words = self.guard.to_vec()?;
        let (skipped, first) = (words[3].to_bits(), words[4].to_bits());
        Ok(NonFiniteSteps { skipped, first: (first != 0).then_some(first) })
    }

    /// Steps whose updates were applied: [`Optimizer::steps`] less those the
    /// guard skipped (a readback when the guard has been used). This is the
    /// step count a checkpoint stores, as the update rules see it.
    pub fn applied_steps(&self) -> Result<u32> {
        if !self.guard_used {
            return Ok(self.step);
        }
        Ok(self.step - self.non_finite_steps()?.skipped)
    }

    /// The step state the kernels share (clip coefficient, skip flag and
    /// counters), on the GPU.
    pub(crate) fn step_state(&self) -> &Tensor {
        &self.guard
    }

    /// One update of every parameter from its gradient.
    pub fn step(&mut self) -> Result<()> {
        self.ensure_state()?;
        self.step += 1;
        let ((kernel, kernel_vec4), base, constants) = match self.algorithm {
            Algorithm::Sgd { momentum, dampening, nesterov, weight_decay } => (
                (SGD_STEP, SGD_STEP_VEC4),
                OptimParams { beta1: momentum, dampening, weight_decay, ..Default::default() },
                vec![("NESTEROV", f64::from(u8::from(nesterov)))],
            ),
            Algorithm::Adam { beta1, beta2, eps, weight_decay, decoupled } => (
                (ADAM_STEP, ADAM_STEP_VEC4),
                OptimParams { beta1, beta2, eps, weight_decay, ..Default::default() },
                vec![("DECOUPLED", f64::from(u8::from(decoupled)))],
            ),
            Algorithm::RmsProp { alpha, eps, momentum, centered, weight_decay, eps_in_sqrt } => (
                (RMSPROP_STEP, RMSPROP_STEP_VEC4),
                OptimParams { beta1: momentum, beta2: alpha, eps, weight_decay, ..Default::default() },
                vec![("CENTERED", f64::from(u8::from(centered))), ("EPS_IN_SQRT", f64::from(u8::from(eps_in_sqrt)))],
            ),
        };
        let mut constants = constants;
        constants.push(("WG", f64::from(WG)));
        let rt = &self.device.rt;
        let rows: Vec<Option<LoggedRows>> = self
            .segments
            .iter()
            .map(|seg| seg.rows.as_ref().map_or(Ok(None), |log| self.logged_rows(seg, log)))
            .collect::<Result<_>>()?;
        if self.guard_non_finite {
            // After clip_grad_norm the gradients were checked by its pass.
            if !self.clip_pending {
                for (seg, rows) in self.segments.iter().zip(&rows) {
                    match (&seg.rows, rows) {
                        (None, _) => self.check_finite(&seg.grad)?,
                        (Some(_), None) => {}
                        (Some(_), Some(r)) => {
                            let params = OptimParams { n: r.elements, dim: r.dim, ..Default::default() };
                            let bufs = [seg.grad.buffer(), self.guard.buffer(), r.ids.buffer()];
                            self.launch_rows(CHECK_FINITE_ROWS, &[], &params, &bufs)?;
                        }
                    }
                }
            }
            let params = OptimParams { step: self.step, ..Default::default() };
            rt.launch(GUARD_STEP, &[], &params, &[self.guard.buffer()], [1, 1, 1])?;
        }
        let use_clip = u32::from(self.clip_pending);
        for ((seg, state), rows) in self.segments.iter().zip(&self.state).zip(&rows) {
            if seg.rows.is_some() {
                // No logged row: no gradient, nothing to update (SparseAdam
                // skips an empty gradient too).
                if let Some(r) = rows {
                    let params =
                        OptimParams { n: r.elements, dim: r.dim, step: self.step, lr: self.lr, use_clip, ..base };
                    let bufs = [
                        seg.grad.buffer(),
                        self.guard.buffer(),
                        seg.value.buffer(),
                        state[0].buffer(),
                        state[1].buffer(),
                        r.ids.buffer(),
                    ];
                    self.launch_rows(SPARSE_ADAM_STEP, &[], &params, &bufs)?;
                }
                continue;
            }
            let params = OptimParams {
                n: dim_u32("optimizer", "elements", seg.len)?,
                step: self.step,
                lr: self.lr,
                use_clip,
                ..base
            };
            // Views start 256-element aligned, so a length that is a multiple
            // of 4 is all the vec4 entry needs (the same arithmetic either way).
            let vec4 = seg.len.is_multiple_of(4);
            let (k, per_invocation) =
                if vec4 { (kernel_vec4, VEC4_UPDATE_GROUPS * UPDATE_ELEMENTS) } else { (kernel, UPDATE_ELEMENTS) };
            let g = grid(params.n.div_ceil(per_invocation * WG), rt.limits.max_compute_workgroups_per_dimension);
            let bufs = [
                seg.grad.buffer(),
                self.guard.buffer(),
                seg.value.buffer(),
                state[0].buffer(),
                state[1].buffer(),
                state[2].buffer(),
            ];
            rt.launch(k, &constants, &params, &bufs, g)?;
        }
        self.clip_pending = false;
        Ok(())
    }

    /// The optimizer's state tensors with checkpoint names
    /// (`<param>.<state name>`), those in use only.
    pub fn named_state(&mut self) -> Result<Vec<(String, Tensor)>> {
        self.ensure_state()?;
        let names = self.algorithm.state_names();
        let used = self.algorithm.used_slots();
        let mut out = Vec::new();
        for ((pname, _), slots) in self.params.iter().zip(&self.param_state) {
            for (k, slot) in slots.iter().enumerate() {
                if used[k] {
                    out.push((format!("{pname}.{}", names[k]), slot.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Restores the step count (checkpoint loading).
    pub(crate) fn set_steps(&mut self, step: u32) -> Result<()> {
        self.step = step;
        // The count restored is of applied steps: nothing skipped before it.
        self.guard.write(&initial_step_state())
    }
}

/// A sparse segment's logged rows uploaded for one pass.
struct LoggedRows {
    /// (R) u32 row ids, ascending.
    ids: Tensor,
    /// R·E.
    elements: u32,
    /// E.
    dim: u32,
}

/// The rule of a sparse embedding is `torch.optim.SparseAdam`'s: only Adam
/// without weight decay has it.
fn check_sparse_algorithm(algorithm: &Algorithm) -> Result<()> {
    match *algorithm {
        Algorithm::Adam { weight_decay: 0.0, decoupled: false, .. } => Ok(()),
        other => Err(Error::Config(format!(
            "a sparse embedding is updated by torch.optim.SparseAdam's rule, which exists for Adam without weight \
             decay only, not {} {other:?}",
            other.name()
        ))),
    }
}

fn check_lr(lr: f32) -> Result<()> {
    if lr.is_nan() || lr < 0.0 {
        return Err(Error::Config(format!("learning rate must be ≥ 0, got {lr}")));
    }
    Ok(())
}

/// Learning-rate schedules, as functions of the step (or epoch) count.
#[derive(Debug, Clone, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// `StepLR`: multiply by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays.
        step_size: u32,
        /// Decay factor.
        gamma: f32,
    },
    /// `CosineAnnealingLR`: from the base rate to `eta_min` over `t_max` steps.
    Cosine {
        /// Steps of one half period.
        t_max: u32,
        /// Final rate.
        eta_min: f32,
    },
    /// Linear warm-up from 0 over `warmup` steps, then `after` (counted from
    /// the end of the warm-up).
    LinearWarmup {
        /// Warm-up steps.
        warmup: u32,
        /// Schedule after warm-up.
        after: Box<LrSchedule>,
    },
}

impl LrSchedule {
    /// The rate at step `t` (0-based) for base rate `base`.
    pub fn lr_at(&self, base: f32, t: u32) -> f32 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => base * gamma.powi((t / (*step_size).max(1)) as i32),
            LrSchedule::Cosine { t_max, eta_min } => {
                let progress = t.min(*t_max) as f32 / (*t_max).max(1) as f32;
                eta_min + (base - eta_min) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
            }
            LrSchedule::LinearWarmup { warmup, after } => {
                if t < *warmup {
                    base * (t + 1) as f32 / *warmup as f32
                } else {
                    after.lr_at(base, t - warmup)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Algorithm, Optimizer};
    use crate::nn::{flatten_parameters, Parameter};

    /// The padding between flat views starts at zero (value, gradient and
    /// state) and stays zero through clipped, guarded steps of every rule,
    /// weight decay included (the module docs' claim): nothing but the
    /// parameters' own elements changes in the flat buffers.
    #[test]
    fn padding_stays_zero_under_every_rule() {
        let device = crate::Device::new().unwrap();
        let rms = |momentum, centered, weight_decay, eps_in_sqrt| Algorithm::RmsProp {
            alpha: 0.9,
            eps: 1e-7,
            momentum,
            centered,
            weight_decay,
            eps_in_sqrt,
        };
        let rules = [
            Algorithm::Sgd { momentum: 0.9, dampening: 0.1, nesterov: false, weight_decay: 0.1 },
            Algorithm::Sgd { momentum: 0.9, dampening: 0.0, nesterov: true, weight_decay: 0.1 },
            Algorithm::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1, decoupled: false },
            Algorithm::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1, decoupled: true },
            rms(0.5, true, 0.1, false),
            rms(0.0, false, 0.1, true),
        ];
        for alg in rules {
            let mut params: Vec<(String, Parameter)> = [3usize, 300, 5]
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let values: Vec<f32> = (0..n).map(|k| (k as f32 * 0.37 + i as f32).sin()).collect();
                    (format!("p{i}"), Parameter::new(&device, &values, &[n]).unwrap())
                })
                .collect();
            flatten_parameters(&mut params).unwrap();
            let mut opt = Optimizer::sgd(params.clone(), 0.1).unwrap().with_algorithm(alg).unwrap();
            opt = opt.with_non_finite_guard(true).unwrap();
            assert_eq!(opt.segments.len(), 1, "{alg:?}: one segment");
            for step in 0..3 {
                for (_, p) in &params {
                    let g: Vec<f32> = (0..p.grad.numel()).map(|k| ((k + step) as f32 * 0.91).cos()).collect();
                    p.grad.write(&g).unwrap();
                }
                opt.clip_grad_norm(0.5).unwrap();
                opt.step().unwrap();
            }
            let seg = &opt.segments[0];
            let mut flat = vec![("value", seg.value.clone()), ("grad", seg.grad.clone())];
            let used = opt.algorithm.used_slots();
            flat.extend(opt.state[0].iter().zip(used).filter(|(_, u)| *u).map(|(t, _)| ("state", t.clone())));
            for (what, t) in flat {
                let all = t.to_vec().unwrap();
                // Padding: after p0 (3..256) and after p1 (256 + 300..768).
                let padding = all[3..256].iter().chain(&all[556..768]);
                assert!(padding.copied().all(|v| v.to_bits() == 0), "{alg:?}: {what} padding changed");
                assert!(all[..3].iter().any(|&v| v != 0.0), "{alg:?}: {what} of p0 never changed");
            }
        }
    }
}
