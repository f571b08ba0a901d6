//! Neural-network modules on the autograd tape: [`Embedding`], [`Linear`],
//! [`Recurrent`] (LSTM/GRU/RNN), plus dropout, pooling and losses as tape
//! ops ([`crate::autograd::Tape`]). Every module follows one pattern:
//! `XxxConfig::new(required).with_*(…).init(&device)`, shapes and PyTorch
//! equivalence in its doc comment, parameters visited with PyTorch-style
//! dotted names through [`Module`].

mod embedding;
pub mod init;
mod linear;
pub(crate) mod recurrent;

pub use embedding::{Embedding, EmbeddingConfig};
pub use init::Init;
pub use linear::{Linear, LinearConfig};
pub use recurrent::{Recurrent, RecurrentConfig, RnnInit, MAX_LAYERS};

use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// A trainable tensor and its gradient (same shape). Cloning shares both
/// buffers, so a module, the tape and the optimizer all see one parameter.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// The values, updated in place by the optimizer.
    pub value: Tensor,
    /// The accumulated gradient (`+=` by backward, zeroed by `zero_grad`).
    pub grad: Tensor,
}

impl Parameter {
    /// A parameter with the given host values and a zero gradient.
    pub fn new(device: &Device, values: &[f32], shape: &[usize]) -> Result<Self> {
        Ok(Self { value: Tensor::from_slice(device, values, shape)?, grad: Tensor::zeros(device, shape)? })
    }

    /// Wraps an existing value tensor with a fresh zero gradient.
    pub fn from_tensor(value: Tensor) -> Result<Self> {
        let grad = Tensor::zeros(value.device(), value.shape())?;
        Ok(Self { value, grad })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
}

/// Anything with parameters. Containers implement [`Module::visit`] by
/// visiting their children under `join(prefix, "child")`, which yields
/// PyTorch's names (`embedding.weight`, `rnn.weight_ih_l0`, `fc.bias`).
pub trait Module {
    /// Calls `f` with the dotted name and the parameter, for every parameter.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter));
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Every parameter of a module with its dotted name, in visiting order.
pub fn named_parameters(module: &dyn Module) -> Vec<(String, Parameter)> {
    let mut out = Vec::new();
    module.visit("", &mut |name, p| out.push((name, p.clone())));
    out
}
