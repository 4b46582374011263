//! Shared inputs for the criterion benchmarks in `benches/benches/`: the real
//! `expo export` fixture, read once.

use std::path::PathBuf;

/// The fixture folder with the real Expo SDK 56 export (kept outside the project).
#[must_use]
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/expo-app")
}

/// Reads a file of the fixture, panicking with the path when it is missing (benchmarks only).
#[must_use]
pub fn fixture_file(relative: &str) -> Vec<u8> {
    let path = fixture_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}
