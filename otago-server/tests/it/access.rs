//! Who may call what: every route of the route table tried with deploy and admin keys of the
//! project and of another one; expired and revoked keys; the audit log; throttling of failed
//! authentications; tokens that never reach the store; the admin token's rules.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use otago_server::store::KeyRole;
use otago_server::{Access, AppState, Clock, ServerConfig};
use reqwest::Method;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::harness::{ADMIN, Server, certificate_pem};

/// The system clock moved by an offset the test sets.
#[derive(Default)]
struct MovableClock(AtomicI64);

impl MovableClock {
    fn advance(&self, by: Duration) {
        self.0
            .fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

impl Clock for MovableClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
            + Duration::from_millis(u64::try_from(self.0.load(Ordering::SeqCst)).unwrap())
    }
}

async fn project(server: &Server, app: &str) -> String {
    server.create_project(app, "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a key with the admin token; returns (id, secret).
async fn key(server: &Server, project_ref: &str, body: Value) -> (String, String) {
    let response = server
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/keys"),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn status_and_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// A route's path with its parameters filled in, `{ref}` with `project_ref`.
fn concrete(path: &str, project_ref: &str) -> String {
    path.replace("{ref}", project_ref)
        .replace("{hash}", &otago_core::asset_hash(b"x"))
        .replace("{id}", "k_0000000000")
        .replace("{group}", "00000000-0000-4000-8000-000000000000")
}

async fn call(server: &Server, method: &Method, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = server.request(method.clone(), path);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if [Method::POST, Method::PATCH].contains(method) {
        request = request.json(&json!({}));
    }
    status_and_code(request.send().await.unwrap()).await
}

#[tokio::test]
async fn access_every_route_follows_the_route_table() {
    let server = Server::start_configured(|config| config.auth_failure_burst = 10_000).await;
    let own = project(&server, "own").await;
    let other = project(&server, "other").await;
    let (_, deploy) = key(&server, &own, json!({"name": "ci"})).await;
    let (_, admin) = key(&server, &own, json!({"name": "lead", "role": "admin"})).await;
    let table = otago_server::route_access();
    let mut tried = BTreeMap::new();
    for (method, path, access) in &table {
        // Every management route needs a credential: a new one without a decision cannot
        // slip in as public.
        if path.starts_with("/api/v1/") && *path != "/api/v1/openapi.json" {
            assert_ne!(*access, Access::Public, "{method} {path}");
        }
        if *access == Access::Public {
            let (status, code) = call(&server, method, &concrete(path, &own), None).await;
            assert!(
                status != 401 && status != 403,
                "{method} {path}: {status} {code}"
            );
            continue;
        }
        let (status, code) = call(&server, method, &concrete(path, &own), None).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "missing_token"),
            "{method} {path}"
        );
        let allowed = |status: u16| status != 401 && status != 403;
        for (who, token, role) in [
            ("deploy", &deploy, KeyRole::Deploy),
            ("admin", &admin, KeyRole::Admin),
        ] {
            let (status, code) = call(&server, method, &concrete(path, &own), Some(token)).await;
            let may = match access {
                Access::AnyCredential => true,
                Access::Project(needed) => role >= *needed,
                Access::ServerAdmin | Access::Public => false,
            };
            if may {
                assert!(
                    allowed(status),
                    "{who} key, own project: {method} {path}: {status} {code}"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{who} key, own project: {method} {path}: {code}"
                );
                let expected = if *access == Access::ServerAdmin {
                    "admin_only"
                } else {
                    "admin_key_required"
                };
                assert_eq!(code, expected, "{method} {path}");
            }
            if path.contains("{ref}") {
                let (status, code) =
                    call(&server, method, &concrete(path, &other), Some(token)).await;
                assert_eq!(
                    status, 403,
                    "{who} key, other project: {method} {path}: {code}"
                );
            }
        }
        tried.insert(format!("{method} {path}"), access.as_str());
    }
    // The projects still stand, the admin key could not delete its own project, and the
    // other project has no keys: nothing the refusals were about happened.
    let projects: Value = server
        .admin(Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(projects["projects"].as_array().unwrap().len(), 2);
    let keys: Value = server
        .admin(Method::GET, &format!("/api/v1/projects/{other}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(keys["keys"].as_array().unwrap().is_empty());
    // The OpenAPI document states each operation's access as the table does.
    let document: Value = server
        .request(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path, access) in &table {
        let operation = &document["paths"][path][method.as_str().to_lowercase()];
        assert_eq!(
            operation["x-otago-access"].as_str(),
            Some(access.as_str()),
            "{method} {path}"
        );
    }
    assert!(tried.len() >= 17, "{tried:?}");
    server.stop().await;
}

#[tokio::test]
async fn access_a_deploy_key_cannot_mint_keys_revoke_or_turn_signing_off() {
    let server = Server::start().await;
    let project_ref = server.signing_project("victim").await;
    let (other_id, _) = key(&server, &project_ref, json!({"name": "other"})).await;
    let (_, deploy) = key(&server, &project_ref, json!({"name": "ci"})).await;
    let keys_path = format!("/api/v1/projects/{project_ref}/keys");
    let minted = server
        .request(Method::POST, &keys_path)
        .bearer_auth(&deploy)
        .json(&json!({"name": "backdoor", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_code(minted).await,
        (403, "admin_key_required".into())
    );
    let revoked = server
        .request(Method::DELETE, &format!("{keys_path}/{other_id}"))
        .bearer_auth(&deploy)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 403);
    let weakened = server
        .request(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
        .bearer_auth(&deploy)
        .json(&json!({"require_signing": false, "certificate_pem": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(weakened.status(), 403);
    let project: Value = server
        .admin(Method::GET, &format!("/api/v1/projects/{project_ref}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["require_signing"], true);
    assert!(project["certificate_pem"].is_string());
    let keys: Value = server
        .admin(Method::GET, &keys_path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k["revoked_at"].is_null() && k["role"] == "deploy")
    );
    server.stop().await;
}

#[tokio::test]
async fn access_expired_and_revoked_keys_get_401() {
    let clock = Arc::new(MovableClock::default());
    let server = Server::start_with_clock(clock.clone(), |_| {}).await;
    let project_ref = project(&server, "expiry").await;
    let path = format!("/api/v1/projects/{project_ref}");
    let in_a_day =
        otago_core::Timestamp::from_system_time(clock.now() + Duration::from_secs(86_400))
            .unwrap()
            .to_string();
    let (_, expiring) = key(
        &server,
        &project_ref,
        json!({"name": "temp", "expires_at": in_a_day}),
    )
    .await;
    let keys: Value = server
        .admin(Method::GET, &format!("{path}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"][0]["expires_at"], in_a_day.as_str());
    // Works (and is cached) until it expires, then 401 with a clear code and message.
    assert_eq!(
        call(&server, &Method::GET, &path, Some(&expiring)).await.0,
        200
    );
    clock.advance(Duration::from_secs(86_401));
    let response = server
        .request(Method::GET, &path)
        .bearer_auth(&expiring)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_expired");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at"),
        "{body}"
    );
    // An expiry in the past is refused.
    let past = server
        .admin(Method::POST, &format!("{path}/keys"))
        .json(&json!({"name": "x", "expires_at": "2020-01-01T00:00:00.000Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_code(past).await,
        (422, "expires_at_in_the_past".into())
    );
    // A revoked key is refused at once, although it was cached a moment before.
    let (id, secret) = key(&server, &project_ref, json!({"name": "ci"})).await;
    assert_eq!(
        call(&server, &Method::GET, &path, Some(&secret)).await.0,
        200
    );
    let revoke = server
        .admin(Method::DELETE, &format!("{path}/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(
        call(&server, &Method::GET, &path, Some(&secret)).await,
        (401, "key_revoked".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn access_the_audit_log_records_who_changed_what_and_when() {
    let server = Server::start().await;
    let project_ref = project(&server, "audited").await;
    let (admin_id, admin_key) = key(
        &server,
        &project_ref,
        json!({"name": "lead", "role": "admin"}),
    )
    .await;
    let path = format!("/api/v1/projects/{project_ref}");
    // The admin key turns signing on; the admin token turns it off and removes the certificate.
    let on = server
        .request(Method::PATCH, &path)
        .bearer_auth(&admin_key)
        .json(&json!({"require_signing": true, "certificate_pem": certificate_pem()}))
        .send()
        .await
        .unwrap();
    assert_eq!(on.status(), 200);
    let off = server
        .admin(Method::PATCH, &path)
        .json(&json!({"require_signing": false, "certificate_pem": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    // A change that changes nothing is not an entry.
    let same = server
        .admin(Method::PATCH, &path)
        .json(&json!({"require_signing": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200);
    let (minted_id, _) = {
        let response = server
            .request(Method::POST, &format!("{path}/keys"))
            .bearer_auth(&admin_key)
            .json(&json!({"name": "ci"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["role"], "deploy");
        (created["id"].as_str().unwrap().to_owned(), ())
    };
    let revoke = server
        .request(Method::DELETE, &format!("{path}/keys/{minted_id}"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);

    let log: Value = server
        .request(Method::GET, &format!("{path}/audit"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("key.revoked", admin_id.as_str()),
            ("key.created", admin_id.as_str()),
            ("project.settings_changed", "admin"),
            ("project.settings_changed", admin_id.as_str()),
            ("key.created", "admin"),
        ]
    );
    assert_eq!(log["next_before"], Value::Null);
    for entry in entries {
        otago_core::Timestamp::parse(entry["at"].as_str().unwrap()).unwrap();
    }
    let off = &entries[2]["detail"]["changes"];
    assert_eq!(
        off["require_signing"],
        json!({"before": true, "after": false})
    );
    assert_eq!(off["certificate"]["after"], Value::Null);
    assert_eq!(
        off["certificate"]["before"]["pem_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let on = &entries[3]["detail"]["changes"];
    assert_eq!(
        on["require_signing"],
        json!({"before": false, "after": true})
    );
    assert_eq!(on["certificate"]["before"], Value::Null);
    assert_eq!(entries[0]["detail"]["key_id"], minted_id.as_str());
    assert_eq!(entries[1]["detail"]["role"], "deploy");
    assert_eq!(entries[4]["detail"]["role"], "admin");

    // Pages of two, newest first, down to the end.
    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let query = before.map_or(String::new(), |b| format!("&before={b}"));
        let page: Value = server
            .admin(Method::GET, &format!("{path}/audit?limit=2{query}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let all: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seen, all);
    let bad = server
        .admin(Method::GET, &format!("{path}/audit?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(bad).await, (400, "invalid_limit".into()));
    server.stop().await;
}

/// A client whose connections come from `ip` (any 127/8 address is loopback on Linux).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

async fn metric(server: &Server, name: &str) -> u64 {
    let text = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn access_failed_authentications_are_throttled_per_address() {
    let clock = Arc::new(MovableClock::default());
    let server = Server::start_with_clock(clock.clone(), |config| {
        config.auth_failure_burst = 3;
        config.auth_failure_interval = Duration::from_secs(20);
    })
    .await;
    let url = format!("{}/api/v1/projects", server.url);
    let attacker = client_from([127, 0, 0, 1]);
    let neighbour = client_from([127, 0, 0, 2]);
    for _ in 0..3 {
        let response = attacker
            .get(&url)
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // Spent: even the right token gets 429 from there, with retry-after.
    for token in ["guess", ADMIN] {
        let response = attacker.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 429, "{token}");
        assert_eq!(response.headers()["retry-after"], "20");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_failed_authentications");
    }
    // Another address is not affected.
    let response = neighbour.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = neighbour
        .get(&url)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(metric(&server, "otago_auth_throttled_total").await, 2);
    // One failure's worth of budget comes back per interval.
    clock.advance(Duration::from_secs(20));
    let response = attacker.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = attacker
        .get(&url)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = attacker.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(response.status(), 429);
    server.stop().await;
}

#[tokio::test]
async fn access_tokens_not_shaped_like_keys_and_cached_keys_never_reach_the_store() {
    let server = Server::start_configured(|config| config.auth_failure_burst = 10_000).await;
    let project_ref = project(&server, "lookups").await;
    let (_, secret) = key(&server, &project_ref, json!({"name": "ci"})).await;
    let path = format!("/api/v1/projects/{project_ref}");
    let lookups = "otago_auth_store_lookups_total";
    assert_eq!(metric(&server, lookups).await, 0);
    let wrong_shapes = [
        "a".to_owned(),
        "otago_short".to_owned(),
        format!("{secret}x"),
        secret.replace("otago_", "otago-"),
        format!("{}!", &secret[..secret.len() - 1]),
        "x".repeat(200),
    ];
    for token in &wrong_shapes {
        for _ in 0..20 {
            assert_eq!(call(&server, &Method::GET, &path, Some(token)).await.0, 401);
        }
    }
    assert_eq!(
        metric(&server, lookups).await,
        0,
        "wrong shapes reached the store"
    );
    // A valid key is looked up once, then served from memory.
    for _ in 0..20 {
        assert_eq!(
            call(&server, &Method::GET, &path, Some(&secret)).await.0,
            200
        );
    }
    assert_eq!(metric(&server, lookups).await, 1);
    // A well-shaped unknown token does reach the store (and counts as a failure).
    let unknown = format!("otago_{}", "A".repeat(40));
    assert_eq!(
        call(&server, &Method::GET, &path, Some(&unknown)).await,
        (401, "invalid_token".into())
    );
    assert_eq!(metric(&server, lookups).await, 2);
    assert_eq!(metric(&server, "otago_auth_failures_total").await, 121);
    server.stop().await;
}

fn config(dir: &std::path::Path, token: Option<&str>) -> ServerConfig {
    ServerConfig::new(dir, "http://127.0.0.1:1")
        .unwrap()
        .with_admin_token(token.map(str::to_owned))
}

async fn status_of(state: &AppState, token: &str) -> u16 {
    let request = axum::http::Request::get("/api/v1/projects")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    otago_server::router(state.clone())
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn access_a_configured_admin_token_replaces_the_generated_one_for_good() {
    let tempdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tempdir.path();
    // First start without a token: one is generated.
    let opened = AppState::open(config(dir, None)).await.unwrap();
    let generated = opened.generated_admin_token.clone().unwrap();
    assert_eq!(status_of(&opened.state, &generated).await, 200);
    drop(opened);
    // Then with a configured token: only it works.
    let configured = "a-configured-admin-token-of-40-characters";
    let opened = AppState::open(config(dir, Some(configured))).await.unwrap();
    assert!(opened.generated_admin_token.is_none());
    assert_eq!(status_of(&opened.state, configured).await, 200);
    assert_eq!(status_of(&opened.state, &generated).await, 401);
    drop(opened);
    // Unset again: the generated token stays dead, the last configured one keeps working, and
    // no new token is generated.
    let opened = AppState::open(config(dir, None)).await.unwrap();
    assert!(opened.generated_admin_token.is_none());
    assert_eq!(status_of(&opened.state, &generated).await, 401);
    assert_eq!(status_of(&opened.state, configured).await, 200);
}

#[tokio::test]
async fn access_a_short_admin_token_is_refused_at_start() {
    let tempdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let err = AppState::open(config(tempdir.path(), Some("a")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has 1 characters; it must have at least 32"),
        "{err}"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_otago-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempdir.path())
        .env("OTAGO_ADMIN_TOKEN", "0123456789012345678901234567890")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has 31 characters; it must have at least 32"),
        "{stderr}"
    );
}
