//! `kill -9` during an upload and during a publish: after a restart the previous update is
//! still served, `otago-server check` passes, and the publish succeeds when retried. Then the
//! same with replicas of the real binary on PostgreSQL and a bucket: the retry goes through
//! another replica, which serves it.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use otago_core::Platform;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::harness::{
    ADMIN, RUNTIME, Running, as_refs, build_signed, certificate_pem, client_headers, export,
    fresh_bucket_url, fresh_database, now_ms, publish_body,
};

/// Where a replica's metadata and assets live: `OTAGO_DATABASE_URL` and `OTAGO_STORAGE_URL`
/// (none: SQLite and the data folder).
type Stores = [(&'static str, String)];

/// The real binary on a free port over `dir`; returns the process and its base URL.
fn spawn(dir: &Path) -> (Running, String) {
    spawn_on(dir, &[])
}

/// [`spawn`] on `stores`.
fn spawn_on(dir: &Path, stores: &Stores) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otago-server"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn", "--data-dir"])
        .arg(dir)
        .env("OTAGO_ADMIN_TOKEN", ADMIN)
        .env_remove("OTAGO_PUBLIC_URL")
        .envs(stores.iter().map(|(name, value)| (*name, value.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .map(Result::unwrap)
        .find_map(|line| {
            line.strip_prefix("otago-server listening on ")
                .map(|rest| rest.split(' ').next().unwrap().to_owned())
        })
        .expect("the server says where it listens");
    std::thread::spawn(move || lines.for_each(drop));
    (Running(child), base)
}

fn check(dir: &Path) -> (bool, String) {
    check_on(dir, &[])
}

/// `otago-server check` of `stores`.
fn check_on(dir: &Path, stores: &Stores) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_otago-server"))
        .arg("check")
        .arg("--data-dir")
        .arg(dir)
        .envs(stores.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
    }

    async fn served_ios_id(&self, project_ref: &str) -> String {
        let mut request = self
            .http
            .get(format!("{}/manifest/{project_ref}", self.base));
        for (name, value) in as_refs(&client_headers("ios")) {
            request = request.header(name, value);
        }
        let text = request.send().await.unwrap().text().await.unwrap();
        let start = text.find("{\"id\":\"").unwrap() + 7;
        text[start..start + 36].to_owned()
    }

    async fn upload(&self, project_ref: &str, files: &[(String, String, Vec<u8>)]) {
        for (hash, content_type, bytes) in files {
            let response = self
                .admin(
                    Method::PUT,
                    &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
                )
                .header("content-type", content_type)
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    }

    async fn group_count(&self, project_ref: &str) -> usize {
        let groups: Value = self
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
        groups["groups"].as_array().unwrap().len()
    }
}

impl Client {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// A signing project with exports/v1 published; its ref and the iOS update id.
    async fn project_with_v1(&self, app: &str) -> (String, String) {
        let project: Value = self
            .admin(Method::POST, "/api/v1/projects")
            .json(&json!({"app": app, "environment": "production"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let project_ref = project["ref"].as_str().unwrap().to_owned();
        let patch = json!({"require_signing": true, "certificate_pem": certificate_pem()});
        let response = self
            .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        self.upload(&project_ref, &files_of("exports/v1")).await;
        let built = build_signed(
            export("exports/v1"),
            &format!("{}/assets", self.base),
            now_ms() - 60_000,
        );
        let response = self
            .publish(&project_ref, &publish_body(RUNTIME, &built, None))
            .await;
        assert_eq!(response.status(), 201);
        (project_ref, built[&Platform::Ios].id.clone())
    }

    async fn publish(&self, project_ref: &str, body: &Value) -> reqwest::Response {
        self.admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/groups"),
        )
        .json(body)
        .send()
        .await
        .unwrap()
    }

    /// Sends the head and the first half of an upload of `bytes` as `hash`, and waits a little
    /// (for the server to be busy storing it).
    async fn half_an_upload(&self, project_ref: &str, hash: &str, bytes: &[u8]) {
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PUT /api/v1/projects/{project_ref}/assets/{hash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/javascript\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Sends a whole publish request without waiting for the answer (for a kill right after).
    async fn publish_unanswered(&self, project_ref: &str, body: &Value) {
        let body = serde_json::to_vec(body).unwrap();
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/v1/projects/{project_ref}/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn files_of(dist: &str) -> Vec<(String, String, Vec<u8>)> {
    let mut files = Vec::new();
    for platform in &export(dist).platforms {
        for file in platform.described.files() {
            let d = &file.description;
            files.push((
                d.hash.clone(),
                d.content_type.clone(),
                platform.files[file.path.as_str()].clone(),
            ));
        }
    }
    files
}

#[test]
fn crash_during_upload_and_publish_keeps_the_store_consistent() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // A project with exports/v1 published.
    let (mut child, base) = spawn(dir.path());
    let client = Client::new(&base);
    let (project_ref, v1_id) = runtime.block_on(client.project_with_v1("crash"));

    // kill -9 halfway through uploading the v2 bundle.
    let (hash, _, bundle) = files_of("exports/v2").into_iter().next().unwrap();
    runtime.block_on(client.half_an_upload(&project_ref, &hash, &bundle));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (ok, report) = check(dir.path());
    assert!(ok, "{report}");

    let (mut child, base) = spawn(dir.path());
    let client = Client::new(&base);
    runtime.block_on(async {
        let response = client
            .http
            .get(format!("{base}/assets/{hash}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "no half asset");
        assert_eq!(
            client.served_ios_id(&project_ref).await,
            v1_id,
            "v1 is still served"
        );
        let leftovers = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("upload-")
            })
            .count();
        assert_eq!(
            leftovers, 0,
            "the killed upload's temp file is cleared at start"
        );
        // Upload v2 for real, then kill -9 right after sending the publish.
        client.upload(&project_ref, &files_of("exports/v2")).await;
        let built = build_signed(
            export("exports/v2"),
            &format!("{base}/assets"),
            now_ms() - 30_000,
        );
        client
            .publish_unanswered(&project_ref, &publish_body(RUNTIME, &built, None))
            .await;
    });
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (ok, report) = check(dir.path());
    assert!(ok, "{report}");

    // After the restart the store is all-or-nothing, and publishing again (new ids, as the CLI
    // builds them) succeeds.
    let (mut child, base) = spawn(dir.path());
    let client = Client::new(&base);
    runtime.block_on(async {
        let groups = client.group_count(&project_ref).await;
        assert!(groups == 1 || groups == 2, "{groups}");
        let served = client.served_ios_id(&project_ref).await;
        if groups == 1 {
            assert_eq!(served, v1_id);
        } else {
            assert_ne!(served, v1_id);
        }
        let retry = build_signed(export("exports/v2"), &format!("{base}/assets"), now_ms());
        let response = client
            .publish(&project_ref, &publish_body(RUNTIME, &retry, None))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        assert_eq!(
            client.served_ios_id(&project_ref).await,
            retry[&Platform::Ios].id
        );
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    assert!(child.0.wait().unwrap().success());
    let (ok, report) = check(dir.path());
    assert!(ok, "{report}");
}

#[test]
fn a_replica_killed_mid_upload_or_mid_publish_loses_nothing_and_another_takes_the_retry() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stores: Vec<(&'static str, String)> = vec![
        ("OTAGO_DATABASE_URL", runtime.block_on(fresh_database())),
        ("OTAGO_STORAGE_URL", fresh_bucket_url().1),
    ];
    let dirs = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mut a, a_base) = spawn_on(&dirs.path().join("a"), &stores);
    let (_b, b_base) = spawn_on(&dirs.path().join("b"), &stores);
    let (a_client, b_client) = (Client::new(&a_base), Client::new(&b_base));
    let (project_ref, v1_id) = runtime.block_on(a_client.project_with_v1("replica-crash"));

    // kill -9 replica A halfway through an upload: nothing of it is visible, and the upload
    // retried through B succeeds.
    let (hash, _, bundle) = files_of("exports/v2").into_iter().next().unwrap();
    runtime.block_on(a_client.half_an_upload(&project_ref, &hash, &bundle));
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let (ok, report) = check_on(&dirs.path().join("a"), &stores);
    assert!(ok, "{report}");
    runtime.block_on(async {
        let response = b_client
            .http
            .get(format!("{b_base}/assets/{hash}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "no half asset");
        assert_eq!(b_client.served_ios_id(&project_ref).await, v1_id);
        b_client.upload(&project_ref, &files_of("exports/v2")).await;
    });

    // A new replica C, killed right after it is sent a publish: B serves either the old
    // release or the whole new one, and the deploy retried through B succeeds.
    let (mut c, c_base) = spawn_on(&dirs.path().join("c"), &stores);
    let c_client = Client::new(&c_base);
    runtime.block_on(async {
        let built = build_signed(
            export("exports/v2"),
            &format!("{c_base}/assets"),
            now_ms() - 30_000,
        );
        c_client
            .publish_unanswered(&project_ref, &publish_body(RUNTIME, &built, None))
            .await;
    });
    c.0.kill().unwrap();
    c.0.wait().unwrap();
    let (ok, report) = check_on(&dirs.path().join("c"), &stores);
    assert!(ok, "{report}");
    runtime.block_on(async {
        let groups = b_client.group_count(&project_ref).await;
        assert!(groups == 1 || groups == 2, "{groups}");
        let retry = build_signed(export("exports/v2"), &format!("{b_base}/assets"), now_ms());
        let response = b_client
            .publish(&project_ref, &publish_body(RUNTIME, &retry, None))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        assert_eq!(
            b_client.served_ios_id(&project_ref).await,
            retry[&Platform::Ios].id
        );
        assert_eq!(b_client.group_count(&project_ref).await, groups + 1);
    });
    let (ok, report) = check_on(&dirs.path().join("b"), &stores);
    assert!(ok, "{report}");
}
