//! Numerically hostile data: huge magnitudes, constant and duplicate columns, duplicate
//! rows, a single row, one feature, more components than rows, components that collapse
//! onto repeated points. Each ends in finite energies for every row or one clear error;
//! training never dies of a singular covariance.

mod common;

use std::path::Path;

use common::{stderr, write};

enum Outcome {
    /// Every row's energy, in file order.
    Scored(Vec<f64>),
    /// The single error line.
    Refused(String),
}

/// Trains on `csv` with `extra` flags and returns the energies or the error.
fn train(dir: &Path, name: &str, csv: &str, extra: &[&str]) -> Outcome {
    let path = write(dir, name, csv.as_bytes());
    let out = dir.join(format!("{name}.out"));
    let mut flags = vec!["--batch", "64"];
    if !extra.contains(&"--epochs") {
        flags.extend_from_slice(&["--epochs", "3"]);
    }
    flags.extend_from_slice(extra);
    let result = common::train(&path, &out, &flags);
    let err = stderr(&result);
    if !result.status.success() {
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        return Outcome::Refused(errors[0].to_string());
    }
    let mut reader = csv::Reader::from_path(out.join("scores.csv")).unwrap();
    let energies = reader
        .records()
        .map(|r| r.unwrap()[1].parse::<f64>().unwrap())
        .collect();
    Outcome::Scored(energies)
}

fn scored(outcome: Outcome, rows: usize, what: &str) -> Vec<f64> {
    match outcome {
        Outcome::Scored(e) => {
            assert_eq!(e.len(), rows, "{what}");
            assert!(e.iter().all(|v| v.is_finite()), "{what}: {e:?}");
            e
        }
        Outcome::Refused(line) => panic!("{what} should train: {line}"),
    }
}

fn refused(outcome: Outcome, what: &str) -> String {
    match outcome {
        Outcome::Refused(line) => line,
        Outcome::Scored(_) => panic!("{what} should be refused"),
    }
}

/// `rows` rows of `f(i)` joined under `header`.
fn table(header: &str, rows: usize, f: impl Fn(usize) -> String) -> String {
    let mut text = format!("{header}\n");
    for i in 0..rows {
        text += &f(i);
        text.push('\n');
    }
    text
}

#[test]
fn huge_and_tiny_magnitudes_train_to_finite_energies() {
    let dir = tempfile::tempdir().unwrap();
    let csv = table("big,small,mixed", 200, |i| {
        let x = (i % 17) as f64;
        format!(
            "{:e},{:e},{:e}",
            3e37 * x / 17.0,
            1e-30 * x,
            10f64.powi(i as i32 % 60 - 30)
        )
    });
    for scale in ["minmax", "zscore"] {
        scored(
            train(
                dir.path(),
                &format!("huge_{scale}.csv"),
                &csv,
                &["--scale", scale],
            ),
            200,
            scale,
        );
    }
}

#[test]
fn constant_and_duplicate_columns_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    // A constant column is dropped; a duplicated column is kept and does not break anything.
    let csv = table("a,a_again,constant,b", 150, |i| {
        format!("{},{},7,{}", i % 11, i % 11, (i * 3) % 7)
    });
    scored(
        train(dir.path(), "dup_cols.csv", &csv, &[]),
        150,
        "duplicate columns",
    );
    // Most rows identical: the mixture collapses onto that point, with a singular
    // covariance the Cholesky jitter has to absorb.
    let csv = table("a,b,c", 300, |i| {
        if i % 10 == 0 {
            format!("{},{},{}", i % 7, i % 5, i % 3)
        } else {
            "1,2,3".into()
        }
    });
    let energies = scored(
        train(
            dir.path(),
            "dup_rows.csv",
            &csv,
            &["-k", "6", "--epochs", "20"],
        ),
        300,
        "duplicate rows",
    );
    // The repeated row is the least anomalous, whatever the collapse did.
    let repeated = energies[1];
    assert!(energies
        .iter()
        .all(|&e| e >= repeated - 1e-6 * repeated.abs().max(1.0)));
    // Every row the same: nothing varies, so nothing can be learned.
    let csv = table("a,b", 50, |_| "4,5".into());
    let line = refused(
        train(dir.path(), "all_same.csv", &csv, &[]),
        "identical rows",
    );
    assert!(
        line.contains("all_same.csv") && line.contains("constant"),
        "{line}"
    );
}

#[test]
fn a_single_row_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let line = refused(
        train(dir.path(), "one_row.csv", "a,b,c\n1,2,3\n", &[]),
        "one row",
    );
    assert!(
        line.contains("one_row.csv")
            && line.contains("nothing to learn")
            && line.contains("1 training row"),
        "{line}"
    );
}

#[test]
fn one_feature_trains() {
    let dir = tempfile::tempdir().unwrap();
    let csv = table("x", 120, |i| format!("{}", (i * 7919) % 101));
    scored(
        train(dir.path(), "one_feature.csv", &csv, &[]),
        120,
        "one feature",
    );
}

#[test]
fn more_components_than_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = table("a,b", 3, |i| format!("{},{}", i, i * i));
    scored(
        train(dir.path(), "tiny.csv", &csv, &["-k", "8", "--epochs", "5"]),
        3,
        "8 components for 3 rows",
    );
}
