//! `examples/gen_contacts.rs`: deterministic, unique, valid numbers that import with no
//! rejection.

use std::collections::HashSet;

use dialer::campaign::phone::{Region, normalize};

use crate::gen_contacts::generate;
use crate::harness::{Test, campaign};

fn generated(n: u64, seed: u64) -> String {
    let mut out = Vec::new();
    generate(n, seed, &mut out).expect("generate");
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn same_seed_same_file_other_seed_other_file() {
    assert_eq!(generated(500, 7), generated(500, 7));
    assert_ne!(generated(500, 7), generated(500, 8));
    let text = generated(3, 1);
    assert_eq!(text.lines().count(), 4);
    assert_eq!(text.lines().next(), Some("id,name,phone,timezone,segment"));
}

#[test]
fn numbers_are_valid_unique_and_in_mixed_forms() {
    let text = generated(20_000, 42);
    let us = Region::parse("US").expect("US");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut seen = HashSet::new();
    let (mut national, mut plus1, mut es00, mut uk, mut zoned) = (0, 0, 0, 0, 0);
    for record in reader.records() {
        let r = record.expect("valid CSV");
        assert_eq!(r.len(), 5);
        let raw = &r[2];
        let e164 = normalize(raw, &us).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert!(seen.insert(e164.clone()), "{raw} ({e164}) repeats");
        if raw.starts_with('(') {
            national += 1;
        }
        if raw.starts_with("+1") {
            plus1 += 1;
        }
        if raw.starts_with("0034 6") {
            es00 += 1;
        }
        if raw.starts_with("+44 20 ") {
            uk += 1;
        }
        if !r[3].is_empty() {
            r[3].parse::<chrono_tz::Tz>().expect("an IANA zone");
            zoned += 1;
        }
    }
    assert_eq!(seen.len(), 20_000);
    for (form, count) in [
        ("(212) 555-0123", national),
        ("+1 …", plus1),
        ("0034 6…", es00),
        ("+44 20 …", uk),
    ] {
        assert!(count > 1_000, "too few `{form}`: {count}");
    }
    assert!((5_000..9_000).contains(&zoned), "zoned rows: {zoned}");
}

#[test]
fn ten_thousand_generated_rows_import_with_no_rejection() {
    let t = Test::new();
    t.import_campaign("c.json", &campaign("Load", ""));
    t.write("big.csv", generated(10_000, 3));
    t.cmd([
        "contacts",
        "import",
        "--campaign",
        "Load",
        "big.csv",
        "--strict",
    ])
    .stdout("big.csv: 10000 imported, 0 updated, 0 unchanged, 0 duplicates, 0 rejected\n")
    .stderr("")
    .run();
}
