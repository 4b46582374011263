//! Assets served from the edge: a server on PostgreSQL and a real S3-compatible bucket whose
//! manifests point at a real nginx acting as a caching proxy (a CDN) in front of the bucket's
//! anonymous endpoint. Devices get every asset byte for byte from the cache, never through the
//! server, and the second fetch is a hit because the objects carry the headers a cache needs.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otago_core::Platform;
use otago_server::config::DatabaseUrl;
use serde_json::Value;

use crate::harness::{
    RUNTIME, Server, as_refs, body, build_signed, client_headers, export, fresh_bucket,
    fresh_database, now_ms, parse_multipart, publish_body,
};

/// nginx, caching what it proxies; stopped when dropped.
struct CachingProxy {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for CachingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// Starts nginx on a free loopback port, proxying to and caching from `upstream` (an origin,
/// `http://host:port`), honouring the upstream's `cache-control` (no cache rules of its own).
fn caching_proxy(upstream: &str) -> CachingProxy {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = dir.path().display();
    let config = format!(
        "daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    proxy_cache_path {root}/cache levels=1:2 keys_zone=assets:1m max_size=256m inactive=1d use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_cache assets;
            add_header x-cache-status $upstream_cache_status always;
        }}
    }}
}}
"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(nginx())
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx runs (Debian package nginx-light; .ci/run installs it)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    CachingProxy {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

#[tokio::test]
async fn assets_come_byte_for_byte_from_a_caching_proxy_in_front_of_the_bucket() {
    let (storage, public) = fresh_bucket();
    // `public` is `http://host:port/bucket/prefix`: nginx proxies the origin, and the manifests'
    // asset base is the same path on nginx.
    let (origin, path) = public
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(host, path)| (format!("http://{host}"), format!("/{path}")))
        .unwrap();
    let proxy = caching_proxy(&origin);
    let asset_base = format!("{}{path}", proxy.url);
    let database = DatabaseUrl::Postgres(fresh_database().await);
    let server = Server::start_configured(|config| {
        config.database_url = Some(database);
        config.storage_url = Some(storage);
        *config = config.clone().with_asset_base_url(&asset_base).unwrap();
    })
    .await;
    let project_ref = server.signing_project("cdn").await;

    // What `otago deploy` reads from the project: the CDN as the asset base.
    let project: Value = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/projects/{project_ref}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["asset_base_url"], asset_base.as_str());
    // Manifests with asset URLs of another base are refused.
    let export = export("exports/v1");
    server.upload_export(&project_ref, export).await;
    let wrong = build_signed(export, &format!("{}/assets", server.url), now_ms() - 1000);
    let response = server
        .publish(&project_ref, &publish_body(RUNTIME, &wrong, None))
        .await;
    assert_eq!(response.status(), 422, "{}", response.text().await.unwrap());
    let published = server
        .publish_export(&project_ref, export, now_ms() - 500)
        .await
        .manifests;

    // A device fetches the manifest from the server and each asset from the proxy.
    let headers = client_headers("ios");
    let response = server.manifest(&project_ref, &as_refs(&headers)).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    let manifest = parts.iter().find(|p| p.name() == "manifest").unwrap();
    assert_eq!(manifest.body, published[&Platform::Ios].bytes);
    let manifest: Value = serde_json::from_slice(&manifest.body).unwrap();
    let mut assets = vec![manifest["launchAsset"].clone()];
    assets.extend(manifest["assets"].as_array().unwrap().iter().cloned());
    assert!(assets.len() > 1);
    let client = reqwest::Client::new();
    for asset in &assets {
        let url = asset["url"].as_str().unwrap();
        assert!(url.starts_with(&asset_base), "{url}");
        for expected_cache in ["MISS", "HIT"] {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            assert_eq!(
                response.headers()["x-cache-status"],
                expected_cache,
                "{url}"
            );
            assert_eq!(
                response.headers()["content-type"],
                asset["contentType"].as_str().unwrap(),
                "{url}"
            );
            assert_eq!(
                otago_core::asset_hash(&body(response).await),
                asset["hash"].as_str().unwrap(),
                "{url}"
            );
        }
    }
    server.stop().await;
}
