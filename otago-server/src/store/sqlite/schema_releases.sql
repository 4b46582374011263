-- Releases: rollouts with a control and a standby revert, health gates, ramps, health per update.

-- 'full': served to every device (published at 100 % or raised to it);
-- 'rollout': its updates are the targets of rollouts in progress;
-- 'reverted': a reverted rollout, whose standbys are served to the devices that took it;
-- 'withdrawn': not served (partial or reverted groups from before releases had controls).
ALTER TABLE groups ADD COLUMN state TEXT NOT NULL DEFAULT 'full';
UPDATE groups SET state = 'withdrawn' WHERE reverted = 1 OR rollout_percentage < 100;
-- The health gate of a rollout: revert once failed / served is over this percentage.
ALTER TABLE groups ADD COLUMN max_failure_percent REAL;
ALTER TABLE groups ADD COLUMN min_devices INTEGER NOT NULL DEFAULT 20;
-- A scheduled ramp: the steps ('1,10,50,100') and the time between them.
ALTER TABLE groups ADD COLUMN ramp_steps TEXT;
ALTER TABLE groups ADD COLUMN ramp_every_ms INTEGER;
-- When the rollout reached its current percentage (ramps count from there).
ALTER TABLE groups ADD COLUMN percentage_since INTEGER;
UPDATE groups SET percentage_since = created_at;
ALTER TABLE groups ADD COLUMN reverted_at INTEGER;
ALTER TABLE groups ADD COLUMN reverted_by TEXT;
ALTER TABLE groups ADD COLUMN revert_reason TEXT;

-- For the target of a rollout: the update every other device got when it started (NULL: the
-- embedded update).
ALTER TABLE updates ADD COLUMN control_update_id TEXT;

-- The signed standby revert of each rollout target, served only after a revert.
CREATE TABLE standbys (
    id         TEXT PRIMARY KEY,
    update_id  TEXT NOT NULL UNIQUE REFERENCES updates (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    signature  TEXT,
    body       BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX updates_by_control ON updates (control_update_id);

-- Distinct devices per update, as device sketches (otago-core's DeviceSketch bytes).
CREATE TABLE update_health (
    update_id TEXT PRIMARY KEY,
    served    BLOB NOT NULL,
    running   BLOB NOT NULL,
    failed    BLOB NOT NULL
) WITHOUT ROWID;
