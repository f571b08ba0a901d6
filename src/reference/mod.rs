//! Plain-loop CPU references with the same names and arguments as the GPU
//! launchers (host slices in place of tensors). Tests compare the GPU
//! against these; they favour obviousness over speed and accumulate in f64,
//! so they are the more accurate side.

mod kernels;
pub mod lm;
pub mod nn;
pub mod rnn;

pub use kernels::*;
