//! `otago deploy`: export → config → env → runtime versions → manifests → signatures →
//! missing assets → uploads → publish. Lives in the library so that other frontends can run
//! the same pipeline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use otago_core::{
    DescribedPlatform, ExportMetadata, FailureRate, Manifest, ManifestSpec, Platform,
    PublishedUpdate, SignatureHeader, SigningCertificate, SigningKey, Timestamp, UpdateId,
    UpdateKind, standby_body,
};
use rand::RngCore as _;
use serde::Serialize;

use crate::app::{self, AppConfig, LoadedEnv};
use crate::client::{
    BundlePatch, ChannelRelease, Client, Group, LaunchAsset, NewGroup, NewHealthGate, NewRamp,
    NewStandby, NewUpdate, Project, ReleasedUpdate,
};
use crate::error::{CliError, Result};
use crate::output::Printer;
use crate::settings::{Credential, DeploySettings, ServerSettings};

/// How many assets are uploaded at the same time.
pub const UPLOAD_CONCURRENCY: usize = 4;

/// One published update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedUpdate {
    /// Platform.
    pub platform: Platform,
    /// The update id (the manifest's `id`).
    pub id: String,
    /// Its runtime version.
    pub runtime_version: String,
    /// The group it belongs to.
    pub group: String,
    /// Whether it was signed.
    pub signed: bool,
}

/// One published group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedGroup {
    /// Group id.
    pub id: String,
    /// Runtime version of its updates.
    pub runtime_version: String,
    /// Its platforms.
    pub platforms: Vec<Platform>,
}

/// How many files and bytes travelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferCounts {
    /// Distinct files (bundles and assets, across platforms) the updates use.
    pub total: usize,
    /// Their bytes.
    pub total_bytes: u64,
    /// Files uploaded now.
    pub uploaded: usize,
    /// Bytes uploaded now.
    pub uploaded_bytes: u64,
    /// Of the uploaded files, how many were launch assets (bundles).
    pub uploaded_bundles: usize,
    /// Files the server already had.
    pub reused: usize,
    /// Their bytes.
    pub reused_bytes: u64,
}

/// What `otago deploy` did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// Project ref.
    pub project: String,
    /// The (first) group published.
    pub group: String,
    /// Every group published: one per distinct runtime version.
    pub groups: Vec<DeployedGroup>,
    /// One update per platform.
    pub updates: Vec<DeployedUpdate>,
    /// The group message.
    pub message: Option<String>,
    /// Rollout percentage.
    pub rollout_percentage: u8,
    /// The key id the manifests were signed under, when signed.
    pub keyid: Option<String>,
    /// Files and bytes.
    pub assets: TransferCounts,
    /// The `.env*` files loaded, highest priority first.
    pub env_files: Vec<String>,
    /// The export folder used (`None` when a temporary export was removed).
    pub input_dir: Option<PathBuf>,
    /// The bundle patches the server made for the new updates, by platform.
    pub patches: Vec<DeployedPatches>,
}

/// The bundle patches of one new update: what devices on earlier updates download instead of
/// its whole launch asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedPatches {
    /// Platform.
    pub platform: Platform,
    /// The update.
    pub update_id: String,
    /// The launch asset's full size.
    pub full_size: u64,
    /// The patches.
    pub patches: Vec<BundlePatch>,
    /// Whether the server was still making them when the deploy stopped waiting.
    pub pending: bool,
}

/// How long a deploy waits for the server to make the new updates' bundle patches.
pub const PATCH_WAIT: Duration = Duration::from_secs(60);

/// Waits (up to [`PATCH_WAIT`]) until the server has made the patches of `groups`, and
/// returns them per update.
async fn wait_for_patches(
    client: &Client,
    project: &str,
    groups: &[DeployedGroup],
    printer: &Printer,
) -> Result<Vec<DeployedPatches>> {
    let step = printer.step("Waiting for the server's bundle patches");
    let started = Instant::now();
    let mut seen = Vec::new();
    for group in groups {
        let mut published = client.group(project, &group.id).await?;
        while published.updates.iter().any(|u| u.patches_pending) && started.elapsed() < PATCH_WAIT
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
            published = client.group(project, &group.id).await?;
        }
        seen.extend(published.updates.into_iter().map(|update| {
            let launch = update.launch_asset.unwrap_or(LaunchAsset {
                hash: String::new(),
                size: 0,
                patches: Vec::new(),
            });
            DeployedPatches {
                platform: update.platform,
                update_id: update.id,
                full_size: launch.size,
                patches: launch.patches,
                pending: update.patches_pending,
            }
        }));
    }
    let made: usize = seen.iter().map(|p| p.patches.len()).sum();
    step.done(format!(
        "{} made{}",
        match made {
            1 => "1 bundle patch".to_owned(),
            n => format!("{n} bundle patches"),
        },
        if seen.iter().any(|p| p.pending) {
            "; more are being made (`otago updates view` shows them)"
        } else {
            ""
        }
    ));
    Ok(seen)
}

/// A file to make sure the server has.
#[derive(Debug, Clone)]
struct UploadFile {
    hash: String,
    content_type: String,
    size: u64,
    path: PathBuf,
    launch_asset: bool,
}

/// A signing key with the key id it signs under.
pub struct Signer {
    key: SigningKey,
    keyid: String,
}

impl Signer {
    /// The `expo-signature` value for `bytes`.
    ///
    /// # Errors
    /// [`CliError::Core`] for a key id clients cannot carry.
    pub fn sign(&self, bytes: &[u8]) -> Result<String> {
        SignatureHeader::new(self.key.sign(bytes), self.keyid.clone())
            .map(|header| header.to_header_value())
            .map_err(CliError::core("signing"))
    }

    /// The key id.
    #[must_use]
    pub fn keyid(&self) -> &str {
        &self.keyid
    }
}

/// Reads the private key and checks it against the certificates that will verify it: the
/// app's `updates.codeSigningCertificate` (when the config is known) and the project's.
///
/// With no key, refuses when the project requires signing or the app embeds a certificate,
/// since clients would then reject every update.
///
/// # Errors
/// [`CliError::Signing`] naming the mismatch and what to do; [`CliError::Io`] or
/// [`CliError::Core`] when a file cannot be read.
pub fn prepare_signer(
    private_key_path: Option<&Path>,
    config: Option<&AppConfig>,
    app_dir: &Path,
    project: &Project,
    keyid_fallback: Option<&str>,
) -> Result<Option<Signer>> {
    let app_certificate = config.and_then(AppConfig::certificate_path);
    let Some(path) = private_key_path else {
        if project.require_signing {
            return Err(CliError::Signing {
                reason: format!(
                    "project {} requires signed updates; set OTAGO_PRIVATE_KEY (or pass --private-key-path) to the private key of its certificate",
                    project.reference
                ),
            });
        }
        if let Some(certificate) = app_certificate {
            return Err(CliError::Signing {
                reason: format!(
                    "the app embeds a certificate (updates.codeSigningCertificate = {certificate}), so it refuses unsigned updates; set OTAGO_PRIVATE_KEY (or pass --private-key-path) to its private-key.pem"
                ),
            });
        }
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path).map_err(CliError::io("read the private key", path))?;
    let key = SigningKey::from_pem(&pem)
        .map_err(CliError::core(format!("reading {}", path.display())))?;
    if let Some(certificate) = app_certificate {
        let certificate_path = app_dir.join(certificate);
        let text = std::fs::read_to_string(&certificate_path).map_err(CliError::io(
            "read the app's certificate",
            &certificate_path,
        ))?;
        let certificate = SigningCertificate::from_pem(&text).map_err(CliError::core(format!(
            "reading {}",
            certificate_path.display()
        )))?;
        if !certificate.matches(&key) {
            return Err(CliError::Signing {
                reason: format!(
                    "{} is not the private key of the app's certificate {}: clients would reject every update; use the private-key.pem generated with that certificate",
                    path.display(),
                    certificate_path.display()
                ),
            });
        }
    }
    if let Some(pem) = &project.certificate_pem {
        let certificate = SigningCertificate::from_pem(pem).map_err(CliError::core(format!(
            "reading the certificate of project {}",
            project.reference
        )))?;
        if !certificate.matches(&key) {
            return Err(CliError::Signing {
                reason: format!(
                    "{} is not the private key of project {}'s certificate; use the key generated with that certificate, or update the project's certificate",
                    path.display(),
                    project.reference
                ),
            });
        }
    }
    let keyid = match config {
        Some(config) => config.keyid().to_owned(),
        None => keyid_fallback
            .unwrap_or(otago_core::DEFAULT_KEY_ID)
            .to_owned(),
    };
    Ok(Some(Signer { key, keyid }))
}

/// A fresh random update id (OS randomness).
#[must_use]
pub fn new_update_id() -> UpdateId {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    UpdateId::from_random_bytes(bytes)
}

/// The current time as a protocol timestamp.
///
/// # Errors
/// [`CliError::Core`] for a clock before 1970.
pub fn now() -> Result<Timestamp> {
    Timestamp::from_system_time(SystemTime::now()).map_err(CliError::core("reading the clock"))
}

/// Connects to the server with the key (or admin token) and fetches the project; fails fast
/// when the server is unreachable or the key does not work.
///
/// # Errors
/// [`CliError::MissingSetting`], [`CliError::Unreachable`], or the server's error.
pub async fn connect(
    server: &ServerSettings,
    project: &str,
    printer: &Printer,
) -> Result<(Client, Project)> {
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    let step = printer.step(format!("Connecting to {} (project {project})", server.url));
    let project = client.project(project).await?;
    step.done(format!(
        "Project {} ({} / {})",
        project.reference, project.app, project.environment
    ));
    Ok((client, project))
}

/// Runs `otago deploy`.
///
/// # Errors
/// Every step's error; nothing is published unless every asset is on the server.
pub async fn deploy(
    settings: &DeploySettings,
    server: &ServerSettings,
    printer: &Printer,
) -> Result<DeployReport> {
    let (client, project) = connect(server, &settings.project, printer).await?;
    let app_dir = settings.app_dir.as_path();

    let single_platform = (settings.platforms.len() == 1).then(|| settings.platforms[0]);
    let env = app::load_env(app_dir, &settings.env, single_platform)?;
    report_env(&env, printer);
    let child_env = env.child_env(&settings.env.mode);

    let config = match (&settings.config_json, &settings.input_dir) {
        (Some(path), _) => app::read_config_json(path)?,
        (None, Some(_)) => app::read_static_config(app_dir)?,
        (None, None) => {
            let step = printer.step("Reading the app config (npx expo config --json)");
            let config = app::evaluate_config(app_dir, &child_env).await?;
            step.done("Read the app config");
            config
        }
    };
    let signer = prepare_signer(
        settings.private_key_path.as_deref(),
        Some(&config),
        app_dir,
        &project,
        None,
    )?;

    // The export: an existing folder, or a fresh one in a temporary folder.
    let temporary;
    let export_dir = match &settings.input_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("otago-export-")
                .tempdir()
                .map_err(CliError::io(
                    "create a temporary folder in",
                    std::env::temp_dir(),
                ))?;
            export(
                app_dir,
                temporary.path(),
                &settings.platforms,
                &child_env,
                printer,
            )
            .await?;
            temporary.path().to_owned()
        }
    };

    let step = printer.step(format!("Checking the export in {}", export_dir.display()));
    let described = describe_export(&export_dir, &settings.platforms)?;
    step.done(format!(
        "Checked the export: {}",
        described
            .iter()
            .map(|d| format!("{} ({} files)", d.platform, d.files().count()))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut runtime_versions = BTreeMap::new();
    for &platform in &settings.platforms {
        let runtime_version = match &settings.runtime_version {
            Some(version) => version.clone(),
            None => {
                app::resolve_runtime_version_for(app_dir, &config, platform, &child_env).await?
            }
        };
        runtime_versions.insert(platform, runtime_version);
    }

    check_update_url(&config, &project)?;
    check_fleet(
        &client,
        &project,
        &runtime_versions,
        settings.strict,
        printer,
    )
    .await?;
    let releases = current_releases(&client, &project, &runtime_versions, settings).await?;

    // Manifests: same creation time for the whole deploy, a fresh id per platform.
    let created_at = now()?;
    let expo_client = config.public_config();
    let mut entries = Vec::new();
    for platform_files in &described {
        let platform = platform_files.platform;
        let manifest = Manifest::build(ManifestSpec {
            id: new_update_id(),
            created_at,
            runtime_version: runtime_versions[&platform].clone(),
            launch_asset: platform_files.launch_asset.description.clone(),
            assets: platform_files
                .assets
                .iter()
                .map(|file| file.description.clone())
                .collect(),
            asset_base_url: project.asset_base_url.clone(),
            metadata: BTreeMap::new(),
            expo_client: Some(expo_client.clone()),
        })
        .map_err(CliError::core(format!("building the {platform} manifest")))?;
        let bytes = manifest.to_bytes();
        let signature = signer
            .as_ref()
            .map(|signer| signer.sign(&bytes))
            .transpose()?;
        let text = String::from_utf8(bytes).map_err(|_| CliError::Invalid {
            reason: "the manifest is not UTF-8".to_owned(),
        })?;
        let standby = if settings.rollout_percentage < 100 {
            let control = releases
                .get(&(runtime_versions[&platform].clone(), platform))
                .and_then(|release| release.base.as_ref());
            Some(standby_for(control, created_at, signer.as_ref())?)
        } else {
            None
        };
        entries.push((platform, manifest.id.to_string(), text, signature, standby));
    }
    if let Some(signer) = &signer {
        printer.done(format!(
            "Signed the manifests (keyid \"{}\")",
            signer.keyid()
        ));
    }

    let files = unique_files(&export_dir, &described);
    check_sizes(&files, &project)?;
    let assets = upload_missing(&client, &project.reference, files, printer).await?;

    // One group per runtime version, each published atomically.
    let step = printer.step("Publishing");
    let mut by_runtime: BTreeMap<String, Vec<NewUpdate>> = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (platform, id, manifest, signature, standby) in entries {
        ids.insert(platform, id);
        by_runtime
            .entry(runtime_versions[&platform].clone())
            .or_default()
            .push(NewUpdate {
                platform,
                manifest: Some(manifest),
                directive: None,
                signature,
                standby,
            });
    }
    let rollout = settings.rollout_percentage < 100;
    let health_gate = rollout.then(|| NewHealthGate {
        enabled: settings.max_failure_rate.is_some(),
        max_failure_rate: settings.max_failure_rate.map(FailureRate::as_percent),
    });
    let ramp = settings.ramp.as_ref().map(|ramp| NewRamp {
        steps: ramp.steps_text(),
        every_seconds: ramp.every.as_secs(),
    });
    let mut groups = Vec::new();
    let mut updates = Vec::new();
    for (runtime_version, group_updates) in by_runtime {
        let platforms: Vec<Platform> = group_updates.iter().map(|u| u.platform).collect();
        let published: Group = client
            .publish_group(
                &project.reference,
                &NewGroup {
                    runtime_version: runtime_version.clone(),
                    message: settings.message.clone(),
                    rollout_percentage: settings.rollout_percentage,
                    health_gate: health_gate.clone(),
                    ramp: ramp.clone(),
                    updates: group_updates,
                },
            )
            .await?;
        for platform in &platforms {
            updates.push(DeployedUpdate {
                platform: *platform,
                id: ids[platform].clone(),
                runtime_version: runtime_version.clone(),
                group: published.id.clone(),
                signed: signer.is_some(),
            });
        }
        groups.push(DeployedGroup {
            id: published.id,
            runtime_version,
            platforms,
        });
    }
    step.done("Published");
    // The publish stands whatever happens here: patches only save devices bytes.
    let patches = match wait_for_patches(&client, &project.reference, &groups, printer).await {
        Ok(patches) => patches,
        Err(err) => {
            printer.warn(format!(
                "published, but the bundle patches could not be read ({err}); `otago updates view` shows them"
            ));
            Vec::new()
        }
    };

    Ok(DeployReport {
        project: project.reference,
        group: groups.first().map(|g| g.id.clone()).unwrap_or_default(),
        groups,
        updates,
        message: settings.message.clone(),
        rollout_percentage: settings.rollout_percentage,
        keyid: signer.map(|s| s.keyid),
        assets,
        env_files: env.resolved.files.clone(),
        input_dir: settings.input_dir.clone(),
        patches,
    })
}

/// Refuses a deploy whose app config points its apps at another update URL than this
/// project's: those apps would never see the update.
fn check_update_url(config: &AppConfig, project: &Project) -> Result<()> {
    let expected = project.update_url.trim_end_matches('/');
    match config.update_url() {
        Some(url) if url.trim_end_matches('/') == expected => Ok(()),
        Some(url) => Err(CliError::AppConfig {
            reason: format!(
                "updates.url is `{url}`, but project {}'s update URL is `{expected}`: apps built with this config would never get this update; set updates.url to `{expected}` and rebuild the app, or deploy to the project `{url}` belongs to",
                project.reference
            ),
        }),
        None => Err(CliError::AppConfig {
            reason: format!(
                "updates.url is not set, so apps built with this config ask no server for updates; set it to project {}'s update URL `{expected}` and rebuild the app",
                project.reference
            ),
        }),
    }
}

/// How far back the deploy guard looks for devices.
const FLEET_DAYS: u32 = 30;

/// Warns (or with `strict`, refuses) when no device asked for a runtime version being deployed
/// in the last [`FLEET_DAYS`] days, listing the runtime versions devices run instead.
async fn check_fleet(
    client: &Client,
    project: &Project,
    runtime_versions: &BTreeMap<Platform, String>,
    strict: bool,
    printer: &Printer,
) -> Result<()> {
    let fleet = client
        .runtime_versions(&project.reference, FLEET_DAYS)
        .await?;
    for (&platform, runtime_version) in runtime_versions {
        if fleet.devices_on(platform, runtime_version) > 0 {
            continue;
        }
        let field: Vec<String> = fleet
            .runtime_versions
            .iter()
            .filter(|usage| usage.platform == platform)
            .map(|usage| format!("{} ({:.0} %)", usage.runtime_version, usage.share * 100.0))
            .collect();
        let field = if field.is_empty() {
            "no device asked at all".to_owned()
        } else {
            format!("devices run {}", field.join(", "))
        };
        let problem = format!(
            "no {platform} device asked for runtime version {runtime_version} in the last {FLEET_DAYS} days ({field})"
        );
        if strict {
            return Err(CliError::Invalid {
                reason: format!(
                    "{problem}; ship a build with runtime version {runtime_version} first, or deploy for one the devices run (without --strict this is a warning)"
                ),
            });
        }
        printer.warn(format!(
            "{problem}: the update reaches devices only once a build with this runtime version ships"
        ));
    }
    Ok(())
}

/// What each (runtime version, platform) of the deploy serves now; refuses, before anything
/// is uploaded, when a rollout is in progress there.
async fn current_releases(
    client: &Client,
    project: &Project,
    runtime_versions: &BTreeMap<Platform, String>,
    settings: &DeploySettings,
) -> Result<BTreeMap<(String, Platform), ChannelRelease>> {
    let mut releases = BTreeMap::new();
    let distinct: BTreeSet<&String> = runtime_versions.values().collect();
    for runtime_version in distinct {
        for release in client.release(&project.reference, runtime_version).await? {
            if !settings.platforms.contains(&release.platform) {
                continue;
            }
            if let Some(rollout) = release.rollout.as_ref().filter(|r| !r.reverted) {
                return Err(CliError::Invalid {
                    reason: format!(
                        "group {} is being rolled out to {}% of {} devices (runtime version {runtime_version}); finish it with `otago rollout --project {project} --percentage 100` or revert it with `otago rollout --project {project} --revert`, then deploy again",
                        rollout.group,
                        rollout.percentage,
                        release.platform,
                        project = project.reference
                    ),
                });
            }
            releases.insert((runtime_version.clone(), release.platform), release);
        }
    }
    Ok(releases)
}

/// The standby revert of a rollout over `control` (`None`: the devices' embedded update),
/// signed like the update: what the server serves to the devices that took the rollout once
/// it is reverted.
fn standby_for(
    control: Option<&ReleasedUpdate>,
    created_at: Timestamp,
    signer: Option<&Signer>,
) -> Result<NewStandby> {
    let control = match control {
        Some(control) if control.kind == "update" => Some(
            PublishedUpdate::manifest(control.body.clone().into_bytes(), None).map_err(
                CliError::core(format!("reading the served update {}", control.id)),
            )?,
        ),
        _ => None,
    };
    let (kind, bytes) = standby_body(control.as_ref(), created_at, new_update_id())
        .map_err(CliError::core("making the standby revert"))?;
    let signature = signer.map(|s| s.sign(&bytes)).transpose()?;
    let text = String::from_utf8(bytes).map_err(|_| CliError::Invalid {
        reason: "the standby revert is not UTF-8".to_owned(),
    })?;
    let is_manifest = kind == UpdateKind::Manifest;
    Ok(NewStandby {
        manifest: is_manifest.then(|| text.clone()),
        directive: (!is_manifest).then_some(text),
        signature,
    })
}

fn report_env(env: &LoadedEnv, printer: &Printer) {
    for warning in &env.warnings {
        printer.warn(warning);
    }
    if !env.resolved.files.is_empty() {
        printer.note(format!("env: load {}", env.resolved.files.join(" ")));
    }
    if let Some(profile) = &env.eas_profile {
        printer.note(format!("env: eas.json build profile `{profile}`"));
    }
    let keys = env.loaded_keys();
    if !keys.is_empty() {
        printer.note(format!("env: export {}", keys.join(" ")));
    }
}

/// Runs `npx expo export` into `output_dir`.
async fn export(
    app_dir: &Path,
    output_dir: &Path,
    platforms: &[Platform],
    env: &BTreeMap<String, String>,
    printer: &Printer,
) -> Result<()> {
    let output = output_dir.to_string_lossy().into_owned();
    let mut args = vec![
        "expo",
        "export",
        "--output-dir",
        output.as_str(),
        "--dump-assetmap",
    ];
    for platform in platforms {
        args.push("--platform");
        args.push(platform.as_str());
    }
    let step = printer.step("Exporting (npx expo export)");
    app::run_npx(
        app_dir,
        &args,
        env,
        "fix the error above (run `npx expo export` yourself to see all of it), or pass --input-dir with an existing export",
    )
    .await?;
    step.done("Exported the bundles");
    Ok(())
}

/// Refuses a file of the export that is a symbolic link or lies under one: only files inside
/// the export are uploaded (a link could point anywhere, e.g. at `/etc/hostname`, and its
/// target would become a public asset). The export folder itself may be a link.
fn refuse_symlinks(export_dir: &Path, path: &str) -> Result<()> {
    let mut at = export_dir.to_path_buf();
    for component in Path::new(path).components() {
        at.push(component);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)
                    .map(|target| format!(" (to {})", target.display()))
                    .unwrap_or_default();
                return Err(CliError::AppConfig {
                    reason: format!(
                        "{} is a symbolic link{target}; otago uploads only files inside the export, so replace it with the file itself (or re-run `npx expo export`)",
                        at.display()
                    ),
                });
            }
            Ok(_) => {}
            // Missing files are reported by the description, naming them.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Reads metadata.json and hashes every file of each platform, checking them against it.
/// No file may be a symbolic link ([`refuse_symlinks`]).
fn describe_export(export_dir: &Path, platforms: &[Platform]) -> Result<Vec<DescribedPlatform>> {
    refuse_symlinks(export_dir, "metadata.json")?;
    let metadata_path = export_dir.join("metadata.json");
    let bytes = std::fs::read(&metadata_path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            CliError::AppConfig {
                reason: format!(
                    "{} has no metadata.json, so it is not an `npx expo export` output; export first (`npx expo export --dump-assetmap`) or pass the right --input-dir",
                    export_dir.display()
                ),
            }
        } else {
            CliError::io("read", &metadata_path)(err)
        }
    })?;
    let context = format!("checking the export in {}", export_dir.display());
    let metadata = ExportMetadata::parse(&bytes).map_err(CliError::core(context.clone()))?;
    if metadata.version != 0 || metadata.bundler != "metro" {
        return Err(CliError::AppConfig {
            reason: format!(
                "{} has version {} and bundler `{}`; otago reads version 0 from metro, as `npx expo export` writes it",
                metadata_path.display(),
                metadata.version,
                metadata.bundler
            ),
        });
    }
    platforms
        .iter()
        .map(|&platform| {
            let export = metadata
                .platform(platform)
                .map_err(CliError::core(context.clone()))?;
            for path in export.files() {
                refuse_symlinks(export_dir, path.as_str())?;
            }
            DescribedPlatform::describe(platform, export, |path| {
                std::fs::read(export_dir.join(path.as_str())).ok()
            })
            .map_err(CliError::core(context.clone()))
        })
        .collect()
}

/// Every distinct file of the described platforms, by hash.
fn unique_files(export_dir: &Path, described: &[DescribedPlatform]) -> Vec<UploadFile> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for platform in described {
        for (index, file) in platform.files().enumerate() {
            if seen.insert(file.description.hash.clone()) {
                files.push(UploadFile {
                    hash: file.description.hash.clone(),
                    content_type: file.description.content_type.clone(),
                    size: file.description.size,
                    path: export_dir.join(file.path.as_str()),
                    launch_asset: index == 0,
                });
            }
        }
    }
    files
}

fn check_sizes(files: &[UploadFile], project: &Project) -> Result<()> {
    let Some(limit) = project.max_asset_bytes else {
        return Ok(());
    };
    if let Some(file) = files.iter().find(|file| file.size > limit) {
        return Err(CliError::Invalid {
            reason: format!(
                "{} has {} bytes, more than project {}'s limit of {limit} bytes; make it smaller or raise the project's max_asset_bytes",
                file.path.display(),
                file.size,
                project.reference
            ),
        });
    }
    Ok(())
}

/// Asks which files the server lacks and uploads those, a few at a time, with a progress bar.
async fn upload_missing(
    client: &Client,
    project: &str,
    files: Vec<UploadFile>,
    printer: &Printer,
) -> Result<TransferCounts> {
    let step = printer.step("Asking the server which assets it lacks");
    let hashes: Vec<String> = files.iter().map(|file| file.hash.clone()).collect();
    let missing: BTreeSet<String> = client
        .missing_assets(project, &hashes)
        .await?
        .into_iter()
        .collect();
    step.done(format!(
        "The server lacks {} of {}",
        missing.len(),
        crate::output::count(files.len(), "file")
    ));

    let mut counts = TransferCounts {
        total: files.len(),
        total_bytes: files.iter().map(|f| f.size).sum(),
        ..TransferCounts::default()
    };
    let (to_upload, reused): (Vec<UploadFile>, Vec<UploadFile>) = files
        .into_iter()
        .partition(|file| missing.contains(&file.hash));
    counts.reused = reused.len();
    counts.reused_bytes = reused.iter().map(|f| f.size).sum();
    if to_upload.is_empty() {
        printer.done("Uploading skipped: the server has every file");
        return Ok(counts);
    }

    let upload_bytes: u64 = to_upload.iter().map(|f| f.size).sum();
    let bar = printer.bar(
        upload_bytes,
        format!(
            "Uploading {}",
            crate::output::count(to_upload.len(), "file")
        ),
    );
    let semaphore = Arc::new(tokio::sync::Semaphore::new(UPLOAD_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for file in to_upload {
        let client = client.clone();
        let project = project.to_owned();
        let semaphore = Arc::clone(&semaphore);
        let bar = bar.clone();
        tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|_| CliError::Invalid {
                    reason: "the upload was cancelled".to_owned(),
                })?;
            let bytes = tokio::fs::read(&file.path)
                .await
                .map_err(CliError::io("read", &file.path))?;
            if otago_core::asset_hash(&bytes) != file.hash {
                return Err(CliError::Invalid {
                    reason: format!(
                        "{} changed during the deploy; export again and retry",
                        file.path.display()
                    ),
                });
            }
            client
                .upload_asset(&project, &file.hash, &file.content_type, bytes.into())
                .await?;
            bar.inc(file.size);
            Ok::<_, CliError>(file)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let file = joined.map_err(|err| CliError::Invalid {
            reason: format!("an upload task failed: {err}"),
        })??;
        counts.uploaded += 1;
        counts.uploaded_bytes += file.size;
        counts.uploaded_bundles += usize::from(file.launch_asset);
    }
    bar.done(format!(
        "Uploaded {} ({}), reused {}",
        crate::output::count(counts.uploaded, "file"),
        crate::output::human_bytes(counts.uploaded_bytes),
        counts.reused
    ));
    Ok(counts)
}
