//! Disk and database faults (SPEC §10): a full disk and a read-only database give one clear
//! error and leave nothing half-written; once space returns the same command finishes the job.
//! Each scenario runs in a private mount namespace (`unshare -rm`) with a small tmpfs, so it
//! needs no privileges and leaves no mount behind.

use std::path::Path;
use std::process::Command;

use crate::harness::Test;

/// Runs `script` with `sh` in a private user + mount namespace, in the test's folder, with
/// `$DIALER` the binary; `small/` is a tmpfs of `size`. Returns stdout + stderr.
fn in_small_disk(t: &Test, size: &str, script: &str) -> String {
    let full = format!(
        "set -u\nmkdir -p small\nmount -t tmpfs -o size={size} tmpfs small || exit 97\n{script}\n"
    );
    t.write("scenario.sh", &full);
    let out = Command::new("unshare")
        .args(["-rm", "sh", "scenario.sh"])
        .current_dir(t.path())
        .env("DIALER", env!("CARGO_BIN_EXE_dialer"))
        .env_remove("DIALER_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run unshare (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(97),
        "cannot mount a tmpfs in a user namespace here:\n{text}"
    );
    text
}

/// The value printed as `KEY=value` by the scenario.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn contacts_csv(n: usize) -> String {
    let mut csv = String::from("phone,name,note\n");
    for i in 0..n {
        csv.push_str(&format!(
            "+1212{:07},Contact number {i},some text to fill the disk faster {i}\n",
            5_000_000 + i
        ));
    }
    csv
}

fn error_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("error:")).collect()
}

#[test]
fn an_import_on_a_full_disk_fails_with_one_clear_error_and_a_rerun_finishes_it() {
    let t = Test::with_config("[database]\npath = \"small/dialer.db\"\n");
    t.write(
        "x.json",
        r#"{"name": "x", "message": "hi", "calling_hours_start": "00:00", "calling_hours_end": "24:00"}"#,
    );
    t.write("big.csv", contacts_csv(30_000));
    let out = in_small_disk(
        &t,
        "400k",
        r#"
"$DIALER" -q campaign import x.json || exit 1
"$DIALER" contacts import --campaign x big.csv > first.out 2> first.err
echo "FIRST=$?"
echo "DUE_AFTER_FAILURE=$("$DIALER" plan --format csv | grep -c ',true,')"
mount -o remount,size=64m small
"$DIALER" contacts import --campaign x big.csv > second.out 2> second.err
echo "SECOND=$?"
echo "CONTACTS=$("$DIALER" plan --format csv | tail -n +2 | wc -l)"
echo "DUE=$("$DIALER" plan --format csv | grep -c ',true,')"
"#,
    );
    assert_eq!(value(&out, "FIRST"), "1", "{out}");
    let first = t.read("first.err");
    let errors = error_lines(&first);
    assert_eq!(errors.len(), 1, "one error line:\n{first}");
    assert!(
        errors[0].contains("the disk holding the database is full")
            && errors[0].contains("free some space"),
        "{first}"
    );
    assert_eq!(first.lines().count(), 1, "nothing but the error:\n{first}");
    assert_eq!(
        value(&out, "SECOND"),
        "0",
        "{out}\n{}",
        t.read("second.err")
    );
    assert!(
        t.read("second.out").contains("30000 imported")
            || t.read("second.out").contains("imported"),
        "{}",
        t.read("second.out")
    );
    assert_eq!(value(&out, "CONTACTS"), "30000");
    // nothing of the failed import was dialable; after the rerun, everything is
    assert_eq!(value(&out, "DUE_AFTER_FAILURE"), "0", "{out}");
    assert_eq!(value(&out, "DUE"), "30000", "{out}");
}

#[test]
fn an_export_to_a_full_disk_fails_with_one_clear_error_and_leaves_no_file() {
    let t = Test::new();
    t.write("x.json", r#"{"name": "x", "message": "hi"}"#);
    t.write("many.csv", contacts_csv(20_000));
    t.cmd(["campaign", "import", "x.json", "--contacts", "many.csv"])
        .run();
    let out = in_small_disk(
        &t,
        "64k",
        r#"
"$DIALER" report export csv --contacts --out small/contacts.csv > export.out 2> export.err
echo "EXPORT=$?"
echo "FILES=$(ls -A small | wc -l)"
"#,
    );
    assert_eq!(value(&out, "EXPORT"), "1", "{out}");
    let err = t.read("export.err");
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(err.contains("small/contacts.csv"), "names the file: {err}");
    assert_eq!(value(&out, "FILES"), "0", "no half-written export: {out}");
}

#[test]
fn a_read_only_database_gives_one_clear_error_and_changes_nothing() {
    let t = Test::with_config("[database]\npath = \"small/dialer.db\"\n");
    t.write("x.json", r#"{"name": "x", "message": "hi"}"#);
    t.write("few.csv", contacts_csv(10));
    let out = in_small_disk(
        &t,
        "8m",
        r#"
"$DIALER" -q campaign import x.json --contacts few.csv || exit 1
mount -o remount,ro small
"$DIALER" dnc add +12125550199 > dnc.out 2> dnc.err
echo "DNC=$?"
"$DIALER" contacts import --campaign x few.csv > import.out 2> import.err
echo "IMPORT=$?"
echo "LISTED=$("$DIALER" dnc list | grep -c 12125550199)"
"#,
    );
    for (key, file) in [("DNC", "dnc.err"), ("IMPORT", "import.err")] {
        assert_eq!(value(&out, key), "1", "{key}: {out}");
        let err = t.read(file);
        let errors = error_lines(&err);
        assert_eq!(errors.len(), 1, "{key}: {err}");
        // SQLite says "read-only" once the file is open, "cannot be opened" when it cannot
        // create the WAL index next to it; either way one sentence with the fix
        assert!(
            errors[0].contains("the database is read-only")
                || errors[0].contains("check that its folder exists and is writable"),
            "{key}: {err}"
        );
    }
    assert_eq!(value(&out, "LISTED"), "0", "{out}");
    assert!(Path::new(&t.join("small")).exists());
}
