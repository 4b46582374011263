//! Bundle patches: a classic BSDIFF40 patch (bzip2 streams, what expo-updates' `bspatch` reads)
//! of a launch asset against the launch asset a device already runs; which patches are worth
//! making in a channel; and how a device asks for one.
//!
//! A patch is verified when it is made: applied to its base, it must give bytes whose SHA-256
//! is the target's hash, so a patch that could break an app is never kept.

use std::collections::BTreeSet;
use std::io::Cursor;

use qbsdiff::{Bsdiff, Bspatch, ParallelScheme};

use crate::asset::asset_hash;
use crate::error::{Error, Result};
use crate::manifest::UpdateId;

/// How many earlier updates of a channel a new launch asset is patched from, by default.
pub const DEFAULT_PATCH_BASES: usize = 3;

/// A patch is kept only when it is at most this many hundredths of the full asset, by default.
pub const DEFAULT_MAX_PATCH_PERCENT: u8 = 60;

/// A patch made and verified by [`make_patch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The BSDIFF40 bytes.
    pub bytes: Vec<u8>,
    /// Their base64url SHA-256 (how the blob store names them).
    pub hash: String,
}

/// Makes the BSDIFF40 patch that turns `base` into `target`, on the calling thread only, and
/// verifies it: applied to `base` it must give bytes that hash to `target_hash`.
///
/// # Errors
/// [`Error::Patch`] when `target` does not hash to `target_hash`, or the patch does not
/// reproduce it (which would be a bug of the differ).
pub fn make_patch(base: &[u8], target: &[u8], target_hash: &str) -> Result<Patch> {
    if asset_hash(target) != target_hash {
        return Err(Error::Patch {
            reason: format!("the target bytes do not hash to {target_hash}"),
        });
    }
    let mut bytes = Vec::new();
    Bsdiff::new(base, target)
        .parallel_scheme(ParallelScheme::Never)
        .compare(Cursor::new(&mut bytes))
        .map_err(|err| Error::Patch {
            reason: format!("computing the patch failed: {err}"),
        })?;
    let patched = apply_patch(base, &bytes, target.len() as u64)?;
    if asset_hash(&patched) != target_hash {
        return Err(Error::Patch {
            reason: "the patch does not reproduce the target".into(),
        });
    }
    let hash = asset_hash(&bytes);
    Ok(Patch { bytes, hash })
}

/// Applies a BSDIFF40 patch to `base`, refusing one whose output would pass `max_len` bytes.
///
/// # Errors
/// [`Error::Patch`] when the patch is malformed or its output is too large.
pub fn apply_patch(base: &[u8], patch: &[u8], max_len: u64) -> Result<Vec<u8>> {
    let invalid = |err: std::io::Error| Error::Patch {
        reason: format!("invalid BSDIFF40 patch: {err}"),
    };
    let patcher = Bspatch::new(patch).map_err(invalid)?;
    let size = patcher.hint_target_size();
    if size > max_len {
        return Err(Error::Patch {
            reason: format!("the patch makes {size} bytes, more than the {max_len} expected"),
        });
    }
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    patcher
        .apply(base, Cursor::new(&mut out))
        .map_err(invalid)?;
    Ok(out)
}

/// Whether a patch of `patch_len` bytes is worth serving instead of `full_len` bytes: at most
/// `max_percent` hundredths of it.
#[must_use]
pub fn patch_worth_keeping(patch_len: u64, full_len: u64, max_percent: u8) -> bool {
    u128::from(patch_len) * 100 <= u128::from(full_len) * u128::from(max_percent)
}

/// One patch to make: from the launch asset `base` to the launch asset `target` (asset hashes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatchPair {
    /// The launch asset a device runs.
    pub base: String,
    /// The launch asset it is sent.
    pub target: String,
}

/// The patches worth having in one channel (a project, platform and runtime version).
///
/// `recent` holds the launch-asset hashes of the channel's updates (standby reverts included),
/// newest first; `embedded` those of the bundles embedded in its builds. The channel's
/// `bases + 1` newest distinct launch assets are the ones devices are sent now or after a
/// revert; each gets a patch from every other one of them and from every embedded bundle. So a
/// device on any of the last few updates, or on its build's own bundle, downloads a patch, for
/// a new update as for a revert.
#[must_use]
pub fn wanted_patches(recent: &[&str], embedded: &[&str], bases: usize) -> BTreeSet<PatchPair> {
    let mut targets: Vec<&str> = Vec::new();
    for hash in recent {
        if targets.len() > bases {
            break;
        }
        if !targets.contains(hash) {
            targets.push(hash);
        }
    }
    let mut pairs = BTreeSet::new();
    for target in &targets {
        for base in targets.iter().chain(embedded) {
            if base != target {
                pairs.insert(PatchPair {
                    base: (*base).to_owned(),
                    target: (*target).to_owned(),
                });
            }
        }
    }
    pairs
}

/// Reads an asset request's patch headers: `Some(base)` when it accepts a `bsdiff` patch
/// (`A-IM`, a comma-separated list, any case) against the update it runs
/// (`Expo-Current-Update-ID`), and that update differs from the one it downloads
/// (`Expo-Requested-Update-ID`, when sent). Anything else, malformed ids included, asks for
/// the full asset.
#[must_use]
pub fn patch_base(
    a_im: Option<&[u8]>,
    current_update_id: Option<&[u8]>,
    requested_update_id: Option<&[u8]>,
) -> Option<UpdateId> {
    let accepts = std::str::from_utf8(a_im?).ok()?.split(',').any(|item| {
        item.split(';')
            .next()
            .is_some_and(|token| token.trim().eq_ignore_ascii_case("bsdiff"))
    });
    if !accepts {
        return None;
    }
    let id = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .ok()?
            .trim()
            .parse::<UpdateId>()
            .ok()
    };
    let base = id(current_update_id?)?;
    match requested_update_id {
        Some(requested) if id(requested).is_none_or(|requested| requested == base) => None,
        _ => Some(base),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the bytes, a patch made is one that reproduces its target.
        #[test]
        fn every_patch_made_reproduces_its_target(
            base in proptest::collection::vec(any::<u8>(), 0..4096),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..16),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut target = base.clone();
            for (at, byte) in edits {
                if !target.is_empty() {
                    let at = usize::from(at) % target.len();
                    target[at] = byte;
                }
            }
            target.extend(tail);
            let patch = make_patch(&base, &target, &asset_hash(&target)).unwrap();
            prop_assert_eq!(apply_patch(&base, &patch.bytes, target.len() as u64).unwrap(), target);
        }

        /// The wanted pairs stay inside the window and the embedded bundles, never pair a launch
        /// asset with itself, and cover every ordered pair of the window.
        #[test]
        fn wanted_patches_stay_in_the_window(
            recent in proptest::collection::vec(0u8..8, 0..20),
            embedded in proptest::collection::vec(0u8..12, 0..3),
            bases in 0usize..5,
        ) {
            let recent: Vec<String> = recent.iter().map(|n| format!("h{n}")).collect();
            let embedded: Vec<String> = embedded.iter().map(|n| format!("h{n}")).collect();
            let recent_refs: Vec<&str> = recent.iter().map(String::as_str).collect();
            let embedded_refs: Vec<&str> = embedded.iter().map(String::as_str).collect();
            let wanted = wanted_patches(&recent_refs, &embedded_refs, bases);
            let mut window: Vec<&str> = Vec::new();
            for hash in &recent_refs {
                if window.len() <= bases && !window.contains(hash) {
                    window.push(hash);
                }
            }
            for pair in &wanted {
                prop_assert_ne!(&pair.base, &pair.target);
                prop_assert!(window.contains(&pair.target.as_str()));
                prop_assert!(
                    window.contains(&pair.base.as_str()) || embedded_refs.contains(&pair.base.as_str())
                );
            }
            for target in &window {
                for base in window.iter().chain(&embedded_refs) {
                    if base != target {
                        let pair = PatchPair { base: (*base).to_owned(), target: (*target).to_owned() };
                        prop_assert!(wanted.contains(&pair));
                    }
                }
            }
        }
    }

    fn bundle(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed / 7))
            .collect()
    }

    #[test]
    fn a_patch_reproduces_its_target_and_is_small_for_a_small_change() {
        let base = bundle(1, 200_000);
        let mut target = base.clone();
        target[100_000..100_010].copy_from_slice(b"0123456789");
        let patch = make_patch(&base, &target, &asset_hash(&target)).unwrap();
        assert_eq!(&patch.bytes[..8], b"BSDIFF40");
        assert_eq!(patch.hash, asset_hash(&patch.bytes));
        assert!(patch.bytes.len() < 2_000, "{} bytes", patch.bytes.len());
        assert_eq!(
            apply_patch(&base, &patch.bytes, target.len() as u64).unwrap(),
            target
        );
    }

    #[test]
    fn a_wrong_target_hash_or_a_bad_patch_is_refused() {
        let base = bundle(1, 1000);
        let err = make_patch(&base, b"new", &asset_hash(b"other")).unwrap_err();
        assert!(err.to_string().contains("do not hash to"), "{err}");
        let patch = make_patch(&base, b"new bytes", &asset_hash(b"new bytes")).unwrap();
        let err = apply_patch(&base, &patch.bytes, 3).unwrap_err();
        assert!(
            err.to_string().contains("more than the 3 expected"),
            "{err}"
        );
        assert!(apply_patch(&base, b"BSDIFF40 garbage", 100).is_err());
        let mut broken = patch.bytes.clone();
        let last = broken.len() - 1;
        broken[last] ^= 0xff;
        assert!(apply_patch(&base, &broken, 100).is_err_and(|e| matches!(e, Error::Patch { .. })));
    }

    #[test]
    fn patches_are_kept_only_when_clearly_smaller() {
        assert!(patch_worth_keeping(60, 100, 60));
        assert!(!patch_worth_keeping(61, 100, 60));
        assert!(!patch_worth_keeping(1, 0, 60));
        assert!(patch_worth_keeping(u64::MAX / 2, u64::MAX, 60));
    }

    #[test]
    fn wanted_patches_cover_the_recent_launch_assets_both_ways_and_the_embedded_ones() {
        let pair = |base: &str, target: &str| PatchPair {
            base: base.into(),
            target: target.into(),
        };
        // c is newest; b appears twice (a revert to it); d and e are past the window of 2+1.
        let wanted = wanted_patches(&["c", "b", "c", "a", "d", "e"], &["x"], 2);
        let expected: BTreeSet<_> = [
            pair("b", "c"),
            pair("a", "c"),
            pair("x", "c"),
            pair("c", "b"),
            pair("a", "b"),
            pair("x", "b"),
            pair("c", "a"),
            pair("b", "a"),
            pair("x", "a"),
        ]
        .into();
        assert_eq!(wanted, expected);
        assert!(wanted_patches(&["a"], &[], 3).is_empty());
        assert_eq!(wanted_patches(&["a"], &["a"], 3), BTreeSet::new());
        assert_eq!(wanted_patches(&[], &["x"], 3), BTreeSet::new());
    }

    #[test]
    fn patch_requests_need_bsdiff_and_a_different_current_update() {
        let a = b"0a1b2c3d-0000-4000-8000-000000000001".as_slice();
        let b = b"0A1B2C3D-0000-4000-8000-000000000002".as_slice();
        let base = patch_base(Some(b"bsdiff"), Some(a), Some(b)).unwrap();
        assert_eq!(base.to_string(), "0a1b2c3d-0000-4000-8000-000000000001");
        assert!(patch_base(Some(b"gzip, BsDiff;q=1"), Some(b), None).is_some());
        assert_eq!(patch_base(None, Some(a), Some(b)), None);
        assert_eq!(patch_base(Some(b"vcdiff"), Some(a), Some(b)), None);
        assert_eq!(patch_base(Some(b"bsdiff"), None, Some(b)), None);
        assert_eq!(patch_base(Some(b"bsdiff"), Some(a), Some(a)), None);
        assert_eq!(
            patch_base(Some(b"bsdiff"), Some(b"not-a-uuid"), Some(b)),
            None
        );
        assert_eq!(patch_base(Some(b"bsdiff"), Some(a), Some(b"junk")), None);
        assert_eq!(patch_base(Some(b"\xff"), Some(a), Some(b)), None);
    }
}
