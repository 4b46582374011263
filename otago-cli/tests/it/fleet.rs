//! `otago fleet`: the runtime versions devices ask for, published or not.

use otago_core::Platform;

use crate::harness::{Project, fetch_update};

#[test]
fn fleet_lists_the_runtime_versions_devices_ask_for() {
    let project = Project::create("fleet");
    let empty = project
        .run(
            &["fleet", "--project", &project.reference],
            &project.key_env(),
        )
        .ok();
    assert!(
        empty.stdout.contains("No device of project"),
        "{}",
        empty.stdout
    );

    project.deploy("exports/v1", "first").ok();
    let published = fetch_update(&project.update_url, Platform::Ios, "1.0.0");
    assert_eq!(published.status, 200);
    // Nothing is published for this one; devices asking for it are still counted.
    let unpublished = fetch_update(&project.update_url, Platform::Android, "0.9.0");
    assert_ne!(unpublished.status, 200);
    fetch_update(&project.update_url, Platform::Android, "0.9.0");
    project.server.flush();

    let report = project
        .run(
            &[
                "--json",
                "fleet",
                "--project",
                &project.reference,
                "--days",
                "7",
            ],
            &project.key_env(),
        )
        .ok()
        .json();
    assert_eq!(report["project"], project.reference.as_str());
    assert_eq!(report["days"], 7);
    let rows = report["runtime_versions"].as_array().unwrap();
    let row = |platform: &str, runtime_version: &str| {
        rows.iter()
            .find(|row| row["platform"] == platform && row["runtime_version"] == runtime_version)
            .unwrap_or_else(|| panic!("no {platform} {runtime_version} in {report:#}"))
            .clone()
    };
    let ios = row("ios", "1.0.0");
    assert_eq!(
        (ios["devices"].as_u64(), ios["requests"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(ios["share"], 1.0);
    let android = row("android", "0.9.0");
    // One device (the same EAS-Client-ID) asked twice.
    assert_eq!(
        (android["devices"].as_u64(), android["requests"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(android["last_seen"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report["other"], serde_json::json!([]));

    let text = project
        .run(
            &["fleet", "--project", &project.reference],
            &project.key_env(),
        )
        .ok();
    assert!(text.stdout.contains("0.9.0"), "{}", text.stdout);
    assert!(text.stdout.contains("100.0%"), "{}", text.stdout);

    let refused = project.run(
        &["fleet", "--project", &project.reference, "--days", "400"],
        &project.key_env(),
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("days must be 1 to 90"),
        "{}",
        refused.stderr
    );
}
