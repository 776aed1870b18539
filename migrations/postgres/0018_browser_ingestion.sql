-- Browser ingestion: the origins a project accepts events from (CORS), space-separated or
-- "*", none by default; and whether the client's address is kept in $ip when an SDK asks
-- for geolocation (ip=1), off by default because an address is personal data.

ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN record_client_ip BIGINT NOT NULL DEFAULT 0;
