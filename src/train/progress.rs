//! What a person watching `fit` sees: an indicatif bar per epoch (loss,
//! accuracy, tokens/s, ETA) when stderr is a terminal, and one plain line
//! per epoch on stdout always, so logs and CI stay readable.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much `fit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar on stderr when it is a terminal, plus one line per epoch.
    Bar,
    /// One line per epoch only.
    Lines,
    /// Nothing.
    Quiet,
}

/// The bar of the current epoch (hidden when not drawing).
pub(crate) struct EpochBar {
    bar: ProgressBar,
    mode: Progress,
}

impl EpochBar {
    /// A bar over `batches` steps of epoch `epoch` (1-based) of `epochs`.
    pub(crate) fn new(mode: Progress, epoch: usize, epochs: usize, batches: usize, done: usize) -> Self {
        let target = if mode == Progress::Bar { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(batches as u64), target);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({elapsed_precise}, eta {eta_precise})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        bar.set_position(done as u64);
        Self { bar, mode }
    }

    /// Moves the bar to `done` steps.
    pub(crate) fn set_position(&self, done: usize) {
        self.bar.set_position(done as u64);
    }

    /// Shows the latest reading.
    pub(crate) fn show(&self, loss: f32, accuracy: f32, tokens_per_s: f64) {
        self.bar.set_message(format!("loss {loss:.4} acc {accuracy:.4} {tokens_per_s:.0} tok/s"));
    }

    /// Clears the bar and prints the epoch's line.
    pub(crate) fn finish(&self, line: &str) {
        self.bar.finish_and_clear();
        if self.mode != Progress::Quiet {
            println!("{line}");
        }
    }
}
