//! The recurrent layer module: configuration, parameters with PyTorch names,
//! and the forward/backward entry points over padded or packed batches.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::rnn::gpu;
use crate::rnn::packed::PackedBatch;
use crate::rnn::spec::{RnnMode, RnnSpec, BIAS_HH, BIAS_IH, WEIGHT_HH, WEIGHT_HR, WEIGHT_IH};
use crate::tensor::{DType, Tensor};

/// Configuration of a recurrent stack, like the arguments of
/// `torch.nn.LSTM/GRU/RNN` (always `bias=True`, `batch_first=True`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnConfig {
    /// Mode and sizes.
    pub spec: RnnSpec,
    /// Dropout on the outputs of every layer but the last, in training only.
    pub dropout: f32,
    /// Seed of the default initialisation.
    pub seed: u64,
}

impl RnnConfig {
    /// One layer, one direction, no dropout, seed 0.
    pub fn new(mode: RnnMode, input_size: usize, hidden_size: usize) -> Self {
        Self {
            spec: RnnSpec { mode, input_size, hidden_size, num_layers: 1, bidirectional: false, proj_size: 0 },
            dropout: 0.0,
            seed: 0,
        }
    }

    /// LSTM projections (`proj_size` in PyTorch): h has `p` < H features.
    pub fn with_proj_size(mut self, p: usize) -> Self {
        self.spec.proj_size = p;
        self
    }

    /// Stacked layers (`num_layers`).
    pub fn with_num_layers(mut self, layers: usize) -> Self {
        self.spec.num_layers = layers;
        self
    }

    /// Both directions (`bidirectional`).
    pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
        self.spec.bidirectional = bidirectional;
        self
    }

    /// Inter-layer dropout probability (`dropout`).
    pub fn with_dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }

    /// Seed of the initial weights.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Parameters initialised as PyTorch does: uniform(−1/√H, 1/√H).
    pub fn init(&self, device: &Device) -> Result<Rnn> {
        crate::nn::recurrent::check_sizes(device, &self.spec)?;
        let values = crate::nn::recurrent::initial_values(&self.spec, crate::nn::RnnInit::PyTorch, self.seed)?;
        Rnn::from_host(device, *self, &values)
    }
}

/// The parameters of one (layer, direction), in the order of
/// [`RnnSpec::parameter_shapes`] (PyTorch's), each with its gradient.
#[derive(Debug, Clone)]
pub struct LayerParams(pub Vec<Parameter>);

impl LayerParams {
    /// `weight_ih_l{k}`: (G, I) for the first layer, (G, D·H) after.
    pub fn weight_ih(&self) -> &Parameter {
        &self.0[WEIGHT_IH]
    }
    /// `weight_hh_l{k}`: (G, H).
    pub fn weight_hh(&self) -> &Parameter {
        &self.0[WEIGHT_HH]
    }
    /// `bias_ih_l{k}`: (G).
    pub fn bias_ih(&self) -> &Parameter {
        &self.0[BIAS_IH]
    }
    /// `bias_hh_l{k}`: (G).
    pub fn bias_hh(&self) -> &Parameter {
        &self.0[BIAS_HH]
    }
    /// `weight_hr_l{k}`: (P, H), with a projection.
    pub fn weight_hr(&self) -> Option<&Parameter> {
        self.0.get(WEIGHT_HR)
    }
    /// Every parameter, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Parameter> {
        self.0.iter()
    }
}

/// A recurrent stack on the GPU: `torch.nn.LSTM/GRU/RNN` with
/// `batch_first=True`.
#[derive(Debug, Clone)]
pub struct Rnn {
    config: RnnConfig,
    /// Per (layer, dir) in `layer·D + dir` order.
    params: Vec<LayerParams>,
}

/// Result of a forward pass over a padded batch.
#[derive(Debug, Clone)]
pub struct RnnOutput {
    /// (B, T, D·H), zero at padded steps.
    pub output: Tensor,
    /// (L·D, B, H): hidden state at each row's last valid step.
    pub h_n: Tensor,
    /// (L·D, B, H) LSTM cell state; `None` for GRU/RNN.
    pub c_n: Option<Tensor>,
    /// Everything backward needs, in packed form.
    pub packed: gpu::PackedForward,
}

/// Gradients of a backward pass.
#[derive(Debug, Clone)]
pub struct RnnGrads {
    /// (B, T, I) for padded input ((N, I) from `backward_packed`).
    pub input: Tensor,
    /// (L·D, B, H)
    pub h0: Tensor,
    /// (L·D, B, H) for LSTM.
    pub c0: Option<Tensor>,
    /// Per (layer, dir), one gradient per parameter, in the parameters' order.
    pub params: Vec<Vec<Tensor>>,
}

impl Rnn {
    /// A stack with the given host weights, per (layer, dir) in
    /// `layer·D + dir` order, each in [`RnnSpec::parameter_shapes`] order;
    /// gradients start at zero.
    pub fn from_host(device: &Device, config: RnnConfig, weights: &[Vec<Vec<f32>>]) -> Result<Self> {
        const OP: &str = "Rnn::from_host";
        let spec = config.spec;
        spec.validate()?;
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(Error::Config(format!("dropout must be in [0, 1), got {}", config.dropout)));
        }
        gpu::check_device(device, &spec)?;
        let expected = spec.num_layers * spec.directions();
        if weights.len() != expected {
            return Err(Error::Shape {
                op: OP,
                message: format!("{} (layer, direction) weight sets given, {expected} needed", weights.len()),
            });
        }
        let mut params = Vec::with_capacity(expected);
        for (i, w) in weights.iter().enumerate() {
            let shapes = spec.parameter_shapes(i / spec.directions(), i % spec.directions());
            if w.len() != shapes.len() {
                return Err(Error::Shape {
                    op: OP,
                    message: format!("{} tensors given for (layer, direction) {i}, {} needed", w.len(), shapes.len()),
                });
            }
            let mut layer = Vec::with_capacity(shapes.len());
            for ((name, shape), values) in shapes.iter().zip(w) {
                let numel: usize = shape.iter().product();
                if values.len() != numel {
                    return Err(Error::Shape {
                        op: OP,
                        message: format!("{name} needs {numel} values for shape {shape:?}, got {}", values.len()),
                    });
                }
                layer.push(Parameter::new(device, values, shape)?);
            }
            params.push(LayerParams(layer));
        }
        Ok(Self { config, params })
    }

    /// Mode and sizes.
    pub fn spec(&self) -> &RnnSpec {
        &self.config.spec
    }

    /// The configuration.
    pub fn config(&self) -> &RnnConfig {
        &self.config
    }

    /// Parameters per (layer, dir) in `layer·D + dir` order.
    pub fn params(&self) -> &[LayerParams] {
        &self.params
    }

    /// The same stack with the value of `weight_hh` of every (layer, dir)
    /// replaced by `weight_hh[i]` (same shapes) and a fresh zero gradient
    /// for it; every other parameter is shared. AWD-LSTM's weight drop runs
    /// the recurrence with a DropConnect-masked copy of the recurrent
    /// weights and routes that copy's gradient back through the mask.
    pub(crate) fn with_weight_hh(&self, weight_hh: Vec<Tensor>) -> Result<Self> {
        if weight_hh.len() != self.params.len()
            || self.params.iter().zip(&weight_hh).any(|(p, w)| p.weight_hh().shape() != w.shape())
        {
            return Err(Error::Shape {
                op: "Rnn::with_weight_hh",
                message: "replacement recurrent weights must match the layer's shapes".into(),
            });
        }
        let mut params = self.params.clone();
        for (p, w) in params.iter_mut().zip(weight_hh) {
            p.0[WEIGHT_HH] = Parameter::from_tensor(w)?;
        }
        Ok(Self { config: self.config, params })
    }

    /// Parameters with PyTorch names (`weight_ih_l0`, …, `bias_hh_l1_reverse`).
    pub fn named_parameters(&self) -> Vec<(String, Parameter)> {
        let spec = self.spec();
        let mut out = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let shapes = spec.parameter_shapes(i / spec.directions(), i % spec.directions());
            for ((name, _), param) in shapes.into_iter().zip(p.iter()) {
                out.push((name, param.clone()));
            }
        }
        out
    }

    /// Calls `f` with each parameter mutable, under the names and in the
    /// order of [`Rnn::named_parameters`] (for
    /// [`crate::nn::flatten_parameters`]).
    pub(crate) fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(String, &mut Parameter)) {
        let spec = self.config.spec;
        for (i, p) in self.params.iter_mut().enumerate() {
            let shapes = spec.parameter_shapes(i / spec.directions(), i % spec.directions());
            for ((name, _), param) in shapes.into_iter().zip(p.0.iter_mut()) {
                f(name, param);
            }
        }
    }

    /// Forward over a padded batch-first input (B, T, I) with per-row
    /// lengths (any order, each 1..=T). `h0`/`c0` default to zeros.
    /// `train_seed`: `Some(seed)` applies inter-layer dropout (training),
    /// `None` is evaluation.
    pub fn forward(
        &self,
        input: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train_seed: Option<u64>,
    ) -> Result<RnnOutput> {
        self.forward_with(input, lengths, h0, c0, train_seed, None)
    }

    /// [`Rnn::forward`] (no initial state, evaluation) with the recurrent
    /// kernel variant given, not chosen: for the autotuner's timings.
    pub(crate) fn forward_as(
        &self,
        input: &Tensor,
        lengths: &[usize],
        kernel: crate::rnn::RecurrentKernel,
    ) -> Result<RnnOutput> {
        self.forward_with(input, lengths, None, None, None, Some(kernel))
    }

    /// Inter-layer dropout (probability, seed) for a training seed, if any.
    fn dropout(&self, train_seed: Option<u64>) -> Option<(f32, u64)> {
        train_seed.filter(|_| self.config.dropout > 0.0).map(|seed| (self.config.dropout, seed))
    }

    fn forward_with(
        &self,
        input: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train_seed: Option<u64>,
        kernel: Option<crate::rnn::RecurrentKernel>,
    ) -> Result<RnnOutput> {
        let &[batch, max_len, features] = input.shape() else {
            return Err(Error::Shape {
                op: "Rnn::forward",
                message: format!("input must be batch-first (B, T, I), got {:?}", input.shape()),
            });
        };
        if features != self.spec().input_size {
            return Err(Error::Shape {
                op: "Rnn::forward",
                message: format!("input has {features} features, the layer expects {}", self.spec().input_size),
            });
        }
        crate::rnn::spec::validate_lengths(lengths, batch, max_len)?;
        let packed_batch = PackedBatch::new(input.device(), lengths, max_len)?;
        let x = packed_batch.pack(input)?;
        let packed = gpu::forward(self, &x, &packed_batch, h0, c0, self.dropout(train_seed), kernel)?;
        Ok(RnnOutput {
            output: packed_batch.unpack(&packed.output)?,
            h_n: packed.h_n.clone(),
            c_n: packed.c_n.clone(),
            packed,
        })
    }

    /// Forward over an already packed input (N, I) (e.g. an embedding
    /// gathered in packed order).
    pub fn forward_packed(
        &self,
        x: &Tensor,
        batch: &PackedBatch,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train_seed: Option<u64>,
    ) -> Result<gpu::PackedForward> {
        gpu::forward(self, x, batch, h0, c0, self.dropout(train_seed), None)
    }

    /// Gradients of `Σ output·grad_output + Σ h_n·grad_h_n (+ Σ c_n·grad_c_n)`
    /// for a padded forward. Missing `grad_h_n`/`grad_c_n` count as zeros;
    /// `grad_output` at padded steps is ignored.
    pub fn backward(
        &self,
        fwd: &RnnOutput,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
    ) -> Result<RnnGrads> {
        let batch = &fwd.packed.batch;
        let d_out = batch.pack(grad_output).map_err(|e| match e {
            Error::Shape { message, .. } => {
                Error::Shape { op: "Rnn::backward", message: format!("grad_output: {message}") }
            }
            other => other,
        })?;
        let mut grads = self.backward_packed(&fwd.packed, &d_out, grad_h_n, grad_c_n)?;
        grads.input = batch.unpack(&grads.input)?;
        Ok(grads)
    }

    /// [`Rnn::backward`] with the output gradient packed (N, D·H); the input
    /// gradient comes back packed (N, I).
    pub fn backward_packed(
        &self,
        fwd: &gpu::PackedForward,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
    ) -> Result<RnnGrads> {
        let dev = grad_output.device();
        let params = self
            .params
            .iter()
            .map(|l| l.iter().map(|p| Tensor::uninit(dev, p.shape(), DType::F32)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let h0 = self.initial_state_grad(fwd)?;
        let (input, c0) = gpu::backward(
            self,
            fwd,
            grad_output,
            grad_h_n,
            grad_c_n,
            gpu::GradTargets { params: &params, accumulate: false, h0: Some(&h0) },
        )?;
        Ok(RnnGrads { input, h0, c0, params })
    }

    /// [`Rnn::backward_packed`] adding the parameter gradients into each
    /// parameter's own gradient instead of returning new tensors; returns
    /// the (input, h0, c0) gradients. This is how the autograd tape
    /// accumulates into a model's parameters.
    pub fn backward_packed_into(
        &self,
        fwd: &gpu::PackedForward,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let h0 = self.initial_state_grad(fwd)?;
        let (input, c0) = self.backward_packed_accumulate(fwd, grad_output, grad_h_n, grad_c_n, Some(&h0))?;
        Ok((input, h0, c0))
    }

    /// [`Rnn::backward_packed_into`] with the h0 gradient stored into
    /// `grad_h0`, or not computed without one (the tape, for an initial
    /// state that is no variable: one dispatch per layer and direction
    /// fewer with the step kernels). Returns the (input, c0) gradients.
    pub(crate) fn backward_packed_accumulate(
        &self,
        fwd: &gpu::PackedForward,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
        grad_h0: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let grads: Vec<Vec<Tensor>> = self.params.iter().map(|l| l.iter().map(|p| p.grad.clone()).collect()).collect();
        let targets = gpu::GradTargets { params: &grads, accumulate: true, h0: grad_h0 };
        gpu::backward(self, fwd, grad_output, grad_h_n, grad_c_n, targets)
    }

    /// A destination for the h0 gradient of `fwd`'s batch: (L·D, B, S).
    pub(crate) fn initial_state_grad(&self, fwd: &gpu::PackedForward) -> Result<Tensor> {
        let spec = self.spec();
        let shape = [spec.num_layers * spec.directions(), fwd.batch.batch(), spec.state_size()];
        Tensor::uninit(fwd.output.device(), &shape, DType::F32)
    }
}
