-- Roles administrators define from the permission catalogue. A role in use by an active
-- grant is never removed; removal is a soft delete so old grants still explain themselves.

CREATE TABLE custom_roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
