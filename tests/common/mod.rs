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
