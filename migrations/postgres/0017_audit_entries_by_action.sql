-- Exports look up every key hand-over (entries of action key.rotate) to let an auditor with
-- either key follow the log: an index keeps that from reading the whole log each time.

CREATE INDEX audit_entries_by_action ON audit_entries (action, seq);
