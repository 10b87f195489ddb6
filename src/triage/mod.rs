//! Triage: ranking and writing scores (rank 1 is the highest score, the most anomalous
//! row), the marks a person gives rows and their journal, and exports.

pub mod export;
pub mod marks;

pub use export::{export, score_columns, CellSafety, ExportFormat, ExportRow, RankedScore};
pub use marks::{check_source, data_state_dir, default_state_dir, Journal, Mark, Marks};

use std::io::Write;

use anyhow::Result;

use crate::data::{Labels, RowRef};

/// 1-based rank of every row by descending score (ties keep file order).
pub fn ranks(scores: &[f64]) -> Vec<usize> {
    let mut rank = vec![0; scores.len()];
    for (position, &row) in crate::train::ranking(scores).iter().enumerate() {
        rank[row as usize] = position + 1;
    }
    rank
}

/// Writes `row,score,rank[,label]` for every row, in file order; label text goes
/// through `safety`.
pub fn write_scores(
    out: impl Write,
    rows: &[RowRef],
    scores: &[f64],
    labels: Option<&Labels>,
    safety: CellSafety,
) -> Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    let mut header = vec!["row".into(), "score".into(), "rank".into()];
    if let Some(labels) = labels {
        header.push(safety.apply(&labels.column));
    }
    writer.write_record(header.iter().map(|h| h.as_bytes()))?;
    let rank = ranks(scores);
    for (i, row) in rows.iter().enumerate() {
        let mut record = vec![
            row.number.to_string(),
            scores[i].to_string(),
            rank[i].to_string(),
        ];
        if let Some(labels) = labels {
            record.push(safety.apply(labels.name(i)).into_owned());
        }
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_score_gets_rank_one_and_ties_keep_file_order() {
        assert_eq!(ranks(&[0.5, 3.0, 0.5, -1.0]), vec![2, 1, 3, 4]);
    }
}
