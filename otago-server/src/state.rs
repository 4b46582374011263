//! The shared state of every handler: configuration, stores, the live answers, counters.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use otago_core::Timestamp;

use crate::adoption::Recorder;
use crate::auth::AuthCounters;
use crate::auth::cache::KeyCache;
use crate::auth::throttle::Throttle;
use crate::compressor::Compressor;
use crate::config::{DatabaseUrl, ServerConfig};
use crate::health::HealthBook;
use crate::hot_assets::HotAssets;
use crate::ids;
use crate::jobs::JobClaims;
use crate::live::LiveMap;
use crate::metrics::Metrics;
use crate::patches::{PatchBook, PatchSettings, Patcher};
use crate::store::{
    AssetRecord, BlobStore, Encodings, MetaStore, PostgresStore, SqliteStore, StoreResult,
    open_blobs,
};

/// Where the current time comes from (swappable in tests).
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Cached asset index entries, so serving an asset needs no database read; bounded. Hashes
/// found missing are remembered too (at most [`MISSING_CAPACITY`], about 1 MiB), so repeated
/// requests for an unknown asset do not query the database either.
///
/// A record read from the store is cached only if no encodings were recorded since the read
/// began ([`AssetCache::mark`]): otherwise it may predate the variants the compressor just
/// made, and caching it would serve the asset uncompressed until a restart. Likewise a miss is
/// remembered only if no asset was inserted since its read began.
#[derive(Debug, Default)]
pub(crate) struct AssetCache {
    inner: RwLock<CachedAssets>,
}

#[derive(Debug, Default)]
struct CachedAssets {
    entries: HashMap<String, Arc<AssetRecord>>,
    /// Hashes the store did not have.
    missing: hashbrown::HashSet<String>,
    /// How many times encodings were recorded.
    encodings_recorded: u64,
    /// How many assets were inserted.
    inserts: u64,
}

/// A point in the cache's history, taken before a record is read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheMark {
    encodings_recorded: u64,
    inserts: u64,
}

const ASSET_CACHE_CAPACITY: usize = 50_000;
/// Unknown hashes remembered: each under 100 bytes (43 characters and the set's overhead).
const MISSING_CAPACITY: usize = 10_000;

impl AssetCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, CachedAssets> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CachedAssets> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, hash: &str) -> Option<Arc<AssetRecord>> {
        self.read().entries.get(hash).cloned()
    }

    /// Marks now; take it before reading a record to [`insert`](Self::insert) or a miss to
    /// [`note_missing`](Self::note_missing).
    pub(crate) fn mark(&self) -> CacheMark {
        let cache = self.read();
        CacheMark {
            encodings_recorded: cache.encodings_recorded,
            inserts: cache.inserts,
        }
    }

    /// Records the encodings of an asset (after the store has them): a cached record is
    /// updated, and records read before now are no longer cached.
    pub(crate) fn set_encodings(&self, hash: &str, encodings: Encodings) {
        let mut cache = self.write();
        cache.encodings_recorded += 1;
        if let Some(asset) = cache.entries.get_mut(hash) {
            let mut updated = AssetRecord::clone(asset);
            updated.encodings = Some(encodings);
            *asset = Arc::new(updated);
        }
    }

    /// Forgets every hash found missing (another replica may have stored them since).
    pub(crate) fn forget_missing(&self) {
        let mut cache = self.write();
        cache.inserts += 1;
        cache.missing.clear();
    }

    /// Whether `hash` was found missing before.
    fn known_missing(&self, hash: &str) -> bool {
        self.read().missing.contains(hash)
    }

    /// Remembers that `hash` is missing, unless an asset was inserted since `read_from`.
    fn note_missing(&self, hash: &str, read_from: CacheMark) {
        let mut cache = self.write();
        if cache.inserts != read_from.inserts {
            return;
        }
        if cache.missing.len() >= MISSING_CAPACITY {
            cache.missing.clear();
        }
        cache.missing.insert(hash.to_owned());
    }

    /// Caches `asset`, read from the store after `read_from`, unless encodings were recorded
    /// since (the next request reads it again). A cached record that knows its encodings is
    /// never replaced by one that does not. The hash is no longer remembered as missing.
    pub(crate) fn insert(&self, asset: AssetRecord, read_from: CacheMark) -> Arc<AssetRecord> {
        let asset = Arc::new(asset);
        let mut cache = self.write();
        cache.inserts += 1;
        cache.missing.remove(&asset.hash);
        if cache.encodings_recorded != read_from.encodings_recorded {
            return asset;
        }
        if let Some(known) = cache.entries.get(&asset.hash)
            && known.encodings.is_some()
            && asset.encodings.is_none()
        {
            return Arc::clone(known);
        }
        if cache.entries.len() >= ASSET_CACHE_CAPACITY {
            cache.entries.clear();
        }
        cache.entries.insert(asset.hash.clone(), Arc::clone(&asset));
        asset
    }
}

/// Everything handlers share. Cheap to clone: one reference count, so cloning it per request
/// does not bounce a cache line per field between cores.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What an [`AppState`] points to; its parts are internal to the server.
pub struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) live: LiveMap,
    /// Device counts per live update.
    pub(crate) health: HealthBook,
    pub(crate) assets: Arc<AssetCache>,
    pub(crate) hot: HotAssets,
    pub(crate) recorder: Recorder,
    pub(crate) compressor: Compressor,
    /// Launch assets and bundle patches, for the asset route.
    pub(crate) patch_book: Arc<PatchBook>,
    /// Makes the patches of changed channels.
    pub(crate) patcher: Patcher,
    /// This replica's claims on background jobs.
    pub(crate) jobs: Arc<JobClaims>,
    pub(crate) metrics: Metrics,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) admin_token_hash: [u8; 32],
    /// Keys the store confirmed, by secret digest.
    pub(crate) keys: KeyCache,
    /// Failed-authentication budgets per client address.
    pub(crate) auth_throttle: Throttle,
    /// Authentication counters for `/metrics`.
    pub(crate) auth_counters: AuthCounters,
    /// Publishes, rollout changes and reverts run one at a time.
    pub(crate) publish_lock: tokio::sync::Mutex<()>,
    /// The store's change log position the memory was loaded at.
    pub(crate) follow_from: i64,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A freshly opened state, and the admin token if one was generated now (print it once).
#[derive(Debug)]
pub struct Opened {
    /// The state to serve.
    pub state: AppState,
    /// The admin token generated at this start, if none was configured or kept before.
    pub generated_admin_token: Option<String>,
}

impl AppState {
    /// Opens the embedded stores in `config.data_dir` (SQLite and a local folder) and loads
    /// every published answer into memory.
    ///
    /// # Errors
    /// When the data folder or database cannot be opened, or the configured admin token is
    /// too short.
    pub async fn open(config: ServerConfig) -> Result<Opened, StartError> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`AppState::open`] with another clock (tests drive rollout ramps with one).
    ///
    /// # Errors
    /// When the data folder or database cannot be opened.
    pub async fn open_with_clock(
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Opened, StartError> {
        let data_dir = config.data_dir.clone();
        let database = config
            .database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::Sqlite(data_dir.join("otago.sqlite3")));
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .map_err(|err| StartError(err.to_string()))?
            .map_err(|err| {
                StartError(format!(
                    "cannot create data folder {}: {err}",
                    data_dir.display()
                ))
            })?;
        let blobs = open_blobs(config.storage_url.as_ref(), &data_dir, true)
            .await
            .map_err(|err| StartError(err.to_string()))?;
        let cannot_open = |err| StartError(format!("cannot open the database {database:?}: {err}"));
        let meta: Arc<dyn MetaStore> = match &database {
            DatabaseUrl::Sqlite(path) => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || SqliteStore::open_file(&path))
                    .await
                    .map_err(|err| StartError(err.to_string()))?;
                Arc::new(opened.map_err(cannot_open)?)
            }
            DatabaseUrl::Postgres(url) => {
                Arc::new(PostgresStore::connect(url).await.map_err(cannot_open)?)
            }
        };
        Self::with_stores(config, meta, blobs, clock).await
    }

    /// A state over any stores and clock.
    ///
    /// The admin token: a configured one (`config.admin_token`, at least 32 characters) is
    /// kept (as its SHA-256) in place of any earlier one, so the earlier token stops working
    /// and stays dead if the token is later left unconfigured (then the last configured one
    /// keeps working). Without a configured or kept token, one is generated and returned in
    /// [`Opened::generated_admin_token`] to print once.
    ///
    /// # Errors
    /// When the stores fail while loading, or the configured admin token is too short.
    pub async fn with_stores(
        config: ServerConfig,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Opened, StartError> {
        let store_error =
            |err: crate::store::StoreError| StartError(format!("the store failed: {err}"));
        let (admin_token_hash, generated_admin_token) = match &config.admin_token {
            Some(token) if token.chars().count() < ids::MIN_ADMIN_TOKEN_LEN => {
                return Err(StartError(format!(
                    "the admin token (OTAGO_ADMIN_TOKEN or --admin-token) has {} characters; it must have at least {}: use a long random one, e.g. `openssl rand -hex 32`, or unset it to have one generated",
                    token.chars().count(),
                    ids::MIN_ADMIN_TOKEN_LEN
                )));
            }
            Some(token) => {
                // The configured token replaces the kept one, so that an earlier (generated)
                // token neither works now nor comes back when the variable is unset.
                let hash = ids::sha256(token.as_bytes());
                if meta.admin_token_hash().await.map_err(store_error)? != Some(hash) {
                    meta.set_admin_token_hash(hash).await.map_err(store_error)?;
                }
                (hash, None)
            }
            None => match meta.admin_token_hash().await.map_err(store_error)? {
                Some(hash) => (hash, None),
                None => {
                    let token = ids::new_admin_token();
                    let hash = ids::sha256(token.as_bytes());
                    meta.set_admin_token_hash(hash).await.map_err(store_error)?;
                    (hash, Some(token))
                }
            },
        };
        // Read before the memory is loaded: a change made meanwhile is followed, not lost.
        let follow_from = meta.last_change().await.map_err(store_error)?;
        let live = LiveMap::default();
        let health = HealthBook::default();
        live.load(meta.as_ref(), &health)
            .await
            .map_err(store_error)?;
        let assets = Arc::new(AssetCache::default());
        let jobs = Arc::new(JobClaims::new(
            Arc::clone(&meta),
            Arc::clone(&clock),
            config.job_lease,
        ));
        let compressor = Compressor::start(
            Arc::clone(&meta),
            Arc::clone(&blobs),
            Arc::clone(&assets),
            Arc::clone(&jobs),
            config.brotli_max_quality,
        );
        for hash in meta.uncompressed_assets().await.map_err(store_error)? {
            compressor.enqueue(hash);
        }
        let patch_book = Arc::new(PatchBook::default());
        let patch_channels = patch_book.load(meta.as_ref()).await.map_err(store_error)?;
        let patcher = Patcher::start(
            Arc::clone(&meta),
            Arc::clone(&blobs),
            Arc::clone(&patch_book),
            Arc::clone(&clock),
            Arc::clone(&jobs),
            PatchSettings {
                bases: config.patch_bases,
                max_percent: config.patch_max_percent,
                max_bundle_bytes: config.patch_max_bundle_bytes,
            },
        );
        for channel in patch_channels {
            patcher.channel_changed(channel);
        }
        let state = Self(Arc::new(Shared {
            recorder: Recorder::new(config.adoption_capacity),
            hot: HotAssets::new(config.asset_memory_bytes),
            compressor,
            patch_book,
            patcher,
            jobs,
            auth_throttle: Throttle::new(config.auth_failure_burst, config.auth_failure_interval),
            config,
            meta,
            blobs,
            live,
            health,
            assets,
            metrics: Metrics::default(),
            clock,
            admin_token_hash,
            keys: KeyCache::default(),
            auth_counters: AuthCounters::default(),
            publish_lock: tokio::sync::Mutex::new(()),
            follow_from,
        }));
        Ok(Opened {
            state,
            generated_admin_token,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The metadata store.
    #[must_use]
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// The asset blob store.
    #[must_use]
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// Now, from the state's clock.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_system_time(self.clock.now()).unwrap_or_else(|_| {
            Timestamp::from_unix_millis(0)
                .unwrap_or_else(|err| unreachable!("the epoch is a timestamp: {err}"))
        })
    }

    /// Writes pending adoption counts, key uses and device counts to the store now, and
    /// deletes counts older than the retention period (`config.adoption_retention_days`).
    ///
    /// # Errors
    /// When the store fails; the counts are kept for the next try.
    pub async fn flush(&self) -> StoreResult<()> {
        let adoption = self.recorder.flush(self.meta.as_ref()).await;
        let health = self.health.flush(self.meta.as_ref()).await;
        adoption.and(health)?;
        let retention_ms = i64::from(self.config.adoption_retention_days) * crate::adoption::DAY_MS;
        let pruned = self
            .meta
            .prune_counts(self.now().unix_millis() - retention_ms)
            .await?;
        if pruned > 0 {
            tracing::debug!(rows = pruned, "pruned counts past the retention period");
        }
        Ok(())
    }

    /// Starts the release ticker (health gates and ramps), every `config.release_tick`;
    /// abort the handle to stop it.
    #[must_use]
    pub fn spawn_release_ticker(&self) -> tokio::task::JoinHandle<()> {
        crate::releases::spawn_ticker(self, self.config.release_tick)
    }

    /// Starts following the changes other replicas make, when the store is shared; abort the
    /// handle to stop.
    #[must_use]
    pub fn spawn_follower(&self) -> Option<tokio::task::JoinHandle<()>> {
        crate::follow::spawn(self, self.follow_from)
    }

    /// Starts looking for background work left over (by a replica that died mid-job) every
    /// `config.job_sweep_interval`, when the store is shared; abort the handle to stop.
    #[must_use]
    pub fn spawn_job_sweeper(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !self.meta.shared() {
            return None;
        }
        let state = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.job_sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = state.sweep_jobs().await {
                    tracing::warn!(error = %err, "looking for left-over background work failed; retrying");
                }
            }
        }))
    }

    /// Queues what is left to do: assets without variants, the served channels' patches (the
    /// claims decide which replica does each; the follower keeps the patch book current).
    async fn sweep_jobs(&self) -> StoreResult<()> {
        for hash in self.meta.uncompressed_assets().await? {
            self.compressor.enqueue(hash);
        }
        for (channel, _) in self.live.all() {
            if !self.patch_book.pending(&channel) {
                self.patcher.channel_changed(channel);
            }
        }
        Ok(())
    }

    /// Judges every gated rollout and takes due ramp steps now (what the ticker does).
    pub async fn tick_releases(&self) {
        crate::releases::tick(self).await;
    }

    /// Starts the background task that flushes every `config.flush_interval`; abort the handle
    /// (and call [`AppState::flush`]) to stop it.
    #[must_use]
    pub fn spawn_flusher(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.flush_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = state.flush().await {
                    tracing::warn!(error = %err, "writing adoption counts failed; retrying at the next flush");
                }
            }
        })
    }

    /// The index entry of an asset a device asks for: like [`Self::asset`], but hashes found
    /// missing are remembered (bounded), so asking again costs no database read.
    pub(crate) async fn served_asset(&self, hash: &str) -> StoreResult<Option<Arc<AssetRecord>>> {
        if self.assets.known_missing(hash) {
            return Ok(None);
        }
        let mark = self.assets.mark();
        let found = self.asset(hash).await?;
        if found.is_none() {
            self.assets.note_missing(hash, mark);
        }
        Ok(found)
    }

    /// The index entry of an asset, from memory or the store.
    pub(crate) async fn asset(&self, hash: &str) -> StoreResult<Option<Arc<AssetRecord>>> {
        if let Some(asset) = self.assets.get(hash) {
            return Ok(Some(asset));
        }
        let mark = self.assets.mark();
        let found = self.meta.assets(&[hash.to_owned()]).await?;
        Ok(found
            .into_iter()
            .next()
            .map(|asset| self.assets.insert(asset, mark)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
    const BOTH: Encodings = Encodings {
        gzip: true,
        brotli: true,
    };

    fn record(encodings: Option<Encodings>) -> AssetRecord {
        AssetRecord {
            hash: HASH.to_owned(),
            key: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
            size: 10,
            content_type: "image/png".to_owned(),
            encodings,
            created_at: Timestamp::from_unix_millis(0).unwrap(),
        }
    }

    #[test]
    fn encodings_recorded_while_a_record_is_read_are_not_overwritten() {
        let cache = AssetCache::default();
        // A request reads the record from the store before the variants exist...
        let mark = cache.mark();
        let stale = record(None);
        // ...the compressor finishes and records them (the hash is not cached yet)...
        cache.set_encodings(HASH, BOTH);
        // ...then the request caches what it read.
        cache.insert(stale, mark);
        let cached = cache.get(HASH);
        assert!(
            cached
                .as_ref()
                .is_none_or(|asset| asset.encodings == Some(BOTH)),
            "the cache forgot the variants: {cached:?}"
        );
        // The next request reads the record with its variants, and that one is cached.
        let mark = cache.mark();
        cache.insert(record(Some(BOTH)), mark);
        assert_eq!(cache.get(HASH).unwrap().encodings, Some(BOTH));
    }

    #[test]
    fn a_record_without_encodings_never_replaces_one_with_them() {
        let cache = AssetCache::default();
        cache.insert(record(Some(BOTH)), cache.mark());
        let kept = cache.insert(record(None), cache.mark());
        assert_eq!(kept.encodings, Some(BOTH));
        assert_eq!(cache.get(HASH).unwrap().encodings, Some(BOTH));
    }

    #[test]
    fn encodings_reach_a_cached_record() {
        let cache = AssetCache::default();
        cache.insert(record(None), cache.mark());
        cache.set_encodings(HASH, BOTH);
        assert_eq!(cache.get(HASH).unwrap().encodings, Some(BOTH));
    }
}
