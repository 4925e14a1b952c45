//! The test harness: a [`Test`] owns a temporary folder with a `dialer.toml`, writes files into
//! it, runs the real `dialer` binary there and checks exit code, stdout and stderr; [`db_dump`]
//! renders every row of every table so a test can assert that a failed command changed nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::types::ValueRef;
use tempfile::TempDir;

/// The shipped `dialer.toml`, without the `[[campaign]]` entries (tests import what they need),
/// its callback server on a free port.
pub fn default_config() -> String {
    let shipped = include_str!("../../dialer.toml");
    let mut out = String::new();
    let mut in_campaign = false;
    for line in shipped.lines() {
        let trimmed = line.trim();
        if trimmed == "[[campaign]]" {
            in_campaign = true;
            continue;
        }
        if in_campaign && trimmed.starts_with('[') {
            in_campaign = false;
        }
        if !in_campaign {
            out.push_str(line);
            out.push('\n');
        }
    }
    // tests run side by side: the callback server binds a free port (the built-in simulator is
    // told the bound one), never the shipped 8080
    out.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
}

/// The SPEC §3 example campaign, verbatim.
pub const OPTIMIZADA: &str = include_str!("../../campaigns/optimizada.json");
/// Its name.
pub const OPTIMIZADA_NAME: &str = "Campaña Optimizada";

/// A campaign with a message (so not a draft), built from extra JSON fields.
/// `campaign("x", r#""timezone": "Asia/Tokyo""#)`.
pub fn campaign(name: &str, extra: &str) -> String {
    let sep = if extra.trim().is_empty() { "" } else { ",\n  " };
    format!("{{\n  \"name\": \"{name}\",\n  \"message\": \"Hello {{{{name}}}}.\"{sep}{extra}\n}}\n")
}

/// One sandbox: a temporary folder holding `dialer.toml`, the database and any written files.
pub struct Test {
    dir: TempDir,
}

impl Test {
    /// A folder with the default `dialer.toml` (shipped text, no `[[campaign]]`).
    pub fn new() -> Test {
        Test::with_config(&default_config())
    }

    /// A folder with this `dialer.toml` text.
    pub fn with_config(toml: &str) -> Test {
        let t = Test::without_config();
        t.write("dialer.toml", toml);
        t
    }

    /// An empty folder.
    pub fn without_config() -> Test {
        Test {
            dir: tempfile::Builder::new()
                .prefix("dialer-it-")
                .tempdir()
                .expect("create a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file (creating folders), relative to the sandbox.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> &Test {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, contents).expect("write file");
        self
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.join(name)).expect("read file")
    }

    /// A command: `dialer --config <dir>/dialer.toml ARGS`, run in the folder.
    pub fn cmd<I, S>(&self, args: I) -> Run<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Run {
            test: self,
            args: args.into_iter().map(Into::into).collect(),
            config: true,
            env: Vec::new(),
            status: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Every row of every table of the sandbox's database.
    pub fn dump(&self) -> String {
        db_dump(self.path())
    }

    /// A connection to the sandbox's database (to arrange state no command can reach yet).
    pub fn db(&self) -> rusqlite::Connection {
        let path = self.join("dialer.db");
        assert!(path.exists(), "no database at {}", path.display());
        let conn = rusqlite::Connection::open(path).expect("open database");
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// Imports a campaign file's text (written as `NAME.json`), expecting success.
    pub fn import_campaign(&self, file: &str, json: &str) -> &Test {
        self.write(file, json);
        self.cmd(["campaign", "import", file]).run();
        self
    }

    /// Imports a contacts CSV text (written as `FILE`) into a campaign, expecting success.
    pub fn import_contacts(&self, campaign: &str, file: &str, csv: &str) -> Output {
        self.write(file, csv);
        self.cmd(["contacts", "import", "--campaign", campaign, file])
            .run()
    }
}

/// A check on an output stream.
#[derive(Debug, Clone)]
enum Check {
    Exact(String),
    Contains(String),
    NotContains(String),
}

/// One run of the binary, with its expectations; nothing happens until [`Run::run`].
#[must_use = "a command does nothing until `.run()`"]
pub struct Run<'a> {
    test: &'a Test,
    args: Vec<String>,
    config: bool,
    env: Vec<(String, String)>,
    status: i32,
    stdout: Vec<Check>,
    stderr: Vec<Check>,
}

impl Run<'_> {
    /// Expected exit code (default 0).
    pub fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    /// Do not pass `--config` (to test the default lookup).
    pub fn no_config_flag(mut self) -> Self {
        self.config = false;
        self
    }

    /// Sets an environment variable for this run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn stdout(mut self, exact: impl Into<String>) -> Self {
        self.stdout.push(Check::Exact(exact.into()));
        self
    }

    pub fn stdout_contains(mut self, part: impl Into<String>) -> Self {
        self.stdout.push(Check::Contains(part.into()));
        self
    }

    pub fn stderr(mut self, exact: impl Into<String>) -> Self {
        self.stderr.push(Check::Exact(exact.into()));
        self
    }

    pub fn stderr_contains(mut self, part: impl Into<String>) -> Self {
        self.stderr.push(Check::Contains(part.into()));
        self
    }

    pub fn stderr_lacks(mut self, part: impl Into<String>) -> Self {
        self.stderr.push(Check::NotContains(part.into()));
        self
    }

    /// Runs the binary and checks every expectation; panics with the whole output on a mismatch.
    pub fn run(self) -> Output {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("dialer"));
        cmd.current_dir(self.test.path())
            .env_remove("DIALER_CONFIG")
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("TWILIO_AUTH_TOKEN")
            .env_remove("DIALER_DASHBOARD_TOKEN")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        if self.config {
            cmd.arg("--config").arg(self.test.join("dialer.toml"));
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run the dialer binary");
        let output = Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let context = || {
            format!(
                "command: dialer {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}---",
                self.args.join(" "),
                output.code,
                output.stdout,
                output.stderr
            )
        };
        assert_eq!(
            output.code,
            Some(self.status),
            "unexpected exit code\n{}",
            context()
        );
        for (name, text, checks) in [
            ("stdout", &output.stdout, &self.stdout),
            ("stderr", &output.stderr, &self.stderr),
        ] {
            for check in checks {
                let ok = match check {
                    Check::Exact(s) => text == s,
                    Check::Contains(s) => text.contains(s.as_str()),
                    Check::NotContains(s) => !text.contains(s.as_str()),
                };
                assert!(ok, "{name} fails {check:?}\n{}", context());
            }
        }
        output
    }
}

/// What a run printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Every row of every table (and the schema) of `DIR/dialer.db`, as text; `<no database>` when
/// the file does not exist. Rows are sorted, so equal contents give equal dumps.
pub fn db_dump(dir: &Path) -> String {
    let path = dir.join("dialer.db");
    if !path.exists() {
        return "<no database>".into();
    }
    let conn = rusqlite::Connection::open(&path).expect("open database");
    let mut out = String::new();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    let _ = writeln!(out, "user_version = {version}");
    let mut objects: Vec<(String, String, String)> = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        .expect("schema")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("schema rows")
        .collect::<Result<_, _>>()
        .expect("schema rows");
    objects.sort();
    for (kind, name, sql) in &objects {
        let _ = writeln!(out, "{kind} {name}: {sql}");
    }
    for (kind, name, _) in &objects {
        if kind != "table" || name.starts_with("sqlite_") {
            continue;
        }
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\""))
            .expect("select table");
        let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut rows: Vec<String> = Vec::new();
        let mut q = stmt.query([]).expect("query table");
        while let Some(r) = q.next().expect("row") {
            let cells: Vec<String> = (0..columns.len())
                .map(|i| match r.get_ref(i).expect("cell") {
                    ValueRef::Null => "NULL".to_owned(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                    ValueRef::Blob(b) => format!("x'{}'", hex(b)),
                })
                .collect();
            rows.push(cells.join("|"));
        }
        rows.sort();
        let _ = writeln!(out, "== {name} ({}) {} rows", columns.join(","), rows.len());
        for row in rows {
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The rows of one table in the dump (for "contacts unchanged" style checks).
pub fn table_rows(dump: &str, table: &str) -> Vec<String> {
    let header = format!("== {table} (");
    dump.lines()
        .skip_while(|l| !l.starts_with(&header))
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .map(str::to_owned)
        .collect()
}

/// Asserts that stderr is exactly one line starting with `error: ` and containing each part.
pub fn assert_one_error(out: &Output, parts: &[&str]) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one stderr line, got:\n{}",
        out.stderr
    );
    assert!(
        lines[0].starts_with("error: "),
        "stderr does not start with `error: `: {}",
        lines[0]
    );
    for p in parts {
        assert!(lines[0].contains(p), "stderr lacks `{p}`: {}", lines[0]);
    }
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
        "a panic: {}",
        out.stderr
    );
}
