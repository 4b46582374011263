//! Prometheus metrics, rendered by hand: requests by route and status, manifest answers by
//! kind, asset bytes served, adoption counts dropped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use otago_core::DecisionKind;

use crate::state::AppState;

const KINDS: [DecisionKind; 4] = [
    DecisionKind::Manifest,
    DecisionKind::NoUpdateAvailable,
    DecisionKind::RollBackToEmbedded,
    DecisionKind::NoUpdate,
];

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<HashMap<String, HashMap<u16, u64>>>,
    answers: [AtomicU64; 4],
    asset_bytes: AtomicU64,
}

impl Metrics {
    fn request(&self, route: &str, status: u16) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(by_status) = requests.get_mut(route) {
            *by_status.entry(status).or_default() += 1;
        } else {
            requests.insert(route.to_owned(), HashMap::from([(status, 1)]));
        }
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

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, adoption_dropped: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP otago_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE otago_http_requests_total counter\n");
        {
            let requests = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut rows: Vec<(&String, u16, u64)> = requests
                .iter()
                .flat_map(|(route, by_status)| {
                    by_status
                        .iter()
                        .map(move |(&status, &n)| (route, status, n))
                })
                .collect();
            rows.sort();
            for (route, status, n) in rows {
                let _ = writeln!(
                    out,
                    "otago_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
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
        out
    }
}

/// Middleware counting each request by its route pattern (never the raw path) and status.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.request(&route, response.status().as_u16());
    response
}
