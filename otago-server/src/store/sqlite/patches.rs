//! Launch assets, embedded bundles and bundle patches in SQLite.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{platform, to_i64, to_u64, ts};
use crate::store::{ChannelKey, LaunchAssetRecord, PatchRecord, StoreError, StoreResult};

/// Updates and standbys read their launch asset from the manifest bytes as published (the
/// server checked them then); directives have none.
const ALL_LAUNCH_ASSETS: &str = "\
SELECT id, project_ref, platform, runtime_version, asset_hash, created_at, embedded FROM ( \
  SELECT u.id AS id, g.project_ref AS project_ref, u.platform AS platform, \
         g.runtime_version AS runtime_version, \
         json_extract(CAST(u.body AS TEXT), '$.launchAsset.hash') AS asset_hash, \
         u.created_at AS created_at, 0 AS embedded \
  FROM updates u JOIN groups g ON u.group_seq = g.seq WHERE g.kind = 'update' \
  UNION ALL \
  SELECT s.id, g.project_ref, u.platform, g.runtime_version, \
         json_extract(CAST(s.body AS TEXT), '$.launchAsset.hash'), s.created_at, 0 \
  FROM standbys s JOIN updates u ON s.update_id = u.id JOIN groups g ON u.group_seq = g.seq \
  WHERE s.kind = 'update' \
  UNION ALL \
  SELECT update_id, project_ref, platform, runtime_version, asset_hash, created_at, 1 \
  FROM embedded_bundles \
) WHERE asset_hash IS NOT NULL";

/// One channel: its newest updates are picked by id and time first, so only their bodies are
/// read and parsed, however long the channel's history.
const RECENT_LAUNCH_ASSETS: &str = "\
WITH newest AS ( \
  SELECT u.id AS id FROM updates u JOIN groups g ON u.group_seq = g.seq \
  WHERE g.kind = 'update' AND g.project_ref = ?1 AND u.platform = ?2 AND g.runtime_version = ?3 \
  ORDER BY u.created_at DESC, u.id LIMIT ?4 \
) \
SELECT id, asset_hash, created_at, embedded FROM ( \
  SELECT u.id AS id, json_extract(CAST(u.body AS TEXT), '$.launchAsset.hash') AS asset_hash, \
         u.created_at AS created_at, 0 AS embedded \
  FROM newest n JOIN updates u ON u.id = n.id \
  UNION ALL \
  SELECT s.id, json_extract(CAST(s.body AS TEXT), '$.launchAsset.hash'), s.created_at, 0 \
  FROM newest n JOIN standbys s ON s.update_id = n.id WHERE s.kind = 'update' \
  UNION ALL \
  SELECT update_id, asset_hash, created_at, 1 FROM embedded_bundles \
  WHERE project_ref = ?1 AND platform = ?2 AND runtime_version = ?3 \
) WHERE asset_hash IS NOT NULL ORDER BY embedded, created_at DESC, id";

pub(super) fn all_launch_assets(conn: &mut Connection) -> StoreResult<Vec<LaunchAssetRecord>> {
    let mut statement = conn.prepare(ALL_LAUNCH_ASSETS)?;
    let rows = statement.query_map([], |row| {
        Ok(LaunchAssetRecord {
            update_id: row.get(0)?,
            channel: ChannelKey {
                project_ref: row.get(1)?,
                platform: platform(&row.get::<_, String>(2)?)?,
                runtime_version: row.get(3)?,
            },
            asset_hash: row.get(4)?,
            created_at: ts(row.get(5)?)?,
            embedded: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn recent_launch_assets(
    conn: &mut Connection,
    channel: &ChannelKey,
    newest: u32,
) -> StoreResult<Vec<LaunchAssetRecord>> {
    let mut statement = conn.prepare_cached(RECENT_LAUNCH_ASSETS)?;
    let rows = statement.query_map(
        params![
            channel.project_ref,
            channel.platform.as_str(),
            channel.runtime_version,
            newest,
        ],
        |row| {
            Ok(LaunchAssetRecord {
                update_id: row.get(0)?,
                channel: channel.clone(),
                asset_hash: row.get(1)?,
                created_at: ts(row.get(2)?)?,
                embedded: row.get(3)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn embedded(
    conn: &mut Connection,
    project_ref: &str,
) -> StoreResult<Vec<LaunchAssetRecord>> {
    let mut statement = conn.prepare(
        "SELECT update_id, project_ref, platform, runtime_version, asset_hash, created_at \
         FROM embedded_bundles WHERE project_ref = ?1 ORDER BY created_at DESC, update_id",
    )?;
    let rows = statement.query_map([project_ref], |row| {
        Ok(LaunchAssetRecord {
            update_id: row.get(0)?,
            channel: ChannelKey {
                project_ref: row.get(1)?,
                platform: platform(&row.get::<_, String>(2)?)?,
                runtime_version: row.get(3)?,
            },
            asset_hash: row.get(4)?,
            created_at: ts(row.get(5)?)?,
            embedded: true,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn add_embedded(conn: &mut Connection, bundle: &LaunchAssetRecord) -> StoreResult<bool> {
    let tx = conn.transaction()?;
    let existing: Option<(String, String, String, String)> = tx
        .query_row(
            "SELECT project_ref, platform, runtime_version, asset_hash FROM embedded_bundles WHERE update_id = ?1",
            [&bundle.update_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let channel = &bundle.channel;
    if let Some(existing) = existing {
        let same = (
            channel.project_ref.clone(),
            channel.platform.as_str().to_owned(),
            channel.runtime_version.clone(),
            bundle.asset_hash.clone(),
        );
        if existing == same {
            return Ok(false);
        }
        return Err(StoreError::EmbeddedIdTaken {
            update_id: bundle.update_id.clone(),
        });
    }
    let used: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM used_update_ids WHERE id = ?1)",
        [&bundle.update_id],
        |row| row.get(0),
    )?;
    if used {
        return Err(StoreError::EmbeddedIdPublished {
            update_id: bundle.update_id.clone(),
        });
    }
    tx.execute(
        "INSERT INTO embedded_bundles (update_id, project_ref, platform, runtime_version, asset_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            bundle.update_id,
            channel.project_ref,
            channel.platform.as_str(),
            channel.runtime_version,
            bundle.asset_hash,
            bundle.created_at.unix_millis(),
        ],
    )?;
    tx.commit()?;
    Ok(true)
}

pub(super) fn patches(conn: &mut Connection) -> StoreResult<Vec<PatchRecord>> {
    let mut statement = conn.prepare(
        "SELECT base_hash, target_hash, patch_hash, patch_size, created_at FROM patches",
    )?;
    let rows = statement.query_map([], |row| {
        let hash: Option<String> = row.get(2)?;
        let size: Option<i64> = row.get(3)?;
        Ok(PatchRecord {
            base_hash: row.get(0)?,
            target_hash: row.get(1)?,
            patch: hash.zip(size.map(to_u64)),
            created_at: ts(row.get(4)?)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn add_patch(conn: &mut Connection, patch: &PatchRecord) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO patches (base_hash, target_hash, patch_hash, patch_size, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            patch.base_hash,
            patch.target_hash,
            patch.patch.as_ref().map(|(hash, _)| hash.as_str()),
            patch.patch.as_ref().map(|(_, size)| to_i64(*size)),
            patch.created_at.unix_millis(),
        ],
    )?;
    Ok(())
}
