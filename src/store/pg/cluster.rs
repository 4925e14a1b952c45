//! A throwaway PostgreSQL cluster for tests (lib and integration tests use this one
//! implementation): `initdb` in a temp dir as an unprivileged user, listening only on a Unix
//! socket in that dir (parallel test processes never share a port), fsync off, a fresh database
//! per test. [`PgCluster::shared`] starts one per test process; it stops when the process exits.
//! Without PostgreSQL installed it fails with one line saying how to install it — never skips.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::DatabaseUrl;

/// The port number names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;
/// The superuser `initdb` creates (local connections are trusted).
const SUPERUSER: &str = "postgres";

/// A running throwaway cluster.
pub struct PgCluster {
    /// Holds the data directory, the socket and the log; removed on drop.
    dir: tempfile::TempDir,
    bindir: PathBuf,
    run_as: Option<RunAs>,
}

/// The unprivileged account the server runs as when the tests run as root (`initdb` refuses
/// root).
#[derive(Debug, Clone)]
struct RunAs {
    uid: u32,
    gid: u32,
}

static SHARED: OnceLock<PgCluster> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PgCluster {
    /// The test process's cluster, started on first use and stopped at exit. Panics with one
    /// line (how to install PostgreSQL, or why it would not start).
    pub fn shared() -> &'static PgCluster {
        SHARED.get_or_init(|| {
            let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
            // statics are never dropped: stop the server when the process exits
            // SAFETY: registers a plain `extern "C"` function with no arguments.
            unsafe {
                libc::atexit(stop_shared);
            }
            cluster
        })
    }

    /// Starts a new cluster (use [`PgCluster::shared`] in tests; this one stops on drop).
    pub fn start() -> Result<PgCluster, String> {
        let bindir = find_bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("dialer-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create the test cluster's temp dir: {e}"))?;
        let run_as = unprivileged_user()?;
        if let Some(user) = &run_as {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).map_err(|e| {
                format!(
                    "cannot hand `{}` to the server's user: {e}",
                    dir.path().display()
                )
            })?;
        }
        let cluster = PgCluster {
            dir,
            bindir,
            run_as,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let settings = format!(
            "\n# dialer test cluster: Unix socket only, no durability\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             port = {PORT}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n",
            cluster.socket_dir().display()
        );
        append(&data.join("postgresql.conf"), &settings)?;
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "120".as_ref(),
                "start".as_ref(),
            ],
        )?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The url of database `dbname` on this cluster (it need not exist).
    pub fn url(&self, dbname: &str) -> DatabaseUrl {
        let text = format!(
            "postgresql:///{dbname}?host={}&port={PORT}&user={SUPERUSER}",
            self.socket_dir().display()
        );
        DatabaseUrl::parse(&text, None).unwrap_or_else(|e| panic!("test cluster url: {e}"))
    }

    /// Creates a new empty database named after `name` (made unique in this process) and
    /// returns its url.
    pub fn database(&self, name: &str) -> DatabaseUrl {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let dbname = format!("{clean}_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        let mut admin =
            super::connect(&self.url("postgres")).unwrap_or_else(|e| panic!("test cluster: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{dbname}\""))
            .unwrap_or_else(|e| panic!("test cluster: cannot create database `{dbname}`: {e}"));
        self.url(&dbname)
    }

    /// Stops the server at once (nothing in it is kept).
    fn stop(&self) {
        let data = self.data();
        let _ = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }

    /// Runs one of PostgreSQL's programs as the server's user, in the cluster's dir.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output, String> {
        use std::os::unix::process::CommandExt;
        let path = self.bindir.join(program);
        let mut command = Command::new(&path);
        command.args(args).current_dir(self.dir.path());
        if let Some(user) = &self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let output = command
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", path.display()))?;
        if output.status.success() {
            Ok(output)
        } else {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            Err(format!(
                "`{program}` failed ({}): {}{}{log}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            ))
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

extern "C" fn stop_shared() {
    if let Some(cluster) = SHARED.get() {
        cluster.stop();
        let _ = std::fs::remove_dir_all(cluster.dir.path());
    }
}

/// PostgreSQL's programs: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
fn find_bindir() -> Result<PathBuf, String> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&dir) {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed (no `initdb`): install it with `apt-get install postgresql` (Debian/Ubuntu) and run the tests again".to_owned()
    })
}

/// When the tests run as root: the `postgres` account, else `nobody`.
fn unprivileged_user() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let Ok(c_name) = CString::new(name) else {
            continue;
        };
        // SAFETY: a NUL-terminated name; the record is copied out before any other call.
        let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
        if !entry.is_null() {
            // SAFETY: non-null, points to the static passwd record getpwnam filled.
            let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
            return Ok(Some(RunAs { uid, gid }));
        }
    }
    Err("the tests run as root and neither a `postgres` nor a `nobody` account exists to run the test PostgreSQL server as (`initdb` refuses root)".to_owned())
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
