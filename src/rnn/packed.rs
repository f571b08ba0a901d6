//! Packed variable-length batches, as PyTorch's `pack_padded_sequence` with
//! `enforce_sorted=False`: rows sorted by length (longest first, stable), and
//! the valid steps stored time-major so that step t's active rows are one
//! contiguous block. Padded steps then cost no compute anywhere: the input
//! projection, the recurrence and the weight gradients all run over the N =
//! Σ lengths packed rows only.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::rnn::spec::validate_lengths;
use crate::tensor::Tensor;

/// The layout of one packed batch, on the host and the GPU. Immutable once
/// built: the GPU copy of the layout must keep matching the host one, since
/// the kernels index with it.
#[derive(Debug, Clone)]
pub struct PackedBatch {
    /// Lengths in the caller's row order.
    lengths: Vec<usize>,
    /// T: padded length.
    max_len: usize,
    /// `sorted_rows[s]` = caller row of sorted position s.
    sorted_rows: Vec<usize>,
    /// Active rows at each step (non-increasing).
    batch_sizes: Vec<usize>,
    /// First packed row of each step; `offsets[T]` = N.
    offsets: Vec<usize>,
    /// (N) padded index `b·T + t` of every packed row, on the host.
    pack_order: Vec<u32>,
    /// u32 `offsets | batch_sizes | sorted lengths | sorted_rows`, the layout
    /// shaders/recurrent.wgsl reads as `info`.
    pub(crate) info: Tensor,
    /// (N) u32: padded row `b·T + t` of every packed row.
    pub(crate) pack_index: Tensor,
    /// (B·T) u32: packed row of every padded position, `u32::MAX` at padding.
    pub(crate) unpack_index: Tensor,
}

impl PackedBatch {
    /// Layout for rows of the given lengths in a batch padded to `max_len`.
    /// Lengths may come in any order; each must be in 1..=max_len.
    pub fn new(device: &Device, lengths: &[usize], max_len: usize) -> Result<Self> {
        if lengths.is_empty() {
            return Err(Error::Empty { op: "PackedBatch::new", what: "lengths".into() });
        }
        validate_lengths(lengths, lengths.len(), max_len)?;
        let batch = lengths.len();
        // The (B·T) unpack index must fit one buffer, and every padded
        // position a u32, before any host table of T or B·T entries is
        // built (T = usize::MAX would overflow or abort the allocation).
        device.check_tensor("PackedBatch unpack index", &[batch, max_len])?;
        to_u32(batch * max_len)?;
        let mut sorted_rows: Vec<usize> = (0..batch).collect();
        sorted_rows.sort_by_key(|&b| std::cmp::Reverse(lengths[b])); // stable
        let batch_sizes: Vec<usize> = (0..max_len).map(|t| lengths.iter().filter(|&&l| l > t).count()).collect();
        let mut offsets = vec![0usize; max_len + 1];
        for t in 0..max_len {
            offsets[t + 1] = offsets[t] + batch_sizes[t];
        }
        let total = offsets[max_len];
        let mut pack = vec![0u32; total];
        let mut unpack = vec![u32::MAX; batch * max_len];
        for t in 0..max_len {
            for (s, &b) in sorted_rows.iter().take(batch_sizes[t]).enumerate() {
                let packed = offsets[t] + s;
                pack[packed] = to_u32(b * max_len + t)?;
                unpack[b * max_len + t] = to_u32(packed)?;
            }
        }
        let mut info = Vec::with_capacity(2 * max_len + 1 + 2 * batch);
        for v in offsets.iter().chain(&batch_sizes).chain(sorted_rows.iter().map(|&b| &lengths[b])).chain(&sorted_rows)
        {
            info.push(to_u32(*v)?);
        }
        Ok(Self {
            lengths: lengths.to_vec(),
            max_len,
            info: Tensor::from_u32(device, &info, &[info.len()])?,
            pack_index: Tensor::from_u32(device, &pack, &[total])?,
            pack_order: pack,
            unpack_index: Tensor::from_u32(device, &unpack, &[batch * max_len])?,
            sorted_rows,
            batch_sizes,
            offsets,
        })
    }

    /// Lengths in the caller's row order.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// T: the padded length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The longest row's length (steps the recurrence runs).
    pub fn longest(&self) -> usize {
        self.lengths.iter().copied().max().unwrap_or(0)
    }

    /// `sorted_rows()[s]` = caller row at sorted position s (longest first).
    pub fn sorted_rows(&self) -> &[usize] {
        &self.sorted_rows
    }

    /// Rows active at each step (non-increasing), like PyTorch's `batch_sizes`.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.batch_sizes
    }

    /// First packed row of each step; the last entry is N.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// B: rows.
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// N = Σ lengths: packed rows.
    pub fn total(&self) -> usize {
        self.offsets[self.max_len]
    }

    /// Packs host data laid out padded batch-first (B, T) — token ids,
    /// targets — into packed order (N), on the host.
    pub fn pack_host<T: Copy>(&self, padded: &[T]) -> Result<Vec<T>> {
        if padded.len() != self.batch() * self.max_len {
            return Err(Error::Shape {
                op: "PackedBatch::pack_host",
                message: format!("{} values for a ({}, {}) batch", padded.len(), self.batch(), self.max_len),
            });
        }
        Ok(self.pack_order.iter().map(|&i| padded[i as usize]).collect())
    }

    /// Packs a padded batch-first (B, T, F) tensor into (N, F).
    pub fn pack(&self, padded: &Tensor) -> Result<Tensor> {
        let f = self.check_padded("PackedBatch::pack", padded)?;
        crate::ops::gather_rows(&padded.reshape(&[self.batch() * self.max_len, f])?, &self.pack_index)
    }

    /// Unpacks (N, F) into a padded batch-first (B, T, F) tensor with zeros
    /// at padded steps.
    pub fn unpack(&self, packed: &Tensor) -> Result<Tensor> {
        let &[n, f] = packed.shape() else {
            return Err(Error::Shape {
                op: "PackedBatch::unpack",
                message: format!("expected (N, F), got {:?}", packed.shape()),
            });
        };
        if n != self.total() {
            return Err(Error::Shape {
                op: "PackedBatch::unpack",
                message: format!("packed tensor has {n} rows, the batch has {}", self.total()),
            });
        }
        crate::ops::gather_rows_or_zero(packed, &self.unpack_index)?.reshape(&[self.batch(), self.max_len, f])
    }

    fn check_padded(&self, op: &'static str, t: &Tensor) -> Result<usize> {
        match *t.shape() {
            [b, tt, f] if b == self.batch() && tt == self.max_len => Ok(f),
            ref s => Err(Error::Shape {
                op,
                message: format!("expected a batch-first ({}, {}, F) tensor, got {s:?}", self.batch(), self.max_len),
            }),
        }
    }
}

fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::OutOfRange { op: "PackedBatch::new", message: format!("{v} exceeds u32 indexing") })
}
