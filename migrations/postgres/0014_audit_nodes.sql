-- The Merkle tree's interior: the hash of every perfect subtree of two or more entries
-- (level 1 and up; level 0 is audit_entries.leaf_hash), written in the same transaction as
-- the entries that complete it. Proofs then read O(log n) hashes instead of every leaf.
-- Append-only like the log; logs from before this table are filled in at start-up.
CREATE TABLE audit_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TRIGGER audit_nodes_append_only BEFORE UPDATE OR DELETE ON audit_nodes
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_nodes_no_truncate BEFORE TRUNCATE ON audit_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
