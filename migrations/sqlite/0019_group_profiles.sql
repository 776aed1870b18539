-- Group analytics: one profile per ($group_key, $group_id) in a project, changed by /groups
-- with the same operations as people's profiles.

CREATE TABLE group_profiles (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    group_key   TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    properties  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, group_key, group_id)
);
