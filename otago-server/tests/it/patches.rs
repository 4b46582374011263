//! Checklist C44–C47: bundle patches of the launch asset, made by the server after a publish,
//! applied with Debian's `bspatch` (what expo-updates' own bspatch reads), never served for a
//! base they were not made from, for another asset, or when their stored bytes are corrupt.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use otago_core::{Platform, asset_hash};
use reqwest::Method;
use serde_json::Value;

use crate::harness::{
    Built, RUNTIME, Server, body, build_signed, export, now_ms, overwrite_stored, publish_body,
    stored_bytes, with_standbys,
};

/// A server with exports/v1 then exports/v2 published, once v2's patches are made.
struct Patched {
    server: Server,
    project_ref: String,
    v1: BTreeMap<Platform, Built>,
    v2: BTreeMap<Platform, Built>,
    v1_group: String,
    v2_group: String,
}

async fn publish_both(server: Server) -> Patched {
    let project_ref = server.signing_project("patches").await;
    let t = now_ms() - 60_000;
    let v1 = server
        .publish_export(&project_ref, export("exports/v1"), t)
        .await;
    let v1_group = v1.group["id"].as_str().unwrap().to_owned();
    let v2 = server
        .publish_export(&project_ref, export("exports/v2"), t + 1000)
        .await;
    let v2_group = v2.group["id"].as_str().unwrap().to_owned();
    let patched = Patched {
        server,
        project_ref,
        v1: v1.manifests,
        v2: v2.manifests,
        v1_group,
        v2_group,
    };
    // v1 → v2 for devices that update, v2 → v1 for a revert.
    patched.wait_for_patches(&patched.v2_group).await;
    patched.wait_for_patches(&patched.v1_group).await;
    patched
}

impl Patched {
    /// The v2 group as the API shows it.
    async fn group(&self) -> Value {
        self.group_by_id(&self.v2_group).await
    }

    /// A group as the API shows it.
    async fn group_by_id(&self, id: &str) -> Value {
        let path = format!("/api/v1/projects/{}/groups/{id}", self.project_ref);
        let response = self.server.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until the server says a group's patches are made, then checks each of its
    /// updates has one.
    async fn wait_for_patches(&self, group_id: &str) -> Value {
        let started = Instant::now();
        loop {
            let group = self.group_by_id(group_id).await;
            let updates = group["updates"].as_array().unwrap();
            if updates.iter().all(|u| u.get("patches_pending").is_none()) {
                for update in updates {
                    let patches = update["launch_asset"]["patches"].as_array();
                    assert!(patches.is_some_and(|p| !p.is_empty()), "{group:#}");
                }
                return group;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "patches not made within 120 s: {group:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET` of `built`'s launch asset with the given request headers.
    async fn launch_asset(&self, built: &Built, headers: &[(&str, &str)]) -> reqwest::Response {
        // By hash on this server (a restarted one listens on another port than the manifest says).
        let url = format!("{}/assets/{}", self.server.url, launch(built).1);
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// A manifest's launch asset URL and hash.
fn launch(built: &Built) -> (String, String) {
    let manifest: Value = serde_json::from_slice(&built.bytes).unwrap();
    let field = |name: &str| manifest["launchAsset"][name].as_str().unwrap().to_owned();
    (field("url"), field("hash"))
}

/// The bytes of `built`'s launch asset, fetched without patch headers.
async fn full_bytes(built: &Built) -> Vec<u8> {
    let response = reqwest::get(launch(built).0).await.unwrap();
    assert_eq!(response.status(), 200);
    body(response).await
}

/// Applies `patch` to `old` with Debian's `bspatch` (package `bsdiff`, which `.ci/run` installs).
fn bspatch(dir: &Path, old: &[u8], patch: &[u8]) -> Vec<u8> {
    let (old_path, new_path, patch_path) = (dir.join("old"), dir.join("new"), dir.join("patch"));
    std::fs::write(&old_path, old).unwrap();
    std::fs::write(&patch_path, patch).unwrap();
    let status = std::process::Command::new("bspatch")
        .args([&old_path, &new_path, &patch_path])
        .status()
        .expect("bspatch runs (Debian package `bsdiff`; .ci/run installs it)");
    assert!(status.success(), "bspatch failed");
    std::fs::read(&new_path).unwrap()
}

#[tokio::test]
async fn c45_c46_a_patch_per_platform_applies_with_bspatch_to_give_the_target() {
    let patched = publish_both(Server::start().await).await;
    let scratch = tempfile::tempdir().unwrap();
    for platform in Platform::ALL {
        let (v1, v2) = (&patched.v1[&platform], &patched.v2[&platform]);
        let response = patched
            .launch_asset(
                v2,
                &[
                    ("a-im", "bsdiff"),
                    ("expo-current-update-id", &v1.id.to_uppercase()),
                    ("expo-requested-update-id", v2.id.as_str()),
                    (
                        "expo-embedded-update-id",
                        "00000000-0000-4000-8000-000000000000",
                    ),
                    ("accept-encoding", "br, gzip"),
                ],
            )
            .await;
        assert_eq!(response.status(), 226, "{platform}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("im").as_deref(), Some("bsdiff"));
        assert_eq!(header("expo-base-update-id"), Some(v1.id.clone()));
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(header("content-encoding"), None);
        assert!(header("vary").unwrap().contains("expo-current-update-id"));
        let patch = body(response).await;
        assert_eq!(&patch[..8], b"BSDIFF40");
        let old = full_bytes(v1).await;
        let new = bspatch(scratch.path(), &old, &patch);
        let full = full_bytes(v2).await;
        assert_eq!(asset_hash(&new), launch(v2).1, "{platform}");
        let percent = patch.len() as f64 * 100.0 / full.len() as f64;
        println!(
            "{platform}: patch {} bytes for a {}-byte bundle ({percent:.2} %)",
            patch.len(),
            full.len()
        );
        assert!(
            percent <= 5.0,
            "{platform}: the patch is {percent:.2} % of the bundle"
        );

        // The revert direction too: a device on v2 sent v1 (as after a rollback) gets a patch.
        let back = patched
            .launch_asset(
                v1,
                &[
                    ("a-im", "bsdiff"),
                    ("expo-current-update-id", v2.id.as_str()),
                    ("expo-requested-update-id", &v1.id),
                ],
            )
            .await;
        assert_eq!(back.status(), 226, "{platform}: v2 → v1");
        let new = bspatch(scratch.path(), &full, &body(back).await);
        assert_eq!(asset_hash(&new), launch(v1).1);
    }

    // The API shows each patch with its size and base, next to the full size.
    let group = patched.group().await;
    for update in group["updates"].as_array().unwrap() {
        let launch_asset = &update["launch_asset"];
        let platform: Platform = update["platform"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            launch_asset["hash"],
            launch(&patched.v2[&platform]).1.as_str()
        );
        let patches = launch_asset["patches"].as_array().unwrap();
        let from_v1 = patches
            .iter()
            .find(|p| p["base_update_ids"][0] == patched.v1[&platform].id.as_str())
            .unwrap_or_else(|| panic!("no patch from v1: {launch_asset:#}"));
        assert!(from_v1["size"].as_u64().unwrap() * 20 <= launch_asset["size"].as_u64().unwrap());
    }
    let metrics = patched
        .server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("otago_patches_served_total 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn c44_c47_every_other_request_gets_the_full_asset() {
    let patched = publish_both(Server::start().await).await;
    let (v1, v2) = (&patched.v1[&Platform::Ios], &patched.v2[&Platform::Ios]);
    let (_, v2_hash) = launch(v2);
    let unknown = "0a1b2c3d-0000-4000-8000-00000000abcd";
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("no A-IM", vec![("expo-current-update-id", v1.id.as_str())]),
        (
            "another instance manipulation",
            vec![
                ("a-im", "vcdiff"),
                ("expo-current-update-id", v1.id.as_str()),
            ],
        ),
        ("no current update", vec![("a-im", "bsdiff")]),
        (
            "an unknown base",
            vec![("a-im", "bsdiff"), ("expo-current-update-id", unknown)],
        ),
        (
            "the requested update is the current one",
            vec![
                ("a-im", "bsdiff"),
                ("expo-current-update-id", v2.id.as_str()),
                ("expo-requested-update-id", v2.id.as_str()),
            ],
        ),
        (
            "a malformed current id",
            vec![("a-im", "bsdiff"), ("expo-current-update-id", "v1")],
        ),
    ];
    for (case, headers) in cases {
        let response = patched.launch_asset(v2, &headers).await;
        assert_eq!(response.status(), 200, "{case}");
        assert!(response.headers().get("im").is_none(), "{case}");
        assert_eq!(
            response.headers()["vary"],
            "accept-encoding, a-im, expo-current-update-id",
            "{case}"
        );
        assert_eq!(asset_hash(&body(response).await), v2_hash, "{case}");
    }

    // A non-launch asset never gets a patch, whatever the headers.
    let manifest: Value = serde_json::from_slice(&v2.bytes).unwrap();
    let image = &manifest["assets"][0];
    let response = reqwest::Client::new()
        .get(image["url"].as_str().unwrap())
        .header("a-im", "bsdiff")
        .header("expo-current-update-id", v1.id.as_str())
        .header("expo-requested-update-id", &v2.id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["vary"], "accept-encoding");
    assert_eq!(
        asset_hash(&body(response).await),
        image["hash"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_corrupted_stored_patch_is_never_served_and_patches_survive_a_restart() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let patched = publish_both(Server::start_in(dir.path()).await).await;
    let (v1, v2) = (
        patched.v1[&Platform::Android].clone(),
        patched.v2[&Platform::Android].clone(),
    );
    let ask = [
        ("a-im", "bsdiff"),
        ("expo-current-update-id", v1.id.as_str()),
        ("expo-requested-update-id", v2.id.as_str()),
    ];
    let group = patched.group().await;
    let update = group["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "android")
        .unwrap()
        .clone();
    let patch = update["launch_asset"]["patches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["base_update_ids"][0] == v1.id.as_str())
        .unwrap()
        .clone();
    let served = body(patched.launch_asset(&v2, &ask).await).await;
    assert_eq!(served.len() as u64, patch["size"].as_u64().unwrap());

    // The server keeps patches after a restart.
    let Patched {
        server,
        project_ref,
        v1: all_v1,
        v2: all_v2,
        v1_group,
        v2_group,
    } = patched;
    server.stop().await;
    let patched = Patched {
        server: Server::start_in(dir.path()).await,
        project_ref,
        v1: all_v1,
        v2: all_v2,
        v1_group,
        v2_group,
    };
    assert_eq!(patched.launch_asset(&v2, &ask).await.status(), 226);

    // Flip one byte of the stored patch (a bad disk, a bad copy): the full asset is sent.
    let patch_hash = asset_hash(&served);
    let mut bytes = stored_bytes(dir.path(), &patch_hash).await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    overwrite_stored(dir.path(), &patch_hash, bytes).await;
    for _ in 0..2 {
        let response = patched.launch_asset(&v2, &ask).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("im").is_none());
        assert_eq!(asset_hash(&body(response).await), launch(&v2).1);
    }
}

#[tokio::test]
async fn a_rollouts_standby_revert_is_a_patch_base_and_target_too() {
    let server = Server::start().await;
    let project_ref = server.signing_project("standby-patches").await;
    let t = now_ms() - 60_000;
    let v1 = server
        .publish_export(&project_ref, export("exports/v1"), t)
        .await
        .manifests;
    // v2 as a 10 % rollout over v1, with the signed standby revert `otago deploy` makes.
    server
        .upload_export(&project_ref, export("exports/v2"))
        .await;
    let v2 = build_signed(
        export("exports/v2"),
        &format!("{}/assets", server.url),
        t + 1000,
    );
    let controls: BTreeMap<Platform, Option<Vec<u8>>> = v1
        .iter()
        .map(|(platform, built)| (*platform, Some(built.bytes.clone())))
        .collect();
    let body = with_standbys(publish_body(RUNTIME, &v2, Some(10)), &controls);
    let response = server.publish(&project_ref, &body).await;
    assert_eq!(response.status(), 201);
    let group: Value = response.json().await.unwrap();
    let patched = Patched {
        server,
        project_ref,
        v1_group: String::new(),
        v2_group: group["id"].as_str().unwrap().to_owned(),
        v1,
        v2,
    };
    let group = patched.wait_for_patches(&patched.v2_group).await;
    for update in group["updates"].as_array().unwrap() {
        let platform: Platform = update["platform"].as_str().unwrap().parse().unwrap();
        let standby = update["standby_id"].as_str().unwrap();
        // The standby runs v1's bundle: devices on it (after a revert) get the same patch to v2
        // as devices on v1.
        let from_v1 = &update["launch_asset"]["patches"][0];
        let bases: Vec<&str> = from_v1["base_update_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap())
            .collect();
        assert!(
            bases.contains(&patched.v1[&platform].id.as_str()),
            "{update:#}"
        );
        assert!(bases.contains(&standby), "{update:#}");
        // A device in the rollout that is reverted (current: v2, sent: the standby, whose
        // launch asset is v1's) downloads a patch.
        let response = patched
            .launch_asset(
                &patched.v1[&platform],
                &[
                    ("a-im", "bsdiff"),
                    ("expo-current-update-id", patched.v2[&platform].id.as_str()),
                    ("expo-requested-update-id", standby),
                ],
            )
            .await;
        assert_eq!(response.status(), 226, "{platform}");
    }
}
