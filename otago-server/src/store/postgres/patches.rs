//! Launch assets, embedded bundles and bundle patches in PostgreSQL.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::{changes, platform, rows, to_i64, to_u64, ts};
use crate::store::{Change, ChannelKey, LaunchAssetRecord, PatchRecord, StoreError, StoreResult};

/// The launch asset's hash in a manifest's bytes as published (the server checked them then).
const LAUNCH_HASH: &str = "(convert_from(body, 'UTF8')::jsonb -> 'launchAsset' ->> 'hash')";

fn all_launch_assets_query() -> String {
    let update_hash = LAUNCH_HASH.replace("body", "u.body");
    let standby_hash = LAUNCH_HASH.replace("body", "s.body");
    format!(
        "SELECT id, project_ref, platform, runtime_version, asset_hash, created_at, embedded FROM ( \
           SELECT u.id AS id, g.project_ref AS project_ref, u.platform AS platform, \
                  g.runtime_version AS runtime_version, {update_hash} AS asset_hash, \
                  u.created_at AS created_at, FALSE AS embedded \
           FROM updates u JOIN groups g ON u.group_seq = g.seq WHERE g.kind = 'update' \
           UNION ALL \
           SELECT s.id, g.project_ref, u.platform, g.runtime_version, {standby_hash}, s.created_at, FALSE \
           FROM standbys s JOIN updates u ON s.update_id = u.id JOIN groups g ON u.group_seq = g.seq \
           WHERE s.kind = 'update' \
           UNION ALL \
           SELECT update_id, project_ref, platform, runtime_version, asset_hash, created_at, TRUE \
           FROM embedded_bundles \
         ) AS launch WHERE asset_hash IS NOT NULL"
    )
}

/// One channel: its newest updates are picked by id and time first, so only their bodies are
/// read and parsed, however long the channel's history.
fn recent_launch_assets_query() -> String {
    let update_hash = LAUNCH_HASH.replace("body", "u.body");
    let standby_hash = LAUNCH_HASH.replace("body", "s.body");
    format!(
        "WITH newest AS ( \
           SELECT u.id AS id FROM updates u JOIN groups g ON u.group_seq = g.seq \
           WHERE g.kind = 'update' AND g.project_ref = $1 AND u.platform = $2 AND g.runtime_version = $3 \
           ORDER BY u.created_at DESC, u.id LIMIT $4 \
         ) \
         SELECT id, asset_hash, created_at, embedded FROM ( \
           SELECT u.id AS id, {update_hash} AS asset_hash, u.created_at AS created_at, FALSE AS embedded \
           FROM newest n JOIN updates u ON u.id = n.id \
           UNION ALL \
           SELECT s.id, {standby_hash}, s.created_at, FALSE \
           FROM newest n JOIN standbys s ON s.update_id = n.id WHERE s.kind = 'update' \
           UNION ALL \
           SELECT update_id, asset_hash, created_at, TRUE FROM embedded_bundles \
           WHERE project_ref = $1 AND platform = $2 AND runtime_version = $3 \
         ) AS launch WHERE asset_hash IS NOT NULL ORDER BY embedded, created_at DESC, id"
    )
}

fn launch_row(row: &Row) -> StoreResult<LaunchAssetRecord> {
    Ok(LaunchAssetRecord {
        update_id: row.try_get(0)?,
        channel: ChannelKey {
            project_ref: row.try_get(1)?,
            platform: platform(&row.try_get::<_, String>(2)?)?,
            runtime_version: row.try_get(3)?,
        },
        asset_hash: row.try_get(4)?,
        created_at: ts(row.try_get(5)?)?,
        embedded: row.try_get(6)?,
    })
}

pub(super) async fn all_launch_assets(
    client: &impl GenericClient,
) -> StoreResult<Vec<LaunchAssetRecord>> {
    let found = client.query(&all_launch_assets_query(), &[]).await?;
    rows(&found, launch_row)
}

pub(super) async fn recent_launch_assets(
    client: &impl GenericClient,
    channel: &ChannelKey,
    newest: u32,
) -> StoreResult<Vec<LaunchAssetRecord>> {
    let found = client
        .query(
            &recent_launch_assets_query(),
            &[
                &channel.project_ref,
                &channel.platform.as_str(),
                &channel.runtime_version,
                &i64::from(newest),
            ],
        )
        .await?;
    rows(&found, |row| {
        Ok(LaunchAssetRecord {
            update_id: row.try_get(0)?,
            channel: channel.clone(),
            asset_hash: row.try_get(1)?,
            created_at: ts(row.try_get(2)?)?,
            embedded: row.try_get(3)?,
        })
    })
}

pub(super) async fn embedded(
    client: &impl GenericClient,
    project_ref: &str,
) -> StoreResult<Vec<LaunchAssetRecord>> {
    let found = client
        .query(
            "SELECT update_id, project_ref, platform, runtime_version, asset_hash, created_at, TRUE \
             FROM embedded_bundles WHERE project_ref = $1 ORDER BY created_at DESC, update_id",
            &[&project_ref],
        )
        .await?;
    rows(&found, launch_row)
}

pub(super) async fn add_embedded(
    client: &mut Object,
    bundle: &LaunchAssetRecord,
) -> StoreResult<bool> {
    let tx = client.transaction().await?;
    // Registrations of one id wait for each other, so the check below cannot race.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))",
        &[&bundle.update_id],
    )
    .await?;
    let existing = tx
        .query_opt(
            "SELECT project_ref, platform, runtime_version, asset_hash FROM embedded_bundles WHERE update_id = $1",
            &[&bundle.update_id],
        )
        .await?;
    let channel = &bundle.channel;
    if let Some(row) = existing {
        let existing: (String, String, String, String) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
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
    let used = tx
        .query_opt(
            "SELECT 1 FROM used_update_ids WHERE id = $1",
            &[&bundle.update_id],
        )
        .await?
        .is_some();
    if used {
        return Err(StoreError::EmbeddedIdPublished {
            update_id: bundle.update_id.clone(),
        });
    }
    tx.execute(
        "INSERT INTO embedded_bundles (update_id, project_ref, platform, runtime_version, asset_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &bundle.update_id,
            &channel.project_ref,
            &channel.platform.as_str(),
            &channel.runtime_version,
            &bundle.asset_hash,
            &bundle.created_at.unix_millis(),
        ],
    )
    .await?;
    changes::record(&tx, &Change::Patches).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn patches(client: &impl GenericClient) -> StoreResult<Vec<PatchRecord>> {
    let found = client
        .query(
            "SELECT base_hash, target_hash, patch_hash, patch_size, created_at FROM patches",
            &[],
        )
        .await?;
    rows(&found, |row| {
        let hash: Option<String> = row.try_get(2)?;
        let size: Option<i64> = row.try_get(3)?;
        Ok(PatchRecord {
            base_hash: row.try_get(0)?,
            target_hash: row.try_get(1)?,
            patch: hash.zip(size.map(to_u64)),
            created_at: ts(row.try_get(4)?)?,
        })
    })
}

pub(super) async fn add_patch(client: &mut Object, patch: &PatchRecord) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO patches (base_hash, target_hash, patch_hash, patch_size, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (base_hash, target_hash) DO UPDATE SET \
         patch_hash = excluded.patch_hash, patch_size = excluded.patch_size, created_at = excluded.created_at",
        &[
            &patch.base_hash,
            &patch.target_hash,
            &patch.patch.as_ref().map(|(hash, _)| hash.as_str()),
            &patch.patch.as_ref().map(|(_, size)| to_i64(*size)),
            &patch.created_at.unix_millis(),
        ],
    )
    .await?;
    changes::record(&tx, &Change::Patches).await?;
    tx.commit().await?;
    Ok(())
}
