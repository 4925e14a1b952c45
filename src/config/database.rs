//! `[database]`: an SQLite file (`path`, the default) or a PostgreSQL server (`url`), exactly one.
//! A PostgreSQL url never carries the password: it comes from `DIALER_DATABASE_PASSWORD`, and
//! neither `Debug` nor `Display` of a [`DatabaseUrl`] ever shows it.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::Secret;

/// The environment variable the PostgreSQL password is read from.
pub const PASSWORD_VAR: &str = "DIALER_DATABASE_PASSWORD";

/// Where the product's data lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// An SQLite file (resolved against the config file's folder).
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(DatabaseUrl),
}

/// What something that needs the SQLite file (a test, a tool) says when the config names a
/// PostgreSQL url. Every command runs on both backends.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this needs an SQLite database file (`[database] path`), not a PostgreSQL url")]
pub struct PostgresNotBuilt;

impl Database {
    /// The SQLite file, for what only works on one.
    pub fn sqlite_path(&self) -> Result<&Path, PostgresNotBuilt> {
        match self {
            Database::Sqlite(path) => Ok(path),
            Database::Postgres(_) => Err(PostgresNotBuilt),
        }
    }
}

/// A PostgreSQL connection url (`postgres://user@host:port/dbname`, a Unix-socket folder as a
/// percent-encoded host or `?host=/dir`), validated: no password in it, no TLS asked for.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// The url as written (it holds no password: one is refused).
    text: String,
    /// Boxed: the driver's settings are large beside a path.
    config: Box<postgres::Config>,
}

/// Why a url was refused. Its message never repeats the url (it may hold a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a PostgreSQL url like `postgres://dialer@db.example.com:5432/dialer` ({0})")]
    Malformed(String),
    #[error(
        "must not hold a password: remove it from the url and set the environment variable `{PASSWORD_VAR}` instead"
    )]
    HasPassword,
    #[error(
        "asks for TLS (`sslmode`), which is not built yet: connect over a Unix socket or a private network with `sslmode=disable` or no `sslmode`"
    )]
    Tls,
    #[error("names no database: end it with `/DBNAME`, like `postgres://dialer@localhost/dialer`")]
    NoDatabase,
}

impl DatabaseUrl {
    /// Parses `text`; `password` (from [`PASSWORD_VAR`]) is used when connecting.
    pub fn parse(text: &str, password: Option<&Secret>) -> Result<DatabaseUrl, UrlError> {
        let text = text.trim();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(UrlError::Malformed(
                "it must start with `postgres://`".into(),
            ));
        }
        // the driver's message may quote a part of the url: keep only its gist
        let mut config = postgres::Config::from_str(text)
            .map_err(|e| UrlError::Malformed(first_clause(&e.to_string())))?;
        if config.get_password().is_some() {
            return Err(UrlError::HasPassword);
        }
        if !matches!(
            config.get_ssl_mode(),
            postgres::config::SslMode::Disable | postgres::config::SslMode::Prefer
        ) {
            return Err(UrlError::Tls);
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(UrlError::NoDatabase);
        }
        // `prefer` would try TLS first and fall back; without TLS built, ask for none at all
        config.ssl_mode(postgres::config::SslMode::Disable);
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            config.password(password.expose());
        }
        Ok(DatabaseUrl {
            text: text.to_owned(),
            config: Box::new(config),
        })
    }

    /// The driver's connection settings (with the password from the environment, if any).
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// The database's name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// Where the server is, for messages: `host:port`, or `socket DIR port N`.
    pub fn endpoint(&self) -> String {
        use postgres::config::Host;
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => format!("{host}:{port}"),
            Some(Host::Unix(dir)) => {
                format!("the Unix socket in `{}` (port {port})", dir.display())
            }
            None => format!("localhost:{port} (the default host)"),
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = self.config.get_password().map(|_| "***");
        f.debug_struct("DatabaseUrl")
            .field("url", &self.text)
            .field("password", &password)
            .finish()
    }
}

/// The first clause of a driver message (up to a colon), lowercase as ours are.
fn first_clause(message: &str) -> String {
    let clause = message.split(':').next().unwrap_or(message).trim();
    clause.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    #[test]
    fn tcp_and_unix_socket_urls_parse() {
        let url = DatabaseUrl::parse("postgres://dialer@db.example.com:6543/calls", None)
            .expect("tcp url");
        assert_eq!(url.dbname(), "calls");
        assert_eq!(url.endpoint(), "db.example.com:6543");

        let url = DatabaseUrl::parse("postgres://dialer@%2Fvar%2Frun%2Fpostgresql/calls", None)
            .expect("encoded socket host");
        assert_eq!(
            url.endpoint(),
            "the Unix socket in `/var/run/postgresql` (port 5432)"
        );

        let url = DatabaseUrl::parse("postgresql:///calls?host=/tmp/pg&user=dialer", None)
            .expect("host parameter");
        assert_eq!(url.endpoint(), "the Unix socket in `/tmp/pg` (port 5432)");
        assert_eq!(url.config().get_user(), Some("dialer"));
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_repeating_it() {
        for text in [
            "postgres://dialer:hunter2@db.example.com/calls",
            "postgres://dialer@db.example.com/calls?password=hunter2",
        ] {
            let e = DatabaseUrl::parse(text, None).unwrap_err();
            assert_eq!(e, UrlError::HasPassword);
            let message = e.to_string();
            assert!(message.contains("DIALER_DATABASE_PASSWORD"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn the_password_from_the_environment_is_never_shown() {
        let url = DatabaseUrl::parse(
            "postgres://dialer@db.example.com/calls",
            Some(&secret("hunter2")),
        )
        .expect("url");
        assert_eq!(url.config().get_password(), Some(&b"hunter2"[..]));
        let shown = format!("{url} {url:?} {url:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"***\""), "{shown}");
    }

    #[test]
    fn tls_and_missing_database_and_other_schemes_are_refused() {
        assert_eq!(
            DatabaseUrl::parse("postgres://dialer@db/calls?sslmode=require", None).unwrap_err(),
            UrlError::Tls
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://dialer@db.example.com", None).unwrap_err(),
            UrlError::NoDatabase
        );
        assert!(matches!(
            DatabaseUrl::parse("mysql://dialer@db/calls", None).unwrap_err(),
            UrlError::Malformed(_)
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgres://dialer@db:notaport/calls", None).unwrap_err(),
            UrlError::Malformed(_)
        ));
    }

    #[test]
    fn only_sqlite_answers_a_path() {
        let sqlite = Database::Sqlite("x.db".into());
        assert_eq!(sqlite.sqlite_path().expect("path"), Path::new("x.db"));
        let pg = Database::Postgres(
            DatabaseUrl::parse("postgres://dialer@db/calls", None).expect("url"),
        );
        assert!(
            pg.sqlite_path()
                .unwrap_err()
                .to_string()
                .starts_with("this needs an SQLite database file")
        );
    }
}
