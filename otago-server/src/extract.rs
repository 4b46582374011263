//! Extractors whose rejections are our JSON error body, with size limits.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Problem};

/// The default limit of a JSON request body: 2 MiB.
pub(crate) const JSON_LIMIT: usize = 2 * 1024 * 1024;

/// The limit of a publish body (manifests of every platform): 8 MiB.
pub(crate) const PUBLISH_LIMIT: usize = 8 * 1024 * 1024;

/// A JSON body of at most `LIMIT` bytes; malformed JSON is a 400 `invalid_json`, an oversized
/// body a 413 `body_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiJson<T, const LIMIT: usize = JSON_LIMIT>(pub(crate) T);

impl<S, T, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || {
            ApiError::PayloadTooLarge(Problem::new(
                "body_too_large",
                format!("the request body is larger than {LIMIT} bytes"),
                "send a smaller body",
            ))
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > LIMIT as u64) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), LIMIT)
            .await
            .map_err(|err| {
                if std::error::Error::source(&err)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                {
                    too_large()
                } else {
                    ApiError::bad_request(
                        "body_unreadable",
                        "the request body could not be read",
                        "send the body again",
                    )
                }
            })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|err| {
            ApiError::bad_request(
                "invalid_json",
                format!("the body is not the JSON this endpoint takes: {err}"),
                "send a JSON object as the API documentation (/api/v1/openapi.json) describes",
            )
        })
    }
}

/// Query parameters; a malformed query is a 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|err| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("bad query string: {}", err.body_text()),
                    "see /api/v1/openapi.json",
                )
            })
    }
}

/// Path parameters; a malformed path is a 400 `invalid_path`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|err| {
                ApiError::bad_request(
                    "invalid_path",
                    format!("bad path: {}", err.body_text()),
                    "see /api/v1/openapi.json",
                )
            })
    }
}
