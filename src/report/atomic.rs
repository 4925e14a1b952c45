//! Output files that appear whole or not at all: written to a temporary file in the same
//! folder, then renamed over the destination. They are created with mode 0600.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::ReportError;

/// Exports hold the contacts' numbers and answers: owner-only, like the database (SPEC §10).
#[cfg(unix)]
const PRIVATE_MODE: u32 = 0o600;

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
    let output = |cause| ReportError::Output {
        path: dest.to_owned(),
        cause,
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
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_MODE);
    let mut file = options.open(&tmp).map_err(output)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    // a stale temporary file of the same name keeps its mode through `open`: set it again
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(PRIVATE_MODE))
        .map_err(output)?;
    let value = write(&mut file)?;
    file.sync_all().map_err(output)?;
    drop(file);
    std::fs::rename(&tmp, dest).map_err(output)?;
    guard.0 = None;
    Ok(value)
}
