//! Generation: the prompt runs through the stack once, then one step per
//! token with the state carried on the GPU. Each step's token is drawn on
//! the GPU ([`crate::ops::sample_logits`]) straight into the index buffer
//! the next step's embedding gather reads, so nothing is read back per
//! token; the tokens are read every [`STOP_CHECK`] steps to see whether
//! every row has reached a stop token.

use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::lm::model::{LanguageModel, LayerState};
use crate::ops::{gather_rows, sample_logits, SampleOptions};
use crate::rnn::PackedBatch;
use crate::tensor::{DType, Tensor};

/// Steps between readbacks that look for stop tokens.
pub const STOP_CHECK: usize = 16;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to draw after the prompt (stop tokens included).
    pub max_len: usize,
    /// Fewest tokens before a stop token may be drawn (stop tokens are
    /// banned until then, beside `sample.banned`).
    pub min_len: usize,
    /// Ids that end a row (kept as its last token).
    pub stop: Vec<u32>,
    /// Temperature, top-k, top-p, seed and always-banned ids.
    pub sample: SampleOptions,
}

impl GenerateOptions {
    /// `max_len` tokens sampled at temperature 1, no stop tokens.
    pub fn new(max_len: usize) -> Self {
        Self { max_len, min_len: 0, stop: Vec::new(), sample: SampleOptions::default() }
    }
}

impl LanguageModel {
    /// Continues `prompt` (ids, at least one) in `rows` independent samples
    /// (row r draws with the hash of (seed, step, r)); returns each row's
    /// new tokens, up to and including its first stop token. Deterministic
    /// for a seed on a given adapter.
    pub fn generate(&self, prompt: &[u32], rows: usize, options: &GenerateOptions) -> Result<Vec<Vec<u32>>> {
        options.sample.validate()?;
        if prompt.is_empty() || rows == 0 || options.max_len == 0 {
            return Err(Error::Config(format!(
                "generation needs a prompt of at least one token, rows ≥ 1 and max_len ≥ 1 (got {}, {rows}, {})",
                prompt.len(),
                options.max_len
            )));
        }
        // Stop tokens are banned until the minimum length (checked here: it
        // must fit beside the caller's bans).
        let before_min = if options.min_len > 0 { options.sample.with_banned(&options.stop)? } else { options.sample };
        let vocab = self.config().vocab;
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::OutOfRange {
                op: "generate",
                message: format!("prompt id {bad} is out of range for a vocabulary of {vocab}"),
            });
        }
        let device = self.embedding.weight.value.device().clone();
        // Sizes from the caller: checked before anything is allocated.
        let max_rows = device.rt.limits.max_compute_workgroups_per_dimension as usize;
        let cells = rows.checked_mul(options.max_len).and_then(|n| n.checked_mul(4));
        if rows > max_rows || cells.is_none_or(|b| b as u64 > device.rt.limits.max_storage_buffer_binding_size) {
            return Err(Error::OutOfRange {
                op: "generate",
                message: format!(
                    "{rows} rows × {} tokens exceed the device (at most {max_rows} rows and {} bytes of tokens)",
                    options.max_len, device.rt.limits.max_storage_buffer_binding_size
                ),
            });
        }
        let next = Tensor::from_u32(&device, &vec![0; rows], &[rows])?;
        let tokens = Tensor::from_u32(&device, &vec![0; rows * options.max_len], &[options.max_len, rows])?;

        // The prompt, every row the same, in one packed pass.
        let prompt_batch = PackedBatch::new(&device, &vec![prompt.len(); rows], prompt.len())?;
        let padded: Vec<u32> = (0..rows).flat_map(|_| prompt.iter().copied()).collect();
        let mut tape = Tape::eval(&device);
        let fwd = self.forward(&mut tape, &prompt_batch.pack_host(&padded)?, &prompt_batch, None)?;
        let total = prompt_batch.total();
        // The last step's rows are the last `rows` packed rows (equal lengths keep row order).
        let last_rows: Vec<u32> = ((total - rows) as u32..total as u32).collect();
        let logits = gather_rows(tape.value(fwd.logits)?, &Tensor::from_u32(&device, &last_rows, &[rows])?)?;
        let mut state: Vec<LayerState> = fwd.state;
        drop(tape);
        let step_batch = PackedBatch::new(&device, &vec![1; rows], 1)?;
        let mut logits = logits;
        let mut drawn = 0;
        for step in 0..options.max_len {
            let sample = if step < options.min_len { before_min } else { options.sample };
            sample_logits(&logits, &next, &tokens, step, &sample)?;
            drawn = step + 1;
            if drawn == options.max_len {
                break;
            }
            if !options.stop.is_empty() && drawn % STOP_CHECK == 0 && all_stopped(&tokens, drawn, rows, &options.stop)?
            {
                break;
            }
            let mut tape = Tape::eval(&device);
            let x = tape.input(gather_rows(&self.embedding.weight.value, &next)?);
            let fwd = self.forward_embedded(&mut tape, x, None, &step_batch, Some(&state))?;
            logits = tape.value(fwd.logits)?.clone();
            state = fwd.state;
        }
        let all = tokens.to_vec_u32()?;
        Ok((0..rows)
            .map(|r| {
                let mut out = Vec::new();
                for s in 0..drawn {
                    let id = all[s * rows + r];
                    out.push(id);
                    if options.stop.contains(&id) {
                        break;
                    }
                }
                out
            })
            .collect())
    }
}

/// Whether every row has drawn a stop token within its first `drawn` steps.
fn all_stopped(tokens: &Tensor, drawn: usize, rows: usize, stop: &[u32]) -> Result<bool> {
    debug_assert_eq!(tokens.dtype(), DType::U32);
    let all = tokens.to_vec_u32()?;
    Ok((0..rows).all(|r| (0..drawn).any(|s| stop.contains(&all[s * rows + r]))))
}
