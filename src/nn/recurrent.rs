//! The recurrent layers as a module: [`crate::rnn::Rnn`] plus a gradient
//! per parameter, and the choice of initializer.

use crate::device::Device;
use crate::error::Result;
use crate::nn::{join, Init, Module, Parameter};
use crate::rng::Rng;
use crate::rnn::{Rnn, RnnConfig, RnnMode, RnnParams, RnnSpec};
use crate::tensor::Tensor;

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
        let spec = self.rnn.spec;
        spec.validate()?;
        let layer = match self.init {
            RnnInit::PyTorch => self.rnn.init(device)?,
            other => Rnn::from_host(device, self.rnn, &host_weights(&spec, other, self.rnn.seed)?)?,
        };
        let grads = layer
            .params()
            .iter()
            .map(|p| {
                let z = |t: &Tensor| Tensor::zeros(device, t.shape());
                Ok(RnnParams {
                    weight_ih: z(&p.weight_ih)?,
                    weight_hh: z(&p.weight_hh)?,
                    bias_ih: z(&p.bias_ih)?,
                    bias_hh: z(&p.bias_hh)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Recurrent { layer, grads })
    }
}

fn host_weights(spec: &RnnSpec, init: RnnInit, seed: u64) -> Result<Vec<[Vec<f32>; 4]>> {
    let (input, recurrent, bias, unit_forget) = match init {
        RnnInit::Keras => (Init::GlorotUniform, Init::Orthogonal, Init::Constant(0.0), true),
        RnnInit::Identity { input_std } => (Init::Normal(input_std), Init::Identity, Init::Constant(0.0), false),
        RnnInit::Custom { input, recurrent, bias, unit_forget_bias } => (input, recurrent, bias, unit_forget_bias),
        RnnInit::PyTorch => unreachable!("handled by RnnConfig::init"),
    };
    let mut rng = Rng::new(seed);
    let (g, h) = (spec.gate_size(), spec.hidden_size);
    let mut out = Vec::new();
    for layer in 0..spec.num_layers {
        for _dir in 0..spec.directions() {
            let i = spec.layer_input_size(layer);
            // Keras counts fans on its (in, 4H) kernel: fan_in = in, fan_out = G.
            let w_ih = input.values(&[g, i], i, g, &mut rng)?;
            let w_hh = recurrent.values(&[g, h], h, g, &mut rng)?;
            let mut b_ih = bias.values(&[g], i, g, &mut rng)?;
            let b_hh = bias.values(&[g], h, g, &mut rng)?;
            if unit_forget && spec.mode == RnnMode::Lstm {
                b_ih[h..2 * h].fill(1.0);
            }
            out.push([w_ih, w_hh, b_ih, b_hh]);
        }
    }
    Ok(out)
}

/// `torch.nn.LSTM/GRU/RNN` (batch_first) as a module: the layer and the
/// gradient of each of its parameters.
#[derive(Debug, Clone)]
pub struct Recurrent {
    /// The GPU layer (its parameters are this module's values).
    pub layer: Rnn,
    /// Gradients, per (layer, dir), parameter shapes.
    pub grads: Vec<RnnParams>,
}

impl Module for Recurrent {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        let spec = self.layer.spec();
        for (i, (p, g)) in self.layer.params().iter().zip(&self.grads).enumerate() {
            let names = spec.parameter_shapes(i / spec.directions(), i % spec.directions());
            for ((name, _), (value, grad)) in names.into_iter().zip(p.tensors().into_iter().zip(g.tensors())) {
                f(join(prefix, &name), &Parameter { value: value.clone(), grad: grad.clone() });
            }
        }
    }
}
