-- Just-in-time access: a person asks for a role on a project for a while; approvers decide;
-- an approved request becomes a grant that expires by itself. Kept forever as evidence.

CREATE TABLE access_requests (
    id               TEXT PRIMARY KEY,
    requester        TEXT NOT NULL REFERENCES users (id),
    project          TEXT NOT NULL,
    role             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    approvals_needed BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    lapses_at        BIGINT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'granted', 'rejected')),
    grant_id         TEXT,
    decided_at       BIGINT
);
CREATE INDEX access_requests_by_status ON access_requests (status, project);

CREATE TABLE access_request_approvals (
    request_id TEXT NOT NULL REFERENCES access_requests (id),
    approver   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
