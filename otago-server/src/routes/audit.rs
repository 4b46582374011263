//! `GET /api/v1/projects/{ref}/audit`: the project's audit log, newest first, a page at a time.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::AuditRecord;

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
const MAX_LIMIT: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// At most this many entries (1 to 500, default 50).
    limit: Option<u32>,
    /// Only entries older than this one (`next_before` of the previous page).
    before: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AuditEntry {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    detail: serde_json::Value,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        Self {
            seq: record.seq,
            at: record.at.to_string(),
            actor: record.actor,
            action: record.action,
            detail: record.detail,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<i64>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("`limit` must be between 1 and {MAX_LIMIT}"),
            "e.g. ?limit=50",
        ));
    }
    let records = state
        .meta
        .audit_log(&project.r#ref, query.before, limit)
        .await?;
    let next_before = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: records.into_iter().map(AuditEntry::from).collect(),
        next_before,
    }))
}
