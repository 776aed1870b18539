-- An entry or checkpoint, once written, is never replaced: `REPLACE INTO` (and `INSERT OR
-- REPLACE`) deletes the old row without firing the delete triggers, so inserts of an existing
-- seq are refused too. Storing the very same checkpoint again is a no-op, as the appender's
-- `ON CONFLICT DO NOTHING` expects; a different note for a signed size is refused.

CREATE TRIGGER audit_entries_no_replace BEFORE INSERT ON audit_entries
WHEN EXISTS (SELECT 1 FROM audit_entries WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only: entry exists'); END;

CREATE TRIGGER audit_checkpoints_same_again BEFORE INSERT ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.size AND note = NEW.note)
BEGIN SELECT RAISE(IGNORE); END;

CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.size AND note <> NEW.note)
BEGIN SELECT RAISE(ABORT, 'audit log tables are append-only: checkpoint exists'); END;
