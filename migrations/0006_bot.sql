-- dialer schema: conversational steps (SPEC §13). One `bot_sessions` row per time a call enters a
-- bot step; one `bot_turns` row per exchange with the bot (the greeting, each thing the caller
-- said, each silence), in order.

CREATE TABLE bot_sessions (
    id          INTEGER PRIMARY KEY,
    attempt_id  INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    step        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    -- how it ended: completed (the bot said custom.end), or a fallback: max_turns, no_input,
    -- bot_error, timeout. NULL while it runs (or when the caller hung up during it).
    ending      TEXT,
    outcome     TEXT,                 -- custom.end's outcome
    next_step   TEXT                  -- where the call went: custom.end's next, or the fallback
);
CREATE INDEX bot_sessions_attempt ON bot_sessions (attempt_id);

CREATE TABLE bot_turns (
    id                INTEGER PRIMARY KEY,
    session_id        INTEGER NOT NULL REFERENCES bot_sessions(id) ON DELETE CASCADE,
    turn              INTEGER NOT NULL,  -- 0: the greeting; then 1, 2, … in order
    kind              TEXT NOT NULL,     -- greeting, speech, no_input
    caller_text       TEXT,              -- SpeechResult
    confidence        REAL,              -- Confidence
    bot_text          TEXT,              -- the bot's replies, joined by newlines
    latency_ms        INTEGER,           -- the bot request's duration (NULL: the bot was not asked)
    error             TEXT,              -- why the bot's answer could not be used
    at                INTEGER NOT NULL,
    idempotency_token TEXT,
    UNIQUE (session_id, turn)
);
CREATE UNIQUE INDEX bot_turns_token ON bot_turns (idempotency_token)
    WHERE idempotency_token IS NOT NULL;
