//! Puts an import's validated rows in phone order with bounded memory (an external merge sort).
//!
//! Why: the `contacts` table's `UNIQUE (campaign_id, phone)` index is a B-tree. Rows written in
//! file order land on random leaves of it, and every short import transaction then rewrites
//! hundreds of scattered index pages into the WAL. Rows written in phone order append to a few
//! leaves per transaction, so the import writes each index page about once (SPEC §9: import at
//! the speed of `sqlite3 .import`). A number repeated in the file ends up next to its first
//! occurrence, which is how duplicates are found without a lookup.
//!
//! Rows are gathered in memory up to [`PhoneOrder::new`]'s `run_rows`; a full buffer is sorted
//! and written to an anonymous temporary file (a "run") in the given folder; [`PhoneOrder::finish`]
//! merges the runs. A file that fits in one buffer never touches the disk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::contacts_csv::NewContact;

/// One validated row and the line of the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineContact {
    pub line: u64,
    pub contact: NewContact,
}

impl LineContact {
    fn key(&self) -> (&str, u64) {
        (&self.contact.phone, self.line)
    }
}

/// Collects rows, then hands them back ordered by (phone, line).
#[derive(Debug)]
pub struct PhoneOrder {
    dir: PathBuf,
    run_rows: usize,
    buffer: Vec<LineContact>,
    runs: Vec<File>,
}

impl PhoneOrder {
    /// Keeps at most `run_rows` rows in memory; runs spill into `dir` (files without a name:
    /// nothing is left behind, even by a killed import).
    pub fn new(dir: &Path, run_rows: usize) -> Self {
        PhoneOrder {
            dir: dir.to_path_buf(),
            run_rows: run_rows.max(1),
            buffer: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, row: LineContact) -> io::Result<()> {
        self.buffer.push(row);
        if self.buffer.len() >= self.run_rows {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
        let file = tempfile::tempfile_in(&self.dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create a temporary file in {} to sort the import: {e}",
                    self.dir.display()
                ),
            )
        })?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        for row in self.buffer.drain(..) {
            encode(&mut out, &row)?;
        }
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        Ok(())
    }

    /// Every row pushed, in (phone, line) order.
    pub fn finish(mut self) -> io::Result<Merged> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
            return Ok(Merged {
                memory: self.buffer.into_iter(),
                runs: Vec::new(),
                heads: BinaryHeap::new(),
            });
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut runs: Vec<BufReader<File>> = self
            .runs
            .into_iter()
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .collect();
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (run, reader) in runs.iter_mut().enumerate() {
            if let Some(row) = decode(reader)? {
                heads.push(Reverse(Head { row, run }));
            }
        }
        Ok(Merged {
            memory: Vec::new().into_iter(),
            runs,
            heads,
        })
    }
}

/// The next row of a run, ordered by its key (then by run, which cannot tie: lines are unique).
#[derive(Debug, PartialEq, Eq)]
struct Head {
    row: LineContact,
    run: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.row
            .key()
            .cmp(&other.row.key())
            .then(self.run.cmp(&other.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The rows in (phone, line) order: from memory, or merged from the runs on disk.
#[derive(Debug)]
pub struct Merged {
    memory: std::vec::IntoIter<LineContact>,
    runs: Vec<BufReader<File>>,
    heads: BinaryHeap<Reverse<Head>>,
}

impl Iterator for Merged {
    type Item = io::Result<LineContact>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(row) = self.memory.next() {
            return Some(Ok(row));
        }
        let Reverse(Head { row, run }) = self.heads.pop()?;
        match decode(&mut self.runs[run]) {
            Ok(Some(next)) => self.heads.push(Reverse(Head { row: next, run })),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(row))
    }
}

/// A string absent (`None`) on disk: a length no string of ours can have.
const ABSENT: u32 = u32::MAX;

fn put_str(out: &mut impl Write, s: Option<&str>) -> io::Result<()> {
    match s {
        None => out.write_all(&ABSENT.to_le_bytes()),
        Some(s) => {
            let len = u32::try_from(s.len())
                .ok()
                .filter(|&n| n != ABSENT)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "field too long"))?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(s.as_bytes())
        }
    }
}

fn encode(out: &mut impl Write, row: &LineContact) -> io::Result<()> {
    let c = &row.contact;
    out.write_all(&row.line.to_le_bytes())?;
    put_str(out, Some(&c.phone))?;
    put_str(out, c.ext_id.as_deref())?;
    put_str(out, c.name.as_deref())?;
    put_str(out, c.zones.as_deref())?;
    put_str(out, Some(&c.fields))
}

fn get_str(input: &mut impl Read) -> io::Result<Option<String>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len == ABSENT {
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn required(s: Option<String>) -> io::Result<String> {
    s.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "missing field in sort run"))
}

/// The next row of a run, `None` at its end.
fn decode(input: &mut impl Read) -> io::Result<Option<LineContact>> {
    let mut line = [0u8; 8];
    match input.read_exact(&mut line) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let phone = required(get_str(input)?)?;
    let ext_id = get_str(input)?;
    let name = get_str(input)?;
    let zones = get_str(input)?;
    let fields = required(get_str(input)?)?;
    Ok(Some(LineContact {
        line: u64::from_le_bytes(line),
        contact: NewContact {
            phone,
            ext_id,
            name,
            zones,
            fields,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64, phone: &str, name: Option<&str>) -> LineContact {
        LineContact {
            line,
            contact: NewContact {
                phone: phone.to_string(),
                ext_id: line.is_multiple_of(2).then(|| format!("ref-{line}")),
                name: name.map(str::to_string),
                zones: line.is_multiple_of(3).then(|| "Europe/Madrid".to_string()),
                fields: format!("{{\"line\":{line}}}"),
            },
        }
    }

    fn sorted_through(rows: &[LineContact], run_rows: usize) -> Vec<LineContact> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut order = PhoneOrder::new(dir.path(), run_rows);
        for r in rows {
            order.push(r.clone()).expect("push");
        }
        order
            .finish()
            .expect("finish")
            .collect::<io::Result<Vec<_>>>()
            .expect("merge")
    }

    fn rows(n: u64) -> Vec<LineContact> {
        // phones in a scrambled order, some repeated, names with multi-byte characters
        (0..n)
            .map(|i| {
                let k = (i * 7919) % 1000;
                let name = (!i.is_multiple_of(5)).then(|| format!("Núñez {i}"));
                row(i + 2, &format!("+3460000{k:04}"), name.as_deref())
            })
            .collect()
    }

    fn expected(mut rows: Vec<LineContact>) -> Vec<LineContact> {
        rows.sort_by(|a, b| a.key().cmp(&b.key()));
        rows
    }

    #[test]
    fn in_memory_order_is_phone_then_line() {
        let input = rows(300);
        assert_eq!(sorted_through(&input, 10_000), expected(input));
    }

    #[test]
    fn runs_on_disk_merge_to_the_same_order() {
        let input = rows(2_500);
        // 2,500 rows in runs of 64: 40 runs on disk, every field round-trips
        assert_eq!(sorted_through(&input, 64), expected(input));
    }

    #[test]
    fn a_repeated_number_follows_its_first_occurrence() {
        let input = vec![
            row(2, "+34600000002", None),
            row(3, "+34600000001", Some("a")),
            row(4, "+34600000002", Some("b")),
            row(5, "+34600000001", Some("c")),
        ];
        let lines: Vec<u64> = sorted_through(&input, 1).iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 5, 2, 4]);
    }

    #[test]
    fn nothing_pushed_gives_nothing() {
        assert!(sorted_through(&[], 4).is_empty());
    }
}
