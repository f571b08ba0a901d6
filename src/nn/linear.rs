//! Fully connected layer: `torch.nn.Linear(in_features, out_features)`.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{join, Init, Module, Parameter};
use crate::rng::Rng;

/// Configuration of a [`Linear`] layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearConfig {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Whether there is a bias (PyTorch `bias=True`).
    pub bias: bool,
    /// Weight initializer; `None` = PyTorch's default U(±1/√in).
    pub init: Option<Init>,
    /// Seed of the initializer.
    pub seed: u64,
}

impl LinearConfig {
    /// `in → out` with bias and PyTorch's default init.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        Self { in_features, out_features, bias: true, init: None, seed: 0 }
    }

    /// With or without bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Another weight initializer (the bias then starts at zero, as Keras).
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// Seed of the initializer.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The module, weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Linear> {
        let (i, o) = (self.in_features, self.out_features);
        if i == 0 || o == 0 {
            return Err(Error::Config(format!("linear layer needs in ≥ 1 and out ≥ 1, got {i} and {o}")));
        }
        device.check_tensor("linear weight", &[o, i])?;
        let mut rng = Rng::new(self.seed);
        // PyTorch: kaiming_uniform(a=√5) on the weight is U(±1/√in); bias U(±1/√in).
        let k = 1.0 / (i as f32).sqrt();
        let (w_init, b_init) = match self.init {
            None => (Init::Uniform(-k, k), Init::Uniform(-k, k)),
            Some(init) => (init, Init::Constant(0.0)),
        };
        let weight = Parameter::new(device, &w_init.values(&[o, i], i, o, &mut rng)?, &[o, i])?;
        let bias =
            if self.bias { Some(Parameter::new(device, &b_init.values(&[o], i, o, &mut rng)?, &[o])?) } else { None };
        Ok(Linear { weight, bias })
    }
}

/// `y = x·Wᵀ + b`: x (M, in) → y (M, out).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `weight`: (out, in).
    pub weight: Parameter,
    /// `bias`: (out).
    pub bias: Option<Parameter>,
}

impl Linear {
    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        f(join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        f(join(prefix, "weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(join(prefix, "bias"), b);
        }
    }
}
