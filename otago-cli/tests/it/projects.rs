//! `otago projects` and `otago keys`: their JSON output, project settings (signing) and
//! deletion.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use otago_cli::client::{Client, NewGroup, NewUpdate};
use otago_cli::deploy::{new_update_id, now};
use otago_cli::{CliError, OtagoExitCode};
use otago_core::{Manifest, Platform, SignatureHeader, SigningKey, generate_key_and_certificate};
use rand::SeedableRng as _;
use serde_json::Value;

use crate::harness::{
    ADMIN_TOKEN, FIXTURE, Project, TestServer, assert_keys, assert_signed_by_fixture, block_on,
    fetch_update, fixture_str, otago, parts,
};

/// The keys of `projects show` and `projects update`.
const PROJECT_DETAILS_KEYS: [&str; 10] = [
    "ref",
    "app",
    "environment",
    "update_url",
    "asset_base_url",
    "require_signing",
    "certificate_pem",
    "max_asset_bytes",
    "created_at",
    "certificate",
];

#[test]
fn projects_and_keys_print_documented_json() {
    let server = TestServer::start();
    let admin = [
        ("OTAGO_SERVER_URL", server.url.as_str()),
        ("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let created = otago(
        &[
            "--json", "projects", "create", "--app", "shop", "--env", "staging",
        ],
        &admin,
    )
    .ok()
    .json();
    assert_keys(
        &created,
        &[
            "ref",
            "app",
            "environment",
            "update_url",
            "asset_base_url",
            "require_signing",
            "app_json",
        ],
    );
    let reference = created["ref"].as_str().unwrap();
    assert_eq!(
        created["update_url"],
        format!("{}/manifest/{reference}", server.url)
    );
    assert_eq!(
        created["app_json"]["expo"]["updates"]["url"],
        created["update_url"]
    );

    let duplicate = otago(
        &["projects", "create", "--app", "shop", "--env", "staging"],
        &admin,
    );
    assert_eq!(
        duplicate.code,
        i32::from(OtagoExitCode::REJECTED),
        "{duplicate:?}"
    );
    assert!(duplicate.stderr.contains("409"), "{}", duplicate.stderr);

    let list = otago(&["--json", "projects", "list"], &admin).ok().json();
    assert_keys(&list, &["projects"]);
    assert_eq!(list["projects"][0]["ref"], reference);

    let key = otago(
        &[
            "--json",
            "keys",
            "create",
            "--project",
            reference,
            "--name",
            "laptop",
        ],
        &admin,
    )
    .ok()
    .json();
    assert_keys(&key, &["project", "id", "name", "key", "created_at"]);
    assert!(key["key"].as_str().unwrap().starts_with("otago_"));

    let keys = otago(&["--json", "keys", "list", "--project", reference], &admin)
        .ok()
        .json();
    assert_keys(&keys, &["project", "keys"]);
    assert_keys(
        &keys["keys"][0],
        &["id", "name", "created_at", "last_used_at", "revoked_at"],
    );
    assert!(
        !keys.to_string().contains(key["key"].as_str().unwrap()),
        "secrets are never listed"
    );

    let text = otago(
        &["projects", "create", "--app", "shop", "--env", "production"],
        &admin,
    )
    .ok();
    assert!(text.stdout.contains("update URL"), "{}", text.stdout);
    assert!(
        text.stdout.contains("\"url\""),
        "the app.json snippet: {}",
        text.stdout
    );
}

#[test]
fn a_project_key_cannot_create_projects() {
    let project = Project::create("scoped");
    let run = project.run(
        &[
            "projects",
            "create",
            "--app",
            "other",
            "--env",
            "production",
        ],
        &[
            ("OTAGO_SERVER_URL", project.server.url.clone()),
            ("OTAGO_API_KEY", project.key.clone()),
        ],
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::AUTH), "{run:?}");
}

fn show(project: &Project) -> Value {
    project
        .run(
            &[
                "--json",
                "projects",
                "show",
                "--project",
                &project.reference,
            ],
            &project.admin_env(),
        )
        .ok()
        .json()
}

/// Republishes the iOS manifest of `group` with a fresh id, straight to the API (no CLI
/// checks), signed by `key` under keyid `main` or not at all. A refusal is `(status, code)`.
fn publish_directly(
    project: &Project,
    group: &str,
    key: Option<&SigningKey>,
) -> Result<(), (u16, String)> {
    block_on(async {
        let client = Client::new(&project.server.url, Some(&project.key)).expect("client");
        let group = client
            .group(&project.reference, group)
            .await
            .expect("the group");
        let ios = group
            .updates
            .iter()
            .find(|update| update.platform == Platform::Ios)
            .and_then(|update| update.manifest.as_deref())
            .expect("an iOS manifest");
        let mut manifest = Manifest::parse(ios.as_bytes()).expect("manifest");
        manifest.id = new_update_id();
        manifest.created_at = now().expect("clock");
        let bytes = manifest.to_bytes();
        let signature = key.map(|key| {
            SignatureHeader::new(key.sign(&bytes), "main".to_owned())
                .expect("header")
                .to_header_value()
        });
        let published = client
            .publish_group(
                &project.reference,
                &NewGroup {
                    runtime_version: group.runtime_version.clone(),
                    message: Some("straight to the API".to_owned()),
                    rollout_percentage: 100,
                    health_gate: None,
                    ramp: None,
                    updates: vec![NewUpdate {
                        platform: Platform::Ios,
                        manifest: Some(String::from_utf8(bytes).expect("utf-8")),
                        directive: None,
                        signature,
                        standby: None,
                    }],
                },
            )
            .await;
        match published {
            Ok(_) => Ok(()),
            Err(CliError::Api { status, code, .. }) => Err((status, code)),
            Err(other) => panic!("not a refusal: {other}"),
        }
    })
}

#[test]
fn project_settings_require_signing_end_to_end() {
    let project = Project::create("signing");
    let admin = project.admin_env();
    let before = show(&project);
    assert_keys(&before, &PROJECT_DETAILS_KEYS);
    assert_eq!(before["ref"], project.reference.as_str());
    assert_eq!(before["require_signing"], false);
    assert_eq!(before["certificate_pem"], Value::Null);
    assert_eq!(before["certificate"], Value::Null);

    // v1, signed, before signing is required: its assets are on the server from now on.
    let v1 = project.deploy("exports/v1", "v1").ok().json();
    let v1_group = v1["group"].as_str().unwrap();
    assert_eq!(
        publish_directly(&project, v1_group, None),
        Ok(()),
        "an unsigned publish is accepted while signing is not required"
    );

    let certificate = fixture_str("certs/certificate.pem");
    let updated = project
        .run(
            &[
                "--json",
                "projects",
                "update",
                "--project",
                &project.reference,
                "--require-signing",
                "true",
                "--certificate",
                &certificate,
                "--max-asset-bytes",
                "10485760",
            ],
            &admin,
        )
        .ok()
        .json();
    assert_keys(&updated, &PROJECT_DETAILS_KEYS);
    assert_eq!(updated["require_signing"], true);
    assert_eq!(updated["max_asset_bytes"], 10_485_760);
    assert_eq!(
        updated["certificate_pem"],
        std::fs::read_to_string(&certificate).unwrap().as_str()
    );
    assert_keys(
        &updated["certificate"],
        &[
            "common_name",
            "valid_until",
            "days_until_expiry",
            "problems",
        ],
    );
    assert_eq!(updated["certificate"]["problems"], serde_json::json!([]));
    assert!(
        updated["certificate"]["days_until_expiry"]
            .as_i64()
            .unwrap()
            > 0
    );
    let shown = show(&project);
    assert_eq!(shown["require_signing"], true);
    assert_eq!(shown["certificate"], updated["certificate"]);

    // Unsigned: the CLI refuses before publishing, and the server refuses it sent directly.
    let mut unsigned_env = project.key_env();
    unsigned_env.retain(|(name, _)| *name != "OTAGO_PRIVATE_KEY");
    let run = project.run(
        &[
            "deploy",
            "--project",
            &project.reference,
            "--input-dir",
            &fixture_str("exports/v2"),
            "--app-dir",
            FIXTURE,
        ],
        &unsigned_env,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(
        run.stderr.contains("requires signed updates"),
        "{}",
        run.stderr
    );
    assert_eq!(
        publish_directly(&project, v1_group, None),
        Err((422, "signature_required".to_owned()))
    );
    // Signed, but not by the project's certificate's key: refused too.
    let other = generate_key_and_certificate(
        &mut rand::rngs::StdRng::seed_from_u64(11),
        "Other",
        1,
        SystemTime::now(),
    )
    .unwrap();
    let other_key = SigningKey::from_pem(&other.private_key_pem).unwrap();
    assert_eq!(
        publish_directly(&project, v1_group, Some(&other_key)),
        Err((422, "bad_signature".to_owned()))
    );
    assert_eq!(project.group_count(), 2, "nothing landed since");

    // Signed with the fixture key: published, and devices get it with a valid signature.
    let v2 = project.deploy("exports/v2", "v2").ok().json();
    let response = fetch_update(&project.update_url, Platform::Ios, "1.0.0");
    let served = parts(&response);
    let manifest = served.iter().find(|p| p.name == "manifest").unwrap();
    assert_signed_by_fixture(manifest);
    let ios_id = v2["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["platform"] == "ios")
        .unwrap()["id"]
        .clone();
    assert_eq!(
        Manifest::parse(&manifest.body).unwrap().id.to_string(),
        ios_id.as_str().unwrap()
    );

    // The certificate cannot go while signing is required: the server says so, naming the flag.
    let run = project.run(
        &[
            "projects",
            "update",
            "--project",
            &project.reference,
            "--no-certificate",
        ],
        &admin,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::REJECTED), "{run:?}");
    assert!(
        run.stderr.contains("--require-signing false"),
        "{}",
        run.stderr
    );

    // Both at once, in text: back to unsigned.
    let text = project
        .run(
            &[
                "projects",
                "update",
                "--project",
                &project.reference,
                "--require-signing",
                "false",
                "--no-certificate",
            ],
            &admin,
        )
        .ok();
    assert!(text.stdout.contains("Updated project"), "{}", text.stdout);
    assert!(text.stdout.contains("certificate"), "{}", text.stdout);
    let after = show(&project);
    assert_eq!(after["require_signing"], false);
    assert_eq!(after["certificate_pem"], Value::Null);
    let text = project
        .run(
            &["projects", "show", "--project", &project.reference],
            &admin,
        )
        .ok();
    assert!(text.stdout.contains(&project.reference), "{}", text.stdout);
    assert!(text.stdout.contains("require signing"), "{}", text.stdout);
}

/// A self-signed certificate from openssl with only the Digital Signature usage.
fn certificate_without_code_signing(dir: &Path) -> String {
    let certificate = dir.join("no-code-signing.pem");
    let output = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=No Code Signing"])
        .args(["-addext", "keyUsage=critical,digitalSignature"])
        .arg("-keyout")
        .arg(dir.join("no-code-signing.key"))
        .arg("-out")
        .arg(&certificate)
        .output()
        .expect("openssl req");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    certificate.to_string_lossy().into_owned()
}

#[test]
fn bad_certificates_are_refused_before_sending() {
    let project = Project::create("badcerts");
    let admin = project.admin_env();
    let dir = tempfile::tempdir().unwrap();

    // Valid for one year from three years ago.
    let three_years_ago = SystemTime::now() - Duration::from_secs(3 * 365 * 86_400);
    let expired = generate_key_and_certificate(
        &mut rand::rngs::StdRng::seed_from_u64(7),
        "Old App",
        1,
        three_years_ago,
    )
    .unwrap();
    let expired_path = dir.path().join("expired.pem");
    std::fs::write(&expired_path, &expired.certificate_pem).unwrap();
    let no_code_signing = certificate_without_code_signing(dir.path());
    let missing = dir.path().join("missing.pem");

    let cases: [(&str, String, u8, &[&str]); 4] = [
        (
            "expired",
            expired_path.to_string_lossy().into_owned(),
            OtagoExitCode::INVALID_INPUT,
            &[
                "expired.pem cannot be the project's certificate",
                "expired on",
                "Nothing was changed",
            ],
        ),
        (
            "missing the Code Signing usage",
            no_code_signing,
            OtagoExitCode::INVALID_INPUT,
            &[
                "cannot be the project's certificate",
                "Code Signing",
                "codesigning:generate",
            ],
        ),
        (
            "a private key, not a certificate",
            fixture_str("keys/private-key.pem"),
            OtagoExitCode::INVALID_INPUT,
            &["private-key.pem", "certificate"],
        ),
        (
            "missing",
            missing.to_string_lossy().into_owned(),
            OtagoExitCode::IO,
            &["cannot read the certificate", "missing.pem"],
        ),
    ];
    for (what, path, code, words) in cases {
        let run = project.run(
            &[
                "--json",
                "projects",
                "update",
                "--project",
                &project.reference,
                "--require-signing",
                "true",
                "--certificate",
                &path,
            ],
            &admin,
        );
        assert_eq!(run.code, i32::from(code), "{what}: {run:?}");
        assert!(run.stdout.is_empty(), "{what}: {}", run.stdout);
        for word in words {
            assert!(
                run.stderr.contains(word),
                "{what}: `{word}` not in {}",
                run.stderr
            );
        }
    }
    let unchanged = show(&project);
    assert_eq!(unchanged["require_signing"], false);
    assert_eq!(unchanged["certificate_pem"], Value::Null);

    // Signing without any certificate: the server refuses, and the CLI names the flag.
    let run = project.run(
        &[
            "projects",
            "update",
            "--project",
            &project.reference,
            "--require-signing",
            "true",
        ],
        &admin,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::REJECTED), "{run:?}");
    assert!(run.stderr.contains("--certificate"), "{}", run.stderr);

    // Nothing to change, or contradicting flags: usage errors.
    for line in [
        &["projects", "update", "--project", &project.reference][..],
        &[
            "projects",
            "update",
            "--project",
            &project.reference,
            "--certificate",
            &fixture_str("certs/certificate.pem"),
            "--no-certificate",
        ][..],
        &[
            "projects",
            "update",
            "--project",
            &project.reference,
            "--require-signing",
            "maybe",
        ][..],
    ] {
        let run = project.run(line, &admin);
        assert_eq!(
            run.code,
            i32::from(OtagoExitCode::USAGE),
            "{line:?}: {run:?}"
        );
    }
}

#[test]
fn deleting_a_project_needs_yes_and_removes_it() {
    let project = Project::create("doomed");
    let admin = project.admin_env();

    // No terminal to ask on (stdin is not one here) and no --yes: refused, nothing deleted.
    let run = project.run(
        &["projects", "delete", "--project", &project.reference],
        &admin,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::USAGE), "{run:?}");
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    show(&project);

    // A project key may not delete its project.
    let run = project.run(
        &[
            "projects",
            "delete",
            "--project",
            &project.reference,
            "--yes",
        ],
        &[
            ("OTAGO_SERVER_URL", project.server.url.clone()),
            ("OTAGO_API_KEY", project.key.clone()),
        ],
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::AUTH), "{run:?}");
    show(&project);

    let deleted = project
        .run(
            &[
                "--json",
                "projects",
                "delete",
                "--project",
                &project.reference,
                "--yes",
            ],
            &admin,
        )
        .ok()
        .json();
    assert_keys(&deleted, &["project", "app", "environment", "deleted"]);
    assert_eq!(deleted["project"], project.reference.as_str());
    assert_eq!(deleted["app"], "doomed");
    assert_eq!(deleted["deleted"], true);

    let run = project.run(
        &[
            "--json",
            "projects",
            "show",
            "--project",
            &project.reference,
        ],
        &admin,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::REJECTED), "{run:?}");
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    assert!(run.stderr.contains("otago projects list"), "{}", run.stderr);
    let list = project
        .run(&["--json", "projects", "list"], &admin)
        .ok()
        .json();
    assert_eq!(list["projects"], serde_json::json!([]));
    // Its key went with it.
    let run = project.run(
        &["projects", "show", "--project", &project.reference],
        &[
            ("OTAGO_SERVER_URL", project.server.url.clone()),
            ("OTAGO_API_KEY", project.key.clone()),
        ],
    );
    assert_ne!(run.code, 0, "{run:?}");
}

#[test]
fn keys_have_roles_and_expiry_and_the_audit_log_names_who_changed_what() {
    let project = Project::create("roles");
    let reference = project.reference.as_str();
    let admin = project.admin_env();
    // The default key is a deploy key: it may not mint keys nor change settings.
    let minted = project.run(
        &[
            "--json",
            "keys",
            "create",
            "--project",
            reference,
            "--name",
            "x",
        ],
        &project.key_env(),
    );
    assert_eq!(minted.code, 5, "{minted:?}");
    assert!(minted.stderr.contains("admin key"), "{}", minted.stderr);
    let created = project
        .run(
            &[
                "--json",
                "keys",
                "create",
                "--project",
                reference,
                "--name",
                "lead",
                "--role",
                "admin",
                "--expires-in",
                "90d",
            ],
            &admin,
        )
        .ok()
        .json();
    assert_keys(
        &created,
        &[
            "project",
            "id",
            "name",
            "role",
            "expires_at",
            "key",
            "created_at",
        ],
    );
    assert_eq!(created["role"], "admin");
    let expires = otago_core::Timestamp::parse(created["expires_at"].as_str().unwrap()).unwrap();
    let now = otago_core::Timestamp::from_system_time(std::time::SystemTime::now()).unwrap();
    let days = (expires.unix_millis() - now.unix_millis()) / 86_400_000;
    assert!((89..=90).contains(&days), "{created}");
    // The admin key may manage keys and settings of its project.
    let admin_key = vec![
        ("OTAGO_SERVER_URL", project.server.url.clone()),
        ("OTAGO_API_KEY", created["key"].as_str().unwrap().to_owned()),
    ];
    let listed = project
        .run(
            &["--json", "keys", "list", "--project", reference],
            &admin_key,
        )
        .ok()
        .json();
    let roles: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["deploy", "admin"]);
    assert_keys(&listed["keys"][1], &["role", "expires_at"]);
    let text = project
        .run(&["keys", "list", "--project", reference], &admin_key)
        .ok();
    assert!(
        text.stdout.contains("ROLE") && text.stdout.contains("EXPIRES"),
        "{}",
        text.stdout
    );
    project
        .run(
            &[
                "projects",
                "update",
                "--project",
                reference,
                "--max-asset-bytes",
                "1000",
            ],
            &admin_key,
        )
        .ok();
    let bad = project.run(
        &[
            "keys",
            "create",
            "--project",
            reference,
            "--expires-at",
            "tomorrow",
        ],
        &admin,
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--expires-at"), "{}", bad.stderr);

    let audit = project
        .run(
            &["--json", "projects", "audit", "--project", reference],
            &admin,
        )
        .ok()
        .json();
    assert_keys(&audit, &["project", "entries", "next_before"]);
    let entries = audit["entries"].as_array().unwrap();
    let newest = &entries[0];
    assert_eq!(newest["action"], "project.settings_changed");
    assert_eq!(newest["actor"], created["id"]);
    assert_eq!(
        newest["detail"]["changes"]["max_asset_bytes"]["after"],
        1000
    );
    assert_eq!(entries[1]["action"], "key.created");
    assert_eq!(entries[1]["actor"], "admin");
    let text = project
        .run(&["projects", "audit", "--project", reference], &admin)
        .ok();
    assert!(
        text.stdout.contains("max_asset_bytes: 52428800 → 1000"),
        "{}",
        text.stdout
    );
    // A deploy key may not read the audit log.
    let refused = project.run(
        &["projects", "audit", "--project", reference],
        &project.key_env(),
    );
    assert_eq!(refused.code, 5, "{refused:?}");
}
