//! Recurrent cells as units. A cell family owns everything cell-specific in
//! two files: `src/cells/<cell>.rs` (gate count, state, the buffers its
//! kernels bind, its CPU reference step forward and backward) and
//! `shaders/cells/<cell>.wgsl` (its equations forward and backward). What
//! every cell shares is written once: the time loop, packing, directions,
//! layers, state double-buffering and GEMMs in [`crate::rnn::gpu`] and
//! [`crate::reference::rnn`], and the tiled recurrent product in
//! `shaders/recurrent_forward.wgsl` / `recurrent_backward.wgsl`, which the
//! kernel registry composes with the cell's WGSL when it builds a pipeline
//! (prelude, constants from Rust, `recurrent.wgsl`, the cell, the template).
//!
//! Adding a cell: its Rust file, its WGSL file, its registration in
//! [`RnnMode`] below (a variant, its entry in `ALL` and one match arm), and
//! its test.

pub mod gru;
pub mod lstm;
pub mod rnn;

use crate::error::{Error, Result};
use crate::kernels::Access;

/// Recurrent cell, with PyTorch's gate order and equations. The registry of
/// cells: each mode names its cell and the override constants it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RnnMode {
    /// `torch.nn.LSTM`: gates i, f, g, o; `c' = f⊙c + i⊙g`, `h' = o⊙tanh(c')`.
    Lstm,
    /// `torch.nn.GRU`: gates r, z, n; `n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn))`,
    /// `h' = (1 − z)⊙n + z⊙h`.
    Gru,
    /// `torch.nn.RNN(nonlinearity='tanh')`: `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `torch.nn.RNN(nonlinearity='relu')`.
    RnnRelu,
}

/// A mode's registration: its contract name, its cell, and the override
/// constants its kernels are built with.
struct Registration {
    name: &'static str,
    cell: &'static Cell,
    constants: &'static [(&'static str, f64)],
}

impl RnnMode {
    /// Every mode.
    pub const ALL: [RnnMode; 4] = [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh, RnnMode::RnnRelu];

    fn registration(self) -> Registration {
        match self {
            RnnMode::Lstm => Registration { name: "lstm", cell: &lstm::LSTM, constants: &[] },
            RnnMode::Gru => Registration { name: "gru", cell: &gru::GRU, constants: &[] },
            RnnMode::RnnTanh => Registration { name: "rnn_tanh", cell: &rnn::RNN, constants: &[("RELU", 0.0)] },
            RnnMode::RnnRelu => Registration { name: "rnn_relu", cell: &rnn::RNN, constants: &[("RELU", 1.0)] },
        }
    }

    /// The cell this mode runs.
    pub fn cell(self) -> &'static Cell {
        self.registration().cell
    }

    /// Override constants of this mode's kernels (e.g. RNN's `RELU`).
    pub fn constants(self) -> &'static [(&'static str, f64)] {
        self.registration().constants
    }

    /// Gates per hidden unit: G = gates · H.
    pub fn gates(self) -> usize {
        self.cell().gates
    }

    /// Name as in the torch_parity contract: `lstm`, `gru`, `rnn_tanh`, `rnn_relu`.
    pub fn name(self) -> &'static str {
        self.registration().name
    }

    /// Parses [`RnnMode::name`].
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            let accepted: Vec<&str> = Self::ALL.iter().map(|m| m.name()).collect();
            Error::Config(format!("unknown recurrent mode {name:?}; accepted: {}", accepted.join(", ")))
        })
    }

    /// Whether the cell carries a cell state `c` besides `h`.
    pub fn has_cell_state(self) -> bool {
        self.cell().has_state
    }
}

/// Every registered cell family, once (for shader validation).
pub fn all_cells() -> Vec<&'static Cell> {
    let mut cells: Vec<&'static Cell> = Vec::new();
    for mode in RnnMode::ALL {
        if !cells.contains(&mode.cell()) {
            cells.push(mode.cell());
        }
    }
    cells
}

/// A tensor the shared launcher allocates or passes for a cell binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellTensor {
    /// (B, H) dense in sorted row order, starting as the initial cell state
    /// c0 and updated in place (forward).
    State,
    /// (N, H) one value per packed row, written by forward and read by
    /// backward (LSTM's c, GRU's W_hn h + b_hn).
    Saved,
    /// (L·D, B, H) the final cell state c_n (forward).
    FinalState,
    /// (L·D, B, H) the initial cell state c0 (backward).
    InitialState,
    /// (B, H) dense in sorted row order: a gradient the cell carries from
    /// step to step, starting as grad_c_n for a cell with a state, else zero.
    Carry,
    /// (N, G) the hidden-side gate gradients per packed row, for cells
    /// where they differ from the input side (GRU): dW_hh and db_hh use them.
    HiddenGrads,
    /// (L·D, B, H) the gradient of the initial cell state (initial-state kernel).
    InitialStateGrad,
    /// (L·D, B, H) the gradient of the final cell state, grad_c_n (the
    /// sequence backward kernel starts its carry from it).
    FinalStateGrad,
}

/// One of a cell's own storage bindings (numbers 20–29, and their vec4
/// views 50–59; the shared kernels use 1–17 and views 33–39).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellBinding {
    /// `@binding` in the cell's WGSL.
    pub binding: u32,
    /// How the cell's WGSL declares it.
    pub access: Access,
    /// What the launcher binds there.
    pub tensor: CellTensor,
}

/// How far a buffer's vec4 view is from its scalar binding: the vec4 step
/// kernels' epilogues read and write four consecutive units at once through
/// `array<vec4<f32>>` declarations of the same buffers at binding + 30.
pub const VEC4_VIEW: u32 = 30;

/// `bindings` as their vec4 views: binding + [`VEC4_VIEW`], same access,
/// same tensors and order (so launchers pass the same buffers).
pub const fn vec4_views<const N: usize>(bindings: [CellBinding; N]) -> [CellBinding; N] {
    let mut out = bindings;
    let mut i = 0;
    while i < N {
        out[i].binding = bindings[i].binding + VEC4_VIEW;
        i += 1;
    }
    out
}

/// A step of the CPU reference forward, for one row: h_t, the cell state
/// c_t (empty for a cell without one), and what backward needs.
#[derive(Debug, Clone, Default)]
pub struct ReferenceStep {
    /// (H) h_t.
    pub h: Vec<f64>,
    /// (H) c_t, or empty.
    pub c: Vec<f64>,
    /// What the cell keeps for backward (activations and the like).
    pub saved: Vec<f64>,
}

/// The gradients a cell's reference backward returns for one row and step.
#[derive(Debug, Clone, Default)]
pub struct ReferenceStepGrad {
    /// (G) input-side pre-activation gradients (for dW_ih, db_ih, dX).
    pub input: Vec<f64>,
    /// (G) hidden-side pre-activation gradients (for dW_hh, db_hh; the
    /// shared code adds `hidden·W_hh` to the h_{t-1} gradient).
    pub hidden: Vec<f64>,
    /// (H) gradient reaching h_{t-1} other than through W_hh (GRU's z⊙h);
    /// empty when there is no such path.
    pub h_prev: Vec<f64>,
    /// (H) gradient reaching c_{t-1}, or empty.
    pub c_prev: Vec<f64>,
}

/// The cell's CPU reference forward of one step of one row: from the
/// input-side pre-activations `xi = W_ih x + b_ih` (G), the hidden-side ones
/// `hh = W_hh h_{t-1} + b_hh` (G), h_{t-1} and c_{t-1} (H; empty without a
/// cell state).
pub type ReferenceForward = fn(mode: RnnMode, xi: &[f64], hh: &[f64], h_prev: &[f64], c_prev: &[f64]) -> ReferenceStep;

/// The cell's CPU reference backward of one step of one row: from the
/// forward's step, h_{t-1}, c_{t-1}, and the gradients reaching h_t (`dh`)
/// and c_t (`dc`; empty without a cell state).
pub type ReferenceBackward = fn(
    mode: RnnMode,
    step: &ReferenceStep,
    hh: &[f64],
    h_prev: &[f64],
    c_prev: &[f64],
    dh: &[f64],
    dc: &[f64],
) -> ReferenceStepGrad;

/// Everything cell-specific about a recurrent cell family.
pub struct Cell {
    /// Name in kernel labels (`lstm`).
    pub name: &'static str,
    /// Gates per hidden unit (G = gates·H); at most 4.
    pub gates: usize,
    /// Whether the cell carries a state besides h (LSTM's c): c0 in, c_n out.
    pub has_state: bool,
    /// Its equations: `shaders/cells/<name>.wgsl`.
    pub wgsl: &'static str,
    /// Its own bindings of the forward step kernels.
    pub forward: &'static [CellBinding],
    /// The same tensors as `forward`, in the same order, as the vec4 views
    /// the vec4 forward step kernel's `cell_forward4` uses (binding +
    /// [`VEC4_VIEW`]; see [`vec4_views`]).
    pub forward_vec4: &'static [CellBinding],
    /// Its own bindings of the backward step kernels.
    pub backward: &'static [CellBinding],
    /// `backward` as vec4 views, for `cell_backward4`.
    pub backward_vec4: &'static [CellBinding],
    /// Its own bindings of the initial-state gradient kernel.
    pub initial_state: &'static [CellBinding],
    /// Its own bindings of the sequence forward kernel: the step kernels'
    /// and what `cell_sequence_start` reads.
    pub sequence_forward: &'static [CellBinding],
    /// Its own bindings of the sequence backward kernel: the step and
    /// initial-state kernels' and what `cell_sequence_backward_start` reads.
    pub sequence_backward: &'static [CellBinding],
    /// CPU reference step forward.
    pub reference_forward: ReferenceForward,
    /// CPU reference step backward.
    pub reference_backward: ReferenceBackward,
}

impl Cell {
    /// Whether the cell binds a tensor of this kind anywhere.
    pub fn uses(&self, tensor: CellTensor) -> bool {
        [self.forward, self.backward, self.initial_state, self.sequence_forward, self.sequence_backward]
            .iter()
            .any(|b| b.iter().any(|c| c.tensor == tensor))
    }
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cell({})", self.name)
    }
}

// Cells are statics identified by name: pipelines are cached by it.
impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Cell {}
impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// Logistic sigmoid in f64 (CPU references).
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
