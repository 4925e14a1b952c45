//! Output files that appear whole or not at all: written to a temporary file in the same
//! folder, then renamed over the destination.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::ReportError;

/// Removes the temporary file unless it was renamed into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Calls `write` with a new temporary file next to `dest`, then syncs it and renames it to
/// `dest`. When `write` (or the sync or rename) fails, the temporary file is removed and `dest`
/// is left as it was.
pub fn write_atomically<T>(
    dest: &Path,
    write: impl FnOnce(&mut File) -> Result<T, ReportError>,
) -> Result<T, ReportError> {
    let output = |source| ReportError::Output {
        path: dest.to_owned(),
        source,
    };
    let file_name = dest.file_name().ok_or_else(|| {
        output(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(output)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let value = write(&mut file)?;
    file.sync_all().map_err(output)?;
    drop(file);
    std::fs::rename(&tmp, dest).map_err(output)?;
    guard.0 = None;
    Ok(value)
}
