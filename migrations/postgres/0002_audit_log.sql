-- The audit log. Entries and checkpoints are append-only: triggers refuse UPDATE, DELETE and
-- TRUNCATE. `bytes` is the entry's canonical encoding (src/ledger/entry.rs), the only thing
-- hashed; the other columns are copies for indexing.

CREATE TABLE audit_entries (
    seq         BIGINT PRIMARY KEY,
    project_id  TEXT,
    project_seq BIGINT NOT NULL,
    time_ms     BIGINT NOT NULL,
    action      TEXT NOT NULL,
    leaf_hash   BYTEA NOT NULL,
    link        BYTEA NOT NULL,
    bytes       BYTEA NOT NULL
);
CREATE UNIQUE INDEX audit_entries_by_project ON audit_entries (project_id, project_seq);

-- The one mutable row: where the next entry goes. Appenders serialize on it.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    size      BIGINT NOT NULL,
    last_link BYTEA NOT NULL,
    peaks     BYTEA NOT NULL,
    last_time BIGINT NOT NULL
);
INSERT INTO audit_head (id, size, last_link, peaks, last_time)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, ''::bytea, 0);

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
    lookup     BYTEA NOT NULL,
    salt       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, lookup)
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log tables are append-only';
END
$$;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
