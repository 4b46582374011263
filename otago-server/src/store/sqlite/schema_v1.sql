-- Otago metadata, schema version 1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE projects (
    ref             TEXT PRIMARY KEY,
    app             TEXT NOT NULL,
    environment     TEXT NOT NULL,
    require_signing INTEGER NOT NULL DEFAULT 0,
    certificate_pem TEXT,
    max_asset_bytes INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (app, environment)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    project_ref   TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX api_keys_by_project ON api_keys (project_ref);

CREATE TABLE assets (
    hash         TEXT PRIMARY KEY,
    key          TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    encodings    TEXT, -- NULL until the compressed variants are made, then e.g. 'gzip,br'
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE groups (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    project_ref        TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    runtime_version    TEXT NOT NULL,
    message            TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    rollout_percentage INTEGER NOT NULL CHECK (rollout_percentage BETWEEN 0 AND 100),
    reverted           INTEGER NOT NULL DEFAULT 0,
    kind               TEXT NOT NULL
);
CREATE INDEX groups_by_channel ON groups (project_ref, runtime_version, seq);

CREATE TABLE updates (
    id         TEXT PRIMARY KEY,
    group_seq  INTEGER NOT NULL REFERENCES groups (seq) ON DELETE CASCADE,
    platform   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    signature  TEXT,
    body       BLOB NOT NULL,
    UNIQUE (group_seq, platform)
) WITHOUT ROWID;

CREATE TABLE update_assets (
    update_id  TEXT NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
    asset_hash TEXT NOT NULL REFERENCES assets (hash),
    PRIMARY KEY (update_id, asset_hash)
) WITHOUT ROWID;
CREATE INDEX update_assets_by_asset ON update_assets (asset_hash);

-- Every update id ever published, kept after deletes so that an id is never reused.
CREATE TABLE used_update_ids (
    id TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE adoption (
    project_ref       TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    hour_start_ms     INTEGER NOT NULL,
    platform          TEXT NOT NULL,
    runtime_version   TEXT NOT NULL,
    current_update_id TEXT NOT NULL,
    count             INTEGER NOT NULL,
    PRIMARY KEY (project_ref, hour_start_ms, platform, runtime_version, current_update_id)
) WITHOUT ROWID;
