//! Property tests over generated hostile CSV files: ragged rows, quotes left open, BOMs,
//! mixed line endings, NUL bytes, invalid UTF-8, escape sequences, odd numbers (`1e400`,
//! `-0`, `NaN`, `inf`, `1e39`). Each file must end in a dataset whose features are all
//! finite, or in one short error naming the file: never a panic, never a silent wrong value.
//!
//! Bounded for CI: 256 cases per property by default; `PROPTEST_CASES=20000 cargo test
//! --test fuzz_reader` runs a longer pass.

use std::path::Path;

use dagmm_tui::data::{read_table, Encoder, MissingPolicy, ReadOptions, ScaleKind};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cells a hostile file may hold, as raw bytes (some are not UTF-8).
const HOSTILE_CELLS: &[&[u8]] = &[
    b"1e400",
    b"-1e400",
    b"1e39",
    b"-0",
    b"NaN",
    b"-nan",
    b"inf",
    b"-Infinity",
    b"1e-50",
    b"+5",
    b".5",
    b"5.",
    b"0x10",
    b"1_000",
    b"",
    b"NA",
    b"?",
    b" 7 ",
    b"\x1b[31mred\x1b[0m",
    b"\x1b]0;title\x07",
    "\u{202e}evil".as_bytes(),
    "zero\u{200b}width".as_bytes(),
    "漢字".as_bytes(),
    "e\u{301}".as_bytes(),
    b"\"quoted, with comma\"",
    b"\"doubled \"\" quote\"",
    b"\"open quote",
    b"stray\"quote",
    b"\0",
    b"nul\0inside",
    b"\xff\xfe",
    b"caf\xe9",
    b"\xef\xbb\xbf",
    b"\r",
    b"=cmd|' /C calc'!A0",
];

fn number_cell() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i16>().prop_map(|v| v.to_string().into_bytes()),
        any::<f32>().prop_map(|v| v.to_string().into_bytes()),
        any::<f64>().prop_map(|v| format!("{v:e}").into_bytes()),
    ]
}

fn word_cell() -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(vec!["tcp", "udp", "icmp", "a", "b", "normal.", "smurf."])
        .prop_map(|s| s.as_bytes().to_vec())
}

fn cell() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => number_cell(),
        2 => word_cell(),
        2 => proptest::sample::select(HOSTILE_CELLS).prop_map(<[u8]>::to_vec),
    ]
}

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (0u16..500).prop_map(|i| format!("c{i}").into_bytes()),
        1 => proptest::sample::select(HOSTILE_CELLS).prop_map(<[u8]>::to_vec),
    ]
}

/// A generated file: a header, rows (sometimes ragged), a delimiter, line endings.
#[derive(Debug, Clone)]
struct Layout {
    bom: bool,
    delimiter: u8,
    header: Vec<Vec<u8>>,
    rows: Vec<Vec<Vec<u8>>>,
    /// Per line: `true` for CRLF.
    crlf: Vec<bool>,
    final_newline: bool,
}

impl Layout {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.bom {
            out.extend_from_slice(b"\xef\xbb\xbf");
        }
        let lines = std::iter::once(&self.header).chain(&self.rows);
        let count = self.rows.len() + 1;
        for (i, fields) in lines.enumerate() {
            out.extend_from_slice(&fields.join(&self.delimiter));
            if i + 1 < count || self.final_newline {
                out.extend_from_slice(if self.crlf[i % self.crlf.len()] {
                    b"\r\n"
                } else {
                    b"\n"
                });
            }
        }
        out
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    (1usize..6, 1usize..12).prop_flat_map(|(columns, rows)| {
        let row = prop_oneof![
            8 => proptest::collection::vec(cell(), columns),
            1 => proptest::collection::vec(cell(), 0..columns + 2),
        ];
        (
            any::<bool>(),
            proptest::sample::select(vec![b',', b';', b'\t']),
            proptest::collection::vec(header_name(), columns),
            proptest::collection::vec(row, rows),
            proptest::collection::vec(any::<bool>(), 1..4),
            any::<bool>(),
        )
            .prop_map(
                |(bom, delimiter, header, rows, crlf, final_newline)| Layout {
                    bom,
                    delimiter,
                    header,
                    rows,
                    crlf,
                    final_newline,
                },
            )
    })
}

fn missing_policy() -> impl Strategy<Value = MissingPolicy> {
    proptest::sample::select(vec![
        MissingPolicy::Error,
        MissingPolicy::Mean,
        MissingPolicy::Drop,
    ])
}

fn config() -> Config {
    Config {
        // The default reads PROPTEST_CASES; without it, a bounded pass for CI.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Reads `path` and checks the outcome is a sound dataset or a clear error. Returns the
/// error text, if any.
fn read_soundly(path: &Path, opts: &ReadOptions) -> Option<String> {
    match read_table(path, opts, None) {
        Ok(table) => {
            assert!(!table.is_empty(), "a table is never empty");
            let p = table.numeric_columns.len();
            assert_eq!(table.numeric.len(), table.len() * p);
            assert!(
                table.numeric.iter().all(|v| v.is_finite() || v.is_nan()),
                "numeric cells are finite, or NaN for missing"
            );
            if opts.missing != Some(MissingPolicy::Mean) {
                assert!(table.numeric.iter().all(|v| v.is_finite()));
            }
            for scale in [ScaleKind::Minmax, ScaleKind::Zscore] {
                let rows: Vec<usize> = (0..table.len()).collect();
                // Nothing varies (one row, identical rows): a clear error instead.
                let encoder = match Encoder::fit(&table, &rows, scale) {
                    Ok((encoder, _)) => encoder,
                    Err(e) => {
                        assert!(e.to_string().contains("nothing to learn"), "{e}");
                        continue;
                    }
                };
                let matrix = encoder.transform(&table, &rows).matrix;
                assert!(
                    matrix.data.iter().all(|v| v.is_finite()),
                    "every encoded feature is finite ({scale:?})"
                );
            }
            None
        }
        Err(e) => {
            let text = e.to_string();
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(text.contains(name), "the error names the file: {text}");
            assert!(
                text.len() < 1000,
                "the error is short ({} bytes)",
                text.len()
            );
            assert!(!text.contains('\n'), "the error is one line: {text}");
            Some(text)
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Structured hostile files: every outcome is a sound table or a clear error.
    #[test]
    fn generated_files_read_soundly(layout in layout(), missing in missing_policy(), label in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.csv");
        std::fs::write(&path, layout.bytes()).unwrap();
        let first = String::from_utf8_lossy(&layout.header[0]).trim().to_string();
        let opts = ReadOptions {
            missing: Some(missing),
            label: (label && !first.is_empty() && first.is_ascii()).then_some(first),
            ..ReadOptions::default()
        };
        read_soundly(&path, &opts);
    }

    /// Arbitrary bytes from a CSV-ish alphabet (gzip magic included): never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(
            proptest::sample::select(b",;\t\"\n\r0123456789.-+eE aZ\x00\x1b\xff\xef\xbb\xbf\x1f\x8b".to_vec()),
            0..400,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.csv");
        std::fs::write(&path, &bytes).unwrap();
        read_soundly(&path, &ReadOptions { missing: Some(MissingPolicy::Mean), ..ReadOptions::default() });
    }

    /// Well-formed numeric files, written with any delimiter, line endings, quoting and BOM,
    /// read back to exactly the values written: no silent wrong answer.
    #[test]
    fn numeric_files_read_back_exactly(
        values in proptest::collection::vec(proptest::collection::vec(any::<f32>().prop_filter("finite", |v| v.is_finite()), 3), 1..20),
        quote in any::<bool>(),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        delimiter in proptest::sample::select(vec![b',', b';', b'\t']),
    ) {
        let d = delimiter as char;
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = if bom { "\u{feff}".to_string() } else { String::new() };
        text += &format!("x{d}y{d}z{eol}");
        for row in &values {
            let cells: Vec<String> = row
                .iter()
                .map(|v| if quote { format!("\"{v}\"") } else { v.to_string() })
                .collect();
            text += &cells.join(&d.to_string());
            text += eol;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exact.csv");
        std::fs::write(&path, text).unwrap();
        let table = read_table(&path, &ReadOptions::default(), None).unwrap();
        prop_assert_eq!(&table.numeric_columns, &["x", "y", "z"]);
        let expected: Vec<u32> = values.iter().flatten().map(|v| v.to_bits()).collect();
        let read: Vec<u32> = table.numeric.iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(read, expected);
    }
}

#[test]
fn numbers_beyond_f32_are_errors_not_infinities() {
    let dir = tempfile::tempdir().unwrap();
    for cell in ["1e39", "-1e39", "1e400", "inf", "-Infinity", "-nan"] {
        let path = dir.path().join("big.csv");
        std::fs::write(&path, format!("x,y\n1,2\n{cell},3\n")).unwrap();
        let err = read_table(&path, &ReadOptions::default(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("big.csv:3") && err.contains("column 'x'") && err.contains("finite"),
            "{cell}: {err}"
        );
    }
    // Tiny and signed zero values are numbers: they read as the nearest f32.
    let path = dir.path().join("small.csv");
    std::fs::write(&path, "x,y\n1e-50,-0\n2,3\n").unwrap();
    let table = read_table(&path, &ReadOptions::default(), None).unwrap();
    assert_eq!(table.numeric[0], 0.0);
    assert!(table.numeric[1] == 0.0 && table.numeric[1].is_sign_negative());
}

#[test]
fn a_one_megabyte_field_is_read_or_quoted_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let big = "w".repeat(1 << 20);
    // In a categorical column: a level like any other.
    let path = dir.path().join("wide_cell.csv");
    std::fs::write(&path, format!("x,kind\n1,a\n2,{big}\n3,a\n")).unwrap();
    let table = read_table(&path, &ReadOptions::default(), None).unwrap();
    assert_eq!(table.levels[0][1].len(), 1 << 20);
    // In a numeric column: the error quotes 60 characters of it, not a megabyte.
    std::fs::write(&path, format!("x,y\n1,2\n3,4\n5,6\n7,{big}\n")).unwrap();
    let err = read_table(&path, &ReadOptions::default(), None)
        .unwrap_err()
        .to_string();
    assert!(err.len() < 400, "{} bytes", err.len());
    assert!(
        err.contains("wide_cell.csv:5") && err.contains("more characters"),
        "{err}"
    );
}

#[test]
fn ten_thousand_columns_read() {
    let columns = 10_000;
    let mut text: String = (0..columns)
        .map(|c| format!("c{c}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for r in 0..5 {
        let row: Vec<String> = (0..columns)
            .map(|c| ((r * 7 + c) % 11).to_string())
            .collect();
        text += &row.join(",");
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.csv");
    std::fs::write(&path, text).unwrap();
    let table = read_table(&path, &ReadOptions::default(), None).unwrap();
    assert_eq!(table.numeric_columns.len(), columns);
    assert_eq!(table.len(), 5);
    let rows: Vec<usize> = (0..5).collect();
    let (encoder, _) = Encoder::fit(&table, &rows, ScaleKind::Minmax).unwrap();
    assert_eq!(encoder.width(), columns);
}

#[test]
fn nul_after_the_sniffed_head_is_a_clear_error() {
    // The binary check looks at the first 64 KiB; a NUL further on lands in a cell.
    let mut text = String::from("x,y\n");
    while text.len() < 70_000 {
        text += "1,2\n";
    }
    text += "3,\0\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late_nul.csv");
    std::fs::write(&path, text).unwrap();
    let err = read_table(&path, &ReadOptions::default(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("column 'y'") && err.contains("\\0"), "{err}");
}
