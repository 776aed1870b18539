-- The audit log. Entries and checkpoints are append-only: triggers refuse UPDATE and DELETE.
-- `bytes` is the entry's canonical encoding (src/ledger/entry.rs), the only thing hashed;
-- the other columns are copies for indexing.

CREATE TABLE audit_entries (
    seq         BIGINT PRIMARY KEY,
    project_id  TEXT,
    project_seq BIGINT NOT NULL,
    time_ms     BIGINT NOT NULL,
    action      TEXT NOT NULL,
    leaf_hash   BLOB NOT NULL,
    link        BLOB NOT NULL,
    bytes       BLOB NOT NULL
);
CREATE UNIQUE INDEX audit_entries_by_project ON audit_entries (project_id, project_seq);

-- The one mutable row: where the next entry goes. Appenders serialize on it.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    size      BIGINT NOT NULL,
    last_link BLOB NOT NULL,
    peaks     BLOB NOT NULL,
    last_time BIGINT NOT NULL
);
INSERT INTO audit_head (id, size, last_link, peaks, last_time)
VALUES (1, 0, X'0000000000000000000000000000000000000000000000000000000000000000', X'', 0);

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Public keys that ever signed checkpoints, in the verifier-key text form.
CREATE TABLE audit_keys (
    vkey       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Per-person salts for pseudonyms: deleting a row unlinks that person from the log for good.
CREATE TABLE subject_keys (
    project_id TEXT NOT NULL,
    lookup     BLOB NOT NULL,
    salt       BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, lookup)
);

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only'); END;
