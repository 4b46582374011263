//! `/api/v1/projects`: create, list, get, change settings (recorded in the audit log),
//! delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::config::{MAX_ASSET_BYTES_CEILING, ServerConfig};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::ids;
use crate::state::AppState;
use crate::store::{ProjectPatch, ProjectRecord};

/// A project as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ProjectView {
    r#ref: String,
    app: String,
    environment: String,
    update_url: String,
    asset_base_url: String,
    require_signing: bool,
    certificate_pem: Option<String>,
    max_asset_bytes: u64,
    created_at: String,
}

impl ProjectView {
    pub(crate) fn new(project: ProjectRecord, config: &ServerConfig) -> Self {
        Self {
            update_url: config.update_url(&project.r#ref),
            asset_base_url: config.asset_base_url(),
            r#ref: project.r#ref,
            app: project.app,
            environment: project.environment,
            require_signing: project.require_signing,
            certificate_pem: project.certificate_pem,
            max_asset_bytes: project.max_asset_bytes,
            created_at: project.created_at.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    app: String,
    environment: String,
}

fn check_name(field: &str, value: &str) -> ApiResult<()> {
    if ids::is_name(value) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid_name",
        format!("`{field}` must be 1 to 64 characters of a-z, 0-9 and `-`"),
        format!(
            "e.g. {{\"app\":\"myapp\",\"environment\":\"production\"}}; got `{}`",
            value.chars().take(80).collect::<String>().escape_debug()
        ),
    ))
}

/// Creates a project in the store and in the live map.
pub(crate) async fn create_project(
    state: &AppState,
    app: &str,
    environment: &str,
) -> ApiResult<ProjectRecord> {
    check_name("app", app)?;
    check_name("environment", environment)?;
    let project = ProjectRecord {
        r#ref: ids::new_project_ref(),
        app: app.to_owned(),
        environment: environment.to_owned(),
        require_signing: false,
        certificate_pem: None,
        max_asset_bytes: state.config.default_max_asset_bytes,
        created_at: state.now(),
    };
    state.meta.create_project(project.clone()).await?;
    state.live.add_project(&project.r#ref);
    Ok(project)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    let project = create_project(&state, &body.app, &body.environment).await?;
    tracing::info!(project = %project.r#ref, app = %project.app, environment = %project.environment, "project created");
    Ok((
        StatusCode::CREATED,
        Json(ProjectView::new(project, &state.config)),
    ))
}

#[derive(Debug, Serialize)]
pub(crate) struct ProjectList {
    projects: Vec<ProjectView>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<ProjectList>> {
    let projects = state
        .meta
        .projects()
        .await?
        .into_iter()
        .filter(|project| principal.require_project(&project.r#ref).is_ok())
        .map(|project| ProjectView::new(project, &state.config))
        .collect();
    Ok(Json(ProjectList { projects }))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
) -> ApiResult<Json<ProjectView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    Ok(Json(ProjectView::new(project, &state.config)))
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchProject {
    require_signing: Option<bool>,
    #[serde(default, deserialize_with = "explicit")]
    certificate_pem: Option<Option<String>>,
    max_asset_bytes: Option<u64>,
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiJson(body): ApiJson<PatchProject>,
) -> ApiResult<Json<ProjectView>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    if let Some(Some(pem)) = &body.certificate_pem {
        let certificate = otago_core::SigningCertificate::from_pem(pem)
            .and_then(|cert| cert.check(state.clock.now()).map(|()| cert))
            .map_err(|err| {
                ApiError::unprocessable(
                    "invalid_certificate",
                    err.to_string(),
                    "send the certificate.pem the app embeds (`npx expo-updates codesigning:generate` makes one)",
                )
            })?;
        drop(certificate);
    }
    let certificate_after = match &body.certificate_pem {
        Some(pem) => pem.is_some(),
        None => project.certificate_pem.is_some(),
    };
    if body.require_signing.unwrap_or(project.require_signing) && !certificate_after {
        return Err(ApiError::unprocessable(
            "certificate_required",
            "a project that requires signing needs a certificate",
            "send `certificate_pem` with the app's certificate.pem in the same request",
        ));
    }
    if let Some(max) = body.max_asset_bytes
        && !(1..=MAX_ASSET_BYTES_CEILING).contains(&max)
    {
        return Err(ApiError::bad_request(
            "invalid_max_asset_bytes",
            format!("max_asset_bytes must be between 1 and {MAX_ASSET_BYTES_CEILING}"),
            "e.g. 52428800 for 50 MiB",
        ));
    }
    let patch = ProjectPatch {
        require_signing: body.require_signing,
        certificate_pem: body.certificate_pem,
        max_asset_bytes: body.max_asset_bytes,
    };
    let project = state
        .meta
        .update_project(&project.r#ref, patch, principal.actor(), state.now())
        .await?
        .ok_or_else(|| super::project_not_found(&project_ref))?;
    Ok(Json(ProjectView::new(project, &state.config)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let _serialized = state.publish_lock.lock().await;
    state.meta.delete_project(&project.r#ref).await?;
    state.keys.remove_project(&project.r#ref);
    state.live.remove_project(&project.r#ref);
    tracing::info!(project = %project.r#ref, "project deleted");
    Ok(StatusCode::NO_CONTENT)
}
