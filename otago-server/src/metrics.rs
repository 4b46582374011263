//! Prometheus metrics, rendered by hand: requests by route and status, manifest answers by
//! kind, asset bytes served, adoption counts dropped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use otago_core::DecisionKind;

use crate::jobs::JobKind;
use crate::state::AppState;

const KINDS: [DecisionKind; 4] = [
    DecisionKind::Manifest,
    DecisionKind::NoUpdateAvailable,
    DecisionKind::RollBackToEmbedded,
    DecisionKind::NoUpdate,
];

/// Status codes counted one by one; any other counts as `other`.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;
const STATUS_SLOTS: usize = 501;
/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// The server's counters: lock-free, so counting costs a request one atomic add.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Every route pattern, sorted, then [`UNMATCHED`] (never raw paths: bounded labels).
    routes: Vec<&'static str>,
    /// `routes.len()` rows of [`STATUS_SLOTS`] counters (the last slot: any other status).
    requests: Box<[AtomicU64]>,
    answers: [AtomicU64; 4],
    asset_bytes: AtomicU64,
    health_gate_reverts: AtomicU64,
    patches_served: AtomicU64,
    patch_bytes_saved: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut routes: Vec<&'static str> = crate::routes::all_routes()
            .into_iter()
            .map(|(_, path)| path)
            .collect();
        routes.sort_unstable();
        routes.dedup();
        routes.push(UNMATCHED);
        let requests = (0..routes.len() * STATUS_SLOTS)
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            routes,
            requests,
            answers: Default::default(),
            asset_bytes: AtomicU64::new(0),
            health_gate_reverts: AtomicU64::new(0),
            patches_served: AtomicU64::new(0),
            patch_bytes_saved: AtomicU64::new(0),
        }
    }
}

/// A route's row in the request counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteIndex(usize);

impl Metrics {
    /// The row of a route pattern (as axum's `MatchedPath` spells it); unknown ones count as
    /// unmatched.
    pub(crate) fn route(&self, pattern: Option<&str>) -> RouteIndex {
        let known = &self.routes[..self.routes.len() - 1];
        RouteIndex(
            pattern
                .and_then(|pattern| known.binary_search(&pattern).ok())
                .unwrap_or(known.len()),
        )
    }

    /// Counts a request by route and status.
    pub(crate) fn request(&self, route: RouteIndex, status: u16) {
        let slot = if STATUSES.contains(&status) {
            usize::from(status - STATUSES.start())
        } else {
            STATUS_SLOTS - 1
        };
        self.requests[route.0 * STATUS_SLOTS + slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a manifest answer.
    pub(crate) fn answer(&self, kind: DecisionKind) {
        if let Some(index) = KINDS.iter().position(|k| *k == kind) {
            self.answers[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts asset body bytes about to be sent.
    pub(crate) fn asset_bytes(&self, bytes: u64) {
        self.asset_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a bundle patch sent instead of a `full`-byte launch asset.
    pub(crate) fn patch_served(&self, patch: u64, full: u64) {
        self.patches_served.fetch_add(1, Ordering::Relaxed);
        self.patch_bytes_saved
            .fetch_add(full.saturating_sub(patch), Ordering::Relaxed);
    }

    /// Counts a rollout the health gate reverted.
    pub(crate) fn health_gate_revert(&self) {
        self.health_gate_reverts.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition; `adoption_dropped` and `jobs_done` (by [`JobKind::ALL`]) come from
    /// the recorder and the job claims.
    pub(crate) fn render(&self, adoption_dropped: u64, jobs_done: [u64; 2]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP otago_background_jobs_total Background jobs this replica did, by kind.\n",
        );
        out.push_str("# TYPE otago_background_jobs_total counter\n");
        for (kind, done) in JobKind::ALL.iter().zip(jobs_done) {
            let _ = writeln!(
                out,
                "otago_background_jobs_total{{kind=\"{}\"}} {done}",
                kind.as_str()
            );
        }
        out.push_str("# HELP otago_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE otago_http_requests_total counter\n");
        for (row, route) in self.requests.chunks_exact(STATUS_SLOTS).zip(&self.routes) {
            for (slot, count) in row.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let _ = write!(
                    out,
                    "otago_http_requests_total{{route=\"{route}\",status=\""
                );
                if slot == STATUS_SLOTS - 1 {
                    out.push_str("other");
                } else {
                    let _ = write!(out, "{}", usize::from(*STATUSES.start()) + slot);
                }
                let _ = writeln!(out, "\"}} {n}");
            }
        }
        out.push_str("# HELP otago_manifest_answers_total Manifest endpoint answers by kind.\n");
        out.push_str("# TYPE otago_manifest_answers_total counter\n");
        for (kind, count) in KINDS.iter().zip(&self.answers) {
            let _ = writeln!(
                out,
                "otago_manifest_answers_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP otago_asset_bytes_total Asset body bytes served.\n");
        out.push_str("# TYPE otago_asset_bytes_total counter\n");
        let _ = writeln!(
            out,
            "otago_asset_bytes_total {}",
            self.asset_bytes.load(Ordering::Relaxed)
        );
        out.push_str("# HELP otago_adoption_dropped_total Manifest requests not counted for adoption (counter map full).\n");
        out.push_str("# TYPE otago_adoption_dropped_total counter\n");
        let _ = writeln!(out, "otago_adoption_dropped_total {adoption_dropped}");
        out.push_str(
            "# HELP otago_health_gate_reverts_total Rollouts the health gate reverted by itself.\n",
        );
        out.push_str("# TYPE otago_health_gate_reverts_total counter\n");
        let _ = writeln!(
            out,
            "otago_health_gate_reverts_total {}",
            self.health_gate_reverts.load(Ordering::Relaxed)
        );
        out.push_str("# HELP otago_patches_served_total Bundle patches sent instead of whole launch assets.\n");
        out.push_str("# TYPE otago_patches_served_total counter\n");
        let _ = writeln!(
            out,
            "otago_patches_served_total {}",
            self.patches_served.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP otago_patch_bytes_saved_total Launch-asset bytes not sent thanks to patches.\n",
        );
        out.push_str("# TYPE otago_patch_bytes_saved_total counter\n");
        let _ = writeln!(
            out,
            "otago_patch_bytes_saved_total {}",
            self.patch_bytes_saved.load(Ordering::Relaxed)
        );
        out
    }
}

/// Middleware counting each request by its route pattern (never the raw path) and status.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = state.metrics.route(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let response = next.run(request).await;
    state.metrics.request(route, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_pattern_and_status() {
        let metrics = Metrics::default();
        let manifest = metrics.route(Some("/manifest/{ref}"));
        metrics.request(manifest, 200);
        metrics.request(manifest, 200);
        metrics.request(metrics.route(Some("/no/such/{route}")), 404);
        metrics.request(metrics.route(None), 404);
        metrics.request(metrics.route(Some("/healthz")), 99);
        metrics.request(metrics.route(Some("/healthz")), 600);
        let text = metrics.render(0, [0, 0]);
        for line in [
            "otago_http_requests_total{route=\"/manifest/{ref}\",status=\"200\"} 2",
            "otago_http_requests_total{route=\"unmatched\",status=\"404\"} 2",
            "otago_http_requests_total{route=\"/healthz\",status=\"other\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("otago_http_requests_total"))
                .count(),
            3,
            "no zero counters: {text}"
        );
    }
}
