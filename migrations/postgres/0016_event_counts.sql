-- Counts of each project's events by UTC day and event name, kept in step with the events
-- table by every statement that adds or deletes events (ingestion, retention, erasure,
-- purge), so counts read a row per day and name instead of scanning the events.

CREATE TABLE event_counts (
    project_id TEXT NOT NULL,
    day        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project_id, day, event)
);

INSERT INTO event_counts (project_id, day, event, n)
SELECT project_id, time_ms / 86400000, event, COUNT(*) FROM events
GROUP BY project_id, time_ms / 86400000, event;
