//! `otago doctor` checks on the example app's app.json and broken variants of it.
#![allow(clippy::disallowed_methods)]

use otago_core::{
    Error, Finding, FindingCode, Severity, Workflow, check_app_config, parse_app_config,
};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");
const URL: &str = "http://127.0.0.1:3000/manifest/example";

/// The fixture's whole app.json (with its top-level `expo` key).
fn app_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/app.json")).unwrap()).unwrap()
}

fn codes(findings: &[Finding]) -> Vec<FindingCode> {
    findings.iter().map(|finding| finding.code).collect()
}

/// Checks the fixture after `edit` and returns the findings.
fn check(edit: impl FnOnce(&mut Value)) -> Vec<Finding> {
    let mut app = app_json();
    edit(&mut app["expo"]);
    check_app_config(&app, Some(URL), Workflow::Managed).unwrap()
}

#[test]
fn fixture_has_no_findings() {
    let app = app_json();
    assert_eq!(
        check_app_config(&app, Some(URL), Workflow::Managed).unwrap(),
        []
    );
    assert_eq!(
        check_app_config(&app["expo"], Some(URL), Workflow::Managed).unwrap(),
        []
    );
    assert_eq!(check_app_config(&app, None, Workflow::Managed).unwrap(), []);
    // The public `expo config` output drops the code signing keys; still fine.
    let public = std::fs::read_to_string(format!("{FIXTURE}/expo-config.public.json")).unwrap();
    assert_eq!(
        check_app_config(
            &parse_app_config(&public).unwrap(),
            Some(URL),
            Workflow::Managed
        )
        .unwrap(),
        []
    );
}

#[test]
fn wrong_url_names_both() {
    let findings = check(|expo| {
        expo["updates"]["url"] = json!("https://otago.example.com/api/other-project/manifest")
    });
    assert_eq!(codes(&findings), [FindingCode::UpdatesUrlMismatch]);
    let finding = &findings[0];
    assert_eq!(finding.severity, Severity::Error);
    assert!(
        finding
            .message
            .contains("https://otago.example.com/api/other-project/manifest")
            && finding.message.contains(URL)
    );
    assert!(finding.fix.contains(URL));
}

#[test]
fn url_problems() {
    assert_eq!(
        codes(&check(|expo| expo["updates"]
            .as_object_mut()
            .unwrap()
            .clear())),
        [FindingCode::UpdatesUrlMissing]
    );
    for bad in [
        json!("localhost:3000/api/manifest"),
        json!("/api/manifest"),
        json!("ftp://x/y"),
        json!("http://"),
        json!(3),
    ] {
        assert_eq!(
            codes(&check(|expo| expo["updates"]["url"] = bad)),
            [FindingCode::UpdatesUrlInvalid]
        );
    }
    let mut app = app_json();
    app["expo"]["updates"]["url"] =
        json!("https://u.expo.dev/0b7c7e1e-0000-4000-8000-000000000000");
    let findings = check_app_config(&app, None, Workflow::Managed).unwrap();
    assert_eq!(codes(&findings), [FindingCode::UpdatesUrlExpoHosted]);
    assert_eq!(findings[0].severity, Severity::Warning);
}

#[test]
fn disabled_updates() {
    assert_eq!(
        codes(&check(|expo| expo["updates"]["enabled"] = json!(false))),
        [FindingCode::UpdatesDisabled]
    );
    assert_eq!(
        codes(&check(|expo| expo["updates"]["enabled"] = json!("yes"))),
        [FindingCode::UpdatesEnabledInvalid]
    );
}

#[test]
fn invalid_check_automatically() {
    let findings = check(|expo| expo["updates"]["checkAutomatically"] = json!("ON_ERROR"));
    assert_eq!(codes(&findings), [FindingCode::CheckAutomaticallyInvalid]);
    assert!(
        findings[0].fix.contains("\"ON_ERROR_RECOVERY\""),
        "{}",
        findings[0].fix
    );
    let findings = check(|expo| expo["updates"]["checkAutomatically"] = json!("ALWAYS"));
    assert!(findings[0].fix.starts_with("use \"ON_LOAD\""));
    let findings = check(|expo| expo["updates"]["checkAutomatically"] = json!("wifi_only"));
    assert!(findings[0].fix.starts_with("use \"WIFI_ONLY\""));
    for good in ["ON_LOAD", "ON_ERROR_RECOVERY", "WIFI_ONLY", "NEVER"] {
        assert_eq!(
            check(|expo| expo["updates"]["checkAutomatically"] = json!(good)),
            []
        );
    }
}

#[test]
fn fallback_to_cache_timeout_out_of_range() {
    assert_eq!(
        codes(&check(
            |expo| expo["updates"]["fallbackToCacheTimeout"] = json!(400_000)
        )),
        [FindingCode::FallbackToCacheTimeoutInvalid]
    );
    for bad in [json!(-1), json!(1.5), json!("3000")] {
        assert_eq!(
            codes(&check(
                |expo| expo["updates"]["fallbackToCacheTimeout"] = bad
            )),
            [FindingCode::FallbackToCacheTimeoutInvalid]
        );
    }
    assert_eq!(
        check(|expo| expo["updates"]["fallbackToCacheTimeout"] = json!(300_000)),
        []
    );
}

#[test]
fn missing_runtime_version() {
    let findings = check(|expo| {
        expo.as_object_mut().unwrap().remove("runtimeVersion");
    });
    assert_eq!(codes(&findings), [FindingCode::RuntimeVersionMissing]);
    assert!(findings[0].message.contains("ios and android"));
    assert!(
        findings[0]
            .fix
            .contains("\"runtimeVersion\": {\"policy\": \"appVersion\"}")
    );

    // A per-platform setting covers its platform only.
    let findings = check(|expo| {
        expo.as_object_mut().unwrap().remove("runtimeVersion");
        expo["ios"]["runtimeVersion"] = json!("1.0.0");
    });
    assert_eq!(codes(&findings), [FindingCode::RuntimeVersionMissing]);
    assert!(
        findings[0].message.contains("for android,"),
        "{}",
        findings[0].message
    );
}

#[test]
fn unresolvable_runtime_version() {
    let findings = check(|expo| expo["runtimeVersion"] = json!({"policy": "gitHash"}));
    assert_eq!(codes(&findings), [FindingCode::RuntimeVersionInvalid]);
    let findings = check(|expo| {
        expo["runtimeVersion"] = json!({"policy": "nativeVersion"});
        expo["android"]
            .as_object_mut()
            .unwrap()
            .remove("versionCode");
    });
    assert_eq!(codes(&findings), [FindingCode::RuntimeVersionInvalid]);
    assert!(findings[0].message.contains("android") && findings[0].message.contains("versionCode"));
    assert_eq!(
        check(|expo| expo["runtimeVersion"] = json!({"policy": "fingerprint"})),
        []
    );
}

#[test]
fn code_signing_metadata() {
    let findings =
        check(|expo| expo["updates"]["codeSigningMetadata"]["alg"] = json!("rsa-pss-sha256"));
    assert_eq!(codes(&findings), [FindingCode::CodeSigningAlgInvalid]);
    assert!(findings[0].message.contains("rsa-pss-sha256"));

    for bad in [json!(""), json!(7)] {
        assert_eq!(
            codes(&check(
                |expo| expo["updates"]["codeSigningMetadata"]["keyid"] = bad
            )),
            [FindingCode::CodeSigningKeyidInvalid]
        );
    }
    let findings = check(|expo| {
        expo["updates"]["codeSigningMetadata"]
            .as_object_mut()
            .unwrap()
            .remove("keyid");
    });
    assert_eq!(codes(&findings), [FindingCode::CodeSigningKeyidMissing]);
    assert_eq!(findings[0].severity, Severity::Warning);

    let findings = check(|expo| {
        expo["updates"]
            .as_object_mut()
            .unwrap()
            .remove("codeSigningMetadata");
    });
    assert_eq!(codes(&findings), [FindingCode::CodeSigningMetadataMissing]);
    assert!(findings[0].message.contains("\"root\""));

    let findings = check(|expo| {
        expo["updates"]
            .as_object_mut()
            .unwrap()
            .remove("codeSigningCertificate");
    });
    assert_eq!(codes(&findings), [FindingCode::CodeSigningMetadataUnused]);
    assert_eq!(
        codes(&check(
            |expo| expo["updates"]["codeSigningMetadata"] = json!("main")
        )),
        [FindingCode::CodeSigningMetadataInvalid]
    );
    assert_eq!(
        codes(&check(
            |expo| expo["updates"]["codeSigningCertificate"] = json!("")
        )),
        [FindingCode::CodeSigningCertificateInvalid]
    );
}

#[test]
fn several_problems_at_once() {
    let findings = check(|expo| {
        expo["updates"]["url"] = json!("https://elsewhere.example/manifest");
        expo["updates"]["checkAutomatically"] = json!("SOMETIMES");
        expo["updates"]["fallbackToCacheTimeout"] = json!(400_000);
        expo["updates"]["codeSigningMetadata"]["alg"] = json!("none");
        expo.as_object_mut().unwrap().remove("runtimeVersion");
    });
    assert_eq!(
        codes(&findings),
        [
            FindingCode::UpdatesUrlMismatch,
            FindingCode::CheckAutomaticallyInvalid,
            FindingCode::FallbackToCacheTimeoutInvalid,
            FindingCode::CodeSigningAlgInvalid,
            FindingCode::RuntimeVersionMissing,
        ]
    );
}

#[test]
fn bare_projects_need_a_string_runtime_version() {
    let app = app_json();
    let findings = check_app_config(&app, Some(URL), Workflow::Bare).unwrap();
    assert_eq!(codes(&findings), [FindingCode::RuntimeVersionInvalid]);
    assert!(
        findings[0].message.contains("ios and android")
            && findings[0].message.contains("bare project")
    );
    let mut fixed = app_json();
    fixed["expo"]["runtimeVersion"] = json!("1.2.3");
    assert_eq!(
        check_app_config(&fixed, Some(URL), Workflow::Bare).unwrap(),
        []
    );
}

#[test]
fn codes_are_stable_strings() {
    assert_eq!(
        FindingCode::UpdatesUrlMismatch.as_str(),
        "updates-url-mismatch"
    );
    assert_eq!(
        FindingCode::FallbackToCacheTimeoutInvalid.to_string(),
        "fallback-to-cache-timeout-invalid"
    );
    let finding = &check(|expo| expo["updates"]["enabled"] = json!(false))[0];
    let json = serde_json::to_value(finding).unwrap();
    assert_eq!(json["code"], "updates-disabled");
    assert_eq!(json["severity"], "error");
}

#[test]
fn malformed_configs_are_errors() {
    assert!(matches!(
        check_app_config(&json!([]), None, Workflow::Managed),
        Err(Error::AppConfig { .. })
    ));
    assert!(matches!(
        check_app_config(
            &json!({"expo": {"updates": "yes"}}),
            None,
            Workflow::Managed
        ),
        Err(Error::AppConfig { .. })
    ));
    assert!(matches!(
        parse_app_config("{\"expo\": "),
        Err(Error::AppConfig { .. })
    ));
    assert!(matches!(
        parse_app_config("3"),
        Err(Error::AppConfig { .. })
    ));
}
