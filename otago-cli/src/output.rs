//! The only place that writes to the terminal.
//!
//! Results go to stdout: text, or with `--json` one JSON object. Progress (spinners, the upload
//! bar), notes and warnings go to stderr; spinners and bars only when stderr is a terminal.
//! Colour only on a terminal (and never with `NO_COLOR` or `--color never`).

use std::fmt::Display;
use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use anstream::AutoStream;
use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::args::ColorArg;
use crate::client::{Group, Health, LaunchAsset};
use crate::codesigning::CodesigningReport;
use crate::deploy::DeployReport;
use crate::doctor::{CheckStatus, DoctorReport};
use crate::error::{CliError, Result};
use crate::projects::{
    AuditLog, KeyCreated, KeyList, KeyRevoked, ProjectCreated, ProjectDeleted, ProjectDetails,
    ProjectList, ProjectUpdated,
};
use crate::rollback::{RollbackReport, RolloutReport, UpdatesList};
use crate::settings::OutputSettings;

const GREEN: Style = AnsiColor::Green.on_default();
const RED: Style = AnsiColor::Red.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();

/// Writes results, progress and messages.
#[derive(Debug, Clone)]
pub struct Printer {
    json: bool,
    color: anstream::ColorChoice,
    interactive: bool,
    can_ask: bool,
    silent: bool,
}

impl Printer {
    /// A printer for the command line.
    #[must_use]
    pub fn new(settings: OutputSettings) -> Self {
        let color = match settings.color {
            ColorArg::Auto => anstream::ColorChoice::Auto,
            ColorArg::Always => anstream::ColorChoice::Always,
            ColorArg::Never => anstream::ColorChoice::Never,
        };
        Self {
            json: settings.json,
            color,
            interactive: std::io::stderr().is_terminal(),
            can_ask: std::io::stdin().is_terminal(),
            silent: false,
        }
    }

    /// A printer that prints nothing, for library callers that only want the reports.
    #[must_use]
    pub fn silent() -> Self {
        Self {
            json: true,
            color: anstream::ColorChoice::Never,
            interactive: false,
            can_ask: false,
            silent: true,
        }
    }

    fn stdout(&self) -> AutoStream<std::io::StdoutLock<'static>> {
        AutoStream::new(std::io::stdout().lock(), self.color)
    }

    fn stderr(&self) -> AutoStream<std::io::StderrLock<'static>> {
        AutoStream::new(std::io::stderr().lock(), self.color)
    }

    /// A spinner for a step that takes time; finish it with [`Step::done`].
    #[must_use]
    pub fn step(&self, message: impl Into<String>) -> Step {
        let bar = if self.interactive && !self.silent {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(message.into());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            ProgressBar::hidden()
        };
        Step {
            bar,
            printer: self.clone(),
        }
    }

    /// A progress bar over `total` bytes.
    #[must_use]
    pub fn bar(&self, total: u64, message: impl Into<String>) -> Bar {
        let bar = if self.interactive && !self.silent {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(message.into());
            bar
        } else {
            ProgressBar::hidden()
        };
        Bar {
            bar,
            printer: self.clone(),
        }
    }

    /// A finished step: `✓ message` on stderr.
    pub fn done(&self, message: impl Display) {
        if self.silent {
            return;
        }
        let _ = writeln!(self.stderr(), "{GREEN}✓{GREEN:#} {message}");
    }

    /// A side note on stderr (e.g. which .env files were loaded).
    pub fn note(&self, message: impl Display) {
        if self.silent {
            return;
        }
        let _ = writeln!(self.stderr(), "{DIM}{message}{DIM:#}");
    }

    /// A warning on stderr.
    pub fn warn(&self, message: impl Display) {
        if self.silent {
            return;
        }
        let _ = writeln!(self.stderr(), "{YELLOW}warning:{YELLOW:#} {message}");
    }

    /// Whether a question can be asked: stdin is a terminal (and the printer is not silent).
    #[must_use]
    pub fn can_ask(&self) -> bool {
        self.can_ask && !self.silent
    }

    /// Asks a yes/no question on stderr and reads the answer from stdin; only `y` or `yes`
    /// (any case) is yes. Check [`Printer::can_ask`] first.
    ///
    /// # Errors
    /// [`CliError::Output`] when the terminal cannot be written or read.
    pub fn confirm(&self, question: impl Display) -> Result<bool> {
        let mut err = self.stderr();
        write!(err, "{YELLOW}?{YELLOW:#} {question} [y/N] ").map_err(CliError::Output)?;
        err.flush().map_err(CliError::Output)?;
        drop(err);
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(CliError::Output)?;
        Ok(is_yes(&answer))
    }

    /// The error that ends the run, on stderr.
    pub fn error(&self, error: &CliError) {
        if self.silent {
            return;
        }
        let _ = writeln!(self.stderr(), "{RED}error:{RED:#} {error:#}");
    }

    /// The result of a command: JSON with `--json`, else its text.
    ///
    /// # Errors
    /// [`CliError::Output`] when stdout cannot be written (a closed pipe, say).
    pub fn result<R: Render>(&self, report: &R) -> Result<()> {
        if self.silent {
            return Ok(());
        }
        let mut out = self.stdout();
        if self.json {
            let text = serde_json::to_string_pretty(report).map_err(|err| {
                CliError::Output(std::io::Error::other(format!("cannot encode JSON: {err}")))
            })?;
            writeln!(out, "{text}").map_err(CliError::Output)?;
        } else {
            report.render(&mut out).map_err(CliError::Output)?;
        }
        out.flush().map_err(CliError::Output)
    }
}

/// A spinner; cleared when dropped without [`Step::done`].
#[derive(Debug)]
pub struct Step {
    bar: ProgressBar,
    printer: Printer,
}

impl Step {
    /// Ends the step with `✓ message`.
    pub fn done(self, message: impl Display) {
        self.bar.finish_and_clear();
        self.printer.done(message);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// A byte progress bar, shared by concurrent uploads.
#[derive(Debug, Clone)]
pub struct Bar {
    bar: ProgressBar,
    printer: Printer,
}

impl Bar {
    /// Adds progress.
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Ends the bar with `✓ message`.
    pub fn done(&self, message: impl Display) {
        self.bar.finish_and_clear();
        self.printer.done(message);
    }
}

/// Whether an answer to [`Printer::confirm`] is yes.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `1 file`, `2 files`.
#[must_use]
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1.5 MiB`-style sizes.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "a display approximation")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A command result that has a text form (its JSON form is its `Serialize`).
pub trait Render: Serialize {
    /// Writes the text form.
    ///
    /// # Errors
    /// When writing fails.
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()>;
}

fn field(out: &mut dyn Write, name: &str, value: impl Display) -> std::io::Result<()> {
    writeln!(out, "  {DIM}{name:<18}{DIM:#}{value}")
}

fn platform_name(platform: otago_core::Platform) -> &'static str {
    match platform {
        otago_core::Platform::Ios => "iOS",
        otago_core::Platform::Android => "Android",
    }
}

impl Render for CodesigningReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Generated a key pair and a code signing certificate"
        )?;
        field(out, "private key", self.private_key.display())?;
        field(out, "public key", self.public_key.display())?;
        field(out, "certificate", self.certificate.display())?;
        field(out, "common name", &self.common_name)?;
        field(out, "valid until", &self.valid_until)?;
        writeln!(out)?;
        writeln!(
            out,
            "Add to the `updates` object of app.json (then rebuild the app):"
        )?;
        let snippet = serde_json::to_string_pretty(&self.app_json_updates).unwrap_or_default();
        writeln!(out, "{snippet}")?;
        writeln!(
            out,
            "Deploy with OTAGO_PRIVATE_KEY={}; keep that file secret and out of git.",
            self.private_key.display()
        )
    }
}

impl Render for ProjectCreated {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Created project {BOLD}{}{BOLD:#} ({} / {})",
            self.project.reference, self.project.app, self.project.environment
        )?;
        field(out, "ref", &self.project.reference)?;
        field(out, "update URL", &self.project.update_url)?;
        writeln!(out)?;
        writeln!(out, "Merge into app.json, then rebuild the app:")?;
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&self.app_json).unwrap_or_default()
        )?;
        writeln!(
            out,
            "Next: `otago keys create --project {}` for a deploy key.",
            self.project.reference
        )
    }
}

impl Render for ProjectList {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.projects.is_empty() {
            return writeln!(
                out,
                "No projects yet; create one with `otago projects create --app NAME --env ENV`."
            );
        }
        writeln!(
            out,
            "{BOLD}{:<14} {:<20} {:<14} UPDATE URL{BOLD:#}",
            "REF", "APP", "ENV"
        )?;
        for project in &self.projects {
            writeln!(
                out,
                "{:<14} {:<20} {:<14} {}",
                project.reference, project.app, project.environment, project.update_url
            )?;
        }
        Ok(())
    }
}

fn render_project_details(out: &mut dyn Write, details: &ProjectDetails) -> std::io::Result<()> {
    let project = &details.project;
    field(out, "update URL", &project.update_url)?;
    field(out, "asset base URL", &project.asset_base_url)?;
    field(
        out,
        "require signing",
        if project.require_signing { "yes" } else { "no" },
    )?;
    match &details.certificate {
        None => field(out, "certificate", "none")?,
        Some(certificate) => {
            let name = certificate
                .common_name
                .as_deref()
                .map(|cn| format!("CN={cn}, "))
                .unwrap_or_default();
            let validity = match (&certificate.valid_until, certificate.days_until_expiry) {
                (Some(until), Some(days)) if days >= 0 => {
                    format!("valid until {until} ({days} days)")
                }
                (Some(until), _) => format!("expired {until}"),
                _ => "unreadable".to_owned(),
            };
            field(out, "certificate", format!("{name}{validity}"))?;
            for problem in &certificate.problems {
                writeln!(out, "  {:<18}{RED}✗{RED:#} {problem}", "")?;
            }
        }
    }
    if let Some(max) = project.max_asset_bytes {
        field(
            out,
            "max asset size",
            format!("{} ({max} bytes)", human_bytes(max)),
        )?;
    }
    if let Some(created_at) = &project.created_at {
        field(out, "created", created_at)?;
    }
    Ok(())
}

impl Render for ProjectDetails {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "Project {BOLD}{}{BOLD:#} ({} / {})",
            self.project.reference, self.project.app, self.project.environment
        )?;
        render_project_details(out, self)
    }
}

impl Render for ProjectUpdated {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let project = &self.0.project;
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Updated project {BOLD}{}{BOLD:#} ({} / {})",
            project.reference, project.app, project.environment
        )?;
        render_project_details(out, &self.0)?;
        if project.require_signing {
            writeln!(out)?;
            writeln!(
                out,
                "The server now refuses unsigned updates: deploy with OTAGO_PRIVATE_KEY set to the certificate's private key."
            )?;
        }
        Ok(())
    }
}

impl Render for ProjectDeleted {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Deleted project {} ({} / {}) with its keys and update history.",
            self.project, self.app, self.environment
        )
    }
}

impl Render for KeyCreated {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Created {} key {} ({}) for project {}{}",
            self.role,
            self.id,
            self.name,
            self.project,
            self.expires_at
                .as_deref()
                .map_or_else(String::new, |at| format!(", expires {at}"))
        )?;
        writeln!(out)?;
        writeln!(out, "  {BOLD}{}{BOLD:#}", self.key)?;
        writeln!(out)?;
        writeln!(
            out,
            "This secret is shown once. Use it as OTAGO_API_KEY (e.g. a CI secret)."
        )
    }
}

impl Render for KeyList {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.keys.is_empty() {
            return writeln!(out, "Project {} has no keys.", self.project);
        }
        writeln!(
            out,
            "{BOLD}{:<16} {:<16} {:<7} {:<26} {:<26} {:<26} STATUS{BOLD:#}",
            "ID", "NAME", "ROLE", "CREATED", "LAST USED", "EXPIRES"
        )?;
        let now = otago_core::Timestamp::from_system_time(std::time::SystemTime::now()).ok();
        for key in &self.keys {
            let expired = key
                .expires_at
                .as_deref()
                .and_then(|at| otago_core::Timestamp::parse(at).ok())
                .is_some_and(|at| now.is_some_and(|now| at <= now));
            let status = match &key.revoked_at {
                Some(at) => format!("{RED}revoked {at}{RED:#}"),
                None if expired => format!("{RED}expired{RED:#}"),
                None => format!("{GREEN}active{GREEN:#}"),
            };
            writeln!(
                out,
                "{:<16} {:<16} {:<7} {:<26} {:<26} {:<26} {status}",
                key.id,
                key.name,
                key.role,
                key.created_at.as_deref().unwrap_or("-"),
                key.last_used_at.as_deref().unwrap_or("never"),
                key.expires_at.as_deref().unwrap_or("never"),
            )?;
        }
        Ok(())
    }
}

/// A setting's value in an audit line: a certificate by its common name and digest.
fn audit_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".to_owned(),
        serde_json::Value::Object(certificate) => {
            let digest = certificate
                .get("pem_sha256")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?");
            let short: String = digest.chars().take(12).collect();
            match certificate
                .get("common_name")
                .and_then(serde_json::Value::as_str)
            {
                Some(name) => format!("\"{name}\" (sha256 {short}…)"),
                None => format!("sha256 {short}…"),
            }
        }
        other => other.to_string(),
    }
}

/// What an audit entry did, in a few words.
fn audit_summary(entry: &crate::client::AuditEntry) -> String {
    let detail = &entry.detail;
    let field = |name: &str| {
        detail
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    match entry.action.as_str() {
        "project.settings_changed" => detail
            .get("changes")
            .and_then(serde_json::Value::as_object)
            .map(|changes| {
                changes
                    .iter()
                    .map(|(setting, change)| {
                        format!(
                            "{setting}: {} → {}",
                            audit_value(&change["before"]),
                            audit_value(&change["after"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
        "key.created" => format!(
            "{} key {} ({}){}",
            field("role"),
            field("key_id"),
            field("name"),
            detail
                .get("expires_at")
                .and_then(serde_json::Value::as_str)
                .map_or_else(String::new, |at| format!(", expires {at}"))
        ),
        "key.revoked" => format!("key {}", field("key_id")),
        _ => detail.to_string(),
    }
}

impl Render for AuditLog {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.entries.is_empty() {
            return writeln!(out, "Project {} has no audit entries here.", self.project);
        }
        writeln!(
            out,
            "{BOLD}{:<26} {:<14} {:<26} WHAT{BOLD:#}",
            "WHEN", "WHO", "ACTION"
        )?;
        for entry in &self.entries {
            writeln!(
                out,
                "{:<26} {:<14} {:<26} {}",
                entry.at,
                entry.actor,
                entry.action,
                audit_summary(entry)
            )?;
        }
        if let Some(before) = self.next_before {
            writeln!(
                out,
                "{DIM}Older entries: otago projects audit --project {} --before {before}{DIM:#}",
                self.project
            )?;
        }
        Ok(())
    }
}

impl Render for KeyRevoked {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Revoked key {} of project {}; it no longer works.",
            self.id, self.project
        )
    }
}

impl Render for DeployReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{GREEN}✓{GREEN:#} Published update group {BOLD}{}{BOLD:#} to project {}",
            self.group, self.project
        )?;
        if self.groups.len() > 1 {
            writeln!(
                out,
                "  Since the platforms have different runtime versions, {} groups were published:",
                self.groups.len()
            )?;
            for group in &self.groups {
                writeln!(
                    out,
                    "    {} (runtime version {})",
                    group.id, group.runtime_version
                )?;
            }
        }
        let mut runtime_versions: Vec<&str> = self
            .updates
            .iter()
            .map(|u| u.runtime_version.as_str())
            .collect();
        runtime_versions.dedup();
        field(out, "runtime version", runtime_versions.join(", "))?;
        for update in &self.updates {
            field(
                out,
                &format!("{} update", platform_name(update.platform)),
                &update.id,
            )?;
        }
        if let Some(message) = &self.message {
            field(out, "message", message)?;
        }
        field(out, "rollout", format!("{}%", self.rollout_percentage))?;
        field(
            out,
            "signed",
            self.keyid.as_deref().map_or_else(
                || "no".to_owned(),
                |keyid| format!("yes (keyid \"{keyid}\")"),
            ),
        )?;
        field(
            out,
            "uploaded",
            format!(
                "{}, {} ({})",
                count(self.assets.uploaded, "file"),
                human_bytes(self.assets.uploaded_bytes),
                count(self.assets.uploaded_bundles, "bundle")
            ),
        )?;
        field(
            out,
            "reused",
            format!(
                "{} files, {}",
                self.assets.reused,
                human_bytes(self.assets.reused_bytes)
            ),
        )?;
        for update in self.patches.iter().filter(|u| !u.patches.is_empty()) {
            let smallest = update.patches.iter().map(|p| p.size).min().unwrap_or(0);
            field(
                out,
                &format!("{} patches", platform_name(update.platform)),
                format!(
                    "{}{} ({}) instead of {}, for devices on {}",
                    if update.patches.len() > 1 {
                        "from "
                    } else {
                        ""
                    },
                    human_bytes(smallest),
                    percent_of(smallest, update.full_size),
                    human_bytes(update.full_size),
                    count(update.patches.len(), "earlier bundle")
                ),
            )?;
        }
        Ok(())
    }
}

/// `part` as a percentage of `whole`, e.g. `2.9 %`.
fn percent_of(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

fn health_text(health: &Health) -> String {
    match health.failure_rate {
        Some(rate) => format!(
            "{} served, {} running, {} failed ({rate:.1} %)",
            health.served, health.running, health.failed
        ),
        None => "not served yet".to_owned(),
    }
}

/// An update's bundle patches, one line each: from which updates, and their size against the
/// full launch asset's.
fn render_patches(out: &mut dyn Write, launch: &LaunchAsset) -> std::io::Result<()> {
    writeln!(
        out,
        "  {DIM}{:<8}{DIM:#} launch asset {}, {} bundle patch{}",
        "",
        human_bytes(launch.size),
        launch.patches.len(),
        if launch.patches.len() == 1 { "" } else { "es" }
    )?;
    for patch in &launch.patches {
        let from = match patch.base_update_ids.as_slice() {
            [] => patch.base_hash.clone(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        };
        writeln!(
            out,
            "  {DIM}{:<8}{DIM:#}   from {from}: {} ({} of the full bundle)",
            "",
            human_bytes(patch.size),
            percent_of(patch.size, launch.size)
        )?;
    }
    Ok(())
}

fn render_group(out: &mut dyn Write, group: &Group, detailed: bool) -> std::io::Result<()> {
    let status = match group.state.as_str() {
        "reverted" => format!("{RED}reverted{RED:#}"),
        "withdrawn" => format!("{DIM}withdrawn{DIM:#}"),
        "rollout" => format!("{YELLOW}rollout {}%{YELLOW:#}", group.rollout_percentage),
        _ => "100%".to_owned(),
    };
    let kind = if group.kind == "rollback_to_embedded" {
        " (roll back to embedded)"
    } else {
        ""
    };
    writeln!(
        out,
        "{BOLD}{}{BOLD:#}  {}  rv {}  {}{}",
        group.id,
        group.created_at.as_deref().unwrap_or("-"),
        group.runtime_version,
        status,
        kind
    )?;
    if let Some(message) = group.message.as_deref().filter(|m| !m.is_empty()) {
        writeln!(out, "  {message}")?;
    }
    for update in &group.updates {
        writeln!(
            out,
            "  {DIM}{:<8}{DIM:#} {}{}  {}",
            update.platform.as_str(),
            update.id,
            if update.signed { "  signed" } else { "" },
            health_text(&update.health)
        )?;
        if detailed {
            if let Some(control) = &update.control_update_id {
                writeln!(out, "  {DIM}{:<8}{DIM:#} control {control}", "")?;
            }
            if let Some(standby) = &update.standby_id {
                let health = update.standby_health.unwrap_or_default();
                writeln!(
                    out,
                    "  {DIM}{:<8}{DIM:#} standby revert {standby}  {}",
                    "",
                    health_text(&health)
                )?;
            }
            if let Some(launch) = &update.launch_asset {
                render_patches(out, launch)?;
            }
        }
    }
    if let Some(gate) = &group.health_gate {
        writeln!(
            out,
            "  health gate: revert over {:.1} % failed (from {} devices){}",
            gate.max_failure_rate,
            gate.min_devices,
            gate.verdict
                .as_deref()
                .map(|v| format!(", now {}", v.replace('_', " ")))
                .unwrap_or_default()
        )?;
    }
    if let Some(ramp) = &group.ramp {
        writeln!(
            out,
            "  ramp: {} every {} s{}",
            ramp.steps,
            ramp.every_seconds,
            ramp.next_step_at
                .as_deref()
                .map(|at| format!(", next step at {at} if healthy"))
                .unwrap_or_default()
        )?;
    }
    if let Some(revert) = &group.revert {
        writeln!(
            out,
            "  {RED}reverted{RED:#} at {} by {}{}",
            revert.at,
            revert.by,
            revert
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

impl Render for UpdatesList {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.groups.is_empty() {
            return writeln!(
                out,
                "Project {} has no updates yet; publish one with `otago deploy`.",
                self.project
            );
        }
        for group in &self.groups {
            render_group(out, group, false)?;
        }
        Ok(())
    }
}

impl Render for RollbackReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match &self.from_group {
            Some(from) => writeln!(
                out,
                "{GREEN}✓{GREEN:#} Republished group {from} as group {BOLD}{}{BOLD:#}",
                self.group
            )?,
            None => writeln!(
                out,
                "{GREEN}✓{GREEN:#} Published group {BOLD}{}{BOLD:#}: apps roll back to their embedded update",
                self.group
            )?,
        }
        for update in &self.updates {
            field(
                out,
                &format!("{} update", platform_name(update.platform)),
                format!("{} (runtime version {})", update.id, update.runtime_version),
            )?;
        }
        field(out, "message", &self.message)
    }
}

impl Render for RolloutReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let done = match (self.action, self.group.state.as_str()) {
            ("revert", _) => {
                "Reverted the rollout: devices that took it get its standby revert (the code they ran before); the others are told there is no update"
            }
            (_, "full") => "The rollout is complete: every device gets the update",
            _ => "Raised the rollout",
        };
        writeln!(out, "{GREEN}✓{GREEN:#} {done}")?;
        render_group(out, &self.group, true)
    }
}

impl Render for Group {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        render_group(out, self, true)
    }
}

impl Render for DoctorReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for check in &self.checks {
            let (mark, style) = match check.status {
                CheckStatus::Pass => ("✓", GREEN),
                CheckStatus::Warn => ("!", YELLOW),
                CheckStatus::Fail => ("✗", RED),
                CheckStatus::Skip => ("-", DIM),
            };
            writeln!(
                out,
                "{style}{mark}{style:#} {DIM}{}{DIM:#} {}",
                check.id, check.message
            )?;
            if let Some(fix) = check
                .fix
                .as_ref()
                .filter(|_| check.status != CheckStatus::Pass)
            {
                writeln!(out, "    {style}→{style:#} {fix}")?;
            }
        }
        writeln!(out)?;
        let summary = format!(
            "{} of {} checks failing ({} passing, {} with warnings, {} skipped)",
            self.failed,
            self.checks.len(),
            self.passed,
            self.warned,
            self.skipped
        );
        if self.ok {
            writeln!(out, "{GREEN}{summary}{GREEN:#}")
        } else {
            writeln!(out, "{RED}{summary}{RED:#}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for answer in ["y\n", "YES\n", " yes "] {
            assert!(is_yes(answer), "{answer:?}");
        }
        for answer in ["", "\n", "n\n", "yep\n", "no"] {
            assert!(!is_yes(answer), "{answer:?}");
        }
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
