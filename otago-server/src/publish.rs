//! Publishing a group: every check, the new live answers built, one store transaction, then
//! exactly those answers installed. A failure at any step leaves the served answers and the
//! store as they were.
//!
//! Used by `POST /api/v1/projects/{ref}/groups` and by the demo, so both go through the same
//! checks. The manifest and directive bytes are stored exactly as sent, and so is the
//! `expo-signature` value: the server never re-serialises what the deployer signed. A rollout
//! (a percentage under 100) comes with its standby revert, signed by the deployer like the
//! update; for unsigned projects the server makes it itself.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otago_core::{
    ChannelRelease, DEFAULT_MAX_FAILURE_PERCENT, DEFAULT_MIN_DEVICES, FailureRate, Manifest,
    Platform, PublishedUpdate, Ramp, SignatureHeader, SigningCertificate, StoredSignature,
    UpdateId, UpdateKind, asset_url, standby_body, standby_update,
};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::live::{LiveChannel, RolloutInfo};
use crate::state::AppState;
use crate::store::{
    ChannelKey, GateRecord, GroupKind, GroupRecord, GroupState, ProjectRecord, RampRecord,
    StandbyRecord, UpdateRecord,
};

/// Longest runtime version accepted.
pub(crate) const MAX_RUNTIME_VERSION_LEN: usize = 255;
/// Longest message accepted.
const MAX_MESSAGE_LEN: usize = 4096;
/// How far into the future a `createdAt` may be (clock skew between deployer and server).
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Longest `expo-signature` value accepted (an RSA-4096 signature in base64 is 684 bytes).
const MAX_SIGNATURE_LEN: usize = 4096;
/// Most bytes of assets one group may reference, every platform together.
const MAX_GROUP_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The body of a publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    /// The runtime version every update targets.
    pub(crate) runtime_version: String,
    /// A note from the deployer.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// Share of devices (0–100, default 100, or the ramp's first step) that get the group.
    #[serde(default)]
    pub(crate) rollout_percentage: Option<u8>,
    /// The health gate of a rollout (on by default for rollouts).
    #[serde(default)]
    pub(crate) health_gate: Option<GateRequest>,
    /// A scheduled ramp for a rollout.
    #[serde(default)]
    pub(crate) ramp: Option<RampRequest>,
    /// One entry per platform.
    pub(crate) updates: Vec<PublishEntry>,
}

/// A rollout's health gate in a publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateRequest {
    /// `false` turns the gate off.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// Revert once failed ÷ served is over this percentage (default 5).
    #[serde(default)]
    pub(crate) max_failure_rate: Option<f64>,
    /// Judge only once served to this many devices (default 20).
    #[serde(default)]
    pub(crate) min_devices: Option<u64>,
}

fn yes() -> bool {
    true
}

/// A rollout's ramp in a publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RampRequest {
    /// The percentages, e.g. `1,10,50,100`.
    pub(crate) steps: String,
    /// Seconds between steps.
    pub(crate) every_seconds: u64,
}

/// One platform's update in a publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishEntry {
    /// `ios` or `android`.
    pub(crate) platform: String,
    /// The exact manifest JSON text.
    #[serde(default)]
    pub(crate) manifest: Option<String>,
    /// The exact `rollBackToEmbedded` directive JSON text (instead of a manifest).
    #[serde(default)]
    pub(crate) directive: Option<String>,
    /// The `expo-signature` value over the exact text.
    #[serde(default)]
    pub(crate) signature: Option<String>,
    /// For a rollout: the standby revert (see `otago_core::standby_body`).
    #[serde(default)]
    pub(crate) standby: Option<StandbyEntry>,
}

/// A standby revert in a publish: the control's manifest under a new id, or a
/// `rollBackToEmbedded` directive, newer than the update.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StandbyEntry {
    /// The exact manifest JSON text.
    #[serde(default)]
    pub(crate) manifest: Option<String>,
    /// The exact directive JSON text.
    #[serde(default)]
    pub(crate) directive: Option<String>,
    /// The `expo-signature` value over the exact text.
    #[serde(default)]
    pub(crate) signature: Option<String>,
}

/// One entry, checked.
struct Checked {
    platform: Platform,
    published: PublishedUpdate,
    signature_text: Option<String>,
    asset_hashes: Vec<String>,
    manifest: Option<Manifest>,
    standby: Option<CheckedStandby>,
}

/// A standby, parsed.
struct CheckedStandby {
    published: PublishedUpdate,
    signature_text: Option<String>,
}

fn refused(
    index: usize,
    platform: &str,
    code: &'static str,
    message: impl std::fmt::Display,
    hint: &str,
) -> ApiError {
    ApiError::unprocessable(
        code,
        format!("updates[{index}] ({platform}): {message}"),
        hint,
    )
}

fn check_fields(request: &PublishRequest) -> ApiResult<()> {
    let rv = &request.runtime_version;
    if rv.is_empty() || rv.len() > MAX_RUNTIME_VERSION_LEN || rv.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_runtime_version",
            format!("runtime_version must be 1 to {MAX_RUNTIME_VERSION_LEN} printable characters"),
            "send the app's runtime version, e.g. \"1.0.0\"",
        ));
    }
    if request
        .message
        .as_deref()
        .is_some_and(|m| m.len() > MAX_MESSAGE_LEN)
    {
        return Err(ApiError::bad_request(
            "invalid_message",
            format!("message is over {MAX_MESSAGE_LEN} bytes"),
            "shorten it",
        ));
    }
    if request.rollout_percentage.is_some_and(|p| p > 100) {
        return Err(ApiError::bad_request(
            "invalid_rollout",
            "rollout_percentage must be 0 to 100",
            "e.g. 100",
        ));
    }
    if request.updates.is_empty() || request.updates.len() > Platform::ALL.len() {
        return Err(ApiError::bad_request(
            "invalid_updates",
            "updates must have one or two entries (one per platform)",
            "send one entry for ios and/or one for android",
        ));
    }
    Ok(())
}

/// Parses and checks one entry without looking at the store.
fn check_entry(
    index: usize,
    entry: &PublishEntry,
    request: &PublishRequest,
    base: &str,
) -> ApiResult<Checked> {
    let platform: Platform = entry.platform.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_platform",
            format!("updates[{index}]: platform must be `ios` or `android`"),
            "fix the platform",
        )
    })?;
    let name = platform.as_str();
    let signature = match entry.signature.as_deref() {
        None => None,
        Some(text) if text.len() > MAX_SIGNATURE_LEN => {
            return Err(refused(
                index,
                name,
                "signature_too_large",
                format!(
                    "the signature has {} bytes; at most {MAX_SIGNATURE_LEN} are accepted",
                    text.len()
                ),
                "send the expo-signature value of one RSA signature",
            ));
        }
        Some(text) => Some(StoredSignature::parse(text).map_err(|err| {
            refused(
                index,
                name,
                "invalid_signature_header",
                err,
                "send the expo-signature value: sig=\"…\", keyid=\"…\", alg=\"rsa-v1_5-sha256\"",
            )
        })?),
    };
    let (published, manifest) = match (&entry.manifest, &entry.directive) {
        (Some(text), None) => {
            let bytes = Bytes::copy_from_slice(text.as_bytes());
            let manifest = Manifest::parse(&bytes).map_err(|err| {
                refused(
                    index,
                    name,
                    "invalid_manifest",
                    err,
                    "build the manifest with otago (or otago-core)",
                )
            })?;
            if manifest.runtime_version != request.runtime_version {
                return Err(refused(
                    index,
                    name,
                    "runtime_version_mismatch",
                    format!(
                        "the manifest's runtimeVersion is `{}` but the group's is `{}`",
                        manifest.runtime_version, request.runtime_version
                    ),
                    "publish each runtime version as its own group",
                ));
            }
            for asset in manifest.all_assets() {
                let expected = asset_url(base, &asset.hash).map_err(ApiError::internal)?;
                if asset.url != expected {
                    return Err(refused(
                        index,
                        name,
                        "asset_url_mismatch",
                        format!(
                            "asset {} has url `{}`, expected `{expected}`",
                            asset.key, asset.url
                        ),
                        "build asset URLs from the project's asset_base_url",
                    ));
                }
            }
            let published = PublishedUpdate::manifest(bytes, signature).map_err(|err| {
                refused(
                    index,
                    name,
                    "invalid_manifest",
                    err,
                    "build the manifest with otago",
                )
            })?;
            (published, Some(manifest))
        }
        (None, Some(text)) => {
            let id = UpdateId::from_random_bytes(rand::random());
            let published = PublishedUpdate::roll_back_to_embedded(
                id,
                Bytes::copy_from_slice(text.as_bytes()),
                signature,
            )
            .map_err(|err| {
                refused(
                    index,
                    name,
                    "invalid_directive",
                    err,
                    "send a rollBackToEmbedded directive with commitTime",
                )
            })?;
            (published, None)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_updates",
                format!(
                    "updates[{index}] ({name}): send exactly one of `manifest` and `directive`"
                ),
                "a group is either updates or rollbacks to the embedded update",
            ));
        }
    };
    let standby = entry
        .standby
        .as_ref()
        .map(|standby| check_standby_entry(index, name, standby))
        .transpose()?;
    let asset_hashes: BTreeSet<String> = manifest
        .iter()
        .flat_map(|m| m.all_assets().map(|a| a.hash.clone()))
        .collect();
    Ok(Checked {
        platform,
        published,
        signature_text: entry.signature.clone(),
        asset_hashes: asset_hashes.into_iter().collect(),
        manifest,
        standby,
    })
}

/// Parses a standby revert of entry `index`.
fn check_standby_entry(
    index: usize,
    platform: &str,
    entry: &StandbyEntry,
) -> ApiResult<CheckedStandby> {
    let signature = entry
        .signature
        .as_deref()
        .map(StoredSignature::parse)
        .transpose()
        .map_err(|err| {
            refused(
                index,
                platform,
                "invalid_signature_header",
                err,
                "sign the standby like the update",
            )
        })?;
    let hint = "make the standby with otago (otago_core::standby_body)";
    let (kind, text) = match (&entry.manifest, &entry.directive) {
        (Some(text), None) => (UpdateKind::Manifest, text),
        (None, Some(text)) => (UpdateKind::RollBackToEmbedded, text),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_standby",
                format!(
                    "updates[{index}] ({platform}): a standby has exactly one of `manifest` and `directive`"
                ),
                hint,
            ));
        }
    };
    let bytes = Bytes::copy_from_slice(text.as_bytes());
    let id = match kind {
        UpdateKind::Manifest => {
            Manifest::parse(&bytes)
                .map_err(|err| refused(index, platform, "invalid_standby", err, hint))?
                .id
        }
        UpdateKind::RollBackToEmbedded => UpdateId::from_random_bytes(rand::random()),
    };
    let published = standby_update(kind, id, bytes, signature)
        .map_err(|err| refused(index, platform, "invalid_standby", err, hint))?;
    Ok(CheckedStandby {
        published,
        signature_text: entry.signature.clone(),
    })
}

/// Verifies signatures against the project's certificate; all must share one key id, the one
/// the channel already serves (clients accept only their configured key id).
fn check_signatures(
    project: &ProjectRecord,
    checked: &[Checked],
    current: &[Option<std::sync::Arc<LiveChannel>>],
) -> ApiResult<()> {
    let certificate = project
        .certificate_pem
        .as_deref()
        .map(SigningCertificate::from_pem)
        .transpose()
        .map_err(|err| {
            ApiError::unprocessable(
                "invalid_certificate",
                format!("the project's certificate is unusable: {err}"),
                "set a valid certificate_pem",
            )
        })?;
    let hint = "sign the exact bytes with the private key of the project's certificate";
    let mut keyids = BTreeSet::new();
    for (index, (entry, channel)) in checked.iter().zip(current).enumerate() {
        let name = entry.platform.as_str();
        // The update, and its standby revert, which must be signed like it.
        let standby = entry
            .standby
            .as_ref()
            .map(|s| (&s.published, s.signature_text.as_deref()));
        let signed_update = entry.signature_text.is_some();
        for (what, (update, text)) in [
            (
                "update",
                Some((&entry.published, entry.signature_text.as_deref())),
            ),
            ("standby revert", standby),
        ]
        .into_iter()
        .filter_map(|(what, item)| item.map(|item| (what, item)))
        {
            let Some(text) = text else {
                if project.require_signing || signed_update {
                    return Err(refused(
                        index,
                        name,
                        "signature_required",
                        format!(
                            "the {what} is not signed, but {}",
                            if project.require_signing {
                                "the project requires signed updates"
                            } else {
                                "the update is, and apps that check signatures refuse unsigned answers"
                            }
                        ),
                        hint,
                    ));
                }
                continue;
            };
            let header = SignatureHeader::parse(text)
                .map_err(|err| refused(index, name, "invalid_signature_header", err, hint))?;
            if let Some(certificate) = &certificate {
                certificate
                    .verify(&update.body.bytes, header.signature())
                    .map_err(|err| {
                        refused(
                            index,
                            name,
                            "bad_signature",
                            format!("the {what}: {err}"),
                            hint,
                        )
                    })?;
            }
            keyids.insert(header.keyid().to_owned());
            let served = channel.as_ref().and_then(|c| {
                c.prepared
                    .updates()
                    .find_map(|(_, u)| u.body.signature.clone())
            });
            if let Some(served) = served
                && served.keyid() != header.keyid()
            {
                return Err(refused(
                    index,
                    name,
                    "keyid_mismatch",
                    format!(
                        "the {what} is signed with keyid `{}` but this runtime version's updates use `{}`",
                        header.keyid(),
                        served.keyid()
                    ),
                    "sign with the keyid of the app's codeSigningMetadata; a new key needs a new runtime version",
                ));
            }
        }
    }
    if keyids.len() > 1 {
        return Err(ApiError::unprocessable(
            "keyid_mismatch",
            "the entries are signed with different key ids",
            "sign every entry with the same key",
        ));
    }
    Ok(())
}

/// Checks a publish request and publishes it atomically; returns the stored group.
///
/// # Errors
/// A 4xx naming the entry and the problem, with nothing stored; a 5xx if the store fails.
pub(crate) async fn publish(
    state: &AppState,
    project: &ProjectRecord,
    request: PublishRequest,
) -> ApiResult<GroupRecord> {
    check_fields(&request)?;
    let base = state.config.asset_base_url();
    let checked = request
        .updates
        .iter()
        .enumerate()
        .map(|(index, entry)| check_entry(index, entry, &request, &base))
        .collect::<ApiResult<Vec<_>>>()?;
    let platforms: BTreeSet<Platform> = checked.iter().map(|c| c.platform).collect();
    if platforms.len() != checked.len() {
        return Err(ApiError::bad_request(
            "duplicate_platform",
            "two entries are for the same platform",
            "send one entry per platform",
        ));
    }
    let kinds: BTreeSet<bool> = checked.iter().map(|c| c.manifest.is_some()).collect();
    if kinds.len() > 1 {
        return Err(ApiError::bad_request(
            "mixed_group",
            "a group mixes manifests and directives",
            "publish rollbacks as their own group",
        ));
    }
    let ids: BTreeSet<String> = checked.iter().map(|c| c.published.id.to_string()).collect();
    if ids.len() != checked.len() {
        return Err(ApiError::unprocessable(
            "duplicate_update_id",
            "two entries share an update id",
            "give each platform's manifest its own id",
        ));
    }
    check_assets(state, &checked).await?;

    let now = state.now();
    for (index, entry) in checked.iter().enumerate() {
        let latest = now.unix_millis() + i64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(0);
        if entry.published.created_at.unix_millis() > latest {
            return Err(refused(
                index,
                entry.platform.as_str(),
                "created_in_future",
                format!(
                    "createdAt {} is more than {} minutes ahead of the server's clock ({now})",
                    entry.published.created_at,
                    MAX_CLOCK_SKEW.as_secs() / 60
                ),
                "check the deploying machine's clock and build the update again",
            ));
        }
    }
    let plan = ReleasePlan::of(&request)?;
    check_assets(state, &checked).await?;

    let _serialized = state.publish_lock.lock().await;
    let mut all_ids: Vec<String> = ids.iter().cloned().collect();
    all_ids.extend(
        checked
            .iter()
            .filter_map(|c| c.standby.as_ref().map(|s| s.published.id.to_string())),
    );
    let used = state.meta.used_update_ids(&all_ids).await?;
    if let Some(id) = used.first() {
        return Err(ApiError::conflict(
            "update_id_reused",
            format!("update id {id} was published before"),
            "build the manifest again: every publish needs a new id",
        ));
    }
    let current: Vec<_> = checked
        .iter()
        .map(|c| {
            state
                .live
                .channel(&project.r#ref, c.platform, &request.runtime_version)
        })
        .collect();
    check_signatures(project, &checked, &current)?;

    let group_id = ids::new_uuid();
    let mut group = GroupRecord {
        id: group_id.clone(),
        project_ref: project.r#ref.clone(),
        runtime_version: request.runtime_version.clone(),
        message: request.message.clone().unwrap_or_default(),
        created_at: now,
        rollout_percentage: plan.percentage,
        state: if plan.percentage < 100 {
            GroupState::Rollout
        } else {
            GroupState::Full
        },
        kind: if checked[0].manifest.is_some() {
            GroupKind::Update
        } else {
            GroupKind::RollBackToEmbedded
        },
        gate: plan.gate,
        ramp: plan.ramp.clone(),
        percentage_since: now,
        revert: None,
        updates: Vec::new(),
    };
    let rollout = RolloutInfo::of(&group).map_err(ApiError::internal)?;

    // Build every new channel before anything is stored.
    let mut built = Vec::with_capacity(checked.len());
    let mut controls = Vec::with_capacity(checked.len());
    for (index, (entry, channel)) in checked.iter().zip(&current).enumerate() {
        let name = entry.platform.as_str();
        let release = channel
            .as_ref()
            .map(|c| c.release().clone())
            .unwrap_or_default();
        let standby = match (&entry.standby, plan.percentage < 100) {
            (_, false) => None,
            (Some(standby), true) => Some(standby.published.clone()),
            (None, true) => Some(server_made_standby(project, index, entry, &release)?),
        };
        let next = release
            .publish(entry.published.clone(), plan.percentage, standby)
            .map_err(|err| release_refused(index, name, project, &release, &err))?;
        let live = LiveChannel::new(next, rollout.clone(), &state.health)
            .map_err(|err| refused(index, name, "not_servable", err, "build the update again"))?;
        controls.push(release.base.as_ref().map(|b| b.id.to_string()));
        built.push((
            ChannelKey {
                project_ref: project.r#ref.clone(),
                platform: entry.platform,
                runtime_version: request.runtime_version.clone(),
            },
            Some(Arc::new(live)),
        ));
    }
    let built_on = checked
        .iter()
        .zip(&current)
        .map(|(entry, channel)| {
            let newest = channel.as_ref().and_then(|c| c.release().newest_id());
            (entry.platform, newest.map(|id| id.to_string()))
        })
        .collect();
    group.updates = update_records(state, checked, &built, controls).await?;
    state.meta.publish(group.clone(), built_on).await?;
    let changed: Vec<ChannelKey> = built.iter().map(|(key, _)| key.clone()).collect();
    state.live.install(built);
    for channel in changed {
        state.patcher.channel_changed(channel);
    }
    tracing::info!(project = %project.r#ref, group = %group.id, runtime_version = %group.runtime_version, kind = group.kind.as_str(), rollout = group.rollout_percentage, "group published");
    Ok(group)
}

/// A publish's rollout settings, checked.
struct ReleasePlan {
    percentage: u8,
    gate: Option<GateRecord>,
    ramp: Option<RampRecord>,
}

impl ReleasePlan {
    fn of(request: &PublishRequest) -> ApiResult<Self> {
        let invalid =
            |code, message: String, hint: &str| ApiError::bad_request(code, message, hint);
        let ramp = request
            .ramp
            .as_ref()
            .map(|ramp| {
                Ramp::new(&ramp.steps, Duration::from_secs(ramp.every_seconds)).map_err(|err| {
                    invalid(
                        "invalid_ramp",
                        err.to_string(),
                        "e.g. {\"steps\": \"1,10,50,100\", \"every_seconds\": 3600}",
                    )
                })
            })
            .transpose()?;
        let percentage = match (&ramp, request.rollout_percentage) {
            (Some(ramp), Some(p)) if p != ramp.first() => {
                return Err(invalid(
                    "invalid_ramp",
                    format!(
                        "the rollout starts at {p}% but the ramp's first step is {}%",
                        ramp.first()
                    ),
                    "leave rollout_percentage out, or make it the ramp's first step",
                ));
            }
            (Some(ramp), _) => ramp.first(),
            (None, p) => p.unwrap_or(100),
        };
        let gate_asked = request.health_gate.as_ref().is_some_and(|g| g.enabled);
        if percentage >= 100 && (gate_asked || ramp.is_some()) {
            return Err(invalid(
                "invalid_rollout",
                "a health gate or a ramp needs a rollout under 100%: a release to every device has no control to revert to".to_owned(),
                "set rollout_percentage under 100, or roll back with `otago rollback`",
            ));
        }
        let gate = match &request.health_gate {
            Some(gate) if !gate.enabled => None,
            _ if percentage >= 100 => None,
            gate => {
                let max = gate
                    .as_ref()
                    .and_then(|g| g.max_failure_rate)
                    .unwrap_or(DEFAULT_MAX_FAILURE_PERCENT);
                FailureRate::percent(max).map_err(|err| {
                    invalid(
                        "invalid_health_gate",
                        err.to_string(),
                        "e.g. {\"max_failure_rate\": 5}",
                    )
                })?;
                Some(GateRecord {
                    max_failure_percent: max,
                    min_devices: gate
                        .as_ref()
                        .and_then(|g| g.min_devices)
                        .unwrap_or(DEFAULT_MIN_DEVICES),
                })
            }
        };
        Ok(Self {
            percentage,
            gate,
            ramp: ramp.map(|ramp| RampRecord {
                steps: ramp.steps_text(),
                every_ms: u64::try_from(ramp.every.as_millis()).unwrap_or(u64::MAX),
            }),
        })
    }
}

/// The standby of an unsigned rollout, made by the server (it needs no key).
fn server_made_standby(
    project: &ProjectRecord,
    index: usize,
    entry: &Checked,
    release: &ChannelRelease,
) -> ApiResult<PublishedUpdate> {
    let name = entry.platform.as_str();
    if entry.signature_text.is_some() || project.require_signing {
        return Err(refused(
            index,
            name,
            "standby_required",
            "a signed rollout needs its standby revert, signed with the same key",
            "deploy with otago, which signs the standby revert; or publish at 100%",
        ));
    }
    let id = UpdateId::from_random_bytes(rand::random());
    standby_body(release.base.as_ref(), entry.published.created_at, id)
        .and_then(|(kind, bytes)| standby_update(kind, id, bytes, None))
        .map_err(|err| refused(index, name, "not_servable", err, "build the update again"))
}

/// A release rule broken by a publish, with the commands that get past it.
fn release_refused(
    index: usize,
    platform: &str,
    project: &ProjectRecord,
    release: &ChannelRelease,
    err: &otago_core::Error,
) -> ApiError {
    match release.rollout_in_progress() {
        Some(_) => ApiError::conflict(
            "rollout_in_progress",
            format!("updates[{index}] ({platform}): {err}"),
            format!(
                "finish it with `otago rollout --project {0} --percentage 100`, or revert it with `otago rollout --project {0} --revert`",
                project.r#ref
            ),
        ),
        None => refused(
            index,
            platform,
            "not_newer",
            err,
            "build the update again now: clients ignore updates older than the one they run",
        ),
    }
}

/// Every asset must be stored, with the key the manifest gives it.
async fn check_assets(state: &AppState, checked: &[Checked]) -> ApiResult<()> {
    let wanted: Vec<String> = checked
        .iter()
        .flat_map(|c| c.asset_hashes.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = state.meta.assets(&wanted).await?;
    let total: u64 = found.iter().map(|a| a.size).sum();
    if total > MAX_GROUP_BYTES {
        return Err(ApiError::unprocessable(
            "group_too_large",
            format!(
                "the group's assets add up to {total} bytes; a group may reference at most {MAX_GROUP_BYTES}"
            ),
            "ship fewer or smaller assets in one update",
        ));
    }
    let stored: BTreeMap<String, String> = found.into_iter().map(|a| (a.hash, a.key)).collect();
    for (index, entry) in checked.iter().enumerate() {
        let Some(manifest) = &entry.manifest else {
            continue;
        };
        let name = entry.platform.as_str();
        let missing: Vec<&str> = manifest
            .all_assets()
            .filter(|a| !stored.contains_key(&a.hash))
            .map(|a| a.hash.as_str())
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().copied().take(10).collect();
            return Err(refused(
                index,
                name,
                "asset_missing",
                format!(
                    "{} asset(s) are not uploaded: {}",
                    missing.len(),
                    shown.join(", ")
                ),
                "upload them first (POST …/assets/missing, then PUT …/assets/{hash})",
            ));
        }
        if let Some(asset) = manifest
            .all_assets()
            .find(|a| stored.get(&a.hash).is_some_and(|key| *key != a.key))
        {
            return Err(refused(
                index,
                name,
                "asset_key_mismatch",
                format!(
                    "asset {} has key `{}` in the manifest but the stored bytes have key `{}`",
                    asset.hash, asset.key, stored[&asset.hash]
                ),
                "use the hex MD5 of the bytes as the key",
            ));
        }
    }
    Ok(())
}

async fn update_records(
    state: &AppState,
    checked: Vec<Checked>,
    built: &[(ChannelKey, Option<Arc<LiveChannel>>)],
    controls: Vec<Option<String>>,
) -> ApiResult<Vec<UpdateRecord>> {
    let mut records = Vec::with_capacity(checked.len());
    for ((entry, (_, channel)), control) in checked.into_iter().zip(built).zip(controls) {
        let asset_bytes: u64 = state
            .meta
            .assets(&entry.asset_hashes)
            .await?
            .iter()
            .map(|a| a.size)
            .sum();
        let body = entry.published.body.bytes.clone();
        // The standby as the built channel holds it (made by the server when unsigned).
        let standby = channel
            .as_ref()
            .and_then(|c| c.release().rollout.as_ref())
            .map(|rollout| StandbyRecord {
                id: rollout.standby.id.to_string(),
                kind: match rollout.standby.kind {
                    UpdateKind::Manifest => GroupKind::Update,
                    UpdateKind::RollBackToEmbedded => GroupKind::RollBackToEmbedded,
                },
                created_at: rollout.standby.created_at,
                signature: rollout
                    .standby
                    .body
                    .signature
                    .as_ref()
                    .map(|s| s.header_value().to_owned()),
                body: Some(rollout.standby.body.bytes.clone()),
            });
        records.push(UpdateRecord {
            id: entry.published.id.to_string(),
            platform: entry.platform,
            created_at: entry.published.created_at,
            size: body.len() as u64 + asset_bytes,
            signature: entry.signature_text,
            body: Some(body),
            asset_hashes: entry.asset_hashes,
            control_update_id: standby.as_ref().and(control),
            standby,
        });
    }
    Ok(records)
}
