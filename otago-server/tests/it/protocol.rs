//! Checklist C1–C39 of PROTOCOL.md §12 against the real server, with exports/v1 then
//! exports/v2 of the example app published (signed with its TEST key).

use otago_core::Platform;
use reqwest::Method;
use serde_json::Value;

use std::collections::BTreeMap;

use crate::harness::{
    CLIENT_ACCEPT, KEYID, RUNTIME, Server, as_refs, body, build_signed_with, client_headers,
    export, fixture, now_ms, openssl_verify, parse_multipart, publish_body, raw, shared, sign,
    with,
};

fn ios() -> Vec<(&'static str, String)> {
    client_headers("ios")
}

/// The manifest part of a 200 multipart response.
async fn manifest_part(headers: &[(&'static str, String)]) -> crate::harness::Part {
    let response = shared().manifest(headers).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    parts
        .into_iter()
        .find(|p| p.name() == "manifest")
        .expect("a manifest part")
}

async fn manifest_json(platform: &str) -> Value {
    manifest_part(&client_headers(platform)).await.json()
}

#[tokio::test]
async fn c01_non_get_is_405() {
    let s = shared();
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let mut request = s.client().request(
            method.clone(),
            format!("{}/manifest/{}", s.url, s.project_ref),
        );
        for (name, value) in ios() {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["expo-protocol-version"], "1");
    }
}

#[tokio::test]
async fn head_gets_the_get_headers_without_a_body() {
    let s = shared();
    let get = s.manifest(&ios()).await;
    assert_eq!(get.status(), 200);
    let mut request = s
        .client()
        .head(format!("{}/manifest/{}", s.url, s.project_ref));
    for (name, value) in ios() {
        request = request.header(name, value);
    }
    let head = request.send().await.unwrap();
    assert_eq!(head.status(), 200);
    for name in [
        "content-type",
        "content-length",
        "expo-protocol-version",
        "expo-sfv-version",
        "cache-control",
    ] {
        assert!(get.headers().contains_key(name), "{name}");
        assert_eq!(head.headers().get(name), get.headers().get(name), "{name}");
    }
    assert!(body(head).await.is_empty());
}

#[tokio::test]
async fn percent_encoded_refs_get_the_same_answer() {
    // Manifest URLs skip the router, except those it must decode first.
    let s = shared();
    let encoded = format!(
        "%{:02X}{}",
        s.project_ref.as_bytes()[0],
        &s.project_ref[1..]
    );
    let mut request = s.client().get(format!("{}/manifest/{encoded}", s.url));
    for (name, value) in ios() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let direct = s.manifest(&ios()).await;
    assert_eq!(
        response.headers()["content-type"],
        direct.headers()["content-type"]
    );
    assert_eq!(body(response).await, body(direct).await);
    let slash = s
        .client()
        .get(format!("{}/manifest/{}/", s.url, s.project_ref))
        .send()
        .await
        .unwrap();
    assert_eq!(slash.status(), 404);
}

#[tokio::test]
async fn c02_unknown_platform_is_400() {
    for platform in ["web", "IOS", ""] {
        let response = shared()
            .manifest(&with(ios(), "expo-platform", Some(platform)))
            .await;
        assert_eq!(response.status(), 400, "{platform}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "bad_header");
    }
    let response = shared().manifest(&with(ios(), "expo-platform", None)).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn c03_missing_runtime_is_400_unknown_runtime_is_no_update() {
    let response = shared()
        .manifest(&with(ios(), "expo-runtime-version", None))
        .await;
    assert_eq!(response.status(), 400);
    let response = shared()
        .manifest(&with(ios(), "expo-runtime-version", Some("9.9.9")))
        .await;
    assert_eq!(response.status(), 204);
    let v0 = with(
        with(ios(), "expo-runtime-version", Some("9.9.9")),
        "expo-protocol-version",
        None,
    );
    assert_eq!(shared().manifest(&v0).await.status(), 404);
}

#[tokio::test]
async fn c04_unacceptable_accept_is_406() {
    let response = shared()
        .manifest(&with(ios(), "accept", Some("text/html")))
        .await;
    assert_eq!(response.status(), 406);
    assert_eq!(response.headers()["expo-protocol-version"], "1");
}

#[tokio::test]
async fn c05_header_names_are_case_insensitive() {
    let s = shared();
    let request = format!(
        "GET /manifest/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: {CLIENT_ACCEPT}\r\nExpo-Platform: android\r\n\
         Expo-Protocol-Version: 1\r\nEXPO-RUNTIME-VERSION: {RUNTIME}\r\nExpo-Expect-Signature: sig, keyid=\"{KEYID}\"\r\n\r\n",
        s.project_ref
    );
    let (status, head, body) = raw(&s.addr, request.as_bytes()).await;
    assert_eq!(status, 200, "{head}");
    let expected_id = &s.v2[&Platform::Android].id;
    assert!(String::from_utf8_lossy(&body).contains(expected_id.as_str()));
}

#[tokio::test]
async fn c06_update_ids_compare_case_insensitively() {
    let current = shared().v2[&Platform::Ios].id.to_uppercase();
    let headers = with(ios(), "expo-current-update-id", Some(&current));
    let response = shared().manifest(&headers).await;
    assert_eq!(
        response.status(),
        204,
        "a client with a signing certificate gets no-update as 204"
    );
    let unsigned = with(headers, "expo-expect-signature", None);
    let response = shared().manifest(&unsigned).await;
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    assert_eq!(parts[0].json()["type"], "noUpdateAvailable");
}

#[tokio::test]
async fn c07_current_update_gets_no_update_available() {
    let current = shared().v2[&Platform::Ios].id.clone();
    let headers = with(
        with(ios(), "expo-current-update-id", Some(&current)),
        "expo-expect-signature",
        None,
    );
    let response = shared().manifest(&headers).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["expo-protocol-version"], "1");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].name(), "directive");
    assert_eq!(
        parts[0].json(),
        serde_json::json!({"type": "noUpdateAvailable"})
    );
    // With a signature expected, the unsigned directive becomes a 204 (also allowed by C7).
    let signed = with(ios(), "expo-current-update-id", Some(&current));
    assert_eq!(shared().manifest(&signed).await.status(), 204);
}

#[tokio::test]
async fn c08_v0_always_gets_a_manifest() {
    let current = shared().v2[&Platform::Ios].id.clone();
    let v0 = with(
        with(ios(), "expo-protocol-version", None),
        "expo-current-update-id",
        Some(&current),
    );
    let response = shared().manifest(&v0).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["expo-protocol-version"], "0");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    assert!(parts.iter().any(|p| p.name() == "manifest"));
    assert!(parts.iter().all(|p| p.name() != "directive"));
}

#[tokio::test]
async fn c09_newest_update_wins() {
    for (platform, name) in [(Platform::Ios, "ios"), (Platform::Android, "android")] {
        let manifest = manifest_json(name).await;
        assert_eq!(manifest["id"], shared().v2[&platform].id, "{name}");
    }
}

#[tokio::test]
async fn c10_every_response_carries_protocol_version() {
    let current = shared().v2[&Platform::Ios].id.clone();
    let v0 = with(ios(), "expo-protocol-version", None);
    // (request, status, the protocol version the answer must name)
    let cases = [
        (ios(), 200, "1"),
        (
            with(ios(), "expo-current-update-id", Some(&current)),
            204,
            "1",
        ),
        (
            with(
                with(ios(), "expo-current-update-id", Some(&current)),
                "expo-expect-signature",
                None,
            ),
            200,
            "1",
        ),
        (with(ios(), "expo-runtime-version", Some("0.0.0")), 204, "1"),
        (with(ios(), "expo-platform", Some("web")), 400, "1"),
        (with(ios(), "accept", Some("application/json")), 200, "1"),
        (v0.clone(), 200, "0"),
        (
            with(v0.clone(), "accept", Some("application/json")),
            200,
            "0",
        ),
        (with(v0, "expo-current-update-id", Some(&current)), 200, "0"),
    ];
    for (headers, status, expected) in cases {
        let response = shared().manifest(&headers).await;
        let label = format!("{headers:?}");
        assert_eq!(response.status(), status, "{label}");
        let versions: Vec<_> = response
            .headers()
            .get_all("expo-protocol-version")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(versions, [expected], "{label}");
    }
}

#[tokio::test]
async fn c11_sfv_version_and_private_cache_control() {
    let current = shared().v2[&Platform::Ios].id.clone();
    for headers in [ios(), with(ios(), "expo-current-update-id", Some(&current))] {
        let response = shared().manifest(&headers).await;
        assert_eq!(response.headers()["expo-sfv-version"], "0");
        assert_eq!(response.headers()["cache-control"], "private, max-age=0");
    }
}

#[tokio::test]
async fn c12_no_content_has_no_body_or_content_type() {
    let response = shared()
        .manifest(&with(ios(), "expo-runtime-version", Some("0.0.1")))
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(response.headers()["expo-protocol-version"], "1");
    assert!(body(response).await.is_empty());
}

#[tokio::test]
async fn c13_multipart_framing() {
    let response = shared().manifest(&ios()).await;
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("multipart/mixed; boundary="),
        "{content_type}"
    );
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    let names: Vec<String> = parts.iter().map(crate::harness::Part::name).collect();
    assert_eq!(names, ["manifest", "extensions"]);
    for part in &parts {
        assert_eq!(part.headers_named("content-disposition"), 1);
        assert_eq!(part.headers_named("content-type"), 1);
        assert!(
            part.header("content-disposition")
                .unwrap()
                .starts_with("inline; name=\"")
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A multipart answer: its boundary and parts, after checking no part body holds the boundary.
async fn multipart_of(response: reqwest::Response) -> (String, Vec<crate::harness::Part>) {
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (boundary, parts) = parse_multipart(&content_type, &body(response).await);
    for part in &parts {
        assert!(
            !contains(&part.body, boundary.as_bytes()),
            "{}",
            part.name()
        );
    }
    (boundary, parts)
}

#[tokio::test]
async fn c14_boundary_never_occurs_in_a_part() {
    let (boundary, _) = multipart_of(shared().manifest(&ios()).await).await;
    // A server with one fixed boundary (or one per channel) would break on an update whose
    // manifest holds that boundary: publish one that does (JSON escapes line breaks, so a
    // manifest can hold the boundary but never a whole delimiter line).
    let server = Server::start().await;
    let project_ref = server.signing_project("boundary").await;
    let v1 = export("exports/v1");
    server.upload_export(&project_ref, v1).await;
    let note = format!("--{boundary} then --{boundary}--");
    let built = build_signed_with(
        v1,
        &format!("{}/assets", server.url),
        now_ms() - 1000,
        &BTreeMap::from([("note".to_owned(), note.clone())]),
    );
    let response = server
        .publish(&project_ref, &publish_body(RUNTIME, &built, None))
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    for platform in [Platform::Ios, Platform::Android] {
        let bytes = &built[&platform].bytes;
        assert!(
            contains(bytes, boundary.as_bytes()),
            "the manifest holds the old boundary"
        );
        let headers = client_headers(platform.as_str());
        let (new_boundary, parts) =
            multipart_of(server.manifest(&project_ref, &as_refs(&headers)).await).await;
        assert_ne!(new_boundary, boundary, "{platform}");
        let names: Vec<String> = parts.iter().map(crate::harness::Part::name).collect();
        assert_eq!(names, ["manifest", "extensions"], "{platform}");
        assert_eq!(
            &parts[0].body, bytes,
            "{platform}: the manifest arrives whole"
        );
        assert_eq!(parts[0].json()["metadata"]["note"], note.as_str());
    }
    server.stop().await;
}

/// The parts of a directive answer: one `directive` part, no manifest (C15), of `kind` (C16).
fn assert_only_directive(parts: &[crate::harness::Part], kind: &str) {
    let names: Vec<String> = parts.iter().map(crate::harness::Part::name).collect();
    assert_eq!(names, ["directive"]);
    let directive = parts[0].json();
    assert!(
        ["noUpdateAvailable", "rollBackToEmbedded"].contains(&directive["type"].as_str().unwrap()),
        "{directive}"
    );
    assert_eq!(directive["type"], kind);
}

#[tokio::test]
async fn c15_c16_directive_responses_have_only_a_known_directive() {
    // noUpdateAvailable: a device running v2 that expects no signature.
    let current = shared().v2[&Platform::Android].id.clone();
    let headers = with(
        with(
            client_headers("android"),
            "expo-current-update-id",
            Some(&current),
        ),
        "expo-expect-signature",
        None,
    );
    let (_, parts) = multipart_of(shared().manifest(&headers).await).await;
    assert_only_directive(&parts, "noUpdateAvailable");
    // rollBackToEmbedded: a published rollback, to a device with an embedded update.
    let (server, project_ref, _) = rollback_server().await;
    for platform in ["ios", "android"] {
        let headers = with(
            client_headers(platform),
            "expo-embedded-update-id",
            Some("00000000-0000-4000-8000-000000000001"),
        );
        let (_, parts) =
            multipart_of(server.manifest(&project_ref, &as_refs(&headers)).await).await;
        assert_only_directive(&parts, "rollBackToEmbedded");
    }
    server.stop().await;
}

/// A server with exports/v1 published and then a signed rollback to the embedded update.
async fn rollback_server() -> (Server, String, String) {
    let server = Server::start().await;
    let project_ref = server.signing_project("rollback").await;
    let published = server
        .publish_export(&project_ref, export("exports/v1"), now_ms() - 60_000)
        .await;
    let commit_time = otago_core::Timestamp::from_unix_millis(now_ms()).unwrap();
    let directive = otago_core::Directive::roll_back_to_embedded(commit_time).to_bytes();
    let updates: Vec<Value> = ["ios", "android"]
        .iter()
        .map(|p| serde_json::json!({"platform": p, "directive": String::from_utf8(directive.clone()).unwrap(), "signature": sign(&directive)}))
        .collect();
    let response = server
        .publish(
            &project_ref,
            &serde_json::json!({"runtime_version": RUNTIME, "updates": updates}),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let group: Value = response.json().await.unwrap();
    assert_eq!(group["kind"], "rollback_to_embedded");
    let v1_id = published.manifests[&Platform::Ios].id.clone();
    (server, project_ref, v1_id)
}

#[tokio::test]
async fn c17_rollback_commit_time_is_exact_and_later() {
    let (server, project_ref, _) = rollback_server().await;
    let headers = with(
        ios(),
        "expo-embedded-update-id",
        Some("00000000-0000-4000-8000-000000000001"),
    );
    let response = server.manifest(&project_ref, &as_refs(&headers)).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    assert_eq!(parts.len(), 1);
    let directive = parts[0].json();
    assert_eq!(directive["type"], "rollBackToEmbedded");
    let commit_time = directive["parameters"]["commitTime"].as_str().unwrap();
    let parsed = otago_core::Timestamp::parse(commit_time).unwrap();
    assert!(parsed.unix_millis() > now_ms() - 60_000);
    // C34 for directives: signed, and the signature verifies over the exact part body.
    let signature = parts[0].header("expo-signature").unwrap();
    assert!(openssl_verify(
        &parts[0].body,
        signature,
        &fixture("certs/certificate.pem")
    ));
}

#[tokio::test]
async fn c18_rollback_only_for_v1_with_embedded_id() {
    let (server, project_ref, _) = rollback_server().await;
    let embedded = "00000000-0000-4000-8000-000000000001";
    // No embedded id: nothing to roll back to.
    assert_eq!(
        server
            .manifest(&project_ref, &as_refs(&ios()))
            .await
            .status(),
        204
    );
    // Running the embedded update already: no update.
    let running = with(
        with(ios(), "expo-embedded-update-id", Some(embedded)),
        "expo-current-update-id",
        Some(embedded),
    );
    assert_eq!(
        server
            .manifest(&project_ref, &as_refs(&running))
            .await
            .status(),
        204
    );
    // v0 never gets a directive, and is told why (406, as the protocol asks for an
    // incompatible protocol version), not that nothing is published.
    for embedded in [None, Some(embedded)] {
        let v0 = with(
            with(ios(), "expo-embedded-update-id", embedded),
            "expo-protocol-version",
            None,
        );
        let response = server.manifest(&project_ref, &as_refs(&v0)).await;
        assert_eq!(response.status(), 406);
        let body: Value = response.json().await.unwrap();
        let problem = &body["error"];
        assert_eq!(problem["code"], "rollback_needs_protocol_v1", "{body}");
        let message = problem["message"].as_str().unwrap();
        assert!(
            message.contains("rolled back to the update embedded in the app")
                && message.contains("protocol v0"),
            "{message}"
        );
        assert!(
            problem["hint"]
                .as_str()
                .unwrap()
                .contains("expo-protocol-version: 1"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn c19_directive_with_json_only_accept_is_406() {
    let (server, project_ref, _) = rollback_server().await;
    let headers = with(
        with(
            ios(),
            "expo-embedded-update-id",
            Some("00000000-0000-4000-8000-000000000001"),
        ),
        "accept",
        Some("application/json"),
    );
    assert_eq!(
        server
            .manifest(&project_ref, &as_refs(&headers))
            .await
            .status(),
        406
    );
}

#[tokio::test]
async fn c20_id_is_a_canonical_lowercase_uuid() {
    let id = manifest_json("ios").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(id, id.to_lowercase());
    assert_eq!(id.len(), 36);
    assert!(id.parse::<otago_core::UpdateId>().is_ok());
}

#[tokio::test]
async fn c21_created_at_has_millis_and_z() {
    let created_at = manifest_json("android").await["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created_at.len(), 24, "{created_at}");
    assert!(created_at.ends_with('Z') && created_at.as_bytes()[19] == b'.');
    otago_core::Timestamp::parse(&created_at).unwrap();
}

#[tokio::test]
async fn c22_runtime_version_equals_the_request() {
    assert_eq!(manifest_json("ios").await["runtimeVersion"], RUNTIME);
}

#[tokio::test]
async fn c23_launch_asset_shape() {
    let launch = &manifest_json("ios").await["launchAsset"];
    for field in ["key", "url", "hash", "contentType"] {
        assert!(launch[field].is_string(), "{field}");
    }
    assert!(launch["url"].as_str().unwrap().starts_with("http://"));
    assert!(launch.get("fileExtension").is_none());
}

#[tokio::test]
async fn c24_c25_assets_shape_and_safe_names() {
    let manifest = manifest_json("android").await;
    let assets = manifest["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 3);
    for asset in assets {
        for field in ["key", "url", "hash", "contentType", "fileExtension"] {
            assert!(asset[field].is_string(), "{field}");
        }
        let name = format!(
            "{}{}",
            asset["key"].as_str().unwrap(),
            asset["fileExtension"].as_str().unwrap()
        );
        assert!(asset["fileExtension"].as_str().unwrap().starts_with('.'));
        assert!(!name.contains(['/', '\\', '\0']) && name != "." && name != "..");
    }
}

#[tokio::test]
async fn c26_c27_equal_keys_mean_equal_bytes_and_hashes_are_sha256() {
    let client = shared().client();
    let mut seen = std::collections::BTreeMap::new();
    for platform in ["ios", "android"] {
        let manifest = manifest_json(platform).await;
        let assets =
            std::iter::once(&manifest["launchAsset"]).chain(manifest["assets"].as_array().unwrap());
        for asset in assets {
            let hash = asset["hash"].as_str().unwrap().to_owned();
            assert_eq!(hash.len(), 43);
            assert!(
                hash.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            let bytes = body(
                client
                    .get(asset["url"].as_str().unwrap())
                    .header("accept-encoding", "identity")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(otago_core::asset_hash(&bytes), hash);
            assert_eq!(
                otago_core::asset_key(&bytes),
                asset["key"].as_str().unwrap()
            );
            if let Some(previous) =
                seen.insert(asset["key"].as_str().unwrap().to_owned(), hash.clone())
            {
                assert_eq!(previous, hash);
            }
        }
    }
}

#[tokio::test]
async fn c28_metadata_and_extra_are_objects_without_expo_go() {
    let manifest = manifest_json("ios").await;
    assert!(manifest["metadata"].is_object());
    assert!(manifest["extra"].is_object());
    assert!(manifest["extra"].get("expoGo").is_none());
    assert_eq!(manifest["extra"]["expoClient"]["name"], "Otago Example");
}

#[tokio::test]
async fn c29_c31_c33_no_filters_or_server_defined_headers() {
    // Otago sends neither header, so the filters trivially pass and nothing overrides the
    // client's own headers.
    let response = shared().manifest(&ios()).await;
    assert!(response.headers().get("expo-manifest-filters").is_none());
    assert!(
        response
            .headers()
            .get("expo-server-defined-headers")
            .is_none()
    );
}

#[tokio::test]
async fn c30_extensions_map_keys_to_string_maps() {
    // Otago sets no per-asset request headers, so on every platform the extensions part is
    // exactly an empty map (a map of keys to string maps is checked in otago-core's c30).
    for platform in ["ios", "android"] {
        let (_, parts) = multipart_of(shared().manifest(&client_headers(platform)).await).await;
        let extensions: Vec<Value> = parts
            .iter()
            .filter(|p| p.name() == "extensions")
            .map(crate::harness::Part::json)
            .collect();
        assert_eq!(
            extensions,
            [serde_json::json!({"assetRequestHeaders": {}})],
            "{platform}"
        );
    }
}

#[tokio::test]
async fn c32_extra_params_and_failed_ids_parse_or_are_refused() {
    let good = with(
        with(ios(), "expo-extra-params", Some("foo=\"bar\", x=\"y\"")),
        "expo-recent-failed-update-ids",
        Some("\"a1b2\", \"c3d4\""),
    );
    assert_eq!(shared().manifest(&good).await.status(), 200);
    let bad = with(ios(), "expo-extra-params", Some("foo=(((")).clone();
    assert_eq!(shared().manifest(&bad).await.status(), 400);
}

#[tokio::test]
async fn c34_c35_c36_signed_manifest_verifies_with_openssl() {
    for platform in ["ios", "android"] {
        let part = manifest_part(&client_headers(platform)).await;
        let signature = part
            .header("expo-signature")
            .expect("signed part")
            .to_owned();
        assert!(signature.starts_with("sig=\""), "{signature}");
        assert!(
            signature.contains(&format!("keyid=\"{KEYID}\""))
                && signature.contains("alg=\"rsa-v1_5-sha256\"")
        );
        assert!(
            openssl_verify(&part.body, &signature, &fixture("certs/certificate.pem")),
            "{platform}"
        );
        let mut tampered = part.body.clone();
        tampered[10] ^= 1;
        assert!(!openssl_verify(
            &tampered,
            &signature,
            &fixture("certs/certificate.pem")
        ));
    }
}

#[tokio::test]
async fn c37_c38_keyid_matches_or_the_request_fails() {
    let part = manifest_part(&ios()).await;
    assert!(
        part.header("expo-signature")
            .unwrap()
            .contains("keyid=\"main\"")
    );
    let other = with(
        ios(),
        "expo-expect-signature",
        Some("sig, keyid=\"other\", alg=\"rsa-v1_5-sha256\""),
    );
    let response = shared().manifest(&other).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "signature_unavailable");
    // The client's default keyid is `root`, which these updates were not signed with.
    let root = with(ios(), "expo-expect-signature", Some("sig"));
    assert_eq!(shared().manifest(&root).await.status(), 400);
}

#[tokio::test]
async fn c39_single_json_manifest_has_top_level_signature() {
    let response = shared()
        .manifest(&with(ios(), "accept", Some("application/expo+json")))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/expo+json");
    let signature = response.headers()["expo-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = body(response).await;
    assert_eq!(
        bytes,
        shared().v2[&Platform::Ios].bytes,
        "the exact bytes the deployer signed"
    );
    assert!(openssl_verify(
        &bytes,
        &signature,
        &fixture("certs/certificate.pem")
    ));
}

#[tokio::test]
async fn served_manifest_bytes_are_the_deployers_exact_bytes() {
    for (platform, name) in [(Platform::Ios, "ios"), (Platform::Android, "android")] {
        let part = manifest_part(&client_headers(name)).await;
        assert_eq!(part.body, shared().v2[&platform].bytes);
        assert_eq!(
            part.header("expo-signature").unwrap(),
            shared().v2[&platform].signature
        );
    }
}
