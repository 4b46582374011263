//! Counting off the request path: manifest requests per project, hour, platform, runtime
//! version and current update (for adoption charts), requests and distinct devices per
//! project, day, platform and runtime version (what the fleet runs), and API key uses
//! (`last_used_at`).
//!
//! Requests add to bounded in-memory maps; a background task writes them to the store in
//! batches, and once more at shutdown. Nothing a device sends can grow them past their caps:
//!
//! - adoption counters exist only for published runtime versions and updates (the live map
//!   knows them); every other request of a project, hour and platform lands in one bucket
//!   (runtime version `None`, update `other`). At most `capacity` counters between flushes,
//!   each under [`MAX_COUNTER_BYTES`].
//! - runtime version days: at most [`VERSIONS_PER_PROJECT_DAY`] runtime versions per project
//!   and day, the rest in one bucket per platform; each entry holds a fixed-size
//!   [`DeviceSketch`], so an entry is under [`MAX_DAY_ENTRY_BYTES`] whatever the number of
//!   devices. Only projects that exist are counted (unknown refs are answered 404 first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use otago_core::{
    DeviceHash, DeviceSketch, MAX_ID_LEN, MAX_RUNTIME_VERSION_LEN, Platform, SKETCH_BYTES,
    Timestamp,
};

use crate::store::{AdoptionCount, MetaStore, RuntimeVersionDay, StoreResult};

const HOUR_MS: i64 = 3_600_000;
/// One UTC day.
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;
/// Runtime versions counted separately per project and day; the rest share a bucket.
pub(crate) const VERSIONS_PER_PROJECT_DAY: usize = 64;
/// Length of a project ref (`p_` and ten characters).
const REF_LEN: usize = 12;
/// Upper bound of one adoption counter in memory: its strings (a project ref, a published
/// runtime version, an update id) plus the key, count and hash table overhead.
pub(crate) const MAX_COUNTER_BYTES: usize = REF_LEN + MAX_RUNTIME_VERSION_LEN + MAX_ID_LEN + 128;
/// Upper bound of one key use in memory: a key id (`k_` and ten characters), a timestamp,
/// overhead.
const MAX_KEY_USE_BYTES: usize = 12 + 64;
/// Upper bound of one runtime version day in memory: strings, the device sketch, overhead.
pub(crate) const MAX_DAY_ENTRY_BYTES: usize =
    REF_LEN + MAX_RUNTIME_VERSION_LEN + SKETCH_BYTES + 160;

/// A counter's key. Its fields hash like [`CountKeyRef`]'s (a `String` hashes as its `str`),
/// so a request finds its counter without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CountKey {
    project_ref: String,
    hour_start_ms: i64,
    platform: Platform,
    /// Empty: the bucket of runtime versions nothing is published for.
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

/// A runtime version day's key; hashes like [`DayKeyRef`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DayKey {
    project_ref: String,
    day_start_ms: i64,
    platform: Platform,
    /// Empty: the bucket of runtime versions past [`VERSIONS_PER_PROJECT_DAY`].
    runtime_version: String,
}

/// [`DayKey`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DayKeyRef<'a> {
    project_ref: &'a str,
    day_start_ms: i64,
    platform: Platform,
    runtime_version: &'a str,
}

impl hashbrown::Equivalent<DayKey> for DayKeyRef<'_> {
    fn equivalent(&self, key: &DayKey) -> bool {
        *self
            == DayKeyRef {
                project_ref: &key.project_ref,
                day_start_ms: key.day_start_ms,
                platform: key.platform,
                runtime_version: &key.runtime_version,
            }
    }
}

impl DayKeyRef<'_> {
    fn to_owned(self) -> DayKey {
        DayKey {
            project_ref: self.project_ref.to_owned(),
            day_start_ms: self.day_start_ms,
            platform: self.platform,
            runtime_version: self.runtime_version.to_owned(),
        }
    }
}

/// What a runtime version day holds between flushes.
#[derive(Debug, Default)]
struct DayCount {
    requests: u64,
    devices: DeviceSketch,
    last_seen_ms: i64,
}

#[derive(Debug, Default)]
struct Pending {
    counts: hashbrown::HashMap<CountKey, u64>,
    days: hashbrown::HashMap<DayKey, DayCount>,
    /// Distinct runtime versions (buckets aside) in `days`, per project and day.
    versions: hashbrown::HashMap<(String, i64), usize>,
    key_uses: HashMap<String, Timestamp>,
}

/// What one manifest request counts as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ManifestHit<'a> {
    pub(crate) project_ref: &'a str,
    pub(crate) platform: Platform,
    pub(crate) runtime_version: &'a str,
    /// Whether anything is published for this project, platform and runtime version.
    pub(crate) published: bool,
    /// The update the device runs, already reduced to a known id, `none`, `embedded` or `other`.
    pub(crate) current_update_id: &'a str,
    /// The device (its `EAS-Client-ID`), to count distinct devices.
    pub(crate) device: Option<DeviceHash>,
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
    /// Counters holding at most `capacity` distinct adoption keys (and as many runtime version
    /// days and key uses) between flushes.
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

    /// Counts one manifest request; dropped (and counted as dropped) when a map is full.
    pub(crate) fn manifest_request(&self, hit: ManifestHit<'_>) {
        let (runtime_version, current_update_id) = if hit.published {
            (hit.runtime_version, hit.current_update_id)
        } else {
            ("", "other")
        };
        let key = CountKeyRef {
            project_ref: hit.project_ref,
            hour_start_ms: hit.at_ms - hit.at_ms.rem_euclid(HOUR_MS),
            platform: hit.platform,
            runtime_version,
            current_update_id,
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
        self.count_day(&mut pending, hit);
    }

    fn count_day(&self, pending: &mut Pending, hit: ManifestHit<'_>) {
        let day_start_ms = hit.at_ms - hit.at_ms.rem_euclid(DAY_MS);
        let mut key = DayKeyRef {
            project_ref: hit.project_ref,
            day_start_ms,
            platform: hit.platform,
            runtime_version: hit.runtime_version,
        };
        if !pending.days.contains_key(&key) {
            let versions = pending
                .versions
                .get(&(hit.project_ref.to_owned(), day_start_ms))
                .copied()
                .unwrap_or(0);
            if versions >= VERSIONS_PER_PROJECT_DAY {
                key.runtime_version = "";
            }
        }
        let full = pending.days.len() >= self.capacity;
        let day = match pending.days.get_mut(&key) {
            Some(day) => day,
            None if full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => {
                if !key.runtime_version.is_empty() {
                    *pending
                        .versions
                        .entry((hit.project_ref.to_owned(), day_start_ms))
                        .or_default() += 1;
                }
                pending.days.entry(key.to_owned()).or_default()
            }
        };
        day.requests += 1;
        day.last_seen_ms = day.last_seen_ms.max(hit.at_ms);
        if let Some(device) = hit.device {
            day.devices.insert(device);
        }
    }

    /// Upper bound of the memory the pending counters can take: `capacity` adoption counters,
    /// as many runtime version days and as many key uses.
    pub(crate) fn max_bytes(&self) -> usize {
        self.capacity * (MAX_COUNTER_BYTES + MAX_DAY_ENTRY_BYTES + MAX_KEY_USE_BYTES)
    }

    /// Notes that a key was used.
    pub(crate) fn key_used(&self, key_id: &str, at: Timestamp) {
        let mut pending = self.lock();
        if pending.key_uses.len() < self.capacity || pending.key_uses.contains_key(key_id) {
            pending.key_uses.insert(key_id.to_owned(), at);
        }
    }

    /// Requests not counted because a map was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything pending to the store; on failure it is kept for the next flush.
    pub(crate) async fn flush(&self, meta: &dyn MetaStore) -> StoreResult<()> {
        let taken = std::mem::take(&mut *self.lock());
        if taken.counts.is_empty() && taken.days.is_empty() && taken.key_uses.is_empty() {
            return Ok(());
        }
        let counts: Vec<AdoptionCount> = taken
            .counts
            .iter()
            .map(|(key, &count)| AdoptionCount {
                project_ref: key.project_ref.clone(),
                hour_start_ms: key.hour_start_ms,
                platform: key.platform,
                runtime_version: Some(key.runtime_version.clone()).filter(|rv| !rv.is_empty()),
                current_update_id: key.current_update_id.clone(),
                count,
            })
            .collect();
        let days: Vec<RuntimeVersionDay> = taken
            .days
            .iter()
            .map(|(key, day)| RuntimeVersionDay {
                project_ref: key.project_ref.clone(),
                day_start_ms: key.day_start_ms,
                platform: key.platform,
                runtime_version: Some(key.runtime_version.clone()).filter(|rv| !rv.is_empty()),
                requests: day.requests,
                devices: day.devices.to_bytes(),
                last_seen_ms: day.last_seen_ms,
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
            if !days.is_empty() {
                meta.add_runtime_version_days(days, VERSIONS_PER_PROJECT_DAY)
                    .await?;
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

    /// Puts back what a failed flush took. Runtime version days are merged back only while
    /// there is room (the store may have written part of them; a retry adds them again at
    /// worst once).
    fn restore(&self, taken: Pending) {
        let mut pending = self.lock();
        for (key, count) in taken.counts {
            if pending.counts.len() < self.capacity || pending.counts.contains_key(&key) {
                *pending.counts.entry(key).or_default() += count;
            } else {
                self.dropped.fetch_add(count, Ordering::Relaxed);
            }
        }
        for (key, day) in taken.days {
            if pending.days.len() >= self.capacity && !pending.days.contains_key(&key) {
                self.dropped.fetch_add(day.requests, Ordering::Relaxed);
                continue;
            }
            if !key.runtime_version.is_empty() && !pending.days.contains_key(&key) {
                *pending
                    .versions
                    .entry((key.project_ref.clone(), key.day_start_ms))
                    .or_default() += 1;
            }
            let entry = pending.days.entry(key).or_default();
            entry.requests += day.requests;
            // Both sketches are whole registers of this process: merging cannot fail.
            let _ = entry.devices.merge_bytes(&day.devices.to_bytes());
            entry.last_seen_ms = entry.last_seen_ms.max(day.last_seen_ms);
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

    fn hit<'a>(runtime_version: &'a str, id: &'a str, at_ms: i64) -> ManifestHit<'a> {
        ManifestHit {
            project_ref: "p_0123456789",
            platform: Platform::Ios,
            runtime_version,
            published: true,
            current_update_id: id,
            device: Some(DeviceHash::of(id)),
            at_ms,
        }
    }

    #[test]
    fn counts_are_bounded_and_bucketed_by_hour() {
        let recorder = Recorder::new(2);
        recorder.manifest_request(hit("1", "a", 10));
        recorder.manifest_request(hit("1", "a", HOUR_MS - 1));
        recorder.manifest_request(hit("1", "a", HOUR_MS));
        recorder.manifest_request(hit("1", "b", 0));
        assert_eq!(recorder.dropped(), 1);
        let pending = recorder.lock();
        assert_eq!(pending.counts.values().sum::<u64>(), 3);
        assert_eq!(pending.counts.len(), 2);
        let day = &pending.days[&DayKeyRef {
            project_ref: "p_0123456789",
            day_start_ms: 0,
            platform: Platform::Ios,
            runtime_version: "1",
        }];
        assert_eq!((day.requests, day.devices.estimate()), (4, 2));
    }

    #[test]
    fn unpublished_runtime_versions_share_one_counter() {
        let recorder = Recorder::new(1_000);
        for n in 0..500 {
            let version = format!("made-up-{n}");
            let id = format!("id-{n}");
            recorder.manifest_request(ManifestHit {
                published: false,
                ..hit(&version, &id, 0)
            });
        }
        let pending = recorder.lock();
        assert_eq!(pending.counts.len(), 1);
        let (key, count) = pending.counts.iter().next().unwrap();
        assert_eq!((key.runtime_version.as_str(), *count), ("", 500));
        // Runtime version days: the first 64 by name, the rest in the bucket.
        assert_eq!(pending.days.len(), VERSIONS_PER_PROJECT_DAY + 1);
        let bucket = &pending.days[&DayKeyRef {
            project_ref: "p_0123456789",
            day_start_ms: 0,
            platform: Platform::Ios,
            runtime_version: "",
        }];
        assert_eq!(bucket.requests, 500 - VERSIONS_PER_PROJECT_DAY as u64);
        assert_eq!(recorder.dropped(), 0);
    }
}
