//! The app's folder: its config, `.env*` files, package versions, git ignores, and the Expo
//! tools run inside it. Only I/O lives here; every decision is otago-core's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use otago_core::{
    EasJson, EnvOptions, HostOs, Platform, ResolvedEnv, RuntimeVersion, Workflow, merge_eas_env,
    parse_app_config, resolve_runtime_version,
};
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::settings::EnvFileSettings;

/// How many trailing lines of a failed command's stderr an error shows.
const STDERR_TAIL_LINES: usize = 20;

/// The app config and where it came from.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The private config (the `expo` object).
    pub config: Value,
    /// Where it came from, for messages: a file path or `npx expo config --json`.
    pub source: String,
}

impl AppConfig {
    /// `updates.codeSigningCertificate`, if set.
    #[must_use]
    pub fn certificate_path(&self) -> Option<&str> {
        self.config
            .pointer("/updates/codeSigningCertificate")
            .and_then(Value::as_str)
            .filter(|path| !path.is_empty())
    }

    /// `updates.codeSigningMetadata.keyid`, else the client's default `root`.
    #[must_use]
    pub fn keyid(&self) -> &str {
        self.config
            .pointer("/updates/codeSigningMetadata/keyid")
            .and_then(Value::as_str)
            .filter(|keyid| !keyid.is_empty())
            .unwrap_or(otago_core::DEFAULT_KEY_ID)
    }

    /// `updates.url`, if set.
    #[must_use]
    pub fn update_url(&self) -> Option<&str> {
        self.config.pointer("/updates/url").and_then(Value::as_str)
    }

    /// The public config (what `npx expo config --json --type public` prints), which manifests
    /// carry as `extra.expoClient`: the private config without `_internal`, `hooks`,
    /// `ios.config`, `android.config`, `updates.codeSigningCertificate` and
    /// `updates.codeSigningMetadata`, as `@expo/config` strips them.
    #[must_use]
    pub fn public_config(&self) -> Value {
        let mut public = self.config.clone();
        if let Some(object) = public.as_object_mut() {
            object.remove("_internal");
            object.remove("hooks");
            for platform in ["ios", "android"] {
                if let Some(section) = object.get_mut(platform).and_then(Value::as_object_mut) {
                    section.remove("config");
                }
            }
            if let Some(updates) = object.get_mut("updates").and_then(Value::as_object_mut) {
                updates.remove("codeSigningCertificate");
                updates.remove("codeSigningMetadata");
            }
        }
        public
    }
}

/// Reads `--config-json FILE` (the output of `npx expo config --json`, or an app.json).
///
/// # Errors
/// [`CliError::Io`] or [`CliError::Core`] when the file cannot be read or parsed.
pub fn read_config_json(path: &Path) -> Result<AppConfig> {
    let text = std::fs::read_to_string(path).map_err(CliError::io("read", path))?;
    let config =
        parse_app_config(&text).map_err(CliError::core(format!("reading {}", path.display())))?;
    Ok(AppConfig {
        config,
        source: path.display().to_string(),
    })
}

/// Reads the static `app.json` of the app without running Node.
///
/// # Errors
/// [`CliError::AppConfig`] when there is no app.json (pointing at `--config-json` for a
/// dynamic `app.config.js`), or the errors of [`read_config_json`].
pub fn read_static_config(app_dir: &Path) -> Result<AppConfig> {
    let app_json = app_dir.join("app.json");
    if app_json.is_file() {
        return read_config_json(&app_json);
    }
    let dynamic = [
        "app.config.js",
        "app.config.ts",
        "app.config.mjs",
        "app.config.cjs",
    ]
    .into_iter()
    .find(|name| app_dir.join(name).is_file());
    let reason = match dynamic {
        Some(name) => format!(
            "{} has {name} but no app.json, and a dynamic config needs Node: run `npx expo config --json > config.json` and pass --config-json config.json, or deploy without --input-dir",
            app_dir.display()
        ),
        None => format!(
            "no app.json in {}; pass --app-dir with the app's folder or --config-json with the output of `npx expo config --json`",
            app_dir.display()
        ),
    };
    Err(CliError::AppConfig { reason })
}

/// Runs `npx expo config --json` in the app folder and parses its output.
///
/// # Errors
/// [`CliError::Command`] when the command fails, [`CliError::Core`] for unparsable output.
pub async fn evaluate_config(app_dir: &Path, env: &BTreeMap<String, String>) -> Result<AppConfig> {
    let stdout = run_npx(
        app_dir,
        &["expo", "config", "--json"],
        env,
        "install the app's dependencies (`npm install`) and check that `npx expo config` works, or pass --config-json",
    )
    .await?;
    let config = parse_app_config(&stdout).map_err(CliError::core(
        "reading the output of `npx expo config --json`",
    ))?;
    Ok(AppConfig {
        config,
        source: "npx expo config --json".to_owned(),
    })
}

/// The environment the export and config see: the process environment, the `.env*` files of
/// the mode (unless turned off) and the eas.json build profile's `env` below them.
#[derive(Debug, Clone)]
pub struct LoadedEnv {
    /// What core resolved.
    pub resolved: ResolvedEnv,
    /// The eas.json profile whose `env` was merged, if any.
    pub eas_profile: Option<String>,
    /// Something worth telling the user (e.g. a missing build profile).
    pub warnings: Vec<String>,
}

impl LoadedEnv {
    /// The full environment of an Expo child process: everything resolved, the mode as
    /// `NODE_ENV`, and `EXPO_NO_DOTENV=1` so that Expo does not load the files a second time
    /// (and config and bundle see the same values).
    #[must_use]
    pub fn child_env(&self, mode: &str) -> BTreeMap<String, String> {
        let mut env = self.resolved.to_map();
        env.insert("NODE_ENV".to_owned(), mode.to_owned());
        env.insert("EXPO_NO_DOTENV".to_owned(), "1".to_owned());
        env
    }

    /// Names of the variables taken from files and the build profile.
    #[must_use]
    pub fn loaded_keys(&self) -> Vec<String> {
        self.resolved
            .vars
            .iter()
            .filter(|(_, var)| !matches!(var.source, otago_core::EnvSource::Process))
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// Loads the environment for a deploy or a check of `app_dir`.
///
/// `platform` picks the eas.json profile's per-platform `env` when only one platform is
/// exported.
///
/// # Errors
/// [`CliError::Core`] for a `.env` file or eas.json that core refuses.
pub fn load_env(
    app_dir: &Path,
    settings: &EnvFileSettings,
    platform: Option<Platform>,
) -> Result<LoadedEnv> {
    let mut options = EnvOptions::new(
        Some(&settings.mode),
        HostOs::from_rust_os(std::env::consts::OS),
    );
    options.load_files = settings.load;
    let mut files = BTreeMap::new();
    for name in options.file_names() {
        let path = app_dir.join(&name);
        // Expo skips missing, unreadable files and folders silently; so do we.
        if let Ok(contents) = std::fs::read_to_string(&path) {
            files.insert(name, contents);
        }
    }
    let mut resolved = otago_core::resolve_env(&options, &settings.process_env, &files).map_err(
        CliError::core(format!("loading the .env files of {}", app_dir.display())),
    )?;
    let mut warnings = Vec::new();
    let mut eas_profile = None;
    let eas_path = app_dir.join("eas.json");
    if settings.load && !settings.eas_profile.is_empty() && eas_path.is_file() {
        let text = std::fs::read_to_string(&eas_path).map_err(CliError::io("read", &eas_path))?;
        let eas = EasJson::parse(&text)
            .map_err(CliError::core(format!("reading {}", eas_path.display())))?;
        if eas
            .build_profile_names()
            .any(|name| name == settings.eas_profile)
        {
            let profile = eas
                .build_profile(&settings.eas_profile)
                .map_err(CliError::core(format!("reading {}", eas_path.display())))?;
            resolved = merge_eas_env(resolved, &profile, platform);
            eas_profile = Some(settings.eas_profile.clone());
        } else {
            warnings.push(format!(
                "eas.json has no build profile `{}`; its env is not loaded (set EAS_PROFILE or --eas-profile to one of: {})",
                settings.eas_profile,
                eas.build_profile_names().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(LoadedEnv {
        resolved,
        eas_profile,
        warnings,
    })
}

/// The workflow of a platform, as Expo detects it: bare when the native project exists in the
/// app folder and is not git-ignored.
#[must_use]
pub fn detect_workflow(app_dir: &Path, platform: Platform) -> Workflow {
    let markers: Vec<PathBuf> = match platform {
        Platform::Android => vec![
            app_dir.join("android/app/build.gradle"),
            app_dir.join("android/app/build.gradle.kts"),
            app_dir.join("android/app/src/main/AndroidManifest.xml"),
        ],
        Platform::Ios => std::fs::read_dir(app_dir.join("ios"))
            .map(|entries| {
                entries
                    .filter_map(std::result::Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "xcodeproj"))
                    .map(|path| path.join("project.pbxproj"))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let bare = markers.iter().any(|marker| {
        marker.is_file()
            && marker
                .strip_prefix(app_dir)
                .is_ok_and(|relative| is_git_ignored(app_dir, relative) != Some(true))
    });
    if bare {
        Workflow::Bare
    } else {
        Workflow::Managed
    }
}

/// Resolves the runtime version of `platform`: the policy through otago-core, and the
/// `fingerprint` policy through `npx expo-updates runtimeversion:resolve`.
///
/// # Errors
/// [`CliError::Core`] when the config's runtime version cannot be resolved,
/// [`CliError::Command`] when the fingerprint command fails.
pub async fn resolve_runtime_version_for(
    app_dir: &Path,
    config: &AppConfig,
    platform: Platform,
    env: &BTreeMap<String, String>,
) -> Result<String> {
    let workflow = detect_workflow(app_dir, platform);
    let resolved = resolve_runtime_version(&config.config, platform, workflow).map_err(
        CliError::core(format!(
            "resolving the runtime version of {platform} from {}",
            config.source
        )),
    )?;
    match resolved {
        RuntimeVersion::Resolved(version) => Ok(version),
        RuntimeVersion::NeedsFingerprint => {
            let workflow = match workflow {
                Workflow::Bare => "generic",
                Workflow::Managed => "managed",
            };
            let stdout = run_npx(
                app_dir,
                &["expo-updates", "runtimeversion:resolve", "--platform", platform.as_str(), "--workflow", workflow],
                env,
                "the fingerprint policy needs expo-updates 0.25.4 or newer installed (`npm install`); or pass --runtime-version",
            )
            .await?;
            fingerprint_from_output(&stdout).ok_or_else(|| CliError::Command {
                command: format!("npx expo-updates runtimeversion:resolve --platform {platform}"),
                problem: format!(
                    "printed no runtimeVersion: {}",
                    stdout.trim().chars().take(200).collect::<String>()
                ),
                hint: "pass --runtime-version to set it yourself".to_owned(),
            })
        }
    }
}

/// The `runtimeVersion` of the JSON line `runtimeversion:resolve` prints.
fn fingerprint_from_output(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|line| {
        let value: Value = serde_json::from_str(line.trim()).ok()?;
        value
            .get("runtimeVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(str::to_owned)
    })
}

/// Runs `npx ARGS...` in `dir` with exactly `env`; returns stdout.
///
/// # Errors
/// [`CliError::Command`] when npx cannot be started or exits with a failure, with the tail of
/// its stderr and `hint`.
pub async fn run_npx(
    dir: &Path,
    args: &[&str],
    env: &BTreeMap<String, String>,
    hint: &str,
) -> Result<String> {
    let command = format!("npx {}", args.join(" "));
    let output = tokio::process::Command::new("npx")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|err| CliError::Command {
            command: command.clone(),
            problem: format!("could not be started: {err}"),
            hint: "install Node.js (it brings npx), or use --input-dir and --config-json to deploy without Node".to_owned(),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n  ");
        return Err(CliError::Command {
            command,
            problem: format!(
                "failed ({}) in {}:\n  {tail}\n",
                output.status,
                dir.display()
            ),
            hint: hint.to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The `version` in a package.json, if the file exists and has one.
#[must_use]
pub fn package_version(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("version")?.as_str().map(str::to_owned)
}

/// The app's package.json, if readable.
#[must_use]
pub fn package_json(app_dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(app_dir.join("package.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `relative` (a path inside `app_dir`) is git-ignored: `git check-ignore` when the
/// folder is in a git work tree, else the patterns of `app_dir/.gitignore`. `None` when
/// neither can tell (no repository and no .gitignore).
#[must_use]
pub fn is_git_ignored(app_dir: &Path, relative: &Path) -> Option<bool> {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(app_dir)
        .args(["check-ignore", "-q", "--"])
        .arg(relative)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status.ok().and_then(|s| s.code()) {
        Some(0) => return Some(true),
        Some(1) => return Some(false),
        _ => {}
    }
    let gitignore = std::fs::read_to_string(app_dir.join(".gitignore")).ok()?;
    Some(gitignore_matches(
        &gitignore,
        &relative.to_string_lossy().replace('\\', "/"),
    ))
}

/// Whether a `.gitignore`'s patterns ignore `path` (relative, `/`-separated). Supports
/// comments, `!` negation, a leading or inner `/` anchoring, a trailing `/` for folders (which
/// then ignores what is inside), `*`, `?` and `**`.
#[must_use]
pub fn gitignore_matches(gitignore: &str, path: &str) -> bool {
    let mut ignored = false;
    for line in gitignore.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let dir_only = pattern.ends_with('/');
        let pattern = pattern.trim_end_matches('/');
        let anchored = pattern.contains('/');
        let pattern = pattern.trim_start_matches('/');
        let segments: Vec<&str> = path.split('/').collect();
        // A pattern matches the path or one of its parent folders.
        let matches = (1..=segments.len()).any(|len| {
            let is_dir = len < segments.len();
            if dir_only && !is_dir {
                return false;
            }
            let candidate = segments[..len].join("/");
            if anchored {
                glob_match(pattern, &candidate)
            } else {
                glob_match(pattern, segments[len - 1])
            }
        });
        if matches {
            ignored = !negated;
        }
    }
    ignored
}

/// Glob matching: `*` and `?` within a path segment, `**` across segments.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) if rest.first() == Some(&b'*') => {
                let rest = rest[1..].strip_prefix(b"/").unwrap_or(&rest[1..]);
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some((b'*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => t.first().is_some_and(|&c| c != b'/') && go(rest, &t[1..]),
            Some((&c, rest)) => t.first() == Some(&c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_config_drops_private_keys() {
        let config = AppConfig {
            config: serde_json::json!({
                "name": "A",
                "_internal": {"projectRoot": "/x"},
                "ios": {"config": {"googleMapsApiKey": "k"}, "buildNumber": "1"},
                "updates": {"url": "http://x", "codeSigningCertificate": "./c.pem", "codeSigningMetadata": {"keyid": "main"}}
            }),
            source: "test".into(),
        };
        assert_eq!(config.keyid(), "main");
        assert_eq!(config.certificate_path(), Some("./c.pem"));
        let public = config.public_config();
        assert_eq!(
            public,
            serde_json::json!({"name": "A", "ios": {"buildNumber": "1"}, "updates": {"url": "http://x"}})
        );
    }

    #[test]
    fn gitignore_patterns_match_like_git() {
        let ignore = "# comment\nnode_modules/\n.env*.local\n/dist\n*.pem\n!public.pem\n";
        assert!(gitignore_matches(ignore, ".env.local"));
        assert!(gitignore_matches(ignore, ".env.production.local"));
        assert!(!gitignore_matches(ignore, ".env.production"));
        assert!(gitignore_matches(ignore, "node_modules/x/package.json"));
        assert!(!gitignore_matches(ignore, "node_modules"));
        assert!(gitignore_matches(ignore, "dist/metadata.json"));
        assert!(!gitignore_matches(ignore, "src/dist"));
        assert!(gitignore_matches(ignore, "keys/private-key.pem"));
        assert!(!gitignore_matches(ignore, "public.pem"));
        assert!(gitignore_matches("**/secret", "a/b/secret"));
    }

    #[test]
    fn fingerprints_are_read_from_the_last_json_line() {
        let out = "warning\n{\"runtimeVersion\":\"abc123\",\"fingerprintSources\":null,\"workflow\":\"managed\"}\n";
        assert_eq!(fingerprint_from_output(out).as_deref(), Some("abc123"));
        assert_eq!(fingerprint_from_output("nothing"), None);
    }
}
