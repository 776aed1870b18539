-- Properties an administrator marked sensitive in a project: their values are redacted for
-- anyone without events:read_sensitive. The audit log keeps the history of these marks.

CREATE TABLE sensitive_properties (
    project_id    TEXT NOT NULL REFERENCES projects (id),
    kind          TEXT NOT NULL CHECK (kind IN ('event', 'profile')),
    name          TEXT NOT NULL,
    classified_by TEXT NOT NULL,
    classified_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind, name)
);
