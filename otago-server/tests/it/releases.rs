//! Safe releases end to end: simulated devices (each with its own `EAS-Client-ID`, the update it
//! runs and the updates it failed to launch, behaving as expo-updates does) against a real
//! server on loopback, through rollouts, reverts, the health gate and ramps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otago_core::{Manifest, Platform, Timestamp, rollout_bucket};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Built, RUNTIME, Server, build_signed, client_headers, export, fixture, now_ms, openssl_verify,
    parse_multipart, publish_body, with_standbys,
};

/// The embedded update of every simulated build.
const EMBEDDED: &str = "e0000000-0000-4000-8000-0000000000e1";

/// What a device got.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// A manifest: its id, bytes and `expo-signature`.
    Manifest {
        id: String,
        bytes: Vec<u8>,
        signature: String,
    },
    /// A `rollBackToEmbedded` directive: its bytes and `expo-signature`.
    RollBack { bytes: Vec<u8>, signature: String },
    /// 204: no update (available).
    Nothing,
}

/// A device as expo-updates behaves: it launches a served manifest newer than the update it
/// runs (unless it crashes on it, then it lists it as failed and keeps what it ran), and rolls
/// back to its embedded update on a directive.
#[derive(Debug, Clone)]
struct Device {
    client_id: String,
    /// The update it runs, with its `createdAt`; `None`: the embedded update.
    current: Option<(String, Timestamp)>,
    failed: Vec<String>,
}

impl Device {
    fn new(n: usize) -> Self {
        Self {
            client_id: format!("3f8a1c2e-0000-4000-8000-{n:012}"),
            current: None,
            failed: Vec::new(),
        }
    }

    fn runs(&self) -> &str {
        self.current
            .as_ref()
            .map_or(EMBEDDED, |(id, _)| id.as_str())
    }

    async fn ask(&self, server: &Server, project_ref: &str) -> Answer {
        let mut headers = client_headers("ios");
        headers.retain(|(name, _)| *name != "eas-client-id");
        headers.push(("eas-client-id", self.client_id.clone()));
        headers.push(("expo-embedded-update-id", EMBEDDED.to_owned()));
        headers.push(("expo-current-update-id", self.runs().to_owned()));
        if !self.failed.is_empty() {
            let list: Vec<String> = self.failed.iter().map(|id| format!("\"{id}\"")).collect();
            headers.push(("expo-recent-failed-update-ids", list.join(", ")));
        }
        let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = server.manifest(project_ref, &refs).await;
        let status = response.status().as_u16();
        if status == 204 {
            return Answer::Nothing;
        }
        assert_eq!(status, 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.bytes().await.unwrap();
        let (_, parts) = parse_multipart(&content_type, &body);
        let part = parts
            .iter()
            .find(|p| p.name() == "manifest" || p.name() == "directive")
            .expect("a manifest or directive part");
        let signature = part.header("expo-signature").unwrap().to_owned();
        if part.name() == "directive" {
            assert_eq!(part.json()["type"], "rollBackToEmbedded");
            return Answer::RollBack {
                bytes: part.body.clone(),
                signature,
            };
        }
        Answer::Manifest {
            id: part.json()["id"].as_str().unwrap().to_owned(),
            bytes: part.body.clone(),
            signature,
        }
    }

    /// Asks, and does what expo-updates would with the answer; `crashes_on` lists updates this
    /// device cannot launch.
    async fn check(&mut self, server: &Server, project_ref: &str, crashes_on: &[&str]) -> Answer {
        let answer = self.ask(server, project_ref).await;
        match &answer {
            Answer::Manifest { id, bytes, .. } => {
                let created_at = Manifest::parse(bytes).unwrap().created_at;
                let newer = self.current.as_ref().is_none_or(|(_, at)| created_at > *at);
                if newer && crashes_on.contains(&id.as_str()) {
                    self.failed.push(id.clone());
                } else if newer {
                    self.current = Some((id.clone(), created_at));
                }
            }
            Answer::RollBack { .. } => self.current = None,
            Answer::Nothing => {}
        }
        answer
    }
}

/// How many devices run each update.
fn census(devices: &[Device]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for device in devices {
        *counts.entry(device.runs().to_owned()).or_default() += 1;
    }
    counts
}

fn ios_only(built: BTreeMap<Platform, Built>) -> BTreeMap<Platform, Built> {
    built
        .into_iter()
        .filter(|(p, _)| *p == Platform::Ios)
        .collect()
}

/// Builds (signed) and publishes `dist` for iOS at `percentage`, with the standby over
/// `control`; returns the manifest and the group.
async fn publish(
    server: &Server,
    project_ref: &str,
    dist: &str,
    percentage: u8,
    control: Option<&Built>,
    extra: Value,
) -> (Built, Value) {
    server.upload_export(project_ref, export(dist)).await;
    let built = ios_only(build_signed(
        export(dist),
        &format!("{}/assets", server.url),
        now_ms(),
    ));
    let mut body = publish_body(RUNTIME, &built, Some(percentage));
    if percentage < 100 {
        let controls = BTreeMap::from([(Platform::Ios, control.map(|c| c.bytes.clone()))]);
        body = with_standbys(body, &controls);
    }
    for (key, value) in extra.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    let response = server.publish(project_ref, &body).await;
    let status = response.status();
    let group: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{group}");
    // Updates are dated to the millisecond: keep the next one strictly later.
    tokio::time::sleep(Duration::from_millis(5)).await;
    (built[&Platform::Ios].clone(), group)
}

async fn revert(server: &Server, project_ref: &str, group: &Value) -> Value {
    let id = group["id"].as_str().unwrap();
    let response = server
        .admin(
            Method::POST,
            &format!("/api/v1/projects/{project_ref}/groups/{id}/revert"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn group(server: &Server, project_ref: &str, id: &str) -> Value {
    server
        .admin(
            Method::GET,
            &format!("/api/v1/projects/{project_ref}/groups/{id}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn assets_of(bytes: &[u8]) -> Vec<String> {
    let manifest = Manifest::parse(bytes).unwrap();
    manifest.all_assets().map(|a| a.hash.clone()).collect()
}

const DEVICES: usize = 1000;

#[tokio::test]
async fn stacked_rollouts_keep_their_word() {
    let server = Server::start().await;
    let project_ref = server.signing_project("stacked").await;
    let mut devices: Vec<Device> = (0..DEVICES).map(Device::new).collect();
    let (v1, _) = publish(&server, &project_ref, "exports/v1", 100, None, json!({})).await;
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    assert_eq!(census(&devices)[&v1.id], DEVICES);
    let (v2, _) = publish(
        &server,
        &project_ref,
        "exports/v2",
        10,
        Some(&v1),
        json!({}),
    )
    .await;
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    // v3 while v2's rollout runs: refused, naming the commands that end it.
    server
        .upload_export(&project_ref, export("exports/v1"))
        .await;
    let v3 = ios_only(build_signed(
        export("exports/v1"),
        &format!("{}/assets", server.url),
        now_ms(),
    ));
    let controls = BTreeMap::from([(Platform::Ios, Some(v1.bytes.clone()))]);
    let response = server
        .publish(
            &project_ref,
            &with_standbys(publish_body(RUNTIME, &v3, Some(10)), &controls),
        )
        .await;
    assert_eq!(response.status(), 409);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rollout_in_progress");
    assert_eq!(
        error["error"]["message"],
        format!(
            "updates[0] (ios): update {} is being rolled out to 10% of devices; finish that rollout or revert it first",
            v2.id
        )
    );
    assert_eq!(
        error["error"]["hint"],
        format!(
            "finish it with `otago rollout --project {project_ref} --percentage 100`, or revert it with `otago rollout --project {project_ref} --revert`"
        )
    );
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    let counts = census(&devices);
    let on_v1 = counts.get(&v1.id).copied().unwrap_or(0);
    let on_v2 = counts.get(&v2.id).copied().unwrap_or(0);
    println!("v1 {on_v1}, v2 {on_v2} of {DEVICES} devices");
    assert_eq!(
        on_v1 + on_v2,
        DEVICES,
        "every device runs the target or the control: {counts:?}"
    );
    assert!(on_v1 >= DEVICES * 80 / 100, "{on_v1} on v1");
    assert!(
        (70..=130).contains(&on_v2),
        "{on_v2} on v2 at 10 % (±3 points)"
    );
    for device in &devices {
        let in_bucket = rollout_bucket(&device.client_id, v2.id.parse().unwrap()) < 10;
        assert_eq!(device.runs() == v2.id, in_bucket, "{}", device.client_id);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_signed_revert_moves_devices_on_the_target_to_the_control_code() {
    let server = Server::start().await;
    let project_ref = server.signing_project("revert").await;
    let mut devices: Vec<Device> = (0..DEVICES).map(Device::new).collect();
    let (v1, _) = publish(&server, &project_ref, "exports/v1", 100, None, json!({})).await;
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    let (v2, rollout) = publish(
        &server,
        &project_ref,
        "exports/v2",
        30,
        Some(&v1),
        json!({}),
    )
    .await;
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    let took_v2 = census(&devices)[&v2.id];
    assert!(
        (240..=360).contains(&took_v2),
        "{took_v2} of {DEVICES} at 30 %"
    );
    let reverted = revert(&server, &project_ref, &rollout).await;
    assert_eq!(reverted["state"], "reverted");
    let standby_id = reverted["updates"][0]["standby_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let certificate = fixture("certs/certificate.pem");
    let mut moved = 0;
    for device in &mut devices {
        let was = device.runs().to_owned();
        let answer = device.check(&server, &project_ref, &[]).await;
        if was == v2.id {
            let Answer::Manifest {
                id,
                bytes,
                signature,
            } = answer
            else {
                panic!("a device on the target got {answer:?}");
            };
            assert_eq!(id, standby_id);
            assert!(
                openssl_verify(&bytes, &signature, &certificate),
                "the standby verifies"
            );
            assert_eq!(
                assets_of(&bytes),
                assets_of(&v1.bytes),
                "the standby runs the control's code"
            );
            moved += 1;
        } else {
            assert_eq!(
                answer,
                Answer::Nothing,
                "a device on the control gets no update"
            );
        }
    }
    assert_eq!(moved, took_v2);
    let counts = census(&devices);
    assert_eq!(counts[&standby_id], took_v2, "{counts:?}");
    assert_eq!(counts[&v1.id], DEVICES - took_v2);
    // Nobody moves again, and a new install gets the control.
    for device in devices.iter_mut().take(100) {
        assert_eq!(
            device.check(&server, &project_ref, &[]).await,
            Answer::Nothing
        );
    }
    let mut fresh = Device::new(DEVICES + 1);
    assert!(
        matches!(fresh.check(&server, &project_ref, &[]).await, Answer::Manifest { id, .. } if id == v1.id)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_revert_over_the_embedded_update_rolls_devices_back_to_it() {
    let server = Server::start().await;
    let project_ref = server.signing_project("embedded").await;
    let mut devices: Vec<Device> = (0..DEVICES).map(Device::new).collect();
    let (v1, rollout) = publish(&server, &project_ref, "exports/v1", 50, None, json!({})).await;
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    let took_v1 = census(&devices)[&v1.id];
    assert!((440..=560).contains(&took_v1), "{took_v1} at 50 %");
    revert(&server, &project_ref, &rollout).await;
    let created_at = Manifest::parse(&v1.bytes).unwrap().created_at;
    let certificate = fixture("certs/certificate.pem");
    for device in &mut devices {
        let was_on_v1 = device.runs() == v1.id;
        let answer = device.check(&server, &project_ref, &[]).await;
        if was_on_v1 {
            let Answer::RollBack { bytes, signature } = answer else {
                panic!("a device on the target got {answer:?}");
            };
            assert!(
                openssl_verify(&bytes, &signature, &certificate),
                "the directive verifies"
            );
            let directive: Value = serde_json::from_slice(&bytes).unwrap();
            let commit =
                Timestamp::parse(directive["parameters"]["commitTime"].as_str().unwrap()).unwrap();
            assert!(
                commit > created_at,
                "commitTime {commit} after the target's {created_at}"
            );
        } else {
            assert_eq!(answer, Answer::Nothing);
        }
    }
    assert_eq!(census(&devices)[EMBEDDED], DEVICES);
    server.stop().await;
}

#[tokio::test]
async fn failed_launches_are_never_served_again_and_trip_the_health_gate() {
    let server = Server::start().await;
    let project_ref = server.signing_project("gate").await;
    let (v1, _) = publish(&server, &project_ref, "exports/v1", 100, None, json!({})).await;
    let (v2, rollout) = publish(
        &server,
        &project_ref,
        "exports/v2",
        50,
        Some(&v1),
        json!({}),
    )
    .await;
    let group_id = rollout["id"].as_str().unwrap().to_owned();
    let mut devices: Vec<Device> = (0..400).map(Device::new).collect();
    for device in &mut devices {
        device.check(&server, &project_ref, &[]).await;
    }
    // A healthy device on v2, to watch for the standby.
    let watcher = devices.iter().find(|d| d.runs() == v2.id).unwrap().clone();
    let v1_created_at = Manifest::parse(&v1.bytes).unwrap().created_at;
    let mut crashing: Vec<Device> = (1000..1400)
        .map(Device::new)
        .filter(|d| rollout_bucket(&d.client_id, v2.id.parse().unwrap()) < 50)
        .map(|mut d| {
            d.current = Some((v1.id.clone(), v1_created_at));
            d
        })
        .collect();
    assert!(crashing.len() > 100);
    // Devices that crash on v2 report it, and never get it again.
    let (mut served, mut failed) = (census(&devices)[&v2.id], 0);
    let mut crossed = None;
    for device in crashing.iter_mut().take(20) {
        let first = device.check(&server, &project_ref, &[&v2.id]).await;
        assert!(matches!(&first, Answer::Manifest { id, .. } if *id == v2.id));
        served += 1;
        // The next launch reports the failure.
        let second = device.check(&server, &project_ref, &[&v2.id]).await;
        failed += 1;
        assert_eq!(
            second,
            Answer::Nothing,
            "the control, which it runs: no update"
        );
        assert_ne!(device.runs(), v2.id);
        // The server counts distinct devices with sketches (a few percent off at a few
        // hundred devices), so the test waits for a clear crossing: 6 % against the gate's 5.
        if crossed.is_none() && served >= 20 && failed * 100 > served * 6 {
            crossed = Some(Instant::now());
            break;
        }
    }
    let crossed = crossed.expect("the failure rate crossed 6 %");
    // From the crossing report to the first standby answer.
    let standby = loop {
        if let Answer::Manifest { id, .. } = watcher.ask(&server, &project_ref).await
            && id != v2.id
        {
            break id;
        }
        assert!(
            crossed.elapsed() < Duration::from_secs(10),
            "the gate did not revert"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "health gate: {failed} failed of {served} served; first standby answer {} ms after the crossing report",
        crossed.elapsed().as_millis()
    );
    let stored = group(&server, &project_ref, &group_id).await;
    assert_eq!(stored["state"], "reverted");
    assert_eq!(stored["updates"][0]["standby_id"], standby.as_str());
    assert_eq!(stored["revert"]["by"], "health-gate");
    let reason = stored["revert"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failure rate ") && reason.ends_with("is over 5.0 %"),
        "{reason}"
    );
    assert_eq!(stored["health"]["failed"], failed as u64);
    let metrics = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "otago_health_gate_reverts_total 1"),
        "{metrics}"
    );
    // A device that failed v2 still never gets it, nor its standby's predecessor.
    let mut listed = Device::new(5000);
    listed.failed.push(v2.id.clone());
    listed.current = watcher.current.clone();
    let answer = listed.ask(&server, &project_ref).await;
    assert!(
        matches!(&answer, Answer::Manifest { id, .. } if *id == standby),
        "{answer:?}"
    );
    server.stop().await;
}

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl otago_server::Clock for TestClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0.load(Ordering::SeqCst)).unwrap())
    }
}

impl TestClock {
    fn advance(&self, by: Duration) {
        self.0
            .fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

async fn percentage_of(server: &Server, project_ref: &str, id: &str) -> (u64, String) {
    let group = group(server, project_ref, id).await;
    (
        group["rollout_percentage"].as_u64().unwrap(),
        group["state"].as_str().unwrap().to_owned(),
    )
}

/// Waits (real time, a few ticks) until the group's percentage is `expected`.
async fn wait_for(server: &Server, project_ref: &str, id: &str, expected: u64) {
    let start = Instant::now();
    loop {
        let (percentage, _) = percentage_of(server, project_ref, id).await;
        if percentage == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stuck at {percentage}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_ramp_advances_on_its_clock_holds_while_unhealthy_and_resumes_after_a_restart() {
    let clock = Arc::new(TestClock(AtomicI64::new(now_ms())));
    let tempdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let configure = |config: &mut otago_server::ServerConfig| {
        config.release_tick = Duration::from_millis(20);
    };
    let server = Server::start_in_with_clock(tempdir.path(), configure, clock.clone()).await;
    let project_ref = server.signing_project("ramp").await;
    let (v1, _) = publish(&server, &project_ref, "exports/v1", 100, None, json!({})).await;
    let ramp = json!({"ramp": {"steps": "1,10,50,100", "every_seconds": 3600}});
    let (v2, rollout) = publish(&server, &project_ref, "exports/v2", 1, Some(&v1), ramp).await;
    let id = rollout["id"].as_str().unwrap().to_owned();
    assert_eq!(rollout["ramp"]["steps"], "1,10,50,100");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        percentage_of(&server, &project_ref, &id).await.0,
        1,
        "not due yet"
    );
    clock.advance(Duration::from_secs(3600));
    wait_for(&server, &project_ref, &id, 10).await;
    // At 10 %: five devices take v2 and one crashes on it: 20 % failed, too few devices for the
    // gate to revert, but enough for the ramp to hold.
    let target: otago_core::UpdateId = v2.id.parse().unwrap();
    let mut in_bucket = (0..20_000)
        .map(Device::new)
        .filter(|d| rollout_bucket(&d.client_id, target) < 10);
    for _ in 0..4 {
        in_bucket
            .next()
            .unwrap()
            .check(&server, &project_ref, &[])
            .await;
    }
    let mut crasher = in_bucket.next().unwrap();
    crasher.check(&server, &project_ref, &[&v2.id]).await;
    crasher.check(&server, &project_ref, &[&v2.id]).await;
    clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        percentage_of(&server, &project_ref, &id).await,
        (10, "rollout".to_owned()),
        "held"
    );
    // A restart keeps the schedule and the counts.
    server.stop().await;
    let server = Server::start_in_with_clock(tempdir.path(), configure, clock.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        percentage_of(&server, &project_ref, &id).await.0,
        10,
        "still held after the restart"
    );
    // Thirty healthy devices bring the failure rate under 5 %: the ramp resumes.
    for _ in 0..30 {
        in_bucket
            .next()
            .unwrap()
            .check(&server, &project_ref, &[])
            .await;
    }
    wait_for(&server, &project_ref, &id, 50).await;
    clock.advance(Duration::from_secs(3599));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        percentage_of(&server, &project_ref, &id).await.0,
        50,
        "an hour after the last step"
    );
    clock.advance(Duration::from_secs(1));
    wait_for(&server, &project_ref, &id, 100).await;
    assert_eq!(
        percentage_of(&server, &project_ref, &id).await.1,
        "full",
        "the ramp completed the rollout"
    );
    server.stop().await;
}
