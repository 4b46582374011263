//! Adoption counts and runtime version days in SQLite: added in batches by the flusher,
//! read by page, pruned by age.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{platform, to_i64, to_u64};
use crate::store::{AdoptionCount, RuntimeVersionDay, StoreError, StoreResult, day_sketch};

/// Adds counts; counts of projects deleted meanwhile are dropped.
pub(super) fn add_adoption(conn: &mut Connection, counts: &[AdoptionCount]) -> StoreResult<()> {
    let tx = conn.transaction()?;
    {
        let mut statement = tx.prepare_cached(
            "INSERT INTO adoption (project_ref, hour_start_ms, platform, runtime_version, current_update_id, count) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM projects WHERE ref = ?1) \
             ON CONFLICT DO UPDATE SET count = count + excluded.count",
        )?;
        for count in counts {
            statement.execute(params![
                count.project_ref,
                count.hour_start_ms,
                count.platform.as_str(),
                count.runtime_version.as_deref().unwrap_or_default(),
                count.current_update_id,
                to_i64(count.count)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A page of a project's counts since an instant.
pub(super) fn adoption(
    conn: &mut Connection,
    project_ref: &str,
    since_ms: i64,
    offset: u64,
    limit: u32,
) -> StoreResult<Vec<AdoptionCount>> {
    let mut statement = conn.prepare_cached(
        "SELECT project_ref, hour_start_ms, platform, runtime_version, current_update_id, count FROM adoption \
         WHERE project_ref = ?1 AND hour_start_ms >= ?2 \
         ORDER BY hour_start_ms, platform, runtime_version, current_update_id LIMIT ?3 OFFSET ?4",
    )?;
    let rows = statement.query_map(
        params![project_ref, since_ms, limit, to_i64(offset)],
        |row| {
            Ok(AdoptionCount {
                project_ref: row.get(0)?,
                hour_start_ms: row.get(1)?,
                platform: platform(&row.get::<_, String>(2)?)?,
                runtime_version: Some(row.get::<_, String>(3)?).filter(|rv| !rv.is_empty()),
                current_update_id: row.get(4)?,
                count: to_u64(row.get(5)?),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds days, merging each into its stored row; runtime versions past `versions_per_day`
/// distinct ones of a project and day go to the day's `''` bucket of their platform.
pub(super) fn add_runtime_version_days(
    conn: &mut Connection,
    days: &[RuntimeVersionDay],
    versions_per_day: usize,
) -> StoreResult<()> {
    let tx = conn.transaction()?;
    for day in days {
        let project_exists = tx
            .prepare_cached("SELECT 1 FROM projects WHERE ref = ?1")?
            .exists([&day.project_ref])?;
        if !project_exists {
            continue;
        }
        let find = |runtime_version: &str| {
            tx.prepare_cached(
                "SELECT requests, devices, last_seen_ms FROM runtime_version_days \
                 WHERE project_ref = ?1 AND day_start_ms = ?2 AND platform = ?3 AND runtime_version = ?4",
            )?
            .query_row(
                params![
                    day.project_ref,
                    day.day_start_ms,
                    day.platform.as_str(),
                    runtime_version
                ],
                |row| {
                    Ok((
                        to_u64(row.get(0)?),
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
        };
        let mut runtime_version = day.runtime_version.as_deref().unwrap_or_default();
        let mut stored = find(runtime_version)?;
        if stored.is_none() && !runtime_version.is_empty() {
            let versions: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM runtime_version_days \
                     WHERE project_ref = ?1 AND day_start_ms = ?2 AND runtime_version <> ''",
                )?
                .query_row(params![day.project_ref, day.day_start_ms], |row| row.get(0))?;
            if to_u64(versions) >= versions_per_day as u64 {
                runtime_version = "";
                stored = find(runtime_version)?;
            }
        }
        let (requests, devices, last_seen_ms) = match stored {
            Some((requests, bytes, last_seen_ms)) => {
                let devices = day_sketch(&bytes)?;
                devices.merge_bytes(&day.devices).map_err(|err| {
                    StoreError::backend(format!("a device sketch to add is damaged: {err}"))
                })?;
                (
                    requests.saturating_add(day.requests),
                    devices,
                    last_seen_ms.max(day.last_seen_ms),
                )
            }
            None => (day.requests, day_sketch(&day.devices)?, day.last_seen_ms),
        };
        tx.prepare_cached(
            "INSERT INTO runtime_version_days \
             (project_ref, day_start_ms, platform, runtime_version, requests, devices, last_seen_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT DO UPDATE SET requests = excluded.requests, devices = excluded.devices, \
             last_seen_ms = excluded.last_seen_ms",
        )?
        .execute(params![
            day.project_ref,
            day.day_start_ms,
            day.platform.as_str(),
            runtime_version,
            to_i64(requests),
            devices.to_bytes(),
            last_seen_ms
        ])?;
    }
    tx.commit()?;
    Ok(())
}

/// A project's runtime version days since an instant.
pub(super) fn runtime_version_days(
    conn: &mut Connection,
    project_ref: &str,
    since_ms: i64,
) -> StoreResult<Vec<RuntimeVersionDay>> {
    let mut statement = conn.prepare_cached(
        "SELECT day_start_ms, platform, runtime_version, requests, devices, last_seen_ms \
         FROM runtime_version_days WHERE project_ref = ?1 AND day_start_ms >= ?2 \
         ORDER BY day_start_ms, platform, runtime_version",
    )?;
    let rows = statement
        .query_map(params![project_ref, since_ms], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                platform(&row.get::<_, String>(1)?)?,
                row.get::<_, String>(2)?,
                to_u64(row.get(3)?),
                row.get::<_, Vec<u8>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(day_start_ms, platform, runtime_version, requests, devices, last_seen_ms)| {
                Ok(RuntimeVersionDay {
                    project_ref: project_ref.to_owned(),
                    day_start_ms,
                    platform,
                    runtime_version: Some(runtime_version).filter(|rv| !rv.is_empty()),
                    requests,
                    devices: day_sketch(&devices)?.to_bytes(),
                    last_seen_ms,
                })
            },
        )
        .collect()
}

/// Deletes counts older than `before_ms`.
pub(super) fn prune(conn: &mut Connection, before_ms: i64) -> StoreResult<u64> {
    let tx = conn.transaction()?;
    let hours = tx.execute("DELETE FROM adoption WHERE hour_start_ms < ?1", [before_ms])?;
    let days = tx.execute(
        "DELETE FROM runtime_version_days WHERE day_start_ms < ?1",
        [before_ms],
    )?;
    tx.commit()?;
    Ok((hours + days) as u64)
}

#[cfg(test)]
mod tests {
    use otago_core::{Platform, Timestamp};

    use super::super::SqliteStore;
    use crate::adoption::DAY_MS;
    use crate::store::{AdoptionCount, MetaStore, ProjectRecord, RuntimeVersionDay};

    fn day(day_start_ms: i64, runtime_version: &str, client: &str) -> RuntimeVersionDay {
        let devices = otago_core::DeviceSketch::new();
        devices.insert(otago_core::DeviceHash::of(client));
        RuntimeVersionDay {
            project_ref: "p_0123456789".to_owned(),
            day_start_ms,
            platform: Platform::Ios,
            runtime_version: Some(runtime_version.to_owned()),
            requests: 1,
            devices: devices.to_bytes(),
            last_seen_ms: day_start_ms + 1,
        }
    }

    #[tokio::test]
    async fn days_merge_are_capped_per_day_and_old_counts_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .create_project(ProjectRecord {
                r#ref: "p_0123456789".to_owned(),
                app: "app".to_owned(),
                environment: "production".to_owned(),
                require_signing: false,
                certificate_pem: None,
                max_asset_bytes: 1,
                created_at: Timestamp::from_unix_millis(0).unwrap(),
            })
            .await
            .unwrap();
        let today = 400 * DAY_MS;
        // The same version from two devices, in two flushes: one row, two devices.
        store
            .add_runtime_version_days(vec![day(today, "1", "a")], 2)
            .await
            .unwrap();
        store
            .add_runtime_version_days(vec![day(today, "1", "b"), day(today, "2", "a")], 2)
            .await
            .unwrap();
        // A third version that day goes to the bucket; the next day has room again.
        store
            .add_runtime_version_days(vec![day(today, "3", "c"), day(today + DAY_MS, "3", "c")], 2)
            .await
            .unwrap();
        let days = store.runtime_version_days("p_0123456789", 0).await.unwrap();
        let summary: Vec<(i64, Option<&str>, u64, u64)> = days
            .iter()
            .map(|d| {
                (
                    d.day_start_ms,
                    d.runtime_version.as_deref(),
                    d.requests,
                    super::day_sketch(&d.devices).unwrap().estimate(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (today, None, 1, 1),
                (today, Some("1"), 2, 2),
                (today, Some("2"), 1, 1),
                (today + DAY_MS, Some("3"), 1, 1),
            ]
        );

        let count = |hour_start_ms| AdoptionCount {
            project_ref: "p_0123456789".to_owned(),
            hour_start_ms,
            platform: Platform::Ios,
            runtime_version: None,
            current_update_id: "other".to_owned(),
            count: 1,
        };
        store
            .add_adoption(vec![count(today - DAY_MS), count(today)])
            .await
            .unwrap();
        // Everything before `today` goes: one adoption hour; no runtime version day.
        assert_eq!(store.prune_counts(today).await.unwrap(), 1);
        let left = store.adoption("p_0123456789", 0, 0, 10).await.unwrap();
        assert_eq!(left, [count(today)]);
        assert_eq!(store.prune_counts(today + DAY_MS).await.unwrap(), 4);
        assert_eq!(
            store
                .runtime_version_days("p_0123456789", 0)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
