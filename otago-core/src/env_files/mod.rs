//! Environment variables from `.env*` files, resolved the way Expo resolves them.
//!
//! `otago deploy` must see the same variables that `npx expo export` bakes into the bundle,
//! so this module mirrors `@expo/env` 2.6 (the version Expo SDK 56 ships) rule for rule:
//!
//! * **Files.** For mode `m` (the `NODE_ENV`), highest priority first: `.env.m.local`,
//!   `.env.local` (left out when `m` is `test`), `.env.m`, `.env`; without a mode only
//!   `.env.local` and `.env` ([`env_file_names`]). A variable set in the process environment
//!   always wins over every file.
//! * **Parsing** is that of Node's `util.parseEnv` (Node 20.20, which `@expo/env` 2.x calls
//!   instead of the `dotenv` package): `KEY=value` with an optional `export ` prefix, `#` starts a
//!   comment anywhere in an *unquoted* value (`A=b#c` gives `b`), values in `'…'`, `"…"` or
//!   `` `…` `` keep `#` and may span lines, only double quotes turn `\n` into a newline, spaces
//!   (not tabs) around values are trimmed. Lines without `=` are skipped silently, and a line
//!   that starts with `=` ends the file, as in Node.
//! * **Expansion** is `@expo/env`'s port of `dotenv-expand` 11.0.7, run once over the merged
//!   file variables: `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR-default}`, `\$` for a
//!   literal dollar. Process variables are looked up first, then the merged file variables, so
//!   `${X}` in `.env` sees the value of `X` from a higher-priority file.
//! * **Refused keys.** Variables that change how tools run (`NODE_OPTIONS`, `PATH`, `LD_*`, …)
//!   are refused in any file, and per-machine ones (`ANDROID_HOME`, proxies, …) outside
//!   `.local` files, unless listed in `EXPO_UNSAFE_DOTENV_KEYS`; `BABEL_ENV` is ignored.
//!
//! Deliberate differences: where JavaScript would overflow its stack (a reference cycle such as
//! `A=$B`, `B=$A`) this returns [`Error::EnvFile`](crate::Error::EnvFile); JavaScript
//! prototype names such as `$constructor` expand as unset variables.

mod expand;
mod keys;
mod parse;

use std::collections::{BTreeMap, HashMap};

use self::expand::Expander;
use self::keys::{KeyPolicy, KeyVerdict, refusal_error};
use self::parse::{JsObject, is_js_space, node_parse_env};
use crate::Result;

/// The modes `@expo/env` knows; any other mode works but Expo warns about it.
pub const KNOWN_MODES: [&str; 3] = ["development", "test", "production"];

/// The `.env*` file names to look for in the project root for a mode, highest priority first.
///
/// `None` or an empty mode (no `NODE_ENV`) gives `.env.local` and `.env` only.
#[must_use]
pub fn env_file_names(mode: Option<&str>) -> Vec<String> {
    let Some(mode) = mode.filter(|mode| !mode.is_empty()) else {
        return vec![".env.local".to_owned(), ".env".to_owned()];
    };
    let mut names = vec![format!(".env.{mode}.local")];
    if mode != "test" {
        names.push(".env.local".to_owned());
    }
    names.push(format!(".env.{mode}"));
    names.push(".env".to_owned());
    names
}

/// Reads a boolean environment value the way `@expo/env` does (for `EXPO_NO_DOTENV`).
///
/// `true`/`false` in any case and `1`/`0` are accepted; anything else is `None`, which Expo
/// rejects with an error.
#[must_use]
pub fn parse_boolish(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The operating system Expo would run on; it decides which loader variables are refused
/// (`LD_*` on Linux, `DYLD_*` on macOS) and whether variable names ignore case (Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostOs {
    /// Linux.
    Linux,
    /// macOS.
    MacOs,
    /// Windows.
    Windows,
    /// Any other system.
    Other,
}

impl HostOs {
    /// Maps a Rust OS name, i.e. the value of `std::env::consts::OS`.
    #[must_use]
    pub fn from_rust_os(os: &str) -> Self {
        match os {
            "linux" => Self::Linux,
            "macos" => Self::MacOs,
            "windows" => Self::Windows,
            _ => Self::Other,
        }
    }
}

/// How to resolve: the mode, whether `.env*` files are read at all, and the host system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOptions {
    /// The mode, i.e. `NODE_ENV` (`production` for a deploy); `None` when unset.
    pub mode: Option<String>,
    /// `false` skips every file, like `EXPO_NO_DOTENV=1`: only process variables remain.
    pub load_files: bool,
    /// The system the deploy runs on.
    pub host_os: HostOs,
}

impl EnvOptions {
    /// Options that load files for `mode` on `host_os`.
    #[must_use]
    pub fn new(mode: Option<&str>, host_os: HostOs) -> Self {
        Self {
            mode: mode.map(str::to_owned),
            load_files: true,
            host_os,
        }
    }

    /// The file names to read, highest priority first; empty when files are not loaded.
    #[must_use]
    pub fn file_names(&self) -> Vec<String> {
        if self.load_files {
            env_file_names(self.mode.as_deref())
        } else {
            Vec::new()
        }
    }
}

/// One `KEY=value` read from a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvAssignment {
    /// The variable name.
    pub key: String,
    /// The value, unquoted but not yet expanded.
    pub value: String,
    /// One-based line of the `=` sign.
    pub line: usize,
}

/// Where a resolved variable came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnvSource {
    /// The process environment, which always wins.
    Process,
    /// A `.env*` file, by name.
    File(String),
    /// The `env` of an `eas.json` build profile, by profile name; lowest priority
    /// (see [`merge_eas_env`](crate::merge_eas_env)).
    EasBuildProfile(String),
}

/// A resolved variable: its value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The value, after expansion.
    pub value: String,
    /// Its origin.
    pub source: EnvSource,
}

/// The variables a deploy sees: process variables plus those the `.env*` files add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedEnv {
    /// Every variable by name.
    pub vars: BTreeMap<String, EnvVar>,
    /// The files that were read, highest priority first (Expo prints them as `env: load …`).
    pub files: Vec<String>,
}

impl ResolvedEnv {
    /// The value of a variable.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|var| var.value.as_str())
    }

    /// Where a variable came from.
    #[must_use]
    pub fn source(&self, key: &str) -> Option<&EnvSource> {
        self.vars.get(key).map(|var| &var.source)
    }

    /// Names of the variables taken from files (Expo prints them as `env: export …`).
    pub fn file_keys(&self) -> impl Iterator<Item = &str> {
        self.vars
            .iter()
            .filter(|(_, var)| matches!(var.source, EnvSource::File(_)))
            .map(|(key, _)| key.as_str())
    }

    /// Plain name → value pairs, e.g. for the environment of a child process.
    #[must_use]
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.vars
            .iter()
            .map(|(key, var)| (key.clone(), var.value.clone()))
            .collect()
    }
}

/// Parses the contents of one `.env` file as `@expo/env` 2.x does (Node's `util.parseEnv`,
/// then names trimmed), in the order Expo sees the keys. A repeated key keeps its last value.
#[must_use]
pub fn parse_env_file(contents: &str) -> Vec<EnvAssignment> {
    let mut object = JsObject::default();
    for (key, (value, line)) in node_parse_env(contents) {
        object.insert(key, (value, line));
    }
    let mut trimmed = JsObject::default();
    for (key, value) in object.into_ordered() {
        trimmed.insert(key.trim_matches(is_js_space).to_owned(), value);
    }
    trimmed
        .into_ordered()
        .into_iter()
        .map(|(key, (value, line))| EnvAssignment { key, value, line })
        .collect()
}

/// Resolves the variables a deploy sees.
///
/// `process_vars` is a snapshot of the process environment. `files` maps file names (as
/// returned by [`EnvOptions::file_names`]) to their contents; pass only files that exist and
/// can be read, since Expo silently skips missing, unreadable ones and directories. Names that
/// are not in the list for the mode are ignored.
///
/// # Errors
/// [`Error::EnvFile`](crate::Error::EnvFile) when a file sets a variable Expo refuses to load
/// from `.env` files, or when a value's `$` references form a cycle.
pub fn resolve_env(
    options: &EnvOptions,
    process_vars: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Result<ResolvedEnv> {
    let process = ProcessEnv::new(process_vars, options.host_os);
    let mut resolved = ResolvedEnv {
        vars: process_vars
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    EnvVar {
                        value: value.clone(),
                        source: EnvSource::Process,
                    },
                )
            })
            .collect(),
        files: Vec::new(),
    };
    let policy = KeyPolicy::new(process.get("EXPO_UNSAFE_DOTENV_KEYS"), options.host_os);

    // Lowest priority first, so that later files overwrite earlier values.
    let mut merged: JsObject<Origin> = JsObject::default();
    let mut refused = Vec::new();
    for name in options.file_names().iter().rev() {
        let Some(contents) = files.get(name) else {
            continue;
        };
        resolved.files.insert(0, name.clone());
        let local_file = name.ends_with(".local");
        for EnvAssignment { key, value, line } in parse_env_file(contents) {
            let origin = Origin {
                value,
                file: name.clone(),
                line,
            };
            match policy.check(&key, local_file) {
                KeyVerdict::Load => merged.insert(key, origin),
                KeyVerdict::Ignore => {}
                verdict => refused.push((verdict, key, origin)),
            }
        }
    }
    if let Some(error) = refusal_error(&refused) {
        return Err(error);
    }

    let expanded = Expander::new(&process).expand(merged.into_ordered())?;
    for (key, origin) in expanded {
        if process.get(&key).is_none() {
            let source = EnvSource::File(origin.file);
            resolved.vars.insert(
                key,
                EnvVar {
                    value: origin.value,
                    source,
                },
            );
        }
    }
    Ok(resolved)
}

/// A file variable: its value and where it was set.
#[derive(Debug, Clone)]
struct Origin {
    value: String,
    file: String,
    line: usize,
}

/// The process environment, looked up as JavaScript's `process.env` does.
struct ProcessEnv<'a> {
    vars: &'a BTreeMap<String, String>,
    /// Upper-cased names, on Windows where names ignore case.
    folded: Option<HashMap<String, &'a str>>,
}

impl<'a> ProcessEnv<'a> {
    fn new(vars: &'a BTreeMap<String, String>, host_os: HostOs) -> Self {
        let folded = (host_os == HostOs::Windows).then(|| {
            vars.iter()
                .map(|(key, value)| (key.to_uppercase(), value.as_str()))
                .collect()
        });
        Self { vars, folded }
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        match &self.folded {
            Some(folded) => folded.get(&key.to_uppercase()).copied(),
            None => self.vars.get(key).map(String::as_str),
        }
    }
}
