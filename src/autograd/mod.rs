//! A thin autograd tape. Operations are recorded in creation order; each
//! node keeps its value and what its backward rule needs. `backward(loss)`
//! walks the nodes in reverse with one `match` over `Op`, accumulating
//! (`+=`) into the gradients of intermediate values and straight into each
//! [`Parameter`]'s gradient (the gradient store keyed by parameter).
//! Everything is recorded into the device's open command buffer: a whole
//! training step (forward, backward, optimizer) is one submission, and
//! nothing is read back until the caller asks for a value.
//!
//! A tape in evaluation mode ([`Tape::eval`]) keeps values only: dropout is
//! the identity, nothing is saved for backward, and `backward` is an error.

pub(crate) mod launch;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Embedding, Linear, Parameter, Recurrent};
use crate::ops::{elementwise_add, elementwise_axpy, gemm, sum_cols, GemmOptions};
use crate::rnn::spec::pcg_hash;
use crate::rnn::{PackedBatch, PackedForward, Rnn};
use crate::tensor::{DType, Tensor};

use launch::{LossForward, LossParams};

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

/// What produced a node, and what its backward rule needs.
#[derive(Debug)]
enum Op {
    /// A constant input: gradients stop here.
    Input,
    /// `weight[ids]`; `buckets` sorts the ids for the deterministic gradient.
    Embedding { weight: Parameter, buckets: Tensor, unique: usize },
    /// `x·Wᵀ + b`.
    Linear { x: Var, weight: Parameter, bias: Option<Parameter> },
    /// Inverted dropout with the hashed mask of `seed`.
    Dropout { x: Var, p: f32, seed: u64 },
    /// Dropout whose mask unit is a row key (locked / embedding dropout).
    KeyedDropout { x: Var, keys: Tensor, whole_rows: bool, p: f32, seed: u64 },
    /// AR / TAR penalty: `scale · Σ d²` of a packed activation.
    SquarePenalty { x: Var, links: Tensor, params: crate::ops::SquareSumParams },
    /// `a + b`.
    Add { a: Var, b: Var },
    /// A recurrent stack over a packed batch; value = packed output.
    Recurrent {
        layer: Rnn,
        x: Var,
        h0: Option<Var>,
        c0: Option<Var>,
        h_n: Var,
        c_n: Option<Var>,
        saved: Box<PackedForward>,
        /// Weight drop: `layer` holds masked `weight_hh` copies with their
        /// own gradients; backward masks those into the real ones.
        weight_drop: Option<WeightDrop>,
    },
    /// `h_n` or `c_n` of a recurrent node: its gradient is consumed there.
    RecurrentState,
    /// Mean or max over each row's valid steps.
    Pool { x: Var, batch: PackedBatch, argmax: Option<Tensor> },
    /// Last layer's `h_n`, directions concatenated.
    PoolLast { h_n: Var, directions: usize },
    /// Mean softmax cross-entropy or BCE-with-logits.
    Loss { logits: Var, targets: Tensor, stats: Tensor, params: LossParams, bce: bool },
    /// A value with no derivative (metrics): reaching it is an error.
    NoGrad { name: &'static str },
}

/// What backward needs to route the gradient of DropConnect-masked
/// recurrent weights to the real ones.
#[derive(Debug)]
struct WeightDrop {
    p: f32,
    /// Mask seed per (layer, dir).
    seeds: Vec<u64>,
    /// The parameters' own `weight_hh` gradients per (layer, dir).
    grads: Vec<Tensor>,
}

#[derive(Debug)]
struct Node {
    value: Tensor,
    op: Op,
}

/// Outputs of [`Tape::recurrent`].
#[derive(Debug, Clone, Copy)]
pub struct RecurrentVars {
    /// (N, D·H) packed output of the last layer.
    pub output: Var,
    /// (L·D, B, H) final hidden states.
    pub h_n: Var,
    /// (L·D, B, H) final cell states (LSTM).
    pub c_n: Option<Var>,
}

/// Outputs of a loss: the scalar to call `backward` on and its metrics,
/// computed on the GPU and read only when asked.
#[derive(Debug, Clone)]
pub struct LossVars {
    /// (1) mean loss over the rows not ignored.
    pub loss: Var,
    /// (1) what backward starts from: `loss`, plus any penalties added with
    /// [`LossVars::with_penalty`] (which the reported loss leaves out, as
    /// AWD-LSTM reports the plain cross-entropy).
    pub objective: Var,
    /// (2): count of rows whose prediction is right (argmax = target, or the
    /// sign agrees for BCE), and the perplexity exp(mean loss).
    pub metrics: Tensor,
    /// Rows counted (not ignored).
    pub count: usize,
}

impl LossVars {
    /// Adds a (1) penalty (AR, TAR) to the objective, not to the loss.
    pub fn with_penalty(mut self, tape: &mut Tape, penalty: Var) -> Result<Self> {
        self.objective = tape.add(self.objective, penalty)?;
        Ok(self)
    }

    /// Reads the mean loss from `tape` (submits pending work and waits).
    /// A NaN or infinite loss is an error: training diverged, and continuing
    /// would only spread NaN through every weight.
    pub fn value(&self, tape: &Tape) -> Result<f32> {
        let v = tape.value(self.loss)?.to_vec()?[0];
        if !v.is_finite() {
            return Err(Error::NonFinite(format!(
                "the loss is {v}: training diverged (lower the learning rate, clip gradients, or check the inputs)"
            )));
        }
        Ok(v)
    }

    /// Fraction of counted rows predicted right (reads the GPU).
    pub fn accuracy(&self) -> Result<f32> {
        Ok(self.metrics.to_vec()?[0] / self.count.max(1) as f32)
    }

    /// Right predictions, as a count (reads the GPU).
    pub fn correct(&self) -> Result<f32> {
        Ok(self.metrics.to_vec()?[0])
    }

    /// exp(mean loss): the perplexity of a language model (reads the GPU).
    pub fn perplexity(&self) -> Result<f32> {
        Ok(self.metrics.to_vec()?[1])
    }
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
        Self { id: next_tape_id(), device: device.clone(), nodes: Vec::new(), train: true, seed, dropouts: 0, backward_done: false }
    }

    /// An evaluation tape: no dropout, nothing saved, no backward.
    pub fn eval(device: &Device) -> Self {
        Self { id: next_tape_id(), device: device.clone(), nodes: Vec::new(), train: false, seed: 0, dropouts: 0, backward_done: false }
    }

    /// The device the tape records on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether this tape records for training.
    pub fn is_training(&self) -> bool {
        self.train
    }

    fn push(&mut self, value: Tensor, op: Op) -> Var {
        let op = if self.train { op } else { Op::Input };
        self.nodes.push(Node { value, op });
        Var { tape: self.id, index: self.nodes.len() - 1 }
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
        self.push(t, Op::Input)
    }

    /// A fresh seed for the next dropout mask (deterministic in the tape seed).
    fn next_seed(&mut self) -> u64 {
        self.dropouts += 1;
        mask_seed(self.seed, self.dropouts)
    }

    /// `embedding.weight[ids]`: (count) host ids → (count, E). Ids ≥ V are
    /// an error before any GPU work.
    pub fn embedding(&mut self, emb: &Embedding, ids: &[u32]) -> Result<Var> {
        check_parameter("embedding", "weight", &emb.weight, 2)?;
        let vocab = emb.vocab();
        if let Some((pos, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(Error::OutOfRange {
                op: "embedding",
                message: format!("token id {id} at position {pos} is out of range for a vocabulary of {vocab}"),
            });
        }
        if ids.is_empty() {
            return Err(Error::Empty { op: "embedding", what: "ids".into() });
        }
        let idx = Tensor::from_u32(&self.device, ids, &[ids.len()])?;
        let value = crate::ops::gather_rows(&emb.weight.value, &idx)?;
        let op = if self.train {
            let (buckets, unique) = launch::embedding_buckets(ids, emb.padding_idx);
            // An all-padding batch has no buckets; keep a valid 1-element tensor.
            let buckets = if buckets.len() > 1 { buckets } else { vec![0, 0] };
            Op::Embedding {
                weight: emb.weight.clone(),
                buckets: Tensor::from_u32(&self.device, &buckets, &[buckets.len()])?,
                unique,
            }
        } else {
            Op::Input
        };
        Ok(self.push(value, op))
    }

    /// `x·Wᵀ + b`: x (M, in) → (M, out).
    pub fn linear(&mut self, layer: &Linear, x: Var) -> Result<Var> {
        check_parameter("linear", "weight", &layer.weight, 2)?;
        if let Some(b) = &layer.bias {
            check_parameter("linear", "bias", b, 1)?;
            if b.shape() != [layer.out_features()] {
                return Err(Error::Shape {
                    op: "linear",
                    message: format!("bias {:?} does not fit weight {:?}", b.shape(), layer.weight.shape()),
                });
            }
        }
        let xv = self.value(x)?;
        let (m, inf) = match *xv.shape() {
            [m, i] => (m, i),
            ref s => {
                return Err(Error::Shape { op: "linear", message: format!("input must be 2-D (M, in), got {s:?}") })
            }
        };
        if inf != layer.in_features() {
            return Err(Error::Shape {
                op: "linear",
                message: format!("input has {inf} features, the layer expects {}", layer.in_features()),
            });
        }
        let out = Tensor::uninit(&self.device, &[m, layer.out_features()], DType::F32)?;
        let opts = GemmOptions { trans_b: true, ..GemmOptions::default() };
        gemm(xv, &layer.weight.value, layer.bias.as_ref().map(|b| &b.value), &out, opts)?;
        Ok(self.push(out, Op::Linear { x, weight: layer.weight.clone(), bias: layer.bias.clone() }))
    }

    /// Inverted dropout with probability `p` (identity on an eval tape).
    pub fn dropout(&mut self, x: Var, p: f32) -> Result<Var> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Config(format!("dropout probability must be in [0, 1), got {p}")));
        }
        if !self.train || p == 0.0 {
            return Ok(x);
        }
        let seed = self.next_seed();
        let out = crate::ops::dropout_dense(self.value(x)?, p, seed)?;
        Ok(self.push(out, Op::Dropout { x, p, seed }))
    }

    /// Locked (variational) dropout of a packed (N, F) activation: one mask
    /// per sequence and feature, shared by all its steps (AWD-LSTM's
    /// `LockedDropout`). Identity on an evaluation tape.
    pub fn locked_dropout(&mut self, x: Var, batch: &PackedBatch, p: f32) -> Result<Var> {
        check_probability("locked dropout", p)?;
        if !self.train || p == 0.0 {
            return Ok(x);
        }
        let rows = self.value(x)?.shape().first().copied().unwrap_or(0);
        if rows != batch.total() {
            return Err(Error::Shape {
                op: "locked_dropout",
                message: format!("expected {} packed rows, got {rows}", batch.total()),
            });
        }
        let (offsets, sizes, sorted) = (batch.offsets(), batch.batch_sizes(), batch.sorted_rows());
        let mut keys = vec![0u32; rows];
        for t in 0..batch.max_len() {
            for s in 0..sizes[t] {
                keys[offsets[t] + s] = sorted[s] as u32;
            }
        }
        self.keyed_dropout(x, &keys, false, p)
    }

    /// Embedding dropout (AWD-LSTM's `embedded_dropout`): every occurrence
    /// of a dropped word id is zeroed, the rest scaled by 1/(1 − p), as if
    /// whole rows of the embedding matrix were dropped. `x` holds the
    /// gathered rows of `ids` (one per row). Identity on an evaluation tape.
    pub fn embedding_dropout(&mut self, x: Var, ids: &[u32], p: f32) -> Result<Var> {
        check_probability("embedding dropout", p)?;
        if !self.train || p == 0.0 {
            return Ok(x);
        }
        self.keyed_dropout(x, ids, true, p)
    }

    fn keyed_dropout(&mut self, x: Var, keys: &[u32], whole_rows: bool, p: f32) -> Result<Var> {
        let xv = self.value(x)?;
        if xv.shape().len() != 2 || xv.shape()[0] != keys.len() {
            return Err(Error::Shape {
                op: "dropout_keyed",
                message: format!("x must be (N, F) with one key per row: {:?} for {} keys", xv.shape(), keys.len()),
            });
        }
        let seed = self.next_seed();
        let keys = Tensor::from_u32(&self.device, keys, &[keys.len()])?;
        let out = crate::ops::dropout_keyed(self.value(x)?, &keys, whole_rows, p, seed)?;
        Ok(self.push(out, Op::KeyedDropout { x, keys, whole_rows, p, seed }))
    }

    /// Activation regularization (AR): `alpha · mean(x²)` over a packed
    /// (N, F) activation, a (1) var (AWD-LSTM applies it to the dropped
    /// output of the last layer).
    pub fn activation_penalty(&mut self, x: Var, alpha: f32) -> Result<Var> {
        let numel = self.value(x)?.numel().max(1);
        let (out, links, params) = crate::ops::square_sum_forward(self.value(x)?, None, alpha / numel as f32)?;
        Ok(self.push(out, Op::SquarePenalty { x, links, params }))
    }

    /// Temporal activation regularization (TAR): `beta · mean((x_t −
    /// x_{t−1})²)` over every pair of consecutive steps of each sequence in
    /// a packed (N, F) activation (AWD-LSTM applies it to the last layer's
    /// output before dropout). Zero when no sequence has two steps.
    pub fn temporal_penalty(&mut self, x: Var, batch: &PackedBatch, beta: f32) -> Result<Var> {
        let xv = self.value(x)?;
        let &[rows, cols] = xv.shape() else {
            return Err(Error::Shape {
                op: "temporal_penalty",
                message: format!("x must be (N, F), got {:?}", xv.shape()),
            });
        };
        if rows != batch.total() {
            return Err(Error::Shape {
                op: "temporal_penalty",
                message: format!("expected {} packed rows, got {rows}", batch.total()),
            });
        }
        let pairs = rows - batch.batch_sizes().first().copied().unwrap_or(0);
        let scale = if pairs == 0 { 0.0 } else { beta / (pairs * cols) as f32 };
        let links = crate::ops::temporal_links(batch);
        let links = Tensor::from_u32(&self.device, &links, &[links.len()])?;
        let (out, links, params) = crate::ops::square_sum_forward(self.value(x)?, Some(&links), scale)?;
        Ok(self.push(out, Op::SquarePenalty { x, links, params }))
    }

    /// `a + b` (same shapes).
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let out = Tensor::uninit(&self.device, self.value(a)?.shape(), DType::F32)?;
        elementwise_add(self.value(a)?, self.value(b)?, &out)?;
        Ok(self.push(out, Op::Add { a, b }))
    }

    /// A recurrent stack over a packed input (N, I); `h0`/`c0` default to
    /// zeros. Inter-layer dropout applies on a training tape.
    pub fn recurrent(
        &mut self,
        module: &Recurrent,
        x: Var,
        batch: &PackedBatch,
        h0: Option<Var>,
        c0: Option<Var>,
    ) -> Result<RecurrentVars> {
        self.recurrent_weight_drop(module, x, batch, h0, c0, 0.0)
    }

    /// [`Tape::recurrent`] with AWD-LSTM's weight drop: on a training tape
    /// every `weight_hh` is replaced by a DropConnect copy (each weight
    /// zeroed with probability `p`, the rest scaled by 1/(1 − p); one mask
    /// per call, i.e. per batch, hashed from the tape seed), and its
    /// gradient flows back through the same mask. The identity on an
    /// evaluation tape or with `p = 0`.
    pub fn recurrent_weight_drop(
        &mut self,
        module: &Recurrent,
        x: Var,
        batch: &PackedBatch,
        h0: Option<Var>,
        c0: Option<Var>,
        p: f32,
    ) -> Result<RecurrentVars> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Config(format!("weight drop probability must be in [0, 1), got {p}")));
        }
        let params = module.layer.params();
        for (name, p) in module.layer.named_parameters() {
            check_parameter("recurrent", &name, &p, p.shape().len())?;
        }
        let (mut layer, mut weight_drop) = (module.layer.clone(), None);
        if self.train && p > 0.0 {
            let seeds: Vec<u64> = params.iter().map(|_| self.next_seed()).collect();
            let masked = params
                .iter()
                .zip(&seeds)
                .map(|(w, &seed)| crate::ops::dropout_dense(&w.weight_hh().value, p, seed))
                .collect::<Result<Vec<_>>>()?;
            layer = layer.with_weight_hh(masked)?;
            let real = params.iter().map(|w| w.weight_hh().grad.clone()).collect();
            weight_drop = Some(WeightDrop { p, seeds, grads: real });
        }
        let seed = self.train.then(|| self.next_seed());
        let fwd = layer.forward_packed(
            self.value(x)?,
            batch,
            h0.map(|v| self.value(v)).transpose()?,
            c0.map(|v| self.value(v)).transpose()?,
            seed,
        )?;
        let (output, h_n_t, c_n_t) = (fwd.output.clone(), fwd.h_n.clone(), fwd.c_n.clone());
        // The state nodes come after the recurrent node so that, walking in
        // reverse, their gradients are complete when it runs.
        let rec = self.nodes.len();
        let h_n = Var { tape: self.id, index: rec + 1 };
        let c_n = c_n_t.as_ref().map(|_| Var { tape: self.id, index: rec + 2 });
        let op = Op::Recurrent { layer, x, h0, c0, h_n, c_n, saved: Box::new(fwd), weight_drop };
        let output = self.push(output, op);
        let h_n_var = self.push(h_n_t, Op::RecurrentState);
        let c_n_var = c_n_t.map(|t| self.push(t, Op::RecurrentState));
        debug_assert_eq!((h_n_var, c_n_var), (h_n, c_n));
        Ok(RecurrentVars { output, h_n: h_n_var, c_n: c_n_var })
    }

    /// Mean over each row's valid steps: packed (N, F) → (B, F).
    pub fn pool_mean(&mut self, x: Var, batch: &PackedBatch) -> Result<Var> {
        self.pool(x, batch, false)
    }

    /// Max over each row's valid steps: packed (N, F) → (B, F).
    pub fn pool_max(&mut self, x: Var, batch: &PackedBatch) -> Result<Var> {
        self.pool(x, batch, true)
    }

    fn pool(&mut self, x: Var, batch: &PackedBatch, max: bool) -> Result<Var> {
        let xv = self.value(x)?;
        if xv.shape().len() != 2 || xv.shape()[0] != batch.total() {
            return Err(Error::Shape {
                op: "pool",
                message: format!("expected a packed ({}, F) tensor, got {:?}", batch.total(), xv.shape()),
            });
        }
        let (out, argmax) = launch::pool_forward(xv, batch, max)?;
        Ok(self.push(out, Op::Pool { x, batch: batch.clone(), argmax }))
    }

    /// The last layer's final hidden state, both directions concatenated:
    /// h_n (L·D, B, H) → (B, D·H) — what Keras/PyTorch classifiers feed to
    /// their head.
    pub fn pool_last(&mut self, h_n: Var, directions: usize) -> Result<Var> {
        let shape = self.value(h_n)?.shape().to_vec();
        if shape.len() != 3 || directions == 0 || !shape[0].is_multiple_of(directions) {
            return Err(Error::Shape {
                op: "pool_last",
                message: format!("h_n must be (L·D, B, H) with D = {directions}, got {shape:?}"),
            });
        }
        let out = launch::pool_last_forward(self.value(h_n)?, directions)?;
        Ok(self.push(out, Op::PoolLast { h_n, directions }))
    }

    /// Mean softmax cross-entropy of logits (M, C) against class ids (M),
    /// as `torch.nn.functional.cross_entropy(logits, targets, ignore_index,
    /// label_smoothing)`. Rows whose target is `ignore_index` count for
    /// nothing; any other target ≥ C is an error.
    pub fn cross_entropy(
        &mut self,
        logits: Var,
        targets: &[u32],
        ignore_index: Option<u32>,
        label_smoothing: f32,
    ) -> Result<LossVars> {
        const OP: &str = "cross_entropy";
        let lv = self.value(logits)?;
        let &[m, c] = lv.shape() else {
            return Err(Error::Shape { op: OP, message: format!("logits must be (M, C), got {:?}", lv.shape()) });
        };
        if targets.len() != m {
            return Err(Error::Shape { op: OP, message: format!("{} targets for {m} rows of logits", targets.len()) });
        }
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(Error::Config(format!("label_smoothing must be in [0, 1], got {label_smoothing}")));
        }
        if let Some((row, &y)) = targets.iter().enumerate().find(|(_, &y)| y as usize >= c && Some(y) != ignore_index) {
            return Err(Error::OutOfRange {
                op: OP,
                message: format!("target {y} of row {row} is not a class of {c}"),
            });
        }
        let count = targets.iter().filter(|&&y| Some(y) != ignore_index).count();
        let t = Tensor::from_u32(&self.device, targets, &[m])?;
        let params = LossParams {
            rows: crate::ops::dim_u32(OP, "rows", m)?,
            classes: crate::ops::dim_u32(OP, "classes", c)?,
            ignore_index: ignore_index.unwrap_or(u32::MAX),
            smoothing: label_smoothing,
            scale: if count > 0 { 1.0 / count as f32 } else { 0.0 },
            _pad: [0; 3],
        };
        self.loss(logits, t, params, false, count)
    }

    /// Mean binary cross-entropy with logits, logits (M) or (M, 1) against
    /// labels in [0, 1], as `torch.nn.functional.binary_cross_entropy_with_logits`.
    pub fn bce_with_logits(&mut self, logits: Var, targets: &[f32]) -> Result<LossVars> {
        const OP: &str = "bce_with_logits";
        let m = self.value(logits)?.numel();
        if !matches!(self.value(logits)?.shape(), [_] | [_, 1]) || targets.len() != m {
            return Err(Error::Shape {
                op: OP,
                message: format!(
                    "logits {:?} and {} targets: need (M) or (M, 1) and M labels",
                    self.value(logits)?.shape(),
                    targets.len()
                ),
            });
        }
        if let Some((row, y)) = targets.iter().enumerate().find(|(_, y)| !(0.0..=1.0).contains(*y)) {
            return Err(Error::OutOfRange { op: OP, message: format!("label {y} of row {row} is outside [0, 1]") });
        }
        let bits: Vec<u32> = targets.iter().map(|y| y.to_bits()).collect();
        let t = Tensor::from_u32(&self.device, &bits, &[m])?;
        let params = LossParams {
            rows: crate::ops::dim_u32(OP, "rows", m)?,
            classes: 1,
            ignore_index: u32::MAX,
            smoothing: 0.0,
            scale: 1.0 / m as f32,
            _pad: [0; 3],
        };
        self.loss(logits, t, params, true, m)
    }

    fn loss(&mut self, logits: Var, targets: Tensor, params: LossParams, bce: bool, count: usize) -> Result<LossVars> {
        let LossForward { stats, loss, metrics } = launch::loss_forward(self.value(logits)?, &targets, params, bce)?;
        let loss = self.push(loss, Op::Loss { logits, targets, stats, params, bce });
        Ok(LossVars { loss, objective: loss, metrics, count })
    }

    /// Records a metric value; calling `backward` through it is an error.
    pub fn metric(&mut self, name: &'static str, value: Tensor) -> Var {
        self.push(value, Op::NoGrad { name })
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
            let g = match (&grads[i], &self.nodes[i].op) {
                (Some(g), _) => g.clone(),
                // A recurrent node whose output was unused but whose h_n/c_n
                // were: its output gradient is zero.
                (None, Op::Recurrent { h_n, c_n, .. })
                    if grads[h_n.index].is_some() || c_n.is_some_and(|v| grads[v.index].is_some()) =>
                {
                    Tensor::zeros(&self.device, self.nodes[i].value.shape())?
                }
                (None, _) => continue,
            };
            match &self.nodes[i].op {
                Op::Input | Op::RecurrentState => {}
                Op::NoGrad { name } => {
                    return Err(Error::Config(format!(
                        "no backward rule for op `{name}` (a metric, not differentiable)"
                    )));
                }
                Op::Embedding { weight, buckets, unique } => {
                    launch::embedding_backward(&g, buckets, *unique, &weight.grad)?;
                }
                Op::Linear { x, weight, bias } => {
                    let xv = &self.nodes[x.index].value;
                    let dx = Tensor::uninit(&self.device, xv.shape(), DType::F32)?;
                    gemm(&g, &weight.value, None, &dx, GemmOptions::default())?;
                    let acc = GemmOptions { trans_a: true, beta: 1.0, ..GemmOptions::default() };
                    gemm(&g, xv, None, &weight.grad, acc)?;
                    if let Some(b) = bias {
                        sum_cols(&g, &b.grad, 1.0)?;
                    }
                    accumulate(&mut grads, *x, dx)?;
                }
                Op::Dropout { x, p, seed } => {
                    let dx = crate::ops::dropout_dense(&g, *p, *seed)?;
                    accumulate(&mut grads, *x, dx)?;
                }
                Op::KeyedDropout { x, keys, whole_rows, p, seed } => {
                    let dx = crate::ops::dropout_keyed(&g, keys, *whole_rows, *p, *seed)?;
                    accumulate(&mut grads, *x, dx)?;
                }
                Op::SquarePenalty { x, links, params } => {
                    let xv = &self.nodes[x.index].value;
                    let dx = crate::ops::square_sum_backward(xv, links, &g, *params)?;
                    accumulate(&mut grads, *x, dx)?;
                }
                Op::Add { a, b } => {
                    // Each input gets its own buffer (accumulation is in
                    // place, and `g` stays this node's gradient).
                    for input in [*a, *b] {
                        let copy = Tensor::uninit(&self.device, g.shape(), DType::F32)?;
                        crate::ops::elementwise_copy(&g, &copy)?;
                        accumulate(&mut grads, input, copy)?;
                    }
                }
                Op::Recurrent { layer, x, h0, c0, h_n, c_n, saved, weight_drop } => {
                    let g_h_n = grads[h_n.index].clone();
                    let g_c_n = c_n.and_then(|v| grads[v.index].clone());
                    let (dx, dh0, dc0) = layer.backward_packed_into(saved, &g, g_h_n.as_ref(), g_c_n.as_ref())?;
                    if let Some(WeightDrop { p, seeds, grads: real }) = weight_drop {
                        // d weight_hh = mask ⊙ d(masked copy) / (1 − p).
                        for ((masked, &seed), real) in layer.params().iter().zip(seeds).zip(real) {
                            let d = crate::ops::dropout_dense(&masked.weight_hh().grad, *p, seed)?;
                            elementwise_axpy(1.0, &d, real)?;
                        }
                    }
                    accumulate(&mut grads, *x, dx)?;
                    if let Some(v) = h0 {
                        accumulate(&mut grads, *v, dh0)?;
                    }
                    if let (Some(v), Some(d)) = (c0, dc0) {
                        accumulate(&mut grads, *v, d)?;
                    }
                }
                Op::Pool { x, batch, argmax } => {
                    let dx = launch::pool_backward(&g, batch, argmax.as_ref())?;
                    accumulate(&mut grads, *x, dx)?;
                }
                Op::PoolLast { h_n, directions } => {
                    let shape = self.nodes[h_n.index].value.shape().to_vec();
                    let d = launch::pool_last_backward(&g, &shape, *directions)?;
                    accumulate(&mut grads, *h_n, d)?;
                }
                Op::Loss { logits, targets, stats, params, bce } => {
                    let lv = &self.nodes[logits.index].value;
                    let d = launch::loss_backward(lv, targets, stats, &g, *params, *bce)?;
                    accumulate(&mut grads, *logits, d)?;
                }
            }
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

fn check_probability(what: &str, p: f32) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::Config(format!("{what} probability must be in [0, 1), got {p}")))
    }
}

/// A parameter must be f32 with value and gradient of one `rank`-D shape.
fn check_parameter(op: &'static str, name: &str, p: &Parameter, rank: usize) -> Result<()> {
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

/// `grads[v] += g` (or `= g` for the first contribution; `g` must be a
/// buffer no other var's gradient shares, since later contributions are
/// added into it in place).
fn accumulate(grads: &mut [Option<Tensor>], v: Var, g: Tensor) -> Result<()> {
    match &grads[v.index] {
        Some(existing) => elementwise_axpy(1.0, &g, existing),
        None => {
            grads[v.index] = Some(g);
            Ok(())
        }
    }
}
