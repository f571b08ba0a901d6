//! Recurrent layers: LSTM, GRU and Elman RNN (tanh/relu), stacked and
//! bidirectional, over packed variable-length batches, with PyTorch's
//! parameter names, shapes, gate order and semantics.

pub mod spec;

pub use spec::{validate_lengths, RnnMode, RnnSpec};
pub mod gpu;
pub mod layer;
pub mod packed;
pub mod parity;
pub mod tape;
pub mod tune;
pub mod variant;

pub use gpu::PackedForward;
pub use layer::{LayerParams, Rnn, RnnConfig, RnnGrads, RnnOutput};
pub use packed::PackedBatch;
pub use variant::RecurrentKernel;
