//! Token embedding: `torch.nn.Embedding(num_embeddings, embedding_dim,
//! padding_idx, sparse)`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{join, Init, Module, Parameter};
use crate::rng::Rng;

/// Configuration of an [`Embedding`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingConfig {
    /// V: vocabulary size.
    pub vocab: usize,
    /// E: embedding dimension.
    pub dim: usize,
    /// Row that stays zero and gets no gradient (PyTorch `padding_idx`).
    pub padding_idx: Option<u32>,
    /// Initializer; PyTorch's default is N(0, 1).
    pub init: Init,
    /// Seed of the initializer.
    pub seed: u64,
    /// Sparse gradients (PyTorch `sparse=True`): see [`Embedding::sparse`].
    pub sparse: bool,
}

impl EmbeddingConfig {
    /// V rows of dimension E, N(0, 1) init, no padding index.
    pub fn new(vocab: usize, dim: usize) -> Self {
        Self { vocab, dim, padding_idx: None, init: Init::Normal(1.0), seed: 0, sparse: false }
    }

    /// Sparse gradients (PyTorch `sparse=True`): backward logs the rows it
    /// touched, so that an optimizer told about this embedding
    /// ([`crate::optim::Optimizer::with_sparse_embedding`]) zeroes and
    /// updates only those rows, as `torch.optim.SparseAdam` does, instead
    /// of all V·E weights every step. Off by default.
    pub fn with_sparse(mut self, sparse: bool) -> Self {
        self.sparse = sparse;
        self
    }

    /// Row `idx` is zero and receives no gradient.
    pub fn with_padding_idx(mut self, idx: u32) -> Self {
        self.padding_idx = Some(idx);
        self
    }

    /// Another initializer.
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Seed of the initializer.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The module, weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Embedding> {
        if self.vocab == 0 || self.dim == 0 {
            return Err(Error::Config(format!(
                "embedding needs vocab ≥ 1 and dim ≥ 1, got {} and {}",
                self.vocab, self.dim
            )));
        }
        if let Some(p) = self.padding_idx.filter(|&p| p as usize >= self.vocab) {
            return Err(Error::Config(format!("padding_idx {p} is outside the vocabulary of {}", self.vocab)));
        }
        device.check_tensor("embedding weight", &[self.vocab, self.dim])?;
        let mut values = self.init.values(&[self.vocab, self.dim], self.vocab, self.dim, &mut Rng::new(self.seed))?;
        if let Some(p) = self.padding_idx {
            values[p as usize * self.dim..(p as usize + 1) * self.dim].fill(0.0);
        }
        Ok(Embedding {
            weight: Parameter::new(device, &values, &[self.vocab, self.dim])?,
            padding_idx: self.padding_idx,
            sparse: self.sparse.then(SparseRows::default),
        })
    }
}

/// Lookup table (V, E): ids (count) → vectors (count, E). Its backward is a
/// deterministic bucketed sum (see shaders/embedding.wgsl).
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `weight`: (V, E).
    pub weight: Parameter,
    /// Row without gradient.
    pub padding_idx: Option<u32>,
    /// With sparse gradients ([`EmbeddingConfig::with_sparse`]), the log
    /// of rows that received a gradient since the optimizer last zeroed
    /// them. Every row outside it has a zero gradient, which is what lets
    /// the optimizer skip them: nothing else may add to this weight's
    /// gradient (a decoder tied to it would).
    pub sparse: Option<SparseRows>,
}

/// The rows of a sparse embedding's weight that received a gradient since
/// the optimizer last zeroed them (PyTorch's coalesced sparse gradient
/// indices, the padding row left out). The embedding's backward adds to
/// it; [`crate::optim::Optimizer::zero_grad`] empties it. Clones share one
/// log.
#[derive(Debug, Clone, Default)]
pub struct SparseRows(Arc<Mutex<BTreeSet<u32>>>);

impl SparseRows {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        // A panic while holding it cannot leave a half-inserted set.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The logged rows, ascending.
    pub fn rows(&self) -> Vec<u32> {
        self.lock().iter().copied().collect()
    }

    /// Adds rows to the log.
    pub(crate) fn record(&self, rows: &[u32]) {
        self.lock().extend(rows.iter().copied());
    }

    /// Empties the log (the rows' gradients were zeroed).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

impl Embedding {
    /// V.
    pub fn vocab(&self) -> usize {
        self.weight.shape()[0]
    }

    /// E.
    pub fn dim(&self) -> usize {
        self.weight.shape()[1]
    }
}

impl Module for Embedding {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        f(join(prefix, "weight"), &self.weight);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Parameter)) {
        f(join(prefix, "weight"), &mut self.weight);
    }
}
