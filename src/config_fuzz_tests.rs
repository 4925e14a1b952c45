//! Property tests (fuzzing in CI, SPEC §10) of `dialer.toml`: TOML-ish text through
//! [`Config::parse`] never panics, and an error never shows a secret planted in the text
//! (`auth_token = "sekrit-XYZ"` and its malformed variants, mixed into random lines).
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); failures proptest finds are
//! kept in `proptest-regressions/config_fuzz_tests.txt` and replayed first.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::select;

use super::*;

const SECRET: &str = "sekrit-XYZ";

/// Lines that assign the secret, well-formed or not.
const SECRET_LINES: &[&str] = &[
    "auth_token = \"sekrit-XYZ\"",
    "auth_token = sekrit-XYZ",
    "auth_token = 'sekrit-XYZ",
    "auth_token = \"sekrit-XYZ",
    "auth_token = \"sekrit-XYZ\" trailing",
    "auth_token = [\"sekrit-XYZ\"]",
    "auth_token = { x = \"sekrit-XYZ\" }",
    "auth_token=\"sekrit-XYZ\"",
    "\"auth_token\" = sekrit-XYZ",
    "twilio.auth_token = \"sekrit-XYZ\"",
    "twilio.auth_token = sekrit-XYZ",
    "twilio = { auth_token = \"sekrit-XYZ\" }",
    "twilio = { auth_token = sekrit-XYZ }",
    "twilio = { from = \"+15005550006\", auth_token = sekrit-XYZ }",
    "[twilio]\nauth_token = \"sekrit-XYZ\"",
    "[twilio]\nauth_token = sekrit-XYZ",
    "[twilio]\nauth_token = \"sekrit-XYZ\"\nauth_token = \"sekrit-XYZ\"",
    "[twilio]\nauth_token = \"\"\"sekrit-XYZ\"\"\"",
    "[twilio]\nauth_token = '''sekrit-XYZ",
];

/// Lines from the real file, and lines that break it in the usual ways.
const CONFIG_LINES: &[&str] = &[
    "[database]",
    "[server]",
    "[carrier]",
    "[twilio]",
    "[dialer]",
    "[simulator]",
    "[[campaign]]",
    "[[twilio]]",
    "[twilio.x]",
    "path = \"dialer.db\"",
    "listen = \"127.0.0.1:8080\"",
    "public_url = \"http://127.0.0.1:8080\"",
    "kind = \"twilio\"",
    "account_sid = \"AC123\"",
    "api_base = \"https://api.twilio.com\"",
    "from = \"+15005550006\"",
    "calls_per_second = 1.0",
    "calls_per_second = nan",
    "max_concurrent_calls = 20",
    "max_concurrent_calls = -1",
    "default_timezone = \"America/New_York\"",
    "default_region = \"US\"",
    "shutdown_grace = \"2m\"",
    "shutdown_grace = \"292277024626y\"",
    "max_calls_per_number_per_day = 3",
    "file = \"campaigns/a.json\"",
    "contacts = \"examples/contacts.csv\"",
    "password = 1",
    "secret = \"x\"",
    "x = [",
    "]",
    "x = {",
    "x = \"\"\"",
    "\"\"\"",
    "# comment",
    "",
    "=",
    "a.b.c = 1",
    "\u{feff}",
];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(CONFIG_LINES).prop_map(str::to_owned),
        2 => "[a-z_.\\[\\]\"'= {},0-9#+:/-]{0,24}",
        1 => "\\PC{0,16}",
    ]
    // the secret appears only where planted
    .prop_filter("no secret", |l| !l.contains("sekrit"))
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/dialer/dialer.toml"), text, &Env::default())
}

proptest! {
    #[test]
    fn any_config_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn config_lines_in_any_order_never_panic(lines in prop::collection::vec(line(), 0..12)) {
        let _ = parse(&lines.join("\n"));
    }

    #[test]
    fn a_planted_secret_never_appears_in_an_error(
        before in prop::collection::vec(line(), 0..8),
        secret in select(SECRET_LINES),
        after in prop::collection::vec(line(), 0..8),
        crlf in any::<bool>(),
    ) {
        let mut lines = before;
        lines.push(secret.to_owned());
        lines.extend(after);
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        if let Err(e) = parse(&text) {
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains(SECRET), "{text:?} leaks the secret: {shown}");
        }
    }
}

/// Every planted secret line, alone and after an unterminated string or array, as fixed seeds.
#[test]
fn seed_secret_lines_never_leak() {
    for secret in SECRET_LINES {
        for before in [
            "",
            "[twilio]",
            "x = [",
            "x = \"\"\"",
            "[dialer]\nshutdown_grace = 1",
        ] {
            let text = format!("{before}\n{secret}\n");
            if let Err(e) = parse(&text) {
                let shown = format!("{e} {e:?}");
                assert!(
                    !shown.contains(SECRET),
                    "{text:?} leaks the secret: {shown}"
                );
            }
        }
    }
}
