//! The management API as the CLI uses it (see /tmp/otago/api-contract.md).

use std::collections::{BTreeMap, BTreeSet};

use otago_core::Platform;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    RUNTIME, Server, as_refs, body, build_signed, client_headers, export, now_ms, publish_body,
    with, with_standbys,
};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test]
async fn api_projects_crud() {
    let server = Server::start().await;
    let project = server.create_project("myapp", "production").await;
    let project_ref = project["ref"].as_str().unwrap();
    assert!(project_ref.starts_with("p_") && project_ref.len() == 12);
    assert_eq!(
        project["update_url"],
        format!("{}/manifest/{project_ref}", server.url)
    );
    assert_eq!(project["asset_base_url"], format!("{}/assets", server.url));
    assert_eq!(project["require_signing"], false);
    assert_eq!(project["certificate_pem"], Value::Null);
    assert_eq!(project["max_asset_bytes"], 52_428_800);
    assert!(project["created_at"].as_str().unwrap().ends_with('Z'));

    let again = server
        .admin(Method::POST, "/api/v1/projects")
        .json(&json!({"app": "myapp", "environment": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(again, 409).await["error"]["code"], "project_exists");
    let bad = server
        .admin(Method::POST, "/api/v1/projects")
        .json(&json!({"app": "My App", "environment": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(bad, 400).await["error"]["code"], "invalid_name");

    let list = json_of(
        server
            .admin(Method::GET, "/api/v1/projects")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 1);
    let got = json_of(
        server
            .admin(Method::GET, &format!("/api/v1/projects/{project_ref}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got, project);

    let signing_without_cert = server
        .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
        .json(&json!({"require_signing": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(signing_without_cert, 422).await["error"]["code"],
        "certificate_required"
    );
    let bad_cert = server
        .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
        .json(&json!({"certificate_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(bad_cert, 422).await["error"]["code"],
        "invalid_certificate"
    );
    let patched = server
        .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
        .json(&json!({"require_signing": true, "certificate_pem": crate::harness::certificate_pem(), "max_asset_bytes": 1000}))
        .send()
        .await
        .unwrap();
    let patched = json_of(patched, 200).await;
    assert_eq!(patched["require_signing"], true);
    assert_eq!(patched["max_asset_bytes"], 1000);
    let cleared = server
        .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
        .json(&json!({"require_signing": false, "certificate_pem": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(cleared, 200).await["certificate_pem"], Value::Null);

    let deleted = server
        .admin(Method::DELETE, &format!("/api/v1/projects/{project_ref}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = server
        .admin(Method::GET, &format!("/api/v1/projects/{project_ref}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(gone, 404).await["error"]["code"],
        "project_not_found"
    );
    let malformed = server
        .admin(Method::GET, "/api/v1/projects/..%2F..")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 404);
    let response = server
        .manifest(project_ref, &as_refs(&client_headers("ios")))
        .await;
    assert_eq!(
        response.status(),
        404,
        "a deleted project has no manifest endpoint"
    );
    server.stop().await;
}

#[tokio::test]
async fn api_keys_lifecycle() {
    let server = Server::start().await;
    let project_ref = server.create_project("keys", "staging").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/projects/{project_ref}/keys");
    let created = json_of(
        server
            .admin(Method::POST, &path)
            .json(&json!({"name": "ci"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("otago_"));
    assert!(created["id"].as_str().unwrap().starts_with("k_"));
    let used = server
        .request(Method::GET, &format!("/api/v1/projects/{project_ref}"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    server.state.flush().await.unwrap();
    let keys = json_of(server.admin(Method::GET, &path).send().await.unwrap(), 200).await;
    let key = &keys["keys"][0];
    assert_eq!(key["name"], "ci");
    assert!(key.get("secret").is_none(), "the secret is shown once");
    assert!(key["last_used_at"].is_string(), "{key}");
    assert_eq!(key["revoked_at"], Value::Null);
    let id = key["id"].as_str().unwrap();
    assert_eq!(
        server
            .admin(Method::DELETE, &format!("{path}/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        server
            .admin(Method::DELETE, &format!("{path}/k_0000000000"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let keys = json_of(server.admin(Method::GET, &path).send().await.unwrap(), 200).await;
    assert!(keys["keys"][0]["revoked_at"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn api_assets_missing_and_upload() {
    let server = Server::start().await;
    let project_ref = server.create_project("assets", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let (a, b) = (b"first asset".to_vec(), b"second asset".to_vec());
    let (ha, hb) = (otago_core::asset_hash(&a), otago_core::asset_hash(&b));
    let missing_path = format!("/api/v1/projects/{project_ref}/assets/missing");
    let missing = json_of(
        server
            .admin(Method::POST, &missing_path)
            .json(&json!({"hashes": [hb, ha]}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(missing["missing"], json!([hb, ha]));
    let put = |hash: &str, bytes: Vec<u8>| {
        server
            .admin(
                Method::PUT,
                &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
            )
            .header("content-type", "image/png")
            .body(bytes)
            .send()
    };
    let created = json_of(put(&ha, a.clone()).await.unwrap(), 201).await;
    assert_eq!(
        created,
        json!({"hash": ha, "key": otago_core::asset_key(&a), "size": a.len(), "content_type": "image/png", "created": true})
    );
    let again = json_of(put(&ha, a.clone()).await.unwrap(), 200).await;
    assert_eq!(again["created"], false);
    let missing = json_of(
        server
            .admin(Method::POST, &missing_path)
            .json(&json!({"hashes": [hb, ha]}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(missing["missing"], json!([hb]));
    let bad = json_of(
        server
            .admin(Method::POST, &missing_path)
            .json(&json!({"hashes": ["../x"]}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(bad["error"]["code"], "invalid_hash");
    let too_many: Vec<String> = (0..10_001).map(|_| ha.clone()).collect();
    assert_eq!(
        server
            .admin(Method::POST, &missing_path)
            .json(&json!({"hashes": too_many}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let served = server
        .client
        .get(format!("{}/assets/{ha}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(body(served).await, a);
    server.stop().await;
}

#[tokio::test]
async fn api_publish_rollout_and_revert() {
    let server = Server::start().await;
    let project_ref = server.signing_project("rollout").await;
    let v1 = server
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await;
    // v2 at 0%: every device keeps v1.
    server
        .upload_export(&project_ref, export("exports/v2"))
        .await;
    let built = build_signed(
        export("exports/v2"),
        &format!("{}/assets", server.url),
        now_ms(),
    );
    // Signed rollouts need their signed standby reverts.
    let unsigned_standby = json_of(
        server
            .publish(&project_ref, &publish_body(RUNTIME, &built, Some(0)))
            .await,
        422,
    )
    .await;
    assert_eq!(unsigned_standby["error"]["code"], "standby_required");
    let controls: BTreeMap<Platform, Option<Vec<u8>>> = v1
        .manifests
        .iter()
        .map(|(platform, built)| (*platform, Some(built.bytes.clone())))
        .collect();
    let group = json_of(
        server
            .publish(
                &project_ref,
                &with_standbys(publish_body(RUNTIME, &built, Some(0)), &controls),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(group["rollout_percentage"], 0);
    assert_eq!(group["state"], "rollout");
    assert_eq!(group["health_gate"]["max_failure_rate"], 5.0);
    assert_eq!(group["kind"], "update");
    assert_eq!(group["updates"].as_array().unwrap().len(), 2);
    assert!(group["updates"][0]["signed"].as_bool().unwrap());
    let served_id = |text: String| -> String {
        let start = text.find("{\"id\":\"").unwrap() + 7;
        text[start..start + 36].to_owned()
    };
    let ios = client_headers("ios");
    let fetch = || async {
        served_id(
            String::from_utf8(body(server.manifest(&project_ref, &as_refs(&ios)).await).await)
                .unwrap(),
        )
    };
    assert_eq!(fetch().await, v1.manifests[&Platform::Ios].id);
    let group_id = group["id"].as_str().unwrap();
    let patch = |percentage: u8| {
        server
            .admin(
                Method::PATCH,
                &format!("/api/v1/projects/{project_ref}/groups/{group_id}"),
            )
            .json(&json!({"rollout_percentage": percentage}))
            .send()
    };
    assert_eq!(
        json_of(patch(100).await.unwrap(), 200).await["rollout_percentage"],
        100
    );
    assert_eq!(fetch().await, built[&Platform::Ios].id);
    // A group with no rollout in progress can neither change its rollout nor be reverted.
    let v1_group = v1.group["id"].as_str().unwrap();
    let old = server
        .admin(
            Method::PATCH,
            &format!("/api/v1/projects/{project_ref}/groups/{v1_group}"),
        )
        .json(&json!({"rollout_percentage": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(old, 409).await["error"]["code"], "no_rollout");
    let revert = |group: String| {
        server
            .admin(
                Method::POST,
                &format!("/api/v1/projects/{project_ref}/groups/{group}/revert"),
            )
            .send()
    };
    let complete = json_of(revert(group_id.to_owned()).await.unwrap(), 409).await;
    assert_eq!(complete["error"]["code"], "no_rollout");
    assert!(
        complete["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is released to every device"),
        "{complete}"
    );
    // v3 at 50 % over v2: it can be raised, not lowered, and reverted.
    let v2_controls: BTreeMap<Platform, Option<Vec<u8>>> = built
        .iter()
        .map(|(platform, built)| (*platform, Some(built.bytes.clone())))
        .collect();
    let v3 = build_signed(
        export("exports/v1"),
        &format!("{}/assets", server.url),
        now_ms() + 1,
    );
    let rollout = json_of(
        server
            .publish(
                &project_ref,
                &with_standbys(publish_body(RUNTIME, &v3, Some(50)), &v2_controls),
            )
            .await,
        201,
    )
    .await;
    let v3_group = rollout["id"].as_str().unwrap().to_owned();
    let lower = server
        .admin(
            Method::PATCH,
            &format!("/api/v1/projects/{project_ref}/groups/{v3_group}"),
        )
        .json(&json!({"rollout_percentage": 40}))
        .send()
        .await
        .unwrap();
    let lower = json_of(lower, 409).await;
    assert_eq!(lower["error"]["code"], "rollout_decrease");
    assert_eq!(
        lower["error"]["message"],
        "the rollout is at 50%; lowering it to 40% would not take the update back from the devices that have it"
    );
    let reverted = json_of(revert(v3_group.clone()).await.unwrap(), 200).await;
    assert_eq!(reverted["state"], "reverted");
    assert_eq!(reverted["reverted"], true);
    assert_eq!(reverted["revert"]["by"], "admin");
    let again = json_of(revert(v3_group.clone()).await.unwrap(), 409).await;
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was reverted")
    );
    // Devices outside the rollout keep v2.
    assert_eq!(fetch().await, built[&Platform::Ios].id);
    let group_id = v3_group.as_str();
    let built = v3;
    // Listing, filters, and one group in detail.
    let list = json_of(
        server
            .admin(
                Method::GET,
                &format!("/api/v1/projects/{project_ref}/groups?platform=ios&limit=1"),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(list["groups"].as_array().unwrap().len(), 1);
    assert_eq!(list["groups"][0]["id"], group_id, "newest first");
    let none = json_of(
        server
            .admin(
                Method::GET,
                &format!("/api/v1/projects/{project_ref}/groups?runtime_version=0.0.0"),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(none["groups"].as_array().unwrap().is_empty());
    let detail = json_of(
        server
            .admin(
                Method::GET,
                &format!("/api/v1/projects/{project_ref}/groups/{group_id}"),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let android = detail["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "android")
        .unwrap();
    assert_eq!(
        android["manifest"].as_str().unwrap().as_bytes(),
        built[&Platform::Android].bytes
    );
    assert_eq!(
        android["signature"],
        built[&Platform::Android].signature.as_str()
    );
    assert!(android["size"].as_u64().unwrap() > 1_500_000);
    server.stop().await;
}

#[tokio::test]
async fn api_publish_checks_refuse_and_store_nothing() {
    let server = Server::start().await;
    let project_ref = server.create_project("checks", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("{}/assets", server.url);
    let export = export("exports/v1");
    let code = |response: reqwest::Response, status: u16| async move {
        json_of(response, status).await["error"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Assets not uploaded yet.
    let built = build_signed(export, &base, now_ms() - 10_000);
    assert_eq!(
        code(
            server
                .publish(&project_ref, &publish_body(RUNTIME, &built, None))
                .await,
            422
        )
        .await,
        "asset_missing"
    );
    server.upload_export(&project_ref, export).await;
    // Asset URLs on another host.
    let elsewhere = build_signed(export, "https://cdn.example.com/assets", now_ms() - 9_000);
    assert_eq!(
        code(
            server
                .publish(&project_ref, &publish_body(RUNTIME, &elsewhere, None))
                .await,
            422
        )
        .await,
        "asset_url_mismatch"
    );
    // The group's runtime version differs from the manifests'.
    assert_eq!(
        code(
            server
                .publish(&project_ref, &publish_body("9.9.9", &built, None))
                .await,
            422
        )
        .await,
        "runtime_version_mismatch"
    );
    // Not a manifest; two entries for one platform; neither manifest nor directive.
    let broken =
        json!({"runtime_version": RUNTIME, "updates": [{"platform": "ios", "manifest": "{}"}]});
    assert_eq!(
        code(server.publish(&project_ref, &broken).await, 422).await,
        "invalid_manifest"
    );
    let manifest = String::from_utf8(built[&Platform::Ios].bytes.clone()).unwrap();
    let twice = json!({"runtime_version": RUNTIME, "updates": [{"platform": "ios", "manifest": manifest}, {"platform": "ios", "manifest": manifest}]});
    assert_eq!(
        code(server.publish(&project_ref, &twice).await, 400).await,
        "duplicate_platform"
    );
    let empty = json!({"runtime_version": RUNTIME, "updates": [{"platform": "ios"}]});
    assert_eq!(
        code(server.publish(&project_ref, &empty).await, 400).await,
        "invalid_updates"
    );
    let groups = json_of(
        server
            .admin(
                Method::GET,
                &format!("/api/v1/projects/{project_ref}/groups"),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(groups["groups"].as_array().unwrap().is_empty());

    // A good publish, then the same ids again, then an older createdAt.
    json_of(
        server
            .publish(&project_ref, &publish_body(RUNTIME, &built, None))
            .await,
        201,
    )
    .await;
    assert_eq!(
        code(
            server
                .publish(&project_ref, &publish_body(RUNTIME, &built, None))
                .await,
            409
        )
        .await,
        "update_id_reused"
    );
    let older = build_signed(export, &base, now_ms() - 3_600_000);
    assert_eq!(
        code(
            server
                .publish(&project_ref, &publish_body(RUNTIME, &older, None))
                .await,
            422
        )
        .await,
        "not_newer"
    );
    // A different keyid than the channel serves.
    let mut other_key = build_signed(export, &base, now_ms());
    for built in other_key.values_mut() {
        built.signature = built.signature.replace("keyid=\"main\"", "keyid=\"other\"");
    }
    assert_eq!(
        code(
            server
                .publish(&project_ref, &publish_body(RUNTIME, &other_key, None))
                .await,
            422
        )
        .await,
        "keyid_mismatch"
    );
    let groups = json_of(
        server
            .admin(
                Method::GET,
                &format!("/api/v1/projects/{project_ref}/groups"),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(groups["groups"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn api_adoption_is_counted_off_the_request_path() {
    let server = Server::start().await;
    let project_ref = server.signing_project("adoption").await;
    let published = server
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await;
    let current = published.manifests[&Platform::Ios].id.clone();
    for _ in 0..3 {
        server
            .manifest(&project_ref, &as_refs(&client_headers("ios")))
            .await;
    }
    let running = with(
        client_headers("ios"),
        "expo-current-update-id",
        Some(&current),
    );
    server.manifest(&project_ref, &as_refs(&running)).await;
    let made_up = with(
        client_headers("android"),
        "expo-current-update-id",
        Some("11111111-2222-4333-8444-555555555555"),
    );
    server.manifest(&project_ref, &as_refs(&made_up)).await;
    let path = format!("/api/v1/projects/{project_ref}/adoption");
    let before = json_of(server.admin(Method::GET, &path).send().await.unwrap(), 200).await;
    assert!(
        before["counts"].as_array().unwrap().is_empty(),
        "nothing is written per request"
    );
    // The final flush at shutdown writes the counts.
    let dir = server.dir.clone();
    let tempdir = server.stop().await;
    let server = Server::start_in(&dir).await;
    let after = json_of(server.admin(Method::GET, &path).send().await.unwrap(), 200).await;
    let counts: BTreeSet<(String, String, u64)> = after["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["platform"].as_str().unwrap().to_owned(),
                c["current_update_id"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, u64)> = [
        ("ios".to_owned(), "none".to_owned(), 3),
        ("ios".to_owned(), current, 1),
        ("android".to_owned(), "other".to_owned(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    assert_eq!(after["counts"][0]["runtime_version"], RUNTIME);
    server.stop().await;
    drop(tempdir);
}

#[tokio::test]
async fn api_restart_serves_the_same_answers() {
    let server = Server::start().await;
    let project_ref = server.signing_project("restart").await;
    let published = server
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await;
    let before = body(
        server
            .manifest(&project_ref, &as_refs(&client_headers("android")))
            .await,
    )
    .await;
    let dir = server.dir.clone();
    let tempdir = server.stop().await;
    let server = Server::start_in(&dir).await;
    let after = body(
        server
            .manifest(&project_ref, &as_refs(&client_headers("android")))
            .await,
    )
    .await;
    assert_eq!(before, after);
    assert!(String::from_utf8_lossy(&after).contains(&published.manifests[&Platform::Android].id));
    let report = crate::harness::check(&dir).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.assets_checked, 5);
    server.stop().await;
    drop(tempdir);
}

#[tokio::test]
async fn openapi_documents_every_route_and_nothing_else() {
    let server = Server::start().await;
    let document = json_of(
        server
            .request(Method::GET, "/api/v1/openapi.json")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(document["openapi"].as_str().unwrap().get(..3), Some("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
        {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = otago_server::all_routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Each documented route is really routed: it never gets the router's fallback.
    for (method, path) in &documented {
        let concrete = path
            .replace("{ref}", "p_0000000000")
            .replace("{hash}", &otago_core::asset_hash(b"x"))
            .replace("{id}", "k_0000000000")
            .replace("{group}", "00000000-0000-4000-8000-000000000000");
        let response = server
            .admin(Method::from_bytes(method.as_bytes()).unwrap(), &concrete)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("route_not_found") && !text.contains("\"method_not_allowed\"")
                || path.starts_with("/manifest"),
            "{method} {path}: {status} {text}"
        );
    }
    let unrouted = server
        .admin(Method::GET, "/api/v1/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(unrouted, 404).await["error"]["code"],
        "route_not_found"
    );
    let wrong_method = server
        .admin(Method::PUT, "/api/v1/projects")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(wrong_method, 405).await["error"]["code"],
        "method_not_allowed"
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_answers_and_bytes() {
    let s = crate::harness::shared();
    assert_eq!(s.manifest(&client_headers("ios")).await.status(), 200);
    let text = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("otago_http_requests_total{route=\"/manifest/{ref}\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("otago_manifest_answers_total{kind=\"manifest\"}"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE otago_asset_bytes_total counter"),
        "{text}"
    );
    assert!(
        !text.contains(&s.project_ref),
        "labels are route patterns, never raw paths"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_requests_in_flight_finish() {
    let server = Server::start().await;
    let project_ref = server.create_project("graceful", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes: Vec<u8> = (0..8 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let hash = otago_core::asset_hash(&bytes);
    let put = server
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let (client, url) = (
        server.client.clone(),
        format!("{}/assets/{hash}", server.url),
    );
    let in_flight = client.get(&url).send().await.unwrap();
    assert_eq!(in_flight.status(), 200);
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let received = body(in_flight).await;
    assert_eq!(
        otago_core::asset_hash(&received),
        hash,
        "the download in flight completed"
    );
    let _tempdir = stopping.await.unwrap();
    assert!(
        client.get(&url).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn api_counts_only_published_runtime_versions_and_lists_every_one_devices_ask_for() {
    let server = Server::start().await;
    let project_ref = server.signing_project("fleet").await;
    server
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await;
    let device = |platform: &str, runtime_version: &str, client: &str| {
        let headers = with(
            client_headers(platform),
            "expo-runtime-version",
            Some(runtime_version),
        );
        with(headers, "eas-client-id", Some(client))
    };
    for client in ["a", "b", "c"] {
        let headers = device("ios", RUNTIME, client);
        server.manifest(&project_ref, &as_refs(&headers)).await;
    }
    // 70 runtime versions nothing is published for, one device each, some twice.
    for n in 0..70 {
        let headers = device("android", &format!("0.{n}"), &format!("device-{n}"));
        for _ in 0..(1 + n % 2) {
            server.manifest(&project_ref, &as_refs(&headers)).await;
        }
    }
    server.state.flush().await.unwrap();

    // Adoption: the published runtime version by name, everything else in one bucket.
    let path = format!("/api/v1/projects/{project_ref}/adoption");
    let all = json_of(server.admin(Method::GET, &path).send().await.unwrap(), 200).await;
    let rows = all["counts"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{all:#}");
    assert_eq!(all["next_offset"], Value::Null);
    let bucket = rows
        .iter()
        .find(|r| r["runtime_version"].is_null())
        .unwrap();
    assert_eq!(
        (bucket["platform"].as_str(), bucket["count"].as_u64()),
        (Some("android"), Some(105))
    );
    assert_eq!(bucket["current_update_id"], "other");
    // By page.
    let first = json_of(
        server
            .admin(Method::GET, &format!("{path}?limit=1"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(first["counts"].as_array().unwrap().len(), 1);
    assert_eq!(first["next_offset"], 1);
    let second = json_of(
        server
            .admin(Method::GET, &format!("{path}?limit=1&offset=1"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(second["counts"].as_array().unwrap().len(), 1);
    assert_ne!(first["counts"][0], second["counts"][0]);
    let bad = server
        .admin(Method::GET, &format!("{path}?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(bad, 400).await["error"]["code"], "invalid_limit");

    // Runtime versions: 64 by name a day, the rest as `other`, with distinct devices.
    let path = format!("/api/v1/projects/{project_ref}/runtime-versions?days=30");
    let fleet = json_of(server.admin(Method::GET, &path).send().await.unwrap(), 200).await;
    assert_eq!(fleet["days"], 30);
    let named = fleet["runtime_versions"].as_array().unwrap();
    assert_eq!(named.len(), 64, "{fleet:#}");
    let ios = named.iter().find(|r| r["platform"] == "ios").unwrap();
    assert_eq!(
        (
            ios["runtime_version"].as_str(),
            ios["devices"].as_u64(),
            ios["requests"].as_u64()
        ),
        (Some(RUNTIME), Some(3), Some(3))
    );
    assert_eq!(ios["share"], 1.0);
    let other = fleet["other"].as_array().unwrap();
    assert_eq!(other.len(), 1, "{fleet:#}");
    assert_eq!(other[0]["platform"], "android");
    assert_eq!(other[0]["devices"], 7);
    let total: u64 = named
        .iter()
        .chain(other)
        .filter(|r| r["platform"] == "android")
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 105);
    let bad = server
        .admin(
            Method::GET,
            &format!("/api/v1/projects/{project_ref}/runtime-versions?days=91"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(bad, 400).await["error"]["code"], "invalid_days");
    server.stop().await;
}

#[tokio::test]
async fn api_an_asset_asked_for_before_its_upload_is_served_after_it() {
    let server = Server::start().await;
    let project_ref = server.create_project("early", "production").await["ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = b"an asset nobody uploaded yet".to_vec();
    let hash = otago_core::AssetDescription::of_asset(&bytes, "txt")
        .unwrap()
        .hash;
    for _ in 0..2 {
        let response = server
            .request(Method::GET, &format!("/assets/{hash}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let uploaded = server
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .header("content-type", "text/plain")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let response = server
        .request(Method::GET, &format!("/assets/{hash}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, bytes);
    server.stop().await;
}
