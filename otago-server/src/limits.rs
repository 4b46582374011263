//! Limits on what a request may carry before any handler sees it, and on open files.

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

/// Raises the soft open-file limit to the hard one where the system allows; returns the soft
/// limit now in force (what [`crate::serve`] sizes its connection cap from).
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The soft open-file limit, if the system tells it.
pub(crate) fn open_file_limit() -> Option<u64> {
    rlimit::Resource::NOFILE
        .get()
        .ok()
        .map(|(soft, _hard)| soft)
}
