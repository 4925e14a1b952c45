//! The command line itself: help, usage errors (exit 2), `init`, and config file errors.

use crate::harness::{Test, assert_one_error};

#[test]
fn help_of_every_subcommand_exits_0() {
    let t = Test::new();
    let commands: &[&[&str]] = &[
        &[],
        &["init"],
        &["campaign"],
        &["campaign", "import"],
        &["campaign", "list"],
        &["campaign", "show"],
        &["campaign", "pause"],
        &["campaign", "resume"],
        &["contacts"],
        &["contacts", "import"],
        &["dnc"],
        &["dnc", "add"],
        &["dnc", "import"],
        &["dnc", "list"],
        &["dnc", "remove"],
        &["plan"],
        &["run"],
        &["run", "daemon"],
        &["run", "batch"],
        &["report"],
        &["report", "summary"],
        &["report", "export"],
        &["report", "export", "csv"],
        &["simulator"],
    ];
    for c in commands {
        let mut args: Vec<&str> = c.to_vec();
        args.push("--help");
        let out = t.cmd(args).stderr("").run();
        assert!(
            out.stdout.contains("Usage: dialer"),
            "{c:?}: {}",
            out.stdout
        );
    }
    t.cmd(["--version"]).stdout_contains("dialer ").run();
    assert_eq!(t.dump(), "<no database>", "help touched the database");
}

#[test]
fn usage_errors_exit_2() {
    let t = Test::new();
    let cases: &[(&[&str], &str)] = &[
        (&["plan", "--bogus"], "--bogus"),
        (&["--bogus", "campaign", "list"], "--bogus"),
        (&["frobnicate"], "frobnicate"),
        (&["dnc", "add"], "NUMBER"),
        (&["contacts", "import", "c.csv"], "--campaign"),
        (&["plan", "--format", "xml"], "xml"),
        (&["campaign"], "Usage"),
    ];
    for (args, names) in cases {
        let out = t.cmd(args.iter().copied()).status(2).run();
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains(names), "{args:?}: {}", out.stderr);
    }
    assert_eq!(t.dump(), "<no database>");
}

#[test]
fn init_writes_files_and_refuses_a_second_time() {
    let t = Test::without_config();
    t.cmd(["init", "site"])
        .no_config_flag()
        .stdout_contains("dialer.toml")
        .run();
    let files = [
        ("site/dialer.toml", include_str!("../../dialer.toml")),
        (
            "site/campaigns/appointment-reminder.json",
            include_str!("../../campaigns/appointment-reminder.json"),
        ),
        (
            "site/examples/contacts.csv",
            include_str!("../../examples/contacts.csv"),
        ),
        (
            "site/campaigns/satisfaction-survey.json",
            include_str!("../../campaigns/satisfaction-survey.json"),
        ),
        (
            "site/examples/survey-contacts.csv",
            include_str!("../../examples/survey-contacts.csv"),
        ),
    ];
    for (path, text) in files {
        assert_eq!(t.read(path), text, "{path}");
    }
    t.write("site/dialer.toml", "# mine\n");
    let out = t.cmd(["init", "site"]).no_config_flag().status(1).run();
    assert_one_error(&out, &["dialer.toml", "already exists"]);
    assert_eq!(t.read("site/dialer.toml"), "# mine\n");

    // Only one file present: nothing else is written either.
    std::fs::remove_dir_all(t.join("site/campaigns")).expect("remove");
    std::fs::remove_dir_all(t.join("site/examples")).expect("remove");
    t.cmd(["init", "site"]).no_config_flag().status(1).run();
    assert!(!t.join("site/campaigns").exists());
    assert!(!t.join("site/examples").exists());
}

#[test]
fn init_output_is_usable() {
    let t = Test::without_config();
    t.cmd(["init", "site"]).no_config_flag().run();
    let config = t.join("site/dialer.toml").display().to_string();
    // The shipped config names `[[campaign]]` files relative to itself; commands run elsewhere.
    let out = t
        .cmd([
            "--config",
            config.as_str(),
            "campaign",
            "import",
            "site/campaigns/appointment-reminder.json",
            "--contacts",
            "site/examples/contacts.csv",
        ])
        .no_config_flag()
        .run();
    assert!(
        out.stdout.contains("Appointment reminder"),
        "{}",
        out.stdout
    );
    assert!(
        t.join("site/dialer.db").exists(),
        "the database goes next to the config file"
    );
    t.cmd(["--config", config.as_str(), "plan", "--format", "json"])
        .no_config_flag()
        .stdout_contains("Appointment reminder")
        .run();
}

#[test]
fn missing_config_names_the_file_and_dialer_init() {
    let t = Test::without_config();
    let out = t
        .cmd(["--config", "nowhere/dialer.toml", "campaign", "list"])
        .no_config_flag()
        .status(1)
        .run();
    assert_one_error(&out, &["nowhere/dialer.toml", "dialer init"]);
    // default: ./dialer.toml
    let out = t.cmd(["campaign", "list"]).no_config_flag().status(1).run();
    assert_one_error(&out, &["dialer.toml", "dialer init"]);
    // $DIALER_CONFIG
    let out = t
        .cmd(["dnc", "list"])
        .no_config_flag()
        .env("DIALER_CONFIG", "from-env.toml")
        .status(1)
        .run();
    assert_one_error(&out, &["from-env.toml", "dialer init"]);
}

#[test]
fn bad_config_names_the_key() {
    let t = Test::with_config(&format!("{}\n[dialer]\n", crate::harness::default_config()));
    let out = t.cmd(["campaign", "list"]).status(1).run();
    assert_one_error(&out, &["dialer.toml"]);

    let t = Test::with_config(
        &crate::harness::default_config().replace("[carrier]", "[carrier]\ncolour = \"red\""),
    );
    let out = t.cmd(["campaign", "list"]).status(1).run();
    assert_one_error(&out, &["dialer.toml", "colour"]);

    let t = Test::with_config(&crate::harness::default_config().replace(
        "default_timezone = \"America/New_York\"",
        "default_timezone = \"Moon/Tranquility\"",
    ));
    let out = t.cmd(["campaign", "list"]).status(1).run();
    assert_one_error(&out, &["dialer.toml", "default_timezone"]);
}

/// Issue: the one-process lock was named after the database path as written, so a second
/// config naming the same file another way (symlink, hard link, `..`) started a second process.
#[cfg(unix)]
#[test]
fn another_config_naming_the_same_database_is_refused() {
    let t = Test::new();
    t.cmd(["dnc", "list"]).run(); // creates the database
    let db = t.join("dialer.db");
    let held = dialer::store::ProcessLock::acquire(&db).expect("lock the database");
    std::os::unix::fs::symlink(&db, t.join("link.db")).expect("symlink");
    std::fs::hard_link(&db, t.join("hard.db")).expect("hard link");
    std::fs::create_dir(t.join("x")).expect("mkdir");
    let absolute = db.display().to_string();
    for spelling in [
        "../dialer.db",
        "../link.db",
        "../hard.db",
        "../x/../dialer.db",
        absolute.as_str(),
    ] {
        let toml = crate::harness::default_config()
            .replace(r#"path = "dialer.db""#, &format!("path = {spelling:?}"));
        assert!(toml.contains(spelling));
        t.write("other/dialer.toml", toml);
        let out = t
            .cmd(["--config", "other/dialer.toml", "run", "batch"])
            .no_config_flag()
            .status(1)
            .run();
        let pid = format!("another dialer process (pid {})", std::process::id());
        assert_one_error(&out, &[&pid, "is using"]);
    }
    drop(held);
}

#[test]
fn wait_too_long_for_an_instant_is_a_usage_error_not_a_panic() {
    let t = Test::new();
    for (wait, says) in [
        (
            "292277024626y",
            "`292277024626y` is longer than the maximum of 7days",
        ),
        ("8d", "`8d` is longer than the maximum of 7days"),
        ("soon", "`soon` is not a duration"),
    ] {
        let out = t
            .cmd(["run", "batch", "--wait", wait])
            .status(2)
            .stderr_contains(says)
            .stderr_contains("--wait")
            .stderr_lacks("panicked")
            .run();
        assert!(out.stdout.is_empty(), "{wait}: {}", out.stdout);
    }
    t.cmd(["run", "batch", "--limit", "10000001"])
        .status(2)
        .stderr_contains("from 0 to 10000000")
        .run();
    assert_eq!(
        t.dump(),
        "<no database>",
        "a usage error touched the database"
    );
}

#[test]
fn shutdown_grace_too_long_for_an_instant_is_refused_at_load() {
    let t = Test::with_config(&crate::harness::default_config().replace(
        "shutdown_grace = \"2m\"",
        "shutdown_grace = \"292277024626y\"",
    ));
    assert!(t.read("dialer.toml").contains("292277024626y"));
    let out = t.cmd(["campaign", "list"]).status(1).run();
    assert_one_error(
        &out,
        &[
            "dialer.toml",
            "`dialer.shutdown_grace`",
            "longer than the maximum of 1day",
        ],
    );
}

#[test]
fn secret_in_a_bad_config_is_never_echoed() {
    let base = crate::harness::default_config();
    for (find, replace) in [
        ("[twilio]", "[twilio]\nauth_token = 12345abc"),
        ("[twilio]", "[twilio]\nauth_token = 12345"),
        ("[twilio]", "[twilio]\nauth_token = \"12345abc"),
    ] {
        assert!(base.contains(find));
        let t = Test::with_config(&base.replacen(find, replace, 1));
        let out = t.cmd(["campaign", "list"]).status(1).run();
        assert_one_error(&out, &["dialer.toml:", "`auth_token`"]);
        assert!(!out.stderr.contains("12345"), "{replace}: {}", out.stderr);
    }
    // the [simulator] table is read by `dialer simulator` (and the built-in simulator)
    let t = Test::with_config(&base.replacen("[simulator]", "[simulator]\nauth_token = 12345", 1));
    let out = t
        .cmd(["simulator", "--listen", "127.0.0.1:0"])
        .status(1)
        .run();
    // (two lines: `dialing::carrier::sim_config` prints toml's "in `auth_token`" tail as is)
    assert!(
        out.stderr.starts_with("error: ")
            && out
                .stderr
                .contains("dialer.toml: [simulator]: `auth_token` must be a quoted string"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("12345"), "{}", out.stderr);
}
