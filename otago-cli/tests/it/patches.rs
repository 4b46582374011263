//! Bundle patches through the CLI: `otago deploy` reports the patches the server made, and
//! `otago embedded upload` registers a build's own bundle so devices still on it get a patch,
//! applied here with Debian's `bspatch` as expo-updates applies it.

use std::path::Path;

use otago_core::asset_hash;
use serde_json::Value;

use crate::harness::{Project, block_on, fixture};

/// The embedded update id of the imaginary iOS build.
const BUILD_UPDATE_ID: &str = "3f0c9a4e-7d21-4b6a-9c55-00000000b001";

/// The fixture export's iOS bundle of `dist`.
fn ios_bundle(dist: &str) -> Vec<u8> {
    let folder = fixture(&format!("{dist}/_expo/static/js/ios"));
    let entry = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hbc"))
        .unwrap();
    std::fs::read(entry).unwrap()
}

/// Applies `patch` to `old` with `bspatch` (Debian package `bsdiff`, which `.ci/run` installs).
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

/// `GET` of an asset URL with patch headers; the status and body.
fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, Vec<u8>) {
    block_on(async {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let base = response
            .headers()
            .get("expo-base-update-id")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            response.status().as_u16(),
            base,
            response.bytes().await.unwrap().to_vec(),
        )
    })
}

#[test]
fn deploy_reports_patches_and_an_embedded_bundle_becomes_a_patch_base() {
    let project = Project::create("patches");
    let first = project.deploy("exports/v1", "v1").ok().json();
    // Nothing earlier to patch from.
    for update in first["patches"].as_array().unwrap() {
        assert_eq!(update["patches"], Value::Array(Vec::new()), "{first:#}");
        assert_eq!(update["pending"], false);
    }
    let second = project.deploy("exports/v2", "v2").ok().json();
    let v1_ios = first["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "ios")
        .unwrap()["id"]
        .clone();
    let ios = second["patches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "ios")
        .unwrap_or_else(|| panic!("{second:#}"))
        .clone();
    assert_eq!(ios["pending"], false);
    let full = ios["full_size"].as_u64().unwrap();
    assert_eq!(full, ios_bundle("exports/v2").len() as u64);
    let from_v1 = &ios["patches"][0];
    assert_eq!(from_v1["base_update_ids"][0], v1_ios);
    assert!(from_v1["size"].as_u64().unwrap() * 20 <= full, "{ios:#}");

    // An iOS build whose embedded bundle is v1's code, as its unpacked .app holds it.
    let build = tempfile::tempdir().unwrap();
    let app = build.path().join("Payload/Example.app");
    std::fs::create_dir_all(app.join("EXUpdates.bundle")).unwrap();
    let embedded = ios_bundle("exports/v1");
    std::fs::write(app.join("main.jsbundle"), &embedded).unwrap();
    std::fs::write(
        app.join("EXUpdates.bundle/app.manifest"),
        format!(r#"{{"id":"{BUILD_UPDATE_ID}","commitTime":1767225600000,"assets":[]}}"#),
    )
    .unwrap();
    let build_dir = build.path().to_string_lossy().into_owned();
    let v2_ios = second["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "ios")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v2_bundle_url = format!(
        "{}/assets/{}",
        project.server.url,
        asset_hash(&ios_bundle("exports/v2"))
    );
    let from_build = [
        ("a-im", "bsdiff"),
        ("expo-current-update-id", BUILD_UPDATE_ID),
        ("expo-embedded-update-id", BUILD_UPDATE_ID),
        ("expo-requested-update-id", v2_ios.as_str()),
    ];
    // Before the build's bundle is registered, its id names nothing: the whole bundle.
    let (status, _, whole) = get_with(&v2_bundle_url, &from_build);
    assert_eq!((status, whole.len() as u64), (200, full));
    let uploaded = project
        .run(
            &[
                "--json",
                "embedded",
                "upload",
                "--project",
                &project.reference,
                "--platform",
                "ios",
                "--runtime-version",
                "1.0.0",
                &build_dir,
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(uploaded["update_id"], BUILD_UPDATE_ID);
    assert_eq!(uploaded["bundle_hash"], asset_hash(&embedded).as_str());
    assert_eq!(uploaded["size"], embedded.len() as u64);
    let listed = project
        .run(
            &["embedded", "list", "--project", &project.reference],
            &project.key_env(),
        )
        .ok();
    assert!(listed.stdout.contains(BUILD_UPDATE_ID), "{}", listed.stdout);

    // Once the server made the patch from the build's bundle, a device that still runs it
    // (its current update is the embedded one) downloads v2's bundle as that patch.
    let group = second["group"].as_str().unwrap().to_owned();
    let view = |json: bool| {
        let mut args = vec!["updates", "view", "--project", &project.reference, &group];
        if json {
            args.insert(0, "--json");
        }
        project.run(&args, &project.key_env()).ok()
    };
    let started = std::time::Instant::now();
    let ios_view = loop {
        let viewed = view(true).json();
        let ios = viewed["updates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["platform"] == "ios")
            .unwrap()
            .clone();
        if ios.get("patches_pending").is_none() {
            break ios;
        }
        assert!(started.elapsed().as_secs() < 120, "{viewed:#}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let patches = ios_view["launch_asset"]["patches"].as_array().unwrap();
    assert!(
        patches.iter().any(|p| p["base_update_ids"]
            .as_array()
            .unwrap()
            .contains(&BUILD_UPDATE_ID.into())),
        "{ios_view:#}"
    );
    let text = view(false).stdout;
    assert!(
        text.contains("launch asset 1.5 MiB, 1 bundle patch"),
        "{text}"
    );
    // The text names the first base update (ids sorted) and counts the others: the embedded
    // build shares its bundle with v1's update, whose random id may sort first.
    let bases = patches
        .iter()
        .find(|p| {
            p["base_update_ids"]
                .as_array()
                .unwrap()
                .contains(&BUILD_UPDATE_ID.into())
        })
        .unwrap()["base_update_ids"]
        .as_array()
        .unwrap()
        .clone();
    let expected = match bases.len() {
        1 => format!("from {}:", bases[0].as_str().unwrap()),
        n => format!("from {} (+{} more)", bases[0].as_str().unwrap(), n - 1),
    };
    assert!(text.contains(&expected), "{expected} in {text}");

    let hash = asset_hash(&ios_bundle("exports/v2"));
    assert_eq!(ios_view["launch_asset"]["hash"], hash.as_str());
    let (status, base, patch) = get_with(&v2_bundle_url, &from_build);
    assert_eq!(status, 226);
    assert_eq!(base.as_deref(), Some(BUILD_UPDATE_ID));
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        asset_hash(&bspatch(scratch.path(), &embedded, &patch)),
        hash
    );

    // Registering the same build again changes nothing; another bundle under its id is refused.
    let again = project
        .run(
            &[
                "--json",
                "embedded",
                "upload",
                "--project",
                &project.reference,
                "--platform",
                "ios",
                "--runtime-version",
                "1.0.0",
                &build_dir,
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(again["created_at"], uploaded["created_at"]);
    std::fs::write(app.join("main.jsbundle"), ios_bundle("exports/v2")).unwrap();
    let refused = project
        .run(
            &[
                "embedded",
                "upload",
                "--project",
                &project.reference,
                "--platform",
                "ios",
                "--runtime-version",
                "1.0.0",
                &build_dir,
            ],
            &project.key_env(),
        )
        .fails_with(6);
    assert!(
        refused.stderr.contains("registered with another bundle"),
        "{}",
        refused.stderr
    );
}
