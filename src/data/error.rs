//! The one error type of the data layer: every message names the file, and where it
//! can, the line and the column, so a user can open the file and see the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with an input file, located as precisely as the reader knows.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    /// The file being read.
    pub file: PathBuf,
    /// 1-based physical line number in the (decompressed) text, when known.
    pub line: Option<u64>,
    /// Column name (from the header), when the problem is in one column.
    pub column: Option<String>,
    /// What was expected and what was found.
    pub message: String,
}

impl DataError {
    /// An error about the whole file (no line, no column).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error at one line, optionally in one column.
    pub fn at(file: &Path, line: u64, column: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: Some(line),
            column: column.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ": column '{}'", super::table::brief(column))?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DataError {}
