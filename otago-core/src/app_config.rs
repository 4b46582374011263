//! Checks of an app config for `otago doctor`.
//!
//! The checks cover what a build bakes in and a deploy relies on: the `updates` block (URL,
//! `enabled`, `checkAutomatically`, `fallbackToCacheTimeout`, code signing metadata) and a
//! usable runtime version on every platform. Each problem is a [`Finding`] with a stable code,
//! so that scripts can match on it.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Platform, Result, Workflow, resolve_runtime_version, runtime_version_policy};

/// The only signature algorithm expo-updates knows.
const CODE_SIGNING_ALG: &str = "rsa-v1_5-sha256";
/// The values `updates.checkAutomatically` may take.
const CHECK_AUTOMATICALLY: [&str; 4] = ["ON_LOAD", "ON_ERROR_RECOVERY", "WIFI_ONLY", "NEVER"];
/// Upper bound of `updates.fallbackToCacheTimeout`, in milliseconds.
const MAX_FALLBACK_TO_CACHE_TIMEOUT: u64 = 300_000;

/// Returns the `expo` object of a whole app.json, or `config` itself when it has none
/// (already the `expo` object, or the output of `npx expo config --json`).
#[must_use]
pub fn expo_config(config: &Value) -> &Value {
    match config.get("expo") {
        Some(expo) if expo.is_object() => expo,
        _ => config,
    }
}

/// Parses app.json or the output of `npx expo config --json`, unwrapping the `expo` key.
///
/// # Errors
/// [`Error::AppConfig`] when the text is not JSON or not an object.
pub fn parse_app_config(contents: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(contents).map_err(|err| Error::AppConfig {
        reason: format!(
            "not valid JSON ({err}); fix app.json or pass the output of `npx expo config --json`"
        ),
    })?;
    let config = expo_config(&value);
    if !config.is_object() {
        return Err(Error::AppConfig {
            reason: "the config must be a JSON object".to_owned(),
        });
    }
    Ok(config.clone())
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Updates will not reach the app, or the build will not work as intended.
    Error,
    /// Works, but probably not as intended.
    Warning,
}

/// What a finding is about; [`FindingCode::as_str`] is its stable machine-readable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FindingCode {
    /// `updates.url` is not set.
    UpdatesUrlMissing,
    /// `updates.url` is not an absolute `http(s)` URL.
    UpdatesUrlInvalid,
    /// `updates.url` is not the URL of this Otago project.
    UpdatesUrlMismatch,
    /// `updates.url` still points at EAS Update (`u.expo.dev`).
    UpdatesUrlExpoHosted,
    /// `updates.enabled` is `false`.
    UpdatesDisabled,
    /// `updates.enabled` is not a boolean.
    UpdatesEnabledInvalid,
    /// `updates.checkAutomatically` is not one of the four values expo-updates knows.
    CheckAutomaticallyInvalid,
    /// `updates.fallbackToCacheTimeout` is not an integer from 0 to 300000.
    FallbackToCacheTimeoutInvalid,
    /// `updates.codeSigningCertificate` is not a non-empty path.
    CodeSigningCertificateInvalid,
    /// A certificate is set but `updates.codeSigningMetadata` is not.
    CodeSigningMetadataMissing,
    /// `updates.codeSigningMetadata` is not an object.
    CodeSigningMetadataInvalid,
    /// `updates.codeSigningMetadata` is set without a certificate, so it has no effect.
    CodeSigningMetadataUnused,
    /// `codeSigningMetadata.keyid` is not set; clients assume `root`.
    CodeSigningKeyidMissing,
    /// `codeSigningMetadata.keyid` is not a non-empty string.
    CodeSigningKeyidInvalid,
    /// `codeSigningMetadata.alg` is not `rsa-v1_5-sha256`.
    CodeSigningAlgInvalid,
    /// No runtime version is set for a platform.
    RuntimeVersionMissing,
    /// The runtime version setting cannot be resolved.
    RuntimeVersionInvalid,
}

impl FindingCode {
    /// The stable name, e.g. `updates-url-mismatch`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpdatesUrlMissing => "updates-url-missing",
            Self::UpdatesUrlInvalid => "updates-url-invalid",
            Self::UpdatesUrlMismatch => "updates-url-mismatch",
            Self::UpdatesUrlExpoHosted => "updates-url-expo-hosted",
            Self::UpdatesDisabled => "updates-disabled",
            Self::UpdatesEnabledInvalid => "updates-enabled-invalid",
            Self::CheckAutomaticallyInvalid => "check-automatically-invalid",
            Self::FallbackToCacheTimeoutInvalid => "fallback-to-cache-timeout-invalid",
            Self::CodeSigningCertificateInvalid => "code-signing-certificate-invalid",
            Self::CodeSigningMetadataMissing => "code-signing-metadata-missing",
            Self::CodeSigningMetadataInvalid => "code-signing-metadata-invalid",
            Self::CodeSigningMetadataUnused => "code-signing-metadata-unused",
            Self::CodeSigningKeyidMissing => "code-signing-keyid-missing",
            Self::CodeSigningKeyidInvalid => "code-signing-keyid-invalid",
            Self::CodeSigningAlgInvalid => "code-signing-alg-invalid",
            Self::RuntimeVersionMissing => "runtime-version-missing",
            Self::RuntimeVersionInvalid => "runtime-version-invalid",
        }
    }

    /// How bad findings with this code are.
    #[must_use]
    pub fn severity(self) -> Severity {
        match self {
            Self::UpdatesUrlExpoHosted
            | Self::CodeSigningMetadataMissing
            | Self::CodeSigningMetadataUnused
            | Self::CodeSigningKeyidMissing => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in the app config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is about.
    pub code: FindingCode,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl Finding {
    fn new(code: FindingCode, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Checks an app config: the `expo` object of app.json, a whole app.json, or the output of
/// `npx expo config --json`. With `expected_update_url`, `updates.url` must equal it.
///
/// An empty list means nothing to report. The runtime version is checked for the platforms in
/// `platforms` (as `expo config` fills it in), or for both when that key is absent, and must
/// suit `workflow` (a bare project takes only a string or the `fingerprint` policy).
///
/// # Errors
/// [`Error::AppConfig`] when the config or its `updates` is not a JSON object.
pub fn check_app_config(
    config: &Value,
    expected_update_url: Option<&str>,
    workflow: Workflow,
) -> Result<Vec<Finding>> {
    let config = expo_config(config);
    if !config.is_object() {
        return Err(Error::AppConfig {
            reason: "the config must be a JSON object".to_owned(),
        });
    }
    let empty = Map::new();
    let updates = match config.get("updates") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(updates)) => updates,
        Some(_) => {
            return Err(Error::AppConfig {
                reason: "`updates` must be an object; see the Expo docs for its keys".to_owned(),
            });
        }
    };
    let mut findings = Vec::new();
    check_url(updates, expected_update_url, &mut findings);
    check_behaviour(updates, &mut findings);
    check_code_signing(updates, &mut findings);
    check_runtime_version(config, workflow, &mut findings);
    Ok(findings)
}

fn check_url(updates: &Map<String, Value>, expected: Option<&str>, findings: &mut Vec<Finding>) {
    let example = expected.unwrap_or("https://<your otago server>/<manifest path>");
    let url = match present(updates, "url") {
        None => {
            return findings.push(Finding::new(
                FindingCode::UpdatesUrlMissing,
                "`updates.url` is not set, so builds do not know where to ask for updates",
                format!(
                    "set \"updates\": {{\"url\": \"{example}\"}} in app.json and rebuild the app"
                ),
            ));
        }
        Some(Value::String(url)) if is_absolute_http_url(url) => url,
        Some(other) => {
            return findings.push(Finding::new(
                FindingCode::UpdatesUrlInvalid,
                format!("`updates.url` is {other}, which is not an absolute http(s) URL"),
                format!("set `updates.url` to the full manifest URL, e.g. \"{example}\""),
            ));
        }
    };
    match expected {
        Some(expected) if url != expected => findings.push(Finding::new(
            FindingCode::UpdatesUrlMismatch,
            format!("`updates.url` is \"{url}\" but this project's manifest URL is \"{expected}\""),
            format!("set `updates.url` to \"{expected}\" and rebuild the app; builds with the old URL never see these updates"),
        )),
        None if url_host(url).eq_ignore_ascii_case("u.expo.dev") => findings.push(Finding::new(
            FindingCode::UpdatesUrlExpoHosted,
            format!("`updates.url` is \"{url}\", which is EAS Update, not an Otago server"),
            "point `updates.url` at your Otago server's manifest URL and rebuild the app",
        )),
        _ => {}
    }
}

fn check_behaviour(updates: &Map<String, Value>, findings: &mut Vec<Finding>) {
    match present(updates, "enabled") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => findings.push(Finding::new(
            FindingCode::UpdatesDisabled,
            "`updates.enabled` is false, so builds never download updates",
            "remove `updates.enabled` or set it to true, then rebuild the app",
        )),
        Some(other) => findings.push(Finding::new(
            FindingCode::UpdatesEnabledInvalid,
            format!("`updates.enabled` is {other}, not true or false"),
            "set `updates.enabled` to true (or remove it)",
        )),
    }

    if let Some(value) = present(updates, "checkAutomatically") {
        let text = value.as_str().unwrap_or_default();
        if !CHECK_AUTOMATICALLY.contains(&text) {
            let upper = text.to_ascii_uppercase();
            let suggestion = match upper.as_str() {
                "ALWAYS" => "ON_LOAD",
                "ERROR_RECOVERY_ONLY" => "ON_ERROR_RECOVERY",
                _ if upper.starts_with("ON_ERROR") => "ON_ERROR_RECOVERY",
                _ => CHECK_AUTOMATICALLY
                    .iter()
                    .find(|known| **known == upper)
                    .copied()
                    .unwrap_or("ON_LOAD"),
            };
            findings.push(Finding::new(
                FindingCode::CheckAutomaticallyInvalid,
                format!(
                    "`updates.checkAutomatically` is {value}, which expo-updates does not know; builds then check on every launch"
                ),
                format!(
                    "use \"{suggestion}\" (allowed: {})",
                    CHECK_AUTOMATICALLY.map(|known| format!("\"{known}\"")).join(", ")
                ),
            ));
        }
    }

    if let Some(value) = present(updates, "fallbackToCacheTimeout")
        && value
            .as_u64()
            .is_none_or(|millis| millis > MAX_FALLBACK_TO_CACHE_TIMEOUT)
    {
        findings.push(Finding::new(
            FindingCode::FallbackToCacheTimeoutInvalid,
            format!("`updates.fallbackToCacheTimeout` is {value}, outside 0–{MAX_FALLBACK_TO_CACHE_TIMEOUT} ms"),
            "set it to a whole number of milliseconds from 0 (launch the cached update at once) to 300000",
        ));
    }
}

fn check_code_signing(updates: &Map<String, Value>, findings: &mut Vec<Finding>) {
    let certificate = match present(updates, "codeSigningCertificate") {
        None => false,
        Some(Value::String(path)) if !path.is_empty() => true,
        Some(other) => {
            findings.push(Finding::new(
                FindingCode::CodeSigningCertificateInvalid,
                format!("`updates.codeSigningCertificate` is {other}, not a path to a PEM certificate"),
                "set it to the project-relative path of the certificate, e.g. \"./certs/certificate.pem\"",
            ));
            true
        }
    };
    let metadata = match (present(updates, "codeSigningMetadata"), certificate) {
        (None, false) => return,
        (None, true) => {
            return findings.push(Finding::new(
                FindingCode::CodeSigningMetadataMissing,
                "`updates.codeSigningCertificate` is set without `updates.codeSigningMetadata`; clients then expect keyid \"root\"",
                format!("add \"codeSigningMetadata\": {{\"keyid\": \"<your key id>\", \"alg\": \"{CODE_SIGNING_ALG}\"}}"),
            ));
        }
        (Some(_), false) => {
            return findings.push(Finding::new(
                FindingCode::CodeSigningMetadataUnused,
                "`updates.codeSigningMetadata` is set but `updates.codeSigningCertificate` is not, so updates are not verified",
                "set `updates.codeSigningCertificate` to your certificate, or remove the metadata",
            ));
        }
        (Some(Value::Object(metadata)), true) => metadata,
        (Some(other), true) => {
            return findings.push(Finding::new(
                FindingCode::CodeSigningMetadataInvalid,
                format!("`updates.codeSigningMetadata` is {other}, not an object"),
                format!(
                    "write it as {{\"keyid\": \"<your key id>\", \"alg\": \"{CODE_SIGNING_ALG}\"}}"
                ),
            ));
        }
    };
    match present(metadata, "keyid") {
        None => findings.push(Finding::new(
            FindingCode::CodeSigningKeyidMissing,
            "`codeSigningMetadata.keyid` is not set; clients then expect keyid \"root\"",
            "set `keyid` to the key id you sign updates with",
        )),
        Some(Value::String(keyid)) if !keyid.is_empty() => {}
        Some(other) => findings.push(Finding::new(
            FindingCode::CodeSigningKeyidInvalid,
            format!("`codeSigningMetadata.keyid` is {other}, not a non-empty string"),
            "set `keyid` to the key id you sign updates with, e.g. \"main\"",
        )),
    }
    if let Some(alg) = present(metadata, "alg")
        && alg.as_str() != Some(CODE_SIGNING_ALG)
    {
        findings.push(Finding::new(
            FindingCode::CodeSigningAlgInvalid,
            format!("`codeSigningMetadata.alg` is {alg}; expo-updates only verifies \"{CODE_SIGNING_ALG}\""),
            format!("set `alg` to \"{CODE_SIGNING_ALG}\""),
        ));
    }
}

fn check_runtime_version(config: &Value, workflow: Workflow, findings: &mut Vec<Finding>) {
    let listed: Vec<Platform> = match config.get("platforms").and_then(Value::as_array) {
        Some(names) => Platform::ALL
            .into_iter()
            .filter(|platform| {
                names
                    .iter()
                    .any(|name| name.as_str() == Some(platform.as_str()))
            })
            .collect(),
        None => Platform::ALL.to_vec(),
    };
    // (code, message) → platforms, so that a problem shared by both is reported once.
    let mut problems: Vec<(FindingCode, String, Vec<Platform>)> = Vec::new();
    for platform in listed {
        let problem = match runtime_version_policy(config, platform) {
            Ok(None) => Some((FindingCode::RuntimeVersionMissing, String::new())),
            Ok(Some(_)) => resolve_runtime_version(config, platform, workflow)
                .err()
                .map(|err| (FindingCode::RuntimeVersionInvalid, reason_of(err))),
            Err(err) => Some((FindingCode::RuntimeVersionInvalid, reason_of(err))),
        };
        let Some((code, message)) = problem else {
            continue;
        };
        match problems
            .iter_mut()
            .find(|(seen, text, _)| *seen == code && *text == message)
        {
            Some((.., platforms)) => platforms.push(platform),
            None => problems.push((code, message, vec![platform])),
        }
    }
    for (code, message, platforms) in problems {
        let names = platforms
            .iter()
            .map(|platform| platform.as_str())
            .collect::<Vec<_>>()
            .join(" and ");
        findings.push(if code == FindingCode::RuntimeVersionMissing {
            Finding::new(
                code,
                format!("no runtime version is set for {names}, so updates cannot be matched to builds"),
                "add \"runtimeVersion\": {\"policy\": \"appVersion\"} (or a string such as \"1.0.0\") to the `expo` object \
                 of app.json, or set `ios.runtimeVersion` / `android.runtimeVersion`",
            )
        } else {
            Finding::new(
                code,
                format!("the runtime version for {names} cannot be resolved: {message}"),
                "see https://docs.expo.dev/eas-update/runtime-versions for the accepted forms",
            )
        });
    }
}

/// The value of `key` unless absent or `null`.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn reason_of(error: Error) -> String {
    match error {
        Error::RuntimeVersion { reason } => reason,
        other => other.to_string(),
    }
}

/// Whether `url` is `http://` or `https://` followed by a host, without whitespace.
fn is_absolute_http_url(url: &str) -> bool {
    let has_scheme = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    });
    has_scheme
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && !url_host(url).is_empty()
}

/// The host of an `http(s)` URL (no user info, no port), or `""`.
fn url_host(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.starts_with('[') {
        return host_port
            .split_once(']')
            .map_or("", |(host, _)| host.trim_start_matches('['));
    }
    host_port.split(':').next().unwrap_or_default()
}
