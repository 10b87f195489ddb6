//! Headless training end to end: train → checkpoint + scores.csv → score reproduces the
//! energies; the same seed gives the same result; eval reports trained and untrained figures.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{run, sample, small_sample, stderr};

fn energies(csv_text: &str) -> HashMap<String, f64> {
    let mut lines = csv_text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let energy = header.iter().position(|h| *h == "energy").unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[energy].parse().unwrap())
        })
        .collect()
}

fn train(data: &Path, out: &Path, seed: &str) {
    let flags = [
        "--label", "attack", "--epochs", "3", "--batch", "256", "--seed", seed,
    ];
    let result = common::train(data, out, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
}

#[test]
fn train_then_score_reproduces_the_training_energies() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 1200);
    let out = dir.path().join("model");
    train(&data, &out, "5");
    for file in ["model.safetensors", "model.json", "scores.csv"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let written = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert!(
        written.starts_with("row,energy,rank,attack\n"),
        "{written:.80}"
    );
    let scored_path = dir.path().join("rescored.csv");
    let result = common::score(&out, &data, &["--out", scored_path.to_str().unwrap()]);
    assert!(result.status.success(), "{}", stderr(&result));
    let (a, b) = (
        energies(&written),
        energies(&std::fs::read_to_string(&scored_path).unwrap()),
    );
    assert_eq!(a.len(), 1200);
    assert_eq!(a.len(), b.len());
    for (row, e) in &a {
        let r = b[row];
        assert!(
            (e - r).abs() <= 1e-9 * e.abs().max(1.0),
            "row {row}: trained {e}, rescored {r}"
        );
    }
    // KDDCUP has many duplicate rows, but the energies still spread over many values.
    let distinct: std::collections::HashSet<u64> = a.values().map(|e| e.to_bits()).collect();
    assert!(
        distinct.len() > 100,
        "only {} distinct energies",
        distinct.len()
    );
}

#[test]
fn same_seed_same_scores_other_seed_other_scores() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 600);
    let runs: Vec<String> = ["1", "1", "2"]
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            let out = dir.path().join(format!("m{i}"));
            train(&data, &out, seed);
            std::fs::read_to_string(out.join("scores.csv")).unwrap()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0], runs[2]);
}

#[test]
fn eval_reports_trained_and_untrained_figures_as_json() {
    let result = run(&[
        "eval",
        sample().to_str().unwrap(),
        "--label",
        "attack",
        "--anomaly",
        "normal.",
        "--runs",
        "2",
        "--epochs",
        "2",
        "--batch",
        "256",
        "--restarts",
        "2",
        "--json",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let value: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let runs = value["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        for key in ["precision", "recall", "f1", "auroc", "auprc"] {
            let trained = r["trained"][key].as_f64().unwrap();
            let untrained = r["untrained"][key].as_f64().unwrap();
            assert!(
                (0.0..=1.0).contains(&trained) && (0.0..=1.0).contains(&untrained),
                "{key}"
            );
        }
        let ratio = r["test_anomaly_ratio"].as_f64().unwrap();
        assert!((0.15..0.25).contains(&ratio), "test anomaly ratio {ratio}");
    }
    assert_ne!(runs[0]["seed"], runs[1]["seed"]);
    assert_eq!(runs[0]["restarts"], 2);
    assert_eq!(runs[0]["model"]["components"], 4);
    assert!(value["summary"]["f1"]["median"].is_number());
}

#[test]
fn score_rejects_a_file_without_the_trained_columns() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 300);
    let out = dir.path().join("model");
    train(&data, &out, "0");
    let other = common::write(dir.path(), "other.csv", b"a,b\n1,2\n");
    let result = common::score(&out, &other, &[]);
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("other.csv") && err.contains("'duration'"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["train", "--help"],
        vec!["score", "--help"],
        vec!["eval", "--help"],
    ] {
        let result = run(&args);
        assert!(result.status.success());
        assert!(String::from_utf8_lossy(&result.stdout).contains("Usage"));
    }
}

#[test]
fn formula_labels_are_defused_in_score_files_unless_raw() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y,@tag\n");
    for i in 0..64 {
        let label = if i % 8 == 0 {
            "=HYPERLINK(\"http://x\")"
        } else {
            "-5"
        };
        text += &format!("{},{},{label}\n", i % 9, (i * 7) % 11);
    }
    let data = common::write(dir.path(), "formulas.csv", text.as_bytes());
    let scores = |extra: &[&str]| {
        let out = dir.path().join("model");
        let flags = [
            &["--label", "@tag", "--epochs", "1", "--batch", "32"],
            extra,
        ]
        .concat();
        let result = common::train(&data, &out, &flags);
        assert!(result.status.success(), "{}", stderr(&result));
        let mut reader = csv::Reader::from_path(out.join("scores.csv")).unwrap();
        let header = reader.headers().unwrap().clone();
        let labels: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[3].to_string())
            .collect();
        (header[3].to_string(), labels)
    };
    let (column, labels) = scores(&[]);
    assert_eq!(column, "'@tag");
    assert_eq!(labels[0], "'=HYPERLINK(\"http://x\")");
    assert_eq!(labels[1], "-5", "plain numbers stay as they were");
    let (column, labels) = scores(&["--raw-cells"]);
    assert_eq!(column, "@tag");
    assert_eq!(labels[0], "=HYPERLINK(\"http://x\")");
}
