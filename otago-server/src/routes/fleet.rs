//! What devices ask for: `GET .../adoption` (requests per hour, platform, published runtime
//! version and current update, by page) and `GET .../runtime-versions` (every runtime version
//! devices asked for over the last days, with their distinct devices).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use otago_core::{DeviceSketch, Platform, Timestamp};
use serde::{Deserialize, Serialize};

use super::project_for;
use crate::adoption::DAY_MS;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// Rows of an adoption page unless `limit` says otherwise.
const DEFAULT_PAGE_ROWS: u32 = 1_000;
/// Most rows of an adoption page.
const MAX_PAGE_ROWS: u32 = 10_000;
/// Days `runtime-versions` covers unless `days` says otherwise.
const DEFAULT_FLEET_DAYS: u32 = 30;

#[derive(Debug, Deserialize)]
pub(crate) struct AdoptionQuery {
    /// Counts from this hour on (`YYYY-MM-DDTHH:mm:ss.sssZ`); default: the last 7 days.
    since: Option<String>,
    /// Rows per page (1 to [`MAX_PAGE_ROWS`]; default [`DEFAULT_PAGE_ROWS`]).
    limit: Option<u32>,
    /// Rows to skip: the previous page's `next_offset`.
    offset: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AdoptionRow {
    hour: String,
    platform: &'static str,
    /// `null`: every runtime version nothing is published for.
    runtime_version: Option<String>,
    current_update_id: String,
    count: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct AdoptionList {
    counts: Vec<AdoptionRow>,
    /// The `offset` of the next page; `null` on the last one.
    next_offset: Option<u64>,
}

fn timestamp_text(unix_millis: i64) -> String {
    Timestamp::from_unix_millis(unix_millis)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub(crate) async fn adoption(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiQuery(query): ApiQuery<AdoptionQuery>,
) -> ApiResult<Json<AdoptionList>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let since_ms = match query.since {
        Some(text) => Timestamp::parse(&text)
            .map_err(|err| {
                ApiError::bad_request(
                    "invalid_since",
                    err.to_string(),
                    "e.g. since=2026-01-01T00:00:00.000Z",
                )
            })?
            .unix_millis(),
        None => state.now().unix_millis() - 7 * DAY_MS,
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_ROWS);
    if !(1..=MAX_PAGE_ROWS).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {MAX_PAGE_ROWS} rows"),
            "e.g. limit=1000, then offset=<next_offset> for the next page",
        ));
    }
    let offset = query.offset.unwrap_or(0);
    let counts: Vec<AdoptionRow> = state
        .meta
        .adoption(&project.r#ref, since_ms, offset, limit)
        .await?
        .into_iter()
        .map(|count| AdoptionRow {
            hour: timestamp_text(count.hour_start_ms),
            platform: count.platform.as_str(),
            runtime_version: count.runtime_version,
            current_update_id: count.current_update_id,
            count: count.count,
        })
        .collect();
    let next_offset = (counts.len() == limit as usize).then(|| offset + u64::from(limit));
    Ok(Json(AdoptionList {
        counts,
        next_offset,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RuntimeVersionsQuery {
    /// Days back from today (UTC), today included: 1 to the retention period; default 30.
    days: Option<u32>,
}

/// One runtime version of one platform over the period.
#[derive(Debug, Serialize)]
pub(crate) struct RuntimeVersionRow {
    platform: &'static str,
    runtime_version: String,
    /// Distinct `EAS-Client-ID`s (estimated, within about 2%).
    devices: u64,
    requests: u64,
    /// `devices` over the platform's distinct devices in the period (0 to 1; the shares of a
    /// platform add up to more than 1 when devices changed runtime version).
    share: f64,
    last_seen: String,
}

/// Every runtime version past the daily limit, per platform.
#[derive(Debug, Serialize)]
pub(crate) struct OtherRow {
    platform: &'static str,
    devices: u64,
    requests: u64,
    share: f64,
    last_seen: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RuntimeVersions {
    days: u32,
    since: String,
    runtime_versions: Vec<RuntimeVersionRow>,
    other: Vec<OtherRow>,
}

/// Requests, devices and the latest request of one platform and runtime version.
#[derive(Default)]
struct Totals {
    requests: u64,
    devices: DeviceSketch,
    last_seen_ms: i64,
}

impl Totals {
    fn add(&mut self, requests: u64, devices: &[u8], last_seen_ms: i64) -> ApiResult<()> {
        self.requests = self.requests.saturating_add(requests);
        self.devices
            .merge_bytes(devices)
            .map_err(ApiError::internal)?;
        self.last_seen_ms = self.last_seen_ms.max(last_seen_ms);
        Ok(())
    }
}

fn share(devices: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (devices as f64 / of as f64).min(1.0)
    }
}

pub(crate) async fn runtime_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project_ref): ApiPath<String>,
    ApiQuery(query): ApiQuery<RuntimeVersionsQuery>,
) -> ApiResult<Json<RuntimeVersions>> {
    let project = project_for(&state, &principal, &project_ref).await?;
    let retention = state.config.adoption_retention_days;
    let days = query.days.unwrap_or(DEFAULT_FLEET_DAYS.min(retention));
    if !(1..=retention).contains(&days) {
        return Err(ApiError::bad_request(
            "invalid_days",
            format!("days must be 1 to {retention} (the server keeps counts that long)"),
            "e.g. days=30",
        ));
    }
    let now_ms = state.now().unix_millis();
    let since_ms = now_ms - now_ms.rem_euclid(DAY_MS) - i64::from(days - 1) * DAY_MS;
    let stored = state
        .meta
        .runtime_version_days(&project.r#ref, since_ms)
        .await?;
    let mut by_version: BTreeMap<(Platform, Option<String>), Totals> = BTreeMap::new();
    let mut by_platform: BTreeMap<Platform, DeviceSketch> = BTreeMap::new();
    for day in &stored {
        by_version
            .entry((day.platform, day.runtime_version.clone()))
            .or_default()
            .add(day.requests, &day.devices, day.last_seen_ms)?;
        by_platform
            .entry(day.platform)
            .or_default()
            .merge_bytes(&day.devices)
            .map_err(ApiError::internal)?;
    }
    let platform_devices = |platform| by_platform.get(&platform).map_or(0, DeviceSketch::estimate);
    let mut runtime_versions = Vec::new();
    let mut other = Vec::new();
    for ((platform, runtime_version), totals) in by_version {
        let devices = totals.devices.estimate();
        let share = share(devices, platform_devices(platform));
        let last_seen = timestamp_text(totals.last_seen_ms);
        match runtime_version {
            Some(runtime_version) => runtime_versions.push(RuntimeVersionRow {
                platform: platform.as_str(),
                runtime_version,
                devices,
                requests: totals.requests,
                share,
                last_seen,
            }),
            None => other.push(OtherRow {
                platform: platform.as_str(),
                devices,
                requests: totals.requests,
                share,
                last_seen,
            }),
        }
    }
    runtime_versions.sort_by(|a, b| {
        (a.platform, b.devices, b.requests, &a.runtime_version).cmp(&(
            b.platform,
            a.devices,
            a.requests,
            &b.runtime_version,
        ))
    });
    Ok(Json(RuntimeVersions {
        days,
        since: timestamp_text(since_ms),
        runtime_versions,
        other,
    }))
}
