//! What an import says about the rows it did not take as they were: rejected rows and repeated
//! numbers. The terminal gets the first [`SHOWN`] of them (in file order) and a count; every
//! rejected row goes to `--rejects FILE` (`line,reason,raw`), so a file with 10,000 bad rows
//! prints a screenful, not 10,000 lines.

use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::campaign::contacts_csv::Rejection;

/// Notes printed to the terminal.
pub const SHOWN: usize = 20;

/// One line about one row of the file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Note {
    line: u64,
    text: String,
}

/// Collects the notes of one import.
#[derive(Debug)]
pub struct Notes {
    file: String,
    /// The [`SHOWN`] notes of the lowest lines so far (a max-heap: the highest is dropped first).
    shown: BinaryHeap<Note>,
    rejected: u64,
    duplicates: u64,
    rejects: Option<(PathBuf, csv::Writer<File>)>,
}

impl Notes {
    /// Notes about `file`; every rejected row is also written to `rejects` when given (the file
    /// is created now, so a bad path fails before the import starts).
    pub fn new(file: &Path, rejects: Option<&Path>) -> Result<Self> {
        let rejects = match rejects {
            None => None,
            Some(path) => {
                let mut out = csv::Writer::from_path(path).with_context(|| {
                    format!(
                        "cannot write the rejects file `{}`: choose a writable path",
                        path.display()
                    )
                })?;
                out.write_record(["line", "reason", "raw"])?;
                Some((path.to_path_buf(), out))
            }
        };
        Ok(Notes {
            file: file.display().to_string(),
            shown: BinaryHeap::new(),
            rejected: 0,
            duplicates: 0,
            rejects,
        })
    }

    fn keep(&mut self, line: u64, text: String) {
        if self.shown.len() < SHOWN {
            self.shown.push(Note { line, text });
        } else if self.shown.peek().is_some_and(|top| line < top.line) {
            self.shown.pop();
            self.shown.push(Note { line, text });
        }
    }

    pub fn rejected(&mut self, rejection: &Rejection) -> Result<()> {
        self.rejected += 1;
        if let Some((path, out)) = &mut self.rejects {
            out.write_record([
                rejection.line.to_string().as_str(),
                &rejection.reason,
                &rejection.raw,
            ])
            .with_context(|| format!("cannot write the rejects file `{}`", path.display()))?;
        }
        self.keep(rejection.line, rejection.reason.clone());
        Ok(())
    }

    pub fn duplicate(&mut self, line: u64, phone: &str) {
        self.duplicates += 1;
        self.keep(
            line,
            format!("duplicate of an earlier row ({phone}): kept once"),
        );
    }

    /// Prints the notes kept, in file order, and what was left out; closes the rejects file.
    pub fn finish(self) -> Result<()> {
        let Notes {
            file,
            shown,
            rejected,
            duplicates,
            rejects,
        } = self;
        let total = rejected + duplicates;
        let shown = shown.into_sorted_vec();
        for note in &shown {
            eprintln!("{file}:{}: {}", note.line, note.text);
        }
        let rejects = match rejects {
            Some((path, mut out)) => {
                out.flush().with_context(|| {
                    format!("cannot write the rejects file `{}`", path.display())
                })?;
                Some(path)
            }
            None => None,
        };
        let more = total - shown.len() as u64;
        if more > 0 {
            let whereabouts = match &rejects {
                Some(path) => format!("every rejected row is in {}", path.display()),
                None => "--rejects FILE writes every rejected row to a CSV".to_owned(),
            };
            eprintln!(
                "{file}: {more} more notes not shown ({rejected} rejected, {duplicates} duplicates in all); {whereabouts}"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(line: u64) -> Rejection {
        Rejection {
            line,
            reason: format!("bad phone on {line}"),
            raw: format!("x,\"a, b\",{line}"),
        }
    }

    #[test]
    fn keeps_the_lowest_lines_whatever_the_arrival_order() {
        let mut notes = Notes::new(Path::new("c.csv"), None).expect("notes");
        for line in (2..100).rev() {
            notes.duplicate(line, "+34600000000");
        }
        notes.rejected(&rejection(1)).expect("reject");
        let lines: Vec<u64> = notes
            .shown
            .into_sorted_vec()
            .iter()
            .map(|n| n.line)
            .collect();
        assert_eq!(lines, (1..=SHOWN as u64).collect::<Vec<_>>());
    }

    #[test]
    fn every_rejected_row_goes_to_the_rejects_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rejects.csv");
        let mut notes = Notes::new(Path::new("c.csv"), Some(&path)).expect("notes");
        for line in 2..40 {
            notes.rejected(&rejection(line)).expect("reject");
        }
        notes.duplicate(50, "+34600000000");
        notes.finish().expect("finish");
        let mut rows = csv::Reader::from_path(&path).expect("read");
        let rows: Vec<csv::StringRecord> = rows.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 38, "duplicates are not rejected rows");
        assert_eq!(&rows[0][0], "2");
        assert_eq!(&rows[0][1], "bad phone on 2");
        assert_eq!(&rows[0][2], "x,\"a, b\",2");
    }

    #[test]
    fn an_unwritable_rejects_path_fails_before_anything_is_read() {
        let err = Notes::new(
            Path::new("c.csv"),
            Some(Path::new("/nonexistent-dir/rejects.csv")),
        )
        .expect_err("unwritable");
        assert!(err.to_string().contains("rejects file"), "{err}");
    }
}
