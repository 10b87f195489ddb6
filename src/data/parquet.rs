//! Parquet files (what Spark, Polars, DuckDB and pandas write by default), read row group
//! by row group through Arrow. The column types come from the file's schema: integers,
//! floats and decimals are numbers, booleans 0/1, strings and dictionary columns
//! categorical, timestamps, dates, times and durations numbers of seconds (with a note);
//! binary columns are dropped and nested ones refused by name. Numbers reach the table as
//! numbers (never written out and parsed back) and text as text, through the same record
//! seam as every format, so the table's checks and errors are the CSV reader's, and a
//! Parquet file converted from a CSV file gives the same table, bit for bit.

use std::cell::Cell;
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Once;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};
use csv::Position;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::error::DataError;
use super::format::{ColumnHint, Record, RecordReader};
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

/// How a column's values reach the table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conversion {
    /// As numbers (integers, floats, decimals; booleans as 1/0).
    Number,
    /// A point or span in time, as seconds: `divisor` of the stored unit make one second.
    Seconds { divisor: f64 },
    /// As text (strings, dictionary columns by their values).
    Text,
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
        DataType::Boolean => Conversion::Number,
        t if t.is_numeric() => Conversion::Number,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            Conversion::Text
        }
        _ => Conversion::Skipped,
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
                    t if conversion(t) == Conversion::Number => (ColumnKind::Numeric, None, None),
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

/// One column of the current batch, in the form its cells are read from.
enum Prepared {
    Numbers(Float64Array),
    Text(StringArray),
    Skipped,
}

impl Prepared {
    fn new(array: &ArrayRef, how: Conversion) -> Result<Self, String> {
        let cast = |to: &DataType| {
            arrow_cast::cast(array, to).map_err(|e| format!("cannot convert a column: {e}"))
        };
        let downcast = |array: ArrayRef| -> Result<_, String> {
            Ok(array
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or("a column did not convert to numbers")?
                .clone())
        };
        Ok(match how {
            Conversion::Number => Prepared::Numbers(downcast(cast(&DataType::Float64)?)?),
            Conversion::Seconds { divisor } => {
                let raw = cast(&DataType::Int64)?;
                let raw = raw
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or("a time column did not convert to integers")?;
                Prepared::Numbers(raw.iter().map(|v| v.map(|v| v as f64 / divisor)).collect())
            }
            Conversion::Text => Prepared::Text(
                cast(&DataType::Utf8)?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or("a column did not convert to text")?
                    .clone(),
            ),
            Conversion::Skipped => Prepared::Skipped,
        })
    }
}

struct ParquetRecords {
    reader: ParquetRecordBatchReader,
    layout: Arc<ParquetLayout>,
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
        let mut columns = batch.columns().iter();
        self.batch = (0..self.layout.columns.len())
            .map(|c| match conversion(&self.layout.types[c]) {
                Conversion::Skipped => Ok(Prepared::Skipped),
                how => {
                    let array = columns.next().ok_or("a column is missing from a batch")?;
                    Prepared::new(array, how)
                }
            })
            .collect::<Result<_, String>>()
            .map_err(|e| DataError::file(&self.path, e))?;
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

impl RecordReader for ParquetRecords {
    fn read_record(&mut self, record: &mut Record) -> Result<bool, DataError> {
        while self.at >= self.rows_in_batch {
            if !self.next_batch()? {
                return Ok(false);
            }
        }
        let row = self.at;
        self.at += 1;
        self.number += 1;
        record.clear_typed();
        for column in &self.batch {
            match column {
                Prepared::Numbers(a) => record.push_number(a.is_valid(row).then(|| a.value(row))),
                Prepared::Text(a) if a.is_valid(row) => record.push_text(a.value(row)),
                // A null, or a column not read (binary, nested): an empty cell.
                Prepared::Text(_) | Prepared::Skipped => record.push_text(""),
            }
        }
        let mut position = Position::new();
        position
            .set_line(self.number)
            .set_byte(self.number - 1)
            .set_record(self.number);
        record.text.set_position(Some(position));
        Ok(true)
    }
}
