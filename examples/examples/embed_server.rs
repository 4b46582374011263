//! Mount Otago's protocol endpoint and asset CDN inside your own axum service.
//!
//! ```sh
//! cargo run -p otago-examples --example embed_server
//! ```
//! Your service keeps its own routes; Otago answers under `/updates`. Set the public URL to
//! where that prefix is reachable, since manifests carry absolute asset URLs. The management
//! API is left out here: publish with `otago_server::router` on another port, or as this
//! example does, through the demo publish of the example app.

use std::error::Error;
use std::path::Path;

use axum::Router;
use axum::routing::get;
use otago_server::{AppState, ServerConfig};
use tokio::net::TcpListener;

/// Your service, with Otago's public routes nested under `/updates`.
fn app(otago: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { "my service" }))
        .nest("/updates", otago_server::protocol_router(otago))
}

/// Opens Otago's embedded stores in `data_dir` and publishes the example app once.
async fn open_otago(
    data_dir: &Path,
    public_url: &str,
) -> Result<(AppState, String), Box<dyn Error>> {
    let config = ServerConfig::new(data_dir, public_url)?;
    let state = AppState::open(config).await?.state;
    let demo = otago_server::run_demo(&state, &otago_examples::example_app_dir()).await?;
    Ok((state, demo.project_ref))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let data_dir = std::env::temp_dir().join("otago-embed-example");
    let (state, project_ref) = open_otago(&data_dir, &format!("http://{address}/updates")).await?;
    let _flusher = state.spawn_flusher();
    println!("your service: http://{address}/");
    println!("update URL:   http://{address}/updates/manifest/{project_ref}  (Ctrl-C to stop)");
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    state.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn serves_its_own_routes_and_otagos_under_a_prefix() {
        let data_dir =
            std::env::temp_dir().join(format!("otago-embed-test-{}", std::process::id()));
        let (state, project_ref) = open_otago(&data_dir, "http://service.test/updates")
            .await
            .unwrap();
        let app = app(state);

        let own = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(own.status(), StatusCode::OK);

        let manifest = Request::get(format!("/updates/manifest/{project_ref}"))
            .header("expo-platform", "android")
            .header("expo-runtime-version", "1.0.0")
            .header("expo-protocol-version", "1")
            .header("accept", "application/expo+json")
            .header("expo-expect-signature", "sig, keyid=\"main\"")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(manifest).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("expo-signature"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let manifest = otago_core::Manifest::parse(&body).unwrap();
        let bundle_url = &manifest.launch_asset.url;
        assert!(
            bundle_url.starts_with("http://service.test/updates/assets/"),
            "{bundle_url}"
        );

        let path = bundle_url.trim_start_matches("http://service.test");
        let asset = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK);
        let bytes = asset.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(otago_core::asset_hash(&bytes), manifest.launch_asset.hash);
        std::fs::remove_dir_all(&data_dir).ok();
    }
}
