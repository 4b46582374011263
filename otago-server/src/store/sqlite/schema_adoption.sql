-- Bounded counting: adoption counts only for published runtime versions (the rest in one
-- bucket per project, hour and platform, runtime_version ''), pruned by hour; and, per project
-- and day, the runtime versions devices ask for with a sketch of their distinct devices.

-- Counts of runtime versions no group was ever published for collapse into the '' bucket.
INSERT INTO adoption (project_ref, hour_start_ms, platform, runtime_version, current_update_id, count)
    SELECT project_ref, hour_start_ms, platform, '', 'other', SUM(count) FROM adoption AS a
    WHERE a.runtime_version <> '' AND NOT EXISTS (
        SELECT 1 FROM groups AS g
        WHERE g.project_ref = a.project_ref AND g.runtime_version = a.runtime_version
    )
    GROUP BY project_ref, hour_start_ms, platform
    ON CONFLICT DO UPDATE SET count = count + excluded.count;
DELETE FROM adoption AS a
    WHERE a.runtime_version <> '' AND NOT EXISTS (
        SELECT 1 FROM groups AS g
        WHERE g.project_ref = a.project_ref AND g.runtime_version = a.runtime_version
    );
CREATE INDEX adoption_by_hour ON adoption (hour_start_ms);

-- runtime_version '': every runtime version past the daily limit of distinct ones.
-- devices: a HyperLogLog sketch of the EAS-Client-IDs seen (otago_core::DeviceSketch).
CREATE TABLE runtime_version_days (
    project_ref     TEXT NOT NULL REFERENCES projects (ref) ON DELETE CASCADE,
    day_start_ms    INTEGER NOT NULL,
    platform        TEXT NOT NULL,
    runtime_version TEXT NOT NULL,
    requests        INTEGER NOT NULL,
    devices         BLOB NOT NULL,
    last_seen_ms    INTEGER NOT NULL,
    PRIMARY KEY (project_ref, day_start_ms, platform, runtime_version)
) WITHOUT ROWID;
CREATE INDEX runtime_version_days_by_day ON runtime_version_days (day_start_ms);
