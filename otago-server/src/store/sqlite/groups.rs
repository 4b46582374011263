//! Groups, updates and served history in SQLite.

use bytes::Bytes;
use otago_core::Platform;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::{is_unique_violation, platform, to_i64, to_u64, ts};
use crate::store::{
    ChannelKey, GateRecord, GroupFilter, GroupKind, GroupRecord, GroupState, HealthRecord,
    RampRecord, ReleaseRecord, RevertRecord, ServedUpdate, StandbyRecord, StoreError, StoreResult,
    UpdateRecord,
};

fn kind(text: &str) -> rusqlite::Result<GroupKind> {
    GroupKind::parse(text).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, text.to_owned(), rusqlite::types::Type::Text)
    })
}

fn state(text: &str) -> rusqlite::Result<GroupState> {
    GroupState::parse(text).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, text.to_owned(), rusqlite::types::Type::Text)
    })
}

fn reused(id: &str) -> StoreError {
    StoreError::UpdateIdReused { id: id.to_owned() }
}

/// The id of a channel's newest served update (a rollout's target, reverted or not).
fn newest_update_id(
    conn: &Connection,
    project_ref: &str,
    runtime_version: &str,
    platform: Platform,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT u.id FROM groups g JOIN updates u ON u.group_seq = g.seq \
         WHERE g.project_ref = ?1 AND g.runtime_version = ?2 AND u.platform = ?3 \
         AND g.state != 'withdrawn' ORDER BY g.seq DESC LIMIT 1",
    )?
    .query_row(
        params![project_ref, runtime_version, platform.as_str()],
        |row| row.get(0),
    )
    .optional()
}

/// Writes a group, its updates, their standbys and asset links in one transaction, if every
/// channel's newest update is still the one it was built on.
pub(super) fn publish(
    conn: &mut Connection,
    group: &GroupRecord,
    built_on: &[(Platform, Option<String>)],
) -> StoreResult<()> {
    let tx = conn.transaction()?;
    for (platform, expected) in built_on {
        let newest = newest_update_id(&tx, &group.project_ref, &group.runtime_version, *platform)?;
        if newest != *expected {
            return Err(StoreError::ChannelMoved {
                channel: format!("{}/{platform}/{}", group.project_ref, group.runtime_version),
            });
        }
    }
    tx.execute(
        "INSERT INTO groups (id, project_ref, runtime_version, message, created_at, rollout_percentage, reverted, kind, \
         state, max_failure_percent, min_devices, ramp_steps, ramp_every_ms, percentage_since) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            group.id,
            group.project_ref,
            group.runtime_version,
            group.message,
            group.created_at.unix_millis(),
            group.rollout_percentage,
            group.kind.as_str(),
            group.state.as_str(),
            group.gate.map(|g| g.max_failure_percent),
            to_i64(group.gate.map_or(20, |g| g.min_devices)),
            group.ramp.as_ref().map(|r| r.steps.clone()),
            group.ramp.as_ref().map(|r| to_i64(r.every_ms)),
            group.percentage_since.unix_millis(),
        ],
    )?;
    let seq = tx.last_insert_rowid();
    for update in &group.updates {
        let ids = std::iter::once(&update.id).chain(update.standby.iter().map(|s| &s.id));
        for id in ids {
            if let Err(err) = tx.execute("INSERT INTO used_update_ids (id) VALUES (?1)", [id]) {
                return Err(if is_unique_violation(&err) {
                    reused(id)
                } else {
                    err.into()
                });
            }
        }
        tx.execute(
            "INSERT INTO updates (id, group_seq, platform, created_at, size, signature, body, control_update_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                update.id,
                seq,
                update.platform.as_str(),
                update.created_at.unix_millis(),
                to_i64(update.size),
                update.signature,
                update.body.as_deref().unwrap_or_default(),
                update.control_update_id,
            ],
        )?;
        if let Some(standby) = &update.standby {
            tx.execute(
                "INSERT INTO standbys (id, update_id, kind, created_at, signature, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    standby.id,
                    update.id,
                    standby.kind.as_str(),
                    standby.created_at.unix_millis(),
                    standby.signature,
                    standby.body.as_deref().unwrap_or_default(),
                ],
            )?;
        }
        let mut link = tx.prepare_cached(
            "INSERT OR IGNORE INTO update_assets (update_id, asset_hash) VALUES (?1, ?2)",
        )?;
        for hash in &update.asset_hashes {
            link.execute(params![update.id, hash])?;
        }
    }
    tx.commit()?;
    Ok(())
}

const GROUP_COLUMNS: &str = "g.seq, g.id, g.project_ref, g.runtime_version, g.message, g.created_at, g.rollout_percentage, g.state, g.kind, \
     g.max_failure_percent, g.min_devices, g.ramp_steps, g.ramp_every_ms, g.percentage_since, g.reverted_at, g.reverted_by, g.revert_reason";

/// Columns of [`GROUP_COLUMNS`], so that queries joining more columns know where theirs start.
const GROUP_COLUMN_COUNT: usize = 17;

fn group_row(row: &Row<'_>) -> rusqlite::Result<(i64, GroupRecord)> {
    let created_at = ts(row.get(5)?)?;
    let gate = row
        .get::<_, Option<f64>>(9)?
        .map(|max_failure_percent| -> rusqlite::Result<GateRecord> {
            Ok(GateRecord {
                max_failure_percent,
                min_devices: to_u64(row.get(10)?),
            })
        })
        .transpose()?;
    let ramp = match (
        row.get::<_, Option<String>>(11)?,
        row.get::<_, Option<i64>>(12)?,
    ) {
        (Some(steps), Some(every_ms)) => Some(RampRecord {
            steps,
            every_ms: to_u64(every_ms),
        }),
        _ => None,
    };
    let revert = match row.get::<_, Option<i64>>(14)? {
        Some(at) => Some(RevertRecord {
            at: ts(at)?,
            by: row.get::<_, Option<String>>(15)?.unwrap_or_default(),
            reason: row.get(16)?,
        }),
        None => None,
    };
    Ok((
        row.get(0)?,
        GroupRecord {
            id: row.get(1)?,
            project_ref: row.get(2)?,
            runtime_version: row.get(3)?,
            message: row.get(4)?,
            created_at,
            rollout_percentage: row.get(6)?,
            state: state(&row.get::<_, String>(7)?)?,
            kind: kind(&row.get::<_, String>(8)?)?,
            gate,
            ramp,
            percentage_since: row
                .get::<_, Option<i64>>(13)?
                .map(ts)
                .transpose()?
                .unwrap_or(created_at),
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
        ("NULL", "NULL")
    };
    format!(
        "u.id, u.platform, u.created_at, u.size, u.signature, {body}, u.control_update_id, \
         s.id, s.kind, s.created_at, s.signature, {standby_body}"
    )
}

/// An update from [`update_columns`], starting at column `at`.
fn update_row(row: &Row<'_>, at: usize) -> rusqlite::Result<UpdateRecord> {
    let body = |index: usize| -> rusqlite::Result<Option<Bytes>> {
        Ok(row.get::<_, Option<Vec<u8>>>(index)?.map(Bytes::from))
    };
    let standby = match row.get::<_, Option<String>>(at + 7)? {
        Some(id) => Some(StandbyRecord {
            id,
            kind: kind(&row.get::<_, String>(at + 8)?)?,
            created_at: ts(row.get(at + 9)?)?,
            signature: row.get(at + 10)?,
            body: body(at + 11)?,
        }),
        None => None,
    };
    Ok(UpdateRecord {
        id: row.get(at)?,
        platform: platform(&row.get::<_, String>(at + 1)?)?,
        created_at: ts(row.get(at + 2)?)?,
        size: to_u64(row.get(at + 3)?),
        signature: row.get(at + 4)?,
        body: body(at + 5)?,
        asset_hashes: Vec::new(),
        control_update_id: row.get(at + 6)?,
        standby,
    })
}

fn load_updates(
    conn: &Connection,
    seq: i64,
    with_body: bool,
) -> rusqlite::Result<Vec<UpdateRecord>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {} FROM updates u LEFT JOIN standbys s ON s.update_id = u.id WHERE u.group_seq = ?1 ORDER BY u.platform DESC",
        update_columns(with_body)
    ))?;
    statement
        .query_map([seq], |row| update_row(row, 0))?
        .collect()
}

/// Groups of a project, newest first.
pub(super) fn list(
    conn: &mut Connection,
    project_ref: &str,
    filter: &GroupFilter,
) -> StoreResult<Vec<GroupRecord>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.project_ref = ?1 \
         AND (?2 IS NULL OR g.runtime_version = ?2) \
         AND (?3 IS NULL OR EXISTS (SELECT 1 FROM updates u WHERE u.group_seq = g.seq AND u.platform = ?3)) \
         ORDER BY g.seq DESC LIMIT ?4"
    ))?;
    let rows: Vec<(i64, GroupRecord)> = statement
        .query_map(
            params![
                project_ref,
                filter.runtime_version,
                filter.platform.map(otago_core::Platform::as_str),
                filter.limit
            ],
            group_row,
        )?
        .collect::<Result<_, _>>()?;
    let mut groups = Vec::with_capacity(rows.len());
    for (seq, mut group) in rows {
        group.updates = load_updates(conn, seq, false)?;
        groups.push(group);
    }
    Ok(groups)
}

/// One group with bodies and signatures.
pub(super) fn get(
    conn: &mut Connection,
    project_ref: &str,
    group_id: &str,
) -> StoreResult<Option<GroupRecord>> {
    let row = conn
        .query_row(
            &format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.project_ref = ?1 AND g.id = ?2"),
            params![project_ref, group_id],
            group_row,
        )
        .optional()?;
    let Some((seq, mut group)) = row else {
        return Ok(None);
    };
    group.updates = load_updates(conn, seq, true)?;
    Ok(Some(group))
}

/// A served update and its group, from `groups g JOIN updates u LEFT JOIN standbys s`.
fn served_row(row: &Row<'_>) -> rusqlite::Result<ServedUpdate> {
    let (_, group) = group_row(row)?;
    Ok(ServedUpdate {
        group,
        update: update_row(row, GROUP_COLUMN_COUNT)?,
    })
}

/// What a channel serves: its newest served group decides (one rollout at a time).
pub(super) fn release(conn: &mut Connection, key: &ChannelKey) -> StoreResult<ReleaseRecord> {
    let select = format!(
        "SELECT {GROUP_COLUMNS}, {} FROM groups g JOIN updates u ON u.group_seq = g.seq \
         LEFT JOIN standbys s ON s.update_id = u.id",
        update_columns(true)
    );
    let newest = conn
        .prepare_cached(&format!(
            "{select} WHERE g.project_ref = ?1 AND g.runtime_version = ?2 AND u.platform = ?3 \
             AND g.state != 'withdrawn' ORDER BY g.seq DESC LIMIT 1"
        ))?
        .query_row(
            params![key.project_ref, key.runtime_version, key.platform.as_str()],
            served_row,
        )
        .optional()?;
    let Some(newest) = newest else {
        return Ok(ReleaseRecord::default());
    };
    if newest.group.state == GroupState::Full {
        return Ok(ReleaseRecord {
            base: Some(newest),
            ..ReleaseRecord::default()
        });
    }
    let base = match &newest.update.control_update_id {
        Some(control) => Some(
            conn.prepare_cached(&format!("{select} WHERE u.id = ?1"))?
                .query_row([control], served_row)
                .optional()?
                .ok_or_else(|| {
                    StoreError::backend(format!(
                        "update {} names control {control}, which is not stored",
                        newest.update.id
                    ))
                })?,
        ),
        None => None,
    };
    // Standbys of earlier reverted rollouts over the same base carry its code.
    let base_aliases = conn
        .prepare_cached(
            "SELECT s.id FROM standbys s JOIN updates u ON u.id = s.update_id JOIN groups g ON g.seq = u.group_seq \
             WHERE g.project_ref = ?1 AND g.runtime_version = ?2 AND u.platform = ?3 AND g.state = 'reverted' \
             AND u.control_update_id IS ?4 AND u.id != ?5 ORDER BY g.seq",
        )?
        .query_map(
            params![
                key.project_ref,
                key.runtime_version,
                key.platform.as_str(),
                newest.update.control_update_id,
                newest.update.id
            ],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    Ok(ReleaseRecord {
        base,
        rollout: Some(newest),
        base_aliases,
    })
}

/// Sets a rollout's percentage (100 completes it).
pub(super) fn set_rollout(
    conn: &mut Connection,
    project_ref: &str,
    group_id: &str,
    percentage: u8,
    at: i64,
) -> StoreResult<()> {
    let changed = conn.execute(
        "UPDATE groups SET rollout_percentage = ?3, percentage_since = ?4, \
         state = CASE WHEN ?3 >= 100 THEN 'full' ELSE state END \
         WHERE project_ref = ?1 AND id = ?2 AND state = 'rollout'",
        params![project_ref, group_id, percentage, at],
    )?;
    if changed == 0 {
        return Err(StoreError::NoRollout {
            group_id: group_id.to_owned(),
        });
    }
    Ok(())
}

/// Marks a rollout reverted.
pub(super) fn revert(
    conn: &mut Connection,
    project_ref: &str,
    group_id: &str,
    revert: &RevertRecord,
) -> StoreResult<()> {
    let changed = conn.execute(
        "UPDATE groups SET state = 'reverted', reverted = 1, reverted_at = ?3, reverted_by = ?4, revert_reason = ?5 \
         WHERE project_ref = ?1 AND id = ?2 AND state = 'rollout'",
        params![
            project_ref,
            group_id,
            revert.at.unix_millis(),
            revert.by,
            revert.reason
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::NoRollout {
            group_id: group_id.to_owned(),
        });
    }
    Ok(())
}

fn health_row(row: &Row<'_>) -> rusqlite::Result<HealthRecord> {
    Ok(HealthRecord {
        update_id: row.get(0)?,
        served: row.get(1)?,
        running: row.get(2)?,
        failed: row.get(3)?,
    })
}

/// The stored sketches of some updates.
pub(super) fn health(conn: &mut Connection, ids: &[String]) -> StoreResult<Vec<HealthRecord>> {
    let mut statement = conn.prepare_cached(
        "SELECT update_id, served, running, failed FROM update_health WHERE update_id = ?1",
    )?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(record) = statement.query_row([id], health_row).optional()? {
            found.push(record);
        }
    }
    Ok(found)
}

/// Merges sketches into the stored ones, in one transaction, and returns the results.
pub(super) fn merge_health(
    conn: &mut Connection,
    records: &[HealthRecord],
) -> StoreResult<Vec<HealthRecord>> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let stored = tx
            .query_row(
                "SELECT update_id, served, running, failed FROM update_health WHERE update_id = ?1",
                [&record.update_id],
                health_row,
            )
            .optional()?;
        let record = match stored {
            Some(stored) => record.merged_into(&stored)?,
            None => record.clone(),
        };
        tx.execute(
            "INSERT INTO update_health (update_id, served, running, failed) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (update_id) DO UPDATE SET served = excluded.served, running = excluded.running, failed = excluded.failed",
            params![record.update_id, record.served, record.running, record.failed],
        )?;
        out.push(record);
    }
    tx.commit()?;
    Ok(out)
}

/// Every (project, platform, runtime version) with at least one update.
pub(super) fn channels(conn: &mut Connection) -> StoreResult<Vec<ChannelKey>> {
    let mut statement = conn.prepare(
        "SELECT DISTINCT g.project_ref, u.platform, g.runtime_version FROM groups g JOIN updates u ON u.group_seq = g.seq",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(ChannelKey {
            project_ref: row.get(0)?,
            platform: platform(&row.get::<_, String>(1)?)?,
            runtime_version: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
