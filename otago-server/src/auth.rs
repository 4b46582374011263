//! Bearer-token authentication of the management API: the admin token (acts on everything) or
//! a project API key (acts on its own project only). Secrets are compared as SHA-256 digests;
//! the admin digest in constant time, keys by an indexed lookup of the digest.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::{ApiError, ApiResult, Problem};
use crate::ids;
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// The admin token.
    Admin,
    /// An API key of one project.
    Key {
        /// The key's id.
        key_id: String,
        /// Its project.
        project_ref: String,
    },
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::Unauthorized(Problem::new(
        code,
        message,
        "send `Authorization: Bearer <token>` with the admin token or an API key of the project",
    ))
}

impl Principal {
    /// Refuses anyone but the admin (403).
    pub(crate) fn require_admin(&self) -> ApiResult<()> {
        match self {
            Self::Admin => Ok(()),
            Self::Key { .. } => Err(ApiError::Forbidden(Problem::new(
                "admin_only",
                "only the admin token may do this",
                "use the admin token (OTAGO_ADMIN_TOKEN, or the one printed at the server's first start)",
            ))),
        }
    }

    /// Refuses keys of other projects (403). Checked before the project is looked up, so a
    /// key learns nothing about other projects.
    pub(crate) fn require_project(&self, project_ref: &str) -> ApiResult<()> {
        match self {
            Self::Key {
                project_ref: own, ..
            } if own != project_ref => Err(ApiError::Forbidden(Problem::new(
                "wrong_project",
                "this API key belongs to another project",
                "use a key of this project, or the admin token",
            ))),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(unauthorized("missing_token", "no Authorization header"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= ids::MAX_TOKEN_LEN)
            .ok_or_else(|| {
                unauthorized(
                    "invalid_token",
                    "the Authorization header is not `Bearer <token>`",
                )
            })?;
        let digest = ids::sha256(token.as_bytes());
        if ids::digest_eq(&digest, &state.admin_token_hash) {
            return Ok(Self::Admin);
        }
        if !token.starts_with(ids::SECRET_PREFIX) {
            return Err(unauthorized("invalid_token", "the token is not valid"));
        }
        let Some(key) = state.meta.key_by_secret_hash(digest).await? else {
            return Err(unauthorized("invalid_token", "the token is not valid"));
        };
        if key.revoked_at.is_some() {
            return Err(unauthorized("key_revoked", "this API key was revoked"));
        }
        state.recorder.key_used(&key.id, state.now());
        Ok(Self::Key {
            key_id: key.id,
            project_ref: key.project_ref,
        })
    }
}
