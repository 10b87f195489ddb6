//! "Nothing lost, nothing hung": every case of the report that outputs destroyed data or
//! inputs hung or exploded, reproduced with the real binary (`--members 1 --epochs 1`).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, score, stderr, train, write};

/// The report's `good.csv`: 300 rows of `a,b,c,label`, every 20th labelled `bad`.
fn good_csv(dir: &Path, name: &str) -> PathBuf {
    let mut text = String::from("a,b,c,label\n");
    for i in 0..300u32 {
        let a = f64::from((i * 37) % 101) / 100.0;
        let b = f64::from((i * 53) % 97) / 48.5 - 1.0;
        let c = ["x", "y", "z"][(i % 3) as usize];
        let label = if i % 20 == 0 { "bad" } else { "ok" };
        text += &format!("{a:.4},{b:.4},{c},{label}\n");
    }
    write(dir, name, text.as_bytes())
}

const QUICK: [&str; 6] = ["--label", "label", "--members", "1", "--epochs", "1"];

/// A checkpoint trained on `good.csv` in `dir/m`.
fn model(dir: &Path) -> PathBuf {
    let data = good_csv(dir, "good.csv");
    let out = dir.join("m");
    let trained = train(&data, &out, &QUICK);
    assert!(trained.status.success(), "{}", stderr(&trained));
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn score_out_onto_its_input_or_a_link_to_it_is_refused_and_the_input_survives() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let input = good_csv(dir.path(), "in.csv");
    let before = fs::read(&input).unwrap();
    let symlink = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&input, &symlink).unwrap();
    let hard = dir.path().join("hard.csv");
    fs::hard_link(&input, &hard).unwrap();
    for out in [&input, &symlink, &hard] {
        let scored = score(&model, &input, &["--out", path(out)]);
        let err = common::one_error_line(&scored);
        assert!(err.contains("is the input file"), "{err}");
        assert_eq!(
            fs::read(&input).unwrap(),
            before,
            "{out:?} replaced the input"
        );
    }
    // Scoring through the link, onto the file it points to, is the same file too.
    let scored = score(&model, &symlink, &["--out", path(&input)]);
    assert!(!scored.status.success());
    assert_eq!(fs::read(&input).unwrap(), before);
}

#[test]
fn train_refuses_to_write_scores_over_its_input_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    fs::create_dir(&out).unwrap();
    let data = good_csv(&out, "scores.csv");
    let before = fs::read(&data).unwrap();
    let trained = train(&data, &out, &QUICK);
    let err = common::one_error_line(&trained);
    assert!(err.contains("is the input file"), "{err}");
    assert_eq!(fs::read(&data).unwrap(), before);
    assert!(!out.join("model.json").exists(), "refused before training");
}

#[test]
fn a_score_failing_half_way_leaves_the_earlier_output_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let good = dir.path().join("good.csv");
    let prev = dir.path().join("prev.csv");
    let first = score(&model, &good, &["--out", path(&prev)]);
    assert!(first.status.success(), "{}", stderr(&first));
    let earlier = fs::read(&prev).unwrap();
    // 20,000 rows with a text cell at line 15,001: the failure comes after several chunks.
    let mut text = String::from("a,b,c,label\n");
    for i in 0..20_000u32 {
        let a = if i == 14_999 {
            "oops".to_string()
        } else {
            format!("{:.3}", f64::from(i % 100) / 100.0)
        };
        text += &format!("{a},0.5,x,ok\n");
    }
    let bad = write(dir.path(), "bad.csv", text.as_bytes());
    let failed = score(&model, &bad, &["--out", path(&prev)]);
    let err = common::one_error_line(&failed);
    assert!(
        err.contains("bad.csv:15001") && err.contains("oops"),
        "{err}"
    );
    assert_eq!(fs::read(&prev).unwrap(), earlier);
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn data_columns_named_like_the_added_ones_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("score,rank,mark,row,x,label\n");
    for i in 0..300u32 {
        let label = if i % 20 == 0 { "bad" } else { "ok" };
        text += &format!(
            "{},{},m{},{},{:.3},{label}\n",
            i % 7,
            i % 11,
            i % 3,
            i,
            f64::from(i % 13) / 13.0
        );
    }
    let data = write(dir.path(), "named.csv", text.as_bytes());
    // Exports (the workbench's `e`) in both formats.
    let rows = [dagmm_tui::triage::ExportRow {
        record: 2,
        scores: vec![dagmm_tui::triage::RankedScore {
            score: 7.5,
            rank: 1,
        }],
        mark: Some(dagmm_tui::triage::Mark::Anomaly),
        why: Vec::new(),
    }];
    let export = |name: &str| {
        let out = dir.path().join(name);
        let safety = dagmm_tui::triage::CellSafety::Defuse;
        let done = dagmm_tui::triage::export(
            &data,
            &dagmm_tui::data::Format::Csv { delimiter: b',' },
            &["dagmm"],
            &rows,
            &out,
            safety,
        )
        .unwrap();
        assert_eq!(done.rows, 1);
        assert!(
            done.notes.iter().any(|n| n.contains("'dagmm_score'")),
            "{:?}",
            done.notes
        );
        fs::read_to_string(out).unwrap()
    };
    let csv = export("out.csv");
    assert_eq!(
        csv.lines().next().unwrap(),
        "score,rank,mark,row,x,label,dagmm_score,dagmm_rank,dagmm_mark"
    );
    assert_eq!(
        csv.lines().nth(1).unwrap(),
        "1,1,m1,1,0.077,ok,7.5,1,anomaly"
    );
    let line: serde_json::Value = serde_json::from_str(export("out.jsonl").trim()).unwrap();
    for (key, value) in [
        ("score", "1"),
        ("rank", "1"),
        ("mark", "m1"),
        ("row", "1"),
        ("x", "0.077"),
    ] {
        assert_eq!(line[key], value, "data column {key} keeps its exact text");
    }
    assert_eq!(line["dagmm_score"], 7.5);
    assert_eq!(line["dagmm_mark"], "anomaly");
    // `train --label rank` writes row, score, the added rank and the label's own.
    let out = dir.path().join("m");
    let trained = train(
        &data,
        &out,
        &["--label", "rank", "--members", "1", "--epochs", "1"],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    assert!(
        stderr(&trained).contains("named 'dagmm_rank'"),
        "{}",
        stderr(&trained)
    );
    let scores = fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scores.lines().next().unwrap(), "row,score,dagmm_rank,rank");
    assert!(
        scores.lines().nth(1).unwrap().ends_with(",0"),
        "the label: row 1's rank column"
    );
}

#[test]
fn eval_over_a_directory_reports_the_good_files_and_names_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let sets = dir.path().join("sets");
    fs::create_dir(&sets).unwrap();
    good_csv(&sets, "a.csv");
    good_csv(&sets, "c.csv");
    let gz = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&fs::read(sets.join("a.csv")).unwrap())
            .unwrap();
        enc.finish().unwrap()
    };
    write(&sets, "b.csv.gz", &gz[..gz.len() / 2]);
    let flags = [
        "--protocol",
        "unsupervised",
        "--runs",
        "1",
        "--feedback",
        "0",
        "--json",
    ];
    let mut args = vec!["eval", path(&sets)];
    args.extend(QUICK);
    args.extend(flags);
    let out = run(&args);
    assert!(
        !out.status.success(),
        "some files failed: the exit status says so"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let measured: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["data"].as_str().unwrap())
        .collect();
    assert_eq!(measured.len(), 2, "{measured:?}");
    assert!(measured
        .iter()
        .all(|f| f.ends_with("a.csv") || f.ends_with("c.csv")));
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["data"].as_str().unwrap().ends_with("b.csv.gz"));
    assert!(
        failed[0]["error"].as_str().unwrap().contains("deflate"),
        "{failed:?}"
    );
    assert!(
        stderr(&out).contains("1 of 3 files could not be measured"),
        "{}",
        stderr(&out)
    );
    // The table form prints the finished files and the failed one too.
    args.pop();
    let out = run(&args);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("median over 2 files"), "{table}");
    assert!(table.contains("b.csv.gz: FAILED"), "{table}");
}

/// Runs `script` with bash to its end, failing the test if it takes more than `limit`.
fn bash_within(script: &str, limit: Duration) -> std::process::Output {
    let child = Command::new("bash")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_within(child, limit)
}

/// Runs `child` to its end, failing the test if it takes more than `limit`.
fn finish_within(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn fifo_process_substitution_and_standard_input_are_read_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let good = dir.path().join("good.csv");
    // A FIFO fed by a writer: train reads it once, passes over the copy.
    let fifo = dir.path().join("in.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let feeder = {
        let (fifo, good) = (fifo.clone(), good.clone());
        std::thread::spawn(move || {
            let mut w = fs::OpenOptions::new().write(true).open(fifo).unwrap();
            w.write_all(&fs::read(good).unwrap()).unwrap();
        })
    };
    let mut args = vec!["train".to_string(), path(&fifo).into(), "--out".into()];
    args.push(path(&dir.path().join("mf")).into());
    args.extend(QUICK.map(String::from));
    let child = Command::new(env!("CARGO_BIN_EXE_dagmm-tui"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let trained = finish_within(child, Duration::from_secs(20));
    feeder.join().unwrap();
    assert!(trained.status.success(), "{}", stderr(&trained));
    assert!(
        stderr(&trained).contains("copied to a temporary file"),
        "{}",
        stderr(&trained)
    );
    let expected = fs::read_to_string(dir.path().join("m/scores.csv")).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("mf/scores.csv")).unwrap(),
        expected
    );
    // Process substitution (a /dev/fd pipe) through bash.
    let script = format!(
        "exec {} score --model {} <(cat {})",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        path(&model),
        path(&good)
    );
    let piped = bash_within(&script, Duration::from_secs(20));
    assert!(piped.status.success(), "{}", stderr(&piped));
    let by_file = score(&model, &good, &[]);
    assert_eq!(piped.stdout, by_file.stdout);
    // `-` is standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dagmm-tui"))
        .args(["score", "--model", path(&model), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fs::read(&good).unwrap())
        .unwrap();
    let stdin = finish_within(child, Duration::from_secs(20));
    assert!(stdin.status.success(), "{}", stderr(&stdin));
    assert_eq!(stdin.stdout, by_file.stdout);
    assert!(
        stderr(&stdin).contains("scored 300 rows"),
        "{}",
        stderr(&stdin)
    );
    // `/dev/stdin` on a pipe is the same one-pass input.
    let script = format!(
        "cat {} | exec {} score --model {} /dev/stdin",
        path(&good),
        env!("CARGO_BIN_EXE_dagmm-tui"),
        path(&model)
    );
    let dev_stdin = bash_within(&script, Duration::from_secs(20));
    assert!(dev_stdin.status.success(), "{}", stderr(&dev_stdin));
    assert_eq!(dev_stdin.stdout, by_file.stdout);
}

/// Runs the binary with `args` and returns its output and peak resident memory in bytes.
// The child is reaped by wait4 (which also gives its peak memory), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measuring_memory(args: &[&str]) -> (std::process::Output, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_dagmm-tui"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr_pipe = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut text).unwrap();
        text
    });
    let mut status = 0;
    // SAFETY: plain FFI call on our own child's pid with valid out-pointers.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid);
        usage
    };
    let output = std::process::Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: Vec::new(),
        stderr: reader.join().unwrap(),
    };
    (output, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn an_id_column_on_50000_rows_is_dropped_by_name_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,a,b,label\n");
    for i in 0..50_000u32 {
        let label = if i % 20 == 0 { "bad" } else { "ok" };
        text += &format!(
            "u{i:08x},{:.3},{:.3},{label}\n",
            f64::from(i % 97) / 97.0,
            f64::from(i % 89) / 89.0
        );
    }
    let data = write(dir.path(), "ids.csv", text.as_bytes());
    let out = dir.path().join("m");
    let mut args = vec!["train", path(&data), "--out", path(&out)];
    args.extend(QUICK);
    let (trained, peak) = run_measuring_memory(&args);
    let err = stderr(&trained);
    assert!(trained.status.success(), "{err}");
    assert!(
        err.contains("column 'id' dropped") && err.contains("--ignore id"),
        "{err}"
    );
    eprintln!("peak RSS {} MB", peak >> 20);
    assert!(peak < 500 << 20, "peak RSS {} MB", peak >> 20);
    // Forced as categorical it is refused by name (too many levels to encode).
    let forced = train(
        &data,
        &dir.path().join("m2"),
        &["--label", "label", "--categorical", "id"],
    );
    let err = common::one_error_line(&forced);
    assert!(err.contains("column 'id' (--categorical)"), "{err}");
}

#[test]
fn numbers_with_decimal_commas_are_read_as_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a;b;c;label\n");
    for i in 0..2_000u32 {
        let label = if i % 20 == 0 { "bad" } else { "ok" };
        text += &format!(
            "{},{:03};-{},5;{};{label}\n",
            i % 10,
            i % 1000,
            i % 7,
            ["x", "y"][(i % 2) as usize]
        );
    }
    let data = write(dir.path(), "semi.csv", text.as_bytes());
    let out = dir.path().join("m");
    let trained = train(&data, &out, &QUICK);
    let err = stderr(&trained);
    assert!(trained.status.success(), "{err}");
    assert!(
        err.contains("column 'a' holds numbers written with a decimal comma"),
        "{err}"
    );
    assert!(err.contains("column 'b' holds numbers"), "{err}");
    assert!(
        err.contains("2000 rows × 4 features"),
        "a, b, and c's two levels: {err}"
    );
    // The checkpoint reads them the same way.
    let scored = score(&out, &data, &[]);
    assert!(scored.status.success(), "{}", stderr(&scored));
    // In a comma-separated file a quoted "1,5" is only pointed out (it could be 1,500).
    let quoted = write(
        dir.path(),
        "q.csv",
        b"a,b\n\"1,5\",1\n\"2,5\",2\n\"3,5\",1\n",
    );
    let trained = train(
        &quoted,
        &dir.path().join("q"),
        &["--members", "1", "--epochs", "1"],
    );
    assert!(
        stderr(&trained).contains("looks like numbers written with a decimal comma"),
        "{}",
        stderr(&trained)
    );
}

#[test]
fn score_refuses_training_flags_and_honours_missing() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let good = dir.path().join("good.csv");
    for flags in [
        &["--scale", "zscore"][..],
        &["--ignore", "a"],
        &["--categorical", "a"],
        &["--hidden", "4"],
        &["--members", "2"],
        &["--epochs", "3"],
    ] {
        let refused = score(&model, &good, flags);
        assert!(!refused.status.success(), "{flags:?} accepted");
        assert!(
            stderr(&refused).contains("unexpected argument"),
            "{}",
            stderr(&refused)
        );
    }
    let missing = write(
        dir.path(),
        "missing.csv",
        b"a,b,c,label\n0.5,,x,ok\n0.25,0.5,y,ok\n0.75,0.1,NA,bad\n",
    );
    let refused = score(&model, &missing, &[]);
    let err = common::one_error_line(&refused);
    assert!(err.contains("missing.csv:2: column 'b'"), "{err}");
    let mean = score(&model, &missing, &["--missing", "mean"]);
    assert!(mean.status.success(), "{}", stderr(&mean));
    assert_eq!(String::from_utf8_lossy(&mean.stdout).lines().count(), 4);
    let dropped = score(&model, &missing, &["--missing", "drop"]);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert_eq!(String::from_utf8_lossy(&dropped.stdout).lines().count(), 2);
    assert!(
        stderr(&dropped).contains("scored 1 rows (dropped 2 of 3 rows with missing values"),
        "{}",
        stderr(&dropped)
    );
}

#[test]
fn keymap_theme_and_settings_are_checked_before_the_terminal_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let data = good_csv(dir.path(), "good.csv");
    let state = dir.path().join("state");
    let workbench = |extra: &[&str], term: &str| {
        let mut args = vec![path(&data), "--state-dir", path(&state)];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_dagmm-tui"))
            .args(&args)
            .env("TERM", term)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let missing = workbench(&["--keymap", "nonexist.toml"], "xterm");
    assert!(common::one_error_line(&missing).contains("--keymap nonexist.toml: no such file"));
    let theme = workbench(&["--theme", "nonexist.toml"], "xterm");
    assert!(common::one_error_line(&theme).contains("no theme 'nonexist.toml'"));
    let no_quit = write(
        dir.path(),
        "k.toml",
        b"[normal]\nq = \"none\"\nctrl-c = \"none\"\n",
    );
    let refused = workbench(&["--keymap", path(&no_quit)], "xterm");
    assert!(
        stderr(&refused).contains("no key is bound to Quit"),
        "{}",
        stderr(&refused)
    );
    // A TOML error keeps its lines (its caret line under the bad spot), not "\x0a".
    let broken = write(dir.path(), "b.toml", b"[normal\nq = \"Quit\"\n");
    let toml = workbench(&["--keymap", path(&broken)], "xterm");
    let err = stderr(&toml);
    assert!(
        !toml.status.success() && err.lines().count() > 1 && !err.contains("\\x0a"),
        "{err}"
    );
    let dumb = workbench(&[], "dumb");
    assert!(common::one_error_line(&dumb).contains("TERM=dumb"));
    let config = workbench(&["--config", "nonexist.toml"], "xterm");
    assert!(common::one_error_line(&config).contains("nonexist.toml"));
    // Every numeric setting is a finite number in its range.
    for (flag, value) in [
        ("--lambda-cov", "nan"),
        ("--lambda-energy", "1e38"),
        ("--lr", "inf"),
        ("--dropout", "1"),
        ("--cov-eps", "-1"),
        ("--alpha", "2"),
        ("--cycle", "-1"),
    ] {
        let setting = format!("{flag}={value}");
        let out = train(
            &data,
            &dir.path().join("x"),
            &["--label", "label", &setting],
        );
        let err = common::one_error_line(&out);
        assert!(err.contains(flag) && err.contains("finite number"), "{err}");
        assert!(!dir.path().join("x/model.json").exists());
    }
}
