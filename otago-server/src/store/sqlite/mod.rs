//! The embedded metadata store: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! publish that was answered survives a crash. One connection behind a mutex; every call runs
//! on a blocking thread.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use otago_core::{Platform, Timestamp};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::{
    AdoptionCount, AssetRecord, AuditRecord, ChannelKey, Encodings, GroupFilter, GroupRecord,
    HealthRecord, KeyRecord, KeyRole, LaunchAssetRecord, MetaStore, PatchRecord, ProjectPatch,
    ProjectRecord, ReleaseRecord, RevertRecord, RuntimeVersionDay, StoreError, StoreResult,
};

mod adoption;
mod groups;
mod patches;

/// Schema migrations, applied in order; `schema_version` holds how many ran.
const MIGRATIONS: [&str; 5] = [
    include_str!("schema_v1.sql"),
    include_str!("schema_keys_audit.sql"),
    include_str!("schema_releases.sql"),
    include_str!("schema_adoption.sql"),
    include_str!("schema_patches.sql"),
];

/// The SQLite metadata store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) conn: Arc<Mutex<Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match &err {
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull => {
                Self::Full(err.to_string())
            }
            _ => Self::backend(err),
        }
    }
}

pub(super) fn ts(millis: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_unix_millis(millis)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
}

pub(super) fn platform(text: &str) -> rusqlite::Result<Platform> {
    text.parse()
        .map_err(|err: otago_core::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating) `data_dir/otago.sqlite3` and brings its schema up to date.
    ///
    /// # Errors
    /// When the file cannot be opened, or it was written by a newer Otago.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_file(&data_dir.join("otago.sqlite3"))
    }

    /// Opens (creating) the database file `path` and brings its schema up to date.
    ///
    /// # Errors
    /// When the file cannot be opened, or it was written by a newer Otago.
    pub fn open_file(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut conn = conn;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(StoreError::backend)?
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: Option<i64> = conn
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?;
    let current = usize::try_from(current.unwrap_or(0)).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(StoreError::backend(format!(
            "the database has schema version {current}, newer than this server knows ({}); run a newer otago-server",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [to_i64(index as u64 + 1)],
        )?;
        tx.commit()?;
    }
    Ok(())
}

const PROJECT_COLUMNS: &str =
    "ref, app, environment, require_signing, certificate_pem, max_asset_bytes, created_at";

fn project_row(row: &Row<'_>) -> rusqlite::Result<ProjectRecord> {
    Ok(ProjectRecord {
        r#ref: row.get(0)?,
        app: row.get(1)?,
        environment: row.get(2)?,
        require_signing: row.get(3)?,
        certificate_pem: row.get(4)?,
        max_asset_bytes: to_u64(row.get(5)?),
        created_at: ts(row.get(6)?)?,
    })
}

const KEY_COLUMNS: &str =
    "id, project_ref, name, role, expires_at, created_at, last_used_at, revoked_at";

fn key_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let optional_ts = |value: Option<i64>| value.map(ts).transpose();
    let role: String = row.get(3)?;
    Ok(KeyRecord {
        id: row.get(0)?,
        project_ref: row.get(1)?,
        name: row.get(2)?,
        role: KeyRole::parse(&role).ok_or_else(|| {
            rusqlite::Error::ToSqlConversionFailure(format!("unknown key role `{role}`").into())
        })?,
        expires_at: optional_ts(row.get(4)?)?,
        created_at: ts(row.get(5)?)?,
        last_used_at: optional_ts(row.get(6)?)?,
        revoked_at: optional_ts(row.get(7)?)?,
    })
}

fn insert_audit(conn: &Connection, entry: &AuditRecord) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO audit_log (project_ref, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            entry.project_ref,
            entry.at.unix_millis(),
            entry.actor,
            entry.action,
            entry.detail.to_string()
        ],
    )?;
    Ok(())
}

fn audit_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let detail: String = row.get(5)?;
    Ok(AuditRecord {
        seq: row.get(0)?,
        project_ref: row.get(1)?,
        at: ts(row.get(2)?)?,
        actor: row.get(3)?,
        action: row.get(4)?,
        detail: serde_json::from_str(&detail)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?,
    })
}

const ASSET_COLUMNS: &str = "hash, key, size, content_type, encodings, created_at";

fn asset_row(row: &Row<'_>) -> rusqlite::Result<AssetRecord> {
    Ok(AssetRecord {
        hash: row.get(0)?,
        key: row.get(1)?,
        size: to_u64(row.get(2)?),
        content_type: row.get(3)?,
        encodings: row
            .get::<_, Option<String>>(4)?
            .as_deref()
            .map(Encodings::from_db),
        created_at: ts(row.get(5)?)?,
    })
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

#[async_trait]
impl MetaStore for SqliteStore {
    async fn admin_token_hash(&self) -> StoreResult<Option<[u8; 32]>> {
        self.call(|conn| {
            let value: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT value FROM settings WHERE name = ?1",
                    [ADMIN_TOKEN_SETTING],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(value.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()))
        })
        .await
    }

    async fn set_admin_token_hash(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![ADMIN_TOKEN_SETTING, hash.to_vec()],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_project(&self, project: ProjectRecord) -> StoreResult<()> {
        self.call(move |conn| {
            let inserted = conn.execute(
                &format!(
                    "INSERT INTO projects ({PROJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    project.r#ref,
                    project.app,
                    project.environment,
                    project.require_signing,
                    project.certificate_pem,
                    to_i64(project.max_asset_bytes),
                    project.created_at.unix_millis()
                ],
            );
            match inserted {
                Ok(_) => Ok(()),
                Err(err) if is_unique_violation(&err) => Err(StoreError::ProjectExists {
                    app: project.app,
                    environment: project.environment,
                }),
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    async fn projects(&self) -> StoreResult<Vec<ProjectRecord>> {
        self.call(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, ref"
            ))?;
            let rows = statement
                .query_map([], project_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn project(&self, project_ref: &str) -> StoreResult<Option<ProjectRecord>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ref = ?1"),
                    [project_ref],
                    project_row,
                )
                .optional()?)
        })
        .await
    }

    async fn update_project(
        &self,
        project_ref: &str,
        patch: ProjectPatch,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Option<ProjectRecord>> {
        let (project_ref, actor) = (project_ref.to_owned(), actor.to_owned());
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let select = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ref = ?1");
            let Some(before) = tx
                .query_row(&select, [&project_ref], project_row)
                .optional()?
            else {
                return Ok(None);
            };
            if let Some(require_signing) = patch.require_signing {
                tx.execute(
                    "UPDATE projects SET require_signing = ?2 WHERE ref = ?1",
                    params![project_ref, require_signing],
                )?;
            }
            if let Some(certificate_pem) = patch.certificate_pem {
                tx.execute(
                    "UPDATE projects SET certificate_pem = ?2 WHERE ref = ?1",
                    params![project_ref, certificate_pem],
                )?;
            }
            if let Some(max) = patch.max_asset_bytes {
                tx.execute(
                    "UPDATE projects SET max_asset_bytes = ?2 WHERE ref = ?1",
                    params![project_ref, to_i64(max)],
                )?;
            }
            let after = tx.query_row(&select, [&project_ref], project_row)?;
            if let Some(detail) = crate::audit::settings_changes(&before, &after) {
                let entry = AuditRecord {
                    seq: 0,
                    project_ref,
                    at,
                    actor,
                    action: crate::audit::SETTINGS_CHANGED.to_owned(),
                    detail,
                };
                insert_audit(&tx, &entry)?;
            }
            tx.commit()?;
            Ok(Some(after))
        })
        .await
    }

    async fn delete_project(&self, project_ref: &str) -> StoreResult<bool> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| {
            Ok(conn.execute("DELETE FROM projects WHERE ref = ?1", [project_ref])? > 0)
        })
        .await
    }

    async fn create_key(
        &self,
        key: KeyRecord,
        secret_hash: [u8; 32],
        audit: AuditRecord,
    ) -> StoreResult<()> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO api_keys (id, project_ref, name, role, expires_at, secret_sha256, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.id,
                    key.project_ref,
                    key.name,
                    key.role.as_str(),
                    key.expires_at.map(Timestamp::unix_millis),
                    secret_hash.to_vec(),
                    key.created_at.unix_millis()
                ],
            )?;
            insert_audit(&tx, &audit)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn keys(&self, project_ref: &str) -> StoreResult<Vec<KeyRecord>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE project_ref = ?1 ORDER BY created_at, id"
            ))?;
            let rows = statement
                .query_map([project_ref], key_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_key(&self, key_id: &str, audit: AuditRecord) -> StoreResult<bool> {
        let key_id = key_id.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM api_keys WHERE project_ref = ?1 AND id = ?2",
                    params![audit.project_ref, key_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            let revoked = tx.execute(
                "UPDATE api_keys SET revoked_at = ?3 WHERE project_ref = ?1 AND id = ?2 AND revoked_at IS NULL",
                params![audit.project_ref, key_id, audit.at.unix_millis()],
            )?;
            if revoked > 0 {
                insert_audit(&tx, &audit)?;
            }
            tx.commit()?;
            Ok(exists)
        })
        .await
    }

    async fn key_by_secret_hash(&self, secret_hash: [u8; 32]) -> StoreResult<Option<KeyRecord>> {
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = ?1"),
                    [secret_hash.to_vec()],
                    key_row,
                )
                .optional()?)
        })
        .await
    }

    async fn touch_keys(&self, uses: Vec<(String, Timestamp)>) -> StoreResult<()> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            for (id, at) in uses {
                tx.execute(
                    "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
                    params![id, at.unix_millis()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn assets(&self, hashes: &[String]) -> StoreResult<Vec<AssetRecord>> {
        let hashes = hashes.to_vec();
        self.call(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {ASSET_COLUMNS} FROM assets WHERE hash = ?1"
            ))?;
            let mut found = Vec::new();
            for hash in hashes {
                if let Some(asset) = statement.query_row([hash], asset_row).optional()? {
                    found.push(asset);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn insert_asset(&self, asset: AssetRecord) -> StoreResult<bool> {
        self.call(move |conn| {
            let inserted = conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO assets ({ASSET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    asset.hash,
                    asset.key,
                    to_i64(asset.size),
                    asset.content_type,
                    asset.encodings.map(Encodings::to_db),
                    asset.created_at.unix_millis()
                ],
            )?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn all_assets(&self) -> StoreResult<Vec<AssetRecord>> {
        self.call(|conn| {
            let mut statement =
                conn.prepare(&format!("SELECT {ASSET_COLUMNS} FROM assets ORDER BY hash"))?;
            let rows = statement
                .query_map([], asset_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_encodings(&self, hash: &str, encodings: Encodings) -> StoreResult<()> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            conn.execute(
                "UPDATE assets SET encodings = ?2 WHERE hash = ?1",
                params![hash, encodings.to_db()],
            )?;
            Ok(())
        })
        .await
    }

    async fn uncompressed_assets(&self) -> StoreResult<Vec<String>> {
        self.call(|conn| {
            let mut statement = conn
                .prepare("SELECT hash FROM assets WHERE encodings IS NULL ORDER BY created_at")?;
            let rows = statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn used_update_ids(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        let ids = ids.to_vec();
        self.call(move |conn| {
            let mut statement =
                conn.prepare_cached("SELECT 1 FROM used_update_ids WHERE id = ?1")?;
            let mut used = Vec::new();
            for id in ids {
                if statement.query_row([&id], |_| Ok(())).optional()?.is_some() {
                    used.push(id);
                }
            }
            Ok(used)
        })
        .await
    }

    async fn publish(
        &self,
        group: GroupRecord,
        built_on: Vec<(Platform, Option<String>)>,
    ) -> StoreResult<()> {
        self.call(move |conn| groups::publish(conn, &group, &built_on))
            .await
    }

    async fn groups(
        &self,
        project_ref: &str,
        filter: GroupFilter,
    ) -> StoreResult<Vec<GroupRecord>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| groups::list(conn, &project_ref, &filter))
            .await
    }

    async fn group(&self, project_ref: &str, group_id: &str) -> StoreResult<Option<GroupRecord>> {
        let (project_ref, group_id) = (project_ref.to_owned(), group_id.to_owned());
        self.call(move |conn| groups::get(conn, &project_ref, &group_id))
            .await
    }

    async fn set_rollout(
        &self,
        project_ref: &str,
        group_id: &str,
        percentage: u8,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (project_ref, group_id) = (project_ref.to_owned(), group_id.to_owned());
        self.call(move |conn| {
            groups::set_rollout(conn, &project_ref, &group_id, percentage, at.unix_millis())
        })
        .await
    }

    async fn revert(
        &self,
        project_ref: &str,
        group_id: &str,
        revert: RevertRecord,
    ) -> StoreResult<()> {
        let (project_ref, group_id) = (project_ref.to_owned(), group_id.to_owned());
        self.call(move |conn| groups::revert(conn, &project_ref, &group_id, &revert))
            .await
    }

    async fn release(&self, key: &ChannelKey) -> StoreResult<ReleaseRecord> {
        let key = key.clone();
        self.call(move |conn| groups::release(conn, &key)).await
    }

    async fn health(&self, update_ids: &[String]) -> StoreResult<Vec<HealthRecord>> {
        let ids = update_ids.to_vec();
        self.call(move |conn| groups::health(conn, &ids)).await
    }

    async fn merge_health(&self, records: Vec<HealthRecord>) -> StoreResult<Vec<HealthRecord>> {
        self.call(move |conn| groups::merge_health(conn, &records))
            .await
    }

    async fn channels(&self) -> StoreResult<Vec<ChannelKey>> {
        self.call(groups::channels).await
    }

    async fn all_launch_assets(&self) -> StoreResult<Vec<LaunchAssetRecord>> {
        self.call(patches::all_launch_assets).await
    }

    async fn recent_launch_assets(
        &self,
        channel: ChannelKey,
        newest: u32,
    ) -> StoreResult<Vec<LaunchAssetRecord>> {
        self.call(move |conn| patches::recent_launch_assets(conn, &channel, newest))
            .await
    }

    async fn add_embedded(&self, bundle: LaunchAssetRecord) -> StoreResult<bool> {
        self.call(move |conn| patches::add_embedded(conn, &bundle))
            .await
    }

    async fn embedded(&self, project_ref: &str) -> StoreResult<Vec<LaunchAssetRecord>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| patches::embedded(conn, &project_ref))
            .await
    }

    async fn patches(&self) -> StoreResult<Vec<PatchRecord>> {
        self.call(patches::patches).await
    }

    async fn add_patch(&self, patch: PatchRecord) -> StoreResult<()> {
        self.call(move |conn| patches::add_patch(conn, &patch))
            .await
    }

    async fn audit_log(
        &self,
        project_ref: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| {
            let mut statement = conn.prepare(
                "SELECT seq, project_ref, at, actor, action, detail FROM audit_log \
                 WHERE project_ref = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = statement
                .query_map(
                    params![project_ref, before.unwrap_or(i64::MAX), limit],
                    audit_row,
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn add_adoption(&self, counts: Vec<AdoptionCount>) -> StoreResult<()> {
        self.call(move |conn| adoption::add_adoption(conn, &counts))
            .await
    }

    async fn adoption(
        &self,
        project_ref: &str,
        since_ms: i64,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<AdoptionCount>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| adoption::adoption(conn, &project_ref, since_ms, offset, limit))
            .await
    }

    async fn add_runtime_version_days(
        &self,
        days: Vec<RuntimeVersionDay>,
        versions_per_day: usize,
    ) -> StoreResult<()> {
        self.call(move |conn| adoption::add_runtime_version_days(conn, &days, versions_per_day))
            .await
    }

    async fn runtime_version_days(
        &self,
        project_ref: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<RuntimeVersionDay>> {
        let project_ref = project_ref.to_owned();
        self.call(move |conn| adoption::runtime_version_days(conn, &project_ref, since_ms))
            .await
    }

    async fn prune_counts(&self, before_ms: i64) -> StoreResult<u64> {
        self.call(move |conn| adoption::prune(conn, before_ms))
            .await
    }

    async fn integrity_problems(&self) -> StoreResult<Vec<String>> {
        self.call(|conn| {
            let mut problems = Vec::new();
            let mut statement = conn.prepare("PRAGMA integrity_check")?;
            for row in statement.query_map([], |row| row.get::<_, String>(0))? {
                let row = row?;
                if row != "ok" {
                    problems.push(format!("sqlite integrity_check: {row}"));
                }
            }
            let mut statement = conn.prepare("PRAGMA foreign_key_check")?;
            for row in statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(2)?)))? {
                let (table, parent) = row?;
                problems.push(format!("sqlite foreign_key_check: a row of `{table}` points at a missing `{parent}` row"));
            }
            Ok(problems)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_of_a_version_1_database_become_deploy_keys_that_do_not_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("otago.sqlite3")).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO projects (ref, app, environment, max_asset_bytes, created_at)
                     VALUES ('p_0123456789', 'app', 'prod', 10, 0);
                 INSERT INTO api_keys (id, project_ref, name, secret_sha256, created_at)
                     VALUES ('k_0123456789', 'p_0123456789', 'ci', x'00', 0);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let keys = store.keys("p_0123456789").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].role, KeyRole::Deploy);
        assert_eq!(keys[0].expires_at, None);
        assert!(
            store
                .audit_log("p_0123456789", None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
