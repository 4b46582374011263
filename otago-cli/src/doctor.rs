//! `otago doctor`: one line per check, each ✓ or ✗ with the fix.
//!
//! The judgements come from otago-core (app-config findings, runtime version resolution,
//! certificate report); this module reads the files, asks the server and git, and lists the
//! results.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use otago_core::{
    CertificateProblem, Finding, FindingCode, Severity, SigningCertificate, SigningKey, Workflow,
    check_app_config, env_file_names,
};
use serde::Serialize;
use serde_json::Value;

use crate::app::{self, AppConfig};
use crate::client::{Client, Project};
use crate::error::{CliError, Result};
use crate::output::Printer;
use crate::settings::{Credential, DoctorSettings, ServerSettings};

/// A certificate must stay valid at least this long.
pub const EXPIRY_WARNING_DAYS: i64 = 90;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Works, but worth a look; does not fail the run.
    Warn,
    /// Broken; the run fails.
    Fail,
    /// Could not run because something it needs failed or is absent.
    Skip,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id, e.g. `updates-url`.
    pub id: String,
    /// Outcome.
    pub status: CheckStatus,
    /// What was found.
    pub message: String,
    /// What to do (for `fail` and `warn`).
    pub fix: Option<String>,
}

/// The result of `otago doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// Project ref.
    pub project: String,
    /// The app folder checked.
    pub app_dir: String,
    /// Whether no check failed.
    pub ok: bool,
    /// How many checks passed.
    pub passed: usize,
    /// How many warned.
    pub warned: usize,
    /// How many failed.
    pub failed: usize,
    /// How many were skipped.
    pub skipped: usize,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

struct Checks(Vec<Check>);

impl Checks {
    fn push(
        &mut self,
        id: impl Into<String>,
        status: CheckStatus,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.0.push(Check {
            id: id.into(),
            status,
            message: message.into(),
            fix,
        });
    }

    fn pass(&mut self, id: impl Into<String>, message: impl Into<String>) {
        self.push(id, CheckStatus::Pass, message, None);
    }

    fn fail(&mut self, id: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.push(id, CheckStatus::Fail, message, Some(fix.into()));
    }

    fn warn(&mut self, id: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.push(id, CheckStatus::Warn, message, Some(fix.into()));
    }

    fn skip(&mut self, id: impl Into<String>, message: impl Into<String>) {
        self.push(id, CheckStatus::Skip, message, None);
    }

    fn finding(&mut self, id: &str, finding: &Finding) {
        let status = match finding.severity {
            Severity::Error => CheckStatus::Fail,
            Severity::Warning => CheckStatus::Warn,
        };
        self.push(
            id,
            status,
            format!("{} [{}]", finding.message, finding.code),
            Some(finding.fix.clone()),
        );
    }
}

/// Runs every check. The report lists failures; it is the caller's to turn them into an exit
/// code.
///
/// # Errors
/// Only for a setting that makes checking impossible (no credential); every problem with the
/// app or server is a failed check.
pub async fn doctor(
    settings: &DoctorSettings,
    server: &ServerSettings,
    printer: &Printer,
) -> Result<DoctorReport> {
    let mut checks = Checks(Vec::new());
    let app_dir = settings.app_dir.as_path();
    let step = printer.step("Checking");

    let project = check_server(server, &settings.project, &mut checks).await?;
    check_expo_updates(app_dir, &mut checks);

    let env = match app::load_env(app_dir, &settings.env, None) {
        Ok(env) => {
            let files = env.resolved.files.clone();
            let names = env_file_names(Some(&settings.env.mode));
            checks.pass(
                "env-files",
                match (settings.env.load, files.is_empty()) {
                    (false, _) => {
                        "loading .env files is turned off (OTAGO_LOAD_ENVS=false)".to_owned()
                    }
                    (true, false) => {
                        format!("NODE_ENV={} loads {}", settings.env.mode, files.join(", "))
                    }
                    (true, true) => format!(
                        "NODE_ENV={} loads no .env file (looked for {})",
                        settings.env.mode,
                        names.join(", ")
                    ),
                },
            );
            Some(env)
        }
        Err(err) => {
            checks.fail(
                "env-files",
                format!("{err}"),
                "fix the .env file or eas.json named above",
            );
            None
        }
    };
    let child_env = env.as_ref().map_or_else(
        || settings.env.process_env.clone(),
        |env| env.child_env(&settings.env.mode),
    );

    let config = load_config(settings, &child_env).await;
    match &config {
        Ok(config) => checks.pass("app-config", format!("read the app config from {}", config.source)),
        Err(err) => checks.fail(
            "app-config",
            format!("{err}"),
            "fix app.json (or app.config.js), or pass --config-json with the output of `npx expo config --json`",
        ),
    }
    if let Ok(config) = &config {
        check_config(config, project.as_ref(), settings, &child_env, &mut checks).await;
        check_signing(config, project.as_ref(), settings, &mut checks);
    } else {
        for id in [
            "updates-url",
            "runtime-version",
            "updates-options",
            "code-signing",
        ] {
            checks.skip(id, "needs the app config");
        }
    }
    check_env_local_files(app_dir, &mut checks);
    drop(step);

    let count = |status| checks.0.iter().filter(|c| c.status == status).count();
    let failed = count(CheckStatus::Fail);
    Ok(DoctorReport {
        project: settings.project.clone(),
        app_dir: app_dir.display().to_string(),
        ok: failed == 0,
        passed: count(CheckStatus::Pass),
        warned: count(CheckStatus::Warn),
        failed,
        skipped: count(CheckStatus::Skip),
        checks: checks.0,
    })
}

async fn check_server(
    server: &ServerSettings,
    reference: &str,
    checks: &mut Checks,
) -> Result<Option<Project>> {
    let token = match server.token(Credential::KeyFirst) {
        Ok(token) => token,
        Err(err) => {
            checks.fail(
                "server",
                format!("{err}"),
                "set OTAGO_API_KEY to a key of this project",
            );
            return Ok(None);
        }
    };
    let client = Client::new(&server.url, Some(token))?;
    if let Err(err) = client.health().await {
        checks.fail(
            "server",
            format!("{err}"),
            "start the server, or set OTAGO_SERVER_URL to where it runs",
        );
        return Ok(None);
    }
    match client.project(reference).await {
        Ok(project) => {
            checks.pass(
                "server",
                format!(
                    "{} answers and the key works for project {} ({} / {})",
                    server.url, project.reference, project.app, project.environment
                ),
            );
            Ok(Some(project))
        }
        Err(err) => {
            checks.fail(
                "server",
                format!("{} answers, but the key does not work for project {reference}: {err}", server.url),
                "use a key of this project (`otago keys create --project REF`) in OTAGO_API_KEY, and check --project",
            );
            Ok(None)
        }
    }
}

/// `--config-json`, else a dynamic config through `npx expo config --json`, else app.json.
async fn load_config(
    settings: &DoctorSettings,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<AppConfig> {
    if let Some(path) = &settings.config_json {
        return app::read_config_json(path);
    }
    let dynamic = [
        "app.config.js",
        "app.config.ts",
        "app.config.mjs",
        "app.config.cjs",
    ]
    .iter()
    .any(|name| settings.app_dir.join(name).is_file());
    if dynamic {
        app::evaluate_config(&settings.app_dir, env).await
    } else {
        app::read_static_config(&settings.app_dir)
    }
}

/// expo-updates is installed, a dependency, and of the line the app's Expo SDK expects.
fn check_expo_updates(app_dir: &Path, checks: &mut Checks) {
    const ID: &str = "expo-updates";
    let fix = "run `npx expo install expo-updates` in the app folder";
    let package = app::package_json(app_dir);
    let Some(package) = package else {
        checks.fail(
            ID,
            format!("no readable package.json in {}", app_dir.display()),
            "run otago doctor in the app's folder, or pass --app-dir",
        );
        return;
    };
    let in_dependencies = package.pointer("/dependencies/expo-updates").is_some();
    let in_dev = package.pointer("/devDependencies/expo-updates").is_some();
    let installed = app::package_version(&app_dir.join("node_modules/expo-updates/package.json"));
    let Some(installed) = installed else {
        let message = if in_dependencies {
            "expo-updates is in package.json but not installed (no node_modules/expo-updates)"
        } else {
            "expo-updates is not installed"
        };
        let fix = if in_dependencies {
            "run `npm install` (or your package manager's install)"
        } else {
            fix
        };
        checks.fail(ID, message, fix);
        return;
    };
    if !in_dependencies {
        let where_ = if in_dev {
            "only in devDependencies"
        } else {
            "not in package.json"
        };
        checks.fail(
            ID,
            format!(
                "expo-updates {installed} is installed but {where_}, so builds may leave it out"
            ),
            fix,
        );
        return;
    }
    let sdk = app::package_version(&app_dir.join("node_modules/expo/package.json")).or_else(|| {
        package
            .pointer("/dependencies/expo")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let Some(sdk) = sdk.as_deref().and_then(major_minor) else {
        checks.warn(
            ID,
            format!("expo-updates {installed} is installed, but the app's Expo SDK is unknown (no `expo` dependency)"),
            "add expo to the dependencies (`npm install expo`)",
        );
        return;
    };
    let bundled =
        std::fs::read_to_string(app_dir.join("node_modules/expo/bundledNativeModules.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|modules| modules.get("expo-updates")?.as_str().map(str::to_owned));
    let expected = bundled
        .as_deref()
        .and_then(major_minor)
        .or_else(|| expected_updates_line(sdk.0));
    let Some(expected) = expected else {
        checks.warn(
            ID,
            format!("expo-updates {installed} is installed; Expo SDK {} is too old for otago to know which version it needs", sdk.0),
            "upgrade to a current Expo SDK",
        );
        return;
    };
    let Some(actual) = major_minor(&installed) else {
        checks.fail(
            ID,
            format!("expo-updates has an unreadable version `{installed}`"),
            fix,
        );
        return;
    };
    let fits = if expected.0 == 0 {
        actual.0 == 0 && actual.1 == expected.1
    } else {
        actual.0 == expected.0
    };
    let line = |v: (u64, u64)| {
        if v.0 == 0 {
            format!("0.{}.x", v.1)
        } else {
            format!("{}.x", v.0)
        }
    };
    if fits {
        checks.pass(
            ID,
            format!(
                "expo-updates {installed} is installed and fits Expo SDK {}",
                sdk.0
            ),
        );
    } else {
        checks.fail(
            ID,
            format!(
                "expo-updates {installed} does not fit Expo SDK {}, which needs {}",
                sdk.0,
                line(expected)
            ),
            fix,
        );
    }
}

/// The expo-updates line of an Expo SDK, for SDKs before the versions were aligned (55).
fn expected_updates_line(sdk_major: u64) -> Option<(u64, u64)> {
    match sdk_major {
        55.. => Some((sdk_major, 0)),
        54 => Some((29, 0)),
        53 => Some((0, 28)),
        52 => Some((0, 27)),
        51 => Some((0, 25)),
        50 => Some((0, 24)),
        49 => Some((0, 18)),
        _ => None,
    }
}

/// Major and minor of a version or a simple range (`~56.0.23`, `^0.28.1`, `56.0.27`).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let version = version
        .trim()
        .trim_start_matches(['~', '^', '=', '>', '<', 'v', ' ']);
    let mut parts = version.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

async fn check_config(
    config: &AppConfig,
    project: Option<&Project>,
    settings: &DoctorSettings,
    env: &std::collections::BTreeMap<String, String>,
    checks: &mut Checks,
) {
    let expected_url = project.map(|p| p.update_url.as_str());
    // The runtime version findings follow the strictest workflow among the checked platforms;
    // the per-platform checks below resolve each platform with its own.
    let workflow = if settings
        .platforms
        .iter()
        .any(|&platform| app::detect_workflow(&settings.app_dir, platform) == Workflow::Bare)
    {
        Workflow::Bare
    } else {
        Workflow::Managed
    };
    let findings = match check_app_config(&config.config, expected_url, workflow) {
        Ok(findings) => findings,
        Err(err) => {
            checks.fail(
                "updates-options",
                format!("{err}"),
                "fix the `updates` object of the app config",
            );
            return;
        }
    };
    let with = |codes: &[FindingCode]| -> Vec<&Finding> {
        findings
            .iter()
            .filter(|f| codes.contains(&f.code))
            .collect()
    };

    let url_findings = with(&[
        FindingCode::UpdatesUrlMissing,
        FindingCode::UpdatesUrlInvalid,
        FindingCode::UpdatesUrlMismatch,
        FindingCode::UpdatesUrlExpoHosted,
    ]);
    if url_findings.is_empty() {
        match (config.update_url(), project) {
            (Some(url), Some(_)) => checks.pass(
                "updates-url",
                format!("updates.url is this project's update URL ({url})"),
            ),
            (Some(url), None) => checks.skip(
                "updates-url",
                format!("updates.url is {url}; not compared, the project is unknown"),
            ),
            (None, _) => checks.skip("updates-url", "updates.url is not set"),
        }
    }
    for finding in url_findings {
        checks.finding("updates-url", finding);
    }

    for &platform in &settings.platforms {
        let id = format!("runtime-version-{platform}");
        match app::resolve_runtime_version_for(&settings.app_dir, config, platform, env).await {
            Ok(version) => checks.pass(
                id,
                format!("the runtime version on {platform} resolves to \"{version}\""),
            ),
            Err(err) => {
                let finding = findings.iter().find(|f| {
                    matches!(
                        f.code,
                        FindingCode::RuntimeVersionMissing | FindingCode::RuntimeVersionInvalid
                    ) && f.message.contains(platform.as_str())
                });
                match finding {
                    Some(finding) => checks.finding(&id, finding),
                    None => checks.fail(
                        id,
                        format!("{err}"),
                        "set runtimeVersion in app.json (a string, or {\"policy\": \"appVersion\"}); bare projects need a string or the fingerprint policy",
                    ),
                }
            }
        }
    }

    let option_findings = with(&[
        FindingCode::UpdatesDisabled,
        FindingCode::UpdatesEnabledInvalid,
        FindingCode::CheckAutomaticallyInvalid,
        FindingCode::FallbackToCacheTimeoutInvalid,
    ]);
    if option_findings.is_empty() {
        checks.pass(
            "updates-options",
            "updates options (enabled, checkAutomatically, fallbackToCacheTimeout) are valid",
        );
    }
    for finding in option_findings {
        checks.finding("updates-options", finding);
    }

    let signing_findings: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.code.as_str().starts_with("code-signing"))
        .collect();
    for finding in signing_findings {
        checks.finding("code-signing-config", finding);
    }
}

fn check_signing(
    config: &AppConfig,
    project: Option<&Project>,
    settings: &DoctorSettings,
    checks: &mut Checks,
) {
    let Some(relative) = config.certificate_path() else {
        match project {
            Some(project) if project.require_signing => checks.fail(
                "certificate",
                format!(
                    "project {} requires signed updates, but the app embeds no certificate (updates.codeSigningCertificate), so builds would not check signatures",
                    project.reference
                ),
                "generate one (`otago codesigning generate ...`), set updates.codeSigningCertificate and codeSigningMetadata, and rebuild",
            ),
            _ => checks.pass("certificate", "code signing is not used (no updates.codeSigningCertificate)"),
        }
        return;
    };
    let path = settings.app_dir.join(relative);
    let certificate = match std::fs::read_to_string(&path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))
        .and_then(|text| {
            SigningCertificate::from_pem(&text).map_err(|err| format!("{}: {err}", path.display()))
        }) {
        Ok(certificate) => certificate,
        Err(message) => {
            checks.fail(
                "certificate",
                message,
                "point updates.codeSigningCertificate at the certificate.pem from `otago codesigning generate`",
            );
            return;
        }
    };
    let now = SystemTime::now();
    let report = certificate.report(now);
    let validity: Vec<&CertificateProblem> = report
        .problems
        .iter()
        .filter(|p| {
            !matches!(
                p,
                CertificateProblem::MissingDigitalSignature
                    | CertificateProblem::MissingCodeSigning
            )
        })
        .collect();
    match validity.first() {
        None => checks.pass(
            "certificate",
            format!(
                "{} is a valid self-signed certificate{}",
                relative,
                report
                    .common_name
                    .as_deref()
                    .map(|cn| format!(" (CN={cn})"))
                    .unwrap_or_default()
            ),
        ),
        Some(problem) => checks.fail(
            "certificate",
            format!("{relative}: {problem}"),
            problem.hint(),
        ),
    }
    let usages: Vec<&CertificateProblem> = report
        .problems
        .iter()
        .filter(|p| {
            matches!(
                p,
                CertificateProblem::MissingDigitalSignature
                    | CertificateProblem::MissingCodeSigning
            )
        })
        .collect();
    match usages.first() {
        None => checks.pass(
            "certificate-usages",
            "the certificate has Digital Signature and Code Signing usages",
        ),
        Some(problem) => checks.fail("certificate-usages", problem.to_string(), problem.hint()),
    }
    let soon = now + Duration::from_secs(u64::try_from(EXPIRY_WARNING_DAYS).unwrap_or(90) * 86_400);
    if report.not_after < soon {
        checks.fail(
            "certificate-expiry",
            format!(
                "the certificate expires in {} days (fewer than {EXPIRY_WARNING_DAYS}); after that every update fails on devices",
                report.days_until_expiry.max(0)
            ),
            "generate a new key and certificate and ship them in a new build with a new runtime version",
        );
    } else {
        checks.pass(
            "certificate-expiry",
            format!(
                "the certificate is valid for {} more days",
                report.days_until_expiry
            ),
        );
    }
    match &settings.private_key_path {
        None => checks.warn(
            "certificate-key",
            "OTAGO_PRIVATE_KEY is not set, so the private key was not checked against the certificate",
            "set OTAGO_PRIVATE_KEY (or --private-key-path) to the private-key.pem that signs updates",
        ),
        Some(key_path) => {
            let key = std::fs::read_to_string(key_path)
                .map_err(|err| format!("cannot read {}: {err}", key_path.display()))
                .and_then(|pem| SigningKey::from_pem(&pem).map_err(|err| format!("{}: {err}", key_path.display())));
            match key {
                Err(message) => checks.fail("certificate-key", message, "set OTAGO_PRIVATE_KEY to a readable PEM private key"),
                Ok(key) if certificate.matches(&key) => checks.pass(
                    "certificate-key",
                    format!("{} is the private key of the certificate", key_path.display()),
                ),
                Ok(_) => checks.fail(
                    "certificate-key",
                    format!(
                        "{} does not match the certificate {relative}: devices would reject every update it signs",
                        key_path.display()
                    ),
                    "use the private-key.pem generated together with the app's certificate",
                ),
            }
        }
    }
    match project {
        None => checks.skip("certificate-project", "the project is unknown"),
        Some(project) => {
            let project_certificate = project
                .certificate_pem
                .as_deref()
                .and_then(|pem| SigningCertificate::from_pem(pem).ok());
            let certificate_arg = shell_word(&command_line_path(&settings.app_dir, relative));
            match project_certificate {
                Some(theirs) if theirs.public_key() != certificate.public_key() => checks.fail(
                    "certificate-project",
                    format!("project {} holds a different certificate than the app", project.reference),
                    format!(
                        "give the project the app's certificate with `otago projects update --project {} --certificate {certificate_arg}`, or embed the project's certificate in the app and rebuild",
                        project.reference
                    ),
                ),
                _ if !project.require_signing => checks.warn(
                    "certificate-project",
                    format!(
                        "the app checks signatures, but project {} does not require signing, so the server accepts unsigned publishes that devices will reject",
                        project.reference
                    ),
                    format!(
                        "run `otago projects update --project {} --require-signing true --certificate {certificate_arg}` so that the server refuses unsigned updates too",
                        project.reference
                    ),
                ),
                _ => checks.pass(
                    "certificate-project",
                    format!("project {} requires signing with this certificate", project.reference),
                ),
            }
        }
    }
}

/// `relative` (a path in the app config) as seen from where otago runs: inside `app_dir`,
/// without `.` components.
fn command_line_path(app_dir: &Path, relative: &str) -> String {
    app_dir
        .join(relative)
        .components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect::<PathBuf>()
        .display()
        .to_string()
}

/// `word`, single-quoted for a POSIX shell when it holds anything but plain path characters.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b'+' | b':' | b'@' | b',' | b'='
                )
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Every `.env*.local` file is git-ignored.
fn check_env_local_files(app_dir: &Path, checks: &mut Checks) {
    const ID: &str = "env-local-ignored";
    let mut local_files: Vec<String> = std::fs::read_dir(app_dir)
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| name.starts_with(".env") && name.ends_with(".local"))
                .collect()
        })
        .unwrap_or_default();
    local_files.sort();
    if local_files.is_empty() {
        checks.pass(ID, "no .env*.local files");
        return;
    }
    let mut exposed = Vec::new();
    let mut unknown = Vec::new();
    for name in &local_files {
        match app::is_git_ignored(app_dir, Path::new(name)) {
            Some(true) => {}
            Some(false) => exposed.push(name.clone()),
            None => unknown.push(name.clone()),
        }
    }
    if !exposed.is_empty() {
        checks.fail(
            ID,
            format!("{} not git-ignored; local secrets would be committed", exposed.join(", ") + if exposed.len() == 1 { " is" } else { " are" }),
            "add the line `.env*.local` to .gitignore (and `git rm --cached` any that are committed)",
        );
    } else if !unknown.is_empty() {
        checks.warn(
            ID,
            format!(
                "{} found, but there is no git repository or .gitignore to check",
                unknown.join(", ")
            ),
            "add the line `.env*.local` to .gitignore",
        );
    } else {
        checks.pass(
            ID,
            format!(
                "{} git-ignored",
                local_files.join(", ")
                    + if local_files.len() == 1 {
                        " is"
                    } else {
                        " are"
                    }
            ),
        );
    }
}

/// Turns a report with failures into [`CliError::ChecksFailed`].
///
/// # Errors
/// When any check failed.
pub fn ensure_ok(report: &DoctorReport) -> Result<()> {
    if report.failed > 0 {
        return Err(CliError::ChecksFailed {
            failed: report.failed,
            total: report.checks.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_ranges_give_major_and_minor() {
        assert_eq!(major_minor("~56.0.23"), Some((56, 0)));
        assert_eq!(major_minor("^0.28.1"), Some((0, 28)));
        assert_eq!(major_minor("29.0.20"), Some((29, 0)));
        assert_eq!(major_minor("latest"), None);
    }

    #[test]
    fn certificate_paths_read_as_typed_from_the_working_folder() {
        assert_eq!(
            command_line_path(Path::new("."), "./certs/certificate.pem"),
            "certs/certificate.pem"
        );
        assert_eq!(
            command_line_path(Path::new("apps/shop"), "./certs/certificate.pem"),
            "apps/shop/certs/certificate.pem"
        );
        assert_eq!(shell_word("certs/certificate.pem"), "certs/certificate.pem");
        assert_eq!(shell_word("my app/cert.pem"), "'my app/cert.pem'");
        assert_eq!(shell_word("it's.pem"), r"'it'\''s.pem'");
    }

    #[test]
    fn sdk_lines_are_known() {
        assert_eq!(expected_updates_line(56), Some((56, 0)));
        assert_eq!(expected_updates_line(54), Some((29, 0)));
        assert_eq!(expected_updates_line(53), Some((0, 28)));
        assert_eq!(expected_updates_line(40), None);
    }
}
