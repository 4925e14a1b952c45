-- dialer schema, PostgreSQL form of migrations/0008_import_speed.sql: imports write fewer
-- indexes (SPEC §9, import speed).
--
-- `contacts_phone` (phone alone) was written for every imported row and read by no query: a
-- lookup of a number across campaigns uses `UNIQUE (campaign_id, phone)` with
-- `campaign_id IN (SELECT id FROM campaigns)`, one probe per campaign.
DROP INDEX IF EXISTS contacts_phone;
