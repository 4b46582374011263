//! # otago-core
//!
//! The I/O-free engine of Otago, a self-hostable update server for Expo apps.
//! Bytes and values in, values out: the caller reads files, owns the clock and
//! supplies randomness.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app_config;
mod asset;
mod directive;
mod eas;
mod env_files;
mod error;
mod export;
mod manifest;
mod platform;
mod request;
mod response;
mod runtime_version;
mod selection;
mod signing;
mod timestamp;

pub use asset::{
    AssetDescription, LAUNCH_ASSET_CONTENT_TYPE, asset_hash, asset_key, check_safe_file_name,
    content_type_for_extension, dotted_extension, is_asset_hash,
};
pub use directive::{Directive, RollBackParameters};
pub use error::{Error, Result};
pub use export::{
    DescribedFile, DescribedPlatform, ExportAsset, ExportMetadata, ExportPath, PlatformExport,
};
pub use manifest::{Manifest, ManifestAsset, ManifestSpec, UpdateId, asset_url};
pub use platform::Platform;
pub use timestamp::Timestamp;
