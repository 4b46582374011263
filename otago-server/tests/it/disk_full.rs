//! A full disk under the data folder (a real, small tmpfs): uploads are answered 507
//! `insufficient_storage`, nothing half-written remains, the previous update is still served,
//! and uploads work again once space is freed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use otago_core::Platform;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, as_refs, body, client_headers, export, now_ms};

/// A tmpfs of a few MiB mounted on a fresh folder, unmounted when dropped.
struct SmallDisk {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where tmpfs cannot be mounted (not root, or in a container that forbids it).
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mount_point = dir.path().join("disk");
        std::fs::create_dir(&mount_point).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&mount_point)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Self {
            mount_point,
            _dir: dir,
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// Writes a file until the disk is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let bytes = vec![0x5a; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    path
}

#[tokio::test]
async fn a_full_disk_is_a_507_that_keeps_the_served_update_and_leaves_nothing_behind() {
    let Some(disk) = SmallDisk::mount(48) else {
        eprintln!("skipped: tmpfs cannot be mounted here (the test needs root)");
        return;
    };
    let server = Server::start_in(&disk.mount_point).await;
    let project = server.create_project("full", "production").await;
    let project_ref = project["ref"].as_str().unwrap();
    let published = server
        .publish_export(project_ref, export("dist-v1"), now_ms())
        .await;
    let served_id = published.manifests[&Platform::Ios].id.clone();
    let ios = client_headers("ios");
    let serves_the_update = || async {
        let response = server.manifest(project_ref, &as_refs(&ios)).await;
        assert_eq!(response.status(), 200);
        let text = String::from_utf8_lossy(&body(response).await).into_owned();
        assert!(text.contains(&served_id), "the published update is served");
    };
    serves_the_update().await;
    // Let the compressor finish with the export first, so the disk fills under the upload only.
    for _ in 0..1200 {
        if server
            .state
            .meta()
            .uncompressed_assets()
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let filler = fill(&disk.mount_point);
    // Bytes that do not compress, larger than anything left on the disk.
    let asset: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let hash = otago_core::asset_hash(&asset);
    let upload = || {
        server
            .admin(
                Method::PUT,
                &format!("/api/v1/projects/{project_ref}/assets/{hash}"),
            )
            .header("content-type", "image/png")
            .body(asset.clone())
            .send()
    };
    let response = upload().await.unwrap();
    assert_eq!(response.status(), 507);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "insufficient_storage", "{error}");
    assert!(
        error["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("free space"),
        "{error}"
    );

    let leftovers: Vec<_> = std::fs::read_dir(disk.mount_point.join("tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "half-written files: {leftovers:?}");
    let asset_url = format!("{}/assets/{hash}", server.url);
    let response = server.client.get(&asset_url).send().await.unwrap();
    assert_eq!(response.status(), 404, "nothing was indexed");
    serves_the_update().await;

    std::fs::remove_file(filler).unwrap();
    assert_eq!(upload().await.unwrap().status(), 201);
    let response = server.client.get(&asset_url).send().await.unwrap();
    assert_eq!(body(response).await, asset);
    serves_the_update().await;
    server.stop().await;
    drop(disk);
}
