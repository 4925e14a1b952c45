-- dialer schema v4, PostgreSQL form of migrations/0004_imports.sql: an import is atomic as the
-- scheduler sees it (SPEC §10).
--
-- A contact row created by an import run carries that run in `pending_import` until the run has
-- finished. While the run is unfinished (running, or killed) the row is not dialable. Finishing is
-- one row: `imports.finished_at`. Clearing `pending_import` afterwards ("settling") is done in
-- short batches, so it never holds the write lock for long; until a finished run is settled
-- (`imports.settled_at`), the due query also reads its rows through `contacts_pending`.
-- A later run that meets a row of an unfinished run adopts it (sets `pending_import` to itself),
-- so rerunning a killed import finishes the job.

ALTER TABLE contacts ADD COLUMN pending_import BIGINT;  -- NULL = dialable (see above)
ALTER TABLE imports ADD COLUMN settled_at BIGINT;       -- no row of this run is pending any more

-- nothing is pending in an existing database
UPDATE imports SET settled_at = coalesce(finished_at, started_at);

-- due contacts: a range scan of dialable open contacts; pending rows are not in it
DROP INDEX contacts_due;
CREATE INDEX contacts_due ON contacts (campaign_id, next_attempt_at)
    WHERE state = 'open' AND pending_import IS NULL;
-- the rows of a run still pending: the due query of a finished run not settled yet, and settling
CREATE INDEX contacts_pending ON contacts (pending_import, next_attempt_at)
    WHERE pending_import IS NOT NULL;
-- runs whose rows may still be pending
CREATE INDEX imports_unsettled ON imports (campaign_id) WHERE settled_at IS NULL;
