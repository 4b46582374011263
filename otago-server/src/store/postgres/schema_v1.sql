-- Otago metadata on PostgreSQL, schema version 1: the same tables as the embedded SQLite
-- store's, at its schema version 5. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE projects (
    ref             TEXT PRIMARY KEY,
    app             TEXT NOT NULL,
    environment     TEXT NOT NULL,
    require_signing BOOLEAN NOT NULL DEFAULT FALSE,
    certificate_pem TEXT,
    max_asset_bytes BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (app, environment)
);

-- role: 'deploy' or 'admin'.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    project_ref   TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    expires_at    BIGINT,
    secret_sha256 BYTEA NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_by_project ON api_keys (project_ref);

CREATE TABLE audit_log (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_ref TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL, -- a key id, or 'admin' for the admin token
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL  -- JSON
);
CREATE INDEX audit_log_by_project ON audit_log (project_ref, seq);

CREATE TABLE assets (
    hash         TEXT PRIMARY KEY,
    key          TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    encodings    TEXT, -- NULL until the compressed variants are made, then e.g. 'gzip,br'
    created_at   BIGINT NOT NULL
);
CREATE INDEX assets_uncompressed ON assets (created_at) WHERE encodings IS NULL;

-- state: 'full', 'rollout', 'reverted' or 'withdrawn' (see the SQLite schema's notes).
CREATE TABLE groups (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    project_ref         TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    runtime_version     TEXT NOT NULL,
    message             TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    rollout_percentage  INTEGER NOT NULL CHECK (rollout_percentage BETWEEN 0 AND 100),
    kind                TEXT NOT NULL,
    state               TEXT NOT NULL,
    max_failure_percent DOUBLE PRECISION,
    min_devices         BIGINT NOT NULL,
    ramp_steps          TEXT,
    ramp_every_ms       BIGINT,
    percentage_since    BIGINT NOT NULL,
    reverted_at         BIGINT,
    reverted_by         TEXT,
    revert_reason       TEXT
);
CREATE INDEX groups_by_channel ON groups (project_ref, runtime_version, seq);

CREATE TABLE updates (
    id                TEXT PRIMARY KEY,
    group_seq         BIGINT NOT NULL REFERENCES groups (seq) ON DELETE CASCADE,
    platform          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    size              BIGINT NOT NULL,
    signature         TEXT,
    body              BYTEA NOT NULL,
    control_update_id TEXT,
    UNIQUE (group_seq, platform)
);
CREATE INDEX updates_by_control ON updates (control_update_id);

CREATE TABLE standbys (
    id         TEXT PRIMARY KEY,
    update_id  TEXT NOT NULL UNIQUE REFERENCES updates (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    signature  TEXT,
    body       BYTEA NOT NULL
);

CREATE TABLE update_assets (
    update_id  TEXT NOT NULL REFERENCES updates (id) ON DELETE CASCADE,
    asset_hash TEXT NOT NULL REFERENCES assets (hash),
    PRIMARY KEY (update_id, asset_hash)
);
CREATE INDEX update_assets_by_asset ON update_assets (asset_hash);

-- Every update id ever published, kept after deletes so that an id is never reused.
CREATE TABLE used_update_ids (
    id TEXT PRIMARY KEY
);

CREATE TABLE update_health (
    update_id TEXT PRIMARY KEY,
    served    BYTEA NOT NULL,
    running   BYTEA NOT NULL,
    failed    BYTEA NOT NULL
);

CREATE TABLE adoption (
    project_ref       TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    hour_start_ms     BIGINT NOT NULL,
    platform          TEXT NOT NULL,
    runtime_version   TEXT NOT NULL,
    current_update_id TEXT NOT NULL,
    count             BIGINT NOT NULL,
    PRIMARY KEY (project_ref, hour_start_ms, platform, runtime_version, current_update_id)
);
CREATE INDEX adoption_by_hour ON adoption (hour_start_ms);

CREATE TABLE runtime_version_days (
    project_ref     TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    day_start_ms    BIGINT NOT NULL,
    platform        TEXT NOT NULL,
    runtime_version TEXT NOT NULL,
    requests        BIGINT NOT NULL,
    devices         BYTEA NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    PRIMARY KEY (project_ref, day_start_ms, platform, runtime_version)
);
CREATE INDEX runtime_version_days_by_day ON runtime_version_days (day_start_ms);

CREATE TABLE embedded_bundles (
    update_id       TEXT PRIMARY KEY,
    project_ref     TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    platform        TEXT NOT NULL,
    runtime_version TEXT NOT NULL,
    asset_hash      TEXT NOT NULL REFERENCES assets (hash),
    created_at      BIGINT NOT NULL
);
CREATE INDEX embedded_bundles_by_channel ON embedded_bundles (project_ref, platform, runtime_version);

CREATE TABLE patches (
    base_hash   TEXT NOT NULL,
    target_hash TEXT NOT NULL,
    patch_hash  TEXT,
    patch_size  BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (base_hash, target_hash)
);

-- What changed, for the other replicas: each follows this log (woken by NOTIFY otago_changes,
-- and re-checking every second so that a lost notification only delays a change).
-- kind: 'channel' (project_ref, platform, runtime_version), 'project' (project_ref),
-- 'key' (subject: the key id), 'asset' (subject: the hash) or 'patches'.
CREATE TABLE changes (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    project_ref     TEXT,
    platform        TEXT,
    runtime_version TEXT,
    subject         TEXT
);
CREATE INDEX changes_by_time ON changes (at);
