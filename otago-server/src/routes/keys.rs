//! `/api/v1/projects/{ref}/keys`: create (secret shown once), list, revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::ids;
use crate::state::AppState;
use crate::store::KeyRecord;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    name: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct CreatedKey {
    id: String,
    name: String,
    secret: String,
    created_at: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyView {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<KeyRecord> for KeyView {
    fn from(key: KeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name,
            created_at: key.created_at.to_string(),
            last_used_at: key.last_used_at.map(|t| t.to_string()),
            revoked_at: key.revoked_at.map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "`name` must be 1 to 64 printable characters",
            "e.g. {\"name\":\"ci\"}",
        ));
    }
    let secret = ids::new_key_secret();
    let key = KeyRecord {
        id: ids::new_key_id(),
        project_ref: project.r#ref,
        name: name.to_owned(),
        created_at: state.now(),
        last_used_at: None,
        revoked_at: None,
    };
    state
        .meta
        .create_key(key.clone(), ids::sha256(secret.as_bytes()))
        .await?;
    tracing::info!(project = %key.project_ref, key = %key.id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: key.id,
            name: key.name,
            secret,
            created_at: key.created_at.to_string(),
        }),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
) -> ApiResult<Json<KeyList>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let keys = state
        .meta
        .keys(&project.r#ref)
        .await?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(Json(KeyList { keys }))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_ref, key_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let not_found = || {
        ApiError::not_found(
            "key_not_found",
            "this project has no such API key",
            "list keys with GET …/keys",
        )
    };
    if !ids::is_key_id(&key_id) {
        return Err(not_found());
    }
    if !state
        .meta
        .revoke_key(&project.r#ref, &key_id, state.now())
        .await?
    {
        return Err(not_found());
    }
    tracing::info!(project = %project.r#ref, key = %key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
