-- Per-day counts in shards: concurrent ingestion transactions each add to the shard of their
-- own connection, instead of all waiting on the one row of (day, event) until each commits
-- (the busiest rows there are: every batch of today's events updates them). A count is the
-- sum of its shards; adjustments by erasure and retention go to shard 0 and may leave it
-- negative while the sum stays right.
ALTER TABLE event_counts ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE event_counts DROP CONSTRAINT event_counts_pkey;
ALTER TABLE event_counts ADD PRIMARY KEY (project_id, day, event, shard);
