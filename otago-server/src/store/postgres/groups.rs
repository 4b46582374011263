//! Groups, updates and served history in PostgreSQL.

use bytes::Bytes;
use deadpool_postgres::{GenericClient, Object};
use otago_core::{Platform, Timestamp};
use tokio_postgres::Row;

use super::{changes, is_unique_violation, platform, rows, to_i64, to_u64, ts};
use crate::store::{
    Change, ChannelKey, GateRecord, GroupFilter, GroupKind, GroupRecord, GroupState, HealthRecord,
    RampRecord, ReleaseRecord, RevertRecord, ServedUpdate, StandbyRecord, StoreError, StoreResult,
    UpdateRecord,
};

fn kind(text: &str) -> StoreResult<GroupKind> {
    GroupKind::parse(text)
        .ok_or_else(|| StoreError::backend(format!("unknown group kind `{text}`")))
}

fn state(text: &str) -> StoreResult<GroupState> {
    GroupState::parse(text)
        .ok_or_else(|| StoreError::backend(format!("unknown group state `{text}`")))
}

/// Locks a project's row until the transaction ends: publishes, rollout changes and reverts
/// of one project run one at a time, whichever replica makes them.
async fn lock_project(tx: &impl GenericClient, project_ref: &str) -> StoreResult<()> {
    tx.query_opt(
        "SELECT 1 FROM projects WHERE ref = $1 FOR UPDATE",
        &[&project_ref],
    )
    .await?;
    Ok(())
}

/// The id of a channel's newest served update (a rollout's target, reverted or not).
async fn newest_update_id(
    tx: &impl GenericClient,
    project_ref: &str,
    runtime_version: &str,
    platform: Platform,
) -> StoreResult<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT u.id FROM groups g JOIN updates u ON u.group_seq = g.seq \
             WHERE g.project_ref = $1 AND g.runtime_version = $2 AND u.platform = $3 \
             AND g.state != 'withdrawn' ORDER BY g.seq DESC LIMIT 1",
            &[&project_ref, &runtime_version, &platform.as_str()],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// Records a change of every channel of a group.
async fn channels_changed(
    tx: &impl GenericClient,
    project_ref: &str,
    runtime_version: &str,
    platforms: Vec<Platform>,
) -> StoreResult<()> {
    for platform in platforms {
        let key = ChannelKey {
            project_ref: project_ref.to_owned(),
            platform,
            runtime_version: runtime_version.to_owned(),
        };
        changes::record(tx, &Change::Channel(key)).await?;
    }
    Ok(())
}

/// Writes a group, its updates, their standbys and asset links in one transaction, if every
/// channel's newest update is still the one it was built on.
pub(super) async fn publish(
    client: &mut Object,
    group: &GroupRecord,
    built_on: &[(Platform, Option<String>)],
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    lock_project(&tx, &group.project_ref).await?;
    for (platform, expected) in built_on {
        let newest =
            newest_update_id(&tx, &group.project_ref, &group.runtime_version, *platform).await?;
        if newest != *expected {
            return Err(StoreError::ChannelMoved {
                channel: format!("{}/{platform}/{}", group.project_ref, group.runtime_version),
            });
        }
    }
    let seq: i64 = tx
        .query_one(
            "INSERT INTO groups (id, project_ref, runtime_version, message, created_at, rollout_percentage, kind, \
             state, max_failure_percent, min_devices, ramp_steps, ramp_every_ms, percentage_since) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING seq",
            &[
                &group.id,
                &group.project_ref,
                &group.runtime_version,
                &group.message,
                &group.created_at.unix_millis(),
                &i32::from(group.rollout_percentage),
                &group.kind.as_str(),
                &group.state.as_str(),
                &group.gate.map(|g| g.max_failure_percent),
                &to_i64(group.gate.map_or(20, |g| g.min_devices)),
                &group.ramp.as_ref().map(|r| r.steps.clone()),
                &group.ramp.as_ref().map(|r| to_i64(r.every_ms)),
                &group.percentage_since.unix_millis(),
            ],
        )
        .await?
        .try_get(0)?;
    for update in &group.updates {
        let ids = std::iter::once(&update.id).chain(update.standby.iter().map(|s| &s.id));
        for id in ids {
            match tx
                .execute("INSERT INTO used_update_ids (id) VALUES ($1)", &[id])
                .await
            {
                Ok(_) => {}
                Err(err) if is_unique_violation(&err) => {
                    return Err(StoreError::UpdateIdReused { id: id.clone() });
                }
                Err(err) => return Err(err.into()),
            }
        }
        tx.execute(
            "INSERT INTO updates (id, group_seq, platform, created_at, size, signature, body, control_update_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &update.id,
                &seq,
                &update.platform.as_str(),
                &update.created_at.unix_millis(),
                &to_i64(update.size),
                &update.signature,
                &update.body.as_deref().unwrap_or_default(),
                &update.control_update_id,
            ],
        )
        .await?;
        if let Some(standby) = &update.standby {
            tx.execute(
                "INSERT INTO standbys (id, update_id, kind, created_at, signature, body) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &standby.id,
                    &update.id,
                    &standby.kind.as_str(),
                    &standby.created_at.unix_millis(),
                    &standby.signature,
                    &standby.body.as_deref().unwrap_or_default(),
                ],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO update_assets (update_id, asset_hash) SELECT $1, unnest($2::text[]) \
             ON CONFLICT DO NOTHING",
            &[&update.id, &update.asset_hashes],
        )
        .await?;
    }
    let platforms: Vec<Platform> = group.updates.iter().map(|u| u.platform).collect();
    channels_changed(&tx, &group.project_ref, &group.runtime_version, platforms).await?;
    tx.commit().await?;
    Ok(())
}

const GROUP_COLUMNS: &str = "g.seq, g.id, g.project_ref, g.runtime_version, g.message, g.created_at, g.rollout_percentage, g.state, g.kind, \
     g.max_failure_percent, g.min_devices, g.ramp_steps, g.ramp_every_ms, g.percentage_since, g.reverted_at, g.reverted_by, g.revert_reason";

/// Columns of [`GROUP_COLUMNS`], so that queries joining more columns know where theirs start.
const GROUP_COLUMN_COUNT: usize = 17;

fn group_row(row: &Row) -> StoreResult<(i64, GroupRecord)> {
    let created_at = ts(row.try_get(5)?)?;
    let gate = match row.try_get::<_, Option<f64>>(9)? {
        Some(max_failure_percent) => Some(GateRecord {
            max_failure_percent,
            min_devices: to_u64(row.try_get(10)?),
        }),
        None => None,
    };
    let ramp = match (
        row.try_get::<_, Option<String>>(11)?,
        row.try_get::<_, Option<i64>>(12)?,
    ) {
        (Some(steps), Some(every_ms)) => Some(RampRecord {
            steps,
            every_ms: to_u64(every_ms),
        }),
        _ => None,
    };
    let revert = match row.try_get::<_, Option<i64>>(14)? {
        Some(at) => Some(RevertRecord {
            at: ts(at)?,
            by: row.try_get::<_, Option<String>>(15)?.unwrap_or_default(),
            reason: row.try_get(16)?,
        }),
        None => None,
    };
    let percentage: i32 = row.try_get(6)?;
    Ok((
        row.try_get(0)?,
        GroupRecord {
            id: row.try_get(1)?,
            project_ref: row.try_get(2)?,
            runtime_version: row.try_get(3)?,
            message: row.try_get(4)?,
            created_at,
            rollout_percentage: u8::try_from(percentage).map_err(StoreError::backend)?,
            state: state(&row.try_get::<_, String>(7)?)?,
            kind: kind(&row.try_get::<_, String>(8)?)?,
            gate,
            ramp,
            percentage_since: ts(row.try_get(13)?)?,
            revert,
            updates: Vec::new(),
        },
    ))
}

/// The update columns, with the standby's, from `updates u LEFT JOIN standbys s`.
fn update_columns(with_body: bool) -> String {
    let (body, standby_body) = if with_body {
        ("u.body", "s.body")
    } else {
        ("NULL::bytea", "NULL::bytea")
    };
    format!(
        "u.id, u.platform, u.created_at, u.size, u.signature, {body}, u.control_update_id, \
         s.id, s.kind, s.created_at, s.signature, {standby_body}"
    )
}

/// An update from [`update_columns`], starting at column `at`.
fn update_row(row: &Row, at: usize) -> StoreResult<UpdateRecord> {
    let body = |index: usize| -> StoreResult<Option<Bytes>> {
        Ok(row.try_get::<_, Option<Vec<u8>>>(index)?.map(Bytes::from))
    };
    let standby = match row.try_get::<_, Option<String>>(at + 7)? {
        Some(id) => Some(StandbyRecord {
            id,
            kind: kind(&row.try_get::<_, String>(at + 8)?)?,
            created_at: ts(row.try_get(at + 9)?)?,
            signature: row.try_get(at + 10)?,
            body: body(at + 11)?,
        }),
        None => None,
    };
    Ok(UpdateRecord {
        id: row.try_get(at)?,
        platform: platform(&row.try_get::<_, String>(at + 1)?)?,
        created_at: ts(row.try_get(at + 2)?)?,
        size: to_u64(row.try_get(at + 3)?),
        signature: row.try_get(at + 4)?,
        body: body(at + 5)?,
        asset_hashes: Vec::new(),
        control_update_id: row.try_get(at + 6)?,
        standby,
    })
}

async fn load_updates(
    client: &impl GenericClient,
    seq: i64,
    with_body: bool,
) -> StoreResult<Vec<UpdateRecord>> {
    let found = client
        .query(
            &format!(
                "SELECT {} FROM updates u LEFT JOIN standbys s ON s.update_id = u.id WHERE u.group_seq = $1 ORDER BY u.platform DESC",
                update_columns(with_body)
            ),
            &[&seq],
        )
        .await?;
    rows(&found, |row| update_row(row, 0))
}

/// Groups of a project, newest first.
pub(super) async fn list(
    client: &impl GenericClient,
    project_ref: &str,
    filter: &GroupFilter,
) -> StoreResult<Vec<GroupRecord>> {
    let found = client
        .query(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.project_ref = $1 \
                 AND ($2::text IS NULL OR g.runtime_version = $2) \
                 AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM updates u WHERE u.group_seq = g.seq AND u.platform = $3)) \
                 ORDER BY g.seq DESC LIMIT $4"
            ),
            &[
                &project_ref,
                &filter.runtime_version,
                &filter.platform.map(Platform::as_str),
                &i64::from(filter.limit),
            ],
        )
        .await?;
    let mut groups = Vec::with_capacity(found.len());
    for row in &found {
        let (seq, mut group) = group_row(row)?;
        group.updates = load_updates(client, seq, false).await?;
        groups.push(group);
    }
    Ok(groups)
}

/// One group with bodies and signatures.
pub(super) async fn get(
    client: &impl GenericClient,
    project_ref: &str,
    group_id: &str,
) -> StoreResult<Option<GroupRecord>> {
    let row = client
        .query_opt(
            &format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.project_ref = $1 AND g.id = $2"),
            &[&project_ref, &group_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (seq, mut group) = group_row(&row)?;
    group.updates = load_updates(client, seq, true).await?;
    Ok(Some(group))
}

/// A served update and its group, from `groups g JOIN updates u LEFT JOIN standbys s`.
fn served_row(row: &Row) -> StoreResult<ServedUpdate> {
    let (_, group) = group_row(row)?;
    Ok(ServedUpdate {
        group,
        update: update_row(row, GROUP_COLUMN_COUNT)?,
    })
}

/// What a channel serves: its newest served group decides (one rollout at a time). Read in
/// one snapshot, so that a change committed meanwhile is seen whole or not at all.
pub(super) async fn release(client: &mut Object, key: &ChannelKey) -> StoreResult<ReleaseRecord> {
    let select = format!(
        "SELECT {GROUP_COLUMNS}, {} FROM groups g JOIN updates u ON u.group_seq = g.seq \
         LEFT JOIN standbys s ON s.update_id = u.id",
        update_columns(true)
    );
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let newest = tx
        .query_opt(
            &format!(
                "{select} WHERE g.project_ref = $1 AND g.runtime_version = $2 AND u.platform = $3 \
                 AND g.state != 'withdrawn' ORDER BY g.seq DESC LIMIT 1"
            ),
            &[
                &key.project_ref,
                &key.runtime_version,
                &key.platform.as_str(),
            ],
        )
        .await?;
    let Some(newest) = newest else {
        return Ok(ReleaseRecord::default());
    };
    let newest = served_row(&newest)?;
    if newest.group.state == GroupState::Full {
        return Ok(ReleaseRecord {
            base: Some(newest),
            ..ReleaseRecord::default()
        });
    }
    let base = match &newest.update.control_update_id {
        Some(control) => {
            let row = tx
                .query_opt(&format!("{select} WHERE u.id = $1"), &[control])
                .await?
                .ok_or_else(|| {
                    StoreError::backend(format!(
                        "update {} names control {control}, which is not stored",
                        newest.update.id
                    ))
                })?;
            Some(served_row(&row)?)
        }
        None => None,
    };
    // Standbys of earlier reverted rollouts over the same base carry its code.
    let aliases = tx
        .query(
            "SELECT s.id FROM standbys s JOIN updates u ON u.id = s.update_id JOIN groups g ON g.seq = u.group_seq \
             WHERE g.project_ref = $1 AND g.runtime_version = $2 AND u.platform = $3 AND g.state = 'reverted' \
             AND u.control_update_id IS NOT DISTINCT FROM $4 AND u.id != $5 ORDER BY g.seq",
            &[
                &key.project_ref,
                &key.runtime_version,
                &key.platform.as_str(),
                &newest.update.control_update_id,
                &newest.update.id,
            ],
        )
        .await?;
    Ok(ReleaseRecord {
        base,
        rollout: Some(newest),
        base_aliases: rows(&aliases, |row| Ok(row.try_get(0)?))?,
    })
}

/// The platforms of a group's updates.
async fn group_platforms(
    tx: &impl GenericClient,
    project_ref: &str,
    group_id: &str,
) -> StoreResult<(String, Vec<Platform>)> {
    let found = tx
        .query(
            "SELECT g.runtime_version, u.platform FROM groups g JOIN updates u ON u.group_seq = g.seq \
             WHERE g.project_ref = $1 AND g.id = $2",
            &[&project_ref, &group_id],
        )
        .await?;
    let mut runtime_version = String::new();
    let mut platforms = Vec::new();
    for row in &found {
        runtime_version = row.try_get(0)?;
        platforms.push(platform(&row.try_get::<_, String>(1)?)?);
    }
    Ok((runtime_version, platforms))
}

/// Ends a rollout change that updated `changed` group rows: none means the group has no
/// rollout in progress; else its channels' change is recorded and the transaction commits.
async fn rollout_changed(
    tx: deadpool_postgres::Transaction<'_>,
    project_ref: &str,
    group_id: &str,
    changed: u64,
) -> StoreResult<()> {
    if changed == 0 {
        return Err(StoreError::NoRollout {
            group_id: group_id.to_owned(),
        });
    }
    let (runtime_version, platforms) = group_platforms(&tx, project_ref, group_id).await?;
    channels_changed(&tx, project_ref, &runtime_version, platforms).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a rollout's percentage (100 completes it).
pub(super) async fn set_rollout(
    client: &mut Object,
    project_ref: &str,
    group_id: &str,
    percentage: u8,
    at: Timestamp,
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    lock_project(&tx, project_ref).await?;
    let changed = tx
        .execute(
            "UPDATE groups SET rollout_percentage = $3, percentage_since = $4, \
             state = CASE WHEN $3 >= 100 THEN 'full' ELSE state END \
             WHERE project_ref = $1 AND id = $2 AND state = 'rollout'",
            &[
                &project_ref,
                &group_id,
                &i32::from(percentage),
                &at.unix_millis(),
            ],
        )
        .await?;
    rollout_changed(tx, project_ref, group_id, changed).await
}

/// Marks a rollout reverted.
pub(super) async fn revert(
    client: &mut Object,
    project_ref: &str,
    group_id: &str,
    revert: &RevertRecord,
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    lock_project(&tx, project_ref).await?;
    let changed = tx
        .execute(
            "UPDATE groups SET state = 'reverted', reverted_at = $3, reverted_by = $4, revert_reason = $5 \
             WHERE project_ref = $1 AND id = $2 AND state = 'rollout'",
            &[
                &project_ref,
                &group_id,
                &revert.at.unix_millis(),
                &revert.by,
                &revert.reason,
            ],
        )
        .await?;
    rollout_changed(tx, project_ref, group_id, changed).await
}

fn health_row(row: &Row) -> StoreResult<HealthRecord> {
    Ok(HealthRecord {
        update_id: row.try_get(0)?,
        served: row.try_get(1)?,
        running: row.try_get(2)?,
        failed: row.try_get(3)?,
    })
}

/// The stored sketches of some updates.
pub(super) async fn health(
    client: &impl GenericClient,
    ids: &[String],
) -> StoreResult<Vec<HealthRecord>> {
    let found = client
        .query(
            "SELECT update_id, served, running, failed FROM update_health WHERE update_id = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut found = rows(&found, health_row)?;
    found.sort_by_key(|record| ids.iter().position(|id| *id == record.update_id));
    Ok(found)
}

/// Merges sketches into the stored ones, in one transaction (each row locked while it is
/// merged, so two replicas' merges both count), and returns the results.
pub(super) async fn merge_health(
    client: &mut Object,
    records: &[HealthRecord],
) -> StoreResult<Vec<HealthRecord>> {
    let tx = client.transaction().await?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let inserted = tx
            .execute(
                "INSERT INTO update_health (update_id, served, running, failed) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (update_id) DO NOTHING",
                &[&record.update_id, &record.served, &record.running, &record.failed],
            )
            .await?;
        if inserted > 0 {
            out.push(record.clone());
            continue;
        }
        let stored = tx
            .query_one(
                "SELECT update_id, served, running, failed FROM update_health WHERE update_id = $1 FOR UPDATE",
                &[&record.update_id],
            )
            .await?;
        let record = record.merged_into(&health_row(&stored)?)?;
        tx.execute(
            "UPDATE update_health SET served = $2, running = $3, failed = $4 WHERE update_id = $1",
            &[
                &record.update_id,
                &record.served,
                &record.running,
                &record.failed,
            ],
        )
        .await?;
        out.push(record);
    }
    tx.commit().await?;
    Ok(out)
}

/// Every (project, platform, runtime version) with at least one update.
pub(super) async fn channels(client: &impl GenericClient) -> StoreResult<Vec<ChannelKey>> {
    let found = client
        .query(
            "SELECT DISTINCT g.project_ref, u.platform, g.runtime_version FROM groups g JOIN updates u ON u.group_seq = g.seq",
            &[],
        )
        .await?;
    rows(&found, |row| {
        Ok(ChannelKey {
            project_ref: row.try_get(0)?,
            platform: platform(&row.try_get::<_, String>(1)?)?,
            runtime_version: row.try_get(2)?,
        })
    })
}
