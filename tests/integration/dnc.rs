//! `dnc add/list/remove/import` end to end: normalization with the default region, all-or-nothing
//! adds, and a listed number showing `dnc` in `plan`.

use crate::harness::{Test, assert_one_error, campaign, default_config, table_rows};

/// The phones of `dnc list`, in order.
fn listed(t: &Test) -> Vec<String> {
    let out = t.cmd(["dnc", "list"]).run();
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["phone", "source", "added_at"]),
        "{}",
        out.stdout
    );
    lines
        .map(|l| l.split_whitespace().next().expect("phone").to_owned())
        .collect()
}

#[test]
fn add_list_remove_with_normalization() {
    let t = Test::new();
    t.cmd([
        "dnc",
        "add",
        "(212) 555-0101",
        "0034 612 345 678",
        "+44 20 7946 0958",
    ])
    .stdout_contains("3 added")
    .run();
    assert_eq!(
        listed(&t),
        ["+12125550101", "+34612345678", "+442079460958"]
    );
    // the same numbers written differently are already there
    t.cmd(["dnc", "add", "212.555.0101", "+1 212 555 0101"])
        .stdout_contains("0 added")
        .run();
    t.cmd(["dnc", "remove", "212-555-0101"])
        .stdout_contains("+12125550101 removed")
        .run();
    assert_eq!(listed(&t), ["+34612345678", "+442079460958"]);
    let out = t.cmd(["dnc", "remove", "212-555-0101"]).status(1).run();
    assert_one_error(&out, &["+12125550101", "not on the do-not-call list"]);
}

#[test]
fn national_form_uses_the_default_region() {
    let t = Test::with_config(
        &default_config().replace("default_region = \"US\"", "default_region = \"ES\""),
    );
    t.cmd(["dnc", "add", "612 345 678"]).run();
    assert_eq!(listed(&t), ["+34612345678"]);
}

#[test]
fn an_invalid_number_adds_nothing() {
    let t = Test::new();
    t.cmd(["dnc", "add", "+12125550101"]).run();
    let before = t.dump();
    let out = t
        .cmd([
            "dnc",
            "add",
            "+13125550102",
            "call me maybe",
            "+14155550103",
        ])
        .status(1)
        .run();
    assert_one_error(&out, &["`call me maybe`", "not a valid phone number"]);
    assert_eq!(t.dump(), before);
    assert_eq!(listed(&t), ["+12125550101"]);
}

#[test]
fn a_listed_number_shows_dnc_in_plan_until_removed() {
    let t = Test::new();
    t.import_campaign("c.json", &campaign("D", ""));
    t.import_contacts(
        "D",
        "c.csv",
        "id,phone,timezone\na,+12125550101,America/New_York\nb,+12125550102,America/New_York\n",
    );
    t.cmd(["dnc", "add", "(212) 555-0102"]).run();
    let at = "2026-01-14T15:00:00Z";
    let plan = t.cmd(["plan", "--at", at, "--format", "json"]).run().json();
    let reason = |id: &str| {
        plan.as_array()
            .expect("array")
            .iter()
            .find(|r| r["contact"] == id)
            .map(|r| (r["reason"].clone(), r["next_eligible_at"].clone()))
            .expect("row")
    };
    assert_eq!(reason("a").0, "due");
    assert_eq!(reason("b").0, "dnc");
    assert!(reason("b").1.is_null());
    // the contact is imported (and kept) even though its number is listed
    assert_eq!(table_rows(&t.dump(), "contacts").len(), 2);
    t.cmd(["campaign", "list"]).stdout_contains("D").run();
    t.cmd(["dnc", "remove", "+12125550102"]).run();
    let plan = t.cmd(["plan", "--at", at, "--format", "json"]).run().json();
    assert_eq!(plan[1]["reason"], "due", "{plan}");
}

#[test]
fn import_a_csv() {
    let t = Test::new();
    t.write(
        "dnc.csv",
        "name,phone\nAnn,(212) 555-0101\nBo,not a phone\nCy,0034 612 345 678\nAnn again,212-555-0101\n",
    );
    let out = t
        .cmd(["dnc", "import", "dnc.csv"])
        .stdout_contains("2 added")
        .stdout_contains("1 rejected")
        .stderr_contains("dnc.csv:3: ")
        .run();
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(listed(&t), ["+12125550101", "+34612345678"]);
    let rows = table_rows(&t.dump(), "dnc");
    assert!(rows.iter().all(|r| r.contains("\"import\"")), "{rows:?}");
}

#[test]
fn import_a_headerless_list() {
    let t = Test::new();
    t.write("dnc.txt", "+12125550101\n+13125550102\n");
    t.cmd(["dnc", "import", "dnc.txt"])
        .stdout_contains("2 added")
        .run();
    assert_eq!(listed(&t), ["+12125550101", "+13125550102"]);
}

/// Issue: `dnc add "(212) 555-O1O1"` listed +12125556161, another person, and left the number
/// meant unprotected.
#[test]
fn a_letter_typed_for_a_digit_is_refused_and_adds_nothing() {
    let t = Test::new();
    t.cmd(["dnc", "add", "+12125550101"]).run();
    let before = t.dump();
    for typo in ["(212) 555-O1O1", "+1 212 555 0l99"] {
        let out = t.cmd(["dnc", "add", typo]).status(1).run();
        assert_one_error(
            &out,
            &[
                &format!("`{typo}` is not a valid phone number"),
                "letter among its digits",
            ],
        );
        assert_eq!(t.dump(), before, "{typo} changed the database");
    }
    // a vanity number is still read as keypad digits
    t.cmd(["dnc", "add", "1-800-FLOWERS"])
        .stdout_contains("1 added")
        .run();
    assert_eq!(listed(&t), ["+12125550101", "+18003569377"]);
}

#[test]
fn import_rejects_a_letter_typed_for_a_digit() {
    let t = Test::new();
    t.write(
        "dnc.csv",
        "phone\n(212) 555-O1O1\n+1 212 555 0l99\n1-800-FLOWERS\n",
    );
    let out = t
        .cmd(["dnc", "import", "dnc.csv"])
        .stdout_contains("1 added")
        .stdout_contains("2 rejected")
        .run();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    for (line, (at, typo)) in lines.iter().zip([
        ("dnc.csv:2: ", "(212) 555-O1O1"),
        ("dnc.csv:3: ", "+1 212 555 0l99"),
    ]) {
        assert!(
            line.starts_with(at) && line.contains(&format!("`{typo}`")),
            "{line}"
        );
        assert!(line.contains("letter among its digits"), "{line}");
    }
    assert_eq!(listed(&t), ["+18003569377"]);
    // the first line of a headerless list gives the same reason
    t.write("dnc.txt", "(212) 555-O1O1\n+12125550101\n");
    t.cmd(["dnc", "import", "dnc.txt"])
        .stdout_contains("1 added")
        .stdout_contains("1 rejected")
        .stderr_contains("dnc.txt:1: `(212) 555-O1O1` is not a valid phone number: it has a letter")
        .run();
}
