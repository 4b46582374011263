//! Runnable examples for Rust developers embedding Otago; see `examples/examples/`.
//! Each example also runs as a test (`cargo test -p otago-examples`), so none can rot.

use std::path::PathBuf;

/// The example Expo app kept in this repository: `exports/v1` and `exports/v2` are two real
/// `npx expo export`s of it, `keys/` and `certs/` hold its throwaway TEST signing key.
#[must_use]
pub fn example_app_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("expo-app")
}
