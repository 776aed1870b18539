-- Identity merge (Mixpanel's simplified and original ID merge): each row makes `alias` (a
-- device's "$device:<id>", an anonymous id, an alias) one more id of the person `canonical`,
-- so reads, exports and erasures of either cover both. A person's ids form a star: aliases
-- point at the canonical id, never at another alias.

CREATE TABLE identity_links (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    alias       TEXT NOT NULL,
    canonical   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, alias)
);

CREATE INDEX identity_links_by_canonical ON identity_links (project_id, canonical);
