//! Logging to a file, never to the screen: the workbench owns the terminal, so warnings
//! and timings go to `<state dir>/dagmm-tui.log`. Every line passes through the same
//! escaping as the screen, so a hostile cell cannot reach whoever reads the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::text::visible;

static LOG: OnceLock<Mutex<File>> = OnceLock::new();

/// Opens (appending) the log file; later calls keep the first file.
pub fn init(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let _ = LOG.set(Mutex::new(file));
    Ok(())
}

/// Appends one line with a timestamp and level; silently dropped when no log is open.
pub fn log(level: &str, message: &str) {
    if let Some(lock) = LOG.get() {
        if let Ok(mut file) = lock.lock() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = writeln!(
                file,
                "{}.{:03} {level} {}",
                now.as_secs(),
                now.subsec_millis(),
                visible(message)
            );
        }
    }
}
