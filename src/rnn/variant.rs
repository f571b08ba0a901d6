//! Which kernels run the recurrence of a layer: the step kernels (one
//! dispatch per time step, any size) or the sequence-resident ones (one
//! dispatch per layer and direction that loops over every step inside,
//! for hidden sizes the adapter's workgroup limits allow), and with how
//! many batch rows per workgroup; or the sequence-uniform ones (one
//! dispatch per layer and direction, lanes owning rows and W_hh read from
//! uniform windows: the shape that suits a CPU driver).
//!
//! Every variant computes the same bits (the sequence kernels repeat the
//! step kernels' arithmetic in the same order), so the choice changes speed
//! only, never a result. `WGRNN_KERNEL=recurrent=step`,
//! `recurrent=sequence`, `recurrent=sequence/ROWS` or
//! `recurrent=sequence_uniform` ([`crate::tune`]; or
//! [`crate::Device::set_recurrent_kernel`]) forces one; otherwise the
//! autotuner picks ([`crate::rnn::tune`]).

use std::fmt;

use crate::error::{Error, Result};
use crate::rnn::gpu::{SEQUENCE_ROW_CHOICES, UNITS};
use crate::rnn::RnnSpec;

/// How the recurrent steps of a layer run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrentKernel {
    /// One dispatch per time step (`recurrent_step_*`): any hidden size,
    /// projections included.
    Step,
    /// One dispatch per layer and direction (`recurrent_sequence_*`), a
    /// workgroup owning `rows` batch rows (1, 2, 4 or 8) and every unit.
    Sequence {
        /// Batch rows per workgroup.
        rows: u32,
    },
    /// One dispatch per layer and direction
    /// (`recurrent_sequence_{forward,backward}_uniform`): a workgroup is one
    /// subgroup of 8 lanes, each owning a batch row and every unit, with
    /// W_hh read from uniform windows. Needs subgroups of 8, H % 4 == 0,
    /// H ≤ 128 and no projection ([`sequence_uniform_unfit`]).
    SequenceUniform,
}

impl fmt::Display for RecurrentKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecurrentKernel::Step => write!(f, "step"),
            RecurrentKernel::Sequence { rows } => write!(f, "sequence/{rows}"),
            RecurrentKernel::SequenceUniform => write!(f, "sequence_uniform"),
        }
    }
}

impl RecurrentKernel {
    /// Parses [`RecurrentKernel`]'s display form: `step`, `sequence/ROWS`,
    /// `sequence_uniform`, or `sequence` (rows chosen per batch,
    /// [`RecurrentKernel::Sequence`] with rows 0 until resolved).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "unknown recurrent kernel {text:?}; accepted: step, sequence, sequence/ROWS with ROWS in {SEQUENCE_ROW_CHOICES:?}, sequence_uniform"
            ))
        };
        match text.trim() {
            "step" => Ok(RecurrentKernel::Step),
            "sequence_uniform" => Ok(RecurrentKernel::SequenceUniform),
            "sequence" => Ok(RecurrentKernel::Sequence { rows: 0 }),
            other => {
                let rows: u32 = other.strip_prefix("sequence/").and_then(|r| r.parse().ok()).ok_or_else(bad)?;
                if !SEQUENCE_ROW_CHOICES.contains(&rows) {
                    return Err(bad());
                }
                Ok(RecurrentKernel::Sequence { rows })
            }
        }
    }
}

/// Workgroup threads of the sequence kernels for `spec`: forward (an
/// invocation owns every gate of `4 / gates` units, at least one) and
/// backward (`UNITS` units each).
pub(crate) fn sequence_threads(spec: &RnnSpec) -> (u32, u32) {
    let per_invocation = (4 / spec.mode.gates()).max(1);
    let h = spec.hidden_size;
    (h.div_ceil(per_invocation) as u32, h.div_ceil(UNITS as usize) as u32)
}

/// Why the sequence kernels with `rows` rows per workgroup cannot run
/// `spec` on a device with these limits, or `None` if they can.
pub(crate) fn sequence_unfit(limits: &wgpu::Limits, spec: &RnnSpec, rows: u32) -> Option<String> {
    if spec.proj_size > 0 {
        return Some("the sequence kernels have no projection (proj_size)".into());
    }
    let (forward, backward) = sequence_threads(spec);
    let threads = forward.max(backward);
    let max_threads = limits.max_compute_invocations_per_workgroup.min(limits.max_compute_workgroup_size_x);
    if threads > max_threads {
        return Some(format!(
            "hidden size {} needs {threads} invocations per workgroup, the adapter allows {max_threads}",
            spec.hidden_size
        ));
    }
    // Workgroup memory, in vec4s of rows of ⌈H/4⌉ (h, double-buffered,
    // forward) or ⌈G/4⌉ (dG_h, backward), plus the shared step count.
    let (h, g) = (spec.hidden_size as u64, spec.gate_size() as u64);
    let vec4s = u64::from(rows) * (2 * h.div_ceil(4)).max(g.div_ceil(4));
    let bytes = 16 * vec4s + 4;
    let limit = u64::from(limits.max_compute_workgroup_storage_size);
    if bytes > limit {
        return Some(format!(
            "{rows} rows of hidden size {} need {bytes} bytes of workgroup memory, the adapter allows {limit}",
            spec.hidden_size
        ));
    }
    None
}

/// Why the sequence-uniform kernels cannot run `spec` on `device`, or
/// `None` if they can: they need subgroups of
/// [`crate::device::SUBGROUP_SIZE`], H % 4 == 0, no projection, each gate's
/// block of W_hh (H·S·4 bytes) inside one uniform window, and the window
/// bindings (one per gate, plus the step parameters).
pub(crate) fn sequence_uniform_unfit(device: &crate::Device, spec: &RnnSpec) -> Option<String> {
    use crate::rnn::gpu::{SEQ_UNIFORM_HIDDEN, W_WINDOW_BYTES};
    let limits = device.limits();
    if device.info().subgroup_size != Some(crate::device::SUBGROUP_SIZE) {
        return Some(format!(
            "the sequence-uniform kernels need subgroups of {} lanes, adapter {} has none",
            crate::device::SUBGROUP_SIZE,
            device.info().name
        ));
    }
    if spec.proj_size > 0 {
        return Some("the sequence-uniform kernels have no projection (proj_size)".into());
    }
    let h = spec.hidden_size;
    if !h.is_multiple_of(4) || h > SEQ_UNIFORM_HIDDEN as usize {
        return Some(format!(
            "the sequence-uniform kernels need a hidden size that is a multiple of 4 and at most {SEQ_UNIFORM_HIDDEN}, got {h}"
        ));
    }
    if limits.max_uniform_buffer_binding_size < W_WINDOW_BYTES || limits.max_uniform_buffers_per_shader_stage < 5 {
        return Some(format!(
            "the sequence-uniform kernels bind 5 uniform buffers of up to {W_WINDOW_BYTES} bytes, adapter {} allows {} of {}",
            device.info().name,
            limits.max_uniform_buffers_per_shader_stage,
            limits.max_uniform_buffer_binding_size
        ));
    }
    None
}

/// The largest row count the sequence kernels can use for `spec` and a
/// batch of `batch` rows: no more than the batch needs (rounded up to a
/// power of two), none past the adapter's workgroup memory.
pub(crate) fn sequence_rows(limits: &wgpu::Limits, spec: &RnnSpec, batch: usize) -> Option<u32> {
    SEQUENCE_ROW_CHOICES
        .iter()
        .rev()
        .copied()
        .filter(|&rows| rows == 1 || (rows as usize) / 2 < batch)
        .find(|&rows| sequence_unfit(limits, spec, rows).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_parse_and_print_back() {
        for kernel in [
            RecurrentKernel::Step,
            RecurrentKernel::Sequence { rows: 1 },
            RecurrentKernel::Sequence { rows: 8 },
            RecurrentKernel::SequenceUniform,
        ] {
            assert_eq!(RecurrentKernel::parse(&kernel.to_string()).unwrap(), kernel);
        }
        assert_eq!(RecurrentKernel::parse("sequence").unwrap(), RecurrentKernel::Sequence { rows: 0 });
        for bad in ["", "steps", "sequence/3", "sequence/", "sequence/x", "sequence/16", "sequence_uniform/8"] {
            assert!(matches!(RecurrentKernel::parse(bad), Err(Error::Config(_))), "{bad:?} accepted");
        }
    }
}
