//! Headless training end to end: train → checkpoint (an ensemble) + scores.csv → score
//! reproduces the scores; the same seed gives the same result; eval reports trained,
//! untrained and IsolationForest figures in both protocols.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{run, sample, small_sample, stderr};

fn scores(csv_text: &str) -> HashMap<String, f64> {
    let mut lines = csv_text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let score = header.iter().position(|h| *h == "score").unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[score].parse().unwrap())
        })
        .collect()
}

/// `rescored` gives every row of `trained` the same score (to 1e-9 relative), and the
/// scores spread over many values (KDDCUP has many duplicate rows, but not that many).
fn assert_rescored_alike(trained: &HashMap<String, f64>, rescored: &HashMap<String, f64>) {
    assert_eq!(trained.len(), rescored.len());
    for (row, e) in trained {
        let r = rescored[row];
        assert!(
            (e - r).abs() <= 1e-9 * e.abs().max(1.0),
            "row {row}: trained {e}, rescored {r}"
        );
    }
    let distinct: std::collections::HashSet<u64> = trained.values().map(|e| e.to_bits()).collect();
    assert!(
        distinct.len() > 100,
        "only {} distinct scores",
        distinct.len()
    );
}

fn train(data: &Path, out: &Path, seed: &str) {
    let flags = [
        "--label",
        "attack",
        "--epochs",
        "3",
        "--batch",
        "256",
        "--seed",
        seed,
        "--members",
        "3",
    ];
    let result = common::train(data, out, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
}

#[test]
fn train_then_score_reproduces_the_ensemble_scores() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 1200);
    let out = dir.path().join("model");
    train(&data, &out, "5");
    for file in ["model.safetensors", "model.json", "scores.csv"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let written = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert!(
        written.starts_with("row,score,rank,attack\n"),
        "{written:.80}"
    );
    // The checkpoint holds the three members, each with its seed and calibration.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let members = meta["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let seeds: Vec<u64> = members
        .iter()
        .map(|m| m["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![5, 1005, 2005]);
    assert!(members.iter().all(|m| m["detector"] == "dagmm"));
    assert!(members
        .iter()
        .all(|m| m["calibration"]["spread"].as_f64().unwrap() > 0.0));
    let scored_path = dir.path().join("rescored.csv");
    let result = common::score(&out, &data, &["--out", scored_path.to_str().unwrap()]);
    assert!(result.status.success(), "{}", stderr(&result));
    let (a, b) = (
        scores(&written),
        scores(&std::fs::read_to_string(&scored_path).unwrap()),
    );
    assert_eq!(a.len(), 1200);
    assert_rescored_alike(&a, &b);
}

#[test]
fn egbad_trains_end_to_end_and_its_checkpoint_is_refused_as_dagmm() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 600);
    let out = dir.path().join("egbad");
    let flags = [
        "--label",
        "attack",
        "--detector",
        "egbad",
        "--epochs",
        "3",
        "--batch",
        "64",
        "--members",
        "2",
        "--json",
    ];
    let result = common::train(&data, &out, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
    // Progress names EGBAD's own loss components.
    let log = stderr(&result);
    let epoch: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "epoch")
        .expect("an epoch event");
    for name in ["D loss", "G/E loss", "D real", "D fake"] {
        assert!(
            epoch["losses"][name].as_f64().unwrap().is_finite(),
            "{name}"
        );
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let members = meta["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m["detector"] == "egbad"));
    // The default trains with the cycle term (README, "EGBAD's cycle term").
    assert!(members.iter().all(|m| m["model"]["cycle"] == 1.0));
    // The reloaded ensemble gives the scores training wrote.
    let written = scores(&std::fs::read_to_string(out.join("scores.csv")).unwrap());
    let scored_path = dir.path().join("rescored.csv");
    let result = common::score(
        &out,
        &data,
        &[
            "--detector",
            "egbad",
            "--out",
            scored_path.to_str().unwrap(),
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let rescored = scores(&std::fs::read_to_string(&scored_path).unwrap());
    assert_eq!(written.len(), 600);
    assert_rescored_alike(&written, &rescored);
    // Asked for DAGMM, the checkpoint is refused by name.
    let refused = common::score(&out, &data, &["--detector", "dagmm"]);
    let line = common::one_error_line(&refused);
    assert!(line.contains("holds EGBAD models, not DAGMM"), "{line}");
}

#[test]
fn egbads_kddcup_preset_is_the_papers_egbad_scored_by_the_discriminator_for_six_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 300);
    let out = dir.path().join("preset");
    let flags = [
        "--label",
        "attack",
        "--detector",
        "egbad",
        "--preset",
        "kddcup",
        "--batch",
        "64",
        "--members",
        "1",
    ];
    let result = common::train(&data, &out, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let member = &meta["members"][0];
    assert_eq!(member["model"]["alpha"], 0.0, "{member}");
    assert_eq!(member["model"]["cycle"], 0.0, "the paper's EGBAD: {member}");
    assert_eq!(member["epochs_done"], 6);
    // An explicit --alpha or --cycle still wins over the preset.
    let out = dir.path().join("explicit");
    let flags = [
        &flags[..],
        &["--alpha", "0.5", "--cycle", "0.25", "--epochs", "1"],
    ]
    .concat();
    assert!(common::train(&data, &out, &flags).status.success());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["members"][0]["model"]["alpha"], 0.5);
    assert_eq!(meta["members"][0]["model"]["cycle"], 0.25);
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
        "--members",
        "2",
        "--json",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let value: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let file = &value["files"][0];
    let runs = file["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        for key in ["precision", "recall", "f1", "auroc", "auprc"] {
            for column in ["trained", "untrained", "reference"] {
                let v = r[column][key].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "{column} {key} {v}");
            }
        }
        let ratio = r["test_anomaly_ratio"].as_f64().unwrap();
        assert!((0.15..0.25).contains(&ratio), "test anomaly ratio {ratio}");
    }
    assert_ne!(runs[0]["seed"], runs[1]["seed"]);
    assert_eq!(runs[0]["members"], 2);
    assert_eq!(runs[0]["model"]["components"], 2);
    assert!(file["summary"]["f1"]["median"].is_number());
    assert!(file["summary"]["reference_auroc"]["median"].is_number());
}

#[test]
fn unsupervised_eval_over_a_directory_reports_every_file_and_the_median() {
    let dir = tempfile::tempdir().unwrap();
    let sets = dir.path().join("sets");
    std::fs::create_dir(&sets).unwrap();
    // Two files: a cloud with a few far rows, and the same with a constant column (a note).
    for (name, extra) in [("a.csv", ""), ("b.csv", ",7")] {
        let mut text = format!("x,y{},label\n", if extra.is_empty() { "" } else { ",flat" });
        for i in 0..300 {
            let (x, y) = ((i * 37 % 101) as f64 / 101.0, (i * 53 % 97) as f64 / 97.0);
            let far = i % 50 == 0;
            let (x, y) = if far { (x + 6.0, y - 5.0) } else { (x, y) };
            text.push_str(&format!("{x},{y}{extra},{}\n", u8::from(far)));
        }
        std::fs::write(sets.join(name), text).unwrap();
    }
    let result = run(&[
        "eval",
        sets.to_str().unwrap(),
        "--label",
        "label",
        "--protocol",
        "unsupervised",
        "--runs",
        "2",
        "--members",
        "2",
        "--min-steps",
        "20",
        "--feedback",
        "5",
        "--json",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    assert!(
        err.contains("note: ") && err.contains("b.csv") && err.contains("flat"),
        "{err}"
    );
    let value: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let files = value["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        assert_eq!(f["anomaly"], "1", "the rarer label value");
        let run = &f["runs"][0];
        // Every row trains and is scored; the true ratio sets the threshold.
        assert_eq!(
            (run["train_rows"].as_u64(), run["test_rows"].as_u64()),
            (Some(300), Some(300))
        );
        assert!((run["test_anomaly_ratio"].as_f64().unwrap() - 6.0 / 300.0).abs() < 1e-12);
        // Six rows far from the cloud: the forest isolates them all.
        assert_eq!(run["reference"]["auroc"], 1.0);
        assert_eq!(run["feedback"]["marked"], 5);
    }
    let overall = &value["median_over_files"];
    assert_eq!(overall["files"], 2);
    assert!(overall["auroc"].is_number() && overall["reference_auroc"].is_number());
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

#[test]
fn eval_discovery_reports_found_at_each_budget_for_the_loop_and_both_static_rankings() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_sample(dir.path(), 400);
    let out = run(&[
        "eval",
        data.to_str().unwrap(),
        "--label",
        "attack",
        "--anomaly",
        "normal.",
        "--protocol",
        "unsupervised",
        "--members",
        "2",
        "--epochs",
        "2",
        "--runs",
        "1",
        "--feedback",
        "0",
        "--discovery",
        "5,20",
        "--fine-tune-every",
        "10",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["files"][0]["runs"][0];
    let discovery = &run["discovery"];
    for method in ["feedback", "static", "iforest"] {
        for budget in ["5", "20"] {
            let found = discovery["found"][method][budget].as_u64();
            assert!(
                found.is_some_and(|f| f <= budget.parse().unwrap()),
                "{method}@{budget}: {discovery}"
            );
        }
        assert!(
            discovery["found"][method]["5"].as_u64() <= discovery["found"][method]["20"].as_u64()
        );
    }
    assert_eq!(discovery["fine_tunes"], 2, "every 10 marks up to 20");
    let summary = &report["files"][0]["summary"]["discovery"];
    assert!(summary["feedback"]["20"]["median"].is_number(), "{summary}");
}
