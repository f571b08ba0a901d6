//! The LSTM cell (`torch.nn.LSTM`): gates i, f, g, o (G = 4H) and a cell
//! state c. Equations in shaders/cells/lstm.wgsl; the CPU reference below.

use super::{sigmoid, vec4_views, Cell, CellBinding, CellTensor, ReferenceStep, ReferenceStepGrad, RnnMode};
use crate::kernels::Access::{Read as R, ReadWrite as W};

/// Its own bindings of the forward step kernels.
const FORWARD: [CellBinding; 3] = [
    CellBinding { binding: 20, access: W, tensor: CellTensor::State },
    CellBinding { binding: 21, access: W, tensor: CellTensor::Saved },
    CellBinding { binding: 22, access: W, tensor: CellTensor::FinalState },
];

/// Its own bindings of the backward step kernels.
const BACKWARD: [CellBinding; 3] = [
    CellBinding { binding: 21, access: W, tensor: CellTensor::Saved },
    CellBinding { binding: 23, access: R, tensor: CellTensor::InitialState },
    CellBinding { binding: 24, access: W, tensor: CellTensor::Carry },
];

/// The LSTM cell.
pub static LSTM: Cell = Cell {
    name: "lstm",
    gates: 4,
    has_state: true,
    wgsl: include_str!("../../shaders/cells/lstm.wgsl"),
    forward: &FORWARD,
    forward_vec4: &vec4_views(FORWARD),
    backward: &BACKWARD,
    backward_vec4: &vec4_views(BACKWARD),
    initial_state: &[
        CellBinding { binding: 24, access: W, tensor: CellTensor::Carry },
        CellBinding { binding: 25, access: W, tensor: CellTensor::InitialStateGrad },
    ],
    sequence_forward: &[
        CellBinding { binding: 20, access: W, tensor: CellTensor::State },
        CellBinding { binding: 21, access: W, tensor: CellTensor::Saved },
        CellBinding { binding: 22, access: W, tensor: CellTensor::FinalState },
        CellBinding { binding: 23, access: R, tensor: CellTensor::InitialState },
    ],
    sequence_backward: &[
        CellBinding { binding: 21, access: W, tensor: CellTensor::Saved },
        CellBinding { binding: 23, access: R, tensor: CellTensor::InitialState },
        CellBinding { binding: 24, access: W, tensor: CellTensor::Carry },
        CellBinding { binding: 25, access: W, tensor: CellTensor::InitialStateGrad },
        CellBinding { binding: 26, access: R, tensor: CellTensor::FinalStateGrad },
    ],
    reference_forward: lstm_reference_forward,
    reference_backward: lstm_reference_backward,
};

/// One LSTM step of one row; saves the activations i, f, g, o.
fn lstm_reference_forward(_: RnnMode, xi: &[f64], hh: &[f64], _h_prev: &[f64], c_prev: &[f64]) -> ReferenceStep {
    let h = c_prev.len();
    let pre: Vec<f64> = xi.iter().zip(hh).map(|(a, b)| a + b).collect();
    let mut step = ReferenceStep { h: vec![0.0; h], c: vec![0.0; h], saved: vec![0.0; 4 * h] };
    for j in 0..h {
        let (i, f, g, o) = (sigmoid(pre[j]), sigmoid(pre[h + j]), pre[2 * h + j].tanh(), sigmoid(pre[3 * h + j]));
        step.saved[j] = i;
        step.saved[h + j] = f;
        step.saved[2 * h + j] = g;
        step.saved[3 * h + j] = o;
        step.c[j] = f * c_prev[j] + i * g;
        step.h[j] = o * step.c[j].tanh();
    }
    step
}

/// Backward of [`lstm_reference_forward`].
fn lstm_reference_backward(
    _: RnnMode,
    step: &ReferenceStep,
    _hh: &[f64],
    _h_prev: &[f64],
    c_prev: &[f64],
    dh: &[f64],
    dc_in: &[f64],
) -> ReferenceStepGrad {
    let h = dh.len();
    let a = &step.saved;
    let mut out =
        ReferenceStepGrad { input: vec![0.0; 4 * h], hidden: Vec::new(), h_prev: Vec::new(), c_prev: vec![0.0; h] };
    for j in 0..h {
        let (i, f, g, o) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
        let tc = step.c[j].tanh();
        let dc = dh[j] * o * (1.0 - tc * tc) + dc_in[j];
        out.input[j] = dc * g * i * (1.0 - i);
        out.input[h + j] = dc * c_prev[j] * f * (1.0 - f);
        out.input[2 * h + j] = dc * i * (1.0 - g * g);
        out.input[3 * h + j] = dh[j] * tc * o * (1.0 - o);
        out.c_prev[j] = dc * f;
    }
    out.hidden = out.input.clone();
    out
}
