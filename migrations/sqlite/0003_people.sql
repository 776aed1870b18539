-- People who sign in, their sessions, 2-step verification and personal tokens.
-- Secrets are never stored in clear: session ids and tokens as SHA-256 (hex), recovery codes
-- and passwords as argon2id, TOTP secrets sealed with a key kept outside the database.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT,
    kind           TEXT NOT NULL CHECK (kind IN ('sso', 'local')),
    created_at     BIGINT NOT NULL,
    last_signin_at BIGINT,
    disabled_at    BIGINT
);
-- Break-glass accounts sign in by email; SSO people are found by (issuer, subject) only.
CREATE UNIQUE INDEX users_local_email ON users (email) WHERE kind = 'local';

CREATE TABLE identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    provider   TEXT NOT NULL,
    groups     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identities_by_user ON identities (user_id);

CREATE TABLE local_passwords (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    hash         TEXT NOT NULL,
    failures     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash          TEXT PRIMARY KEY,
    public_id        TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users (id),
    method           TEXT NOT NULL,
    provider         TEXT,
    idp_sid          TEXT,
    acr              TEXT,
    amr              TEXT,
    auth_time        BIGINT,
    csrf             TEXT NOT NULL,
    second_factor_at BIGINT,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    ended_at         BIGINT,
    end_reason       TEXT,
    client_ip        TEXT,
    user_agent       TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_idp_sid ON sessions (provider, idp_sid);

CREATE TABLE totp_credentials (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    last_step     BIGINT,
    failures      BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT
);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id),
    hash    TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE personal_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX personal_tokens_by_user ON personal_tokens (user_id);

-- Things a person should know about their own account, such as a replayed code.
CREATE TABLE security_notices (
    id      TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX security_notices_by_user ON security_notices (user_id, at);
