//! The contacts CSV (SPEC §4): header detection, and each row validated into a [`NewContact`]
//! or a line-numbered rejection. Streams: one record in memory at a time.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use chrono_tz::Tz;

use super::phone::{self, Region};

/// A contact as read from the CSV, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub phone: String,
    pub ext_id: Option<String>,
    pub name: Option<String>,
    /// Resolved zones, `|`-separated; `None` = the campaign's zone.
    pub zones: Option<String>,
    /// Every other column, as a JSON object.
    pub fields: String,
}

/// Headers accepted for the phone column (SPEC §4).
pub const PHONE_ALIASES: [&str; 6] = [
    "phone",
    "phone_number",
    "number",
    "to",
    "telefono",
    "mobile",
];

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error(
        "{file}:1: no phone column: add a `phone` header (or one of phone_number, number, to, telefono, mobile)"
    )]
    NoPhoneColumn { file: String },
    #[error("{file}:1: the file is empty: it needs a header row with a `phone` column")]
    Empty { file: String },
    #[error("{file}:{line}: {message}")]
    Read {
        file: String,
        line: u64,
        message: String,
    },
}

/// A bad row: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub reason: String,
    /// The row as it was in the file (its fields written back as one CSV line).
    pub raw: String,
}

/// Column positions found in the header.
#[derive(Debug, Clone)]
struct Columns {
    phone: usize,
    name: Option<usize>,
    timezone: Option<usize>,
    id: Option<usize>,
    /// (index, header) of every other column.
    extra: Vec<(usize, String)>,
    count: usize,
}

/// Reads contacts from CSV, one row at a time.
pub struct ContactReader<R: Read> {
    file: String,
    reader: csv::Reader<LineStarts<R>>,
    /// Where the lines that hold something begin, as the parser reads them.
    starts: Arc<Mutex<VecDeque<(u64, u64)>>>,
    parser: RowParser,
    record: csv::StringRecord,
    /// The raw bytes of the row being read; swapped with `record` so neither reallocates.
    bytes: csv::ByteRecord,
    /// Line of the last row read.
    line: u64,
}

/// Turns one CSV record into a contact: the header's column map and the default region. Cheap to
/// clone and `Send`, so several threads can parse rows that one thread reads.
#[derive(Debug, Clone)]
pub struct RowParser {
    columns: Columns,
    region: Region,
}

/// A row as read, before parsing: its record, or already a rejection (not UTF-8).
#[derive(Debug)]
pub enum RawRow {
    Record {
        line: u64,
        record: csv::StringRecord,
    },
    Rejected(Rejection),
}

/// A row's fields written back as one CSV line (bytes that are not UTF-8 shown as U+FFFD).
fn raw_line(record: &csv::ByteRecord) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let bytes = match out.write_byte_record(record) {
        Ok(()) => out.into_inner().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    String::from_utf8_lossy(bytes.strip_suffix(b"\n").unwrap_or(&bytes)).into_owned()
}

impl RawRow {
    /// Parses the row (or passes its rejection on).
    pub fn parse(self, parser: &RowParser) -> (u64, Result<NewContact, Rejection>) {
        match self {
            RawRow::Record { line, record } => (
                line,
                parser.parse(&record).map_err(|reason| Rejection {
                    line,
                    reason,
                    raw: raw_line(record.as_byte_record()),
                }),
            ),
            RawRow::Rejected(r) => (r.line, Err(r)),
        }
    }
}

impl<R: Read> ContactReader<R> {
    pub fn new(file: &str, input: R, region: Region) -> Result<Self, CsvError> {
        let starts = Arc::default();
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(LineStarts::new(input, Arc::clone(&starts)));
        let headers = reader.headers().map_err(|e| read_error(file, &e))?.clone();
        if headers.is_empty() || (headers.len() == 1 && headers[0].trim().is_empty()) {
            return Err(CsvError::Empty {
                file: file.to_owned(),
            });
        }
        let norm: Vec<String> = headers
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
            .collect();
        let find = |names: &[&str]| names.iter().find_map(|n| norm.iter().position(|h| h == n));
        let phone = find(&PHONE_ALIASES).ok_or_else(|| CsvError::NoPhoneColumn {
            file: file.to_owned(),
        })?;
        let name = find(&["name"]);
        let timezone = find(&["timezone"]);
        let id = find(&["id"]);
        let extra = norm
            .iter()
            .enumerate()
            .filter(|(i, _)| ![Some(phone), name, timezone, id].contains(&Some(*i)))
            .map(|(i, _)| {
                (
                    i,
                    headers[i].trim_start_matches('\u{feff}').trim().to_owned(),
                )
            })
            .collect();
        Ok(Self {
            file: file.to_owned(),
            reader,
            starts,
            parser: RowParser {
                columns: Columns {
                    phone,
                    name,
                    timezone,
                    id,
                    extra,
                    count: headers.len(),
                },
                region,
            },
            record: csv::StringRecord::new(),
            bytes: csv::ByteRecord::new(),
            line: 0,
        })
    }

    /// Line of the last row read.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Bytes read so far (for a progress bar).
    pub fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The parser of this file's rows (for parsing on other threads).
    pub fn parser(&self) -> RowParser {
        self.parser.clone()
    }

    /// The next row, unparsed: `None` at the end, a hard `CsvError` for an unreadable file.
    /// Blank lines are skipped; a row that is not UTF-8 comes back already rejected.
    pub fn next_raw(&mut self) -> Result<Option<RawRow>, CsvError> {
        loop {
            self.bytes = std::mem::take(&mut self.record).into_byte_record();
            let more = self
                .reader
                .read_byte_record(&mut self.bytes)
                .map_err(|e| read_error(&self.file, &e))?;
            if !more {
                return Ok(None);
            }
            self.line = self.record_line();
            // a row that is not UTF-8 is a bad row, not a bad file
            let record = match csv::StringRecord::from_byte_record(std::mem::take(&mut self.bytes))
            {
                Ok(record) => record,
                Err(e) => {
                    self.bytes = e.into_byte_record();
                    return Ok(Some(RawRow::Rejected(Rejection {
                        line: self.line,
                        reason: "not valid UTF-8: save the file as UTF-8".to_owned(),
                        raw: raw_line(&self.bytes),
                    })));
                }
            };
            // a blank line is not a row
            if record.len() == 1 && record[0].trim().is_empty() {
                self.record = record;
                continue;
            }
            return Ok(Some(RawRow::Record {
                line: self.line,
                record,
            }));
        }
    }

    /// The line the record just read starts on. The parser's own count is the line where it
    /// began looking for the record, before the blank lines it skips and the `\n` of a CRLF
    /// (and it never counts a lone CR), so every row of a Windows file would be reported one
    /// line early: the line is that of the first line with content at or after that byte.
    fn record_line(&self) -> u64 {
        let Some(position) = self.bytes.position() else {
            return 0;
        };
        let mut starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        while starts.front().is_some_and(|&(at, _)| at < position.byte()) {
            starts.pop_front();
        }
        starts.front().map_or(position.line(), |&(_, line)| line)
    }

    /// The next row, parsed: `None` at the end, `Some(Err)` for a rejected row (the caller decides
    /// whether to go on), a hard `CsvError` for an unreadable file.
    pub fn next_row(&mut self) -> Result<Option<Result<NewContact, Rejection>>, CsvError> {
        Ok(self.next_raw()?.map(|raw| raw.parse(&self.parser).1))
    }
}

impl RowParser {
    /// Validates one record into a contact, or says what is wrong with it.
    pub fn parse(&self, r: &csv::StringRecord) -> Result<NewContact, String> {
        let c = &self.columns;
        if r.len() != c.count {
            return Err(format!(
                "wrong column count: expected {} fields, found {} (quote values that contain commas)",
                c.count,
                r.len()
            ));
        }
        let get = |i: Option<usize>| i.map(|i| r[i].trim()).filter(|v| !v.is_empty());
        let phone = phone::normalize(&r[c.phone], &self.region).map_err(|e| e.to_string())?;
        let zones = match get(c.timezone) {
            Some(z) => Some(
                z.parse::<Tz>()
                    .map_err(|_| {
                        format!("unknown timezone `{z}`: use an IANA name like `America/Chicago`")
                    })?
                    .name()
                    .to_owned(),
            ),
            None => {
                let zones = phone::contact_zones(&phone);
                (!zones.is_empty()).then(|| zones.join("|"))
            }
        };
        let mut fields = serde_json::Map::new();
        for (i, h) in &c.extra {
            fields.insert(h.clone(), serde_json::Value::String(r[*i].to_owned()));
        }
        Ok(NewContact {
            phone,
            ext_id: get(c.id).map(str::to_owned),
            name: get(c.name).map(str::to_owned),
            zones,
            fields: serde_json::Value::Object(fields).to_string(),
        })
    }
}

/// The input, passed through while noting where each line with content starts (byte offset,
/// line number); a line ends at `\n`, `\r\n` or a lone `\r`, as CSV records do. The reader
/// drops the entries behind the record it reads, so they never outgrow its read-ahead buffer.
struct LineStarts<R> {
    inner: R,
    starts: Arc<Mutex<VecDeque<(u64, u64)>>>,
    offset: u64,
    line: u64,
    at_line_start: bool,
    after_cr: bool,
}

impl<R> LineStarts<R> {
    fn new(inner: R, starts: Arc<Mutex<VecDeque<(u64, u64)>>>) -> Self {
        Self {
            inner,
            starts,
            offset: 0,
            line: 1,
            at_line_start: true,
            after_cr: false,
        }
    }
}

impl<R: Read> Read for LineStarts<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        for &b in &buf[..n] {
            match b {
                b'\n' if self.after_cr => {}
                b'\n' | b'\r' => {
                    self.line += 1;
                    self.at_line_start = true;
                }
                _ if self.at_line_start => {
                    starts.push_back((self.offset, self.line));
                    self.at_line_start = false;
                }
                _ => {}
            }
            self.after_cr = b == b'\r';
            self.offset += 1;
        }
        Ok(n)
    }
}

fn read_error(file: &str, e: &csv::Error) -> CsvError {
    let line = e.position().map_or(1, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8: save the file as UTF-8".to_owned(),
        _ => e.to_string(),
    };
    CsvError::Read {
        file: file.to_owned(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(csv: &str) -> Vec<Result<NewContact, Rejection>> {
        let mut r = ContactReader::new("c.csv", csv.as_bytes(), Region::parse("US").expect("US"))
            .expect("header");
        let mut out = Vec::new();
        while let Some(row) = r.next_row().expect("readable") {
            out.push(row);
        }
        out
    }

    #[test]
    fn aliases_bom_and_extra_fields() {
        let out = rows("\u{feff}Telefono,Name,plan\n(212) 555-0101,Ann,gold\n");
        let c = out[0].as_ref().expect("valid row");
        assert_eq!(c.phone, "+12125550101");
        assert_eq!(c.name.as_deref(), Some("Ann"));
        assert_eq!(c.fields, r#"{"plan":"gold"}"#);
    }

    #[test]
    fn bad_rows_are_line_numbered() {
        let out = rows(
            "phone,timezone\n+12125550101,Mars/Base\nnot a number,\n+12125550101\n\n+12125550102,America/Chicago\n",
        );
        let reasons: Vec<_> = out
            .iter()
            .map(|r| {
                r.as_ref()
                    .map_err(|e| (e.line, e.reason.clone()))
                    .map(|c| c.zones.clone())
            })
            .collect();
        assert!(
            matches!(&reasons[0], Err((2, m)) if m.contains("unknown timezone `Mars/Base`")),
            "{reasons:?}"
        );
        assert!(
            matches!(&reasons[1], Err((3, m)) if m.contains("not a valid phone number")),
            "{reasons:?}"
        );
        assert!(
            matches!(&reasons[2], Err((4, m)) if m.contains("wrong column count")),
            "{reasons:?}"
        );
        assert_eq!(reasons[3], Ok(Some("America/Chicago".to_owned())));
    }

    #[test]
    fn a_row_that_is_not_utf8_is_rejected_and_reading_goes_on() {
        let input: &[u8] = b"phone,name\n+12125550101,Ann\xff\n+12125550102,Bo\n";
        let mut r =
            ContactReader::new("c.csv", input, Region::parse("US").expect("US")).expect("header");
        let bad = r.next_row().expect("readable").expect("a row");
        assert_eq!(
            bad.err().map(|e| (e.line, e.reason.contains("UTF-8"))),
            Some((2, true))
        );
        let good = r
            .next_row()
            .expect("readable")
            .expect("a row")
            .expect("valid");
        assert_eq!((good.phone.as_str(), r.line()), ("+12125550102", 3));
        assert!(r.next_row().expect("readable").is_none());
    }

    #[test]
    fn missing_phone_column_is_a_file_error() {
        let err = ContactReader::new(
            "c.csv",
            "name,email\n".as_bytes(),
            Region::parse("US").expect("US"),
        )
        .err()
        .expect("error");
        assert!(
            err.to_string().starts_with("c.csv:1: no phone column"),
            "{err}"
        );
    }

    /// Found by `contacts_fuzz_tests`: with CRLF line ends every row was reported one line
    /// early (`contacts.csv:1:` for the first row), and blank lines were not counted.
    #[test]
    fn regression_crlf_and_blank_lines_keep_line_numbers() {
        for (csv, want) in [
            ("phone\r\nbad\r\n+12125550101\r\nbad\r\n", vec![2, 3, 4]),
            ("phone\n\n\nbad\n\r\n\nbad\n", vec![4, 7]),
            ("phone\rbad\r\rbad", vec![2, 4]),
            (
                "phone,name\r\n\"+1212\r\n5550101\",x\r\nbad,y\r\n",
                vec![2, 4],
            ),
        ] {
            let mut r =
                ContactReader::new("c.csv", csv.as_bytes(), Region::parse("US").expect("US"))
                    .expect("header");
            let mut lines = Vec::new();
            while let Some(row) = r.next_row().expect("readable") {
                let line = r.line();
                if let Err(e) = row {
                    assert_eq!(e.line, line, "{csv:?}");
                }
                lines.push(line);
            }
            assert_eq!(lines, want, "{csv:?}");
        }
    }
}
