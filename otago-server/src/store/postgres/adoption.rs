//! Adoption counts and runtime version days in PostgreSQL: added in batches by each replica's
//! flusher (so counts from every replica add up), read by page, pruned by age.

use deadpool_postgres::{GenericClient, Object};

use super::{platform, rows, to_i64, to_u64};
use crate::store::{AdoptionCount, RuntimeVersionDay, StoreError, StoreResult, day_sketch};

/// Adds counts; counts of projects deleted meanwhile are dropped.
pub(super) async fn add_adoption(client: &mut Object, counts: &[AdoptionCount]) -> StoreResult<()> {
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO adoption (project_ref, hour_start_ms, platform, runtime_version, current_update_id, count) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM projects WHERE ref = $1) \
             ON CONFLICT (project_ref, hour_start_ms, platform, runtime_version, current_update_id) \
             DO UPDATE SET count = adoption.count + excluded.count",
        )
        .await?;
    for count in counts {
        tx.execute(
            &statement,
            &[
                &count.project_ref,
                &count.hour_start_ms,
                &count.platform.as_str(),
                &count.runtime_version.as_deref().unwrap_or_default(),
                &count.current_update_id,
                &to_i64(count.count),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A page of a project's counts since an instant.
pub(super) async fn adoption(
    client: &impl GenericClient,
    project_ref: &str,
    since_ms: i64,
    offset: u64,
    limit: u32,
) -> StoreResult<Vec<AdoptionCount>> {
    let found = client
        .query(
            "SELECT project_ref, hour_start_ms, platform, runtime_version, current_update_id, count FROM adoption \
             WHERE project_ref = $1 AND hour_start_ms >= $2 \
             ORDER BY hour_start_ms, platform, runtime_version, current_update_id LIMIT $3 OFFSET $4",
            &[&project_ref, &since_ms, &i64::from(limit), &to_i64(offset)],
        )
        .await?;
    rows(&found, |row| {
        Ok(AdoptionCount {
            project_ref: row.try_get(0)?,
            hour_start_ms: row.try_get(1)?,
            platform: platform(&row.try_get::<_, String>(2)?)?,
            runtime_version: Some(row.try_get::<_, String>(3)?).filter(|rv| !rv.is_empty()),
            current_update_id: row.try_get(4)?,
            count: to_u64(row.try_get(5)?),
        })
    })
}

/// Adds days, merging each into its stored row; runtime versions past `versions_per_day`
/// distinct ones of a project and day go to the day's `''` bucket of their platform. Each
/// project and day is locked while it is merged, so replicas flushing at once both count and
/// the daily limit holds.
pub(super) async fn add_runtime_version_days(
    client: &mut Object,
    days: &[RuntimeVersionDay],
    versions_per_day: usize,
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    for day in days {
        let project_exists = tx
            .query_opt("SELECT 1 FROM projects WHERE ref = $1", &[&day.project_ref])
            .await?
            .is_some();
        if !project_exists {
            continue;
        }
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2::text, 0))",
            &[&day.project_ref, &day.day_start_ms.to_string()],
        )
        .await?;
        let find = |runtime_version: String| {
            let tx = &tx;
            async move {
                tx.query_opt(
                    "SELECT requests, devices, last_seen_ms FROM runtime_version_days \
                     WHERE project_ref = $1 AND day_start_ms = $2 AND platform = $3 AND runtime_version = $4",
                    &[
                        &day.project_ref,
                        &day.day_start_ms,
                        &day.platform.as_str(),
                        &runtime_version,
                    ],
                )
                .await?
                .map(|row| -> StoreResult<(u64, Vec<u8>, i64)> {
                    Ok((to_u64(row.try_get(0)?), row.try_get(1)?, row.try_get(2)?))
                })
                .transpose()
            }
        };
        let mut runtime_version = day.runtime_version.clone().unwrap_or_default();
        let mut stored = find(runtime_version.clone()).await?;
        if stored.is_none() && !runtime_version.is_empty() {
            let versions: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM runtime_version_days \
                     WHERE project_ref = $1 AND day_start_ms = $2 AND runtime_version <> ''",
                    &[&day.project_ref, &day.day_start_ms],
                )
                .await?
                .try_get(0)?;
            if to_u64(versions) >= versions_per_day as u64 {
                runtime_version = String::new();
                stored = find(runtime_version.clone()).await?;
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
        tx.execute(
            "INSERT INTO runtime_version_days \
             (project_ref, day_start_ms, platform, runtime_version, requests, devices, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (project_ref, day_start_ms, platform, runtime_version) DO UPDATE SET \
             requests = excluded.requests, devices = excluded.devices, last_seen_ms = excluded.last_seen_ms",
            &[
                &day.project_ref,
                &day.day_start_ms,
                &day.platform.as_str(),
                &runtime_version,
                &to_i64(requests),
                &devices.to_bytes(),
                &last_seen_ms,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A project's runtime version days since an instant.
pub(super) async fn runtime_version_days(
    client: &impl GenericClient,
    project_ref: &str,
    since_ms: i64,
) -> StoreResult<Vec<RuntimeVersionDay>> {
    let found = client
        .query(
            "SELECT day_start_ms, platform, runtime_version, requests, devices, last_seen_ms \
             FROM runtime_version_days WHERE project_ref = $1 AND day_start_ms >= $2 \
             ORDER BY day_start_ms, platform, runtime_version",
            &[&project_ref, &since_ms],
        )
        .await?;
    rows(&found, |row| {
        Ok(RuntimeVersionDay {
            project_ref: project_ref.to_owned(),
            day_start_ms: row.try_get(0)?,
            platform: platform(&row.try_get::<_, String>(1)?)?,
            runtime_version: Some(row.try_get::<_, String>(2)?).filter(|rv| !rv.is_empty()),
            requests: to_u64(row.try_get(3)?),
            devices: day_sketch(&row.try_get::<_, Vec<u8>>(4)?)?.to_bytes(),
            last_seen_ms: row.try_get(5)?,
        })
    })
}

/// Deletes counts older than `before_ms`.
pub(super) async fn prune(client: &mut Object, before_ms: i64) -> StoreResult<u64> {
    let tx = client.transaction().await?;
    let hours = tx
        .execute(
            "DELETE FROM adoption WHERE hour_start_ms < $1",
            &[&before_ms],
        )
        .await?;
    let days = tx
        .execute(
            "DELETE FROM runtime_version_days WHERE day_start_ms < $1",
            &[&before_ms],
        )
        .await?;
    tx.commit().await?;
    Ok(hours + days)
}
