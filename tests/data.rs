//! The data pipeline on the host: CSV and text readers (RFC 4180 quoting,
//! headers, gzip, presets), every bad-data error with its file and line,
//! the Keras-style vectorizer, labels, and the real shared data files.

use std::io::Write;
use std::path::PathBuf;

use wgrnn::data::{
    read_csv, read_lines, read_text, split_every_fifth, split_fraction, BatchConfig, Column, CsvFormat, EmptyText,
    EncodedTexts, LabelSet, Standardize, TextBatches, TextVectorizer, TextVectorizerConfig, Truncate,
};
use wgrnn::Error;

/// Writes `bytes` to a fresh temp file named `name`.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Asserts a data error naming `file` and `line`, whose message contains `needle`.
fn assert_data_error(
    result: wgrnn::Result<impl std::fmt::Debug>,
    path: &std::path::Path,
    line: Option<u64>,
    needle: &str,
) {
    match result {
        Err(Error::Data { file, line: l, message }) => {
            assert_eq!(file, path.display().to_string());
            assert_eq!(l, line, "line of {message:?}");
            assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
        }
        other => panic!("expected a data error about {needle:?}, got {other:?}"),
    }
}

fn simple() -> CsvFormat {
    CsvFormat::new(Column::Name("text".into()), Column::Name("label".into())).with_header(true)
}

#[test]
fn csv_quoting_headers_and_line_numbers() {
    let csv =
        "label,text\nA,plain\nB,\"quoted, with comma\"\nA,\"doubled \"\"quotes\"\"\"\nB,\"two\nlines\"\nA,after\n";
    let rows = read_csv(file("quoting.csv", csv.as_bytes()), &simple()).unwrap();
    let got: Vec<(&str, &str, u64)> =
        rows.examples.iter().map(|e| (e.text.as_str(), e.label.as_str(), e.line)).collect();
    assert_eq!(
        got,
        [
            ("plain", "A", 2),
            ("quoted, with comma", "B", 3),
            ("doubled \"quotes\"", "A", 4),
            ("two\nlines", "B", 5),
            ("after", "A", 7),
        ]
    );
    // The same columns by index, without a header line.
    let body = "A,plain\nB,\"x\"\n";
    let by_index = read_csv(file("index.csv", body.as_bytes()), &CsvFormat::new(Column::Index(1), Column::Index(0)));
    assert_eq!(by_index.unwrap().examples[1].text, "x");
    // A UTF-8 byte-order mark does not become part of the first column name.
    let bom = read_csv(file("bom.csv", b"\xef\xbb\xbftext,label\nhi,A\n"), &simple()).unwrap();
    assert_eq!(bom.examples[0].text, "hi");
    // Several text columns join with a space; a custom delimiter.
    let f = CsvFormat::new(Column::Index(0), Column::Index(2))
        .with_text_columns(vec![Column::Index(0), Column::Index(1)])
        .with_delimiter(b';');
    let joined = read_csv(file("semi.csv", b"a;b;L\nc;d;M\n"), &f).unwrap();
    assert_eq!(joined.examples[1].text, "c d");
    assert_eq!(Column::parse("3"), Column::Index(3));
    assert_eq!(Column::parse("text"), Column::Name("text".into()));
}

#[test]
fn gzip_is_read_whatever_the_name() {
    let csv = b"text,label\nzipped,A\n";
    for name in ["a.csv.gz", "b.csv"] {
        let rows = read_csv(file(name, &gzip(csv)), &simple()).unwrap();
        assert_eq!(rows.examples[0].text, "zipped");
    }
    assert_eq!(read_text(file("t.txt.gz", &gzip(b"hello\nworld"))).unwrap(), "hello\nworld");
    assert_eq!(read_lines(file("l.txt", b"\n a \n\nb\n")).unwrap(), ["a", "b"]);
}

#[test]
fn presets_clean_up_ag_news_and_imdb() {
    let ag = "\"3\",\"Title here\",\"First\\nsecond \\$5\"\n";
    let rows = read_csv(file("ag.csv", ag.as_bytes()), &CsvFormat::ag_news()).unwrap();
    assert_eq!(rows.examples[0].text, "Title here First second \\$5");
    assert_eq!(rows.examples[0].label, "3");
    let imdb = "id,rating,label,text\n7,9,pos,\"Great.<br /><br />Loved it\"\n";
    let rows = read_csv(file("imdb.csv", imdb.as_bytes()), &CsvFormat::imdb()).unwrap();
    assert_eq!(rows.examples[0].text, "Great.  Loved it");
    assert_eq!(rows.examples[0].label, "pos");
}

#[test]
fn bad_files_are_errors_with_file_and_line() {
    let missing = std::env::temp_dir().join("wgrnn-no-such-file.csv");
    assert_data_error(read_csv(&missing, &simple()), &missing, None, "cannot open");

    // An unterminated quote swallows the rest of the file into one field:
    // the row then lacks its label column, an error at the line it starts.
    let p = file("bad_quote.csv", b"text,label\n\"ok\",A\n\"unterminated,B\nmore,A\n");
    assert_data_error(read_csv(&p, &simple()), &p, Some(3), "1 fields");

    let p = file("missing_col.csv", b"body,label\nhi,A\n");
    assert_data_error(read_csv(&p, &simple()), &p, Some(1), "no column \"text\"");

    let p = file("short_row.csv", b"A,one\nB\n");
    assert_data_error(read_csv(&p, &CsvFormat::new(Column::Index(1), Column::Index(0))), &p, Some(2), "1 fields");

    let p = file("empty_text.csv", b"text,label\nfine,A\n   ,B\nok,A\n");
    assert_data_error(read_csv(&p, &simple()), &p, Some(3), "empty");
    let skipped = read_csv(&p, &simple().with_empty(EmptyText::Skip)).unwrap();
    assert_eq!((skipped.examples.len(), skipped.skipped_empty), (2, 1));

    let p = file("latin1.csv", b"text,label\ncaf\xe9,A\n");
    assert_data_error(read_csv(&p, &simple()), &p, Some(2), "UTF-8");

    let p = file("empty.csv", b"");
    assert_data_error(read_csv(&p, &simple()), &p, None, "empty");
    let p = file("header_only.csv", b"text,label\n");
    assert_data_error(read_csv(&p, &simple()), &p, None, "no labelled rows");

    let mut gz = gzip(b"text,label\nsome text that is long enough,A\n");
    gz.truncate(gz.len() - 10);
    let p = file("truncated.csv.gz", &gz);
    assert!(matches!(read_csv(&p, &simple()), Err(Error::Data { .. })), "a truncated gzip is a data error");

    // A name without a header is a configuration error, not a data one.
    let p = file("noheader.csv", b"hi,A\n");
    assert!(matches!(
        read_csv(&p, &CsvFormat::new(Column::Name("text".into()), Column::Index(1))),
        Err(Error::Config(_))
    ));

    // An unknown label in the test file.
    let train = LabelSet::from_labels(["1", "2", "3", "4"]).unwrap();
    let p = file("test.csv", b"\"7\",\"t\",\"d\"\n");
    let rows = read_csv(&p, &CsvFormat::ag_news()).unwrap();
    assert_data_error(train.encode(&rows.file, &rows.examples), &p, Some(1), "label \"7\" is not one of");
}

#[test]
fn random_bytes_never_panic() {
    // xorshift64*: a fixed stream of arbitrary bytes, quotes and newlines.
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let alphabet = b"ab,\"\n\r;x \xff\xc3\x1f\x8b";
    let v = TextVectorizer::adapt(TextVectorizerConfig::words(), ["a b c"]).unwrap();
    for i in 0..2000 {
        let len = (next() % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        let p = file("fuzz.csv", &bytes);
        let header = i % 2 == 0;
        let f = CsvFormat::new(Column::Index(0), Column::Index(1)).with_header(header);
        let _ = read_csv(&p, &f);
        let _ = read_text(&p);
        let _ = v.encode(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn vectorizer_follows_keras() {
    let v = TextVectorizer::adapt(TextVectorizerConfig::words(), ["x"]).unwrap();
    assert_eq!(v.standardize("Don't STOP!!  me-now"), "dont stop  menow");
    assert_eq!(v.tokens("Don't STOP!!  me-now"), ["dont", "stop", "menow"]);

    // Counts: the 4, a 3, b 2, c 2, d 1 — ties (b, c) in byte order.
    let texts = ["the a b c", "the a c b d", "the a", "the"];
    let v = TextVectorizer::adapt(TextVectorizerConfig::words(), texts).unwrap();
    assert_eq!(v.vocabulary(), ["", "[UNK]", "the", "a", "b", "c", "d"]);
    let reversed: Vec<&str> = texts.iter().rev().copied().collect();
    assert_eq!(TextVectorizer::adapt(TextVectorizerConfig::words(), reversed).unwrap(), v, "order-independent");

    // max_tokens counts padding and OOV.
    let v = TextVectorizer::adapt(TextVectorizerConfig::words().with_max_tokens(5), texts).unwrap();
    assert_eq!(v.vocab_size(), 5);
    assert_eq!(v.encode("THE b, d zebra"), [2, 4, 1, 1]);
    assert_eq!(v.decode(&[0, 2, 1, 99]), ["", "the", "[UNK]", "[UNK]"]);

    let front = TextVectorizerConfig::words().with_output_sequence_length(2);
    let v = TextVectorizer::adapt(front.clone(), texts).unwrap();
    assert_eq!(v.encode("the a b c"), [2, 3]);
    let v = TextVectorizer::adapt(front.with_truncate(Truncate::KeepBack), texts).unwrap();
    assert_eq!(v.encode("the a b c"), [4, 5]);

    // Characters, as written.
    let v = TextVectorizer::adapt(TextVectorizerConfig::characters(), ["abba", "Cé"]).unwrap();
    assert_eq!(v.vocabulary(), ["", "[UNK]", "a", "b", "C", "é"]);
    assert_eq!(v.encode("béa!"), [3, 5, 2, 1]);
    let lower = TextVectorizerConfig::words().with_standardize(Standardize::Lower);
    assert_eq!(TextVectorizer::adapt(lower, ["x"]).unwrap().tokens("A-b C"), ["a-b", "c"]);

    // JSON round trip; a corrupted vocabulary is rejected.
    let v = TextVectorizer::adapt(TextVectorizerConfig::words().with_max_tokens(6), texts).unwrap();
    let back = TextVectorizer::from_json(&v.to_json()).unwrap();
    assert_eq!(back, v);
    assert_eq!(back.encode("the d"), v.encode("the d"));
    let dup = v.to_json().replace("\"b\"", "\"a\"");
    assert!(matches!(TextVectorizer::from_json(&dup), Err(Error::Format(_))));
    assert!(matches!(TextVectorizer::from_json("{"), Err(Error::Format(_))));

    // Errors: too small a vocabulary, zero length, nothing to learn.
    assert!(TextVectorizer::adapt(TextVectorizerConfig::words().with_max_tokens(2), texts).is_err());
    assert!(TextVectorizer::adapt(TextVectorizerConfig::words().with_output_sequence_length(0), texts).is_err());
    assert!(TextVectorizer::adapt(TextVectorizerConfig::words(), ["!!!", ""]).is_err());
}

#[test]
fn vocabulary_comes_from_training_text_only() {
    let train = ["good movie", "bad movie"];
    let v = TextVectorizer::adapt(TextVectorizerConfig::words(), train).unwrap();
    assert_eq!(v.encode("great movie"), [TextVectorizer::OOV, v.id("movie").unwrap()]);
}

#[test]
fn labels_order_names_and_json() {
    let l = LabelSet::from_labels(["10", "2", "2", "1"]).unwrap();
    assert_eq!(l.keys(), ["1", "2", "10"], "numeric order when every label is a number");
    let l = LabelSet::from_labels(["pos", "neg", "pos"]).unwrap();
    assert_eq!(l.keys(), ["neg", "pos"]);
    assert_eq!(l.id("pos"), Some(1));
    let named = l.clone().with_names(vec!["negative".into(), "positive".into()]).unwrap();
    assert_eq!(named.names(), ["negative", "positive"]);
    assert_eq!(LabelSet::from_json(&named.to_json()).unwrap(), named);
    assert!(l.clone().with_names(vec!["x".into()]).is_err());
    assert!(LabelSet::from_labels(["only"]).is_err());
    assert!(matches!(LabelSet::from_json("[]"), Err(Error::Format(_))));
}

#[test]
fn splits() {
    let ex: Vec<_> = (0..10)
        .map(|i| wgrnn::data::Example { text: format!("t{i}"), label: "A".into(), line: i as u64 + 1 })
        .collect();
    let (train, test) = split_every_fifth(ex.clone());
    assert_eq!(test.iter().map(|e| e.line).collect::<Vec<_>>(), [5, 10]);
    assert_eq!(train.len(), 8);
    let (a, b) = split_fraction(ex.clone(), 0.3, 1).unwrap();
    assert_eq!((a.len(), b.len()), (7, 3));
    assert_eq!(split_fraction(ex.clone(), 0.3, 1).unwrap(), (a, b), "seeded");
    assert!(a_sorted(&split_fraction(ex.clone(), 0.5, 2).unwrap().0));
    assert!(split_fraction(ex, 1.0, 1).is_err());
}

fn a_sorted(v: &[wgrnn::data::Example]) -> bool {
    v.windows(2).all(|w| w[0].line < w[1].line)
}

/// The real files in ../shared/data (skipped where that folder is absent).
#[test]
fn shared_ag_news_and_imdb_files() {
    let shared = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    let bundled = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/ag_news/test.csv.gz"));
    let rows = read_csv(&bundled, &CsvFormat::ag_news()).unwrap();
    assert_eq!(rows.examples.len(), 7600);
    assert!(rows.examples[0].text.starts_with("Fears for T N pension after talks Unions representing"));
    let (train, test) = split_every_fifth(rows.examples);
    assert_eq!((train.len(), test.len()), (6080, 1520));
    for class in ["1", "2", "3", "4"] {
        let n = train.iter().chain(&test).filter(|e| e.label == class).count();
        assert_eq!(n, 1900, "class {class}");
    }
    assert!(train.iter().chain(&test).all(|e| !e.text.contains("\\n")));

    let imdb = shared.join("imdb/test.csv.gz");
    if !imdb.exists() {
        eprintln!("skipping the full IMDB check: {} is absent", imdb.display());
        return;
    }
    let rows = read_csv(&imdb, &CsvFormat::imdb()).unwrap();
    assert_eq!(rows.examples.len(), 25_000);
    assert_eq!(rows.examples.iter().filter(|e| e.label == "pos").count(), 12_500);
    assert!(rows.examples.iter().all(|e| !e.text.contains("<br />")));
}

/// Each epoch's shuffle looks independent of the previous one, seed 0
/// included (epochs draw from `Rng::for_stream`, whose streams are not
/// shifted copies of each other). Two independent shuffles of 1,000 rows
/// share on average one adjacent pair (a then b in both orders); the
/// bound 10 is far above chance (P < 1e-6 for a Poisson(1) count), while
/// an order repeated or merely rotated between epochs shares ~999.
#[test]
fn epoch_shuffles_are_independent() {
    let n = 1000;
    let ids = (0..n).map(|i| vec![i as u32 + 2]).collect();
    let data = EncodedTexts::new(ids, vec![0; n]).unwrap();
    for seed in [0, 1, 12345] {
        let batches = TextBatches::new(data.clone(), BatchConfig::new(n).shuffled(seed)).unwrap();
        let order = |epoch| batches.epoch(epoch)[0].ids.clone();
        for epoch in 0..3 {
            let (a, b) = (order(epoch), order(epoch + 1));
            assert_ne!(a, b);
            let pairs: std::collections::HashSet<(u32, u32)> = a.windows(2).map(|w| (w[0], w[1])).collect();
            let shared = b.windows(2).filter(|w| pairs.contains(&(w[0], w[1]))).count();
            assert!(shared <= 10, "seed {seed}: epochs {epoch} and {} share {shared} adjacent pairs", epoch + 1);
        }
    }
}
