//! `otago-server migrate`: an embedded install with two updates, a rollout and keys moves to
//! the real PostgreSQL test database and the real test bucket; a server on the moved install
//! serves every device the same signed bytes, every asset whole, and the old keys still work.

use std::collections::BTreeMap;

use otago_core::Platform;
use otago_server::config::DatabaseUrl;
use otago_server::store::MetaStore as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    RUNTIME, Server, as_refs, body, build_signed, client_headers, export, fresh_bucket,
    fresh_database, now_ms, parse_multipart, publish_body, with_standbys,
};

/// What the server sends device `client_id` on iOS: status, manifest bytes and signature.
async fn served_to(
    server: &Server,
    project_ref: &str,
    client_id: &str,
) -> (u16, Vec<u8>, Option<String>) {
    let mut headers = client_headers("ios");
    for header in &mut headers {
        if header.0 == "eas-client-id" {
            header.1 = client_id.to_owned();
        }
    }
    let response = server.manifest(project_ref, &as_refs(&headers)).await;
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = body(response).await;
    if status != 200 {
        return (status, bytes, None);
    }
    let (_, parts) = parse_multipart(&content_type, &bytes);
    let manifest = parts.into_iter().find(|p| p.name() == "manifest").unwrap();
    let signature = manifest.header("expo-signature").map(str::to_owned);
    (status, manifest.body, signature)
}

/// Devices with made-up ids, enough that a 30 % rollout splits them.
fn devices() -> Vec<String> {
    (0..40)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect()
}

#[tokio::test]
async fn an_embedded_install_moves_to_postgresql_and_a_bucket_and_serves_the_same() {
    // The embedded install: v1 for everyone, v2 rolling out to 30 %, a deploy key. (No bundle
    // patches: making them takes a debug build a minute; patch blobs are stored blobs like
    // any other and go the same way.)
    let source = Server::start_configured(|config| config.patch_bases = 0).await;
    let project_ref = source.signing_project("migrate").await;
    let v1 = source
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await
        .manifests;
    source
        .upload_export(&project_ref, export("exports/v2"))
        .await;
    let v2 = build_signed(
        export("exports/v2"),
        &format!("{}/assets", source.url),
        now_ms() - 30_000,
    );
    let controls: BTreeMap<Platform, Option<Vec<u8>>> = v1
        .iter()
        .map(|(platform, built)| (*platform, Some(built.bytes.clone())))
        .collect();
    let response = source
        .publish(
            &project_ref,
            &with_standbys(publish_body(RUNTIME, &v2, Some(30)), &controls),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let response = source
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/keys"),
        )
        .json(&json!({"name": "ci", "role": "deploy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let secret = response.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut before = Vec::new();
    for device in devices() {
        before.push(served_to(&source, &project_ref, &device).await);
    }
    let on_v2 = before
        .iter()
        .filter(|(_, bytes, _)| *bytes == v2[&Platform::Ios].bytes)
        .count();
    assert!(on_v2 > 0 && on_v2 < before.len(), "{on_v2} of 40 on v2");
    // The install at rest: its assets compressed.
    let started = std::time::Instant::now();
    loop {
        let groups: Value = source
            .admin(
                Method::GET,
                &format!("/api/v1/projects/{project_ref}/groups"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pending = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["updates"].as_array().unwrap())
            .any(|u| u.get("patches_pending").is_some());
        let uncompressed = source.state.meta().uncompressed_assets().await.unwrap();
        if !pending && uncompressed.is_empty() {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dir = source.dir.clone();
    let tempdir = source.stop().await;

    // Moved, twice: the second run copies nothing and checks everything again.
    let database = DatabaseUrl::Postgres(fresh_database().await);
    let (storage, _) = fresh_bucket();
    let first = otago_server::migrate(&dir, None, &database, None, Some(&storage))
        .await
        .unwrap();
    assert!(first.assets_copied > 5, "{first:?}");
    let groups = first.tables.iter().find(|t| t.table == "groups").unwrap();
    assert_eq!((groups.rows, groups.written), (2, 2));
    assert!(first.tables.iter().all(|t| t.written == t.rows as u64));
    let again = otago_server::migrate(&dir, None, &database, None, Some(&storage))
        .await
        .unwrap();
    assert_eq!(again.assets_copied, 0);
    assert_eq!(again.assets_present, first.assets_copied);
    assert!(again.tables.iter().all(|t| t.written == 0), "{again:?}");

    // A server on the moved install, with a data folder of its own.
    let target = Server::start_configured(|config| {
        config.database_url = Some(database.clone());
        config.storage_url = Some(storage.clone());
    })
    .await;
    for (device, was) in devices().iter().zip(&before) {
        let now = served_to(&target, &project_ref, device).await;
        assert_eq!(&now, was, "device {device}: same bytes and signature");
    }
    for built in v1.values().chain(v2.values()) {
        let manifest: Value = serde_json::from_slice(&built.bytes).unwrap();
        let mut assets = vec![manifest["launchAsset"].clone()];
        assets.extend(manifest["assets"].as_array().unwrap().iter().cloned());
        for asset in assets {
            let hash = asset["hash"].as_str().unwrap();
            let path = format!("/assets/{hash}");
            let fetched = target.request(Method::GET, &path).send().await.unwrap();
            assert_eq!(fetched.status(), 200, "{path}");
            assert_eq!(otago_core::asset_hash(&body(fetched).await), hash);
        }
    }
    // The old deploy key still lists the project's groups; the rollout is still at 30 %.
    let listed = target
        .request(
            Method::GET,
            &format!("/api/v1/projects/{project_ref}/groups"),
        )
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let percentages: Vec<u64> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rollout_percentage"].as_u64().unwrap())
        .collect();
    assert_eq!(percentages, vec![30, 100], "{listed}");
    target.stop().await;
    let report = otago_server::check_store(&dir, Some(&database), Some(&storage))
        .await
        .unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
    drop(tempdir);
}

#[tokio::test]
async fn a_migration_into_a_database_holding_another_install_commits_nothing() {
    let source = Server::start().await;
    let project_ref = source.signing_project("clash").await;
    let dir = source.dir.clone();
    let tempdir = source.stop().await;
    // The target already runs an install with a project of the same app and environment.
    let database = DatabaseUrl::Postgres(fresh_database().await);
    let other =
        Server::start_configured(|config| config.database_url = Some(database.clone())).await;
    let other_ref = other.signing_project("clash").await;
    assert_ne!(other_ref, project_ref);
    other.stop().await;

    let err = otago_server::migrate(&dir, None, &database, None, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("table projects"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    let store = otago_server::store::PostgresStore::connect(match &database {
        DatabaseUrl::Postgres(url) => url,
        DatabaseUrl::Sqlite(_) => unreachable!(),
    })
    .await
    .unwrap();
    let refs: Vec<String> = store
        .projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.r#ref)
        .collect();
    assert_eq!(refs, vec![other_ref]);
    drop(tempdir);
}
