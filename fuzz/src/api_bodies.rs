//! The management API's JSON bodies, sent through the whole router in-process (no sockets).

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use otago_server::{AppState, ServerConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "otago-fuzz-admin-token-0123456789abcdef";

/// A server on a fresh data folder with one project, kept for the whole run.
struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    project: String,
    /// The project's settings as created, restored after each `PATCH`.
    settings: Value,
}

/// What the router answered.
struct Answer {
    status: StatusCode,
    json: Option<Value>,
}

async fn send(router: &Router, method: Method, path: &str, body: Vec<u8>) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a well-formed request");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a response body is in memory")
        .to_bytes();
    let json = is_json.then(|| {
        serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!("{status} with a JSON content type but not JSON ({err}): {bytes:?}")
        })
    });
    Answer { status, json }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let data_dir = std::env::temp_dir().join(format!("otago-fuzz-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let (router, created) = runtime.block_on(async {
            let config = ServerConfig::new(&data_dir, "https://updates.example.com")
                .expect("a valid public URL")
                .with_admin_token(Some(ADMIN_TOKEN.to_owned()));
            let opened = AppState::open(config).await.expect("the server opens");
            let router = otago_server::router(opened.state);
            let body = br#"{"app":"fuzz","environment":"production"}"#.to_vec();
            let created = send(&router, Method::POST, "/api/v1/projects", body).await;
            assert_eq!(created.status, StatusCode::CREATED);
            (router, created.json.expect("the project as JSON"))
        });
        Server {
            runtime,
            router,
            project: created["ref"].as_str().expect("a project ref").to_owned(),
            settings: json!({
                "require_signing": created["require_signing"],
                "certificate_pem": created["certificate_pem"],
                "max_asset_bytes": created["max_asset_bytes"],
            }),
        }
    })
}

/// The first input byte picks a route, the rest is the JSON body sent to it. No answer is a
/// server error, every JSON answer parses, and every refusal carries an error code. A project
/// or key that gets created is deleted again and a patched project is restored, so the server's
/// state stays the same from one input to the next.
pub fn api_bodies(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let server = server();
    let project = &server.project;
    let (method, path) = match route % 6 {
        0 => (Method::POST, "/api/v1/projects".to_owned()),
        1 => (Method::PATCH, format!("/api/v1/projects/{project}")),
        2 => (Method::POST, format!("/api/v1/projects/{project}/keys")),
        3 => (
            Method::POST,
            format!("/api/v1/projects/{project}/assets/missing"),
        ),
        4 => (Method::POST, format!("/api/v1/projects/{project}/groups")),
        _ => (
            Method::PATCH,
            format!("/api/v1/projects/{project}/groups/00000000-0000-4000-8000-000000000000"),
        ),
    };
    server.runtime.block_on(async {
        let router = &server.router;
        let answer = send(router, method.clone(), &path, body.to_vec()).await;
        assert!(
            !answer.status.is_server_error(),
            "{method} {path} answered {}: {:?}",
            answer.status,
            answer.json
        );
        if !answer.status.is_success() {
            let code = answer
                .json
                .as_ref()
                .and_then(|json| json["error"]["code"].as_str());
            assert!(
                code.is_some_and(|code| !code.is_empty()),
                "{:?}",
                answer.json
            );
            return;
        }
        let json = answer.json.unwrap_or_default();
        let undo = match route % 6 {
            0 => Some((
                Method::DELETE,
                format!(
                    "/api/v1/projects/{}",
                    json["ref"].as_str().unwrap_or_default()
                ),
                Vec::new(),
            )),
            1 => Some((
                Method::PATCH,
                path.clone(),
                server.settings.to_string().into_bytes(),
            )),
            2 => Some((
                Method::DELETE,
                format!("{path}/{}", json["id"].as_str().unwrap_or_default()),
                Vec::new(),
            )),
            _ => None,
        };
        if let Some((method, path, body)) = undo {
            let undone = send(router, method.clone(), &path, body).await;
            assert!(
                undone.status.is_success(),
                "{method} {path}: {}",
                undone.status
            );
        }
    });
}
