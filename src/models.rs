//! Ready-made models built from the modules: the text classifier of the
//! classic RNN lessons (Keras/PyTorch AG News and IMDB notebooks):
//! embedding → recurrent stack → pooling → linear.

use crate::autograd::{Tape, Var};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{flatten_parameters, join, EmbeddingConfig, Init, Linear, LinearConfig, Module, Parameter};
use crate::nn::{Embedding, Recurrent};
use crate::nn::{RecurrentConfig, RnnInit};
use crate::rnn::{PackedBatch, RnnMode};

/// How a classifier turns the sequence into one vector per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The last layer's final hidden state (both directions concatenated).
    Last,
    /// Mean of the top layer's outputs over each row's valid steps.
    Mean,
    /// Max of the top layer's outputs over each row's valid steps.
    Max,
}

impl Pooling {
    /// `last`, `mean` or `max`.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
            Pooling::Max => "max",
        }
    }

    /// Parses [`Pooling::name`]; anything else is an error listing the names.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            "max" => Ok(Pooling::Max),
            other => Err(Error::Config(format!("unknown pooling {other:?}; expected last, mean or max"))),
        }
    }
}

/// Configuration of a [`SequenceClassifier`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequenceClassifierConfig {
    /// V.
    pub vocab: usize,
    /// E.
    pub embed_dim: usize,
    /// H.
    pub hidden: usize,
    /// Output classes (logits per row).
    pub classes: usize,
    /// Recurrent cell.
    pub mode: RnnMode,
    /// Stacked layers.
    pub layers: usize,
    /// Both directions.
    pub bidirectional: bool,
    /// Dropout between recurrent layers and before the head.
    pub dropout: f32,
    /// Padding token (zero row, no gradient).
    pub padding_idx: Option<u32>,
    /// Pooling.
    pub pooling: Pooling,
    /// Recurrent initializer.
    pub init: RnnInit,
    /// Embedding initializer; `None` = PyTorch's N(0, 1).
    pub embedding_init: Option<Init>,
    /// Head weight initializer (bias zero); `None` = PyTorch's U(±1/√in).
    pub head_init: Option<Init>,
    /// Seed of every initializer.
    pub seed: u64,
    /// Sparse embedding gradients ([`EmbeddingConfig::with_sparse`]): a
    /// training-time choice, not stored in checkpoints.
    pub sparse_embedding: bool,
}

/// The architecture part of [`SequenceClassifierConfig`] as stored in a
/// checkpoint's metadata: enough to rebuild the model before loading its
/// weights (initializers and seed are not needed for that).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredArchitecture {
    vocab: usize,
    embed_dim: usize,
    hidden: usize,
    classes: usize,
    mode: String,
    layers: usize,
    bidirectional: bool,
    dropout: f32,
    padding_idx: Option<u32>,
    pooling: String,
}

impl SequenceClassifierConfig {
    /// One-layer unidirectional LSTM, last-state pooling, no dropout.
    pub fn new(vocab: usize, embed_dim: usize, hidden: usize, classes: usize) -> Self {
        Self {
            vocab,
            embed_dim,
            hidden,
            classes,
            mode: RnnMode::Lstm,
            layers: 1,
            bidirectional: false,
            dropout: 0.0,
            padding_idx: None,
            pooling: Pooling::Last,
            init: RnnInit::PyTorch,
            embedding_init: None,
            head_init: None,
            seed: 0,
            sparse_embedding: false,
        }
    }

    /// The architecture as JSON, for checkpoint metadata.
    pub fn to_json(&self) -> String {
        let stored = StoredArchitecture {
            vocab: self.vocab,
            embed_dim: self.embed_dim,
            hidden: self.hidden,
            classes: self.classes,
            mode: self.mode.name().to_string(),
            layers: self.layers,
            bidirectional: self.bidirectional,
            dropout: self.dropout,
            padding_idx: self.padding_idx,
            pooling: self.pooling.name().to_string(),
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// The architecture from [`SequenceClassifierConfig::to_json`]
    /// (initializers default; the weights come from the checkpoint).
    pub fn from_json(json: &str) -> Result<Self> {
        let s: StoredArchitecture = serde_json::from_str(json)
            .map_err(|e| Error::Format(format!("model architecture metadata is not valid: {e}")))?;
        let mut c = Self::new(s.vocab, s.embed_dim, s.hidden, s.classes)
            .with_mode(RnnMode::parse(&s.mode)?)
            .with_layers(s.layers)
            .with_bidirectional(s.bidirectional)
            .with_dropout(s.dropout)
            .with_pooling(Pooling::parse(&s.pooling)?);
        c.padding_idx = s.padding_idx;
        Ok(c)
    }

    /// The name and shape of every parameter (`embedding.weight`,
    /// `rnn.weight_ih_l0`, …, `fc.bias`) without building the model; an
    /// unusable configuration is an error.
    pub fn parameter_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        let rnn = RecurrentConfig::new(self.mode, self.embed_dim, self.hidden)
            .with_num_layers(self.layers)
            .with_bidirectional(self.bidirectional);
        let dirs = if self.bidirectional { 2 } else { 1 };
        let mut out = vec![("embedding.weight".to_string(), vec![self.vocab, self.embed_dim])];
        out.extend(
            crate::nn::recurrent::parameter_shapes(&rnn.rnn.spec)?.into_iter().map(|(n, s)| (join("rnn", &n), s)),
        );
        out.push(("fc.weight".into(), vec![self.classes, dirs * self.hidden]));
        out.push(("fc.bias".into(), vec![self.classes]));
        Ok(out)
    }

    /// Embedding initializer (Keras: `Init::Uniform(-0.05, 0.05)`).
    pub fn with_embedding_init(mut self, init: Init) -> Self {
        self.embedding_init = Some(init);
        self
    }

    /// Head weight initializer, bias zero (Keras: `Init::GlorotUniform`).
    pub fn with_head_init(mut self, init: Init) -> Self {
        self.head_init = Some(init);
        self
    }

    /// Recurrent cell.
    pub fn with_mode(mut self, mode: RnnMode) -> Self {
        self.mode = mode;
        self
    }
    /// Stacked layers.
    pub fn with_layers(mut self, layers: usize) -> Self {
        self.layers = layers;
        self
    }
    /// Both directions.
    pub fn with_bidirectional(mut self, b: bool) -> Self {
        self.bidirectional = b;
        self
    }
    /// Dropout between layers and before the head.
    pub fn with_dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }
    /// Padding token.
    pub fn with_padding_idx(mut self, idx: u32) -> Self {
        self.padding_idx = Some(idx);
        self
    }
    /// Pooling.
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }
    /// Recurrent initializer.
    pub fn with_init(mut self, init: RnnInit) -> Self {
        self.init = init;
        self
    }
    /// Seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sparse embedding gradients: pair with
    /// [`crate::optim::Optimizer::with_sparse_embedding`] for lazy
    /// (`torch.optim.SparseAdam`) updates of the looked-up rows only.
    pub fn with_sparse_embedding(mut self, sparse: bool) -> Self {
        self.sparse_embedding = sparse;
        self
    }

    /// The model on `device`, its parameters flat
    /// ([`crate::nn::flatten_parameters`]).
    pub fn init(&self, device: &Device) -> Result<SequenceClassifier> {
        if self.vocab < 1 || self.classes < 1 || !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "classifier needs vocab ≥ 1, classes ≥ 1 and dropout in [0, 1), got {}, {} and {}",
                self.vocab, self.classes, self.dropout
            )));
        }
        let mut emb =
            EmbeddingConfig::new(self.vocab, self.embed_dim).with_seed(self.seed).with_sparse(self.sparse_embedding);
        if let Some(p) = self.padding_idx {
            emb = emb.with_padding_idx(p);
        }
        if let Some(init) = self.embedding_init {
            emb = emb.with_init(init);
        }
        let rnn = RecurrentConfig::new(self.mode, self.embed_dim, self.hidden)
            .with_num_layers(self.layers)
            .with_bidirectional(self.bidirectional)
            .with_dropout(if self.layers > 1 { self.dropout } else { 0.0 })
            .with_init(self.init)
            .with_seed(self.seed.wrapping_add(1))
            .init(device)?;
        let dirs = if self.bidirectional { 2 } else { 1 };
        let mut fc = LinearConfig::new(dirs * self.hidden, self.classes).with_seed(self.seed.wrapping_add(2));
        if let Some(init) = self.head_init {
            fc = fc.with_init(init);
        }
        let fc = fc.init(device)?;
        let mut model = SequenceClassifier { embedding: emb.init(device)?, rnn, fc, config: *self };
        flatten_parameters(&mut model)?;
        Ok(model)
    }
}

/// embedding → recurrent stack → pooling → (dropout) → linear: token ids
/// (B, T) padded with per-row lengths → logits (B, classes). Parameter names
/// `embedding.weight`, `rnn.weight_ih_l0`, …, `fc.weight`, `fc.bias`, as a
/// PyTorch module with attributes `embedding`, `rnn`, `fc`.
#[derive(Debug, Clone)]
pub struct SequenceClassifier {
    /// `embedding`.
    pub embedding: Embedding,
    /// `rnn`.
    pub rnn: Recurrent,
    /// `fc`.
    pub fc: Linear,
    config: SequenceClassifierConfig,
}

impl SequenceClassifier {
    /// The configuration.
    pub fn config(&self) -> &SequenceClassifierConfig {
        &self.config
    }

    /// Logits (B, classes) for padded ids (B·T, row-major) and lengths.
    pub fn forward(&self, tape: &mut Tape, ids: &[u32], lengths: &[usize], max_len: usize) -> Result<Var> {
        if ids.len() != lengths.len() * max_len {
            return Err(Error::Shape {
                op: "SequenceClassifier::forward",
                message: format!("{} ids for {} rows of {max_len} steps", ids.len(), lengths.len()),
            });
        }
        let batch = PackedBatch::new(tape.device(), lengths, max_len)?;
        let x = tape.embedding(&self.embedding, &batch.pack_host(ids)?)?;
        let r = tape.recurrent(&self.rnn, x, &batch, None, None)?;
        let features = match self.config.pooling {
            Pooling::Last => tape.pool_last(r.h_n, self.rnn.layer.spec().directions())?,
            Pooling::Mean => tape.pool_mean(r.output, &batch)?,
            Pooling::Max => tape.pool_max(r.output, &batch)?,
        };
        let features = tape.dropout(features, self.config.dropout)?;
        tape.linear(&self.fc, features)
    }
}

impl Module for SequenceClassifier {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.embedding.visit(&join(prefix, "embedding"), f);
        self.rnn.visit(&join(prefix, "rnn"), f);
        self.fc.visit(&join(prefix, "fc"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        self.embedding.visit_mut(&join(prefix, "embedding"), f);
        self.rnn.visit_mut(&join(prefix, "rnn"), f);
        self.fc.visit_mut(&join(prefix, "fc"), f);
    }
}
