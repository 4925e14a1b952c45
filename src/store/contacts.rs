//! The `contacts` table: streaming, idempotent import, and the reads `plan` and the scheduler do.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, Tx, instant, secs};
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

/// What one chunk of an import did; `duplicates` are indexes into the chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkOutcome {
    pub counts: ImportCounts,
    pub duplicates: Vec<usize>,
}

/// A contact as stored, for comparison with the row being imported.
struct Stored {
    id: i64,
    import_id: Option<i64>,
    ext_id: Option<String>,
    name: Option<String>,
    zones: Option<String>,
    fields: String,
}

impl Stored {
    fn same_as(&self, c: &NewContact) -> bool {
        self.ext_id == c.ext_id
            && self.name == c.name
            && self.zones == c.zones
            && self.fields == c.fields
    }
}

fn stored(conn: &Connection, campaign_id: i64, phone: &str) -> Result<Option<Stored>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, import_id, ext_id, name, zones, fields FROM contacts WHERE campaign_id = ?1 AND phone = ?2",
        )?
        .query_row(params![campaign_id, phone], |r| {
            Ok(Stored {
                id: r.get(0)?,
                import_id: r.get(1)?,
                ext_id: r.get(2)?,
                name: r.get(3)?,
                zones: r.get(4)?,
                fields: r.get(5)?,
            })
        })
        .optional()?)
}

impl Tx<'_> {
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

    /// Inserts or updates one chunk of contacts; a number already seen in this run is a
    /// duplicate. A changed contact keeps its call history.
    pub fn import_chunk(&self, run: &ImportRun, rows: &[NewContact]) -> Result<ChunkOutcome> {
        let mut out = ChunkOutcome::default();
        let now = secs(run.now);
        for (i, c) in rows.iter().enumerate() {
            match stored(&self.conn, run.campaign_id, &c.phone)? {
                None => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO contacts (campaign_id, phone, ext_id, name, zones, fields, import_id, created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                        )?
                        .execute(params![run.campaign_id, c.phone, c.ext_id, c.name, c.zones, c.fields, run.import_id, now])?;
                    out.counts.imported += 1;
                }
                Some(s) if s.import_id == Some(run.import_id) => {
                    out.counts.duplicates += 1;
                    out.duplicates.push(i);
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
        }
        Ok(out)
    }

    /// A whole (small) import in one job: begin, one chunk, finish.
    pub fn import_contacts(
        &self,
        campaign_id: i64,
        file: &str,
        rows: &[NewContact],
        now: DateTime<Utc>,
    ) -> Result<ImportCounts> {
        let run = self.begin_import(campaign_id, file, now)?;
        let out = self.import_chunk(&run, rows)?;
        self.finish_import(&run, now)?;
        Ok(out.counts)
    }

    /// Marks an import run complete.
    pub fn finish_import(&self, run: &ImportRun, now: DateTime<Utc>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE imports SET finished_at = ?2 WHERE id = ?1")?
            .execute(params![run.import_id, secs(now)])?;
        Ok(())
    }
}

/// A dry run of an import: counts what an import would do, writing nothing to the database
/// (numbers seen so far go to a TEMP table of this connection, so memory stays flat and no write
/// lock is taken).
pub struct DryRun<'a> {
    store: &'a Store,
    campaign_id: i64,
}

impl Store {
    pub fn dry_run(&self, campaign_id: i64) -> Result<DryRun<'_>> {
        self.conn.execute_batch(
            "PRAGMA query_only = OFF;
             CREATE TEMP TABLE IF NOT EXISTS dry_run_seen (phone TEXT PRIMARY KEY) WITHOUT ROWID;
             DELETE FROM temp.dry_run_seen;
             PRAGMA query_only = ON;",
        )?;
        Ok(DryRun {
            store: self,
            campaign_id,
        })
    }
}

impl DryRun<'_> {
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
                    Some(s) if s.same_as(c) => out.counts.unchanged += 1,
                    Some(_) => out.counts.updated += 1,
                }
            }
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
}

impl ContactRow {
    /// The CSV `id`, else the phone (SPEC §8 `contact`).
    pub fn reference(&self) -> &str {
        self.ext_id.as_deref().unwrap_or(&self.phone)
    }
}

const CONTACT_SELECT: &str =
    "SELECT c.id, c.campaign_id, c.phone, c.ext_id, c.name, c.zones, c.fields, c.state,
        c.attempts, c.next_attempt_at, c.last_reason, c.outcome,
        EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.ended_at IS NULL),
        EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone)
    FROM contacts c";

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
    })
}

impl Store {
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

    /// Open contacts of a campaign whose `next_attempt_at` is at or before `now`, oldest first:
    /// a range scan of the `contacts_due` index.
    pub fn due_contacts(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ContactRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{CONTACT_SELECT} WHERE c.campaign_id = ?1 AND c.state = 'open' AND c.next_attempt_at <= ?2
             ORDER BY c.next_attempt_at, c.id LIMIT ?3"
        ))?;
        let rows = stmt
            .query_map(params![campaign_id, secs(now), limit], contact_row)?
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
            "SELECT started_at FROM attempts WHERE phone = ?1 AND started_at > ?2 ORDER BY started_at",
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
        let has: (bool, bool) = self.conn.query_row(
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

impl Store {
    /// The earliest future retry of a campaign's open contacts (the daemon's wake-up).
    pub fn earliest_retry(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let at: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM contacts
                 WHERE campaign_id = ?1 AND state = 'open' AND next_attempt_at > ?2",
            )?
            .query_row(params![campaign_id, secs(now)], |r| r.get(0))?;
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

    /// Open contacts of a campaign whose next attempt time has come (before calling-hours
    /// checks): an index range count for `/metrics`.
    pub fn ready_contacts(&self, campaign_id: i64, now: DateTime<Utc>) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM contacts WHERE campaign_id = ?1 AND state = 'open' AND next_attempt_at <= ?2",
            )?
            .query_row(params![campaign_id, secs(now)], |r| r.get(0))?)
    }
}
