//! The scaled-out metadata store: PostgreSQL, shared by any number of replicas.
//!
//! The rules that protect clients hold across replicas because the database enforces them: a
//! publish, rollout change or revert locks its project's row, so changes to one project are
//! serialized whichever replica makes them, and a publish is refused when the channel moved on
//! since the replica read it. Every change the other replicas must follow is appended to the
//! `changes` log in the same transaction (serialized by an advisory lock, so the log's order is
//! the commit order) with a `NOTIFY`; each replica listens on its own connection and re-reads
//! the log every second, so a lost notification only delays a change.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt as _;
use otago_core::{Platform, Timestamp};
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    AdoptionCount, AssetRecord, AuditRecord, Change, ChannelKey, Encodings, GroupFilter,
    GroupRecord, HealthRecord, KeyRecord, KeyRole, LaunchAssetRecord, MetaStore, PatchRecord,
    ProjectPatch, ProjectRecord, ReleaseRecord, RevertRecord, RuntimeVersionDay, StoreError,
    StoreResult,
};

mod adoption;
mod changes;
mod groups;
mod patches;
mod tls;

/// Schema migrations, applied in order; `schema_version` holds how many ran.
const MIGRATIONS: [&str; 2] = [include_str!("schema_v1.sql"), include_str!("schema_v2.sql")];

/// The advisory lock held while migrating, so that replicas starting at once migrate once.
const MIGRATION_LOCK: i64 = 0x6f74_6167_6f00_0001;

/// Connections per replica.
const POOL_SIZE: usize = 16;

/// The PostgreSQL metadata store.
#[derive(Clone)]
pub struct PostgresStore {
    pub(super) pool: Pool,
    /// Woken by the listener at each `NOTIFY otago_changes`.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.code() {
            Some(code) if *code == SqlState::DISK_FULL => Self::Full(err.to_string()),
            _ => Self::backend(db_error_text(&err)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err) => err.into(),
            other => Self::backend(format!("no database connection: {other}")),
        }
    }
}

/// The server's message and detail, which `Display` of a database error leaves out, or the
/// causes of a connection error (a TLS failure says why the certificate was refused).
fn db_error_text(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

pub(super) fn ts(millis: i64) -> StoreResult<Timestamp> {
    Timestamp::from_unix_millis(millis).map_err(StoreError::backend)
}

pub(super) fn platform(text: &str) -> StoreResult<Platform> {
    text.parse().map_err(StoreError::backend)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`, any libpq-style setting
    /// such as `options=-csearch_path%3Dname`; TLS as `sslmode` and `sslrootcert` say, see
    /// the `tls` module), brings the schema up to date under an advisory
    /// lock, and starts listening for other replicas' changes.
    ///
    /// # Errors
    /// When the URL is invalid, the database cannot be reached, or it was migrated by a newer
    /// Otago.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let (config, tls) = tls::settings(url)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(StoreError::backend)?;
        let store = Self {
            pool,
            wake: Arc::new(Notify::new()),
        };
        store.migrate().await?;
        tokio::spawn(listen(config, tls, Arc::clone(&store.wake)));
        Ok(store)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await?;
        let current: Option<i64> = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .await?
            .map(|row| row.get(0));
        let current = usize::try_from(current.unwrap_or(0)).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(StoreError::backend(format!(
                "the database has schema version {current}, newer than this server knows ({}); run a newer otago-server",
                MIGRATIONS.len()
            )));
        }
        for migration in MIGRATIONS.iter().skip(current) {
            tx.batch_execute(migration).await?;
        }
        if current < MIGRATIONS.len() {
            tx.execute("DELETE FROM schema_version", &[]).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&to_i64(MIGRATIONS.len() as u64)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Listens for `otago_changes` notifications on a connection of its own, reconnecting after a
/// failure; wakes the follower at each one (and after a reconnect, as one may have been lost).
async fn listen(config: tokio_postgres::Config, tls: MakeRustlsConnect, wake: Arc<Notify>) {
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let driver = async {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => wake.notify_waiters(),
                            Ok(_) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, "the change listener's database connection failed");
                                return;
                            }
                        }
                    }
                };
                let subscribe = async {
                    if let Err(err) = client.batch_execute("LISTEN otago_changes").await {
                        tracing::warn!(error = %err, "cannot listen for other replicas' changes");
                    }
                    wake.notify_waiters();
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    () = driver => {}
                    () = subscribe => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "the change listener cannot connect to the database");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

const PROJECT_COLUMNS: &str =
    "ref, app, environment, require_signing, certificate_pem, max_asset_bytes, created_at";

fn project_row(row: &Row) -> StoreResult<ProjectRecord> {
    Ok(ProjectRecord {
        r#ref: row.try_get(0)?,
        app: row.try_get(1)?,
        environment: row.try_get(2)?,
        require_signing: row.try_get(3)?,
        certificate_pem: row.try_get(4)?,
        max_asset_bytes: to_u64(row.try_get(5)?),
        created_at: ts(row.try_get(6)?)?,
    })
}

const KEY_COLUMNS: &str =
    "id, project_ref, name, role, expires_at, created_at, last_used_at, revoked_at";

fn key_row(row: &Row) -> StoreResult<KeyRecord> {
    let optional_ts = |value: Option<i64>| value.map(ts).transpose();
    let role: String = row.try_get(3)?;
    Ok(KeyRecord {
        id: row.try_get(0)?,
        project_ref: row.try_get(1)?,
        name: row.try_get(2)?,
        role: KeyRole::parse(&role)
            .ok_or_else(|| StoreError::backend(format!("unknown key role `{role}`")))?,
        expires_at: optional_ts(row.try_get(4)?)?,
        created_at: ts(row.try_get(5)?)?,
        last_used_at: optional_ts(row.try_get(6)?)?,
        revoked_at: optional_ts(row.try_get(7)?)?,
    })
}

async fn insert_audit(client: &impl GenericClient, entry: &AuditRecord) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO audit_log (project_ref, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
            &[
                &entry.project_ref,
                &entry.at.unix_millis(),
                &entry.actor,
                &entry.action,
                &entry.detail.to_string(),
            ],
        )
        .await?;
    Ok(())
}

fn audit_row(row: &Row) -> StoreResult<AuditRecord> {
    let detail: String = row.try_get(5)?;
    Ok(AuditRecord {
        seq: row.try_get(0)?,
        project_ref: row.try_get(1)?,
        at: ts(row.try_get(2)?)?,
        actor: row.try_get(3)?,
        action: row.try_get(4)?,
        detail: serde_json::from_str(&detail).map_err(StoreError::backend)?,
    })
}

const ASSET_COLUMNS: &str = "hash, key, size, content_type, encodings, created_at";

fn asset_row(row: &Row) -> StoreResult<AssetRecord> {
    Ok(AssetRecord {
        hash: row.try_get(0)?,
        key: row.try_get(1)?,
        size: to_u64(row.try_get(2)?),
        content_type: row.try_get(3)?,
        encodings: row
            .try_get::<_, Option<String>>(4)?
            .as_deref()
            .map(Encodings::from_db),
        created_at: ts(row.try_get(5)?)?,
    })
}

fn rows<T>(rows: &[Row], read: impl Fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(read).collect()
}

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

#[async_trait]
impl MetaStore for PostgresStore {
    fn shared(&self) -> bool {
        true
    }

    async fn claim_job(
        &self,
        job: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool> {
        let client = self.pool.get().await?;
        let claimed = client
            .query_opt(
                "INSERT INTO job_claims (job, holder, until_ms) VALUES ($1, $2, $4)
                 ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, until_ms = EXCLUDED.until_ms
                 WHERE job_claims.until_ms < $3
                 RETURNING job",
                &[&job, &holder, &now_ms, &until_ms],
            )
            .await?;
        Ok(claimed.is_some())
    }

    async fn release_job(&self, job: &str, holder: &str) -> StoreResult<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM job_claims WHERE job = $1 AND holder = $2",
                &[&job, &holder],
            )
            .await?;
        Ok(())
    }

    async fn last_change(&self) -> StoreResult<i64> {
        changes::last(&self.client().await?).await
    }

    async fn changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<(i64, Change)>> {
        changes::since(&self.client().await?, seq, limit).await
    }

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        changes::pruned_through(&self.client().await?).await
    }

    async fn wait_for_change(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    async fn admin_token_hash(&self) -> StoreResult<Option<[u8; 32]>> {
        let client = self.client().await?;
        let value: Option<Vec<u8>> = client
            .query_opt(
                "SELECT value FROM settings WHERE name = $1",
                &[&ADMIN_TOKEN_SETTING],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        Ok(value.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()))
    }

    async fn set_admin_token_hash(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&ADMIN_TOKEN_SETTING, &hash.as_slice()],
            )
            .await?;
        Ok(())
    }

    async fn create_project(&self, project: ProjectRecord) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[
                    &project.r#ref,
                    &project.app,
                    &project.environment,
                    &project.require_signing,
                    &project.certificate_pem,
                    &to_i64(project.max_asset_bytes),
                    &project.created_at.unix_millis(),
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                return Err(StoreError::ProjectExists {
                    app: project.app,
                    environment: project.environment,
                });
            }
            Err(err) => return Err(err.into()),
        }
        changes::record(&tx, &Change::Project(project.r#ref.clone())).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn projects(&self) -> StoreResult<Vec<ProjectRecord>> {
        let found = self
            .client()
            .await?
            .query(
                &format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY created_at, ref"),
                &[],
            )
            .await?;
        rows(&found, project_row)
    }

    async fn project(&self, project_ref: &str) -> StoreResult<Option<ProjectRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ref = $1"),
                &[&project_ref],
            )
            .await?
            .as_ref()
            .map(project_row)
            .transpose()
    }

    async fn update_project(
        &self,
        project_ref: &str,
        patch: ProjectPatch,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Option<ProjectRecord>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let select = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ref = $1 FOR UPDATE");
        let Some(before) = tx.query_opt(&select, &[&project_ref]).await? else {
            return Ok(None);
        };
        let before = project_row(&before)?;
        if let Some(require_signing) = patch.require_signing {
            tx.execute(
                "UPDATE projects SET require_signing = $2 WHERE ref = $1",
                &[&project_ref, &require_signing],
            )
            .await?;
        }
        if let Some(certificate_pem) = patch.certificate_pem {
            tx.execute(
                "UPDATE projects SET certificate_pem = $2 WHERE ref = $1",
                &[&project_ref, &certificate_pem],
            )
            .await?;
        }
        if let Some(max) = patch.max_asset_bytes {
            tx.execute(
                "UPDATE projects SET max_asset_bytes = $2 WHERE ref = $1",
                &[&project_ref, &to_i64(max)],
            )
            .await?;
        }
        let after = project_row(&tx.query_one(&select, &[&project_ref]).await?)?;
        if let Some(detail) = crate::audit::settings_changes(&before, &after) {
            let entry = AuditRecord {
                seq: 0,
                project_ref: project_ref.to_owned(),
                at,
                actor: actor.to_owned(),
                action: crate::audit::SETTINGS_CHANGED.to_owned(),
                detail,
            };
            insert_audit(&tx, &entry).await?;
            changes::record(&tx, &Change::Project(project_ref.to_owned())).await?;
        }
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn delete_project(&self, project_ref: &str) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute("DELETE FROM projects WHERE ref = $1", &[&project_ref])
            .await?
            > 0;
        if deleted {
            changes::record(&tx, &Change::Project(project_ref.to_owned())).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn create_key(
        &self,
        key: KeyRecord,
        secret_hash: [u8; 32],
        audit: AuditRecord,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO api_keys (id, project_ref, name, role, expires_at, secret_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &key.id,
                &key.project_ref,
                &key.name,
                &key.role.as_str(),
                &key.expires_at.map(Timestamp::unix_millis),
                &secret_hash.as_slice(),
                &key.created_at.unix_millis(),
            ],
        )
        .await?;
        insert_audit(&tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn keys(&self, project_ref: &str) -> StoreResult<Vec<KeyRecord>> {
        let found = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE project_ref = $1 ORDER BY created_at, id"
                ),
                &[&project_ref],
            )
            .await?;
        rows(&found, key_row)
    }

    async fn revoke_key(&self, key_id: &str, audit: AuditRecord) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM api_keys WHERE project_ref = $1 AND id = $2",
                &[&audit.project_ref, &key_id],
            )
            .await?
            .is_some();
        let revoked = tx
            .execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE project_ref = $1 AND id = $2 AND revoked_at IS NULL",
                &[&audit.project_ref, &key_id, &audit.at.unix_millis()],
            )
            .await?;
        if revoked > 0 {
            insert_audit(&tx, &audit).await?;
            changes::record(&tx, &Change::Key(key_id.to_owned())).await?;
        }
        tx.commit().await?;
        Ok(exists)
    }

    async fn key_by_secret_hash(&self, secret_hash: [u8; 32]) -> StoreResult<Option<KeyRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = $1"),
                &[&secret_hash.as_slice()],
            )
            .await?
            .as_ref()
            .map(key_row)
            .transpose()
    }

    async fn touch_keys(&self, uses: Vec<(String, Timestamp)>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (id, at) in uses {
            tx.execute(
                "UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $2) WHERE id = $1",
                &[&id, &at.unix_millis()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn assets(&self, hashes: &[String]) -> StoreResult<Vec<AssetRecord>> {
        let found = self
            .client()
            .await?
            .query(
                &format!("SELECT {ASSET_COLUMNS} FROM assets WHERE hash = ANY($1)"),
                &[&hashes],
            )
            .await?;
        let mut found = rows(&found, asset_row)?;
        // In the order asked, as the embedded store answers.
        found.sort_by_key(|asset| hashes.iter().position(|hash| *hash == asset.hash));
        Ok(found)
    }

    async fn insert_asset(&self, asset: AssetRecord) -> StoreResult<bool> {
        let inserted = self
            .client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO assets ({ASSET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
                ),
                &[
                    &asset.hash,
                    &asset.key,
                    &to_i64(asset.size),
                    &asset.content_type,
                    &asset.encodings.map(Encodings::to_db),
                    &asset.created_at.unix_millis(),
                ],
            )
            .await?;
        Ok(inserted > 0)
    }

    async fn all_assets(&self) -> StoreResult<Vec<AssetRecord>> {
        let found = self
            .client()
            .await?
            .query(
                &format!("SELECT {ASSET_COLUMNS} FROM assets ORDER BY hash"),
                &[],
            )
            .await?;
        rows(&found, asset_row)
    }

    async fn set_encodings(&self, hash: &str, encodings: Encodings) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE assets SET encodings = $2 WHERE hash = $1",
            &[&hash, &encodings.to_db()],
        )
        .await?;
        changes::record(&tx, &Change::Asset(hash.to_owned())).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn uncompressed_assets(&self) -> StoreResult<Vec<String>> {
        let found = self
            .client()
            .await?
            .query(
                "SELECT hash FROM assets WHERE encodings IS NULL ORDER BY created_at",
                &[],
            )
            .await?;
        rows(&found, |row| Ok(row.try_get(0)?))
    }

    async fn used_update_ids(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        let found = self
            .client()
            .await?
            .query("SELECT id FROM used_update_ids WHERE id = ANY($1)", &[&ids])
            .await?;
        let found: Vec<String> = rows(&found, |row| Ok(row.try_get(0)?))?;
        Ok(ids
            .iter()
            .filter(|id| found.contains(id))
            .cloned()
            .collect())
    }

    async fn publish(
        &self,
        group: GroupRecord,
        built_on: Vec<(Platform, Option<String>)>,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        groups::publish(&mut client, &group, &built_on).await
    }

    async fn groups(
        &self,
        project_ref: &str,
        filter: GroupFilter,
    ) -> StoreResult<Vec<GroupRecord>> {
        groups::list(&self.client().await?, project_ref, &filter).await
    }

    async fn group(&self, project_ref: &str, group_id: &str) -> StoreResult<Option<GroupRecord>> {
        groups::get(&self.client().await?, project_ref, group_id).await
    }

    async fn set_rollout(
        &self,
        project_ref: &str,
        group_id: &str,
        percentage: u8,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        groups::set_rollout(&mut client, project_ref, group_id, percentage, at).await
    }

    async fn revert(
        &self,
        project_ref: &str,
        group_id: &str,
        revert: RevertRecord,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        groups::revert(&mut client, project_ref, group_id, &revert).await
    }

    async fn release(&self, key: &ChannelKey) -> StoreResult<ReleaseRecord> {
        let mut client = self.client().await?;
        groups::release(&mut client, key).await
    }

    async fn channels(&self) -> StoreResult<Vec<ChannelKey>> {
        groups::channels(&self.client().await?).await
    }

    async fn health(&self, update_ids: &[String]) -> StoreResult<Vec<HealthRecord>> {
        groups::health(&self.client().await?, update_ids).await
    }

    async fn merge_health(&self, records: Vec<HealthRecord>) -> StoreResult<Vec<HealthRecord>> {
        let mut client = self.client().await?;
        groups::merge_health(&mut client, &records).await
    }

    async fn audit_log(
        &self,
        project_ref: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let found = self
            .client()
            .await?
            .query(
                "SELECT seq, project_ref, at, actor, action, detail FROM audit_log \
                 WHERE project_ref = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                &[&project_ref, &before.unwrap_or(i64::MAX), &i64::from(limit)],
            )
            .await?;
        rows(&found, audit_row)
    }

    async fn add_adoption(&self, counts: Vec<AdoptionCount>) -> StoreResult<()> {
        let mut client = self.client().await?;
        adoption::add_adoption(&mut client, &counts).await
    }

    async fn adoption(
        &self,
        project_ref: &str,
        since_ms: i64,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<AdoptionCount>> {
        adoption::adoption(&self.client().await?, project_ref, since_ms, offset, limit).await
    }

    async fn add_runtime_version_days(
        &self,
        days: Vec<RuntimeVersionDay>,
        versions_per_day: usize,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        adoption::add_runtime_version_days(&mut client, &days, versions_per_day).await
    }

    async fn runtime_version_days(
        &self,
        project_ref: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<RuntimeVersionDay>> {
        adoption::runtime_version_days(&self.client().await?, project_ref, since_ms).await
    }

    async fn prune_counts(&self, before_ms: i64) -> StoreResult<u64> {
        let mut client = self.client().await?;
        adoption::prune(&mut client, before_ms).await
    }

    async fn all_launch_assets(&self) -> StoreResult<Vec<LaunchAssetRecord>> {
        patches::all_launch_assets(&self.client().await?).await
    }

    async fn recent_launch_assets(
        &self,
        channel: ChannelKey,
        newest: u32,
    ) -> StoreResult<Vec<LaunchAssetRecord>> {
        patches::recent_launch_assets(&self.client().await?, &channel, newest).await
    }

    async fn add_embedded(&self, bundle: LaunchAssetRecord) -> StoreResult<bool> {
        let mut client = self.client().await?;
        patches::add_embedded(&mut client, &bundle).await
    }

    async fn embedded(&self, project_ref: &str) -> StoreResult<Vec<LaunchAssetRecord>> {
        patches::embedded(&self.client().await?, project_ref).await
    }

    async fn patches(&self) -> StoreResult<Vec<PatchRecord>> {
        patches::patches(&self.client().await?).await
    }

    async fn add_patch(&self, patch: PatchRecord) -> StoreResult<()> {
        let mut client = self.client().await?;
        patches::add_patch(&mut client, &patch).await
    }

    async fn integrity_problems(&self) -> StoreResult<Vec<String>> {
        // PostgreSQL keeps its own pages consistent and enforces every foreign key; what is
        // left to check is what the schema cannot say.
        let client = self.client().await?;
        let mut problems = Vec::new();
        let orphans: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM updates u WHERE u.control_update_id IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM updates c WHERE c.id = u.control_update_id)",
                &[],
            )
            .await?
            .try_get(0)?;
        if orphans > 0 {
            problems.push(format!(
                "postgres: {orphans} rollout target(s) name a control update that is not stored"
            ));
        }
        Ok(problems)
    }
}
