-- Bundle patches: the bundles embedded in native builds, and BSDIFF40 patches between launch assets.

-- A bundle embedded in a build, registered so that the build's first update can be patched.
CREATE TABLE embedded_bundles (
    update_id       TEXT PRIMARY KEY, -- the embedded update's id (its app.manifest `id`)
    project_ref     TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    platform        TEXT NOT NULL,
    runtime_version TEXT NOT NULL,
    asset_hash      TEXT NOT NULL REFERENCES assets (hash),
    created_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX embedded_bundles_by_channel ON embedded_bundles (project_ref, platform, runtime_version);

-- A patch from one launch asset to another, verified when made. patch_hash is NULL for a pair
-- that was tried and not kept (not small enough, or too large to diff), so it is not tried again.
CREATE TABLE patches (
    base_hash   TEXT NOT NULL,
    target_hash TEXT NOT NULL,
    patch_hash  TEXT,
    patch_size  INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (base_hash, target_hash)
) WITHOUT ROWID;
