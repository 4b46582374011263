//! Limits on what a request may carry before any handler sees it.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::error::{ApiError, Problem};

/// Most bytes of header names and values one request may carry; more get 431.
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses requests whose headers add up to more than [`MAX_HEADER_BYTES`] (hyper's own limits
/// bound the number of headers and the read buffer, not the exact size).
pub(crate) async fn limit_headers(request: Request, next: Next) -> Response {
    match check_headers(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(too_large) => too_large.into_response(),
    }
}

/// The 431 for headers adding up to more than [`MAX_HEADER_BYTES`].
pub(crate) fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(Problem::new(
            "headers_too_large",
            format!(
                "the request headers add up to {size} bytes; at most {MAX_HEADER_BYTES} are read"
            ),
            "send fewer or shorter headers",
        )));
    }
    Ok(())
}
