//! `/api/v1/projects/{ref}/groups`: publish, list, get, raise a rollout, revert it; and
//! `/api/v1/projects/{ref}/release`: what each platform serves.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otago_core::{
    FailureRate, Platform, PublishedUpdate, RampAction, UpdateHealth, UpdateKind, Verdict,
    ramp_action,
};
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, PUBLISH_LIMIT};
use crate::ids;
use crate::publish::{PublishRequest, publish as publish_group};
use crate::releases;
use crate::state::AppState;
use crate::store::{ChannelKey, GroupFilter, GroupKind, GroupRecord, GroupState, ProjectRecord};

/// Default and largest page of `GET …/groups`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

#[derive(Debug, Serialize)]
pub(crate) struct UpdateView {
    platform: &'static str,
    id: String,
    created_at: String,
    size: u64,
    signed: bool,
    /// Distinct devices: served, running, failed, and the failure rate in percent.
    health: HealthView,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_update_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    standby_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    standby_health: Option<HealthView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    directive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    /// The launch asset's size, and the bundle patches devices can download instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    launch_asset: Option<LaunchAssetView>,
    /// Whether the server is still making this update's patches (after a publish).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    patches_pending: bool,
}

/// A launch asset with its patches.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LaunchAssetView {
    hash: String,
    size: u64,
    patches: Vec<PatchView>,
}

/// A bundle patch to a launch asset, from what devices on some updates run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PatchView {
    /// The launch asset it starts from.
    base_hash: String,
    /// The updates (and registered embedded bundles) whose devices hold that base.
    base_update_ids: Vec<String>,
    size: u64,
}

/// The launch assets of updates, with their patches, by update id.
async fn launch_assets_of(
    state: &AppState,
    groups: &[GroupRecord],
) -> ApiResult<BTreeMap<String, LaunchAssetView>> {
    let mut views = BTreeMap::new();
    for update in groups.iter().flat_map(|g| &g.updates) {
        let Some(hash) = state.patch_book.launch_asset_of(&update.id) else {
            continue;
        };
        let Some(asset) = state.asset(&hash).await? else {
            continue;
        };
        let patches = state
            .patch_book
            .to_target(&hash)
            .into_iter()
            .map(|patch| PatchView {
                base_update_ids: state.patch_book.updates_running(&patch.base_hash),
                base_hash: patch.base_hash,
                size: patch.size,
            })
            .collect();
        views.insert(
            update.id.clone(),
            LaunchAssetView {
                hash,
                size: asset.size,
                patches,
            },
        );
    }
    Ok(views)
}

/// An update's health in the API.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct HealthView {
    served: u64,
    running: u64,
    failed: u64,
    failure_rate: Option<f64>,
}

impl From<UpdateHealth> for HealthView {
    fn from(health: UpdateHealth) -> Self {
        Self {
            served: health.served,
            running: health.running,
            failed: health.failed,
            failure_rate: health.failure_rate().map(FailureRate::as_percent),
        }
    }
}

#[derive(Debug, Serialize)]
struct GateView {
    max_failure_rate: f64,
    min_devices: u64,
    /// `healthy`, `too_few_devices` or `unhealthy`, for a rollout in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct RampView {
    steps: String,
    every_seconds: u64,
    /// When the next step is due (if the target is healthy then), for a rollout in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_step_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct RevertView {
    at: String,
    by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupView {
    id: String,
    runtime_version: String,
    message: String,
    created_at: String,
    rollout_percentage: u8,
    /// `full`, `rollout`, `reverted` or `withdrawn`.
    state: &'static str,
    reverted: bool,
    kind: &'static str,
    /// The health of its updates together (one per platform: different devices).
    health: HealthView,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_gate: Option<GateView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ramp: Option<RampView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revert: Option<RevertView>,
    updates: Vec<UpdateView>,
}

/// The health of updates by id: live counters where the update is served, the store's
/// counts otherwise.
async fn health_of(
    state: &AppState,
    ids: Vec<String>,
) -> ApiResult<BTreeMap<String, UpdateHealth>> {
    let mut known: BTreeMap<String, UpdateHealth> = BTreeMap::new();
    let mut stored_ids = Vec::new();
    for id in ids {
        match state.health.peek(&id) {
            Some(health) => {
                known.insert(id, health);
            }
            None => stored_ids.push(id),
        }
    }
    for record in state.meta.health(&stored_ids).await? {
        known.insert(record.update_id.clone(), crate::health::estimate(&record));
    }
    Ok(known)
}

impl GroupView {
    /// The API view of groups; bodies and signatures only when `detailed`.
    pub(crate) async fn of(
        state: &AppState,
        groups: Vec<GroupRecord>,
        detailed: bool,
    ) -> ApiResult<Vec<Self>> {
        let ids: Vec<String> = groups
            .iter()
            .flat_map(|g| &g.updates)
            .flat_map(|u| {
                std::iter::once(u.id.clone()).chain(u.standby.as_ref().map(|s| s.id.clone()))
            })
            .collect();
        let health = health_of(state, ids).await?;
        let health_for = |id: &str| health.get(id).copied().unwrap_or_default();
        let mut launch_assets = launch_assets_of(state, &groups).await?;
        let now = state.now();
        Ok(groups
            .into_iter()
            .map(|group| {
                let total = group
                    .updates
                    .iter()
                    .map(|u| health_for(&u.id))
                    .fold(UpdateHealth::default(), UpdateHealth::plus);
                let in_progress = group.state == GroupState::Rollout;
                let info = crate::live::RolloutInfo::of(&group).ok().flatten();
                let health_gate = group.gate.map(|gate| GateView {
                    max_failure_rate: gate.max_failure_percent,
                    min_devices: gate.min_devices,
                    verdict: info
                        .as_ref()
                        .and_then(|i| i.gate.as_ref())
                        .filter(|_| in_progress)
                        .map(|gate| match gate.judge(total) {
                            Verdict::Healthy { .. } => "healthy",
                            Verdict::TooFewDevices { .. } => "too_few_devices",
                            Verdict::Unhealthy { .. } => "unhealthy",
                        }),
                });
                let ramp = group.ramp.as_ref().map(|ramp| RampView {
                    steps: ramp.steps.clone(),
                    every_seconds: ramp.every_ms / 1000,
                    next_step_at: info
                        .as_ref()
                        .and_then(|i| i.ramp.as_ref())
                        .filter(|_| in_progress)
                        .and_then(|r| {
                            match ramp_action(
                                r,
                                group.rollout_percentage,
                                group.percentage_since,
                                now,
                                true,
                            ) {
                                RampAction::Wait { due } => Some(due.to_string()),
                                RampAction::Advance { .. } | RampAction::Hold => {
                                    Some(now.to_string())
                                }
                                RampAction::Done => None,
                            }
                        }),
                });
                let kind = group.kind;
                let (project_ref, runtime_version) =
                    (group.project_ref.clone(), group.runtime_version.clone());
                Self {
                    id: group.id,
                    runtime_version: group.runtime_version,
                    message: group.message,
                    created_at: group.created_at.to_string(),
                    rollout_percentage: group.rollout_percentage,
                    state: group.state.as_str(),
                    reverted: group.state == GroupState::Reverted,
                    kind: kind.as_str(),
                    health: total.into(),
                    health_gate,
                    ramp,
                    revert: group.revert.map(|revert| RevertView {
                        at: revert.at.to_string(),
                        by: revert.by,
                        reason: revert.reason,
                    }),
                    updates: group
                        .updates
                        .into_iter()
                        .map(|update| {
                            let text = detailed
                                .then(|| {
                                    update
                                        .body
                                        .as_ref()
                                        .map(|b| String::from_utf8_lossy(b).into_owned())
                                })
                                .flatten();
                            let channel = ChannelKey {
                                project_ref: project_ref.clone(),
                                platform: update.platform,
                                runtime_version: runtime_version.clone(),
                            };
                            UpdateView {
                                patches_pending: kind == GroupKind::Update
                                    && state.patch_book.pending(&channel),
                                launch_asset: launch_assets.remove(&update.id),
                                platform: update.platform.as_str(),
                                health: health_for(&update.id).into(),
                                standby_health: update
                                    .standby
                                    .as_ref()
                                    .map(|s| health_for(&s.id).into()),
                                id: update.id,
                                created_at: update.created_at.to_string(),
                                size: update.size,
                                signed: update.signature.is_some(),
                                control_update_id: update.control_update_id,
                                standby_id: update.standby.map(|s| s.id),
                                manifest: text.clone().filter(|_| kind == GroupKind::Update),
                                directive: text.filter(|_| kind == GroupKind::RollBackToEmbedded),
                                signature: if detailed { update.signature } else { None },
                            }
                        })
                        .collect(),
                }
            })
            .collect())
    }

    async fn one(state: &AppState, group: GroupRecord, detailed: bool) -> ApiResult<Self> {
        Self::of(state, vec![group], detailed)
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal("a group view went missing"))
    }
}

pub(crate) async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiJson(body): ApiJson<PublishRequest, PUBLISH_LIMIT>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let group = publish_group(&state, &project, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(GroupView::one(&state, group, false).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    runtime_version: Option<String>,
    platform: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupList {
    groups: Vec<GroupView>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<GroupList>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let platform = match query.platform.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<Platform>().map_err(|_| {
            ApiError::bad_request(
                "invalid_platform",
                "platform must be `ios` or `android`",
                "e.g. ?platform=ios",
            )
        })?),
    };
    let filter = GroupFilter {
        runtime_version: query.runtime_version.filter(|rv| !rv.is_empty()),
        platform,
        limit: query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
    };
    let groups = state.meta.groups(&project.r#ref, filter).await?;
    Ok(Json(GroupList {
        groups: GroupView::of(&state, groups, false).await?,
    }))
}

/// The group a request names, after checking the id's shape.
async fn group_for(
    state: &AppState,
    project: &ProjectRecord,
    group_id: &str,
) -> ApiResult<GroupRecord> {
    let not_found = || {
        ApiError::not_found(
            "group_not_found",
            "this project has no such group",
            "list groups with GET …/groups",
        )
    };
    let id = ids::normalize_uuid(group_id).ok_or_else(not_found)?;
    state
        .meta
        .group(&project.r#ref, &id)
        .await?
        .ok_or_else(not_found)
}

pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_ref, group_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<GroupView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let group = group_for(&state, &project, &group_id).await?;
    Ok(Json(GroupView::one(&state, group, true).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchGroup {
    rollout_percentage: u8,
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_ref, group_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PatchGroup>,
) -> ApiResult<Json<GroupView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    if body.rollout_percentage > 100 {
        return Err(ApiError::bad_request(
            "invalid_rollout",
            "rollout_percentage must be 0 to 100",
            "e.g. {\"rollout_percentage\":50}",
        ));
    }
    let group = group_for(&state, &project, &group_id).await?;
    let group = releases::raise(&state, &project.r#ref, &group.id, body.rollout_percentage).await?;
    Ok(Json(GroupView::one(&state, group, false).await?))
}

pub(crate) async fn revert(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_ref, group_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<GroupView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let group = group_for(&state, &project, &group_id).await?;
    let by = match &principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Key { key_id, .. } => key_id.clone(),
    };
    let group = releases::revert(&state, &project.r#ref, &group.id, &by, None).await?;
    Ok(Json(GroupView::one(&state, group, false).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseQuery {
    runtime_version: String,
}

/// An update as the release view shows it, with its bytes (what a deployer needs to make
/// a standby revert).
#[derive(Debug, Serialize)]
struct ReleasedUpdate {
    id: String,
    kind: &'static str,
    created_at: String,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
}

impl ReleasedUpdate {
    fn of(update: &PublishedUpdate) -> Self {
        Self {
            id: update.id.to_string(),
            kind: match update.kind {
                UpdateKind::Manifest => "update",
                UpdateKind::RollBackToEmbedded => "rollback_to_embedded",
            },
            created_at: update.created_at.to_string(),
            body: String::from_utf8_lossy(&update.body.bytes).into_owned(),
            signature: update
                .body
                .signature
                .as_ref()
                .map(|s| s.header_value().to_owned()),
        }
    }
}

#[derive(Debug, Serialize)]
struct ChannelView {
    platform: &'static str,
    /// What every device outside a rollout gets; absent: the embedded update.
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<ReleasedUpdate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<RolloutView>,
}

#[derive(Debug, Serialize)]
struct RolloutView {
    group: String,
    target: String,
    percentage: u8,
    reverted: bool,
    standby: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReleaseView {
    runtime_version: String,
    platforms: Vec<ChannelView>,
}

/// `GET …/release?runtime_version=`: what each platform serves for a runtime version.
pub(crate) async fn release(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReleaseQuery>,
) -> ApiResult<Json<ReleaseView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let platforms = Platform::ALL
        .into_iter()
        .map(|platform| {
            let channel = state
                .live
                .channel(&project.r#ref, platform, &query.runtime_version);
            let release = channel.as_ref().map(|c| c.release());
            ChannelView {
                platform: platform.as_str(),
                base: release
                    .and_then(|r| r.base.as_ref())
                    .map(ReleasedUpdate::of),
                rollout: release
                    .and_then(|r| r.rollout.as_ref())
                    .map(|rollout| RolloutView {
                        group: channel
                            .as_ref()
                            .and_then(|c| c.rollout.as_ref())
                            .map(|info| info.group_id.clone())
                            .unwrap_or_default(),
                        target: rollout.target.id.to_string(),
                        percentage: rollout.percentage,
                        reverted: rollout.reverted,
                        standby: rollout.standby.id.to_string(),
                    }),
            }
        })
        .collect();
    Ok(Json(ReleaseView {
        runtime_version: query.runtime_version,
        platforms,
    }))
}
