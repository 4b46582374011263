//! `/api/v1/projects/{ref}/assets`: which hashes are missing, and uploading one asset.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::{StreamExt as _, TryStreamExt as _};
use otago_core::{is_asset_hash, served_content_type};
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::{AssetRecord, ByteStream, PutError};

/// Most hashes one `missing` request may ask about.
const MAX_MISSING_QUERY: usize = 10_000;

/// A refused body is read (and dropped) up to this many bytes before answering, so that the
/// client, still sending, reads the answer rather than a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;

fn invalid_hash(hash: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_hash",
        format!(
            "`{}` is not an asset hash",
            hash.chars().take(64).collect::<String>().escape_debug()
        ),
        "send the base64url SHA-256 of the bytes without padding: 43 characters of A-Z, a-z, 0-9, `-` and `_`",
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MissingQuery {
    hashes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct MissingList {
    missing: Vec<String>,
}

pub(crate) async fn missing(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiJson(body): ApiJson<MissingQuery>,
) -> ApiResult<Json<MissingList>> {
    project_for(&state, &principal, &project_ref).await?;
    if body.hashes.len() > MAX_MISSING_QUERY {
        return Err(ApiError::bad_request(
            "too_many_hashes",
            format!(
                "{} hashes asked about; at most {MAX_MISSING_QUERY} per request",
                body.hashes.len()
            ),
            "split the list",
        ));
    }
    if let Some(bad) = body.hashes.iter().find(|hash| !is_asset_hash(hash)) {
        return Err(invalid_hash(bad));
    }
    let stored = state.meta.assets(&body.hashes).await?;
    let missing = body
        .hashes
        .into_iter()
        .filter(|hash| !stored.iter().any(|asset| &asset.hash == hash))
        .collect();
    Ok(Json(MissingList { missing }))
}

#[derive(Debug, Serialize)]
pub(crate) struct UploadedAsset {
    hash: String,
    key: String,
    size: u64,
    content_type: String,
    created: bool,
}

/// The content type the asset is served with: the server's own entry for the declared type
/// (which the CLI takes from the file's extension, as the manifest's `contentType`), or
/// `application/octet-stream` (see [`served_content_type`]). A declared value that is not a
/// MIME type at all is refused.
fn content_type(headers: &HeaderMap) -> ApiResult<String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(served_content_type("").to_owned());
    };
    let text = value.to_str().ok().map(str::trim).unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let plausible = text.len() <= 255
        && essence.split_once('/').is_some_and(|(kind, sub)| {
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            };
            token(kind) && token(sub)
        })
        && text.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !plausible {
        return Err(ApiError::bad_request(
            "invalid_content_type",
            "the content-type header is not a MIME type",
            "send the asset's type, e.g. `content-type: image/png` or `application/javascript`",
        ));
    }
    Ok(served_content_type(text).to_owned())
}

/// Reads and drops up to [`DRAIN_LIMIT`] bytes of a refused body.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(std::time::Duration::from_secs(2), stream.next()).await
    {
        read += chunk.len();
        if read > DRAIN_LIMIT {
            break;
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(Problem::new(
        "asset_too_large",
        format!("the asset is larger than this project's limit of {limit} bytes"),
        "raise max_asset_bytes with PATCH /api/v1/projects/{ref}, or make the asset smaller",
    ))
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((project_ref, hash)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadedAsset>)> {
    let project = project_for(&state, &principal, &project_ref).await?;
    if !is_asset_hash(&hash) {
        drain(body).await;
        return Err(invalid_hash(&hash));
    }
    let content_type = content_type(&headers)?;
    let limit = project.max_asset_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        drain(body).await;
        return Err(too_large(limit));
    }
    if let Some(existing) = state.asset(&hash).await? {
        drain(body).await;
        return Ok((StatusCode::OK, Json(uploaded(&existing, false))));
    }
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    let (record, created) = store_asset(&state, &hash, content_type, limit, stream).await?;
    tracing::info!(project = %project.r#ref, hash = %hash, size = record.size, "asset stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(uploaded(&record, created))))
}

/// Streams an asset into the blob store and indexes it; `(record, created)`.
pub(crate) async fn store_asset(
    state: &AppState,
    hash: &str,
    content_type: String,
    limit: u64,
    stream: ByteStream,
) -> ApiResult<(Arc<AssetRecord>, bool)> {
    let stored = match state.blobs.put(hash, &content_type, limit, stream).await {
        Ok(stored) => stored,
        Err(PutError::TooLarge { limit }) => return Err(too_large(limit)),
        Err(PutError::HashMismatch { actual }) => {
            return Err(ApiError::unprocessable(
                "hash_mismatch",
                format!("the uploaded bytes hash to {actual}, not {hash}; nothing was stored"),
                "upload the file whose base64url SHA-256 is the hash in the URL",
            ));
        }
        Err(PutError::Body(detail)) => {
            return Err(ApiError::bad_request(
                "body_unreadable",
                format!("the body could not be read: {detail}"),
                "upload again",
            ));
        }
        Err(PutError::Store(err)) => return Err(err.into()),
    };
    let record = AssetRecord {
        hash: hash.to_owned(),
        key: stored.key,
        size: stored.size,
        content_type,
        encodings: None,
        created_at: state.now(),
    };
    // Marked before the compressor can see the asset: should it finish before the record is
    // cached, the record (without its variants) is not cached over them.
    let mark = state.assets.mark();
    let created = state.meta.insert_asset(record.clone()).await?;
    let record = if created {
        state.compressor.enqueue(hash.to_owned());
        state.assets.insert(record, mark)
    } else {
        state
            .asset(hash)
            .await?
            .ok_or_else(|| ApiError::internal("an indexed asset vanished"))?
    };
    Ok((record, created))
}

fn uploaded(asset: &AssetRecord, created: bool) -> UploadedAsset {
    UploadedAsset {
        hash: asset.hash.clone(),
        key: asset.key.clone(),
        size: asset.size,
        content_type: asset.content_type.clone(),
        created,
    }
}
