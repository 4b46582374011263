//! Command line plus environment snapshot → checked settings, in one place.
//!
//! clap has already applied the variables that stand for a flag (`OTAGO_SERVER_URL` for
//! `--server-url`, ...); what is left of the environment (the snapshot) is what child processes
//! and `.env` resolution see.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use otago_core::{FailureRate, Platform, Ramp, Timestamp};

use crate::args::{
    Args, CodesigningCommand, CodesigningGenerateArgs, ColorArg, Command, DeployArgs, DoctorArgs,
    EmbeddedCommand, EmbeddedPlatformArg, EnvFileArgs, KeyRoleArg, KeysCommand, PlatformArg,
    ProjectsCommand, ProjectsUpdateArgs, RollbackArgs, RolloutArgs, UpdatesCommand,
};
use crate::error::{CliError, Result};

/// The environment variables `otago` reads.
pub struct EnvVars;

impl EnvVars {
    /// Base URL of the Otago server; default `http://localhost:3000`.
    pub const OTAGO_SERVER_URL: &'static str = "OTAGO_SERVER_URL";
    /// A project's API key.
    pub const OTAGO_API_KEY: &'static str = "OTAGO_API_KEY";
    /// The server's admin token.
    pub const OTAGO_ADMIN_TOKEN: &'static str = "OTAGO_ADMIN_TOKEN";
    /// Path of the PEM private key that signs updates.
    pub const OTAGO_PRIVATE_KEY: &'static str = "OTAGO_PRIVATE_KEY";
    /// `false` turns `.env*` loading off.
    pub const OTAGO_LOAD_ENVS: &'static str = "OTAGO_LOAD_ENVS";
    /// The default project ref.
    pub const OTAGO_PROJECT: &'static str = "OTAGO_PROJECT";
    /// The mode of the export and of `.env.<mode>` files; default `production`.
    pub const NODE_ENV: &'static str = "NODE_ENV";
    /// The eas.json build profile whose `env` is loaded; default `production`.
    pub const EAS_PROFILE: &'static str = "EAS_PROFILE";
    /// Set (to anything) to turn colour off.
    pub const NO_COLOR: &'static str = "NO_COLOR";
}

/// A snapshot of the process environment.
pub type EnvSnapshot = BTreeMap<String, String>;

/// Reads the process environment once (names or values that are not UTF-8 are skipped).
#[must_use]
pub fn env_snapshot() -> EnvSnapshot {
    std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// Where output goes and how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSettings {
    /// One JSON object on stdout instead of text.
    pub json: bool,
    /// Colour choice.
    pub color: ColorArg,
}

/// Which credential a command prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The admin token (projects, keys), else the API key.
    AdminFirst,
    /// The project's API key, else the admin token.
    KeyFirst,
}

/// The server and the credentials.
#[derive(Clone)]
pub struct ServerSettings {
    /// Base URL without a trailing slash, e.g. `http://localhost:3000`.
    pub url: String,
    api_key: Option<String>,
    admin_token: Option<String>,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ServerSettings {
    /// Checks the URL and keeps the credentials (empty values count as unset).
    ///
    /// # Errors
    /// [`CliError::InvalidSetting`] when the URL is not an absolute http(s) URL.
    pub fn new(url: &str, api_key: Option<String>, admin_token: Option<String>) -> Result<Self> {
        let trimmed = url.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"));
        if !rest.is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace)) {
            return Err(CliError::InvalidSetting {
                name: EnvVars::OTAGO_SERVER_URL.to_owned(),
                value: url.to_owned(),
                reason: "give the server's absolute http(s) URL, e.g. https://updates.example.com"
                    .to_owned(),
            });
        }
        let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        Ok(Self {
            url: trimmed.to_owned(),
            api_key: non_empty(api_key),
            admin_token: non_empty(admin_token),
        })
    }

    /// The token to send.
    ///
    /// # Errors
    /// [`CliError::MissingSetting`] when neither credential is set.
    pub fn token(&self, preference: Credential) -> Result<&str> {
        let (first, second) = match preference {
            Credential::AdminFirst => (&self.admin_token, &self.api_key),
            Credential::KeyFirst => (&self.api_key, &self.admin_token),
        };
        first.as_deref().or(second.as_deref()).ok_or_else(|| {
            let fix = match preference {
                Credential::AdminFirst => {
                    "set OTAGO_ADMIN_TOKEN (or pass --admin-token) to the token the server was started with"
                }
                Credential::KeyFirst => {
                    "set OTAGO_API_KEY (or pass --api-key) to a key from `otago keys create --project REF`"
                }
            };
            CliError::MissingSetting {
                what: "no credential",
                fix: fix.to_owned(),
            }
        })
    }
}

/// `.env*` loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileSettings {
    /// Whether `.env*` files (and the eas.json profile's `env`) are loaded.
    pub load: bool,
    /// The mode (`NODE_ENV`).
    pub mode: String,
    /// The eas.json build profile.
    pub eas_profile: String,
    /// The process environment.
    pub process_env: EnvSnapshot,
}

impl EnvFileSettings {
    fn new(args: &EnvFileArgs, env: &EnvSnapshot) -> Result<Self> {
        let mode = args.node_env.trim();
        if mode.is_empty() {
            return Err(CliError::InvalidSetting {
                name: EnvVars::NODE_ENV.to_owned(),
                value: args.node_env.clone(),
                reason: "give a mode such as production or development".to_owned(),
            });
        }
        Ok(Self {
            load: args.load_envs,
            mode: mode.to_owned(),
            eas_profile: args.eas_profile.trim().to_owned(),
            process_env: env.clone(),
        })
    }
}

/// `otago deploy`, checked.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// Project ref.
    pub project: String,
    /// Platforms to publish, in a stable order.
    pub platforms: Vec<Platform>,
    /// Message of the group.
    pub message: Option<String>,
    /// An existing export to publish; `None` runs `npx expo export`.
    pub input_dir: Option<PathBuf>,
    /// The app's folder.
    pub app_dir: PathBuf,
    /// A file holding the output of `npx expo config --json`.
    pub config_json: Option<PathBuf>,
    /// Runtime version for every platform, instead of resolving.
    pub runtime_version: Option<String>,
    /// Rollout percentage (0-100).
    pub rollout_percentage: u8,
    /// A rollout's health gate: revert once over this failure rate; `None`: off.
    pub max_failure_rate: Option<FailureRate>,
    /// A rollout's ramp.
    pub ramp: Option<Ramp>,
    /// An error, not a warning, when no device runs the runtime version.
    pub strict: bool,
    /// The private key that signs.
    pub private_key_path: Option<PathBuf>,
    /// `.env*` loading.
    pub env: EnvFileSettings,
}

/// Reads a duration such as `90s`, `30m`, `1h` or `1d`.
fn duration(name: &str, text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && seconds > 0)
        .and_then(|n| n.checked_mul(seconds))
        .map(Duration::from_secs)
        .ok_or_else(|| CliError::InvalidSetting {
            name: name.to_owned(),
            value: text.to_owned(),
            reason: "write a number and a unit: `90s`, `30m`, `1h` or `1d`".to_owned(),
        })
}

/// `otago deploy`'s rollout flags, checked: the percentage, the gate and the ramp.
fn rollout_plan(args: &DeployArgs) -> Result<(u8, Option<FailureRate>, Option<Ramp>)> {
    let invalid = |name: &str, value: &str, reason: String| CliError::InvalidSetting {
        name: name.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let ramp = match (&args.ramp, &args.ramp_every) {
        (Some(steps), Some(every)) => Some(
            Ramp::new(steps, duration("--ramp-every", every)?)
                .map_err(|err| invalid("--ramp", steps, err.to_string()))?,
        ),
        _ => None,
    };
    let percentage = match (&ramp, args.rollout_percentage) {
        (Some(ramp), Some(p)) if p != ramp.first() => {
            return Err(invalid(
                "--rollout-percentage",
                &p.to_string(),
                format!(
                    "the ramp starts at its first step, {}%; leave --rollout-percentage out",
                    ramp.first()
                ),
            ));
        }
        (Some(ramp), _) => ramp.first(),
        (None, p) => p.unwrap_or(100),
    };
    if ramp.as_ref().is_some_and(|_| percentage >= 100) {
        return Err(invalid(
            "--ramp",
            args.ramp.as_deref().unwrap_or_default(),
            "a ramp starts under 100%, e.g. `1,10,50,100`".to_owned(),
        ));
    }
    let max_failure_rate = match args.max_failure_rate.trim() {
        "off" => None,
        text => Some(
            text.parse::<FailureRate>()
                .map_err(|err| invalid("--max-failure-rate", text, format!("{err}, or `off`")))?,
        ),
    };
    Ok((percentage, max_failure_rate, ramp))
}

/// `otago doctor`, checked.
#[derive(Debug, Clone)]
pub struct DoctorSettings {
    /// Project ref.
    pub project: String,
    /// The app's folder.
    pub app_dir: PathBuf,
    /// A file holding the output of `npx expo config --json`.
    pub config_json: Option<PathBuf>,
    /// The private key that signs.
    pub private_key_path: Option<PathBuf>,
    /// Platforms to check.
    pub platforms: Vec<Platform>,
    /// `.env*` loading.
    pub env: EnvFileSettings,
}

/// What `otago rollback` publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// Republish this group.
    Group(String),
    /// A `rollBackToEmbedded` directive.
    Embedded,
}

/// `otago rollback`, checked.
#[derive(Debug, Clone)]
pub struct RollbackSettings {
    /// Project ref.
    pub project: String,
    /// What to publish.
    pub target: RollbackTarget,
    /// The runtime version, for `--to-embedded`.
    pub runtime_version: Option<String>,
    /// Platforms.
    pub platforms: Vec<Platform>,
    /// Message of the new group.
    pub message: Option<String>,
    /// The app's folder.
    pub app_dir: PathBuf,
    /// A file holding the output of `npx expo config --json`.
    pub config_json: Option<PathBuf>,
    /// The private key that signs.
    pub private_key_path: Option<PathBuf>,
    /// The process environment, for Expo tools run to resolve a runtime version.
    pub process_env: EnvSnapshot,
}

/// What `otago rollout` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutChange {
    /// Set the percentage.
    Percentage(u8),
    /// Revert the group.
    Revert,
}

/// `otago embedded upload`, checked.
#[derive(Debug, Clone)]
pub struct EmbeddedUploadSettings {
    /// Project ref.
    pub project: String,
    /// The build's platform.
    pub platform: Platform,
    /// The build's runtime version.
    pub runtime_version: String,
    /// The embedded update id, when given (else read from `app.manifest`).
    pub update_id: Option<String>,
    /// The bundle, or a folder holding it.
    pub path: PathBuf,
}

/// `otago rollout`, checked.
#[derive(Debug, Clone)]
pub struct RolloutSettings {
    /// Project ref.
    pub project: String,
    /// The change.
    pub change: RolloutChange,
    /// The group; `None` picks the newest.
    pub group: Option<String>,
    /// Pick the newest group of this runtime version.
    pub runtime_version: Option<String>,
}

/// What `otago projects update` does with the project's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateChange {
    /// Leave it as it is.
    Keep,
    /// Set it to the certificate in this PEM file (checked before sending).
    Set(PathBuf),
    /// Remove it.
    Remove,
}

/// `otago projects update`, checked: at least one setting changes.
#[derive(Debug, Clone)]
pub struct ProjectUpdateSettings {
    /// Project ref.
    pub project: String,
    /// New `require_signing`, if given.
    pub require_signing: Option<bool>,
    /// The certificate change.
    pub certificate: CertificateChange,
    /// New `max_asset_bytes`, if given.
    pub max_asset_bytes: Option<u64>,
}

/// `otago codesigning generate`, checked.
#[derive(Debug, Clone)]
pub struct CodesigningSettings {
    /// Folder for the keys.
    pub key_output_directory: PathBuf,
    /// Folder for the certificate.
    pub certificate_output_directory: PathBuf,
    /// Whole years of validity (at least 1).
    pub validity_years: u32,
    /// The certificate's common name.
    pub common_name: String,
}

/// When a new key stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExpiry {
    /// Never.
    Never,
    /// This long after it is created (`--expires-in`).
    After(std::time::Duration),
    /// At this time (`--expires-at`).
    At(Timestamp),
}

impl KeyExpiry {
    /// The expiry time for a key created at `now`.
    ///
    /// # Errors
    /// [`CliError::Usage`] when the time is past what timestamps hold.
    pub fn at(self, now: std::time::SystemTime) -> Result<Option<Timestamp>> {
        match self {
            Self::Never => Ok(None),
            Self::At(at) => Ok(Some(at)),
            Self::After(duration) => now
                .checked_add(duration)
                .and_then(|at| Timestamp::from_system_time(at).ok())
                .map(Some)
                .ok_or_else(|| CliError::Usage {
                    reason: "--expires-in is too long; give a shorter duration".to_owned(),
                }),
        }
    }
}

/// A command with its settings.
#[derive(Debug, Clone)]
pub enum CommandSettings {
    /// `projects create`.
    ProjectsCreate {
        /// App name.
        app: String,
        /// Environment.
        environment: String,
    },
    /// `projects list`.
    ProjectsList,
    /// `projects show`.
    ProjectsShow {
        /// Project ref.
        project: String,
    },
    /// `projects update`.
    ProjectsUpdate(ProjectUpdateSettings),
    /// `projects delete`.
    ProjectsDelete {
        /// Project ref.
        project: String,
        /// `--yes`: delete without asking.
        confirmed: bool,
    },
    /// `keys create`.
    KeysCreate {
        /// Project ref.
        project: String,
        /// Key name.
        name: String,
        /// `deploy` or `admin`.
        role: KeyRoleArg,
        /// When it stops working.
        expiry: KeyExpiry,
    },
    /// `projects audit`.
    ProjectsAudit {
        /// Project ref.
        project: String,
        /// At most this many entries.
        limit: u32,
        /// Only entries older than this one.
        before: Option<i64>,
    },
    /// `keys list`.
    KeysList {
        /// Project ref.
        project: String,
    },
    /// `keys revoke`.
    KeysRevoke {
        /// Project ref.
        project: String,
        /// Key id.
        key_id: String,
    },
    /// `doctor`.
    Doctor(DoctorSettings),
    /// `deploy`.
    Deploy(DeploySettings),
    /// `updates list`.
    UpdatesList {
        /// Project ref.
        project: String,
        /// Filter.
        runtime_version: Option<String>,
        /// Filter.
        platform: Option<Platform>,
        /// Most groups to show.
        limit: u32,
    },
    /// `embedded upload`.
    EmbeddedUpload(EmbeddedUploadSettings),
    /// `embedded list`.
    EmbeddedList {
        /// Project ref.
        project: String,
    },
    /// `updates view`.
    UpdatesView {
        /// Project ref.
        project: String,
        /// The group.
        group: String,
    },
    /// `rollback`.
    Rollback(RollbackSettings),
    /// `fleet`.
    Fleet {
        /// Project ref.
        project: String,
        /// Days back from today.
        days: u32,
    },
    /// `rollout`.
    Rollout(RolloutSettings),
    /// `codesigning generate`.
    CodesigningGenerate(CodesigningSettings),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Output.
    pub output: OutputSettings,
    /// Server and credentials.
    pub server: ServerSettings,
    /// The command.
    pub command: CommandSettings,
}

impl Settings {
    /// Resolves and checks the command line against the environment snapshot.
    ///
    /// # Errors
    /// [`CliError::InvalidSetting`] for a value that cannot be used (the server URL is checked
    /// for every command, even one that does not talk to the server).
    pub fn resolve(args: Args, env: &EnvSnapshot) -> Result<Self> {
        let global = args.global;
        let color = if global.color == ColorArg::Auto && env.contains_key(EnvVars::NO_COLOR) {
            ColorArg::Never
        } else {
            global.color
        };
        let output = OutputSettings {
            json: global.json,
            color,
        };
        let server = ServerSettings::new(&global.server_url, global.api_key, global.admin_token)?;
        let command = match args.command {
            Command::Projects(ProjectsCommand::Create { app, environment }) => {
                CommandSettings::ProjectsCreate {
                    app: name("--app", &app)?,
                    environment: name("--env", &environment)?,
                }
            }
            Command::Projects(ProjectsCommand::List) => CommandSettings::ProjectsList,
            Command::Projects(ProjectsCommand::Show { project }) => CommandSettings::ProjectsShow {
                project: project_ref(&project.project)?,
            },
            Command::Projects(ProjectsCommand::Update(update)) => {
                CommandSettings::ProjectsUpdate(project_update_settings(update)?)
            }
            Command::Projects(ProjectsCommand::Delete { project, yes }) => {
                CommandSettings::ProjectsDelete {
                    project: project_ref(&project.project)?,
                    confirmed: yes,
                }
            }
            Command::Keys(KeysCommand::Create {
                project,
                name: key_name,
                role,
                expires_in,
                expires_at,
            }) => CommandSettings::KeysCreate {
                project: project_ref(&project.project)?,
                name: non_empty("--name", &key_name)?,
                role,
                expiry: match (expires_in, expires_at) {
                    (Some(duration), _) => KeyExpiry::After(duration),
                    (None, Some(text)) => KeyExpiry::At(Timestamp::parse(&text).map_err(|err| {
                        CliError::Usage {
                            reason: format!(
                                "--expires-at `{text}` is not a time ({err}); write it as YYYY-MM-DDTHH:mm:ss.sssZ, e.g. 2027-01-01T00:00:00.000Z, or use --expires-in 90d"
                            ),
                        }
                    })?),
                    (None, None) => KeyExpiry::Never,
                },
            },
            Command::Projects(ProjectsCommand::Audit {
                project,
                limit,
                before,
            }) => CommandSettings::ProjectsAudit {
                project: project_ref(&project.project)?,
                limit,
                before,
            },
            Command::Keys(KeysCommand::List { project }) => CommandSettings::KeysList {
                project: project_ref(&project.project)?,
            },
            Command::Keys(KeysCommand::Revoke { project, key_id }) => CommandSettings::KeysRevoke {
                project: project_ref(&project.project)?,
                key_id: path_segment("KEY_ID", &key_id)?,
            },
            Command::Doctor(doctor) => CommandSettings::Doctor(doctor_settings(doctor, env)?),
            Command::Deploy(deploy) => CommandSettings::Deploy(deploy_settings(deploy, env)?),
            Command::Updates(UpdatesCommand::List {
                project,
                runtime_version,
                platform,
                limit,
            }) => CommandSettings::UpdatesList {
                project: project_ref(&project.project)?,
                runtime_version: runtime_version
                    .map(|rv| non_empty("--runtime-version", &rv))
                    .transpose()?,
                platform: match platform {
                    None | Some(PlatformArg::All) => None,
                    Some(PlatformArg::Ios) => Some(Platform::Ios),
                    Some(PlatformArg::Android) => Some(Platform::Android),
                },
                limit: limit.max(1),
            },
            Command::Updates(UpdatesCommand::View { project, group }) => {
                CommandSettings::UpdatesView {
                    project: project_ref(&project.project)?,
                    group: path_segment("GROUP", &group)?,
                }
            }
            Command::Rollback(rollback) => {
                CommandSettings::Rollback(rollback_settings(rollback, env)?)
            }
            Command::Embedded(EmbeddedCommand::Upload(upload)) => {
                CommandSettings::EmbeddedUpload(EmbeddedUploadSettings {
                    project: project_ref(&upload.project.project)?,
                    platform: match upload.platform {
                        EmbeddedPlatformArg::Ios => Platform::Ios,
                        EmbeddedPlatformArg::Android => Platform::Android,
                    },
                    runtime_version: non_empty("--runtime-version", &upload.runtime_version)?,
                    update_id: upload
                        .update_id
                        .map(|id| non_empty("--update-id", &id))
                        .transpose()?,
                    path: upload.path,
                })
            }
            Command::Embedded(EmbeddedCommand::List { project }) => CommandSettings::EmbeddedList {
                project: project_ref(&project.project)?,
            },
            Command::Rollout(rollout) => CommandSettings::Rollout(rollout_settings(rollout)?),
            Command::Fleet(fleet) => CommandSettings::Fleet {
                project: project_ref(&fleet.project.project)?,
                days: fleet.days,
            },
            Command::Codesigning(CodesigningCommand::Generate(generate)) => {
                CommandSettings::CodesigningGenerate(codesigning_settings(generate)?)
            }
        };
        Ok(Self {
            output,
            server,
            command,
        })
    }
}

/// The platforms a `--platform` value stands for.
#[must_use]
pub fn platforms(arg: PlatformArg) -> Vec<Platform> {
    match arg {
        PlatformArg::Ios => vec![Platform::Ios],
        PlatformArg::Android => vec![Platform::Android],
        PlatformArg::All => Platform::ALL.to_vec(),
    }
}

fn doctor_settings(args: DoctorArgs, env: &EnvSnapshot) -> Result<DoctorSettings> {
    Ok(DoctorSettings {
        project: project_ref(&args.project.project)?,
        app_dir: args.app_dir,
        config_json: args.config_json,
        private_key_path: args.private_key_path.filter(|p| !p.as_os_str().is_empty()),
        platforms: platforms(args.platform),
        env: EnvFileSettings::new(&args.env, env)?,
    })
}

fn deploy_settings(args: DeployArgs, env: &EnvSnapshot) -> Result<DeploySettings> {
    let (rollout_percentage, max_failure_rate, ramp) = rollout_plan(&args)?;
    Ok(DeploySettings {
        project: project_ref(&args.project.project)?,
        platforms: platforms(args.platform),
        message: args.message.map(|m| message(&m)).transpose()?,
        input_dir: args.input_dir,
        app_dir: args.app_dir,
        config_json: args.config_json,
        runtime_version: args
            .runtime_version
            .map(|rv| non_empty("--runtime-version", &rv))
            .transpose()?,
        rollout_percentage,
        max_failure_rate,
        ramp,
        strict: args.strict,
        private_key_path: args.private_key_path.filter(|p| !p.as_os_str().is_empty()),
        env: EnvFileSettings::new(&args.env, env)?,
    })
}

fn rollback_settings(args: RollbackArgs, env: &EnvSnapshot) -> Result<RollbackSettings> {
    let target = match (args.to, args.to_embedded) {
        (Some(group), false) => RollbackTarget::Group(path_segment("--to", &group)?),
        (None, true) => RollbackTarget::Embedded,
        _ => {
            return Err(CliError::Invalid {
                reason: "give exactly one of --to GROUP and --to-embedded".to_owned(),
            });
        }
    };
    Ok(RollbackSettings {
        project: project_ref(&args.project.project)?,
        target,
        runtime_version: args
            .runtime_version
            .map(|rv| non_empty("--runtime-version", &rv))
            .transpose()?,
        platforms: platforms(args.platform),
        message: args.message.map(|m| message(&m)).transpose()?,
        app_dir: args.app_dir,
        config_json: args.config_json,
        private_key_path: args.private_key_path.filter(|p| !p.as_os_str().is_empty()),
        process_env: env.clone(),
    })
}

fn rollout_settings(args: RolloutArgs) -> Result<RolloutSettings> {
    let change = match (args.percentage, args.revert) {
        (Some(percentage), false) => RolloutChange::Percentage(percentage),
        (None, true) => RolloutChange::Revert,
        _ => {
            return Err(CliError::Invalid {
                reason: "give exactly one of --percentage N and --revert".to_owned(),
            });
        }
    };
    Ok(RolloutSettings {
        project: project_ref(&args.project.project)?,
        change,
        group: args
            .group
            .map(|g| path_segment("--group", &g))
            .transpose()?,
        runtime_version: args
            .runtime_version
            .map(|rv| non_empty("--runtime-version", &rv))
            .transpose()?,
    })
}

fn project_update_settings(args: ProjectsUpdateArgs) -> Result<ProjectUpdateSettings> {
    let certificate = match (args.certificate, args.no_certificate) {
        (Some(path), false) => {
            if path.as_os_str().is_empty() {
                return Err(CliError::InvalidSetting {
                    name: "--certificate".to_owned(),
                    value: String::new(),
                    reason: "give the path of the app's certificate.pem".to_owned(),
                });
            }
            CertificateChange::Set(path)
        }
        (None, true) => CertificateChange::Remove,
        (None, false) => CertificateChange::Keep,
        // clap refuses the pair already; kept for callers that build args by hand.
        (Some(_), true) => {
            return Err(CliError::Usage {
                reason: "give at most one of --certificate FILE and --no-certificate".to_owned(),
            });
        }
    };
    if args.require_signing.is_none()
        && certificate == CertificateChange::Keep
        && args.max_asset_bytes.is_none()
    {
        return Err(CliError::Usage {
            reason: "nothing to change: give at least one of --require-signing, --certificate, --no-certificate and --max-asset-bytes".to_owned(),
        });
    }
    Ok(ProjectUpdateSettings {
        project: project_ref(&args.project.project)?,
        require_signing: args.require_signing,
        certificate,
        max_asset_bytes: args.max_asset_bytes,
    })
}

fn codesigning_settings(args: CodesigningGenerateArgs) -> Result<CodesigningSettings> {
    let years = args.certificate_validity_duration_years;
    if !years.is_finite() || !(1.0..=1000.0).contains(&years) {
        return Err(CliError::InvalidSetting {
            name: "--certificate-validity-duration-years".to_owned(),
            value: years.to_string(),
            reason: "give a number of years from 1 to 1000, e.g. 10".to_owned(),
        });
    }
    Ok(CodesigningSettings {
        key_output_directory: args.key_output_directory,
        certificate_output_directory: args.certificate_output_directory,
        // Checked above to be within 1..=1000, so the conversion is exact.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "range checked above; flooring is what expo-updates does"
        )]
        validity_years: years.floor() as u32,
        common_name: non_empty("--certificate-common-name", &args.certificate_common_name)?,
    })
}

fn non_empty(flag: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(CliError::InvalidSetting {
            name: flag.to_owned(),
            value: value.to_owned(),
            reason: "it is empty".to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// App and environment names: what the server accepts (1-64 of `[a-z0-9-]`).
fn name(flag: &str, value: &str) -> Result<String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(CliError::InvalidSetting {
            name: flag.to_owned(),
            value: value.to_owned(),
            reason: "use 1 to 64 characters of a-z, 0-9 and -".to_owned(),
        });
    }
    Ok(value.to_owned())
}

/// A value that becomes one URL path segment: no `/`, `?`, `#`, `%`, spaces or controls.
fn path_segment(flag: &str, value: &str) -> Result<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if !ok {
        return Err(CliError::InvalidSetting {
            name: flag.to_owned(),
            value: value.to_owned(),
            reason: "use the id exactly as otago printed it (letters, digits, -, _)".to_owned(),
        });
    }
    Ok(value.to_owned())
}

fn project_ref(value: &str) -> Result<String> {
    path_segment("--project", value).map_err(|_| CliError::InvalidSetting {
        name: "--project".to_owned(),
        value: value.to_owned(),
        reason: "give the project's ref as `otago projects create` or `otago projects list` prints it, e.g. p_k3v9x0a1b2".to_owned(),
    })
}

const MAX_MESSAGE_CHARS: usize = 1024;

fn message(value: &str) -> Result<String> {
    if value.chars().count() > MAX_MESSAGE_CHARS {
        return Err(CliError::InvalidSetting {
            name: "--message".to_owned(),
            value: format!("{}…", value.chars().take(40).collect::<String>()),
            reason: format!("it is longer than {MAX_MESSAGE_CHARS} characters; shorten it"),
        });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn resolve(line: &[&str]) -> Result<Settings> {
        let args = Args::try_parse_from(std::iter::once("otago").chain(line.iter().copied()))
            .expect("parses");
        Settings::resolve(args, &EnvSnapshot::new())
    }

    #[test]
    fn server_urls_are_checked_and_trimmed() {
        let server = ServerSettings::new("http://localhost:3000/", None, None).unwrap();
        assert_eq!(server.url, "http://localhost:3000");
        assert!(ServerSettings::new("localhost:3000", None, None).is_err());
        assert!(ServerSettings::new("http://", None, None).is_err());
    }

    #[test]
    fn tokens_follow_the_preference_and_say_how_to_set_them() {
        let both =
            ServerSettings::new("http://x", Some("key".into()), Some("admin".into())).unwrap();
        assert_eq!(both.token(Credential::AdminFirst).unwrap(), "admin");
        assert_eq!(both.token(Credential::KeyFirst).unwrap(), "key");
        let none = ServerSettings::new("http://x", Some(" ".into()), None).unwrap();
        let err = none.token(Credential::KeyFirst).unwrap_err().to_string();
        assert!(err.contains("OTAGO_API_KEY"), "{err}");
    }

    #[test]
    fn deploy_settings_have_defaults() {
        let settings =
            resolve(&["deploy", "--project", "p_abc", "--server-url", "http://h:1"]).unwrap();
        let CommandSettings::Deploy(deploy) = settings.command else {
            panic!("not deploy")
        };
        assert_eq!(deploy.platforms, Platform::ALL.to_vec());
        assert_eq!(deploy.rollout_percentage, 100);
        assert_eq!(deploy.env.eas_profile, "production");
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_name() {
        let err = resolve(&[
            "projects",
            "create",
            "--app",
            "My App",
            "--env",
            "prod",
            "--server-url",
            "http://h",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--app"), "{err}");
        let err = resolve(&[
            "keys",
            "list",
            "--project",
            "a/b",
            "--server-url",
            "http://h",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--project"), "{err}");
        let err = resolve(&[
            "codesigning",
            "generate",
            "--key-output-directory",
            "k",
            "--certificate-output-directory",
            "c",
            "--certificate-validity-duration-years",
            "0.5",
            "--certificate-common-name",
            "X",
            "--server-url",
            "http://h",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("years"), "{err}");
    }
}
