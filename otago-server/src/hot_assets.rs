//! Asset bytes kept in memory, within a byte budget, so the assets every device downloads
//! after a release (its launch bundle, mostly) are sent straight from memory instead of being
//! read from disk for each request.
//!
//! Assets are immutable, so an entry never goes stale. The least recently served entries are
//! dropped to make room. An asset is read into memory by one request at a time: others
//! asking for it meanwhile stream it from the blob store, so a rush on a new release never
//! holds more than one extra copy of it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::store::Encoding;

/// An asset in one encoding.
type Key = (String, Encoding);

/// The variants of one asset held, by [`slot`].
type Variants = [Option<Arc<Entry>>; 3];

fn slot(encoding: Encoding) -> usize {
    match encoding {
        Encoding::Identity => 0,
        Encoding::Gzip => 1,
        Encoding::Brotli => 2,
    }
}

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    /// The tick of its last use (higher is more recent).
    last_used: AtomicU64,
}

/// The in-memory asset bytes.
#[derive(Debug)]
pub(crate) struct HotAssets {
    budget: u64,
    entries: RwLock<HashMap<String, Variants>>,
    loading: Mutex<HashSet<Key>>,
    tick: AtomicU64,
}

/// The right to read one asset into memory; dropping it lets the next request try.
#[derive(Debug)]
pub(crate) struct LoadPermit<'a> {
    hot: &'a HotAssets,
    key: Key,
}

impl HotAssets {
    /// Holds at most `budget` bytes; 0 turns it off.
    pub(crate) fn new(budget: u64) -> Self {
        Self {
            budget,
            entries: RwLock::default(),
            loading: Mutex::default(),
            tick: AtomicU64::new(0),
        }
    }

    /// The largest asset kept: a quarter of the budget, so one asset never pushes out
    /// everything else.
    fn max_entry(&self) -> u64 {
        self.budget / 4
    }

    /// The bytes of `hash` in `encoding`, if held.
    pub(crate) fn get(&self, hash: &str, encoding: Encoding) -> Option<Bytes> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(hash)?[slot(encoding)].as_ref()?;
        entry
            .last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(entry.bytes.clone())
    }

    /// Permission to read an asset of `size` plain bytes into memory: `None` when it is too
    /// large to keep or another request is reading it now.
    pub(crate) fn start_load(
        &self,
        hash: &str,
        encoding: Encoding,
        size: u64,
    ) -> Option<LoadPermit<'_>> {
        if size > self.max_entry() {
            return None;
        }
        let key = (hash.to_owned(), encoding);
        let started = self
            .loading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone());
        // (The permit is made only when started: dropping one releases the key.)
        if started {
            Some(LoadPermit { hot: self, key })
        } else {
            None
        }
    }

    fn insert(&self, key: Key, bytes: Bytes) {
        let size = bytes.len() as u64;
        if size > self.max_entry() {
            return;
        }
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut used = held(&entries);
        while used + size > self.budget {
            let oldest = entries
                .iter()
                .flat_map(|(hash, variants)| {
                    variants
                        .iter()
                        .enumerate()
                        .filter_map(move |(slot, entry)| {
                            entry
                                .as_ref()
                                .map(|e| (e.last_used.load(Ordering::Relaxed), hash, slot))
                        })
                })
                .min()
                .map(|(_, hash, slot)| (hash.clone(), slot));
            let Some((hash, slot)) = oldest else {
                break;
            };
            if let Some(variants) = entries.get_mut(&hash) {
                if let Some(evicted) = variants[slot].take() {
                    used -= evicted.bytes.len() as u64;
                }
                if variants.iter().all(Option::is_none) {
                    entries.remove(&hash);
                }
            }
        }
        let last_used = AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed));
        let (hash, encoding) = key;
        entries.entry(hash).or_default()[slot(encoding)] =
            Some(Arc::new(Entry { bytes, last_used }));
    }

    /// Bytes held now.
    #[cfg(test)]
    fn used(&self) -> u64 {
        held(
            &self
                .entries
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

fn held(entries: &HashMap<String, Variants>) -> u64 {
    entries
        .values()
        .flatten()
        .flatten()
        .map(|e| e.bytes.len() as u64)
        .sum()
}

impl LoadPermit<'_> {
    /// Keeps the bytes read (an asset over the size limit is left out).
    pub(crate) fn finish(self, bytes: Bytes) {
        self.hot.insert(self.key.clone(), bytes);
    }
}

impl Drop for LoadPermit<'_> {
    fn drop(&mut self) {
        self.hot
            .loading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(hot: &HotAssets, hash: &str, size: usize) {
        let permit = hot
            .start_load(hash, Encoding::Identity, size as u64)
            .expect("a permit");
        permit.finish(Bytes::from(vec![0u8; size]));
    }

    #[test]
    fn holds_within_budget_dropping_the_least_recently_served() {
        let hot = HotAssets::new(400);
        load(&hot, "a", 100);
        load(&hot, "b", 100);
        load(&hot, "c", 100);
        assert!(hot.get("a", Encoding::Identity).is_some());
        load(&hot, "d", 100);
        load(&hot, "e", 100);
        assert!(hot.used() <= 400);
        assert!(
            hot.get("b", Encoding::Identity).is_none(),
            "b was least recent"
        );
        for kept in ["a", "c", "d", "e"] {
            assert_eq!(
                hot.get(kept, Encoding::Identity).map(|b| b.len()),
                Some(100),
                "{kept}"
            );
        }
        assert!(
            hot.get("a", Encoding::Brotli).is_none(),
            "encodings are kept apart"
        );
    }

    #[test]
    fn large_assets_and_concurrent_loads_are_refused() {
        let hot = HotAssets::new(400);
        assert!(hot.start_load("big", Encoding::Identity, 101).is_none());
        let first = hot.start_load("x", Encoding::Gzip, 10).expect("first load");
        assert!(
            hot.start_load("x", Encoding::Gzip, 10).is_none(),
            "one load at a time"
        );
        assert!(hot.start_load("x", Encoding::Brotli, 10).is_some());
        drop(first);
        assert!(
            hot.start_load("x", Encoding::Gzip, 10).is_some(),
            "free again once dropped"
        );
        assert!(
            HotAssets::new(0)
                .start_load("x", Encoding::Identity, 1)
                .is_none(),
            "off"
        );
    }
}
