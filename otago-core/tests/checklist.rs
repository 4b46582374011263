//! The conformance checklist of `PROTOCOL.md` §12, items C1–C39 (those the core
//! decides), one test each, on manifests built from the real `expo export` fixture and
//! signed with its test key. Multipart bodies are read back with `multer`, signatures are
//! verified with the `openssl` command line.
// Tests read the fixture, write temporary files for openssl and run it: the I/O the core
// itself may not do.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use bytes::Bytes;
use otago_core::{
    AssetRequestHeaders, ChannelRelease, DecisionKind, DescribedPlatform, Directive, Error,
    ExportMetadata, Manifest, ManifestRequest, ManifestSpec, Platform, PreparedUpdates,
    PublishedUpdate, RenderedResponse, SignatureHeader, SigningKey, StoredSignature, Timestamp,
    UpdateId, common_headers, extra_params_header_value, recent_failed_update_ids_header_value,
};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");
const RUNTIME: &str = "1.0.0";
const ASSET_BASE: &str = "https://updates.example.com/assets";
const ACCEPT_ALL: &str = "multipart/mixed,application/expo+json,application/json";
const EXPECT_MAIN: &str = r#"sig, keyid="main", alg="rsa-v1_5-sha256""#;
/// createdAt of exports/v1, exports/v2 and the rollback published after them.
const T1: i64 = 1_767_225_600_000;
const T2: i64 = T1 + 60_000;
const T3: i64 = T2 + 60_000;

// ---------------------------------------------------------------------------------------------
// Fixture: manifests of exports/v1 and exports/v2 for iOS, signed with the fixture's test key.

fn fixture_path(path: &str) -> PathBuf {
    PathBuf::from(format!("{FIXTURE}/{path}"))
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture_path(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pem(&String::from_utf8(read("keys/private-key.pem")).unwrap()).unwrap()
    })
}

fn sign(bytes: &[u8], keyid: &str) -> StoredSignature {
    let header = SignatureHeader::new(key().sign(bytes), keyid).unwrap();
    StoredSignature::parse(&header.to_header_value()).unwrap()
}

fn build_manifest(
    export: &str,
    platform: Platform,
    id_byte: u8,
    created_at: i64,
    metadata: BTreeMap<String, String>,
) -> Manifest {
    let exported = ExportMetadata::parse(&read(&format!("{export}/metadata.json"))).unwrap();
    let described =
        DescribedPlatform::describe(platform, exported.platform(platform).unwrap(), |path| {
            std::fs::read(fixture_path(&format!("{export}/{}", path.as_str()))).ok()
        })
        .unwrap();
    let expo_client: Value = serde_json::from_slice(&read("expo-config.public.json")).unwrap();
    Manifest::build(ManifestSpec {
        id: UpdateId::from_random_bytes([id_byte; 16]),
        created_at: Timestamp::from_unix_millis(created_at).unwrap(),
        runtime_version: RUNTIME.to_owned(),
        launch_asset: described.launch_asset.description,
        assets: described
            .assets
            .into_iter()
            .map(|file| file.description)
            .collect(),
        asset_base_url: ASSET_BASE.to_owned(),
        metadata,
        expo_client: Some(expo_client),
    })
    .unwrap()
}

struct Fixture {
    v1: Manifest,
    v2: Manifest,
    v1_bytes: Vec<u8>,
    v2_bytes: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let v1 = build_manifest("exports/v1", Platform::Ios, 0x11, T1, BTreeMap::new());
        let v2 = build_manifest("exports/v2", Platform::Ios, 0x22, T2, BTreeMap::new());
        let (v1_bytes, v2_bytes) = (v1.to_bytes(), v2.to_bytes());
        Fixture {
            v1,
            v2,
            v1_bytes,
            v2_bytes,
        }
    })
}

fn published(bytes: &[u8], keyid: Option<&str>) -> PublishedUpdate {
    PublishedUpdate::manifest(bytes.to_vec(), keyid.map(|keyid| sign(bytes, keyid))).unwrap()
}

fn rollback(keyid: Option<&str>) -> PublishedUpdate {
    let bytes =
        Directive::roll_back_to_embedded(Timestamp::from_unix_millis(T3).unwrap()).to_bytes();
    let signature = keyid.map(|keyid| sign(&bytes, keyid));
    PublishedUpdate::roll_back_to_embedded(
        UpdateId::from_random_bytes([0x33; 16]),
        bytes,
        signature,
    )
    .unwrap()
}

/// The channel after publishing `updates` in `createdAt` order, each to every device.
fn prepare(mut updates: Vec<PublishedUpdate>) -> PreparedUpdates {
    updates.sort_by_key(|update| update.created_at);
    let release = updates
        .into_iter()
        .fold(ChannelRelease::default(), |release, update| {
            release.publish(update, 100, None).unwrap()
        });
    PreparedUpdates::new(release, &AssetRequestHeaders::new()).unwrap()
}

/// exports/v1 and exports/v2, both signed under `main` (the example app's keyid).
fn v1_and_v2() -> &'static PreparedUpdates {
    static UPDATES: OnceLock<PreparedUpdates> = OnceLock::new();
    UPDATES.get_or_init(|| {
        let f = fixture();
        prepare(vec![
            published(&f.v1_bytes, Some("main")),
            published(&f.v2_bytes, Some("main")),
        ])
    })
}

/// exports/v1, exports/v2 and a later signed rollback.
fn with_rollback() -> &'static PreparedUpdates {
    static UPDATES: OnceLock<PreparedUpdates> = OnceLock::new();
    UPDATES.get_or_init(|| {
        let f = fixture();
        prepare(vec![
            published(&f.v1_bytes, Some("main")),
            published(&f.v2_bytes, Some("main")),
            rollback(Some("main")),
        ])
    })
}

// ---------------------------------------------------------------------------------------------
// Requests: the checklist's default request, with headers replaced or removed.

struct Req {
    method: &'static str,
    headers: Vec<(String, String)>,
}

fn req() -> Req {
    Req {
        method: "GET",
        headers: [
            ("expo-platform", "ios"),
            ("expo-runtime-version", RUNTIME),
            ("expo-protocol-version", "1"),
            ("accept", ACCEPT_ALL),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .to_vec(),
    }
}

impl Req {
    fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn parse(&self) -> Result<ManifestRequest<'static>, Error> {
        ManifestRequest::parse(
            self.method,
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
        )
        .map(ManifestRequest::into_owned)
    }

    fn ask<'a>(&self, updates: &'a PreparedUpdates) -> Result<otago_core::Answer<'a>, Error> {
        updates.answer(&self.parse()?)
    }

    fn response<'a>(&self, updates: &'a PreparedUpdates) -> &'a RenderedResponse {
        self.ask(updates).unwrap().response
    }
}

// ---------------------------------------------------------------------------------------------
// Reading responses back independently: multer for multipart, openssl for signatures.

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory multipart stream never waits"),
    }
}

#[derive(Debug)]
struct Part {
    name: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The `boundary` parameter of a `multipart/mixed` content type (`multer::parse_boundary`
/// insists on `multipart/form-data`, so this reads it by hand).
fn boundary_of(response: &RenderedResponse) -> String {
    let content_type = response.header("content-type").expect("content-type");
    let (media_type, parameters) = content_type.split_once(';').expect("a boundary parameter");
    assert_eq!(media_type.trim(), "multipart/mixed");
    let boundary = parameters
        .trim()
        .strip_prefix("boundary=")
        .expect("boundary=");
    assert!(
        (1..=70).contains(&boundary.len()) && !boundary.contains(['"', ' ', ';']),
        "{boundary}"
    );
    boundary.to_owned()
}

fn parts(response: &RenderedResponse) -> Vec<Part> {
    let chunk = response.body().clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(chunk) });
    let mut multipart = multer::Multipart::new(stream, boundary_of(response));
    block_on(async {
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await.unwrap() {
            let name = field.name().expect("part name").to_owned();
            let headers = field
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            parts.push(Part {
                name,
                headers,
                body: field.bytes().await.unwrap().to_vec(),
            });
        }
        parts
    })
}

fn part<'a>(parts: &'a [Part], name: &str) -> &'a Part {
    parts
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no `{name}` part in {parts:?}"))
}

fn served_manifest(response: &RenderedResponse) -> (Vec<u8>, Value) {
    let parts = parts(response);
    let manifest = part(&parts, "manifest");
    (manifest.body.clone(), manifest.json())
}

fn temp_file(label: &str, bytes: &[u8]) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "otago-checklist-{}-{n}-{label}",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn openssl(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line must be installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// The `sig`, `keyid`, `alg` of an `expo-signature` value, read by hand (not with the crate's parser).
fn signature_members(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .map(|member| {
            let (key, quoted) = member
                .trim()
                .split_once('=')
                .unwrap_or_else(|| panic!("`{member}` is not key=value"));
            let text = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
            (
                key.to_owned(),
                text.unwrap_or_else(|| panic!("`{key}` is not a quoted string in `{value}`"))
                    .to_owned(),
            )
        })
        .collect()
}

/// Verifies `signature_header` over `body` with `openssl dgst -sha256 -verify` and the public
/// key of the fixture certificate.
fn openssl_verifies(body: &[u8], signature_header: &str) -> bool {
    let (ok, public_key) = openssl(&[
        "x509".as_ref(),
        "-pubkey".as_ref(),
        "-noout".as_ref(),
        "-in".as_ref(),
        fixture_path("certs/certificate.pem").as_os_str(),
    ]);
    assert!(ok, "{public_key}");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&signature_members(signature_header)["sig"])
        .unwrap();
    let (key_file, sig_file, body_file) = (
        temp_file("pub.pem", public_key.as_bytes()),
        temp_file("sig.bin", &sig),
        temp_file("body", body),
    );
    let (ok, out) = openssl(&[
        "dgst".as_ref(),
        "-sha256".as_ref(),
        "-verify".as_ref(),
        key_file.as_os_str(),
        "-signature".as_ref(),
        sig_file.as_os_str(),
        body_file.as_os_str(),
    ]);
    for file in [key_file, sig_file, body_file] {
        let _ = std::fs::remove_file(file);
    }
    ok && out.contains("Verified OK")
}

/// Every response the fixture can produce (manifests v0/v1 in all formats, directives, 204).
fn all_responses() -> Vec<(String, RenderedResponse)> {
    let f = fixture();
    let plain = v1_and_v2();
    let rolled = with_rollback();
    let v2_id = f.v2.id.to_string();
    let cases: Vec<(&str, &PreparedUpdates, Req)> = vec![
        ("v1 multipart", plain, req()),
        (
            "v1 expo+json",
            plain,
            req().set("accept", "application/expo+json"),
        ),
        ("v1 json", plain, req().set("accept", "application/json")),
        (
            "v0 multipart",
            plain,
            req().without("expo-protocol-version"),
        ),
        (
            "v0 json",
            plain,
            req()
                .without("expo-protocol-version")
                .set("accept", "application/json"),
        ),
        (
            "v1 signed",
            plain,
            req().set("expo-expect-signature", EXPECT_MAIN),
        ),
        (
            "noUpdateAvailable",
            plain,
            req().set("expo-current-update-id", &v2_id),
        ),
        (
            "noUpdateAvailable 204",
            plain,
            req()
                .set("expo-current-update-id", &v2_id)
                .set("expo-expect-signature", EXPECT_MAIN),
        ),
        (
            "rollback",
            rolled,
            req().set("expo-embedded-update-id", "123"),
        ),
        ("noUpdate 204", rolled, req()),
    ];
    cases
        .into_iter()
        .map(|(label, updates, r)| (label.to_owned(), r.response(updates).clone()))
        .collect()
}

fn is_multipart(response: &RenderedResponse) -> bool {
    response
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("multipart/"))
}

// ---------------------------------------------------------------------------------------------
// Request handling

#[test]
fn c01_non_get_is_405() {
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let err = req().method(method).parse().unwrap_err();
        assert_eq!(err.http_status(), 405, "{method}");
        assert!(err.to_string().contains("GET"), "{err}");
    }
    assert!(req().method("GET").parse().is_ok());
}

#[test]
fn c02_unknown_platform_is_400() {
    for platform in ["web", "IOS", "windows", ""] {
        let err = req().set("expo-platform", platform).parse().unwrap_err();
        assert_eq!(err.http_status(), 400, "{platform:?}");
        assert!(err.to_string().contains("expo-platform"), "{err}");
    }
}

#[test]
fn c03_missing_runtime_is_400_and_unknown_runtime_gets_no_update() {
    let err = req().without("expo-runtime-version").parse().unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("expo-runtime-version"), "{err}");
    // A runtime with no updates: v1 gets a no-update 204, v0 a 404.
    let updates = v1_and_v2();
    let answer = req()
        .set("expo-runtime-version", "999")
        .ask(updates)
        .unwrap();
    assert_eq!(
        (answer.kind, answer.response.status()),
        (DecisionKind::NoUpdate, 204)
    );
    let empty = prepare(Vec::new());
    assert_eq!(req().response(&empty).status(), 204);
    let err = req()
        .without("expo-protocol-version")
        .ask(&empty)
        .unwrap_err();
    assert_eq!(err.http_status(), 404);
}

#[test]
fn c04_unacceptable_accept_is_406() {
    for accept in [
        "text/html",
        "image/*",
        "multipart/mixed;q=0, application/json;q=0, application/expo+json;q=0",
        "*/*;q=0",
    ] {
        let err = req().set("accept", accept).parse().unwrap_err();
        assert_eq!(err.http_status(), 406, "{accept}");
        assert!(err.to_string().contains("accept"), "{err}");
    }
}

#[test]
fn c05_header_names_are_case_insensitive() {
    let canonical = req().parse().unwrap();
    let shouted = Req {
        method: "GET",
        headers: [
            ("Expo-Platform", "ios"),
            ("EXPO-RUNTIME-VERSION", RUNTIME),
            ("Expo-Protocol-Version", "1"),
            ("ACCEPT", ACCEPT_ALL),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .to_vec(),
    };
    assert_eq!(shouted.parse().unwrap(), canonical);
    let r = req()
        .set("Expo-Current-Update-ID", "abc")
        .set("EAS-Client-ID", "x")
        .parse()
        .unwrap();
    assert_eq!(
        (r.current_update_id.as_deref(), r.client_id.as_deref()),
        (Some("abc"), Some("x"))
    );
}

#[test]
fn c06_update_ids_compare_case_insensitively() {
    let updates = v1_and_v2();
    let upper = fixture().v2.id.to_string().to_uppercase();
    assert_eq!(
        req()
            .set("expo-current-update-id", &upper)
            .ask(updates)
            .unwrap()
            .kind,
        DecisionKind::NoUpdateAvailable
    );
    let rolled = with_rollback();
    let embedded = "0A1B2C3D-0000-4000-8000-00000000ABCD";
    let answer = req()
        .set("expo-embedded-update-id", embedded)
        .set("expo-current-update-id", &embedded.to_lowercase())
        .ask(rolled)
        .unwrap();
    assert_eq!(answer.kind, DecisionKind::NoUpdateAvailable);
}

#[test]
fn c07_current_newest_gets_no_update_available_directive() {
    let updates = v1_and_v2();
    let response = req()
        .set("expo-current-update-id", &fixture().v2.id.to_string())
        .response(updates);
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("expo-protocol-version"), Some("1"));
    let parts = parts(response);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].name, "directive");
    assert_eq!(
        parts[0].json(),
        serde_json::json!({"type": "noUpdateAvailable"})
    );
    // Running the older update gets the newest manifest instead.
    let response = req()
        .set("expo-current-update-id", &fixture().v1.id.to_string())
        .response(updates);
    assert_eq!(
        served_manifest(response).1["id"],
        fixture().v2.id.to_string()
    );
}

#[test]
fn c08_no_protocol_header_is_v0_and_always_gets_a_manifest() {
    let updates = v1_and_v2();
    let v0 = req()
        .without("expo-protocol-version")
        .set("expo-current-update-id", &fixture().v2.id.to_string());
    let answer = v0.ask(updates).unwrap();
    assert_eq!(answer.kind, DecisionKind::Manifest);
    assert_eq!(answer.response.status(), 200);
    assert_eq!(answer.response.header("expo-protocol-version"), Some("0"));
    assert_eq!(
        served_manifest(answer.response).1["id"],
        fixture().v2.id.to_string()
    );
    // With a rollback newest, v0 gets an error naming why (406), never a directive or a 204.
    let err = v0
        .set("expo-embedded-update-id", "123")
        .ask(with_rollback())
        .unwrap_err();
    assert_eq!(err, Error::RollbackNeedsProtocolV1);
    assert_eq!(err.http_status(), 406);
}

#[test]
fn c09_newest_created_at_wins_and_selection_inputs_are_parsed() {
    let f = fixture();
    for order in [[&f.v1_bytes, &f.v2_bytes], [&f.v2_bytes, &f.v1_bytes]] {
        let updates = prepare(
            order
                .iter()
                .map(|bytes| published(bytes, Some("main")))
                .collect(),
        );
        assert_eq!(
            served_manifest(req().response(&updates)).1["id"],
            f.v2.id.to_string()
        );
    }
    // The keys a deployment selects on reach the server parsed.
    let r = req()
        .set("expo-channel-name", "production")
        .set("expo-extra-params", r#"cohort="beta""#)
        .parse()
        .unwrap();
    assert_eq!(r.channel_name.as_deref(), Some("production"));
    assert_eq!(r.extra_params["cohort"], "beta");
}

// ---------------------------------------------------------------------------------------------
// Response framing

#[test]
fn c10_protocol_version_is_a_bare_integer_on_every_response() {
    for (label, response) in all_responses() {
        let version = response
            .header("expo-protocol-version")
            .unwrap_or_else(|| panic!("{label}"));
        assert!(version == "0" || version == "1", "{label}: {version}");
        let expected = if label.starts_with("v0") { "0" } else { "1" };
        assert_eq!(version, expected, "{label}");
    }
    assert_eq!(
        common_headers(otago_core::ProtocolVersion::V0)[0],
        ("expo-protocol-version", "0")
    );
}

#[test]
fn c11_sfv_version_and_cache_control_on_every_response() {
    for (label, response) in all_responses() {
        assert_eq!(response.header("expo-sfv-version"), Some("0"), "{label}");
        assert_eq!(
            response.header("cache-control"),
            Some("private, max-age=0"),
            "{label}"
        );
    }
}

#[test]
fn c12_204_has_no_body_no_content_type_and_protocol_1() {
    let responses = all_responses();
    let no_content: Vec<_> = responses
        .iter()
        .filter(|(_, r)| r.status() == 204)
        .collect();
    assert_eq!(no_content.len(), 2);
    for (label, response) in no_content {
        assert!(response.body().is_empty(), "{label}");
        assert_eq!(response.header("content-type"), None, "{label}");
        assert_eq!(
            response.header("expo-protocol-version"),
            Some("1"),
            "{label}"
        );
    }
}

#[test]
fn c13_multipart_framing() {
    for (label, response) in all_responses().into_iter().filter(|(_, r)| is_multipart(r)) {
        let content_type = response.header("content-type").unwrap();
        let boundary = boundary_of(&response);
        assert_eq!(
            content_type,
            format!("multipart/mixed; boundary={boundary}"),
            "{label}"
        );
        let body = response.body();
        assert!(
            body.starts_with(format!("--{boundary}\r\n").as_bytes()),
            "{label}"
        );
        assert!(
            body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()),
            "{label}"
        );
        let parsed = parts(&response);
        // The framing outside the part bodies uses CRLF only.
        let mut framing = body.to_vec();
        for part in &parsed {
            let at = framing
                .windows(part.body.len().max(1))
                .position(|w| w == part.body.as_slice())
                .unwrap();
            framing.drain(at..at + part.body.len());
        }
        for (i, &byte) in framing.iter().enumerate() {
            if byte == b'\n' {
                assert_eq!(
                    framing.get(i.wrapping_sub(1)),
                    Some(&b'\r'),
                    "{label}: bare LF in the framing"
                );
            }
        }
        for part in &parsed {
            let count = |name: &str| {
                part.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .count()
            };
            assert_eq!(count("content-disposition"), 1, "{label}");
            assert_eq!(count("content-type"), 1, "{label}");
            assert_eq!(
                part.header("content-disposition").unwrap(),
                format!("inline; name=\"{}\"", part.name)
            );
            assert_eq!(part.header("content-type"), Some("application/json"));
        }
    }
}

#[test]
fn c14_boundary_never_occurs_in_a_part_body() {
    for (label, response) in all_responses().into_iter().filter(|(_, r)| is_multipart(r)) {
        let boundary = boundary_of(&response);
        for part in parts(&response) {
            assert!(
                !part
                    .body
                    .windows(boundary.len())
                    .any(|w| w == boundary.as_bytes()),
                "{label}"
            );
        }
    }
    // A manifest that contains the boundary it would have had gets another one.
    let first = build_manifest("exports/v1", Platform::Ios, 0x44, T1, BTreeMap::new());
    let boundary = boundary_of(req().response(&prepare(vec![published(&first.to_bytes(), None)])));
    let hostile = build_manifest(
        "exports/v1",
        Platform::Ios,
        0x44,
        T1,
        BTreeMap::from([("note".to_owned(), format!("\r\n--{boundary}--\r\n"))]),
    );
    let updates = prepare(vec![published(&hostile.to_bytes(), None)]);
    let response = req().response(&updates);
    let new_boundary = boundary_of(response);
    assert_ne!(new_boundary, boundary);
    let (body, json) = served_manifest(response);
    assert_eq!(body, hostile.to_bytes());
    assert!(
        json["metadata"]["note"]
            .as_str()
            .unwrap()
            .contains(&boundary)
    );
}

#[test]
fn c15_directive_responses_have_no_manifest_part() {
    let mut with_directive = Vec::new();
    for (label, response) in all_responses().into_iter().filter(|(_, r)| is_multipart(r)) {
        let names: Vec<String> = parts(&response).into_iter().map(|p| p.name).collect();
        if names.iter().any(|n| n == "directive") {
            assert_eq!(names, ["directive"], "{label}");
            with_directive.push(label);
        }
    }
    // The two directive answers of the checklist's cases, and no other.
    assert_eq!(with_directive, ["noUpdateAvailable", "rollback"]);
}

#[test]
fn c16_directive_types_are_only_the_two_clients_know() {
    let mut seen = Vec::new();
    for (_, response) in all_responses().into_iter().filter(|(_, r)| is_multipart(r)) {
        for directive in parts(&response)
            .into_iter()
            .filter(|p| p.name == "directive")
        {
            let kind = directive.json()["type"].as_str().unwrap().to_owned();
            assert!(
                kind == "noUpdateAvailable" || kind == "rollBackToEmbedded",
                "{kind}"
            );
            seen.push(kind);
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["noUpdateAvailable", "rollBackToEmbedded"]);
}

fn is_protocol_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[test]
fn c17_rollback_commit_time_is_formatted_and_later() {
    let response = req()
        .set("expo-embedded-update-id", "123")
        .response(with_rollback());
    let directive = part(&parts(response), "directive").json();
    assert_eq!(directive["type"], "rollBackToEmbedded");
    let commit_time = directive["parameters"]["commitTime"].as_str().unwrap();
    assert!(is_protocol_date(commit_time), "{commit_time}");
    let superseded = fixture().v2.created_at.to_string();
    assert!(
        commit_time > superseded.as_str(),
        "{commit_time} must be after {superseded}"
    );
    // A rollback not later than the manifest it would supersede is refused at publish time.
    let tied = Directive::roll_back_to_embedded(fixture().v2.created_at).to_bytes();
    let tied =
        PublishedUpdate::roll_back_to_embedded(UpdateId::from_random_bytes([0x55; 16]), tied, None)
            .unwrap();
    let err = ChannelRelease::from(published(&fixture().v2_bytes, None))
        .publish(tied, 100, None)
        .unwrap_err();
    assert!(err.to_string().contains("not newer"), "{err}");
}

#[test]
fn c18_rollback_only_to_v1_with_an_embedded_id() {
    let updates = with_rollback();
    assert_eq!(
        req()
            .without("expo-protocol-version")
            .set("expo-embedded-update-id", "123")
            .ask(updates)
            .unwrap_err()
            .http_status(),
        406
    );
    let answer = req().ask(updates).unwrap();
    assert_eq!(
        (answer.kind, answer.response.status()),
        (DecisionKind::NoUpdate, 204)
    );
    let answer = req()
        .set("expo-embedded-update-id", "123")
        .ask(updates)
        .unwrap();
    assert_eq!(answer.kind, DecisionKind::RollBackToEmbedded);
    let answer = req()
        .set("expo-embedded-update-id", "123")
        .set("expo-current-update-id", "123")
        .ask(updates)
        .unwrap();
    assert_eq!(answer.kind, DecisionKind::NoUpdateAvailable);
}

#[test]
fn c19_single_json_bodies_are_for_manifests_only() {
    for accept in ["application/json", "application/expo+json"] {
        let response = req().set("accept", accept).response(v1_and_v2());
        assert_eq!(response.header("content-type"), Some(accept));
        assert_eq!(response.body().as_ref(), fixture().v2_bytes.as_slice());
        let err = req()
            .set("accept", accept)
            .set("expo-embedded-update-id", "123")
            .ask(with_rollback())
            .unwrap_err();
        assert_eq!(err.http_status(), 406, "{err}");
        assert_eq!(err, Error::DirectiveNeedsMultipart);
    }
}

// ---------------------------------------------------------------------------------------------
// Manifest content (of the manifest as served)

fn served() -> Value {
    served_manifest(req().response(v1_and_v2())).1
}

/// The ids of v1 and v2 as canonical lowercase UUIDs, computed independently of the code under
/// test: `python3 -c "import uuid; print(uuid.UUID(bytes=bytes([0x11] * 16), version=4))"`
/// (and `[0x22] * 16`); version 4 sets the 13th digit to 4 and the variant bits of the 17th.
const V1_ID: &str = "11111111-1111-4111-9111-111111111111";
const V2_ID: &str = "22222222-2222-4222-a222-222222222222";

#[test]
fn c20_id_is_a_stable_canonical_lowercase_uuid() {
    let f = fixture();
    // Every rendering of the newest update, each from updates prepared afresh (not the
    // cached ones), carries v2's id, as a canonical lowercase UUID in the bytes themselves.
    for accept in [ACCEPT_ALL, "application/expo+json", "application/json"] {
        for protocol in [Some("1"), None] {
            let updates = prepare(vec![
                published(&f.v1_bytes, Some("main")),
                published(&f.v2_bytes, Some("main")),
            ]);
            let mut request = req().set("accept", accept);
            if protocol.is_none() {
                request = request.without("expo-protocol-version");
            }
            let response = request.response(&updates);
            let (bytes, manifest) = if accept == ACCEPT_ALL {
                served_manifest(response)
            } else {
                let body = response.body().to_vec();
                let json = serde_json::from_slice(&body).unwrap();
                (body, json)
            };
            let label = format!("{accept} protocol {protocol:?}");
            assert_eq!(manifest["id"], V2_ID, "{label}");
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.contains(&format!("\"id\":\"{V2_ID}\"")),
                "{label}: {text}"
            );
        }
    }
    // With v1 alone, v1's id: the id follows the update, not the rendering.
    let only_v1 = prepare(vec![published(&f.v1_bytes, Some("main"))]);
    assert_eq!(served_manifest(req().response(&only_v1)).1["id"], V1_ID);
    // An id in capitals reads back as the same, lowercase id.
    let upper: UpdateId = V2_ID.to_uppercase().parse().unwrap();
    assert_eq!(upper, f.v2.id);
    assert_eq!(upper.to_string(), V2_ID);
    // Never reused for different content: v2's bytes under v1's id are refused next to v1.
    let v2_as_v1 = build_manifest("exports/v2", Platform::Ios, 0x11, T1, BTreeMap::new());
    assert_eq!(v2_as_v1.id.to_string(), V1_ID);
    assert_ne!(v2_as_v1.to_bytes(), f.v1_bytes);
    let reused = ChannelRelease::default()
        .publish(published(&f.v1_bytes, Some("main")), 100, None)
        .and_then(|release| {
            release.publish(published(&v2_as_v1.to_bytes(), Some("main")), 100, None)
        })
        .and_then(|release| PreparedUpdates::new(release, &AssetRequestHeaders::new()));
    assert!(
        reused.is_err(),
        "an id reused for other bytes must be refused"
    );
}

#[test]
fn c21_created_at_has_three_fraction_digits_and_z() {
    let created_at = served()["createdAt"].as_str().unwrap().to_owned();
    assert!(is_protocol_date(&created_at), "{created_at}");
    assert_eq!(created_at, "2026-01-01T00:01:00.000Z");
}

#[test]
fn c22_runtime_version_equals_the_request_header() {
    assert_eq!(
        served()["runtimeVersion"].as_str().unwrap().as_bytes(),
        RUNTIME.as_bytes()
    );
    let other = req()
        .set("expo-runtime-version", "1.2.4")
        .ask(v1_and_v2())
        .unwrap();
    assert_eq!(
        other.kind,
        DecisionKind::NoUpdate,
        "another runtime never gets these manifests"
    );
}

#[test]
fn c23_launch_asset_has_key_url_hash_content_type_and_no_extension() {
    let launch = &served()["launchAsset"];
    for field in ["key", "url", "hash", "contentType"] {
        assert!(
            launch[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    assert!(launch["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(launch["contentType"], "application/javascript");
    assert!(launch.get("fileExtension").is_none());
}

#[test]
fn c24_every_asset_has_key_dotted_extension_url_content_type_and_hash() {
    let manifest = served();
    let assets = manifest["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 3);
    for asset in assets {
        for field in ["key", "fileExtension", "url", "contentType", "hash"] {
            assert!(
                asset[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} in {asset}"
            );
        }
        assert!(asset["fileExtension"].as_str().unwrap().starts_with('.'));
        assert!(asset["url"].as_str().unwrap().starts_with("https://"));
    }
}

#[test]
fn c25_asset_file_names_are_safe() {
    let manifest = served();
    let assets =
        std::iter::once(&manifest["launchAsset"]).chain(manifest["assets"].as_array().unwrap());
    for asset in assets {
        let name = format!(
            "{}{}",
            asset["key"].as_str().unwrap(),
            asset["fileExtension"].as_str().unwrap_or_default()
        );
        assert!(
            !name.contains(['/', '\\', '\0']) && name != "." && name != ".." && !name.is_empty(),
            "{name}"
        );
    }
}

#[test]
fn c26_equal_keys_mean_equal_bytes_across_updates() {
    let mut by_key: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for export in ["exports/v1", "exports/v2"] {
        for platform in Platform::ALL {
            let manifest = build_manifest(export, platform, 1, T1, BTreeMap::new());
            let exported =
                ExportMetadata::parse(&read(&format!("{export}/metadata.json"))).unwrap();
            let files = exported
                .platform(platform)
                .unwrap()
                .files()
                .map(|p| read(&format!("{export}/{}", p.as_str())));
            for (asset, bytes) in manifest.all_assets().zip(files) {
                let known = by_key
                    .entry(asset.key.clone())
                    .or_insert_with(|| bytes.clone());
                assert_eq!(*known, bytes, "key {} names different bytes", asset.key);
            }
        }
    }
    assert_eq!(by_key.len(), 4 + 3, "four bundles and three shared assets");
}

#[test]
fn c27_hash_is_unpadded_base64url_sha256_of_the_bytes() {
    let manifest = served();
    let exported = ExportMetadata::parse(&read("exports/v2/metadata.json")).unwrap();
    let files: Vec<_> = exported
        .platform(Platform::Ios)
        .unwrap()
        .files()
        .cloned()
        .collect();
    let assets =
        std::iter::once(&manifest["launchAsset"]).chain(manifest["assets"].as_array().unwrap());
    for (asset, path) in assets.zip(files) {
        let hash = asset["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 43);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{hash}"
        );
        let file = fixture_path(&format!("exports/v2/{}", path.as_str()));
        let output = Command::new("openssl")
            .args(["dgst", "-sha256", "-binary"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(output.status.success());
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&output.stdout);
        assert_eq!(hash, expected, "{}", path.as_str());
    }
}

#[test]
fn c28_metadata_and_extra_are_objects_without_expo_go() {
    let manifest = served();
    assert!(
        manifest["metadata"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string)
    );
    let extra = manifest["extra"].as_object().unwrap();
    assert!(!extra.contains_key("expoGo"));
    assert_eq!(extra["expoClient"]["slug"], "otago-example");
}

#[test]
fn c29_no_manifest_filters_so_every_update_satisfies_them() {
    for (label, response) in all_responses() {
        assert_eq!(response.header("expo-manifest-filters"), None, "{label}");
    }
}

#[test]
fn c30_asset_request_headers_map_keys_to_string_objects() {
    let f = fixture();
    let key = f.v2.assets[0].key.clone();
    let headers = AssetRequestHeaders::from([(
        key.clone(),
        BTreeMap::from([("x-tenant".to_owned(), "acme".to_owned())]),
    )]);
    for (headers, expected) in [
        (AssetRequestHeaders::new(), serde_json::json!({})),
        (headers, serde_json::json!({ key: {"x-tenant": "acme"} })),
    ] {
        let updates = PreparedUpdates::new(published(&f.v2_bytes, None).into(), &headers).unwrap();
        let extensions = part(&parts(req().response(&updates)), "extensions").json();
        let map = extensions["assetRequestHeaders"].as_object().unwrap();
        assert!(map.values().all(|h| {
            h.as_object()
                .is_some_and(|h| h.values().all(Value::is_string))
        }));
        assert_eq!(extensions["assetRequestHeaders"], expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Headers with SFV

#[test]
fn c31_no_filter_or_server_defined_dictionaries_are_sent() {
    for (label, response) in all_responses() {
        for name in ["expo-manifest-filters", "expo-server-defined-headers"] {
            assert_eq!(response.header(name), None, "{label}: {name}");
        }
    }
}

#[test]
fn c32_extra_params_and_failed_ids_are_parsed_and_optional() {
    let params = BTreeMap::from([
        ("cohort".to_owned(), "a".to_owned()),
        ("x".to_owned(), "y z".to_owned()),
    ]);
    let ids = [
        "0a1b2c3d-0000-4000-8000-000000000001",
        "0a1b2c3d-0000-4000-8000-000000000002",
    ];
    let r = req()
        .set(
            "Expo-Extra-Params",
            &extra_params_header_value(&params).unwrap(),
        )
        .set(
            "Expo-Recent-Failed-Update-IDs",
            &recent_failed_update_ids_header_value(&ids).unwrap(),
        )
        .parse()
        .unwrap();
    assert_eq!(r.extra_params, params);
    assert_eq!(r.recent_failed_update_ids, ids);
    let r = req()
        .set("Expo-Extra-Params", r#"foo="bar", x="y""#)
        .set("Expo-Recent-Failed-Update-IDs", r#""A1", "b2""#)
        .parse()
        .unwrap();
    assert_eq!(r.extra_params["foo"], "bar");
    assert_eq!(r.recent_failed_update_ids, ["a1", "b2"]);
    let absent = req().parse().unwrap();
    assert!(absent.extra_params.is_empty() && absent.recent_failed_update_ids.is_empty());
    assert_eq!(
        req()
            .set("Expo-Extra-Params", "foo=1")
            .parse()
            .unwrap_err()
            .http_status(),
        400
    );
}

#[test]
fn c33_no_server_defined_headers_are_relied_on() {
    for (label, response) in all_responses() {
        assert!(
            response
                .headers()
                .iter()
                .all(|(name, _)| *name != "expo-server-defined-headers"),
            "{label}"
        );
        if is_multipart(&response) {
            for part in parts(&response) {
                assert_eq!(part.header("expo-server-defined-headers"), None, "{label}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Code signing

#[test]
fn c34_manifest_and_directive_parts_are_signed_when_expected() {
    let signed = req().set("expo-expect-signature", EXPECT_MAIN);
    let manifest_parts = parts(signed.response(v1_and_v2()));
    assert!(
        part(&manifest_parts, "manifest")
            .header("expo-signature")
            .is_some()
    );
    let rollback_parts = parts(
        signed
            .set("expo-embedded-update-id", "123")
            .response(with_rollback()),
    );
    assert!(
        part(&rollback_parts, "directive")
            .header("expo-signature")
            .is_some()
    );
}

#[test]
fn c35_signature_header_has_three_quoted_members() {
    let response = req()
        .set("expo-expect-signature", EXPECT_MAIN)
        .response(v1_and_v2());
    let value = part(&parts(response), "manifest")
        .header("expo-signature")
        .unwrap()
        .to_owned();
    let members = signature_members(&value);
    assert_eq!(members.keys().collect::<Vec<_>>(), ["alg", "keyid", "sig"]);
    assert_eq!(members["keyid"], "main");
    assert_eq!(members["alg"], "rsa-v1_5-sha256");
    let sig = &members["sig"];
    assert!(
        sig.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "standard base64: {sig}"
    );
    assert_eq!(sig.len() % 4, 0, "padded");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap()
            .len(),
        256,
        "RSA-2048"
    );
}

#[test]
fn c36_signatures_verify_over_the_exact_part_bytes() {
    let signed = req().set("expo-expect-signature", EXPECT_MAIN);
    let manifest_parts = parts(signed.response(v1_and_v2()));
    let manifest = part(&manifest_parts, "manifest");
    assert!(openssl_verifies(
        &manifest.body,
        manifest.header("expo-signature").unwrap()
    ));
    let rollback_parts = parts(
        signed
            .set("expo-embedded-update-id", "123")
            .response(with_rollback()),
    );
    let directive = part(&rollback_parts, "directive");
    assert!(openssl_verifies(
        &directive.body,
        directive.header("expo-signature").unwrap()
    ));
    let mut tampered = manifest.body.clone();
    tampered.push(b' ');
    assert!(!openssl_verifies(
        &tampered,
        manifest.header("expo-signature").unwrap()
    ));
}

#[test]
fn c37_signature_keyid_is_the_one_the_client_expects() {
    let response = req()
        .set("expo-expect-signature", EXPECT_MAIN)
        .response(v1_and_v2());
    let value = part(&parts(response), "manifest")
        .header("expo-signature")
        .unwrap()
        .to_owned();
    assert_eq!(signature_members(&value)["keyid"], "main");
    // A client that sends no keyid expects `root`.
    let f = fixture();
    let root_signed = prepare(vec![published(&f.v2_bytes, Some("root"))]);
    let response = req()
        .set("expo-expect-signature", "sig")
        .response(&root_signed);
    let value = part(&parts(response), "manifest")
        .header("expo-signature")
        .unwrap()
        .to_owned();
    assert_eq!(signature_members(&value)["keyid"], "root");
}

#[test]
fn c38_no_key_for_the_keyid_is_an_error_not_an_unsigned_body() {
    let f = fixture();
    let err = req()
        .set("expo-expect-signature", r#"sig, keyid="other""#)
        .ask(v1_and_v2())
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(
        err.to_string().contains("`other`") && err.to_string().contains("`main`"),
        "{err}"
    );
    let unsigned = prepare(vec![published(&f.v2_bytes, None)]);
    let err = req()
        .set("expo-expect-signature", EXPECT_MAIN)
        .ask(&unsigned)
        .unwrap_err();
    assert!(matches!(err, Error::SignatureUnavailable { .. }), "{err}");
    let err = req()
        .set("expo-expect-signature", r#"sig, keyid="other""#)
        .set("expo-embedded-update-id", "1")
        .ask(with_rollback())
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[test]
fn c39_single_json_manifest_carries_a_top_level_signature() {
    let response = req()
        .set("accept", "application/json")
        .set("expo-expect-signature", EXPECT_MAIN)
        .response(v1_and_v2());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let signature = response
        .header("expo-signature")
        .expect("top-level expo-signature");
    assert_eq!(signature_members(signature)["keyid"], "main");
    assert!(openssl_verifies(response.body(), signature));
}
