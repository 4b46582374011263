//! The runtime version an update targets, resolved from the app config.
//!
//! Mirrors `@expo/config-plugins` 56 (`utils/Updates.ts`) and `expo-updates`'
//! `resolveRuntimeVersionAsync`: `ios.runtimeVersion` / `android.runtimeVersion` beat the
//! top-level `runtimeVersion`; each may be a string or `{"policy": …}`:
//!
//! | policy | runtime version |
//! | --- | --- |
//! | a string | the string itself (`file:fingerprint` is reserved) |
//! | `appVersion` | `ios.version` / `android.version`, else `version` |
//! | `nativeVersion` | `version(buildNumber)` on iOS, `version(versionCode)` on Android |
//! | `sdkVersion` | `exposdk:<sdkVersion>` |
//! | `fingerprint` | a hash only Expo's tooling computes: [`RuntimeVersion::NeedsFingerprint`] |
//!
//! Where Expo silently assumes a default (`version` `1.0.0`, `buildNumber` `1`, `versionCode`
//! `1`), this returns an error naming the missing field instead, so a deploy never targets a
//! runtime version nobody wrote down. Bare projects accept only a string or `fingerprint`.

use serde_json::Value;

use crate::{Error, Platform, Result, expo_config};

/// The literal that native builds read as "use the fingerprint file"; not a runtime version.
const FINGERPRINT_SENTINEL: &str = "file:fingerprint";

/// Whether the native projects are generated from the app config or checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Workflow {
    /// Continuous native generation (`npx expo prebuild`): policies are allowed.
    #[default]
    Managed,
    /// Checked-in `ios/` or `android/` projects: only a string or `fingerprint`.
    Bare,
}

/// How the app config asks for a runtime version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuntimeVersionPolicy {
    /// A fixed string.
    Literal(String),
    /// `{"policy": "appVersion"}`.
    AppVersion,
    /// `{"policy": "nativeVersion"}`.
    NativeVersion,
    /// `{"policy": "sdkVersion"}`.
    SdkVersion,
    /// `{"policy": "fingerprint"}`.
    Fingerprint,
}

/// A resolved runtime version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuntimeVersion {
    /// The runtime version string.
    Resolved(String),
    /// The `fingerprint` policy: the hash of the native project, which only Expo's tooling
    /// computes. Run `npx expo-updates fingerprint:generate --platform <ios|android>` (its
    /// `hash`), or `npx expo-updates runtimeversion:resolve --platform <ios|android>`.
    NeedsFingerprint,
}

impl RuntimeVersion {
    /// The string, unless a fingerprint is still needed.
    #[must_use]
    pub fn as_resolved(&self) -> Option<&str> {
        match self {
            Self::Resolved(version) => Some(version),
            Self::NeedsFingerprint => None,
        }
    }
}

/// The runtime version setting that applies to `platform`, or `None` when there is none.
///
/// `config` is the `expo` object of app.json or the output of `npx expo config --json`; a whole
/// app.json (with its top-level `expo` key) is unwrapped.
///
/// # Errors
/// [`Error::RuntimeVersion`] when the setting is neither a string nor a known policy.
pub fn runtime_version_policy(
    config: &Value,
    platform: Platform,
) -> Result<Option<RuntimeVersionPolicy>> {
    let config = expo_config(config);
    let per_platform = config
        .get(platform.as_str())
        .and_then(|section| section.get("runtimeVersion"));
    let (setting, key) = match per_platform {
        Some(setting) if !setting.is_null() => {
            (setting, format!("{}.runtimeVersion", platform.as_str()))
        }
        _ => match config.get("runtimeVersion") {
            Some(setting) => (setting, "runtimeVersion".to_owned()),
            None => return Ok(None),
        },
    };
    match setting {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::String(version) if version.is_empty() => Ok(None),
        Value::String(version) if version == FINGERPRINT_SENTINEL => Err(runtime(format!(
            "`{key}` is \"{FINGERPRINT_SENTINEL}\", a value reserved for native builds; \
             use {{\"policy\": \"fingerprint\"}} instead"
        ))),
        Value::String(version) => Ok(Some(RuntimeVersionPolicy::Literal(version.clone()))),
        Value::Number(number) if number.as_f64() == Some(0.0) => Ok(None),
        Value::Object(object) => match object.get("policy").and_then(Value::as_str) {
            Some("appVersion") => Ok(Some(RuntimeVersionPolicy::AppVersion)),
            Some("nativeVersion") => Ok(Some(RuntimeVersionPolicy::NativeVersion)),
            Some("sdkVersion") => Ok(Some(RuntimeVersionPolicy::SdkVersion)),
            Some("fingerprint") => Ok(Some(RuntimeVersionPolicy::Fingerprint)),
            Some(other) => Err(runtime(format!(
                "`{key}.policy` is \"{other}\", which is not a policy; use \"appVersion\", \
                 \"nativeVersion\", \"sdkVersion\" or \"fingerprint\""
            ))),
            None => Err(runtime(format!(
                "`{key}` is an object without a \"policy\"; write {{\"policy\": \"appVersion\"}} \
                 or a string such as \"1.0.0\""
            ))),
        },
        other => Err(runtime(format!(
            "`{key}` is {other}; it must be a string such as \"1.0.0\" or an object such as \
             {{\"policy\": \"appVersion\"}}"
        ))),
    }
}

/// Resolves the runtime version of `platform`.
///
/// `config` is as for [`runtime_version_policy`]. The `sdkVersion` policy needs `sdkVersion`,
/// which app.json usually lacks and `npx expo config --json` adds.
///
/// # Errors
/// [`Error::RuntimeVersion`] when no runtime version is set, the setting is invalid, a field
/// the policy needs is missing, or a bare project uses a policy other than `fingerprint`.
pub fn resolve_runtime_version(
    config: &Value,
    platform: Platform,
    workflow: Workflow,
) -> Result<RuntimeVersion> {
    let config = expo_config(config);
    let policy = runtime_version_policy(config, platform)?.ok_or_else(|| {
        runtime(format!(
            "no runtime version is set for {platform}; add \"runtimeVersion\": {{\"policy\": \"appVersion\"}} \
             (or a string such as \"1.0.0\") to the `expo` object of app.json, or set `{platform}.runtimeVersion`"
        ))
    })?;
    let version = match policy {
        RuntimeVersionPolicy::Literal(version) => return Ok(RuntimeVersion::Resolved(version)),
        RuntimeVersionPolicy::Fingerprint => return Ok(RuntimeVersion::NeedsFingerprint),
        _ if workflow == Workflow::Bare => {
            return Err(runtime(
                "runtime version policies other than \"fingerprint\" do not work in a bare project \
                 (checked-in native folders); set the runtime version as a string such as \"1.0.0\""
                    .to_owned(),
            ));
        }
        RuntimeVersionPolicy::AppVersion => app_version(config, platform)?,
        RuntimeVersionPolicy::NativeVersion => native_version(config, platform)?,
        RuntimeVersionPolicy::SdkVersion => format!(
            "exposdk:{}",
            text_field(config, &["sdkVersion"])?.ok_or_else(|| runtime(
                "the sdkVersion policy needs `sdkVersion`, which app.json usually lacks; pass the output \
                 of `npx expo config --json` (it adds the installed SDK version) or set `sdkVersion`"
                    .to_owned()
            ))?
        ),
    };
    Ok(RuntimeVersion::Resolved(version))
}

/// `appVersion`: the platform's `version`, else the top-level one.
fn app_version(config: &Value, platform: Platform) -> Result<String> {
    let own = text_field(config, &[platform.as_str(), "version"])?;
    own.or(text_field(config, &["version"])?)
        .ok_or_else(|| missing("appVersion", "version", "\"1.0.0\""))
}

/// `nativeVersion`: `version(buildNumber)` on iOS, `version(versionCode)` on Android.
fn native_version(config: &Value, platform: Platform) -> Result<String> {
    let own = text_field(config, &[platform.as_str(), "version"])?;
    let version = own
        .or(text_field(config, &["version"])?)
        .ok_or_else(|| missing("nativeVersion", "version", "\"1.0.0\""))?;
    let (field, expo_default) = match platform {
        Platform::Ios => ("buildNumber", "\"1\""),
        Platform::Android => ("versionCode", "1"),
    };
    let build = text_field(config, &[platform.as_str(), field])?.ok_or_else(|| {
        missing(
            "nativeVersion",
            &format!("{platform}.{field}"),
            expo_default,
        )
    })?;
    Ok(format!("{version}({build})"))
}

/// The string or number at `path` as text; `None` when absent, null or empty.
fn text_field(config: &Value, path: &[&str]) -> Result<Option<String>> {
    let value = path.iter().try_fold(config, |value, key| value.get(*key));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone()).filter(|text| !text.is_empty())),
        Some(Value::Number(number)) => Ok(Some(format_number(number))),
        Some(other) => Err(runtime(format!(
            "`{}` is {other}; it must be a string",
            path.join(".")
        ))),
    }
}

/// A number as JavaScript's template strings print it (`45`, `45.5`).
fn format_number(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 1e15 => {
            format!("{float:.0}")
        }
        _ => number.to_string(),
    }
}

fn missing(policy: &str, field: &str, expo_default: &str) -> Error {
    runtime(format!(
        "the {policy} policy needs `{field}`, which the app config does not set (Expo would assume \
         {expo_default}); add it to the `expo` object of app.json"
    ))
}

fn runtime(reason: String) -> Error {
    Error::RuntimeVersion { reason }
}
