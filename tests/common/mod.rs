//! Helpers shared by the integration tests: run the real binary, write small files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the built `dagmm-tui` binary with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dagmm-tui"))
        .args(args)
        .output()
        .expect("running dagmm-tui")
}

/// Runs `dagmm-tui train DATA --out OUT` with `extra` flags.
pub fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Runs `dagmm-tui score --model MODEL DATA` with `extra` flags.
pub fn score(model: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "score",
        "--model",
        model.to_str().unwrap(),
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The one line a failed run printed, checked to be an `error: ` line.
pub fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The shipped sample.
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/kddcup99_sample.csv")
}

/// The first `rows` data rows of the shipped sample, as a new file in `dir`.
pub fn small_sample(dir: &Path, rows: usize) -> PathBuf {
    let text = std::fs::read_to_string(sample()).unwrap();
    let head: Vec<&str> = text.lines().take(rows + 1).collect();
    write(dir, "small.csv", (head.join("\n") + "\n").as_bytes())
}

/// Label column of [`hostile_csv`]; its name carries an escape sequence too.
pub const HOSTILE_LABEL: &str = "label\x1b[2J";

/// A CSV whose column names, cells and labels carry escape sequences, other control
/// characters, bidi overrides, zero-width, wide and combining characters: nothing in it
/// may reach a terminal raw. `rows` data rows; every 10th is labelled anomalous.
pub fn hostile_csv(dir: &Path, rows: usize) -> PathBuf {
    const PROTOCOLS: [&str; 6] = [
        "tcp",
        "\x1b]0;pwned\x07",
        "漢字",
        "e\u{301}te",
        "zero\u{200b}width",
        "\u{9b}2J\u{202e}txt.exe",
    ];
    let mut text = format!("dur\x1b[31m,bytes,proto\u{202e},{HOSTILE_LABEL}\n");
    for i in 0..rows {
        let anomalous = i % 10 == 0;
        let (dur, bytes) = if anomalous {
            (50.0 + i as f64, 9000.0 - i as f64)
        } else {
            ((i % 7) as f64, 100.0 + (i % 13) as f64)
        };
        let label = if anomalous { "evil\x1b[5m" } else { "normal" };
        // Consecutive anomalous rows cycle through every protocol value.
        let protocol = PROTOCOLS[(i + i / 10) % PROTOCOLS.len()];
        text += &format!("{dur},{bytes},{protocol},{label}\n");
    }
    write(dir, "hostile\x1b[1m.csv", text.as_bytes())
}
