-- One row that /readyz rewrites when the audit log's last write failed: a cheap, real write
-- that tells whether the database takes writes again, with no request needing to risk one.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);
INSERT INTO health_probe (id, at) VALUES (1, 0);
