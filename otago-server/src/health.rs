//! Health per update, counted off the manifest path: for every live update the distinct
//! devices it was served to, that run it and that report it failed to launch.
//!
//! Counts are otago-core [`DeviceSketch`]es: fixed size whatever devices send, added to
//! without a lock, and merged with the store's (register-wise maximum) at each flush, so they
//! survive restarts and several replicas add up without counting a device twice. Only updates
//! that are live in some channel have counters, so made-up ids count nothing.

use std::sync::{Arc, Mutex};

use hashbrown::HashMap;
use otago_core::{DeviceHash, DeviceSketch, ManifestRequest, Role, UpdateHealth};

use crate::live::LiveChannel;
use crate::store::{HealthRecord, MetaStore, StoreResult};

/// The device counts of one update.
#[derive(Debug, Default)]
pub(crate) struct UpdateCounters {
    served: DeviceSketch,
    running: DeviceSketch,
    failed: DeviceSketch,
}

impl UpdateCounters {
    /// The current estimates.
    pub(crate) fn health(&self) -> UpdateHealth {
        UpdateHealth {
            served: self.served.estimate(),
            running: self.running.estimate(),
            failed: self.failed.estimate(),
        }
    }

    fn record(&self, update_id: &str) -> HealthRecord {
        HealthRecord {
            update_id: update_id.to_owned(),
            served: self.served.to_bytes(),
            running: self.running.to_bytes(),
            failed: self.failed.to_bytes(),
        }
    }

    fn merge(&self, record: &HealthRecord) -> Result<(), otago_core::Error> {
        self.served.merge_bytes(&record.served)?;
        self.running.merge_bytes(&record.running)?;
        self.failed.merge_bytes(&record.failed)
    }

    /// Whether any count grew since the last flush (clearing the flags).
    fn take_changed(&self) -> bool {
        // Not short-circuited: every flag must be cleared.
        let changes = [
            self.served.take_changed(),
            self.running.take_changed(),
            self.failed.take_changed(),
        ];
        changes.contains(&true)
    }
}

/// Every live update's counters, by lowercase id; entries of updates that left every
/// channel are written out and dropped at the next flush.
#[derive(Debug, Default)]
pub(crate) struct HealthBook {
    counters: Mutex<HashMap<String, Arc<UpdateCounters>>>,
}

impl HealthBook {
    /// The counters of `update_id`, created empty if it has none yet (the stored counts are
    /// merged in by [`HealthBook::load`] and every flush).
    pub(crate) fn counters(&self, update_id: &str) -> Arc<UpdateCounters> {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(counters.entry_ref(update_id).or_default())
    }

    /// The health of a live update, `None` when no channel serves it.
    pub(crate) fn peek(&self, update_id: &str) -> Option<UpdateHealth> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(update_id)
            .map(|counters| counters.health())
    }

    /// Merges the stored counts of these updates into their counters.
    pub(crate) async fn load(&self, meta: &dyn MetaStore, ids: &[String]) -> StoreResult<()> {
        for record in meta.health(ids).await? {
            if let Err(err) = self.counters(&record.update_id).merge(&record) {
                tracing::warn!(update = %record.update_id, error = %err, "ignoring unreadable stored device counts");
            }
        }
        Ok(())
    }

    /// Writes the counts that changed to the store, merging in what other replicas wrote,
    /// and drops the counters no channel holds any more.
    pub(crate) async fn flush(&self, meta: &dyn MetaStore) -> StoreResult<()> {
        let changed: Vec<(String, Arc<UpdateCounters>)> = {
            let mut counters = self
                .counters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = counters
                .iter()
                .filter(|(_, c)| c.take_changed())
                .map(|(id, c)| (id.clone(), Arc::clone(c)))
                .collect();
            // Held only by this map: no channel serves the update any more.
            counters.retain(|_, c| Arc::strong_count(c) > 1);
            changed
        };
        if changed.is_empty() {
            return Ok(());
        }
        let records = changed.iter().map(|(id, c)| c.record(id)).collect();
        let merged = match meta.merge_health(records).await {
            Ok(merged) => merged,
            Err(err) => {
                // Keep them marked changed for the next flush.
                for (_, counters) in &changed {
                    counters.served.mark_changed();
                }
                return Err(err);
            }
        };
        for (record, (_, counters)) in merged.iter().zip(&changed) {
            if let Err(err) = counters.merge(record) {
                tracing::warn!(update = %record.update_id, error = %err, "ignoring unreadable stored device counts");
            }
        }
        Ok(())
    }
}

/// The health a stored record counts.
pub(crate) fn estimate(record: &HealthRecord) -> UpdateHealth {
    let counters = UpdateCounters::default();
    if let Err(err) = counters.merge(record) {
        tracing::warn!(update = %record.update_id, error = %err, "ignoring unreadable stored device counts");
    }
    counters.health()
}

/// Counts one manifest request of `device` (the hash of its `EAS-Client-ID`): it was served `served` (a role of `channel`), runs
/// the update it names, and failed the ones it lists.
pub(crate) fn count(
    channel: &LiveChannel,
    request: &ManifestRequest,
    device: DeviceHash,
    served: Option<Role>,
) {
    if let Some(counters) = served.and_then(|role| channel.counters(role)) {
        counters.served.insert(device);
    }
    if let Some(current) = request.current_update_id.as_deref()
        && let Some(counters) = channel
            .prepared
            .role_of(current)
            .and_then(|role| channel.counters(role))
    {
        counters.running.insert(device);
    }
    for failed in &request.recent_failed_update_ids {
        if let Some(counters) = channel
            .prepared
            .role_of(failed)
            .and_then(|role| channel.counters(role))
        {
            counters.failed.insert(device);
        }
    }
}
