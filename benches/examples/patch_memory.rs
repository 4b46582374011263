//! Makes the bundle patch between the fixture's two iOS exports once and prints its size, the
//! time it took and the process's peak resident memory (Linux `VmHWM`), for BENCHMARKS.md:
//!
//! ```sh
//! cargo run --release -p otago-benches --example patch_memory
//! ```

use std::time::Instant;

use otago_benches::fixture_file;
use otago_core::{asset_hash, make_patch};

fn main() {
    let base =
        fixture_file("exports/v1/_expo/static/js/ios/index-17db1bcc5eb02aebfc93514b328cbb77.hbc");
    let target =
        fixture_file("exports/v2/_expo/static/js/ios/index-00a3d570fc8c0ce5371590dd50230874.hbc");
    let before = peak_rss_kib();
    let started = Instant::now();
    let patch = make_patch(&base, &target, &asset_hash(&target)).expect("the patch verifies");
    let took = started.elapsed();
    println!(
        "patch {} bytes for a {}-byte bundle ({:.2} %) in {:.2} s; peak RSS {} KiB (before: {} KiB)",
        patch.bytes.len(),
        target.len(),
        patch.bytes.len() as f64 * 100.0 / target.len() as f64,
        took.as_secs_f64(),
        peak_rss_kib().unwrap_or(0),
        before.unwrap_or(0),
    );
}

/// `VmHWM` of `/proc/self/status`, where there is one.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
