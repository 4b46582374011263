//! A real server on a loopback port, the fixture export, and helpers to talk to both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use otago_core::{
    DescribedPlatform, ExportMetadata, Manifest, ManifestSpec, Platform, PublishedUpdate,
    SignatureHeader, SigningKey, Timestamp, UpdateId, UpdateKind, standby_body,
};
use otago_server::config::{DatabaseUrl, StorageUrl};
use otago_server::{AppState, Clock, ServerConfig};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The test fixture, the example app the demo publishes: two real `expo export`s of it
/// (exports/v1, exports/v2) with TEST keys.
pub(crate) const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");
/// The admin token of every test server.
pub(crate) const ADMIN: &str = "otago_admin_integration_test_token_0123456789";
/// The fixture's runtime version (appVersion policy, version 1.0.0).
pub(crate) const RUNTIME: &str = "1.0.0";
/// The fixture's code signing key id.
pub(crate) const KEYID: &str = "main";
/// What expo-updates 57 sends as `accept`.
pub(crate) const CLIENT_ACCEPT: &str = "multipart/mixed,application/expo+json,application/json";

pub(crate) fn fixture(path: &str) -> PathBuf {
    Path::new(FIXTURE).join(path)
}

pub(crate) fn certificate_pem() -> String {
    std::fs::read_to_string(fixture("certs/certificate.pem")).unwrap()
}

/// A server on 127.0.0.1:0 with its own data folder.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) addr: String,
    pub(crate) state: AppState,
    pub(crate) client: reqwest::Client,
    pub(crate) dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), otago_server::store::StoreError>>>,
}

impl Server {
    pub(crate) async fn start() -> Self {
        Self::start_configured(|_| {}).await
    }

    /// Starts with a configuration changed by `configure`.
    pub(crate) async fn start_configured(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let tempdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let dir = tempdir.path().to_owned();
        let mut server = Self::start_in_configured(&dir, configure).await;
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts on an existing data folder (e.g. to restart on the same data).
    pub(crate) async fn start_in(dir: &Path) -> Self {
        Self::start_in_configured(dir, |_| {}).await
    }

    pub(crate) async fn start_in_configured(
        dir: &Path,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        Self::launch(dir, configure, None).await
    }

    /// Starts with its own data folder and `clock` (tests that move time).
    pub(crate) async fn start_with_clock(
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let tempdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let dir = tempdir.path().to_owned();
        let mut server = Self::launch(&dir, configure, Some(clock)).await;
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts on an existing data folder `dir` with `clock` (tests that move time across a
    /// restart).
    pub(crate) async fn start_in_with_clock(
        dir: &Path,
        configure: impl FnOnce(&mut ServerConfig),
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::launch(dir, configure, Some(clock)).await
    }

    async fn launch(
        dir: &Path,
        configure: impl FnOnce(&mut ServerConfig),
        clock: Option<Arc<dyn Clock>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let url = format!("http://{addr}");
        let mut config = ServerConfig::new(dir, &url)
            .unwrap()
            .with_admin_token(Some(ADMIN.to_owned()));
        config.brotli_max_quality = 5;
        config.shutdown_grace = std::time::Duration::from_secs(5);
        (config.database_url, config.storage_url) = stores_of(dir).await;
        configure(&mut config);
        let clock = clock.unwrap_or_else(|| Arc::new(otago_server::SystemClock));
        let opened = AppState::open_with_clock(config, clock).await.unwrap();
        let state = opened.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(otago_server::serve(listener, opened.state, async move {
            let _ = rx.await;
        }));
        Self {
            url,
            addr,
            state,
            client: reqwest::Client::new(),
            dir: dir.to_owned(),
            _tempdir: None,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops gracefully and waits for the final flush.
    pub(crate) async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self._tempdir.take()
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// A management API request with the admin token.
    pub(crate) fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(ADMIN)
    }

    pub(crate) async fn create_project(&self, app: &str, environment: &str) -> Value {
        let response = self
            .admin(Method::POST, "/api/v1/projects")
            .json(&json!({"app": app, "environment": environment}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// A project that requires manifests signed by the fixture's key.
    pub(crate) async fn signing_project(&self, app: &str) -> String {
        let project = self.create_project(app, "production").await;
        let project_ref = project["ref"].as_str().unwrap().to_owned();
        let response = self
            .admin(Method::PATCH, &format!("/api/v1/projects/{project_ref}"))
            .json(&json!({"require_signing": true, "certificate_pem": certificate_pem()}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        project_ref
    }

    /// Uploads every file of an export that the server lacks.
    pub(crate) async fn upload_export(&self, project_ref: &str, export: &Export) {
        for platform in &export.platforms {
            for file in platform.described.files() {
                let description = &file.description;
                let response = self
                    .admin(
                        Method::PUT,
                        &format!("/api/v1/projects/{project_ref}/assets/{}", description.hash),
                    )
                    .header("content-type", &description.content_type)
                    .body(platform.files[file.path.as_str()].clone())
                    .send()
                    .await
                    .unwrap();
                assert!(
                    response.status() == 201 || response.status() == 200,
                    "{}",
                    response.text().await.unwrap()
                );
            }
        }
    }

    /// Builds, signs, uploads and publishes an export; returns the group and each manifest.
    pub(crate) async fn publish_export(
        &self,
        project_ref: &str,
        export: &Export,
        created_at_ms: i64,
    ) -> Published {
        self.upload_export(project_ref, export).await;
        let base = self.state.config().asset_base_url();
        let built = build_signed(export, &base, created_at_ms);
        let response = self
            .publish(project_ref, &publish_body(RUNTIME, &built, None))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        Published {
            group: response.json().await.unwrap(),
            manifests: built,
        }
    }

    pub(crate) async fn publish(&self, project_ref: &str, body: &Value) -> Response {
        self.admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/groups"),
        )
        .json(body)
        .send()
        .await
        .unwrap()
    }

    /// `GET /manifest/{ref}` with exactly `headers`.
    pub(crate) async fn manifest(&self, project_ref: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.request(Method::GET, &format!("/manifest/{project_ref}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// A published group and the manifests in it.
pub(crate) struct Published {
    pub(crate) group: Value,
    pub(crate) manifests: BTreeMap<Platform, Built>,
}

/// A built manifest: its exact bytes and `expo-signature` value.
#[derive(Clone)]
pub(crate) struct Built {
    pub(crate) bytes: Vec<u8>,
    pub(crate) signature: String,
    pub(crate) id: String,
}

/// The headers expo-updates 57 sends, for `platform`.
pub(crate) fn client_headers(platform: &str) -> Vec<(&'static str, String)> {
    vec![
        ("accept", CLIENT_ACCEPT.to_owned()),
        ("expo-platform", platform.to_owned()),
        ("expo-protocol-version", "1".to_owned()),
        ("expo-api-version", "1".to_owned()),
        ("expo-updates-environment", "BARE".to_owned()),
        ("expo-json-error", "true".to_owned()),
        (
            "eas-client-id",
            "9b1e6f0e-5d2c-4c8e-9a51-6f3f3b9a0c11".to_owned(),
        ),
        ("expo-runtime-version", RUNTIME.to_owned()),
        (
            "expo-expect-signature",
            format!("sig, keyid=\"{KEYID}\", alg=\"rsa-v1_5-sha256\""),
        ),
    ]
}

/// `headers` with `name` set to `value` (or removed for `None`).
pub(crate) fn with(
    mut headers: Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    if let Some(value) = value {
        headers.push((name, value.to_owned()));
    }
    headers
}

pub(crate) fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// One platform of an export, hashed, with its files' bytes.
pub(crate) struct PlatformFiles {
    pub(crate) platform: Platform,
    pub(crate) described: DescribedPlatform,
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

pub(crate) struct Export {
    pub(crate) platforms: Vec<PlatformFiles>,
}

/// Reads `exports/v1` or `exports/v2` of the fixture (cached).
pub(crate) fn export(dist: &str) -> &'static Export {
    static V1: OnceLock<Export> = OnceLock::new();
    static V2: OnceLock<Export> = OnceLock::new();
    let cell = if dist == "exports/v1" { &V1 } else { &V2 };
    cell.get_or_init(|| read_export(&fixture(dist)))
}

pub(crate) fn read_export(dir: &Path) -> Export {
    let metadata =
        ExportMetadata::parse(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    let platforms = metadata
        .platforms
        .iter()
        .map(|(&platform, export)| {
            let mut files = BTreeMap::new();
            let described = DescribedPlatform::describe(platform, export, |path| {
                let bytes = std::fs::read(dir.join(path.as_str())).ok()?;
                files.insert(path.as_str().to_owned(), bytes.clone());
                Some(bytes)
            })
            .unwrap();
            PlatformFiles {
                platform,
                described,
                files,
            }
        })
        .collect();
    Export { platforms }
}

fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pem(&std::fs::read_to_string(fixture("keys/private-key.pem")).unwrap())
            .unwrap()
    })
}

/// The `expo-signature` value of `bytes`, signed with the fixture's key.
pub(crate) fn sign(bytes: &[u8]) -> String {
    SignatureHeader::new(signing_key().sign(bytes), KEYID)
        .unwrap()
        .to_header_value()
}

/// Builds and signs the manifest of every platform of an export, as a deployer would.
pub(crate) fn build_signed(
    export: &Export,
    asset_base_url: &str,
    created_at_ms: i64,
) -> BTreeMap<Platform, Built> {
    build_signed_with(export, asset_base_url, created_at_ms, &BTreeMap::new())
}

/// [`build_signed`] with `metadata` in every manifest.
pub(crate) fn build_signed_with(
    export: &Export,
    asset_base_url: &str,
    created_at_ms: i64,
    metadata: &BTreeMap<String, String>,
) -> BTreeMap<Platform, Built> {
    let expo_client: Value =
        serde_json::from_slice(&std::fs::read(fixture("expo-config.public.json")).unwrap())
            .unwrap();
    export
        .platforms
        .iter()
        .map(|platform| {
            let id = UpdateId::from_random_bytes(rand::random());
            let manifest = Manifest::build(ManifestSpec {
                id,
                created_at: Timestamp::from_unix_millis(created_at_ms).unwrap(),
                runtime_version: RUNTIME.to_owned(),
                launch_asset: platform.described.launch_asset.description.clone(),
                assets: platform
                    .described
                    .assets
                    .iter()
                    .map(|a| a.description.clone())
                    .collect(),
                asset_base_url: asset_base_url.to_owned(),
                metadata: metadata.clone(),
                expo_client: Some(expo_client.clone()),
            })
            .unwrap();
            let bytes = manifest.to_bytes();
            let signature = sign(&bytes);
            (
                platform.platform,
                Built {
                    bytes,
                    signature,
                    id: id.to_string(),
                },
            )
        })
        .collect()
}

/// A publish body for built manifests.
pub(crate) fn publish_body(
    runtime_version: &str,
    built: &BTreeMap<Platform, Built>,
    rollout: Option<u8>,
) -> Value {
    let updates: Vec<Value> = built
        .iter()
        .map(|(platform, built)| {
            json!({
                "platform": platform.as_str(),
                "manifest": String::from_utf8(built.bytes.clone()).unwrap(),
                "signature": built.signature,
            })
        })
        .collect();
    let mut body =
        json!({"runtime_version": runtime_version, "message": "test", "updates": updates});
    if let Some(rollout) = rollout {
        body["rollout_percentage"] = json!(rollout);
    }
    body
}

/// Adds to every entry of a publish body the signed standby revert of a rollout over
/// `controls` (per platform: the control's manifest bytes, or `None` for the embedded update),
/// as `otago deploy` makes it.
pub(crate) fn with_standbys(
    mut body: Value,
    controls: &BTreeMap<Platform, Option<Vec<u8>>>,
) -> Value {
    for entry in body["updates"].as_array_mut().unwrap() {
        let platform: Platform = entry["platform"].as_str().unwrap().parse().unwrap();
        let target = Manifest::parse(entry["manifest"].as_str().unwrap().as_bytes()).unwrap();
        let control = controls[&platform]
            .as_ref()
            .map(|bytes| PublishedUpdate::manifest(bytes.clone(), None).unwrap());
        let id = UpdateId::from_random_bytes(rand::random());
        let (kind, bytes) = standby_body(control.as_ref(), target.created_at, id).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        entry["standby"] = match kind {
            UpdateKind::Manifest => json!({"manifest": text, "signature": sign(&bytes)}),
            UpdateKind::RollBackToEmbedded => json!({"directive": text, "signature": sign(&bytes)}),
        };
    }
    body
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A part of a multipart body.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Part {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn headers_named(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub(crate) fn name(&self) -> String {
        let disposition = self.header("content-disposition").unwrap();
        disposition
            .split("name=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Parses a `multipart/mixed` body strictly as the iOS client does: CRLF framing, first
/// delimiter at the start, a close delimiter with its trailing CRLF.
pub(crate) fn parse_multipart(content_type: &str, body: &[u8]) -> (String, Vec<Part>) {
    assert!(
        content_type.starts_with("multipart/mixed"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary parameter")
        .trim_matches('"')
        .to_owned();
    let open = format!("--{boundary}\r\n");
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.starts_with(open.as_bytes()),
        "body must start with the first delimiter"
    );
    assert!(
        body.ends_with(close.as_bytes()),
        "body must end with the close delimiter and CRLF"
    );
    let inner = &body[open.len()..body.len() - close.len()];
    let separator = format!("\r\n--{boundary}\r\n");
    let mut parts = Vec::new();
    for raw in split(inner, separator.as_bytes()) {
        let head_end = find(raw, b"\r\n\r\n").expect("part headers end with a blank line");
        let head = std::str::from_utf8(&raw[..head_end]).unwrap();
        let headers = head
            .split("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header line");
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        parts.push(Part {
            headers,
            body: raw[head_end + 4..].to_vec(),
        });
    }
    (boundary, parts)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut haystack: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    while let Some(at) = find(haystack, separator) {
        pieces.push(&haystack[..at]);
        haystack = &haystack[at + separator.len()..];
    }
    pieces.push(haystack);
    pieces
}

/// Verifies an `expo-signature` over `data` with the `openssl` command line and the fixture's
/// certificate (or another certificate PEM file).
pub(crate) fn openssl_verify(data: &[u8], signature_header: &str, certificate: &Path) -> bool {
    use base64::Engine as _;
    let sig = signature_header
        .split("sig=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .expect("sig is standard base64 with padding");
    let dir = tempfile::tempdir().unwrap();
    let (data_path, sig_path, key_path) = (
        dir.path().join("data"),
        dir.path().join("sig"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&data_path, data).unwrap();
    std::fs::write(&sig_path, raw).unwrap();
    let pubkey = std::process::Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(certificate)
        .output()
        .expect("the openssl command line is installed");
    assert!(pubkey.status.success());
    std::fs::write(&key_path, pubkey.stdout).unwrap();
    let verify = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&key_path)
        .arg("-signature")
        .arg(&sig_path)
        .arg(&data_path)
        .output()
        .unwrap();
    verify.status.success()
}

/// Sends raw bytes over TCP (so nothing normalises the path or header case) and returns the
/// status, the response head and the body.
pub(crate) async fn raw(addr: &str, request: &[u8]) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    let head_end = find(&response, b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.get(head_end + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

/// A server shared by the read-only protocol tests: project with signing, exports/v1 published,
/// then exports/v2. It runs on its own thread and runtime for the whole test binary.
pub(crate) struct Shared {
    pub(crate) url: String,
    pub(crate) addr: String,
    pub(crate) project_ref: String,
    pub(crate) v1: BTreeMap<Platform, Built>,
    pub(crate) v2: BTreeMap<Platform, Built>,
}

impl Shared {
    pub(crate) fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub(crate) async fn manifest(&self, headers: &[(&'static str, String)]) -> Response {
        let mut request = self
            .client()
            .get(format!("{}/manifest/{}", self.url, self.project_ref));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap()
    }
}

pub(crate) fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                // No bundle patches: a patch made while the tests run would change the
                // answer to a launch-asset request midway (the patch tests run their own).
                let server = Server::start_configured(|config| config.patch_bases = 0).await;
                let project_ref = server.signing_project("shared").await;
                let t = now_ms() - 60_000;
                let v1 = server
                    .publish_export(&project_ref, export("exports/v1"), t)
                    .await
                    .manifests;
                let v2 = server
                    .publish_export(&project_ref, export("exports/v2"), t + 1000)
                    .await
                    .manifests;
                tx.send(Shared {
                    url: server.url.clone(),
                    addr: server.addr.clone(),
                    project_ref,
                    v1,
                    v2,
                })
                .unwrap();
                std::future::pending::<()>().await;
                drop(server);
            });
        });
        rx.recv().unwrap()
    })
}

/// Reads a whole response body.
pub(crate) async fn body(response: Response) -> Vec<u8> {
    response.bytes().await.unwrap().to_vec()
}

/// A server process, killed if a failing test leaves it running.
pub(crate) struct Running(pub(crate) std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh schema of the test database, as a database URL that uses it.
pub(crate) async fn fresh_database() -> String {
    let base = std::env::var("OTAGO_TEST_DATABASE_URL").expect(
        "OTAGO_TEST_DATABASE_URL must name a PostgreSQL database the tests may use (.ci/run sets it)",
    );
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("the test database accepts connections");
    tokio::spawn(connection);
    let schema = format!("otago_test_{}", rand::random::<u64>());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

/// A fresh prefix of the test bucket (`OTAGO_TEST_S3_URL`, an `s3://` storage URL of a real
/// S3-compatible server, set by `.ci/run`): its storage URL (parsed and as text), and the base
/// URL its objects are served at anonymously (`OTAGO_TEST_S3_PUBLIC_URL`, the bucket's public
/// endpoint).
pub(crate) fn fresh_bucket_url() -> (StorageUrl, String, String) {
    let url = std::env::var("OTAGO_TEST_S3_URL").expect(
        "OTAGO_TEST_S3_URL must name a bucket of an S3-compatible server the tests may use (.ci/run starts one and sets it)",
    );
    let public = std::env::var("OTAGO_TEST_S3_PUBLIC_URL").expect(
        "OTAGO_TEST_S3_PUBLIC_URL must be the test bucket's anonymous endpoint (.ci/run sets it)",
    );
    let prefix = format!("test-{:016x}", rand::random::<u64>());
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let text = format!("{}/{prefix}?{query}", base.trim_end_matches('/'));
    let storage = StorageUrl::parse(&text).unwrap();
    let StorageUrl::S3(location) = &storage else {
        panic!("OTAGO_TEST_S3_URL must be an s3:// URL");
    };
    let public = format!("{}/{}", public.trim_end_matches('/'), location.prefix);
    (storage, text, public)
}

/// [`fresh_bucket_url`] without the text.
pub(crate) fn fresh_bucket() -> (StorageUrl, String) {
    let (storage, _, public) = fresh_bucket_url();
    (storage, public)
}

/// The stores of a test server's data folder: none (SQLite and the folder) in the `it` target;
/// in `it_scaled` a fresh schema of the test database and a fresh prefix of the test bucket,
/// written down in the folder so that a restart on it finds the same ones.
pub(crate) async fn stores_of(dir: &Path) -> (Option<DatabaseUrl>, Option<StorageUrl>) {
    if !crate::SCALED_OUT {
        return (None, None);
    }
    let file = dir.join("test-stores.json");
    let (database, storage) = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let stores: Value = serde_json::from_str(&text).unwrap();
            (
                stores["database"].as_str().unwrap().to_owned(),
                stores["storage"].as_str().unwrap().to_owned(),
            )
        }
        Err(_) => {
            let database = fresh_database().await;
            let (_, storage, public) = fresh_bucket_url();
            let stores = json!({ "database": database, "storage": storage, "public": public });
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&file, stores.to_string()).unwrap();
            (database, storage)
        }
    };
    (
        Some(DatabaseUrl::parse(&database).unwrap()),
        Some(StorageUrl::parse(&storage).unwrap()),
    )
}

/// The stored bytes of asset `hash` of a test server's data folder, read behind the server's
/// back (from the folder, or anonymously from the bucket).
pub(crate) async fn stored_bytes(dir: &Path, hash: &str) -> Vec<u8> {
    match public_bucket_of(dir) {
        Some(public) => {
            let response = reqwest::get(format!("{public}/{hash}")).await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap().to_vec()
        }
        None => std::fs::read(dir.join("assets").join(&hash[..2]).join(hash)).unwrap(),
    }
}

/// Replaces the stored bytes of asset `hash` behind the server's back (a bad disk, a bad copy).
pub(crate) async fn overwrite_stored(dir: &Path, hash: &str, bytes: Vec<u8>) {
    match public_bucket_of(dir) {
        Some(public) => {
            let response = reqwest::Client::new()
                .put(format!("{public}/{hash}"))
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        }
        None => std::fs::write(dir.join("assets").join(&hash[..2]).join(hash), bytes).unwrap(),
    }
}

/// The anonymous base URL of the bucket prefix a test data folder uses, if it uses one.
fn public_bucket_of(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("test-stores.json")).ok()?;
    let stores: Value = serde_json::from_str(&text).unwrap();
    Some(stores["public"].as_str().unwrap().to_owned())
}

/// `otago-server check` of a test server's data folder, on its stores.
pub(crate) async fn check(dir: &Path) -> otago_server::CheckReport {
    let (database, storage) = stores_of(dir).await;
    otago_server::check_store(dir, database.as_ref(), storage.as_ref())
        .await
        .unwrap()
}
