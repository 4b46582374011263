//! # otago-cli
//!
//! The `otago` command: deploys Expo updates to a self-hosted Otago server, checks an app's
//! setup, rolls back and rolls out. It is thin: files, processes, HTTP and the terminal
//! live here; manifests, hashes, signatures, env-file and runtime-version rules live in
//! `otago-core`.
//!
//! The flow of every command is *args → settings → pipeline → report → output*:
//!
//! - [`args`]: the command line as clap parses it;
//! - [`settings`]: checked settings ([`Settings::resolve`]), env var names in [`EnvVars`];
//! - [`client`]: the typed client of the server's management API;
//! - [`deploy`], [`doctor`], [`rollback`], [`projects`], [`codesigning`], [`fleet`]: one pipeline per
//!   command, each returning a serialisable report (usable from other frontends with
//!   [`Printer::silent`]);
//! - [`output`]: the only place that prints, as text or `--json`;
//! - [`error`]: [`CliError`] and the documented exit codes in [`OtagoExitCode`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod app;
pub mod args;
pub mod client;
pub mod codesigning;
pub mod deploy;
pub mod doctor;
pub mod embedded;
pub mod error;
pub mod fleet;
pub mod output;
pub mod projects;
pub mod rollback;
pub mod settings;
pub mod tls;

pub use args::Args;
pub use error::{CliError, OtagoExitCode, Result};
pub use output::Printer;
pub use settings::{EnvVars, Settings, env_snapshot};

use settings::CommandSettings;

/// Runs a command with its settings, printing the result with `printer`.
///
/// # Errors
/// The command's error; [`CliError::ChecksFailed`] when `doctor` found failures (after its
/// report is printed).
pub fn run(settings: Settings, printer: &Printer) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Invalid {
            reason: format!("cannot start the async runtime: {err}"),
        })?;
    runtime.block_on(run_async(settings, printer))
}

/// [`run`] inside an existing tokio runtime.
///
/// # Errors
/// As [`run`].
pub async fn run_async(settings: Settings, printer: &Printer) -> Result<()> {
    let server = &settings.server;
    match settings.command {
        CommandSettings::ProjectsCreate { app, environment } => {
            printer.result(&projects::create_project(server, &app, &environment).await?)
        }
        CommandSettings::ProjectsList => printer.result(&projects::list_projects(server).await?),
        CommandSettings::ProjectsShow { project } => printer
            .result(&projects::show_project(server, &project, std::time::SystemTime::now()).await?),
        CommandSettings::ProjectsUpdate(update_settings) => printer.result(
            &projects::update_project(
                &update_settings,
                server,
                printer,
                std::time::SystemTime::now(),
            )
            .await?,
        ),
        CommandSettings::ProjectsDelete { project, confirmed } => {
            printer.result(&projects::delete_project(server, &project, confirmed, printer).await?)
        }
        CommandSettings::KeysCreate {
            project,
            name,
            role,
            expiry,
        } => printer.result(
            &projects::create_key(
                server,
                &project,
                &name,
                role,
                expiry,
                std::time::SystemTime::now(),
            )
            .await?,
        ),
        CommandSettings::ProjectsAudit {
            project,
            limit,
            before,
        } => printer.result(&projects::audit_log(server, &project, limit, before).await?),
        CommandSettings::KeysList { project } => {
            printer.result(&projects::list_keys(server, &project).await?)
        }
        CommandSettings::KeysRevoke { project, key_id } => {
            printer.result(&projects::revoke_key(server, &project, &key_id).await?)
        }
        CommandSettings::Doctor(doctor_settings) => {
            let report = doctor::doctor(&doctor_settings, server, printer).await?;
            printer.result(&report)?;
            doctor::ensure_ok(&report)
        }
        CommandSettings::Deploy(deploy_settings) => {
            printer.result(&deploy::deploy(&deploy_settings, server, printer).await?)
        }
        CommandSettings::UpdatesList {
            project,
            runtime_version,
            platform,
            limit,
        } => printer.result(
            &rollback::list_updates(
                server,
                &project,
                runtime_version.as_deref(),
                platform,
                limit,
            )
            .await?,
        ),
        CommandSettings::UpdatesView { project, group } => {
            printer.result(&rollback::view_update(server, &project, &group).await?)
        }
        CommandSettings::Rollback(rollback_settings) => {
            printer.result(&rollback::rollback(&rollback_settings, server, printer).await?)
        }
        CommandSettings::EmbeddedUpload(upload_settings) => {
            printer.result(&embedded::upload(&upload_settings, server, printer).await?)
        }
        CommandSettings::EmbeddedList { project } => {
            printer.result(&embedded::list(server, &project).await?)
        }
        CommandSettings::Fleet { project, days } => {
            printer.result(&fleet::fleet(server, &project, days).await?)
        }
        CommandSettings::Rollout(rollout_settings) => {
            printer.result(&rollback::rollout(&rollout_settings, server, printer).await?)
        }
        CommandSettings::CodesigningGenerate(codesigning_settings) => printer.result(
            &codesigning::generate(&codesigning_settings, std::time::SystemTime::now())?,
        ),
    }
}

/// Parses the environment snapshot and arguments, runs, and prints any error: what `main` does.
/// Returns the exit code.
#[must_use]
pub fn main_with(args: Args, env: &settings::EnvSnapshot) -> u8 {
    let json = args.global.json;
    let settings = match Settings::resolve(args, env) {
        Ok(settings) => settings,
        Err(err) => {
            Printer::new(settings::OutputSettings {
                json,
                color: args::ColorArg::Auto,
            })
            .error(&err);
            return err.exit_code();
        }
    };
    let printer = Printer::new(settings.output);
    match run(settings, &printer) {
        Ok(()) => OtagoExitCode::OK,
        Err(err) if err.is_broken_pipe() => OtagoExitCode::OK,
        Err(err) => {
            printer.error(&err);
            err.exit_code()
        }
    }
}
