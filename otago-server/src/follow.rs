//! Following what other replicas change in a shared store.
//!
//! Every replica answers devices from its own memory. When the store is shared (PostgreSQL),
//! each change one replica makes is appended to the store's change log; this task reads the
//! log when the store signals a change, and at least every second (so a lost signal only
//! delays it), and brings the memory up to date: a channel's answers are rebuilt from the
//! store and installed, a revoked key is forgotten, a project appears or goes, an asset's
//! compressed variants and the patches become known. A replica follows its own changes too;
//! rebuilding what it has already installed is cheap and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::live;
use crate::state::AppState;
use crate::store::{Change, ChannelKey, StoreResult};

/// The longest a change waits for a replica to look at the log.
const RECHECK: Duration = Duration::from_secs(1);

/// Changes read at once.
const BATCH: u32 = 1000;

/// Starts following the store from position `from` (read before the memory was loaded), if
/// the store is shared; abort the handle to stop.
pub(crate) fn spawn(state: &AppState, from: i64) -> Option<tokio::task::JoinHandle<()>> {
    if !state.meta.shared() {
        return None;
    }
    let state = state.clone();
    Some(tokio::spawn(async move {
        let mut seen = from;
        let mut more = false;
        loop {
            if !more {
                state.meta.wait_for_change(RECHECK).await;
            }
            let before = seen;
            match state.meta.changes_since(seen, BATCH).await {
                Ok(changes) => {
                    more = changes.len() == BATCH as usize;
                    if let Some((last, _)) = changes.last() {
                        seen = *last;
                    }
                    apply(&state, changes.into_iter().map(|(_, change)| change)).await;
                }
                Err(err) => {
                    more = false;
                    tracing::warn!(error = %err, "cannot read the other replicas' changes; retrying");
                    continue;
                }
            }
            // Changes after `before` dropped as too old were never seen: reload everything.
            match state.meta.changes_pruned_through().await {
                Ok(pruned) if pruned > before => match catch_up(&state).await {
                    // Past the mark even if the log were empty, so this runs once.
                    Ok(last) => seen = seen.max(last).max(pruned),
                    Err(err) => {
                        seen = before;
                        tracing::warn!(error = %err, "cannot reload after missing changes; retrying");
                    }
                },
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the change log's pruning mark; retrying");
                }
            }
        }
    }))
}

/// Reloads everything another replica may have changed (after missing changes): every channel
/// and project the store or this replica knows, every key, the patches. Returns the log's
/// position read before reloading.
async fn catch_up(state: &AppState) -> StoreResult<i64> {
    tracing::warn!(
        "missed changes the log has dropped (cut off from the database for long); reloading everything"
    );
    let last = state.meta.last_change().await?;
    let mut projects: Vec<String> = state
        .meta
        .projects()
        .await?
        .into_iter()
        .map(|project| project.r#ref)
        .collect();
    projects.extend(state.live.project_refs());
    projects.sort();
    projects.dedup();
    let mut channels = state.meta.channels().await?;
    channels.extend(state.live.all().into_iter().map(|(key, _)| key));
    channels.sort();
    channels.dedup();
    state.keys.clear();
    let changes = projects
        .into_iter()
        .map(Change::Project)
        .chain(channels.into_iter().map(Change::Channel))
        .chain([Change::Patches]);
    apply(state, changes).await;
    Ok(last)
}

/// Applies changes, each distinct one once.
async fn apply(state: &AppState, changes: impl Iterator<Item = Change>) {
    let mut distinct: Vec<Change> = Vec::new();
    for change in changes {
        if !distinct.contains(&change) {
            distinct.push(change);
        }
    }
    for change in distinct {
        if let Err(err) = apply_one(state, &change).await {
            tracing::warn!(?change, error = %err, "cannot follow a change of another replica");
        }
    }
}

async fn apply_one(state: &AppState, change: &Change) -> StoreResult<()> {
    match change {
        Change::Channel(key) => {
            // An asset a device asked for before another replica stored it may be named now.
            state.assets.forget_missing();
            reload_channel(state, key).await
        }
        Change::Project(project_ref) => {
            if state.meta.project(project_ref).await?.is_some() {
                state.live.add_project(project_ref);
            } else {
                state.live.remove_project(project_ref);
                state.keys.remove_project(project_ref);
            }
            Ok(())
        }
        Change::Key(key_id) => {
            state.keys.remove_key(key_id);
            Ok(())
        }
        Change::Asset(hash) => {
            let found = state.meta.assets(std::slice::from_ref(hash)).await?;
            if let Some(encodings) = found.first().and_then(|asset| asset.encodings) {
                state.assets.set_encodings(hash, encodings);
            }
            Ok(())
        }
        Change::Patches => state.patch_book.load(state.meta.as_ref()).await.map(drop),
    }
}

/// Rebuilds a channel's answers from the store and installs them. Under the publish lock, so
/// that a local publish cannot install its answers between this read and this install.
async fn reload_channel(state: &AppState, key: &ChannelKey) -> StoreResult<()> {
    let _serialized = state.publish_lock.lock().await;
    reload_channel_locked(state, key).await
}

/// [`reload_channel`] for a caller that holds the publish lock.
pub(crate) async fn reload_channel_locked(state: &AppState, key: &ChannelKey) -> StoreResult<()> {
    let record = state.meta.release(key).await?;
    let channel = match live::prepare(&record, &state.health) {
        Ok(channel) => channel,
        Err(err) => {
            tracing::error!(project = %key.project_ref, platform = %key.platform, runtime_version = %key.runtime_version, error = %err, "cannot prepare the answers of a channel another replica changed");
            return Ok(());
        }
    };
    if let Some(channel) = &channel {
        let ids: Vec<String> = channel.known_ids.to_vec();
        state.health.load(state.meta.as_ref(), &ids).await?;
    }
    state
        .live
        .install(vec![(key.clone(), channel.map(Arc::new))]);
    Ok(())
}
