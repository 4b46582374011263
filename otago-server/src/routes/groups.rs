//! `/api/v1/projects/{ref}/groups`: publish, list, get, change rollout, revert.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otago_core::Platform;
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, PUBLISH_LIMIT};
use crate::ids;
use crate::publish::{PublishRequest, publish as publish_group};
use crate::state::AppState;
use crate::store::{ChannelKey, GroupFilter, GroupKind, GroupRecord, ProjectRecord};

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
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    directive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupView {
    id: String,
    runtime_version: String,
    message: String,
    created_at: String,
    rollout_percentage: u8,
    reverted: bool,
    kind: &'static str,
    updates: Vec<UpdateView>,
}

impl GroupView {
    /// The API view; bodies and signatures only when `detailed`.
    pub(crate) fn new(group: GroupRecord, detailed: bool) -> Self {
        let kind = group.kind;
        Self {
            id: group.id,
            runtime_version: group.runtime_version,
            message: group.message,
            created_at: group.created_at.to_string(),
            rollout_percentage: group.rollout_percentage,
            reverted: group.reverted,
            kind: kind.as_str(),
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
                    UpdateView {
                        platform: update.platform.as_str(),
                        id: update.id,
                        created_at: update.created_at.to_string(),
                        size: update.size,
                        signed: update.signature.is_some(),
                        manifest: text.clone().filter(|_| kind == GroupKind::Update),
                        directive: text.filter(|_| kind == GroupKind::RollBackToEmbedded),
                        signature: if detailed { update.signature } else { None },
                    }
                })
                .collect(),
        }
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
    Ok((StatusCode::CREATED, Json(GroupView::new(group, false))))
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
        groups: groups
            .into_iter()
            .map(|g| GroupView::new(g, false))
            .collect(),
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
    Ok(Json(GroupView::new(group, true)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchGroup {
    rollout_percentage: u8,
}

fn channel_keys(group: &GroupRecord) -> Vec<ChannelKey> {
    group
        .updates
        .iter()
        .map(|update| ChannelKey {
            project_ref: group.project_ref.clone(),
            platform: update.platform,
            runtime_version: group.runtime_version.clone(),
        })
        .collect()
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
    let _serialized = state.publish_lock.lock().await;
    let group = group_for(&state, &project, &group_id).await?;
    let newest = state
        .meta
        .newest_group_id(&project.r#ref, &group.runtime_version)
        .await?;
    if group.reverted || newest.as_deref() != Some(group.id.as_str()) {
        return Err(ApiError::conflict(
            "not_newest",
            "only the newest group of its runtime version that is not reverted can change its rollout",
            "publish a new group instead",
        ));
    }
    state
        .meta
        .set_rollout(&project.r#ref, &group.id, body.rollout_percentage)
        .await?;
    state
        .live
        .refresh(state.meta.as_ref(), &channel_keys(&group))
        .await?;
    tracing::info!(project = %project.r#ref, group = %group.id, rollout = body.rollout_percentage, "rollout changed");
    let group = group_for(&state, &project, &group.id).await?;
    Ok(Json(GroupView::new(group, false)))
}

pub(crate) async fn revert(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_ref, group_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<GroupView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let _serialized = state.publish_lock.lock().await;
    let group = group_for(&state, &project, &group_id).await?;
    if !group.reverted {
        state.meta.revert(&project.r#ref, &group.id).await?;
        state
            .live
            .refresh(state.meta.as_ref(), &channel_keys(&group))
            .await?;
        tracing::info!(project = %project.r#ref, group = %group.id, "group reverted");
    }
    let group = group_for(&state, &project, &group.id).await?;
    Ok(Json(GroupView::new(group, false)))
}
