//! `dialer simulator` on its own: its banner tells a client everything it needs to connect.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::Test;

/// The first stdout line of `dialer simulator` run with this `dialer.toml`.
fn banner(t: &Test) -> String {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("dialer"))
        .current_dir(t.path())
        .args(["simulator", "--listen", "127.0.0.1:0", "--config"])
        .arg(t.join("dialer.toml"))
        .env_remove("DIALER_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn simulator");
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("read the banner");
    line
}

#[test]
fn simulator_banner_names_the_account_sid_and_auth_token_it_accepts() {
    let t = Test::new();
    let line = banner(&t);
    assert!(
        line.starts_with("simulator listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "account sid {}, auth token {};",
            dialer::simulator::DEFAULT_ACCOUNT_SID,
            dialer::simulator::DEFAULT_AUTH_TOKEN
        )),
        "{line}"
    );

    let sid = "AC0123456789abcdef0123456789abcdef";
    let t = Test::with_config(&crate::harness::default_config().replacen(
        "[simulator]",
        &format!("[simulator]\naccount_sid = \"{sid}\"\nauth_token = \"rehearsal-token\""),
        1,
    ));
    let line = banner(&t);
    assert!(
        line.contains(&format!("account sid {sid}, auth token rehearsal-token;")),
        "{line}"
    );
}
