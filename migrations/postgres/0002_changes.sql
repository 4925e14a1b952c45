-- dialer schema v2, PostgreSQL form of migrations/0002_changes.sql: a change counter the daemon
-- polls (campaigns, DNC, imports), kept by row triggers so every process's changes move it; and
-- when an import finished. SQLite's trigger bodies become one trigger function.

CREATE TABLE changes (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO changes (id, version) VALUES (1, 0);

CREATE FUNCTION changes_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE changes SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER campaigns_insert_changes AFTER INSERT ON campaigns
    FOR EACH ROW EXECUTE FUNCTION changes_bump();
CREATE TRIGGER campaigns_update_changes AFTER UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION changes_bump();
CREATE TRIGGER campaigns_delete_changes AFTER DELETE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION changes_bump();
CREATE TRIGGER dnc_insert_changes AFTER INSERT ON dnc
    FOR EACH ROW EXECUTE FUNCTION changes_bump();
CREATE TRIGGER dnc_delete_changes AFTER DELETE ON dnc
    FOR EACH ROW EXECUTE FUNCTION changes_bump();
CREATE TRIGGER imports_insert_changes AFTER INSERT ON imports
    FOR EACH ROW EXECUTE FUNCTION changes_bump();
CREATE TRIGGER imports_update_changes AFTER UPDATE ON imports
    FOR EACH ROW EXECUTE FUNCTION changes_bump();

ALTER TABLE imports ADD COLUMN finished_at BIGINT;
