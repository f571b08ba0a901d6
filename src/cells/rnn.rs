//! The Elman RNN cell (`torch.nn.RNN`, tanh or relu; G = H). Equations in
//! shaders/cells/rnn.wgsl (the `RELU` override picks the nonlinearity); the
//! CPU reference below.

use super::{Cell, ReferenceStep, ReferenceStepGrad, RnnMode};

/// The Elman RNN cell.
pub static RNN: Cell = Cell {
    name: "rnn",
    gates: 1,
    has_state: false,
    wgsl: include_str!("../../shaders/cells/rnn.wgsl"),
    forward: &[],
    forward_vec4: &[],
    backward: &[],
    backward_vec4: &[],
    initial_state: &[],
    sequence_forward: &[],
    sequence_backward: &[],
    reference_forward: rnn_reference_forward,
    reference_backward: rnn_reference_backward,
};

/// One step of one row; saves h (the derivative needs only it).
fn rnn_reference_forward(mode: RnnMode, xi: &[f64], hh: &[f64], _h_prev: &[f64], _c_prev: &[f64]) -> ReferenceStep {
    let relu = mode == RnnMode::RnnRelu;
    let h: Vec<f64> = xi.iter().zip(hh).map(|(a, b)| if relu { (a + b).max(0.0) } else { (a + b).tanh() }).collect();
    ReferenceStep { saved: h.clone(), h, c: Vec::new() }
}

/// Backward of [`rnn_reference_forward`].
fn rnn_reference_backward(
    mode: RnnMode,
    step: &ReferenceStep,
    _hh: &[f64],
    _h_prev: &[f64],
    _c_prev: &[f64],
    dh: &[f64],
    _dc: &[f64],
) -> ReferenceStepGrad {
    let relu = mode == RnnMode::RnnRelu;
    let input: Vec<f64> = step
        .h
        .iter()
        .zip(dh)
        .map(|(&out, &d)| d * if relu { f64::from(u8::from(out > 0.0)) } else { 1.0 - out * out })
        .collect();
    ReferenceStepGrad { hidden: input.clone(), input, h_prev: Vec::new(), c_prev: Vec::new() }
}
