//! Deploys that must fail with a clear message and publish nothing.

use otago_cli::OtagoExitCode;

use crate::harness::{FIXTURE, Project, copy_dir, fixture, fixture_str, otago};

#[test]
fn deploying_to_an_unreachable_server_says_so() {
    // A loopback port this test bound and closed again: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let run = otago(
        &[
            "deploy",
            "--project",
            "p_abcdefghij",
            "--input-dir",
            &fixture_str("exports/v1"),
            "--app-dir",
            FIXTURE,
        ],
        &[
            ("OTAGO_SERVER_URL", url.as_str()),
            ("OTAGO_API_KEY", "otago_nothing"),
        ],
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::UNREACHABLE), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach the Otago server at {url}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("OTAGO_SERVER_URL"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn deploying_with_a_revoked_key_is_refused_and_publishes_nothing() {
    let project = Project::create("revoked");
    let revoked = project
        .run(
            &[
                "--json",
                "keys",
                "revoke",
                "--project",
                &project.reference,
                &project.key_id,
            ],
            &project.admin_env(),
        )
        .ok()
        .json();
    assert_eq!(revoked["revoked"], true);
    assert_eq!(revoked["id"], project.key_id.as_str());

    let run = project.deploy("exports/v1", "must not land");
    assert_eq!(run.code, i32::from(OtagoExitCode::AUTH), "{run:?}");
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    // The fix names the variable, the likely cause and the way out.
    for hint in ["check OTAGO_API_KEY", "revoked", "otago keys create"] {
        assert!(run.stderr.contains(hint), "{hint}: {}", run.stderr);
    }
    assert_eq!(project.group_count(), 0);

    let keys = project
        .run(
            &["--json", "keys", "list", "--project", &project.reference],
            &project.admin_env(),
        )
        .ok()
        .json();
    assert!(keys["keys"][0]["revoked_at"].is_string(), "{keys:#}");
}

#[test]
fn deploying_an_export_changed_after_the_fact_is_refused_and_publishes_nothing() {
    let project = Project::create("tampered");
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    copy_dir(&fixture("exports/v1"), &dist);
    let asset = dist.join("assets/132c75f3562526da642197f0fcaa9509");
    let mut bytes = std::fs::read(&asset).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&asset, bytes).unwrap();

    let input = dist.to_string_lossy().into_owned();
    let run = project.run(
        &[
            "deploy",
            "--project",
            &project.reference,
            "--input-dir",
            &input,
            "--app-dir",
            FIXTURE,
        ],
        &project.key_env(),
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(
        run.stderr
            .contains("assets/132c75f3562526da642197f0fcaa9509"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("does not match metadata.json"),
        "{}",
        run.stderr
    );
    assert_eq!(project.group_count(), 0);

    // A file listed in metadata.json but missing.
    std::fs::remove_file(&asset).unwrap();
    let run = project.run(
        &[
            "deploy",
            "--project",
            &project.reference,
            "--input-dir",
            &input,
            "--app-dir",
            FIXTURE,
        ],
        &project.key_env(),
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
    assert_eq!(project.group_count(), 0);
}

#[test]
fn deploying_with_a_key_that_does_not_match_the_app_certificate_is_refused() {
    let project = Project::create("wrongkey");
    let keys = tempfile::tempdir().unwrap();
    let key_dir = keys.path().join("keys");
    let cert_dir = keys.path().join("certs");
    otago(
        &[
            "codesigning",
            "generate",
            "--key-output-directory",
            &key_dir.to_string_lossy(),
            "--certificate-output-directory",
            &cert_dir.to_string_lossy(),
            "--certificate-validity-duration-years",
            "1",
            "--certificate-common-name",
            "Other",
        ],
        &[],
    )
    .ok();
    let mut env = project.key_env();
    env.retain(|(name, _)| *name != "OTAGO_PRIVATE_KEY");
    let other_key = key_dir
        .join("private-key.pem")
        .to_string_lossy()
        .into_owned();
    env.push(("OTAGO_PRIVATE_KEY", other_key));
    let run = project.run(
        &[
            "deploy",
            "--project",
            &project.reference,
            "--input-dir",
            &fixture_str("exports/v1"),
            "--app-dir",
            FIXTURE,
        ],
        &env,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(
        run.stderr
            .contains("not the private key of the app's certificate"),
        "{}",
        run.stderr
    );

    // Without any key, the app's certificate makes unsigned updates useless: refused too.
    env.retain(|(name, _)| *name != "OTAGO_PRIVATE_KEY");
    let run = project.run(
        &[
            "deploy",
            "--project",
            &project.reference,
            "--input-dir",
            &fixture_str("exports/v1"),
            "--app-dir",
            FIXTURE,
        ],
        &env,
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(
        run.stderr.contains("refuses unsigned updates"),
        "{}",
        run.stderr
    );
    assert_eq!(project.group_count(), 0);
}

#[test]
fn bad_command_lines_exit_with_the_usage_code() {
    let run = otago(&["deploy"], &[]);
    assert_eq!(run.code, i32::from(OtagoExitCode::USAGE), "{run:?}");
    let run = otago(
        &[
            "rollout",
            "--project",
            "p_abcdefghij",
            "--percentage",
            "101",
        ],
        &[],
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::USAGE), "{run:?}");
    let run = otago(
        &["keys", "list", "--project", "p_abc"],
        &[("OTAGO_SERVER_URL", "ftp://x")],
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(run.stderr.contains("OTAGO_SERVER_URL"), "{}", run.stderr);
}

#[test]
fn deploying_an_export_with_a_symbolic_link_is_refused_naming_it() {
    let project = Project::create("symlinked");
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    copy_dir(&fixture("exports/v1"), &dist);
    let deploy = |input: &str| {
        project.run(
            &[
                "deploy",
                "--project",
                &project.reference,
                "--input-dir",
                input,
                "--app-dir",
                FIXTURE,
            ],
            &project.key_env(),
        )
    };
    let input = dist.to_string_lossy().into_owned();

    // An asset replaced by a link to the same bytes outside the export: every other check
    // would pass, and the link's target would be uploaded.
    let name = "assets/132c75f3562526da642197f0fcaa9509";
    let outside = dir.path().join("outside");
    std::fs::rename(dist.join(name), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, dist.join(name)).unwrap();
    let run = deploy(&input);
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(run.stderr.contains(name), "{}", run.stderr);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&outside.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(project.group_count(), 0);

    // A linked folder: the files under it are refused too.
    std::fs::remove_file(dist.join(name)).unwrap();
    std::fs::rename(&outside, dist.join(name)).unwrap();
    let assets_elsewhere = dir.path().join("assets-elsewhere");
    std::fs::rename(dist.join("assets"), &assets_elsewhere).unwrap();
    std::os::unix::fs::symlink(&assets_elsewhere, dist.join("assets")).unwrap();
    let run = deploy(&input);
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{} is a symbolic link",
            dist.join("assets").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(project.group_count(), 0);

    // The export folder itself may be a link.
    std::fs::remove_file(dist.join("assets")).unwrap();
    std::fs::rename(&assets_elsewhere, dist.join("assets")).unwrap();
    let linked = dir.path().join("linked-dist");
    std::os::unix::fs::symlink(&dist, &linked).unwrap();
    let run = deploy(&linked.to_string_lossy());
    assert!(run.stderr.contains("Checked the export"), "{run:?}");
    assert!(!run.stderr.contains("symbolic link"), "{run:?}");
}
