//! Neural-network modules on the autograd tape: [`Embedding`], [`Linear`],
//! [`Recurrent`] (LSTM/GRU/RNN), plus dropout, pooling and losses as tape
//! ops ([`crate::autograd::Tape`]). Every module follows one pattern:
//! `XxxConfig::new(required).with_*(…).init(&device)`, shapes and PyTorch
//! equivalence in its doc comment, parameters visited with PyTorch-style
//! dotted names through [`Module`].
//!
//! [`flatten_parameters`] moves a module's parameters into one flat value
//! buffer and one flat gradient buffer (a view per parameter, PyTorch's
//! `flatten_parameters` and foreach idea), so that the optimizer zeroes,
//! clips and updates all of them in one dispatch each. The ready-made
//! models ([`crate::models::SequenceClassifier`],
//! [`crate::lm::LanguageModel`]) are flat from construction.

mod embedding;
pub mod init;
mod linear;
pub(crate) mod recurrent;

pub use embedding::{Embedding, EmbeddingConfig, SparseRows};
pub use init::Init;
pub use linear::{Linear, LinearConfig};
pub use recurrent::{Recurrent, RecurrentConfig, RnnInit, MAX_LAYERS};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor, VIEW_ALIGN};

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

    /// [`Module::visit`] with each parameter mutable, the same parameters
    /// under the same names in the same order: [`flatten_parameters`]
    /// replaces their tensors through it. A module that shares one
    /// parameter between two places (tied weights) visits it once and
    /// re-ties the other place before returning. The default visits
    /// nothing: such a module cannot be flattened ([`flatten_parameters`]
    /// says so) and trains through the optimizer's per-tensor path.
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        let _ = (prefix, f);
    }
}

/// A list of named parameters is a module (what [`named_parameters`]
/// returns, or a hand-built list), so it can be flattened like one.
impl Module for Vec<(String, Parameter)> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        for (name, p) in self {
            f(join(prefix, name), p);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        for (name, p) in self {
            f(join(prefix, name), p);
        }
    }
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

/// Where [`flatten_parameters`] puts each parameter: its element offset in
/// its group's buffers, and each group's length. Parameters go in visiting
/// order; each starts at a multiple of [`VIEW_ALIGN`] elements (zero
/// padding between them), and a new group starts when the next one would
/// take the buffer past `max_len` elements (the device's binding limit).
fn flat_layout(numels: &[usize], max_len: usize) -> (Vec<(usize, usize)>, Vec<usize>) {
    let mut places = Vec::with_capacity(numels.len());
    let mut lens: Vec<usize> = Vec::new();
    for &n in numels {
        let start = match lens.last() {
            Some(&len) => len.next_multiple_of(VIEW_ALIGN),
            None => 0,
        };
        if lens.is_empty() || start.saturating_add(n) > max_len {
            lens.push(n);
            places.push((lens.len() - 1, 0));
        } else {
            *lens.last_mut().expect("a group exists") = start + n;
            places.push((lens.len() - 1, start));
        }
    }
    (places, lens)
}

/// Moves every parameter of `module` into flat storage: one value buffer
/// and one gradient buffer holding every parameter as a view, in visiting
/// order, each view at a multiple of 256 elements with zeros between them
/// (PyTorch's `flatten_parameters`). An [`crate::optim::Optimizer`] over
/// such parameters, in that order, zeroes, clips, checks and updates all
/// of them with one dispatch each instead of one per parameter. Values and
/// gradients are copied bitwise; the old buffers go back to the driver.
///
/// Parameters that together exceed the device's largest storage binding
/// are split into several flat groups (one dispatch per group). Calling it
/// again on a flat module does nothing.
///
/// Call it before making the optimizer: one made earlier keeps the old
/// tensors, which the module then no longer uses. Errors, with the module
/// unchanged: a module whose [`Module::visit_mut`] does not visit what
/// [`Module::visit`] does, a parameter that is not f32 or whose gradient
/// has another shape, parameters on different devices, and two parameters
/// sharing storage (flattening would separate them).
pub fn flatten_parameters(module: &mut dyn Module) -> Result<()> {
    const OP: &str = "flatten_parameters";
    let params = named_parameters(module);
    let Some((_, first)) = params.first() else { return Ok(()) };
    let device = first.value.device().clone();
    for (name, p) in &params {
        if p.value.dtype() != DType::F32 || p.grad.dtype() != DType::F32 || p.value.shape() != p.grad.shape() {
            return Err(Error::Shape {
                op: OP,
                message: format!(
                    "parameter {name}: value {:?} and gradient {:?} must be f32 tensors of one shape",
                    p.value.shape(),
                    p.grad.shape()
                ),
            });
        }
        if !p.value.same_device(&first.value) || !p.grad.same_device(&first.value) {
            return Err(Error::Config(format!("{OP}: parameter {name} lives on another device")));
        }
    }
    for (i, (a, p)) in params.iter().enumerate() {
        let tensors = [&p.value, &p.grad];
        for (b, q) in &params[i + 1..] {
            if tensors.iter().any(|t| t.overlaps(&q.value) || t.overlaps(&q.grad)) {
                return Err(Error::Config(format!(
                    "{OP}: parameters {a} and {b} share storage; flattening would separate them"
                )));
            }
        }
        if p.value.overlaps(&p.grad) {
            return Err(Error::Config(format!("{OP}: parameter {a} shares storage with its own gradient")));
        }
    }
    let mut visited = Vec::with_capacity(params.len());
    module.visit_mut("", &mut |name, _| visited.push(name));
    if visited.len() != params.len() || visited.iter().zip(&params).any(|(v, (n, _))| v != n) {
        return Err(Error::Config(format!(
            "{OP}: the module's visit_mut visits {} parameters, visit visits {}; implement Module::visit_mut \
             to visit the same ones in the same order",
            visited.len(),
            params.len()
        )));
    }
    let rt = &device.rt;
    let max_len = (rt.limits.max_storage_buffer_binding_size.min(rt.limits.max_buffer_size) / 4) as usize;
    let numels: Vec<usize> = params.iter().map(|(_, p)| p.value.numel()).collect();
    let (places, lens) = flat_layout(&numels, max_len);
    // Groups are runs of consecutive parameters; each run's first one
    // tells which buffers a flat module already uses.
    let leads: Vec<&Parameter> =
        (0..lens.len()).map(|g| &params[places.iter().position(|&(pg, _)| pg == g).unwrap_or(0)].1).collect();
    let already_flat = params.iter().zip(&places).all(|((_, p), &(group, start))| {
        let lead = leads[group];
        [(&p.value, &lead.value), (&p.grad, &lead.grad)]
            .iter()
            .all(|(t, l)| t.same_storage(l) && t.offset() == start && t.storage_len() == lens[group])
    });
    if already_flat {
        return Ok(());
    }
    let mut values = Vec::with_capacity(params.len());
    let mut grads = Vec::with_capacity(params.len());
    for (group, &len) in lens.iter().enumerate() {
        let members: Vec<usize> = (0..params.len()).filter(|&i| places[i].0 == group).collect();
        let offsets: Vec<usize> = members.iter().map(|&i| places[i].1).collect();
        let shapes: Vec<&[usize]> = members.iter().map(|&i| params[i].1.value.shape()).collect();
        values.extend(Tensor::zeros_views(&device, len, &offsets, &shapes)?);
        grads.extend(Tensor::zeros_views(&device, len, &offsets, &shapes)?);
    }
    for ((_, p), (value, grad)) in params.iter().zip(values.iter().zip(&grads)) {
        rt.copy(p.value.buffer(), value.buffer())?;
        rt.copy(p.grad.buffer(), grad.buffer())?;
        p.value.discard_storage_on_drop();
        p.grad.discard_storage_on_drop();
    }
    let mut next = values.into_iter().zip(grads);
    module.visit_mut("", &mut |_, p| {
        if let Some((value, grad)) = next.next() {
            p.value = value;
            p.grad = grad;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::flat_layout;

    /// Views start at multiples of 256 in visiting order; a group ends where
    /// the next parameter would pass the limit; a group's length ends at its
    /// last parameter (no trailing padding).
    #[test]
    fn flat_layout_pads_views_and_splits_groups() {
        let (places, lens) = flat_layout(&[35, 300, 1, 256], 10_000);
        assert_eq!(places, [(0, 0), (0, 256), (0, 768), (0, 1024)]);
        assert_eq!(lens, [1280]);
        // A limit of 800 elements: 35 and 300 fit (256 + 300 = 556); 1 at
        // 768 fits (769); 256 at 1024 does not, and starts a group.
        let (places, lens) = flat_layout(&[35, 300, 1, 256], 800);
        assert_eq!(places, [(0, 0), (0, 256), (0, 768), (1, 0)]);
        assert_eq!(lens, [769, 256]);
        // A parameter larger than the limit gets a group of its own (as
        // large as the tensor would be on its own).
        let (places, lens) = flat_layout(&[10, 900, 10], 800);
        assert_eq!(places, [(0, 0), (1, 0), (2, 0)]);
        assert_eq!(lens, [10, 900, 10]);
    }
}
