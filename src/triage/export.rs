//! Exporting triaged rows: the original record text plus score, rank and mark, as CSV or
//! JSON lines, written to a temporary file and renamed so a crash never leaves half a file.

use std::borrow::Cow;
use std::collections::BTreeSet;

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use super::marks::Mark;
use crate::data::{read_records, Format};
use crate::files::StagedFile;

/// Output format, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    JsonLines,
}

impl ExportFormat {
    /// `.jsonl`/`.ndjson`/`.json` give JSON lines; anything else CSV.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson" | "json") => ExportFormat::JsonLines,
            _ => ExportFormat::Csv,
        }
    }
}

/// Whether CSV text cells that a spreadsheet would run as a formula are defused. Exports
/// and score files get opened in spreadsheets; a cell like `=HYPERLINK(...)` from an
/// untrusted file must not run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CellSafety {
    /// Text starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'` (the OWASP
    /// advice); plain numbers, negatives included, stay exactly as they were.
    #[default]
    Defuse,
    /// Every cell exactly as read (`--raw-cells`).
    Raw,
}

impl CellSafety {
    /// `cell` as it is to be written to a CSV file.
    pub fn apply(self, cell: &str) -> Cow<'_, str> {
        if self == CellSafety::Raw || !runs_as_formula(cell) {
            Cow::Borrowed(cell)
        } else {
            Cow::Owned(format!("'{cell}"))
        }
    }
}

/// `true` for text a spreadsheet may evaluate: it starts (leading spaces aside) with a
/// formula trigger and is not a plain number such as `-3.5` or `+1e5`.
fn runs_as_formula(cell: &str) -> bool {
    let triggers = ['=', '+', '-', '@', '\t', '\r'];
    let starts = cell.starts_with(triggers) || cell.trim_start_matches(' ').starts_with(triggers);
    starts && !is_plain_number(cell)
}

/// Digits, sign, point and exponent only, and a finite number (`-inf` is text).
fn is_plain_number(cell: &str) -> bool {
    let t = cell.trim_matches(' ');
    t.bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && t.parse::<f64>().is_ok_and(f64::is_finite)
}

/// One row to export, in the order it is to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    /// 1-based data record number in the source file.
    pub record: u64,
    /// The row's score and rank under each detector, in the order of the export's
    /// detector names.
    pub scores: Vec<RankedScore>,
    pub mark: Option<Mark>,
    /// The columns that contribute most to the row's score, with their shares of its
    /// difference from a typical row (`why_1`, `why_1_share`, …; empty: no such columns).
    pub why: Vec<(String, f64)>,
}

/// A row's score under one detector and its 1-based rank by that score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedScore {
    pub score: f64,
    pub rank: usize,
}

/// The score and rank column names for rows scored by `detectors`: `score`, `rank` for one
/// detector; `score_dagmm`, `rank_dagmm`, `score_egbad`, … side by side.
pub fn score_columns(detectors: &[&str]) -> Vec<(String, String)> {
    match detectors {
        [_] | [] => vec![("score".into(), "rank".into())],
        many => many
            .iter()
            .map(|d| (format!("score_{d}"), format!("rank_{d}")))
            .collect(),
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Rows written.
    pub rows: usize,
    /// Added columns renamed because the data has a column of that name.
    pub notes: Vec<String>,
}

/// Writes `rows` of the CSV `data` to `out`. CSV cells go through `safety`; JSON lines
/// keep the exact text (no spreadsheet opens them, and programs reading them want the data
/// unchanged). The added score, rank and mark columns never replace a data column: a name
/// the data has is prefixed (see [`super::added_columns`]).
pub fn export(
    data: &Path,
    format: &Format,
    detectors: &[&str],
    rows: &[ExportRow],
    out: &Path,
    safety: CellSafety,
) -> Result<Exported> {
    let wanted: BTreeSet<u64> = rows.iter().map(|r| r.record).collect();
    let (header, records) = read_records(data, format, &wanted)?;
    let reasons = rows.iter().map(|r| r.why.len()).max().unwrap_or(0);
    let added: Vec<String> = score_columns(detectors)
        .into_iter()
        .flat_map(|(score, rank)| [score, rank])
        .chain(["mark".to_string()])
        .chain((1..=reasons).flat_map(|i| [format!("why_{i}"), format!("why_{i}_share")]))
        .collect();
    let (added, notes) = super::added_columns(header.iter().map(String::as_str), &added);
    let found: Vec<(&ExportRow, &csv::StringRecord)> = rows
        .iter()
        .filter_map(|row| records.get(&row.record).map(|rec| (row, rec)))
        .collect();
    StagedFile::write(out, |file| match ExportFormat::from_path(out) {
        ExportFormat::Csv => write_csv(file, &header, &added, &found, safety),
        ExportFormat::JsonLines => write_json_lines(file, &header, &added, &found),
    })?
    .commit()?;
    Ok(Exported {
        rows: found.len(),
        notes,
    })
}

/// The added cells of `row`, in the order of the added names: each detector's score and
/// rank, the mark, then the reasons (padded to `reasons`).
fn added_values(row: &ExportRow, reasons: usize) -> impl Iterator<Item = serde_json::Value> + '_ {
    // JSON has no NaN/inf: a non-finite number becomes null.
    let number =
        |v: f64| serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into);
    row.scores
        .iter()
        .flat_map(move |s| [number(s.score), s.rank.into()])
        .chain([row.mark.map(Mark::name).into()])
        .chain((0..reasons).flat_map(move |i| match row.why.get(i) {
            Some((column, share)) => [column.as_str().into(), number(rounded_share(*share))],
            None => [serde_json::Value::Null, serde_json::Value::Null],
        }))
}

/// A share to four decimals (what a reader needs; the full float is noise).
fn rounded_share(share: f64) -> f64 {
    (share * 1e4).round() / 1e4
}

fn write_csv(
    out: &mut impl Write,
    header: &[String],
    added: &[String],
    rows: &[(&ExportRow, &csv::StringRecord)],
    safety: CellSafety,
) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let names: Vec<Cow<str>> = header
        .iter()
        .map(|h| safety.apply(h))
        .chain(added.iter().map(|a| Cow::Borrowed(a.as_str())))
        .collect();
    w.write_record(names.iter().map(|n| n.as_bytes()))?;
    let reasons = (added.len() - rows.first().map_or(0, |r| r.0.scores.len() * 2 + 1)) / 2;
    for (row, record) in rows {
        let extra: Vec<String> = row
            .scores
            .iter()
            .flat_map(|s| [s.score.to_string(), s.rank.to_string()])
            .chain([row.mark.map_or("", Mark::name).to_string()])
            .chain((0..reasons).flat_map(|i| match row.why.get(i) {
                Some((column, share)) => [
                    safety.apply(column).into_owned(),
                    rounded_share(*share).to_string(),
                ],
                None => [String::new(), String::new()],
            }))
            .collect();
        let cells: Vec<Cow<str>> = record.iter().map(|c| safety.apply(c)).collect();
        let cells = cells.iter().map(|c| c.as_bytes());
        w.write_record(cells.chain(extra.iter().map(|e| e.as_bytes())))?;
    }
    w.flush()?;
    Ok(())
}

fn write_json_lines(
    out: &mut impl Write,
    header: &[String],
    added: &[String],
    rows: &[(&ExportRow, &csv::StringRecord)],
) -> Result<()> {
    for (row, record) in rows {
        let mut object = serde_json::Map::new();
        for (name, value) in header.iter().zip(record.iter()) {
            object.insert(name.clone(), value.into());
        }
        let reasons = (added.len() - (row.scores.len() * 2 + 1)) / 2;
        for (name, value) in added.iter().zip(added_values(row, reasons)) {
            object.insert(name.clone(), value);
        }
        serde_json::to_writer(&mut *out, &object)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const CSV: Format = Format::Csv { delimiter: b',' };

    #[test]
    fn csv_and_json_lines_carry_original_text_in_the_given_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        fs::write(&data, "a,b\n1.50,x\n2,\"y,z\"\n3,w\n").unwrap();
        let rows = vec![
            ExportRow {
                record: 2,
                scores: vec![RankedScore {
                    score: 9.5,
                    rank: 1,
                }],
                mark: Some(Mark::Anomaly),
                why: Vec::new(),
            },
            ExportRow {
                record: 1,
                scores: vec![RankedScore {
                    score: 3.0,
                    rank: 2,
                }],
                mark: None,
                why: Vec::new(),
            },
        ];
        let out = dir.path().join("out.csv");
        assert_eq!(
            export(&data, &CSV, &["dagmm"], &rows, &out, CellSafety::Defuse)
                .unwrap()
                .rows,
            2
        );
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "a,b,score,rank,mark\n2,\"y,z\",9.5,1,anomaly\n1.50,x,3,2,\n"
        );
        let out = dir.path().join("out.jsonl");
        export(&data, &CSV, &["dagmm"], &rows, &out, CellSafety::Defuse).unwrap();
        let lines: Vec<serde_json::Value> = fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["b"], "y,z");
        assert_eq!(lines[0]["mark"], "anomaly");
        assert_eq!(lines[1]["a"], "1.50");
        assert_eq!(lines[1]["mark"], serde_json::Value::Null);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "no temporary file left"
        );
    }

    #[test]
    fn reasons_follow_the_mark_with_their_shares_and_pad_rows_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        fs::write(&data, "a,b\n1,x\n2,y\n").unwrap();
        let row = |record, why: Vec<(String, f64)>| ExportRow {
            record,
            scores: vec![RankedScore {
                score: 1.0,
                rank: record as usize,
            }],
            mark: None,
            why,
        };
        let rows = vec![
            row(1, vec![("b".into(), 0.723_456), ("a".into(), 0.276_544)]),
            row(2, Vec::new()),
        ];
        let out = dir.path().join("out.csv");
        export(&data, &CSV, &["dagmm"], &rows, &out, CellSafety::Defuse).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "a,b,score,rank,mark,why_1,why_1_share,why_2,why_2_share\n\
             1,x,1,1,,b,0.7235,a,0.2765\n2,y,1,2,,,,,\n"
        );
        let out = dir.path().join("out.jsonl");
        export(&data, &CSV, &["dagmm"], &rows, &out, CellSafety::Defuse).unwrap();
        let lines: Vec<serde_json::Value> = fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["why_1"], "b");
        assert_eq!(lines[0]["why_2_share"], 0.2765);
        assert!(lines[1]["why_1"].is_null());
    }

    #[test]
    fn side_by_side_exports_carry_each_detectors_score_and_rank() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        fs::write(&data, "a\n1\n2\n").unwrap();
        let rows = [ExportRow {
            record: 2,
            scores: vec![
                RankedScore {
                    score: 4.5,
                    rank: 1,
                },
                RankedScore {
                    score: -0.25,
                    rank: 2,
                },
            ],
            mark: None,
            why: Vec::new(),
        }];
        let written = |name: &str| {
            let out = dir.path().join(name);
            let detectors = ["egbad", "dagmm"];
            export(&data, &CSV, &detectors, &rows, &out, CellSafety::Defuse).unwrap();
            fs::read_to_string(&out).unwrap()
        };
        assert_eq!(
            written("out.csv"),
            "a,score_egbad,rank_egbad,score_dagmm,rank_dagmm,mark\n2,4.5,1,-0.25,2,\n"
        );
        let line: serde_json::Value = serde_json::from_str(written("out.jsonl").trim()).unwrap();
        assert_eq!(line["score_dagmm"], -0.25);
        assert_eq!(line["rank_egbad"], 1);
        assert_eq!(line["a"], "2");
    }

    #[test]
    fn formula_cells_are_defused_and_numbers_kept() {
        let safe = |c| CellSafety::Defuse.apply(c).into_owned();
        for (cell, written) in [
            ("=1+2", "'=1+2"),
            ("+cmd", "'+cmd"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("  =HYPERLINK(\"http://x\")", "'  =HYPERLINK(\"http://x\")"),
            ("-inf", "'-inf"),
            ("-", "'-"),
            ("-3.5", "-3.5"),
            ("+1e5", "+1e5"),
            ("-0", "-0"),
            ("42", "42"),
            ("plain text", "plain text"),
            ("a=b", "a=b"),
        ] {
            assert_eq!(safe(cell), written, "{cell:?}");
        }
        assert_eq!(CellSafety::Raw.apply("=1+2"), "=1+2");
    }

    #[test]
    fn csv_exports_defuse_cells_unless_raw() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        fs::write(&data, "=name,x\n=cmd|' /C calc'!A0,-1.5\n").unwrap();
        let rows = [ExportRow {
            record: 1,
            scores: vec![RankedScore {
                score: -2.0,
                rank: 1,
            }],
            mark: None,
            why: Vec::new(),
        }];
        let out = dir.path().join("out.csv");
        export(&data, &CSV, &["dagmm"], &rows, &out, CellSafety::Defuse).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "'=name,x,score,rank,mark\n'=cmd|' /C calc'!A0,-1.5,-2,1,\n"
        );
        export(&data, &CSV, &["dagmm"], &rows, &out, CellSafety::Raw).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "=name,x,score,rank,mark\n=cmd|' /C calc'!A0,-1.5,-2,1,\n"
        );
    }
}
