//! Keys that authenticated recently, by the SHA-256 of their secret, so that a deploy's many
//! requests do not each query the store. Only keys the store confirmed enter, so anonymous
//! clients cannot grow it; it is bounded anyway, and emptied of a key the moment it is revoked
//! (or its project deleted).

use std::collections::HashMap;
use std::sync::RwLock;

use otago_core::Timestamp;

use crate::store::{KeyRecord, KeyRole};

/// At most this many keys are kept; past it the cache starts over.
const CAPACITY: usize = 10_000;

/// What authentication needs of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedKey {
    pub(crate) key_id: String,
    pub(crate) project_ref: String,
    pub(crate) role: KeyRole,
    pub(crate) expires_at: Option<Timestamp>,
}

impl From<&KeyRecord> for CachedKey {
    fn from(key: &KeyRecord) -> Self {
        Self {
            key_id: key.id.clone(),
            project_ref: key.project_ref.clone(),
            role: key.role,
            expires_at: key.expires_at,
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    by_digest: HashMap<[u8; 32], CachedKey>,
    /// Bumped by every removal, so that a lookup that raced a revocation cannot put the
    /// revoked key back (see [`KeyCache::insert`]).
    generation: u64,
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    entries: RwLock<Entries>,
}

impl KeyCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached key with this secret digest.
    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<CachedKey> {
        self.read().by_digest.get(digest).cloned()
    }

    /// The current generation: read it before asking the store, pass it to [`Self::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Caches a key the store confirmed, unless something was removed since `generation`
    /// was read (the key may be the one removed).
    pub(crate) fn insert(&self, digest: [u8; 32], key: CachedKey, generation: u64) {
        let mut entries = self.write();
        if entries.generation != generation {
            return;
        }
        if entries.by_digest.len() >= CAPACITY {
            entries.by_digest.clear();
        }
        entries.by_digest.insert(digest, key);
    }

    /// Forgets a key (revoked or expired).
    pub(crate) fn remove_key(&self, key_id: &str) {
        let mut entries = self.write();
        entries.generation += 1;
        entries.by_digest.retain(|_, key| key.key_id != key_id);
    }

    /// Forgets every key (changes to them may have been missed).
    pub(crate) fn clear(&self) {
        let mut entries = self.write();
        entries.generation += 1;
        entries.by_digest.clear();
    }

    /// Forgets every key of a project (deleted).
    pub(crate) fn remove_project(&self, project_ref: &str) {
        let mut entries = self.write();
        entries.generation += 1;
        entries
            .by_digest
            .retain(|_, key| key.project_ref != project_ref);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, project_ref: &str) -> CachedKey {
        CachedKey {
            key_id: id.into(),
            project_ref: project_ref.into(),
            role: KeyRole::Deploy,
            expires_at: None,
        }
    }

    #[test]
    fn removals_win_over_lookups_that_started_before_them() {
        let cache = KeyCache::default();
        let before = cache.generation();
        cache.insert([1; 32], key("k_1", "p_a"), before);
        assert_eq!(cache.get(&[1; 32]), Some(key("k_1", "p_a")));
        // A lookup of k_2 starts, k_2 is revoked meanwhile, then the lookup finishes.
        let started = cache.generation();
        cache.remove_key("k_2");
        cache.insert([2; 32], key("k_2", "p_a"), started);
        assert_eq!(cache.get(&[2; 32]), None);
        cache.remove_project("p_a");
        assert_eq!(cache.get(&[1; 32]), None);
    }
}
