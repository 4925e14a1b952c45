//! Allocation-free CSV cell formatting for the exports: integers and RFC 3339 UTC instants
//! (`2026-11-23T15:00:07Z`) written into a reused buffer, and the guard that keeps
//! spreadsheets from running a cell as a formula (CSV injection).

use std::fmt::Write as _;
use std::io::Write;

/// How the exports write cells that a spreadsheet would run as a formula.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cells {
    /// OWASP's CSV injection guidance: such a cell gets a leading `'`, so spreadsheets show it
    /// as text (the CSV writer still quotes it when its content needs quotes).
    #[default]
    Neutralised,
    /// Every cell exactly as stored (`--raw`).
    Raw,
}

/// Whether a spreadsheet would run `cell` as a formula: it begins with `=`, `+`, `-`, `@`, tab
/// or CR (OWASP). A sign followed only by digits is the exception: an E.164 number
/// (`+14155550100`) or a negative integer is read as that number, cannot hold a formula, and
/// stays as is so phone numbers round-trip into other tools unchanged.
pub fn is_formula(cell: &[u8]) -> bool {
    match cell {
        [b'=' | b'@' | b'\t' | b'\r', ..] => true,
        [b'+' | b'-', rest @ ..] => rest.is_empty() || !rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Writes one text cell; with [`Cells::Neutralised`] a formula-like cell gets a leading `'`
/// (built in the reused `scratch`).
pub fn write_text<W: Write>(
    w: &mut csv::Writer<W>,
    scratch: &mut Vec<u8>,
    cells: Cells,
    value: &str,
) -> Result<(), csv::Error> {
    if cells == Cells::Neutralised && is_formula(value.as_bytes()) {
        scratch.clear();
        scratch.push(b'\'');
        scratch.extend_from_slice(value.as_bytes());
        w.write_field(&scratch[..])
    } else {
        w.write_field(value)
    }
}

/// Writes one numeric cell formatted by `push` into the reused `scratch`; empty when `None`.
/// The dialer's own integers and instants never look like formulas, but an instant outside
/// four-digit years (`+10000-01-01T00:00:00Z`) would: it is guarded like text.
pub fn write_number<W: Write>(
    w: &mut csv::Writer<W>,
    scratch: &mut Vec<u8>,
    cells: Cells,
    v: Option<i64>,
    push: fn(&mut Vec<u8>, i64),
) -> Result<(), csv::Error> {
    scratch.clear();
    if let Some(v) = v {
        push(scratch, v);
    }
    if cells == Cells::Neutralised && is_formula(scratch) {
        scratch.insert(0, b'\'');
    }
    w.write_field(&scratch[..])
}

/// Unix seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range the fast path
/// formats; anything outside goes through chrono.
const FAST_MIN: i64 = -62_167_219_200;
const FAST_MAX: i64 = 253_402_300_799;

/// Appends the decimal digits of `v`.
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `secs` (unix seconds) as RFC 3339 UTC with whole seconds, like `2026-11-23T15:00:07Z`.
pub fn push_rfc3339(out: &mut Vec<u8>, secs: i64) {
    if !(FAST_MIN..=FAST_MAX).contains(&secs) {
        let mut s = String::new();
        match chrono::DateTime::from_timestamp(secs, 0) {
            Some(t) => {
                let _ = write!(s, "{}", t.format("%Y-%m-%dT%H:%M:%SZ"));
            }
            None => push_int(out, secs),
        }
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let two = |out: &mut Vec<u8>, v: i64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, sod / 3600);
    out.push(b':');
    two(out, sod / 60 % 60);
    out.push(b':');
    two(out, sod % 60);
    out.push(b'Z');
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> String {
        let mut out = Vec::new();
        push_int(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn stamp(secs: i64) -> String {
        let mut out = Vec::new();
        push_rfc3339(&mut out, secs);
        String::from_utf8(out).unwrap()
    }

    fn chrono_stamp(secs: i64) -> String {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    #[test]
    fn integers() {
        for v in [0, 7, 10, 59, 60, -1, -21_211, 1_000_000, i64::MAX, i64::MIN] {
            assert_eq!(int(v), v.to_string());
        }
    }

    #[test]
    fn instants_match_chrono() {
        assert_eq!(stamp(1_795_446_007), "2026-11-23T15:00:07Z");
        assert_eq!(stamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(stamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(stamp(-1), "1969-12-31T23:59:59Z");
        assert_eq!(stamp(FAST_MIN), "0000-01-01T00:00:00Z");
        assert_eq!(stamp(FAST_MAX), "9999-12-31T23:59:59Z");
        // a spread of instants across leap years, century rules and every time of day
        let mut secs = FAST_MIN;
        while secs < FAST_MAX {
            assert_eq!(stamp(secs), chrono_stamp(secs), "unix seconds {secs}");
            secs += 3_901_337;
        }
        for secs in 1_700_000_000..1_700_100_000 {
            assert_eq!(stamp(secs), chrono_stamp(secs), "unix seconds {secs}");
        }
    }

    #[test]
    fn formula_cells_are_those_owasp_lists_except_signed_integers() {
        for cell in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)",
            "\t=1",
            "\r=1",
            "+",
            "-",
            "+1 555",
            "+10000-01-01T00:00:00Z",
        ] {
            assert!(is_formula(cell.as_bytes()), "{cell:?}");
        }
        for cell in [
            "",
            "+14155550100",
            "-21211",
            "0",
            "Jo",
            " =1",
            "2026-11-23T15:00:07Z",
        ] {
            assert!(!is_formula(cell.as_bytes()), "{cell:?}");
        }
    }

    #[test]
    fn instants_outside_four_digit_years_still_format() {
        assert_eq!(stamp(FAST_MAX + 1), "+10000-01-01T00:00:00Z");
        assert_eq!(stamp(i64::MAX), i64::MAX.to_string());
    }
}
