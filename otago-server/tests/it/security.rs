//! Hostile requests: each is refused with the right status, and nothing changes.

use otago_core::Platform;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    RUNTIME, Server, as_refs, body, build_signed, client_headers, export, now_ms, publish_body,
    raw, shared,
};

async fn error_code(response: reqwest::Response) -> String {
    let value: Value = response.json().await.expect("our JSON error body");
    value["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}

async fn group_count(server: &Server, project_ref: &str) -> usize {
    let response = server
        .admin(
            Method::GET,
            &format!("/api/v1/projects/{project_ref}/groups"),
        )
        .send()
        .await
        .unwrap();
    let groups: Value = response.json().await.unwrap();
    groups["groups"].as_array().unwrap().len()
}

#[tokio::test]
async fn security_path_traversal_in_asset_urls_is_refused() {
    let s = shared();
    let paths = [
        "/assets/..%2F..%2Fetc%2Fpasswd",
        "/assets/../../etc/passwd",
        "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/assets/..%5C..%5Cwindows%5Cwin.ini",
        "/assets/...........................................",
        "/assets/%2E%2E/otago.sqlite3",
        "/assets/..%2F..%2Fotago.sqlite3%00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    for path in paths {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status, head, body) = raw(&s.addr, request.as_bytes()).await;
        assert!(status == 400 || status == 404, "{path}: {head}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("root:") && !text.contains("SQLite format"),
            "{path} leaked a file"
        );
    }
}

#[tokio::test]
async fn security_key_of_another_project_is_403() {
    let server = Server::start().await;
    let a = server.create_project("alpha", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = server.create_project("beta", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let key: Value = server
        .admin(Method::POST, &format!("/api/v1/projects/{a}/keys"))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["secret"].as_str().unwrap();
    let attempts = [
        (Method::GET, format!("/api/v1/projects/{b}")),
        (Method::GET, format!("/api/v1/projects/{b}/groups")),
        (Method::POST, format!("/api/v1/projects/{b}/keys")),
        (Method::DELETE, format!("/api/v1/projects/{b}")),
    ];
    for (method, path) in attempts {
        let response = server
            .request(method.clone(), &path)
            .bearer_auth(secret)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
    }
    let export = export("exports/v1");
    let built = build_signed(export, &format!("{}/assets", server.url), now_ms());
    let response = server
        .request(Method::POST, &format!("/api/v1/projects/{b}/groups"))
        .bearer_auth(secret)
        .json(&publish_body(RUNTIME, &built, None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(group_count(&server, &b).await, 0);
    let keys: Value = server
        .admin(Method::GET, &format!("/api/v1/projects/{b}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(keys["keys"].as_array().unwrap().is_empty());
    // Its own project works, and a key sees only its own project in the list.
    let own = server
        .request(Method::GET, &format!("/api/v1/projects/{a}"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let list: Value = server
        .request(Method::GET, "/api/v1/projects")
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["projects"].as_array().unwrap().len(), 1);
    // Admin-only actions.
    let response = server
        .request(Method::POST, "/api/v1/projects")
        .bearer_auth(secret)
        .json(&json!({"app": "x", "environment": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn security_revoked_key_is_401() {
    let server = Server::start().await;
    let project_ref = server.create_project("gamma", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let key: Value = server
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/keys"),
        )
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    let path = format!("/api/v1/projects/{project_ref}/groups");
    assert_eq!(
        server
            .request(Method::GET, &path)
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let revoke = server
        .admin(
            Method::DELETE,
            &format!("/api/v1/projects/{project_ref}/keys/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let response = server
        .request(Method::GET, &path)
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "key_revoked");
    let hash = otago_core::asset_hash(b"x");
    let response = server
        .request(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .bearer_auth(secret)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let missing: Value = server
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/assets/missing"),
        )
        .json(&json!({"hashes": [hash]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(missing["missing"], json!([hash]));
    server.stop().await;
}

#[tokio::test]
async fn security_missing_or_wrong_token_is_401() {
    let server = Server::start().await;
    let cases = [
        None,
        Some("Bearer nope"),
        Some("Bearer otago_wrongwrongwrong"),
        Some("Basic YWRtaW46YWRtaW4="),
        Some("Bearer "),
    ];
    for auth in cases {
        let mut request = server.request(Method::GET, "/api/v1/projects");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        error_code(response).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn security_oversized_upload_is_413_and_nothing_is_stored() {
    let server = Server::start().await;
    let project_ref = server.create_project("delta", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = server
        .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
        .json(&json!({"max_asset_bytes": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = vec![7u8; 5000];
    let hash = otago_core::asset_hash(&bytes);
    let response = server
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .header("content-type", "image/png")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "asset_too_large");
    // Without content-length (chunked), refused while streaming.
    let mut request = format!(
        "PUT /api/v1/projects/{project_ref}/assets/{hash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::harness::ADMIN
    )
    .into_bytes();
    for _ in 0..5 {
        request.extend_from_slice(b"3e8\r\n");
        request.extend_from_slice(&[7u8; 1000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, head, _) = raw(&server.addr, &request).await;
    assert_eq!(status, 413, "{head}");
    let missing: Value = server
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/assets/missing"),
        )
        .json(&json!({"hashes": [hash]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(missing["missing"], json!([hash]));
    assert_eq!(
        server
            .client
            .get(format!("{}/assets/{hash}", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        std::fs::read_dir(server.dir.join("tmp")).unwrap().count(),
        0,
        "no temp files left"
    );
    server.stop().await;
}

#[tokio::test]
async fn security_upload_with_wrong_hash_is_422_and_nothing_is_stored() {
    let server = Server::start().await;
    let project_ref = server.create_project("epsilon", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let claimed = otago_core::asset_hash(b"the real bytes");
    let response = server
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{claimed}"),
        )
        .header("content-type", "application/javascript")
        .body("malicious bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(error_code(response).await, "hash_mismatch");
    assert_eq!(
        server
            .client
            .get(format!("{}/assets/{claimed}", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let actual = otago_core::asset_hash(b"malicious bytes");
    assert_eq!(
        server
            .client
            .get(format!("{}/assets/{actual}", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(crate::harness::check(&server.dir).await.problems.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn security_malformed_json_is_400_with_error_body() {
    let server = Server::start().await;
    let bodies = [
        "{",
        "[]",
        "{\"app\": 1}",
        "{\"app\":\"a\",\"environment\":\"b\",\"extra\":true}",
        "\u{0}",
    ];
    for text in bodies {
        let response = server
            .admin(Method::POST, "/api/v1/projects")
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{text:?}");
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["error"]["code"], "invalid_json");
        assert!(value["error"]["message"].is_string() && value["error"]["hint"].is_string());
    }
    let huge = format!("{{\"app\":\"{}\"}}", "a".repeat(3 * 1024 * 1024));
    let response = server
        .admin(Method::POST, "/api/v1/projects")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let list: Value = server
        .admin(Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["projects"].as_array().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn security_oversized_headers_are_431() {
    let s = shared();
    let big = "a".repeat(100 * 1024);
    let request = format!(
        "GET /manifest/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-big: {big}\r\n\r\n",
        s.project_ref
    );
    let (status, head, _) = raw(&s.addr, request.as_bytes()).await;
    assert_eq!(status, 431, "{head}");
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{many}\r\n");
    let (status, head, _) = raw(&s.addr, request.as_bytes()).await;
    assert_eq!(status, 431, "{head}");
    // A protocol header value over otago-core's limit is 431 too.
    let long_id = "a".repeat(9000);
    let headers = crate::harness::with(
        client_headers("ios"),
        "expo-extra-params",
        Some(&format!("x=\"{long_id}\"")),
    );
    assert_eq!(s.manifest(&headers).await.status(), 431);
    // And the server still answers.
    assert_eq!(s.manifest(&client_headers("ios")).await.status(), 200);
}

#[tokio::test]
async fn security_publish_with_bad_signature_is_refused() {
    let server = Server::start().await;
    let project_ref = server.signing_project("zeta").await;
    let before = server
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await;
    let export = export("exports/v2");
    server.upload_export(&project_ref, export).await;
    let mut built = build_signed(export, &format!("{}/assets", server.url), now_ms());
    // Sign the iOS manifest, then change one byte of it: the signature no longer verifies.
    let ios = built.get_mut(&Platform::Ios).unwrap();
    let text = String::from_utf8(ios.bytes.clone())
        .unwrap()
        .replace("Otago Example", "Evil App!!!");
    ios.bytes = text.into_bytes();
    let response = server
        .publish(&project_ref, &publish_body(RUNTIME, &built, None))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(error_code(response).await, "bad_signature");
    // Unsigned, when the project requires signing.
    let mut unsigned = publish_body(
        RUNTIME,
        &build_signed(export, &format!("{}/assets", server.url), now_ms()),
        None,
    );
    unsigned["updates"][0]["signature"] = Value::Null;
    let response = server.publish(&project_ref, &unsigned).await;
    assert_eq!(response.status(), 422);
    assert_eq!(error_code(response).await, "signature_required");
    // A malformed signature header.
    let mut garbled = publish_body(
        RUNTIME,
        &build_signed(export, &format!("{}/assets", server.url), now_ms()),
        None,
    );
    garbled["updates"][0]["signature"] = json!("sig=notquoted");
    assert!(
        server
            .publish(&project_ref, &garbled)
            .await
            .status()
            .is_client_error()
    );
    // Nothing changed: one group, and devices still get v1.
    assert_eq!(group_count(&server, &project_ref).await, 1);
    let response = server
        .manifest(&project_ref, &as_refs(&client_headers("ios")))
        .await;
    let text = String::from_utf8(body(response).await).unwrap();
    assert!(text.contains(&before.manifests[&Platform::Ios].id));
    server.stop().await;
}
