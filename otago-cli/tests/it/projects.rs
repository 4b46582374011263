//! `otago projects` and `otago keys`: their JSON output.

use otago_cli::OtagoExitCode;

use crate::harness::{ADMIN_TOKEN, Project, TestServer, assert_keys, otago};

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
