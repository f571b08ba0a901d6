//! The recurrent layers as a module: [`crate::rnn::Rnn`] (whose parameters
//! carry their gradients) and the choice of initializer.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{join, Init, Module, Parameter};
use crate::rng::Rng;
use crate::rnn::spec::{BIAS_HH, BIAS_IH, WEIGHT_HH, WEIGHT_HR, WEIGHT_IH};
use crate::rnn::{Rnn, RnnConfig, RnnMode, RnnSpec};

/// Initializers of a recurrent stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RnnInit {
    /// PyTorch: every parameter U(±1/√H).
    PyTorch,
    /// Keras: glorot-uniform `weight_ih`, orthogonal `weight_hh`, zero
    /// biases, and (LSTM) a forget-gate bias of 1 (`unit_forget_bias`).
    Keras,
    /// IRNN (Le et al. 2015): identity `weight_hh` blocks, `weight_ih`
    /// N(0, std), zero biases.
    Identity {
        /// Standard deviation of the input weights.
        input_std: f32,
    },
    /// Custom per-kind initializers; `unit_forget_bias` sets the LSTM
    /// forget slice of `bias_ih` to 1.
    Custom {
        /// `weight_ih`.
        input: Init,
        /// `weight_hh`.
        recurrent: Init,
        /// Both biases.
        bias: Init,
        /// LSTM forget-gate bias 1.
        unit_forget_bias: bool,
    },
}

/// Configuration of a [`Recurrent`] module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrentConfig {
    /// Mode, sizes, dropout, seed.
    pub rnn: RnnConfig,
    /// Initializers.
    pub init: RnnInit,
}

impl RecurrentConfig {
    /// One layer, one direction, PyTorch init.
    pub fn new(mode: RnnMode, input_size: usize, hidden_size: usize) -> Self {
        Self { rnn: RnnConfig::new(mode, input_size, hidden_size), init: RnnInit::PyTorch }
    }

    /// Stacked layers.
    pub fn with_num_layers(mut self, layers: usize) -> Self {
        self.rnn = self.rnn.with_num_layers(layers);
        self
    }

    /// Both directions.
    pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
        self.rnn = self.rnn.with_bidirectional(bidirectional);
        self
    }

    /// Inter-layer dropout (training only).
    pub fn with_dropout(mut self, p: f32) -> Self {
        self.rnn = self.rnn.with_dropout(p);
        self
    }

    /// Seed of the initializer.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rnn = self.rnn.with_seed(seed);
        self
    }

    /// Initializer family.
    pub fn with_init(mut self, init: RnnInit) -> Self {
        self.init = init;
        self
    }

    /// The module, weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Recurrent> {
        check_sizes(device, &self.rnn.spec)?;
        let values = initial_values(&self.rnn.spec, self.init, self.rnn.seed)?;
        Ok(Recurrent { layer: Rnn::from_host(device, self.rnn, &values)? })
    }
}

/// Every parameter of the stack must fit a device buffer before its
/// initial values are drawn on the host ([`Device::check_tensor`]); layers
/// past the second have the second's shapes.
pub(crate) fn check_sizes(device: &Device, spec: &RnnSpec) -> Result<()> {
    check_spec(spec)?;
    for layer in 0..spec.num_layers.min(2) {
        for (name, shape) in spec.parameter_shapes(layer, 0) {
            device.check_tensor(&format!("{} parameter {name}", spec.mode.name()), &shape)?;
        }
    }
    Ok(())
}

/// Most stacked layers a recurrent module accepts. Initialising a stack
/// costs time and buffers per layer, so a layer count from a corrupt
/// configuration (2^32, say) would run for hours instead of failing; real
/// stacks have a handful of layers.
pub const MAX_LAYERS: usize = 1024;

/// [`RnnSpec::validate`] plus what initialising needs: a layer count up
/// to [`MAX_LAYERS`], and G = gates·H and D·S that do not overflow.
fn check_spec(spec: &RnnSpec) -> Result<()> {
    spec.validate()?;
    if spec.num_layers > MAX_LAYERS {
        return Err(Error::Config(format!(
            "num_layers = {} is more than the {MAX_LAYERS} a recurrent stack may have",
            spec.num_layers
        )));
    }
    let g = spec.mode.gates().checked_mul(spec.hidden_size);
    let d_s = spec.directions().checked_mul(spec.state_size());
    if g.is_none() || d_s.is_none() {
        return Err(Error::Config(format!("hidden_size = {} overflows the gate count", spec.hidden_size)));
    }
    Ok(())
}

/// The name and shape of every parameter of a stack, in visiting order
/// (`weight_ih_l0`, …, `bias_hh_l1_reverse`), without building it; an
/// unusable spec is an error. Loaders compare these with a file's tensors
/// before allocating a model from an architecture read from that file.
pub(crate) fn parameter_shapes(spec: &RnnSpec) -> Result<Vec<(String, Vec<usize>)>> {
    check_spec(spec)?;
    let mut out = Vec::new();
    for layer in 0..spec.num_layers {
        for dir in 0..spec.directions() {
            out.extend(spec.parameter_shapes(layer, dir));
        }
    }
    Ok(out)
}

/// Initial values of every parameter of a stack, per (layer, dir) in
/// `layer·D + dir` order and [`RnnSpec::parameter_shapes`] order: the one
/// init path of every [`RnnInit`], drawn from one generator seeded `seed`.
pub(crate) fn initial_values(spec: &RnnSpec, init: RnnInit, seed: u64) -> Result<Vec<Vec<Vec<f32>>>> {
    check_spec(spec)?;
    let (g, h) = (spec.gate_size(), spec.hidden_size);
    let k = 1.0 / (h as f32).sqrt();
    let (input, recurrent, bias, unit_forget) = match init {
        // PyTorch: every parameter U(±1/√H).
        RnnInit::PyTorch => (Init::Uniform(-k, k), Init::Uniform(-k, k), Init::Uniform(-k, k), false),
        RnnInit::Keras => (Init::GlorotUniform, Init::Orthogonal, Init::Constant(0.0), true),
        RnnInit::Identity { input_std } => (Init::Normal(input_std), Init::Identity, Init::Constant(0.0), false),
        RnnInit::Custom { input, recurrent, bias, unit_forget_bias } => (input, recurrent, bias, unit_forget_bias),
    };
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for layer in 0..spec.num_layers {
        for dir in 0..spec.directions() {
            let i = spec.layer_input_size(layer);
            let mut values = Vec::new();
            for (k, (_, shape)) in spec.parameter_shapes(layer, dir).into_iter().enumerate() {
                // Keras counts fans on its (in, G) kernel: fan_in = in, fan_out = G.
                let (which, fan_in, fan_out) = match k {
                    WEIGHT_IH => (input, i, g),
                    WEIGHT_HH => (recurrent, spec.state_size(), g),
                    BIAS_IH => (bias, i, g),
                    BIAS_HH => (bias, h, g),
                    // The projection (P, H) maps h̃ to h like an input map.
                    WEIGHT_HR => (input, h, spec.state_size()),
                    _ => return Err(Error::Config(format!("no initializer for parameter {k} of a recurrent layer"))),
                };
                let mut v = which.values(&shape, fan_in, fan_out, &mut rng)?;
                if unit_forget && spec.mode == RnnMode::Lstm && k == BIAS_IH {
                    v[h..2 * h].fill(1.0);
                }
                values.push(v);
            }
            out.push(values);
        }
    }
    Ok(out)
}

/// `torch.nn.LSTM/GRU/RNN` (batch_first) as a module: the layer, whose
/// parameters carry their gradients.
#[derive(Debug, Clone)]
pub struct Recurrent {
    /// The GPU layer.
    pub layer: Rnn,
}

impl Module for Recurrent {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        for (name, p) in self.layer.named_parameters() {
            f(join(prefix, &name), &p);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        self.layer.visit_parameters_mut(&mut |name, p| f(join(prefix, &name), p));
    }
}
