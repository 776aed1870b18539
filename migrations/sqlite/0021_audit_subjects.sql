-- Which entries name which pseudonym, so "who accessed this person's data?" reads an index
-- instead of decoding the whole log. Rows are written in the transaction of their entries.
-- Entries older than this migration are indexed once at start-up, from `next` up to `upto`.
CREATE TABLE audit_subjects (
    subject BLOB NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (subject, seq)
);
CREATE TABLE audit_subjects_backfill (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next BIGINT NOT NULL,
    upto BIGINT NOT NULL
);
INSERT INTO audit_subjects_backfill (id, next, upto)
    SELECT 1, 0, COALESCE(MAX(seq) + 1, 0) FROM audit_entries;

-- People erased: their salt is gone, so a report on them must say they cannot be reported on
-- (rather than that nobody accessed their data). Only the keyed lookup is kept.
CREATE TABLE erased_subjects (
    project_id TEXT NOT NULL,
    lookup     BLOB NOT NULL,
    erased_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, lookup)
);
