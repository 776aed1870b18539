-- Removing a property's sensitive mark takes two people: the first asks (recorded here), a
-- second person with properties:classify confirms, and only then is the mark deleted. So
-- nobody who can both classify and read unmarks a property to read it.

ALTER TABLE sensitive_properties ADD COLUMN unmark_requested_by TEXT;
ALTER TABLE sensitive_properties ADD COLUMN unmark_requested_at BIGINT;
