//! GPU launchers of the recurrent stack, written once for every cell (the
//! cell's own part is a [`Cell`]: its WGSL equations and the buffers they
//! bind). Per layer and direction: forward = one GEMM (input projection of
//! every packed row, b_ih fused) + the recurrence; backward = the
//! recurrence + one initial-state kernel + three GEMMs (dW_ih, dW_hh, dX)
//! and two column sums (biases). The recurrence is one fused step kernel
//! per time step, or one sequence or sequence-uniform kernel for all of
//! them ([`RecurrentKernel`]). Everything is recorded into the device's
//! open command buffer; nothing is read back.

use crate::cells::{Cell, CellTensor, RnnMode};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel, Pass, Shader};
use crate::ops::{gemm, gemm_and_sum_a, GemmOptions};
use crate::profile::{self, Family};
use crate::rnn::layer::Rnn;
use crate::rnn::packed::PackedBatch;
use crate::rnn::spec::{BIAS_HH, BIAS_IH, WEIGHT_HH, WEIGHT_HR, WEIGHT_IH};
use crate::rnn::variant::RecurrentKernel;
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup along H (the shaders' `WG` override).
const WG: u32 = 64;

/// Rows per invocation of the step kernels (their `ROWS`): every W_hh load
/// serves this many rows. On lavapipe (2 cores, the bench step) 8 rows took
/// 25 + 35 ms forward + backward, 16 rows 23 + 31; at 32 the forward's
/// per-row arrays stop fitting in registers (550 ms).
pub(crate) const ROWS: u32 = 16;
/// Hidden units per invocation of the backward step kernels, which share
/// dG loads across them (their `UNITS`).
pub(crate) const UNITS: u32 = 4;
/// Unit groups per invocation of the vec4 forward step kernel (its
/// `VEC4_GROUPS`) for a cell of `gates` gates: a group is the units whose
/// gates fill a vec4 (LSTM, GRU: 1; RNN: 4), and an invocation takes at
/// least 2 groups (each h load then serves twice the gates) and at least a
/// quad of units (its epilogue works on four consecutive units at once).
pub(crate) fn vec4_groups(gates: usize) -> u32 {
    let units_per_group = (4 / gates).max(1) as u32;
    2.max(4 / units_per_group)
}

/// Bytes of each uniform array the uniform step kernels read (their
/// `UNIFORM_STATE_VEC4S` vec4s): the 64 KiB every adapter allows a uniform
/// binding. Forward it holds h_{t-1} (B·S·4 bytes), backward half of dG_h.
pub(crate) const UNIFORM_STATE_BYTES: u64 = 65536;
/// Rows per lane of `recurrent_step_forward_vec4_uniform` (its
/// `UNIFORM_ROWS`): a subgroup of 8 lanes covers 64 rows, the bench
/// step's batch, so each W_hh load serves them all.
pub(crate) const UNIFORM_ROWS: u32 = 8;

/// Bytes of each W_hh window of the sequence-uniform kernels (their
/// `W_WINDOW_VEC4S` vec4s): the 64 KiB every adapter allows a uniform
/// binding. Window g holds gate g's block of W_hh (H·S·4 bytes).
pub(crate) const W_WINDOW_BYTES: u64 = 65536;
/// Largest H the sequence-uniform kernels run (their `SEQ_UNIFORM_HIDDEN`,
/// which sizes their private copies of a row's state): a gate's block of
/// W_hh fills a window at H = 128.
pub(crate) const SEQ_UNIFORM_HIDDEN: u32 = 128;
const _: () = assert!((SEQ_UNIFORM_HIDDEN * SEQ_UNIFORM_HIDDEN * 4) as u64 <= W_WINDOW_BYTES);

/// Rows per workgroup the sequence kernels can be built with (`SEQ_ROWS`).
pub(crate) const SEQUENCE_ROW_CHOICES: [u32; 4] = [1, 2, 4, 8];
/// The `SEQ_ROWS` of the modules the step kernels are taken from (they
/// ignore it; one value keeps them to one module per cell and pass).
pub(crate) const SEQUENCE_ROWS: u32 = 8;

crate::kernels::shader_params! {
    /// Mirrors `StepParams` in shaders/recurrent.wgsl.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub(crate) struct StepParams mirrors "StepParams" in (Shader::Recurrent {
        cell: &crate::cells::lstm::LSTM,
        pass: Pass::Forward,
        rows: SEQUENCE_ROWS,
    }) {
        t: u32,
        reverse: u32,
        hidden: u32,
        batch: u32,
        steps: u32,
        out_stride: u32,
        out_offset: u32,
        state_index: u32,
        state: u32,
        _pad: [u32; 3],
    }
}

use Access::{Read as R, ReadWrite as W};

/// `recurrent_sequence_forward`: info, w_hh (as floats and as vec4), b_hh,
/// h0, gates, out, h_prev, h_n.
const SEQUENCE_FORWARD: &[(u32, Access)] = &[(1, R), (2, R), (10, R), (3, R), (17, R), (5, W), (6, W), (7, W), (8, W)];
/// `recurrent_sequence_backward`: info, w_hh (as floats and as vec4),
/// gates, h_prev, grad_out, grad_h_n, dgates, grad_h0.
const SEQUENCE_BACKWARD: &[(u32, Access)] = &[(1, R), (2, R), (11, R), (3, W), (4, R), (5, R), (6, R), (8, W), (10, W)];

/// `recurrent_sequence_forward_uniform`: info, the four W_hh windows, then
/// `recurrent_step_forward_vec4`'s buffers but w_hh4 and state_in4 (b_hh,
/// gates, out, h_prev, h_n and the dense h state, through their vec4 views).
const SEQUENCE_UNIFORM_FORWARD: &[(u32, Access)] = &[
    (1, R),
    (44, Access::Uniform),
    (45, Access::Uniform),
    (46, Access::Uniform),
    (47, Access::Uniform),
    (33, R),
    (35, W),
    (36, W),
    (37, W),
    (38, W),
    (39, W),
];
/// `recurrent_sequence_backward_uniform`: info, the four W_hh windows, then
/// `recurrent_step_backward_vec4`'s buffers but w_hh4 and dgs_in4 (gates,
/// h_prev, grad_out, grad_h_n, dgates and the dense dG_h, as vec4 views).
const SEQUENCE_UNIFORM_BACKWARD: &[(u32, Access)] = &[
    (1, R),
    (44, Access::Uniform),
    (45, Access::Uniform),
    (46, Access::Uniform),
    (47, Access::Uniform),
    (33, W),
    (34, R),
    (35, R),
    (36, R),
    (38, W),
    (39, W),
];

/// Shared bindings of `recurrent_step_forward`, in launch order: info, w_hh,
/// b_hh, state_in, gates, out, h_prev, h_n, state_out.
const FORWARD: &[(u32, Access)] = &[(1, R), (2, R), (3, R), (4, R), (5, W), (6, W), (7, W), (8, W), (9, W)];
/// `recurrent_step_forward_vec4`: the same buffers, w_hh and state_in as
/// vec4, the others through their vec4 views (binding + 30).
const FORWARD_VEC4: &[(u32, Access)] =
    &[(1, R), (10, R), (33, R), (11, R), (35, W), (36, W), (37, W), (38, W), (39, W)];
/// `recurrent_step_forward_vec4_uniform`: the same, h_{t-1} as the uniform
/// array `state_u` (binding 41).
const FORWARD_UNIFORM: &[(u32, Access)] =
    &[(1, R), (10, R), (33, R), (41, Access::Uniform), (35, W), (36, W), (37, W), (38, W), (39, W)];
/// Shared bindings of `recurrent_step_backward`, in launch order: info,
/// w_hh, gates, h_prev, grad_out, grad_h_n, dgs_in, dgates, dgs_out.
const BACKWARD: &[(u32, Access)] = &[(1, R), (2, R), (3, W), (4, R), (5, R), (6, R), (7, R), (8, W), (9, W)];
/// `recurrent_step_backward_vec4`: the same buffers, w_hh and dgs_in as
/// vec4, the others through their vec4 views (binding + 30).
const BACKWARD_VEC4: &[(u32, Access)] =
    &[(1, R), (11, R), (33, W), (34, R), (35, R), (36, R), (12, R), (38, W), (39, W)];
/// `recurrent_step_backward_vec4_uniform`: the same, dG_h as the uniform
/// arrays dgs_lo (binding 41, in dgs_in4's place) and dgs_hi (42, last).
const BACKWARD_UNIFORM: &[(u32, Access)] = &[
    (1, R),
    (11, R),
    (33, W),
    (34, R),
    (35, R),
    (36, R),
    (41, Access::Uniform),
    (38, W),
    (39, W),
    (42, Access::Uniform),
];
/// Rows of dG_h each uniform array of `recurrent_step_backward_vec4_uniform`
/// holds (its `UNIFORM_HALF_ROWS`).
const UNIFORM_HALF_ROWS: usize = 32;
/// Shared bindings of `recurrent_grad_initial_state`: info, w_hh, dgates, grad_h0.
const INITIAL_STATE: &[(u32, Access)] = &[(1, R), (2, R), (8, W), (10, W)];
/// `recurrent_grad_initial_state_vec4`: info, dgates, grad_h0, w_hh as vec4.
const INITIAL_STATE_VEC4: &[(u32, Access)] = &[(1, R), (8, W), (10, W), (11, R)];

/// `recurrent_step_forward_projected`: the shared bindings, then h_tilde.
const FORWARD_PROJECTED: &[(u32, Access)] =
    &[(1, R), (2, R), (3, R), (4, R), (5, W), (6, W), (7, W), (8, W), (9, W), (14, W)];
/// `recurrent_project_forward`: info, w_hr, h_tilde, out, h_n, state_out.
const PROJECT_FORWARD: &[(u32, Access)] = &[(1, R), (15, R), (14, W), (6, W), (8, W), (9, W)];
/// `recurrent_step_backward_projected`: the shared bindings, then dh_rows.
const BACKWARD_PROJECTED: &[(u32, Access)] =
    &[(1, R), (2, R), (3, W), (4, R), (5, R), (6, R), (7, R), (8, W), (9, W), (14, W)];
/// `recurrent_cell_backward`: info, w_hr, dh_rows, gates, h_prev, dgates, dgs_out.
const CELL_BACKWARD: &[(u32, Access)] = &[(1, R), (15, R), (14, W), (3, W), (4, R), (8, W), (9, W)];

/// The kernels of a projected LSTM step (proj_size): the cell's step,
/// storing h̃, then h = W_hr·h̃; backward, dh per row, then the cell.
fn projected_kernels(cell: &'static Cell) -> [Kernel; 4] {
    let (fwd, bwd) = (step_shader(cell, Pass::Forward), step_shader(cell, Pass::Backward));
    [
        Kernel {
            shader: fwd,
            entry: "recurrent_step_forward_projected",
            storage: FORWARD_PROJECTED,
            cell: cell.forward,
        },
        Kernel { shader: fwd, entry: "recurrent_project_forward", storage: PROJECT_FORWARD, cell: &[] },
        Kernel { shader: bwd, entry: "recurrent_step_backward_projected", storage: BACKWARD_PROJECTED, cell: &[] },
        Kernel { shader: bwd, entry: "recurrent_cell_backward", storage: CELL_BACKWARD, cell: cell.backward },
    ]
}

/// The module of `cell`'s step kernels for `pass`.
fn step_shader(cell: &'static Cell, pass: Pass) -> Shader {
    Shader::Recurrent { cell, pass, rows: SEQUENCE_ROWS }
}

/// The sequence kernels of `cell` with `rows` rows per workgroup: forward,
/// backward.
fn sequence_kernels(cell: &'static Cell, rows: u32) -> [Kernel; 2] {
    let (fwd, bwd) =
        (Shader::Recurrent { cell, pass: Pass::Forward, rows }, Shader::Recurrent { cell, pass: Pass::Backward, rows });
    [
        Kernel {
            shader: fwd,
            entry: "recurrent_sequence_forward",
            storage: SEQUENCE_FORWARD,
            cell: cell.sequence_forward,
        },
        Kernel {
            shader: bwd,
            entry: "recurrent_sequence_backward",
            storage: SEQUENCE_BACKWARD,
            cell: cell.sequence_backward,
        },
    ]
}

/// The sequence-uniform kernels of `cell`: forward, backward.
fn sequence_uniform_kernels(cell: &'static Cell) -> [Kernel; 2] {
    [
        Kernel {
            shader: Shader::RecurrentSubgroup { cell, pass: Pass::Forward },
            entry: "recurrent_sequence_forward_uniform",
            storage: SEQUENCE_UNIFORM_FORWARD,
            cell: cell.forward_vec4,
        },
        Kernel {
            shader: Shader::RecurrentSubgroup { cell, pass: Pass::Backward },
            entry: "recurrent_sequence_backward_uniform",
            storage: SEQUENCE_UNIFORM_BACKWARD,
            cell: cell.backward_vec4,
        },
    ]
}

/// W_hh (G, S) of one layer and direction as the sequence-uniform kernels
/// read it: gate g's block of H rows at the start of window g
/// ([`W_WINDOW_BYTES`] each). Copies, not a dispatch; forward makes it and
/// backward reads the same (the weights do not change in between).
fn w_hh_windows(w_hh: &Tensor, gates: usize) -> Result<Tensor> {
    let dev = w_hh.device();
    let window = (W_WINDOW_BYTES / 4) as usize;
    let block = w_hh.numel() / gates;
    let windows = Tensor::uninit(dev, &[gates * window], DType::F32)?;
    for g in 0..gates {
        let bytes = (block * 4) as u64;
        dev.rt.copy(
            w_hh.buffer_window(w_hh.offset() + g * block, bytes)?,
            windows.buffer_window(windows.offset() + g * window, bytes)?,
        )?;
    }
    Ok(windows)
}

/// The four window bindings over [`w_hh_windows`]: gate g's window for each
/// of the cell's gates, window 0 for the bindings past them (never read).
fn window_ranges(windows: &Tensor, gates: usize) -> Result<Vec<crate::runtime::BufferRange<'_>>> {
    let window = (W_WINDOW_BYTES / 4) as usize;
    (0..4)
        .map(|g| windows.buffer_window(windows.offset() + if g < gates { g * window } else { 0 }, W_WINDOW_BYTES))
        .collect()
}

/// Rows a sequence-uniform workgroup owns: one per lane of its subgroup.
fn sequence_uniform_groups(batch: &PackedBatch) -> Result<[u32; 3]> {
    Ok([u32_of("recurrent sequence", batch.batch())?.div_ceil(crate::device::SUBGROUP_SIZE), 1, 1])
}

/// The override constants of a sequence kernel for `spec` with `threads`
/// invocations per workgroup.
fn sequence_constants(spec: &crate::rnn::RnnSpec, threads: u32) -> Vec<(&'static str, f64)> {
    let mut c = mode_constants(spec.mode);
    c.push(("SEQ_WG", f64::from(threads)));
    c.push(("SEQ_HIDDEN", spec.hidden_size as f64));
    c.push(("SEQ_VEC4", if spec.hidden_size.is_multiple_of(4) { 1.0 } else { 0.0 }));
    c
}

/// How the step kernels read: one float at a time (any H), as vec4
/// (H % 4 == 0, no projection), or as vec4 with the rows' operand shared
/// across a subgroup (the same, on a device with subgroups of
/// [`crate::device::SUBGROUP_SIZE`]). All three compute the same bits.
/// A fourth, `UniformState`, is the subgroup kernel with the operands'
/// roles swapped (lanes own rows and share W_hh) and the rows' operand
/// (h_{t-1} forward, dG_h backward) read from uniform arrays, where it
/// fits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepReads {
    Scalar,
    Vec4,
    Subgroup,
    UniformState,
}

impl StepReads {
    fn for_layer(dev: &Device, vec4: bool) -> Self {
        match (vec4, dev.info().subgroup_size) {
            (false, _) => StepReads::Scalar,
            (true, Some(crate::device::SUBGROUP_SIZE)) => StepReads::Subgroup,
            (true, _) => StepReads::Vec4,
        }
    }

    /// The backward's reads for `batch` rows of `gates` gate gradients.
    fn for_backward(dev: &Device, vec4: bool, batch: usize, gates: usize) -> Self {
        let fits = batch <= 2 * UNIFORM_HALF_ROWS && (UNIFORM_HALF_ROWS * gates * 4) as u64 <= UNIFORM_STATE_BYTES;
        Self::for_layer(dev, vec4).uniform_where(dev, fits)
    }

    /// The forward's reads for states of `batch` rows × `state` features.
    fn for_forward(dev: &Device, vec4: bool, batch: usize, state: usize) -> Self {
        Self::for_layer(dev, vec4).uniform_where(dev, (batch * state * 4) as u64 <= UNIFORM_STATE_BYTES)
    }

    /// `UniformState` in place of `Subgroup` where the operand `fits` and
    /// `dev` can bind the uniform arrays.
    fn uniform_where(self, dev: &Device, fits: bool) -> Self {
        let binds = dev.limits().max_uniform_buffer_binding_size >= UNIFORM_STATE_BYTES;
        if self == StepReads::Subgroup && fits && binds {
            StepReads::UniformState
        } else {
            self
        }
    }
}

/// The forward step kernel of `cell` for `reads`.
fn forward_kernel(cell: &'static Cell, reads: StepReads) -> Kernel {
    let (shader, entry, storage) = match reads {
        StepReads::Scalar => (step_shader(cell, Pass::Forward), "recurrent_step_forward", FORWARD),
        StepReads::Vec4 => (step_shader(cell, Pass::Forward), "recurrent_step_forward_vec4", FORWARD_VEC4),
        StepReads::Subgroup => (
            Shader::RecurrentSubgroup { cell, pass: Pass::Forward },
            "recurrent_step_forward_vec4_subgroup",
            FORWARD_VEC4,
        ),
        StepReads::UniformState => (
            Shader::RecurrentSubgroup { cell, pass: Pass::Forward },
            "recurrent_step_forward_vec4_uniform",
            FORWARD_UNIFORM,
        ),
    };
    Kernel { shader, entry, storage, cell: if reads == StepReads::Scalar { cell.forward } else { cell.forward_vec4 } }
}

/// The backward step kernel of `cell` for `reads`.
fn backward_kernel(cell: &'static Cell, reads: StepReads) -> Kernel {
    let (shader, entry, storage) = match reads {
        StepReads::Scalar => (step_shader(cell, Pass::Backward), "recurrent_step_backward", BACKWARD),
        StepReads::Vec4 => (step_shader(cell, Pass::Backward), "recurrent_step_backward_vec4", BACKWARD_VEC4),
        StepReads::Subgroup => (
            Shader::RecurrentSubgroup { cell, pass: Pass::Backward },
            "recurrent_step_backward_vec4_subgroup",
            BACKWARD_VEC4,
        ),
        StepReads::UniformState => (
            Shader::RecurrentSubgroup { cell, pass: Pass::Backward },
            "recurrent_step_backward_vec4_uniform",
            BACKWARD_UNIFORM,
        ),
    };
    Kernel { shader, entry, storage, cell: if reads == StepReads::Scalar { cell.backward } else { cell.backward_vec4 } }
}

/// The initial-state gradient kernel of `cell` (vec4 reads and a tile of
/// rows when H % 4 == 0 and there is no projection).
fn initial_state_kernel(cell: &'static Cell, vec4: bool) -> Kernel {
    let shader = step_shader(cell, Pass::Backward);
    let (entry, storage) = if vec4 {
        ("recurrent_grad_initial_state_vec4", INITIAL_STATE_VEC4)
    } else {
        ("recurrent_grad_initial_state", INITIAL_STATE)
    };
    Kernel { shader, entry, storage, cell: cell.initial_state }
}

/// What a packed forward pass returns and saves for backward.
#[derive(Debug, Clone)]
pub struct PackedForward {
    /// The layer that ran it (backward checks it is given the same).
    spec: crate::rnn::RnnSpec,
    /// The packed batch layout.
    pub batch: PackedBatch,
    /// (N, D·H) output of the last layer, packed.
    pub output: Tensor,
    /// (L·D, B, H)
    pub h_n: Tensor,
    /// (L·D, B, H) for LSTM.
    pub c_n: Option<Tensor>,
    c0: Option<Tensor>,
    layers: Vec<LayerSaved>,
    dropout: Option<(f32, u64)>,
    /// The recurrent kernels forward ran with; backward uses the same.
    variant: RecurrentKernel,
}

#[derive(Debug, Clone)]
struct LayerSaved {
    /// (N, In): the layer's input after dropout.
    input: Tensor,
    dirs: Vec<DirSaved>,
}

#[derive(Debug, Clone)]
struct DirSaved {
    /// (N, G): what the cell saved there (its activations).
    gates: Tensor,
    /// (N, H): the cell's [`CellTensor::Saved`] (LSTM's c, GRU's W_hn h + b_hn).
    saved: Option<Tensor>,
    /// (N, S) h_{t-1} per packed row.
    h_prev: Tensor,
    /// (N, H) the cell's output before the projection (proj_size only).
    h_tilde: Option<Tensor>,
    /// W_hh as the sequence-uniform kernels read it ([`w_hh_windows`]).
    w_windows: Option<Tensor>,
}

/// Checks the device can bind what `mode`'s recurrent kernels need.
pub(crate) fn check_device(device: &Device, spec: &crate::rnn::RnnSpec) -> Result<()> {
    let mode = spec.mode;
    let cell = mode.cell();
    let mut kernels = vec![
        forward_kernel(cell, StepReads::Scalar),
        backward_kernel(cell, StepReads::Scalar),
        initial_state_kernel(cell, false),
        initial_state_kernel(cell, true),
    ];
    if spec.proj_size > 0 {
        kernels.extend(projected_kernels(cell));
    }
    let needed = kernels.iter().map(Kernel::binding_count).max().unwrap_or(0) as u32;
    let have = device.info().max_storage_buffers_per_shader_stage;
    if have < needed {
        return Err(Error::Config(format!(
            "the {} kernels bind {needed} storage buffers, adapter {} allows {have}",
            mode.name(),
            device.info().name
        )));
    }
    Ok(())
}

fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    crate::ops::dim_u32(op, "size", v)
}

/// Validates an optional (L·D, B, H) state tensor, or makes zeros.
fn state_or_zeros(
    op: &'static str,
    name: &str,
    t: Option<&Tensor>,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor> {
    match t {
        Some(t) if t.shape() == shape && t.dtype() == DType::F32 => Ok(t.clone()),
        Some(t) => Err(Error::Shape {
            op,
            message: format!("{name} must be an f32 tensor of shape {shape:?}, got {:?}", t.shape()),
        }),
        None => Tensor::zeros(device, shape),
    }
}

/// [`state_or_zeros`] for a cell-state tensor: present (given or zeros) for
/// a cell with a state, absent otherwise, and an error if given to another.
fn cell_state_or_zeros(
    op: &'static str,
    name: &str,
    mode: RnnMode,
    t: Option<&Tensor>,
    shape: &[usize],
    device: &Device,
) -> Result<Option<Tensor>> {
    match (mode.has_cell_state(), t) {
        (true, t) => state_or_zeros(op, name, t, shape, device).map(Some),
        (false, None) => Ok(None),
        (false, Some(_)) => Err(Error::Shape {
            op,
            message: format!("{name} is only for cells with a cell state (lstm), this is {}", mode.name()),
        }),
    }
}

/// The `WG` override and the mode's own (RNN's `RELU`).
fn mode_constants(mode: RnnMode) -> Vec<(&'static str, f64)> {
    let mut c = vec![("WG", f64::from(WG))];
    c.extend_from_slice(mode.constants());
    c
}

/// Step `k` of the processing order of direction `dir` over `steps` steps.
fn step_time(dir: usize, k: usize, steps: usize, backward: bool) -> usize {
    // Forward direction runs t ascending; reverse descending; backward
    // passes run each direction in the opposite order.
    if (dir == 1) != backward {
        steps - 1 - k
    } else {
        k
    }
}

/// The tensor a cell binding names, from what the launcher holds; a cell
/// that binds one the launcher lacks is an error naming both.
fn cell_tensor<'a>(cell: &Cell, kind: CellTensor, have: &[(CellTensor, Option<&'a Tensor>)]) -> Result<&'a Tensor> {
    have.iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, t)| *t)
        .ok_or_else(|| Error::Config(format!("cell {} binds {kind:?}, which this pass does not provide", cell.name)))
}

pub(crate) fn forward(
    rnn: &Rnn,
    x: &Tensor,
    batch: &PackedBatch,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    dropout: Option<(f32, u64)>,
    forced: Option<RecurrentKernel>,
) -> Result<PackedForward> {
    const OP: &str = "Rnn::forward";
    let spec = *rnn.spec();
    let cell = spec.mode.cell();
    let dev = x.device();
    let (n, b, h, dirs) = (batch.total(), batch.batch(), spec.hidden_size, spec.directions());
    let g = spec.gate_size();
    if x.shape() != [n, spec.input_size] || x.dtype() != DType::F32 {
        return Err(Error::Shape {
            op: OP,
            message: format!("packed input must be f32 ({n}, {}), got {:?}", spec.input_size, x.shape()),
        });
    }
    // h has S features (P with a projection), the cell state H.
    let sz = spec.state_size();
    // The activations grow with the data (packed steps = Σ lengths): name
    // the largest before anything is recorded.
    let mode_name = spec.mode.name();
    dev.check_tensor(&format!("{mode_name} gate activations ({n} packed steps × {g})"), &[n, g])?;
    dev.check_tensor(&format!("{mode_name} layer output ({n} packed steps)"), &[n, dirs * sz])?;
    let (h_shape, c_shape) = ([spec.num_layers * dirs, b, sz], [spec.num_layers * dirs, b, h]);
    // Zero initial states start the step kernels' dense states as buffer
    // clears instead of gathers.
    let zero_start = (h0.is_none(), c0.is_none());
    let h0 = state_or_zeros(OP, "h0", h0, &h_shape, dev)?;
    let c0 = cell_state_or_zeros(OP, "c0", spec.mode, c0, &c_shape, dev)?;
    let h_n = Tensor::uninit(dev, &h_shape, DType::F32)?;
    let c_n = c0.as_ref().map(|_| Tensor::uninit(dev, &c_shape, DType::F32)).transpose()?;
    let projected = spec.proj_size > 0;
    let steps = batch.longest();
    let constants = mode_constants(spec.mode);
    let [projected_step, project, _, _] = projected_kernels(cell);
    let vec4 = !projected && h.is_multiple_of(4) && sz.is_multiple_of(4);
    let reads = StepReads::for_forward(dev, vec4, b, sz);
    let kernel = if projected { projected_step } else { forward_kernel(cell, reads) };
    let uniform_state = !projected && reads == StepReads::UniformState;
    // Each invocation owns every gate of max(1, 4 / gates) units, times
    // VEC4_GROUPS in the vec4 kernel.
    let units_per_invocation = (4 / cell.gates).max(1) as u32 * if vec4 { vec4_groups(cell.gates) } else { 1 };
    let unit_groups = u32_of(OP, h)?.div_ceil(units_per_invocation).div_ceil(WG);
    // The uniform kernel: one subgroup per workgroup, each owning 8 groups of
    // max(1, 4 / gates) units (and 8·UNIFORM_ROWS rows along y).
    let grid_x = if uniform_state {
        u32_of(OP, h)?.div_ceil(crate::device::SUBGROUP_SIZE * (4 / cell.gates).max(1) as u32)
    } else {
        unit_groups
    };
    let rt = &dev.rt;
    let variant = match forced {
        Some(variant) => variant,
        None => crate::rnn::tune::recurrent_kernel(dev, &spec, batch)?,
    };
    let seq_uniform = variant == RecurrentKernel::SequenceUniform;
    if let Some(why) = seq_uniform.then(|| crate::rnn::variant::sequence_uniform_unfit(dev, &spec)).flatten() {
        return Err(Error::Config(why));
    }
    let [seq_uniform_forward, _] = sequence_uniform_kernels(cell);

    let mut layer_input = x.clone();
    let mut layers = Vec::with_capacity(spec.num_layers);
    for layer in 0..spec.num_layers {
        if let (true, Some((p, seed))) = (layer > 0, dropout) {
            layer_input = crate::ops::dropout_packed(&layer_input, &batch.pack_index, layer, p, seed)?;
        }
        let out = Tensor::uninit(dev, &[n, dirs * sz], DType::F32)?;
        let mut saved = Vec::with_capacity(dirs);
        for dir in 0..dirs {
            let params = &rnn.params()[layer * dirs + dir];
            let gates = Tensor::uninit(dev, &[n, g], DType::F32)?;
            let proj = GemmOptions { trans_b: true, ..GemmOptions::default() };
            {
                let _family = profile::scope(Family::InputProjection);
                gemm(&layer_input, &params.weight_ih().value, Some(&params.bias_ih().value), &gates, proj)?;
            }
            let cell_saved =
                cell.uses(CellTensor::Saved).then(|| Tensor::uninit(dev, &[n, h], DType::F32)).transpose()?;
            let h_prev = Tensor::uninit(dev, &[n, sz], DType::F32)?;
            let h_tilde = projected.then(|| Tensor::uninit(dev, &[n, h], DType::F32)).transpose()?;
            if let RecurrentKernel::Sequence { rows } = variant {
                let bufs = SequenceForward {
                    batch,
                    spec: &spec,
                    layer,
                    dir,
                    params,
                    h0: &h0,
                    c0: c0.as_ref(),
                    gates: &gates,
                    saved: cell_saved.as_ref(),
                    out: &out,
                    h_prev: &h_prev,
                    h_n: &h_n,
                    c_n: c_n.as_ref(),
                };
                sequence_forward(&bufs, rows)?;
                saved.push(DirSaved { gates, saved: cell_saved, h_prev, h_tilde, w_windows: None });
                continue;
            }
            // Dense (B, S) states in sorted row order: h double-buffered
            // (both start as h0), then the cell state (B, H).
            let state_index = layer * dirs + dir;
            // For the uniform kernel, at the start of buffers that hold the
            // whole uniform array.
            let state = || {
                let len = if uniform_state { UNIFORM_STATE_BYTES as usize / 4 } else { b * sz };
                let t =
                    if zero_start.0 { Tensor::zeros(dev, &[len])? } else { Tensor::uninit(dev, &[len], DType::F32)? };
                t.storage_view(0, &[b, sz])
            };
            // The sequence-uniform kernel keeps one h, rewritten in place.
            let h_a = state()?;
            let h_b = if seq_uniform { h_a.clone() } else { state()? };
            if !zero_start.0 {
                sorted_state_into(batch, &h0, state_index, &h_a)?;
                if !seq_uniform {
                    crate::ops::elementwise_copy(&h_a, &h_b)?;
                }
            }
            let cell_state = match (&c0, zero_start.1) {
                (None, _) => None,
                (Some(_), true) => Some(Tensor::zeros(dev, &[b, h])?),
                (Some(c), false) => Some(sorted_state(batch, c, state_index)?),
            };
            let have = [
                (CellTensor::State, cell_state.as_ref()),
                (CellTensor::Saved, cell_saved.as_ref()),
                (CellTensor::FinalState, c_n.as_ref()),
            ];
            let own: Vec<crate::runtime::BufferRange<'_>> = cell
                .forward
                .iter()
                .map(|b| cell_tensor(cell, b.tensor, &have).map(Tensor::buffer))
                .collect::<Result<_>>()?;
            if seq_uniform {
                let windows = w_hh_windows(&params.weight_hh().value, cell.gates)?;
                {
                    let sp = step_params(batch, &spec, layer, dir, 0)?;
                    let mut bufs = vec![batch.info.buffer()];
                    bufs.extend(window_ranges(&windows, cell.gates)?);
                    bufs.extend([
                        params.bias_hh().value.buffer(),
                        gates.buffer(),
                        out.buffer(),
                        h_prev.buffer(),
                        h_n.buffer(),
                        h_a.buffer(),
                    ]);
                    bufs.extend(&own);
                    rt.launch(seq_uniform_forward, &constants, &sp, &bufs, sequence_uniform_groups(batch)?)?;
                }
                saved.push(DirSaved { gates, saved: cell_saved, h_prev, h_tilde, w_windows: Some(windows) });
                continue;
            }
            for k in 0..steps {
                let t = step_time(dir, k, steps, false);
                let sp = step_params(batch, &spec, layer, dir, t)?;
                let live = u32_of(OP, batch.batch_sizes()[t])?;
                let (s_in, s_out) = if k % 2 == 0 { (&h_a, &h_b) } else { (&h_b, &h_a) };
                let tiles =
                    live.div_ceil(if uniform_state { crate::device::SUBGROUP_SIZE * UNIFORM_ROWS } else { ROWS });
                let mut bufs = vec![
                    batch.info.buffer(),
                    params.weight_hh().value.buffer(),
                    params.bias_hh().value.buffer(),
                    if uniform_state { s_in.buffer_prefix(UNIFORM_STATE_BYTES)? } else { s_in.buffer() },
                    gates.buffer(),
                    out.buffer(),
                    h_prev.buffer(),
                    h_n.buffer(),
                    s_out.buffer(),
                ];
                if let Some(ht) = &h_tilde {
                    bufs.push(ht.buffer());
                }
                bufs.extend(&own);
                rt.launch(kernel, &constants, &sp, &bufs, [grid_x, tiles, 1])?;
                if let (Some(ht), Some(w_hr)) = (&h_tilde, params.weight_hr()) {
                    let bufs = [
                        batch.info.buffer(),
                        w_hr.value.buffer(),
                        ht.buffer(),
                        out.buffer(),
                        h_n.buffer(),
                        s_out.buffer(),
                    ];
                    rt.launch(project, &constants, &sp, &bufs, [sp.state.div_ceil(WG), tiles, 1])?;
                }
            }
            saved.push(DirSaved { gates, saved: cell_saved, h_prev, h_tilde, w_windows: None });
        }
        layers.push(LayerSaved { input: layer_input, dirs: saved });
        layer_input = out;
    }
    Ok(PackedForward { spec, batch: batch.clone(), output: layer_input, h_n, c_n, c0, layers, dropout, variant })
}

/// What the sequence kernels bind as W_hh read as vec4: W_hh when H % 4 ==
/// 0 (`SEQ_VEC4`); otherwise the kernel never reads it, and `info` stands
/// in, since a vec4 binding needs 16 bytes and W_hh of H = 1 has fewer.
fn vec4_weights<'a>(spec: &crate::rnn::RnnSpec, w_hh: &'a Tensor, info: &'a Tensor) -> crate::runtime::BufferRange<'a> {
    if spec.hidden_size.is_multiple_of(4) {
        w_hh.buffer()
    } else {
        info.buffer()
    }
}

/// What the sequence forward kernel of one layer and direction binds.
struct SequenceForward<'a> {
    batch: &'a PackedBatch,
    spec: &'a crate::rnn::RnnSpec,
    layer: usize,
    dir: usize,
    params: &'a crate::rnn::LayerParams,
    h0: &'a Tensor,
    c0: Option<&'a Tensor>,
    gates: &'a Tensor,
    saved: Option<&'a Tensor>,
    out: &'a Tensor,
    h_prev: &'a Tensor,
    h_n: &'a Tensor,
    c_n: Option<&'a Tensor>,
}

/// Every step of one layer and direction in one dispatch: the
/// sequence-resident forward, `rows` batch rows per workgroup.
fn sequence_forward(f: &SequenceForward, rows: u32) -> Result<()> {
    const OP: &str = "Rnn::forward";
    let (spec, cell) = (f.spec, f.spec.mode.cell());
    let dev = f.gates.device();
    let rt = &dev.rt;
    let [forward, _] = sequence_kernels(cell, rows);
    let sp = step_params(f.batch, spec, f.layer, f.dir, 0)?;
    let h = spec.hidden_size;
    let w_hh = &f.params.weight_hh().value;
    let cell_state = f.c0.map(|_| Tensor::uninit(dev, &[f.batch.batch(), h], DType::F32)).transpose()?;
    let have = [
        (CellTensor::State, cell_state.as_ref()),
        (CellTensor::Saved, f.saved),
        (CellTensor::FinalState, f.c_n),
        (CellTensor::InitialState, f.c0),
    ];
    let mut bufs = vec![
        f.batch.info.buffer(),
        w_hh.buffer(),
        vec4_weights(f.spec, w_hh, &f.batch.info),
        f.params.bias_hh().value.buffer(),
        f.h0.buffer(),
        f.gates.buffer(),
        f.out.buffer(),
        f.h_prev.buffer(),
        f.h_n.buffer(),
    ];
    for b in cell.sequence_forward {
        bufs.push(cell_tensor(cell, b.tensor, &have)?.buffer());
    }
    let (threads, _) = crate::rnn::variant::sequence_threads(spec);
    let tiles = u32_of(OP, f.batch.batch())?.div_ceil(rows);
    rt.launch(forward, &sequence_constants(spec, threads), &sp, &bufs, [tiles, 1, 1])
}

/// What the sequence backward kernel of one layer and direction binds.
struct SequenceBackward<'a> {
    batch: &'a PackedBatch,
    spec: &'a crate::rnn::RnnSpec,
    layer: usize,
    dir: usize,
    params: &'a crate::rnn::LayerParams,
    saved: &'a DirSaved,
    c0: Option<&'a Tensor>,
    grad_out: &'a Tensor,
    grad_h_n: &'a Tensor,
    grad_c_n: Option<&'a Tensor>,
    dgates: &'a Tensor,
    hidden_grads: Option<&'a Tensor>,
    grad_h0: &'a Tensor,
    grad_c0: Option<&'a Tensor>,
}

/// Every step of one layer and direction backward, and the initial-state
/// gradient, in one dispatch: the sequence-resident backward.
fn sequence_backward(f: &SequenceBackward, rows: u32) -> Result<()> {
    const OP: &str = "Rnn::backward";
    let (spec, cell) = (f.spec, f.spec.mode.cell());
    let dev = f.dgates.device();
    let [_, backward] = sequence_kernels(cell, rows);
    let sp = step_params(f.batch, spec, f.layer, f.dir, 0)?;
    // The carried gradient (B, H), sorted rows: the kernel starts it.
    let carry = cell
        .uses(CellTensor::Carry)
        .then(|| Tensor::uninit(dev, &[f.batch.batch(), spec.hidden_size], DType::F32))
        .transpose()?;
    let have = [
        (CellTensor::Saved, f.saved.saved.as_ref()),
        (CellTensor::InitialState, f.c0),
        (CellTensor::Carry, carry.as_ref()),
        (CellTensor::HiddenGrads, f.hidden_grads),
        (CellTensor::InitialStateGrad, f.grad_c0),
        (CellTensor::FinalStateGrad, f.grad_c_n),
    ];
    let mut bufs = vec![
        f.batch.info.buffer(),
        f.params.weight_hh().value.buffer(),
        vec4_weights(f.spec, &f.params.weight_hh().value, &f.batch.info),
        f.saved.gates.buffer(),
        f.saved.h_prev.buffer(),
        f.grad_out.buffer(),
        f.grad_h_n.buffer(),
        f.dgates.buffer(),
        f.grad_h0.buffer(),
    ];
    for b in cell.sequence_backward {
        bufs.push(cell_tensor(cell, b.tensor, &have)?.buffer());
    }
    let (_, threads) = crate::rnn::variant::sequence_threads(spec);
    let tiles = u32_of(OP, f.batch.batch())?.div_ceil(rows);
    dev.rt.launch(backward, &sequence_constants(spec, threads), &sp, &bufs, [tiles, 1, 1])
}

/// Rows of `state_index` of an (L·D, B, H) state, in sorted row order: (B, H).
fn sorted_state(batch: &PackedBatch, state: &Tensor, state_index: usize) -> Result<Tensor> {
    let &[_, b, h] = state.shape() else { unreachable!("state tensors are validated (L·D, B, H)") };
    let out = Tensor::uninit(state.device(), &[b, h], DType::F32)?;
    sorted_state_into(batch, state, state_index, &out)?;
    Ok(out)
}

/// [`sorted_state`] into `out` (B, H).
fn sorted_state_into(batch: &PackedBatch, state: &Tensor, state_index: usize, out: &Tensor) -> Result<()> {
    let &[states, b, h] = state.shape() else { unreachable!("state tensors are validated (L·D, B, H)") };
    let idx: Vec<u32> = batch.sorted_rows().iter().map(|&r| (state_index * b + r) as u32).collect();
    let idx = Tensor::from_u32(state.device(), &idx, &[b])?;
    crate::ops::gather_rows_into(&state.reshape(&[states * b, h])?, &idx, out)
}

fn step_params(
    batch: &PackedBatch,
    spec: &crate::rnn::RnnSpec,
    layer: usize,
    dir: usize,
    t: usize,
) -> Result<StepParams> {
    const OP: &str = "recurrent step";
    let (h, s, dirs) = (spec.hidden_size, spec.state_size(), spec.directions());
    Ok(StepParams {
        t: u32_of(OP, t)?,
        reverse: u32_of(OP, dir)?,
        hidden: u32_of(OP, h)?,
        batch: u32_of(OP, batch.batch())?,
        steps: u32_of(OP, batch.max_len())?,
        out_stride: u32_of(OP, dirs * s)?,
        out_offset: u32_of(OP, dir * s)?,
        state_index: u32_of(OP, layer * dirs + dir)?,
        state: u32_of(OP, s)?,
        _pad: [0; 3],
    })
}

/// Where [`backward`] puts the gradients it does not return.
pub(crate) struct GradTargets<'a> {
    /// Per (layer, dir), one tensor per parameter in order.
    pub params: &'a [Vec<Tensor>],
    /// Add to what `params` hold instead of overwriting it.
    pub accumulate: bool,
    /// (L·D, B, S) for the h0 gradient; `None` skips it.
    pub h0: Option<&'a Tensor>,
}

/// Backward pass into `targets`. Returns the gradients of the packed input
/// and c0.
pub(crate) fn backward(
    rnn: &Rnn,
    fwd: &PackedForward,
    grad_output: &Tensor,
    grad_h_n: Option<&Tensor>,
    grad_c_n: Option<&Tensor>,
    targets: GradTargets<'_>,
) -> Result<(Tensor, Option<Tensor>)> {
    let GradTargets { params: param_grads, accumulate, h0: grad_h0 } = targets;
    const OP: &str = "Rnn::backward";
    let spec = *rnn.spec();
    let cell = spec.mode.cell();
    if fwd.spec != spec {
        return Err(Error::Shape {
            op: OP,
            message: format!("the forward pass was run by a different layer ({:?}, this is {:?})", fwd.spec, spec),
        });
    }
    let batch = &fwd.batch;
    let dev = grad_output.device();
    let (n, b, h, dirs, g) = (batch.total(), batch.batch(), spec.hidden_size, spec.directions(), spec.gate_size());
    let sz = spec.state_size();
    if grad_output.shape() != [n, dirs * sz] {
        return Err(Error::Shape {
            op: OP,
            message: format!("packed grad_output must be ({n}, {}), got {:?}", dirs * sz, grad_output.shape()),
        });
    }
    let (h_shape, c_shape) = ([spec.num_layers * dirs, b, sz], [spec.num_layers * dirs, b, h]);
    let grad_h_n = state_or_zeros(OP, "grad_h_n", grad_h_n, &h_shape, dev)?;
    let grad_c_n = cell_state_or_zeros(OP, "grad_c_n", spec.mode, grad_c_n, &c_shape, dev)?;
    // The sequence kernels store the h0 gradient on their way: without a
    // destination they get scratch. The step kernels need a dispatch per
    // (layer, direction) for it, skipped without one (an initial state
    // that is no variable, as zeros from `None` are).
    let scratch_h0;
    let (grad_h0, want_h0) = match grad_h0 {
        Some(t) if t.shape() != h_shape => {
            return Err(Error::Shape { op: OP, message: format!("grad_h0 must be {h_shape:?}, got {:?}", t.shape()) });
        }
        Some(t) => (t, true),
        None => {
            scratch_h0 = Tensor::uninit(dev, &h_shape, DType::F32)?;
            (&scratch_h0, false)
        }
    };
    let grad_c0 = fwd.c0.as_ref().map(|_| Tensor::uninit(dev, &c_shape, DType::F32)).transpose()?;
    let steps = batch.longest();
    let constants = mode_constants(spec.mode);
    let [_, _, projected_step, cell_step] = projected_kernels(cell);
    let projected = spec.proj_size > 0;
    let vec4 = !projected && h.is_multiple_of(4) && sz.is_multiple_of(4);
    let reads = StepReads::for_backward(dev, vec4, b, g);
    let step_kernel = if projected { projected_step } else { backward_kernel(cell, reads) };
    let uniform_dgs = !projected && reads == StepReads::UniformState;
    let initial_kernel = initial_state_kernel(cell, vec4);
    let rt = &dev.rt;
    let variant = fwd.variant;
    let [_, seq_uniform_backward] = sequence_uniform_kernels(cell);

    let fits = param_grads.len() == rnn.params().len()
        && param_grads
            .iter()
            .zip(rnn.params())
            .all(|(g, p)| g.len() == p.0.len() && g.iter().zip(p.iter()).all(|(g, p)| g.shape() == p.shape()));
    if !fits {
        return Err(Error::Shape {
            op: OP,
            message: format!(
                "{} gradient sets for {} (layer, direction) pairs, or a gradient of another shape",
                param_grads.len(),
                spec.num_layers * dirs
            ),
        });
    }
    let beta_acc = if accumulate { 1.0 } else { 0.0 };
    // The step kernels run over the S features of h, UNITS each; with a
    // projection the cell kernel then runs over the H units, one each.
    let unit_groups = u32_of(OP, sz)?.div_ceil(UNITS).div_ceil(WG);
    let cell_groups = u32_of(OP, h)?.div_ceil(WG);
    let mut d_out = grad_output.clone();
    for layer in (0..spec.num_layers).rev() {
        let saved = &fwd.layers[layer];
        let in_size = spec.layer_input_size(layer);
        let d_in = Tensor::uninit(dev, &[n, in_size], DType::F32)?;
        for dir in 0..dirs {
            let idx = layer * dirs + dir;
            let params = &rnn.params()[idx];
            let s = &saved.dirs[dir];
            let dgx = Tensor::uninit(dev, &[n, g], DType::F32)?;
            let dgh =
                cell.uses(CellTensor::HiddenGrads).then(|| Tensor::uninit(dev, &[n, g], DType::F32)).transpose()?;
            let dh_rows = projected.then(|| Tensor::uninit(dev, &[n, sz], DType::F32)).transpose()?;
            if let RecurrentKernel::Sequence { rows } = variant {
                let bufs = SequenceBackward {
                    batch,
                    spec: &spec,
                    layer,
                    dir,
                    params,
                    saved: s,
                    c0: fwd.c0.as_ref(),
                    grad_out: &d_out,
                    grad_h_n: &grad_h_n,
                    grad_c_n: grad_c_n.as_ref(),
                    dgates: &dgx,
                    hidden_grads: dgh.as_ref(),
                    grad_h0,
                    grad_c0: grad_c0.as_ref(),
                };
                sequence_backward(&bufs, rows)?;
            } else {
                // Dense state in sorted row order: the hidden-side dG
                // double-buffered from zero, and the cell's carried gradient
                // (from grad_c_n for a cell with a state, else from zero).
                let state_index = layer * dirs + dir;
                // The uniform kernel binds a whole uniform array from rows 0
                // and 32: the buffers hold both.
                let dg = || -> Result<Tensor> {
                    if uniform_dgs {
                        let len = UNIFORM_HALF_ROWS * g + UNIFORM_STATE_BYTES as usize / 4;
                        Tensor::zeros(dev, &[len])?.storage_view(0, &[b, g])
                    } else {
                        Tensor::zeros(dev, &[b, g])
                    }
                };
                // The sequence-uniform kernel keeps one dG_h, rewritten in place.
                let seq_uniform = variant == RecurrentKernel::SequenceUniform;
                let dg_a = dg()?;
                let dg_b = if seq_uniform { dg_a.clone() } else { dg()? };
                let carry = match (cell.uses(CellTensor::Carry), &grad_c_n) {
                    (false, _) => None,
                    (true, Some(gc)) => Some(sorted_state(batch, gc, state_index)?),
                    (true, None) => Some(Tensor::zeros(dev, &[b, h])?),
                };
                let have = [
                    (CellTensor::Saved, s.saved.as_ref()),
                    (CellTensor::InitialState, fwd.c0.as_ref()),
                    (CellTensor::Carry, carry.as_ref()),
                    (CellTensor::HiddenGrads, dgh.as_ref()),
                    (CellTensor::InitialStateGrad, grad_c0.as_ref()),
                ];
                let own = |bindings: &[crate::cells::CellBinding]| -> Result<Vec<crate::runtime::BufferRange<'_>>> {
                    bindings.iter().map(|b| cell_tensor(cell, b.tensor, &have).map(Tensor::buffer)).collect()
                };
                // The cell's backward buffers: bound by the step kernel, or with a
                // projection by the cell kernel that follows it.
                let cell_own = own(cell.backward)?;
                let step_own: &[crate::runtime::BufferRange<'_>] = if projected { &[] } else { &cell_own };
                // The sequence-uniform kernel runs every step in one dispatch.
                if seq_uniform {
                    let windows = s.w_windows.as_ref().ok_or_else(|| {
                        Error::Config("the sequence-uniform forward pass kept no W_hh windows".into())
                    })?;
                    let sp = step_params(batch, &spec, layer, dir, 0)?;
                    let mut bufs = vec![batch.info.buffer()];
                    bufs.extend(window_ranges(windows, cell.gates)?);
                    bufs.extend([
                        s.gates.buffer(),
                        s.h_prev.buffer(),
                        d_out.buffer(),
                        grad_h_n.buffer(),
                        dgx.buffer(),
                        dg_a.buffer(),
                    ]);
                    bufs.extend(step_own);
                    rt.launch(seq_uniform_backward, &constants, &sp, &bufs, sequence_uniform_groups(batch)?)?;
                }
                let step_dispatches = if seq_uniform { 0 } else { steps };
                for k in 0..step_dispatches {
                    let t = step_time(dir, k, steps, true);
                    let sp = step_params(batch, &spec, layer, dir, t)?;
                    let live = u32_of(OP, batch.batch_sizes()[t])?;
                    let tiles = if uniform_dgs {
                        // One subgroup per workgroup, 8 quads of units each; one tile of rows.
                        [sp.state.div_ceil(crate::device::SUBGROUP_SIZE * 4), 1, 1]
                    } else {
                        [unit_groups, live.div_ceil(ROWS), 1]
                    };
                    let (dg_in, dg_out) = if k % 2 == 0 { (&dg_a, &dg_b) } else { (&dg_b, &dg_a) };
                    let dg_in_range =
                        if uniform_dgs { dg_in.buffer_prefix(UNIFORM_STATE_BYTES)? } else { dg_in.buffer() };
                    let mut bufs = vec![
                        batch.info.buffer(),
                        params.weight_hh().value.buffer(),
                        s.gates.buffer(),
                        s.h_prev.buffer(),
                        d_out.buffer(),
                        grad_h_n.buffer(),
                        dg_in_range,
                        dgx.buffer(),
                        dg_out.buffer(),
                    ];
                    if let Some(dh) = &dh_rows {
                        bufs.push(dh.buffer());
                    }
                    if uniform_dgs {
                        bufs.push(dg_in.buffer_window(UNIFORM_HALF_ROWS * g, UNIFORM_STATE_BYTES)?);
                    }
                    bufs.extend(step_own);
                    rt.launch(step_kernel, &constants, &sp, &bufs, tiles)?;
                    if let (Some(dh), Some(w_hr)) = (&dh_rows, params.weight_hr()) {
                        let mut bufs = vec![
                            batch.info.buffer(),
                            w_hr.value.buffer(),
                            dh.buffer(),
                            s.gates.buffer(),
                            s.h_prev.buffer(),
                            dgx.buffer(),
                            dg_out.buffer(),
                        ];
                        bufs.extend(&cell_own);
                        rt.launch(cell_step, &constants, &sp, &bufs, [cell_groups, tiles[1], 1])?;
                    }
                }
                // Initial-state gradient: every row, at its first step.
                if want_h0 {
                    let sp = step_params(batch, &spec, layer, dir, 0)?;
                    // One workgroup row per batch row (vec4: per ROWS rows, UNITS
                    // units per invocation), over y then z (≤ 65535 each).
                    let (units, rows) = if vec4 { (UNITS, ROWS) } else { (1, 1) };
                    let tiles = sp.batch.div_ceil(rows);
                    let groups = [sp.hidden.div_ceil(units).div_ceil(WG), tiles.min(65_535), tiles.div_ceil(65_535)];
                    let w_hh = params.weight_hh().value.buffer();
                    let mut bufs = if vec4 {
                        vec![batch.info.buffer(), dgx.buffer(), grad_h0.buffer(), w_hh]
                    } else {
                        vec![batch.info.buffer(), w_hh, dgx.buffer(), grad_h0.buffer()]
                    };
                    bufs.extend(own(cell.initial_state)?);
                    rt.launch(initial_kernel, &constants, &sp, &bufs, groups)?;
                }
            }
            // Parameter gradients over all steps at once.
            let _family = profile::scope(Family::WeightGradients);
            let dgh_t = dgh.as_ref().unwrap_or(&dgx);
            let grads = &param_grads[idx];
            let at = GemmOptions { trans_a: true, beta: beta_acc, ..GemmOptions::default() };
            // Each bias gradient is summed in its weight gradient's pass.
            gemm_and_sum_a(&dgx, &saved.input, &grads[WEIGHT_IH], at, &grads[BIAS_IH])?;
            gemm_and_sum_a(dgh_t, &s.h_prev, &grads[WEIGHT_HH], at, &grads[BIAS_HH])?;
            if let (Some(dh), Some(ht)) = (&dh_rows, &s.h_tilde) {
                // dW_hr (P, H) = dhᵀ·h̃ over all packed rows.
                gemm(dh, ht, None, &grads[WEIGHT_HR], at)?;
            }
            // Input gradient, both directions summed.
            let beta = if dir == 0 { 0.0 } else { 1.0 };
            gemm(&dgx, &params.weight_ih().value, None, &d_in, GemmOptions { beta, ..GemmOptions::default() })?;
        }
        d_out = match (layer > 0, fwd.dropout) {
            (true, Some((p, seed))) => crate::ops::dropout_packed(&d_in, &batch.pack_index, layer, p, seed)?,
            _ => d_in,
        };
    }
    Ok((d_out, grad_c0))
}
