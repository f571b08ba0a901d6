//! Host-only targets: the CSV and text readers and the vectorizer.

use std::io::Cursor;

use wgrnn::data::{
    open_reader, read_csv_from, read_lines_from, read_text_from, Cleanup, Column, CsvFormat, EmptyText, Split,
    Standardize, TextVectorizer, TextVectorizerConfig, Truncate,
};
use wgrnn::Error;

use super::gzip;
use crate::engine::{Input, Verdict};

// ---------------------------------------------------------------- csv

/// Words the column and label decoders draw from.
const COLUMN_NAMES: &[&str] = &["text", "label", "title", "", " text ", "18446744073709551615", "\u{feff}text"];

fn column(input: &mut Input<'_>) -> Column {
    if input.u8() < 160 {
        Column::Index(input.size(4))
    } else {
        Column::parse(&input.string(8, COLUMN_NAMES))
    }
}

pub(super) fn csv_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let flags = input.u8();
    let delimiter = [b',', b';', b'\t', b'|', b'"', b'\n', 0, b' '][usize::from(flags >> 5)];
    let mut format = CsvFormat::new(column(&mut input), column(&mut input))
        .with_header(flags & 2 != 0)
        .with_cleanup([Cleanup::None, Cleanup::AgNews, Cleanup::Imdb, Cleanup::None][usize::from(flags >> 2) & 3])
        .with_empty(if flags & 16 != 0 { EmptyText::Skip } else { EmptyText::Error })
        .with_delimiter(delimiter);
    let extra = input.below(4);
    let mut text = format.text.clone();
    text.extend((0..extra).map(|_| column(&mut input)));
    if input.u8() == 255 {
        text.clear();
    }
    format = format.with_text_columns(text);
    let body = input.rest();
    let bytes = if flags & 1 != 0 { gzip(body) } else { body.to_vec() };
    let result = open_reader(Cursor::new(bytes), "fuzz.csv").and_then(|r| read_csv_from(r, "fuzz.csv", &format));
    match result {
        Ok(rows) => {
            if rows.examples.is_empty() {
                return Verdict::Wrong("read_csv accepted a file with no rows".into());
            }
            let mut last = 0;
            for e in &rows.examples {
                if e.label.is_empty() || e.label.trim() != e.label {
                    return Verdict::Wrong(format!("line {}: label {:?} is empty or untrimmed", e.line, e.label));
                }
                if e.text.is_empty() || e.text.trim() != e.text {
                    return Verdict::Wrong(format!("line {}: text {:?} is empty or untrimmed", e.line, e.text));
                }
                if e.line < last.max(1) {
                    return Verdict::Wrong(format!("line numbers go backwards: {} after {last}", e.line));
                }
                last = e.line;
            }
            Verdict::Accepted(format!("rows{}", rows.examples.len().min(3)))
        }
        Err(e) => match e {
            Error::Data { .. } | Error::Config(_) => Verdict::from_error(&e),
            other => Verdict::Wrong(format!("read_csv failed with a non-data error: {other}")),
        },
    }
}

pub(super) fn csv_seeds() -> Vec<Vec<u8>> {
    let bodies: [&[u8]; 5] = [
        b"\"3\",\"Wall St. Bears\",\"Reuters - Short-sellers\\nare back\"\n\"1\",\"b\",\"c\"\n",
        b"text,label\n\"a \"\"quoted\"\" text\",pos\n\"multi\nline\",neg\n\n",
        b"\xef\xbb\xbftext,label\nhi,A\n,B\n",
        b"id,rating,label,text\n1,10,pos,great<br />film\n",
        b"a;b;L\nc;d;M\n",
    ];
    let mut out = Vec::new();
    for (k, body) in bodies.iter().enumerate() {
        // flags (header for the ones with one), text column 1, label column 0.
        let header = u8::from(k == 1 || k == 2 || k == 3) << 1;
        // Column choices: text = index 1, label = index 0, no extra text
        // column, keep the text columns.
        let mut s = vec![header, 0, 1, 0, 0, 0, 0];
        s.extend_from_slice(body);
        out.push(s.clone());
        s[0] |= 1; // gzip
        out.push(s);
    }
    out
}

// ---------------------------------------------------------------- text

pub(super) fn text_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let flags = input.u8();
    let body = input.rest();
    let mut bytes = if flags & 1 != 0 { gzip(body) } else { body.to_vec() };
    if flags & 2 != 0 && !bytes.is_empty() {
        // A truncated or damaged gzip stream must be an error, not a panic.
        let cut = usize::from(flags >> 2) % bytes.len();
        bytes.truncate(bytes.len() - cut.max(1));
    }
    let expected = if flags & 1 != 0 && flags & 2 == 0 { std::str::from_utf8(body).ok() } else { None };
    let text = open_reader(Cursor::new(bytes.clone()), "fuzz.txt").and_then(|r| read_text_from(r, "fuzz.txt"));
    match (&text, expected) {
        (Ok(t), Some(want)) if t != want => return Verdict::Wrong("gunzipped text differs from the original".into()),
        (Err(e), Some(_)) => return Verdict::Wrong(format!("a valid gzip of UTF-8 text was rejected: {e}")),
        _ => {}
    }
    if flags & 3 == 0 && text.is_ok() != std::str::from_utf8(body).is_ok() {
        // Plain bytes (unless they happen to start with the gzip magic).
        if !body.starts_with(&[0x1f, 0x8b]) {
            return Verdict::Wrong("read_text's UTF-8 verdict differs from std's".into());
        }
    }
    let lines = open_reader(Cursor::new(bytes), "fuzz.txt").and_then(|r| read_lines_from(r, "fuzz.txt"));
    match lines {
        Ok(lines) => {
            if lines.is_empty() || lines.iter().any(|l| l.is_empty() || l.trim() != l) {
                return Verdict::Wrong("read_lines returned an empty or untrimmed line".into());
            }
            Verdict::Accepted("lines".into())
        }
        Err(e @ Error::Data { .. }) => Verdict::from_error(&e),
        Err(e) => Verdict::Wrong(format!("read_lines failed with a non-data error: {e}")),
    }
}

pub(super) fn text_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for flags in [0u8, 1, 3, 0x0b] {
        for body in [&b"hello\nworld\n"[..], b"\n a \n\nb\n", b"caf\xc3\xa9 \xe2\x82\xac\r\n", b"\xff\xfe"] {
            let mut s = vec![flags];
            s.extend_from_slice(body);
            out.push(s);
        }
    }
    out
}

// ---------------------------------------------------------------- vectorizer

/// Tokens worth planting: the reserved entries, specials, case and
/// punctuation edge cases, characters whose lowercase is longer.
pub(super) const WORDS: &[&str] =
    &["[UNK]", "[unk]", "", " ", "a", "A", "b", "<bos>", "<eos>", "don't", "İ", "ß", "\u{0}", "a b a", "\t\n", "…"];

fn vectorizer_config(input: &mut Input<'_>) -> TextVectorizerConfig {
    let flags = input.u8();
    let mut c = TextVectorizerConfig::words();
    if flags & 1 != 0 {
        c = c.with_max_tokens(input.size(12));
    }
    if flags & 2 != 0 {
        c = c.with_output_sequence_length(input.size(6));
    }
    c = c.with_truncate(if flags & 4 != 0 { Truncate::KeepBack } else { Truncate::KeepFront });
    c = c.with_standardize(
        [Standardize::LowerAndStripPunctuation, Standardize::Lower, Standardize::None, Standardize::None]
            [usize::from(flags >> 3) & 3],
    );
    c = c.with_split(if flags & 32 != 0 { Split::Character } else { Split::Whitespace });
    c = c.with_min_count(if flags & 64 != 0 { input.size(3) as u64 } else { 0 });
    let specials: Vec<String> = (0..input.below(4)).map(|_| input.string(6, WORDS)).collect();
    c.specials = specials;
    c
}

/// Whether `adapt` has to accept: the configuration is valid, the
/// specials are distinct and not reserved, and some text has a token.
fn adapt_must_succeed(c: &TextVectorizerConfig, texts: &[String]) -> bool {
    let valid = c.max_tokens.is_none_or(|m| m >= 3 && m >= c.specials.len() + 2) && c.output_sequence_length != Some(0);
    let mut sorted = c.specials.clone();
    sorted.sort();
    sorted.dedup();
    let specials_ok = sorted.len() == c.specials.len() && c.specials.iter().all(|s| !s.is_empty() && s != "[UNK]");
    let probe = TextVectorizer::from_vocabulary(TextVectorizerConfig { specials: Vec::new(), ..c.clone() }, vec![]);
    let has_token = probe.is_ok_and(|p| texts.iter().any(|t| !p.tokens(t).is_empty()));
    valid && specials_ok && has_token
}

fn check_vectorizer(v: &TextVectorizer, texts: &[String]) -> Result<(), String> {
    let vocab = v.vocabulary();
    if vocab.len() < 2 || !vocab[0].is_empty() || vocab[1] != "[UNK]" {
        return Err("the vocabulary does not start with padding and OOV".into());
    }
    if let Some(m) = v.config().max_tokens.filter(|&m| vocab.len() > m) {
        return Err(format!("{} entries exceed max_tokens {m}", vocab.len()));
    }
    for (id, token) in vocab.iter().enumerate().skip(2) {
        if v.id(token) != Some(id as u32) {
            return Err(format!("token {token:?} maps to {:?}, not {id}", v.id(token)));
        }
    }
    for t in texts {
        let ids = v.encode(t);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= v.vocab_size()) {
            return Err(format!("encode gave id {bad} ≥ V = {}", v.vocab_size()));
        }
        if v.config().output_sequence_length.is_some_and(|n| ids.len() > n) {
            return Err(format!("encode gave {} ids, more than output_sequence_length", ids.len()));
        }
        if v.decode(&ids).len() != ids.len() {
            return Err("decode lost ids".into());
        }
    }
    match TextVectorizer::from_json(&v.to_json()) {
        Ok(back) if back == *v => Ok(()),
        Ok(_) => Err("the JSON round trip changed the vectorizer".into()),
        Err(e) => Err(format!("the vectorizer's own JSON does not load: {e}")),
    }
}

pub(super) fn vectorizer_target(data: &[u8]) -> Verdict {
    let mut input = Input::new(data);
    let mode = input.u8() % 4;
    let config = vectorizer_config(&mut input);
    let texts: Vec<String> = (0..input.below(6)).map(|_| input.string(24, WORDS)).collect();
    match mode {
        0 | 1 => {
            let must = adapt_must_succeed(&config, &texts);
            match TextVectorizer::adapt(config, texts.iter().map(String::as_str)) {
                Ok(v) => match check_vectorizer(&v, &texts) {
                    Ok(()) => Verdict::Accepted("adapt".into()),
                    Err(m) => Verdict::Wrong(m),
                },
                Err(e) if must => Verdict::Wrong(format!("adapt rejected valid texts {texts:?}: {e}")),
                Err(e) => Verdict::from_error(&e),
            }
        }
        2 => match TextVectorizer::from_vocabulary(config, texts.clone()) {
            Ok(v) => match check_vectorizer(&v, &texts) {
                Ok(()) => Verdict::Accepted("from_vocabulary".into()),
                Err(m) => Verdict::Wrong(m),
            },
            Err(e) => Verdict::from_error(&e),
        },
        _ => {
            // JSON: the bytes as written, or a real vectorizer's JSON with a
            // splice of the input.
            let base = TextVectorizer::from_vocabulary(TextVectorizerConfig::words(), vec!["a".into(), "b".into()])
                .map(|v| v.to_json())
                .unwrap_or_default();
            let rest = String::from_utf8_lossy(input.rest()).into_owned();
            let json = if rest.starts_with('{') {
                rest
            } else {
                let at = texts.len() * 7 % base.len().max(1);
                let at = (0..=at).rev().find(|&i| base.is_char_boundary(i)).unwrap_or(0);
                format!("{}{rest}{}", &base[..at], &base[at..])
            };
            match TextVectorizer::from_json(&json) {
                Ok(v) => match check_vectorizer(&v, &texts) {
                    Ok(()) => Verdict::Accepted("from_json".into()),
                    Err(m) => Verdict::Wrong(m),
                },
                Err(e) => Verdict::from_error(&e),
            }
        }
    }
}

pub(super) fn vectorizer_seeds() -> Vec<Vec<u8>> {
    vec![
        vec![0, 0, 2, 2, b'a', b' ', 200, b'b'],
        vec![1, 1 | 2 | 16, 5, 3, 1, 0, 3, 0, 1],
        vec![0, 16, 0, 2, 0, 0, 0, 1],
        vec![0, 32 | 16, 0, 1, 4, b'a', b'b', b'c', b'a'],
        vec![2, 0, 0, 3, 4, b'a', 4, b'b', 4, b'a'],
        b"\x03\x00\x00\x00{\"config\":{\"max_tokens\":3,\"output_sequence_length\":null,\"truncate\":\"KeepFront\",\
\"standardize\":\"None\",\"split\":\"Whitespace\"},\"vocabulary\":[\"\",\"[UNK]\",\"a\"]}"
            .to_vec(),
    ]
}
