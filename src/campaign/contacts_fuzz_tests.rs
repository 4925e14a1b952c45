//! Property tests (fuzzing in CI, SPEC §10) of contact input: phone numbers through
//! [`phone::normalize`] in several default regions, and arbitrary bytes and rows through the
//! contacts CSV reader and row parser. No input may panic; an accepted number is E.164 and
//! normalizes to itself; an accepted row carries such a number.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); failures proptest finds are
//! kept in `proptest-regressions/campaign/contacts_fuzz_tests.txt` and replayed first.

use proptest::prelude::*;
use proptest::sample::select;

use super::contacts_csv::{ContactReader, PHONE_ALIASES};
use super::phone::{self, Region};

const REGIONS: &[&str] = &[
    "US", "CA", "GB", "ES", "DE", "FR", "IT", "MX", "BR", "AR", "IN", "CN", "JP", "AU", "RU", "NG",
    "IR", "VA", "KZ", "SH",
];

fn region() -> impl Strategy<Value = Region> {
    select(REGIONS).prop_map(|r| Region::parse(r).expect("a known region"))
}

/// Hand-picked inputs from the edges of libphonenumber's parser, kept as seeds.
const SEED_NUMBERS: &[&str] = &[
    "+12125550101",
    "(212) 555-0101",
    "(212) 555-O1O1",
    "1-800-FLOWERS",
    "0034 600 123 456",
    "+34 600 123 456",
    "+1 212 555 0101 ext. 12",
    "tel:+1-212-555-0101;ext=1",
    "tel:+1-212-555-0101;phone-context=+1",
    "+",
    "00",
    "++1",
    "+0",
    "+１２１２５５５０１０１",
    "٠١٢٣٤٥٦٧٨٩",
    "+800 1234 5678",
    "+882 1234 5678",
    "+979 123456789",
    "011 44 20 7946 0958",
    "+44 (0) 20 7946 0958",
    "+999999999999999999999999999",
    "1;ext=",
    "+1-\u{0}",
    "+7 ABC DEFG HIJK",
    "ext. 1234",
];

/// Phone-like text: digits with the separators, plus signs, letters and Unicode digits the
/// parser treats specially.
fn phone_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(SEED_NUMBERS).prop_map(str::to_owned),
        4 => "(\\+|00|011|\\+\\+)?[0-9 ()\\-.]{0,22}",
        2 => "\\+?[0-9A-Za-z ()\\-.#*;=/:]{0,24}",
        1 => "[+＋]?[0-9０-９٠-٩۰-۹]{1,16}",
        1 => "(tel:)?\\+?[0-9\\-]{0,15}(;(ext|isub|phone-context)=[0-9A-Za-z+.\\-]{0,8}){0,2}",
        1 => "\\PC{0,24}",
        1 => ".{0,30}",
    ]
}

/// `+[1-9]\d{1,14}`.
fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn check_number(raw: &str, region: &Region, other: &Region) -> Result<(), TestCaseError> {
    let Ok(e164) = phone::normalize(raw, region) else {
        return Ok(());
    };
    prop_assert!(is_e164(&e164), "`{raw}` in {region} → `{e164}`");
    let again = phone::normalize(&e164, region);
    prop_assert_eq!(
        again,
        Ok(e164.clone()),
        "`{}` in {} is not stable",
        raw,
        region
    );
    // the international form does not depend on the default region
    let elsewhere = phone::normalize(&e164, other);
    prop_assert_eq!(elsewhere, Ok(e164.clone()), "`{}` read in {}", e164, other);
    // the zones of an accepted number can be looked up
    let _ = phone::contact_zones(&e164);
    Ok(())
}

/// A CSV cell: plain, quoted, with the characters that matter to the reader and the parser.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => phone_text(),
        2 => "[a-zA-Z ,\"\\r\\n\\t]{0,10}",
        1 => "\"[^\"]{0,10}\"",
        1 => select(&["America/Chicago", "Mars/Base", "UTC", " ", "\u{feff}"][..]).prop_map(str::to_owned),
        1 => "\\PC{0,10}",
    ]
}

fn header() -> impl Strategy<Value = Vec<String>> {
    let column = prop_oneof![
        3 => select(&PHONE_ALIASES[..]).prop_map(str::to_owned),
        3 => select(&["name", "timezone", "id", "Name", " ID ", "\u{feff}phone", "plan", ""][..])
            .prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ];
    prop::collection::vec(column, 1..6)
}

/// A whole file: a header, then rows of cells (not always the header's width).
fn csv_file() -> impl Strategy<Value = Vec<u8>> {
    let rows = prop::collection::vec(prop::collection::vec(cell(), 0..7), 0..8);
    let newline = select(&["\n", "\r\n", "\r"][..]);
    (header(), rows, newline, any::<bool>()).prop_map(|(header, rows, nl, bom)| {
        let mut text = String::new();
        if bom {
            text.push('\u{feff}');
        }
        text.push_str(&header.join(","));
        for row in rows {
            text.push_str(nl);
            text.push_str(&row.join(","));
        }
        text.into_bytes()
    })
}

/// A file whose bytes are damaged at a few places (invalid UTF-8, stray quotes, NULs).
fn damaged_file() -> impl Strategy<Value = Vec<u8>> {
    (
        csv_file(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte) in edits {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            }
            bytes
        })
}

/// Reads a whole file as the import does; checks every row's result.
fn read_all(bytes: &[u8], region: Region) -> Result<(), TestCaseError> {
    let Ok(mut reader) = ContactReader::new("c.csv", bytes, region) else {
        return Ok(());
    };
    let mut last = 0;
    // a bounded loop: every read consumes input, so more rows than bytes is a hang
    for _ in 0..=bytes.len() + 1 {
        match reader.next_row() {
            Ok(None) | Err(_) => return Ok(()),
            Ok(Some(row)) => {
                let line = reader.line();
                prop_assert!(line >= 2 && line >= last, "line {line} after {last}");
                last = line;
                match row {
                    Ok(c) => {
                        prop_assert!(is_e164(&c.phone), "{}", c.phone);
                        prop_assert!(serde_json::from_str::<serde_json::Value>(&c.fields).is_ok());
                    }
                    Err(r) => prop_assert!(r.line == line && !r.reason.is_empty()),
                }
            }
        }
    }
    prop_assert!(false, "the reader never ended");
    Ok(())
}

proptest! {
    #[test]
    fn phone_numbers_never_panic_and_normalize_to_stable_e164(
        raw in phone_text(),
        region in region(),
        other in region(),
    ) {
        check_number(&raw, &region, &other)?;
    }

    #[test]
    fn contacts_csv_files_never_panic(bytes in csv_file(), region in region()) {
        read_all(&bytes, region)?;
    }

    #[test]
    fn damaged_contacts_csv_files_never_panic(bytes in damaged_file(), region in region()) {
        read_all(&bytes, region)?;
    }

    #[test]
    fn arbitrary_bytes_as_contacts_csv_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        region in region(),
    ) {
        read_all(&bytes, region)?;
    }

    #[test]
    fn rows_of_any_width_never_panic(
        header in header(),
        rows in prop::collection::vec(prop::collection::vec(cell(), 0..7), 1..6),
        region in region(),
    ) {
        // records built directly, so cells hold what CSV quoting would otherwise protect
        let text = header.join(",");
        let Ok(reader) = ContactReader::new("c.csv", text.as_bytes(), region) else {
            return Ok(());
        };
        let parser = reader.parser();
        for row in rows {
            if let Ok(c) = parser.parse(&csv::StringRecord::from(row)) {
                prop_assert!(is_e164(&c.phone), "{}", c.phone);
            }
        }
    }
}

#[test]
fn seed_numbers_normalize_as_libphonenumber_does() {
    let us = Region::parse("US").expect("US");
    let gb = Region::parse("GB").expect("GB");
    for raw in SEED_NUMBERS {
        for region in [us, gb] {
            check_number(raw, &region, &us).unwrap_or_else(|e| panic!("{raw}: {e}"));
        }
    }
    assert_eq!(
        phone::normalize("(212) 555-0101", &us).as_deref(),
        Ok("+12125550101")
    );
    assert!(phone::normalize("(212) 555-O1O1", &us).is_err());
}
