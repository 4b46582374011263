//! `otago deploy`, `updates list`, `rollback` and `rollout` against a real server, checked
//! through the protocol endpoint as a device sees it.

use otago_core::{ExportMetadata, Manifest, Platform, asset_hash, asset_key};
use serde_json::Value;

use crate::harness::{
    FIXTURE, Project, assert_keys, assert_signed_by_fixture, download, fetch_update, fixture, parts,
};

/// What a device on `platform` running `current` gets now.
fn fetch_update_as(
    update_url: &str,
    platform: Platform,
    current: Option<&str>,
) -> otago_cli::client::ProtocolResponse {
    crate::harness::block_on(async {
        otago_cli::client::Client::new("http://unused", None)
            .expect("client")
            .fetch_manifest(
                update_url,
                &otago_cli::client::ProtocolRequest {
                    platform,
                    runtime_version: "1.0.0",
                    expect_signature_keyid: Some("main"),
                    client_id: Some("0b5f2a52-0d2c-4a8e-9a51-8a7a3c1e2f10"),
                    current_update_id: current,
                    embedded_update_id: Some(crate::harness::EMBEDDED_UPDATE_ID),
                },
            )
            .await
            .expect("fetch")
    })
}

/// The manifest a device on `platform` gets now, checked for its signature.
fn served_manifest(project: &Project, platform: Platform) -> (Manifest, Vec<u8>) {
    let response = fetch_update(&project.update_url, platform, "1.0.0");
    let parts = parts(&response);
    let manifest = parts
        .iter()
        .find(|part| part.name == "manifest")
        .unwrap_or_else(|| panic!("no manifest part in {parts:?}"));
    assert_signed_by_fixture(manifest);
    (
        Manifest::parse(&manifest.body).expect("manifest"),
        manifest.body.clone(),
    )
}

fn update_id(report: &Value, platform: &str) -> String {
    report["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .find(|u| u["platform"] == platform)
        .and_then(|u| u["id"].as_str())
        .unwrap_or_else(|| panic!("no {platform} update in {report:#}"))
        .to_owned()
}

#[test]
fn deploy_then_roll_back_and_out_end_to_end() {
    let project = Project::create("fixture");

    // v1: every file travels, signed with the fixture key under keyid "main".
    let v1 = project.deploy("exports/v1", "v1").ok().json();
    assert_keys(
        &v1,
        &[
            "project",
            "group",
            "groups",
            "updates",
            "message",
            "rollout_percentage",
            "keyid",
            "assets",
            "env_files",
        ],
    );
    assert_eq!(v1["project"], project.reference.as_str());
    assert_eq!(v1["keyid"], "main");
    assert_eq!(v1["rollout_percentage"], 100);
    assert_eq!(v1["updates"].as_array().unwrap().len(), 2);
    for update in v1["updates"].as_array().unwrap() {
        assert_keys(
            update,
            &["platform", "id", "runtime_version", "group", "signed"],
        );
        assert_eq!(update["runtime_version"], "1.0.0");
        assert_eq!(update["group"], v1["group"]);
    }
    let assets = &v1["assets"];
    assert_keys(
        assets,
        &[
            "total",
            "uploaded",
            "uploaded_bytes",
            "uploaded_bundles",
            "reused",
            "reused_bytes",
        ],
    );
    assert_eq!(
        assets["total"], 5,
        "2 bundles + 3 assets shared by both platforms"
    );
    assert_eq!(assets["uploaded"], 5);
    assert_eq!(assets["uploaded_bundles"], 2);
    assert_eq!(assets["reused"], 0);
    assert_eq!(
        v1["env_files"],
        serde_json::json!([
            ".env.production.local",
            ".env.local",
            ".env.production",
            ".env"
        ])
    );

    // A device gets v1: signed (openssl agrees), every asset downloads with its hash and key.
    let metadata =
        ExportMetadata::parse(&std::fs::read(fixture("exports/v1/metadata.json")).unwrap())
            .unwrap();
    for platform in Platform::ALL {
        let (manifest, _) = served_manifest(&project, platform);
        assert_eq!(manifest.id.to_string(), update_id(&v1, platform.as_str()));
        assert_eq!(manifest.runtime_version, "1.0.0");
        let client = &manifest.extra["expoClient"];
        assert_eq!(client["name"], "Otago Example");
        assert!(
            client["updates"].get("codeSigningCertificate").is_none(),
            "expoClient is the public config"
        );
        assert!(client["updates"].get("codeSigningMetadata").is_none());
        assert_eq!(manifest.assets.len(), 3);
        for asset in manifest.all_assets() {
            let bytes = download(&asset.url);
            assert_eq!(asset_hash(&bytes), asset.hash, "{}", asset.url);
            assert_eq!(asset_key(&bytes), asset.key, "{}", asset.url);
        }
        let bundle = std::fs::read(
            fixture("exports/v1").join(metadata.platform(platform).unwrap().bundle.as_str()),
        )
        .unwrap();
        assert_eq!(manifest.launch_asset.hash, asset_hash(&bundle));
    }

    // v2: only the two bundles travel; the three assets are reused.
    let v2 = project.deploy("exports/v2", "v2").ok().json();
    assert_eq!(v2["assets"]["uploaded"], 2, "{v2:#}");
    assert_eq!(v2["assets"]["uploaded_bundles"], 2);
    assert_eq!(v2["assets"]["reused"], 3);
    let (served, _) = served_manifest(&project, Platform::Ios);
    assert_eq!(served.id.to_string(), update_id(&v2, "ios"));

    // No rollout is in progress after a full deploy: nothing to raise or revert.
    for change in [&["--percentage", "50"][..], &["--revert"][..]] {
        let mut args = vec!["rollout", "--project", &project.reference];
        args.extend_from_slice(change);
        let refused = project.run(&args, &project.key_env()).fails_with(3);
        assert!(
            refused.stderr.contains(&format!(
                "project {} has no rollout in progress",
                project.reference
            )),
            "{}",
            refused.stderr
        );
    }

    // v3 (v1's code) to half the devices, with its signed standby revert over v2.
    let v3 = project
        .run(
            &[
                "--json",
                "deploy",
                "--project",
                &project.reference,
                "--input-dir",
                &crate::harness::fixture_str("exports/v1"),
                "--app-dir",
                &project.app_dir_str(),
                "--rollout-percentage",
                "50",
                "--message",
                "v3",
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(v3["rollout_percentage"], 50);
    // While it runs, a deploy is refused before anything is uploaded.
    let blocked = project.deploy("exports/v2", "blocked").fails_with(3);
    assert!(
        blocked.stderr.contains(&format!(
            "finish it with `otago rollout --project {0} --percentage 100` or revert it with `otago rollout --project {0} --revert`",
            project.reference
        )),
        "{}",
        blocked.stderr
    );
    assert!(!blocked.stderr.contains("Uploading"), "{}", blocked.stderr);
    // Lowering is refused; the rollout stays at 50 %.
    let lower = project
        .run(
            &[
                "rollout",
                "--project",
                &project.reference,
                "--percentage",
                "30",
            ],
            &project.key_env(),
        )
        .fails_with(6);
    assert!(
        lower
            .stderr
            .contains("lowering it to 30% would not take the update back"),
        "{}",
        lower.stderr
    );
    // The revert: a device on v3 gets the standby (v2's code, signed), others no update.
    let reverted = project
        .run(
            &[
                "--json",
                "rollout",
                "--project",
                &project.reference,
                "--revert",
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(reverted["action"], "revert");
    assert_eq!(reverted["group"]["id"], v3["group"]);
    assert_eq!(reverted["group"]["state"], "reverted");
    let v3_ios = update_id(&v3, "ios");
    let on_v3 = fetch_update_as(&project.update_url, Platform::Ios, Some(&v3_ios));
    let standby = parts(&on_v3)
        .into_iter()
        .find(|part| part.name == "manifest")
        .expect("the standby");
    assert_signed_by_fixture(&standby);
    let standby = Manifest::parse(&standby.body).unwrap();
    assert_eq!(
        standby.id.to_string(),
        reverted["group"]["updates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["platform"] == "ios")
            .unwrap()["standby_id"]
    );
    let (v2_ios, _) = served_manifest(&project, Platform::Ios);
    assert_eq!(v2_ios.id.to_string(), update_id(&v2, "ios"));
    assert_eq!(
        standby.launch_asset.hash, v2_ios.launch_asset.hash,
        "v2's code"
    );
    let on_v2 = fetch_update_as(
        &project.update_url,
        Platform::Ios,
        Some(&update_id(&v2, "ios")),
    );
    assert_eq!(on_v2.status, 204, "a device on the control gets no update");

    // Roll back to v1's group: republished with new ids and signed anew.
    let v1_group = v1["group"].as_str().unwrap();
    let back = project
        .run(
            &[
                "--json",
                "rollback",
                "--project",
                &project.reference,
                "--to",
                v1_group,
                "--app-dir",
                &project.app_dir_str(),
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_keys(
        &back,
        &[
            "project",
            "kind",
            "group",
            "groups",
            "from_group",
            "updates",
            "message",
        ],
    );
    assert_eq!(back["kind"], "republish");
    assert_eq!(back["from_group"], v1_group);
    for platform in Platform::ALL {
        let (manifest, _) = served_manifest(&project, platform);
        let id = update_id(&back, platform.as_str());
        assert_eq!(manifest.id.to_string(), id);
        assert_ne!(id, update_id(&v1, platform.as_str()));
        let bundle = std::fs::read(
            fixture("exports/v1").join(metadata.platform(platform).unwrap().bundle.as_str()),
        )
        .unwrap();
        assert_eq!(
            manifest.launch_asset.hash,
            asset_hash(&bundle),
            "serves v1's bundle again"
        );
    }

    // Roll back to the embedded update: a signed rollBackToEmbedded directive.
    let embedded = project
        .run(
            &[
                "--json",
                "rollback",
                "--project",
                &project.reference,
                "--to-embedded",
                "--app-dir",
                &project.app_dir_str(),
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(embedded["kind"], "rollback_to_embedded");
    assert_eq!(embedded["from_group"], Value::Null);
    for platform in Platform::ALL {
        let response = fetch_update(&project.update_url, platform, "1.0.0");
        let parts = parts(&response);
        let directive = parts
            .iter()
            .find(|p| p.name == "directive")
            .expect("directive part");
        assert_signed_by_fixture(directive);
        let body: Value = serde_json::from_slice(&directive.body).unwrap();
        assert_eq!(body["type"], "rollBackToEmbedded");
        assert!(body["parameters"]["commitTime"].is_string());
    }

    // A rollback to the embedded update is a full release, not a rollout: nothing to revert.
    project
        .run(
            &["rollout", "--project", &project.reference, "--revert"],
            &project.key_env(),
        )
        .fails_with(3);

    // The history, newest first.
    let list = project
        .run(
            &["--json", "updates", "list", "--project", &project.reference],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_keys(&list, &["project", "groups"]);
    let groups = list["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 5);
    for group in groups {
        assert_keys(
            group,
            &[
                "id",
                "runtime_version",
                "message",
                "created_at",
                "rollout_percentage",
                "state",
                "reverted",
                "kind",
                "health",
                "updates",
            ],
        );
    }
    assert_eq!(groups[0]["id"], embedded["group"]);
    assert_eq!(groups[0]["kind"], "rollback_to_embedded");
    assert_eq!(groups[2]["id"], v3["group"]);
    assert_eq!(groups[2]["state"], "reverted");
    assert_eq!(groups[2]["health_gate"]["max_failure_rate"], 5.0);
    assert_eq!(
        groups[2]["updates"][0]["standby_health"]["served"], 1,
        "the device on v3 was served the standby"
    );
    assert_eq!(groups[4]["id"], v1["group"]);
    assert_eq!(groups[4]["message"], "v1");

    // Human output names the group, the ids and the transfer.
    let text = project
        .run(
            &[
                "deploy",
                "--project",
                &project.reference,
                "--input-dir",
                &crate::harness::fixture_str("exports/v2"),
                "--app-dir",
                &project.app_dir_str(),
            ],
            &project.key_env(),
        )
        .ok();
    assert!(
        text.stdout.contains("Published update group"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("iOS update"), "{}", text.stdout);
    assert!(text.stdout.contains("reused"), "{}", text.stdout);
    assert!(
        text.stderr.contains("env: load .env.production.local"),
        "{}",
        text.stderr
    );
}

#[test]
fn deploy_single_platform_with_runtime_version_override() {
    let project = Project::create("single");
    let report = project
        .run(
            &[
                "--json",
                "deploy",
                "--project",
                &project.reference,
                "--platform",
                "android",
                "--input-dir",
                &crate::harness::fixture_str("exports/v1"),
                "--app-dir",
                &project.app_dir_str(),
                "--runtime-version",
                "9.9.9",
                "--rollout-percentage",
                "25",
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    let updates = report["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["platform"], "android");
    assert_eq!(updates[0]["runtime_version"], "9.9.9");
    assert_eq!(report["rollout_percentage"], 25);
    assert_eq!(
        report["assets"]["uploaded"], 4,
        "one bundle and three assets"
    );
}

#[test]
fn a_deploy_for_an_app_pointed_elsewhere_is_refused_naming_both_urls() {
    let project = Project::create("elsewhere");
    // The fixture app as it is: its updates.url is another server's.
    let refused = project
        .run(
            &[
                "deploy",
                "--project",
                &project.reference,
                "--input-dir",
                &crate::harness::fixture_str("exports/v1"),
                "--app-dir",
                FIXTURE,
            ],
            &project.key_env(),
        )
        .fails_with(3);
    assert!(
        refused.stderr.contains(&format!(
            "app config: updates.url is `http://127.0.0.1:3000/manifest/example`, but project {}'s update URL is `{}`: apps built with this config would never get this update; set updates.url to `{}` and rebuild the app",
            project.reference, project.update_url, project.update_url
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(project.group_count(), 0, "nothing published");
}

#[test]
fn rollback_to_embedded_without_an_app_config_follows_the_project() {
    let project = Project::create("noconfig");
    project.deploy("exports/v1", "v1").ok();
    let empty = tempfile::tempdir().unwrap();
    let report = project
        .run(
            &[
                "--json",
                "rollback",
                "--project",
                &project.reference,
                "--to-embedded",
                "--platform",
                "ios",
                "--app-dir",
                &empty.path().to_string_lossy(),
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(report["updates"].as_array().unwrap().len(), 1);
    assert_eq!(
        report["updates"][0]["runtime_version"], "1.0.0",
        "the newest group's runtime version"
    );
    assert_eq!(report["message"], "Roll back to embedded");
    let response = fetch_update(&project.update_url, Platform::Ios, "1.0.0");
    let parts = parts(&response);
    let directive = parts
        .iter()
        .find(|p| p.name == "directive")
        .expect("directive part");
    assert_signed_by_fixture(directive);
    // Android still gets v1.
    let (manifest, _) = served_manifest(&project, Platform::Android);
    assert_eq!(manifest.launch_asset.content_type, "application/javascript");
}

#[test]
fn a_deploy_knows_the_runtime_versions_in_the_field() {
    let project = Project::create("fleetguard");
    let strict = |project: &Project| {
        let mut args = vec![
            "deploy",
            "--project",
            &project.reference,
            "--platform",
            "ios",
        ];
        let input = crate::harness::fixture_str("exports/v1");
        let app = project.app_dir_str();
        args.extend(["--input-dir", &input, "--app-dir", &app, "--strict"]);
        project.run(&args, &project.key_env())
    };
    // No device asked yet: a warning, and the deploy goes on.
    let first = project.deploy("exports/v1", "v1").ok();
    assert!(
        first.stderr.contains(
            "no ios device asked for runtime version 1.0.0 in the last 30 days (no device asked at all): the update reaches devices only once a build with this runtime version ships"
        ),
        "{}",
        first.stderr
    );
    // The field runs 2.0.0 (three devices) and 0.9.0 (one): listed with their shares.
    for (runtime_version, devices) in [("2.0.0", 0..3), ("0.9.0", 3..4)] {
        for n in devices {
            crate::harness::block_on(async {
                otago_cli::client::Client::new("http://unused", None)
                    .unwrap()
                    .fetch_manifest(
                        &project.update_url,
                        &otago_cli::client::ProtocolRequest {
                            platform: Platform::Ios,
                            runtime_version,
                            expect_signature_keyid: Some("main"),
                            client_id: Some(&format!("a0000000-0000-4000-8000-00000000000{n}")),
                            current_update_id: None,
                            embedded_update_id: None,
                        },
                    )
                    .await
                    .unwrap()
            });
        }
    }
    project.server.flush();
    let refused = strict(&project).fails_with(3);
    assert!(
        refused.stderr.contains(
            "no ios device asked for runtime version 1.0.0 in the last 30 days (devices run 2.0.0 (75 %), 0.9.0 (25 %)); ship a build with runtime version 1.0.0 first, or deploy for one the devices run (without --strict this is a warning)"
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(project.group_count(), 1, "nothing more published");
    // Once a device runs 1.0.0, --strict deploys.
    fetch_update(&project.update_url, Platform::Ios, "1.0.0");
    project.server.flush();
    let passed = strict(&project).ok();
    assert!(
        !passed.stderr.contains("no ios device"),
        "{}",
        passed.stderr
    );
}
