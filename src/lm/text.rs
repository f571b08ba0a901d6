//! A language model over text as one object: the vectorizer (words or
//! characters, with `<bos>`/`<eos>` when it has them), the network and the
//! carried truncated-BPTT state. It is a [`Task`] for [`crate::train::fit`]
//! and is saved as one safetensors file whose metadata holds the
//! vocabulary and the architecture, so [`TextLm::load`] needs nothing else
//! to generate.

use std::collections::BTreeMap;
use std::path::Path;

use crate::autograd::{LossVars, Tape};
use crate::checkpoint::{self, HostTensor};
use crate::data::TextVectorizer;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::lm::batch::{LmBatch, IGNORE};
use crate::lm::generate::GenerateOptions;
use crate::lm::model::{LanguageModel, LanguageModelConfig, LayerState};
use crate::nn::{named_parameters, Module, Parameter};
use crate::rnn::PackedBatch;
use crate::tensor::Tensor;
use crate::train::Task;

const KIND_KEY: &str = "wgrnn.kind";
const KIND: &str = "language_model";
const VECTORIZER_KEY: &str = "vectorizer";
const MODEL_KEY: &str = "model";

/// Vectorizer + network + carried state; see the module docs.
#[derive(Debug, Clone)]
pub struct TextLm {
    /// The network.
    pub model: LanguageModel,
    /// Text ↔ ids.
    pub vectorizer: TextVectorizer,
    /// Final states of the last batch, carried into the next one that
    /// asks for it (truncated BPTT); reset at every epoch and evaluation.
    state: Option<Vec<LayerState>>,
}

impl TextLm {
    /// A new model for `vectorizer`; the configuration's vocabulary must be
    /// the vectorizer's.
    pub fn new(device: &Device, vectorizer: TextVectorizer, config: LanguageModelConfig) -> Result<Self> {
        if config.vocab != vectorizer.vocab_size() {
            return Err(Error::Config(format!(
                "the model's vocabulary ({}) differs from the vectorizer's ({})",
                config.vocab,
                vectorizer.vocab_size()
            )));
        }
        Ok(Self { model: config.init(device)?, vectorizer, state: None })
    }

    /// Loads a model saved by [`TextLm::save`] or by `fit`'s checkpoints.
    pub fn load(device: &Device, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = checkpoint::metadata(path)?;
        let get = |key: &str| {
            meta.get(key).ok_or_else(|| {
                Error::Format(format!("checkpoint {}: no `{key}` metadata (not a language model)", path.display()))
            })
        };
        if get(KIND_KEY)? != KIND {
            return Err(Error::Format(format!(
                "checkpoint {}: holds a {:?}, not a language model",
                path.display(),
                meta[KIND_KEY]
            )));
        }
        let vectorizer = TextVectorizer::from_json(get(VECTORIZER_KEY)?)?;
        let config = LanguageModelConfig::from_json(get(MODEL_KEY)?)?;
        if config.vocab != vectorizer.vocab_size() {
            return Err(Error::Format(format!(
                "checkpoint {}: the model's vocabulary ({}) differs from the vectorizer's ({})",
                path.display(),
                config.vocab,
                vectorizer.vocab_size()
            )));
        }
        // The sizes come from the file: check them against its tensors
        // before allocating a model that large.
        checkpoint::check_shapes(path, &config.parameter_shapes()?)?;
        let lm = Self::new(device, vectorizer, config)?;
        checkpoint::load(path, &lm, None)?;
        Ok(lm)
    }

    /// Writes weights, vocabulary and architecture to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        checkpoint::save_with_metadata(path, self, None, &self.metadata())
    }

    /// Every parameter with its name (for the optimizer).
    pub fn parameters(&self) -> Vec<(String, Parameter)> {
        named_parameters(self)
    }

    /// The id of a special token such as `<bos>`.
    pub fn special(&self, token: &str) -> Option<u32> {
        self.vectorizer.id(token)
    }

    /// Continues the text `prompt` (vectorized; `<bos>` first when the
    /// vocabulary has one) in `rows` samples; returns the generated tokens
    /// of each row (a stop token ends a row and is left out). Padding and
    /// `<bos>` are never drawn (they are not text); ban the OOV id through
    /// `options.sample` if `[UNK]` should not appear either.
    pub fn generate_text(&self, prompt: &str, rows: usize, options: &GenerateOptions) -> Result<Vec<Vec<String>>> {
        let mut options = options.clone();
        let not_text: Vec<u32> = [Some(TextVectorizer::PAD), self.special("<bos>")].into_iter().flatten().collect();
        options.sample = options.sample.with_banned(&not_text)?;
        let options = &options;
        let mut ids: Vec<u32> = self.special("<bos>").into_iter().collect();
        ids.extend(self.vectorizer.encode(prompt));
        if ids.is_empty() {
            return Err(Error::Config("the prompt has no tokens (and the vocabulary has no <bos>)".into()));
        }
        let rows = self.model.generate(&ids, rows, options)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.iter()
                    .filter(|id| !options.stop.contains(id))
                    .map(|&id| self.vectorizer.decode(&[id])[0].to_string())
                    .collect()
            })
            .collect())
    }
}

impl Module for TextLm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.model.visit(prefix, f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        self.model.visit_mut(prefix, f);
    }
}

impl Task for TextLm {
    type Batch = LmBatch;

    fn loss(&mut self, tape: &mut Tape, batch: &LmBatch) -> Result<LossVars> {
        let packed = PackedBatch::new(tape.device(), &batch.lengths, batch.max_len)?;
        let ids = packed.pack_host(&batch.inputs)?;
        let targets = packed.pack_host(&batch.targets)?;
        let carried = match (&self.state, batch.carry_state) {
            (Some(s), true) => {
                let rows = s.first().map_or(0, |l| l.h.shape()[1]);
                if rows != batch.lengths.len() {
                    return Err(Error::Shape {
                        op: "TextLm::loss",
                        message: format!(
                            "the carried state holds {rows} streams, this batch {} (a resumed run needs the batch \
                             size it was started with)",
                            batch.lengths.len()
                        ),
                    });
                }
                Some(s.as_slice())
            }
            _ => None,
        };
        let fwd = self.model.forward(tape, &ids, &packed, carried)?;
        self.state = batch.carry_state.then_some(fwd.state);
        let loss = tape.cross_entropy(fwd.logits, &targets, Some(IGNORE), 0.0)?;
        match fwd.penalty {
            Some(p) => loss.with_penalty(tape, p),
            None => Ok(loss),
        }
    }

    fn start_epoch(&mut self, _epoch: usize) -> Result<()> {
        self.state = None;
        Ok(())
    }

    fn start_evaluation(&mut self) -> Result<()> {
        self.state = None;
        Ok(())
    }

    fn running_state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (k, layer) in self.state.iter().flatten().enumerate() {
            out.push((format!("h.{k}"), layer.h.clone()));
            if let Some(c) = &layer.c {
                out.push((format!("c.{k}"), c.clone()));
            }
        }
        out
    }

    fn restore_running_state(&mut self, state: Vec<HostTensor>) -> Result<()> {
        if state.is_empty() {
            self.state = None;
            return Ok(());
        }
        let device = self.model.embedding.weight.value.device().clone();
        let find = |name: &str| state.iter().find(|t| t.name == name);
        let mut layers = Vec::with_capacity(self.model.rnns.len());
        for k in 0..self.model.rnns.len() {
            let tensor = |HostTensor { name, shape, values }: &HostTensor| {
                let expected = [1, shape.get(1).copied().unwrap_or(0), self.model.config().layer_hidden(k)];
                if shape[..] != expected {
                    return Err(Error::Format(format!(
                        "carried state `{name}` has shape {shape:?}, expected {expected:?}"
                    )));
                }
                Tensor::from_slice(&device, values, shape)
            };
            let h = find(&format!("h.{k}")).ok_or_else(|| Error::Format(format!("no carried state `h.{k}`")))?;
            let c = match (self.model.config().mode.has_cell_state(), find(&format!("c.{k}"))) {
                (true, Some(c)) => Some(tensor(c)?),
                (true, None) => return Err(Error::Format(format!("no carried state `c.{k}`"))),
                (false, _) => None,
            };
            layers.push(LayerState { h: tensor(h)?, c });
        }
        if state.len() != layers.iter().map(|l| 1 + usize::from(l.c.is_some())).sum::<usize>() {
            return Err(Error::Format("the checkpoint's carried state does not match the model's layers".into()));
        }
        self.state = Some(layers);
        Ok(())
    }

    fn lr_scale(&self, batch: &LmBatch) -> f32 {
        batch.lr_scale
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (KIND_KEY.to_string(), KIND.to_string()),
            (VECTORIZER_KEY.to_string(), self.vectorizer.to_json()),
            (MODEL_KEY.to_string(), self.model.config().to_json()),
        ])
    }

    fn batch_tokens(&self, batch: &LmBatch) -> usize {
        batch.tokens()
    }
}
