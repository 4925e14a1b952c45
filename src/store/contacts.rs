//! The `contacts` table: streaming, idempotent import, and the reads `plan` and the scheduler do.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, instant, secs};
use crate::schedule::ContactState;

/// A contact as read from the CSV, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub phone: String,
    pub ext_id: Option<String>,
    pub name: Option<String>,
    /// Resolved zones, `|`-separated; `None` = the campaign's zone.
    pub zones: Option<String>,
    /// Every other column, as a JSON object.
    pub fields: String,
}

/// Import summary counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// Receives the rows of one import inside transactions: one for the whole import, or one per
/// `batch` rows. Dropping it without [`ImportSink::finish`] rolls back the open transaction.
pub struct ImportSink<'a> {
    conn: &'a Connection,
    campaign_id: i64,
    import_id: i64,
    now: i64,
    batch: Option<u64>,
    in_batch: u64,
    open: bool,
    pub counts: ImportCounts,
}

impl Store {
    /// Starts an import into a campaign. `batch`: commit every N rows (None: one transaction).
    pub fn import_sink(
        &self,
        campaign_id: i64,
        file: &str,
        batch: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<ImportSink<'_>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut sink = ImportSink {
            conn: &self.conn,
            campaign_id,
            import_id: 0,
            now: secs(now),
            batch,
            in_batch: 0,
            open: true,
            counts: ImportCounts::default(),
        };
        self.conn.execute(
            "INSERT INTO imports (campaign_id, file, started_at) VALUES (?1, ?2, ?3)",
            params![campaign_id, file, secs(now)],
        )?;
        sink.import_id = self.conn.last_insert_rowid();
        Ok(sink)
    }
}

impl ImportSink<'_> {
    /// Inserts or updates one contact; a number already seen in this import is a duplicate.
    pub fn add(&mut self, c: &NewContact) -> Result<()> {
        type Existing = (
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        );
        let existing: Option<Existing> = self
            .conn
            .prepare_cached(
                "SELECT id, import_id, ext_id, name, zones, fields FROM contacts WHERE campaign_id = ?1 AND phone = ?2",
            )?
            .query_row(params![self.campaign_id, c.phone], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .optional()?;
        match existing {
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO contacts (campaign_id, phone, ext_id, name, zones, fields, import_id, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                    )?
                    .execute(params![
                        self.campaign_id,
                        c.phone,
                        c.ext_id,
                        c.name,
                        c.zones,
                        c.fields,
                        self.import_id,
                        self.now
                    ])?;
                self.counts.imported += 1;
            }
            Some((_, Some(seen), ..)) if seen == self.import_id => self.counts.duplicates += 1,
            Some((id, _, ext_id, name, zones, fields)) => {
                let same =
                    ext_id == c.ext_id && name == c.name && zones == c.zones && fields == c.fields;
                if same {
                    self.conn
                        .prepare_cached("UPDATE contacts SET import_id = ?1 WHERE id = ?2")?
                        .execute(params![self.import_id, id])?;
                    self.counts.unchanged += 1;
                } else {
                    self.conn
                        .prepare_cached(
                            "UPDATE contacts SET ext_id = ?1, name = ?2, zones = ?3, fields = ?4, import_id = ?5, updated_at = ?6
                             WHERE id = ?7",
                        )?
                        .execute(params![c.ext_id, c.name, c.zones, c.fields, self.import_id, self.now, id])?;
                    self.counts.updated += 1;
                }
            }
        }
        self.in_batch += 1;
        if self.batch.is_some_and(|b| self.in_batch >= b) {
            self.conn.execute_batch("COMMIT; BEGIN IMMEDIATE")?;
            self.in_batch = 0;
        }
        Ok(())
    }

    /// Commits (or, with `commit = false`, rolls back) what is still open.
    pub fn finish(mut self, commit: bool) -> Result<ImportCounts> {
        self.open = false;
        self.conn
            .execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })?;
        Ok(self.counts)
    }
}

impl Drop for ImportSink<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
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
