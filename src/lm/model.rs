//! The language-model network: embedding → stacked recurrent layers (one
//! module per layer, as fastai's `AWD_LSTM`, so each layer can have its own
//! size, weight drop and carried state) → linear decoder over the
//! vocabulary, with optional tied weights and AWD-LSTM's regularizers.

use crate::autograd::{Tape, Var};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{join, Embedding, EmbeddingConfig, Init, Linear, LinearConfig, Module, Parameter};
use crate::nn::{Recurrent, RecurrentConfig};
use crate::rnn::{PackedBatch, RnnMode};
use crate::tensor::Tensor;

/// AWD-LSTM's regularizers (Merity et al. 2017, fastai's `AWD_LSTM`). The
/// probabilities are fastai's `awd_lstm_lm_config` defaults times a
/// `drop_mult` ([`AwdConfig::fastai`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AwdConfig {
    /// Embedding dropout: whole words dropped (`embed_p`).
    pub embed_p: f32,
    /// Locked dropout on the embedding output (`input_p`).
    pub input_p: f32,
    /// Locked dropout between layers (`hidden_p`).
    pub hidden_p: f32,
    /// Locked dropout on the last layer's output, before the decoder (`output_p`).
    pub output_p: f32,
    /// DropConnect on every `weight_hh` (`weight_p`).
    pub weight_p: f32,
    /// Activation regularization: alpha · mean(dropped output²).
    pub alpha: f32,
    /// Temporal activation regularization: beta · mean((h_t − h_{t−1})²).
    pub beta: f32,
}

impl AwdConfig {
    /// fastai's language-model defaults (output 0.1, hidden 0.15, input
    /// 0.25, embedding 0.02, weight 0.2) times `drop_mult`, AR α = 2, TAR β = 1.
    pub fn fastai(drop_mult: f32) -> Self {
        Self {
            embed_p: 0.02 * drop_mult,
            input_p: 0.25 * drop_mult,
            hidden_p: 0.15 * drop_mult,
            output_p: 0.1 * drop_mult,
            weight_p: 0.2 * drop_mult,
            alpha: 2.0,
            beta: 1.0,
        }
    }

    fn validate(&self) -> Result<()> {
        let ps = [self.embed_p, self.input_p, self.hidden_p, self.output_p, self.weight_p];
        if ps.iter().any(|p| !(0.0..1.0).contains(p)) || self.alpha < 0.0 || self.beta < 0.0 {
            return Err(Error::Config(format!("AWD dropouts must be in [0, 1) and alpha, beta ≥ 0: {self:?}")));
        }
        Ok(())
    }
}

/// Configuration of a [`LanguageModel`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LanguageModelConfig {
    /// V.
    pub vocab: usize,
    /// E.
    pub embed_dim: usize,
    /// H of every layer (the last is E when weights are tied).
    pub hidden: usize,
    /// Stacked layers.
    pub layers: usize,
    /// Recurrent cell (`lstm`, `gru`, `rnn_tanh`, `rnn_relu`).
    #[serde(with = "mode_name")]
    pub mode: RnnMode,
    /// Plain dropout after every recurrent layer (between layers and before
    /// the decoder; PyTorch's word_language_model also drops the embedding
    /// output, this does not). Ignored with `awd`.
    pub dropout: f32,
    /// Decoder weight = embedding weight (Press & Wolf 2017); the last
    /// layer's hidden size is then E.
    pub tie_weights: bool,
    /// AWD-LSTM regularizers instead of plain dropout.
    pub awd: Option<AwdConfig>,
    /// Embedding init; `None` = PyTorch's N(0, 1), AWD-LSTM uses U(±0.1).
    #[serde(skip)]
    pub embedding_init: Option<Init>,
    /// Seed of every initializer.
    pub seed: u64,
}

mod mode_name {
    use crate::rnn::RnnMode;
    pub fn serialize<S: serde::Serializer>(m: &RnnMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.name())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RnnMode, D::Error> {
        let name: String = serde::Deserialize::deserialize(d)?;
        RnnMode::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl LanguageModelConfig {
    /// One-layer LSTM, no dropout, untied, PyTorch inits.
    pub fn new(vocab: usize, embed_dim: usize, hidden: usize) -> Self {
        Self {
            vocab,
            embed_dim,
            hidden,
            layers: 1,
            mode: RnnMode::Lstm,
            dropout: 0.0,
            tie_weights: false,
            awd: None,
            embedding_init: None,
            seed: 0,
        }
    }
    /// Stacked layers.
    pub fn with_layers(mut self, layers: usize) -> Self {
        self.layers = layers;
        self
    }
    /// Recurrent cell.
    pub fn with_mode(mut self, mode: RnnMode) -> Self {
        self.mode = mode;
        self
    }
    /// Plain dropout after every layer.
    pub fn with_dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }
    /// Tied embedding and decoder weights.
    pub fn with_tied_weights(mut self, tie: bool) -> Self {
        self.tie_weights = tie;
        self
    }
    /// AWD-LSTM regularizers.
    pub fn with_awd(mut self, awd: AwdConfig) -> Self {
        self.awd = Some(awd);
        self
    }
    /// Embedding initializer.
    pub fn with_embedding_init(mut self, init: Init) -> Self {
        self.embedding_init = Some(init);
        self
    }
    /// Seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Hidden size of layer `k`.
    pub fn layer_hidden(&self, k: usize) -> usize {
        if self.tie_weights && k + 1 == self.layers {
            self.embed_dim
        } else {
            self.hidden
        }
    }

    /// The name and shape of every parameter (`embedding.weight`,
    /// `rnns.0.weight_ih_l0`, …, `decoder.bias`) without building the
    /// model; an unusable configuration is an error.
    pub fn parameter_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        if self.layers < 1 || self.layers > crate::nn::MAX_LAYERS {
            return Err(Error::Config(format!(
                "a language model needs 1..={} layers, got {}",
                crate::nn::MAX_LAYERS,
                self.layers
            )));
        }
        let mut out = vec![("embedding.weight".to_string(), vec![self.vocab, self.embed_dim])];
        for k in 0..self.layers {
            let input = if k == 0 { self.embed_dim } else { self.layer_hidden(k - 1) };
            let rnn = RecurrentConfig::new(self.mode, input, self.layer_hidden(k));
            let prefix = format!("rnns.{k}");
            out.extend(
                crate::nn::recurrent::parameter_shapes(&rnn.rnn.spec)?.into_iter().map(|(n, s)| (join(&prefix, &n), s)),
            );
        }
        if !self.tie_weights {
            out.push(("decoder.weight".into(), vec![self.vocab, self.layer_hidden(self.layers - 1)]));
        }
        out.push(("decoder.bias".into(), vec![self.vocab]));
        Ok(out)
    }

    /// The architecture as JSON (checkpoint metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The architecture from [`Self::to_json`].
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Format(format!("language-model metadata is not valid: {e}")))
    }

    /// The model on `device`, its parameters flat
    /// ([`crate::nn::flatten_parameters`]).
    pub fn init(&self, device: &Device) -> Result<LanguageModel> {
        if self.vocab < 1
            || self.embed_dim < 1
            || self.hidden < 1
            || self.layers < 1
            || self.layers > crate::nn::MAX_LAYERS
        {
            return Err(Error::Config(format!(
                "a language model needs vocab, embed_dim, hidden ≥ 1 and 1..={} layers, got {}, {}, {}, {}",
                crate::nn::MAX_LAYERS,
                self.vocab,
                self.embed_dim,
                self.hidden,
                self.layers
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!("dropout must be in [0, 1), got {}", self.dropout)));
        }
        if let Some(awd) = &self.awd {
            awd.validate()?;
        }
        let mut emb = EmbeddingConfig::new(self.vocab, self.embed_dim).with_seed(self.seed);
        if let Some(init) = self.embedding_init {
            emb = emb.with_init(init);
        }
        let embedding = emb.init(device)?;
        let mut rnns = Vec::with_capacity(self.layers);
        for k in 0..self.layers {
            let input = if k == 0 { self.embed_dim } else { self.layer_hidden(k - 1) };
            rnns.push(
                RecurrentConfig::new(self.mode, input, self.layer_hidden(k))
                    .with_seed(self.seed.wrapping_add(1 + k as u64))
                    .init(device)?,
            );
        }
        let out_in = self.layer_hidden(self.layers - 1);
        let mut decoder = LinearConfig::new(out_in, self.vocab)
            .with_seed(self.seed.wrapping_add(1 + self.layers as u64))
            .init(device)?;
        if self.tie_weights {
            decoder.weight = embedding.weight.clone();
        }
        let mut model = LanguageModel { embedding, rnns, decoder, config: *self };
        crate::nn::flatten_parameters(&mut model)?;
        Ok(model)
    }
}

/// The final states of one layer: carried into the next batch.
#[derive(Debug, Clone)]
pub struct LayerState {
    /// (1, B, H).
    pub h: Tensor,
    /// (1, B, H) for LSTM.
    pub c: Option<Tensor>,
}

/// What [`LanguageModel::forward`] records.
#[derive(Debug, Clone)]
pub struct LmForward {
    /// (N, V) logits of every packed step.
    pub logits: Var,
    /// Each layer's final states (values only: carrying them detaches).
    pub state: Vec<LayerState>,
    /// AR + TAR (training tape with AWD), to add to the objective.
    pub penalty: Option<Var>,
}

/// embedding → recurrent layers → decoder; parameter names
/// `embedding.weight`, `rnns.{k}.weight_ih_l0`, …, `decoder.weight`
/// (absent when tied: it is `embedding.weight`), `decoder.bias`.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    /// `embedding` (V, E).
    pub embedding: Embedding,
    /// `rnns.{k}`: one single-layer module per layer.
    pub rnns: Vec<Recurrent>,
    /// `decoder`: (V, H_last) weight (the embedding's when tied) and bias.
    pub decoder: Linear,
    config: LanguageModelConfig,
}

impl LanguageModel {
    /// The configuration.
    pub fn config(&self) -> &LanguageModelConfig {
        &self.config
    }

    /// Records the forward pass of packed token ids (N) laid out by `batch`,
    /// starting from `state` (zeros when `None`; carried states are inputs
    /// with no gradient). Ids ≥ V are an error.
    pub fn forward(
        &self,
        tape: &mut Tape,
        ids: &[u32],
        batch: &PackedBatch,
        state: Option<&[LayerState]>,
    ) -> Result<LmForward> {
        if ids.len() != batch.total() {
            return Err(Error::Shape {
                op: "LanguageModel::forward",
                message: format!("{} ids for a packed batch of {} steps", ids.len(), batch.total()),
            });
        }
        let x = tape.embedding(&self.embedding, ids)?;
        self.forward_embedded(tape, x, Some(ids), batch, state)
    }

    /// [`LanguageModel::forward`] from the gathered embedding rows `x`
    /// (N, E); `ids` (needed for embedding dropout when training with AWD)
    /// are the rows' token ids.
    pub fn forward_embedded(
        &self,
        tape: &mut Tape,
        x: Var,
        ids: Option<&[u32]>,
        batch: &PackedBatch,
        state: Option<&[LayerState]>,
    ) -> Result<LmForward> {
        if let Some(s) = state {
            self.check_state(s, batch.batch())?;
        }
        let awd = self.config.awd.filter(|_| tape.is_training());
        let mut x = x;
        if let Some(a) = &awd {
            let ids = ids.ok_or_else(|| Error::Config("AWD embedding dropout needs the token ids".into()))?;
            x = tape.embedding_dropout(x, ids, a.embed_p)?;
            x = tape.locked_dropout(x, batch, a.input_p)?;
        }
        let last = self.rnns.len() - 1;
        let mut out_state = Vec::with_capacity(self.rnns.len());
        let mut raw_last = x;
        for (k, rnn) in self.rnns.iter().enumerate() {
            let (h0, c0) = match state {
                Some(s) => (Some(tape.input(s[k].h.clone())), s[k].c.clone().map(|c| tape.input(c))),
                None => (None, None),
            };
            let weight_p = awd.map_or(0.0, |a| a.weight_p);
            let r = tape.recurrent_weight_drop(rnn, x, batch, h0, c0, weight_p)?;
            out_state.push(LayerState {
                h: tape.value(r.h_n)?.clone(),
                c: r.c_n.map(|v| tape.value(v).cloned()).transpose()?,
            });
            raw_last = r.output;
            x = match &awd {
                Some(a) => tape.locked_dropout(r.output, batch, if k == last { a.output_p } else { a.hidden_p })?,
                None => tape.dropout(r.output, self.config.dropout)?,
            };
        }
        let penalty = match &awd {
            Some(a) => {
                let mut terms = Vec::new();
                if a.alpha > 0.0 {
                    terms.push(tape.activation_penalty(x, a.alpha)?);
                }
                if a.beta > 0.0 {
                    terms.push(tape.temporal_penalty(raw_last, batch, a.beta)?);
                }
                match terms.as_slice() {
                    [] => None,
                    [one] => Some(*one),
                    [a, b, ..] => Some(tape.add(*a, *b)?),
                }
            }
            None => None,
        };
        let logits = tape.linear(&self.decoder, x)?;
        Ok(LmForward { logits, state: out_state, penalty })
    }

    /// Zero states for `batch` rows (what generation starts from).
    pub fn zero_state(&self, device: &Device, batch: usize) -> Result<Vec<LayerState>> {
        (0..self.rnns.len())
            .map(|k| {
                let shape = [1, batch, self.config.layer_hidden(k)];
                Ok(LayerState {
                    h: Tensor::zeros(device, &shape)?,
                    c: if self.config.mode.has_cell_state() { Some(Tensor::zeros(device, &shape)?) } else { None },
                })
            })
            .collect()
    }

    fn check_state(&self, state: &[LayerState], batch: usize) -> Result<()> {
        let ok = state.len() == self.rnns.len()
            && state.iter().enumerate().all(|(k, s)| {
                let shape = [1, batch, self.config.layer_hidden(k)];
                s.h.shape() == shape
                    && s.c.as_ref().map(Tensor::shape) == self.config.mode.has_cell_state().then_some(&shape[..])
            });
        if ok {
            Ok(())
        } else {
            Err(Error::Shape {
                op: "LanguageModel::forward",
                message: format!("the carried state does not fit {} layers of a batch of {batch}", self.rnns.len()),
            })
        }
    }
}

impl Module for LanguageModel {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.embedding.visit(&join(prefix, "embedding"), f);
        for (k, rnn) in self.rnns.iter().enumerate() {
            rnn.visit(&join(prefix, &format!("rnns.{k}")), f);
        }
        // A tied decoder weight is the embedding's: visiting it again would
        // update it twice and save it twice.
        if !self.config.tie_weights {
            f(join(prefix, "decoder.weight"), &self.decoder.weight);
        }
        if let Some(b) = &self.decoder.bias {
            f(join(prefix, "decoder.bias"), b);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        self.embedding.visit_mut(&join(prefix, "embedding"), f);
        for (k, rnn) in self.rnns.iter_mut().enumerate() {
            rnn.visit_mut(&join(prefix, &format!("rnns.{k}")), f);
        }
        if self.config.tie_weights {
            // Visited once, as the embedding's; the decoder shares it again.
            self.decoder.weight = self.embedding.weight.clone();
        } else {
            f(join(prefix, "decoder.weight"), &mut self.decoder.weight);
        }
        if let Some(b) = &mut self.decoder.bias {
            f(join(prefix, "decoder.bias"), b);
        }
    }
}
