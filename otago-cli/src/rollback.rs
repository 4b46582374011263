//! `otago updates list`, `otago rollback` and `otago rollout`.

use std::collections::BTreeMap;
use std::path::Path;

use otago_core::{Directive, Manifest, Platform, SignatureHeader};
use serde::Serialize;

use crate::app::{self, AppConfig};
use crate::client::{Client, Group, NewGroup, NewUpdate};
use crate::deploy::{DeployedUpdate, connect, new_update_id, now, prepare_signer};
use crate::error::{CliError, Result};
use crate::output::Printer;
use crate::settings::{
    Credential, RollbackSettings, RollbackTarget, RolloutChange, RolloutSettings, ServerSettings,
};

/// How many groups `rollout` looks through for the newest one that is not reverted.
const NEWEST_SEARCH: u32 = 50;

/// `otago updates list`.
#[derive(Debug, Clone, Serialize)]
pub struct UpdatesList {
    /// Project ref.
    pub project: String,
    /// Groups, newest first.
    pub groups: Vec<Group>,
}

/// What `otago rollback` published.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// Project ref.
    pub project: String,
    /// `republish` or `rollback_to_embedded`.
    pub kind: &'static str,
    /// The (first) new group.
    pub group: String,
    /// Every new group (one per runtime version).
    pub groups: Vec<String>,
    /// The group republished (`--to`).
    pub from_group: Option<String>,
    /// One entry per platform.
    pub updates: Vec<DeployedUpdate>,
    /// The message of the new group.
    pub message: String,
}

/// What `otago rollout` changed.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// Project ref.
    pub project: String,
    /// `percentage` or `revert`.
    pub action: &'static str,
    /// The group as it is now.
    pub group: Group,
}

/// `otago updates list`.
///
/// # Errors
/// The server's error.
pub async fn list_updates(
    server: &ServerSettings,
    project: &str,
    runtime_version: Option<&str>,
    platform: Option<Platform>,
    limit: u32,
) -> Result<UpdatesList> {
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    let groups = client
        .list_groups(project, runtime_version, platform, Some(limit))
        .await?;
    Ok(UpdatesList {
        project: project.to_owned(),
        groups,
    })
}

/// The app config, when one can be read without Node: `--config-json`, else app.json.
fn optional_config(config_json: Option<&Path>, app_dir: &Path) -> Result<Option<AppConfig>> {
    match config_json {
        Some(path) => app::read_config_json(path).map(Some),
        None if app_dir.join("app.json").is_file() => app::read_static_config(app_dir).map(Some),
        None => Ok(None),
    }
}

/// `otago rollback`.
///
/// # Errors
/// The server's error, or a signing problem; nothing is published then.
pub async fn rollback(
    settings: &RollbackSettings,
    server: &ServerSettings,
    printer: &Printer,
) -> Result<RollbackReport> {
    let (client, project) = connect(server, &settings.project, printer).await?;
    let config = optional_config(settings.config_json.as_deref(), &settings.app_dir)?;
    match &settings.target {
        RollbackTarget::Group(group_id) => {
            let step = printer.step(format!("Fetching group {group_id}"));
            let group = client.group(&project.reference, group_id).await?;
            step.done(format!(
                "Group {} (runtime version {}, {})",
                group.id,
                group.runtime_version,
                group
                    .updates
                    .iter()
                    .map(|u| u.platform.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let chosen: Vec<_> = group
                .updates
                .iter()
                .filter(|update| settings.platforms.contains(&update.platform))
                .collect();
            if chosen.is_empty() {
                return Err(CliError::Invalid {
                    reason: format!(
                        "group {} has no update for {}; choose --platform among its platforms",
                        group.id,
                        settings
                            .platforms
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                });
            }
            let original_keyid = chosen
                .iter()
                .filter_map(|update| update.signature.as_deref())
                .find_map(|header| SignatureHeader::parse(header).ok())
                .map(|header| header.keyid().to_owned());
            let was_signed = chosen
                .iter()
                .any(|update| update.signed || update.signature.is_some());
            if was_signed && settings.private_key_path.is_none() {
                return Err(CliError::Signing {
                    reason: format!(
                        "group {} was signed, so its apps expect signed updates; set OTAGO_PRIVATE_KEY (or pass --private-key-path) to sign the republished one",
                        group.id
                    ),
                });
            }
            let signer = prepare_signer(
                settings.private_key_path.as_deref(),
                config.as_ref(),
                &settings.app_dir,
                &project,
                original_keyid.as_deref(),
            )?;
            let created_at = now()?;
            let mut updates = Vec::new();
            let mut entries = Vec::new();
            for update in chosen {
                let (text, id) = match (&update.manifest, &update.directive) {
                    (Some(manifest), _) => {
                        let mut manifest = Manifest::parse(manifest.as_bytes()).map_err(
                            CliError::core(format!(
                                "reading the {} manifest of group {}",
                                update.platform, group.id
                            )),
                        )?;
                        manifest.id = new_update_id();
                        manifest.created_at = created_at;
                        let id = manifest.id.to_string();
                        (bytes_to_text(manifest.to_bytes())?, id)
                    }
                    (None, Some(_)) => (
                        bytes_to_text(Directive::roll_back_to_embedded(created_at).to_bytes())?,
                        new_update_id().to_string(),
                    ),
                    (None, None) => {
                        return Err(CliError::BadResponse {
                            what: format!("GET group {}", group.id),
                            reason: format!(
                                "the {} update has neither manifest nor directive",
                                update.platform
                            ),
                        });
                    }
                };
                let signature = signer
                    .as_ref()
                    .map(|s| s.sign(text.as_bytes()))
                    .transpose()?;
                let is_directive = update.manifest.is_none();
                entries.push(NewUpdate {
                    platform: update.platform,
                    manifest: (!is_directive).then(|| text.clone()),
                    directive: is_directive.then_some(text),
                    signature,
                    standby: None,
                });
                updates.push((update.platform, id));
            }
            let message = settings.message.clone().unwrap_or_else(|| {
                match group.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(message) => format!("Roll back to \"{message}\" (group: {})", group.id),
                    None => format!("Roll back to group {}", group.id),
                }
            });
            let step = printer.step("Publishing");
            let published = client
                .publish_group(
                    &project.reference,
                    &NewGroup {
                        runtime_version: group.runtime_version.clone(),
                        message: Some(message.clone()),
                        rollout_percentage: 100,
                        health_gate: None,
                        ramp: None,
                        updates: entries,
                    },
                )
                .await?;
            step.done(format!("Published group {}", published.id));
            let signed = signer.is_some();
            Ok(RollbackReport {
                project: project.reference,
                kind: "republish",
                group: published.id.clone(),
                groups: vec![published.id.clone()],
                from_group: Some(group.id),
                updates: updates
                    .into_iter()
                    .map(|(platform, id)| DeployedUpdate {
                        platform,
                        id: published
                            .updates
                            .iter()
                            .find(|u| u.platform == platform)
                            .map_or(id, |u| u.id.clone()),
                        runtime_version: group.runtime_version.clone(),
                        group: published.id.clone(),
                        signed,
                    })
                    .collect(),
                message,
            })
        }
        RollbackTarget::Embedded => {
            // Without an app config, sign under the key id the project's updates already use.
            let served_keyid = match (&config, &settings.private_key_path) {
                (None, Some(_)) => newest_keyid(&client, &project.reference).await?,
                _ => None,
            };
            let signer = prepare_signer(
                settings.private_key_path.as_deref(),
                config.as_ref(),
                &settings.app_dir,
                &project,
                served_keyid.as_deref(),
            )?;
            let runtime_versions =
                rollback_runtime_versions(settings, config.as_ref(), &client, &project.reference)
                    .await?;
            let directive = bytes_to_text(Directive::roll_back_to_embedded(now()?).to_bytes())?;
            let signature = signer
                .as_ref()
                .map(|s| s.sign(directive.as_bytes()))
                .transpose()?;
            let message = settings
                .message
                .clone()
                .unwrap_or_else(|| "Roll back to embedded".to_owned());
            let mut by_runtime: BTreeMap<String, Vec<Platform>> = BTreeMap::new();
            for (platform, runtime_version) in runtime_versions {
                by_runtime
                    .entry(runtime_version)
                    .or_default()
                    .push(platform);
            }
            let step = printer.step("Publishing the rollBackToEmbedded directive");
            let mut groups = Vec::new();
            let mut updates = Vec::new();
            for (runtime_version, platforms) in by_runtime {
                let published = client
                    .publish_group(
                        &project.reference,
                        &NewGroup {
                            runtime_version: runtime_version.clone(),
                            message: Some(message.clone()),
                            rollout_percentage: 100,
                            health_gate: None,
                            ramp: None,
                            updates: platforms
                                .iter()
                                .map(|&platform| NewUpdate {
                                    platform,
                                    manifest: None,
                                    directive: Some(directive.clone()),
                                    signature: signature.clone(),
                                    standby: None,
                                })
                                .collect(),
                        },
                    )
                    .await?;
                for update in &published.updates {
                    updates.push(DeployedUpdate {
                        platform: update.platform,
                        id: update.id.clone(),
                        runtime_version: runtime_version.clone(),
                        group: published.id.clone(),
                        signed: signer.is_some(),
                    });
                }
                groups.push(published.id);
            }
            step.done("Published the rollback to the embedded update");
            Ok(RollbackReport {
                project: project.reference,
                kind: "rollback_to_embedded",
                group: groups.first().cloned().unwrap_or_default(),
                groups,
                from_group: None,
                updates,
                message,
            })
        }
    }
}

/// The key id of the newest signed group, if any.
async fn newest_keyid(client: &Client, project: &str) -> Result<Option<String>> {
    let groups = client
        .list_groups(project, None, None, Some(NEWEST_SEARCH))
        .await?;
    let Some(signed) = groups
        .iter()
        .find(|group| group.updates.iter().any(|update| update.signed))
    else {
        return Ok(None);
    };
    let group = client.group(project, &signed.id).await?;
    Ok(group
        .updates
        .iter()
        .filter_map(|update| update.signature.as_deref())
        .find_map(|header| SignatureHeader::parse(header).ok())
        .map(|header| header.keyid().to_owned()))
}

/// The runtime version per platform a rollback to embedded targets: `--runtime-version`, else
/// the app config's, else the newest group's.
async fn rollback_runtime_versions(
    settings: &RollbackSettings,
    config: Option<&AppConfig>,
    client: &Client,
    project: &str,
) -> Result<Vec<(Platform, String)>> {
    if let Some(version) = &settings.runtime_version {
        return Ok(settings
            .platforms
            .iter()
            .map(|&p| (p, version.clone()))
            .collect());
    }
    if let Some(config) = config {
        let env = &settings.process_env;
        let mut versions = Vec::new();
        for &platform in &settings.platforms {
            versions.push((
                platform,
                app::resolve_runtime_version_for(&settings.app_dir, config, platform, env).await?,
            ));
        }
        return Ok(versions);
    }
    let newest = client.list_groups(project, None, None, Some(1)).await?;
    let Some(group) = newest.first() else {
        return Err(CliError::Invalid {
            reason: format!(
                "project {project} has no update yet and no app config was found to read the runtime version from; pass --runtime-version"
            ),
        });
    };
    Ok(settings
        .platforms
        .iter()
        .map(|&p| (p, group.runtime_version.clone()))
        .collect())
}

/// `otago rollout`.
///
/// # Errors
/// The server's error, or [`CliError::Invalid`] when there is no group to change.
pub async fn rollout(
    settings: &RolloutSettings,
    server: &ServerSettings,
    printer: &Printer,
) -> Result<RolloutReport> {
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    let group_id = match &settings.group {
        Some(group) => group.clone(),
        None => {
            let groups = client
                .list_groups(
                    &settings.project,
                    settings.runtime_version.as_deref(),
                    None,
                    Some(NEWEST_SEARCH),
                )
                .await?;
            groups
                .into_iter()
                .find(|group| group.state == "rollout")
                .map(|group| group.id)
                .ok_or_else(|| CliError::Invalid {
                    reason: format!(
                        "project {} has no rollout in progress{}: deploy one with `otago deploy --rollout-percentage N`; to bring devices back after a full release, republish an earlier group with `otago rollback --to GROUP`",
                        settings.project,
                        settings
                            .runtime_version
                            .as_deref()
                            .map(|rv| format!(" for runtime version {rv}"))
                            .unwrap_or_default()
                    ),
                })?
        }
    };
    let (action, group) = match settings.change {
        RolloutChange::Percentage(percentage) => {
            let step = printer.step(format!(
                "Raising the rollout of group {group_id} to {percentage}%"
            ));
            let group = client
                .set_rollout(&settings.project, &group_id, percentage)
                .await?;
            step.done(format!(
                "Group {} now reaches {}% of devices",
                group.id, group.rollout_percentage
            ));
            ("percentage", group)
        }
        RolloutChange::Revert => {
            let step = printer.step(format!("Reverting the rollout of group {group_id}"));
            let group = client.revert_group(&settings.project, &group_id).await?;
            step.done(format!("Reverted group {}", group.id));
            ("revert", group)
        }
    };
    Ok(RolloutReport {
        project: settings.project.clone(),
        action,
        group,
    })
}

/// `otago updates view`.
///
/// # Errors
/// The server's error.
pub async fn view_update(server: &ServerSettings, project: &str, group: &str) -> Result<Group> {
    let client = Client::new(&server.url, Some(server.token(Credential::KeyFirst)?))?;
    let mut group = client.group(project, group).await?;
    for update in &mut group.updates {
        update.manifest = None;
        update.directive = None;
        update.signature = None;
    }
    Ok(group)
}

fn bytes_to_text(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| CliError::Invalid {
        reason: "a manifest is not UTF-8".to_owned(),
    })
}
