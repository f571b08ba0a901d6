//! Text data for training: readers for CSV and plain text (gzip read
//! transparently) with AG News and IMDB presets ([`read_csv`],
//! [`CsvFormat`]), a Keras-style [`TextVectorizer`] whose vocabulary comes
//! from the training part only, [`LabelSet`] for class names, and batching
//! ([`TextBatches`]): seeded shuffles, bucketing by length, and padded
//! batches with lengths that the models pack so padding costs no compute.
//!
//! Bad data is an [`crate::Error::Data`] naming the file and line.

mod batch;
mod labels;
mod reader;
mod vectorizer;

pub use batch::{BatchConfig, EncodedTexts, TextBatch, TextBatches};
pub use labels::{LabelSet, AG_NEWS_CLASSES};
pub use reader::{open, open_reader, read_csv, read_csv_from, read_lines, read_lines_from, read_text, read_text_from};
pub use reader::{split_every_fifth, split_fraction};
pub use reader::{Cleanup, Column, CsvFormat, EmptyText, Example, LabelledTexts};
pub use vectorizer::{Split, Standardize, TextVectorizer, TextVectorizerConfig, Truncate};
