//! Demo mode: publish the example app (a real `expo export` signed with a TEST key kept beside
//! it) as project `example`/`production`, through the same checks as the API, and say how to
//! fetch its manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use otago_core::{
    DEFAULT_KEY_ID, DescribedPlatform, ExportMetadata, Manifest, ManifestSpec, Platform,
    SignatureHeader, SigningKey, UpdateId, Workflow, expo_config, parse_app_config,
    resolve_runtime_version,
};

use crate::publish::{PublishEntry, PublishRequest, publish};
use crate::routes::projects::create_project;
use crate::routes::uploads::store_asset;
use crate::state::{AppState, StartError};
use crate::store::{GroupFilter, ProjectPatch};

/// The demo project's app and environment names.
const DEMO_APP: &str = "example";
const DEMO_ENVIRONMENT: &str = "production";

/// What the demo did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOutcome {
    /// The demo project's ref.
    pub project_ref: String,
    /// Whether an update was published now (false if the project had one already).
    pub published: bool,
    /// A `curl` command that fetches the manifest as expo-updates would.
    pub curl: String,
}

fn failed(what: &str) -> impl Fn(String) -> StartError + '_ {
    move |detail| StartError(format!("demo: {what}: {detail}"))
}

/// One platform's export, read and described, ready to upload and publish.
struct PreparedPlatform {
    platform: Platform,
    runtime_version: String,
    described: DescribedPlatform,
    files: BTreeMap<String, Bytes>,
}

struct DemoApp {
    certificate_pem: String,
    signing_key: SigningKey,
    keyid: String,
    expo_client: Option<serde_json::Value>,
    platforms: Vec<PreparedPlatform>,
}

fn read_app(app_dir: &Path) -> Result<DemoApp, StartError> {
    let read = |path: PathBuf| {
        std::fs::read(&path)
            .map_err(|err| StartError(format!("demo: cannot read {}: {err}", path.display())))
    };
    let text = |path: PathBuf| read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let config = parse_app_config(&text(app_dir.join("app.json"))?)
        .map_err(|e| failed("app.json")(e.to_string()))?;
    let keyid = expo_config(&config)
        .pointer("/updates/codeSigningMetadata/keyid")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(DEFAULT_KEY_ID)
        .to_owned();
    let expo_client = match std::fs::read(app_dir.join("expo-config.public.json")) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| failed("expo-config.public.json")(e.to_string()))?,
        ),
        Err(_) => None,
    };
    let dist = ["dist", "exports/v1"]
        .iter()
        .map(|name| app_dir.join(name))
        .find(|dir| dir.join("metadata.json").exists())
        .ok_or_else(|| {
            StartError(format!(
                "demo: no dist/metadata.json (nor exports/v1/metadata.json) in {}; run `npx expo export` there first",
                app_dir.display()
            ))
        })?;
    let metadata = ExportMetadata::parse(&read(dist.join("metadata.json"))?)
        .map_err(|e| failed("metadata.json")(e.to_string()))?;
    let mut platforms = Vec::new();
    for (&platform, export) in &metadata.platforms {
        let runtime_version = resolve_runtime_version(&config, platform, Workflow::Managed)
            .map_err(|e| failed("runtime version")(e.to_string()))?
            .as_resolved()
            .ok_or_else(|| {
                StartError(
                    "demo: the example app uses the fingerprint policy; give it a runtime version"
                        .to_owned(),
                )
            })?
            .to_owned();
        let mut files = BTreeMap::new();
        let described = DescribedPlatform::describe(platform, export, |path| {
            let bytes = std::fs::read(dist.join(path.as_str())).ok()?;
            files.insert(path.as_str().to_owned(), Bytes::from(bytes.clone()));
            Some(bytes)
        })
        .map_err(|e| failed("the export")(e.to_string()))?;
        platforms.push(PreparedPlatform {
            platform,
            runtime_version,
            described,
            files,
        });
    }
    Ok(DemoApp {
        certificate_pem: text(app_dir.join("certs/certificate.pem"))?,
        signing_key: SigningKey::from_pem(&text(app_dir.join("keys/private-key.pem"))?)
            .map_err(|e| failed("keys/private-key.pem")(e.to_string()))?,
        keyid,
        expo_client,
        platforms,
    })
}

/// Makes sure project `example`/`production` exists, requires signing with the example
/// certificate, and has an update (publishing the example export from `app_dir` if not).
///
/// # Errors
/// When the example app cannot be read or the publish is refused.
pub async fn run_demo(state: &AppState, app_dir: &Path) -> Result<DemoOutcome, StartError> {
    let dir = app_dir.to_owned();
    let app = tokio::task::spawn_blocking(move || read_app(&dir))
        .await
        .map_err(|err| StartError(err.to_string()))??;
    let api = |err: crate::error::ApiError| StartError(format!("demo: {err}"));

    let existing = state
        .meta
        .projects()
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let project = match existing
        .into_iter()
        .find(|p| p.app == DEMO_APP && p.environment == DEMO_ENVIRONMENT)
    {
        Some(project) => project,
        None => create_project(state, DEMO_APP, DEMO_ENVIRONMENT)
            .await
            .map_err(api)?,
    };
    let project = if project.require_signing && project.certificate_pem.is_some() {
        project
    } else {
        let patch = ProjectPatch {
            require_signing: Some(true),
            certificate_pem: Some(Some(app.certificate_pem.clone())),
            max_asset_bytes: None,
        };
        state
            .meta
            .update_project(&project.r#ref, patch, crate::auth::ADMIN_ACTOR, state.now())
            .await
            .map_err(|e| StartError(e.to_string()))?
            .unwrap_or(project)
    };

    let filter = GroupFilter {
        limit: 1,
        ..GroupFilter::default()
    };
    let newest = state
        .meta
        .groups(&project.r#ref, filter)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let published = newest.is_empty();
    if published {
        publish_app(state, &project, &app).await.map_err(api)?;
    }
    let runtime_version = match newest.first() {
        Some(group) => group.runtime_version.clone(),
        None => app
            .platforms
            .first()
            .map(|p| p.runtime_version.clone())
            .unwrap_or_default(),
    };
    let platform = app.platforms.first().map_or(Platform::Ios, |p| p.platform);
    let curl = format!(
        "curl -sS -i {url} \\\n  -H 'expo-platform: {platform}' -H 'expo-runtime-version: {runtime_version}' \\\n  \
         -H 'expo-protocol-version: 1' -H 'accept: multipart/mixed,application/expo+json,application/json' \\\n  \
         -H 'expo-expect-signature: sig, keyid=\"{keyid}\", alg=\"rsa-v1_5-sha256\"'",
        url = state.config.update_url(&project.r#ref),
        keyid = app.keyid,
    );
    Ok(DemoOutcome {
        project_ref: project.r#ref,
        published,
        curl,
    })
}

async fn publish_app(
    state: &AppState,
    project: &crate::store::ProjectRecord,
    app: &DemoApp,
) -> crate::error::ApiResult<()> {
    let now = state.now();
    let mut groups: BTreeMap<&str, Vec<PublishEntry>> = BTreeMap::new();
    for platform in &app.platforms {
        for file in platform.described.files() {
            let bytes = platform
                .files
                .get(file.path.as_str())
                .cloned()
                .unwrap_or_default();
            let stream = futures_util::stream::once(async move { Ok(bytes) }).boxed();
            let description = &file.description;
            store_asset(
                state,
                &description.hash,
                description.content_type.clone(),
                u64::MAX,
                stream,
            )
            .await?;
        }
        let manifest = Manifest::build(ManifestSpec {
            id: UpdateId::from_random_bytes(rand::random()),
            created_at: now,
            runtime_version: platform.runtime_version.clone(),
            launch_asset: platform.described.launch_asset.description.clone(),
            assets: platform
                .described
                .assets
                .iter()
                .map(|a| a.description.clone())
                .collect(),
            asset_base_url: state.config.asset_base_url(),
            metadata: BTreeMap::new(),
            expo_client: app.expo_client.clone(),
        })
        .map_err(|err| crate::error::ApiError::internal(format!("demo manifest: {err}")))?;
        let bytes = manifest.to_bytes();
        let signature = SignatureHeader::new(app.signing_key.sign(&bytes), app.keyid.clone())
            .map_err(|err| crate::error::ApiError::internal(format!("demo signature: {err}")))?;
        groups
            .entry(&platform.runtime_version)
            .or_default()
            .push(PublishEntry {
                platform: platform.platform.as_str().to_owned(),
                manifest: Some(String::from_utf8_lossy(&bytes).into_owned()),
                directive: None,
                signature: Some(signature.to_header_value()),
                standby: None,
            });
    }
    for (runtime_version, updates) in groups {
        let request = PublishRequest {
            runtime_version: runtime_version.to_owned(),
            message: Some("example app (demo mode)".to_owned()),
            rollout_percentage: None,
            health_gate: None,
            ramp: None,
            updates,
        };
        publish(state, project, request).await?;
    }
    Ok(())
}
