//! Triage: ranking and writing scores (rank 1 is the highest score, the most anomalous
//! row), the marks a person gives rows and their journal, and exports.

pub mod export;
pub mod marks;

pub use export::{
    export, score_columns, CellSafety, ExportFormat, ExportRow, Exported, RankedScore,
};
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

/// Prefix given to a column an output adds when the data already has a column of that name.
pub const ADDED_PREFIX: &str = "dagmm_";

/// Names for the columns an output adds (`wanted`) beside the data's own (`taken`): a name
/// the data already uses gets [`ADDED_PREFIX`] (repeated until free), so no data column is
/// overwritten or doubled. Returns the names and a note for each one renamed.
pub fn added_columns<'a>(
    taken: impl IntoIterator<Item = &'a str>,
    wanted: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut used: std::collections::HashSet<String> = taken.into_iter().map(String::from).collect();
    let mut notes = Vec::new();
    let names = wanted
        .iter()
        .map(|name| {
            let mut free = name.clone();
            while used.contains(&free) {
                free = format!("{ADDED_PREFIX}{free}");
            }
            if &free != name {
                notes.push(format!(
                    "the data has a column '{name}': the added {name} column is named '{free}'"
                ));
            }
            used.insert(free.clone());
            free
        })
        .collect();
    (names, notes)
}

/// The header of a score file: the added `row`, `score`, `rank` names (renamed when the
/// label column has one of them) and the label column's own name.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoresHeader {
    pub row: String,
    pub score: String,
    pub rank: String,
    pub label: Option<String>,
    notes: Vec<String>,
}

impl ScoresHeader {
    /// What was renamed, for the user.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// The header of a score file for rows with `labels`.
pub fn scores_header(labels: Option<&Labels>) -> ScoresHeader {
    let label = labels.map(|l| l.column.clone());
    let wanted = ["row", "score", "rank"].map(String::from);
    let (names, notes) = added_columns(label.as_deref(), &wanted);
    let [row, score, rank]: [String; 3] = names.try_into().expect("three names asked for");
    ScoresHeader {
        row,
        score,
        rank,
        label,
        notes,
    }
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
    let names = scores_header(labels);
    let mut header = vec![names.row.into(), names.score.into(), names.rank.into()];
    if let Some(label) = &names.label {
        header.push(safety.apply(label));
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

    #[test]
    fn added_columns_never_take_a_data_columns_name() {
        let wanted = ["score", "rank", "mark"].map(String::from);
        let (names, notes) = added_columns(["score", "dagmm_score", "x"], &wanted);
        assert_eq!(names, ["dagmm_dagmm_score", "rank", "mark"]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("'dagmm_dagmm_score'"), "{notes:?}");
        let (names, notes) = added_columns(["a"], &wanted);
        assert_eq!((names.as_slice(), notes.len()), (&wanted[..], 0));
    }
}
