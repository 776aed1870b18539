-- The Merkle tree's interior: the hash of every perfect subtree of two or more entries
-- (level 1 and up; level 0 is audit_entries.leaf_hash), written in the same transaction as
-- the entries that complete it. Proofs then read O(log n) hashes instead of every leaf.
-- Append-only like the log; logs from before this table are filled in at start-up.
CREATE TABLE audit_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only'); END;
CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only'); END;
CREATE TRIGGER audit_nodes_same_again BEFORE INSERT ON audit_nodes
WHEN EXISTS (SELECT 1 FROM audit_nodes WHERE level = NEW.level AND idx = NEW.idx AND hash = NEW.hash)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER audit_nodes_no_replace BEFORE INSERT ON audit_nodes
WHEN EXISTS (SELECT 1 FROM audit_nodes WHERE level = NEW.level AND idx = NEW.idx AND hash <> NEW.hash)
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only: node exists'); END;
