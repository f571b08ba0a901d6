//! Text classification as one object: the vectorizer, the label names and
//! the [`SequenceClassifier`], trained with [`crate::train::fit`] and saved
//! as one safetensors file whose metadata holds the vocabulary, the labels
//! and the architecture, so [`TextClassifier::load`] needs nothing else to
//! predict.
//!
//! A head with one output is a binary classifier trained with
//! BCE-with-logits (Keras's `Dense(1, activation="sigmoid")`); more outputs
//! use softmax cross-entropy.

use std::collections::BTreeMap;
use std::path::Path;

use crate::autograd::{LossVars, Tape};
use crate::checkpoint;
use crate::data::{EncodedTexts, Example, LabelSet, TextBatch, TextVectorizer};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::models::{SequenceClassifier, SequenceClassifierConfig};
use crate::nn::{named_parameters, Module, Parameter};
use crate::train::Task;

/// Metadata keys of a text-classifier checkpoint.
const KIND_KEY: &str = "wgrnn.kind";
const KIND: &str = "text_classifier";
const VECTORIZER_KEY: &str = "vectorizer";
const LABELS_KEY: &str = "labels";
const MODEL_KEY: &str = "model";

/// Rows per forward pass in [`TextClassifier::predict`].
const PREDICT_BATCH: usize = 256;

/// The class probabilities of one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// (class name, probability) in class order.
    pub probabilities: Vec<(String, f32)>,
    /// Index of the most probable class.
    pub best: usize,
}

impl Prediction {
    /// The most probable class name.
    pub fn label(&self) -> &str {
        &self.probabilities[self.best].0
    }
}

/// Vectorizer + labels + model; see the module docs.
#[derive(Debug, Clone)]
pub struct TextClassifier {
    /// The network.
    pub model: SequenceClassifier,
    /// Text → token ids.
    pub vectorizer: TextVectorizer,
    /// Class ids ↔ names.
    pub labels: LabelSet,
}

impl TextClassifier {
    /// A new model for `vectorizer` and `labels`. The configuration's
    /// vocabulary must equal the vectorizer's, and its classes the number
    /// of labels (or 1 for a binary BCE head over two labels).
    pub fn new(
        device: &Device,
        vectorizer: TextVectorizer,
        labels: LabelSet,
        config: SequenceClassifierConfig,
    ) -> Result<Self> {
        check_fits(&vectorizer, &labels, &config)?;
        Ok(Self { model: config.init(device)?, vectorizer, labels })
    }

    /// Loads a classifier saved by [`TextClassifier::save`] or by `fit`'s
    /// checkpoints: architecture, vocabulary and labels from the metadata,
    /// then the weights.
    pub fn load(device: &Device, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = checkpoint::metadata(path)?;
        let get = |key: &str| {
            meta.get(key).ok_or_else(|| {
                Error::Format(format!("checkpoint {}: no `{key}` metadata (not a text classifier)", path.display()))
            })
        };
        if get(KIND_KEY)? != KIND {
            return Err(Error::Format(format!(
                "checkpoint {}: holds a {:?}, not a text classifier",
                path.display(),
                meta[KIND_KEY]
            )));
        }
        let vectorizer = TextVectorizer::from_json(get(VECTORIZER_KEY)?)?;
        let labels = LabelSet::from_json(get(LABELS_KEY)?)?;
        let config = SequenceClassifierConfig::from_json(get(MODEL_KEY)?)?;
        check_fits(&vectorizer, &labels, &config)?;
        // The sizes come from the file: check them against its tensors
        // before allocating a model that large.
        checkpoint::check_shapes(path, &config.parameter_shapes()?)?;
        let classifier = Self::new(device, vectorizer, labels, config)?;
        checkpoint::load(path, &classifier, None)?;
        Ok(classifier)
    }

    /// Writes weights, vocabulary, labels and architecture to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        checkpoint::save_with_metadata(path, self, None, &self.metadata())
    }

    /// Every parameter with its name (for the optimizer).
    pub fn parameters(&self) -> Vec<(String, Parameter)> {
        named_parameters(self)
    }

    /// Vectorizes labelled examples read from `file`.
    pub fn encode(&self, file: &str, examples: &[Example]) -> Result<EncodedTexts> {
        EncodedTexts::encode(&self.vectorizer, &self.labels, file, examples)
    }

    /// Logits (B, classes) of a batch on `tape`.
    fn logits(&self, tape: &mut Tape, batch: &TextBatch) -> Result<crate::autograd::Var> {
        self.model.forward(tape, &batch.ids, &batch.lengths, batch.max_len)
    }

    /// Class probabilities of each text (softmax, or the sigmoid of a
    /// binary head), computed on the GPU in batches of 256.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Prediction>> {
        let device = self.model.embedding.weight.value.device().clone();
        let classes = self.model.config().classes;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(PREDICT_BATCH) {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|t| self.vectorizer.encode(t)).collect();
            let labels = vec![0; ids.len()];
            let batches = crate::data::TextBatches::new(
                EncodedTexts::new(ids, labels)?,
                crate::data::BatchConfig::new(chunk.len()),
            )?;
            let batch = batches.epoch(0).pop().ok_or_else(|| Error::Config("nothing to predict".into()))?;
            let mut tape = Tape::eval(&device);
            let logits = self.logits(&mut tape, &batch)?;
            let values = tape.value(logits)?.to_vec()?;
            for row in values.chunks(classes) {
                out.push(self.prediction(row));
            }
        }
        Ok(out)
    }

    fn prediction(&self, logits: &[f32]) -> Prediction {
        let probs: Vec<f32> = if logits.len() == 1 {
            let p = 1.0 / (1.0 + (-logits[0]).exp());
            vec![1.0 - p, p]
        } else {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            exp.iter().map(|e| e / sum).collect()
        };
        let best = probs.iter().enumerate().fold(0, |b, (i, &p)| if p > probs[b] { i } else { b });
        let probabilities = self.labels.names().iter().cloned().zip(probs).collect();
        Prediction { probabilities, best }
    }
}

/// The configuration must match the vocabulary and the labels.
fn check_fits(vectorizer: &TextVectorizer, labels: &LabelSet, config: &SequenceClassifierConfig) -> Result<()> {
    if config.vocab != vectorizer.vocab_size() {
        return Err(Error::Config(format!(
            "the model's vocabulary ({}) differs from the vectorizer's ({})",
            config.vocab,
            vectorizer.vocab_size()
        )));
    }
    let binary = config.classes == 1 && labels.len() == 2;
    if config.classes != labels.len() && !binary {
        return Err(Error::Config(format!(
            "the model has {} outputs for {} labels (use one output per label, or 1 for two labels)",
            config.classes,
            labels.len()
        )));
    }
    Ok(())
}

impl Module for TextClassifier {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        self.model.visit(prefix, f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        self.model.visit_mut(prefix, f);
    }
}

impl Task for TextClassifier {
    type Batch = TextBatch;

    fn loss(&mut self, tape: &mut Tape, batch: &TextBatch) -> Result<LossVars> {
        let logits = self.logits(tape, batch)?;
        if self.model.config().classes == 1 {
            let targets: Vec<f32> = batch.labels.iter().map(|&y| y as f32).collect();
            tape.bce_with_logits(logits, &targets)
        } else {
            tape.cross_entropy(logits, &batch.labels, None, 0.0)
        }
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (KIND_KEY.to_string(), KIND.to_string()),
            (VECTORIZER_KEY.to_string(), self.vectorizer.to_json()),
            (LABELS_KEY.to_string(), self.labels.to_json()),
            (MODEL_KEY.to_string(), self.model.config().to_json()),
        ])
    }

    fn batch_tokens(&self, batch: &TextBatch) -> usize {
        batch.tokens()
    }
}
