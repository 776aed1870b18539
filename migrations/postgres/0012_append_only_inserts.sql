-- An entry or checkpoint, once written, is never replaced: inserts of an existing seq are
-- refused by the trigger itself (not only by the key), as on SQLite where `REPLACE INTO`
-- would otherwise bypass the delete trigger. Storing the very same checkpoint again is a
-- no-op, as the appender's `ON CONFLICT DO NOTHING` expects; a different note is refused.

CREATE FUNCTION audit_entries_no_replace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_entries WHERE seq = NEW.seq) THEN
        RAISE EXCEPTION 'audit log tables are append-only: entry exists';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_entries_no_replace BEFORE INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_no_replace();

CREATE FUNCTION audit_checkpoints_no_replace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.size AND note = NEW.note) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.size) THEN
        RAISE EXCEPTION 'audit log tables are append-only: checkpoint exists';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_no_replace();
