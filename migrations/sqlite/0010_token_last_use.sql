-- When a service-account token was last used (recorded at most once a minute), for the
-- access review.

ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
