//! Batches for language models: contiguous streams cut into truncated-BPTT
//! windows with carried state ([`StreamBatches`], PyTorch
//! word_language_model's `batchify`/`get_batch`, with AWD-LSTM's variable
//! length), and one packed row per sentence with zero initial state
//! ([`SentenceBatches`]).

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Target id that the loss ignores (padding of the target grid).
pub const IGNORE: u32 = u32::MAX;

/// One language-model batch: inputs and next-token targets, padded (B, T).
#[derive(Debug, Clone, PartialEq)]
pub struct LmBatch {
    /// (B, T) input ids, row-major, padded with 0.
    pub inputs: Vec<u32>,
    /// (B, T) target ids (the next token of each input), [`IGNORE`] at padding.
    pub targets: Vec<u32>,
    /// (B) valid steps per row.
    pub lengths: Vec<usize>,
    /// T.
    pub max_len: usize,
    /// Start from the previous batch's final state (truncated BPTT) rather
    /// than zeros.
    pub carry_state: bool,
    /// Learning-rate factor for this batch (AWD-LSTM scales by seq_len / bptt).
    pub lr_scale: f32,
}

impl LmBatch {
    /// Predicted tokens: Σ lengths.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// Truncated-BPTT window lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bptt {
    /// Base window length.
    pub len: usize,
    /// AWD-LSTM's variable length: `len` with probability 0.95 else
    /// `len / 2`, then N(·, 5), at least 5 and at most `len + 20`; the
    /// learning rate scales by the window's drawn length / `len` (the last
    /// window of an epoch may be cut shorter by the end of the data).
    pub variable: bool,
    /// Seed of the variable lengths (with the epoch).
    pub seed: u64,
}

impl Bptt {
    /// Fixed windows of `len`.
    pub fn fixed(len: usize) -> Self {
        Self { len, variable: false, seed: 0 }
    }

    /// AWD-LSTM's variable windows around `len`.
    pub fn variable(len: usize, seed: u64) -> Self {
        Self { len, variable: true, seed }
    }
}

/// A token stream cut into B parallel streams, read `bptt` tokens at a time.
#[derive(Debug, Clone)]
pub struct StreamBatches {
    /// (B, L): stream b is `streams[b·L..(b + 1)·L]`.
    streams: Vec<u32>,
    batch: usize,
    stream_len: usize,
    bptt: Bptt,
}

impl StreamBatches {
    /// Cuts `ids` into `batch` streams of ⌊len / batch⌋ tokens (the
    /// remainder is dropped, as `batchify` does).
    pub fn new(ids: &[u32], batch: usize, bptt: Bptt) -> Result<Self> {
        if batch == 0 || bptt.len == 0 {
            return Err(Error::Config(format!("batch and bptt must be ≥ 1, got {batch} and {}", bptt.len)));
        }
        let stream_len = ids.len() / batch;
        if stream_len < 2 {
            return Err(Error::Config(format!(
                "{} tokens are too few for {batch} streams (each needs 2 tokens: an input and its target)",
                ids.len()
            )));
        }
        Ok(Self { streams: ids[..stream_len * batch].to_vec(), batch, stream_len, bptt })
    }

    /// Tokens predicted per epoch: B · (L − 1).
    pub fn targets_per_epoch(&self) -> usize {
        self.batch * (self.stream_len - 1)
    }

    /// The windows of epoch `epoch`: (length, drawn length).
    fn windows(&self, epoch: usize) -> Vec<(usize, usize)> {
        let mut rng = Rng::for_stream(self.bptt.seed, epoch as u64);
        let (mut i, mut out) = (0, Vec::new());
        while i < self.stream_len - 1 {
            let mut drawn = self.bptt.len;
            if self.bptt.variable {
                let base = if rng.next_f32() < 0.95 { drawn as f32 } else { drawn as f32 / 2.0 };
                let len = (base + 5.0 * crate::nn::init::normal(&mut rng)) as i64;
                drawn = (len.max(5) as usize).min(self.bptt.len + 20);
            }
            // The last window is cut at the end of the data; its learning
            // rate still scales by the drawn length, as AWD-LSTM's does.
            let len = drawn.min(self.stream_len - 1 - i);
            out.push((len, drawn));
            i += len;
        }
        out
    }

    /// The batches of epoch `epoch`, in stream order (never shuffled: the
    /// state of one window is the start of the next).
    pub fn epoch(&self, epoch: usize) -> Vec<LmBatch> {
        let mut start = 0;
        self.windows(epoch)
            .into_iter()
            .map(|(len, drawn)| {
                let (mut inputs, mut targets) =
                    (Vec::with_capacity(self.batch * len), Vec::with_capacity(self.batch * len));
                for b in 0..self.batch {
                    let s = &self.streams[b * self.stream_len..(b + 1) * self.stream_len];
                    inputs.extend_from_slice(&s[start..start + len]);
                    targets.extend_from_slice(&s[start + 1..start + len + 1]);
                }
                start += len;
                let lr_scale = if self.bptt.variable { drawn as f32 / self.bptt.len as f32 } else { 1.0 };
                LmBatch { inputs, targets, lengths: vec![len; self.batch], max_len: len, carry_state: true, lr_scale }
            })
            .collect()
    }
}

/// Sentences (each already `<bos> … <eos>`) as packed rows with zero
/// initial state: every token after the first is predicted.
#[derive(Debug, Clone)]
pub struct SentenceBatches {
    sentences: Vec<Vec<u32>>,
    batch: usize,
    shuffle: Option<u64>,
}

impl SentenceBatches {
    /// Batches of `batch` sentences, in order or shuffled every epoch from
    /// `shuffle_seed`. Sentences shorter than 2 tokens predict nothing and
    /// are an error.
    pub fn new(sentences: Vec<Vec<u32>>, batch: usize, shuffle_seed: Option<u64>) -> Result<Self> {
        if batch == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if sentences.is_empty() {
            return Err(Error::Config("no sentences to batch".into()));
        }
        if let Some(i) = sentences.iter().position(|s| s.len() < 2) {
            return Err(Error::Config(format!("sentence {i} has fewer than 2 tokens: nothing to predict")));
        }
        Ok(Self { sentences, batch, shuffle: shuffle_seed })
    }

    /// Tokens predicted per epoch: Σ (len − 1).
    pub fn targets_per_epoch(&self) -> usize {
        self.sentences.iter().map(|s| s.len() - 1).sum()
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: usize) -> Vec<LmBatch> {
        let mut order: Vec<usize> = (0..self.sentences.len()).collect();
        if let Some(seed) = self.shuffle {
            let mut rng = Rng::for_stream(seed, epoch as u64);
            for i in (1..order.len()).rev() {
                order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
        }
        order
            .chunks(self.batch)
            .map(|rows| {
                let max_len = rows.iter().map(|&r| self.sentences[r].len() - 1).max().unwrap_or(1);
                let mut inputs = vec![0; rows.len() * max_len];
                let mut targets = vec![IGNORE; rows.len() * max_len];
                let mut lengths = Vec::with_capacity(rows.len());
                for (b, &r) in rows.iter().enumerate() {
                    let s = &self.sentences[r];
                    let n = s.len() - 1;
                    inputs[b * max_len..b * max_len + n].copy_from_slice(&s[..n]);
                    targets[b * max_len..b * max_len + n].copy_from_slice(&s[1..]);
                    lengths.push(n);
                }
                LmBatch { inputs, targets, lengths, max_len, carry_state: false, lr_scale: 1.0 }
            })
            .collect()
    }
}

impl crate::train::Batches for StreamBatches {
    type Batch = LmBatch;
    fn epoch(&self, epoch: usize) -> Result<Vec<LmBatch>> {
        Ok(StreamBatches::epoch(self, epoch))
    }
}

impl crate::train::Batches for SentenceBatches {
    type Batch = LmBatch;
    fn epoch(&self, epoch: usize) -> Result<Vec<LmBatch>> {
        Ok(SentenceBatches::epoch(self, epoch))
    }
}
