//! A data file (any [`Format`]) → [`RawTable`]: column kinds inferred (or taken from a saved
//! schema), cells parsed, categorical levels interned, each row's byte offset kept. No
//! scaling happens here: scalers are fitted later on whichever rows are the training rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::format::{Format, Record};

/// Marker for a missing categorical cell in [`RawTable::categorical`].
pub const MISSING_LEVEL: u32 = u32::MAX;

/// What to do with missing cells (empty, NA, NaN, ?, null) in feature columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// Stop with an error naming the first missing cell.
    #[default]
    Error,
    /// Numeric: the training mean; categorical: no level (all-zero one-hot).
    Mean,
    /// Skip rows that have any missing feature cell.
    Drop,
}

/// The role of one CSV column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Numeric,
    Categorical,
    /// Kept out of the features; used only for metrics.
    Label,
    Ignored,
}

/// Column names and kinds in header order; saved in checkpoints so new data is read the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<(String, ColumnKind)>,
    /// Numeric columns written with a decimal comma (`1,5`), read as 1.5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decimal_comma: Vec<String>,
}

impl Schema {
    /// The kind recorded for `name`, if the schema has that column.
    pub fn kind_of(&self, name: &str) -> Option<ColumnKind> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
    }

    /// `true` when column `name` is read with a decimal comma.
    pub fn has_decimal_comma(&self, name: &str) -> bool {
        self.decimal_comma.iter().any(|c| c == name)
    }
}

/// A categorical column with more distinct values than this is dropped with a note (its
/// one-hot encoding would be thousands of features: an id, a timestamp, free text).
pub const MAX_LEVELS: usize = 1_000;
/// A column named by `--categorical` may have at most this many levels.
pub const MAX_FORCED_LEVELS: usize = 10_000;
/// A categorical column with more than this many levels whose values are mostly distinct
/// (more than half of them) is dropped too: it names rows rather than groups them.
pub const UNIQUE_MIN_LEVELS: usize = 50;

/// Options that decide how a file becomes a table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Forced CSV delimiter; `None` sniffs it from the header.
    pub delimiter: Option<u8>,
    /// Label column: kept out of the features.
    pub label: Option<String>,
    /// Columns dropped entirely.
    pub ignore: Vec<String>,
    /// Columns treated as categorical even if they look numeric.
    pub categorical: Vec<String>,
    /// `None`: the format's default ([`Format::default_missing`]).
    pub missing: Option<MissingPolicy>,
    /// Rows kept of a file that has more: a uniform sample drawn in one pass. `None`: as
    /// many as fit a share of the memory ([`sample_budget_rows`]); `Some(0)`: every row.
    /// Scoring (`score`, `train`'s scores file) always covers every row.
    #[serde(default)]
    pub sample: Option<usize>,
}

impl ReadOptions {
    /// The missing-value policy for a file of `format`.
    pub fn missing_for(&self, format: &Format) -> MissingPolicy {
        self.missing.unwrap_or_else(|| format.default_missing())
    }
}

/// Where a data row came from, so its original text can be found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    /// 1-based record number (the header is not counted).
    pub number: u64,
    /// 1-based physical line of the record's start.
    pub line: u64,
    /// Byte offset of the record's start in the decompressed text.
    pub offset: u64,
}

/// Label column values, interned.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    pub column: String,
    pub values: Vec<u32>,
    pub names: Vec<String>,
}

impl Labels {
    /// The label text of row `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[self.values[i] as usize]
    }

    /// The code of the value taken as the anomaly class when none is named: the rarer
    /// value of a two-valued label (`None` with more values: ambiguous, so no guess).
    pub fn rarer_of_two(&self) -> Option<u32> {
        if self.names.len() != 2 {
            return None;
        }
        let ones = self.values.iter().filter(|&&v| v == 1).count();
        Some(u32::from(ones * 2 < self.values.len()))
    }

    /// `true` for each row whose label equals `anomaly`; an error if no row has it.
    pub fn is_value(&self, anomaly: &str) -> Result<Vec<bool>, String> {
        let code = self
            .names
            .iter()
            .position(|n| n == anomaly)
            .ok_or_else(|| {
                format!(
                    "label column '{}' has no value '{anomaly}' (values: {})",
                    self.column,
                    preview(&self.names)
                )
            })? as u32;
        Ok(self.values.iter().map(|&v| v == code).collect())
    }
}

/// The parsed file: numeric cells as f32 (NaN when missing), categorical cells as level codes.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub path: PathBuf,
    /// How the file is laid out: exports read its original records again through it.
    pub format: Format,
    pub schema: Schema,
    pub numeric_columns: Vec<String>,
    /// Row-major, `rows.len() × numeric_columns.len()`.
    pub numeric: Vec<f32>,
    pub categorical_columns: Vec<String>,
    /// Row-major, `rows.len() × categorical_columns.len()`; [`MISSING_LEVEL`] when missing.
    pub categorical: Vec<u32>,
    /// Level texts per categorical column, in order of first appearance.
    pub levels: Vec<Vec<String>>,
    pub labels: Option<Labels>,
    pub rows: Vec<RowRef>,
    /// Things the user should know (dropped rows, extra columns), printed by the CLI.
    pub notes: Vec<String>,
    /// Rows in the file when `rows` is a uniform sample of them (`None`: every row is here).
    pub sampled_from: Option<u64>,
}

impl RawTable {
    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// `true` when the table has no rows (never returned by [`read_table`]).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows `rows` of this table, in that order (how the rows kept while a file
    /// streams past are pruned).
    pub fn select(&self, rows: &[usize]) -> RawTable {
        let mut out = self.without_rows();
        let mut codes = CodeMap::new(&out, self);
        for &row in rows {
            out.push_row_of(self, row, &mut codes);
        }
        out
    }

    /// This table's rows and those of `other`'s `rows` it lacks (by record number), in
    /// file order. `other` is another read of the same file (a streamed chunk, say): its
    /// level and label codes are its own, so they are matched by text.
    pub fn merged_with(&self, other: &RawTable, rows: &[usize]) -> RawTable {
        let mut out = self.without_rows();
        let mut own = CodeMap::new(&out, self);
        let mut theirs = CodeMap::new(&out, other);
        let mut added: Vec<usize> = rows.to_vec();
        added.sort_by_key(|&r| other.rows[r].number);
        added.dedup_by_key(|r| other.rows[*r].number);
        let mut next = added.into_iter().peekable();
        for row in 0..self.len() {
            let number = self.rows[row].number;
            while let Some(r) = next.next_if(|&r| other.rows[r].number <= number) {
                if other.rows[r].number < number {
                    out.push_row_of(other, r, &mut theirs);
                }
            }
            out.push_row_of(self, row, &mut own);
        }
        for r in next {
            out.push_row_of(other, r, &mut theirs);
        }
        out
    }

    /// Appends `other`'s `rows` (another read of the same file; codes matched by text).
    pub fn append(&mut self, other: &RawTable, rows: &[usize]) {
        let mut codes = CodeMap::new(self, other);
        for &row in rows {
            self.push_row_of(other, row, &mut codes);
        }
    }

    /// The same columns and levels, no rows.
    fn without_rows(&self) -> RawTable {
        RawTable {
            path: self.path.clone(),
            format: self.format.clone(),
            schema: self.schema.clone(),
            numeric_columns: self.numeric_columns.clone(),
            numeric: Vec::new(),
            categorical_columns: self.categorical_columns.clone(),
            categorical: Vec::new(),
            levels: self.levels.clone(),
            labels: self.labels.as_ref().map(|l| Labels {
                column: l.column.clone(),
                values: Vec::new(),
                names: l.names.clone(),
            }),
            rows: Vec::new(),
            notes: self.notes.clone(),
            sampled_from: self.sampled_from,
        }
    }

    /// Appends row `row` of `from` (same columns), its codes translated by `codes`.
    fn push_row_of(&mut self, from: &RawTable, row: usize, codes: &mut CodeMap) {
        debug_assert_eq!(
            (&self.numeric_columns, &self.categorical_columns),
            (&from.numeric_columns, &from.categorical_columns)
        );
        let n = from.numeric_columns.len();
        self.numeric
            .extend_from_slice(&from.numeric[row * n..(row + 1) * n]);
        let c = from.categorical_columns.len();
        for (j, &code) in from.categorical[row * c..(row + 1) * c].iter().enumerate() {
            let mapped = codes.level(j, code, &from.levels[j], &mut self.levels[j]);
            self.categorical.push(mapped);
        }
        if let (Some(to), Some(source)) = (self.labels.as_mut(), from.labels.as_ref()) {
            let code = source.values[row];
            let mapped = codes.label(code, &source.names, &mut to.names);
            to.values.push(mapped);
        }
        self.rows.push(from.rows[row]);
    }
}

/// Translates one table's level and label codes into another's by their text, adding the
/// texts the target lacks (memoised: each code is looked up once).
struct CodeMap {
    /// Per categorical column: the target's code of each source code seen so far.
    levels: Vec<HashMap<u32, u32>>,
    labels: HashMap<u32, u32>,
    /// Per categorical column, then labels: the target's code of each text.
    by_text: Vec<HashMap<String, u32>>,
    label_by_text: HashMap<String, u32>,
}

impl CodeMap {
    fn new(target: &RawTable, source: &RawTable) -> Self {
        let index = |names: &[String]| -> HashMap<String, u32> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect()
        };
        CodeMap {
            levels: vec![HashMap::new(); source.categorical_columns.len()],
            labels: HashMap::new(),
            by_text: target.levels.iter().map(|l| index(l)).collect(),
            label_by_text: target
                .labels
                .as_ref()
                .map_or_else(HashMap::new, |l| index(&l.names)),
        }
    }

    fn level(&mut self, column: usize, code: u32, from: &[String], to: &mut Vec<String>) -> u32 {
        if code == MISSING_LEVEL {
            return code;
        }
        let by_text = &mut self.by_text[column];
        *self.levels[column]
            .entry(code)
            .or_insert_with(|| intern(by_text, to, &from[code as usize]))
    }

    fn label(&mut self, code: u32, from: &[String], to: &mut Vec<String>) -> u32 {
        let by_text = &mut self.label_by_text;
        *self
            .labels
            .entry(code)
            .or_insert_with(|| intern(by_text, to, &from[code as usize]))
    }
}

/// `cell` without leading and trailing whitespace. Most cells have none: a cell whose
/// first and last bytes are visible ASCII is returned as it is without `str::trim`'s
/// per-character Unicode test (a tenth of reading KDDCUP).
pub fn trimmed(cell: &str) -> &str {
    let visible = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_graphic());
    let bytes = cell.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        cell
    } else {
        cell.trim()
    }
}

/// `true` for the spellings of a missing value.
pub fn is_missing(cell: &str) -> bool {
    matches!(
        trimmed(cell),
        "" | "NA" | "N/A" | "n/a" | "NaN" | "nan" | "NAN" | "null" | "NULL" | "?"
    )
}

/// Parses a numeric cell; `None` when it is not a number at all.
fn parse_number(cell: &str) -> Option<f64> {
    let t = trimmed(cell);
    // Rust accepts "inf"/"infinity"/"nan" words; treat them as numbers so they are
    // reported as non-finite rather than silently becoming categories.
    t.parse::<f64>().ok()
}

/// Parses a number written with a decimal comma (`-1,25`, `3,5e2`): exactly one comma, no
/// point, digits on both sides of the comma.
fn parse_decimal_comma(cell: &str) -> Option<f64> {
    let t = trimmed(cell);
    let (whole, fraction) = t.split_once(',')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let whole_digits = whole.trim_start_matches(['-', '+']);
    let fraction_digits = fraction.split(['e', 'E']).next().unwrap_or("");
    if t.contains('.') || !digits(whole_digits) || !digits(fraction_digits) {
        return None;
    }
    t.replacen(',', ".", 1).parse::<f64>().ok()
}

/// A cell of a numeric column: `decimal_comma` columns also take `1,5`.
fn parse_numeric_cell(cell: &str, decimal_comma: bool) -> Option<f64> {
    parse_number(cell).or_else(|| decimal_comma.then(|| parse_decimal_comma(cell)).flatten())
}

/// `true` when `v` survives the conversion to the f32 the model computes in: `1e39` is a
/// finite f64 but would silently become infinity.
fn fits_f32(v: f64) -> bool {
    v.is_finite() && (v as f32).is_finite()
}

/// Cells quoted in error messages are cut to this many characters: a 1 MB field must not
/// become a 1 MB error line.
const QUOTE_CHARS: usize = 60;

/// `text` cut to [`QUOTE_CHARS`] characters (ending in `…` when cut), for names in messages.
pub(crate) fn brief(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// `cell` quoted for an error message, cut to [`QUOTE_CHARS`] characters.
pub(crate) fn quoted(cell: &str) -> String {
    let mut chars = cell.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    let rest = chars.count();
    if rest == 0 {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({rest} more characters)")
    }
}

/// Per-column facts gathered by the first pass.
#[derive(Default)]
struct ColumnStats {
    numbers: u64,
    texts: u64,
    first_text: Option<(u64, String)>,
    first_non_finite: Option<(u64, String)>,
    /// Text cells that are numbers with a decimal comma (`1,5`).
    comma_numbers: u64,
    /// Distinct text values, counted up to [`MAX_FORCED_LEVELS`] + 1 (numbers too in a
    /// `--categorical` column).
    distinct: std::collections::HashSet<String>,
}

impl ColumnStats {
    /// Counts `value` among the distinct values, stopping past the largest bound.
    fn see_level(&mut self, value: &str) {
        if self.distinct.len() <= MAX_FORCED_LEVELS && !self.distinct.contains(value) {
            self.distinct.insert(value.to_string());
        }
    }
}

/// How far reading a file has got: sent to the workbench's loading gauge.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadProgress {
    /// 1 while gathering column statistics, 2 while building the table.
    pub pass: u8,
    /// Bytes of the file on disk read so far in this pass (compressed bytes for gzip).
    pub bytes_read: u64,
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// Data records read so far in this pass.
    pub records: u64,
}

impl LoadProgress {
    /// Passes over the file a full read makes.
    pub const PASSES: u8 = 2;

    /// Overall completion in [0, 1] across both passes.
    pub fn fraction(&self) -> f64 {
        let within = self.bytes_read as f64 / self.file_bytes.max(1) as f64;
        ((f64::from(self.pass.max(1)) - 1.0 + within.min(1.0)) / f64::from(Self::PASSES)).min(1.0)
    }
}

/// Receives [`LoadProgress`] every few thousand records.
pub type ProgressSink<'a> = &'a mut dyn FnMut(LoadProgress);

/// Records between two progress reports.
const REPORT_EVERY: u64 = 16_384;

/// Reads `path` into a [`RawTable`]. With `schema`, column kinds come from it (scoring new
/// data with a saved model); otherwise they are inferred from the data.
pub fn read_table(
    path: &Path,
    opts: &ReadOptions,
    schema: Option<&Schema>,
) -> Result<RawTable, DataError> {
    read_table_reporting(path, opts, schema, &mut |_| {})
}

/// [`read_table`], reporting progress to `sink` as it goes (the workbench's gauge).
pub fn read_table_reporting(
    path: &Path,
    opts: &ReadOptions,
    schema: Option<&Schema>,
    sink: ProgressSink<'_>,
) -> Result<RawTable, DataError> {
    let format = Format::sniff(path, opts.delimiter, schema)?;
    let header = read_header(path, &format)?;
    check_named_columns(path, &header, opts)?;
    let (stats, records) = first_pass(path, &format, &header, opts, sink)?;
    let decided = decide_kinds(path, &format, &header, &stats, opts, schema)?;
    let notes = decided.notes.clone();
    let keep = sample_size(opts.sample, records, &decided, &stats);
    let mut table = second_pass(path, &format, &header, decided, opts, keep, sink)?;
    table.notes.splice(0..0, notes);
    table.notes.extend(super::source::input_note(path));
    Ok(table)
}

fn read_header(path: &Path, format: &Format) -> Result<Vec<String>, DataError> {
    let names = format.header(path)?;
    if names.iter().all(String::is_empty) {
        return Err(DataError::at(
            path,
            1,
            None,
            "the header line is empty (expected column names)",
        ));
    }
    let mut seen = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(DataError::at(
                path,
                1,
                None,
                format!("header field {} has no name", i + 1),
            ));
        }
        if name.contains(['\n', '\r']) {
            return Err(DataError::at(
                path,
                1,
                None,
                format!(
                    "header field {} runs over several lines ({}): is a quote left open?",
                    i + 1,
                    quoted(name)
                ),
            ));
        }
        if let Some(first) = seen.insert(name.clone(), i) {
            return Err(DataError::at(
                path,
                1,
                Some(name),
                format!(
                    "column name appears twice (fields {} and {})",
                    first + 1,
                    i + 1
                ),
            ));
        }
    }
    Ok(names)
}

fn check_named_columns(
    path: &Path,
    header: &[String],
    opts: &ReadOptions,
) -> Result<(), DataError> {
    let named = opts
        .label
        .iter()
        .map(|l| ("--label", l))
        .chain(opts.ignore.iter().map(|c| ("--ignore", c)))
        .chain(opts.categorical.iter().map(|c| ("--categorical", c)));
    for (flag, name) in named {
        if !header.iter().any(|h| h == name) {
            return Err(DataError::file(
                path,
                format!(
                    "{flag} names column '{name}', which is not in the header ({})",
                    preview(header)
                ),
            ));
        }
    }
    Ok(())
}

/// The first ten `names`, comma separated, with "…" when there are more.
fn preview(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(10).map(|n| brief(n)).collect();
    if names.len() > 10 {
        shown.push("…".into());
    }
    shown.join(", ")
}

fn role_from_options(name: &str, opts: &ReadOptions) -> Option<ColumnKind> {
    if opts.label.as_deref() == Some(name) {
        Some(ColumnKind::Label)
    } else if opts.ignore.iter().any(|c| c == name) {
        Some(ColumnKind::Ignored)
    } else if opts.categorical.iter().any(|c| c == name) {
        Some(ColumnKind::Categorical)
    } else {
        None
    }
}

fn is_feature_role(role: Option<ColumnKind>) -> bool {
    !matches!(role, Some(ColumnKind::Label) | Some(ColumnKind::Ignored))
}

fn first_pass(
    path: &Path,
    format: &Format,
    header: &[String],
    opts: &ReadOptions,
    sink: ProgressSink<'_>,
) -> Result<(Vec<ColumnStats>, u64), DataError> {
    let roles: Vec<Option<ColumnKind>> =
        header.iter().map(|h| role_from_options(h, opts)).collect();
    let mut stats: Vec<ColumnStats> = header.iter().map(|_| ColumnStats::default()).collect();
    let mut rows = 0u64;
    for_each_record(path, format, Some((1, sink)), |record| {
        rows += 1;
        let line = record.position().map_or(0, |p| p.line());
        for c in 0..record.len() {
            if !is_feature_role(roles[c]) || record.is_missing(c) {
                continue;
            }
            let s = &mut stats[c];
            let cell = &record.text[c];
            match record.number(c).or_else(|| parse_number(cell)) {
                Some(v) => {
                    s.numbers += 1;
                    if !fits_f32(v) && s.first_non_finite.is_none() {
                        s.first_non_finite = Some((line, record.cell(c).into_owned()));
                    }
                    if roles[c] == Some(ColumnKind::Categorical) {
                        s.see_level(trimmed(&record.cell(c)));
                    }
                }
                None => {
                    s.texts += 1;
                    if s.first_text.is_none() {
                        s.first_text = Some((line, cell.to_string()));
                    }
                    if parse_decimal_comma(cell).is_some() {
                        s.comma_numbers += 1;
                    }
                    s.see_level(trimmed(cell));
                }
            }
        }
        Ok::<(), DataError>(())
    })?;
    if rows == 0 {
        return Err(DataError::file(
            path,
            "the file has a header but no data rows",
        ));
    }
    Ok((stats, rows))
}

/// Column kinds as decided from the first pass (or a saved schema), with what the user
/// should hear about the decisions.
struct Decided {
    kinds: Vec<ColumnKind>,
    /// Per column: numbers written with a decimal comma.
    decimal_comma: Vec<bool>,
    notes: Vec<String>,
}

fn decide_kinds(
    path: &Path,
    format: &Format,
    header: &[String],
    stats: &[ColumnStats],
    opts: &ReadOptions,
    schema: Option<&Schema>,
) -> Result<Decided, DataError> {
    let mut decided = Decided {
        kinds: Vec::with_capacity(header.len()),
        decimal_comma: Vec::with_capacity(header.len()),
        notes: Vec::new(),
    };
    if let Some(schema) = schema {
        for (name, kind) in &schema.columns {
            if matches!(kind, ColumnKind::Numeric | ColumnKind::Categorical)
                && !header.contains(name)
            {
                return Err(DataError::file(
                    path,
                    format!(
                        "the model was trained with column '{}', which this file does not have",
                        brief(name)
                    ),
                ));
            }
        }
    }
    let hints = format.hints();
    for (c, name) in header.iter().enumerate() {
        let s = &stats[c];
        let from_schema = schema.map(|sc| sc.kind_of(name).unwrap_or(ColumnKind::Ignored));
        let forced = role_from_options(name, opts);
        let hint = hints.get(c).cloned().flatten();
        if let (Some(refusal), None) = (hint.as_ref().and_then(|h| h.refusal.clone()), schema) {
            if forced != Some(ColumnKind::Ignored) && forced != Some(ColumnKind::Label) {
                return Err(DataError::file(path, refusal));
            }
        }
        if let (None, None, Some(note)) =
            (forced, schema, hint.as_ref().and_then(|h| h.note.clone()))
        {
            decided.notes.push(note);
        }
        // Numbers with a decimal comma in a file whose delimiter is not the comma: read as
        // numbers (with `,` as the delimiter `"1,5"` could as well be 1,500, so it is only
        // pointed out).
        let comma_numbers = s.texts > 0 && s.comma_numbers == s.texts;
        let decimal_comma = match schema {
            Some(schema) => schema.has_decimal_comma(name),
            None => {
                forced.is_none()
                    && hint.is_none()
                    && comma_numbers
                    && matches!(format.delimiter(), Some(d) if d != b',')
            }
        };
        let kind = match forced.or(from_schema).or(hint.map(|h| h.kind)) {
            Some(kind) => kind,
            None if s.texts == 0 || decimal_comma => ColumnKind::Numeric,
            None if s.numbers > s.texts => {
                let (line, value) = s.first_text.clone().unwrap_or_default();
                return Err(DataError::at(
                    path,
                    line,
                    Some(name),
                    format!(
                        "expected a number, found {} ({} of {} values in this column are numbers; \
                         use --categorical {} to treat it as categorical)",
                        quoted(&value),
                        s.numbers,
                        s.numbers + s.texts,
                        brief(name)
                    ),
                ));
            }
            None => ColumnKind::Categorical,
        };
        if decimal_comma && schema.is_none() {
            decided.notes.push(format!(
                "column '{}' holds numbers written with a decimal comma (e.g. {}): read as numbers",
                brief(name),
                quoted(&s.first_text.clone().unwrap_or_default().1)
            ));
        }
        if comma_numbers && !decimal_comma && kind == ColumnKind::Categorical && schema.is_none() {
            decided.notes.push(format!(
                "column '{}' looks like numbers written with a decimal comma (e.g. {}) in a \
                 comma-separated file: read as categorical; write them with a point, or use \
                 ';' or tab as the delimiter",
                brief(name),
                quoted(&s.first_text.clone().unwrap_or_default().1)
            ));
        }
        let kind = if kind == ColumnKind::Categorical && schema.is_none() {
            categorical_or_dropped(path, name, s, forced.is_some(), &mut decided.notes)?
        } else {
            kind
        };
        if kind == ColumnKind::Numeric && !decimal_comma {
            if let Some((line, value)) = &s.first_text {
                return Err(DataError::at(
                    path,
                    *line,
                    Some(name),
                    format!("expected a number, found {}", quoted(value)),
                ));
            }
        }
        if kind == ColumnKind::Numeric {
            if let Some((line, value)) = &s.first_non_finite {
                return Err(DataError::at(
                    path,
                    *line,
                    Some(name),
                    format!(
                        "{} is not a finite 32-bit number (|x| < 3.4e38)",
                        quoted(value)
                    ),
                ));
            }
        }
        decided.kinds.push(kind);
        decided.decimal_comma.push(decimal_comma);
    }
    Ok(decided)
}

/// A categorical column with too many levels to one-hot encode: dropped with a note when
/// inferred (an id, a timestamp, free text), an error past [`MAX_FORCED_LEVELS`] when
/// `--categorical` named it; otherwise kept.
fn categorical_or_dropped(
    path: &Path,
    name: &str,
    s: &ColumnStats,
    forced: bool,
    notes: &mut Vec<String>,
) -> Result<ColumnKind, DataError> {
    let levels = s.distinct.len();
    let values = s.numbers + s.texts;
    let shown = |n: usize| {
        if n > MAX_FORCED_LEVELS {
            format!("more than {MAX_FORCED_LEVELS}")
        } else {
            n.to_string()
        }
    };
    if forced {
        if levels > MAX_FORCED_LEVELS {
            return Err(DataError::file(
                path,
                format!(
                    "column '{}' (--categorical) has {} distinct values: too many to one-hot \
                     encode (at most {MAX_FORCED_LEVELS}); use --ignore {} to leave it out",
                    brief(name),
                    shown(levels),
                    brief(name)
                ),
            ));
        }
        return Ok(ColumnKind::Categorical);
    }
    let mostly_unique = levels > UNIQUE_MIN_LEVELS && levels as u64 * 2 > values;
    if levels > MAX_LEVELS || mostly_unique {
        notes.push(format!(
            "column '{}' dropped: {} distinct values in {values} rows (an id, a timestamp or free \
             text?) are too many to one-hot encode (a categorical column may have at most \
             {MAX_LEVELS} levels, and at most {UNIQUE_MIN_LEVELS} when over half its values are \
             distinct); use --ignore {} to silence this, or --categorical {} to keep it",
            brief(name),
            shown(levels),
            brief(name),
            brief(name)
        ));
        return Ok(ColumnKind::Ignored);
    }
    Ok(ColumnKind::Categorical)
}

/// Rows the table keeps of a file of `records` records: every one, or a sample.
enum Keep {
    All(u64),
    Sample(usize),
}

/// How many rows to keep: all of them when they fit `requested` (or, by default, the
/// memory budget), else a sample of that size.
fn sample_size(
    requested: Option<usize>,
    records: u64,
    decided: &Decided,
    stats: &[ColumnStats],
) -> Keep {
    let limit = match requested {
        Some(0) => return Keep::All(records),
        Some(n) => n,
        None => {
            let kinds = || decided.kinds.iter().zip(stats);
            let cells = kinds()
                .filter(|(k, _)| matches!(k, ColumnKind::Numeric | ColumnKind::Categorical))
                .count();
            let one_hot: usize = kinds()
                .filter(|(k, _)| **k == ColumnKind::Categorical)
                .map(|(_, s)| s.distinct.len())
                .sum();
            sample_budget_rows(cells, one_hot, super::source::available_memory())
        }
    };
    if records > limit as u64 {
        Keep::Sample(limit)
    } else {
        Keep::All(records)
    }
}

/// Bytes a loaded row costs beyond its cells: its place in the file, its scores and what
/// the model computes per row (z, memberships, the feedback layer's paths).
const ROW_OVERHEAD_BYTES: usize = 160;
/// The share of the available memory the rows of a large file may take, and its bounds.
const MEMORY_SHARE: f64 = 1.0 / 8.0;
const MIN_BUDGET_BYTES: u64 = 64 << 20;
const MAX_BUDGET_BYTES: u64 = 512 << 20;
/// A sample is never smaller than this, whatever the budget says.
pub const MIN_SAMPLE_ROWS: usize = 100_000;

/// The rows that fit the memory budget: an eighth of `available` bytes, kept between 64
/// and 512 MiB, over a row's cost: each feature cell parsed (4 bytes) and encoded (4 bytes
/// per numeric column and one-hot level), plus [`ROW_OVERHEAD_BYTES`].
pub fn sample_budget_rows(feature_cells: usize, one_hot_levels: usize, available: u64) -> usize {
    let budget =
        ((available as f64 * MEMORY_SHARE) as u64).clamp(MIN_BUDGET_BYTES, MAX_BUDGET_BYTES);
    let row = 8 * feature_cells + 4 * one_hot_levels + ROW_OVERHEAD_BYTES;
    ((budget / row as u64) as usize).max(MIN_SAMPLE_ROWS)
}

/// The seed of the sample's draw: the same file gives the same sample.
const SAMPLE_SEED: u64 = 0x5eed_0fda_7a00;

fn second_pass(
    path: &Path,
    format: &Format,
    header: &[String],
    decided: Decided,
    opts: &ReadOptions,
    keep: Keep,
    sink: ProgressSink<'_>,
) -> Result<RawTable, DataError> {
    let missing = opts.missing_for(format);
    let mut builder = TableBuilder::new(path, format, header, decided, missing);
    let table = match keep {
        Keep::All(records) => {
            // The first pass counted the records: the table's arrays are allocated once, at
            // their final size, instead of doubling (which briefly holds 1.5× the matrix).
            builder.reserve(usize::try_from(records).unwrap_or(usize::MAX));
            for_each_record(path, format, Some((2, sink)), |record| builder.push(record))?;
            builder.take()
        }
        Keep::Sample(size) => {
            // Reservoir sampling (Vitter's algorithm R): after n kept rows each is in the
            // sample with probability size / n. Every row is still parsed and checked.
            builder.reserve(size);
            let mut rng = StdRng::seed_from_u64(SAMPLE_SEED);
            let mut seen = 0u64;
            for_each_record(path, format, Some((2, sink)), |record| {
                let before = builder.rows.len();
                builder.push(record)?;
                if builder.rows.len() == before {
                    return Ok(()); // dropped (--missing drop)
                }
                seen += 1;
                if seen > size as u64 {
                    let slot = rng.gen_range(0..seen);
                    builder.keep_last_at((slot < size as u64).then_some(slot as usize));
                }
                Ok::<(), DataError>(())
            })?;
            builder.restore_file_order();
            let mut table = builder.take();
            if seen > size as u64 {
                table.notes.push(format!(
                    "the file has {seen} rows: the model trains on a uniform sample of {} \
                     (--sample N to change it, --sample 0 for every row); scores cover every row",
                    table.len()
                ));
                table.sampled_from = Some(seen);
            }
            table
        }
    };
    if table.rows.is_empty() {
        return Err(DataError::file(
            path,
            "no data rows left after dropping rows with missing values",
        ));
    }
    Ok(table)
}

/// Calls `f` on every data record of `path`, turning reader errors into located ones.
/// With `progress = Some((pass, sink))`, reports to `sink` every [`REPORT_EVERY`] records
/// and at the end.
fn for_each_record<E: From<DataError>>(
    path: &Path,
    format: &Format,
    mut progress: Option<(u8, ProgressSink<'_>)>,
    mut f: impl FnMut(&Record) -> Result<(), E>,
) -> Result<(), E> {
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let file_bytes = super::source::input_len(path);
    let mut reader = format.records(path, read.clone())?;
    let mut record = Record::default();
    let mut records = 0u64;
    let mut report = |records: u64| {
        if let Some((pass, sink)) = progress.as_mut() {
            sink(LoadProgress {
                pass: *pass,
                bytes_read: read.load(std::sync::atomic::Ordering::Relaxed),
                file_bytes,
                records,
            });
        }
    };
    loop {
        if !reader.read_record(&mut record)? {
            report(records);
            return Ok(());
        }
        f(&record)?;
        records += 1;
        if records.is_multiple_of(REPORT_EVERY) {
            report(records);
        }
    }
}

/// The column names and the original records numbered in `wanted` (1-based data record
/// numbers, as in [`RowRef::number`]), read again from the file: exports carry the exact
/// original text, not the parsed values.
pub fn read_records(
    path: &Path,
    format: &Format,
    wanted: &std::collections::BTreeSet<u64>,
) -> Result<(Vec<String>, HashMap<u64, csv::StringRecord>), DataError> {
    /// Ends the pass once the last wanted record is read.
    enum Scan {
        Complete,
        Failed(DataError),
    }
    impl From<DataError> for Scan {
        fn from(e: DataError) -> Self {
            Scan::Failed(e)
        }
    }
    let header = read_header(path, format)?;
    let last = wanted.last().copied().unwrap_or(0);
    let mut found = HashMap::with_capacity(wanted.len());
    let mut number = 0u64;
    let scanned = for_each_record(path, format, None, |record| {
        number += 1;
        if wanted.contains(&number) {
            found.insert(number, record.clone().into_text());
        }
        if number >= last {
            return Err(Scan::Complete);
        }
        Ok(())
    });
    match scanned {
        Ok(()) | Err(Scan::Complete) => Ok((header, found)),
        Err(Scan::Failed(e)) => Err(e),
    }
}

/// Reads `path` with a known `schema` in chunks of at most `chunk_rows` rows, calling
/// `each` per chunk: memory stays bounded whatever the file size (used for scoring).
pub fn read_chunks(
    path: &Path,
    opts: &ReadOptions,
    schema: &Schema,
    chunk_rows: usize,
    mut each: impl FnMut(RawTable) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let format = Format::sniff(path, opts.delimiter, Some(schema))?;
    let header = read_header(path, &format)?;
    let no_stats: Vec<ColumnStats> = header.iter().map(|_| ColumnStats::default()).collect();
    let decided = decide_kinds(path, &format, &header, &no_stats, opts, Some(schema))?;
    let missing = opts.missing_for(&format);
    let mut builder = TableBuilder::new(path, &format, &header, decided, missing);
    for_each_record(path, &format, None, |record| {
        builder.push(record)?;
        if builder.rows.len() >= chunk_rows {
            each(builder.take())?;
        }
        anyhow::Ok(())
    })?;
    if builder.number == 0 {
        return Err(DataError::file(path, "the file has a header but no data rows").into());
    }
    let total = builder.number;
    if !builder.rows.is_empty() {
        each(builder.take())?;
    }
    Ok(total)
}

/// Accumulates parsed records into a [`RawTable`] once column kinds are known.
struct TableBuilder {
    path: PathBuf,
    format: Format,
    header: Vec<String>,
    schema: Schema,
    missing: MissingPolicy,
    numeric_idx: Vec<usize>,
    categorical_idx: Vec<usize>,
    label_idx: Option<usize>,
    level_maps: Vec<HashMap<String, u32>>,
    levels: Vec<Vec<String>>,
    label_map: HashMap<String, u32>,
    label_names: Vec<String>,
    label_values: Vec<u32>,
    /// Per entry of `numeric_idx`: read with a decimal comma.
    numeric_comma: Vec<bool>,
    numeric: Vec<f32>,
    categorical: Vec<u32>,
    rows: Vec<RowRef>,
    /// Records seen so far (dropped ones included): the next record's number minus one.
    number: u64,
    dropped: u64,
    /// Missing feature cells kept (`--missing mean`), and the rows that had them.
    missing_cells: u64,
    missing_rows: u64,
}

impl TableBuilder {
    fn new(
        path: &Path,
        format: &Format,
        header: &[String],
        decided: Decided,
        missing: MissingPolicy,
    ) -> Self {
        let Decided {
            kinds,
            decimal_comma,
            ..
        } = decided;
        let pick = |want: ColumnKind| -> Vec<usize> {
            (0..header.len()).filter(|&c| kinds[c] == want).collect()
        };
        let categorical_idx = pick(ColumnKind::Categorical);
        let numeric_idx = pick(ColumnKind::Numeric);
        Self {
            numeric_comma: numeric_idx.iter().map(|&c| decimal_comma[c]).collect(),
            path: path.to_path_buf(),
            format: format.clone(),
            header: header.to_vec(),
            numeric_idx,
            label_idx: pick(ColumnKind::Label).first().copied(),
            level_maps: vec![HashMap::new(); categorical_idx.len()],
            levels: vec![Vec::new(); categorical_idx.len()],
            categorical_idx,
            schema: Schema {
                columns: header.iter().cloned().zip(kinds.iter().copied()).collect(),
                decimal_comma: (0..header.len())
                    .filter(|&c| decimal_comma[c] && kinds[c] == ColumnKind::Numeric)
                    .map(|c| header[c].clone())
                    .collect(),
            },
            missing,
            label_map: HashMap::new(),
            label_names: Vec::new(),
            label_values: Vec::new(),
            numeric: Vec::new(),
            categorical: Vec::new(),
            rows: Vec::new(),
            number: 0,
            dropped: 0,
            missing_cells: 0,
            missing_rows: 0,
        }
    }

    /// Moves the row just pushed into row `slot` (replacing it), or drops it (`None`):
    /// one step of the reservoir.
    fn keep_last_at(&mut self, slot: Option<usize>) {
        let last = self.rows.len() - 1;
        let widths = [self.numeric_idx.len(), self.categorical_idx.len()];
        if let Some(slot) = slot {
            let (n, c) = (widths[0], widths[1]);
            self.numeric.copy_within(last * n..(last + 1) * n, slot * n);
            self.categorical
                .copy_within(last * c..(last + 1) * c, slot * c);
            self.rows[slot] = self.rows[last];
            if self.label_idx.is_some() {
                self.label_values[slot] = self.label_values[last];
            }
        }
        self.numeric.truncate(last * widths[0]);
        self.categorical.truncate(last * widths[1]);
        self.rows.truncate(last);
        if self.label_idx.is_some() {
            self.label_values.truncate(last);
        }
    }

    /// Puts the rows back in the order of the file (a reservoir leaves them shuffled).
    fn restore_file_order(&mut self) {
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by_key(|&i| self.rows[i].number);
        let gather = |values: &[u32], width: usize| -> Vec<u32> {
            order
                .iter()
                .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        let n = self.numeric_idx.len();
        self.numeric = order
            .iter()
            .flat_map(|&i| self.numeric[i * n..(i + 1) * n].iter().copied())
            .collect();
        self.categorical = gather(&self.categorical, self.categorical_idx.len());
        if self.label_idx.is_some() {
            self.label_values = gather(&self.label_values, 1);
        }
        self.rows = order.iter().map(|&i| self.rows[i]).collect();
    }

    /// Makes room for `rows` more rows.
    fn reserve(&mut self, rows: usize) {
        self.numeric
            .reserve_exact(rows.saturating_mul(self.numeric_idx.len()));
        self.categorical
            .reserve_exact(rows.saturating_mul(self.categorical_idx.len()));
        self.rows.reserve_exact(rows);
        if self.label_idx.is_some() {
            self.label_values.reserve_exact(rows);
        }
    }

    fn push(&mut self, record: &Record) -> Result<(), DataError> {
        self.number += 1;
        let (line, offset) = record.position().map_or((0, 0), |p| (p.line(), p.byte()));
        let features = self.numeric_idx.iter().chain(&self.categorical_idx);
        if self.missing == MissingPolicy::Drop && features.clone().any(|&c| record.is_missing(c)) {
            self.dropped += 1;
            return Ok(());
        }
        if self.missing == MissingPolicy::Mean {
            let missing = features.clone().filter(|&&c| record.is_missing(c)).count() as u64;
            self.missing_cells += missing;
            self.missing_rows += u64::from(missing > 0);
        }
        if self.missing == MissingPolicy::Error {
            if let Some(&c) = features.clone().find(|&&c| record.is_missing(c)) {
                return Err(DataError::at(
                    &self.path,
                    line,
                    Some(&self.header[c]),
                    format!(
                        "missing value {} (use --missing mean or --missing drop to accept missing values)",
                        quoted(&record.cell(c))
                    ),
                ));
            }
        }
        for (&c, &comma) in self.numeric_idx.iter().zip(&self.numeric_comma) {
            if record.is_missing(c) {
                self.numeric.push(f32::NAN);
                continue;
            }
            let cell = &record.text[c];
            let value = record
                .number(c)
                .or_else(|| parse_numeric_cell(cell, comma))
                .filter(|&v| fits_f32(v))
                .ok_or_else(|| {
                    DataError::at(
                        &self.path,
                        line,
                        Some(&self.header[c]),
                        format!(
                            "expected a finite 32-bit number, found {}",
                            quoted(&record.cell(c))
                        ),
                    )
                })?;
            self.numeric.push(value as f32);
        }
        for (j, &c) in self.categorical_idx.iter().enumerate() {
            if record.is_missing(c) {
                self.categorical.push(MISSING_LEVEL);
                continue;
            }
            let cell = record.cell(c);
            let code = intern(&mut self.level_maps[j], &mut self.levels[j], trimmed(&cell));
            self.categorical.push(code);
        }
        if let Some(c) = self.label_idx {
            let code = intern(
                &mut self.label_map,
                &mut self.label_names,
                trimmed(&record.cell(c)),
            );
            self.label_values.push(code);
        }
        self.rows.push(RowRef {
            number: self.number,
            line,
            offset,
        });
        Ok(())
    }

    /// Hands over the rows gathered so far and starts a new, empty chunk.
    fn take(&mut self) -> RawTable {
        let mut notes = Vec::new();
        if self.dropped > 0 {
            notes.push(format!(
                "dropped {} rows with missing values (--missing drop)",
                self.dropped
            ));
            self.dropped = 0;
        }
        if self.missing_cells > 0 {
            notes.push(format!(
                "{} missing cells in {} rows: numbers take the training mean, categories no \
                 level (--missing mean{})",
                self.missing_cells,
                self.missing_rows,
                if self.format.default_missing() == MissingPolicy::Mean {
                    ", the default for Zeek logs and Parquet; --missing error refuses them"
                } else {
                    ""
                }
            ));
            (self.missing_cells, self.missing_rows) = (0, 0);
        }
        let columns = |idx: &[usize]| idx.iter().map(|&c| self.header[c].clone()).collect();
        RawTable {
            path: self.path.clone(),
            format: self.format.clone(),
            schema: self.schema.clone(),
            numeric_columns: columns(&self.numeric_idx),
            categorical_columns: columns(&self.categorical_idx),
            numeric: std::mem::take(&mut self.numeric),
            categorical: std::mem::take(&mut self.categorical),
            levels: self.levels.clone(),
            labels: self.label_idx.map(|c| Labels {
                column: self.header[c].clone(),
                values: std::mem::take(&mut self.label_values),
                names: self.label_names.clone(),
            }),
            rows: std::mem::take(&mut self.rows),
            notes,
            sampled_from: None,
        }
    }
}

/// The code of `text` in `map`, adding it to `names` when new.
fn intern(map: &mut HashMap<String, u32>, names: &mut Vec<String>, text: &str) -> u32 {
    if let Some(&code) = map.get(text) {
        return code;
    }
    let code = names.len() as u32;
    names.push(text.to_string());
    map.insert(text.to_string(), code);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_takes_the_fast_path_only_when_nothing_needs_trimming() {
        assert_eq!(trimmed("12.5"), "12.5");
        assert_eq!(trimmed(" 12.5\t"), "12.5");
        assert_eq!(trimmed("\u{a0}x\u{2003}"), "x", "Unicode spaces still go");
        assert_eq!(trimmed("é"), "é");
        assert_eq!(trimmed(""), "");
        assert!(is_missing("  NA ") && is_missing("") && !is_missing("0"));
    }

    /// The texts of row `row`: its numbers, its levels and its label.
    fn texts(t: &RawTable, row: usize) -> (Vec<f32>, Vec<String>, String) {
        let c = t.categorical_columns.len();
        let levels = (0..c)
            .map(|j| t.levels[j][t.categorical[row * c + j] as usize].clone())
            .collect();
        let n = t.numeric_columns.len();
        let labels = t.labels.as_ref().unwrap();
        let numbers = t.numeric[row * n..(row + 1) * n].to_vec();
        (numbers, levels, labels.name(row).to_string())
    }

    #[test]
    fn merging_a_streamed_chunk_into_a_sample_matches_levels_by_text_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let protocols = ["tcp", "udp", "icmp", "gre"];
        let mut text = String::from("x,proto,label\n");
        for i in 0..40 {
            let label = if i % 7 == 0 { "bad" } else { "ok" };
            text += &format!("{i},{},{label}\n", protocols[(i * 3 + i / 5) % 4]);
        }
        std::fs::write(&path, text).unwrap();
        let opts = ReadOptions {
            label: Some("label".into()),
            categorical: vec!["proto".into()],
            ..Default::default()
        };
        let all = read_table(&path, &opts, None).unwrap();
        let sampled = ReadOptions {
            sample: Some(10),
            ..opts.clone()
        };
        let sample = read_table(&path, &sampled, None).unwrap();
        assert_eq!((sample.len(), sample.sampled_from), (10, Some(40)));
        // The chunks' own builder interns levels in its own order.
        let mut chunks = Vec::new();
        read_chunks(&path, &opts, &sample.schema, 16, |chunk| {
            chunks.push(chunk);
            Ok(())
        })
        .unwrap();
        let last = chunks.pop().unwrap();
        let picked = last.select(&[7, 2, 5, 2]);
        assert_eq!(picked.len(), 4);
        assert_eq!(texts(&picked, 1), texts(&last, 2));
        let merged = sample.merged_with(&picked, &[0, 1, 2, 3]);
        let numbers: Vec<u64> = merged.rows.iter().map(|r| r.number).collect();
        let mut expected: Vec<u64> = sample.rows.iter().map(|r| r.number).collect();
        expected.extend(picked.rows.iter().map(|r| r.number));
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(numbers, expected, "file order, each record once");
        for (row, r) in merged.rows.iter().enumerate() {
            assert_eq!(
                texts(&merged, row),
                texts(&all, r.number as usize - 1),
                "record {}",
                r.number
            );
        }
    }
}
