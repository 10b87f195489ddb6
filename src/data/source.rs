//! Opening a CSV file: gzip detection, binary detection, delimiter sniffing and the
//! `csv` reader configured the same way for every pass over the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::error::DataError;

/// How many leading bytes are inspected for NUL bytes and the delimiter.
const SNIFF_BYTES: usize = 64 * 1024;

/// Counts the bytes read from the file on disk (before decompression), so progress is a
/// fraction of the file size for plain and gzip files alike.
struct CountingFile {
    file: File,
    read: Arc<AtomicU64>,
}

impl Read for CountingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path` as decompressed text (gzip is detected by its magic bytes, not the name).
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>, DataError> {
    open_text_counted(path, Arc::default())
}

/// [`open_text`], adding every byte read from disk to `read`.
fn open_text_counted(
    path: &Path,
    read: Arc<AtomicU64>,
) -> Result<Box<dyn BufRead + Send>, DataError> {
    let file = File::open(path).map_err(|e| DataError::file(path, format!("cannot open: {e}")))?;
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
fn leading_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    open_text(path)?
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
    Ok(head)
}

/// Checks the file looks like text and picks the delimiter (`forced` wins).
///
/// Sniffing counts `,` `;` and tab outside quotes on the header line and takes the most
/// frequent; a header with none of them is a one-column file, read with `,`.
pub fn sniff(path: &Path, forced: Option<u8>) -> Result<u8, DataError> {
    let head = leading_bytes(path)?;
    if head.is_empty() {
        return Err(DataError::file(
            path,
            "the file is empty (expected a header line)",
        ));
    }
    if let Some(pos) = head.iter().position(|&b| b == 0) {
        return Err(DataError::file(
            path,
            format!("not a text CSV file: NUL byte at byte {pos} (binary data?)"),
        ));
    }
    if let Some(delimiter) = forced {
        return Ok(delimiter);
    }
    let mut counts = [0usize; 3];
    let mut in_quotes = false;
    for &b in &head {
        match b {
            b'\n' if !in_quotes => break,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => counts[0] += 1,
            b';' if !in_quotes => counts[1] += 1,
            b'\t' if !in_quotes => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    Ok(if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    })
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
