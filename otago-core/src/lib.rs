//! # otago-core
//!
//! The I/O-free engine of Otago, a self-hostable update server for Expo apps. Every
//! frontend (the `otago-server` update service, the `otago` CLI, the Python bindings) is a
//! thin layer of I/O around it. Bytes and values in, values out: the caller reads files,
//! owns the clock and supplies randomness, so everything here is deterministic and testable.
//!
//! The model, in the order a deploy goes through it:
//! - [`ExportMetadata`] reads the `metadata.json` of `npx expo export`; [`DescribedPlatform`]
//!   hashes each file ([`AssetDescription`]: base64url SHA-256 `hash`, MD5 `key`, content type);
//! - [`resolve_env`], [`EasJson`] and [`resolve_runtime_version`] resolve what the export was
//!   built with; [`check_app_config`] reports problems in the app's `updates` config;
//! - [`Manifest::build`] makes the manifest, whose [`Manifest::to_bytes`] are the exact bytes
//!   that [`SigningKey::sign`] signs and the server serves;
//! - on the server, [`ManifestRequest::parse`] reads a protocol request and
//!   [`PreparedUpdates::answer`] picks one of the responses rendered once at publish time.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::{Duration, UNIX_EPOCH};
//! use otago_core::*;
//! use rand::SeedableRng;
//!
//! # fn main() -> otago_core::Result<()> {
//! // Deployer side. Time and randomness are inputs; a real deployer passes the clock and OsRng.
//! let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let keys = generate_key_and_certificate(&mut rng, "Example", 10, now)?;
//! let manifest = Manifest::build(ManifestSpec {
//!     id: UpdateId::from_random_bytes(rand::Rng::r#gen(&mut rng)),
//!     created_at: Timestamp::from_system_time(now)?,
//!     runtime_version: "1.0.0".into(),
//!     launch_asset: AssetDescription::of_launch_asset(b"console.log('hi')", "js")?,
//!     assets: vec![AssetDescription::of_asset(b"\x89PNG", "png")?],
//!     asset_base_url: "https://updates.example.com/assets".into(),
//!     metadata: BTreeMap::new(),
//!     expo_client: None,
//! })?;
//! let bytes = manifest.to_bytes();
//! let key = SigningKey::from_pem(&keys.private_key_pem)?;
//! let signature = SignatureHeader::new(key.sign(&bytes), "main")?.to_header_value();
//!
//! // Server side: render every answer once at publish time...
//! let update = PublishedUpdate::manifest(bytes.clone(), Some(StoredSignature::parse(&signature)?))?;
//! let prepared = PreparedUpdates::new(ChannelRelease::from(update), &BTreeMap::new())?;
//! // ...then each request only parses headers and picks one.
//! let headers: [(&str, &[u8]); 4] = [
//!     ("Expo-Platform", b"ios"),
//!     ("Expo-Runtime-Version", b"1.0.0"),
//!     ("Expo-Protocol-Version", b"1"),
//!     ("expo-expect-signature", b"sig, keyid=\"main\", alg=\"rsa-v1_5-sha256\""),
//! ];
//! let request = ManifestRequest::parse("GET", headers)?;
//! let answer = prepared.answer(&request)?;
//! assert_eq!(answer.kind, DecisionKind::Manifest);
//! assert_eq!(answer.response.status(), 200);
//!
//! // App side: the signature verifies over the exact manifest bytes with the certificate.
//! let certificate = SigningCertificate::from_pem(&keys.certificate_pem)?;
//! certificate.verify(&bytes, SignatureHeader::parse(&signature)?.signature())?;
//! # Ok(())
//! # }
//! ```
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
mod patch;
mod platform;
mod release;
mod request;
mod response;
mod runtime_version;
mod selection;
mod signing;
mod timestamp;

pub use app_config::{
    Finding, FindingCode, Severity, check_app_config, expo_config, parse_app_config,
};
pub use asset::{
    AssetDescription, AssetHasher, LAUNCH_ASSET_CONTENT_TYPE, asset_hash, asset_key,
    check_safe_file_name, content_type_for_extension, dotted_extension, is_asset_hash,
    served_content_type,
};
pub use directive::{Directive, RollBackParameters};
pub use eas::{EasBuildProfile, EasJson, EasPlatformOverrides, merge_eas_env};
pub use env_files::{
    EnvAssignment, EnvOptions, EnvSource, EnvVar, HostOs, KNOWN_MODES, ResolvedEnv, env_file_names,
    parse_boolish, parse_env_file, resolve_env,
};
pub use error::{Error, Result};
pub use export::{
    DescribedFile, DescribedPlatform, ExportAsset, ExportMetadata, ExportPath, PlatformExport,
};
pub use manifest::{Manifest, ManifestAsset, ManifestSpec, UpdateId, asset_url};
pub use patch::{
    DEFAULT_MAX_PATCH_PERCENT, DEFAULT_PATCH_BASES, Patch, PatchPair, apply_patch, make_patch,
    patch_base, patch_worth_keeping, wanted_patches,
};
pub use platform::Platform;
pub use release::{
    ChannelRelease, DEFAULT_MAX_FAILURE_PERCENT, DEFAULT_MIN_DEVICES, DeviceHash, DeviceSketch,
    FailureRate, HealthGate, MIN_RAMP_INTERVAL, Ramp, RampAction, Role, Rollout, SKETCH_BYTES,
    UpdateHealth, Verdict, check_rollout_change, check_standby, ramp_action, standby_body,
    standby_update,
};
pub use request::{
    ExpectSignature, MAX_HEADER_VALUE_BYTES, MAX_ID_LEN, MAX_RUNTIME_VERSION_LEN, ManifestRequest,
    ProtocolVersion, ResponseFormat, extra_params_header_value, parse_extra_params,
    parse_recent_failed_update_ids, recent_failed_update_ids_header_value,
};
pub use response::{
    Answer, AssetRequestHeaders, PreparedUpdates, RenderedResponse, common_headers,
};
pub use runtime_version::{
    RuntimeVersion, RuntimeVersionPolicy, Workflow, resolve_runtime_version, runtime_version_policy,
};
pub use selection::{
    Decision, DecisionKind, PublishedUpdate, SignedBody, StoredSignature, UpdateKind, decide,
    rollout_bucket,
};
pub use signing::{
    CertificateProblem, CertificateReport, DEFAULT_KEY_ID, GeneratedSigningFiles, MIN_KEY_BITS,
    PublicKey, SIGNATURE_ALGORITHM, Signature, SignatureHeader, SigningCertificate, SigningKey,
    generate_key_and_certificate,
};
pub use timestamp::Timestamp;
