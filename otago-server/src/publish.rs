//! Publishing a group: every check, then one store transaction, then the live answers.
//!
//! Used by `POST /api/v1/projects/{ref}/groups` and by the demo, so both go through the same
//! checks. The manifest and directive bytes are stored exactly as sent, and so is the
//! `expo-signature` value: the server never re-serialises what the deployer signed.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use otago_core::{
    Manifest, Platform, PublishedUpdate, SignatureHeader, SigningCertificate, StoredSignature,
    UpdateId, asset_url,
};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::live::LiveChannel;
use crate::state::AppState;
use crate::store::{ChannelKey, GroupKind, GroupRecord, ProjectRecord, UpdateRecord};

/// Longest runtime version accepted.
const MAX_RUNTIME_VERSION_LEN: usize = 255;
/// Longest message accepted.
const MAX_MESSAGE_LEN: usize = 4096;

/// The body of a publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    /// The runtime version every update targets.
    pub(crate) runtime_version: String,
    /// A note from the deployer.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// Share of devices (0–100, default 100) that get the group.
    #[serde(default)]
    pub(crate) rollout_percentage: Option<u8>,
    /// One entry per platform.
    pub(crate) updates: Vec<PublishEntry>,
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
}

/// One entry, checked.
struct Checked {
    platform: Platform,
    published: PublishedUpdate,
    signature_text: Option<String>,
    asset_hashes: Vec<String>,
    manifest: Option<Manifest>,
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
    let published = published
        .with_rollout_percentage(request.rollout_percentage.unwrap_or(100))
        .map_err(|err| ApiError::bad_request("invalid_rollout", err.to_string(), "use 0 to 100"))?;
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
        let Some(text) = entry.signature_text.as_deref() else {
            if project.require_signing {
                return Err(refused(
                    index,
                    name,
                    "signature_required",
                    "the project requires signed updates and this one is not signed",
                    hint,
                ));
            }
            continue;
        };
        let header = SignatureHeader::parse(text)
            .map_err(|err| refused(index, name, "invalid_signature_header", err, hint))?;
        if let Some(certificate) = &certificate {
            certificate
                .verify(&entry.published.body.bytes, header.signature())
                .map_err(|err| refused(index, name, "bad_signature", err, hint))?;
        }
        keyids.insert(header.keyid().to_owned());
        let served = channel
            .as_ref()
            .and_then(|c| c.prepared.updates().find_map(|u| u.body.signature.clone()));
        if let Some(served) = served
            && served.keyid() != header.keyid()
        {
            return Err(refused(
                index,
                name,
                "keyid_mismatch",
                format!(
                    "signed with keyid `{}` but this runtime version's updates use `{}`",
                    header.keyid(),
                    served.keyid()
                ),
                "sign with the keyid of the app's codeSigningMetadata; a new key needs a new runtime version",
            ));
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

    let _serialized = state.publish_lock.lock().await;
    let used = state
        .meta
        .used_update_ids(&ids.iter().cloned().collect::<Vec<_>>())
        .await?;
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
    for (index, (entry, channel)) in checked.iter().zip(&current).enumerate() {
        check_against_channel(index, entry, channel.as_deref())?;
    }

    let group = GroupRecord {
        id: ids::new_uuid(),
        project_ref: project.r#ref.clone(),
        runtime_version: request.runtime_version.clone(),
        message: request.message.clone().unwrap_or_default(),
        created_at: state.now(),
        rollout_percentage: request.rollout_percentage.unwrap_or(100),
        reverted: false,
        kind: if checked[0].manifest.is_some() {
            GroupKind::Update
        } else {
            GroupKind::RollBackToEmbedded
        },
        updates: update_records(state, checked).await?,
    };
    state.meta.publish(group.clone()).await?;
    let keys: Vec<ChannelKey> = group
        .updates
        .iter()
        .map(|u| ChannelKey {
            project_ref: project.r#ref.clone(),
            platform: u.platform,
            runtime_version: group.runtime_version.clone(),
        })
        .collect();
    state.live.refresh(state.meta.as_ref(), &keys).await?;
    tracing::info!(project = %project.r#ref, group = %group.id, runtime_version = %group.runtime_version, kind = group.kind.as_str(), "group published");
    Ok(group)
}

/// Every asset must be stored, with the key the manifest gives it.
async fn check_assets(state: &AppState, checked: &[Checked]) -> ApiResult<()> {
    let wanted: Vec<String> = checked
        .iter()
        .flat_map(|c| c.asset_hashes.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let stored: BTreeMap<String, String> = state
        .meta
        .assets(&wanted)
        .await?
        .into_iter()
        .map(|a| (a.hash, a.key))
        .collect();
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

/// The new update must be newer than what the channel serves, and the channel must still
/// prepare with it (otago-core's own checks).
fn check_against_channel(
    index: usize,
    entry: &Checked,
    channel: Option<&LiveChannel>,
) -> ApiResult<()> {
    let name = entry.platform.as_str();
    let served: Vec<PublishedUpdate> = channel
        .map(|c| c.prepared.updates().take(1).cloned().collect())
        .unwrap_or_default();
    if let Some(newest) = served.first()
        && entry.published.created_at <= newest.created_at
    {
        return Err(refused(
            index,
            name,
            "not_newer",
            format!(
                "createdAt {} is not later than the served update's {}",
                entry.published.created_at, newest.created_at
            ),
            "build the update again now: clients ignore updates older than the one they run",
        ));
    }
    let mut candidate = served;
    candidate.push(entry.published.clone());
    otago_core::PreparedUpdates::new(candidate, &otago_core::AssetRequestHeaders::new())
        .map(drop)
        .map_err(|err| refused(index, name, "not_servable", err, "build the update again"))
}

async fn update_records(state: &AppState, checked: Vec<Checked>) -> ApiResult<Vec<UpdateRecord>> {
    let mut records = Vec::with_capacity(checked.len());
    for entry in checked {
        let asset_bytes: u64 = state
            .meta
            .assets(&entry.asset_hashes)
            .await?
            .iter()
            .map(|a| a.size)
            .sum();
        let body = entry.published.body.bytes.clone();
        records.push(UpdateRecord {
            id: entry.published.id.to_string(),
            platform: entry.platform,
            created_at: entry.published.created_at,
            size: body.len() as u64 + asset_bytes,
            signature: entry.signature_text,
            body: Some(body),
            asset_hashes: entry.asset_hashes,
        });
    }
    Ok(records)
}
