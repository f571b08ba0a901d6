//! `PackedBatch::new` and its GPU layout.

// Index loops mirror the definitions of the packed layout they check.
#![allow(clippy::needless_range_loop)]

use wgrnn::rnn::PackedBatch;
use wgrnn::Tensor;

use super::device;
use crate::engine::{Input, Verdict};

// ---------------------------------------------------------------- packed

pub(super) fn packed_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let rows = if input.u8() == 255 { 1 << input.below(18) } else { input.below(9) };
    let pattern: Vec<usize> = (0..rows.min(8)).map(|_| input.size(8)).collect();
    let lengths: Vec<usize> = (0..rows).map(|b| pattern[b % pattern.len().max(1)]).collect();
    let max_len = input.size(8);
    let valid = !lengths.is_empty() && lengths.iter().all(|&l| l >= 1 && l <= max_len);
    let small = rows.checked_mul(max_len).is_some_and(|n| n <= 1 << 16);
    let dev = device();
    let batch = match PackedBatch::new(dev, &lengths, max_len) {
        Ok(b) => b,
        Err(e) if valid && small => {
            return Verdict::Wrong(format!("valid lengths {lengths:?} with T = {max_len} were rejected: {e}"))
        }
        Err(e) => return Verdict::from_error(&e),
    };
    if !valid {
        return Verdict::Wrong(format!("lengths {lengths:?} with T = {max_len} were accepted"));
    }
    if let Err(m) = check_packed(&batch, &lengths, max_len) {
        return Verdict::Wrong(m);
    }
    // The GPU copy of the layout: pack (B, T, 1) positions, compare with
    // the host, and unpack back (zeros at padding).
    if small && input.u8() < 128 {
        let positions: Vec<f32> = (0..rows * max_len).map(|i| i as f32).collect();
        let check = || -> wgrnn::Result<Result<(), String>> {
            let padded = Tensor::from_slice(dev, &positions, &[rows, max_len, 1])?;
            let packed = batch.pack(&padded)?.to_vec()?;
            let want = batch.pack_host(&positions)?;
            if packed != want {
                return Ok(Err("the GPU packing differs from pack_host".into()));
            }
            let packed = Tensor::from_slice(dev, &want, &[want.len(), 1])?;
            let back = batch.unpack(&packed)?.to_vec()?;
            for (i, (&got, &pos)) in back.iter().zip(&positions).enumerate() {
                let (b, t) = (i / max_len, i % max_len);
                let expect = if t < lengths[b] { pos } else { 0.0 };
                if got != expect {
                    return Ok(Err(format!("unpack at ({b}, {t}) gave {got}, expected {expect}")));
                }
            }
            Ok(Ok(()))
        };
        match check() {
            Ok(Ok(())) => return Verdict::Accepted("packed+gpu".into()),
            Ok(Err(m)) => return Verdict::Wrong(m),
            Err(e) => return Verdict::from_error(&e),
        }
    }
    Verdict::Accepted("packed".into())
}

/// The host layout of an accepted batch against its definition.
fn check_packed(batch: &PackedBatch, lengths: &[usize], max_len: usize) -> Result<(), String> {
    let total: usize = lengths.iter().sum();
    if batch.batch() != lengths.len() || batch.max_len() != max_len || batch.total() != total {
        return Err(format!("batch {} / T {} / N {} do not match the input", batch.batch(), batch.max_len(), total));
    }
    let sizes = batch.batch_sizes();
    for t in 0..max_len {
        if sizes[t] != lengths.iter().filter(|&&l| l > t).count() {
            return Err(format!("batch_sizes[{t}] = {} is wrong", sizes[t]));
        }
        if batch.offsets()[t + 1] != batch.offsets()[t] + sizes[t] {
            return Err(format!("offsets[{}] is wrong", t + 1));
        }
    }
    let mut seen = vec![false; lengths.len()];
    let sorted = batch.sorted_rows();
    for (s, &b) in sorted.iter().enumerate() {
        if b >= lengths.len() || std::mem::replace(&mut seen[b], true) {
            return Err("sorted_rows is not a permutation".into());
        }
        if s > 0 {
            let prev = sorted[s - 1];
            if lengths[prev] < lengths[b] || (lengths[prev] == lengths[b] && prev > b) {
                return Err("sorted_rows is not a stable sort by length, longest first".into());
            }
        }
    }
    let order: Vec<usize> = (0..lengths.len() * max_len).collect();
    let packed = batch.pack_host(&order).map_err(|e| e.to_string())?;
    let mut want = Vec::with_capacity(total);
    for t in 0..max_len {
        for &b in sorted.iter().take(sizes[t]) {
            want.push(b * max_len + t);
        }
    }
    if packed != want {
        return Err("pack_host is not time-major over the sorted rows".into());
    }
    Ok(())
}

pub(super) fn packed_seeds() -> Vec<Vec<u8>> {
    vec![vec![3, 2, 5, 1, 5], vec![1, 1, 1], vec![4, 3, 3, 1, 2, 3], vec![2, 0, 1, 1], vec![2, 4, 1, 3]]
}
