//! Parquet files (what Spark, Polars, DuckDB and pandas write by default), read row group
//! by row group through Arrow. The column types come from the file's schema: integers,
//! floats and decimals are numbers, booleans 0/1, strings and dictionary columns
//! categorical, timestamps, dates, times and durations numbers of seconds (with a note);
//! binary columns are dropped and nested ones refused by name. Each value is handed to the
//! table as the text a CSV file would hold (floats in their shortest exact form), so the
//! table, its checks and its errors are the CSV reader's, and a Parquet file converted from a
//! CSV file gives the same table, bit for bit.

use std::cell::Cell;
use std::fmt::Write;
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Once;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, TimeUnit};
use csv::{Position, StringRecord};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::error::DataError;
use super::format::{ColumnHint, RecordReader};
use super::source::open_file;
use super::table::{brief, ColumnKind};

/// Rows per Arrow batch: big enough to amortise the per-batch work, small enough that a
/// batch of a wide file stays a few megabytes.
const BATCH_ROWS: usize = 8192;

/// The top-level columns of a Parquet file and their Arrow types.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetLayout {
    pub columns: Vec<String>,
    types: Vec<DataType>,
    /// Rows in the file (from its footer).
    pub rows: u64,
}

/// How a column's values become text cells.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conversion {
    /// Formatted as they are (numbers, decimals, strings).
    AsIs,
    /// `true`/`false` as 1/0.
    Bool,
    /// A dictionary column, by its values.
    Dictionary,
    /// A point or span in time, as seconds: `divisor` of the stored unit make one second.
    Seconds { divisor: f64 },
    /// Not read (binary, nested): its cells are empty.
    Skipped,
}

fn seconds_per(unit: &TimeUnit) -> f64 {
    match unit {
        TimeUnit::Second => 1.0,
        TimeUnit::Millisecond => 1e3,
        TimeUnit::Microsecond => 1e6,
        TimeUnit::Nanosecond => 1e9,
    }
}

fn conversion(ty: &DataType) -> Conversion {
    match ty {
        DataType::Boolean => Conversion::Bool,
        DataType::Dictionary(..) => Conversion::Dictionary,
        DataType::Timestamp(unit, _)
        | DataType::Time32(unit)
        | DataType::Time64(unit)
        | DataType::Duration(unit) => Conversion::Seconds {
            divisor: seconds_per(unit),
        },
        DataType::Date32 => Conversion::Seconds {
            divisor: 1.0 / 86_400.0,
        },
        DataType::Date64 => Conversion::Seconds { divisor: 1e3 },
        t if t.is_nested() || is_binary(t) || matches!(t, DataType::Interval(_)) => {
            Conversion::Skipped
        }
        _ => Conversion::AsIs,
    }
}

fn is_binary(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

thread_local! {
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// `true` while this thread decodes Parquet, whose decoder can panic on a damaged file:
/// such a panic becomes a [`DataError`], so a panic hook should stay quiet (and the
/// workbench's must not restore the terminal).
pub fn containing_panic() -> bool {
    CONTAINING.get()
}

/// Runs `decode`, turning a panic in the decoder into an error naming `path`.
fn contained<T>(
    path: &Path,
    decode: impl FnOnce() -> Result<T, DataError>,
) -> Result<T, DataError> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !containing_panic() {
                previous(info);
            }
        }));
    });
    let was = CONTAINING.replace(true);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(decode));
    CONTAINING.set(was);
    outcome.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        Err(DataError::file(
            path,
            format!("the Parquet file is damaged: its decoder stopped ({why})"),
        ))
    })
}

/// A readable opening of the Parquet file `path` (its footer read).
fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, DataError> {
    let file = open_file(path)?;
    contained(path, || {
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
            DataError::file(
                path,
                format!("not a readable Parquet file (truncated or damaged?): {e}"),
            )
        })
    })
}

impl ParquetLayout {
    /// Reads the footer of `path`.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let builder = builder(path)?;
        let schema = builder.schema();
        Ok(Self {
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            types: schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            rows: builder.metadata().file_metadata().num_rows().max(0) as u64,
        })
    }

    /// What each column's type says about it.
    pub fn hints(&self) -> Vec<Option<ColumnHint>> {
        self.columns
            .iter()
            .zip(&self.types)
            .map(|(name, ty)| {
                let name = brief(name);
                let (kind, note, refusal) = match ty {
                    t if t.is_nested() => (
                        ColumnKind::Ignored,
                        None,
                        Some(format!(
                            "column '{name}' has the nested Parquet type {t}, which cannot be a \
                             feature; flatten it before reading, or use --ignore {name}"
                        )),
                    ),
                    t if is_binary(t) || matches!(t, DataType::Interval(_)) => (
                        ColumnKind::Ignored,
                        Some(format!(
                            "column '{name}' (Parquet type {t}) dropped: not a number or text"
                        )),
                        None,
                    ),
                    DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(..) => (ColumnKind::Categorical, None, None),
                    t if conversion(t) == Conversion::Bool || t.is_numeric() => {
                        (ColumnKind::Numeric, None, None)
                    }
                    t if matches!(conversion(t), Conversion::Seconds { .. }) => (
                        ColumnKind::Numeric,
                        Some(format!(
                            "column '{name}' (Parquet type {t}) read as a number of seconds{}",
                            if matches!(
                                t,
                                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                            ) {
                                " since 1970-01-01"
                            } else {
                                ""
                            }
                        )),
                        None,
                    ),
                    _ => return None,
                };
                Some(ColumnHint {
                    kind,
                    note,
                    refusal,
                })
            })
            .collect()
    }

    /// A pass over the rows of `path`, adding to `read` the share of the file's bytes that
    /// each batch's rows stand for (progress).
    pub fn records(
        self: &Arc<Self>,
        path: &Path,
        read: Arc<AtomicU64>,
    ) -> Result<Box<dyn RecordReader>, DataError> {
        let builder = builder(path)?;
        let readable: Vec<usize> = (0..self.columns.len())
            .filter(|&c| conversion(&self.types[c]) != Conversion::Skipped)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), readable.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| DataError::file(path, format!("cannot read the Parquet file: {e}")))?;
        Ok(Box::new(ParquetRecords {
            reader,
            layout: self.clone(),
            readable,
            path: path.to_path_buf(),
            batch: Vec::new(),
            at: 0,
            rows_in_batch: 0,
            number: 0,
            read,
            file_bytes: super::source::input_len(path),
        }))
    }
}

/// One column of the current batch as text: every cell formatted once, end to end.
struct Prepared {
    /// The column's index in the header.
    column: usize,
    text: String,
    /// Where each row's cell ends in `text` (a null is an empty cell: missing).
    ends: Vec<usize>,
}

impl Prepared {
    fn new(column: usize, array: &ArrayRef) -> Result<Self, String> {
        let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
            .map_err(|e| format!("cannot format a column: {e}"))?;
        let mut text = String::new();
        let mut ends = Vec::with_capacity(array.len());
        for row in 0..array.len() {
            if !array.is_null(row) {
                write!(text, "{}", formatter.value(row))
                    .map_err(|e| format!("cannot format a value: {e}"))?;
            }
            ends.push(text.len());
        }
        Ok(Self { column, text, ends })
    }

    fn cell(&self, row: usize) -> &str {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        &self.text[start..self.ends[row]]
    }
}

struct ParquetRecords {
    reader: ParquetRecordBatchReader,
    layout: Arc<ParquetLayout>,
    /// Header indices of the columns read (the projection, in order).
    readable: Vec<usize>,
    path: PathBuf,
    batch: Vec<Prepared>,
    /// The next row within the batch, and the batch's rows.
    at: usize,
    rows_in_batch: usize,
    /// Rows handed out so far.
    number: u64,
    read: Arc<AtomicU64>,
    file_bytes: u64,
}

impl ParquetRecords {
    /// Reads the next batch; `false` at the end of the file.
    fn next_batch(&mut self) -> Result<bool, DataError> {
        let reader = &mut self.reader;
        let Some(batch) = contained(&self.path, || Ok(reader.next()))? else {
            return Ok(false);
        };
        let batch: RecordBatch = batch.map_err(|e| {
            DataError::file(
                &self.path,
                format!(
                    "cannot read the Parquet file after row {} (truncated or damaged?): {e}",
                    self.number
                ),
            )
        })?;
        self.batch = self
            .readable
            .iter()
            .zip(batch.columns())
            .map(|(&column, array)| {
                convert(array, conversion(&self.layout.types[column]))
                    .and_then(|array| Prepared::new(column, &array))
                    .map_err(|e| DataError::file(&self.path, e))
            })
            .collect::<Result<_, DataError>>()?;
        self.at = 0;
        self.rows_in_batch = batch.num_rows();
        if self.layout.rows > 0 {
            let share = self.rows_in_batch as f64 / self.layout.rows as f64;
            let bytes = (share * self.file_bytes as f64) as u64;
            self.read.fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(true)
    }
}

/// `array` in the form its cells are formatted from.
fn convert(array: &ArrayRef, how: Conversion) -> Result<ArrayRef, String> {
    let cast = |to: &DataType| {
        arrow_cast::cast(array, to).map_err(|e| format!("cannot convert a column: {e}"))
    };
    Ok(match how {
        Conversion::AsIs | Conversion::Skipped => array.clone(),
        Conversion::Bool => cast(&DataType::Int8)?,
        Conversion::Dictionary => cast(&DataType::Utf8)?,
        Conversion::Seconds { divisor } => {
            let raw = cast(&DataType::Int64)?;
            let raw = raw
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .ok_or("a time column did not convert to integers")?;
            let seconds: Float64Array = raw.iter().map(|v| v.map(|v| v as f64 / divisor)).collect();
            Arc::new(seconds)
        }
    })
}

impl RecordReader for ParquetRecords {
    fn read_record(&mut self, record: &mut StringRecord) -> Result<bool, DataError> {
        while self.at >= self.rows_in_batch {
            if !self.next_batch()? {
                return Ok(false);
            }
        }
        let row = self.at;
        self.at += 1;
        self.number += 1;
        record.clear();
        let mut next = self.batch.iter().peekable();
        for column in 0..self.layout.columns.len() {
            match next.peek() {
                Some(p) if p.column == column => {
                    record.push_field(p.cell(row));
                    next.next();
                }
                // A column not read (binary, nested) is an empty cell.
                _ => record.push_field(""),
            }
        }
        let mut position = Position::new();
        position
            .set_line(self.number)
            .set_byte(self.number - 1)
            .set_record(self.number);
        record.set_position(Some(position));
        Ok(true)
    }
}
