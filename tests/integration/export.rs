//! `report export csv` as files people open: private (0600) and safe to open in a spreadsheet
//! unless `--raw` (SPEC §10 "Files").

use crate::harness::{Test, campaign};

/// A campaign `x` with one contact whose name is a spreadsheet formula.
fn hostile() -> Test {
    let t = Test::new();
    t.import_campaign("x.json", &campaign("x", ""));
    t.import_contacts(
        "x",
        "c.csv",
        "phone,name,id\n+14155550100,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",-1+cmd\n",
    );
    t
}

#[test]
fn export_neutralises_formulas_but_keeps_phone_numbers() {
    let t = hostile();
    let out = t.cmd(["report", "export", "csv", "--contacts"]).run();
    let row = out.stdout.lines().nth(1).expect("one contact row");
    assert!(
        row.starts_with(
            "x,'-1+cmd,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",+14155550100,"
        ),
        "{}",
        out.stdout
    );
    let out = t
        .cmd(["report", "export", "csv", "--contacts", "--raw"])
        .run();
    let row = out.stdout.lines().nth(1).expect("one contact row");
    assert!(
        row.starts_with(
            "x,-1+cmd,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",+14155550100,"
        ),
        "{}",
        out.stdout
    );
}

#[cfg(unix)]
#[test]
fn export_file_is_created_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let t = hostile();
    for args in [
        &["report", "export", "csv", "--out", "attempts.csv"][..],
        &[
            "report",
            "export",
            "csv",
            "--contacts",
            "--out",
            "contacts.csv",
        ][..],
    ] {
        t.cmd(args.iter().copied()).stdout("").run();
        let path = t.join(args[args.len() - 1]);
        let mode = std::fs::metadata(&path)
            .expect("export written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    assert!(t.read("contacts.csv").contains("'=HYPERLINK("));
}
