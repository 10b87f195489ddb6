//! Scoring on Spark: `examples/spark_pipe.py` scores a Parquet file through `RDD.pipe` in
//! local mode, three partitions, one `dagmm-tui score` process each; its scores must equal
//! `dagmm-tui score` on the same file, row for row, to the last digit. Needs Java and
//! `pyspark` (`.ci/run` installs them); `DAGMM_TUI_SKIP_SPARK=1` skips it, saying so.

mod common;

use std::path::Path;
use std::process::Command;

use common::{score, stderr, train};

#[test]
fn spark_pipe_scores_equal_the_cli_scores() {
    if std::env::var("DAGMM_TUI_SKIP_SPARK").as_deref() == Ok("1") {
        eprintln!("skipped: DAGMM_TUI_SKIP_SPARK=1 (the Spark example was not run)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("sample_data/conn.parquet");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let trained = train(&data, &model, &["--epochs", "2", "--members", "2"]);
    assert!(trained.status.success(), "{}", stderr(&trained));

    let out = dir.path().join("spark_scores.txt");
    let spark = Command::new("python3")
        .arg(root.join("examples/spark_pipe.py"))
        .args([env!("CARGO_BIN_EXE_dagmm-tui"), model.to_str().unwrap()])
        .args([data.to_str().unwrap(), out.to_str().unwrap()])
        .output()
        .expect("running python3 (CI installs it with pyspark; DAGMM_TUI_SKIP_SPARK=1 skips)");
    assert!(
        spark.status.success(),
        "the Spark example failed:\n{}",
        stderr(&spark)
    );

    let direct = score(&model, &data, &["--no-header"]);
    assert!(direct.status.success(), "{}", stderr(&direct));
    let direct: Vec<String> = String::from_utf8_lossy(&direct.stdout)
        .lines()
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    let piped: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(direct.len(), 4000);
    assert_eq!(piped.len(), direct.len(), "one score per row");
    let differing = direct.iter().zip(&piped).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "rows scored differently through Spark");
}
