//! The checks behind Otago's fuzz targets, one public function per target.
//!
//! Each function takes the raw bytes libFuzzer hands a target and panics only when a property
//! does not hold: a parser of untrusted input panicked, or what it read does not survive being
//! rendered and read again. `fuzz_targets/*.rs` call them under libFuzzer; `tests/corpus.rs`
//! runs every file of `corpus/<target>/` through them with a plain `cargo test`, so the targets
//! and the corpus build and pass without libFuzzer or a nightly compiler.

mod api_bodies;
mod config_files;
mod headers;

pub use api_bodies::api_bodies;
pub use config_files::{app_config, env_files, export_metadata};
pub use headers::{manifest_request, sfv_headers};

/// A target: the check run on each input.
pub type Target = fn(&[u8]);

/// Every target by name, as `cargo fuzz` and the corpus folders name them.
pub const TARGETS: [(&str, Target); 6] = [
    ("manifest_request", manifest_request),
    ("sfv_headers", sfv_headers),
    ("env_files", env_files),
    ("export_metadata", export_metadata),
    ("app_config", app_config),
    ("api_bodies", api_bodies),
];
