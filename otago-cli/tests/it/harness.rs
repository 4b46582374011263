//! A real otago-server on a loopback port, the real `otago` binary, and checks with openssl.

use std::path::{Path, PathBuf};
use std::process::Command;

use otago_cli::client::{Client, ProtocolRequest, ProtocolResponse};
use otago_core::{Platform, SignatureHeader};
use serde_json::Value;

/// The Expo SDK 56 fixture (read in place, never copied into the project).
pub(crate) const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

/// The id of the update built into the imaginary device's binary.
pub(crate) const EMBEDDED_UPDATE_ID: &str = "6d1d4f7e-2b4a-4c1e-8f00-000000000001";

/// The admin token every test server is started with.
pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghij";

pub(crate) fn fixture(relative: &str) -> PathBuf {
    Path::new(FIXTURE).join(relative)
}

pub(crate) fn fixture_str(relative: &str) -> String {
    fixture(relative).to_string_lossy().into_owned()
}

/// A server running on its own thread and runtime, stopped on drop.
pub(crate) struct TestServer {
    pub(crate) url: String,
    state: otago_server::AppState,
    _data: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub(crate) fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let data_dir = data.path().to_owned();
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let url = format!("http://{}", listener.local_addr().expect("addr"));
                let config = otago_server::ServerConfig::new(&data_dir, &url)
                    .expect("config")
                    .with_admin_token(Some(ADMIN_TOKEN.to_owned()));
                let opened = otago_server::AppState::open(config).await.expect("open");
                url_tx.send((url, opened.state.clone())).expect("send url");
                otago_server::serve(listener, opened.state, async {
                    let _ = shutdown_rx.await;
                })
                .await
                .expect("serve");
            });
        });
        let (url, state) = url_rx.recv().expect("server started");
        Self {
            url,
            state,
            _data: data,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

impl TestServer {
    /// Writes the server's pending counts (adoption, runtime versions) to its store now.
    pub(crate) fn flush(&self) {
        block_on(self.state.flush()).expect("flush");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The result of one run of `otago`.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "otago failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Checks that otago exited with `code`.
    #[track_caller]
    pub(crate) fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "otago exited with {} instead of {code}:\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Variables that must not leak from the test environment into `otago`.
const CLEARED: [&str; 13] = [
    "OTAGO_SERVER_URL",
    "OTAGO_API_KEY",
    "OTAGO_ADMIN_TOKEN",
    "OTAGO_PRIVATE_KEY",
    "OTAGO_LOAD_ENVS",
    "OTAGO_PROJECT",
    "NODE_ENV",
    "EAS_PROFILE",
    "EXPO_NO_DOTENV",
    "EXPO_PUBLIC_API_URL",
    "CI",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Runs the `otago` binary with only the given OTAGO_* variables.
pub(crate) fn otago(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otago"));
    command.args(args).env("NO_COLOR", "1");
    for name in CLEARED {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run otago");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A server with one project and one key.
pub(crate) struct Project {
    pub(crate) server: TestServer,
    pub(crate) reference: String,
    pub(crate) update_url: String,
    pub(crate) key: String,
    pub(crate) key_id: String,
    /// The fixture app's config and files (not its exports), with `updates.url` set to the
    /// project's update URL, as a user configures the app for the project.
    pub(crate) app_dir: tempfile::TempDir,
}

/// A copy of the fixture app without its exports, with `expo.updates.url` set to `update_url`.
pub(crate) fn app_for(update_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(FIXTURE).expect("read fixture") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("dist") || name == "node_modules" {
            continue;
        }
        let target = dir.path().join(&name);
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
    let path = dir.path().join("app.json");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("app.json")).expect("json");
    config["expo"]["updates"]["url"] = Value::String(update_url.to_owned());
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    dir
}

impl Project {
    pub(crate) fn create(app: &str) -> Self {
        let server = TestServer::start();
        let admin = [
            ("OTAGO_SERVER_URL", server.url.as_str()),
            ("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN),
        ];
        let created = otago(
            &[
                "--json",
                "projects",
                "create",
                "--app",
                app,
                "--env",
                "production",
            ],
            &admin,
        )
        .ok()
        .json();
        let reference = created["ref"].as_str().expect("ref").to_owned();
        let update_url = created["update_url"]
            .as_str()
            .expect("update_url")
            .to_owned();
        let key = otago(
            &[
                "--json",
                "keys",
                "create",
                "--project",
                &reference,
                "--name",
                "ci",
            ],
            &admin,
        )
        .ok()
        .json();
        Self {
            app_dir: app_for(&update_url),
            reference,
            update_url,
            key: key["key"].as_str().expect("key").to_owned(),
            key_id: key["id"].as_str().expect("id").to_owned(),
            server,
        }
    }

    /// The app folder configured for this project.
    pub(crate) fn app_dir_str(&self) -> String {
        self.app_dir.path().to_string_lossy().into_owned()
    }

    /// Env with the project's key and the fixture's private key.
    pub(crate) fn key_env(&self) -> Vec<(&str, String)> {
        vec![
            ("OTAGO_SERVER_URL", self.server.url.clone()),
            ("OTAGO_API_KEY", self.key.clone()),
            ("OTAGO_PRIVATE_KEY", fixture_str("keys/private-key.pem")),
        ]
    }

    pub(crate) fn admin_env(&self) -> Vec<(&str, String)> {
        vec![
            ("OTAGO_SERVER_URL", self.server.url.clone()),
            ("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ]
    }

    /// Runs otago with `env`.
    pub(crate) fn run(&self, args: &[&str], env: &[(&str, String)]) -> Run {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        otago(args, &env)
    }

    /// `otago --json deploy` of a fixture export, signed with the fixture key.
    pub(crate) fn deploy(&self, dist: &str, message: &str) -> Run {
        let input = fixture_str(dist);
        self.run(
            &[
                "--json",
                "deploy",
                "--project",
                &self.reference,
                "--input-dir",
                &input,
                "--app-dir",
                &self.app_dir_str(),
                "--message",
                message,
            ],
            &self.key_env(),
        )
    }

    /// How many groups the project has.
    pub(crate) fn group_count(&self) -> usize {
        let list = self
            .run(
                &["--json", "updates", "list", "--project", &self.reference],
                &self.admin_env(),
            )
            .ok()
            .json();
        list["groups"].as_array().expect("groups").len()
    }
}

pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Asks the protocol endpoint as an app configured with the fixture's signing metadata would.
pub(crate) fn fetch_update(
    update_url: &str,
    platform: Platform,
    runtime_version: &str,
) -> ProtocolResponse {
    block_on(async {
        Client::new("http://unused", None)
            .expect("client")
            .fetch_manifest(
                update_url,
                &ProtocolRequest {
                    platform,
                    runtime_version,
                    expect_signature_keyid: Some("main"),
                    client_id: Some("0b5f2a52-0d2c-4a8e-9a51-8a7a3c1e2f10"),
                    current_update_id: None,
                    embedded_update_id: Some(EMBEDDED_UPDATE_ID),
                },
            )
            .await
            .expect("fetch")
    })
}

/// The multipart parts of a 200 answer.
#[track_caller]
pub(crate) fn parts(response: &ProtocolResponse) -> Vec<Part> {
    assert_eq!(
        response.status,
        200,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    split_multipart(
        response.header("content-type").expect("content-type"),
        &response.body,
    )
    .expect("multipart")
}

/// Checks an `expo-signature` over `body` with the openssl CLI against the fixture's certificate.
#[track_caller]
pub(crate) fn assert_signed_by_fixture(part: &Part) {
    let header = part.header("expo-signature").expect("the part is signed");
    let header = SignatureHeader::parse(header).expect("signature header");
    assert_eq!(header.keyid(), "main");
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("body");
    let signature = dir.path().join("sig");
    let public_key = dir.path().join("pub.pem");
    std::fs::write(&body, &part.body).expect("write body");
    std::fs::write(&signature, header.signature().as_bytes()).expect("write sig");
    let extracted = Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(fixture("certs/certificate.pem"))
        .output()
        .expect("openssl x509");
    assert!(extracted.status.success());
    std::fs::write(&public_key, &extracted.stdout).expect("write pub");
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public_key)
        .arg("-signature")
        .arg(&signature)
        .arg(&body)
        .output()
        .expect("openssl dgst");
    assert!(
        verified.status.success(),
        "openssl refused the signature: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Downloads a URL.
pub(crate) fn download(url: &str) -> Vec<u8> {
    block_on(async {
        let response = reqwest::get(url).await.expect("GET");
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.bytes().await.expect("body").to_vec()
    })
}

/// Asserts that `value` is an object holding at least `keys`.
#[track_caller]
pub(crate) fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    for key in keys {
        assert!(object.contains_key(*key), "missing `{key}` in {value:#}");
    }
}

/// Copies a folder recursively, making the copies writable.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
            let mut permissions = std::fs::metadata(&target).expect("meta").permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            std::fs::set_permissions(&target, permissions).expect("chmod");
        }
    }
}

/// One part of a `multipart/mixed` protocol answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The `name` of its `content-disposition`, e.g. `manifest`.
    pub(crate) name: String,
    /// Its headers, names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    /// Its body bytes.
    pub(crate) body: Vec<u8>,
}

impl Part {
    /// A part header's value.
    #[must_use]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a `multipart/mixed` body (CRLF framing, as the protocol sends it) into parts.
///
/// Test-only: the CLI itself never reads multipart answers.
pub(crate) fn split_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let bad = |reason: &str| reason.to_owned();
    let boundary = content_type
        .split(';')
        .filter_map(|param| param.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(|| bad("multipart answer without a boundary"))?;
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let positions: Vec<usize> = find_all(text, delimiter.as_bytes());
    if positions.is_empty() {
        return Err(bad("multipart answer without a delimiter"));
    }
    for window in positions.windows(2) {
        let start = window[0] + delimiter.len();
        let end = window[1];
        let chunk = &text[start..end];
        let chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix(b"\r\n").unwrap_or(chunk);
        let split = find_all(chunk, b"\r\n\r\n")
            .first()
            .copied()
            .ok_or_else(|| bad("multipart part without a blank line after its headers"))?;
        let header_text = String::from_utf8_lossy(&chunk[..split]);
        let headers: Vec<(String, String)> = header_text
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let name = headers
            .iter()
            .find(|(n, _)| n == "content-disposition")
            .and_then(|(_, v)| {
                v.split(';')
                    .filter_map(|p| p.trim().strip_prefix("name="))
                    .next()
                    .map(|n| n.trim_matches('"').to_owned())
            })
            .unwrap_or_default();
        parts.push(Part {
            name,
            headers,
            body: chunk[split + 4..].to_vec(),
        });
    }
    Ok(parts)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len())
        .filter(|&i| &haystack[i..i + needle.len()] == needle)
        .collect()
}

#[test]
fn multipart_bodies_split_into_named_parts() {
    let body = b"--B\r\ncontent-disposition: inline; name=\"manifest\"\r\ncontent-type: application/json\r\nexpo-signature: sig=\"x\"\r\n\r\n{\"id\":1}\r\n--B\r\ncontent-disposition: inline; name=\"extensions\"\r\n\r\n{}\r\n--B--\r\n";
    let parts = split_multipart("multipart/mixed; boundary=B", body).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].name, "manifest");
    assert_eq!(parts[0].body, b"{\"id\":1}");
    assert_eq!(parts[0].header("Expo-Signature"), Some("sig=\"x\""));
    assert_eq!(parts[1].name, "extensions");
    assert!(
        split_multipart("multipart/mixed; boundary=B", b"")
            .unwrap()
            .is_empty()
    );
}
