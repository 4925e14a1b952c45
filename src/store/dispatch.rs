//! The backend-neutral store the product uses: [`Store`] (reads) and [`Tx`] (writes, inside the
//! writer's transaction) hold either backend and forward every query to it — SQLite
//! ([`SqliteStore`], the files beside this one) or PostgreSQL ([`PgStore`], `pg/`). Both
//! backends have methods of the same names and types; this file is the only place that matches
//! on which one is open. The forwarding is generated from one list of signatures per type
//! (`reads!`, `writes!`); the few generic methods (streaming exports) are written out below.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::pg::{PgDryRun, PgStore, PgTx};
use super::{
    Answer, AttemptCall, AttemptEnding, AttemptFilter, AttemptHistory, AttemptRecord, AttemptRow,
    BotCounts, BotSession, BotTurn, CampaignRow, CampaignStats, ChunkOutcome, ContactMatch,
    ContactRecord, ContactRow, EndedCall, FollowUpCandidate, FollowUpQuery, Funnel, HourCount,
    ImportCounts, ImportRun, InboundCallRecord, MessageRecord, NewContact, NewFollowUp,
    NewInboundCall, NewInboundMessage, NewTurn, Result, SessionEnd, SqliteDryRun, SqliteStore,
    SqliteTx, StatusApplied, StatusEvent, StoreError, SummaryCounts, TranscriptRecord, ZoneCount,
};
use crate::campaign::model::{CampaignRules, Reason};

/// One connection to the database, SQLite or PostgreSQL: the read queries.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

/// The writer's transaction steps, each backend's statements for them in its own writer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// How far the commit must reach before callers are answered (durable: the disk).
    Sync {
        durable: bool,
    },
    Begin,
    /// One job's savepoint.
    Savepoint,
    Release,
    /// Undoes one job: back to its savepoint.
    Undo,
    Rollback,
    Commit,
}

impl From<SqliteStore> for Store {
    fn from(s: SqliteStore) -> Store {
        Store {
            backend: Backend::Sqlite(s),
        }
    }
}

impl From<PgStore> for Store {
    fn from(p: PgStore) -> Store {
        Store {
            backend: Backend::Postgres(Box::new(p)),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(s) => s.fmt(f),
            Backend::Postgres(p) => p.fmt(f),
        }
    }
}

impl Store {
    /// Opens (creating with mode 0600 if missing) and migrates a SQLite database: see
    /// [`SqliteStore::open`].
    pub fn open(path: &Path) -> Result<Store> {
        SqliteStore::open(path).map(Store::from)
    }

    /// A read-only connection to a SQLite database the writer has created and migrated.
    pub fn open_reader(path: &Path) -> Result<Store> {
        SqliteStore::open_reader(path).map(Store::from)
    }

    /// The SQLite file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether this is a PostgreSQL connection.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub(crate) fn control(&self, step: Control) -> std::result::Result<(), String> {
        match &self.backend {
            Backend::Sqlite(s) => s.control(step),
            Backend::Postgres(p) => p.control(step),
        }
    }

    /// A dry run of an import (counts, writes nothing).
    pub fn dry_run(&self, campaign_id: i64) -> Result<DryRun<'_>> {
        Ok(match &self.backend {
            Backend::Sqlite(s) => DryRun::Sqlite(s.dry_run(campaign_id)?),
            Backend::Postgres(p) => DryRun::Postgres(p.dry_run(campaign_id)?),
        })
    }

    /// Visits the ids of a campaign's contacts due at `now`, earliest first, at most `scan`,
    /// until `visit` breaks (see [`SqliteStore::visit_due`]).
    pub fn visit_due(
        &self,
        campaign_id: i64,
        now: DateTime<Utc>,
        scan: u32,
        visit: impl FnMut(i64) -> Result<std::ops::ControlFlow<()>>,
    ) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.visit_due(campaign_id, now, scan, visit),
            Backend::Postgres(p) => p.visit_due(campaign_id, now, scan, visit),
        }
    }

    /// Calls `f` for every contact of a campaign, in id order, without loading them all.
    pub fn for_each_contact<E: From<StoreError>>(
        &self,
        campaign_id: i64,
        f: impl FnMut(ContactRow) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.backend {
            Backend::Sqlite(s) => s.for_each_contact(campaign_id, f),
            Backend::Postgres(p) => p.for_each_contact(campaign_id, f),
        }
    }

    /// Calls `f` for each attempt of the export, streamed.
    pub fn for_each_attempt_record<E: From<StoreError>>(
        &self,
        filter: &AttemptFilter,
        f: impl FnMut(&AttemptRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.backend {
            Backend::Sqlite(s) => s.for_each_attempt_record(filter, f),
            Backend::Postgres(p) => p.for_each_attempt_record(filter, f),
        }
    }

    /// Calls `f` for each contact of the contact export, streamed.
    pub fn for_each_contact_record<E: From<StoreError>>(
        &self,
        campaign_id: i64,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        f: impl FnMut(&ContactRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.backend {
            Backend::Sqlite(s) => s.for_each_contact_record(campaign_id, since, until, f),
            Backend::Postgres(p) => p.for_each_contact_record(campaign_id, since, until, f),
        }
    }

    /// Calls `f` for each bot turn of the transcript export, streamed.
    pub fn for_each_transcript_record<E: From<StoreError>>(
        &self,
        filter: &AttemptFilter,
        f: impl FnMut(&TranscriptRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.backend {
            Backend::Sqlite(s) => s.for_each_transcript_record(filter, f),
            Backend::Postgres(p) => p.for_each_transcript_record(filter, f),
        }
    }

    /// Raw SQLite access for unit tests that set up unusual rows.
    #[cfg(test)]
    pub fn conn(&self) -> &rusqlite::Connection {
        match &self.backend {
            Backend::Sqlite(s) => s.conn(),
            Backend::Postgres(_) => panic!("conn() is SQLite's; this test needs a SQLite store"),
        }
    }

    /// Writes outside the writer thread, for unit tests (each statement commits on its own).
    #[cfg(test)]
    pub fn tx(&self) -> Tx<'_> {
        Tx { store: self }
    }
}

/// The write queries, inside the [`Writer`](super::Writer)'s transaction (each job in its own
/// savepoint). Reads are available too, through `Deref`, and see the transaction's own changes.
pub struct Tx<'a> {
    store: &'a Store,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(store: &'a Store) -> Tx<'a> {
        Tx { store }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        self.store
    }
}

/// A dry run of an import on either backend.
pub enum DryRun<'a> {
    Sqlite(SqliteDryRun<'a>),
    Postgres(PgDryRun<'a>),
}

impl DryRun<'_> {
    pub fn chunk(&mut self, rows: &[NewContact]) -> Result<ChunkOutcome> {
        match self {
            DryRun::Sqlite(d) => d.chunk(rows),
            DryRun::Postgres(d) => d.chunk(rows),
        }
    }
}

/// `impl Store`: each method forwards to the open backend's method of the same name.
macro_rules! reads {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match &self.backend {
                        Backend::Sqlite(s) => s.$name($($arg),*),
                        Backend::Postgres(p) => p.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

/// `impl Tx`: each method forwards to the open backend's transaction.
macro_rules! writes {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Tx<'_> {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match &self.store.backend {
                        Backend::Sqlite(store) => SqliteTx { store }.$name($($arg),*),
                        Backend::Postgres(store) => PgTx { store }.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

reads! {
    /// Whether the database answers (`/health`).
    fn ping(&self) -> Result<()>;
    /// A counter that grows whenever campaigns, the DNC list or imports change, in any process.
    fn change_version(&self) -> Result<i64>;

    // attempts
    fn attempt(&self, id: i64) -> Result<Option<AttemptRow>>;
    fn attempt_call(&self, id: i64) -> Result<Option<AttemptCall>>;
    /// Attempts not yet in a final state, oldest first.
    fn open_attempts(&self) -> Result<Vec<AttemptRow>>;
    /// Whether some attempt already carries this Call SID.
    fn call_sid_bound(&self, sid: &str) -> Result<bool>;
    /// The step a gather delivery with this token led to, if it was stored.
    fn answered_step(&self, attempt_id: i64, token: &str) -> Result<Option<Option<String>>>;
    /// Unmatched answers so far for one step of one attempt (the 3-strikes rule).
    fn unmatched_answers(&self, attempt_id: i64, step: &str) -> Result<u32>;
    /// Number of attempts not in a final state (all campaigns, or one).
    fn count_open_attempts(&self, campaign_id: Option<i64>) -> Result<u32>;
    /// How each of the given attempts stands: still open, or ended with its reason.
    fn attempt_ends(&self, ids: &[i64]) -> Result<Vec<AttemptEnding>>;
    fn require_attempt(&self, id: i64) -> Result<AttemptRow>;

    // campaigns
    fn campaign(&self, name: &str) -> Result<Option<CampaignRow>>;
    fn require_campaign(&self, name: &str) -> Result<CampaignRow>;
    fn campaigns(&self) -> Result<Vec<CampaignRow>>;
    fn campaign_stats(&self, campaign_id: i64) -> Result<CampaignStats>;
    fn campaign_by_id(&self, id: i64) -> Result<Option<CampaignRow>>;

    // contacts
    /// A value that changes when another connection has committed since this one last looked.
    fn data_version(&self) -> Result<i64>;
    /// Dialable open contacts of a campaign due at or before `now`, oldest first.
    /// Finished import runs of every campaign whose rows are not all settled yet, oldest first.
    fn unsettled_import_ids(&self) -> Result<Vec<i64>>;
    /// The campaign's finished import runs whose rows are not all settled yet.
    fn unsettled_imports(&self, campaign_id: i64) -> Result<Vec<i64>>;
    fn contact(&self, id: i64) -> Result<Option<ContactRow>>;
    /// Start instants of attempts to a number (any campaign) after `since`.
    fn recent_attempts(&self, phone: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>>;
    /// Template field names that at least one contact of the campaign has.
    fn contact_field_names(&self, campaign_id: i64) -> Result<std::collections::BTreeSet<String>>;
    /// The earliest future retry of a campaign's open contacts (the daemon's wake-up).
    fn earliest_retry(&self, campaign_id: i64, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>>;
    /// The distinct stored zone lists of a campaign's open contacts.
    fn open_zone_lists(&self, campaign_id: i64) -> Result<Vec<Option<String>>>;
    /// Dialable open contacts whose next attempt time has come (`/metrics`).
    fn ready_contacts(&self, campaign_id: i64, now: DateTime<Utc>) -> Result<i64>;

    // dashboard
    fn hourly_attempts(&self, campaign_id: i64, from: DateTime<Utc>, hours: usize) -> Result<Vec<HourCount>>;
    fn in_flight_at(&self, campaign_id: i64, at: &[DateTime<Utc>], longest: Duration) -> Result<Vec<i64>>;
    fn attempts_since(&self, campaign_id: i64, since: DateTime<Utc>) -> Result<i64>;
    fn funnel(&self, campaign_id: i64) -> Result<Funnel>;
    fn open_by_zones(&self, campaign_id: i64) -> Result<Vec<ZoneCount>>;
    fn contact_history(&self, contact_id: i64) -> Result<Vec<AttemptHistory>>;

    // dnc
    fn dnc_list(&self) -> Result<Vec<(String, String, DateTime<Utc>)>>;
    fn dnc_contains(&self, number: &str) -> Result<bool>;

    // messages
    fn follow_up_candidates(&self, q: &FollowUpQuery<'_>, limit: usize) -> Result<Vec<FollowUpCandidate>>;
    fn messages_on_their_way(&self, ids: &[i64]) -> Result<u64>;
    fn contacts_with_phone(&self, phone: &str) -> Result<Vec<ContactMatch>>;
    fn dnc_source(&self, number: &str) -> Result<Option<String>>;
    fn message_records(&self, campaign_id: Option<i64>, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<Vec<MessageRecord>>;
    fn inbound_call_records(&self, campaign_id: Option<i64>, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<Vec<InboundCallRecord>>;

    // reports
    fn count_attempt_records(&self, filter: &AttemptFilter) -> Result<u64>;
    fn summary_counts(&self, campaign_id: i64) -> Result<SummaryCounts>;

    // transcripts
    fn bot_session(&self, id: i64) -> Result<Option<BotSession>>;
    fn bot_turns(&self, session_id: i64) -> Result<Vec<BotTurn>>;
    fn bot_turn_seen(&self, token: &str) -> Result<bool>;
    fn bot_counts(&self, campaign_id: i64) -> Result<BotCounts>;
}

writes! {
    // attempts
    /// Claims a contact for a call (the attempt row, counted), committed before the create.
    fn claim_attempt(&self, contact_id: i64, expected_attempts: u32, now: DateTime<Utc>) -> Result<Option<AttemptRow>>;
    /// Undoes a claim whose create was refused with a retryable error.
    fn unclaim_attempt(&self, attempt_id: i64) -> Result<bool>;
    fn bind_call_sid(&self, attempt_id: i64, sid: &str) -> Result<bool>;
    fn set_created_status(&self, attempt_id: i64, status: &str) -> Result<()>;
    fn set_answered_by(&self, attempt_id: i64, answered_by: &str, now: DateTime<Utc>) -> Result<()>;
    /// Applies a status callback (stored once, moves the attempt forward, ends it).
    fn apply_status(&self, attempt_id: i64, rules: &CampaignRules, params_json: &str, ev: &StatusEvent<'_>, now: DateTime<Utc>) -> Result<StatusApplied>;
    /// Ends an attempt without a callback and applies the retry policy.
    fn end_attempt(&self, attempt_id: i64, rules: &CampaignRules, end: &EndedCall<'_>, now: DateTime<Utc>) -> Result<Option<Reason>>;
    fn record_answer(&self, attempt_id: i64, a: &Answer<'_>, now: DateTime<Utc>) -> Result<bool>;
    fn apply_option(&self, attempt_id: i64, outcome: Option<&str>, retry_after: Option<Duration>, opt_out: bool, now: DateTime<Utc>) -> Result<()>;

    // campaigns
    fn set_paused(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<bool>;
    fn upsert_campaign(&self, name: &str, config: &str, replace: bool, now: DateTime<Utc>) -> Result<(i64, bool)>;

    // contacts
    fn begin_import(&self, campaign_id: i64, file: &str, now: DateTime<Utc>) -> Result<ImportRun>;
    fn import_chunk(&self, run: &ImportRun, rows: &[NewContact], budget: Duration) -> Result<ChunkOutcome>;
    fn import_contacts(&self, campaign_id: i64, file: &str, rows: &[NewContact], now: DateTime<Utc>) -> Result<ImportCounts>;
    fn finish_import(&self, run: &ImportRun, now: DateTime<Utc>) -> Result<()>;
    fn settle_import(&self, import_id: i64, budget: Duration, now: DateTime<Utc>) -> Result<bool>;

    // dnc
    fn dnc_add(&self, numbers: &[String], source: &str, now: DateTime<Utc>) -> Result<usize>;
    fn dnc_remove(&self, number: &str) -> Result<bool>;

    // messages
    fn claim_follow_up(&self, f: &NewFollowUp, now: DateTime<Utc>) -> Result<Option<i64>>;
    fn unclaim_follow_up(&self, id: i64) -> Result<bool>;
    fn follow_up_created(&self, id: i64, sid: &str, status: &str, now: DateTime<Utc>) -> Result<()>;
    fn follow_up_failed(&self, id: i64, code: Option<u32>, message: &str, now: DateTime<Utc>) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn apply_message_status(&self, id: i64, sid: &str, status: &str, error_code: Option<i64>, token: Option<&str>, params_json: &str, now: DateTime<Utc>) -> Result<bool>;
    fn record_inbound_message(&self, m: &NewInboundMessage<'_>, now: DateTime<Utc>) -> Result<()>;
    fn dnc_remove_opted_in(&self, number: &str) -> Result<bool>;
    fn record_inbound_call(&self, c: &NewInboundCall<'_>, now: DateTime<Utc>) -> Result<Option<i64>>;
    fn inbound_call_status(&self, call_sid: &str, status: &str, duration: Option<i64>, now: DateTime<Utc>) -> Result<bool>;

    // transcripts
    fn open_bot_session(&self, attempt_id: i64, step: &str, now: DateTime<Utc>) -> Result<i64>;
    fn record_bot_turn(&self, session_id: i64, t: &NewTurn<'_>, now: DateTime<Utc>) -> Result<bool>;
    fn end_bot_session(&self, session_id: i64, ending: SessionEnd, outcome: Option<&str>, next_step: Option<&str>, now: DateTime<Utc>) -> Result<bool>;
}
