//! Checklist C40–C44 and the CDN's HTTP behaviour: encodings, ranges, ETags, HEAD.

use std::io::Read as _;
use std::time::Duration;

use otago_core::Platform;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, body, shared};

/// Every asset URL of the v2 manifests, with the hash and content type the manifest gives.
fn v2_assets() -> Vec<(String, String, String)> {
    let mut assets = Vec::new();
    for built in shared().v2.values() {
        let manifest: Value = serde_json::from_slice(&built.bytes).unwrap();
        for asset in
            std::iter::once(&manifest["launchAsset"]).chain(manifest["assets"].as_array().unwrap())
        {
            let field = |name: &str| asset[name].as_str().unwrap().to_owned();
            assets.push((field("url"), field("hash"), field("contentType")));
        }
    }
    assets
}

fn launch_url() -> (String, String) {
    let manifest: Value = serde_json::from_slice(&shared().v2[&Platform::Ios].bytes).unwrap();
    let launch = &manifest["launchAsset"];
    (
        launch["url"].as_str().unwrap().to_owned(),
        launch["hash"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn c40_every_asset_url_returns_the_hashed_bytes() {
    let client = shared().client();
    for (url, hash, _) in v2_assets() {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "no accept-encoding, no encoding"
        );
        assert_eq!(otago_core::asset_hash(&body(response).await), hash);
    }
}

#[tokio::test]
async fn memory_and_disk_serve_the_same_bytes() {
    // Nothing kept in memory (every request streams from disk); only assets up to 256 KiB
    // kept (the bundles stream); everything kept. Each asset is fetched twice: the second
    // time it comes from memory where it is kept.
    let mut servers = Vec::new();
    for budget in [0, 1 << 20, 64 << 20] {
        let server = Server::start_configured(|config| config.asset_memory_bytes = budget).await;
        let project = server.create_project("bytes", "production").await;
        let project_ref = project["ref"].as_str().unwrap().to_owned();
        server
            .upload_export(&project_ref, crate::harness::export("exports/v1"))
            .await;
        servers.push(server);
    }
    let mut sizes = Vec::new();
    for platform in &crate::harness::export("exports/v1").platforms {
        for file in platform.described.files() {
            let bytes = &platform.files[file.path.as_str()];
            let hash = &file.description.hash;
            sizes.push(bytes.len());
            for server in &servers {
                let url = format!("{}/assets/{hash}", server.url);
                for round in 0..2 {
                    let response = server.client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(
                        response.headers()["content-length"],
                        bytes.len().to_string().as_str()
                    );
                    assert_eq!(&body(response).await, bytes, "{url} round {round}");
                    let end = bytes.len().min(4096) - 1;
                    let response = server
                        .client
                        .get(&url)
                        .header("range", format!("bytes=1-{end}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 206);
                    assert_eq!(body(response).await, bytes[1..=end], "{url} round {round}");
                }
            }
        }
    }
    assert!(
        sizes.iter().any(|&size| size > 256 << 10) && sizes.iter().any(|&size| size <= 256 << 10),
        "the export has assets on both sides of the 1 MiB server's limit: {sizes:?}"
    );
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn c41_content_type_and_immutable_caching() {
    let client = shared().client();
    for (url, hash, content_type) in v2_assets() {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], content_type.as_str());
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            response.headers()["etag"].to_str().unwrap(),
            format!("\"{hash}\"")
        );
        // A launch asset's answers also vary with the patch headers once the server has made a
        // patch to it (in the background, after the publish); see `patches.rs`.
        let vary = response.headers()["vary"].to_str().unwrap();
        let launch_asset = content_type == "application/javascript";
        assert!(
            vary == "accept-encoding"
                || (launch_asset && vary == "accept-encoding, a-im, expo-current-update-id"),
            "{url}: vary {vary}"
        );
    }
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(bytes, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("unexpected encoding {other}"),
    };
    out
}

/// Waits until the background compression made the variants of `url`.
async fn wait_for_variants(client: &reqwest::Client, url: &str) {
    for _ in 0..600 {
        let response = client
            .head(url)
            .header("accept-encoding", "br")
            .send()
            .await
            .unwrap();
        if response.headers().get("content-encoding").is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} was never compressed");
}

#[tokio::test]
async fn c42_encodings_are_negotiated_and_never_unlisted() {
    let client = shared().client();
    let (url, hash) = launch_url();
    wait_for_variants(&client, &url).await;
    let cases = [
        ("zstd, br, gzip", Some("br")),
        ("gzip, deflate, br", Some("br")),
        ("gzip", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("deflate", None),
        ("identity", None),
        ("zstd", None),
    ];
    for (accept, expected) in cases {
        let response = client
            .get(&url)
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let encoding = response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(encoding.as_deref(), expected, "{accept}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let length: usize = response.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = body(response).await;
        assert_eq!(bytes.len(), length);
        let plain = match &encoding {
            Some(encoding) => {
                assert!(bytes.len() < 1_500_000, "compressed");
                assert_eq!(
                    etag,
                    format!(
                        "\"{hash}.{}\"",
                        if encoding == "br" { "br" } else { "gzip" }
                    )
                );
                decode(encoding, &bytes)
            }
            None => bytes,
        };
        assert_eq!(otago_core::asset_hash(&plain), hash, "{accept}");
    }
}

#[tokio::test]
async fn c43_asset_requests_ignore_protocol_headers() {
    let client = shared().client();
    let (url, hash) = launch_url();
    let response = client
        .get(&url)
        .header("accept", "*/*")
        .header("expo-platform", "ios")
        .header("expo-protocol-version", "1")
        .header("expo-api-version", "1")
        .header("expo-updates-environment", "BARE")
        .header("eas-client-id", "abc")
        .header("expo-current-update-id", "not-even-a-uuid")
        .header(
            "expo-requested-update-id",
            "9b1e6f0e-5d2c-4c8e-9a51-6f3f3b9a0c11",
        )
        .header("test-header", "test-header-value")
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(otago_core::asset_hash(&body(response).await), hash);
}

#[tokio::test]
async fn c44_launch_asset_without_patch_support_is_whole() {
    let client = shared().client();
    let (url, hash) = launch_url();
    let current = shared().v1[&Platform::Ios].id.clone();
    let response = client
        .get(&url)
        .header("a-im", "bsdiff")
        .header("expo-current-update-id", current)
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("im").is_none());
    assert_eq!(otago_core::asset_hash(&body(response).await), hash);
}

#[tokio::test]
async fn ranges_give_206_and_416() {
    let client = shared().client();
    let (url, hash) = launch_url();
    let whole = body(client.get(&url).send().await.unwrap()).await;
    let size = whole.len();
    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-10", size - 10, size - 1),
    ];
    for (range, start, end) in cases {
        let response = client
            .get(&url)
            .header("range", range)
            .header("accept-encoding", "br, gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "ranges are of the plain bytes"
        );
        assert_eq!(
            response.headers()["content-range"].to_str().unwrap(),
            format!("bytes {start}-{end}/{size}")
        );
        assert_eq!(body(response).await, whole[start..=end]);
    }
    let response = client
        .get(&url)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(
        response.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{size}")
    );
    // A stale If-Range gets the whole asset.
    let response = client
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", format!("\"{hash}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
}

#[tokio::test]
async fn if_none_match_gives_304() {
    let client = shared().client();
    let (url, hash) = launch_url();
    for tag in [
        format!("\"{hash}\""),
        format!("W/\"{hash}\""),
        format!("\"x\", \"{hash}.br\""),
        "*".to_owned(),
    ] {
        let response = client
            .get(&url)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 304, "{tag}");
        assert!(body(response).await.is_empty());
    }
    let response = client
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let client = shared().client();
    let (url, _) = launch_url();
    let response = client
        .request(Method::HEAD, &url)
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 1_000_000);
    assert!(body(response).await.is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_hashes() {
    let client = shared().client();
    let unknown = otago_core::asset_hash(b"never uploaded");
    let response = client
        .get(format!("{}/assets/{unknown}", shared().url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "asset_not_found");
    let response = client
        .get(format!("{}/assets/short", shared().url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_compressible_asset_is_compressed_once_and_served_per_encoding() {
    let server = Server::start().await;
    let project = server.create_project("text", "production").await;
    let project_ref = project["ref"].as_str().unwrap();
    let text = "export const hello = 'world';\n".repeat(500).into_bytes();
    let hash = otago_core::asset_hash(&text);
    let response = server
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .header("content-type", "application/javascript")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let url = format!("{}/assets/{hash}", server.url);
    wait_for_variants(&server.client, &url).await;
    for (accept, encoding) in [("br", "br"), ("gzip", "gzip")] {
        let response = server
            .client
            .get(&url)
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-encoding"], encoding);
        assert_eq!(decode(encoding, &body(response).await), text);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_asset_uploaded_as_html_is_never_served_as_html() {
    let server = Server::start().await;
    let project = server.create_project("html", "production").await;
    let project_ref = project["ref"].as_str().unwrap();
    let page = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let hash = otago_core::asset_hash(&page);
    let response = server
        .admin(
            Method::PUT,
            &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
        )
        .header("content-type", "text/html; charset=utf-8")
        .body(page.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["content_type"], "application/octet-stream");

    let url = format!("{}/assets/{hash}", server.url);
    for method in [Method::GET, Method::HEAD] {
        let response = server.client.request(method, &url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let response = server
        .client
        .get(&url)
        .header("range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let missing = format!("{}/assets/{}", server.url, "A".repeat(43));
    let response = server.client.get(&missing).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    server.stop().await;
}

#[tokio::test]
async fn an_html_content_type_stored_before_is_not_served() {
    use otago_server::store::AssetRecord;

    let server = Server::start().await;
    let page = b"<svg onload=alert(1)>".to_vec();
    let hash = otago_core::asset_hash(&page);
    let blobs = server.state.blobs();
    let stream = futures_util::stream::iter([Ok(bytes::Bytes::from(page.clone()))]);
    let stored = blobs
        .put(&hash, "application/javascript", 1024, Box::pin(stream))
        .await
        .unwrap();
    let record = AssetRecord {
        hash: hash.clone(),
        key: stored.key,
        size: stored.size,
        content_type: "image/svg+xml".to_owned(),
        encodings: None,
        created_at: otago_core::Timestamp::from_unix_millis(0).unwrap(),
    };
    assert!(server.state.meta().insert_asset(record).await.unwrap());
    let url = format!("{}/assets/{hash}", server.url);
    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(body(response).await, page);
    server.stop().await;
}
