-- dialer schema v5: inbound calls and messaging (SPEC §12).

-- An attempt is a call we placed (`outbound`) or a call a contact made to a campaign's number
-- (`inbound`; it never counts toward `max_retries`, its `attempt_no` is 0).
ALTER TABLE attempts ADD COLUMN direction TEXT NOT NULL DEFAULT 'outbound'
    CHECK (direction IN ('outbound', 'inbound'));

-- Follow-up sending looks for ended attempts of a campaign by reason or outcome.
CREATE INDEX attempts_campaign_reason ON attempts (campaign_id, reason);

-- Every inbound call, matched or not (unknown callers, numbers no campaign owns).
CREATE TABLE inbound_calls (
    id          INTEGER PRIMARY KEY,
    call_sid    TEXT NOT NULL UNIQUE,
    from_number TEXT NOT NULL,
    to_number   TEXT NOT NULL,
    -- contact: a contact called back; caller: unknown caller to a campaign's number;
    -- unowned: no campaign uses the number called
    matched     TEXT NOT NULL CHECK (matched IN ('contact', 'caller', 'unowned')),
    campaign_id INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    contact_id  INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    attempt_id  INTEGER REFERENCES attempts(id) ON DELETE SET NULL,
    status      TEXT NOT NULL,
    duration_seconds INTEGER,
    received_at INTEGER NOT NULL,
    ended_at    INTEGER,
    params      TEXT NOT NULL                -- every raw parameter of the first request, JSON
);
CREATE INDEX inbound_calls_received ON inbound_calls (received_at);

-- Messages: follow-ups we send (outbound) and messages people send us (inbound).
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    direction     TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    campaign_id   INTEGER REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id    INTEGER REFERENCES contacts(id) ON DELETE CASCADE,
    -- outbound: the follow-up rule's name and the attempt whose end triggered it
    rule          TEXT,
    attempt_id    INTEGER REFERENCES attempts(id) ON DELETE SET NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
    from_address  TEXT NOT NULL,
    to_address    TEXT NOT NULL,
    body          TEXT NOT NULL,
    message_sid   TEXT UNIQUE,
    -- outbound: `claimed` (committed before the create is sent), then Twilio's status;
    -- inbound: `received`
    status        TEXT NOT NULL,
    -- inbound: `opt-out` / `opt-in` when the body was a keyword that changed the DNC list
    keyword       TEXT,
    error_code    INTEGER,
    error_message TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- at most one message per follow-up rule and contact, ever
CREATE UNIQUE INDEX messages_once ON messages (contact_id, rule) WHERE rule IS NOT NULL;
CREATE INDEX messages_created ON messages (created_at);

CREATE TABLE message_events (
    id                INTEGER PRIMARY KEY,
    message_id        INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    message_sid       TEXT NOT NULL,
    status            TEXT NOT NULL,
    idempotency_token TEXT,
    received_at       INTEGER NOT NULL,
    params            TEXT NOT NULL
);
CREATE INDEX message_events_message ON message_events (message_id);
CREATE UNIQUE INDEX message_events_token ON message_events (idempotency_token)
    WHERE idempotency_token IS NOT NULL;
