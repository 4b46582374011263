//! `GET /assets/{hash}`: the content-addressed asset CDN.
//!
//! Immutable caching, ETag and `If-None-Match`, `accept-encoding` negotiation over the variants
//! compressed at upload (br > gzip > identity, honouring q-values), single `Range` requests on
//! the plain bytes, streamed from the blob store; a `bsdiff` patch of a launch asset for a device
//! that asks for one against an update it runs, when one was made.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use otago_core::{asset_hash, is_asset_hash, patch_base, served_content_type};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{ByteRange, Encoding, Encodings, IMMUTABLE};

pub(crate) async fn asset(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut response = serve(&state, &hash, &headers)
        .await
        .unwrap_or_else(|err| err.into_response());
    // Browsers must take the content type as sent, never guess one from the bytes.
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn serve(state: &AppState, hash: &str, headers: &HeaderMap) -> ApiResult<Response> {
    if !is_asset_hash(hash) {
        return Err(ApiError::bad_request(
            "invalid_hash",
            "asset URLs end in the asset's hash: 43 base64url characters",
            "use the url the manifest gives",
        ));
    }
    let not_found = || {
        ApiError::not_found(
            "asset_not_found",
            "no asset has this hash",
            "use the url the manifest gives",
        )
    };
    let asset = state.served_asset(hash).await?.ok_or_else(not_found)?;
    let patchable = state.patch_book.is_target(hash);
    if patchable && let Some(response) = patch(state, hash, asset.size, headers).await {
        return Ok(response);
    }
    let identity_etag = format!("\"{hash}\"");

    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    out.insert(
        header::VARY,
        HeaderValue::from_static(if patchable {
            PATCH_VARY
        } else {
            "accept-encoding"
        }),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // From the server's table, whatever the record says (older records kept the uploader's).
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(served_content_type(&asset.content_type)),
    );

    let header_text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let range = header_text(header::RANGE)
        .filter(|_| if_range_matches(header_text(header::IF_RANGE), &identity_etag))
        .and_then(|value| parse_range(value, asset.size));
    let encoding = match range {
        Some(_) => Encoding::Identity,
        None => negotiate(
            header_text(header::ACCEPT_ENCODING),
            asset.encodings.unwrap_or_default(),
        ),
    };
    let etag = match encoding.token() {
        None => identity_etag.clone(),
        Some(token) => format!("\"{hash}.{token}\""),
    };
    response.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(ApiError::internal)?,
    );

    if header_text(header::IF_NONE_MATCH).is_some_and(|value| none_match_hits(value, hash)) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response.headers_mut().remove(header::ACCEPT_RANGES);
        return Ok(response);
    }

    let byte_range = match range {
        Some(RangeRequest::Satisfiable(range)) => Some(range),
        Some(RangeRequest::Unsatisfiable) => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let out = response.headers_mut();
            out.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", asset.size))
                    .map_err(ApiError::internal)?,
            );
            out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            return Ok(response);
        }
        None => None,
    };
    let (len, body) = match body_from_memory(state, hash, encoding, asset.size).await? {
        Some(bytes) => {
            let bytes = match byte_range {
                Some(ByteRange { start, end }) => {
                    let (start, end) = (usize::try_from(start), usize::try_from(end));
                    match (start, end) {
                        (Ok(start), Ok(end)) if start <= end && end < bytes.len() => {
                            bytes.slice(start..=end)
                        }
                        _ => return Err(ApiError::internal("range outside the stored bytes")),
                    }
                }
                None => bytes,
            };
            (bytes.len() as u64, Body::from(bytes))
        }
        None => {
            let Some(blob) = state.blobs.open(hash, encoding, byte_range).await? else {
                return Err(missing_file(hash, encoding));
            };
            (blob.len, Body::from_stream(blob.stream))
        }
    };
    state.metrics.asset_bytes(len);
    let out = response.headers_mut();
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(token) = encoding.token() {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    if let Some(ByteRange { start, end }) = byte_range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {start}-{end}/{}", asset.size);
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).map_err(ApiError::internal)?,
        );
    }
    *response.body_mut() = body;
    Ok(response)
}

/// What the answers for a launch asset that has patches vary with.
const PATCH_VARY: &str = "accept-encoding, a-im, expo-current-update-id";

/// The `226 IM Used` answer with a verified patch, when the request asks for one that exists
/// (protocol section 8). `None`: send the full asset (no patch asked for or made, or the stored
/// patch failed its integrity check, which withdraws it).
async fn patch(state: &AppState, hash: &str, full: u64, headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let base = patch_base(
        header("a-im"),
        header("expo-current-update-id"),
        header("expo-requested-update-id"),
    )?;
    let patch = state.patch_book.find(&base, hash)?;
    let bytes = match state.blobs.read(&patch.hash, Encoding::Identity).await {
        Ok(Some(bytes)) if asset_hash(&bytes) == patch.hash => bytes,
        Ok(_) => {
            tracing::error!(patch = %patch.hash, target = %hash, "a stored bundle patch is missing or corrupt; it is withdrawn and the full asset sent");
            state.patch_book.withdraw(&patch, hash);
            return None;
        }
        Err(err) => {
            tracing::warn!(patch = %patch.hash, error = %err, "reading a bundle patch failed; the full asset is sent");
            return None;
        }
    };
    state.metrics.patch_served(bytes.len() as u64, full);
    state.metrics.asset_bytes(bytes.len() as u64);
    let mut response = Response::new(Body::from(bytes.clone()));
    *response.status_mut() = StatusCode::IM_USED;
    let out = response.headers_mut();
    out.insert(
        HeaderName::from_static("im"),
        HeaderValue::from_static("bsdiff"),
    );
    out.insert(
        HeaderName::from_static("expo-base-update-id"),
        HeaderValue::from_str(&base.to_string()).ok()?,
    );
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    out.insert(header::VARY, HeaderValue::from_static(PATCH_VARY));
    // A patch fits only the device that asked: no cache may keep it for another.
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// The asset's bytes from memory: held already, or read now by the one request allowed to
/// (so the next ones find them). `None`: stream it from the store instead.
async fn body_from_memory(
    state: &AppState,
    hash: &str,
    encoding: Encoding,
    size: u64,
) -> ApiResult<Option<Bytes>> {
    if let Some(bytes) = state.hot.get(hash, encoding) {
        return Ok(Some(bytes));
    }
    let Some(permit) = state.hot.start_load(hash, encoding, size) else {
        return Ok(None);
    };
    let bytes = state
        .blobs
        .read(hash, encoding)
        .await?
        .ok_or_else(|| missing_file(hash, encoding))?;
    permit.finish(bytes.clone());
    Ok(Some(bytes))
}

fn missing_file(hash: &str, encoding: Encoding) -> ApiError {
    ApiError::internal(format!(
        "asset {hash} is indexed but its {encoding:?} file is missing"
    ))
}

/// Picks the encoding: the best q-value among the stored variants, ties to br over gzip over
/// identity; identity when nothing else is acceptable (it always is, per the protocol).
fn negotiate(accept_encoding: Option<&str>, stored: Encodings) -> Encoding {
    let Some(accept) = accept_encoding else {
        return Encoding::Identity;
    };
    let mut star = None;
    let (mut br, mut gzip, mut identity) = (None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|param| {
                param
                    .trim()
                    .strip_prefix("q=")
                    .or_else(|| param.trim().strip_prefix("Q="))
            })
            .find_map(|q| q.trim().parse::<f32>().ok())
            .filter(|q| q.is_finite())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match coding.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gzip = Some(q),
            "identity" => identity = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    let q_of = |explicit: Option<f32>| explicit.or(star).unwrap_or(0.0);
    let identity_q = identity.or(star.filter(|q| *q == 0.0)).unwrap_or(0.001);
    let mut best = (Encoding::Identity, identity_q);
    for (encoding, q) in [(Encoding::Gzip, q_of(gzip)), (Encoding::Brotli, q_of(br))] {
        if stored.has(encoding) && q > 0.0 && q >= best.1 {
            best = (encoding, q);
        }
    }
    best.0
}

/// Whether `If-None-Match` names this asset in any of its encodings (or `*`).
fn none_match_hits(value: &str, hash: &str) -> bool {
    value.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*"
            || tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .is_some_and(|t| {
                    t == hash
                        || t.strip_prefix(hash)
                            .is_some_and(|rest| rest == ".br" || rest == ".gzip")
                })
    })
}

/// `If-Range` allows the range only when it is our (strong) identity ETag; dates never match.
fn if_range_matches(if_range: Option<&str>, identity_etag: &str) -> bool {
    if_range.is_none_or(|value| value.trim() == identity_etag)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeRequest {
    Satisfiable(ByteRange),
    Unsatisfiable,
}

/// Parses a single `bytes=` range against `size`; `None` (serve everything) for other units,
/// several ranges or malformed values.
fn parse_range(value: &str, size: u64) -> Option<RangeRequest> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 || size == 0 {
                return Some(RangeRequest::Unsatisfiable);
            }
            ByteRange {
                start: size.saturating_sub(suffix),
                end: size - 1,
            }
        }
        (false, true) => ByteRange {
            start: number(first)?,
            end: size.saturating_sub(1),
        },
        (false, false) => {
            let (start, end) = (number(first)?, number(last)?);
            if end < start {
                return None;
            }
            ByteRange {
                start,
                end: end.min(size.saturating_sub(1)),
            }
        }
        (true, true) => return None,
    };
    if size == 0 || range.start >= size {
        return Some(RangeRequest::Unsatisfiable);
    }
    Some(RangeRequest::Satisfiable(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Encodings = Encodings {
        gzip: true,
        brotli: true,
    };

    #[test]
    fn negotiation_prefers_br_then_gzip_and_honours_q() {
        assert_eq!(negotiate(None, BOTH), Encoding::Identity);
        assert_eq!(negotiate(Some("gzip, deflate, br"), BOTH), Encoding::Brotli);
        assert_eq!(negotiate(Some("zstd, br, gzip"), BOTH), Encoding::Brotli);
        assert_eq!(negotiate(Some("gzip"), BOTH), Encoding::Gzip);
        assert_eq!(negotiate(Some("br;q=0, gzip"), BOTH), Encoding::Gzip);
        assert_eq!(
            negotiate(Some("br;q=0.5, gzip;q=0.9"), BOTH),
            Encoding::Gzip
        );
        assert_eq!(
            negotiate(Some("br;q=0, gzip;q=0"), BOTH),
            Encoding::Identity
        );
        assert_eq!(negotiate(Some("*"), BOTH), Encoding::Brotli);
        assert_eq!(negotiate(Some("*;q=0"), BOTH), Encoding::Identity);
        assert_eq!(
            negotiate(
                Some("br"),
                Encodings {
                    gzip: true,
                    brotli: false
                }
            ),
            Encoding::Identity
        );
        assert_eq!(negotiate(Some("identity"), BOTH), Encoding::Identity);
        assert_eq!(negotiate(Some("deflate"), BOTH), Encoding::Identity);
        assert_eq!(negotiate(Some(";;,,q=x;"), BOTH), Encoding::Identity);
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        let r = |start, end| Some(RangeRequest::Satisfiable(ByteRange { start, end }));
        assert_eq!(parse_range("bytes=0-9", 100), r(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), r(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), r(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), r(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), r(50, 99));
        assert_eq!(
            parse_range("bytes=100-", 100),
            Some(RangeRequest::Unsatisfiable)
        );
        assert_eq!(
            parse_range("bytes=-0", 100),
            Some(RangeRequest::Unsatisfiable)
        );
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range(ignored, 100), None, "{ignored}");
        }
    }

    #[test]
    fn etags_match_in_any_encoding() {
        let hash = "a".repeat(43);
        assert!(none_match_hits(&format!("\"{hash}\""), &hash));
        assert!(none_match_hits(&format!("W/\"{hash}.br\", \"x\""), &hash));
        assert!(none_match_hits("*", &hash));
        assert!(!none_match_hits("\"other\"", &hash));
        assert!(if_range_matches(None, "\"x\""));
        assert!(!if_range_matches(
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            "\"x\""
        ));
    }
}
