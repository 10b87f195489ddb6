//! The formats a data file can be in — CSV, Zeek logs (tab-separated with `#` header lines),
//! JSON lines and Parquet — told apart by their content, not their name, and one record reader
//! per format. Every reader gives the same things: a header of column names, what the
//! format itself says about a column's kind, and records of text cells that know their
//! line and byte offset. The table, its checks and errors, the scoring stream and the
//! exports are written once over those, whatever the format.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use csv::{Position, StringRecord};
use serde_json::Value;

use super::error::DataError;
use super::parquet::ParquetLayout;
use super::source::{csv_error, csv_reader_counted, leading_bytes, open_text_counted};
use super::table::{brief, is_missing, quoted, ColumnKind, MissingPolicy, Schema};

/// How a data file is laid out, sniffed from its first bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// Delimited text with a header line.
    Csv { delimiter: u8 },
    /// A Zeek log in its ASCII form: `#separator`, `#fields`, `#types` lines, then rows.
    Zeek(Arc<ZeekLayout>),
    /// One JSON object per line; nested objects become dotted column names.
    JsonLines(Arc<JsonLayout>),
    /// Apache Parquet, its column types from its schema.
    Parquet(Arc<ParquetLayout>),
}

/// What the format itself says about a column (Zeek's `#types`, a JSON column of arrays):
/// used where neither the user's flags nor a saved schema decide.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnHint {
    pub kind: ColumnKind,
    /// Why, when the user should hear it (a column kept out of the features).
    pub note: Option<String>,
    /// Why the column cannot be read at all (a nested Parquet column): an error unless
    /// the user leaves the column out (`--ignore`).
    pub refusal: Option<String>,
}

/// A Zeek log's header lines. An empty set or string (`(empty)`) stays a value of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeekLayout {
    pub separator: String,
    /// The text of a field that was never set (`-`): read as missing.
    pub unset: String,
    pub fields: Vec<String>,
    /// One type per field (`count`, `string`, `set[string]`, …) when `#types` is present.
    pub types: Option<Vec<String>>,
}

/// The columns of a JSON-lines file: every key path seen, in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonLayout {
    pub columns: Vec<String>,
    index: HashMap<String, usize>,
    /// Columns that held an array, with the first line that had one (dropped).
    arrays: HashMap<String, u64>,
}

/// JSON column names that hold a timestamp (Zeek's `ts`, Suricata's `timestamp`, a
/// shipper's `@timestamp`): kept out of the features, like an id column.
const JSON_TIME_COLUMNS: [&str; 3] = ["ts", "timestamp", "@timestamp"];

impl Format {
    /// The format of `path` from its content. `forced_delimiter` (`--delimiter`) applies
    /// to CSV only. A JSON-lines file's columns come from `schema` when a saved model
    /// names them (scoring streams the file once); otherwise from a pass over the file,
    /// which also checks every line.
    pub fn sniff(
        path: &Path,
        forced_delimiter: Option<u8>,
        schema: Option<&Schema>,
    ) -> Result<Format, DataError> {
        let head = leading_bytes(path)?;
        if head.starts_with(b"PAR1") {
            if forced_delimiter.is_some() {
                return Err(DataError::file(
                    path,
                    "--delimiter is for CSV files; this is a Parquet file",
                ));
            }
            return Ok(Format::Parquet(Arc::new(ParquetLayout::read(path)?)));
        }
        if head.is_empty() {
            return Err(DataError::file(
                path,
                "the file is empty (expected a header line)",
            ));
        }
        if let Some(pos) = head.iter().position(|&b| b == 0) {
            return Err(DataError::file(
                path,
                format!("not a text file: NUL byte at byte {pos} (binary data?)"),
            ));
        }
        let text = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&head);
        let first_visible = text.iter().find(|b| !b.is_ascii_whitespace());
        let format = if text.starts_with(b"#separator") {
            Format::Zeek(Arc::new(ZeekLayout::read(path)?))
        } else if first_visible == Some(&b'{') {
            let layout = match schema {
                Some(schema) => JsonLayout::of_columns(schema.columns.iter().map(|(n, _)| n)),
                None => JsonLayout::scan(path)?,
            };
            Format::JsonLines(Arc::new(layout))
        } else {
            return Ok(Format::Csv {
                delimiter: forced_delimiter.unwrap_or_else(|| sniff_delimiter(text)),
            });
        };
        if forced_delimiter.is_some() {
            return Err(DataError::file(
                path,
                format!(
                    "--delimiter is for CSV files; this is {}",
                    format.describe()
                ),
            ));
        }
        Ok(format)
    }

    /// What the format is, for messages ("a Zeek log").
    pub fn describe(&self) -> &'static str {
        match self {
            Format::Csv { .. } => "a CSV file",
            Format::Zeek(_) => "a Zeek log",
            Format::JsonLines(_) => "a JSON-lines file",
            Format::Parquet(_) => "a Parquet file",
        }
    }

    /// The field delimiter of a CSV file (`None` for other formats).
    pub fn delimiter(&self) -> Option<u8> {
        match self {
            Format::Csv { delimiter } => Some(*delimiter),
            _ => None,
        }
    }

    /// The missing-value policy when the user names none. Zeek leaves fields unset as a
    /// matter of course (a connection without a reply has no `resp_bytes`), and a Parquet
    /// null is a typed "no value", never a typo: both take the training mean. In text
    /// formats an empty cell may be a mistake, so it is an error to look at.
    pub fn default_missing(&self) -> MissingPolicy {
        match self {
            Format::Zeek(_) | Format::Parquet(_) => MissingPolicy::Mean,
            _ => MissingPolicy::Error,
        }
    }

    /// The column names, unchecked (the table checks them the same way for every format).
    pub fn header(&self, path: &Path) -> Result<Vec<String>, DataError> {
        match self {
            Format::Csv { delimiter } => {
                let mut reader = csv_reader_counted(path, *delimiter, Arc::default())?;
                let header = reader.headers().map_err(|e| csv_error(path, &e))?;
                Ok(header
                    .iter()
                    .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
                    .collect())
            }
            Format::Zeek(layout) => Ok(layout.fields.clone()),
            Format::JsonLines(layout) => Ok(layout.columns.clone()),
            Format::Parquet(layout) => Ok(layout.columns.clone()),
        }
    }

    /// What the format says about each header column.
    pub fn hints(&self) -> Vec<Option<ColumnHint>> {
        match self {
            Format::Csv { .. } => Vec::new(),
            Format::Zeek(layout) => match &layout.types {
                Some(types) => layout
                    .fields
                    .iter()
                    .zip(types)
                    .map(|(name, ty)| zeek_hint(name, ty))
                    .collect(),
                None => Vec::new(),
            },
            Format::JsonLines(layout) => layout.columns.iter().map(|c| layout.hint(c)).collect(),
            Format::Parquet(layout) => layout.hints(),
        }
    }

    /// A pass over the records of `path`, adding every byte read from disk to `read`.
    pub fn records(
        &self,
        path: &Path,
        read: Arc<AtomicU64>,
    ) -> Result<Box<dyn RecordReader>, DataError> {
        Ok(match self {
            Format::Csv { delimiter } => Box::new(CsvRecords {
                reader: csv_reader_counted(path, *delimiter, read)?,
                path: path.to_path_buf(),
            }),
            Format::Zeek(layout) => Box::new(ZeekRecords {
                lines: Lines::open(path, read)?,
                layout: layout.clone(),
                bools: match &layout.types {
                    Some(types) => types.iter().map(|t| t == "bool").collect(),
                    None => vec![false; layout.fields.len()],
                },
            }),
            Format::Parquet(layout) => layout.records(path, read)?,
            Format::JsonLines(layout) => Box::new(JsonRecords {
                lines: Lines::open(path, read)?,
                path: path.to_path_buf(),
                layout: layout.clone(),
            }),
        })
    }
}

/// Reads the records of one pass, one at a time, into a reused [`Record`] whose position
/// (line, byte offset, record number) is set.
pub trait RecordReader {
    /// The next record into `record`; `false` at the end of the data.
    fn read_record(&mut self, record: &mut Record) -> Result<bool, DataError>;
}

/// One data record: its cells as text, and where the format stores numbers as numbers
/// (Parquet), those numbers themselves, so they are never written out and parsed back.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Every cell's text; a typed number's text is empty.
    pub text: StringRecord,
    /// Per column of a typed format: `Some(value)` for a number; empty for text formats.
    numbers: Vec<Option<f64>>,
}

impl Record {
    /// Cells in the record.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// `true` for a record without cells.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Where the record starts.
    pub fn position(&self) -> Option<&Position> {
        self.text.position()
    }

    /// Cell `c` as a number when the format stored it as one.
    pub fn number(&self, c: usize) -> Option<f64> {
        self.numbers.get(c).copied().flatten()
    }

    /// `true` when cell `c` is missing (a NaN number counts, as the text `NaN` does).
    pub fn is_missing(&self, c: usize) -> bool {
        match self.number(c) {
            Some(v) => v.is_nan(),
            None => is_missing(&self.text[c]),
        }
    }

    /// Cell `c` as text (a typed number in its shortest exact form).
    pub fn cell(&self, c: usize) -> Cow<'_, str> {
        match self.number(c) {
            Some(v) => Cow::Owned(ryu::Buffer::new().format(v).to_string()),
            None => Cow::Borrowed(&self.text[c]),
        }
    }

    /// The record as text only, for exports.
    pub fn into_text(self) -> StringRecord {
        if self.numbers.is_empty() {
            return self.text;
        }
        let mut text = StringRecord::new();
        (0..self.len()).for_each(|c| text.push_field(&self.cell(c)));
        text.set_position(self.text.position().cloned());
        text
    }

    /// Starts a record of a typed format: no cells yet.
    pub(super) fn clear_typed(&mut self) {
        self.text.clear();
        self.numbers.clear();
    }

    /// Appends a text cell to a record of a typed format.
    pub(super) fn push_text(&mut self, cell: &str) {
        self.text.push_field(cell);
        self.numbers.push(None);
    }

    /// Appends a number (`None`: a null, which is missing) to a record of a typed format.
    pub(super) fn push_number(&mut self, value: Option<f64>) {
        self.text.push_field("");
        self.numbers.push(value);
    }
}

/// Sniffing counts `,` `;` and tab outside quotes on the header line and takes the most
/// frequent; a header with none of them is a one-column file, read with `,`.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut in_quotes = false;
    for &b in head {
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
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

struct CsvRecords {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    path: PathBuf,
}

impl RecordReader for CsvRecords {
    fn read_record(&mut self, record: &mut Record) -> Result<bool, DataError> {
        record.numbers.clear();
        self.reader
            .read_record(&mut record.text)
            .map_err(|e| csv_error(&self.path, &e))
    }
}

/// The lines of a text file with their 1-based numbers and byte offsets.
struct Lines {
    reader: Box<dyn BufRead + Send>,
    path: PathBuf,
    buf: Vec<u8>,
    /// The number of the line last read.
    number: u64,
    /// The byte offset just past the line last read.
    next_offset: u64,
    /// Records handed out so far.
    records: u64,
}

impl Lines {
    fn open(path: &Path, read: Arc<AtomicU64>) -> Result<Self, DataError> {
        Ok(Self {
            reader: open_text_counted(path, read)?,
            path: path.to_path_buf(),
            buf: Vec::new(),
            number: 0,
            next_offset: 0,
            records: 0,
        })
    }

    /// The next line without its line ending, with its number and offset; `None` at the end.
    fn next_line(&mut self) -> Result<Option<(&str, u64, u64)>, DataError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| DataError::file(&self.path, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.next_offset;
        self.next_offset += n as u64;
        self.number += 1;
        let mut bytes = &self.buf[..];
        bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = std::str::from_utf8(bytes).map_err(|e| {
            DataError::at(
                &self.path,
                self.number,
                None,
                format!(
                    "not valid UTF-8 text at byte {} of the line (binary data?)",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        Ok(Some((line, self.number, offset)))
    }

    /// The position of a record that starts at `line` and `offset`.
    fn position(&mut self, line: u64, offset: u64) -> Position {
        self.records += 1;
        let mut position = Position::new();
        position
            .set_line(line)
            .set_byte(offset)
            .set_record(self.records);
        position
    }
}

/// Decodes Zeek's `\xNN` escapes (the `#separator` line writes the tab as `\x09`).
fn unescape_zeek(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\\x") {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 2..at + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match code {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[at + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl ZeekLayout {
    /// Reads the `#` lines at the top of a Zeek log.
    fn read(path: &Path) -> Result<Self, DataError> {
        let mut lines = Lines::open(path, Arc::default())?;
        let mut layout = ZeekLayout {
            separator: "\t".into(),
            unset: "-".into(),
            fields: Vec::new(),
            types: None,
        };
        let mut types_line = 0;
        let mut first_data = None;
        while let Some((line, number, _)) = lines.next_line()? {
            let Some(directive) = line.strip_prefix('#') else {
                first_data = Some(number);
                break;
            };
            if let Some(value) = directive.strip_prefix("separator ") {
                layout.separator = unescape_zeek(value.trim_end_matches(['\r', '\n']));
                if layout.separator.is_empty() {
                    return Err(DataError::at(path, number, None, "#separator is empty"));
                }
                continue;
            }
            let mut parts = directive.split(layout.separator.as_str());
            let key = parts.next().unwrap_or_default();
            let values: Vec<String> = parts.map(str::to_string).collect();
            match key {
                "unset_field" => layout.unset = values.concat(),
                "fields" => layout.fields = values,
                "types" => {
                    layout.types = Some(values);
                    types_line = number;
                }
                _ => {}
            }
        }
        if layout.fields.is_empty() {
            let message = "a Zeek log needs a #fields line naming its columns before the first row";
            return Err(match first_data {
                Some(line) => DataError::at(path, line, None, message),
                None => DataError::file(path, message),
            });
        }
        if let Some(types) = &layout.types {
            if types.len() != layout.fields.len() {
                return Err(DataError::at(
                    path,
                    types_line,
                    None,
                    format!(
                        "#types lists {} types for {} #fields",
                        types.len(),
                        layout.fields.len()
                    ),
                ));
            }
        }
        Ok(layout)
    }
}

/// What a Zeek type says about a column.
fn zeek_hint(name: &str, ty: &str) -> Option<ColumnHint> {
    let hint = |kind, note: Option<String>| {
        Some(ColumnHint {
            kind,
            note,
            refusal: None,
        })
    };
    match ty {
        "time" => hint(
            ColumnKind::Ignored,
            Some(format!(
                "column '{}' is a timestamp (Zeek type time): kept out of the features, like an id",
                brief(name)
            )),
        ),
        "count" | "int" | "double" | "port" | "interval" | "bool" => {
            hint(ColumnKind::Numeric, None)
        }
        "string" | "enum" | "addr" | "subnet" | "pattern" => hint(ColumnKind::Categorical, None),
        t if t.starts_with("set[") || t.starts_with("vector[") || t.starts_with("table[") => hint(
            ColumnKind::Ignored,
            Some(format!(
                "column '{}' holds {} values (Zeek type {t}): dropped",
                brief(name),
                t.split('[').next().unwrap_or(t)
            )),
        ),
        _ => None,
    }
}

struct ZeekRecords {
    lines: Lines,
    layout: Arc<ZeekLayout>,
    /// Per field: Zeek type `bool` (`T`/`F`, read as 1/0).
    bools: Vec<bool>,
}

impl RecordReader for ZeekRecords {
    fn read_record(&mut self, record: &mut Record) -> Result<bool, DataError> {
        record.numbers.clear();
        let record = &mut record.text;
        loop {
            let Some((line, number, offset)) = self.lines.next_line()? else {
                return Ok(false);
            };
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            record.clear();
            let layout = &self.layout;
            for (i, cell) in line.split(layout.separator.as_str()).enumerate() {
                let cell = if cell == layout.unset {
                    ""
                } else if self.bools.get(i) == Some(&true) {
                    match cell {
                        "T" => "1",
                        "F" => "0",
                        other => other,
                    }
                } else {
                    cell
                };
                record.push_field(cell);
            }
            if record.len() != layout.fields.len() {
                return Err(DataError::at(
                    &self.lines.path,
                    number,
                    None,
                    format!(
                        "row has {} fields, #fields names {}",
                        record.len(),
                        layout.fields.len()
                    ),
                ));
            }
            let position = self.lines.position(number, offset);
            record.set_position(Some(position));
            return Ok(true);
        }
    }
}

/// What one line's JSON kind is for mixing checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    Number,
    Text,
    Bool,
}

impl JsonKind {
    fn describe(self) -> &'static str {
        match self {
            JsonKind::Number => "a number",
            JsonKind::Text => "text",
            JsonKind::Bool => "a boolean",
        }
    }
}

/// Parses one line of a JSON-lines file into its object.
fn parse_object(
    path: &Path,
    line: &str,
    number: u64,
) -> Result<serde_json::Map<String, Value>, DataError> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        DataError::at(
            path,
            number,
            None,
            format!("not valid JSON at character {}: {e}", e.column()),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(DataError::at(
            path,
            number,
            None,
            format!(
                "expected one JSON object per line, found {}",
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ),
        )),
    }
}

/// Calls `leaf` on every non-object value of `map` with its dotted key path.
fn flatten(
    prefix: &str,
    map: &serde_json::Map<String, Value>,
    leaf: &mut impl FnMut(String, &Value),
) {
    for (key, value) in map {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, leaf),
            other => leaf(name, other),
        }
    }
}

impl JsonLayout {
    /// The layout of a saved model's columns.
    fn of_columns<'a>(names: impl Iterator<Item = &'a String>) -> Self {
        let mut layout = JsonLayout {
            columns: Vec::new(),
            index: HashMap::new(),
            arrays: HashMap::new(),
        };
        names.for_each(|n| {
            layout.column(n);
        });
        layout
    }

    /// The index of column `name`, added when new.
    fn column(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.columns.push(name.to_string());
        self.index.insert(name.to_string(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// Reads every line of `path`: its columns, and an error at the first line that is not
    /// a JSON object or that gives a column a kind of value it did not have before.
    fn scan(path: &Path) -> Result<Self, DataError> {
        let mut layout = Self::of_columns(std::iter::empty());
        let mut lines = Lines::open(path, Arc::default())?;
        let mut kinds: Vec<Option<(JsonKind, u64)>> = Vec::new();
        let mut objects = 0u64;
        while let Some((line, number, _)) = lines.next_line()? {
            if line.trim().is_empty() {
                continue;
            }
            objects += 1;
            let map = parse_object(path, line, number)?;
            let mut problem = None;
            flatten("", &map, &mut |name, value| {
                let column = layout.column(&name);
                kinds.resize(layout.columns.len(), None);
                let kind = match value {
                    Value::Number(_) => JsonKind::Number,
                    Value::Bool(_) => JsonKind::Bool,
                    Value::String(s) if s.trim().parse::<f64>().is_ok() => JsonKind::Number,
                    Value::String(_) => JsonKind::Text,
                    Value::Array(_) => {
                        layout.arrays.entry(name).or_insert(number);
                        return;
                    }
                    _ => return,
                };
                match kinds[column] {
                    None => kinds[column] = Some((kind, number)),
                    Some((seen, first)) if seen != kind && problem.is_none() => {
                        problem = Some(DataError::at(
                            path,
                            number,
                            Some(&name),
                            format!(
                                "mixed types: {} here ({}), {} on line {first}",
                                kind.describe(),
                                quoted(&json_cell(value)),
                                seen.describe()
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            });
            if let Some(problem) = problem {
                return Err(problem);
            }
        }
        if objects == 0 {
            return Err(DataError::file(path, "the file has no JSON objects"));
        }
        Ok(layout)
    }

    fn hint(&self, column: &str) -> Option<ColumnHint> {
        if let Some(line) = self.arrays.get(column) {
            return Some(ColumnHint {
                kind: ColumnKind::Ignored,
                note: Some(format!(
                    "column '{}' holds arrays (line {line}): dropped",
                    brief(column)
                )),
                refusal: None,
            });
        }
        JSON_TIME_COLUMNS.contains(&column).then(|| ColumnHint {
            kind: ColumnKind::Ignored,
            note: Some(format!(
                "column '{}' is a timestamp: kept out of the features, like an id",
                brief(column)
            )),
            refusal: None,
        })
    }
}

/// The text cell of a JSON value: numbers as written, booleans as 1 and 0, null (and an
/// array, whose column is dropped) as missing.
fn json_cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        _ => String::new(),
    }
}

struct JsonRecords {
    lines: Lines,
    path: PathBuf,
    layout: Arc<JsonLayout>,
}

impl RecordReader for JsonRecords {
    fn read_record(&mut self, record: &mut Record) -> Result<bool, DataError> {
        record.numbers.clear();
        let record = &mut record.text;
        loop {
            let Some((line, number, offset)) = self.lines.next_line()? else {
                return Ok(false);
            };
            if line.trim().is_empty() {
                continue;
            }
            let map = parse_object(&self.path, line, number)?;
            let mut cells = vec![String::new(); self.layout.columns.len()];
            flatten("", &map, &mut |name, value| {
                if let Some(&i) = self.layout.index.get(&name) {
                    cells[i] = json_cell(value);
                }
            });
            record.clear();
            cells.iter().for_each(|c| record.push_field(c));
            let position = self.lines.position(number, offset);
            record.set_position(Some(position));
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeek_escapes_decode_and_unknown_ones_stay() {
        assert_eq!(unescape_zeek("\\x09"), "\t");
        assert_eq!(unescape_zeek("a\\x2cb\\xZZ"), "a,b\\xZZ");
    }

    #[test]
    fn zeek_types_give_kinds() {
        assert_eq!(zeek_hint("ts", "time").unwrap().kind, ColumnKind::Ignored);
        assert_eq!(zeek_hint("p", "port").unwrap().kind, ColumnKind::Numeric);
        assert_eq!(
            zeek_hint("h", "addr").unwrap().kind,
            ColumnKind::Categorical
        );
        assert_eq!(
            zeek_hint("t", "set[string]").unwrap().kind,
            ColumnKind::Ignored
        );
        assert!(zeek_hint("x", "record").is_none());
    }

    #[test]
    fn nested_objects_flatten_to_dotted_names() {
        let map = serde_json::from_str::<serde_json::Map<String, Value>>(
            r#"{"a": 1, "b": {"c": "x", "d": {"e": true}}, "f": null}"#,
        )
        .unwrap();
        let mut seen = Vec::new();
        flatten("", &map, &mut |name, value| {
            seen.push((name, json_cell(value)))
        });
        let seen: Vec<(&str, &str)> = seen.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(seen, [("a", "1"), ("b.c", "x"), ("b.d.e", "1"), ("f", "")]);
    }

    #[test]
    fn delimiters_are_counted_outside_quotes() {
        assert_eq!(sniff_delimiter(b"a;b;c\n1,5;2;3"), b';');
        assert_eq!(sniff_delimiter(b"\"a,b\"\tc\n"), b'\t');
        assert_eq!(sniff_delimiter(b"single\n1\n"), b',');
    }
}
