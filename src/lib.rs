//! # wgrnn
//!
//! Train recurrent neural networks (vanilla RNN, LSTM, GRU) on any GPU
//! through wgpu: WGSL compute shaders on Vulkan, Metal, DX12, GL, and the
//! software fallback (lavapipe). No CUDA, no libtorch.
//!
//! Layers, bottom up: [`Device`] selection, GPU [`Tensor`]s backed by a
//! buffer pool, a kernel registry with cached pipelines ([`kernels`]) and
//! the kernels in [`ops`] with CPU references in [`mod@reference`]; the
//! recurrent layers ([`rnn`]); the autograd tape, modules, optimizers and
//! checkpoints ([`autograd`], [`nn`], [`optim`], [`checkpoint`]); and the
//! user's jobs: text data ([`data`]), the training loop ([`train`]), text
//! classification ([`classify`]) and language models with generation
//! ([`lm`]).

#![warn(missing_docs)]
// Index loops mirror the kernels' index math in the CPU references.
#![allow(clippy::needless_range_loop)]
//!
//! ```no_run
//! # fn main() -> wgrnn::Result<()> {
//! let dev = wgrnn::Device::new()?;
//! let a = wgrnn::Tensor::from_slice(&dev, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let c = wgrnn::ops::matmul(&a, &a)?;
//! assert_eq!(c.to_vec()?, vec![7.0, 10.0, 15.0, 22.0]);
//! # Ok(()) }
//! ```

pub mod autograd;
pub mod cells;
pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod device;
pub mod error;
pub mod kernels;
pub mod lm;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod profile;
pub mod reference;
pub mod rng;
pub mod rnn;
mod runtime;
pub mod tensor;
pub mod train;
pub mod tune;

pub use device::{Device, DeviceInfo, DeviceOptions};
pub use error::{Error, Result};
pub use runtime::MemoryStats;
pub use tensor::{DType, Tensor};
