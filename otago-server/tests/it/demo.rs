//! Demo mode and the real binary: `--demo` publishes the example app and serves it; `check`
//! passes on a good store and names a damaged asset.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{EXAMPLE_APP, FIXTURE, Server, body, parse_multipart};

/// Runs a curl-like request from the demo's printed command.
fn headers_of(curl: &str) -> Vec<(String, String)> {
    curl.split("-H '")
        .skip(1)
        .map(|h| {
            let h = h.split('\'').next().unwrap();
            let (name, value) = h.split_once(": ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

async fn demo_serves(server: &Server, app_dir: &Path) {
    let outcome = otago_server::run_demo(&server.state, app_dir)
        .await
        .unwrap();
    assert!(outcome.published);
    let again = otago_server::run_demo(&server.state, app_dir)
        .await
        .unwrap();
    assert!(!again.published, "a second start publishes nothing");
    assert_eq!(again.project_ref, outcome.project_ref);
    let url = format!("{}/manifest/{}", server.url, outcome.project_ref);
    assert!(outcome.curl.contains(&url), "{}", outcome.curl);
    let mut request = server.client.get(&url);
    for (name, value) in headers_of(&outcome.curl) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, parts) = parse_multipart(&content_type, &body(response).await);
    let manifest = &parts[0];
    let signature = manifest.header("expo-signature").unwrap();
    assert!(crate::harness::openssl_verify(
        &manifest.body,
        signature,
        &app_dir.join("certs/certificate.pem")
    ));
    let json: Value = manifest.json();
    let launch = json["launchAsset"]["url"].as_str().unwrap();
    let bundle = body(server.client.get(launch).send().await.unwrap()).await;
    assert_eq!(
        otago_core::asset_hash(&bundle),
        json["launchAsset"]["hash"].as_str().unwrap()
    );
    let project: Value = server
        .admin(
            Method::GET,
            &format!("/api/v1/projects/{}", outcome.project_ref),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (project["app"].as_str(), project["environment"].as_str()),
        (Some("example"), Some("production"))
    );
    assert_eq!(project["require_signing"], true);
}

#[tokio::test]
async fn demo_mode_publishes_the_example_app_and_serves_it() {
    let server = Server::start().await;
    demo_serves(&server, Path::new(EXAMPLE_APP)).await;
    server.stop().await;
}

#[tokio::test]
async fn demo_mode_works_on_the_fixture_layout() {
    let server = Server::start().await;
    demo_serves(&server, Path::new(FIXTURE)).await;
    server.stop().await;
}

#[test]
fn binary_demo_serves_and_check_passes_then_finds_damage() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_otago-server"))
        .args([
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("OTAGO_ADMIN_TOKEN")
        .env_remove("OTAGO_PUBLIC_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut child = crate::harness::Running(child);
    let mut printed = String::new();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("otago-server listening on ") {
            base = Some(rest.split(' ').next().unwrap().to_owned());
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("no listening line in:\n{printed}"));
    assert!(
        printed.contains("export OTAGO_ADMIN_TOKEN=otago_admin_"),
        "{printed}"
    );
    assert!(printed.contains("curl -sS -i"), "{printed}");
    let curl = &printed[printed.find("curl").unwrap()..];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let url = curl.split_whitespace().nth(3).unwrap().to_owned();
        assert!(url.starts_with(&base), "{url} vs {base}");
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers_of(curl) {
            request = request.header(name, value);
        }
        let health = reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(health, "{\"status\":\"ok\"}");
        request.send().await.unwrap().status()
    });
    assert_eq!(status, 200);
    // SIGTERM: graceful stop with exit code 0.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.0.wait().unwrap().success());

    let check = |dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_otago-server"))
            .arg("check")
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap()
    };
    let ok = check(dir.path());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // Damage one stored asset: the check names it and fails.
    let shard = std::fs::read_dir(dir.path().join("assets"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_none())
        .unwrap();
    std::fs::write(&file, b"tampered").unwrap();
    let bad = check(dir.path());
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(
        stdout.contains(file.file_name().unwrap().to_str().unwrap()),
        "{stdout}"
    );
}
