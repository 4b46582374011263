//! `/api/v1/projects/{ref}/embedded`: registering the bundle embedded in a native build (an
//! uploaded asset) with its embedded update id, so that devices still on the build's own
//! bundle download patches too; and listing what is registered.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otago_core::{Platform, UpdateId};
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::publish::MAX_RUNTIME_VERSION_LEN;
use crate::state::AppState;
use crate::store::{ChannelKey, LaunchAssetRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterEmbedded {
    /// `ios` or `android`.
    platform: String,
    /// The build's runtime version.
    runtime_version: String,
    /// The embedded update's id: the `id` of the build's `app.manifest`.
    update_id: String,
    /// The hash of the bundle, uploaded first as an asset.
    bundle_hash: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbeddedView {
    update_id: String,
    platform: &'static str,
    runtime_version: String,
    bundle_hash: String,
    created_at: String,
}

impl From<LaunchAssetRecord> for EmbeddedView {
    fn from(record: LaunchAssetRecord) -> Self {
        Self {
            update_id: record.update_id,
            platform: record.channel.platform.as_str(),
            runtime_version: record.channel.runtime_version,
            bundle_hash: record.asset_hash,
            created_at: record.created_at.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbeddedList {
    embedded: Vec<EmbeddedView>,
}

pub(crate) async fn register(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiJson(body): ApiJson<RegisterEmbedded>,
) -> ApiResult<(StatusCode, Json<EmbeddedView>)> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let platform: Platform = body.platform.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_platform",
            "platform must be `ios` or `android`",
            "fix the platform",
        )
    })?;
    let rv = body.runtime_version;
    if rv.is_empty() || rv.len() > MAX_RUNTIME_VERSION_LEN || rv.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_runtime_version",
            format!("runtime_version must be 1 to {MAX_RUNTIME_VERSION_LEN} printable characters"),
            "send the build's runtime version, e.g. \"1.0.0\"",
        ));
    }
    let update_id: UpdateId = body.update_id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_update_id",
            "update_id must be a hyphenated UUID",
            "send the `id` of the build's app.manifest",
        )
    })?;
    if state.asset(&body.bundle_hash).await?.is_none() {
        return Err(ApiError::unprocessable(
            "bundle_not_uploaded",
            format!("no asset has hash `{}`", body.bundle_hash),
            "upload the bundle first (`otago embedded upload` does both)",
        ));
    }
    let channel = ChannelKey {
        project_ref: project.r#ref.clone(),
        platform,
        runtime_version: rv,
    };
    let record = LaunchAssetRecord {
        update_id: update_id.to_string(),
        channel: channel.clone(),
        asset_hash: body.bundle_hash,
        created_at: state.now(),
        embedded: true,
    };
    if !state.meta.add_embedded(record.clone()).await? {
        // Registered before: answer with the record as it was stored.
        let stored = state
            .meta
            .embedded(&project.r#ref)
            .await?
            .into_iter()
            .find(|r| r.update_id == record.update_id)
            .unwrap_or(record);
        return Ok((StatusCode::OK, Json(stored.into())));
    }
    state.patcher.channel_changed(channel);
    tracing::info!(project = %project.r#ref, update_id = %record.update_id, platform = platform.as_str(), "embedded bundle registered");
    Ok((StatusCode::CREATED, Json(record.into())))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
) -> ApiResult<Json<EmbeddedList>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let embedded = state
        .meta
        .embedded(&project.r#ref)
        .await?
        .into_iter()
        .map(EmbeddedView::from)
        .collect();
    Ok(Json(EmbeddedList { embedded }))
}
