//! `contacts import` end to end (SPEC §4): every kind of bad row, with and without `--strict`,
//! header-level failures, duplicates, idempotent re-import, updates, `--dry-run`, BOM and number
//! normalization.

use crate::harness::{Output, Test, assert_one_error, campaign, table_rows};

const CAMPAIGN: &str = "Contacts";

/// A sandbox with one campaign and one contact already imported (so there is a database to
/// compare before and after).
fn sandbox() -> Test {
    let t = Test::new();
    t.import_campaign(
        "c.json",
        &campaign(CAMPAIGN, r#""timezone": "Europe/Madrid""#),
    );
    t.import_contacts(
        CAMPAIGN,
        "seed.csv",
        "id,name,phone,timezone\n0,Seed,+12125550100,America/New_York\n",
    );
    t
}

/// The summary line's counts: imported, updated, unchanged, duplicates, rejected.
fn counts(out: &Output) -> [u64; 5] {
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" imported, "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", out.stdout));
    let mut it = line.split([':', ',']).skip(1).map(|part| {
        part.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("bad summary `{line}`"))
    });
    [(); 5].map(|()| {
        it.next()
            .unwrap_or_else(|| panic!("short summary `{line}`"))
    })
}

/// Each bad row: (what it guards, file bytes, line of the bad row, text of the reason).
fn bad_rows() -> Vec<(&'static str, Vec<u8>, u64, &'static str)> {
    let file = |bad: &[u8]| {
        let mut f = b"phone,name,timezone\n+12125550101,Good,America/New_York\n".to_vec();
        f.extend_from_slice(bad);
        f
    };
    vec![
        (
            "invalid number",
            file(b"not a number,Bad,\n"),
            3,
            "not a valid phone number",
        ),
        (
            "empty number",
            file(b",Nobody,\n"),
            3,
            "phone number is empty",
        ),
        (
            "letter O typed for a zero (was imported as another number)",
            file(b"(212) 555-O1O1,Typo,\n"),
            3,
            "`(212) 555-O1O1` is not a valid phone number: it has a letter among its digits",
        ),
        (
            "letter l typed for a one (was imported as another number)",
            file(b"+1 212 555 0l99,Typo,\n"),
            3,
            "`+1 212 555 0l99` is not a valid phone number: it has a letter among its digits",
        ),
        (
            "unknown timezone",
            file(b"+12125550102,Bad,Mars/Olympus\n"),
            3,
            "unknown timezone `Mars/Olympus`",
        ),
        (
            "wrong column count",
            file(b"+12125550102,Bad\n"),
            3,
            "wrong column count",
        ),
        (
            "non-UTF-8 bytes",
            file(b"+12125550102,Bad\xff\xfe,America/New_York\n"),
            3,
            "UTF-8",
        ),
    ]
}

#[test]
fn each_bad_row_with_strict_fails_with_one_line_and_writes_nothing() {
    let t = sandbox();
    let before = t.dump();
    for (i, (what, bytes, line, reason)) in bad_rows().into_iter().enumerate() {
        let file = format!("bad-{i}.csv");
        t.write(&file, &bytes);
        let out = t
            .cmd([
                "contacts",
                "import",
                "--campaign",
                CAMPAIGN,
                &file,
                "--strict",
            ])
            .status(1)
            .run();
        assert_one_error(&out, &[&format!("{file}:{line}: "), reason]);
        assert_eq!(t.dump(), before, "{what}: the database changed");
    }
}

#[test]
fn each_bad_row_without_strict_is_reported_and_skipped() {
    let t = sandbox();
    for (i, (what, bytes, line, reason)) in bad_rows().into_iter().enumerate() {
        let file = format!("bad-{i}.csv");
        t.write(&file, &bytes);
        let out = t
            .cmd(["contacts", "import", "--campaign", CAMPAIGN, &file])
            .run();
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {}", out.stderr);
        assert!(
            lines[0].starts_with(&format!("{file}:{line}: ")) && lines[0].contains(reason),
            "{what}: {}",
            lines[0]
        );
        // the good row is the same number each time: imported once, then unchanged
        let expected = if i == 0 {
            [1, 0, 0, 0, 1]
        } else {
            [0, 0, 1, 0, 1]
        };
        assert_eq!(counts(&out), expected, "{what}: {}", out.stdout);
    }
    let contacts = table_rows(&t.dump(), "contacts");
    assert_eq!(contacts.len(), 2, "seed + the good row: {contacts:?}");
}

#[test]
fn header_errors_fail_even_without_strict_and_write_nothing() {
    let t = sandbox();
    let before = t.dump();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "no phone column",
            b"name,email\nAnn,ann@example.com\n",
            "phone",
        ),
        ("empty file", b"", "empty"),
        ("only blank lines", b"\n\n", "empty"),
        (
            "non-UTF-8 header",
            b"ph\xffone,name\n+12125550101,Ann\n",
            "UTF-8",
        ),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        let file = format!("head-{i}.csv");
        t.write(&file, bytes);
        for strict in [false, true] {
            let mut args = vec!["contacts", "import", "--campaign", CAMPAIGN, file.as_str()];
            if strict {
                args.push("--strict");
            }
            let out = t.cmd(args).status(1).run();
            assert_one_error(&out, &[&format!("{file}:1: "), reason]);
            assert_eq!(
                t.dump(),
                before,
                "{what} (strict: {strict}): the database changed"
            );
        }
    }
}

#[test]
fn unknown_campaign_fails_and_writes_nothing() {
    let t = sandbox();
    let before = t.dump();
    t.write("c.csv", "phone\n+12125550101\n");
    let out = t
        .cmd(["contacts", "import", "--campaign", "Nope", "c.csv"])
        .status(1)
        .run();
    assert_one_error(&out, &["`Nope`"]);
    assert_eq!(t.dump(), before);
}

#[test]
fn mixed_file_counts_and_reports_every_bad_line() {
    let t = sandbox();
    let csv = "\
id,name,phone,timezone,plan
1,Ann,(212) 555-0101,America/New_York,gold
2,Bo,+1 212 555 0101,America/New_York,gold
3,Cy,12345,,silver
4,Di,+34 612 345 678,Europe/Madrid,gold
5,Ed,+44 20 7946 0958,Nowhere/Zone,bronze
6,Fi,+12125550100,America/New_York
7,Gu,+12125550100,America/New_York,seed
";
    t.write("mixed.csv", csv);
    let out = t
        .cmd(["contacts", "import", "--campaign", CAMPAIGN, "mixed.csv"])
        .run();
    // 1 and 4 new; 2 duplicates 1; 3, 5, 6 rejected; 7 updates the seed contact (new field).
    assert_eq!(counts(&out), [2, 1, 0, 1, 3], "{}", out.stdout);
    for line in [3, 4, 6, 7] {
        assert!(
            out.stderr.contains(&format!("mixed.csv:{line}: ")),
            "line {line} not reported:\n{}",
            out.stderr
        );
    }
    assert_eq!(out.stderr.lines().count(), 4, "{}", out.stderr);
    assert_eq!(table_rows(&t.dump(), "contacts").len(), 3);
}

#[test]
fn duplicates_are_counted_and_kept_once() {
    let t = sandbox();
    let out = t.import_contacts(
        CAMPAIGN,
        "dups.csv",
        "phone,name,timezone\n+13125550101,First,America/Chicago\n(312) 555-0101,Second,America/Chicago\n+1.312.555.0101,Third,America/Chicago\n",
    );
    assert_eq!(counts(&out), [1, 0, 0, 2, 0], "{}", out.stdout);
    let contacts = table_rows(&t.dump(), "contacts");
    let mine: Vec<_> = contacts
        .iter()
        .filter(|r| r.contains("+13125550101"))
        .collect();
    assert_eq!(mine.len(), 1, "{contacts:?}");
    assert!(
        mine[0].contains("\"First\""),
        "the first row wins: {mine:?}"
    );
}

const FILE: &str = "\
id,name,phone,timezone,appointment
a1,Ann,+12125550101,America/New_York,Monday
a2,Bo,+13125550102,America/Chicago,Tuesday
a3,Cy,+34612345678,Europe/Madrid,Wednesday
";

#[test]
fn reimporting_the_same_file_changes_nothing() {
    let t = sandbox();
    t.write("same.csv", FILE);
    let first = t
        .cmd(["contacts", "import", "--campaign", CAMPAIGN, "same.csv"])
        .run();
    assert_eq!(counts(&first), [3, 0, 0, 0, 0]);
    let before = t.dump();
    let again = t
        .cmd(["contacts", "import", "--campaign", CAMPAIGN, "same.csv"])
        .stderr("")
        .run();
    assert_eq!(counts(&again), [0, 0, 3, 0, 0]);
    assert_eq!(
        comparable_contacts(&t.dump()),
        comparable_contacts(&before),
        "contacts changed on re-import"
    );
}

/// The contacts rows without `import_id` (the column that records which import last saw a row,
/// for duplicate detection) — every field a user can see must stay identical.
fn comparable_contacts(dump: &str) -> Vec<String> {
    let header = dump
        .lines()
        .find(|l| l.starts_with("== contacts ("))
        .expect("contacts table");
    let columns: Vec<&str> = header["== contacts (".len()..]
        .split(')')
        .next()
        .expect("columns")
        .split(',')
        .collect();
    let skip = columns
        .iter()
        .position(|c| *c == "import_id")
        .expect("import_id column");
    table_rows(dump, "contacts")
        .into_iter()
        .map(|r| {
            r.split('|')
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn a_changed_name_or_field_updates_and_keeps_history() {
    let t = sandbox();
    t.import_contacts(CAMPAIGN, "v1.csv", FILE);
    let db = t.db();
    db.execute(
        "UPDATE contacts SET attempts = 2, last_reason = 'busy' WHERE ext_id = 'a1'",
        [],
    )
    .expect("arrange history");
    drop(db);
    let v2 = FILE
        .replace("a1,Ann,", "a1,Annie,")
        .replace("Wednesday", "Friday");
    let out = t.import_contacts(CAMPAIGN, "v2.csv", &v2);
    assert_eq!(counts(&out), [0, 2, 1, 0, 0], "{}", out.stdout);
    let (name, attempts, reason): (String, u32, String) = t
        .db()
        .query_row(
            "SELECT name, attempts, last_reason FROM contacts WHERE ext_id = 'a1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("contact a1");
    assert_eq!(
        (name.as_str(), attempts, reason.as_str()),
        ("Annie", 2, "busy")
    );
    let fields: String = t
        .db()
        .query_row("SELECT fields FROM contacts WHERE ext_id = 'a3'", [], |r| {
            r.get(0)
        })
        .expect("contact a3");
    assert!(fields.contains("Friday"), "{fields}");
}

#[test]
fn dry_run_counts_but_writes_nothing() {
    let t = sandbox();
    let before = t.dump();
    t.write(
        "dry.csv",
        format!("{FILE}a4,Di,bad number,,x\na5,Ed,+12125550101,,dup\n"),
    );
    let out = t
        .cmd([
            "contacts",
            "import",
            "--campaign",
            CAMPAIGN,
            "dry.csv",
            "--dry-run",
        ])
        .stdout_contains("dry run")
        .run();
    assert_eq!(counts(&out), [3, 0, 0, 1, 1], "{}", out.stdout);
    assert_eq!(t.dump(), before, "--dry-run wrote to the database");
}

#[test]
fn bom_header_is_accepted() {
    let t = sandbox();
    let out = t.import_contacts(
        CAMPAIGN,
        "bom.csv",
        "\u{feff}phone,name,timezone\n+12125550111,Ann,America/New_York\n",
    );
    assert_eq!(counts(&out), [1, 0, 0, 0, 0], "{}", out.stdout);
    let name: String = t
        .db()
        .query_row(
            "SELECT name FROM contacts WHERE phone = '+12125550111'",
            [],
            |r| r.get(0),
        )
        .expect("imported");
    assert_eq!(name, "Ann");
}

#[test]
fn numbers_normalize_to_e164() {
    let t = sandbox();
    let csv = "\
telefono,timezone
0034 612 345 678,Europe/Madrid
0044 20 7946 0958,Europe/London
(415) 555-0104,America/Los_Angeles
415.555.0105,America/Los_Angeles
+1 (808) 555-0106,Pacific/Honolulu
1-212-555-0107,America/New_York
+81 3-1234-5678,Asia/Tokyo
1-800-FLOWERS,America/New_York
";
    let out = t.import_contacts(CAMPAIGN, "norm.csv", csv);
    assert_eq!(
        counts(&out),
        [8, 0, 0, 0, 0],
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let mut phones: Vec<String> = t
        .db()
        .prepare("SELECT phone FROM contacts WHERE phone <> '+12125550100' ORDER BY phone")
        .expect("select")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    phones.sort();
    assert_eq!(
        phones,
        [
            "+12125550107",
            "+14155550104",
            "+14155550105",
            "+18003569377",
            "+18085550106",
            "+34612345678",
            "+442079460958",
            "+81312345678",
        ]
    );
}

#[test]
fn extra_columns_are_kept_as_fields() {
    let t = sandbox();
    t.import_contacts(
        CAMPAIGN,
        "f.csv",
        "phone,timezone,appointment,Doctor\n+12125550121,America/New_York,Tuesday,Dr. Who\n",
    );
    let fields: String = t
        .db()
        .query_row(
            "SELECT fields FROM contacts WHERE phone = '+12125550121'",
            [],
            |r| r.get(0),
        )
        .expect("contact");
    let v: serde_json::Value = serde_json::from_str(&fields).expect("json fields");
    assert_eq!(v["appointment"], "Tuesday");
    assert_eq!(v["Doctor"], "Dr. Who");
}

#[test]
fn rows_across_many_chunks_keep_file_order() {
    // rows are validated on several threads in chunks of 1,024: reports and counts must still come
    // in file order, and a duplicate is the later row wherever the chunk boundary falls
    let t = sandbox();
    let mut csv = "phone,name\n".to_owned();
    let mut bad_lines = Vec::new();
    for i in 0..5_000u32 {
        let line = i + 2;
        if i % 997 == 0 {
            csv.push_str(&format!("not-a-number-{i},Bad\n"));
            bad_lines.push(line);
        } else if i % 1_500 == 1 {
            csv.push_str("+12125550101,Dup\n"); // first at i = 1, then repeated
        } else {
            csv.push_str(&format!("+1212{:07},Row {i}\n", 5_000_000 + i));
        }
    }
    let out = t.import_contacts(CAMPAIGN, "many.csv", &csv);
    let reported: Vec<u32> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("many.csv:"))
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    let mut sorted = reported.clone();
    sorted.sort_unstable();
    assert_eq!(reported, sorted, "reports in file order:\n{}", out.stderr);
    let rejected: Vec<u32> = out
        .stderr
        .lines()
        .filter(|l| l.contains("not a valid phone number"))
        .filter_map(|l| l.strip_prefix("many.csv:")?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(rejected, bad_lines);
    let dups: Vec<u32> = out
        .stderr
        .lines()
        .filter(|l| l.contains("duplicate"))
        .filter_map(|l| l.strip_prefix("many.csv:")?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(dups, vec![1_503, 3_003, 4_503], "{}", out.stderr);
    assert_eq!(counts(&out), [4_991, 0, 0, 3, 6]);
}

#[test]
fn many_bad_rows_print_a_screenful_and_all_go_to_the_rejects_file() {
    // 10,000 bad rows in a file must not print 10,000 lines: the first 20 notes and a count,
    // every rejected row (line, reason, the row as written) in --rejects FILE
    let t = sandbox();
    let mut csv = "phone,name\n".to_owned();
    for i in 0..3_000u32 {
        if i % 2 == 0 {
            csv.push_str(&format!("bad-{i},\"Name, {i}\"\n"));
        } else {
            csv.push_str(&format!("+1212{:07},Row {i}\n", 5_000_000 + i));
        }
    }
    t.write("bad.csv", &csv);
    let out = t
        .cmd([
            "contacts",
            "import",
            "--campaign",
            CAMPAIGN,
            "bad.csv",
            "--rejects",
            "rejects.csv",
        ])
        .run();
    assert_eq!(counts(&out), [1_500, 0, 0, 0, 1_500]);
    let noted: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("bad.csv:"))
        .collect();
    assert_eq!(noted.len(), 21, "20 notes and one count:\n{}", out.stderr);
    assert!(noted[0].starts_with("bad.csv:2: "), "{}", noted[0]);
    assert!(
        noted[20].contains("1480 more notes not shown")
            && noted[20].contains("every rejected row is in rejects.csv"),
        "{}",
        noted[20]
    );
    let mut rejects = csv::Reader::from_path(t.join("rejects.csv")).expect("rejects file");
    let rows: Vec<csv::StringRecord> = rejects.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 1_500);
    assert_eq!(&rows[0][0], "2");
    assert!(
        rows[0][1].contains("not a valid phone number"),
        "{:?}",
        rows[0]
    );
    assert_eq!(&rows[0][2], "bad-0,\"Name, 0\"");
    assert_eq!(&rows[1_499][0], "3000");
}
