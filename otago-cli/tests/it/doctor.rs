//! `otago doctor` on the example app, set up right and set up wrong.

use otago_cli::OtagoExitCode;
use serde_json::Value;

use crate::harness::{Project, assert_keys, fixture, otago};

/// A copy of the example app as a developer would have it: app.json pointing at the project,
/// its certificate, package.json, expo-updates installed, `.env*.local` git-ignored.
fn app_dir(project: &Project, change: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut app_json: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("app.json")).unwrap()).unwrap();
    app_json["expo"]["updates"]["url"] = Value::from(project.update_url.clone());
    change(&mut app_json["expo"]);
    std::fs::write(
        dir.path().join("app.json"),
        serde_json::to_string_pretty(&app_json).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    std::fs::copy(
        fixture("certs/certificate.pem"),
        dir.path().join("certs/certificate.pem"),
    )
    .unwrap();
    std::fs::copy(fixture("package.json"), dir.path().join("package.json")).unwrap();
    std::fs::copy(fixture(".env.local"), dir.path().join(".env.local")).unwrap();
    std::fs::write(
        dir.path().join(".gitignore"),
        "node_modules/\n.env*.local\n",
    )
    .unwrap();
    let updates = dir.path().join("node_modules/expo-updates");
    std::fs::create_dir_all(&updates).unwrap();
    std::fs::write(
        updates.join("package.json"),
        r#"{"name":"expo-updates","version":"56.0.27"}"#,
    )
    .unwrap();
    dir
}

fn doctor(project: &Project, dir: &tempfile::TempDir, env: &[(&str, String)]) -> (i32, Value) {
    let app_dir = dir.path().to_string_lossy().into_owned();
    let run = project.run(
        &[
            "--json",
            "doctor",
            "--project",
            &project.reference,
            "--app-dir",
            &app_dir,
        ],
        env,
    );
    (run.code, run.json())
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check `{id}` in {report:#}"))
}

#[track_caller]
fn assert_fails(report: &Value, id: &str, words: &[&str]) {
    let found = check(report, id);
    assert_eq!(found["status"], "fail", "{found:#}");
    let text = format!("{} {}", found["message"], found["fix"]);
    for word in words {
        assert!(text.contains(word), "`{word}` not in {text}");
    }
    assert_eq!(report["ok"], false);
}

#[test]
fn doctor_passes_on_the_fixture_set_up_for_the_project() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |_| {});
    let (code, report) = doctor(&project, &dir, &project.key_env());
    assert_eq!(code, 0, "{report:#}");
    assert_keys(
        &report,
        &[
            "project", "app_dir", "ok", "passed", "warned", "failed", "skipped", "checks",
        ],
    );
    assert_eq!(report["ok"], true);
    assert_eq!(report["failed"], 0);
    for id in [
        "server",
        "expo-updates",
        "env-files",
        "app-config",
        "updates-url",
        "runtime-version-ios",
        "runtime-version-android",
        "updates-options",
        "certificate",
        "certificate-usages",
        "certificate-expiry",
        "certificate-key",
        "env-local-ignored",
    ] {
        let found = check(&report, id);
        assert_keys(found, &["id", "status", "message", "fix"]);
        assert_eq!(found["status"], "pass", "{found:#}");
    }
    assert!(
        check(&report, "runtime-version-ios")["message"]
            .as_str()
            .unwrap()
            .contains("1.0.0")
    );

    // The text form: one ✓ line per check.
    let app_dir = dir.path().to_string_lossy().into_owned();
    let text = project
        .run(
            &[
                "doctor",
                "--project",
                &project.reference,
                "--app-dir",
                &app_dir,
            ],
            &project.key_env(),
        )
        .ok();
    assert!(
        text.stdout.lines().filter(|l| l.starts_with('✓')).count() >= 13,
        "{}",
        text.stdout
    );
}

#[test]
fn doctor_names_a_wrong_update_url() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |expo| {
        expo["updates"]["url"] = Value::from("http://localhost:3000/api/manifest")
    });
    let (code, report) = doctor(&project, &dir, &project.key_env());
    assert_eq!(code, i32::from(OtagoExitCode::CHECKS_FAILED));
    assert_fails(
        &report,
        "updates-url",
        &["http://localhost:3000/api/manifest", &project.update_url],
    );
}

#[test]
fn doctor_names_a_certificate_that_does_not_match_the_key() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |_| {});
    let other = tempfile::tempdir().unwrap();
    otago(
        &[
            "codesigning",
            "generate",
            "--key-output-directory",
            &other.path().join("k").to_string_lossy(),
            "--certificate-output-directory",
            &other.path().join("c").to_string_lossy(),
            "--certificate-validity-duration-years",
            "5",
            "--certificate-common-name",
            "Other",
        ],
        &[],
    )
    .ok();
    let mut env = project.key_env();
    env.retain(|(name, _)| *name != "OTAGO_PRIVATE_KEY");
    env.push((
        "OTAGO_PRIVATE_KEY",
        other
            .path()
            .join("k/private-key.pem")
            .to_string_lossy()
            .into_owned(),
    ));
    let (code, report) = doctor(&project, &dir, &env);
    assert_eq!(code, i32::from(OtagoExitCode::CHECKS_FAILED));
    assert_fails(
        &report,
        "certificate-key",
        &["does not match the certificate", "private-key.pem"],
    );
}

#[test]
fn doctor_names_an_invalid_check_automatically() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |expo| {
        expo["updates"]["checkAutomatically"] = Value::from("SOMETIMES")
    });
    let (code, report) = doctor(&project, &dir, &project.key_env());
    assert_eq!(code, i32::from(OtagoExitCode::CHECKS_FAILED));
    assert_fails(
        &report,
        "updates-options",
        &["checkAutomatically", "SOMETIMES", "ON_LOAD"],
    );

    // The text form shows ✗ and the fix.
    let app_dir = dir.path().to_string_lossy().into_owned();
    let text = project.run(
        &[
            "doctor",
            "--project",
            &project.reference,
            "--app-dir",
            &app_dir,
        ],
        &project.key_env(),
    );
    assert_eq!(text.code, i32::from(OtagoExitCode::CHECKS_FAILED));
    assert!(text.stdout.contains("✗ updates-options"), "{}", text.stdout);
    assert!(text.stdout.contains("→ use \"ON_LOAD\""), "{}", text.stdout);
    assert!(text.stderr.contains("checks failed"), "{}", text.stderr);
}

#[test]
fn doctor_names_a_missing_runtime_version() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |expo| {
        expo.as_object_mut().unwrap().remove("runtimeVersion");
    });
    let (code, report) = doctor(&project, &dir, &project.key_env());
    assert_eq!(code, i32::from(OtagoExitCode::CHECKS_FAILED));
    assert_fails(
        &report,
        "runtime-version-ios",
        &["runtime version", "runtimeVersion"],
    );
    assert_fails(&report, "runtime-version-android", &["runtime version"]);
}

#[test]
fn doctor_names_an_unreachable_server_and_a_missing_expo_updates() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |_| {});
    std::fs::remove_dir_all(dir.path().join("node_modules")).unwrap();
    let mut env = project.key_env();
    env.retain(|(name, _)| *name != "OTAGO_SERVER_URL");
    env.push(("OTAGO_SERVER_URL", "http://127.0.0.1:9".to_owned()));
    let (code, report) = doctor(&project, &dir, &env);
    assert_eq!(code, i32::from(OtagoExitCode::CHECKS_FAILED));
    assert_fails(&report, "server", &["cannot reach"]);
    assert_fails(&report, "expo-updates", &["not installed", "npm install"]);
}

#[test]
fn doctor_names_the_command_that_requires_signing() {
    let project = Project::create("doctor");
    let dir = app_dir(&project, |_| {});
    let (code, report) = doctor(&project, &dir, &project.key_env());
    assert_eq!(code, 0, "a warning does not fail the run: {report:#}");
    let found = check(&report, "certificate-project");
    assert_eq!(found["status"], "warn", "{found:#}");
    let certificate = dir.path().join("certs/certificate.pem");
    let command = format!(
        "otago projects update --project {} --require-signing true --certificate {}",
        project.reference,
        certificate.display()
    );
    let fix = found["fix"].as_str().unwrap();
    assert!(fix.contains(&command), "`{command}` not in {fix}");

    // Running it makes the check pass.
    project
        .run(
            &[
                "projects",
                "update",
                "--project",
                &project.reference,
                "--require-signing",
                "true",
                "--certificate",
                &certificate.to_string_lossy(),
            ],
            &project.admin_env(),
        )
        .ok();
    let (code, report) = doctor(&project, &dir, &project.key_env());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        check(&report, "certificate-project")["status"],
        "pass",
        "{report:#}"
    );
}
