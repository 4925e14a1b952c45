//! `dialer.toml` (SPEC §2): the raw serde shape, and the validated [`Config`] the rest of the code
//! uses. Zones, durations, addresses and URLs are parsed here, once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use crate::bounds;
use crate::campaign::phone::Region;

mod dashboard;
mod database;

pub use dashboard::{DashboardConfig, DashboardUser, MIN_TOKEN_LEN};
pub use database::{Database, DatabaseUrl, PASSWORD_VAR, PostgresNotBuilt, UrlError};

/// The commented default written by `dialer init`.
pub const DEFAULT_TOML: &str = include_str!("../dialer.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is part of the message, not a `source()`: `{:#}` of an error chain would
    /// print it twice.
    #[error("cannot read config `{}`: {cause} (create one with `dialer init` or pass `--config PATH`)", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: `{field}` {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    database: RawDatabase,
    server: RawServer,
    carrier: RawCarrier,
    twilio: RawTwilio,
    dialer: RawDialer,
    campaign: Vec<RawCampaignEntry>,
    simulator: Option<toml::Table>,
    dashboard: dashboard::RawDashboard,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    /// The SQLite file (the default: `dialer.db`).
    path: Option<PathBuf>,
    /// A PostgreSQL url instead of `path`.
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    public_url: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCarrier {
    kind: String,
}

impl Default for RawCarrier {
    fn default() -> Self {
        Self {
            kind: "simulator".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTwilio {
    account_sid: String,
    #[serde(deserialize_with = "auth_token")]
    auth_token: String,
    api_base: String,
    from: String,
}

impl std::fmt::Debug for RawTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTwilio")
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl Default for RawTwilio {
    fn default() -> Self {
        Self {
            account_sid: String::new(),
            auth_token: String::new(),
            api_base: "https://api.twilio.com".into(),
            from: "+15005550006".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDialer {
    calls_per_second: f64,
    max_concurrent_calls: u32,
    default_timezone: String,
    default_region: String,
    shutdown_grace: String,
    max_calls_per_number_per_day: Option<u32>,
}

impl Default for RawDialer {
    fn default() -> Self {
        Self {
            calls_per_second: 1.0,
            max_concurrent_calls: 20,
            default_timezone: "America/New_York".into(),
            default_region: "US".into(),
            shutdown_grace: "2m".into(),
            max_calls_per_number_per_day: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaignEntry {
    file: PathBuf,
    contacts: Option<PathBuf>,
}

/// Which carrier places the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierKind {
    Twilio,
    Simulator,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base URL Twilio reaches us on; no trailing slash.
    pub public_url: Url,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    pub api_base: Url,
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct DialerConfig {
    pub calls_per_second: f64,
    pub max_concurrent_calls: u32,
    pub default_timezone: Tz,
    pub default_region: Region,
    pub shutdown_grace: Duration,
    pub max_calls_per_number_per_day: Option<u32>,
}

/// A `[[campaign]]` entry: imported (or updated) when `run daemon` / `run batch` start.
#[derive(Debug, Clone)]
pub struct CampaignEntry {
    pub file: PathBuf,
    pub contacts: Option<PathBuf>,
}

/// The validated configuration. Relative paths are resolved against the config file's folder.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub database: Database,
    pub server: ServerConfig,
    pub carrier: CarrierKind,
    pub twilio: TwilioConfig,
    pub dialer: DialerConfig,
    pub campaigns: Vec<CampaignEntry>,
    /// The raw `[simulator]` table, parsed by the simulator.
    pub simulator: toml::Table,
    /// The operators' web dashboard (`[dashboard]`).
    pub dashboard: DashboardConfig,
}

/// Environment overrides (SPEC §2: env wins over the file).
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    /// `DIALER_DASHBOARD_TOKEN`.
    pub dashboard_token: Option<Secret>,
    /// `DIALER_DATABASE_PASSWORD`: the PostgreSQL password (never in the url).
    pub database_password: Option<Secret>,
}

impl Env {
    pub fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            account_sid: get("TWILIO_ACCOUNT_SID"),
            auth_token: get("TWILIO_AUTH_TOKEN").map(Secret),
            dashboard_token: get("DIALER_DASHBOARD_TOKEN").map(Secret),
            database_password: get(PASSWORD_VAR).map(Secret),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::parse(path, &text, env)
    }

    /// Validates config text as if read from `path`.
    pub fn parse(path: &Path, text: &str, env: &Env) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |s| text[..s.start].matches('\n').count() + 1);
            let source_line = text.lines().nth(line - 1).unwrap_or_default();
            // a secret never appears in an error: the parser's message may quote the value
            let message = match secret_key(source_line) {
                Some(key) => format!(
                    "`{key}` is not valid here: write it as a quoted string like `{key} = \"…\"` \
                     (the value is not shown because it is a secret)"
                ),
                None => e.message().trim().to_owned(),
            };
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                message,
            }
        })?;
        let invalid = |field: &'static str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };

        let database = match (raw.database.path, raw.database.url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "database",
                    "sets both `path` and `url`: keep one (`path` for an SQLite file, `url` for PostgreSQL)".into(),
                ));
            }
            (_, Some(url)) => Database::Postgres(
                DatabaseUrl::parse(&url, env.database_password.as_ref())
                    .map_err(|e| invalid("database.url", e.to_string()))?,
            ),
            (path, None) => Database::Sqlite(resolve(
                path.as_deref().unwrap_or_else(|| Path::new("dialer.db")),
            )),
        };
        let listen = raw.server.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "`{}` is not an address like `127.0.0.1:8080`",
                    raw.server.listen
                ),
            )
        })?;
        let public_url = parse_http_url(&raw.server.public_url).ok_or_else(|| {
            invalid(
                "server.public_url",
                format!(
                    "`{}` is not an http(s) URL like `https://dialer.example.com`",
                    raw.server.public_url
                ),
            )
        })?;
        let carrier = match raw.carrier.kind.as_str() {
            "twilio" => CarrierKind::Twilio,
            "simulator" => CarrierKind::Simulator,
            other => {
                return Err(invalid(
                    "carrier.kind",
                    format!("`{other}` is not a carrier: use `twilio` or `simulator`"),
                ));
            }
        };
        let api_base = parse_http_url(&raw.twilio.api_base).ok_or_else(|| {
            invalid(
                "twilio.api_base",
                format!("`{}` is not an http(s) URL", raw.twilio.api_base),
            )
        })?;
        let from = raw.twilio.from.trim().to_owned();
        if !is_e164(&from) {
            return Err(invalid(
                "twilio.from",
                format!("`{from}` is not an E.164 number like `+15005550006`"),
            ));
        }
        let account_sid = env.account_sid.clone().unwrap_or(raw.twilio.account_sid);
        let auth_token = env
            .auth_token
            .clone()
            .unwrap_or(Secret(raw.twilio.auth_token));

        let d = raw.dialer;
        if !(d.calls_per_second.is_finite()
            && d.calls_per_second > 0.0
            && d.calls_per_second <= bounds::MAX_CALLS_PER_SECOND)
        {
            return Err(invalid(
                "dialer.calls_per_second",
                format!(
                    "must be a number above 0 and at most {}, like `1.0`",
                    bounds::MAX_CALLS_PER_SECOND
                ),
            ));
        }
        if !(1..=bounds::MAX_CONCURRENT_CALLS).contains(&d.max_concurrent_calls) {
            return Err(invalid(
                "dialer.max_concurrent_calls",
                format!("must be between 1 and {}", bounds::MAX_CONCURRENT_CALLS),
            ));
        }
        let default_timezone = d.default_timezone.parse::<Tz>().map_err(|_| {
            invalid(
                "dialer.default_timezone",
                format!(
                    "`{}` is not an IANA time zone like `America/New_York`",
                    d.default_timezone
                ),
            )
        })?;
        let default_region = Region::parse(&d.default_region).ok_or_else(|| {
            invalid(
                "dialer.default_region",
                format!(
                    "`{}` is not a two-letter region code like `US` or `ES`",
                    d.default_region
                ),
            )
        })?;
        let shutdown_grace = bounds::parse_duration(&d.shutdown_grace, bounds::MAX_SHUTDOWN_GRACE)
            .map_err(|e| invalid("dialer.shutdown_grace", e.to_string()))?;
        if let Some(cap) = d.max_calls_per_number_per_day
            && !(1..=bounds::MAX_CALLS_PER_NUMBER_PER_DAY).contains(&cap)
        {
            return Err(invalid(
                "dialer.max_calls_per_number_per_day",
                format!(
                    "must be between 1 and {} (remove it for no cap)",
                    bounds::MAX_CALLS_PER_NUMBER_PER_DAY
                ),
            ));
        }

        Ok(Config {
            path: path.to_owned(),
            database,
            server: ServerConfig { listen, public_url },
            carrier,
            twilio: TwilioConfig {
                account_sid,
                auth_token,
                api_base,
                from,
            },
            dialer: DialerConfig {
                calls_per_second: d.calls_per_second,
                max_concurrent_calls: d.max_concurrent_calls,
                default_timezone,
                default_region,
                shutdown_grace,
                max_calls_per_number_per_day: d.max_calls_per_number_per_day,
            },
            campaigns: raw
                .campaign
                .into_iter()
                .map(|c| CampaignEntry {
                    file: resolve(&c.file),
                    contacts: c.contacts.as_deref().map(resolve),
                })
                .collect(),
            simulator: raw.simulator.unwrap_or_default(),
            dashboard: raw
                .dashboard
                .validate(env.dashboard_token.as_ref())
                .map_err(|(field, message)| invalid(field, message))?,
        })
    }
}

/// The secret key a TOML line assigns (`auth_token = …`, also inside an inline table), if any.
fn secret_key(line: &str) -> Option<&str> {
    line.split([',', '{'])
        .filter_map(|part| part.split_once('='))
        .map(|(key, _)| key.trim().rsplit('.').next().unwrap_or_default())
        .map(|key| key.trim().trim_matches(['"', '\'']))
        .find(|key| is_secret_key(key))
}

/// Whether a key names a secret: `auth_token`, any `*token`, `*password*`, `*secret*`, and the
/// database `url` (a password written into it by mistake).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("token") || key.contains("password") || key.contains("secret") || key == "url"
}

/// Deserializes an `auth_token`: a string. Any other TOML value is refused without quoting it
/// (serde's usual ``invalid type: integer `12345` `` would print the secret).
pub(crate) fn auth_token<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Input {
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    match Input::deserialize(deserializer)? {
        Input::Text(s) => Ok(s),
        Input::Other(_) => Err(serde::de::Error::custom(
            "`auth_token` must be a quoted string like `auth_token = \"…\"` \
             (the value is not shown because it is a secret)",
        )),
    }
}

fn parse_http_url(s: &str) -> Option<Url> {
    let url = Url::parse(s.trim_end_matches('/')).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// `+` followed by 8 to 15 digits.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/dialer/dialer.toml"), text, &Env::default())
    }

    #[test]
    fn database_is_a_path_or_a_url_never_both() {
        let c = parse("[database]\nurl = \"postgres://dialer@db.example.com/calls\"\n")
            .expect("url alone");
        assert!(matches!(c.database, Database::Postgres(_)));
        let e = parse("[database]\npath = \"x.db\"\nurl = \"postgres://dialer@db/calls\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/dialer/dialer.toml: `database` sets both `path` and `url`: keep one (`path` for an SQLite file, `url` for PostgreSQL)"
        );
        let e = parse("[database]\nurl = \"postgres://dialer:hunter2@db/calls\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/dialer/dialer.toml: `database.url` must not hold a password"),
            "{e}"
        );
        assert!(
            e.contains("DIALER_DATABASE_PASSWORD") && !e.contains("hunter2"),
            "{e}"
        );
        // a url the TOML parser rejects is not quoted either
        let e = parse("[database]\nurl = postgres://dialer:hunter2@db/calls\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn shipped_default_parses() {
        let c = parse(DEFAULT_TOML).expect("the shipped dialer.toml is valid");
        assert_eq!(c.carrier, CarrierKind::Simulator);
        assert_eq!(
            c.database.sqlite_path().ok(),
            Some(Path::new("/etc/dialer/dialer.db"))
        );
        assert_eq!(c.campaigns.len(), 2);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("[dialer]\ncalls_per_second = 1.0\ncals_per_minute = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/dialer/dialer.toml:3: unknown field `cals_per_minute`"),
            "{err}"
        );
    }

    /// SPEC §10: with the real Twilio the server never starts with signature checking off. No
    /// setting turns it off; any attempt to is an unknown key, refused before anything starts.
    #[test]
    fn signature_checking_cannot_be_turned_off() {
        for (table, key) in [
            ("server", "validate_signatures"),
            ("server", "check_signatures"),
            ("twilio", "skip_signature_check"),
            ("dialer", "verify_signatures"),
        ] {
            let text = format!("[carrier]\nkind = \"twilio\"\n[{table}]\n{key} = false\n");
            let err = parse(&text).expect_err("refused").to_string();
            assert!(err.contains(&format!("unknown field `{key}`")), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = parse("[dialer]\ndefault_timezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`dialer.default_timezone`") && err.contains("Mars/Olympus"),
            "{err}"
        );
        let err = parse("[dialer]\nshutdown_grace = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`dialer.shutdown_grace`"), "{err}");
        let err = parse("[carrier]\nkind = \"vonage\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("use `twilio` or `simulator`"), "{err}");
    }

    #[test]
    fn values_above_their_bound_are_rejected_with_the_bound() {
        let cases: &[(&str, &str)] = &[
            (
                "shutdown_grace = \"292277024626y\"",
                "`dialer.shutdown_grace` `292277024626y` is longer than the maximum of 1day",
            ),
            (
                "shutdown_grace = \"1day 1s\"",
                "`dialer.shutdown_grace` `1day 1s` is longer than the maximum of 1day",
            ),
            (
                "calls_per_second = 5000.5",
                "`dialer.calls_per_second` must be a number above 0 and at most 5000, like `1.0`",
            ),
            (
                "calls_per_second = inf",
                "`dialer.calls_per_second` must be a number above 0 and at most 5000, like `1.0`",
            ),
            (
                "max_concurrent_calls = 10001",
                "`dialer.max_concurrent_calls` must be between 1 and 10000",
            ),
            (
                "max_calls_per_number_per_day = 101",
                "`dialer.max_calls_per_number_per_day` must be between 1 and 100 (remove it for no cap)",
            ),
        ];
        for (line, want) in cases {
            let err = parse(&format!("[dialer]\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("/etc/dialer/dialer.toml: {want}"), "{line}");
        }
    }

    #[test]
    fn values_at_their_bound_are_accepted() {
        let c = parse(
            "[dialer]\nshutdown_grace = \"1day\"\ncalls_per_second = 5000.0\n\
             max_concurrent_calls = 10000\nmax_calls_per_number_per_day = 100\n",
        )
        .expect("valid at the bounds");
        assert_eq!(c.dialer.shutdown_grace, Duration::from_secs(86_400));
        assert_eq!(c.dialer.calls_per_second, 5000.0);
        assert_eq!(c.dialer.max_concurrent_calls, 10_000);
        assert_eq!(c.dialer.max_calls_per_number_per_day, Some(100));
    }

    #[test]
    fn secret_never_appears_in_a_parse_error() {
        let cases = [
            // not TOML at all: the parser's message could quote the line
            "[twilio]\nauth_token = 12345abc\n",
            "[twilio]\nauth_token = \"12345abc\n",
            "[twilio]\nauth_token = '12345abc\n",
            "twilio = { auth_token = 12345abc }\n",
            "twilio.auth_token = 12345abc\n",
            // valid TOML of the wrong type: serde's message would quote the value
            "[twilio]\nauth_token = 12345\n",
            "[twilio]\nauth_token = 12345.5\n",
            "[twilio]\nauth_token = [\"12345abc\"]\n",
            "[twilio]\nauth_token = { x = \"12345abc\" }\n",
        ];
        for text in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(!err.contains("12345"), "{text:?} leaks the secret: {err}");
            assert!(err.contains("`auth_token`"), "{text:?}: {err}");
            assert!(
                err.starts_with("/etc/dialer/dialer.toml:"),
                "{text:?}: {err}"
            );
        }
        let err = parse("[twilio]\nauth_token = 12345\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/dialer/dialer.toml:2: "), "{err}");
        assert!(err.contains("quoted string"), "{err}");
    }

    #[test]
    fn other_parse_errors_keep_the_parser_message() {
        let err = parse("[dialer]\ncalls_per_second = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/dialer/dialer.toml:2: ") && err.contains("\"fast\""),
            "{err}"
        );
        assert_eq!(secret_key("account_sid = \"AC1\""), None);
        assert_eq!(secret_key("\"auth_token\" = 1"), Some("auth_token"));
        assert_eq!(secret_key("password=1"), Some("password"));
    }

    #[test]
    fn missing_config_says_its_cause_once_in_the_whole_chain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nowhere.toml");
        let err = Config::load(&path, &Env::default()).unwrap_err();
        // as `main` prints it: `error: {:#}` of the anyhow chain
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(
            chain,
            format!(
                "cannot read config `{}`: No such file or directory (os error 2) \
                 (create one with `dialer init` or pass `--config PATH`)",
                path.display()
            )
        );
    }

    #[test]
    fn env_wins_and_token_is_redacted() {
        let env = Env {
            account_sid: Some("ACenv".into()),
            auth_token: Some(Secret::new("s3cr3t-token")),
            dashboard_token: None,
            database_password: None,
        };
        let c = Config::parse(
            Path::new("d.toml"),
            "[twilio]\naccount_sid = \"ACfile\"\nauth_token = \"file-token\"\n",
            &env,
        )
        .expect("valid");
        assert_eq!(c.twilio.account_sid, "ACenv");
        assert_eq!(c.twilio.auth_token.expose(), "s3cr3t-token");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t-token") && !debug.contains("file-token"),
            "{debug}"
        );
    }
}

#[cfg(test)]
#[path = "config_fuzz_tests.rs"]
mod fuzz_tests;
