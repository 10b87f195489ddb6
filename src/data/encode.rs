//! Features from a [`RawTable`]: numeric columns scaled, categorical columns one-hot
//! encoded. The encoder is fitted on the training rows only and saved with the model, so
//! scoring new data applies exactly the same transformation.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::table::{ColumnKind, RawTable, Schema, MISSING_LEVEL};
use super::Matrix;

/// How numeric columns are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScaleKind {
    /// `(v - min) / (max - min)` over the training rows (the paper's reimplementations).
    #[default]
    Minmax,
    /// `(v - mean) / std` over the training rows.
    Zscore,
}

/// One numeric input: `(value - shift) / scale`, missing cells become `fill` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericFeature {
    pub column: String,
    pub shift: f64,
    pub scale: f64,
    pub fill: f64,
}

/// One categorical column: one input per level seen in the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneHotFeature {
    pub column: String,
    pub levels: Vec<String>,
}

/// The fitted CSV → feature-matrix transformation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    pub schema: Schema,
    pub scale: ScaleKind,
    pub numeric: Vec<NumericFeature>,
    pub onehot: Vec<OneHotFeature>,
}

/// Result of [`Encoder::transform`].
pub struct Encoded {
    pub matrix: Matrix,
    /// Categorical cells whose level was not seen in training (encoded as all zeros).
    pub unseen_levels: u64,
}

impl Encoder {
    /// Fits scalers and level lists on `rows` of `table`. Returns the encoder and notes
    /// about dropped constant columns; an error when no column varies over those rows (a
    /// single row, identical rows), since there is then nothing to learn.
    pub fn fit(
        table: &RawTable,
        rows: &[usize],
        scale: ScaleKind,
    ) -> Result<(Self, Vec<String>), DataError> {
        let mut notes = Vec::new();
        let p = table.numeric_columns.len();
        // One pass over the rows in memory order, every column's statistics at once.
        let mut stats = vec![(0f64, 0f64, 0f64, f64::INFINITY, f64::NEG_INFINITY); p];
        for &r in rows {
            for (st, &v) in stats.iter_mut().zip(&table.numeric[r * p..(r + 1) * p]) {
                if !v.is_nan() {
                    let v = v as f64;
                    st.0 += 1.0;
                    st.1 += v;
                    st.2 += v * v;
                    st.3 = st.3.min(v);
                    st.4 = st.4.max(v);
                }
            }
        }
        let mut numeric = Vec::new();
        for (column, &(n, sum, sum_sq, min, max)) in table.numeric_columns.iter().zip(&stats) {
            let mean = if n > 0.0 { sum / n } else { 0.0 };
            let (shift, width) = match scale {
                ScaleKind::Minmax => (min, max - min),
                ScaleKind::Zscore => (mean, ((sum_sq / n.max(1.0)) - mean * mean).max(0.0).sqrt()),
            };
            if !(width.is_finite() && width > 0.0) {
                notes.push(format!(
                    "column '{column}' is constant in the training rows: dropped"
                ));
                continue;
            }
            numeric.push(NumericFeature {
                column: column.clone(),
                shift,
                scale: width,
                fill: mean,
            });
        }
        let c = table.categorical_columns.len();
        let mut onehot = Vec::new();
        for (j, column) in table.categorical_columns.iter().enumerate() {
            let mut seen = vec![false; table.levels[j].len()];
            for &r in rows {
                let code = table.categorical[r * c + j];
                if code != MISSING_LEVEL {
                    seen[code as usize] = true;
                }
            }
            let levels: Vec<String> = table.levels[j]
                .iter()
                .zip(&seen)
                .filter(|(_, &s)| s)
                .map(|(l, _)| l.clone())
                .collect();
            if levels.len() < 2 {
                notes.push(format!(
                    "column '{column}' has a single level in the training rows: dropped"
                ));
                continue;
            }
            onehot.push(OneHotFeature {
                column: column.clone(),
                levels,
            });
        }
        let schema = Schema {
            columns: table
                .schema
                .columns
                .iter()
                .map(|(name, kind)| {
                    let used = numeric.iter().any(|f| &f.column == name)
                        || onehot.iter().any(|f| &f.column == name);
                    let kind = match kind {
                        ColumnKind::Numeric | ColumnKind::Categorical if !used => {
                            ColumnKind::Ignored
                        }
                        k => *k,
                    };
                    (name.clone(), kind)
                })
                .collect(),
            decimal_comma: table.schema.decimal_comma.clone(),
        };
        if numeric.is_empty() && onehot.is_empty() {
            let columns = table.numeric_columns.len() + table.categorical_columns.len();
            return Err(DataError::file(
                &table.path,
                format!(
                    "nothing to learn from: all {columns} feature column(s) are constant over the {} training row(s)",
                    rows.len()
                ),
            ));
        }
        Ok((
            Self {
                schema,
                scale,
                numeric,
                onehot,
            },
            notes,
        ))
    }

    /// Width of the encoded feature vector.
    pub fn width(&self) -> usize {
        self.numeric.len() + self.onehot.iter().map(|f| f.levels.len()).sum::<usize>()
    }

    /// Names of the encoded features (`column` or `column=level`), in matrix column order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().map(|f| f.column.clone()).collect();
        for f in &self.onehot {
            names.extend(f.levels.iter().map(|l| format!("{}={l}", f.column)));
        }
        names
    }

    /// Each column the features come from, with the range of its encoded features, in
    /// matrix column order (numeric columns one feature each, then each categorical
    /// column's one-hot levels).
    pub fn feature_columns(&self) -> Vec<(String, std::ops::Range<usize>)> {
        let mut out: Vec<(String, std::ops::Range<usize>)> = self
            .numeric
            .iter()
            .enumerate()
            .map(|(i, f)| (f.column.clone(), i..i + 1))
            .collect();
        let mut start = self.numeric.len();
        for f in &self.onehot {
            out.push((f.column.clone(), start..start + f.levels.len()));
            start += f.levels.len();
        }
        out
    }

    /// Encodes `rows` of `table` (which must have every column the encoder uses).
    pub fn transform(&self, table: &RawTable, rows: &[usize]) -> Encoded {
        let p = table.numeric_columns.len();
        let c = table.categorical_columns.len();
        let numeric_src: Vec<usize> = self
            .numeric
            .iter()
            .map(|f| {
                table
                    .numeric_columns
                    .iter()
                    .position(|n| n == &f.column)
                    .expect("schema checked at read")
            })
            .collect();
        // For each one-hot column: its source column and a table-code → level-index map.
        let onehot_src: Vec<(usize, Vec<Option<usize>>)> = self
            .onehot
            .iter()
            .map(|f| {
                let j = table
                    .categorical_columns
                    .iter()
                    .position(|n| n == &f.column)
                    .expect("schema checked at read");
                let index: HashMap<&str, usize> = f
                    .levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i))
                    .collect();
                let map = table.levels[j]
                    .iter()
                    .map(|l| index.get(l.as_str()).copied())
                    .collect();
                (j, map)
            })
            .collect();
        let width = self.width();
        let mut data = vec![0f32; rows.len() * width];
        let mut unseen_levels = 0;
        for (out_row, &r) in rows.iter().enumerate() {
            let out = &mut data[out_row * width..(out_row + 1) * width];
            for (k, (f, &j)) in self.numeric.iter().zip(&numeric_src).enumerate() {
                let mut v = table.numeric[r * p + j] as f64;
                if v.is_nan() {
                    v = f.fill;
                }
                out[k] = ((v - f.shift) / f.scale) as f32;
            }
            let mut base = self.numeric.len();
            for (f, (j, map)) in self.onehot.iter().zip(&onehot_src) {
                let code = table.categorical[r * c + j];
                if code != MISSING_LEVEL {
                    match map[code as usize] {
                        Some(level) => out[base + level] = 1.0,
                        None => unseen_levels += 1,
                    }
                }
                base += f.levels.len();
            }
        }
        Encoded {
            matrix: Matrix {
                rows: rows.len(),
                cols: width,
                data,
            },
            unseen_levels,
        }
    }
}
