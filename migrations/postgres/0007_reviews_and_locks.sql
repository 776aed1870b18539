-- Review cadence for grants (evidence of each review kept), and locks: a locked grant or
-- service account stops working at the next request until unlocked.

ALTER TABLE grants ADD COLUMN review_every_days BIGINT;
ALTER TABLE grants ADD COLUMN reviewed_at BIGINT;
ALTER TABLE grants ADD COLUMN reviewed_by TEXT;
ALTER TABLE grants ADD COLUMN locked_at BIGINT;
ALTER TABLE service_accounts ADD COLUMN locked_at BIGINT;

CREATE TABLE grant_reviews (
    grant_id    TEXT NOT NULL REFERENCES grants (id),
    reviewed_by TEXT NOT NULL,
    reviewed_at BIGINT NOT NULL,
    note        TEXT NOT NULL,
    PRIMARY KEY (grant_id, reviewed_at)
);
