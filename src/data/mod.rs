//! Data file (CSV, Zeek log, JSON lines, Parquet) → dataset: reading, type inference, encoding. Never panics on bad input: every
//! problem becomes a [`DataError`] naming the file, line and column.

pub mod encode;
pub mod error;
pub mod format;
pub mod parquet;
pub mod source;
pub mod table;

pub use encode::{Encoded, Encoder, ScaleKind};
pub use error::DataError;
pub use format::Format;
pub use table::{
    read_records, read_table, read_table_reporting, ColumnKind, Labels, LoadProgress,
    MissingPolicy, RawTable, ReadOptions, RowRef, Schema,
};

/// A dense row-major f32 matrix: the form in which data meets the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows listed in `indices`, copied into a new matrix (used to build batches).
    pub fn gather(&self, indices: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            rows: indices.len(),
            cols: self.cols,
            data,
        }
    }
}
