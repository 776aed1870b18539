-- Grants: one role (allow) or one permission (deny) for one person, group or service account
-- on one project or on every project ('*'). Nothing is ever deleted: revoked, rejected and
-- expired grants stay as evidence.

CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'group', 'service_account')),
    subject      TEXT NOT NULL,
    effect       TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    role         TEXT,
    permission   TEXT,
    project      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    granted_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'active', 'rejected', 'revoked')),
    decided_by   TEXT,
    decided_at   BIGINT,
    CHECK ((effect = 'allow' AND role IS NOT NULL AND permission IS NULL)
        OR (effect = 'deny' AND permission IS NOT NULL AND role IS NULL))
);
CREATE INDEX grants_by_subject ON grants (subject_kind, subject, status);
CREATE INDEX grants_by_project ON grants (project, status);
