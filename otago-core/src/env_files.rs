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
//! `A=$B`, `B=$A`) this returns [`Error::EnvFile`]; JavaScript prototype names such as
//! `$constructor` expand as unset variables.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::{Error, Result};

/// The modes `@expo/env` knows; any other mode works but Expo warns about it.
pub const KNOWN_MODES: [&str; 3] = ["development", "test", "production"];

/// Deepest chain of `$` references followed before giving up.
const MAX_EXPANSION_DEPTH: usize = 64;
/// Most bytes expansion may produce for all variables together.
const MAX_EXPANSION_BYTES: usize = 16 << 20;

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
/// [`Error::EnvFile`] when a file sets a variable Expo refuses to load from `.env` files, or
/// when a value's `$` references form a cycle.
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

// ---------------------------------------------------------------------------------------------
// Parsing: Node 20.20's `Dotenv::ParseContent`.

/// Parses like Node's `util.parseEnv`: raw (untrimmed) keys in byte order, with value and line.
fn node_parse_env(contents: &str) -> BTreeMap<String, (String, usize)> {
    let text: String = contents.chars().filter(|&c| c != '\r').collect();
    let newlines: Vec<usize> = text.match_indices('\n').map(|(at, _)| at).collect();
    let line_of = |at: usize| newlines.partition_point(|&newline| newline < at) + 1;
    let mut store = BTreeMap::new();
    let (mut start, mut end) = trim_spaces(&text, 0, text.len());

    while start < end {
        let content = &text[start..end];
        if content.starts_with(['\n', '#'])
            && let Some(newline) = content.find('\n')
        {
            start += newline + 1;
            continue;
        }
        let Some(equal) = content.find('=') else {
            match content.find('\n') {
                Some(newline) => start += newline + 1,
                None => start = end,
            }
            continue;
        };
        let line = line_of(start + equal);
        let (key_start, key_end) = trim_spaces(&text, start, start + equal);
        (start, end) = trim_spaces(&text, start + equal + 1, end);
        let key = match &text[key_start..key_end] {
            // Node 20.20 trims a key of only spaces one byte too far and keeps the newline
            // before it, which `@expo/env` then trims to an empty name.
            "" if equal > 0 => "\n",
            key => key,
        };
        if key.is_empty() {
            break;
        }
        let key = key.strip_prefix("export ").unwrap_or(key).to_owned();
        let content = &text[start..end];
        let Some(&first) = content.as_bytes().first() else {
            store.insert(key, (String::new(), line));
            break;
        };

        if matches!(first, b'"' | b'\'' | b'`') {
            if let Some(close) = content[1..].find(char::from(first)).map(|at| at + 1) {
                let inner = &content[1..close];
                let value = if first == b'"' {
                    inner.replace("\\n", "\n")
                } else {
                    inner.to_owned()
                };
                store.insert(key, (value, line));
                match content[close + 1..].find('\n') {
                    Some(newline) => start += close + 1 + newline + 1,
                    None => start = end,
                }
            } else if let Some(newline) = content.find('\n') {
                // No closing quote: the rest of the line, opening quote included.
                store.insert(key, (content[..newline].to_owned(), line));
                start += newline + 1;
            }
            // No closing quote and no newline: nothing is stored and the loop looks for
            // another `=` in the same text, as Node does.
            continue;
        }

        let (value, next) = match content.find('\n') {
            Some(newline) => (&content[..newline], start + newline + 1),
            None => (content, end),
        };
        let value = value.find('#').map_or(value, |hash| &value[..hash]);
        store.insert(key, (value.trim_matches(' ').to_owned(), line));
        start = next;
    }
    store
}

/// Narrows `start..end` of `text` past leading and trailing spaces (not other whitespace).
fn trim_spaces(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    while start < end && bytes.get(start) == Some(&b' ') {
        start += 1;
    }
    while end > start && bytes.get(end - 1) == Some(&b' ') {
        end -= 1;
    }
    (start, end)
}

/// Whitespace as JavaScript's `String.prototype.trim` sees it.
fn is_js_space(c: char) -> bool {
    const WIDE: [char; 8] = [
        '\u{a0}', '\u{1680}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        '\u{feff}',
    ];
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{2000}'..='\u{200a}'
    ) || WIDE.contains(&c)
}

/// A JavaScript object's key order: array indices ascending, then other keys by first insertion.
struct JsObject<V> {
    entries: Vec<(String, V)>,
    positions: HashMap<String, usize>,
}

impl<V> Default for JsObject<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            positions: HashMap::new(),
        }
    }
}

impl<V> JsObject<V> {
    fn insert(&mut self, key: String, value: V) {
        if let Some(entry) = self
            .positions
            .get(&key)
            .and_then(|&at| self.entries.get_mut(at))
        {
            entry.1 = value;
        } else {
            self.positions.insert(key.clone(), self.entries.len());
            self.entries.push((key, value));
        }
    }

    fn into_ordered(mut self) -> Vec<(String, V)> {
        self.entries
            .sort_by_key(|(key, _)| array_index(key).map_or((1, 0), |index| (0, index)));
        self.entries
    }
}

/// The value of a key that JavaScript treats as an array index (`0` to `2^32 - 2`).
fn array_index(key: &str) -> Option<u32> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
    if !canonical || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&index| index != u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Refused keys: `@expo/env` 2.6 `constants.ts`.

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
enum KeyVerdict {
    Blocked,
    LocalOnly,
    Ignore,
    Load,
}

/// The key rules, with the process's `EXPO_UNSAFE_DOTENV_KEYS` opt-ins.
struct KeyPolicy {
    allowed: BTreeSet<String>,
    host_os: HostOs,
}

impl KeyPolicy {
    fn new(unsafe_keys: Option<&str>, host_os: HostOs) -> Self {
        let allowed = unsafe_keys
            .unwrap_or_default()
            .split(',')
            .filter(|name| !name.is_empty())
            .map(str::to_uppercase)
            .collect();
        Self { allowed, host_os }
    }

    fn check(&self, key: &str, local_file: bool) -> KeyVerdict {
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
fn refusal_error(refused: &[(KeyVerdict, String, Origin)]) -> Option<Error> {
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

// ---------------------------------------------------------------------------------------------
// Expansion: `@expo/env` 2.6 `parse.ts`, a port of `dotenv-expand` 11.0.7.

/// Why expansion stopped.
enum Runaway {
    TooDeep,
    TooLarge,
}

/// Expands merged file variables against the process environment.
struct Expander<'p, 'a> {
    process: &'p ProcessEnv<'a>,
    default_program: Vec<Op>,
    budget: usize,
}

impl<'p, 'a> Expander<'p, 'a> {
    fn new(process: &'p ProcessEnv<'a>) -> Self {
        Self {
            process,
            default_program: default_value_program(),
            budget: MAX_EXPANSION_BYTES,
        }
    }

    /// Expands every variable in order; earlier results are visible to later ones.
    fn expand(mut self, input: Vec<(String, Origin)>) -> Result<Vec<(String, Origin)>> {
        let mut output = input.clone();
        let positions: HashMap<String, usize> = input
            .iter()
            .enumerate()
            .map(|(at, (key, _))| (key.clone(), at))
            .collect();
        for (at, (key, origin)) in input.iter().enumerate() {
            let raw = &origin.value;
            let value = match self.process.get(key) {
                Some(process_value) if process_value != raw.as_str() => Ok(raw.clone()),
                _ => self.interpolate(raw, key, &output, &positions, 0),
            };
            let value = value.map_err(|runaway| expansion_error(key, origin, &runaway))?;
            if let Some((_, slot)) = output.get_mut(at) {
                slot.value = value.replace("\\$", "$");
            }
        }
        Ok(output)
    }

    /// Replaces every `$` reference in `value`; `source_key` is the variable being expanded.
    fn interpolate(
        &mut self,
        value: &str,
        source_key: &str,
        env: &[(String, Origin)],
        positions: &HashMap<String, usize>,
        depth: usize,
    ) -> Result<String, Runaway> {
        if depth > MAX_EXPANSION_DEPTH {
            return Err(Runaway::TooDeep);
        }
        let lookup = |key: &str| {
            positions
                .get(key)
                .and_then(|&at| env.get(at))
                .map(|(_, o)| o.value.as_str())
        };
        let mut result = String::new();
        let mut done = 0;
        while let Some(found) = find_reference(value, done, &self.default_program) {
            self.spend(found.start - done)?;
            result.push_str(&value[done..found.start]);
            let replacement = if found.escaped {
                value[found.start + 1..found.end].to_owned()
            } else if let Some(process_value) =
                self.process.get(found.key).filter(|v| !v.is_empty())
            {
                if lookup(found.key) == Some(process_value) {
                    process_value.to_owned()
                } else {
                    self.interpolate(process_value, found.key, env, positions, depth + 1)?
                }
            } else if let Some(file_value) =
                lookup(found.key).filter(|v| !v.is_empty() && found.key != source_key)
            {
                self.interpolate(file_value, found.key, env, positions, depth + 1)?
            } else {
                match found.default {
                    Some(default) if default.starts_with('$') => {
                        self.interpolate(default, found.key, env, positions, depth + 1)?
                    }
                    Some(default) => default.to_owned(),
                    None => String::new(),
                }
            };
            self.spend(replacement.len())?;
            result.push_str(&replacement);
            done = found.end;
        }
        self.spend(value.len() - done)?;
        result.push_str(&value[done..]);
        Ok(result)
    }

    fn spend(&mut self, bytes: usize) -> Result<(), Runaway> {
        self.budget = self.budget.checked_sub(bytes).ok_or(Runaway::TooLarge)?;
        Ok(())
    }
}

fn expansion_error(key: &str, origin: &Origin, runaway: &Runaway) -> Error {
    let reason = match runaway {
        Runaway::TooDeep => format!(
            "cannot expand `{key}`: its `$` references form a cycle or nest more than \
             {MAX_EXPANSION_DEPTH} deep (like A=$B with B=$A); break the cycle, or write `\\$` for a literal dollar"
        ),
        Runaway::TooLarge => format!(
            "cannot expand `{key}`: the expanded variables exceed {} MiB; check for references \
             that repeat each other (like A=$B$B with B=$C$C)",
            MAX_EXPANSION_BYTES >> 20
        ),
    };
    Error::EnvFile {
        file: origin.file.clone(),
        line: origin.line,
        reason,
    }
}

/// One match of dotenv-expand's
/// `/(\\)?(\$)(?!\()(\{?)([\w.]+)(?::?-(DEFAULT))?(\}?)/g` in a value.
struct Reference<'v> {
    start: usize,
    end: usize,
    escaped: bool,
    key: &'v str,
    default: Option<&'v str>,
}

/// The next reference at or after byte `from`.
fn find_reference<'v>(
    value: &'v str,
    from: usize,
    default_program: &[Op],
) -> Option<Reference<'v>> {
    let bytes = value.as_bytes();
    (from..bytes.len()).find_map(|start| {
        let (escaped, dollar) = match (bytes.get(start), bytes.get(start + 1)) {
            (Some(b'\\'), Some(b'$')) => (true, start + 1),
            (Some(b'$'), _) => (false, start),
            _ => return None,
        };
        let mut at = dollar + 1;
        if bytes.get(at) == Some(&b'(') {
            return None;
        }
        if bytes.get(at) == Some(&b'{') {
            at += 1;
        }
        let key_start = at;
        while bytes
            .get(at)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            at += 1;
        }
        if at == key_start {
            return None;
        }
        let key = value.get(key_start..at)?;
        let operator = match (bytes.get(at), bytes.get(at + 1)) {
            (Some(b':'), Some(b'-')) => Some(at + 2),
            (Some(b'-'), _) => Some(at + 1),
            _ => None,
        };
        let mut default = None;
        if let Some(default_start) = operator
            && let Some(default_end) = run_program(default_program, bytes, default_start)
        {
            default = value.get(default_start..default_end);
            at = default_end;
        }
        if bytes.get(at) == Some(&b'}') {
            at += 1;
        }
        Some(Reference {
            start,
            end: at,
            escaped,
            key,
            default,
        })
    })
}

/// An instruction of the tiny backtracking matcher for a default value.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Match this byte.
    Byte(u8),
    /// Match any byte but `}`.
    NotBrace,
    /// Try the first target, then the second.
    Split(usize, usize),
    /// Continue at the target.
    Jump(usize),
    /// Success.
    Match,
}

/// The default value pattern `(?:G3|[^}])+`, where `G1 = \$\{[^}]*\}` and
/// `Gn = \$\{(?:G(n-1)|[^}])*\}`: up to three levels of nested `${…}`.
fn default_value_program() -> Vec<Op> {
    let mut program = vec![Op::Split(0, 0)];
    let group = program.len();
    emit_group(&mut program, 3);
    let jump = program.len();
    program.push(Op::Jump(0));
    let single = program.len();
    program.push(Op::NotBrace);
    let repeat = program.len();
    program.extend([Op::Split(0, repeat + 1), Op::Match]);
    program[0] = Op::Split(group, single);
    program[jump] = Op::Jump(repeat);
    program[repeat] = Op::Split(0, repeat + 1);
    program
}

/// Appends `Gn` (see [`default_value_program`]).
fn emit_group(program: &mut Vec<Op>, level: usize) {
    program.extend([Op::Byte(b'$'), Op::Byte(b'{')]);
    let repeat = program.len();
    program.push(Op::Split(0, 0));
    let body = program.len();
    if level > 1 {
        let choice = program.len();
        program.push(Op::Split(0, 0));
        let nested = program.len();
        emit_group(program, level - 1);
        program.push(Op::Jump(repeat));
        let single = program.len();
        program.extend([Op::NotBrace, Op::Jump(repeat)]);
        program[choice] = Op::Split(nested, single);
    } else {
        program.extend([Op::NotBrace, Op::Jump(repeat)]);
    }
    let exit = program.len();
    program.push(Op::Byte(b'}'));
    program[repeat] = Op::Split(body, exit);
}

/// Runs `program` on `bytes` from `start`, exploring alternatives in the order a JavaScript
/// regex does; returns where the first successful path ends. States already explored are not
/// explored again, which keeps the run linear in `program.len() × bytes.len()`.
fn run_program(program: &[Op], bytes: &[u8], start: usize) -> Option<usize> {
    let width = bytes.len() + 1;
    let mut seen = vec![0u64; (program.len() * width).div_ceil(64)];
    let mut stack = vec![(0usize, start)];
    while let Some((mut pc, mut at)) = stack.pop() {
        loop {
            let state = pc * width + at;
            let (word, bit) = (state / 64, 1u64 << (state % 64));
            match seen.get_mut(word) {
                Some(slot) if *slot & bit == 0 => *slot |= bit,
                _ => break,
            }
            match program.get(pc)? {
                Op::Byte(expected) if bytes.get(at) == Some(expected) => {
                    (pc, at) = (pc + 1, at + 1)
                }
                Op::NotBrace if bytes.get(at).is_some_and(|&b| b != b'}') => {
                    (pc, at) = (pc + 1, at + 1)
                }
                Op::Byte(_) | Op::NotBrace => break,
                Op::Split(first, second) => {
                    stack.push((*second, at));
                    pc = *first;
                }
                Op::Jump(target) => pc = *target,
                Op::Match => return Some(at),
            }
        }
    }
    None
}
