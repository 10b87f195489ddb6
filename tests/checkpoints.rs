//! Damaged or mismatched checkpoints end in one clear error line, never a panic or a
//! silently wrong score: truncated weights or JSON, another format version, weights from
//! another checkpoint, data with other columns.

mod common;

use std::path::{Path, PathBuf};

use common::{one_error_line, score, small_sample, stderr, train, write};

/// Trains a one-epoch model on the first 300 sample rows into `dir/name`.
fn trained(dir: &Path, name: &str, seed: &str) -> PathBuf {
    let data = small_sample(dir, 300);
    let out = dir.join(name);
    let flags = [
        "--label", "attack", "--epochs", "1", "--batch", "64", "--seed", seed,
    ];
    let result = train(&data, &out, &flags);
    assert!(result.status.success(), "{}", stderr(&result));
    out
}

/// Scores `data` with `model` and returns the one error line.
fn score_error(model: &Path, data: &Path) -> String {
    one_error_line(&score(model, data, &[]))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn damaged_and_mismatched_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path(), "model", "1");
    let data = dir.path().join("small.csv");
    // The intact checkpoint scores.
    let ok = score(&model, &data, &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let variant = |name: &str, change: &dyn Fn(&Path)| {
        let copy = dir.path().join(name);
        copy_dir(&model, &copy);
        change(&copy);
        score_error(&copy, &data)
    };
    let cut = |path: PathBuf| {
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    };

    let line = variant("cut_weights", &|d| cut(d.join("model.safetensors")));
    assert!(
        line.contains("model.safetensors") && line.contains("does not match"),
        "{line}"
    );
    let line = variant("cut_json", &|d| cut(d.join("model.json")));
    assert!(
        line.contains("model.json") && line.contains("truncated"),
        "{line}"
    );
    let line = variant("old_format", &|d| {
        let path = d.join("model.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let old = text.replace("dagmm-tui-checkpoint/4", "dagmm-tui-checkpoint/1");
        std::fs::write(&path, old).unwrap();
    });
    assert!(
        line.contains("format 'dagmm-tui-checkpoint/1'")
            && line.contains("reads 'dagmm-tui-checkpoint/4'"),
        "{line}"
    );
    // Weights of another training run with the same architecture: same shapes, so only
    // the fingerprint tells them apart.
    let other = trained(dir.path(), "other", "2");
    let line = variant("swapped", &|d| {
        std::fs::copy(other.join("model.safetensors"), d.join("model.safetensors")).unwrap();
    });
    assert!(line.contains("does not match"), "{line}");
    let line = variant("no_dir", &|d| {
        std::fs::remove_file(d.join("model.json")).unwrap()
    });
    assert!(line.contains("not a checkpoint directory"), "{line}");

    // Data with other columns: one the model needs is missing, or holds text.
    let text = std::fs::read_to_string(&data).unwrap();
    let without: String = text
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string() + "\n")
        .collect();
    let missing = write(dir.path(), "no_duration.csv", without.as_bytes());
    let line = score_error(&model, &missing);
    assert!(
        line.contains("no_duration.csv") && line.contains("trained with column 'duration'"),
        "{line}"
    );
    let texty: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 5 {
                format!("fast{}\n", &l[l.find(',').unwrap()..])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let texty = write(dir.path(), "texty.csv", texty.as_bytes());
    let line = score_error(&model, &texty);
    assert!(
        line.contains("texty.csv:6") && line.contains("column 'duration'"),
        "{line}"
    );
}
