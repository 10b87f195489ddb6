//! Loading at scale: generates a ROWS × 40 numeric CSV (5,000,000 rows by default, about
//! 1.3 GB, kept in `target/bench-data/`), then reads it the way the workbench does — two
//! passes with progress reports (a file larger than the memory budget keeps a uniform
//! sample), then encoding — and prints the time of each step and the peak resident memory
//! against the size of the f32 feature matrix. `LOAD_BENCH_ROWS=20000000` makes the
//! 20M-row (5.2 GB) file that README's figures for files larger than memory use.
//!
//! `cargo bench --bench load` (rows: `LOAD_BENCH_ROWS=500000 cargo bench --bench load`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use dagmm_tui::bench::peak_rss_bytes;
use dagmm_tui::data::{read_table_reporting, Encoder, ReadOptions, ScaleKind};

const COLUMNS: usize = 40;

/// Writes the data file: a mix of integers, decimals and negatives, deterministic.
fn generate(path: &Path, rows: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension("tmp");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    let header: Vec<String> = (0..COLUMNS).map(|c| format!("f{c}")).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut line = String::with_capacity(COLUMNS * 10);
    for _ in 0..rows {
        line.clear();
        for c in 0..COLUMNS {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = (state >> 40) as i64; // 24 random bits
            if c > 0 {
                line.push(',');
            }
            use std::fmt::Write as _;
            let _ = match c % 4 {
                0 => write!(line, "{}", v % 1000),
                1 => write!(line, "{}.{:03}", v % 100, v % 1000),
                2 => write!(line, "-{}.{:02}", v % 50, v % 100),
                _ => write!(line, "{}", v),
            };
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(tmp, path)
}

fn main() {
    let rows: usize = std::env::var("LOAD_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-data")
        .join(format!("wide-{rows}x{COLUMNS}.csv"));
    if !path.exists() {
        let start = Instant::now();
        generate(&path, rows).expect("generating the data file");
        eprintln!(
            "generated {} in {:.1} s",
            path.display(),
            start.elapsed().as_secs_f64()
        );
    }
    let file_bytes = std::fs::metadata(&path).unwrap().len();
    let baseline = peak_rss_bytes();

    let start = Instant::now();
    let mut reports = 0u64;
    let table = read_table_reporting(&path, &ReadOptions::default(), None, &mut |_| {
        reports += 1;
    })
    .expect("reading");
    let read_secs = start.elapsed().as_secs_f64();
    let after_read = peak_rss_bytes();

    let start = Instant::now();
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, _) = Encoder::fit(&table, &all, ScaleKind::Minmax).expect("encoding");
    let matrix = encoder.transform(&table, &all).matrix;
    let encode_secs = start.elapsed().as_secs_f64();
    let after_encode = peak_rss_bytes();

    let matrix_bytes = (matrix.rows * matrix.cols * 4) as f64;
    let gb = |b: f64| b / 1e9;
    let file_rows = table.sampled_from.unwrap_or(table.len() as u64);
    println!(
        "file: {file_rows} rows × {} columns, {:.2} GB on disk; kept {} rows{}",
        table.numeric_columns.len(),
        gb(file_bytes as f64),
        table.len(),
        if table.sampled_from.is_some() {
            " (a uniform sample, the default --sample for this machine's free memory)"
        } else {
            " (every row)"
        }
    );
    println!(
        "read (2 passes): {read_secs:.1} s ({:.0} MB/s per pass, {:.0} rows/s, {reports} progress reports)",
        2.0 * file_bytes as f64 / 1e6 / read_secs,
        file_rows as f64 / read_secs
    );
    println!("encode (fit + transform): {encode_secs:.2} s");
    println!(
        "f32 feature matrix: {:.2} GB; peak RSS: {:.2} GB at start, {:.2} GB after reading ({:.2}× the matrix), \
         {:.2} GB after encoding ({:.2}× the matrix: the parsed table plus the matrix)",
        gb(matrix_bytes),
        gb(baseline as f64),
        gb(after_read as f64),
        after_read as f64 / matrix_bytes,
        gb(after_encode as f64),
        after_encode as f64 / matrix_bytes
    );
}
