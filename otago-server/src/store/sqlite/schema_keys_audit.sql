-- Key roles and expiry, and the audit log.

-- Keys made before roles existed become deploy keys: the least that still deploys. The admin
-- token can make admin keys.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'deploy';
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_ref TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL, -- a key id, or 'admin' for the admin token
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL  -- JSON
);
CREATE INDEX audit_log_by_project ON audit_log (project_ref, seq);
