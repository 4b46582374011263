//! The change log the replicas follow.

use deadpool_postgres::GenericClient;

use super::platform;
use crate::store::{Change, ChannelKey, StoreError, StoreResult};

/// Held by every transaction that appends to the log until it commits, so that positions are
/// handed out in commit order and a follower never skips one committed late.
const LOG_LOCK: i64 = 0x6f74_6167_6f00_0002;

/// Changes older than this are dropped as new ones are written; the highest position dropped
/// is kept (setting [`PRUNED_THROUGH`]), so that a replica that fell behind it (cut off from
/// the database for longer) knows to reload everything.
const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

/// The setting holding the highest position dropped from the log (decimal text).
const PRUNED_THROUGH: &str = "changes_pruned_through";

/// Appends `change` (inside the caller's transaction) and notifies the listeners on commit.
pub(super) async fn record(tx: &impl GenericClient, change: &Change) -> StoreResult<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK])
        .await?;
    let none: Option<&str> = None;
    let (kind, project_ref, platform, runtime_version, subject) = match change {
        Change::Channel(key) => (
            "channel",
            Some(key.project_ref.as_str()),
            Some(key.platform.as_str()),
            Some(key.runtime_version.as_str()),
            none,
        ),
        Change::Project(project_ref) => ("project", Some(project_ref.as_str()), None, None, None),
        Change::Key(key_id) => ("key", None, None, None, Some(key_id.as_str())),
        Change::Asset(hash) => ("asset", None, None, None, Some(hash.as_str())),
        Change::Patches => ("patches", None, None, None, None),
    };
    // The database's clock, so that the replicas' clocks need not agree.
    let now: i64 = tx
        .query_one(
            "INSERT INTO changes (at, kind, project_ref, platform, runtime_version, subject) \
             VALUES ((extract(epoch FROM clock_timestamp()) * 1000)::bigint, $1, $2, $3, $4, $5) \
             RETURNING at",
            &[&kind, &project_ref, &platform, &runtime_version, &subject],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "WITH gone AS (DELETE FROM changes WHERE at < $1 RETURNING seq) \
         INSERT INTO settings (name, value) \
         SELECT $2, convert_to(max(seq)::text, 'UTF8') FROM gone HAVING max(seq) IS NOT NULL \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[&(now - KEEP_MS), &PRUNED_THROUGH],
    )
    .await?;
    tx.execute("SELECT pg_notify('otago_changes', '')", &[])
        .await?;
    Ok(())
}

/// The newest position (0 when the log is empty).
pub(super) async fn last(client: &impl GenericClient) -> StoreResult<i64> {
    let row = client
        .query_one("SELECT COALESCE(MAX(seq), 0) FROM changes", &[])
        .await?;
    Ok(row.try_get(0)?)
}

/// The highest position dropped from the log (0 when none was).
pub(super) async fn pruned_through(client: &impl GenericClient) -> StoreResult<i64> {
    let row = client
        .query_opt(
            "SELECT convert_from(value, 'UTF8') FROM settings WHERE name = $1",
            &[&PRUNED_THROUGH],
        )
        .await?;
    match row {
        None => Ok(0),
        Some(row) => row
            .try_get::<_, String>(0)?
            .parse()
            .map_err(|_| StoreError::backend("the change log's pruning mark is not a number")),
    }
}

/// The changes after `seq`, oldest first.
pub(super) async fn since(
    client: &impl GenericClient,
    seq: i64,
    limit: u32,
) -> StoreResult<Vec<(i64, Change)>> {
    let found = client
        .query(
            "SELECT seq, kind, project_ref, platform, runtime_version, subject FROM changes \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&seq, &i64::from(limit)],
        )
        .await?;
    let mut changes = Vec::with_capacity(found.len());
    for row in found {
        let kind: String = row.try_get(1)?;
        let project_ref: Option<String> = row.try_get(2)?;
        let subject: Option<String> = row.try_get(5)?;
        let missing = || {
            StoreError::backend(format!(
                "change {} of kind {kind} is incomplete",
                row.get::<_, i64>(0)
            ))
        };
        let change = match kind.as_str() {
            "channel" => Change::Channel(ChannelKey {
                project_ref: project_ref.ok_or_else(missing)?,
                platform: platform(&row.try_get::<_, Option<String>>(3)?.ok_or_else(missing)?)?,
                runtime_version: row.try_get::<_, Option<String>>(4)?.ok_or_else(missing)?,
            }),
            "project" => Change::Project(project_ref.ok_or_else(missing)?),
            "key" => Change::Key(subject.ok_or_else(missing)?),
            "asset" => Change::Asset(subject.ok_or_else(missing)?),
            "patches" => Change::Patches,
            other => {
                return Err(StoreError::backend(format!(
                    "unknown change kind `{other}`: a newer otago-server wrote it"
                )));
            }
        };
        changes.push((row.try_get(0)?, change));
    }
    Ok(changes)
}
