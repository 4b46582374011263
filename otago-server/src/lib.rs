//! # otago-server
//!
//! The Otago update server for Expo apps: the Expo Updates protocol endpoint
//! (`/manifest/{ref}`), the content-addressed asset CDN (`/assets/{hash}`) and the management
//! API (`/api/v1/...`, described by `/api/v1/openapi.json`), on an embedded SQLite database and
//! a local folder by default.
//!
//! The protocol logic lives in `otago-core`; this crate does the I/O. Every answer a device can
//! get is rendered when an update is published and kept in memory, so a manifest request does
//! no hashing, signing, JSON encoding, disk or database access.
//!
//! Embedding in your own axum or hyper service:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use otago_server::{AppState, ServerConfig};
//!
//! let config = ServerConfig::new("./otago-data", "https://updates.example.com")?;
//! let opened = AppState::open(config).await?;
//! let flusher = opened.state.spawn_flusher();
//! // Only the protocol and asset routes, under your own router:
//! let app = axum::Router::new().merge(otago_server::protocol_router(opened.state.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! flusher.abort();
//! opened.state.flush().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

mod adoption;
mod audit;
mod auth;
mod check;
mod compressor;
pub mod config;
mod connections;
mod demo;
mod dispatch;
mod error;
mod extract;
mod follow;
mod health;
mod hot_assets;
mod ids;
mod jobs;
mod limits;
mod live;
mod metrics;
mod migrate;
mod patches;
mod publish;
mod releases;
mod routes;
mod serve;
mod state;
pub mod store;

pub use auth::Access;
pub use check::{CheckReport, check_data_dir, check_store};
pub use config::ServerConfig;
pub use demo::{DemoOutcome, run_demo};
pub use error::{ApiError, ApiResult, Problem};
pub use limits::raise_open_file_limit;
pub use migrate::{MigrateReport, migrate};
pub use routes::{all_routes, route_access};
pub use state::{AppState, Clock, Opened, StartError, SystemClock};

/// How long a protocol request may take.
const PROTOCOL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a management request (an upload, say) may take.
const API_TIMEOUT: Duration = Duration::from_secs(15 * 60);

fn timeout(duration: Duration) -> tower_http::timeout::TimeoutLayer {
    tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        duration,
    )
}

/// The protocol endpoint and the asset CDN only (`/manifest/{ref}`, `/assets/{hash}`), for
/// mounting inside another service.
pub fn protocol_router(state: AppState) -> Router {
    routes::protocol_routes(&state)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(limits::limit_headers))
        .layer(timeout(PROTOCOL_TIMEOUT))
        .with_state(state)
}

/// Every route: the protocol, the assets, the management API, health, metrics and OpenAPI.
pub fn router(state: AppState) -> Router {
    let api = routes::api_routes(&state)
        .merge(routes::public_routes(&state))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(limits::limit_headers))
        .layer(timeout(API_TIMEOUT))
        .with_state(state.clone());
    Router::new()
        .merge(protocol_router(state))
        .merge(api)
        .fallback(routes::route_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(TraceLayer::new_for_http())
}

/// Serves [`router`] on `listener` until `shutdown` completes, then lets requests in flight
/// finish (up to `config.shutdown_grace`) and writes pending adoption counts.
///
/// Connections speak HTTP/1.1 (one request at a time each); requests with more than 100
/// headers or 32 KiB of them get 431. At most `config.max_connections` are served at once
/// (past it the longest-idle one is closed; when none is idle new ones get 503), and
/// `config.header_read_timeout`, `body_timeout` and `write_timeout` bound slow clients.
///
/// # Errors
/// Never for per-connection problems (they are logged); only if writing the final counts fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), store::StoreError> {
    serve::serve(listener, state, shutdown).await
}
