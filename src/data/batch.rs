//! Batching of vectorized texts: a seeded shuffle per epoch, optional
//! bucketing by length, and padded batches with per-row lengths that the
//! models hand to the engine as packed batches (so padding costs no
//! compute), or, with `pack = false`, run over the padded length like an
//! unpacked `nn.LSTM` reading the padding.

use crate::data::{Example, LabelSet, TextVectorizer};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Token ids and class ids of a labelled text set, after vectorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedTexts {
    /// Token ids of every example (no padding; may be empty).
    pub ids: Vec<Vec<u32>>,
    /// Class id of every example.
    pub labels: Vec<u32>,
}

impl EncodedTexts {
    /// Pairs token ids with labels (one each per example).
    pub fn new(ids: Vec<Vec<u32>>, labels: Vec<u32>) -> Result<Self> {
        if ids.len() != labels.len() {
            return Err(Error::Shape {
                op: "EncodedTexts::new",
                message: format!("{} token sequences for {} labels", ids.len(), labels.len()),
            });
        }
        Ok(Self { ids, labels })
    }

    /// Vectorizes `examples` read from `file`: texts through `vectorizer`,
    /// labels through `labels` (an unknown label is an error naming the
    /// file and line).
    pub fn encode(vectorizer: &TextVectorizer, labels: &LabelSet, file: &str, examples: &[Example]) -> Result<Self> {
        let ids = examples.iter().map(|e| vectorizer.encode(&e.text)).collect();
        Self::new(ids, labels.encode(file, examples)?)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Total tokens over all examples.
    pub fn tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }
}

/// One padded batch of labelled token sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBatch {
    /// (B, T) token ids, row-major, padded with 0.
    pub ids: Vec<u32>,
    /// (B) steps each row runs: its token count (packed), or T for every
    /// row (unpacked). A row with no tokens runs one padding step.
    pub lengths: Vec<usize>,
    /// (B) class ids.
    pub labels: Vec<u32>,
    /// T: the padded length (the longest row).
    pub max_len: usize,
}

impl TextBatch {
    /// B: rows.
    pub fn rows(&self) -> usize {
        self.lengths.len()
    }

    /// Steps the recurrence processes: Σ lengths.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// How an epoch is cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Rows per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Shuffle the rows every epoch (seeded by `seed` and the epoch).
    pub shuffle: bool,
    /// Bucket by length: sort windows of `bucket_batches × batch_size`
    /// shuffled rows by length, cut them into batches, shuffle the batches.
    /// Rows of a batch then have similar lengths (less padding to pack, and
    /// much less compute with `pack = false`). 0 = no bucketing.
    pub bucket_batches: usize,
    /// Packed rows (padding costs nothing); `false` runs every row over the
    /// batch's padded length, like an unpacked `nn.LSTM` reading padding.
    pub pack: bool,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl BatchConfig {
    /// Batches of `batch_size` rows in file order, packed.
    pub fn new(batch_size: usize) -> Self {
        Self { batch_size, shuffle: false, bucket_batches: 0, pack: true, seed: 0 }
    }

    /// Shuffled every epoch from `seed`.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }

    /// Bucketing by length over windows of `batches` batches (0 = off).
    pub fn with_bucketing(mut self, batches: usize) -> Self {
        self.bucket_batches = batches;
        self
    }

    /// Packed (true, the default) or every row over the padded length.
    pub fn with_pack(mut self, pack: bool) -> Self {
        self.pack = pack;
        self
    }
}

/// A labelled text set and how to batch it: the batch source the
/// classification `fit` loop iterates over (see [`crate::train::Batches`]).
#[derive(Debug, Clone)]
pub struct TextBatches {
    data: EncodedTexts,
    config: BatchConfig,
}

impl TextBatches {
    /// Batches of `data` cut as `config` says.
    pub fn new(data: EncodedTexts, config: BatchConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if data.is_empty() {
            return Err(Error::Config("cannot batch an empty data set".into()));
        }
        Ok(Self { data, config })
    }

    /// The data.
    pub fn data(&self) -> &EncodedTexts {
        &self.data
    }

    /// The batching configuration.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        self.data.len().div_ceil(self.config.batch_size)
    }

    /// Whether an epoch has no batches (never, for a valid set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches of epoch `epoch` (0-based): the same epoch and seed give
    /// the same batches, so a resumed run sees what it would have seen.
    pub fn epoch(&self, epoch: usize) -> Vec<TextBatch> {
        let n = self.data.len();
        let bs = self.config.batch_size;
        let mut order: Vec<usize> = (0..n).collect();
        // One stream per epoch, as the language-model batches draw theirs:
        // `Rng::new(seed ^ epoch·φ)` made epoch e's stream at seed 0 the
        // first one shifted by e draws (SplitMix64 steps by φ). Fisher–Yates
        // takes each draw modulo a different bound, so those orders were not
        // measurably alike, but independent streams need no such argument.
        let mut rng = Rng::for_stream(self.config.seed, epoch as u64);
        if self.config.shuffle {
            shuffle(&mut order, &mut rng);
        }
        let mut groups: Vec<Vec<usize>> = if self.config.bucket_batches > 0 {
            let window = bs * self.config.bucket_batches;
            let mut groups = Vec::new();
            for chunk in order.chunks_mut(window) {
                // Stable: equal lengths keep their shuffled order.
                chunk.sort_by_key(|&i| self.data.ids[i].len());
                groups.extend(chunk.chunks(bs).map(<[usize]>::to_vec));
            }
            if self.config.shuffle {
                shuffle(&mut groups, &mut rng);
            }
            groups
        } else {
            order.chunks(bs).map(<[usize]>::to_vec).collect()
        };
        groups.iter_mut().map(|rows| self.batch(rows)).collect()
    }

    fn batch(&self, rows: &[usize]) -> TextBatch {
        // A row with no tokens runs one step of padding (id 0).
        let len = |i: usize| self.data.ids[i].len().max(1);
        let max_len = rows.iter().map(|&i| len(i)).max().unwrap_or(1);
        let mut ids = vec![0u32; rows.len() * max_len];
        for (r, &i) in rows.iter().enumerate() {
            let src = &self.data.ids[i];
            ids[r * max_len..r * max_len + src.len()].copy_from_slice(src);
        }
        let lengths = rows.iter().map(|&i| if self.config.pack { len(i) } else { max_len }).collect();
        TextBatch { ids, lengths, labels: rows.iter().map(|&i| self.data.labels[i]).collect(), max_len }
    }
}

/// Fisher–Yates with the crate's seeded generator.
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
