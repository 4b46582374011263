//! Demo mode and the real binary: `--demo` publishes the example app and serves it; `check`
//! passes on a good store and names a damaged asset.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{FIXTURE, Server, body, parse_multipart};

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

/// Runs the demo on `app_dir`, checks the signed answer, and returns the platform its curl
/// command asks as and the launch asset's bytes.
async fn demo_serves(server: &Server, app_dir: &Path) -> (String, Vec<u8>) {
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
    let headers = headers_of(&outcome.curl);
    let platform = headers
        .iter()
        .find(|(name, _)| name == "expo-platform")
        .map(|(_, value)| value.clone())
        .unwrap();
    for (name, value) in headers {
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
    (platform, bundle)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The launch asset of `platform` in the fixture's export `name`.
fn fixture_bundle(name: &str, platform: &str) -> Vec<u8> {
    let dir = Path::new(FIXTURE).join(name);
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    let bundle = metadata["fileMetadata"][platform]["bundle"]
        .as_str()
        .unwrap();
    std::fs::read(dir.join(bundle)).unwrap()
}

#[tokio::test]
async fn demo_mode_publishes_the_example_app_and_serves_it() {
    let server = Server::start().await;
    let (platform, bundle) = demo_serves(&server, Path::new(FIXTURE)).await;
    server.stop().await;
    assert_eq!(bundle, fixture_bundle("exports/v1", &platform));
}

/// An app folder as `npx expo export` leaves it: the export in `dist/`, no `exports/`.
#[tokio::test]
async fn demo_mode_works_on_an_app_with_dist() {
    let app = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for file in ["app.json", "expo-config.public.json"] {
        std::fs::copy(Path::new(FIXTURE).join(file), app.path().join(file)).unwrap();
    }
    for dir in ["keys", "certs"] {
        copy_dir(&Path::new(FIXTURE).join(dir), &app.path().join(dir));
    }
    copy_dir(
        &Path::new(FIXTURE).join("exports/v2"),
        &app.path().join("dist"),
    );
    let server = Server::start().await;
    let (platform, bundle) = demo_serves(&server, app.path()).await;
    server.stop().await;
    assert_eq!(bundle, fixture_bundle("exports/v2", &platform));
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
