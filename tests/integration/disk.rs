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

/// A separate `dialer simulator` process (outside the namespace: `unshare -rm` keeps the
/// network, so the daemon inside reaches it over loopback); killed on drop.
pub(crate) struct Simulator {
    child: std::process::Child,
    pub(crate) base: String,
}

impl Simulator {
    pub(crate) fn start(t: &Test, table: &str) -> Simulator {
        use std::io::BufRead;
        t.write("sim.toml", format!("[simulator]\n{table}\n"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_dialer"))
            .current_dir(t.path())
            .args([
                "simulator",
                "--listen",
                "127.0.0.1:0",
                "--config",
                "sim.toml",
            ])
            .env_remove("DIALER_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(t.join("sim.stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn simulator");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read simulator banner");
        let base = line
            .strip_prefix("simulator listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected simulator banner: {line:?}"))
            .to_owned();
        // keep reading its stdout so it never blocks on a full pipe
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Simulator { child, base }
    }

    /// `To` of every successful Calls create, by SID.
    fn created(&self) -> Vec<(String, String)> {
        let body = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                reqwest::get(format!("{}/simulator/requests", self.base))
                    .await
                    .expect("GET requests")
                    .text()
                    .await
                    .expect("body")
            });
        let log: Vec<serde_json::Value> = serde_json::from_str(&body).expect("request log");
        log.iter()
            .filter(|r| r["status"] == 201)
            .map(|r| {
                let to = r["params"]
                    .as_array()
                    .expect("params")
                    .iter()
                    .find(|p| p[0] == "To")
                    .and_then(|p| p[1].as_str())
                    .expect("To")
                    .to_owned();
                (r["sid"].as_str().expect("sid").to_owned(), to)
            })
            .collect()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SPEC §10 "full disk … during run": the daemon keeps running while the disk holding its
/// database is full (writes fail with one clear log line, nothing is corrupted, it does not
/// spin), and once space returns it goes on placing and settling calls by itself — no restart,
/// no attempt lost or doubled (every contact ends as its policy says; creates = attempts with a
/// SID, checked against the simulator's own record).
#[test]
fn the_daemon_rides_out_a_full_disk_and_resumes_by_itself_when_space_returns() {
    const N: usize = 40;
    let t = Test::without_config();
    let sim = Simulator::start(
        &t,
        "seed = 31\ntime_scale = 0.02\n\
         [[simulator.rules]]\npattern = \"+121255501*\"\nbehavior = \"human\"\n\
         [[simulator.rules]]\npattern = \"+121255502*\"\nbehavior = \"busy\"\n",
    );
    t.write(
        "dialer.toml",
        format!(
            "[database]\npath = \"small/dialer.db\"\n\n\
             [server]\nlisten = \"127.0.0.1:0\"\n\n\
             [dialer]\ncalls_per_second = 4.0\nmax_concurrent_calls = 20\nshutdown_grace = \"10s\"\n\n\
             [[campaign]]\nfile = \"c.json\"\ncontacts = \"c.csv\"\n\n\
             [carrier]\nkind = \"twilio\"\n\n[twilio]\napi_base = \"{}\"\n\
             account_sid = \"AC00000000000000000000000000000000\"\n\
             auth_token = \"simulator-auth-token\"\n",
            sim.base
        ),
    );
    t.write(
        "c.json",
        r#"{"name": "d", "message": "hello", "calling_hours_start": "00:00",
            "calling_hours_end": "24:00", "max_retries": 1, "retry_delays": {"busy": "1s"},
            "ring_timeout": 12, "max_call_duration": 5}"#,
    );
    // +121255501NN answer (human), +121255502NN are busy (retried once, then exhausted)
    let phones: Vec<String> = (0..N)
        .map(|i| format!("+12125550{}{:02}", 1 + i % 2, i / 2))
        .collect();
    let mut csv = String::from("phone,name\n");
    for (i, p) in phones.iter().enumerate() {
        csv.push_str(&format!("{p},Contact {i}\n"));
    }
    t.write("c.csv", csv);

    let started = std::time::Instant::now();
    let out = in_small_disk(
        &t,
        "8m",
        &format!(
            r#"
"$DIALER" -v run daemon > daemon.out 2> daemon.err &
PID=$!
placed() {{ grep -c 'call placed' daemon.err; }}
alive() {{ kill -0 $PID 2>/dev/null && echo yes || echo no; }}
cpu() {{ awk '{{print $14 + $15}}' /proc/$PID/stat; }}
i=0
while [ "$(placed)" -lt 8 ] && [ $i -lt 300 ] && kill -0 $PID 2>/dev/null; do i=$((i+1)); sleep 0.05; done
echo PLACED_BEFORE_FILL=$(placed)
dd if=/dev/zero of=small/filler bs=4k 2>/dev/null
echo FILLER_DONE=1
C0=$(cpu); S0=$(date +%s%N)
i=0
while ! grep -q 'is full' daemon.err && [ $i -lt 200 ] && kill -0 $PID 2>/dev/null; do i=$((i+1)); sleep 0.05; done
sleep 2
echo ALIVE_WHILE_FULL=$(alive)
echo CPU_TICKS_WHILE_FULL=$(( $(cpu) - C0 ))
echo MS_WHILE_FULL=$(( ($(date +%s%N) - S0) / 1000000 ))
echo PLACED_WHILE_FULL=$(placed)
echo FULL_LINES=$(grep -c 'is full' daemon.err)
rm small/filler
echo FREED_LINE=$(wc -l < daemon.err)
done_count() {{ "$DIALER" plan --format csv 2>/dev/null | grep -cE ',(completed|exhausted),'; }}
i=0
while [ "$(done_count)" -lt {N} ] && [ $i -lt 450 ] && kill -0 $PID 2>/dev/null; do i=$((i+1)); sleep 0.2; done
echo DONE=$(done_count)
echo ALIVE_AFTER=$(alive)
echo PLACED_AFTER=$(placed)
kill -TERM $PID
wait $PID
echo EXIT=$?
mkdir -p out
cp small/dialer.db out/
[ -f small/dialer.db-wal ] && cp small/dialer.db-wal out/
true
"#
        ),
    );
    let elapsed = started.elapsed();
    let log = t.read("daemon.err");
    let ctx = || {
        format!(
            "{out}\n--- daemon.err\n{log}\n--- daemon.out\n{}",
            t.read("daemon.out")
        )
    };
    eprintln!("{out}");
    eprintln!("scenario took {elapsed:?}");
    assert_eq!(value(&out, "ALIVE_WHILE_FULL"), "yes", "{}", ctx());
    assert!(
        value(&out, "FULL_LINES").parse::<usize>().unwrap() > 0,
        "{}",
        ctx()
    );
    assert_eq!(value(&out, "ALIVE_AFTER"), "yes", "{}", ctx());
    assert_eq!(value(&out, "DONE"), N.to_string(), "{}", ctx());
    assert_eq!(value(&out, "EXIT"), "0", "{}", ctx());
    // while full: no spinning (under a third of one core), placing paused with one error line
    let ticks: u64 = value(&out, "CPU_TICKS_WHILE_FULL").parse().unwrap();
    let ms: u64 = value(&out, "MS_WHILE_FULL").parse().unwrap();
    assert!(
        ticks * 10 < ms / 3,
        "the daemon spun while the disk was full:\n{}",
        ctx()
    );
    assert_eq!(
        log.matches("cannot write to the database: placing paused")
            .count(),
        1,
        "one error line per outage:\n{}",
        ctx()
    );
    assert!(
        log.contains("the database takes writes again: placing resumed"),
        "{}",
        ctx()
    );
    assert!(
        value(&out, "PLACED_AFTER").parse::<usize>().unwrap()
            > value(&out, "PLACED_WHILE_FULL").parse::<usize>().unwrap(),
        "placing resumed by itself:\n{}",
        ctx()
    );

    // nothing lost, nothing doubled: each contact as its policy says, attempts = rows,
    // every create owned by exactly one attempt and every attempt with a call created once
    let conn = rusqlite::Connection::open(t.join("out/dialer.db")).expect("open the copy");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let open: i64 = conn
        .query_row(
            "SELECT count(*) FROM attempts WHERE ended_at IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("open attempts");
    assert_eq!(open, 0, "{}", ctx());
    for p in &phones {
        let (state, attempts, rows): (String, i64, i64) = conn
            .query_row(
                "SELECT state, attempts, (SELECT count(*) FROM attempts a WHERE a.contact_id = c.id)
                 FROM contacts c WHERE phone = ?1",
                [p],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("contact");
        assert_eq!(attempts, rows, "{p}: attempts counter = attempt rows");
        let expected = if p.starts_with("+121255501") {
            ("completed", 1)
        } else {
            ("exhausted", 2)
        };
        let statuses: Vec<String> = conn
            .prepare(
                "SELECT a.status || '/' || coalesce(a.call_sid, '-') FROM attempts a
                 JOIN contacts c ON c.id = a.contact_id WHERE c.phone = ?1",
            )
            .expect("prepare")
            .query_map([p], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            (state.as_str(), rows),
            expected,
            "{p}: {statuses:?}\n{}",
            ctx()
        );
    }
    let sids: Vec<Option<String>> = conn
        .prepare("SELECT call_sid FROM attempts")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let created = sim.created();
    for (sid, to) in &created {
        let owners = sids.iter().filter(|s| s.as_deref() == Some(sid)).count();
        assert_eq!(
            owners, 1,
            "call {sid} to {to} is owned by {owners} attempts"
        );
    }
    assert_eq!(
        sids.iter().filter(|s| s.is_some()).count(),
        created.len(),
        "creates = attempts with a SID"
    );
}
