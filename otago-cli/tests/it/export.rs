//! `otago deploy` without --input-dir runs the Expo tools; here a stand-in `npx` plays them
//! with the fixture's files and records how it was called.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;

use crate::harness::{FIXTURE, Project, fixture};

const FAKE_NPX: &str = r#"#!/bin/sh
# Stand-in for npx: logs its arguments and environment, then acts like the Expo tool asked for.
{
  echo "ARGS $*"
  echo "ENV NODE_ENV=$NODE_ENV EXPO_NO_DOTENV=$EXPO_NO_DOTENV EXPO_PUBLIC_API_URL=$EXPO_PUBLIC_API_URL"
} >> "$OTAGO_TEST_LOG"
case "$1 $2" in
  "expo export")
    while [ $# -gt 0 ]; do
      if [ "$1" = "--output-dir" ]; then out="$2"; fi
      shift
    done
    cp -R "$OTAGO_TEST_FIXTURE/exports/v1/." "$out/"
    echo "App exported to: $out"
    ;;
  "expo config")
    cat "$PWD/app.json"
    ;;
  "expo-updates runtimeversion:resolve")
    echo "{\"runtimeVersion\":\"fingerprint-$4\",\"fingerprintSources\":null,\"workflow\":\"$6\"}"
    ;;
  *)
    echo "Invalid command: $*" >&2
    exit 1
    ;;
esac
"#;

fn fake_npx(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let npx = bin.join("npx");
    std::fs::write(&npx, FAKE_NPX).unwrap();
    std::fs::set_permissions(&npx, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// An app folder with the fixture's config (changed by `change`), certificate, eas.json and .env files.
fn app(dir: &Path, change: impl FnOnce(&mut Value)) {
    let mut app_json: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("app.json")).unwrap()).unwrap();
    change(&mut app_json["expo"]);
    std::fs::write(dir.join("app.json"), app_json.to_string()).unwrap();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::copy(
        fixture("certs/certificate.pem"),
        dir.join("certs/certificate.pem"),
    )
    .unwrap();
    for name in [
        "eas.json",
        ".env",
        ".env.production",
        ".env.local",
        ".env.production.local",
    ] {
        std::fs::copy(fixture(name), dir.join(name)).unwrap();
    }
}

#[test]
fn deploy_runs_expo_export_and_config_with_the_loaded_env() {
    let project = Project::create("exported");
    let dir = tempfile::tempdir().unwrap();
    let app_dir = dir.path().join("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    app(&app_dir, |expo| {
        expo["updates"]["url"] = serde_json::json!(project.update_url);
        expo["runtimeVersion"] = serde_json::json!({"policy": "fingerprint"})
    });
    let log = dir.path().join("npx.log");
    let mut env = project.key_env();
    env.push(("PATH", fake_npx(dir.path())));
    env.push(("OTAGO_TEST_LOG", log.to_string_lossy().into_owned()));
    env.push(("OTAGO_TEST_FIXTURE", FIXTURE.to_owned()));

    let app_arg = app_dir.to_string_lossy().into_owned();
    let report = project
        .run(
            &[
                "--json",
                "deploy",
                "--project",
                &project.reference,
                "--app-dir",
                &app_arg,
            ],
            &env,
        )
        .ok()
        .json();
    let log_text = std::fs::read_to_string(&log).unwrap();

    // The config and the export saw the same env: NODE_ENV, .env.production's value, no dotenv.
    let expected_env = "ENV NODE_ENV=production EXPO_NO_DOTENV=1 EXPO_PUBLIC_API_URL=https://updates.example.com/api";
    assert_eq!(log_text.matches(expected_env).count(), 4, "{log_text}");
    assert!(log_text.contains("ARGS expo config --json"), "{log_text}");
    let export_line = log_text
        .lines()
        .find(|l| l.starts_with("ARGS expo export"))
        .expect("export ran");
    assert!(
        export_line.contains("--dump-assetmap --platform ios --platform android"),
        "{export_line}"
    );
    let output_dir = export_line.split_whitespace().nth(4).expect("output dir");
    assert!(
        !Path::new(output_dir).exists(),
        "the temporary export is removed"
    );
    assert!(
        log_text
            .contains("ARGS expo-updates runtimeversion:resolve --platform ios --workflow managed"),
        "{log_text}"
    );

    // Fingerprints differ per platform: one group per runtime version.
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{report:#}");
    let runtime_versions: Vec<&str> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["runtime_version"].as_str().unwrap())
        .collect();
    assert!(runtime_versions.contains(&"fingerprint-ios"), "{report:#}");
    assert!(
        runtime_versions.contains(&"fingerprint-android"),
        "{report:#}"
    );
    assert_eq!(report["input_dir"], Value::Null);
}

#[test]
fn turning_env_loading_off_keeps_the_env_files_out() {
    let project = Project::create("noenv");
    let dir = tempfile::tempdir().unwrap();
    let app_dir = dir.path().join("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    app(&app_dir, |expo| {
        expo["updates"]["url"] = serde_json::json!(project.update_url);
    });
    let log = dir.path().join("npx.log");
    let mut env = project.key_env();
    env.push(("PATH", fake_npx(dir.path())));
    env.push(("OTAGO_TEST_LOG", log.to_string_lossy().into_owned()));
    env.push(("OTAGO_TEST_FIXTURE", FIXTURE.to_owned()));
    env.push(("OTAGO_LOAD_ENVS", "false".to_owned()));
    env.push(("NODE_ENV", "staging".to_owned()));

    let app_arg = app_dir.to_string_lossy().into_owned();
    let report = project
        .run(
            &[
                "--json",
                "deploy",
                "--project",
                &project.reference,
                "--app-dir",
                &app_arg,
                "-p",
                "ios",
            ],
            &env,
        )
        .ok()
        .json();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("ENV NODE_ENV=staging EXPO_NO_DOTENV=1 EXPO_PUBLIC_API_URL=\n"),
        "{log_text}"
    );
    assert!(log_text.contains("--platform ios\n"), "{log_text}");
    assert_eq!(report["env_files"], serde_json::json!([]));
    assert_eq!(report["updates"][0]["runtime_version"], "1.0.0");
}
