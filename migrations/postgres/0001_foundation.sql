-- Projects, their service accounts and tokens, events and profiles.
-- Times are milliseconds since the Unix epoch (UTC); JSON is stored as text.

CREATE TABLE projects (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    ingest_token   TEXT NOT NULL UNIQUE,
    retention_days BIGINT NOT NULL DEFAULT 1825,
    created_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);

CREATE TABLE service_accounts (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id                 TEXT PRIMARY KEY,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id),
    secret_hash        BYTEA NOT NULL UNIQUE,
    created_at         BIGINT NOT NULL,
    revoked_at         BIGINT
);

CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    event       TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    time_ms     BIGINT NOT NULL,
    insert_id   TEXT,
    properties  TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_insert_id ON events (project_id, insert_id);
CREATE INDEX events_by_time ON events (project_id, time_ms, id);
CREATE INDEX events_by_person ON events (project_id, distinct_id, time_ms, id);

CREATE TABLE profiles (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    distinct_id TEXT NOT NULL,
    properties  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, distinct_id)
);
