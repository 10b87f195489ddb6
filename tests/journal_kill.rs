//! The marks journal survives `kill -9` at any moment: a real process appends marks as fast
//! as it can and is killed at a random point, over and over on the same journal. After
//! every kill the journal opens at once (no stale lock), holds every mark the writer saw
//! acknowledged, and nothing else but possibly the one entry being written. While the
//! writer lives, a second open is refused with a clear message. Some rounds also leave a
//! torn line, as a power cut would: it is skipped with a warning and the next round goes on.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use dagmm_tui::triage::{Journal, Mark, Marks};

/// Set in the child process: the journal directory to write to.
const CHILD_DIR: &str = "DAGMM_JOURNAL_KILL_DIR";
/// Set in the child process: the first row number of its round.
const CHILD_BASE: &str = "DAGMM_JOURNAL_KILL_BASE";

/// Entry `i` of a round starting at row `base`: every fifth entry clears the row before,
/// the others mark a new row.
fn entry(base: u64, i: u64) -> (u64, Option<Mark>) {
    if i % 5 == 4 {
        (base + i - 1, None)
    } else {
        let mark = [Mark::Anomaly, Mark::Normal, Mark::Unsure][(i % 3) as usize];
        (base + i, Some(mark))
    }
}

/// The writer, run as a child process by the test below: appends entries until killed,
/// printing `ack N` after entry N is on disk.
#[test]
#[ignore = "run by journal_survives_kill_9_in_a_loop as a child process"]
fn journal_writer_child() {
    let dir = std::env::var(CHILD_DIR).expect("child only");
    let base: u64 = std::env::var(CHILD_BASE).unwrap().parse().unwrap();
    let (mut journal, _, _) = Journal::open(Path::new(&dir)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let (row, mark) = entry(base, i);
        journal.record(row, mark).unwrap();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

/// A small deterministic generator for the kill points.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn journal_survives_kill_9_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Marks::default();
    let mut random = 42u64;
    let rounds = 24;
    let mut torn_rounds = 0;
    for round in 0..rounds {
        let base = round * 1_000_000;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "journal_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_BASE, base.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Kill after a random number of acknowledged entries (0 = as soon as it starts).
        let kill_after = next(&mut random) % 120;
        let mut acked = 0u64;
        let mut lines = stdout.lines();
        if kill_after > 0 {
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(n) = line.strip_prefix("ack ") {
                    acked = n.parse::<u64>().unwrap() + 1;
                    if acked == 1 {
                        // The writer holds the lock: a second open is refused, clearly.
                        let refused = Journal::open(dir.path()).err().expect("locked");
                        let text = format!("{refused:#}");
                        assert!(text.contains("already has this data file open"), "{text}");
                    }
                    if acked >= kill_after {
                        break;
                    }
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements printed before the kill landed also count.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ack ") {
                acked = n.parse::<u64>().unwrap() + 1;
            }
        }

        let (journal, marks, warnings) =
            Journal::open(dir.path()).expect("no stale lock after kill -9");
        drop(journal);
        for i in 0..acked {
            let (row, mark) = entry(base, i);
            expected.set(row, mark);
        }
        // The entry being written when the kill came may or may not have landed.
        let mut with_next = expected.clone();
        let (row, mark) = entry(base, acked);
        with_next.set(row, mark);
        assert!(
            marks == expected || marks == with_next,
            "round {round}: {} marks on disk, {} acknowledged",
            marks.len(),
            expected.len()
        );
        expected = marks;
        assert!(warnings.len() <= torn_rounds, "round {round}: {warnings:?}");
        // Every seventh round, cut the last line short as a power failure would.
        if round % 7 == 3 {
            let path = dir.path().join("marks.jsonl");
            let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            file.write_all(br#"{"row":99,"mark":"anom"#).unwrap();
            torn_rounds += 1;
        }
    }
    let (_, marks, warnings) = Journal::open(dir.path()).unwrap();
    assert_eq!(marks, expected);
    assert_eq!(
        warnings.len(),
        torn_rounds,
        "each torn line is reported once"
    );
    assert!(!marks.is_empty());
}
