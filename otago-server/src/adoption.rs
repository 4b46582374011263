//! Counting off the request path: manifest requests per project, hour, platform, runtime
//! version and current update (for adoption charts), and API key uses (`last_used_at`).
//!
//! Requests add to a bounded in-memory map; a background task writes it to the store in
//! batches, and once more at shutdown.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use otago_core::{Platform, Timestamp};

use crate::store::{AdoptionCount, MetaStore, StoreResult};

const HOUR_MS: i64 = 3_600_000;

/// A counter's key. Its fields hash like [`CountKeyRef`]'s (a `String` hashes as its `str`),
/// so a request finds its counter without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CountKey {
    project_ref: String,
    hour_start_ms: i64,
    platform: Platform,
    runtime_version: String,
    current_update_id: String,
}

/// [`CountKey`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CountKeyRef<'a> {
    project_ref: &'a str,
    hour_start_ms: i64,
    platform: Platform,
    runtime_version: &'a str,
    current_update_id: &'a str,
}

impl hashbrown::Equivalent<CountKey> for CountKeyRef<'_> {
    fn equivalent(&self, key: &CountKey) -> bool {
        *self
            == CountKeyRef {
                project_ref: &key.project_ref,
                hour_start_ms: key.hour_start_ms,
                platform: key.platform,
                runtime_version: &key.runtime_version,
                current_update_id: &key.current_update_id,
            }
    }
}

impl CountKeyRef<'_> {
    fn to_owned(self) -> CountKey {
        CountKey {
            project_ref: self.project_ref.to_owned(),
            hour_start_ms: self.hour_start_ms,
            platform: self.platform,
            runtime_version: self.runtime_version.to_owned(),
            current_update_id: self.current_update_id.to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    counts: hashbrown::HashMap<CountKey, u64>,
    key_uses: HashMap<String, Timestamp>,
}

/// What one manifest request counts as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ManifestHit<'a> {
    pub(crate) project_ref: &'a str,
    pub(crate) platform: Platform,
    pub(crate) runtime_version: &'a str,
    /// The update the device runs, already reduced to a known id, `none`, `embedded` or `other`.
    pub(crate) current_update_id: &'a str,
    pub(crate) at_ms: i64,
}

/// The bounded in-memory counters.
#[derive(Debug)]
pub(crate) struct Recorder {
    pending: Mutex<Pending>,
    capacity: usize,
    dropped: AtomicU64,
}

impl Recorder {
    /// Counters holding at most `capacity` distinct keys between flushes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            capacity,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one manifest request; dropped (and counted as dropped) when the map is full.
    pub(crate) fn manifest_request(&self, hit: ManifestHit<'_>) {
        let key = CountKeyRef {
            project_ref: hit.project_ref,
            hour_start_ms: hit.at_ms - hit.at_ms.rem_euclid(HOUR_MS),
            platform: hit.platform,
            runtime_version: hit.runtime_version,
            current_update_id: hit.current_update_id,
        };
        let mut pending = self.lock();
        let full = pending.counts.len() >= self.capacity;
        match pending.counts.get_mut(&key) {
            Some(count) => *count += 1,
            None if full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                pending.counts.insert(key.to_owned(), 1);
            }
        }
    }

    /// Notes that a key was used.
    pub(crate) fn key_used(&self, key_id: &str, at: Timestamp) {
        let mut pending = self.lock();
        if pending.key_uses.len() < self.capacity || pending.key_uses.contains_key(key_id) {
            pending.key_uses.insert(key_id.to_owned(), at);
        }
    }

    /// Requests not counted because the map was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything pending to the store; on failure it is kept for the next flush.
    pub(crate) async fn flush(&self, meta: &dyn MetaStore) -> StoreResult<()> {
        let taken = std::mem::take(&mut *self.lock());
        if taken.counts.is_empty() && taken.key_uses.is_empty() {
            return Ok(());
        }
        let counts: Vec<AdoptionCount> = taken
            .counts
            .iter()
            .map(|(key, &count)| AdoptionCount {
                project_ref: key.project_ref.clone(),
                hour_start_ms: key.hour_start_ms,
                platform: key.platform,
                runtime_version: key.runtime_version.clone(),
                current_update_id: key.current_update_id.clone(),
                count,
            })
            .collect();
        let uses: Vec<(String, Timestamp)> = taken
            .key_uses
            .iter()
            .map(|(id, at)| (id.clone(), *at))
            .collect();
        let result = async {
            if !counts.is_empty() {
                meta.add_adoption(counts).await?;
            }
            if !uses.is_empty() {
                meta.touch_keys(uses).await?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.restore(taken);
        }
        result
    }

    fn restore(&self, taken: Pending) {
        let mut pending = self.lock();
        for (key, count) in taken.counts {
            if pending.counts.len() < self.capacity || pending.counts.contains_key(&key) {
                *pending.counts.entry(key).or_default() += count;
            } else {
                self.dropped.fetch_add(count, Ordering::Relaxed);
            }
        }
        for (id, at) in taken.key_uses {
            let entry = pending.key_uses.entry(id).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_and_bucketed_by_hour() {
        let recorder = Recorder::new(2);
        let hit = |id, at_ms| ManifestHit {
            project_ref: "p_0123456789",
            platform: Platform::Ios,
            runtime_version: "1",
            current_update_id: id,
            at_ms,
        };
        recorder.manifest_request(hit("a", 10));
        recorder.manifest_request(hit("a", HOUR_MS - 1));
        recorder.manifest_request(hit("a", HOUR_MS));
        recorder.manifest_request(hit("b", 0));
        assert_eq!(recorder.dropped(), 1);
        let pending = recorder.lock();
        assert_eq!(pending.counts.values().sum::<u64>(), 3);
        assert_eq!(pending.counts.len(), 2);
    }
}
