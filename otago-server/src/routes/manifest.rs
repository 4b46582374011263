//! `GET /manifest/{ref}`: the Expo Updates protocol endpoint.
//!
//! The hot path: otago-core parses the headers, the prepared answers come from memory, and the
//! pre-rendered bytes are written out. No signing, JSON encoding, disk or database access per
//! request; adoption and health (one SHA-256 of the `EAS-Client-ID`) are counted in memory.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use otago_core::{ManifestRequest, ProtocolVersion, common_headers};

use crate::adoption::ManifestHit;
use crate::error::{ApiError, ApiResult};
use crate::live::{LiveChannel, WireResponse};
use crate::state::AppState;

/// The axum handler (for [`crate::protocol_router`]); the server's own accept loop calls
/// [`respond`] directly.
pub(crate) async fn manifest(
    State(state): State<AppState>,
    Path(project_ref): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    respond(&state, &project_ref, &method, &headers)
}

/// The answer to a manifest request, errors included (with the protocol headers).
pub(crate) fn respond(
    state: &AppState,
    project_ref: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    match answer(state, project_ref, method, headers) {
        Ok(response) => response,
        Err(err) => {
            let mut response = err.into_response();
            for (name, value) in common_headers(ProtocolVersion::V1) {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            response
        }
    }
}

fn answer(
    state: &AppState,
    project_ref: &str,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let request = ManifestRequest::parse(
        method.as_str(),
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    )?;
    if !crate::ids::is_project_ref(project_ref) {
        return Err(super::project_not_found(project_ref));
    }
    let channel = state
        .live
        .channel(project_ref, request.platform, &request.runtime_version)
        .ok_or_else(|| super::project_not_found(project_ref))?;
    // One hash of the `EAS-Client-ID` for both the adoption and the health counts.
    let device = request.client_id.as_deref().map(otago_core::DeviceHash::of);
    // Counted before answering: a request nothing is published for still tells which
    // runtime version the device runs.
    state.recorder.manifest_request(ManifestHit {
        project_ref,
        platform: request.platform,
        runtime_version: &request.runtime_version,
        published: !channel.known_ids.is_empty(),
        current_update_id: adoption_label(&channel, &request),
        device,
        at_ms: state.now().unix_millis(),
    });
    let answer = channel.prepared.answer(&request)?;
    state.metrics.answer(answer.kind);
    if let Some(device) = device {
        crate::health::count(&channel, &request, device, answer.role);
    }
    let wire = channel
        .wire
        .get(answer.response.index())
        .ok_or_else(|| ApiError::internal("a prepared response is missing its wire form"))?;
    Ok(write(wire))
}

/// The device's current update as an adoption label: a published id, or a coarse bucket so
/// that clients cannot grow the counters with made-up ids.
fn adoption_label<'a>(channel: &'a LiveChannel, request: &'a ManifestRequest) -> &'a str {
    match request.current_update_id.as_deref() {
        None => "none",
        Some(current) if request.embedded_update_id.as_deref() == Some(current) => "embedded",
        Some(current) => channel
            .known_ids
            .iter()
            .find(|id| id.as_str() == current)
            .map_or("other", String::as_str),
    }
}

/// Writes a pre-rendered response.
fn write(wire: &WireResponse) -> Response {
    let mut response = Response::new(Body::from(wire.body.clone()));
    *response.status_mut() = wire.status;
    *response.headers_mut() = wire.headers.clone();
    response
}
