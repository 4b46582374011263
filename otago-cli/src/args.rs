//! The command line, as clap parses it: faithful to what was typed, not yet validated.
//! [`crate::settings`] turns it into checked settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::settings::EnvVars;

/// Deploy Expo updates to a self-hosted Otago server.
#[derive(Debug, Parser)]
#[command(
    name = "otago",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Args {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, ClapArgs)]
pub struct GlobalArgs {
    /// Print one JSON object on stdout instead of text (progress and messages go to stderr).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// When to colour the output.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, help_heading = "Global options")]
    pub color: ColorArg,
    /// Base URL of the Otago server.
    #[arg(
        long,
        global = true,
        env = EnvVars::OTAGO_SERVER_URL,
        default_value = "http://localhost:3000",
        help_heading = "Global options"
    )]
    pub server_url: String,
    /// A project's API key (`otago_...`), for deploys and the daily commands.
    #[arg(long, global = true, env = EnvVars::OTAGO_API_KEY, hide_env_values = true, help_heading = "Global options")]
    pub api_key: Option<String>,
    /// The server's admin token, for `projects` and `keys` (and anything else when no key is given).
    #[arg(long, global = true, env = EnvVars::OTAGO_ADMIN_TOKEN, hide_env_values = true, help_heading = "Global options")]
    pub admin_token: Option<String>,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// Colour when writing to a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, show, change and delete projects (one per app and environment).
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Create, list and revoke a project's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check that an app is set up to receive updates from a project; one line per check.
    Doctor(DoctorArgs),
    /// Export the app (or take an existing export), sign and publish it as an update group.
    Deploy(DeployArgs),
    /// List a project's published update groups.
    #[command(subcommand)]
    Updates(UpdatesCommand),
    /// Republish an earlier update group, or send apps back to the update embedded in their build.
    Rollback(RollbackArgs),
    /// Raise the rollout in progress, or revert it.
    Rollout(RolloutArgs),
    /// Code signing keys and certificates.
    #[command(subcommand)]
    Codesigning(CodesigningCommand),
    /// The runtime versions the project's devices ask for, with their number of devices.
    Fleet(FleetArgs),
    /// Bundles embedded in native builds, registered so devices still on them get patches.
    #[command(subcommand)]
    Embedded(EmbeddedCommand),
}

/// `otago embedded ...`
#[derive(Debug, Subcommand)]
pub enum EmbeddedCommand {
    /// Upload the JavaScript bundle embedded in a native build and register it with the build's
    /// embedded update id, so the first update after a store release downloads as a patch.
    Upload(EmbeddedUploadArgs),
    /// List the project's registered embedded bundles.
    List {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
    },
}

/// `otago embedded upload`
#[derive(Debug, Clone, ClapArgs)]
pub struct EmbeddedUploadArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
    /// The build's platform.
    #[arg(long, short = 'p', value_enum)]
    pub platform: EmbeddedPlatformArg,
    /// The build's runtime version.
    #[arg(long)]
    pub runtime_version: String,
    /// The embedded update's id; by default the `id` of the build's `app.manifest`.
    #[arg(long)]
    pub update_id: Option<String>,
    /// The bundle (`main.jsbundle` on iOS, `index.android.bundle` on Android), or a folder of
    /// the build's output holding it and its `app.manifest` (an unpacked `.app` or APK).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// One platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbeddedPlatformArg {
    /// iOS.
    Ios,
    /// Android.
    Android,
}

/// `otago fleet`
#[derive(Debug, Clone, ClapArgs)]
pub struct FleetArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
    /// Days back from today (UTC), today included.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

/// `otago projects ...`
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Create a project; prints its ref, update URL and the app.json snippet to paste.
    Create {
        /// The app's name: 1-64 characters of `a-z`, `0-9` and `-`.
        #[arg(long)]
        app: String,
        /// The environment, e.g. `production` or `staging`: 1-64 characters of `a-z`, `0-9`, `-`.
        #[arg(long = "env")]
        environment: String,
    },
    /// List the projects the credentials can see.
    List,
    /// Show a project's settings: signing, its certificate, the asset size limit.
    Show {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Change a project's settings, e.g. require signed updates with the app's certificate.
    Update(ProjectsUpdateArgs),
    /// Show a project's audit log, newest first: who changed its settings and keys, and when.
    Audit {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// At most this many entries (1-500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Only entries older than this one (the `next_before` a previous page printed).
        #[arg(long, value_name = "SEQ")]
        before: Option<i64>,
    },
    /// Delete a project with its keys and update history (asks first; `--yes` skips asking).
    Delete {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// Delete without asking; needed when stdin is not a terminal (scripts, CI).
        #[arg(long)]
        yes: bool,
    },
}

/// `otago projects update`: at least one setting.
#[derive(Debug, Clone, ClapArgs)]
#[command(group(
    clap::ArgGroup::new("settings")
        .required(true)
        .multiple(true)
        .args(["require_signing", "certificate", "no_certificate", "max_asset_bytes"])
))]
pub struct ProjectsUpdateArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
    /// Whether the server refuses updates that are not signed with the project's certificate.
    /// `true` needs a certificate: the project's, or one given with --certificate.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, value_parser = parse_bool)]
    pub require_signing: Option<bool>,
    /// The app's code signing certificate (the certificate.pem its
    /// `updates.codeSigningCertificate` points at); checked here before it is sent.
    #[arg(long, value_name = "FILE", conflicts_with = "no_certificate")]
    pub certificate: Option<PathBuf>,
    /// Remove the project's certificate (not allowed while it requires signing).
    #[arg(long)]
    pub no_certificate: bool,
    /// The largest asset the server takes for this project, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_asset_bytes: Option<u64>,
}

/// `--project REF`, shared by the project commands.
#[derive(Debug, Clone, ClapArgs)]
pub struct ProjectArg {
    /// The project's ref, as `otago projects create` printed it (e.g. `p_k3v9x0a1b2`).
    #[arg(long, env = EnvVars::OTAGO_PROJECT)]
    pub project: String,
}

/// `otago keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a project; the secret is shown once.
    Create {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// A name that tells the keys apart, e.g. `ci` or `alice-laptop`.
        #[arg(long, default_value = "cli")]
        name: String,
        /// What the key may do: `deploy` (upload, publish, roll back, roll out, read the
        /// project) or `admin` (also the project's keys, settings and audit log).
        #[arg(long, value_enum, default_value_t = KeyRoleArg::Deploy)]
        role: KeyRoleArg,
        /// The key stops working after this long, e.g. `90d`, `12h`, `2w` (units s, m, h, d, w).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
        expires_in: Option<Duration>,
        /// The key stops working at this time (UTC, `YYYY-MM-DDTHH:mm:ss.sssZ`).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// List a project's API keys (never their secrets).
    List {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Revoke an API key; it stops working at once.
    Revoke {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// The key's id (`k_...`), as `otago keys list` shows it.
        key_id: String,
    },
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyRoleArg {
    /// Upload assets, publish, roll back, roll out and revert, read the project.
    Deploy,
    /// Everything a deploy key may, plus the project's keys, settings and audit log.
    Admin,
}

impl KeyRoleArg {
    /// The API's name of the role.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Admin => "admin",
        }
    }
}

/// Parses a duration such as `90d`, `12h`, `30m`, `45s` or `2w`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!("`{value}` is not a duration; write a number and a unit, e.g. 90d, 12h, 30m, 2w")
    };
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let total = number.checked_mul(seconds).ok_or_else(bad)?;
    if total == 0 {
        return Err(format!(
            "`{value}` is no time at all; give a positive duration, e.g. 90d"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Which platforms to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformArg {
    /// iOS only.
    Ios,
    /// Android only.
    Android,
    /// Both.
    All,
}

/// How `.env*` files are loaded for the export and the app config.
#[derive(Debug, Clone, ClapArgs)]
pub struct EnvFileArgs {
    /// Load the app's `.env*` files (`false` turns it off, as `EXPO_NO_DOTENV=1` does).
    #[arg(
        long,
        env = EnvVars::OTAGO_LOAD_ENVS,
        default_value = "true",
        value_name = "BOOL",
        action = ArgAction::Set,
        value_parser = parse_bool
    )]
    pub load_envs: bool,
    /// The mode whose `.env.<mode>` files are loaded; also the NODE_ENV of the export.
    #[arg(long, env = EnvVars::NODE_ENV, default_value = "production")]
    pub node_env: String,
    /// The eas.json build profile whose `env` is loaded (below the `.env*` files).
    #[arg(long, env = EnvVars::EAS_PROFILE, default_value = "production")]
    pub eas_profile: String,
}

/// Accepts `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` in any case.
///
/// # Errors
/// A message naming the accepted values.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{value}` is not a boolean; use true or false")),
    }
}

/// `otago doctor`
#[derive(Debug, Clone, ClapArgs)]
pub struct DoctorArgs {
    /// The project the app should receive updates from.
    #[command(flatten)]
    pub project: ProjectArg,
    /// The app's folder (with package.json and app.json).
    #[arg(long, default_value = ".")]
    pub app_dir: PathBuf,
    /// Use this JSON (the output of `npx expo config --json`) instead of evaluating the app config.
    #[arg(long, value_name = "FILE")]
    pub config_json: Option<PathBuf>,
    /// The private key that signs updates; checked against the app's certificate.
    #[arg(long, env = EnvVars::OTAGO_PRIVATE_KEY, value_name = "FILE")]
    pub private_key_path: Option<PathBuf>,
    /// Which platforms to check.
    #[arg(long, short = 'p', value_enum, default_value_t = PlatformArg::All)]
    pub platform: PlatformArg,
    /// `.env*` loading.
    #[command(flatten)]
    pub env: EnvFileArgs,
}

/// `otago deploy`
#[derive(Debug, Clone, ClapArgs)]
pub struct DeployArgs {
    /// The project to publish to.
    #[command(flatten)]
    pub project: ProjectArg,
    /// Which platforms to publish.
    #[arg(long, short = 'p', value_enum, default_value_t = PlatformArg::All)]
    pub platform: PlatformArg,
    /// A message describing the update.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// Publish this existing `npx expo export` output instead of exporting (needs no Node).
    #[arg(long, value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
    /// The app's folder.
    #[arg(long, default_value = ".")]
    pub app_dir: PathBuf,
    /// Use this JSON (the output of `npx expo config --json`) as the app config.
    #[arg(long, value_name = "FILE")]
    pub config_json: Option<PathBuf>,
    /// Use this runtime version for every platform instead of resolving the app's policy.
    #[arg(long)]
    pub runtime_version: Option<String>,
    /// Serve the update to this percentage of devices (0-100, default 100); under 100 it is a
    /// rollout: the other devices keep what they get now, and a signed standby revert is
    /// published with it so that `otago rollout --revert` (or the health gate) brings the
    /// devices that took it back at once.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub rollout_percentage: Option<u8>,
    /// For a rollout: revert it by itself once this share of the devices it was served to
    /// report a failed launch (judged from 20 devices); `off` disables the gate.
    #[arg(long, value_name = "PERCENT|off", default_value = "5%")]
    pub max_failure_rate: String,
    /// For a rollout: raise the percentage through these steps (e.g. `1,10,50,100`) while the
    /// update is healthy; the first step is where it starts.
    #[arg(long, value_name = "STEPS", requires = "ramp_every")]
    pub ramp: Option<String>,
    /// Time between ramp steps: `90s`, `30m`, `1h`, `1d`.
    #[arg(long, value_name = "DURATION", requires = "ramp")]
    pub ramp_every: Option<String>,
    /// Fail (instead of warning) when no device asked for the update's runtime version in the
    /// last 30 days.
    #[arg(long)]
    pub strict: bool,
    /// The private key that signs the manifests (PEM, PKCS#1 or PKCS#8).
    #[arg(long, env = EnvVars::OTAGO_PRIVATE_KEY, value_name = "FILE")]
    pub private_key_path: Option<PathBuf>,
    /// `.env*` loading.
    #[command(flatten)]
    pub env: EnvFileArgs,
}

/// `otago updates ...`
#[derive(Debug, Subcommand)]
pub enum UpdatesCommand {
    /// List update groups, newest first.
    List {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// Only groups of this runtime version.
        #[arg(long)]
        runtime_version: Option<String>,
        /// Only groups with an update for this platform.
        #[arg(long, short = 'p', value_enum)]
        platform: Option<PlatformArg>,
        /// At most this many groups.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One update group in detail: its updates, rollout, health gate, ramp and revert.
    View {
        /// The project.
        #[command(flatten)]
        project: ProjectArg,
        /// The group's id, as `otago updates list` shows it.
        #[arg(value_name = "GROUP")]
        group: String,
    },
}

/// `otago rollback`
#[derive(Debug, Clone, ClapArgs)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "to_embedded"])))]
pub struct RollbackArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
    /// Republish this update group (its id, as `otago updates list` shows it), signed anew.
    #[arg(long, value_name = "GROUP")]
    pub to: Option<String>,
    /// Publish a signed `rollBackToEmbedded` directive: apps go back to their built-in update.
    #[arg(long)]
    pub to_embedded: bool,
    /// With --to-embedded: the runtime version to roll back (default: the app's, else the
    /// newest group's).
    #[arg(long)]
    pub runtime_version: Option<String>,
    /// Which platforms to roll back.
    #[arg(long, short = 'p', value_enum, default_value_t = PlatformArg::All)]
    pub platform: PlatformArg,
    /// A message for the new group (default: what it rolls back to).
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// The app's folder, read for its signing keyid and runtime version when present.
    #[arg(long, default_value = ".")]
    pub app_dir: PathBuf,
    /// Use this JSON (the output of `npx expo config --json`) as the app config.
    #[arg(long, value_name = "FILE")]
    pub config_json: Option<PathBuf>,
    /// The private key that signs.
    #[arg(long, env = EnvVars::OTAGO_PRIVATE_KEY, value_name = "FILE")]
    pub private_key_path: Option<PathBuf>,
}

/// `otago rollout`
#[derive(Debug, Clone, ClapArgs)]
#[command(group(clap::ArgGroup::new("change").required(true).args(["percentage", "revert"])))]
pub struct RolloutArgs {
    /// The project.
    #[command(flatten)]
    pub project: ProjectArg,
    /// Raise the rollout to this percentage of devices (100 completes it; lowering is refused:
    /// devices that have the update keep it, revert instead).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub percentage: Option<u8>,
    /// Revert the rollout: devices that took the update get its signed standby revert (the
    /// code they ran before), the others are told there is no update.
    #[arg(long)]
    pub revert: bool,
    /// The group whose rollout to change (default: the rollout in progress, of
    /// --runtime-version if given).
    #[arg(long)]
    pub group: Option<String>,
    /// Pick the rollout in progress of this runtime version.
    #[arg(long)]
    pub runtime_version: Option<String>,
}

/// `otago codesigning ...`
#[derive(Debug, Subcommand)]
pub enum CodesigningCommand {
    /// Generate a private key and a self-signed code signing certificate, like
    /// `npx expo-updates codesigning:generate`.
    Generate(CodesigningGenerateArgs),
}

/// `otago codesigning generate`
#[derive(Debug, Clone, ClapArgs)]
pub struct CodesigningGenerateArgs {
    /// Folder for private-key.pem and public-key.pem (created; must be empty).
    #[arg(long, value_name = "DIR")]
    pub key_output_directory: PathBuf,
    /// Folder for certificate.pem (created; must be empty).
    #[arg(long, value_name = "DIR")]
    pub certificate_output_directory: PathBuf,
    /// How many years the certificate is valid (fractions are rounded down).
    #[arg(long, value_name = "YEARS")]
    pub certificate_validity_duration_years: f64,
    /// The certificate's common name, e.g. the app's name.
    #[arg(long, value_name = "NAME")]
    pub certificate_common_name: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_a_unit() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        for bad in ["90", "d", "0d", "1y", "-1d", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_parse_leniently() {
        assert_eq!(parse_bool("FALSE"), Ok(false));
        assert_eq!(parse_bool("1"), Ok(true));
        assert!(parse_bool("maybe").is_err());
    }
}
