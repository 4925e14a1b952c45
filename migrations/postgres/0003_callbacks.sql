-- dialer schema v3, PostgreSQL form of migrations/0003_callbacks.sql: callback edge cases
-- (SPEC §10). Twilio's retried deliveries are stored once, status events without SequenceNumber
-- are ordered by their Timestamp, late gather answers are kept for audit only.

-- A repeated status delivery (same I-Twilio-Idempotency-Token, or same CallSid + SequenceNumber)
-- inserts no second row. Rows stored before this version may repeat a CallSid + SequenceNumber:
-- they are kept, marked `repeated`, and left out of the unique index.
ALTER TABLE call_events ADD COLUMN idempotency_token TEXT;
ALTER TABLE call_events ADD COLUMN repeated BIGINT NOT NULL DEFAULT 0;
UPDATE call_events SET repeated = 1
WHERE sequence_number IS NOT NULL
  AND id NOT IN (SELECT min(id) FROM call_events WHERE sequence_number IS NOT NULL
                 GROUP BY call_sid, sequence_number);
CREATE UNIQUE INDEX call_events_token ON call_events (idempotency_token)
    WHERE idempotency_token IS NOT NULL;
CREATE UNIQUE INDEX call_events_sequence ON call_events (call_sid, sequence_number)
    WHERE sequence_number IS NOT NULL AND repeated = 0;

-- A repeated gather delivery is answered from its stored row: the step it led to (NULL: hang up).
-- `late`: the answer arrived after the attempt ended (kept for audit, changed nothing).
ALTER TABLE answers ADD COLUMN idempotency_token TEXT;
ALTER TABLE answers ADD COLUMN next_step TEXT;
ALTER TABLE answers ADD COLUMN late BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX answers_token ON answers (idempotency_token)
    WHERE idempotency_token IS NOT NULL;

-- The Timestamp (unix seconds) of the last status event applied to the attempt, if it had one.
ALTER TABLE attempts ADD COLUMN last_event_at BIGINT;

-- Before this version an event without SequenceNumber set last_sequence to i64::MAX - 1, which
-- blocked every later progress event: back to the highest SequenceNumber actually received.
UPDATE attempts SET last_sequence = coalesce(
    (SELECT max(sequence_number) FROM call_events e
     WHERE e.attempt_id = attempts.id AND e.sequence_number < 9223372036854775806), -1)
WHERE last_sequence = 9223372036854775806;
