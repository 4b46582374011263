//! `/api/v1/projects/{ref}/keys`: create (secret shown once), list, revoke; creations and
//! revocations are recorded in the audit log.

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
use crate::store::{KeyRecord, KeyRole};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    name: String,
    /// `deploy` (the default) or `admin`.
    #[serde(default)]
    role: Option<String>,
    /// When the key stops working (`YYYY-MM-DDTHH:mm:ss.sssZ`, in the future); never if absent.
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CreatedKey {
    id: String,
    name: String,
    role: &'static str,
    expires_at: Option<String>,
    secret: String,
    created_at: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyView {
    id: String,
    name: String,
    role: &'static str,
    expires_at: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<KeyRecord> for KeyView {
    fn from(key: KeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name,
            role: key.role.as_str(),
            expires_at: key.expires_at.map(|t| t.to_string()),
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
    let role = match body.role.as_deref() {
        None => KeyRole::Deploy,
        Some(text) => KeyRole::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_role",
                format!(
                    "`role` must be `deploy` or `admin`, not `{}`",
                    text.chars().take(40).collect::<String>().escape_debug()
                ),
                "e.g. {\"name\":\"ci\",\"role\":\"deploy\"}",
            )
        })?,
    };
    let now = state.now();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|text| expiry(text, now))
        .transpose()?;
    let secret = ids::new_key_secret();
    let key = KeyRecord {
        id: ids::new_key_id(),
        project_ref: project.r#ref,
        name: name.to_owned(),
        role,
        expires_at,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    let audit = crate::audit::key_created(&key, principal.actor());
    state
        .meta
        .create_key(key.clone(), ids::sha256(secret.as_bytes()), audit)
        .await?;
    tracing::info!(project = %key.project_ref, key = %key.id, role = role.as_str(), by = principal.actor(), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: key.id,
            name: key.name,
            role: role.as_str(),
            expires_at: key.expires_at.map(|t| t.to_string()),
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
    let audit = crate::audit::key_revoked(&project.r#ref, &key_id, principal.actor(), state.now());
    let found = state.meta.revoke_key(&key_id, audit).await?;
    state.keys.remove_key(&key_id);
    if !found {
        return Err(not_found());
    }
    tracing::info!(project = %project.r#ref, key = %key_id, by = principal.actor(), "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A key's expiry time: a timestamp after `now`.
fn expiry(text: &str, now: otago_core::Timestamp) -> ApiResult<otago_core::Timestamp> {
    let at = otago_core::Timestamp::parse(text).map_err(|err| {
        ApiError::bad_request(
            "invalid_expires_at",
            err.to_string(),
            "e.g. {\"expires_at\":\"2027-01-01T00:00:00.000Z\"}",
        )
    })?;
    if at <= now {
        return Err(ApiError::unprocessable(
            "expires_at_in_the_past",
            format!("`expires_at` ({at}) is not in the future (now is {now})"),
            "give a time after now, or leave `expires_at` out for a key that does not expire",
        ));
    }
    Ok(at)
}
