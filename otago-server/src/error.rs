//! The one translation of every failure into an HTTP answer.
//!
//! Handlers return [`ApiError`]; its [`IntoResponse`] writes the status from
//! [`ApiError::status_code`] and the body `{"error":{"code","message","hint"}}`.
//! Server-side failures (5xx) get a generic body; their details go to the log only.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// A problem a client can act on: a stable snake_case code, what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable machine-readable code, e.g. `hash_mismatch`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Problem {
    /// A problem with a code, a message and a hint.
    #[must_use]
    pub fn new(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.code, self.message, self.hint)
    }
}

/// Every way a request can fail, each with its HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("bad request: {0}")]
    BadRequest(Problem),
    /// 401: no token, an unknown token or a revoked key.
    #[error("unauthorized: {0}")]
    Unauthorized(Problem),
    /// 403: a valid token that may not do this.
    #[error("forbidden: {0}")]
    Forbidden(Problem),
    /// 404: no such resource.
    #[error("not found: {0}")]
    NotFound(Problem),
    /// 405: the method is not routed here.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(Problem),
    /// 409: the request conflicts with what is stored.
    #[error("conflict: {0}")]
    Conflict(Problem),
    /// 413: a body over its size limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(Problem),
    /// 431: request headers over the limit.
    #[error("headers too large: {0}")]
    HeadersTooLarge(Problem),
    /// 422: well-formed but refused (hash mismatch, bad signature, unknown asset...).
    #[error("unprocessable: {0}")]
    Unprocessable(Problem),
    /// A protocol request refused by otago-core; the status comes from the core error.
    #[error("protocol: {0}")]
    Protocol(#[from] otago_core::Error),
    /// 429: too many failed authentications from one address; retry after the given seconds.
    #[error("too many requests: {0}")]
    TooManyRequests(Problem, u64),
    /// 503: the server is shutting down or overloaded.
    #[error("unavailable: {0}")]
    Unavailable(Problem),
    /// 507: the server's disk is full; the detail is logged, never sent.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// 500: something failed on our side; the detail is logged, never sent.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// An internal error with a detail for the log.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The status this error is answered with.
    #[must_use]
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Protocol(err) => {
                StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem sent to the client (generic for server-side failures).
    #[must_use]
    pub fn problem(&self) -> Problem {
        match self {
            Self::BadRequest(p)
            | Self::Unauthorized(p)
            | Self::Forbidden(p)
            | Self::NotFound(p)
            | Self::MethodNotAllowed(p)
            | Self::Conflict(p)
            | Self::PayloadTooLarge(p)
            | Self::HeadersTooLarge(p)
            | Self::Unprocessable(p)
            | Self::TooManyRequests(p, _)
            | Self::Unavailable(p) => p.clone(),
            Self::Protocol(err) => protocol_problem(err),
            Self::InsufficientStorage(_) => Problem::new(
                "insufficient_storage",
                "the server's disk is full; nothing was stored and what it served before is served still",
                "retrying will not help: the server operator must free space on the disk of the server's data folder (or enlarge it), then run this again",
            ),
            Self::Internal(_) => Problem::new(
                "internal_error",
                "the server failed to handle the request",
                "try again; if it keeps failing, the server operator finds the details in the server log",
            ),
        }
    }

    /// Shorthand for a 400 problem.
    pub(crate) fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::BadRequest(Problem::new(code, message, hint))
    }

    /// Shorthand for a 404 problem.
    pub(crate) fn not_found(
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::NotFound(Problem::new(code, message, hint))
    }

    /// Shorthand for a 409 problem.
    pub(crate) fn conflict(
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::Conflict(Problem::new(code, message, hint))
    }

    /// Shorthand for a 422 problem.
    pub(crate) fn unprocessable(
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::Unprocessable(Problem::new(code, message, hint))
    }
}

fn protocol_problem(err: &otago_core::Error) -> Problem {
    use otago_core::Error as E;
    let (code, hint) = match err {
        E::BadHeader { status: 406, .. } | E::DirectiveNeedsMultipart => (
            "not_acceptable",
            "send `accept: multipart/mixed,application/expo+json,application/json` as expo-updates does",
        ),
        E::BadHeader { status: 431, .. } => ("header_too_large", "send shorter header values"),
        E::BadHeader { .. } => (
            "bad_header",
            "send the headers expo-updates sends; see the message for the one at fault",
        ),
        E::MethodNotAllowed { .. } => ("method_not_allowed", "use GET"),
        E::RollbackNeedsProtocolV1 => (
            "rollback_needs_protocol_v1",
            "build the app with an expo-updates that sends `expo-protocol-version: 1` (every current one does) to apply rollbacks",
        ),
        E::NoUpdate => (
            "no_update",
            "publish an update for this runtime version and platform, or send `expo-protocol-version: 1`",
        ),
        E::SignatureUnavailable { .. } => (
            "signature_unavailable",
            "publish updates signed with the key the app's codeSigningMetadata names",
        ),
        _ => ("bad_request", "see the message"),
    };
    Problem::new(code, err.to_string(), hint)
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ProjectExists { .. } => Self::conflict(
                "project_exists",
                err.to_string(),
                "use it (`otago projects list`), or pick another environment name",
            ),
            StoreError::UpdateIdReused { .. } => Self::conflict(
                "update_id_reused",
                err.to_string(),
                "build the manifest again: every publish needs a new id",
            ),
            StoreError::NoRollout { .. } => Self::conflict(
                "no_rollout",
                err.to_string(),
                "list groups with `otago updates list`",
            ),
            StoreError::ChannelMoved { .. } => Self::conflict(
                "release_changed",
                err.to_string(),
                "another replica changed it at the same moment: look with `otago updates list` and try again",
            ),
            StoreError::EmbeddedIdTaken { .. } => Self::conflict(
                "embedded_update_id_taken",
                err.to_string(),
                "every build has its own embedded update id: check the app.manifest you sent",
            ),
            StoreError::EmbeddedIdPublished { .. } => Self::conflict(
                "update_id_published",
                err.to_string(),
                "send the embedded update's id: the `id` of the build's app.manifest",
            ),
            StoreError::Backend(detail) => Self::Internal(detail),
            StoreError::Full(detail) => Self::InsufficientStorage(detail),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a Problem,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&Body { error: &problem }).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Self::TooManyRequests(_, seconds) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Self::Protocol(_)) {
            // Protocol errors still say which protocol they speak (C10).
            headers.insert("expo-protocol-version", HeaderValue::from_static("1"));
            headers.insert("expo-sfv-version", HeaderValue::from_static("0"));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=0"),
            );
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T, E = ApiError> = Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_reveal_nothing() {
        let err = ApiError::internal("disk /var/secret exploded");
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let problem = err.problem();
        assert!(!problem.message.contains("secret"));
        assert_eq!(problem.code, "internal_error");
    }

    #[test]
    fn protocol_errors_keep_core_status() {
        let err = ApiError::from(otago_core::Error::MethodNotAllowed {
            method: "POST".into(),
        });
        assert_eq!(err.status_code(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err.problem().code, "method_not_allowed");
    }
}
