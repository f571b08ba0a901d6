//! Language models and generation (the other half of the classic RNN
//! lessons): character- and word-level LSTM language models trained with
//! truncated BPTT and carried state ([`StreamBatches`]) or one sentence per
//! packed row ([`SentenceBatches`]), AWD-LSTM's regularizers
//! ([`AwdConfig`]: weight drop, locked and embedding dropout, AR, TAR),
//! tied embedding/decoder weights, and sampling with temperature, top-k and
//! top-p on the GPU ([`LanguageModel::generate`]).
//!
//! [`TextLm`] bundles the vectorizer and the network as a
//! [`crate::train::Task`], so [`crate::train::fit`] trains it like a
//! classifier; its checkpoints hold the vocabulary, so generation needs
//! only the file.

mod batch;
mod generate;
mod model;
mod text;

pub use batch::{Bptt, LmBatch, SentenceBatches, StreamBatches, IGNORE};
pub use generate::{GenerateOptions, STOP_CHECK};
pub use model::{AwdConfig, LanguageModel, LanguageModelConfig, LayerState, LmForward};
pub use text::TextLm;
