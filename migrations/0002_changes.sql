-- dialer schema v2: a change counter the daemon polls (campaigns, DNC, imports), kept by
-- triggers so every process's changes move it; and when an import finished.

CREATE TABLE changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO changes (id, version) VALUES (1, 0);

CREATE TRIGGER campaigns_insert_changes AFTER INSERT ON campaigns
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER campaigns_update_changes AFTER UPDATE ON campaigns
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER campaigns_delete_changes AFTER DELETE ON campaigns
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER dnc_insert_changes AFTER INSERT ON dnc
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER dnc_delete_changes AFTER DELETE ON dnc
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER imports_insert_changes AFTER INSERT ON imports
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER imports_update_changes AFTER UPDATE ON imports
BEGIN UPDATE changes SET version = version + 1 WHERE id = 1; END;

ALTER TABLE imports ADD COLUMN finished_at INTEGER;
