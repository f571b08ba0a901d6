//! The GRU cell (`torch.nn.GRU`): gates r, z, n (G = 3H), with
//! `n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn))`. Equations in
//! shaders/cells/gru.wgsl; the CPU reference below.

use super::{sigmoid, vec4_views, Cell, CellBinding, CellTensor, ReferenceStep, ReferenceStepGrad, RnnMode};
use crate::kernels::Access::ReadWrite as W;

/// Its own bindings of the forward step kernels.
const FORWARD: [CellBinding; 1] = [CellBinding { binding: 20, access: W, tensor: CellTensor::Saved }];

/// Its own bindings of the backward step kernels.
const BACKWARD: [CellBinding; 3] = [
    CellBinding { binding: 20, access: W, tensor: CellTensor::Saved },
    CellBinding { binding: 21, access: W, tensor: CellTensor::HiddenGrads },
    CellBinding { binding: 22, access: W, tensor: CellTensor::Carry },
];

/// The GRU cell.
pub static GRU: Cell = Cell {
    name: "gru",
    gates: 3,
    has_state: false,
    wgsl: include_str!("../../shaders/cells/gru.wgsl"),
    forward: &FORWARD,
    forward_vec4: &vec4_views(FORWARD),
    backward: &BACKWARD,
    backward_vec4: &vec4_views(BACKWARD),
    initial_state: &[
        CellBinding { binding: 21, access: W, tensor: CellTensor::HiddenGrads },
        CellBinding { binding: 22, access: W, tensor: CellTensor::Carry },
    ],
    sequence_forward: &[CellBinding { binding: 20, access: W, tensor: CellTensor::Saved }],
    sequence_backward: &[
        CellBinding { binding: 20, access: W, tensor: CellTensor::Saved },
        CellBinding { binding: 21, access: W, tensor: CellTensor::HiddenGrads },
        CellBinding { binding: 22, access: W, tensor: CellTensor::Carry },
    ],
    reference_forward: gru_reference_forward,
    reference_backward: gru_reference_backward,
};

/// One GRU step of one row; saves the activations r, z, n.
fn gru_reference_forward(_: RnnMode, xi: &[f64], hh: &[f64], h_prev: &[f64], _c_prev: &[f64]) -> ReferenceStep {
    let h = h_prev.len();
    let mut step = ReferenceStep { h: vec![0.0; h], c: Vec::new(), saved: vec![0.0; 3 * h] };
    for j in 0..h {
        let r = sigmoid(xi[j] + hh[j]);
        let z = sigmoid(xi[h + j] + hh[h + j]);
        let n = (xi[2 * h + j] + r * hh[2 * h + j]).tanh();
        step.saved[j] = r;
        step.saved[h + j] = z;
        step.saved[2 * h + j] = n;
        step.h[j] = (1.0 - z) * n + z * h_prev[j];
    }
    step
}

/// Backward of [`gru_reference_forward`].
fn gru_reference_backward(
    _: RnnMode,
    step: &ReferenceStep,
    hh: &[f64],
    h_prev: &[f64],
    _c_prev: &[f64],
    dh: &[f64],
    _dc: &[f64],
) -> ReferenceStepGrad {
    let h = dh.len();
    let a = &step.saved;
    let mut out = ReferenceStepGrad {
        input: vec![0.0; 3 * h],
        hidden: vec![0.0; 3 * h],
        h_prev: vec![0.0; h],
        c_prev: Vec::new(),
    };
    for j in 0..h {
        let (r, z, n) = (a[j], a[h + j], a[2 * h + j]);
        let dpre_n = dh[j] * (1.0 - z) * (1.0 - n * n);
        out.input[j] = dpre_n * hh[2 * h + j] * r * (1.0 - r);
        out.input[h + j] = dh[j] * (h_prev[j] - n) * z * (1.0 - z);
        out.input[2 * h + j] = dpre_n;
        out.hidden[j] = out.input[j];
        out.hidden[h + j] = out.input[h + j];
        out.hidden[2 * h + j] = dpre_n * r;
        out.h_prev[j] = dh[j] * z;
    }
    out
}
