//! Bad input ends in a non-zero exit and exactly one clear line naming where the problem is.

mod common;

use common::{one_error_line, run, stderr, train, write};

/// Runs `train` on a file with `content` and returns the single error line.
fn error_line(name: &str, content: &[u8], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, content);
    let args = [&["--epochs", "1"], extra].concat();
    let line = one_error_line(&train(&path, &dir.path().join("out"), &args));
    assert!(line.contains(name), "error should name the file: {line}");
    line
}

#[test]
fn empty_file() {
    let line = error_line("empty.csv", b"", &[]);
    assert!(line.contains("empty"), "{line}");
}

#[test]
fn header_only() {
    let line = error_line("header.csv", b"a,b,c\n", &[]);
    assert!(line.contains("no data rows"), "{line}");
}

#[test]
fn ragged_row_names_its_line() {
    let line = error_line("ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", &[]);
    assert!(line.contains("ragged.csv:3"), "{line}");
    assert!(line.contains("2 fields") && line.contains("3"), "{line}");
}

#[test]
fn text_in_a_numeric_column_names_line_column_and_value() {
    let mut csv = String::from("x,y\n");
    for i in 0..20 {
        csv += &format!("{i},{}\n", i * 2);
    }
    csv += "21,oops\n";
    let line = error_line("mixed.csv", csv.as_bytes(), &[]);
    assert!(line.contains("mixed.csv:22"), "{line}");
    assert!(
        line.contains("column 'y'") && line.contains("\"oops\""),
        "{line}"
    );
    assert!(line.contains("--categorical y"), "{line}");
}

#[test]
fn nan_is_a_missing_value_error() {
    let line = error_line("nan.csv", b"x,y\n1,2\n3,NaN\n5,6\n", &[]);
    assert!(
        line.contains("nan.csv:3") && line.contains("column 'y'") && line.contains("missing"),
        "{line}"
    );
}

#[test]
fn infinity_is_rejected() {
    let line = error_line("inf.csv", b"x,y\n1,2\n3,4\ninf,6\n", &[]);
    assert!(
        line.contains("inf.csv:4") && line.contains("column 'x'") && line.contains("finite"),
        "{line}"
    );
    let line = error_line("huge.csv", b"x,y\n1,2\n3,4\n1e400,6\n", &[]);
    assert!(
        line.contains("huge.csv:4") && line.contains("finite"),
        "{line}"
    );
}

#[test]
fn unknown_label_column() {
    let line = error_line("nolabel.csv", b"x,y\n1,2\n3,4\n", &["--label", "attack"]);
    assert!(
        line.contains("--label") && line.contains("'attack'") && line.contains("x, y"),
        "{line}"
    );
}

#[test]
fn binary_garbage() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let line = error_line("garbage.bin", &garbage, &[]);
    assert!(line.contains("binary") || line.contains("UTF-8"), "{line}");
}

#[test]
fn invalid_utf8_without_nul_names_its_line() {
    let line = error_line("latin1.csv", b"x,name\n1,ok\n2,caf\xe9\n", &[]);
    assert!(
        line.contains("latin1.csv:3") && line.contains("UTF-8"),
        "{line}"
    );
}

#[test]
fn missing_values_can_be_filled_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("x,y,kind\n");
    for i in 0..60 {
        let y = if i % 10 == 3 {
            "".to_string()
        } else {
            format!("{}", i % 7)
        };
        csv += &format!("{i},{y},{}\n", ["a", "b", "c"][i % 3]);
    }
    let path = write(dir.path(), "gaps.csv", csv.as_bytes());
    for policy in ["mean", "drop"] {
        let out_dir = dir.path().join(policy);
        let flags = ["--epochs", "1", "--batch", "32", "--missing", policy];
        let out = train(&path, &out_dir, &flags);
        assert!(out.status.success(), "{policy}: {}", stderr(&out));
        let scores = std::fs::read_to_string(out_dir.join("scores.csv")).unwrap();
        let expected_rows = if policy == "mean" { 60 } else { 54 };
        assert_eq!(scores.lines().count(), expected_rows + 1, "{policy}");
    }
}

#[test]
fn hostile_text_in_an_error_is_printed_as_visible_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = "x,y\u{202e}\n".to_string();
    for i in 0..20 {
        csv += &format!("{i},{i}\n");
    }
    csv += "21,\x1b]0;pwned\x07\x1b[2J\u{9b}31m\n";
    // The file name carries an escape sequence too.
    let path = write(dir.path(), "bad\x1b[2J.csv", csv.as_bytes());
    let out = run(&["train", path.to_str().unwrap(), "--out", "/nonexistent"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    for raw in ['\x1b', '\x07', '\u{9b}', '\u{202e}'] {
        assert!(!err.contains(raw), "raw {raw:?} in: {err:?}");
    }
    assert!(err.contains("bad\\x1b[2J.csv:22"), "{err}");
    assert!(err.contains("column 'y\\u202e'"), "{err}");
    assert!(err.contains("]0;pwned"), "{err}");
}

#[test]
fn truncated_gzip_is_a_read_error() {
    use std::io::Write;
    let mut text = String::from("x,y\n");
    for i in 0..20_000 {
        text += &format!("{i},{}\n", i % 17);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    // "…/cut.csv.gz: read error: incomplete deflate stream"
    let line = error_line("cut.csv.gz", &bytes[..bytes.len() / 2], &[]);
    assert!(line.contains("read error"), "{line}");
}
