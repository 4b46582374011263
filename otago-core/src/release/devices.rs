//! Counting distinct devices in fixed memory: a HyperLogLog sketch over the `EAS-Client-ID`s
//! that requests carry.
//!
//! Whatever devices send, a sketch is [`SKETCH_BYTES`] bytes. Up to a few thousand devices
//! the count is exact or off by one or two (linear counting); above, the standard error is
//! 1.04 / √2048 ≈ 2.3 %. Registers only grow, so merging two sketches (the register-wise
//! maximum) is idempotent: a server can write its sketch to the store, read another
//! replica's back and merge it any number of times without counting a device twice.
//!
//! Written here rather than taken from a crate because the register bytes are a stored
//! format (kept in the database, merged across replicas and versions), so their layout and
//! the device hash must never change with a dependency update.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::{Error, Result};

/// Bits of the device hash that choose a register.
const INDEX_BITS: u32 = 11;
/// Registers per sketch.
const REGISTERS: usize = 1 << INDEX_BITS;
/// Bytes of a stored sketch: one per register.
pub const SKETCH_BYTES: usize = REGISTERS;

/// A device, as a sketch sees it: the 64-bit XXH3 hash of its `EAS-Client-ID`.
///
/// XXH3 rather than SHA-256 because it is counted on every manifest request: it costs about
/// a twentieth of SHA-256's 3,500 instructions there (benches/load/instructions.sh), and its
/// output is fixed by the XXH3 specification, so stored sketches do not depend on a crate's
/// version. Device ids are not secrets and sketches need no collision resistance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceHash(u64);

impl DeviceHash {
    /// The hash of a client id: XXH3-64 (seed 0) of its bytes.
    #[must_use]
    pub fn of(client_id: &str) -> Self {
        Self(xxhash_rust::xxh3::xxh3_64(client_id.as_bytes()))
    }

    /// The register this device falls in and its rank there (1 + leading zeros of the rest).
    fn register_and_rank(self) -> (usize, u8) {
        let index = usize::try_from(self.0 >> (64 - INDEX_BITS)).unwrap_or(0);
        let rest = self.0 << INDEX_BITS;
        let max_rank = 64 - INDEX_BITS + 1;
        let rank = (rest.leading_zeros() + 1).min(max_rank);
        (index, u8::try_from(rank).unwrap_or(u8::MAX))
    }
}

/// Distinct devices in [`SKETCH_BYTES`] bytes; safe to add to from many threads at once
/// (each register is an atomic maximum), so counting needs no lock.
///
/// The registers are allocated when the first device is counted (or a non-empty stored
/// sketch merged in): a server holds a sketch for every live update, and most updates of a
/// burst of publishes are replaced before any device asks for them.
#[derive(Debug)]
pub struct DeviceSketch {
    registers: OnceLock<Box<[AtomicU8]>>,
    /// Set when a register grew since [`DeviceSketch::take_changed`] last looked.
    changed: AtomicBool,
}

impl Default for DeviceSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceSketch {
    /// An empty sketch.
    #[must_use]
    pub fn new() -> Self {
        Self {
            registers: OnceLock::new(),
            changed: AtomicBool::new(false),
        }
    }

    /// The registers, allocated (all zero) on first use.
    fn registers(&self) -> &[AtomicU8] {
        self.registers
            .get_or_init(|| (0..REGISTERS).map(|_| AtomicU8::new(0)).collect())
    }

    /// Counts a device (again counting it changes nothing).
    pub fn insert(&self, device: DeviceHash) {
        let (index, rank) = device.register_and_rank();
        let register = &self.registers()[index];
        if register.load(Ordering::Relaxed) < rank
            && register.fetch_max(rank, Ordering::Relaxed) < rank
        {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Merges stored register bytes into this sketch (register-wise maximum).
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] when `bytes` is not a stored sketch ([`SKETCH_BYTES`] long,
    /// every rank possible).
    pub fn merge_bytes(&self, bytes: &[u8]) -> Result<()> {
        let max_rank = u8::try_from(64 - INDEX_BITS + 1).unwrap_or(u8::MAX);
        if bytes.len() != SKETCH_BYTES || bytes.iter().any(|&rank| rank > max_rank) {
            return Err(Error::InvalidManifest {
                reason: format!(
                    "a stored device count must be {SKETCH_BYTES} bytes of ranks up to {max_rank}"
                ),
            });
        }
        if bytes.iter().all(|&rank| rank == 0) {
            return Ok(());
        }
        for (register, &rank) in self.registers().iter().zip(bytes) {
            register.fetch_max(rank, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The registers, to store (and later [`DeviceSketch::merge_bytes`]).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.registers.get().map_or_else(
            || vec![0; SKETCH_BYTES],
            |registers| {
                registers
                    .iter()
                    .map(|register| register.load(Ordering::Relaxed))
                    .collect()
            },
        )
    }

    /// Whether a register grew since the last call (and clears the flag): what a flusher
    /// asks before writing the sketch out.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// Marks the sketch changed again (a flush that failed, to be retried).
    pub fn mark_changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// The estimated number of distinct devices counted.
    #[must_use]
    pub fn estimate(&self) -> u64 {
        let Some(registers) = self.registers.get() else {
            return 0;
        };
        let m = REGISTERS as f64;
        let mut zeros = 0u32;
        let mut sum = 0.0f64;
        for register in &**registers {
            let rank = register.load(Ordering::Relaxed);
            if rank == 0 {
                zeros += 1;
            }
            sum += 2f64.powi(-i32::from(rank));
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            // Linear counting: exact in practice for small counts.
            m * (m / f64::from(zeros)).ln()
        } else {
            raw
        };
        // Rounded to the nearest device; estimates are far below u64::MAX.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative count far below 2^64"
        )]
        let rounded = estimate.round().max(0.0) as u64;
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: u64) -> DeviceSketch {
        let sketch = DeviceSketch::new();
        for i in 0..n {
            sketch.insert(DeviceHash::of(&format!("device-{i}")));
        }
        sketch
    }

    #[test]
    fn registers_are_allocated_by_the_first_device_or_a_non_empty_merge() {
        let sketch = DeviceSketch::new();
        assert!(sketch.registers.get().is_none());
        assert_eq!(sketch.estimate(), 0);
        assert_eq!(sketch.to_bytes(), vec![0; SKETCH_BYTES]);
        sketch.merge_bytes(&[0; SKETCH_BYTES]).unwrap();
        assert!(sketch.registers.get().is_none(), "an empty stored sketch");
        assert!(!sketch.take_changed());
        let stored = count(3).to_bytes();
        sketch.merge_bytes(&stored).unwrap();
        assert!(sketch.registers.get().is_some());
        assert_eq!((sketch.estimate(), sketch.to_bytes()), (3, stored));
        let counted = DeviceSketch::new();
        counted.insert(DeviceHash::of("device"));
        assert!(counted.registers.get().is_some() && counted.take_changed());
        assert_eq!(counted.estimate(), 1);
    }

    #[test]
    fn small_counts_are_exact_or_nearly() {
        for n in [0u64, 1, 2, 5, 20, 50, 100] {
            let estimate = count(n).estimate();
            assert!(
                estimate.abs_diff(n) <= n / 50 + 1,
                "{n} devices estimated as {estimate}"
            );
        }
        assert_eq!(count(0).estimate(), 0);
        assert_eq!(count(1).estimate(), 1);
        assert_eq!(count(20).estimate(), 20);
    }

    #[test]
    fn large_counts_are_within_three_standard_errors() {
        for n in [1_000u64, 10_000, 100_000] {
            let estimate = count(n).estimate() as f64;
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(
                error < 3.0 * 0.023,
                "{n} devices estimated as {estimate} ({error:.3})"
            );
        }
    }

    #[test]
    fn the_same_device_counts_once() {
        let sketch = DeviceSketch::new();
        for _ in 0..1000 {
            sketch.insert(DeviceHash::of("one"));
        }
        assert_eq!(sketch.estimate(), 1);
    }

    #[test]
    fn merging_is_a_union_and_idempotent() {
        let a = count(300);
        let b = DeviceSketch::new();
        for i in 200..500 {
            b.insert(DeviceHash::of(&format!("device-{i}")));
        }
        let union = DeviceSketch::new();
        union.merge_bytes(&a.to_bytes()).unwrap();
        union.merge_bytes(&b.to_bytes()).unwrap();
        let once = union.estimate();
        union.merge_bytes(&a.to_bytes()).unwrap();
        union.merge_bytes(&b.to_bytes()).unwrap();
        assert_eq!(union.estimate(), once, "merging again changes nothing");
        assert!(
            once.abs_diff(500) <= 10,
            "union of 500 devices estimated as {once}"
        );
    }

    #[test]
    fn changes_are_reported_once() {
        let sketch = DeviceSketch::new();
        assert!(!sketch.take_changed());
        sketch.insert(DeviceHash::of("a"));
        assert!(sketch.take_changed());
        assert!(!sketch.take_changed());
        sketch.insert(DeviceHash::of("a"));
        assert!(
            !sketch.take_changed(),
            "a device already counted changes nothing"
        );
    }

    #[test]
    fn stored_bytes_are_checked() {
        let sketch = DeviceSketch::new();
        assert!(sketch.merge_bytes(&[0; 10]).is_err());
        assert!(sketch.merge_bytes(&[200; SKETCH_BYTES]).is_err());
        assert!(sketch.merge_bytes(&count(10).to_bytes()).is_ok());
    }

    #[test]
    fn the_device_hash_is_stable() {
        // Python's `xxhash.xxh3_64_intdigest(b"device")`; stored sketches depend on it.
        assert_eq!(DeviceHash::of("device").0, 0x6237_d640_d503_cea8);
    }
}
