//! Refused keys: `@expo/env` 2.6 `constants.ts`.

use std::collections::BTreeSet;

use super::{HostOs, Origin};
use crate::Error;

/// Keys refused in every `.env` file (compared upper-cased).
#[rustfmt::skip]
const BLOCKED_KEYS: &[&str] = &[
    "__EXPO_ENV_LOADED", "__EXPO_CONFIG_MODE", "EXPO_NO_DOTENV", "EXPO_UNSAFE_DOTENV_KEYS",
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH",
    "DYLD_FRAMEWORK_PATH", "DYLD_FALLBACK_LIBRARY_PATH", "DYLD_FALLBACK_FRAMEWORK_PATH",
    "SSLKEYLOGFILE", "NODE_PATH", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED", "NODE_COMPILE_CACHE", "NPM_CONFIG_NODE_OPTIONS",
    "NODE_REPL_EXTERNAL_MODULE", "BUN_RUNTIME_TRANSPILER_CACHE_PATH", "BASH_ENV", "ENV",
    "ZDOTDIR", "IFS", "CDPATH", "PROMPT_COMMAND", "SHELLOPTS", "BASHOPTS", "GIT_SSH",
    "GIT_SSH_COMMAND", "GPG_TTY", "SSH_ASKPASS", "GIT_ASKPASS", "GIT_EXEC_PATH", "PERL5OPT",
    "PERL5LIB", "PERLLIB", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONINSPECT",
    "PYTHONUSERBASE", "PYTHONEXECUTABLE", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "RUBYOPT",
    "RUBYLIB", "BUNDLE_GEMFILE", "RUBYSHELL", "RUBYPATH", "GEM_HOME", "GEM_PATH", "BUNDLE_PATH",
    "_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "HOME", "USERPROFILE",
    "HOMEDRIVE", "HOMEPATH", "TMPDIR", "TMP", "TEMP", "USER", "SHELL", "PATH", "PATHEXT", "LANG",
    "PWD", "OLDPWD", "TERMINFO", "SYSTEMROOT", "EDITOR", "VISUAL", "PAGER", "MANPAGER",
    "XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_DIRS", "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME", "XDG_BIN_HOME", "DIRENV_DIR", "DIRENV_FILE", "DIRENV_WATCHES",
    "DIRENV_DIFF", "NPM_CONFIG_REGISTRY", "NPM_CONFIG_PREFIX", "NPM_CONFIG_USERCONFIG",
    "NPM_CONFIG_GLOBALCONFIG", "NPM_CONFIG_CACHE", "YARN_REGISTRY", "YARN_CACHE_FOLDER",
    "YARN_GLOBAL_FOLDER", "PNPM_HOME", "BUN_INSTALL", "BUN_INSTALL_BIN", "COCOAPODS_HOME",
    "CMAKE_HOME",
];

/// Per-machine keys allowed only in `.local` files (compared upper-cased).
#[rustfmt::skip]
const LOCAL_ONLY_KEYS: &[&str] = &[
    "ANDROID_HOME", "ANDROID_SDK_ROOT", "ANDROID_NDK_HOME", "ANDROID_NDK_ROOT", "ANDROID_AVD_HOME",
    "ANDROID_EMULATOR_HOME", "GRADLE_HOME", "GRADLE_USER_HOME", "KOTLIN_HOME", "JAVA_HOME",
    "JDK_HOME", "JRE_HOME", "DEVELOPER_DIR", "XCODE_DEVELOPER_DIR_PATH", "COCOAPODS_DISABLE_STATS",
    "FASTLANE_USER", "FASTLANE_PASSWORD", "FASTLANE_SESSION",
    "FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD", "NDK_HOME", "NDK_ROOT", "BROWSER",
    "BROWSER_ARGS", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
    "SSL_CRT_FILE", "SSL_KEY_FILE", "REACT_NATIVE_PACKAGER_HOSTNAME",
    "REACT_NATIVE_OVERRIDE_HERMES_DIR",
];

/// What happens to a key read from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum KeyVerdict {
    Blocked,
    LocalOnly,
    Ignore,
    Load,
}

/// The key rules, with the process's `EXPO_UNSAFE_DOTENV_KEYS` opt-ins.
pub(super) struct KeyPolicy {
    allowed: BTreeSet<String>,
    host_os: HostOs,
}

impl KeyPolicy {
    pub(super) fn new(unsafe_keys: Option<&str>, host_os: HostOs) -> Self {
        let allowed = unsafe_keys
            .unwrap_or_default()
            .split(',')
            .filter(|name| !name.is_empty())
            .map(str::to_uppercase)
            .collect();
        Self { allowed, host_os }
    }

    pub(super) fn check(&self, key: &str, local_file: bool) -> KeyVerdict {
        let upper = key.to_uppercase();
        let opted_in = self.allowed.contains(&upper);
        let loader = match self.host_os {
            HostOs::Linux => upper.starts_with("LD_"),
            HostOs::MacOs => upper.starts_with("DYLD_"),
            HostOs::Windows | HostOs::Other => false,
        };
        if upper == "BABEL_ENV" {
            KeyVerdict::Ignore
        } else if loader
            || (!(opted_in && upper != "__EXPO_CONFIG_MODE")
                && BLOCKED_KEYS.contains(&upper.as_str()))
        {
            KeyVerdict::Blocked
        } else if !local_file && !opted_in && LOCAL_ONLY_KEYS.contains(&upper.as_str()) {
            KeyVerdict::LocalOnly
        } else {
            KeyVerdict::Load
        }
    }
}

/// The error for refused keys: the first one found, with all of them listed.
pub(super) fn refusal_error(refused: &[(KeyVerdict, String, Origin)]) -> Option<Error> {
    let worst = refused.iter().map(|(verdict, ..)| *verdict).min()?;
    let of_kind: Vec<_> = refused
        .iter()
        .filter(|(verdict, ..)| *verdict == worst)
        .collect();
    let (_, first_key, first) = of_kind.first()?;
    let listed: Vec<String> = of_kind
        .iter()
        .map(|(_, key, origin)| format!("{key} ({}:{})", origin.file, origin.line))
        .collect();
    let reason = if worst == KeyVerdict::Blocked {
        format!(
            "Expo refuses to load `{first_key}` from .env files because it changes how tools run \
             (refused: {}); remove it from the file, or allow it by setting \
             EXPO_UNSAFE_DOTENV_KEYS={first_key} in your shell",
            listed.join(", ")
        )
    } else {
        format!(
            "`{first_key}` is per-machine configuration that Expo only loads from .local env files \
             (refused: {}); move it to .env.local",
            listed.join(", ")
        )
    };
    Some(Error::EnvFile {
        file: first.file.clone(),
        line: first.line,
        reason,
    })
}
