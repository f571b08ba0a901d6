//! The autograd engine: a tape that records nodes in creation order and
//! runs backward over them, and nothing op-specific. Each op lives in its
//! own module with its forward (an `impl Tape` method), its backward rule
//! (a `Backward` implementation recorded with the node), its launchers and
//! its CPU reference: `crate::ops::{embedding, linear, dropout, elementwise,
//! pooling, loss, regularize}` and `crate::rnn::tape`.
//!
//! `backward(loss)` walks the nodes in reverse; each rule adds (`+=`) into
//! the gradients of its inputs and straight into each [`Parameter`]'s
//! gradient. Everything is recorded into the device's open command buffer:
//! a whole training step (forward, backward, optimizer) is one submission,
//! and nothing is read back until the caller asks for a value. A tape runs
//! backward once; a var belongs to one tape, and using it with another is
//! an error, not a wrong value.
//!
//! A tape in evaluation mode ([`Tape::eval`]) keeps values only: dropout is
//! the identity, nothing is saved for backward, and `backward` is an error.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::ops::elementwise_axpy;
use crate::rnn::spec::pcg_hash;
use crate::tensor::{DType, Tensor};

pub use crate::ops::loss::LossVars;
pub use crate::rnn::tape::RecurrentVars;

/// A value recorded on a tape: which tape, and the index into it. Using a
/// var with another tape is an error, not a wrong value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    tape: u64,
    index: usize,
}

/// Source of tape ids.
static NEXT_TAPE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_tape_id() -> u64 {
    NEXT_TAPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An op's backward rule, recorded with the node it produced.
pub(crate) trait Backward: std::fmt::Debug {
    /// Adds the gradients of the op's inputs, given `g`, the gradient of the
    /// node's value.
    fn backward(&self, g: &Tensor, ctx: &mut BackwardContext<'_>) -> Result<()>;

    /// Other vars (recorded after this node) whose gradients this rule
    /// consumes: when only those got one, it runs with a zero `g` (a
    /// recurrent node whose output was unused but whose h_n was).
    fn consumes(&self) -> Vec<Var> {
        Vec::new()
    }
}

/// What a backward rule sees: the recorded values, and the gradients so far.
pub(crate) struct BackwardContext<'a> {
    nodes: &'a [Node],
    grads: &'a mut [Option<Tensor>],
    device: &'a Device,
}

impl BackwardContext<'_> {
    /// The value recorded for `v`.
    pub(crate) fn value(&self, v: Var) -> &Tensor {
        &self.nodes[v.index].value
    }

    /// The gradient `v` has received so far.
    pub(crate) fn grad(&self, v: Var) -> Option<&Tensor> {
        self.grads[v.index].as_ref()
    }

    /// The device.
    pub(crate) fn device(&self) -> &Device {
        self.device
    }

    /// `grads[v] += g` (or `= g` for the first contribution; `g` must be a
    /// buffer no other var's gradient shares, since later contributions are
    /// added into it in place).
    pub(crate) fn accumulate(&mut self, v: Var, g: Tensor) -> Result<()> {
        match &self.grads[v.index] {
            Some(existing) => elementwise_axpy(1.0, &g, existing),
            None => {
                self.grads[v.index] = Some(g);
                Ok(())
            }
        }
    }
}

/// A value with no derivative (a metric): reaching it in backward is an error.
#[derive(Debug)]
struct NoGrad {
    name: &'static str,
}

impl Backward for NoGrad {
    fn backward(&self, _: &Tensor, _: &mut BackwardContext<'_>) -> Result<()> {
        Err(Error::Config(format!("no backward rule for op `{}` (a metric, not differentiable)", self.name)))
    }
}

#[derive(Debug)]
struct Node {
    value: Tensor,
    /// `None` for a constant (gradients stop here) or a value whose
    /// gradient another node's rule consumes.
    rule: Option<Box<dyn Backward>>,
}

/// The autograd tape of one forward (and backward) pass.
#[derive(Debug)]
pub struct Tape {
    id: u64,
    device: Device,
    nodes: Vec<Node>,
    train: bool,
    seed: u64,
    dropouts: u64,
    /// Set by the first `backward`: a second one would add every parameter
    /// gradient again.
    backward_done: bool,
}

impl Tape {
    /// A tape that records for backward; `seed` drives dropout masks (vary
    /// it per step for fresh masks, keep it for reproducibility).
    pub fn train(device: &Device, seed: u64) -> Self {
        Self::new(device, true, seed)
    }

    /// An evaluation tape: no dropout, nothing saved, no backward.
    pub fn eval(device: &Device) -> Self {
        Self::new(device, false, 0)
    }

    fn new(device: &Device, train: bool, seed: u64) -> Self {
        let id = next_tape_id();
        Self { id, device: device.clone(), nodes: Vec::new(), train, seed, dropouts: 0, backward_done: false }
    }

    /// The device the tape records on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether this tape records for training.
    pub fn is_training(&self) -> bool {
        self.train
    }

    /// Records a node; its rule is dropped on an evaluation tape.
    pub(crate) fn push(&mut self, value: Tensor, rule: Option<Box<dyn Backward>>) -> Var {
        let rule = if self.train { rule } else { None };
        self.nodes.push(Node { value, rule });
        Var { tape: self.id, index: self.nodes.len() - 1 }
    }

    /// Records an op's result with its backward rule.
    pub(crate) fn record(&mut self, value: Tensor, rule: impl Backward + 'static) -> Var {
        self.push(value, Some(Box::new(rule)))
    }

    /// The var the next recorded node will get (for rules that name nodes
    /// recorded after their own).
    pub(crate) fn next_var(&self, ahead: usize) -> Var {
        Var { tape: self.id, index: self.nodes.len() + ahead }
    }

    /// The value of a recorded var (an error for a var of another tape).
    pub fn value(&self, v: Var) -> Result<&Tensor> {
        if v.tape != self.id || v.index >= self.nodes.len() {
            return Err(Error::Config("this var belongs to another tape".into()));
        }
        Ok(&self.nodes[v.index].value)
    }

    /// Records a constant input.
    pub fn input(&mut self, t: Tensor) -> Var {
        self.push(t, None)
    }

    /// Records a metric value; calling `backward` through it is an error.
    pub fn metric(&mut self, name: &'static str, value: Tensor) -> Var {
        self.push(value, Some(Box::new(NoGrad { name })))
    }

    /// A fresh seed for the next dropout mask (deterministic in the tape seed).
    pub(crate) fn next_seed(&mut self) -> u64 {
        self.dropouts += 1;
        mask_seed(self.seed, self.dropouts)
    }

    /// Backpropagates from a scalar (1-element) var: parameter gradients are
    /// added to each [`Parameter::grad`]. Returns the gradients of the
    /// tape's other vars that got one (e.g. a carried `h0`), indexed by var.
    /// A tape runs backward once: a second call is an error (it would add
    /// every parameter gradient twice).
    pub fn backward(&mut self, loss: Var) -> Result<Gradients> {
        if !self.train {
            return Err(Error::Config("backward on an evaluation tape: nothing was recorded".into()));
        }
        if self.backward_done {
            return Err(Error::Config(
                "backward already ran on this tape: a second pass would add every parameter gradient again \
                 (record a new tape for each step)"
                    .into(),
            ));
        }
        if self.value(loss)?.numel() != 1 {
            return Err(Error::Shape {
                op: "backward",
                message: format!("loss must have one element, got shape {:?}", self.value(loss)?.shape()),
            });
        }
        self.backward_done = true;
        let mut grads: Vec<Option<Tensor>> = vec![None; self.nodes.len()];
        grads[loss.index] = Some(Tensor::full(&self.device, &[1], 1.0)?);
        for i in (0..=loss.index).rev() {
            let Some(rule) = &self.nodes[i].rule else { continue };
            let g = match &grads[i] {
                Some(g) => g.clone(),
                None if rule.consumes().iter().any(|v| grads[v.index].is_some()) => {
                    Tensor::zeros(&self.device, self.nodes[i].value.shape())?
                }
                None => continue,
            };
            let mut ctx = BackwardContext { nodes: &self.nodes, grads: &mut grads, device: &self.device };
            rule.backward(&g, &mut ctx)?;
        }
        Ok(Gradients { tape: self.id, grads })
    }
}

/// Gradients of a tape's vars after [`Tape::backward`].
#[derive(Debug)]
pub struct Gradients {
    tape: u64,
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// The gradient of `v`, if any reached it (`None` for a var of another tape).
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        if v.tape != self.tape {
            return None;
        }
        self.grads.get(v.index).and_then(Option::as_ref)
    }
}

/// The seed of the `n`-th mask (1-based: dropout, locked or embedding
/// dropout, weight drop, in recording order) drawn on a training tape made
/// with `tape_seed`. CPU references use it to rebuild a tape's masks bit
/// for bit.
pub fn mask_seed(tape_seed: u64, n: u64) -> u64 {
    let lo = pcg_hash(tape_seed as u32 ^ pcg_hash(n as u32));
    let hi = pcg_hash((tape_seed >> 32) as u32 ^ pcg_hash(lo));
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A probability must be in [0, 1).
pub(crate) fn check_probability(what: &str, p: f32) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::Config(format!("{what} probability must be in [0, 1), got {p}")))
    }
}

/// A parameter must be f32 with value and gradient of one `rank`-D shape.
pub(crate) fn check_parameter(op: &'static str, name: &str, p: &Parameter, rank: usize) -> Result<()> {
    if p.value.shape().len() != rank
        || p.value.shape() != p.grad.shape()
        || p.value.dtype() != DType::F32
        || p.grad.dtype() != DType::F32
    {
        return Err(Error::Shape {
            op,
            message: format!(
                "{name}: value {:?} and gradient {:?} must be f32 tensors of one {rank}-D shape",
                p.value.shape(),
                p.grad.shape()
            ),
        });
    }
    Ok(())
}
