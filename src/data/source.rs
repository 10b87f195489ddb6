//! Opening a data file: gzip detection, one-pass inputs, and the `csv` reader configured
//! the same way for every pass over a CSV file.
//!
//! The reader makes several passes (sniffing, column statistics, the table, and later the
//! exports' original text). An input that can be read only once — standard input (`-`), a
//! FIFO, a process substitution such as `<(zcat x.gz)` — is copied on its first opening into
//! an unnamed temporary file, and every pass reads that copy; nothing waits on a pipe that
//! was already drained.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;

use super::error::DataError;

/// How many leading bytes are inspected for NUL bytes and the delimiter.
const SNIFF_BYTES: usize = 64 * 1024;

/// Counts the bytes read from the file on disk (before decompression), so progress is a
/// fraction of the file size for plain and gzip files alike.
struct CountingFile {
    file: Box<dyn Read + Send>,
    read: Arc<AtomicU64>,
}

impl Read for CountingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The copy of a one-pass input, read by position so that passes never share an offset.
struct Spool {
    file: File,
    len: u64,
}

/// One pass over a [`Spool`].
struct SpoolReader {
    spool: Arc<Spool>,
    at: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.spool.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// One-pass inputs copied so far, by the name they were given.
static SPOOLS: Mutex<Option<HashMap<PathBuf, Arc<Spool>>>> = Mutex::new(None);

/// `true` for the name of standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// `true` when `path` must be copied before it can be read more than once.
fn is_one_pass(path: &Path) -> Result<bool, DataError> {
    if is_stdin(path) {
        return Ok(true);
    }
    let meta =
        std::fs::metadata(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
    if meta.is_dir() {
        return Err(DataError::file(path, "is a directory, not a data file"));
    }
    Ok(!meta.is_file())
}

/// The copy of the one-pass input `path`, made on first use.
fn spool(path: &Path) -> Result<Arc<Spool>, DataError> {
    let mut spools = SPOOLS.lock().unwrap_or_else(|e| e.into_inner());
    let spools = spools.get_or_insert_with(HashMap::new);
    if let Some(spool) = spools.get(path) {
        return Ok(spool.clone());
    }
    let fail = |what: &str, e: std::io::Error| DataError::file(path, format!("{what}: {e}"));
    let mut file = tempfile::tempfile().map_err(|e| fail("cannot make a temporary copy", e))?;
    let len = if is_stdin(path) {
        std::io::copy(&mut std::io::stdin().lock(), &mut file)
    } else {
        let mut input = File::open(path).map_err(|e| fail("cannot open", e))?;
        std::io::copy(&mut input, &mut file)
    }
    .map_err(|e| fail("cannot read", e))?;
    let spool = Arc::new(Spool { file, len });
    spools.insert(path.to_path_buf(), spool.clone());
    Ok(spool)
}

/// Checks that `path` names something readable as data (a file, a pipe, `-`), before any
/// long work starts, and records a regular file as an input that no output may replace.
pub fn check_input(path: &Path) -> Result<(), DataError> {
    if !is_one_pass(path)? {
        crate::files::protect_input(path);
    }
    Ok(())
}

/// Memory this process may still take, in bytes (Linux's `MemAvailable`; 4 GiB when the
/// system does not say).
pub fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024)
}

/// Size of the input in bytes (the copy's size for a one-pass input), for progress.
pub fn input_len(path: &Path) -> u64 {
    match is_one_pass(path) {
        Ok(false) => std::fs::metadata(path).map_or(0, |m| m.len()),
        Ok(true) => spool(path).map_or(0, |s| s.len),
        Err(_) => 0,
    }
}

/// What the user should know about how `path` was read (a one-pass input was copied).
pub fn input_note(path: &Path) -> Option<String> {
    let copied = SPOOLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|s| s.get(path).map(|s| s.len))?;
    let what = if is_stdin(path) {
        "standard input"
    } else {
        "the input (not a regular file)"
    };
    Some(format!(
        "{what} was copied to a temporary file ({:.1} MB) so it can be read more than once",
        copied as f64 / 1e6
    ))
}

/// The raw bytes of `path`: the file itself, or the copy of a one-pass input. A regular
/// file is recorded as an input, so no output of this process may replace it.
fn open_raw(path: &Path) -> Result<Box<dyn Read + Send>, DataError> {
    if is_one_pass(path)? {
        return Ok(Box::new(SpoolReader {
            spool: spool(path)?,
            at: 0,
        }));
    }
    crate::files::protect_input(path);
    let file = File::open(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
    Ok(Box::new(file))
}

/// `path` as a file that can be read at any position (Parquet's footer is at its end): the
/// file itself, or the copy of a one-pass input.
pub(super) fn open_file(path: &Path) -> Result<File, DataError> {
    if is_one_pass(path)? {
        return spool(path)?
            .file
            .try_clone()
            .map_err(|e| DataError::file(path, format!("cannot reopen the copy: {e}")));
    }
    crate::files::protect_input(path);
    File::open(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))
}

/// Opens `path` as decompressed text (gzip is detected by its magic bytes, not the name).
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>, DataError> {
    open_text_counted(path, Arc::default())
}

/// [`open_text`], adding every byte read from disk to `read`.
pub(super) fn open_text_counted(
    path: &Path,
    read: Arc<AtomicU64>,
) -> Result<Box<dyn BufRead + Send>, DataError> {
    let file = open_raw(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, CountingFile { file, read });
    let head = reader
        .fill_buf()
        .map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads the first bytes of the decompressed text, for sniffing.
pub(super) fn leading_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    open_text(path)?
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
    Ok(head)
}

/// Parses a `--delimiter` value: one ASCII character, or the words `tab`/`comma`/`semicolon`.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        "comma" => Ok(b','),
        "semicolon" => Ok(b';'),
        s if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        s => Err(format!(
            "delimiter must be one ASCII character or 'tab', got '{s}'"
        )),
    }
}

/// A `csv` reader over the decompressed text with strict row lengths.
pub fn csv_reader(
    path: &Path,
    delimiter: u8,
) -> Result<csv::Reader<Box<dyn BufRead + Send>>, DataError> {
    csv_reader_counted(path, delimiter, Arc::default())
}

/// [`csv_reader`], adding every byte read from disk to `read` (for progress reports).
pub fn csv_reader_counted(
    path: &Path,
    delimiter: u8,
    read: Arc<AtomicU64>,
) -> Result<csv::Reader<Box<dyn BufRead + Send>>, DataError> {
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(open_text_counted(path, read)?))
}

/// Turns a `csv` error into a located [`DataError`].
pub fn csv_error(path: &Path, err: &csv::Error) -> DataError {
    let line = err.position().map(|p| p.line());
    let message = match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("row has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => {
            format!(
                "field {} is not valid UTF-8 text (binary data?)",
                err.field() + 1
            )
        }
        csv::ErrorKind::Io(e) => format!("read error: {e}"),
        _ => err.to_string(),
    };
    match line {
        Some(line) => DataError::at(path, line, None, message),
        None => DataError::file(path, message),
    }
}
