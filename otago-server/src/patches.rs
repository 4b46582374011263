//! Bundle patches: the book of which launch asset every update runs and which verified patches
//! exist (in memory, so the asset route answers without the database), and the background
//! worker that makes the patches a channel wants, one at a time on a blocking thread.
//!
//! After a publish or an embedded bundle's registration the channel is queued; the worker asks
//! otago-core which pairs are wanted ([`otago_core::wanted_patches`]), makes the missing ones
//! ([`otago_core::make_patch`], which verifies each against its target's hash) and records
//! each pair, kept or not, so none is computed twice. At start every channel is queued again,
//! so a pair the server stopped before finishing is made then.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::StreamExt as _;
use otago_core::{PatchPair, Timestamp, UpdateId, make_patch, patch_worth_keeping, wanted_patches};
use tokio::sync::mpsc;

use crate::jobs::{JobClaims, JobKind};
use crate::state::Clock;
use crate::store::{
    BlobStore, ChannelKey, Encoding, LaunchAssetRecord, MetaStore, PatchRecord, StoreError,
    StoreResult,
};

/// How many of a channel's newest updates the worker looks at: the patch window's distinct
/// launch assets are found among them, and they hold the updates published since it last
/// looked (it looks after every publish).
const RECENT_UPDATES: u32 = 64;

/// A verified patch the asset route may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServedPatch {
    /// The base launch asset's hash.
    pub(crate) base_hash: String,
    /// The patch blob's hash.
    pub(crate) hash: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

#[derive(Debug, Default)]
struct Book {
    /// Update id (lowercase) → the hash of the launch asset a device running it holds.
    launch_of: HashMap<String, String>,
    /// Target hash → base hash → the kept patch.
    kept: HashMap<String, HashMap<String, ServedPatch>>,
    /// Pairs with a record, kept or not.
    tried: HashSet<(String, String)>,
    /// Channels queued or being worked on, with how many times they were queued.
    pending: HashMap<ChannelKey, usize>,
}

/// What the server knows of launch assets and patches.
#[derive(Debug, Default)]
pub(crate) struct PatchBook(RwLock<Book>);

impl PatchBook {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Book> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Book> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The patch to `target` for a device that runs update `base`, if one was made.
    pub(crate) fn find(&self, base: &UpdateId, target: &str) -> Option<ServedPatch> {
        let book = self.read();
        let base_hash = book.launch_of.get(&base.to_string())?;
        book.kept.get(target)?.get(base_hash).cloned()
    }

    /// The launch asset of an update (or registered embedded bundle), if it has one.
    pub(crate) fn launch_asset_of(&self, update_id: &str) -> Option<String> {
        self.read()
            .launch_of
            .get(&update_id.to_ascii_lowercase())
            .cloned()
    }

    /// Whether the patches of a channel are still being made (it is queued or being worked on).
    pub(crate) fn pending(&self, channel: &ChannelKey) -> bool {
        self.read().pending.contains_key(channel)
    }

    fn queued(&self, channel: &ChannelKey) {
        *self.write().pending.entry(channel.clone()).or_default() += 1;
    }

    fn worked_on(&self, channel: &ChannelKey) {
        let mut book = self.write();
        if let Some(count) = book.pending.get_mut(channel) {
            *count -= 1;
            if *count == 0 {
                book.pending.remove(channel);
            }
        }
    }

    /// Whether some patch leads to `target` (its answers then vary with the patch headers).
    pub(crate) fn is_target(&self, target: &str) -> bool {
        self.read().kept.contains_key(target)
    }

    /// The kept patches to `target`, by base hash.
    pub(crate) fn to_target(&self, target: &str) -> Vec<ServedPatch> {
        let mut patches: Vec<_> = self
            .read()
            .kept
            .get(target)
            .map(|by_base| by_base.values().cloned().collect())
            .unwrap_or_default();
        patches.sort_by(|a, b| a.base_hash.cmp(&b.base_hash));
        patches
    }

    /// The update ids whose launch asset is `hash`, sorted.
    pub(crate) fn updates_running(&self, hash: &str) -> Vec<String> {
        let mut ids: Vec<_> = self
            .read()
            .launch_of
            .iter()
            .filter(|(_, h)| *h == hash)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Stops serving a patch whose stored bytes failed their integrity check.
    pub(crate) fn withdraw(&self, patch: &ServedPatch, target: &str) {
        let mut book = self.write();
        if let Some(by_base) = book.kept.get_mut(target) {
            by_base.remove(&patch.base_hash);
            if by_base.is_empty() {
                book.kept.remove(target);
            }
        }
    }

    fn learn_launch_assets(&self, records: &[LaunchAssetRecord]) {
        let mut book = self.write();
        for record in records {
            book.launch_of.insert(
                record.update_id.to_ascii_lowercase(),
                record.asset_hash.clone(),
            );
        }
    }

    fn learn_patch(&self, record: &PatchRecord) {
        let pair = (record.base_hash.clone(), record.target_hash.clone());
        let mut book = self.write();
        if let Some((hash, size)) = &record.patch {
            book.kept
                .entry(record.target_hash.clone())
                .or_default()
                .insert(
                    record.base_hash.clone(),
                    ServedPatch {
                        base_hash: record.base_hash.clone(),
                        hash: hash.clone(),
                        size: *size,
                    },
                );
        }
        book.tried.insert(pair);
    }

    fn tried(&self, base: &str, target: &str) -> bool {
        self.read()
            .tried
            .contains(&(base.to_owned(), target.to_owned()))
    }

    /// Loads every launch asset and patch record; returns the channels that have launch assets.
    pub(crate) async fn load(&self, meta: &dyn MetaStore) -> StoreResult<Vec<ChannelKey>> {
        let records = meta.all_launch_assets().await?;
        self.learn_launch_assets(&records);
        for patch in meta.patches().await? {
            self.learn_patch(&patch);
        }
        let mut channels: Vec<_> = records.into_iter().map(|r| r.channel).collect();
        channels.sort();
        channels.dedup();
        Ok(channels)
    }
}

/// How patches are made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PatchSettings {
    /// Earlier updates each launch asset is patched from; 0: none.
    pub(crate) bases: usize,
    /// Kept only at most this many hundredths of the target.
    pub(crate) max_percent: u8,
    /// Larger launch assets are not diffed.
    pub(crate) max_bundle_bytes: u64,
}

/// The queue of channels whose patches to bring up to date.
#[derive(Debug, Clone)]
pub(crate) struct Patcher {
    queue: mpsc::UnboundedSender<ChannelKey>,
    book: Arc<PatchBook>,
}

/// What the worker needs.
struct Worker {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    book: Arc<PatchBook>,
    clock: Arc<dyn Clock>,
    claims: Arc<JobClaims>,
    settings: PatchSettings,
}

impl Patcher {
    /// Starts the worker; it stops when every handle is dropped.
    pub(crate) fn start(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        book: Arc<PatchBook>,
        clock: Arc<dyn Clock>,
        claims: Arc<JobClaims>,
        settings: PatchSettings,
    ) -> Self {
        let (queue, mut pending) = mpsc::unbounded_channel::<ChannelKey>();
        let worker = Worker {
            meta,
            blobs,
            book: Arc::clone(&book),
            clock,
            claims,
            settings,
        };
        tokio::spawn(async move {
            while let Some(channel) = pending.recv().await {
                if let Err(err) = worker.bring_up_to_date(&channel).await {
                    tracing::warn!(project = %channel.project_ref, platform = %channel.platform, runtime_version = %channel.runtime_version, error = %err, "making bundle patches failed; devices download whole bundles");
                }
                worker.book.worked_on(&channel);
            }
        });
        Self { queue, book }
    }

    /// Queues a channel whose updates or embedded bundles changed.
    pub(crate) fn channel_changed(&self, channel: ChannelKey) {
        self.book.queued(&channel);
        if let Err(mpsc::error::SendError(channel)) = self.queue.send(channel) {
            self.book.worked_on(&channel);
        }
    }
}

impl Worker {
    async fn bring_up_to_date(&self, channel: &ChannelKey) -> StoreResult<()> {
        let records = self
            .meta
            .recent_launch_assets(channel.clone(), RECENT_UPDATES)
            .await?;
        self.book.learn_launch_assets(&records);
        if self.settings.bases == 0 {
            return Ok(());
        }
        let recent: Vec<&str> = records
            .iter()
            .filter(|r| !r.embedded)
            .map(|r| r.asset_hash.as_str())
            .collect();
        let embedded: Vec<&str> = records
            .iter()
            .filter(|r| r.embedded)
            .map(|r| r.asset_hash.as_str())
            .collect();
        let todo: Vec<_> = wanted_patches(&recent, &embedded, self.settings.bases)
            .into_iter()
            .filter(|pair| !self.book.tried(&pair.base, &pair.target))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let job = format!(
            "{}/{}/{}",
            channel.project_ref, channel.platform, channel.runtime_version
        );
        self.claims
            .run(JobKind::Patches, &job, self.make_all(todo))
            .await?;
        Ok(())
    }

    /// Makes and records each patch of `todo` that is still to make (under the job's claim);
    /// `None` when another replica made them all meanwhile.
    async fn make_all(&self, todo: Vec<PatchPair>) -> StoreResult<Option<()>> {
        if self.meta.shared() {
            for patch in self.meta.patches().await? {
                self.book.learn_patch(&patch);
            }
        }
        let todo: Vec<_> = todo
            .into_iter()
            .filter(|pair| !self.book.tried(&pair.base, &pair.target))
            .collect();
        if todo.is_empty() {
            return Ok(None);
        }
        for pair in todo {
            let patch = self.make(&pair.base, &pair.target).await?;
            let record = PatchRecord {
                base_hash: pair.base,
                target_hash: pair.target,
                patch,
                created_at: Timestamp::from_system_time(self.clock.now())
                    .map_err(StoreError::backend)?,
            };
            self.meta.add_patch(record.clone()).await?;
            self.book.learn_patch(&record);
            match &record.patch {
                Some((_, size)) => {
                    tracing::info!(base = %record.base_hash, target = %record.target_hash, bytes = size, "bundle patch made");
                }
                None => {
                    tracing::debug!(base = %record.base_hash, target = %record.target_hash, "bundle patch not kept");
                }
            }
        }
        Ok(Some(()))
    }

    /// Makes, verifies and stores one patch; `None` when it is not worth keeping.
    async fn make(&self, base_hash: &str, target_hash: &str) -> StoreResult<Option<(String, u64)>> {
        let assets = self
            .meta
            .assets(&[base_hash.to_owned(), target_hash.to_owned()])
            .await?;
        let too_large = assets
            .iter()
            .any(|a| a.size > self.settings.max_bundle_bytes);
        if assets.len() < 2 || too_large {
            return Ok(None);
        }
        let read = |hash: &str| {
            let hash = hash.to_owned();
            async move {
                self.blobs
                    .read(&hash, Encoding::Identity)
                    .await?
                    .ok_or_else(|| StoreError::backend(format!("asset {hash} has no file")))
            }
        };
        let (base, target) = (read(base_hash).await?, read(target_hash).await?);
        let full = target.len() as u64;
        let target_hash_owned = target_hash.to_owned();
        let patch =
            tokio::task::spawn_blocking(move || make_patch(&base, &target, &target_hash_owned))
                .await
                .map_err(StoreError::backend)?;
        let patch = match patch {
            Ok(patch) => patch,
            // The stored target does not hash to its name, or the differ erred: recorded as
            // not kept (so not retried), and the channel's other pairs are still made.
            Err(err) => {
                tracing::error!(base = %base_hash, target = %target_hash, error = %err, "a bundle patch could not be made; devices download the whole bundle");
                return Ok(None);
            }
        };
        let size = patch.bytes.len() as u64;
        if !patch_worth_keeping(size, full, self.settings.max_percent) {
            return Ok(None);
        }
        let body = futures_util::stream::once(async move { Ok(Bytes::from(patch.bytes)) }).boxed();
        self.blobs
            .put(&patch.hash, "application/octet-stream", size, body)
            .await
            .map_err(|err| StoreError::backend(format!("storing a patch failed: {err}")))?;
        Ok(Some((patch.hash, size)))
    }
}
