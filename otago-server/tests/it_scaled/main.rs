//! The integration tests that speak to a server only over HTTP and through its stores' traits,
//! run again with every server on the scaled-out stores: a fresh schema of the real PostgreSQL
//! test database (`OTAGO_TEST_DATABASE_URL`) and a fresh prefix of the real S3-compatible test
//! bucket (`OTAGO_TEST_S3_URL`), both set by `.ci/run`. The same files as the `it` target; what
//! needs SQLite or a local folder (crash, disk_full, bounds, demo) stays there.

/// Every server of this target runs on PostgreSQL and a bucket.
pub(crate) const SCALED_OUT: bool = true;

#[path = "../it/access.rs"]
mod access;
#[path = "../it/api.rs"]
mod api;
#[path = "../it/assets.rs"]
mod assets;
// Shared by both targets: what only the tests left in `it` use is unused here.
#[allow(dead_code)]
#[path = "../it/harness.rs"]
mod harness;
#[path = "../it/patches.rs"]
mod patches;
#[path = "../it/protocol.rs"]
mod protocol;
#[path = "../it/releases.rs"]
mod releases;
#[path = "../it/security.rs"]
mod security;
