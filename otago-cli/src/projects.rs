//! `otago projects ...` and `otago keys ...`: thin calls of the management API. A certificate
//! given to `projects update` is judged by otago-core before it is sent.

use std::path::Path;
use std::time::SystemTime;

use otago_core::{CertificateProblem, CertificateReport, SigningCertificate, Timestamp};
use serde::Serialize;

use crate::args::KeyRoleArg;
use crate::client::{ApiKey, AuditEntry, Client, CreatedKey, NewKey, Project, ProjectPatch};
use crate::doctor::EXPIRY_WARNING_DAYS;
use crate::error::{CliError, Result};
use crate::output::Printer;
use crate::settings::{
    CertificateChange, Credential, KeyExpiry, ProjectUpdateSettings, ServerSettings,
};

/// A created project, with the app.json snippet that points an app at it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectCreated {
    /// The project (`ref`, `update_url`, ...).
    #[serde(flatten)]
    pub project: Project,
    /// What to merge into app.json.
    pub app_json: serde_json::Value,
}

/// The projects the credentials see.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectList {
    /// Projects.
    pub projects: Vec<Project>,
}

/// A project's certificate as the expo-updates client would judge it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateSummary {
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// End of validity, `YYYY-MM-DDTHH:mm:ss.sssZ` (`None` when unreadable).
    pub valid_until: Option<String>,
    /// Whole days until then; negative once expired (`None` when unreadable).
    pub days_until_expiry: Option<i64>,
    /// What clients would refuse about it now (e.g. that it expired); empty when fine.
    pub problems: Vec<String>,
}

/// A project and a summary of its certificate: what `otago projects show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectDetails {
    /// The project as the server describes it.
    #[serde(flatten)]
    pub project: Project,
    /// The certificate in `certificate_pem`, judged; `None` when the project has none.
    pub certificate: Option<CertificateSummary>,
}

/// What `otago projects update` prints: the project as it is after the change.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ProjectUpdated(pub ProjectDetails);

/// A deleted project.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectDeleted {
    /// Project ref.
    pub project: String,
    /// Its app name.
    pub app: String,
    /// Its environment.
    pub environment: String,
    /// Always `true`.
    pub deleted: bool,
}

/// A created API key; `key` is the secret to use as OTAGO_API_KEY, shown only now.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCreated {
    /// Project ref.
    pub project: String,
    /// Key id.
    pub id: String,
    /// Key name.
    pub name: String,
    /// `deploy` or `admin`.
    pub role: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// The secret.
    pub key: String,
    /// Creation time.
    pub created_at: Option<String>,
}

/// A project's keys.
#[derive(Debug, Clone, Serialize)]
pub struct KeyList {
    /// Project ref.
    pub project: String,
    /// Keys.
    pub keys: Vec<ApiKey>,
}

/// A page of a project's audit log, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLog {
    /// Project ref.
    pub project: String,
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass as `--before` for the next (older) page; `None` on the last.
    pub next_before: Option<i64>,
}

/// A revoked key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRevoked {
    /// Project ref.
    pub project: String,
    /// Key id.
    pub id: String,
    /// Always `true`.
    pub revoked: bool,
}

fn client(server: &ServerSettings, credential: Credential) -> Result<Client> {
    Client::new(&server.url, Some(server.token(credential)?))
}

/// The app.json keys that point an app at a project.
#[must_use]
pub fn app_json_snippet(update_url: &str) -> serde_json::Value {
    serde_json::json!({
        "expo": {
            "runtimeVersion": { "policy": "appVersion" },
            "updates": { "url": update_url }
        }
    })
}

/// `otago projects create`.
///
/// # Errors
/// The server's error (409 when the app and environment exist).
pub async fn create_project(
    server: &ServerSettings,
    app: &str,
    environment: &str,
) -> Result<ProjectCreated> {
    let project = client(server, Credential::AdminFirst)?
        .create_project(app, environment)
        .await?;
    let app_json = app_json_snippet(&project.update_url);
    Ok(ProjectCreated { project, app_json })
}

/// `otago projects list`.
///
/// # Errors
/// The server's error.
pub async fn list_projects(server: &ServerSettings) -> Result<ProjectList> {
    let projects = client(server, Credential::AdminFirst)?
        .list_projects()
        .await?;
    Ok(ProjectList { projects })
}

/// `otago projects show`.
///
/// # Errors
/// The server's error (404 for an unknown ref).
pub async fn show_project(
    server: &ServerSettings,
    reference: &str,
    now: SystemTime,
) -> Result<ProjectDetails> {
    let project = client(server, Credential::AdminFirst)?
        .project(reference)
        .await
        .map_err(with_cli_hint)?;
    Ok(details(project, now))
}

/// `otago projects update`: reads and checks a new certificate, then sends the change.
///
/// # Errors
/// [`CliError::Io`] or [`CliError::Core`] for an unreadable certificate file,
/// [`CliError::Signing`] for one devices would refuse (nothing is sent then), or the server's
/// error (e.g. `certificate_required` for signing without a certificate).
pub async fn update_project(
    settings: &ProjectUpdateSettings,
    server: &ServerSettings,
    printer: &Printer,
    now: SystemTime,
) -> Result<ProjectUpdated> {
    let certificate_pem = match &settings.certificate {
        CertificateChange::Keep => None,
        CertificateChange::Remove => Some(None),
        CertificateChange::Set(path) => {
            let (pem, report) = read_certificate(path, now)?;
            if report.days_until_expiry < EXPIRY_WARNING_DAYS {
                printer.warn(format!(
                    "{} expires in {} days; after that devices refuse every update signed with it, so plan a new certificate, a new build and a new runtime version",
                    path.display(),
                    report.days_until_expiry
                ));
            }
            Some(Some(pem))
        }
    };
    let patch = ProjectPatch {
        require_signing: settings.require_signing,
        certificate_pem,
        max_asset_bytes: settings.max_asset_bytes,
    };
    let project = client(server, Credential::AdminFirst)?
        .update_project(&settings.project, &patch)
        .await
        .map_err(with_cli_hint)?;
    Ok(ProjectUpdated(details(project, now)))
}

/// Reads a certificate file and refuses it unless the expo-updates client would accept it at
/// `now` (code signing usages, validity period, self-signed). Returns the PEM text to send.
///
/// # Errors
/// [`CliError::Io`] when the file cannot be read, [`CliError::Core`] when it is not one PEM
/// certificate with an RSA key, [`CliError::Signing`] naming every problem and what to do.
pub fn read_certificate(path: &Path, now: SystemTime) -> Result<(String, CertificateReport)> {
    let pem = std::fs::read_to_string(path).map_err(CliError::io("read the certificate", path))?;
    let certificate = SigningCertificate::from_pem(&pem)
        .map_err(CliError::core(format!("reading {}", path.display())))?;
    let report = certificate.report(now);
    if !report.is_ok() {
        return Err(refused_certificate(path, &report.problems));
    }
    Ok((pem, report))
}

fn refused_certificate(path: &Path, problems: &[CertificateProblem]) -> CliError {
    let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let mut hints: Vec<&str> = Vec::new();
    for problem in problems {
        if !hints.contains(&problem.hint()) {
            hints.push(problem.hint());
        }
    }
    CliError::Signing {
        reason: format!(
            "{} cannot be the project's certificate, since devices would refuse it: {}; {}. Nothing was changed",
            path.display(),
            found.join(", and "),
            hints.join("; ")
        ),
    }
}

/// The server's hints speak of JSON fields and API paths; on the command line, name the
/// flags and commands instead.
fn with_cli_hint(mut err: CliError) -> CliError {
    if let CliError::Api { code, hint, .. } = &mut err {
        let cli_hint = match code.as_str() {
            "certificate_required" => {
                "pass --certificate with the app's certificate.pem in the same command; to remove the certificate, turn signing off with --require-signing false"
            }
            "project_not_found" => "check the ref with `otago projects list`",
            _ => return err,
        };
        cli_hint.clone_into(hint);
    }
    err
}

fn details(project: Project, now: SystemTime) -> ProjectDetails {
    let certificate = project
        .certificate_pem
        .as_deref()
        .map(|pem| certificate_summary(pem, now));
    ProjectDetails {
        project,
        certificate,
    }
}

/// Judges a project's certificate at `now`.
#[must_use]
pub fn certificate_summary(pem: &str, now: SystemTime) -> CertificateSummary {
    match SigningCertificate::from_pem(pem) {
        Ok(certificate) => {
            let report = certificate.report(now);
            CertificateSummary {
                valid_until: Timestamp::from_system_time(report.not_after)
                    .ok()
                    .map(|t| t.to_string()),
                days_until_expiry: Some(report.days_until_expiry),
                problems: report.problems.iter().map(ToString::to_string).collect(),
                common_name: report.common_name,
            }
        }
        Err(err) => CertificateSummary {
            common_name: None,
            valid_until: None,
            days_until_expiry: None,
            problems: vec![err.to_string()],
        },
    }
}

/// `otago projects delete`. Without `confirmed` (`--yes`) it asks on the terminal, and
/// refuses when there is none to ask on.
///
/// # Errors
/// [`CliError::Usage`] when not confirmed, or the server's error (404 for an unknown ref,
/// 403 for a project key: deleting needs the admin token).
pub async fn delete_project(
    server: &ServerSettings,
    reference: &str,
    confirmed: bool,
    printer: &Printer,
) -> Result<ProjectDeleted> {
    if !confirmed && !printer.can_ask() {
        return Err(CliError::Usage {
            reason: format!(
                "deleting project {reference} needs confirmation, but stdin is not a terminal to ask on; pass --yes to delete it"
            ),
        });
    }
    let client = client(server, Credential::AdminFirst)?;
    let project = client.project(reference).await.map_err(with_cli_hint)?;
    if !confirmed {
        let question = format!(
            "Delete project {} ({} / {}) with its keys and update history? Apps pointed at {} get no more updates from it. This cannot be undone.",
            project.reference, project.app, project.environment, project.update_url
        );
        if !printer.confirm(question)? {
            return Err(CliError::Usage {
                reason: format!(
                    "project {reference} was not deleted (the answer was not yes); pass --yes to delete without asking"
                ),
            });
        }
    }
    client.delete_project(&project.reference).await?;
    Ok(ProjectDeleted {
        project: project.reference,
        app: project.app,
        environment: project.environment,
        deleted: true,
    })
}

/// `otago keys create`.
///
/// # Errors
/// The server's error.
/// [`CliError::Usage`] for an expiry out of range, or the server's error (403 without an admin
/// key of the project or the admin token).
pub async fn create_key(
    server: &ServerSettings,
    project: &str,
    name: &str,
    role: KeyRoleArg,
    expiry: KeyExpiry,
    now: SystemTime,
) -> Result<KeyCreated> {
    let new_key = NewKey {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        expires_at: expiry.at(now)?.map(|at| at.to_string()),
    };
    let CreatedKey {
        id,
        name,
        role,
        expires_at,
        secret,
        created_at,
    } = client(server, Credential::AdminFirst)?
        .create_key(project, &new_key)
        .await?;
    Ok(KeyCreated {
        project: project.to_owned(),
        id,
        name,
        role,
        expires_at,
        key: secret,
        created_at,
    })
}

/// `otago projects audit`.
///
/// # Errors
/// The server's error (403 without an admin key of the project or the admin token).
pub async fn audit_log(
    server: &ServerSettings,
    project: &str,
    limit: u32,
    before: Option<i64>,
) -> Result<AuditLog> {
    let page = client(server, Credential::AdminFirst)?
        .audit(project, limit, before)
        .await
        .map_err(with_cli_hint)?;
    Ok(AuditLog {
        project: project.to_owned(),
        entries: page.entries,
        next_before: page.next_before,
    })
}

/// `otago keys list`.
///
/// # Errors
/// The server's error.
pub async fn list_keys(server: &ServerSettings, project: &str) -> Result<KeyList> {
    let keys = client(server, Credential::AdminFirst)?
        .list_keys(project)
        .await?;
    Ok(KeyList {
        project: project.to_owned(),
        keys,
    })
}

/// `otago keys revoke`.
///
/// # Errors
/// The server's error (404 for an unknown key).
pub async fn revoke_key(
    server: &ServerSettings,
    project: &str,
    key_id: &str,
) -> Result<KeyRevoked> {
    client(server, Credential::AdminFirst)?
        .revoke_key(project, key_id)
        .await?;
    Ok(KeyRevoked {
        project: project.to_owned(),
        id: key_id.to_owned(),
        revoked: true,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The Expo SDK 56 fixture's certificate (read in place).
    fn fixture_certificate() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/expo-app/certs/certificate.pem"
        ))
        .expect("the fixture certificate")
    }

    #[test]
    fn certificate_summaries_judge_at_the_given_time() {
        let now = SystemTime::now();
        let pem = fixture_certificate();
        let fine = certificate_summary(&pem, now);
        assert!(fine.problems.is_empty(), "{fine:?}");
        assert!(fine.valid_until.is_some());
        let days = fine.days_until_expiry.unwrap();
        let later = now + Duration::from_secs(u64::try_from(days + 2).unwrap() * 86_400);
        let expired = certificate_summary(&pem, later);
        assert!(
            expired.problems.iter().any(|p| p.contains("expired")),
            "{expired:?}"
        );
        let unreadable = certificate_summary("not a certificate", now);
        assert_eq!(unreadable.days_until_expiry, None);
        assert_eq!(unreadable.problems.len(), 1);
    }

    #[test]
    fn refusals_name_every_problem_and_each_fix_once() {
        let err = refused_certificate(
            Path::new("cert.pem"),
            &[
                CertificateProblem::MissingDigitalSignature,
                CertificateProblem::MissingCodeSigning,
            ],
        )
        .to_string();
        assert!(
            err.contains("cert.pem cannot be the project's certificate"),
            "{err}"
        );
        assert!(
            err.contains("Digital Signature") && err.contains("Code Signing"),
            "{err}"
        );
        assert_eq!(err.matches("codesigning:generate").count(), 1, "{err}");
    }
}
