//! The `contacts` table: streaming, idempotent import, and the reads `plan` and the scheduler do.
//!
//! An import is atomic as the scheduler sees it (SPEC §10): a row an import run creates carries
//! the run in `pending_import` and is not dialable until the run has finished
//! ([`Tx::finish_import`], one row). Clearing the mark afterwards ([`Tx::settle_import`]) goes in
//! short batches; until it is done the due query also reads the finished run's rows through the
//! `contacts_pending` index (see `migrations/0004_imports.sql`).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Cached, Result, SqliteStore, SqliteTx, StoreError, instant, secs};
pub use crate::campaign::contacts_csv::NewContact;
use crate::schedule::ContactState;

/// Import summary counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl ImportCounts {
    /// Adds a chunk's counts.
    pub fn add(&mut self, other: &ImportCounts) {
        self.imported += other.imported;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

/// One import run: the campaign it fills and its row in `imports` (`contacts.import_id` points to
/// the last run that saw a contact, which is how a number repeated in the file is recognised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportRun {
    pub campaign_id: i64,
    pub import_id: i64,
    pub now: DateTime<Utc>,
}

/// What one chunk of an import did; `duplicates` are indexes into the chunk. `done` rows of the
/// chunk were handled (the first ones); the others did not fit in the time budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkOutcome {
    pub counts: ImportCounts,
    pub duplicates: Vec<usize>,
    pub done: usize,
}

/// Rows an import inserts per statement (10 parameters each; SQLite takes 32,766): one
/// statement's fixed costs (cursors on the table and each index, the foreign-key check's
/// setup) shared by many rows.
const INSERT_ROWS: usize = 64;

/// A contact as stored, for comparison with the row being imported.
pub(super) struct Stored {
    pub(super) id: i64,
    pub(super) import_id: Option<i64>,
    pub(super) ext_id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) zones: Option<String>,
    pub(super) fields: String,
    /// Created by an import run that has not finished (running, or killed): not a dialable
    /// contact yet, so the run that meets it again adopts it.
    pub(super) incomplete: bool,
}

impl Stored {
    pub(super) fn same_as(&self, c: &NewContact) -> bool {
        self.ext_id == c.ext_id
            && self.name == c.name
            && self.zones == c.zones
            && self.fields == c.fields
    }
}

/// SQL: whether contact `c` was created by an import run that has not finished (a run whose
/// row is gone counts as unfinished).
macro_rules! incomplete {
    () => {
        "(c.pending_import IS NOT NULL AND coalesce(
            (SELECT i.finished_at IS NULL FROM imports i WHERE i.id = c.pending_import), 1))"
    };
}

fn stored(conn: &Connection, campaign_id: i64, phone: &str) -> Result<Option<Stored>> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT c.id, c.import_id, c.ext_id, c.name, c.zones, c.fields, ",
            incomplete!(),
            " FROM contacts c WHERE c.campaign_id = ?1 AND c.phone = ?2"
        ))?
        .query_row(params![campaign_id, phone], |r| {
            Ok(Stored {
                id: r.get(0)?,
                import_id: r.get(1)?,
                ext_id: r.get(2)?,
                name: r.get(3)?,
                zones: r.get(4)?,
                fields: r.get(5)?,
                incomplete: r.get(6)?,
            })
        })
        .optional()?)
}

impl SqliteTx<'_> {
    /// Starts an import run into a campaign.
    pub fn begin_import(
        &self,
        campaign_id: i64,
        file: &str,
        now: DateTime<Utc>,
    ) -> Result<ImportRun> {
        self.conn
            .prepare_cached(
                "INSERT INTO imports (campaign_id, file, started_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![campaign_id, file, secs(now)])?;
        Ok(ImportRun {
            campaign_id,
            import_id: self.conn.last_insert_rowid(),
            now,
        })
    }

    /// Inserts or updates the rows of a chunk, in order, until `budget` has passed (at least one
    /// row; `done` says how many): the caller sends the rest in a later transaction, so no import
    /// transaction holds the write lock for long. A number already seen in this run is a
    /// duplicate. A changed contact keeps its call history. A row this run creates is not
    /// dialable until the run finishes; a row an unfinished run created is adopted by this one.
    pub fn import_chunk(
        &self,
        run: &ImportRun,
        rows: &[NewContact],
        budget: Duration,
    ) -> Result<ChunkOutcome> {
        let started = Instant::now();
        let mut out = ChunkOutcome::default();
        let now = secs(run.now);
        while out.done < rows.len() {
            if out.done > 0 && started.elapsed() >= budget {
                break;
            }
            let from = out.done;
            let batch = &rows[from..(from + INSERT_ROWS).min(rows.len())];
            // new numbers in one statement; the others (already stored) one by one
            let mut inserted = self.insert_new(run, batch, now)?;
            for (i, c) in batch.iter().enumerate() {
                if inserted.remove(c.phone.as_str()) {
                    out.counts.imported += 1;
                } else {
                    self.import_stored(run, c, from + i, now, &mut out)?;
                }
            }
            out.done = from + batch.len();
        }
        Ok(out)
    }

    /// Inserts the rows whose number the campaign does not have yet, in one statement; returns
    /// the numbers inserted (a number twice in `rows` is inserted once).
    fn insert_new<'r>(
        &self,
        run: &ImportRun,
        rows: &'r [NewContact],
        now: i64,
    ) -> Result<HashSet<&'r str>> {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
        let mut stmt = self.conn.prepare_cached(&format!(
            "INSERT INTO contacts (campaign_id, phone, ext_id, name, zones, fields, import_id, pending_import, created_at, updated_at)
             VALUES {values} ON CONFLICT (campaign_id, phone) DO NOTHING RETURNING phone"
        ))?;
        let mut k = 1;
        for c in rows {
            stmt.raw_bind_parameter(k, run.campaign_id)?;
            stmt.raw_bind_parameter(k + 1, &c.phone)?;
            stmt.raw_bind_parameter(k + 2, &c.ext_id)?;
            stmt.raw_bind_parameter(k + 3, &c.name)?;
            stmt.raw_bind_parameter(k + 4, &c.zones)?;
            stmt.raw_bind_parameter(k + 5, &c.fields)?;
            stmt.raw_bind_parameter(k + 6, run.import_id)?;
            stmt.raw_bind_parameter(k + 7, run.import_id)?;
            stmt.raw_bind_parameter(k + 8, now)?;
            stmt.raw_bind_parameter(k + 9, now)?;
            k += 10;
        }
        let numbers: HashSet<&'r str> = rows.iter().map(|c| c.phone.as_str()).collect();
        let mut returned = stmt.raw_query();
        let mut inserted = HashSet::with_capacity(rows.len());
        while let Some(r) = returned.next()? {
            let phone = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if let Some(number) = numbers.get(phone) {
                inserted.insert(*number);
            }
        }
        Ok(inserted)
    }

    /// One row whose number the campaign already has (or that `rows` held twice): a duplicate
    /// in this run, the adoption of a killed run's row, unchanged, or an update.
    fn import_stored(
        &self,
        run: &ImportRun,
        c: &NewContact,
        i: usize,
        now: i64,
        out: &mut ChunkOutcome,
    ) -> Result<()> {
        match stored(&self.conn, run.campaign_id, &c.phone)? {
            None => {
                // gone since the insert was tried (it cannot be, in one transaction)
                return Err(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows));
            }
            Some(s) if s.import_id == Some(run.import_id) => {
                out.counts.duplicates += 1;
                out.duplicates.push(i);
            }
            Some(s) if s.incomplete => {
                // written by a run that never finished (killed): this run takes it over
                self.conn
                    .prepare_cached(
                        "UPDATE contacts SET ext_id = ?1, name = ?2, zones = ?3, fields = ?4, import_id = ?5,
                             pending_import = ?5, updated_at = ?6
                         WHERE id = ?7",
                    )?
                    .execute(params![c.ext_id, c.name, c.zones, c.fields, run.import_id, now, s.id])?;
                out.counts.imported += 1;
            }
            Some(s) if s.same_as(c) => {
                self.conn
                    .prepare_cached("UPDATE contacts SET import_id = ?1 WHERE id = ?2")?
                    .execute(params![run.import_id, s.id])?;
                out.counts.unchanged += 1;
            }
            Some(s) => {
                self.conn
                    .prepare_cached(
                        "UPDATE contacts SET ext_id = ?1, name = ?2, zones = ?3, fields = ?4, import_id = ?5, updated_at = ?6
                         WHERE id = ?7",
                    )?
                    .execute(params![c.ext_id, c.name, c.zones, c.fields, run.import_id, now, s.id])?;
                out.counts.updated += 1;
            }
        }
        Ok(())
    }

    /// A whole (small) import in one job: begin, one chunk, finish, settle.
    pub fn import_contacts(
        &self,
        campaign_id: i64,
        file: &str,
        rows: &[NewContact],
        now: DateTime<Utc>,
    ) -> Result<ImportCounts> {
        let run = self.begin_import(campaign_id, file, now)?;
        let out = self.import_chunk(&run, rows, Duration::MAX)?;
        self.finish_import(&run, now)?;
        self.settle_import(run.import_id, Duration::MAX, now)?;
        Ok(out.counts)
    }

    /// Marks an import run complete: from this commit on, every row it created is dialable (one
    /// row written, whatever the size of the import).
    pub fn finish_import(&self, run: &ImportRun, now: DateTime<Utc>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE imports SET finished_at = ?2 WHERE id = ?1")?
            .execute(params![run.import_id, secs(now)])?;
        Ok(())
    }

    /// Clears the pending mark of a finished run's rows, a few hundred per statement, until
    /// none is left (then marks the run settled and returns true) or `budget` has passed (returns
    /// false: call again, in a later transaction). For an unfinished run it does nothing and
    /// returns true: there is nothing to settle, its rows stay pending.
    pub fn settle_import(
        &self,
        import_id: i64,
        budget: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let started = Instant::now();
        let finished: Option<Option<i64>> = self
            .conn
            .prepare_cached("SELECT finished_at FROM imports WHERE id = ?1")?
            .query_row([import_id], |r| r.get(0))
            .optional()?;
        if matches!(finished, Some(None)) {
            return Ok(true);
        }
        loop {
            let cleared = self
                .conn
                .prepare_cached(
                    "UPDATE contacts SET pending_import = NULL WHERE id IN
                         (SELECT id FROM contacts WHERE pending_import = ?1 LIMIT ?2)",
                )?
                .execute(params![import_id, SETTLE_STEP])?;
            if cleared < SETTLE_STEP as usize {
                self.conn
                    .prepare_cached(
                        "UPDATE imports SET settled_at = ?2 WHERE id = ?1 AND settled_at IS NULL",
                    )?
                    .execute(params![import_id, secs(now)])?;
                return Ok(true);
            }
            if started.elapsed() >= budget {
                return Ok(false);
            }
        }
    }
}

/// Rows [`Tx::settle_import`] clears per statement.
const SETTLE_STEP: u32 = 256;

/// A dry run of an import: counts what an import would do, writing nothing to the database
/// (numbers seen so far go to a TEMP table of this connection, so memory stays flat and no write
/// lock is taken).
pub struct SqliteDryRun<'a> {
    store: &'a SqliteStore,
    campaign_id: i64,
}

impl SqliteStore {
    pub fn dry_run(&self, campaign_id: i64) -> Result<SqliteDryRun<'_>> {
        self.conn.execute_batch(
            "PRAGMA query_only = OFF;
             CREATE TEMP TABLE IF NOT EXISTS dry_run_seen (phone TEXT PRIMARY KEY) WITHOUT ROWID;
             DELETE FROM temp.dry_run_seen;
             PRAGMA query_only = ON;",
        )?;
        Ok(SqliteDryRun {
            store: self,
            campaign_id,
        })
    }
}

impl SqliteDryRun<'_> {
    pub fn chunk(&mut self, rows: &[NewContact]) -> Result<ChunkOutcome> {
        let conn = &self.store.conn;
        conn.execute_batch("PRAGMA query_only = OFF")?;
        let result = (|| {
            let mut out = ChunkOutcome::default();
            for (i, c) in rows.iter().enumerate() {
                let first = conn
                    .prepare_cached(
                        "INSERT INTO temp.dry_run_seen (phone) VALUES (?1) ON CONFLICT DO NOTHING",
                    )?
                    .execute([&c.phone])?
                    == 1;
                if !first {
                    out.counts.duplicates += 1;
                    out.duplicates.push(i);
                    continue;
                }
                match stored(conn, self.campaign_id, &c.phone)? {
                    None => out.counts.imported += 1,
                    Some(s) if s.incomplete => out.counts.imported += 1,
                    Some(s) if s.same_as(c) => out.counts.unchanged += 1,
                    Some(_) => out.counts.updated += 1,
                }
            }
            out.done = rows.len();
            Ok(out)
        })();
        conn.execute_batch("PRAGMA query_only = ON")?;
        result
    }
}

/// A contact as `plan` and the scheduler see it.
#[derive(Debug, Clone)]
pub struct ContactRow {
    pub id: i64,
    pub campaign_id: i64,
    pub phone: String,
    pub ext_id: Option<String>,
    pub name: Option<String>,
    pub zones: Option<String>,
    pub fields: String,
    pub state: ContactState,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_reason: Option<String>,
    pub outcome: Option<String>,
    pub in_flight: bool,
    pub on_dnc: bool,
    /// Created by an import run that has not finished (running, or killed): not dialable.
    pub import_incomplete: bool,
}

impl ContactRow {
    /// The CSV `id`, else the phone (SPEC §8 `contact`).
    pub fn reference(&self) -> &str {
        self.ext_id.as_deref().unwrap_or(&self.phone)
    }
}

const CONTACT_SELECT: &str = concat!(
    "SELECT c.id, c.campaign_id, c.phone, c.ext_id, c.name, c.zones, c.fields, c.state,
        c.attempts, c.next_attempt_at, c.last_reason, c.outcome,
        EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.ended_at IS NULL),
        EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone), ",
    incomplete!(),
    " FROM contacts c"
);

/// The due query (?1 campaign, ?2 instant, ?3 limit): the ids of dialable rows in due order, a
/// range of `contacts_due`. Only ids (a caller reads the rows it keeps), and none with an open
/// attempt: calls in progress keep their place at the front of the range, and one probe of the
/// small `attempts_open` index each is cheaper than reading and deciding their rows on every look.
const DUE: &str = "SELECT c.id, c.next_attempt_at FROM contacts c
     WHERE c.campaign_id = ?1 AND c.state = 'open' AND c.pending_import IS NULL
     AND c.next_attempt_at <= ?2 AND NOT EXISTS (SELECT 1 FROM attempts a
         WHERE a.contact_id = c.id AND a.ended_at IS NULL)
     ORDER BY c.next_attempt_at, c.id LIMIT ?3";

/// The due query for the rows of a finished, not yet settled run (?4), a range of
/// `contacts_pending`.
const DUE_SETTLING: &str = "SELECT c.id, c.next_attempt_at FROM contacts c
     WHERE c.pending_import = ?4 AND c.campaign_id = ?1 AND c.state = 'open'
     AND c.next_attempt_at <= ?2 AND NOT EXISTS (SELECT 1 FROM attempts a
         WHERE a.contact_id = c.id AND a.ended_at IS NULL)
     ORDER BY c.next_attempt_at, c.id LIMIT ?3";

/// The due `(next_attempt_at, id)` pairs of several ranges (the campaign's and its unsettled
/// runs'), visited in due order, at most `scan`, until `visit` breaks: both backends' merge.
pub(crate) fn visit_merged(
    mut due: Vec<(i64, i64)>,
    scan: u32,
    mut visit: impl FnMut(i64) -> Result<ControlFlow<()>>,
) -> Result<()> {
    due.sort_unstable();
    for (_, id) in due.into_iter().take(scan as usize) {
        if visit(id)?.is_break() {
            break;
        }
    }
    Ok(())
}

fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRow> {
    let state: String = r.get(7)?;
    let next: i64 = r.get(9)?;
    Ok(ContactRow {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        phone: r.get(2)?,
        ext_id: r.get(3)?,
        name: r.get(4)?,
        zones: r.get(5)?,
        fields: r.get(6)?,
        state: ContactState::parse(&state).unwrap_or(ContactState::Open),
        attempts: r.get(8)?,
        next_attempt_at: (next > 0).then(|| instant(next)),
        last_reason: r.get(10)?,
        outcome: r.get(11)?,
        in_flight: r.get(12)?,
        on_dnc: r.get(13)?,
        import_incomplete: r.get(14)?,
    })
}

impl SqliteStore {
    /// `PRAGMA data_version`: it changes when another connection (another process) has committed
    /// since this connection last looked — how an import notices the daemon writing beside it.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row_cached("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Calls `f` for every contact of a campaign, in id order, without loading them all.
    pub fn for_each_contact<E: From<StoreError>>(
        &self,
        campaign_id: i64,
        mut f: impl FnMut(ContactRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = |e: rusqlite::Error| E::from(StoreError::Sql(e));
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{CONTACT_SELECT} WHERE c.campaign_id = ?1 ORDER BY c.id"
            ))
            .map_err(sql)?;
        let mut rows = stmt.query([campaign_id]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            f(contact_row(r).map_err(sql)?)?;
        }
        Ok(())
    }

    /// Visits the ids of the campaign's contacts due at `now`, earliest first, at most `scan` of
    /// them, until `visit` breaks. The caller reads the rows it keeps ([`Store::contact`]).
    pub fn visit_due(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
        scan: u32,
        mut visit: impl FnMut(i64) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let unsettled = self.unsettled_imports(campaign_id)?;
        if unsettled.is_empty() {
            let mut stmt = self.conn.prepare_cached(DUE)?;
            let mut rows = stmt.query(params![campaign_id, secs(now), scan])?;
            while let Some(row) = rows.next()? {
                if visit(row.get(0)?)?.is_break() {
                    break;
                }
            }
            return Ok(());
        }
        // rare (an import killed between finishing and settling): merge the two ranges
        let mut due: Vec<(i64, i64)> = Vec::new();
        let mut read = |sql: &str, bound: &[&dyn rusqlite::ToSql]| -> Result<()> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            for row in stmt.query_map(bound, |r| Ok((r.get(1)?, r.get(0)?)))? {
                due.push(row?);
            }
            Ok(())
        };
        read(DUE, params![campaign_id, secs(now), scan])?;
        for import_id in unsettled {
            read(
                DUE_SETTLING,
                params![campaign_id, secs(now), scan, import_id],
            )?;
        }
        visit_merged(due, scan, visit)
    }

    /// Finished import runs of every campaign whose rows are not all settled yet, oldest first.
    pub fn unsettled_import_ids(&self) -> Result<Vec<i64>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id FROM imports
                 WHERE settled_at IS NULL AND finished_at IS NOT NULL ORDER BY id",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The campaign's finished import runs whose rows are not all settled yet (normally none:
    /// settling follows the finish at once, unless the import was killed in between).
    pub fn unsettled_imports(&self, campaign_id: i64) -> Result<Vec<i64>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id FROM imports
                 WHERE campaign_id = ?1 AND settled_at IS NULL AND finished_at IS NOT NULL ORDER BY id",
            )?
            .query_map([campaign_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn contact(&self, id: i64) -> Result<Option<ContactRow>> {
        Ok(self
            .conn
            .prepare_cached(&format!("{CONTACT_SELECT} WHERE c.id = ?1"))?
            .query_row([id], contact_row)
            .optional()?)
    }

    /// Start instants of attempts to a number (any campaign) after `since`.
    pub fn recent_attempts(&self, phone: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT started_at FROM attempts WHERE phone = ?1 AND started_at > ?2 AND direction = 'outbound'
             ORDER BY started_at",
        )?;
        let rows = stmt
            .query_map(params![phone, secs(since)], |r| Ok(instant(r.get(0)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Template field names that at least one contact of the campaign has.
    pub fn contact_field_names(
        &self,
        campaign_id: i64,
    ) -> Result<std::collections::BTreeSet<String>> {
        let mut names = std::collections::BTreeSet::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT j.key FROM contacts c, json_each(c.fields) j WHERE c.campaign_id = ?1",
        )?;
        for k in stmt.query_map([campaign_id], |r| r.get::<_, String>(0))? {
            names.insert(k?);
        }
        let has: (bool, bool) = self.conn.query_row_cached(
            "SELECT coalesce(max(name IS NOT NULL AND name <> ''), 0), coalesce(max(ext_id IS NOT NULL), 0) FROM contacts WHERE campaign_id = ?1",
            [campaign_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if has.0 {
            names.insert("name".into());
        }
        if has.1 {
            names.insert("id".into());
        }
        Ok(names)
    }
}

impl SqliteStore {
    /// The earliest future retry of a campaign's open contacts (the daemon's wake-up).
    pub fn earliest_retry(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut at: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM contacts
                 WHERE campaign_id = ?1 AND state = 'open' AND pending_import IS NULL AND next_attempt_at > ?2",
            )?
            .query_row(params![campaign_id, secs(now)], |r| r.get(0))?;
        for import_id in self.unsettled_imports(campaign_id)? {
            let more: Option<i64> = self
                .conn
                .prepare_cached(
                    "SELECT min(next_attempt_at) FROM contacts
                     WHERE pending_import = ?1 AND state = 'open' AND next_attempt_at > ?2",
                )?
                .query_row(params![import_id, secs(now)], |r| r.get(0))?;
            at = at.into_iter().chain(more).min();
        }
        Ok(at.map(instant))
    }

    /// The distinct stored zone lists (`|`-separated; `None` = the campaign's zone) of a
    /// campaign's open contacts.
    pub fn open_zone_lists(&self, campaign_id: i64) -> Result<Vec<Option<String>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT zones FROM contacts WHERE campaign_id = ?1 AND state = 'open'",
        )?;
        let rows = stmt
            .query_map([campaign_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Dialable open contacts of a campaign whose next attempt time has come (before
    /// calling-hours checks): index range counts for `/metrics`.
    pub fn ready_contacts(&self, campaign_id: i64, now: DateTime<Utc>) -> Result<i64> {
        let mut count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM contacts
                 WHERE campaign_id = ?1 AND state = 'open' AND pending_import IS NULL AND next_attempt_at <= ?2",
            )?
            .query_row(params![campaign_id, secs(now)], |r| r.get(0))?;
        for import_id in self.unsettled_imports(campaign_id)? {
            count += self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM contacts
                     WHERE pending_import = ?1 AND state = 'open' AND next_attempt_at <= ?2",
                )?
                .query_row(params![import_id, secs(now)], |r| r.get::<_, i64>(0))?;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params_from_iter;

    use super::*;
    use crate::store::Store;

    const AT: i64 = 1_800_000_000;

    fn contact(phone: &str) -> NewContact {
        NewContact {
            phone: phone.to_owned(),
            ext_id: None,
            name: None,
            zones: None,
            fields: "{}".to_owned(),
        }
    }

    fn rows(phones: &[&str]) -> Vec<NewContact> {
        phones.iter().map(|p| contact(p)).collect()
    }

    /// A database with one campaign (its id) and one contact imported and finished.
    fn setup() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("c.db")).expect("open");
        let (cid, _) = store
            .tx()
            .upsert_campaign("c", "{}", false, instant(AT))
            .expect("campaign");
        store
            .tx()
            .import_contacts(cid, "seed.csv", &rows(&["+12125550100"]), instant(AT))
            .expect("seed");
        (dir, store, cid)
    }

    fn due_ids(store: &Store, cid: i64, scan: u32) -> Vec<i64> {
        let mut ids = Vec::new();
        store
            .visit_due(cid, instant(AT), scan, |id| {
                ids.push(id);
                Ok(ControlFlow::Continue(()))
            })
            .expect("due");
        ids
    }

    fn due_phones(store: &Store, cid: i64) -> Vec<String> {
        due_ids(store, cid, 1000)
            .into_iter()
            .map(|id| store.contact(id).expect("read").expect("row").phone)
            .collect()
    }

    fn incomplete(store: &Store, phone: &str) -> bool {
        let id: i64 = store
            .conn()
            .query_row("SELECT id FROM contacts WHERE phone = ?1", [phone], |r| {
                r.get(0)
            })
            .expect("id");
        store
            .contact(id)
            .expect("contact")
            .expect("row")
            .import_incomplete
    }

    #[test]
    fn rows_of_an_unfinished_import_are_not_due_until_it_finishes() {
        let (_dir, store, cid) = setup();
        let tx = store.tx();
        let run = tx.begin_import(cid, "big.csv", instant(AT)).expect("begin");
        tx.import_chunk(
            &run,
            &rows(&["+12125550101", "+12125550102"]),
            Duration::MAX,
        )
        .expect("chunk");
        assert_eq!(due_phones(&store, cid), ["+12125550100"]);
        assert!(incomplete(&store, "+12125550101"));
        assert!(!incomplete(&store, "+12125550100"));
        assert_eq!(store.ready_contacts(cid, instant(AT)).expect("ready"), 1);

        // finishing is one row: every row of the run is due at once, before it is settled
        tx.finish_import(&run, instant(AT)).expect("finish");
        assert_eq!(
            store.unsettled_imports(cid).expect("unsettled"),
            [run.import_id]
        );
        assert_eq!(
            due_phones(&store, cid),
            ["+12125550100", "+12125550101", "+12125550102"]
        );
        assert!(!incomplete(&store, "+12125550101"));
        assert_eq!(store.ready_contacts(cid, instant(AT)).expect("ready"), 3);

        assert!(
            tx.settle_import(run.import_id, Duration::MAX, instant(AT))
                .expect("settle")
        );
        assert!(store.unsettled_imports(cid).expect("unsettled").is_empty());
        assert_eq!(
            due_phones(&store, cid),
            ["+12125550100", "+12125550101", "+12125550102"]
        );
        let pending: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM contacts WHERE pending_import IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(pending, 0);
    }

    #[test]
    fn a_rerun_adopts_the_rows_of_a_killed_import_and_finishes_the_job() {
        let (_dir, store, cid) = setup();
        let tx = store.tx();
        let killed = tx.begin_import(cid, "big.csv", instant(AT)).expect("begin");
        tx.import_chunk(&killed, &rows(&["+12125550101"]), Duration::MAX)
            .expect("chunk");
        // never finished: the process died. The same file again:
        let file = rows(&["+12125550101", "+12125550102", "+12125550100"]);
        let rerun = tx.begin_import(cid, "big.csv", instant(AT)).expect("begin");
        let out = tx
            .import_chunk(&rerun, &file, Duration::MAX)
            .expect("chunk");
        assert_eq!(
            (out.counts.imported, out.counts.unchanged, out.done),
            (2, 1, 3),
            "the killed run's row is new to the campaign: imported"
        );
        assert_eq!(due_phones(&store, cid), ["+12125550100"]);
        tx.finish_import(&rerun, instant(AT)).expect("finish");
        assert!(
            tx.settle_import(rerun.import_id, Duration::MAX, instant(AT))
                .expect("settle")
        );
        assert_eq!(
            due_phones(&store, cid),
            ["+12125550100", "+12125550101", "+12125550102"]
        );
        // the killed run stays unfinished: settling it does nothing
        assert!(
            tx.settle_import(killed.import_id, Duration::MAX, instant(AT))
                .expect("settle")
        );
    }

    #[test]
    fn an_unfinished_import_changes_existing_contacts_but_keeps_them_dialable() {
        let (_dir, store, cid) = setup();
        let tx = store.tx();
        let run = tx.begin_import(cid, "v2.csv", instant(AT)).expect("begin");
        let mut changed = contact("+12125550100");
        changed.name = Some("New".into());
        let out = tx
            .import_chunk(&run, &[changed], Duration::MAX)
            .expect("chunk");
        assert_eq!(out.counts.updated, 1);
        assert_eq!(due_phones(&store, cid), ["+12125550100"]);
    }

    #[test]
    fn a_chunk_stops_at_its_time_budget_and_says_how_far_it_got() {
        let (_dir, store, cid) = setup();
        let tx = store.tx();
        let run = tx.begin_import(cid, "big.csv", instant(AT)).expect("begin");
        // one statement's worth of rows at least, then the budget is looked at
        let mut file: Vec<NewContact> = (0..INSERT_ROWS + 10)
            .map(|i| contact(&format!("+1212555{:04}", 1000 + i)))
            .collect();
        file.push(contact("+12125551000"));
        let first = tx.import_chunk(&run, &file, Duration::ZERO).expect("chunk");
        assert_eq!(
            (first.done, first.counts.imported),
            (INSERT_ROWS, INSERT_ROWS as u64)
        );
        let rest = tx
            .import_chunk(&run, &file[INSERT_ROWS..], Duration::MAX)
            .expect("chunk");
        assert_eq!(rest.done, 11);
        assert_eq!(rest.counts.imported, 10);
        assert_eq!(rest.duplicates, [10], "the number of the first row, again");
    }

    #[test]
    fn settling_goes_in_steps_within_its_budget() {
        let (_dir, store, cid) = setup();
        let tx = store.tx();
        let run = tx.begin_import(cid, "big.csv", instant(AT)).expect("begin");
        let file: Vec<NewContact> = (0..600)
            .map(|i| contact(&format!("+1212555{:04}", 1000 + i)))
            .collect();
        tx.import_chunk(&run, &file, Duration::MAX).expect("chunk");
        tx.finish_import(&run, instant(AT)).expect("finish");
        let mut calls = 1;
        while !tx
            .settle_import(run.import_id, Duration::ZERO, instant(AT))
            .expect("settle")
        {
            calls += 1;
        }
        assert_eq!(calls, 3, "256 rows per step: 256, 256, 88");
        assert_eq!(due_ids(&store, cid, 10_000).len(), 601);
    }

    fn query_plan(store: &Store, filter: &str, params: usize) -> Vec<String> {
        store
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {filter}"))
            .expect("explain")
            .query_map(params_from_iter([1, AT, 10, 2].iter().take(params)), |r| {
                r.get::<_, String>(3)
            })
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows")
    }

    /// The due query stays a range scan of `contacts_due` (O(due + log n)): rows of unfinished
    /// imports are not in that index, so they never sit at the front of the scan; a finished
    /// run not yet settled is one range of `contacts_pending`.
    #[test]
    fn the_due_query_scans_the_due_index() {
        let (_dir, store, _) = setup();
        for (filter, params, index) in [
            (
                DUE,
                3,
                "USING INDEX contacts_due (campaign_id=? AND next_attempt_at<?)",
            ),
            (
                DUE_SETTLING,
                4,
                "USING INDEX contacts_pending (pending_import=? AND next_attempt_at<?)",
            ),
        ] {
            let plan = query_plan(&store, filter, params);
            assert!(plan.iter().any(|l| l.contains(index)), "{plan:#?}");
            assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{plan:#?}");
        }
    }

    /// A database from before migration 0004 keeps loading, and its contacts stay dialable.
    #[test]
    fn a_version_2_database_migrates_and_its_contacts_stay_due() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            rusqlite_migration::Migrations::from_slice(&super::super::MIGRATIONS[..2])
                .to_latest(&mut conn)
                .expect("v2");
            conn.execute_batch(
                "INSERT INTO campaigns (id, name, config, created_at, updated_at) VALUES (1, 'c', '{}', 0, 0);
                 INSERT INTO imports (id, campaign_id, file, started_at) VALUES (1, 1, 'old.csv', 0);
                 INSERT INTO contacts (campaign_id, phone, import_id, created_at, updated_at)
                     VALUES (1, '+12125550100', 1, 0, 0);",
            )
            .expect("v2 rows");
        }
        let store = Store::open(&path).expect("migrate");
        assert_eq!(due_phones(&store, 1), ["+12125550100"]);
        assert!(store.unsettled_imports(1).expect("unsettled").is_empty());
    }
}
