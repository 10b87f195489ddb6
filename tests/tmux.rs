//! End to end in a real terminal: the workbench runs in tmux on the shipped sample; the
//! test watches the epoch counter and the loss change, inspects a row, marks it, exports,
//! quits, relaunches, finds the mark again and checks the exported file.
//!
//! Needs tmux (`.ci/run` installs it). Without tmux the test is skipped locally but fails
//! under CI, so it can never pass by not running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

/// A private tmux server, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str, cwd: &Path) -> Tmux {
        let socket = format!("dagmm-test-{}-{}", std::process::id(), rand_suffix());
        let tmux = Tmux { socket };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-c",
        ])
        .arg(cwd)
        .arg(command)
        .status()
        .expect("tmux new-session");
        tmux.run(&["set-option", "-g", "remain-on-exit", "on"])
            .status()
            .unwrap();
        tmux
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket).args(args);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .run(&["capture-pane", "-p"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen and its scrollback, wrapped lines joined: what was printed after exit.
    fn history(&self) -> String {
        let out = self
            .run(&["capture-pane", "-p", "-J", "-S", "-200"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.run(&args).status().expect("send-keys");
    }

    fn dead(&self) -> bool {
        let out = self
            .run(&["display-message", "-p", "#{pane_dead}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Polls the screen until `want` holds; panics with the last screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if want(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Quits through the quit question (`q`, then `y`) and waits for the exit.
    fn quit_confirmed(&self) {
        self.keys(&["q"]);
        self.wait_for("the quit question", 10, |s| s.contains("Quit?"));
        self.keys(&["y"]);
        self.wait_dead(20);
    }

    fn wait_dead(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.dead() {
            assert!(
                Instant::now() < deadline,
                "the workbench did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]).status();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}

/// A temporary directory and a state directory in it, or `None` (skipped) without tmux
/// outside CI.
fn tmux_and_state_dir() -> Option<(tempfile::TempDir, PathBuf)> {
    if !have_tmux() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        eprintln!("skipped: tmux is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    Some((dir, state))
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The `N` of the first `prefix N` on screen.
fn number_after(screen: &str, prefix: &str) -> Option<u64> {
    let start = screen.find(prefix)? + prefix.len();
    let digits: String = screen[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The text after `label` up to the next double space: the latest value of a loss series.
fn recon_value(screen: &str) -> Option<String> {
    let line = screen.lines().find(|l| l.contains("│recon"))?;
    line.split_whitespace().nth(1).map(str::to_string)
}

fn workbench_command(state: &Path) -> String {
    format!(
        "exec {} {} --label attack --anomaly normal. --epochs 3000 --batch 256 --rescore-every 5 --state-dir {}",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        common::sample().display(),
        state.display()
    )
}

#[test]
fn train_inspect_mark_export_quit_and_find_the_mark_again() {
    if !have_tmux() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tmux = Tmux::start(&workbench_command(&state), dir.path());

    // Training is live: the epoch counter and the reconstruction loss move.
    let first = tmux.wait_for("training to start", 60, |s| {
        number_after(s, "epoch ").is_some_and(|e| e >= 2) && recon_value(s).is_some()
    });
    let (epoch1, recon1) = (
        number_after(&first, "epoch ").unwrap(),
        recon_value(&first).unwrap(),
    );
    let later = tmux.wait_for("the epoch and loss to change", 60, |s| {
        number_after(s, "epoch ").is_some_and(|e| e > epoch1 + 2)
            && recon_value(s).is_some_and(|r| r != recon1)
    });
    assert!(later.contains("● training"), "{later}");
    // The default ensemble of five trains one model after another: the status line and the
    // loss pane name the one in training.
    assert!(
        later.contains("member 1/5") && later.contains("DAGMM loss per epoch · model 1/5"),
        "{later}"
    );

    // Scores arrive; pause so the ranking holds still, then inspect the selected row.
    tmux.wait_for("the ranked table", 60, |s| {
        s.contains("Ranked by score · epoch")
    });
    tmux.keys(&["Space"]);
    tmux.wait_for("pause", 30, |s| s.contains("‖ paused"));
    tmux.keys(&["Enter"]);
    let inspect = tmux.wait_for("the inspect view", 10, |s| s.contains("why flagged"));
    let row = number_after(&inspect, "Row ").expect("inspected row number");
    assert!(
        inspect.contains("Memberships γ̂") && inspect.contains("percentile"),
        "{inspect}"
    );
    // Why flagged: each column's contribution to the score, and (tab) the reconstruction.
    assert!(
        inspect.contains("why flagged: by column")
            && inspect.contains(" score ")
            && inspect.contains("= typical"),
        "{inspect}"
    );
    tmux.keys(&["Tab"]);
    tmux.wait_for("the reconstruction tab", 10, |s| {
        s.contains("reconstruction error (x − x̂)² by feature")
    });
    tmux.keys(&["Tab"]);
    tmux.wait_for("the contribution tab", 10, |s| {
        s.contains("why flagged: by column")
    });

    // Mark it from the table, then export.
    tmux.keys(&["q"]);
    tmux.wait_for("the table again", 10, |s| !s.contains("why flagged"));
    tmux.keys(&["a"]);
    tmux.wait_for("the mark", 10, |s| {
        s.contains(&format!("row {row}: anomaly"))
    });
    tmux.keys(&["e"]);
    tmux.wait_for("the export prompt", 10, |s| s.contains("Export to"));
    tmux.keys(&["Enter"]);
    let exported = tmux.wait_for("the export", 30, |s| s.contains("wrote "));
    let written = number_after(&exported, "wrote ").expect("row count");

    // Quit: training is still paused, so the workbench asks first.
    tmux.keys(&["q"]);
    tmux.wait_for("the quit question", 10, |s| s.contains("Quit?"));
    tmux.keys(&["y"]);
    tmux.wait_dead(20);
    assert!(
        tmux.history().contains("1 marked row(s) kept"),
        "{}",
        tmux.history()
    );
    drop(tmux);

    check_export(&dir.path().join("kddcup99_sample-triage.csv"), row, written);

    // Relaunch on the same file: the mark is back.
    let tmux = Tmux::start(&workbench_command(&state), dir.path());
    tmux.wait_for("the ranked table", 60, |s| {
        s.contains("Ranked by score · epoch")
    });
    tmux.keys(&["f", "f"]);
    let marked = tmux.wait_for("the marked filter", 10, |s| s.contains("marked 1/"));
    let line = marked
        .lines()
        .find(|l| {
            l.split_whitespace().nth(2) == Some(&row.to_string()) || l.contains(&format!(" {row} "))
        })
        .unwrap_or_else(|| panic!("row {row} not listed:\n{marked}"));
    assert!(
        line.contains(" ! "),
        "the row shows its anomaly mark: {line}"
    );
    tmux.keys(&["C-c"]);
    tmux.wait_for("the quit question", 10, |s| s.contains("Quit?"));
    tmux.keys(&["y"]);
    tmux.wait_dead(20);
}

fn check_export(path: &PathBuf, row: u64, written: u64) {
    let mut reader = csv::Reader::from_path(path).expect("the export exists");
    let header = reader.headers().unwrap().clone();
    let names: Vec<&str> = header.iter().collect();
    assert_eq!(names.first(), Some(&"duration"));
    let tail = [
        "attack",
        "score",
        "rank",
        "mark",
        "why_1",
        "why_1_share",
        "why_2",
        "why_2_share",
        "why_3",
        "why_3_share",
    ];
    assert_eq!(&names[names.len() - tail.len()..], &tail);
    let first_why = names.len() - 6;
    let columns: Vec<String> = {
        let text = std::fs::read_to_string(common::sample()).unwrap();
        let header = text.lines().next().unwrap().to_string();
        header.split(',').map(str::to_string).collect()
    };
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, written);
    let mark = first_why - 1;
    let mut last_rank = 0;
    for r in &records {
        let rank: u64 = r[mark - 1].parse().unwrap();
        assert!(rank > last_rank, "rows are in rank order");
        last_rank = rank;
        let energy: f64 = r[mark - 2].parse().unwrap();
        assert!(energy.is_finite());
        // Each row's three top reasons are data columns, their shares in decreasing order.
        let shares: Vec<f64> = (0..3)
            .map(|i| r[first_why + 2 * i + 1].parse().unwrap())
            .collect();
        for i in 0..3 {
            assert!(columns.contains(&r[first_why + 2 * i].to_string()), "{r:?}");
        }
        // A flagged row scores above the typical row: its shares are ordered as its
        // contributions.
        assert!(shares[0] >= shares[1] && shares[1] >= shares[2], "{r:?}");
    }
    let marked: Vec<&csv::StringRecord> =
        records.iter().filter(|r| &r[mark] == "anomaly").collect();
    assert_eq!(
        marked.len(),
        1,
        "exactly the one marked row carries the mark"
    );
    // The marked record is the original text of data row `row`.
    let original = std::fs::read_to_string(common::sample()).unwrap();
    let source = original.lines().nth(row as usize).unwrap();
    let exported: Vec<&str> = marked[0].iter().take(mark - 2).collect();
    assert_eq!(exported.join(","), source);
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Starts a workbench, waits for training, sends the ending (`kill` of the tmux server, or
/// a signal) and checks that the process left promptly with a checkpoint and the mark saved.
fn ends_with_checkpoint(end: impl FnOnce(&Tmux, u32)) {
    if !have_tmux() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tmux = Tmux::start(&workbench_command(&state), dir.path());
    tmux.wait_for("the ranked table", 60, |s| {
        s.contains("Ranked by score · epoch")
    });
    tmux.keys(&["u"]);
    tmux.wait_for("the mark", 10, |s| s.contains(": unsure"));
    let out = tmux
        .run(&["display-message", "-p", "#{pane_pid}"])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pane pid");
    // A second workbench on the same file is refused before it touches the terminal.
    let second = common::run(&[
        common::sample().to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let refusal = common::stderr(&second);
    assert!(!second.status.success());
    assert!(
        refusal.contains(&format!("(process {pid}) already has this data file open")),
        "{refusal}"
    );
    end(&tmux, pid);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} still running after the hangup"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let files = files_under(&state);
    let has = |suffix: &str| files.iter().any(|f| f.ends_with(suffix));
    assert!(
        has("checkpoint/model.json") && has("checkpoint/model.safetensors"),
        "{files:?}"
    );
    let journal = files
        .iter()
        .find(|f| f.ends_with("marks.jsonl"))
        .expect("journal");
    assert!(std::fs::read_to_string(journal)
        .unwrap()
        .contains("\"unsure\""));
}

#[test]
fn hangup_saves_a_checkpoint_and_exits() {
    // Killing the tmux server drops the terminal and sends SIGHUP, as a lost SSH link does.
    ends_with_checkpoint(|tmux, _| {
        tmux.run(&["kill-server"]).status().unwrap();
    });
}

#[test]
fn sigterm_saves_a_checkpoint_and_restores_the_terminal() {
    ends_with_checkpoint(|tmux, pid| {
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        tmux.wait_dead(30);
        let after = tmux.history();
        assert!(after.contains("marked row(s) kept"), "{after}");
        assert!(
            !after.contains("Ranked by score"),
            "the alternate screen is gone: {after}"
        );
    });
}

/// Every line of `screen` that ends in a border is exactly `width` columns wide: wide and
/// combining characters kept the layout aligned.
fn assert_aligned(screen: &str, width: usize) {
    for line in screen.lines() {
        if line.ends_with(['│', '┐', '┘']) {
            assert_eq!(
                unicode_width::UnicodeWidthStr::width(line),
                width,
                "misaligned line: {line:?}"
            );
        }
    }
}

/// No control, bidi or zero-width character in `text` (tmux would have acted on one).
fn assert_clean(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && dagmm_tui::text::is_unsafe(c))
        .collect();
    assert!(bad.is_empty(), "raw {bad:?} in {what}:\n{text}");
}

#[test]
fn hostile_file_shows_escapes_and_drives_nothing() {
    if !have_tmux() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = common::hostile_csv(dir.path(), 400);
    let state = dir.path().join("state");
    let command = format!(
        "exec {} '{}' --label '{}' --anomaly 'evil\x1b[5m' --epochs 3000 --batch 64 --rescore-every 2 --state-dir {}",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        data.display(),
        common::HOSTILE_LABEL,
        state.display()
    );
    let tmux = Tmux::start(&command, dir.path());
    let table = tmux.wait_for("the ranked table", 60, |s| {
        s.contains("Ranked by score · epoch")
    });
    tmux.keys(&["Space"]);
    tmux.wait_for("pause", 30, |s| s.contains("‖ paused"));
    let mut seen = tmux.screen();
    // Inspect the top rows, by column and (tab) by feature: the features name every
    // protocol value.
    for _ in 0..6 {
        tmux.keys(&["Enter"]);
        seen += &tmux.wait_for("the inspect view", 10, |s| s.contains("why flagged"));
        tmux.keys(&["Tab"]);
        seen += &tmux.wait_for("the reconstruction tab", 10, |s| s.contains("by feature"));
        // The tab stays chosen for the next row until switched back.
        tmux.keys(&["Tab"]);
        tmux.wait_for("the contribution tab", 10, |s| s.contains("by column"));
        tmux.keys(&["Escape"]);
        tmux.wait_for("the table again", 10, |s| !s.contains("why flagged"));
        tmux.keys(&["j"]);
    }
    // A pasted bidi override in the search prompt.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "x\u{202e}y"]);
    seen += &tmux.wait_for("the search prompt", 10, |s| s.contains("x\\u202ey"));
    tmux.keys(&["Escape"]);
    // Wait before the next key, so that the test drives the plain sequence (an Escape read
    // together with the next key arrives as an Alt-key, which the workbench also takes as
    // Escape then the key: `esc_and_a_key_read_together_close_the_prompt_and_act`).
    tmux.wait_for("the prompt to close", 10, |s| !s.contains("x\\u202ey"));
    for screen in seen.split("\n\n") {
        assert_aligned(screen, 120);
    }
    assert_clean("the screen", &seen);
    for shown in [
        "hostile\\x1b[1m.csv",
        "dur\\x1b[31m",
        "proto\\u202e",
        "evil\\x1b[5m",
        "\\x1b]0;pwned\\x07",
        "\\u009b2J\\u202etxt",
        "zero\\u200bwidth",
        "漢字",
    ] {
        assert!(seen.contains(shown), "{shown} not on screen:\n{table}");
    }
    // The OSC sequence in a cell did not retitle the pane.
    let title = tmux
        .run(&["display-message", "-p", "#{pane_title}"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&title.stdout).contains("pwned"));

    tmux.keys(&["C-c"]);
    tmux.wait_for("the quit question", 10, |s| s.contains("Quit?"));
    tmux.keys(&["y"]);
    tmux.wait_dead(20);
    assert_clean("the output after exit", &tmux.history());
    let log = std::fs::read_to_string(state.join("dagmm-tui.log")).unwrap();
    assert_clean("the log", &log);
}

#[test]
fn side_by_side_trains_both_switches_ranking_and_panes_and_exports_both() {
    if !have_tmux() {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let command = format!(
        "exec {} {} --label attack --anomaly normal. --detector dagmm,egbad --members 1 --epochs 3 --rescore-every 1 --state-dir {}",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        common::sample().display(),
        state.display()
    );
    let tmux = Tmux::start(&command, dir.path());
    // DAGMM trains first and ranks; EGBAD follows, then both ranks and the agreement show.
    tmux.wait_for("DAGMM's ranking", 60, |s| {
        s.contains("Ranked by DAGMM score")
    });
    let both = tmux.wait_for("both detectors trained", 120, |s| {
        s.contains("✓ done") && s.contains("Spearman") && s.contains("EGBAD 2/2")
    });
    assert!(
        both.contains("EGBAD loss per epoch") && both.contains("both flag"),
        "{both}"
    );
    tmux.keys(&["o"]);
    tmux.wait_for("EGBAD's ranking", 10, |s| {
        s.contains("Ranked by EGBAD score")
    });
    tmux.keys(&["d"]);
    tmux.wait_for("DAGMM's panes", 10, |s| {
        s.contains("DAGMM loss per epoch") && s.contains("Mixture weights")
    });
    tmux.keys(&["e"]);
    tmux.wait_for("the export prompt", 10, |s| s.contains("Export to"));
    tmux.keys(&["Enter"]);
    let exported = tmux.wait_for("the export", 30, |s| s.contains("wrote "));
    let written = number_after(&exported, "wrote ").expect("row count");
    tmux.keys(&["s"]);
    tmux.wait_for("the checkpoint", 30, |s| s.contains("checkpoint saved"));
    tmux.keys(&["q"]);
    tmux.wait_dead(20);
    drop(tmux);

    let path = dir.path().join("kddcup99_sample-triage.csv");
    let mut reader = csv::Reader::from_path(&path).expect("the export exists");
    let header = reader.headers().unwrap().clone();
    let all: Vec<&str> = header.iter().collect();
    // The reasons (why_1, why_1_share, …) come last.
    assert_eq!(
        all[all.len() - 6..],
        [
            "why_1",
            "why_1_share",
            "why_2",
            "why_2_share",
            "why_3",
            "why_3_share"
        ]
    );
    let names = &all[..all.len() - 6];
    assert_eq!(
        &names[names.len() - 5..],
        &[
            "score_egbad",
            "rank_egbad",
            "score_dagmm",
            "rank_dagmm",
            "mark"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, written);
    let n = names.len();
    let ranks: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r[n - 4].parse().unwrap(), r[n - 2].parse().unwrap()))
        .collect();
    // Ranked by EGBAD: its ranks run 1, 2, 3…; DAGMM's are whatever DAGMM gave each row.
    assert!(ranks.iter().enumerate().all(|(i, r)| r.0 == i as u64 + 1));
    assert!(ranks.iter().all(|r| (1..=5011).contains(&r.1)));
    let files = files_under(&state);
    for detector in ["dagmm", "egbad"] {
        let suffix = format!("checkpoint/{detector}/model.json");
        assert!(files.iter().any(|f| f.ends_with(&suffix)), "{files:?}");
    }
}

#[test]
fn a_long_paste_reaches_the_search_prompt_whole() {
    let Some((dir, state)) = tmux_and_state_dir() else {
        return;
    };
    let command = format!(
        "exec {} {} --label attack --paused --state-dir {}",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        common::sample().display(),
        state.display()
    );
    let tmux = Tmux::start(&command, dir.path());
    tmux.wait_for("the workbench", 60, |s| s.contains("‖ paused"));
    let text = format!("{}PASTE_END", "0123456789".repeat(999));
    assert_eq!(text.chars().count(), 9_999);
    tmux.run(&["set-buffer", "-b", "long", &format!("{text}!")])
        .status()
        .unwrap();
    // Bracketed (`-p`: the workbench asked for it): one event, into the prompt whole.
    tmux.keys(&["/"]);
    tmux.wait_for("the search prompt", 10, |s| s.contains("Search (row #N"));
    tmux.run(&["paste-buffer", "-p", "-b", "long"])
        .status()
        .unwrap();
    let screen = tmux.wait_for("the whole paste", 10, |s| {
        s.contains("[10,000 chars]") && s.contains("PASTE_END!")
    });
    assert!(screen.contains("Search (row #N"), "{screen}");
    // Typed as keys (a terminal without bracketed paste): every key arrives, none waits
    // for a later key press.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt to close", 10, |s| !s.contains("Search (row #N"));
    tmux.keys(&["/"]);
    tmux.wait_for("the search prompt", 10, |s| s.contains("Search (row #N"));
    tmux.run(&["paste-buffer", "-b", "long"]).status().unwrap();
    tmux.wait_for("the whole paste as keys", 20, |s| {
        s.contains("[10,000 chars]") && s.contains("PASTE_END!")
    });
    // Wait for the prompt to close before `q`. On a loaded machine an Escape and a `q` read
    // together once landed the `q` in the prompt (read as Alt-q); the workbench now takes
    // an Alt-key as Escape then the key, and the wait keeps this test on the plain sequence.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt to close", 10, |s| !s.contains("Search (row #N"));
    // Escape and `q` in one write, as a script types them: the terminal reports Alt-q,
    // which the workbench takes as Escape then `q` (the quit question), not as a typed `q`.
    tmux.keys(&["/"]);
    tmux.wait_for("the search prompt", 10, |s| s.contains("Search (row #N"));
    tmux.keys(&["-l", "ab\u{1b}q"]);
    let screen = tmux.wait_for("the quit question", 10, |s| s.contains("Quit?"));
    assert!(!screen.contains("abq"), "{screen}");
    tmux.keys(&["y"]);
    tmux.wait_dead(20);
    let log = std::fs::read_to_string(state.join("dagmm-tui.log")).unwrap();
    let slow = log
        .lines()
        .filter(|l| l.contains("key answered in"))
        .count();
    assert!(
        slow <= 3,
        "slow-key warnings are rate-limited: {slow} lines"
    );
}

#[test]
fn marks_after_training_rerank_at_once_and_a_fine_tune_follows() {
    let Some((dir, state)) = tmux_and_state_dir() else {
        return;
    };
    let command = format!(
        "exec {} {} --label attack --anomaly normal. --members 2 --epochs 2 --state-dir {}",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        common::sample().display(),
        state.display()
    );
    let tmux = Tmux::start(&command, dir.path());
    tmux.wait_for("training to finish", 120, |s| s.contains("✓ done"));
    // The top row marked normal: the feedback layer answers within a second.
    tmux.keys(&["n"]);
    let marked = Instant::now();
    let answered = tmux.wait_for("the marks learned", 10, |s| s.contains("1 mark learned ·"));
    assert!(
        marked.elapsed() < Duration::from_secs(3),
        "answered after {:?}:\n{answered}",
        marked.elapsed()
    );
    assert!(answered.contains("in the top 50"), "{answered}");
    // Then the networks are fine-tuned with the mark.
    tmux.wait_for("the fine-tune", 60, |s| s.contains("networks fine-tuned"));
    tmux.quit_confirmed();
}

#[test]
fn a_terminal_without_256_colours_gets_16_whatever_colorterm_says() {
    let Some((dir, state)) = tmux_and_state_dir() else {
        return;
    };
    let command = format!(
        "exec env TERM=vt100 COLORTERM=truecolor {} {} --label attack --paused --theme light --state-dir {}",
        env!("CARGO_BIN_EXE_dagmm-tui"),
        common::sample().display(),
        state.display()
    );
    let tmux = Tmux::start(&command, dir.path());
    tmux.wait_for("the workbench", 60, |s| s.contains("‖ paused"));
    // With escapes: the light theme's hex colours arrive as the 16 ANSI colours only.
    let out = tmux.run(&["capture-pane", "-p", "-e"]).output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("\x1b["), "colours are drawn: {screen}");
    for deep in ["38;5;", "48;5;", "38;2;", "48;2;"] {
        assert!(
            !screen.contains(deep),
            "{deep} in a 16-colour terminal:\n{screen}"
        );
    }
    tmux.quit_confirmed();
}

/// The formats an analyst keeps open in the workbench as they are: a Zeek conn.log and a
/// Parquet file train, and a sample of a file larger than `--sample` is said to be one.
#[test]
fn zeek_and_parquet_files_open_train_and_a_sample_is_named() {
    let Some((dir, state)) = tmux_and_state_dir() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, extra, expected, footer) in [
        (
            "sample_data/conn.log",
            "",
            "4,000 rows × ",
            "all 4,000/4,000 rows ·",
        ),
        (
            "sample_data/conn.parquet",
            "",
            "4,000 rows × ",
            "all 4,000/4,000 rows ·",
        ),
        (
            "sample_data/conn.log",
            "--sample 1000",
            "trained on a sample of 1,000 of 4,000 rows",
            // After training, every row of the file is ranked: here all of them join.
            "all 4,000/4,000 rows of 4,000 in the file",
        ),
    ] {
        let command = format!(
            "exec {} {} --members 1 --epochs 2 {extra} --state-dir {}",
            env!("CARGO_BIN_EXE_dagmm-tui"),
            root.join(file).display(),
            state.display()
        );
        let tmux = Tmux::start(&command, dir.path());
        // A sampled file's every row is ranked after training.
        let screen = tmux.wait_for("training to finish", 60, |s| {
            s.contains("✓ done") && s.contains(expected) && s.contains(footer)
        });
        assert!(screen.contains("epoch 2/2"), "{screen}");
        tmux.quit_confirmed();
    }
}
