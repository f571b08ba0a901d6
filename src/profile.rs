//! Where a training step's GPU time goes, by kernel family
//! ([`crate::Device::start_profile`], `bench --profile`).
//!
//! Every dispatch recorded while profiling is attributed to a [`Family`]:
//! the one an op declared with `scope` around its launches (a GEMM is an
//! input projection, a weight gradient or the head depending on who calls
//! it), else the one its shader implies (recurrent steps, optimizer, loss,
//! embedding gradient), else [`Family::Other`]. Each dispatch is timed
//! alone: with timestamp queries around its own compute pass where the
//! adapter has them, else by submitting it by itself and waiting (the
//! wall time then includes one submission's overhead). Profiling changes
//! how work is submitted, never what it computes.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use crate::kernels::{Kernel, Pass, Shader};

/// Kernel families of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Embedding lookups and their gradient.
    Embedding,
    /// The input-projection GEMM of each recurrent layer (x·W_ihᵀ + b).
    InputProjection,
    /// Recurrent time steps, forward (and their state set-up).
    RecurrentForward,
    /// Recurrent time steps, backward.
    RecurrentBackward,
    /// Weight- and input-gradient GEMMs and bias sums of the recurrent layers.
    WeightGradients,
    /// The classifier head (linear layers) and the loss.
    HeadLoss,
    /// Zeroing gradients, clipping, the non-finite guard and the updates.
    Optimizer,
    /// Everything else (packing, pooling, dropout, fills, copies).
    Other,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 8] = [
        Family::Embedding,
        Family::InputProjection,
        Family::RecurrentForward,
        Family::RecurrentBackward,
        Family::WeightGradients,
        Family::HeadLoss,
        Family::Optimizer,
        Family::Other,
    ];

    /// Short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Family::Embedding => "embedding",
            Family::InputProjection => "input_projection",
            Family::RecurrentForward => "recurrent_forward",
            Family::RecurrentBackward => "recurrent_backward",
            Family::WeightGradients => "weight_gradients",
            Family::HeadLoss => "head_loss",
            Family::Optimizer => "optimizer",
            Family::Other => "other",
        }
    }

    /// The family a kernel belongs to by its shader alone, if that tells.
    pub(crate) fn of_kernel(kernel: Kernel) -> Option<Family> {
        match kernel.shader {
            Shader::Recurrent { pass: Pass::Forward, .. } => Some(Family::RecurrentForward),
            Shader::Recurrent { pass: Pass::Backward, .. } => Some(Family::RecurrentBackward),
            Shader::RecurrentSubgroup { pass: Pass::Forward, .. } => Some(Family::RecurrentForward),
            Shader::RecurrentSubgroup { pass: Pass::Backward, .. } => Some(Family::RecurrentBackward),
            Shader::Optim => Some(Family::Optimizer),
            Shader::Loss => Some(Family::HeadLoss),
            Shader::Embedding => Some(Family::Embedding),
            _ => None,
        }
    }
}

thread_local! {
    /// The family declared by the innermost [`scope`] on this thread.
    static CURRENT: Cell<Option<Family>> = const { Cell::new(None) };
}

/// Attributes the dispatches recorded on this thread to `family` until the
/// guard is dropped (then the enclosing scope's family applies again).
/// Costs a thread-local read and write whether or not anyone profiles.
pub(crate) fn scope(family: Family) -> ScopeGuard {
    ScopeGuard { previous: CURRENT.with(|c| c.replace(Some(family))) }
}

/// The family of the innermost open [`scope`].
pub(crate) fn current() -> Option<Family> {
    CURRENT.with(Cell::get)
}

/// Restores the enclosing family when dropped.
pub(crate) struct ScopeGuard {
    previous: Option<Family>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// How the dispatches were timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// GPU timestamps written before and after each dispatch's own pass.
    Timestamps,
    /// Each dispatch submitted alone and waited for (wall time).
    Isolated,
}

/// One family's share of the profiled work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FamilyTime {
    /// The family.
    pub family: Family,
    /// Dispatches recorded.
    pub dispatches: u64,
    /// Their time in all.
    pub time: Duration,
}

/// One kernel's share of the profiled work: an entry point within a family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelTime {
    /// The family its dispatches were attributed to.
    pub family: Family,
    /// The shader entry point (`recurrent_step_forward_vec4`, `gemm_vec4`, …).
    pub entry: &'static str,
    /// Dispatches recorded.
    pub dispatches: u64,
    /// Their time in all.
    pub time: Duration,
}

/// What [`crate::Device::finish_profile`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// How the dispatches were timed.
    pub timing: Timing,
    /// One entry per family, in [`Family::ALL`] order (zero where none ran).
    pub families: Vec<FamilyTime>,
    /// One entry per (family, entry point) that ran, the slowest first: the
    /// families' figures split by kernel.
    pub kernels: Vec<KernelTime>,
}

impl Profile {
    /// Sum over the families.
    pub fn total(&self) -> (u64, Duration) {
        self.families.iter().fold((0, Duration::ZERO), |(n, t), f| (n + f.dispatches, t + f.time))
    }

    /// The figures divided by `steps` (a per-step table).
    pub fn per_step(&self, steps: usize) -> Vec<(Family, f64, Duration)> {
        let steps = steps.max(1);
        self.families.iter().map(|f| (f.family, f.dispatches as f64 / steps as f64, f.time / steps as u32)).collect()
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, total) = self.total();
        writeln!(f, "{:<20} {:>10} {:>12} {:>7}", "family", "dispatches", "ms", "share")?;
        for ft in &self.families {
            let share = if total.is_zero() { 0.0 } else { ft.time.as_secs_f64() / total.as_secs_f64() * 100.0 };
            writeln!(
                f,
                "{:<20} {:>10} {:>12.3} {:>6.1}%",
                ft.family.name(),
                ft.dispatches,
                ft.time.as_secs_f64() * 1e3,
                share
            )?;
        }
        let (n, t) = self.total();
        write!(f, "{:<20} {:>10} {:>12.3} ({:?})", "total", n, t.as_secs_f64() * 1e3, self.timing)
    }
}
