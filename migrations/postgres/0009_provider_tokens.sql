-- The provider's tokens for a live SSO session, sealed (never readable from the database), so
-- group membership can be confirmed with the provider every few minutes.

CREATE TABLE session_provider_tokens (
    session_public_id TEXT PRIMARY KEY,
    sealed            TEXT NOT NULL,
    groups_checked_at BIGINT NOT NULL
);
