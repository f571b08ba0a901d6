//! Training metrics: sums of loss and right predictions accumulated on the
//! GPU (two tiny dispatches per step, no readback), what one reading of
//! them means, and the CSV log.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::autograd::{LossVars, Tape};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::optim::{accumulate_unless_skipped, never_skipping_step_state, Optimizer};
use crate::tensor::Tensor;

/// Loss and correct-prediction sums over a run of steps, kept on the GPU.
/// Each step adds `count × mean loss` and its correct count; reading them
/// is the only readback, and the fit loop does it at most every ~250 ms.
/// A step the optimizer's non-finite guard skipped adds nothing but its
/// row count to element 1 of `loss`, so one NaN loss does not poison the
/// sums and the means stay over the steps that were applied.
#[derive(Debug)]
pub(crate) struct MetricSums {
    /// (2) Σ count·loss, Σ count of skipped steps.
    loss: Tensor,
    /// (3) Σ correct, Σ perplexities (unused), skipped steps.
    metrics: Tensor,
    /// Rows (or tokens, for a language model) of every step added.
    pub(crate) count: u64,
    /// The step state of sums no optimizer guards (evaluations).
    unguarded: Tensor,
}

impl MetricSums {
    /// Zero sums.
    pub(crate) fn new(device: &Device) -> Result<Self> {
        Ok(Self {
            loss: Tensor::zeros(device, &[2])?,
            metrics: Tensor::zeros(device, &[3])?,
            count: 0,
            unguarded: never_skipping_step_state(device)?,
        })
    }

    /// Sums restored from a reading (a resumed, half-done epoch).
    pub(crate) fn from_reading(device: &Device, r: &Reading) -> Result<Self> {
        Ok(Self {
            loss: Tensor::from_slice(device, &[r.loss_sum, 0.0], &[2])?,
            metrics: Tensor::from_slice(device, &[r.correct, 0.0, 0.0], &[3])?,
            count: r.count,
            unguarded: never_skipping_step_state(device)?,
        })
    }

    /// Adds one step's loss (recorded on `tape`) and metrics, unless
    /// `optimizer` skipped the step (evaluations pass `None`).
    pub(crate) fn add(&mut self, tape: &Tape, loss: &LossVars, optimizer: Option<&Optimizer>) -> Result<()> {
        let state = optimizer.map_or(&self.unguarded, Optimizer::step_state);
        accumulate_unless_skipped(state, loss.count as f32, tape.value(loss.loss)?, &self.loss)?;
        accumulate_unless_skipped(state, 1.0, &loss.metrics, &self.metrics)?;
        self.count += loss.count as u64;
        Ok(())
    }

    /// Reads the sums (submits pending work and waits for it). The count
    /// leaves out the rows of skipped steps.
    pub(crate) fn read(&self) -> Result<Reading> {
        let loss = self.loss.to_vec()?;
        // Row counts summed in f32 are exact up to 2^24 rows skipped.
        let skipped_rows = loss[1] as u64;
        Ok(Reading {
            loss_sum: loss[0],
            correct: self.metrics.to_vec()?[0],
            count: self.count.saturating_sub(skipped_rows),
        })
    }
}

/// One reading of [`MetricSums`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Reading {
    pub(crate) loss_sum: f32,
    pub(crate) correct: f32,
    pub(crate) count: u64,
}

impl Reading {
    /// Mean loss and accuracy of the steps between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &Reading) -> (f32, f32) {
        let n = self.count.saturating_sub(earlier.count).max(1) as f32;
        ((self.loss_sum - earlier.loss_sum) / n, (self.correct - earlier.correct) / n)
    }

    /// Mean loss and accuracy of everything summed.
    pub(crate) fn means(&self) -> (f32, f32) {
        self.since(&Reading::default())
    }
}

/// One row of the metrics log: a training interval or an epoch summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricRow {
    /// `train` (steps since the previous row), `epoch` (whole-epoch training
    /// means) or `valid` (the evaluation after an epoch).
    pub kind: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// Optimizer steps taken so far in the run.
    pub step: u64,
    /// Fractional epochs completed (the plot's x axis).
    pub progress: f64,
    /// Mean loss.
    pub loss: f32,
    /// Accuracy (fraction right).
    pub accuracy: f32,
    /// Learning rate at the last step.
    pub lr: f32,
    /// Training throughput (0 for evaluations).
    pub tokens_per_s: f64,
    /// Seconds since the run started (resumed runs continue the count).
    pub elapsed_s: f64,
}

/// The header and the complete rows of a metrics log whose step is at most
/// `step`, as text. A row is complete when it has the header's number of
/// fields and ends with a newline.
fn rows_up_to(text: &str, step: u64) -> String {
    let mut lines = text.split_inclusive('\n');
    let Some(header) = lines.next().filter(|h| h.ends_with('\n')) else { return String::new() };
    let fields = header.split(',').count();
    let step_column = header.trim_end().split(',').position(|f| f == "step");
    let mut out = header.to_string();
    for line in lines {
        let values: Vec<&str> = line.trim_end().split(',').collect();
        let row_step = step_column.and_then(|c| values.get(c)).and_then(|v| v.parse::<u64>().ok());
        if line.ends_with('\n') && values.len() == fields && row_step.is_some_and(|s| s <= step) {
            out.push_str(line);
        }
    }
    out
}

/// Appends [`MetricRow`]s to a CSV file (header written once).
pub(crate) struct MetricsCsv {
    writer: csv::Writer<File>,
    path: PathBuf,
}

impl MetricsCsv {
    /// Opens `path`. A new run starts the file over; a run resumed at
    /// step `resumed_at` appends, after dropping the rows past that step
    /// (written after its checkpoint by a run that was then killed, and
    /// about to be written again) and any line a kill cut short.
    pub(crate) fn open(path: &Path, resumed_at: Option<u64>) -> Result<Self> {
        let io = |e: std::io::Error| Error::Data {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot write the metrics log: {e}"),
        };
        if let (Some(step), Ok(text)) = (resumed_at, std::fs::read_to_string(path)) {
            let kept = rows_up_to(&text, step);
            if kept.len() != text.len() {
                crate::checkpoint::write_durably(path, kept.as_bytes())?;
            }
        }
        let append = resumed_at.is_some();
        let exists = append && path.exists();
        let file = std::fs::OpenOptions::new().create(true).append(exists).write(true).truncate(!exists).open(path);
        let writer = csv::WriterBuilder::new().has_headers(!exists).from_writer(file.map_err(io)?);
        Ok(Self { writer, path: path.to_path_buf() })
    }

    /// Writes a row and flushes it (a crash loses nothing logged).
    pub(crate) fn write(&mut self, row: &MetricRow) -> Result<()> {
        let e = |m: String| Error::Data { file: self.path.display().to_string(), line: None, message: m };
        self.writer.serialize(row).map_err(|x| e(format!("cannot write the metrics log: {x}")))?;
        self.writer.flush().map_err(|x| e(format!("cannot write the metrics log: {x}")))
    }
}

#[cfg(test)]
mod tests {
    use super::rows_up_to;

    #[test]
    fn a_resumed_log_keeps_the_rows_up_to_its_checkpoint() {
        let header = "kind,epoch,step,loss\n";
        let log = format!("{header}train,1,4,0.9\ntrain,1,8,0.8\nepoch,1,8,0.85\ntrain,2,12,0.7\ntrain,2,1");
        assert_eq!(rows_up_to(&log, 8), format!("{header}train,1,4,0.9\ntrain,1,8,0.8\nepoch,1,8,0.85\n"));
        assert_eq!(
            rows_up_to(&log, 100),
            format!("{header}train,1,4,0.9\ntrain,1,8,0.8\nepoch,1,8,0.85\ntrain,2,12,0.7\n")
        );
        assert_eq!(rows_up_to(&log, 0), header);
        assert_eq!(rows_up_to("kind,ep", 5), "");
    }
}
