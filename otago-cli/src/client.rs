//! A typed client of the Otago management API (`/api/v1`), plus the protocol requests an app
//! makes (`GET` of the project's update URL), for checks and tests.
//!
//! Errors say what the server said (`error.message` and `error.hint` of its body). Requests
//! that are safe to repeat are retried on transient failures (connection errors, timeouts,
//! 5xx, 429) with exponential backoff; a publish is retried only when it never reached the
//! server.

use std::time::Duration;

use otago_core::Platform;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// How often a request that failed transiently is tried in all.
pub const MAX_ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles for each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// At most this many hashes per `assets/missing` request (the server's limit).
pub const MISSING_BATCH: usize = 10_000;

/// One runtime version devices asked for, over the days of a [`RuntimeVersions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeVersionUsage {
    /// Platform.
    pub platform: Platform,
    /// The runtime version the devices sent.
    pub runtime_version: String,
    /// Distinct devices (by `EAS-Client-ID`, estimated within about 2%).
    pub devices: u64,
    /// Manifest requests.
    pub requests: u64,
    /// `devices` over the platform's distinct devices in the period (0 to 1).
    pub share: f64,
    /// The latest request (`YYYY-MM-DDTHH:mm:ss.sssZ`).
    pub last_seen: String,
}

/// The runtime versions past the server's daily limit of distinct ones, of one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherRuntimeVersions {
    /// Platform.
    pub platform: Platform,
    /// Distinct devices.
    pub devices: u64,
    /// Manifest requests.
    pub requests: u64,
    /// `devices` over the platform's distinct devices in the period.
    pub share: f64,
    /// The latest request.
    pub last_seen: String,
}

/// What `GET /api/v1/projects/{ref}/runtime-versions` answers: every runtime version devices
/// asked for in the last `days` days (published or not), most devices first per platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeVersions {
    /// Days covered, today (UTC) included.
    pub days: u32,
    /// Start of the first day covered.
    pub since: String,
    /// By platform, then devices (most first).
    pub runtime_versions: Vec<RuntimeVersionUsage>,
    /// The remainder, per platform.
    pub other: Vec<OtherRuntimeVersions>,
}

impl RuntimeVersions {
    /// The devices of a platform that asked with `runtime_version`; 0 when none did.
    #[must_use]
    pub fn devices_on(&self, platform: Platform, runtime_version: &str) -> u64 {
        self.runtime_versions
            .iter()
            .filter(|usage| usage.platform == platform && usage.runtime_version == runtime_version)
            .map(|usage| usage.devices)
            .sum()
    }
}

/// A project, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Short random id, e.g. `p_k3v9x0a1b2`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// App name.
    pub app: String,
    /// Environment name.
    pub environment: String,
    /// The URL the app's `updates.url` must hold.
    pub update_url: String,
    /// The base URL of asset URLs in manifests.
    pub asset_base_url: String,
    /// Whether every update must be signed.
    #[serde(default)]
    pub require_signing: bool,
    /// The project's code signing certificate, if one is set.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// Largest asset the server takes, in bytes.
    #[serde(default)]
    pub max_asset_bytes: Option<u64>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A change of a project's settings (`PATCH /api/v1/projects/{ref}`); absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectPatch {
    /// Whether every update must be signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_signing: Option<bool>,
    /// `Some(Some(pem))` sets the certificate, `Some(None)` removes it (sent as `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<Option<String>>,
    /// Largest asset the server takes, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_asset_bytes: Option<u64>,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Key id, e.g. `k_...`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `deploy` or `admin`.
    #[serde(default = "deploy_role")]
    pub role: String,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last use, if any.
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// Revocation time, if revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// A freshly created API key, with its secret (shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// Key id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `deploy` or `admin`.
    #[serde(default = "deploy_role")]
    pub role: String,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The secret (`otago_...`), to use as OTAGO_API_KEY.
    pub secret: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
}

fn deploy_role() -> String {
    "deploy".to_owned()
}

/// A key to create (`POST /api/v1/projects/{ref}/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewKey {
    /// Its name.
    pub name: String,
    /// `deploy` or `admin`.
    pub role: String,
    /// When it stops working (`YYYY-MM-DDTHH:mm:ss.sssZ`); never if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One entry of a project's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log (ascending).
    pub seq: i64,
    /// When.
    pub at: String,
    /// Who: a key id or `admin`.
    pub actor: String,
    /// What, e.g. `project.settings_changed`.
    pub action: String,
    /// Details (for settings: each changed setting's `before` and `after`).
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// A page of a project's audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// `before` of the next (older) page; `None` on the last.
    #[serde(default)]
    pub next_before: Option<i64>,
}

/// Distinct devices an update was served to, that run it and that failed to launch it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Devices it was served to.
    #[serde(default)]
    pub served: u64,
    /// Devices that report running it.
    #[serde(default)]
    pub running: u64,
    /// Devices that report it failed to launch.
    #[serde(default)]
    pub failed: u64,
    /// failed ÷ served, in percent (`None` before it was served).
    #[serde(default)]
    pub failure_rate: Option<f64>,
}

/// A rollout's health gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthGateView {
    /// Revert once the failure rate is over this percentage.
    pub max_failure_rate: f64,
    /// Judged from this many devices served.
    pub min_devices: u64,
    /// `healthy`, `too_few_devices` or `unhealthy`, for a rollout in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// A rollout's scheduled ramp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RampView {
    /// The percentages, e.g. `1,10,50,100`.
    pub steps: String,
    /// Seconds between steps.
    pub every_seconds: u64,
    /// When the next step is due, for a rollout in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_at: Option<String>,
}

/// Who reverted a rollout, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertView {
    /// When.
    pub at: String,
    /// `health-gate`, `admin` or a key id.
    pub by: String,
    /// Why (the health gate says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One update of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupUpdate {
    /// Platform.
    pub platform: Platform,
    /// Update id (the manifest's `id`).
    pub id: String,
    /// Publish time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Bytes of the manifest and its assets.
    #[serde(default)]
    pub size: Option<u64>,
    /// Whether it carries a signature.
    #[serde(default)]
    pub signed: bool,
    /// The exact manifest text (single-group requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The exact directive text (single-group requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// The `expo-signature` value (single-group requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Its devices.
    #[serde(default)]
    pub health: Health,
    /// For a rollout's update: the update devices outside it get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_update_id: Option<String>,
    /// For a rollout's update: its standby revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_id: Option<String>,
    /// The standby revert's devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_health: Option<Health>,
    /// The launch asset and its bundle patches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_asset: Option<LaunchAsset>,
    /// Whether the server is still making its bundle patches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub patches_pending: bool,
}

/// An update's launch asset, with the bundle patches devices download instead of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchAsset {
    /// Its hash.
    pub hash: String,
    /// Its size in bytes.
    pub size: u64,
    /// The patches made so far (the server makes them in the background after a publish).
    #[serde(default)]
    pub patches: Vec<BundlePatch>,
}

/// A bundle patch to a launch asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePatch {
    /// The launch asset it applies to.
    pub base_hash: String,
    /// The updates (and embedded bundles) whose devices hold that base.
    #[serde(default)]
    pub base_update_ids: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
}

/// A bundle embedded in a native build, registered for patches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedBundle {
    /// The embedded update's id.
    pub update_id: String,
    /// Platform.
    pub platform: Platform,
    /// The build's runtime version.
    pub runtime_version: String,
    /// The bundle's hash.
    pub bundle_hash: String,
    /// When it was registered.
    pub created_at: String,
}

/// `GET /api/v1/projects/{ref}/embedded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EmbeddedList {
    embedded: Vec<EmbeddedBundle>,
}

/// A published group: one update per platform, published together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Group id (a UUID).
    pub id: String,
    /// Runtime version of every update in it.
    pub runtime_version: String,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// Publish time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Rollout percentage.
    #[serde(default = "full_rollout")]
    pub rollout_percentage: u8,
    /// `full`, `rollout` (in progress), `reverted` or `withdrawn`.
    #[serde(default = "full_state")]
    pub state: String,
    /// Whether it was reverted.
    #[serde(default)]
    pub reverted: bool,
    /// `update` or `rollback_to_embedded`.
    #[serde(default = "update_kind")]
    pub kind: String,
    /// Its updates' devices together.
    #[serde(default)]
    pub health: Health,
    /// The rollout's health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_gate: Option<HealthGateView>,
    /// The rollout's ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampView>,
    /// The revert, once reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<RevertView>,
    /// Its updates.
    #[serde(default)]
    pub updates: Vec<GroupUpdate>,
}

fn full_state() -> String {
    "full".to_owned()
}

/// What one platform serves for a runtime version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChannelRelease {
    /// The platform.
    pub platform: Platform,
    /// What every device outside a rollout gets; `None`: the embedded update.
    #[serde(default)]
    pub base: Option<ReleasedUpdate>,
    /// The rollout on top, if any.
    #[serde(default)]
    pub rollout: Option<ReleasedRollout>,
}

/// An update with its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleasedUpdate {
    /// Its id.
    pub id: String,
    /// `update` or `rollback_to_embedded`.
    pub kind: String,
    /// The manifest or directive text.
    pub body: String,
}

/// A rollout as the release view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReleasedRollout {
    /// Its group.
    pub group: String,
    /// The update rolled out.
    pub target: String,
    /// Its percentage.
    pub percentage: u8,
    /// Whether it was reverted.
    pub reverted: bool,
}

#[derive(Debug, Deserialize)]
struct ReleaseView {
    platforms: Vec<ChannelRelease>,
}

fn full_rollout() -> u8 {
    100
}

fn update_kind() -> String {
    "update".to_owned()
}

/// One entry of a group to publish: a manifest or a directive, and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewUpdate {
    /// Platform.
    pub platform: Platform,
    /// The exact manifest text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The exact directive text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// The `expo-signature` header value, or `None` when unsigned.
    pub signature: Option<String>,
    /// For a rollout: its standby revert (the control's code, newer than the update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<NewStandby>,
}

/// A standby revert to publish with a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewStandby {
    /// The exact manifest text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The exact directive text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// The `expo-signature` header value, or `None` when unsigned.
    pub signature: Option<String>,
}

/// A rollout's health gate to publish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewHealthGate {
    /// `false` turns the gate off.
    pub enabled: bool,
    /// Revert once the failure rate is over this percentage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failure_rate: Option<f64>,
}

/// A rollout's ramp to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRamp {
    /// The percentages, e.g. `1,10,50,100`.
    pub steps: String,
    /// Seconds between steps.
    pub every_seconds: u64,
}

/// A group to publish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewGroup {
    /// Runtime version of every entry.
    pub runtime_version: String,
    /// Message.
    pub message: Option<String>,
    /// Rollout percentage.
    pub rollout_percentage: u8,
    /// The rollout's health gate (the server's default when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_gate: Option<NewHealthGate>,
    /// The rollout's ramp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<NewRamp>,
    /// The entries, at most one per platform.
    pub updates: Vec<NewUpdate>,
}

/// The server's answer to an asset upload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadedAsset {
    /// Hash.
    pub hash: String,
    /// Whether the server stored it now (`false`: it had it already).
    #[serde(default)]
    pub created: bool,
}

/// The raw answer of the protocol endpoint.
#[derive(Debug, Clone)]
pub struct ProtocolResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl ProtocolResponse {
    /// A header's value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a protocol request asks for.
#[derive(Debug, Clone)]
pub struct ProtocolRequest<'a> {
    /// `expo-platform`.
    pub platform: Platform,
    /// `expo-runtime-version`.
    pub runtime_version: &'a str,
    /// Key id for `expo-expect-signature`, when the app checks signatures.
    pub expect_signature_keyid: Option<&'a str>,
    /// `eas-client-id`.
    pub client_id: Option<&'a str>,
    /// `expo-current-update-id`: the update the device runs.
    pub current_update_id: Option<&'a str>,
    /// `expo-embedded-update-id`: the update inside the device's build.
    pub embedded_update_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
struct ProjectList {
    projects: Vec<Project>,
}

#[derive(Deserialize)]
struct KeyList {
    keys: Vec<ApiKey>,
}

#[derive(Deserialize)]
struct GroupList {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Missing {
    missing: Vec<String>,
}

/// Whether a request may be repeated when it failed transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Safe to repeat: retried on connection errors, timeouts, 5xx and 429.
    Idempotent,
    /// Repeated only when it never reached the server.
    OnlyUnsent,
}

/// A client of one Otago server with one credential.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
    /// The certificate stores trusted for `https://` (empty for `http://`).
    trust: crate::tls::TrustStores,
}

impl Client {
    /// A client of the server at `base_url` (no trailing slash) sending `token` as bearer.
    /// For `https://` it trusts the bundled Mozilla roots and the platform's store
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set; see [`crate::tls`]).
    ///
    /// # Errors
    /// [`CliError::Invalid`] when the HTTP client cannot be built (no TLS roots, say).
    pub fn new(base_url: &str, token: Option<&str>) -> Result<Self> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("otago-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300));
        let (builder, trust) = if base_url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            crate::tls::with_platform_roots(builder)
        } else {
            (builder, crate::tls::TrustStores::default())
        };
        let http = builder.build().map_err(|err| CliError::Invalid {
            reason: format!("cannot set up the HTTP client: {err}"),
        })?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
            trust,
        })
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /healthz`: whether the server answers.
    ///
    /// # Errors
    /// [`CliError::Unreachable`] or the server's error.
    pub async fn health(&self) -> Result<()> {
        let _: serde_json::Value = self
            .json(Method::GET, "/healthz", None::<&()>, Retry::Idempotent)
            .await?;
        Ok(())
    }

    /// `POST /api/v1/projects` (admin).
    ///
    /// # Errors
    /// The server's error, e.g. 409 when the app and environment exist.
    pub async fn create_project(&self, app: &str, environment: &str) -> Result<Project> {
        let body = serde_json::json!({ "app": app, "environment": environment });
        self.json(
            Method::POST,
            "/api/v1/projects",
            Some(&body),
            Retry::OnlyUnsent,
        )
        .await
    }

    /// `GET /api/v1/projects`.
    ///
    /// # Errors
    /// The server's error.
    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        let list: ProjectList = self
            .json(
                Method::GET,
                "/api/v1/projects",
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(list.projects)
    }

    /// `GET /api/v1/projects/{ref}`.
    ///
    /// # Errors
    /// The server's error, e.g. 404 for an unknown ref or 401 for a revoked key.
    pub async fn project(&self, reference: &str) -> Result<Project> {
        self.json(
            Method::GET,
            &format!("/api/v1/projects/{reference}"),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `PATCH /api/v1/projects/{ref}`: changes settings; returns the project as it is now.
    ///
    /// # Errors
    /// The server's error, e.g. 422 `certificate_required` when signing would be required
    /// without a certificate.
    pub async fn update_project(&self, reference: &str, patch: &ProjectPatch) -> Result<Project> {
        self.json(
            Method::PATCH,
            &format!("/api/v1/projects/{reference}"),
            Some(patch),
            Retry::Idempotent,
        )
        .await
    }

    /// `DELETE /api/v1/projects/{ref}` (admin): the project, its keys and its update history.
    ///
    /// # Errors
    /// The server's error, e.g. 404 for an unknown ref or 403 for a project key.
    pub async fn delete_project(&self, reference: &str) -> Result<()> {
        self.empty(Method::DELETE, &format!("/api/v1/projects/{reference}"))
            .await
    }

    /// `POST /api/v1/projects/{ref}/keys`.
    ///
    /// # Errors
    /// The server's error.
    pub async fn create_key(&self, reference: &str, key: &NewKey) -> Result<CreatedKey> {
        self.json(
            Method::POST,
            &format!("/api/v1/projects/{reference}/keys"),
            Some(key),
            Retry::OnlyUnsent,
        )
        .await
    }

    /// `GET /api/v1/projects/{ref}/audit`: a page of the audit log, newest first.
    ///
    /// # Errors
    /// The server's error (403 without an admin key of the project or the admin token).
    pub async fn audit(
        &self,
        reference: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<AuditPage> {
        let before = before.map_or(String::new(), |seq| format!("&before={seq}"));
        self.json(
            Method::GET,
            &format!("/api/v1/projects/{reference}/audit?limit={limit}{before}"),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /api/v1/projects/{ref}/keys`.
    ///
    /// # Errors
    /// The server's error.
    pub async fn list_keys(&self, reference: &str) -> Result<Vec<ApiKey>> {
        let list: KeyList = self
            .json(
                Method::GET,
                &format!("/api/v1/projects/{reference}/keys"),
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(list.keys)
    }

    /// `DELETE /api/v1/projects/{ref}/keys/{id}`.
    ///
    /// # Errors
    /// The server's error, e.g. 404 for an unknown key.
    pub async fn revoke_key(&self, reference: &str, key_id: &str) -> Result<()> {
        self.empty(
            Method::DELETE,
            &format!("/api/v1/projects/{reference}/keys/{key_id}"),
        )
        .await
    }

    /// `POST /api/v1/projects/{ref}/assets/missing`, in batches: the hashes the server lacks,
    /// in the order given.
    ///
    /// # Errors
    /// The server's error.
    pub async fn missing_assets(&self, reference: &str, hashes: &[String]) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for batch in hashes.chunks(MISSING_BATCH) {
            let body = serde_json::json!({ "hashes": batch });
            let answer: Missing = self
                .json(
                    Method::POST,
                    &format!("/api/v1/projects/{reference}/assets/missing"),
                    Some(&body),
                    Retry::Idempotent,
                )
                .await?;
            missing.extend(answer.missing);
        }
        Ok(missing)
    }

    /// `PUT /api/v1/projects/{ref}/assets/{hash}` with the bytes.
    ///
    /// # Errors
    /// The server's error, e.g. 422 `hash_mismatch` or 413 for an asset over the limit.
    pub async fn upload_asset(
        &self,
        reference: &str,
        hash: &str,
        content_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<UploadedAsset> {
        let path = format!("/api/v1/projects/{reference}/assets/{hash}");
        let content_type = HeaderValue::from_str(content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        let response = self
            .send(&Method::PUT, &path, Retry::Idempotent, |request| {
                request
                    .header(reqwest::header::CONTENT_TYPE, content_type.clone())
                    .body(bytes.clone())
            })
            .await?;
        decode(&Method::PUT, &path, response).await
    }

    /// `POST /api/v1/projects/{ref}/groups`: publishes a group atomically.
    ///
    /// # Errors
    /// The server's error naming the entry and problem; nothing is stored then.
    pub async fn publish_group(&self, reference: &str, group: &NewGroup) -> Result<Group> {
        self.json(
            Method::POST,
            &format!("/api/v1/projects/{reference}/groups"),
            Some(group),
            Retry::OnlyUnsent,
        )
        .await
    }

    /// `GET /api/v1/projects/{ref}/groups`, newest first.
    ///
    /// # Errors
    /// The server's error.
    pub async fn list_groups(
        &self,
        reference: &str,
        runtime_version: Option<&str>,
        platform: Option<Platform>,
        limit: Option<u32>,
    ) -> Result<Vec<Group>> {
        let mut query = Vec::new();
        if let Some(rv) = runtime_version {
            query.push(format!("runtime_version={}", percent_encode(rv)));
        }
        if let Some(platform) = platform {
            query.push(format!("platform={platform}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let mut path = format!("/api/v1/projects/{reference}/groups");
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        let list: GroupList = self
            .json(Method::GET, &path, None::<&()>, Retry::Idempotent)
            .await?;
        Ok(list.groups)
    }

    /// `GET /api/v1/projects/{ref}/runtime-versions?days=`: the runtime versions devices
    /// asked for over the last `days` days, with their distinct devices.
    ///
    /// # Errors
    /// The server's error, e.g. 400 for `days` past the server's retention period.
    pub async fn runtime_versions(&self, reference: &str, days: u32) -> Result<RuntimeVersions> {
        self.json(
            Method::GET,
            &format!("/api/v1/projects/{reference}/runtime-versions?days={days}"),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `POST /api/v1/projects/{ref}/embedded`: registers an uploaded bundle as the one embedded
    /// in builds whose embedded update is `update_id`.
    ///
    /// # Errors
    /// The server's error, e.g. 409 when the id is registered with another bundle.
    pub async fn register_embedded(
        &self,
        reference: &str,
        platform: Platform,
        runtime_version: &str,
        update_id: &str,
        bundle_hash: &str,
    ) -> Result<EmbeddedBundle> {
        let body = serde_json::json!({
            "platform": platform.as_str(),
            "runtime_version": runtime_version,
            "update_id": update_id,
            "bundle_hash": bundle_hash,
        });
        self.json(
            Method::POST,
            &format!("/api/v1/projects/{reference}/embedded"),
            Some(&body),
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /api/v1/projects/{ref}/embedded`.
    ///
    /// # Errors
    /// The server's error.
    pub async fn list_embedded(&self, reference: &str) -> Result<Vec<EmbeddedBundle>> {
        let list: EmbeddedList = self
            .json(
                Method::GET,
                &format!("/api/v1/projects/{reference}/embedded"),
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(list.embedded)
    }

    /// `GET /api/v1/projects/{ref}/groups/{group}`, with manifests and signatures.
    ///
    /// # Errors
    /// The server's error, e.g. 404.
    pub async fn group(&self, reference: &str, group: &str) -> Result<Group> {
        self.json(
            Method::GET,
            &format!("/api/v1/projects/{reference}/groups/{group}"),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `PATCH /api/v1/projects/{ref}/groups/{group}` with a rollout percentage.
    ///
    /// # Errors
    /// The server's error, e.g. when the group is not the newest of its runtime version.
    pub async fn set_rollout(&self, reference: &str, group: &str, percentage: u8) -> Result<Group> {
        let body = serde_json::json!({ "rollout_percentage": percentage });
        self.json(
            Method::PATCH,
            &format!("/api/v1/projects/{reference}/groups/{group}"),
            Some(&body),
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /api/v1/projects/{ref}/release?runtime_version=`: what each platform serves.
    ///
    /// # Errors
    /// The server's error.
    pub async fn release(
        &self,
        reference: &str,
        runtime_version: &str,
    ) -> Result<Vec<ChannelRelease>> {
        let view: ReleaseView = self
            .json(
                Method::GET,
                &format!(
                    "/api/v1/projects/{reference}/release?runtime_version={}",
                    percent_encode(runtime_version)
                ),
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(view.platforms)
    }

    /// `POST /api/v1/projects/{ref}/groups/{group}/revert`.
    ///
    /// # Errors
    /// The server's error.
    pub async fn revert_group(&self, reference: &str, group: &str) -> Result<Group> {
        self.json(
            Method::POST,
            &format!("/api/v1/projects/{reference}/groups/{group}/revert"),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// Asks a protocol endpoint (a project's update URL) for an update as an app would.
    ///
    /// # Errors
    /// [`CliError::Unreachable`] when the URL cannot be reached; any HTTP status is returned.
    pub async fn fetch_manifest(
        &self,
        update_url: &str,
        request: &ProtocolRequest<'_>,
    ) -> Result<ProtocolResponse> {
        let mut builder = self
            .http
            .get(update_url)
            .header(
                "accept",
                "multipart/mixed,application/expo+json,application/json",
            )
            .header("expo-platform", request.platform.as_str())
            .header("expo-runtime-version", request.runtime_version)
            .header("expo-protocol-version", "1");
        if let Some(keyid) = request.expect_signature_keyid {
            builder = builder.header(
                "expo-expect-signature",
                format!(
                    "sig, keyid=\"{keyid}\", alg=\"{}\"",
                    otago_core::SIGNATURE_ALGORITHM
                ),
            );
        }
        for (name, value) in [
            ("eas-client-id", request.client_id),
            ("expo-current-update-id", request.current_update_id),
            ("expo-embedded-update-id", request.embedded_update_id),
        ] {
            if let Some(value) = value {
                builder = builder.header(name, value);
            }
        }
        let response = builder
            .send()
            .await
            .map_err(|err| self.unreachable(update_url, &err))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(update_url, &err))?
            .to_vec();
        Ok(ProtocolResponse {
            status,
            headers,
            body,
        })
    }

    async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|err| CliError::Invalid {
                reason: format!("cannot encode the request: {err}"),
            })?;
        let response = self
            .send(&method, path, retry, |request| match &body {
                Some(body) => request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone()),
                None => request,
            })
            .await?;
        decode(&method, path, response).await
    }

    async fn empty(&self, method: Method, path: &str) -> Result<()> {
        self.send(&method, path, Retry::Idempotent, |request| request)
            .await
            .map(drop)
    }

    /// Sends a request built by `build`, retrying as `retry` allows; returns a successful
    /// response or the server's error.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        retry: Retry,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base_url);
        let mut attempt = 1;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let outcome = build(request).send().await;
            let wait = backoff(attempt);
            match outcome {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    if is_transient(status) && retry == Retry::Idempotent && attempt < MAX_ATTEMPTS
                    {
                        let wait = retry_after(response.headers()).unwrap_or(wait);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(api_error(method, path, response).await);
                }
                Err(err) if crate::tls::certificate_problem(&err).is_some() => {
                    // Trying again would meet the same certificate.
                    return Err(self.unreachable(&self.base_url, &err));
                }
                Err(err) => {
                    let unsent = err.is_connect();
                    let transient = unsent || err.is_timeout() || err.is_request();
                    let may_retry = match retry {
                        Retry::Idempotent => transient,
                        Retry::OnlyUnsent => unsent,
                    };
                    if may_retry && attempt < MAX_ATTEMPTS {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.unreachable(&self.base_url, &err));
                }
            }
        }
    }
}

/// Whether an error status may pass if the request is sent again. A full disk (507) stays
/// full: retrying it would only make the deployer wait.
fn is_transient(status: StatusCode) -> bool {
    (status.is_server_error() && status != StatusCode::INSUFFICIENT_STORAGE)
        || status == StatusCode::TOO_MANY_REQUESTS
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1))
}

/// A `Retry-After` of a few seconds, honoured; longer ones are not waited for.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds <= 10).then(|| Duration::from_secs(seconds))
}

async fn decode<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    response: reqwest::Response,
) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|err| CliError::BadResponse {
            what: format!("{method} {path}"),
            reason: format!("the body could not be read: {err}"),
        })?;
    serde_json::from_slice(&bytes).map_err(|err| CliError::BadResponse {
        what: format!("{method} {path}"),
        reason: format!("the body is not what the API contract describes: {err}"),
    })
}

async fn api_error(method: &Method, path: &str, response: reqwest::Response) -> CliError {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    let (code, message, hint) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ErrorBody { error }) => (error.code, error.message, error.hint),
        Err(_) => {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text.chars().take(300).collect()
            };
            (String::new(), message, String::new())
        }
    };
    let code = if code.is_empty() {
        default_code(status).to_owned()
    } else {
        code
    };
    // A 401 is fixed in the CLI's settings (OTAGO_API_KEY, OTAGO_ADMIN_TOKEN), which the
    // server's hint for HTTP clients (an `Authorization` header) does not name; a 507 is the
    // server's disk, which the CLI's own hint explains.
    let hint = if hint.is_empty()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::INSUFFICIENT_STORAGE
    {
        default_hint(status).to_owned()
    } else {
        hint
    };
    CliError::Api {
        method: method.to_string(),
        path: path.to_owned(),
        status: status.as_u16(),
        code,
        message,
        hint,
    }
}

/// What a 507 means for a deploy, whatever the server says.
const INSUFFICIENT_STORAGE_HINT: &str = "the server's disk is full, so nothing was stored or published and devices keep the update they had; retrying will not help until the server operator frees space on the disk of its data folder (or enlarges it), then run the deploy again";

fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        507 => "insufficient_storage",
        500.. => "server_error",
        _ => "rejected",
    }
}

fn default_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => {
            "check OTAGO_API_KEY (or OTAGO_ADMIN_TOKEN): it may be mistyped or revoked; create a new key with `otago keys create`"
        }
        403 => "this credential has no access here: use the project's own key or the admin token",
        404 => "check the ref or id with `otago projects list` or `otago updates list`",
        507 => INSUFFICIENT_STORAGE_HINT,
        500.. => "the server failed; its log has the details, try again later",
        _ => "",
    }
}

impl Client {
    /// The error for a request that got no answer: an untrusted certificate named with the
    /// stores that were tried, or the innermost cause, e.g. "Connection refused (os error 111)".
    fn unreachable(&self, url: &str, err: &reqwest::Error) -> CliError {
        if let Some(problem) = crate::tls::certificate_problem(err) {
            return CliError::UntrustedCertificate {
                url: url.to_owned(),
                problem,
                stores: self.trust.to_string(),
            };
        }
        unreachable(url, err)
    }
}

/// The innermost cause of a reqwest error, e.g. "Connection refused (os error 111)".
fn unreachable(url: &str, err: &reqwest::Error) -> CliError {
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        reason = inner.to_string();
        source = inner.source();
    }
    if err.is_timeout() {
        reason = format!("timed out ({reason})");
    }
    CliError::Unreachable {
        url: url.to_owned(),
        reason,
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(3), FIRST_BACKOFF * 4);
    }

    #[test]
    fn project_patches_send_only_what_changes() {
        let patch = ProjectPatch {
            require_signing: Some(false),
            certificate_pem: Some(None),
            max_asset_bytes: None,
        };
        assert_eq!(
            serde_json::to_string(&patch).unwrap(),
            r#"{"require_signing":false,"certificate_pem":null}"#
        );
        assert_eq!(
            serde_json::to_string(&ProjectPatch::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_full_disk_is_explained_and_not_retried() {
        let full = StatusCode::INSUFFICIENT_STORAGE;
        assert!(!is_transient(full));
        assert!(is_transient(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_transient(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient(StatusCode::UNPROCESSABLE_ENTITY));
        assert_eq!(default_code(full), "insufficient_storage");
        let hint = default_hint(full);
        assert!(
            hint.contains("disk is full") && hint.contains("nothing was stored"),
            "{hint}"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(percent_encode("1.0.0(45)"), "1.0.0%2845%29");
    }
}
