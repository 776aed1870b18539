-- Data-subject rights: subject requests tracked as jobs, opt-outs and consent (stored under
-- keyed lookups, never clear ids), each project's consent rule, and purging deleted projects.

ALTER TABLE projects ADD COLUMN consent_required BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN consent_property TEXT NOT NULL DEFAULT '$consent';
-- Set when the sweeper hard-deleted a soft-deleted project; the row stays so that the id,
-- which the audit log names, is never given to another project.
ALTER TABLE projects ADD COLUMN purged_at BIGINT;

CREATE TABLE subject_requests (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects (id),
    kind              TEXT NOT NULL CHECK (kind IN ('export', 'erase', 'erase_property', 'anonymize')),
    compliance_type   TEXT NOT NULL CHECK (compliance_type IN ('GDPR', 'CCPA')),
    state             TEXT NOT NULL CHECK (state IN ('PENDING', 'STAGING', 'STARTED', 'SUCCESS', 'FAILURE', 'REVOKED', 'NOT_FOUND')),
    requested_by      TEXT NOT NULL,
    reason            TEXT NOT NULL,
    subject_count     BIGINT NOT NULL,
    property          TEXT,
    drop_properties   TEXT NOT NULL,
    needs_approval    BIGINT NOT NULL,
    approved_by       TEXT,
    approved_at       BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    completed_at      BIGINT,
    events_affected   BIGINT NOT NULL DEFAULT 0,
    profiles_affected BIGINT NOT NULL DEFAULT 0,
    error             TEXT
);
CREATE INDEX subject_requests_by_project ON subject_requests (project_id, created_at);
CREATE INDEX subject_requests_by_state ON subject_requests (state, created_at);

-- The distinct_ids a request concerns, kept in clear only while needed: erasing a person
-- removes them from every request of the project, and a finished erasure drops its own.
CREATE TABLE subject_request_ids (
    request_id  TEXT NOT NULL REFERENCES subject_requests (id),
    position    BIGINT NOT NULL,
    project_id  TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    PRIMARY KEY (request_id, position)
);
CREATE INDEX subject_request_ids_by_person ON subject_request_ids (project_id, distinct_id);

CREATE TABLE opt_outs (
    project_id TEXT NOT NULL REFERENCES projects (id),
    lookup     BLOB NOT NULL,
    source     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, lookup)
);

-- Consent given and withdrawn, as a history: the latest row per person is the current state.
CREATE TABLE consents (
    id          INTEGER PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    lookup      BLOB NOT NULL,
    given       BIGINT NOT NULL,
    source      TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX consents_by_person ON consents (project_id, lookup, id);
