//! Runtime versions resolved from the fixture's app.json and `expo config` output.
#![allow(clippy::disallowed_methods)]

use otago_core::{
    Error, Platform, RuntimeVersion, RuntimeVersionPolicy, Workflow, parse_app_config,
    resolve_runtime_version, runtime_version_policy,
};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

/// The fixture's whole app.json (with its top-level `expo` key).
fn app_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/app.json")).unwrap()).unwrap()
}

fn resolved(config: &Value, platform: Platform) -> String {
    match resolve_runtime_version(config, platform, Workflow::Managed).unwrap() {
        RuntimeVersion::Resolved(version) => version,
        RuntimeVersion::NeedsFingerprint => panic!("unexpected fingerprint"),
    }
}

fn reason(result: Result<RuntimeVersion, Error>) -> String {
    match result {
        Err(Error::RuntimeVersion { reason }) => reason,
        other => panic!("expected a runtime version error, got {other:?}"),
    }
}

#[test]
fn app_version_policy_of_the_fixture() {
    let app = app_json();
    assert_eq!(resolved(&app, Platform::Ios), "1.0.0");
    assert_eq!(resolved(&app, Platform::Android), "1.0.0");
    // The `expo` object alone works the same.
    assert_eq!(resolved(&app["expo"], Platform::Ios), "1.0.0");
    assert_eq!(
        runtime_version_policy(&app, Platform::Ios).unwrap(),
        Some(RuntimeVersionPolicy::AppVersion)
    );
}

#[test]
fn native_version_policy() {
    let mut app = app_json();
    app["expo"]["runtimeVersion"] = json!({"policy": "nativeVersion"});
    assert_eq!(resolved(&app, Platform::Ios), "1.0.0(45)");
    assert_eq!(resolved(&app, Platform::Android), "1.0.0(45)");

    app["expo"]["ios"]["version"] = json!("2.0.0");
    assert_eq!(resolved(&app, Platform::Ios), "2.0.0(45)");
    assert_eq!(resolved(&app, Platform::Android), "1.0.0(45)");
}

#[test]
fn sdk_version_policy_needs_expo_config_output() {
    let public = std::fs::read_to_string(format!("{FIXTURE}/expo-config.public.json")).unwrap();
    let mut config = parse_app_config(&public).unwrap();
    config["runtimeVersion"] = json!({"policy": "sdkVersion"});
    assert_eq!(resolved(&config, Platform::Ios), "exposdk:56.0.0");
    assert_eq!(resolved(&config, Platform::Android), "exposdk:56.0.0");

    // app.json itself has no sdkVersion.
    let mut app = app_json();
    app["expo"]["runtimeVersion"] = json!({"policy": "sdkVersion"});
    let why = reason(resolve_runtime_version(
        &app,
        Platform::Ios,
        Workflow::Managed,
    ));
    assert!(
        why.contains("`sdkVersion`") && why.contains("npx expo config --json"),
        "{why}"
    );
}

#[test]
fn plain_string_and_per_platform_overrides() {
    let mut app = app_json();
    app["expo"]["runtimeVersion"] = json!("2024.1");
    assert_eq!(resolved(&app, Platform::Android), "2024.1");

    app["expo"]["ios"]["runtimeVersion"] = json!("ios-only-1");
    app["expo"]["android"]["runtimeVersion"] = json!({"policy": "nativeVersion"});
    assert_eq!(resolved(&app, Platform::Ios), "ios-only-1");
    assert_eq!(resolved(&app, Platform::Android), "1.0.0(45)");

    // A null override falls back to the top level.
    app["expo"]["ios"]["runtimeVersion"] = Value::Null;
    assert_eq!(resolved(&app, Platform::Ios), "2024.1");
}

#[test]
fn fingerprint_needs_external_resolution() {
    let mut app = app_json();
    app["expo"]["runtimeVersion"] = json!({"policy": "fingerprint"});
    for workflow in [Workflow::Managed, Workflow::Bare] {
        let version = resolve_runtime_version(&app, Platform::Android, workflow).unwrap();
        assert_eq!(version, RuntimeVersion::NeedsFingerprint);
        assert_eq!(version.as_resolved(), None);
    }
    app["expo"]["runtimeVersion"] = json!("file:fingerprint");
    assert!(
        reason(resolve_runtime_version(
            &app,
            Platform::Ios,
            Workflow::Managed
        ))
        .contains("\"fingerprint\"")
    );
}

#[test]
fn bare_projects_take_only_strings() {
    let app = app_json();
    let why = reason(resolve_runtime_version(&app, Platform::Ios, Workflow::Bare));
    assert!(
        why.contains("bare project") && why.contains("\"1.0.0\""),
        "{why}"
    );
    let mut fixed = app_json();
    fixed["expo"]["runtimeVersion"] = json!("1.0.0");
    assert_eq!(
        resolve_runtime_version(&fixed, Platform::Ios, Workflow::Bare).unwrap(),
        RuntimeVersion::Resolved("1.0.0".to_owned())
    );
}

#[test]
fn missing_runtime_version_says_how_to_set_one() {
    let mut app = app_json();
    app["expo"]
        .as_object_mut()
        .unwrap()
        .remove("runtimeVersion");
    assert_eq!(runtime_version_policy(&app, Platform::Ios).unwrap(), None);
    let why = reason(resolve_runtime_version(
        &app,
        Platform::Ios,
        Workflow::Managed,
    ));
    assert!(
        why.contains("\"runtimeVersion\": {\"policy\": \"appVersion\"}")
            && why.contains("app.json"),
        "{why}"
    );
    let message = resolve_runtime_version(&app, Platform::Ios, Workflow::Managed)
        .unwrap_err()
        .to_string();
    assert!(
        message
            .starts_with("cannot resolve the runtime version: no runtime version is set for ios"),
        "{message}"
    );
}

#[test]
fn missing_fields_are_named() {
    let mut app = app_json();
    app["expo"]["runtimeVersion"] = json!({"policy": "nativeVersion"});
    app["expo"]["ios"]
        .as_object_mut()
        .unwrap()
        .remove("buildNumber");
    app["expo"]["android"]
        .as_object_mut()
        .unwrap()
        .remove("versionCode");
    assert!(
        reason(resolve_runtime_version(
            &app,
            Platform::Ios,
            Workflow::Managed
        ))
        .contains("`ios.buildNumber`")
    );
    assert!(
        reason(resolve_runtime_version(
            &app,
            Platform::Android,
            Workflow::Managed
        ))
        .contains("`android.versionCode`")
    );

    app["expo"].as_object_mut().unwrap().remove("version");
    assert!(
        reason(resolve_runtime_version(
            &app,
            Platform::Ios,
            Workflow::Managed
        ))
        .contains("`version`")
    );
    app["expo"]["runtimeVersion"] = json!({"policy": "appVersion"});
    let why = reason(resolve_runtime_version(
        &app,
        Platform::Android,
        Workflow::Managed,
    ));
    assert!(
        why.contains("appVersion policy needs `version`") && why.contains("1.0.0"),
        "{why}"
    );
}

#[test]
fn invalid_settings_are_errors() {
    for (setting, expected) in [
        (
            json!({"policy": "gitHash"}),
            "\"gitHash\", which is not a policy",
        ),
        (json!({"version": "1"}), "without a \"policy\""),
        (json!(42), "`runtimeVersion` is 42"),
        (json!(["1.0.0"]), "must be a string"),
    ] {
        let mut app = app_json();
        app["expo"]["runtimeVersion"] = setting;
        let why = reason(resolve_runtime_version(
            &app,
            Platform::Ios,
            Workflow::Managed,
        ));
        assert!(why.contains(expected), "{why}");
    }
    let mut app = app_json();
    app["expo"]["android"]["runtimeVersion"] = json!({"policy": "nope"});
    assert!(
        reason(resolve_runtime_version(
            &app,
            Platform::Android,
            Workflow::Managed
        ))
        .contains("`android.runtimeVersion.policy`")
    );
}
