//! Writing a file so that a crash never leaves half of it: the bytes go to a hidden sibling,
//! are synced to disk, and only then renamed over the destination (checkpoints and exports).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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

    /// Renames the written file over its destination.
    pub fn commit(mut self) -> Result<()> {
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
}
