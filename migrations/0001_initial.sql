-- dialer schema v1. All instants are INTEGER unix seconds, UTC.

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- the campaign JSON as imported; validated again on load
    config      TEXT NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    phone           TEXT NOT NULL,               -- E.164
    ext_id          TEXT,                        -- the CSV `id`
    name            TEXT,
    -- zones resolved at import ('|'-separated); NULL = the campaign's zone
    zones           TEXT,
    fields          TEXT NOT NULL DEFAULT '{}',  -- every other CSV column, JSON object
    state           TEXT NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'completed', 'exhausted', 'opted_out')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,  -- 0 = never tried
    last_reason     TEXT,
    outcome         TEXT,
    import_id       INTEGER,                     -- the import run that last saw this row
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (campaign_id, phone)
);

-- "due contacts" is a range scan: open contacts of a campaign ordered by next_attempt_at.
CREATE INDEX contacts_due ON contacts (campaign_id, next_attempt_at) WHERE state = 'open';
CREATE INDEX contacts_phone ON contacts (phone);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    contact_id       INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    attempt_no       INTEGER NOT NULL,           -- 1-based within the contact
    phone            TEXT NOT NULL,
    call_sid         TEXT UNIQUE,
    status           TEXT NOT NULL DEFAULT 'dialing', -- dialing, queued, initiated, ringing, in-progress, or final
    reason           TEXT,                       -- completed, busy, no-answer, failed, canceled, machine
    answered_by      TEXT,
    outcome          TEXT,
    digits           TEXT,
    speech           TEXT,
    duration_seconds INTEGER,
    started_at       INTEGER NOT NULL,
    answered_at      INTEGER,
    ended_at         INTEGER,
    error_code       INTEGER,
    error_message    TEXT,
    last_sequence    INTEGER NOT NULL DEFAULT -1,
    retry_after      INTEGER,                    -- seconds, set by a gather option
    opted_out        INTEGER NOT NULL DEFAULT 0,
    no_match_count   INTEGER NOT NULL DEFAULT 0
);

-- at most one open attempt per contact
CREATE UNIQUE INDEX attempts_open ON attempts (contact_id) WHERE ended_at IS NULL;
CREATE INDEX attempts_contact ON attempts (contact_id);
CREATE INDEX attempts_started ON attempts (started_at);
CREATE INDEX attempts_phone_started ON attempts (phone, started_at);

CREATE TABLE call_events (
    id              INTEGER PRIMARY KEY,
    attempt_id      INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    call_sid        TEXT NOT NULL,
    sequence_number INTEGER,
    call_status     TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    params          TEXT NOT NULL                -- every raw parameter, JSON object
);
CREATE INDEX call_events_attempt ON call_events (attempt_id);

CREATE TABLE answers (
    id          INTEGER PRIMARY KEY,
    attempt_id  INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    step        TEXT NOT NULL,
    digits      TEXT,
    speech      TEXT,
    confidence  REAL,
    matched     INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL
);
CREATE INDEX answers_attempt ON answers (attempt_id);

CREATE TABLE dnc (
    phone     TEXT PRIMARY KEY,                  -- E.164
    source    TEXT NOT NULL,                     -- cli, import, opt-out
    added_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- one row per `contacts import` run; contacts.import_id points here (duplicate detection, audit)
CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    file        TEXT NOT NULL,
    started_at  INTEGER NOT NULL
);
