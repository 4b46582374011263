//! Groups, updates, served history and adoption counts in SQLite.

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::{is_unique_violation, platform, to_i64, to_u64, ts};
use crate::error::Problem;
use crate::store::{
    AdoptionCount, ChannelKey, GroupFilter, GroupKind, GroupRecord, HistoryEntry, StoreError,
    StoreResult, UpdateRecord,
};

/// How far back the served history of a channel is read: enough for stacked partial rollouts.
const HISTORY_LIMIT: u32 = 64;

fn kind(text: &str) -> rusqlite::Result<GroupKind> {
    GroupKind::parse(text).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, text.to_owned(), rusqlite::types::Type::Text)
    })
}

/// Writes a group, its updates and their asset links in one transaction.
pub(super) fn publish(conn: &mut Connection, group: &GroupRecord) -> StoreResult<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO groups (id, project_ref, runtime_version, message, created_at, rollout_percentage, reverted, kind) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
        params![
            group.id,
            group.project_ref,
            group.runtime_version,
            group.message,
            group.created_at.unix_millis(),
            group.rollout_percentage,
            group.kind.as_str()
        ],
    )?;
    let seq = tx.last_insert_rowid();
    for update in &group.updates {
        if let Err(err) = tx.execute("INSERT INTO used_update_ids (id) VALUES (?1)", [&update.id]) {
            return Err(if is_unique_violation(&err) {
                StoreError::Conflict(Problem::new(
                    "update_id_reused",
                    format!("update id {} was published before", update.id),
                    "build the manifest again: every publish needs a new id",
                ))
            } else {
                err.into()
            });
        }
        tx.execute(
            "INSERT INTO updates (id, group_seq, platform, created_at, size, signature, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                update.id,
                seq,
                update.platform.as_str(),
                update.created_at.unix_millis(),
                to_i64(update.size),
                update.signature,
                update.body.as_deref().unwrap_or_default()
            ],
        )?;
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

const GROUP_COLUMNS: &str = "seq, id, project_ref, runtime_version, message, created_at, rollout_percentage, reverted, kind";

fn group_row(row: &Row<'_>) -> rusqlite::Result<(i64, GroupRecord)> {
    Ok((
        row.get(0)?,
        GroupRecord {
            id: row.get(1)?,
            project_ref: row.get(2)?,
            runtime_version: row.get(3)?,
            message: row.get(4)?,
            created_at: ts(row.get(5)?)?,
            rollout_percentage: row.get(6)?,
            reverted: row.get(7)?,
            kind: kind(&row.get::<_, String>(8)?)?,
            updates: Vec::new(),
        },
    ))
}

fn update_row(row: &Row<'_>, with_body: bool) -> rusqlite::Result<UpdateRecord> {
    Ok(UpdateRecord {
        id: row.get(0)?,
        platform: platform(&row.get::<_, String>(1)?)?,
        created_at: ts(row.get(2)?)?,
        size: to_u64(row.get(3)?),
        signature: row.get(4)?,
        body: if with_body {
            Some(Bytes::from(row.get::<_, Vec<u8>>(5)?))
        } else {
            None
        },
        asset_hashes: Vec::new(),
    })
}

fn load_updates(
    conn: &Connection,
    seq: i64,
    with_body: bool,
) -> rusqlite::Result<Vec<UpdateRecord>> {
    let body = if with_body { "body" } else { "NULL" };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT id, platform, created_at, size, signature, {body} FROM updates WHERE group_seq = ?1 ORDER BY platform DESC"
    ))?;
    statement
        .query_map([seq], |row| update_row(row, with_body))?
        .collect()
}

/// Groups of a project, newest first.
pub(super) fn list(
    conn: &mut Connection,
    project_ref: &str,
    filter: &GroupFilter,
) -> StoreResult<Vec<GroupRecord>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE project_ref = ?1 \
         AND (?2 IS NULL OR runtime_version = ?2) \
         AND (?3 IS NULL OR EXISTS (SELECT 1 FROM updates u WHERE u.group_seq = g.seq AND u.platform = ?3)) \
         ORDER BY seq DESC LIMIT ?4"
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
            &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE project_ref = ?1 AND id = ?2"),
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

/// The served history of a channel, newest first, down to and including the newest at 100%.
pub(super) fn history(conn: &mut Connection, key: &ChannelKey) -> StoreResult<Vec<HistoryEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT u.id, u.platform, u.created_at, u.size, u.signature, u.body, g.id, g.rollout_percentage, g.kind \
         FROM groups g JOIN updates u ON u.group_seq = g.seq \
         WHERE g.project_ref = ?1 AND g.runtime_version = ?2 AND u.platform = ?3 AND g.reverted = 0 \
         ORDER BY g.seq DESC LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![
            key.project_ref,
            key.runtime_version,
            key.platform.as_str(),
            HISTORY_LIMIT
        ],
        |row| {
            Ok(HistoryEntry {
                update: update_row(row, true)?,
                group_id: row.get(6)?,
                rollout_percentage: row.get(7)?,
                kind: kind(&row.get::<_, String>(8)?)?,
            })
        },
    )?;
    let mut entries = Vec::new();
    for row in rows {
        let entry = row?;
        let complete = entry.rollout_percentage >= 100;
        entries.push(entry);
        if complete {
            break;
        }
    }
    Ok(entries)
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
                count.runtime_version,
                count.current_update_id,
                to_i64(count.count)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A project's counts since an instant.
pub(super) fn adoption(
    conn: &mut Connection,
    project_ref: &str,
    since_ms: i64,
) -> StoreResult<Vec<AdoptionCount>> {
    let mut statement = conn.prepare(
        "SELECT project_ref, hour_start_ms, platform, runtime_version, current_update_id, count FROM adoption \
         WHERE project_ref = ?1 AND hour_start_ms >= ?2 ORDER BY hour_start_ms, platform, runtime_version, current_update_id",
    )?;
    let rows = statement.query_map(params![project_ref, since_ms], |row| {
        Ok(AdoptionCount {
            project_ref: row.get(0)?,
            hour_start_ms: row.get(1)?,
            platform: platform(&row.get::<_, String>(2)?)?,
            runtime_version: row.get(3)?,
            current_update_id: row.get(4)?,
            count: to_u64(row.get(5)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
