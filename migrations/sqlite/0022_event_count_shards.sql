-- Per-day counts in shards, as on PostgreSQL (see there: concurrent writers add to shards of
-- their own). SQLite has one writer, so its counts stay in shard 0; the key is the same so
-- the portable statements fit both.
CREATE TABLE event_counts_sharded (
    project_id TEXT NOT NULL,
    day        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    shard      INTEGER NOT NULL DEFAULT 0,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project_id, day, event, shard)
) WITHOUT ROWID;
INSERT INTO event_counts_sharded (project_id, day, event, shard, n)
SELECT project_id, day, event, 0, n FROM event_counts;
DROP TABLE event_counts;
ALTER TABLE event_counts_sharded RENAME TO event_counts;
