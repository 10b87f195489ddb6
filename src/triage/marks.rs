//! Triage marks and their journal: every mark is appended to a file in the state
//! directory the moment it is made, and replayed when the same data file is opened again.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::hash::fnv1a;

/// A person's verdict on a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Anomaly,
    Normal,
    Unsure,
}

impl Mark {
    /// The word used in exports and the journal.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Anomaly => "anomaly",
            Mark::Normal => "normal",
            Mark::Unsure => "unsure",
        }
    }
}

/// One journal line: `mark: null` clears the row's mark.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    row: u64,
    mark: Option<Mark>,
    /// Seconds since the Unix epoch, for the record.
    at: u64,
}

/// The marks of one data file, keyed by 1-based data record number (stable across runs,
/// unlike positions in a ranking).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Marks {
    by_row: HashMap<u64, Mark>,
}

impl Marks {
    /// The mark of record `row`, if any.
    pub fn get(&self, row: u64) -> Option<Mark> {
        self.by_row.get(&row).copied()
    }

    /// Sets (or with `None` clears) the mark of record `row`.
    pub fn set(&mut self, row: u64, mark: Option<Mark>) {
        match mark {
            Some(m) => self.by_row.insert(row, m),
            None => self.by_row.remove(&row),
        };
    }

    /// Number of marked rows.
    pub fn len(&self) -> usize {
        self.by_row.len()
    }

    /// `true` when nothing is marked.
    pub fn is_empty(&self) -> bool {
        self.by_row.is_empty()
    }

    /// Marked record numbers with their marks, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Mark)> + '_ {
        self.by_row.iter().map(|(&r, &m)| (r, m))
    }
}

/// The append-only journal file of one data file. While it is open, the data file's state
/// directory is locked: a second workbench on the same file is refused instead of
/// interleaving its marks and checkpoints with the first one's.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Holds the advisory lock on `dir/lock`; the kernel drops it when the process dies,
    /// so even `kill -9` leaves no stale lock behind.
    _lock: File,
}

/// Takes the lock of state directory `dir`, writing our process id into the lock file so
/// the refusal can say who holds it.
fn lock_state_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another dagmm-tui".to_string()
            } else {
                format!("another dagmm-tui (process {holder})")
            };
            anyhow::bail!(
                "{who} already has this data file open; its marks and checkpoints are in {}. \
                 Close it first, or pass --state-dir to keep a separate set of marks",
                dir.display()
            );
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// The default state directory: `$XDG_STATE_HOME/dagmm-tui` or `~/.local/state/dagmm-tui`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("dagmm-tui");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/dagmm-tui"),
        None => PathBuf::from(".dagmm-tui-state"),
    }
}

/// The directory holding the state of `data` under `state_dir`: named after the file and a
/// hash of its absolute path, so two `flows.csv` in different folders keep apart.
pub fn data_state_dir(state_dir: &Path, data: &Path) -> PathBuf {
    let absolute = fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let stem: String = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    state_dir.join(format!(
        "{stem}-{:016x}",
        fnv1a(absolute.to_string_lossy().as_bytes())
    ))
}

impl Journal {
    /// Opens (creating if needed) `dir/marks.jsonl` and replays it. Lines that cannot be
    /// read (a torn last line after a crash) are skipped and reported in the warnings.
    /// Fails with a clear message when another process has the directory open.
    pub fn open(dir: &Path) -> Result<(Journal, Marks, Vec<String>)> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = lock_state_dir(dir)?;
        let path = dir.join("marks.jsonl");
        let mut marks = Marks::default();
        let mut warnings = Vec::new();
        let mut ends_with_newline = true;
        if let Ok(existing) = File::open(&path) {
            let mut reader = BufReader::new(existing);
            let mut line = Vec::new();
            let mut number = 0u64;
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                number += 1;
                ends_with_newline = line.ends_with(b"\n");
                match serde_json::from_slice::<Entry>(line.trim_ascii()) {
                    Ok(entry) => marks.set(entry.row, entry.mark),
                    Err(_) if line.trim_ascii().is_empty() => {}
                    Err(e) => warnings.push(format!(
                        "{}: line {number} skipped (unreadable: {e})",
                        path.display()
                    )),
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !ends_with_newline {
            // A torn last line: start the next entry on a line of its own.
            file.write_all(b"\n")?;
        }
        Ok((
            Journal {
                path,
                file,
                _lock: lock,
            },
            marks,
            warnings,
        ))
    }

    /// Appends one mark change and pushes it to the disk before returning.
    pub fn record(&mut self, row: u64, mark: Option<Mark>) -> Result<()> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut line = serde_json::to_vec(&Entry { row, mark, at })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Where the journal lives (shown in the help screen).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Size and modification time of a data file, kept beside its journal.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SourceStamp {
    bytes: u64,
    modified_secs: u64,
}

impl SourceStamp {
    fn of(data: &Path) -> Option<SourceStamp> {
        let meta = fs::metadata(data).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(SourceStamp {
            bytes: meta.len(),
            modified_secs: modified.as_secs(),
        })
    }
}

/// Marks name rows by record number, so they only mean something for the file they were
/// made on. Compares `data` with the stamp saved in `dir` the last time, records the new
/// stamp, and returns a warning when the file changed while `marks` existed.
pub fn check_source(dir: &Path, data: &Path, marks: &Marks) -> Option<String> {
    let path = dir.join("source.json");
    let now = SourceStamp::of(data)?;
    let before: Option<SourceStamp> = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Ok(bytes) = serde_json::to_vec(&now) {
        let _ = fs::write(&path, bytes);
    }
    match before {
        Some(before) if before != now && !marks.is_empty() => Some(format!(
            "{} changed since its {} mark(s) were made ({} → {} bytes): marks refer to record numbers and may now point at other rows",
            data.display(),
            marks.len(),
            before.bytes,
            now.bytes
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_replayed_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut journal, marks, warnings) = Journal::open(dir.path()).unwrap();
            assert!(marks.is_empty() && warnings.is_empty());
            journal.record(7, Some(Mark::Anomaly)).unwrap();
            journal.record(9, Some(Mark::Unsure)).unwrap();
            journal.record(7, Some(Mark::Normal)).unwrap();
            journal.record(9, None).unwrap();
            journal.record(3, Some(Mark::Anomaly)).unwrap();
        }
        let path = dir.path().join("marks.jsonl");
        let mut text = fs::read(&path).unwrap();
        text.extend_from_slice(br#"{"row":5,"ma"#);
        fs::write(&path, text).unwrap();
        let (mut journal, marks, warnings) = Journal::open(dir.path()).unwrap();
        assert_eq!(marks.get(7), Some(Mark::Normal));
        assert_eq!(marks.get(9), None);
        assert_eq!(marks.get(3), Some(Mark::Anomaly));
        assert_eq!(marks.len(), 2);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        journal.record(11, Some(Mark::Unsure)).unwrap();
        drop(journal);
        let (_, marks, warnings) = Journal::open(dir.path()).unwrap();
        assert_eq!(marks.get(11), Some(Mark::Unsure));
        assert_eq!(
            warnings.len(),
            1,
            "the torn line stays skipped, nothing else breaks"
        );
    }

    #[test]
    fn a_second_journal_on_the_same_directory_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _, _) = Journal::open(dir.path()).unwrap();
        let refused = Journal::open(dir.path())
            .err()
            .expect("a second open fails");
        let text = format!("{refused:#}");
        assert!(
            text.contains("already has this data file open")
                && text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        drop(first);
        Journal::open(dir.path()).expect("free again once the first is closed");
    }

    #[test]
    fn a_changed_data_file_is_reported_when_marks_exist() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        fs::write(&data, "a\n1\n2\n").unwrap();
        let mut marks = Marks::default();
        assert_eq!(check_source(dir.path(), &data, &marks), None, "first visit");
        marks.set(2, Some(Mark::Anomaly));
        assert_eq!(check_source(dir.path(), &data, &marks), None, "unchanged");
        fs::write(&data, "a\n0\n1\n2\n").unwrap();
        let warning = check_source(dir.path(), &data, &marks).expect("changed");
        assert!(warning.contains("6 → 8 bytes"), "{warning}");
        assert_eq!(
            check_source(dir.path(), &data, &marks),
            None,
            "reported once"
        );
    }

    #[test]
    fn state_dirs_differ_for_same_name_in_different_folders() {
        let root = Path::new("/state");
        let a = data_state_dir(root, Path::new("/a/flows.csv"));
        let b = data_state_dir(root, Path::new("/b/flows.csv"));
        assert_ne!(a, b);
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("flows.csv-"));
    }
}
