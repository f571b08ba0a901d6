//! Readers for labelled text: RFC 4180 CSV through the `csv` crate (quoted
//! fields, doubled quotes, embedded newlines, optional header, columns by
//! name or index) and plain text, with gzip decompressed transparently
//! (detected by its magic bytes, whatever the file is called). AG News and
//! IMDB are presets over the generic reader.
//!
//! Every problem with a file is an [`Error::Data`] naming the file and the
//! line its record starts on; nothing panics on any input.

use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// A column chosen by 0-based index or by header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// 0-based position.
    Index(usize),
    /// Name in the header row.
    Name(String),
}

impl Column {
    /// All digits → an index, anything else → a name.
    pub fn parse(s: &str) -> Column {
        match s.trim().parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.trim().to_string()),
        }
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Index(i) => write!(f, "column {i}"),
            Column::Name(n) => write!(f, "column {n:?}"),
        }
    }
}

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The text (text columns joined with a space, cleaned up).
    pub text: String,
    /// The label as written in the file.
    pub label: String,
    /// 1-based line the record starts on.
    pub line: u64,
}

/// Clean-ups applied to the joined text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Text as read.
    None,
    /// AG News: the two characters `\` `n` (an escaped newline) become a space.
    AgNews,
    /// IMDB: the HTML line breaks `<br />` become a space.
    Imdb,
}

impl Cleanup {
    fn apply(self, text: String) -> String {
        match self {
            Cleanup::None => text,
            Cleanup::AgNews => text.replace("\\n", " "),
            Cleanup::Imdb => text.replace("<br />", " "),
        }
    }
}

/// What to do with a row whose text is empty (after clean-up and trimming).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyText {
    /// Stop with an error naming the line.
    Error,
    /// Skip it and count it in [`LabelledTexts::skipped_empty`].
    Skip,
}

/// How to read a labelled CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFormat {
    /// Text columns, joined with one space in this order.
    pub text: Vec<Column>,
    /// Label column.
    pub label: Column,
    /// Whether the first line holds column names.
    pub has_header: bool,
    /// Clean-up of the joined text.
    pub cleanup: Cleanup,
    /// Empty texts: error or skip.
    pub empty: EmptyText,
    /// Field delimiter.
    pub delimiter: u8,
}

impl CsvFormat {
    /// One text column and a label column; no header, comma-separated,
    /// no clean-up, empty texts are errors.
    pub fn new(text: Column, label: Column) -> Self {
        Self {
            text: vec![text],
            label,
            has_header: false,
            cleanup: Cleanup::None,
            empty: EmptyText::Error,
            delimiter: b',',
        }
    }

    /// Several text columns, joined with a space.
    pub fn with_text_columns(mut self, columns: Vec<Column>) -> Self {
        self.text = columns;
        self
    }
    /// Whether the first line holds column names.
    pub fn with_header(mut self, has_header: bool) -> Self {
        self.has_header = has_header;
        self
    }
    /// Text clean-up.
    pub fn with_cleanup(mut self, cleanup: Cleanup) -> Self {
        self.cleanup = cleanup;
        self
    }
    /// Empty-text policy.
    pub fn with_empty(mut self, empty: EmptyText) -> Self {
        self.empty = empty;
        self
    }
    /// Field delimiter.
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// AG News (`class,title,description`, no header): text = title + " " +
    /// description with `\n` escapes as spaces; label = class ("1".."4").
    pub fn ag_news() -> Self {
        Self::new(Column::Index(1), Column::Index(0))
            .with_text_columns(vec![Column::Index(1), Column::Index(2)])
            .with_cleanup(Cleanup::AgNews)
    }

    /// IMDB as in the shared data (`id,rating,label,text` with a header):
    /// text without `<br />`, label `neg`/`pos`.
    pub fn imdb() -> Self {
        Self::new(Column::Name("text".into()), Column::Name("label".into()))
            .with_header(true)
            .with_cleanup(Cleanup::Imdb)
    }
}

/// The rows read from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledTexts {
    /// The examples in file order.
    pub examples: Vec<Example>,
    /// Rows skipped for an empty text ([`EmptyText::Skip`]).
    pub skipped_empty: usize,
    /// The file, as named by the caller (for error messages).
    pub file: String,
}

fn data_err(file: &str, line: Option<u64>, message: impl Into<String>) -> Error {
    Error::Data { file: file.to_string(), line, message: message.into() }
}

/// A reader over the file, gunzipped when it starts with the gzip magic
/// bytes 1f 8b (whatever its extension).
pub fn open(path: impl AsRef<Path>) -> Result<Box<dyn Read>> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| data_err(&file, None, format!("cannot open: {e}")))?;
    open_reader(BufReader::new(f), &file)
}

/// [`open`] over any byte stream (stdin, a network stream, bytes in
/// memory); `file` names it in error messages.
pub fn open_reader(mut reader: impl Read + 'static, file: &str) -> Result<Box<dyn Read>> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(data_err(file, None, format!("cannot read: {e}"))),
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let stream = head.chain(reader);
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(MultiGzDecoder::new(stream))))
    } else {
        Ok(Box::new(stream))
    }
}

/// The whole file as UTF-8 text (gzip decompressed transparently).
pub fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    read_text_from(open(path)?, &path.display().to_string())
}

/// [`read_text`] from an opened stream ([`open`], [`open_reader`]); `file`
/// names it in error messages.
pub fn read_text_from(mut reader: impl Read, file: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| data_err(file, None, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() as u64;
        data_err(file, Some(line), "is not valid UTF-8 text")
    })
}

/// The non-empty, trimmed lines of a text file (e.g. class names).
pub fn read_lines(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    read_lines_from(open(path)?, &path.display().to_string())
}

/// [`read_lines`] from an opened stream; `file` names it in error messages.
pub fn read_lines_from(reader: impl Read, file: &str) -> Result<Vec<String>> {
    let lines: Vec<String> =
        read_text_from(reader, file)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if lines.is_empty() {
        return Err(data_err(file, None, "has no non-empty line"));
    }
    Ok(lines)
}

/// Reads labelled texts from a CSV file as `format` says.
pub fn read_csv(path: impl AsRef<Path>, format: &CsvFormat) -> Result<LabelledTexts> {
    let path = path.as_ref();
    if format.text.is_empty() {
        return Err(Error::Config("a CSV format needs at least one text column".into()));
    }
    read_csv_from(open(path)?, &path.display().to_string(), format)
}

/// [`read_csv`] from an opened stream ([`open`], [`open_reader`]); `file`
/// names it in error messages and in [`LabelledTexts::file`].
pub fn read_csv_from(reader: impl Read, file: &str, format: &CsvFormat) -> Result<LabelledTexts> {
    let file = file.to_string();
    if format.text.is_empty() {
        return Err(Error::Config("a CSV format needs at least one text column".into()));
    }
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(format.delimiter).from_reader(reader);
    let mut records = reader.byte_records();
    let mut header: Option<Vec<String>> = None;
    if format.has_header {
        match records.next() {
            None => return Err(data_err(&file, None, "is empty (expected a header line)")),
            Some(r) => {
                let r = r.map_err(|e| csv_err(&file, e))?;
                let names = r
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let f = if i == 0 { f.strip_prefix(b"\xef\xbb\xbf").unwrap_or(f) } else { f };
                        utf8(&file, Some(1), f).map(|s| s.trim().to_string())
                    })
                    .collect::<Result<Vec<_>>>()?;
                header = Some(names);
            }
        }
    }
    let resolve = |c: &Column| -> Result<usize> {
        match (c, &header) {
            (Column::Index(i), _) => Ok(*i),
            (Column::Name(n), Some(h)) => h.iter().position(|x| x == n).ok_or_else(|| {
                data_err(&file, Some(1), format!("has no column {n:?}; the header names {}", h.join(", ")))
            }),
            (Column::Name(n), None) => Err(Error::Config(format!(
                "column {n:?} is chosen by name but the file is read without a header; use an index or a header"
            ))),
        }
    };
    let text_cols = format.text.iter().map(resolve).collect::<Result<Vec<_>>>()?;
    let label_col = resolve(&format.label)?;
    // Saturating: a column index of usize::MAX (parsed from the command
    // line, say) must give "row has too few fields", not wrap to 0.
    let needed = text_cols.iter().copied().chain([label_col]).max().unwrap_or(0).saturating_add(1);

    let (mut examples, mut skipped_empty) = (Vec::new(), 0);
    for (n, record) in records.enumerate() {
        let record = record.map_err(|e| csv_err(&file, e))?;
        let line = record.position().map_or(n as u64 + 1, |p| p.line());
        if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
            continue; // a blank line
        }
        if record.len() < needed {
            let which = text_cols.iter().chain([&label_col]).find(|&&c| c >= record.len()).copied().unwrap_or(0);
            return Err(data_err(
                &file,
                Some(line),
                format!("row has {} fields, column {which} needs at least {}", record.len(), which.saturating_add(1)),
            ));
        }
        let field = |c: usize| -> Result<&str> {
            let raw = record.get(c).ok_or_else(|| data_err(&file, Some(line), format!("row has no column {c}")))?;
            let raw = if c == 0 && line == 1 { raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw) } else { raw };
            utf8(&file, Some(line), raw)
        };
        let parts = text_cols.iter().map(|&c| field(c)).collect::<Result<Vec<_>>>()?;
        let text = format.cleanup.apply(parts.join(" "));
        let text = text.trim().to_string();
        let label = field(label_col)?.trim().to_string();
        if label.is_empty() {
            return Err(data_err(&file, Some(line), "the label is empty"));
        }
        if text.is_empty() {
            match format.empty {
                EmptyText::Skip => {
                    skipped_empty += 1;
                    continue;
                }
                EmptyText::Error => {
                    return Err(data_err(
                        &file,
                        Some(line),
                        "the text is empty (skip such rows with the empty-text option, e.g. --skip-empty)",
                    ))
                }
            }
        }
        examples.push(Example { text, label, line });
    }
    if examples.is_empty() {
        return Err(data_err(&file, None, "holds no labelled rows"));
    }
    Ok(LabelledTexts { examples, skipped_empty, file })
}

fn utf8<'a>(file: &str, line: Option<u64>, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| data_err(file, line, "is not valid UTF-8 text"))
}

/// A `csv` error as [`Error::Data`] with its line: malformed quoting, an
/// I/O error (a truncated gzip stream, say).
fn csv_err(file: &str, e: csv::Error) -> Error {
    let line = e.position().map(csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
        _ => format!("malformed CSV: {e}"),
    };
    data_err(file, line, message)
}

/// The fixed AG News split of the shared data: row i (0-based, file order)
/// goes to test when i % 5 == 4. Returns (train, test).
pub fn split_every_fifth(examples: Vec<Example>) -> (Vec<Example>, Vec<Example>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, e) in examples.into_iter().enumerate() {
        if i % 5 == 4 {
            test.push(e);
        } else {
            train.push(e);
        }
    }
    (train, test)
}

/// A seeded random split: round(fraction·n) rows held out, both parts in
/// file order. Returns (train, held out).
pub fn split_fraction(examples: Vec<Example>, fraction: f64, seed: u64) -> Result<(Vec<Example>, Vec<Example>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Config(format!("the split fraction must be in (0, 1), got {fraction}")));
    }
    let n = examples.len();
    let held = ((fraction * n as f64).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    let mut rng = Rng::new(seed);
    let mut keys: Vec<(u64, usize)> = (0..n).map(|i| (rng.next_u64(), i)).collect();
    keys.sort_unstable();
    let mut is_held = vec![false; n];
    for &(_, i) in &keys[..held.min(n)] {
        is_held[i] = true;
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (e, h) in examples.into_iter().zip(is_held) {
        if h {
            test.push(e);
        } else {
            train.push(e);
        }
    }
    if train.is_empty() {
        return Err(Error::Config(format!("{n} rows are too few to split")));
    }
    Ok((train, test))
}
