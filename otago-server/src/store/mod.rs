//! Where the server keeps things: a metadata store and an asset blob store.
//!
//! Both are small traits with two backends each: the embedded defaults [`SqliteStore`] and
//! [`LocalBlobStore`] (one process, a folder), and [`PostgresStore`] and [`BucketBlobStore`]
//! (an S3-compatible bucket) for any number of replicas. Every method is async and may block
//! internally only on a blocking thread.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use otago_core::{Platform, Timestamp};

mod blobs;
mod bucket;
mod compress;
mod copy;
mod postgres;
mod sqlite;

pub use blobs::LocalBlobStore;
pub use bucket::BucketBlobStore;
pub use copy::{TableCopy, copy_sqlite_to_postgres};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::config::StorageUrl;

/// How long an asset may be cached, by anyone: a year, for its bytes never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Opens the blob store `storage` names (`None`: the data folder). A folder store keeps
/// `assets/` and `tmp/` in its folder; a bucket store stages uploads in `data_dir/tmp`.
/// `cleanup` clears what killed uploads left there (not for a check beside a running server).
///
/// # Errors
/// When the folder cannot be opened or the bucket does not answer.
pub async fn open_blobs(
    storage: Option<&StorageUrl>,
    data_dir: &Path,
    cleanup: bool,
) -> StoreResult<Arc<dyn BlobStore>> {
    match storage {
        Some(StorageUrl::S3(location)) if cleanup => Ok(Arc::new(
            BucketBlobStore::connect(location, data_dir).await?,
        )),
        Some(StorageUrl::S3(location)) => Ok(Arc::new(BucketBlobStore::open_without_cleanup(
            location, data_dir,
        )?)),
        folder => {
            let dir = match folder {
                Some(StorageUrl::Folder(dir)) => dir.clone(),
                _ => data_dir.to_owned(),
            };
            let store = tokio::task::spawn_blocking(move || {
                if cleanup {
                    LocalBlobStore::open(&dir)
                } else {
                    LocalBlobStore::open_without_cleanup(&dir)
                }
                .map_err(|err| {
                    StoreError::backend(format!(
                        "cannot open the asset folder in {}: {err}",
                        dir.display()
                    ))
                })
            })
            .await
            .map_err(StoreError::backend)??;
            Ok(Arc::new(store))
        }
    }
}

/// A failure of a store, in the store's own terms (the server's error module says what it
/// means for an HTTP client).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A project for this app and environment exists.
    #[error("a project for app `{app}` and environment `{environment}` exists")]
    ProjectExists {
        /// The app name.
        app: String,
        /// The environment name.
        environment: String,
    },
    /// An update id was used before (by an update or a standby, even one since deleted).
    #[error("update id {id} was published before")]
    UpdateIdReused {
        /// The id.
        id: String,
    },
    /// A rollout change or revert named a group that has no rollout in progress.
    #[error("group {group_id} has no rollout in progress")]
    NoRollout {
        /// The group.
        group_id: String,
    },
    /// A channel changed since the caller read it (through another replica): what the caller
    /// built on is no longer the newest group.
    #[error("the release of {channel} changed since it was read")]
    ChannelMoved {
        /// The channel, as `project/platform/runtime version`.
        channel: String,
    },
    /// An embedded update id is registered with another bundle or channel.
    #[error("embedded update {update_id} is registered with another bundle or channel")]
    EmbeddedIdTaken {
        /// The id.
        update_id: String,
    },
    /// An embedded bundle was registered under the id of a published update.
    #[error("{update_id} is the id of a published update, not of an embedded one")]
    EmbeddedIdPublished {
        /// The id.
        update_id: String,
    },
    /// The backend failed (I/O, database); the detail is for the log.
    #[error("store backend: {0}")]
    Backend(String),
    /// The disk (or quota) is full: nothing more can be stored until space is freed; the
    /// detail is for the log.
    #[error("store full: {0}")]
    Full(String),
}

impl StoreError {
    /// A backend failure with a detail for the log.
    pub fn backend(detail: impl fmt::Display) -> Self {
        Self::Backend(detail.to_string())
    }

    /// An I/O failure: [`StoreError::Full`] when the disk or quota is full, else a backend failure.
    pub fn io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                Self::Full(err.to_string())
            }
            _ => Self::Backend(err.to_string()),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A project: one app in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    /// Short url-safe id, `p_` and ten lowercase alphanumerics.
    pub r#ref: String,
    /// App name, `[a-z0-9-]{1,64}`.
    pub app: String,
    /// Environment name, `[a-z0-9-]{1,64}`.
    pub environment: String,
    /// Whether every update must carry a signature that verifies against `certificate_pem`.
    pub require_signing: bool,
    /// The certificate embedded in the app, PEM.
    pub certificate_pem: Option<String>,
    /// The largest asset this project may upload, in bytes.
    pub max_asset_bytes: u64,
    /// When the project was created.
    pub created_at: Timestamp,
}

/// A change to a project's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectPatch {
    /// New `require_signing`.
    pub require_signing: Option<bool>,
    /// New certificate (`Some(None)` removes it).
    pub certificate_pem: Option<Option<String>>,
    /// New asset size limit.
    pub max_asset_bytes: Option<u64>,
}

/// What an API key may do in its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyRole {
    /// Upload assets, publish, roll back, roll out and revert, read the project.
    Deploy,
    /// Everything a deploy key may, plus the project's keys, settings and audit log.
    Admin,
}

impl KeyRole {
    /// The API and database name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Admin => "admin",
        }
    }

    /// Reads the API and database name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "deploy" => Some(Self::Deploy),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// An API key of a project (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// `k_` and ten lowercase alphanumerics.
    pub id: String,
    /// The project the key acts on.
    pub project_ref: String,
    /// A name to recognise it by.
    pub name: String,
    /// What it may do.
    pub role: KeyRole,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used (updated at most about once a minute).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// One entry of a project's audit log: who changed what, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log (ascending; 0 for an entry not stored yet).
    pub seq: i64,
    /// The project.
    pub project_ref: String,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it: a key id (`k_...`) or `admin` (the server's admin token).
    pub actor: String,
    /// What happened, e.g. `project.settings_changed`, `key.created`, `key.revoked`.
    pub action: String,
    /// The details (for settings: each changed setting's `before` and `after`).
    pub detail: serde_json::Value,
}

/// A content encoding an asset is stored in besides its plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The bytes as uploaded.
    Identity,
    /// gzip.
    Gzip,
    /// Brotli.
    Brotli,
}

impl Encoding {
    /// The `content-encoding` token, `None` for identity.
    #[must_use]
    pub fn token(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some("gzip"),
            Self::Brotli => Some("br"),
        }
    }
}

/// Which compressed variants of an asset exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Encodings {
    /// A `.gz` variant exists.
    pub gzip: bool,
    /// A `.br` variant exists.
    pub brotli: bool,
}

impl Encodings {
    /// Whether `encoding` can be served.
    #[must_use]
    pub fn has(self, encoding: Encoding) -> bool {
        match encoding {
            Encoding::Identity => true,
            Encoding::Gzip => self.gzip,
            Encoding::Brotli => self.brotli,
        }
    }

    /// The stored form, e.g. `gzip,br`.
    #[must_use]
    pub fn to_db(self) -> String {
        let mut tokens = Vec::new();
        if self.gzip {
            tokens.push("gzip");
        }
        if self.brotli {
            tokens.push("br");
        }
        tokens.join(",")
    }

    /// Reads the stored form.
    #[must_use]
    pub fn from_db(text: &str) -> Self {
        Self {
            gzip: text.split(',').any(|t| t == "gzip"),
            brotli: text.split(',').any(|t| t == "br"),
        }
    }
}

/// An asset in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRecord {
    /// base64url SHA-256, 43 characters.
    pub hash: String,
    /// Hex MD5 (the manifest key).
    pub key: String,
    /// Size of the plain bytes.
    pub size: u64,
    /// MIME type served with it.
    pub content_type: String,
    /// Compressed variants kept beside it (`None` until they are made, after the upload).
    pub encodings: Option<Encodings>,
    /// When it was first stored.
    pub created_at: Timestamp,
}

/// What a group publishes: updates, or directives to roll back to the embedded update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// Manifests.
    Update,
    /// `rollBackToEmbedded` directives.
    RollBackToEmbedded,
}

impl GroupKind {
    /// The API and database name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::RollBackToEmbedded => "rollback_to_embedded",
        }
    }

    /// Reads the API and database name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "update" => Some(Self::Update),
            "rollback_to_embedded" => Some(Self::RollBackToEmbedded),
            _ => None,
        }
    }
}

/// Where a group is in its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// Served to every device (published at 100 % or raised to it).
    Full,
    /// Its updates are the targets of rollouts in progress.
    Rollout,
    /// A reverted rollout: its standbys are served to the devices that took it.
    Reverted,
    /// Not served (partial or reverted groups from before rollouts had controls).
    Withdrawn,
}

impl GroupState {
    /// The API and database name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Rollout => "rollout",
            Self::Reverted => "reverted",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Reads the API and database name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "full" => Some(Self::Full),
            "rollout" => Some(Self::Rollout),
            "reverted" => Some(Self::Reverted),
            "withdrawn" => Some(Self::Withdrawn),
            _ => None,
        }
    }
}

/// A rollout's health gate, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateRecord {
    /// Revert once failed ÷ served is over this percentage.
    pub max_failure_percent: f64,
    /// Judged only once served to this many devices.
    pub min_devices: u64,
}

/// A rollout's scheduled ramp, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RampRecord {
    /// The percentages, e.g. `1,10,50,100`.
    pub steps: String,
    /// Milliseconds between steps.
    pub every_ms: u64,
}

/// Who reverted a rollout, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertRecord {
    /// When.
    pub at: Timestamp,
    /// `health-gate`, `admin` or the id of the key that asked.
    pub by: String,
    /// Why, for the health gate; a person's revert has none.
    pub reason: Option<String>,
}

/// The standby revert of a rollout's target (see `otago_core::standby_body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyRecord {
    /// Lowercase UUID.
    pub id: String,
    /// A manifest (the control's code) or a rollback to the embedded update.
    pub kind: GroupKind,
    /// Its `createdAt` (a directive's `commitTime`).
    pub created_at: Timestamp,
    /// The `expo-signature` value, exactly as the deployer sent it.
    pub signature: Option<String>,
    /// The bytes, exactly as published (loaded only when asked for).
    pub body: Option<Bytes>,
}

/// One platform's update in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRecord {
    /// Lowercase UUID (the manifest id; a fresh one for a directive).
    pub id: String,
    /// The platform it is for.
    pub platform: Platform,
    /// The manifest's `createdAt` (a directive's `commitTime`).
    pub created_at: Timestamp,
    /// Bytes of the manifest or directive plus its distinct assets.
    pub size: u64,
    /// The `expo-signature` value exactly as the deployer sent it.
    pub signature: Option<String>,
    /// The manifest or directive bytes exactly as published (loaded only when asked for).
    pub body: Option<Bytes>,
    /// Hashes of the assets it names (set when publishing).
    pub asset_hashes: Vec<String>,
    /// For a rollout's target: the update devices outside it get (`None`: the embedded one).
    pub control_update_id: Option<String>,
    /// For a rollout's target: its standby revert.
    pub standby: Option<StandbyRecord>,
}

/// A published group: one update per platform, published together.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    /// Lowercase UUID.
    pub id: String,
    /// The project.
    pub project_ref: String,
    /// The runtime version every update of the group targets.
    pub runtime_version: String,
    /// A note from the deployer.
    pub message: String,
    /// When it was published.
    pub created_at: Timestamp,
    /// Percentage of devices (0–100) that get it; the others get the control.
    pub rollout_percentage: u8,
    /// Where it is in its release.
    pub state: GroupState,
    /// Updates or rollback directives.
    pub kind: GroupKind,
    /// The health gate of its rollout, if any.
    pub gate: Option<GateRecord>,
    /// The ramp of its rollout, if any.
    pub ramp: Option<RampRecord>,
    /// When the rollout reached its current percentage.
    pub percentage_since: Timestamp,
    /// The revert, once reverted.
    pub revert: Option<RevertRecord>,
    /// Its updates.
    pub updates: Vec<UpdateRecord>,
}

/// Filters for listing groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    /// Only this runtime version.
    pub runtime_version: Option<String>,
    /// Only groups with an update for this platform.
    pub platform: Option<Platform>,
    /// At most this many.
    pub limit: u32,
}

/// A served update with its group, body included.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedUpdate {
    /// The group it belongs to (without its updates).
    pub group: GroupRecord,
    /// The update.
    pub update: UpdateRecord,
}

/// What one channel serves, as stored: the base, the rollout on top of it and the base's
/// aliases (see `otago_core::ChannelRelease`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseRecord {
    /// The update every device outside a rollout gets; `None`: the embedded update.
    pub base: Option<ServedUpdate>,
    /// The newest group's update when that group is a rollout (in progress or reverted);
    /// its `standby` is set.
    pub rollout: Option<ServedUpdate>,
    /// Standby ids of earlier reverted rollouts over the same base.
    pub base_aliases: Vec<String>,
}

/// Distinct-device sketches of one update (otago-core `DeviceSketch` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRecord {
    /// The update (or standby) id.
    pub update_id: String,
    /// Devices it was served to.
    pub served: Vec<u8>,
    /// Devices that report running it.
    pub running: Vec<u8>,
    /// Devices that report it failed to launch.
    pub failed: Vec<u8>,
}

impl HealthRecord {
    /// This record merged into `stored` (register-wise maximum of each sketch), as both
    /// backends store it.
    ///
    /// # Errors
    /// When a sketch is damaged.
    pub fn merged_into(&self, stored: &Self) -> StoreResult<Self> {
        let merged = |a: &[u8], b: &[u8]| -> StoreResult<Vec<u8>> {
            let sketch = otago_core::DeviceSketch::new();
            for bytes in [a, b] {
                sketch
                    .merge_bytes(bytes)
                    .map_err(|err| StoreError::backend(format!("a stored device count: {err}")))?;
            }
            Ok(sketch.to_bytes())
        };
        Ok(Self {
            update_id: self.update_id.clone(),
            served: merged(&stored.served, &self.served)?,
            running: merged(&stored.running, &self.running)?,
            failed: merged(&stored.failed, &self.failed)?,
        })
    }
}

/// A device sketch read from a `runtime_version_days` row.
pub(crate) fn day_sketch(bytes: &[u8]) -> StoreResult<otago_core::DeviceSketch> {
    let sketch = otago_core::DeviceSketch::new();
    sketch.merge_bytes(bytes).map_err(|err| {
        StoreError::backend(format!(
            "a stored device sketch is damaged (runtime_version_days.devices): {err}"
        ))
    })?;
    Ok(sketch)
}

/// The key of a live answer: a project, a platform and a runtime version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    /// The project.
    pub project_ref: String,
    /// The platform.
    pub platform: Platform,
    /// The runtime version.
    pub runtime_version: String,
}

/// Manifest requests counted for one project, hour, platform, runtime version and current update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptionCount {
    /// The project.
    pub project_ref: String,
    /// Start of the hour, in milliseconds since the Unix epoch.
    pub hour_start_ms: i64,
    /// The platform.
    pub platform: Platform,
    /// The runtime version; `None` for the bucket of every runtime version nothing is
    /// published for (stored as `''`).
    pub runtime_version: Option<String>,
    /// The update the device ran (`none` or `other` when it ran none or one not published here).
    pub current_update_id: String,
    /// How many requests.
    pub count: u64,
}

/// The requests of one project, day, platform and runtime version, published or not, with a
/// sketch of the distinct devices that sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersionDay {
    /// The project.
    pub project_ref: String,
    /// Start of the UTC day, in milliseconds since the Unix epoch.
    pub day_start_ms: i64,
    /// The platform.
    pub platform: Platform,
    /// The runtime version; `None` for the bucket of those past the daily limit (stored as
    /// `''`).
    pub runtime_version: Option<String>,
    /// How many requests.
    pub requests: u64,
    /// The devices (by `EAS-Client-ID`) that sent them: the bytes of an
    /// [`otago_core::DeviceSketch`].
    pub devices: Vec<u8>,
    /// The latest request, in milliseconds since the Unix epoch.
    pub last_seen_ms: i64,
}

/// The launch asset of an update (or standby revert), or of a bundle embedded in a build: what
/// a device that runs that update holds, and so the base a patch can start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchAssetRecord {
    /// The update's id (for an embedded bundle, the embedded update's).
    pub update_id: String,
    /// Its project, platform and runtime version.
    pub channel: ChannelKey,
    /// The launch asset's hash.
    pub asset_hash: String,
    /// The update's `createdAt` (for an embedded bundle, when it was registered).
    pub created_at: Timestamp,
    /// Whether it is a registered embedded bundle.
    pub embedded: bool,
}

/// A patch between two launch assets, or the record that the pair was tried and not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRecord {
    /// The launch asset a device runs.
    pub base_hash: String,
    /// The launch asset it is sent.
    pub target_hash: String,
    /// The verified patch's blob (its hash) and size; `None` when not worth keeping.
    pub patch: Option<(String, u64)>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A change made through one replica that the others must follow, from the store's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A channel's release changed (a publish, a rollout change, a revert).
    Channel(ChannelKey),
    /// A project was created, changed or deleted.
    Project(String),
    /// A key was revoked.
    Key(String),
    /// An asset's compressed variants were recorded.
    Asset(String),
    /// A patch or an embedded bundle was recorded.
    Patches,
}

/// The metadata store: projects, keys, the asset index, groups and updates, adoption counts.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Whether other processes (replicas) change this store too; the server then follows
    /// [`Self::changes_since`]. The embedded store belongs to one process.
    fn shared(&self) -> bool {
        false
    }
    /// The position of the newest change in the change log (0 when there is none).
    async fn last_change(&self) -> StoreResult<i64> {
        Ok(0)
    }
    /// The changes after position `seq`, oldest first, at most `limit`.
    async fn changes_since(&self, _seq: i64, _limit: u32) -> StoreResult<Vec<(i64, Change)>> {
        Ok(Vec::new())
    }
    /// The highest position dropped from the change log as too old (0 when none was): a
    /// follower behind it has missed changes.
    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        Ok(0)
    }
    /// Waits until another process may have changed the store, or `timeout` passes.
    async fn wait_for_change(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }

    /// Claims background job `job` for `holder` until `until_ms`, unless another claim on it
    /// lasts past `now_ms`; whether `holder` has it now. A store one process uses alone grants
    /// every claim.
    async fn claim_job(
        &self,
        _job: &str,
        _holder: &str,
        _now_ms: i64,
        _until_ms: i64,
    ) -> StoreResult<bool> {
        Ok(true)
    }

    /// Gives up `holder`'s claim on `job` (it is done, or failed).
    async fn release_job(&self, _job: &str, _holder: &str) -> StoreResult<()> {
        Ok(())
    }

    /// The SHA-256 of the admin token, if one was generated and kept.
    async fn admin_token_hash(&self) -> StoreResult<Option<[u8; 32]>>;
    /// Keeps the SHA-256 of a generated admin token.
    async fn set_admin_token_hash(&self, hash: [u8; 32]) -> StoreResult<()>;

    /// Creates a project; [`StoreError::ProjectExists`] if app and environment exist.
    async fn create_project(&self, project: ProjectRecord) -> StoreResult<()>;
    /// Every project, oldest first.
    async fn projects(&self) -> StoreResult<Vec<ProjectRecord>>;
    /// One project.
    async fn project(&self, project_ref: &str) -> StoreResult<Option<ProjectRecord>>;
    /// Changes a project's settings and returns it, `None` if it does not exist. In the same
    /// transaction it appends `project.settings_changed` to the audit log, by `actor` at `at`,
    /// with the before and after of every setting that changed (nothing if none did).
    async fn update_project(
        &self,
        project_ref: &str,
        patch: ProjectPatch,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Option<ProjectRecord>>;
    /// Deletes a project with its keys, groups and updates (assets stay); false if absent.
    async fn delete_project(&self, project_ref: &str) -> StoreResult<bool>;

    /// Stores a new key with the SHA-256 of its secret, and `audit` in the same transaction.
    async fn create_key(
        &self,
        key: KeyRecord,
        secret_hash: [u8; 32],
        audit: AuditRecord,
    ) -> StoreResult<()>;
    /// A project's keys, oldest first.
    async fn keys(&self, project_ref: &str) -> StoreResult<Vec<KeyRecord>>;
    /// Revokes a key at `audit.at`, appending `audit` in the same transaction if it was not
    /// revoked already; false if the project has no such key.
    async fn revoke_key(&self, key_id: &str, audit: AuditRecord) -> StoreResult<bool>;
    /// The key whose secret has this SHA-256.
    async fn key_by_secret_hash(&self, secret_hash: [u8; 32]) -> StoreResult<Option<KeyRecord>>;
    /// Records when keys were last used.
    async fn touch_keys(&self, uses: Vec<(String, Timestamp)>) -> StoreResult<()>;

    /// The index entries of those of `hashes` that are stored.
    async fn assets(&self, hashes: &[String]) -> StoreResult<Vec<AssetRecord>>;
    /// Adds an asset to the index; false if it was there already.
    async fn insert_asset(&self, asset: AssetRecord) -> StoreResult<bool>;
    /// Every asset in the index (for integrity checks).
    async fn all_assets(&self) -> StoreResult<Vec<AssetRecord>>;
    /// Records which compressed variants of an asset exist.
    async fn set_encodings(&self, hash: &str, encodings: Encodings) -> StoreResult<()>;
    /// Assets whose compressed variants were not made yet (e.g. the server stopped first).
    async fn uncompressed_assets(&self) -> StoreResult<Vec<String>>;

    /// Which of `ids` were ever used by an update (even one since deleted).
    async fn used_update_ids(&self, ids: &[String]) -> StoreResult<Vec<String>>;
    /// Publishes a group atomically: all of it or none. `built_on` names, per platform, the
    /// channel's newest served update the caller built the group on; if another one is newest
    /// now (a publish through another replica), nothing is stored:
    /// [`StoreError::ChannelMoved`].
    async fn publish(
        &self,
        group: GroupRecord,
        built_on: Vec<(Platform, Option<String>)>,
    ) -> StoreResult<()>;
    /// Groups of a project, newest first.
    async fn groups(&self, project_ref: &str, filter: GroupFilter)
    -> StoreResult<Vec<GroupRecord>>;
    /// One group, with update bodies and signatures.
    async fn group(&self, project_ref: &str, group_id: &str) -> StoreResult<Option<GroupRecord>>;
    /// Sets the rollout percentage of a group in rollout; at 100 it becomes full.
    async fn set_rollout(
        &self,
        project_ref: &str,
        group_id: &str,
        percentage: u8,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Marks a group in rollout reverted.
    async fn revert(
        &self,
        project_ref: &str,
        group_id: &str,
        revert: RevertRecord,
    ) -> StoreResult<()>;
    /// What a channel serves now, bodies included.
    async fn release(&self, key: &ChannelKey) -> StoreResult<ReleaseRecord>;
    /// Every channel that has ever had an update.
    async fn channels(&self) -> StoreResult<Vec<ChannelKey>>;

    /// The stored device sketches of these updates.
    async fn health(&self, update_ids: &[String]) -> StoreResult<Vec<HealthRecord>>;
    /// Merges device sketches into the stored ones (register-wise maximum) and returns the
    /// merged sketches (so counts from other replicas come back).
    async fn merge_health(&self, records: Vec<HealthRecord>) -> StoreResult<Vec<HealthRecord>>;
    /// A project's audit log, newest first: at most `limit` entries with `seq` below `before`.
    async fn audit_log(
        &self,
        project_ref: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>>;

    /// Adds manifest request counts.
    async fn add_adoption(&self, counts: Vec<AdoptionCount>) -> StoreResult<()>;
    /// A page of a project's counts at or after `since_ms`, by hour: at most `limit` rows
    /// after the first `offset`.
    async fn adoption(
        &self,
        project_ref: &str,
        since_ms: i64,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<AdoptionCount>>;
    /// Adds runtime version requests and devices. A project keeps at most
    /// `versions_per_day` runtime versions a day; the requests of any further one go to that
    /// day's `None` bucket of their platform.
    async fn add_runtime_version_days(
        &self,
        days: Vec<RuntimeVersionDay>,
        versions_per_day: usize,
    ) -> StoreResult<()>;
    /// A project's runtime version days from `since_ms` on.
    async fn runtime_version_days(
        &self,
        project_ref: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<RuntimeVersionDay>>;
    /// Deletes adoption counts and runtime version days older than `before_ms`; returns how
    /// many rows went.
    async fn prune_counts(&self, before_ms: i64) -> StoreResult<u64>;

    /// The launch assets of every update, standby and registered embedded bundle.
    async fn all_launch_assets(&self) -> StoreResult<Vec<LaunchAssetRecord>>;
    /// The launch assets of a channel's `newest` newest updates and of their standbys, newest
    /// first, then every embedded bundle registered for it. Reads only those updates' bodies.
    async fn recent_launch_assets(
        &self,
        channel: ChannelKey,
        newest: u32,
    ) -> StoreResult<Vec<LaunchAssetRecord>>;
    /// Registers an embedded bundle (an asset in the index); false if it was registered
    /// already; [`StoreError::EmbeddedIdTaken`] if its update id is registered with another
    /// bundle or channel, [`StoreError::EmbeddedIdPublished`] if it is a published update's.
    async fn add_embedded(&self, bundle: LaunchAssetRecord) -> StoreResult<bool>;
    /// A project's registered embedded bundles, newest first.
    async fn embedded(&self, project_ref: &str) -> StoreResult<Vec<LaunchAssetRecord>>;
    /// Every patch record.
    async fn patches(&self) -> StoreResult<Vec<PatchRecord>>;
    /// Stores a patch record (replacing one for the same pair).
    async fn add_patch(&self, patch: PatchRecord) -> StoreResult<()>;

    /// The database's own consistency check plus referential checks; problems found, if any.
    async fn integrity_problems(&self) -> StoreResult<Vec<String>>;
}

/// A stream of body chunks.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The bytes do not hash to the name they were uploaded under.
    #[error("the bytes hash to {actual}")]
    HashMismatch {
        /// What they hash to.
        actual: String,
    },
    /// Reading the body failed (the client went away).
    #[error("reading the body failed: {0}")]
    Body(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What a blob store learned while storing bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Hex MD5.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// An inclusive byte range of the plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// An open blob, ready to stream.
pub struct BlobBody {
    /// Bytes the stream yields.
    pub len: u64,
    /// The bytes.
    pub stream: ByteStream,
}

impl fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobBody")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The asset blob store: content-addressed, write-once.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Streams `body` in, refusing it past `limit` bytes or when it does not hash to `hash`.
    /// Nothing is visible under `hash` unless this succeeds.
    /// `content_type` is what a CDN serving the stored object directly should send.
    async fn put(
        &self,
        hash: &str,
        content_type: &str,
        limit: u64,
        body: ByteStream,
    ) -> Result<StoredBlob, PutError>;
    /// Makes the gzip and Brotli variants of a stored asset (Brotli at most at
    /// `brotli_quality`), keeping those clearly smaller; says which exist.
    async fn compress(&self, hash: &str, brotli_quality: u32) -> StoreResult<Encodings>;
    /// Opens the stored bytes in `encoding` (a range only of the plain bytes); `None` if absent.
    async fn open(
        &self,
        hash: &str,
        encoding: Encoding,
        range: Option<ByteRange>,
    ) -> StoreResult<Option<BlobBody>>;
    /// Reads the whole stored bytes in `encoding` (for assets small enough to keep in
    /// memory); `None` if absent.
    async fn read(&self, hash: &str, encoding: Encoding) -> StoreResult<Option<Bytes>>;
    /// Re-hashes the stored bytes and variants of `hash`; problems found, if any.
    async fn verify(&self, hash: &str) -> StoreResult<Vec<String>>;
    /// Stores `body` as the `encoding` variant of the stored asset `hash`, as it is (copied from
    /// another store by `otago-server migrate`, which then runs [`BlobStore::verify`]).
    async fn put_variant(
        &self,
        hash: &str,
        encoding: Encoding,
        content_type: &str,
        body: ByteStream,
    ) -> StoreResult<()>;
    /// The hash of every stored asset (plain bytes), sorted.
    async fn stored_hashes(&self) -> StoreResult<Vec<String>>;
}
