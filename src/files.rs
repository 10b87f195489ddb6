//! Writing a file so that a crash never leaves half of it, and never over the data being
//! read: the bytes go to a hidden sibling, are synced to disk, and only then renamed over the
//! destination (scores, checkpoints, exports). A destination that is one of this process's
//! input files (the same file after links are followed: a symlink or a hard link to it too)
//! is refused before anything is written.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The input files read so far: (device, inode) and the name they were opened by.
static INPUTS: Mutex<Vec<(u64, u64, PathBuf)>> = Mutex::new(Vec::new());

/// Records `path` as an input of this process: no staged write may land on it afterwards.
/// Called by the data layer each time it opens a file; a path it cannot stat is skipped.
pub fn protect_input(path: &Path) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let mut inputs = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    // An input deleted since may have left its inode to this file: forget it.
    inputs.retain(|(dev, ino, input)| {
        fs::metadata(input).is_ok_and(|m| (m.dev(), m.ino()) == (*dev, *ino))
    });
    if !inputs
        .iter()
        .any(|(dev, ino, _)| (*dev, *ino) == (meta.dev(), meta.ino()))
    {
        inputs.push((meta.dev(), meta.ino(), path.to_path_buf()));
    }
}

/// An error when writing `dest` would replace an input file (`dest` itself, or what its
/// symlinks lead to, is the same file as an input: same device and inode).
pub fn refuse_input(dest: &Path) -> Result<()> {
    let Ok(meta) = fs::metadata(dest) else {
        return Ok(());
    };
    let inputs = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    let same = |m: &fs::Metadata, dev: u64, ino: u64| (m.dev(), m.ino()) == (dev, ino);
    // An input deleted since (its inode free for reuse) protects nothing any more.
    if let Some((_, _, input)) = inputs.iter().find(|(dev, ino, input)| {
        same(&meta, *dev, *ino) && fs::metadata(input).is_ok_and(|m| same(&m, *dev, *ino))
    }) {
        bail!(
            "refusing to write {}: it is the input file {} (choose another output path)",
            dest.display(),
            input.display()
        );
    }
    Ok(())
}

/// A file fully written and synced under a temporary name beside `dest`; [`StagedFile::commit`]
/// renames it into place. Dropped without a commit, the temporary file is removed.
pub struct StagedFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Writes what `fill` writes to a temporary sibling of `dest` and syncs it.
    pub fn write(
        dest: &Path,
        fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
    ) -> Result<StagedFile> {
        refuse_input(dest)?;
        let staged = StagedFile {
            tmp: temporary_path(dest),
            dest: dest.to_path_buf(),
            committed: false,
        };
        let file = File::create(&staged.tmp)
            .with_context(|| format!("creating {}", staged.tmp.display()))?;
        let mut out = BufWriter::new(file);
        fill(&mut out)
            .and_then(|()| {
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                Ok(())
            })
            .with_context(|| format!("writing {}", dest.display()))?;
        Ok(staged)
    }

    /// Writes `bytes` (see [`StagedFile::write`]).
    pub fn bytes(dest: &Path, bytes: &[u8]) -> Result<StagedFile> {
        Self::write(dest, |out| Ok(out.write_all(bytes)?))
    }

    /// Renames the written file over its destination (checked again: the input may have
    /// been opened while this file was written).
    pub fn commit(mut self) -> Result<()> {
        refuse_input(&self.dest)?;
        fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("renaming to {}", self.dest.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A hidden sibling of `dest`, so the final rename stays on one file system.
fn temporary_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_reaches_the_destination_until_commit_and_a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.txt");
        fs::write(&dest, "old").unwrap();
        let staged = StagedFile::bytes(&dest, b"new").unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
        staged.commit().unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
        let failed = StagedFile::write(&dest, |out| {
            out.write_all(b"half")?;
            anyhow::bail!("disk full")
        });
        assert!(format!("{:#}", failed.err().unwrap()).contains("disk full"));
        // Dropped uncommitted: the temporary file is gone too.
        drop(StagedFile::bytes(&dest, b"dropped").unwrap());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_input_and_every_link_to_it_are_refused_as_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        fs::write(&input, "a\n1\n").unwrap();
        let symlink = dir.path().join("sym.csv");
        std::os::unix::fs::symlink(&input, &symlink).unwrap();
        let hard = dir.path().join("hard.csv");
        fs::hard_link(&input, &hard).unwrap();
        protect_input(&input);
        for dest in [&input, &symlink, &hard] {
            let err = StagedFile::bytes(dest, b"scores").err().expect("refused");
            assert!(format!("{err:#}").contains("is the input file"), "{err:#}");
        }
        assert_eq!(fs::read_to_string(&input).unwrap(), "a\n1\n");
        StagedFile::bytes(&dir.path().join("other.csv"), b"ok")
            .unwrap()
            .commit()
            .unwrap();
    }
}
