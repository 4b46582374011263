//! `otago embedded`: registering the JavaScript bundle embedded in a native build, so that
//! devices still running it download the first update as a bundle patch.
//!
//! The bundle and its embedded update id come from the build's output: an iOS `.app` holds
//! `main.jsbundle` and `EXUpdates.bundle/app.manifest`; an Android APK's `assets/` holds
//! `index.android.bundle` and `app.manifest`. The manifest's `id` is the embedded update id
//! that devices send as `Expo-Current-Update-ID` while they run the build's own bundle.

use std::io::Write;
use std::path::{Path, PathBuf};

use otago_core::{Platform, UpdateId, asset_hash};
use serde::Serialize;

use crate::client::{Client, EmbeddedBundle};
use crate::error::{CliError, Result};
use crate::output::{Printer, Render, human_bytes};
use crate::settings::{Credential, EmbeddedUploadSettings, ServerSettings};

/// Folders deeper than this under PATH are not searched.
const MAX_DEPTH: usize = 8;

/// What `otago embedded upload` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedUploaded {
    /// Project ref.
    pub project: String,
    /// The bundle file read.
    pub bundle_path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// What the server registered.
    #[serde(flatten)]
    pub embedded: EmbeddedBundle,
}

impl Render for EmbeddedUploaded {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "Registered the {} bundle of embedded update {} (runtime version {}, {}).",
            self.embedded.platform.as_str(),
            self.embedded.update_id,
            self.embedded.runtime_version,
            human_bytes(self.size)
        )?;
        writeln!(
            out,
            "The server now makes patches from it to the recent updates; `otago updates view --project {} GROUP` shows them.",
            self.project
        )
    }
}

/// What `otago embedded list` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedList {
    /// Project ref.
    pub project: String,
    /// The registered bundles, newest first.
    pub embedded: Vec<EmbeddedBundle>,
}

impl Render for EmbeddedList {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.embedded.is_empty() {
            return writeln!(
                out,
                "Project {} has no embedded bundles; register a build's with `otago embedded upload`.",
                self.project
            );
        }
        for bundle in &self.embedded {
            writeln!(
                out,
                "{}  {:<8} rv {}  registered {}",
                bundle.update_id,
                bundle.platform.as_str(),
                bundle.runtime_version,
                bundle.created_at
            )?;
        }
        Ok(())
    }
}

/// The bundle's file name in a build of `platform`.
fn bundle_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Ios => "main.jsbundle",
        Platform::Android => "index.android.bundle",
    }
}

/// Every file called `name` under `dir`, at most [`MAX_DEPTH`] folders down, sorted.
fn find_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_owned(), 0)];
    while let Some((folder, depth)) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(CliError::io("read", &folder))?;
        for entry in entries {
            let entry = entry.map_err(CliError::io("read", &folder))?;
            let file_type = entry
                .file_type()
                .map_err(CliError::io("read", entry.path()))?;
            if file_type.is_dir() && depth < MAX_DEPTH {
                pending.push((entry.path(), depth + 1));
            } else if file_type.is_file() && entry.file_name() == name {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Exactly one file called `name` under `dir`.
fn find_one(dir: &Path, name: &str, what: &str) -> Result<PathBuf> {
    let mut found = find_files(dir, name)?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(CliError::Invalid {
            reason: format!(
                "no `{name}` ({what}) under {}: point at the build's output (an unpacked .app or APK) or at the file",
                dir.display()
            ),
        }),
        _ => Err(CliError::Invalid {
            reason: format!(
                "{} files called `{name}` under {}: {}; point at the one to use",
                found.len(),
                dir.display(),
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The `id` of an embedded `app.manifest`.
fn manifest_update_id(path: &Path) -> Result<UpdateId> {
    let text = std::fs::read(path).map_err(CliError::io("read", path))?;
    let invalid = |reason: String| CliError::Invalid {
        reason: format!(
            "{}: {reason}; pass the embedded update id with --update-id",
            path.display()
        ),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|err| invalid(format!("not JSON ({err})")))?;
    let id = value
        .get("id")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| invalid("no `id` string".into()))?;
    id.parse()
        .map_err(|_| invalid(format!("`id` `{id}` is not a UUID")))
}

/// The `app.manifest` beside a bundle file: in its folder, or in `EXUpdates.bundle/` there.
fn manifest_beside(bundle: &Path) -> Option<PathBuf> {
    let folder = bundle.parent()?;
    [
        folder.join("app.manifest"),
        folder.join("EXUpdates.bundle").join("app.manifest"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Finds the bundle and the embedded update id that `settings` name.
fn locate(settings: &EmbeddedUploadSettings) -> Result<(PathBuf, UpdateId)> {
    let path = &settings.path;
    let metadata = std::fs::metadata(path).map_err(CliError::io("read", path))?;
    let bundle = if metadata.is_dir() {
        find_one(path, bundle_name(settings.platform), "the embedded bundle")?
    } else {
        path.clone()
    };
    let update_id = match &settings.update_id {
        Some(id) => id.parse().map_err(|_| CliError::InvalidSetting {
            name: "--update-id".into(),
            value: id.clone(),
            reason: "it must be a UUID: the `id` of the build's app.manifest".into(),
        })?,
        None => {
            let manifest = match manifest_beside(&bundle) {
                Some(manifest) => manifest,
                None if metadata.is_dir() => {
                    find_one(path, "app.manifest", "the embedded update's manifest")?
                }
                None => {
                    return Err(CliError::Invalid {
                        reason: format!(
                            "no app.manifest beside {}: pass --update-id, or point at the build's output folder",
                            bundle.display()
                        ),
                    });
                }
            };
            manifest_update_id(&manifest)?
        }
    };
    Ok((bundle, update_id))
}

/// Runs `otago embedded upload`: uploads the bundle as an asset and registers it.
///
/// # Errors
/// When the bundle or its id cannot be found, or the server refuses.
pub async fn upload(
    settings: &EmbeddedUploadSettings,
    server: &ServerSettings,
    printer: &Printer,
) -> Result<EmbeddedUploaded> {
    let (bundle_path, update_id) = locate(settings)?;
    let bytes = std::fs::read(&bundle_path).map_err(CliError::io("read", &bundle_path))?;
    let size = bytes.len() as u64;
    let hash = asset_hash(&bytes);
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    let step = printer.step(format!(
        "Uploading {} ({})",
        bundle_path.display(),
        human_bytes(size)
    ));
    client
        .upload_asset(
            &settings.project,
            &hash,
            "application/javascript",
            bytes.into(),
        )
        .await?;
    step.done(format!("Uploaded the bundle ({})", human_bytes(size)));
    let embedded = client
        .register_embedded(
            &settings.project,
            settings.platform,
            &settings.runtime_version,
            &update_id.to_string(),
            &hash,
        )
        .await?;
    Ok(EmbeddedUploaded {
        project: settings.project.clone(),
        bundle_path,
        size,
        embedded,
    })
}

/// Runs `otago embedded list`.
///
/// # Errors
/// The server's error.
pub async fn list(server: &ServerSettings, project: &str) -> Result<EmbeddedList> {
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    Ok(EmbeddedList {
        project: project.to_owned(),
        embedded: client.list_embedded(project).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: PathBuf, update_id: Option<&str>) -> EmbeddedUploadSettings {
        EmbeddedUploadSettings {
            project: "p_aaaaaaaaaa".into(),
            platform: Platform::Ios,
            runtime_version: "1.0.0".into(),
            update_id: update_id.map(str::to_owned),
            path,
        }
    }

    #[test]
    fn an_ios_app_folder_gives_its_bundle_and_embedded_id() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("Payload/Example.app");
        std::fs::create_dir_all(app.join("EXUpdates.bundle")).unwrap();
        std::fs::write(app.join("main.jsbundle"), b"bundle").unwrap();
        std::fs::write(
            app.join("EXUpdates.bundle/app.manifest"),
            br#"{"id":"8A6C2F2E-5D3B-4C1A-9E7F-0123456789AB","commitTime":1,"assets":[]}"#,
        )
        .unwrap();
        let (bundle, id) = locate(&settings(dir.path().to_owned(), None)).unwrap();
        assert_eq!(bundle, app.join("main.jsbundle"));
        assert_eq!(id.to_string(), "8a6c2f2e-5d3b-4c1a-9e7f-0123456789ab");
        // The file itself finds the manifest beside it too.
        let (_, id) = locate(&settings(app.join("main.jsbundle"), None)).unwrap();
        assert_eq!(id.to_string(), "8a6c2f2e-5d3b-4c1a-9e7f-0123456789ab");
    }

    #[test]
    fn missing_or_bad_manifests_say_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.jsbundle"), b"bundle").unwrap();
        let err = locate(&settings(dir.path().join("main.jsbundle"), None)).unwrap_err();
        assert!(err.to_string().contains("pass --update-id"), "{err}");
        let err = locate(&settings(dir.path().to_owned(), None)).unwrap_err();
        assert!(err.to_string().contains("no `app.manifest`"), "{err}");
        std::fs::write(dir.path().join("app.manifest"), br#"{"id":"nope"}"#).unwrap();
        let err = locate(&settings(dir.path().to_owned(), None)).unwrap_err();
        assert!(err.to_string().contains("is not a UUID"), "{err}");
        let err = locate(&settings(dir.path().to_owned(), Some("x"))).unwrap_err();
        assert!(err.to_string().contains("--update-id"), "{err}");
        let (_, id) = locate(&settings(
            dir.path().to_owned(),
            Some("8a6c2f2e-5d3b-4c1a-9e7f-0123456789ab"),
        ))
        .unwrap();
        assert_eq!(id.to_string(), "8a6c2f2e-5d3b-4c1a-9e7f-0123456789ab");
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("other/main.jsbundle"), b"2").unwrap();
        let err = locate(&settings(dir.path().to_owned(), None)).unwrap_err();
        assert!(
            err.to_string().contains("2 files called `main.jsbundle`"),
            "{err}"
        );
    }
}
