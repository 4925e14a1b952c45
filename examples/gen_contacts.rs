//! Generates a large contacts CSV for load tests:
//!
//! ```text
//! cargo run --release --example gen_contacts -- N [SEED] > contacts.csv
//! ```
//!
//! Writes the header `id,name,phone,timezone,segment` and N rows whose numbers are unique and
//! valid (per libphonenumber) in mixed written forms: US national (`(212) 555-0123`,
//! `212-555-0123`, …) over many area codes, `+1 …`, Spanish mobiles (`0034 6xx xxx xxx`), and
//! London numbers (`+44 20 …`); about a third of the rows carry a `timezone` cell. The same N and
//! SEED always give the same file. Rows are streamed (constant memory).
//!
//! Uniqueness without remembering numbers: each row picks a kind (US, Spain, UK) at random, and
//! the k-th row of a kind gets the k-th number of that kind's space under a fixed bijection
//! `k -> (k * MUL + OFFSET) mod SIZE` (MUL coprime with SIZE), so no two rows share a number.

use std::io::{self, BufWriter, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The most rows one file can hold: the smallest number space (UK, 3 × 10⁷) bounds it.
pub const MAX_ROWS: u64 = 30_000_000;

/// US area codes and their zone. Only codes whose numbers are plain `NXX-XXXX` in
/// libphonenumber's metadata (no split area codes).
const US_AREAS: [(u16, &str); 17] = [
    (212, "America/New_York"),
    (646, "America/New_York"),
    (718, "America/New_York"),
    (617, "America/New_York"),
    (404, "America/New_York"),
    (312, "America/Chicago"),
    (214, "America/Chicago"),
    (512, "America/Chicago"),
    (303, "America/Denver"),
    (602, "America/Phoenix"),
    (415, "America/Los_Angeles"),
    (213, "America/Los_Angeles"),
    (206, "America/Los_Angeles"),
    (702, "America/Los_Angeles"),
    (808, "Pacific/Honolulu"),
    (907, "America/Anchorage"),
    (313, "America/Detroit"),
];
/// Per area code: exchange 200–999 × line 0000–9999.
const US_PER_AREA: u64 = 8_000_000;
const US_MUL: u64 = 7_654_321;

/// Spanish mobiles `6xx xxx xxx`.
const ES_SIZE: u64 = 100_000_000;
const ES_MUL: u64 = 91_234_567;

/// London `20 [378]xxx xxxx`.
const UK_PREFIXES: [u64; 3] = [3, 7, 8];
const UK_SIZE: u64 = 30_000_000;
const UK_MUL: u64 = 7_777_777;

const FIRST: [&str; 16] = [
    "Ann", "Bob", "Carmen", "Dmitri", "Eve", "Frank", "Grace", "Hiro", "Isabel", "Jack", "Kim",
    "Luis", "María", "Noah", "Olga", "Pat",
];
const LAST: [&str; 16] = [
    "Johnson", "Smith", "Ruiz", "Ivanov", "Adams", "O'Brien", "Lee", "Tanaka", "Moreau", "Wilson",
    "Nguyen", "García", "Müller", "Brown", "Kowalski", "Silva",
];
const SEGMENTS: [&str; 4] = ["gold", "silver", "bronze", "new"];

/// Writes the header and `n` rows for `seed`.
pub fn generate<W: Write>(n: u64, seed: u64, out: W) -> io::Result<()> {
    if n > MAX_ROWS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {MAX_ROWS} rows: the UK number space is that large"),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let us_offset = rng.random_range(0..US_PER_AREA);
    let es_offset = rng.random_range(0..ES_SIZE);
    let uk_offset = rng.random_range(0..UK_SIZE);
    let (mut us, mut es, mut uk) = (0u64, 0u64, 0u64);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    out.write_all(b"id,name,phone,timezone,segment\n")?;
    for id in 1..=n {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        write!(out, "{id},{first} {last},")?;
        let kind = rng.random_range(0..100u8);
        let form = rng.random_range(0..4u8);
        let zone = if kind < 55 {
            let area_ix = (us % US_AREAS.len() as u64) as usize;
            let k = us / US_AREAS.len() as u64;
            us += 1;
            let (area, zone) = US_AREAS[area_ix];
            let r = (k * US_MUL + us_offset) % US_PER_AREA;
            let (exchange, line) = (200 + r / 10_000, r % 10_000);
            match (kind < 35, form) {
                (true, 0) => write!(out, "({area}) {exchange}-{line:04}")?,
                (true, 1) => write!(out, "{area}-{exchange}-{line:04}")?,
                (true, 2) => write!(out, "{area}.{exchange}.{line:04}")?,
                (true, _) => write!(out, "{area}{exchange}{line:04}")?,
                (false, 0) => write!(out, "+1 ({area}) {exchange}-{line:04}")?,
                (false, 1) => write!(out, "+1{area}{exchange}{line:04}")?,
                (false, _) => write!(out, "+1 {area} {exchange} {line:04}")?,
            }
            zone
        } else if kind < 80 {
            let r = (es * ES_MUL + es_offset) % ES_SIZE;
            es += 1;
            let (a, b, c) = (r / 1_000_000, r / 1_000 % 1_000, r % 1_000);
            if form < 2 {
                write!(out, "0034 6{a:02} {b:03} {c:03}")?;
            } else {
                let (b1, b2, c1, c2) = (b / 10, b % 10, c / 100, c % 100);
                write!(out, "+34 6{a:02} {b1:02} {b2}{c1} {c2:02}")?;
            }
            "Europe/Madrid"
        } else {
            let r = (uk * UK_MUL + uk_offset) % UK_SIZE;
            uk += 1;
            let prefix = UK_PREFIXES[(r / 10_000_000) as usize];
            let (a, b) = (r % 10_000_000 / 10_000, r % 10_000);
            let intl = if form < 2 { "+44" } else { "0044" };
            write!(out, "{intl} 20 {prefix}{a:03} {b:04}")?;
            "Europe/London"
        };
        let zone = if rng.random_range(0..3u8) == 0 {
            zone
        } else {
            ""
        };
        let segment = SEGMENTS[rng.random_range(0..SEGMENTS.len())];
        writeln!(out, ",{zone},{segment}")?;
    }
    out.flush()
}

fn usage() -> ! {
    eprintln!(
        "usage: gen_contacts N [SEED]  (N rows to stdout, at most {MAX_ROWS}; SEED default 1)"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n = args
        .next()
        .and_then(|a| a.replace('_', "").parse::<u64>().ok())
        .unwrap_or_else(|| usage());
    let seed = match args.next() {
        Some(s) => s.parse::<u64>().unwrap_or_else(|_| usage()),
        None => 1,
    };
    if args.next().is_some() {
        usage();
    }
    match generate(n, seed, io::stdout().lock()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
