//! The one error type of the CLI and the exit codes it maps to.
//!
//! Every variant says what is wrong and what to do about it; `main` prints it with `{:#}` and
//! exits with [`CliError::exit_code`].

use std::path::PathBuf;

use thiserror::Error;

/// The exit codes of `otago`. Scripts may rely on them.
///
/// | code | meaning |
/// | --- | --- |
/// | 0 | success |
/// | 1 | `otago doctor` found at least one failing check |
/// | 2 | the command line is wrong (unknown flag, missing argument, bad value) |
/// | 3 | local input is wrong: settings, app config, export, key or certificate files |
/// | 4 | the Otago server cannot be reached |
/// | 5 | the server refused the credentials (missing, invalid or revoked key; no access) |
/// | 6 | the server refused the request (validation, conflict, not found) |
/// | 7 | the server failed (5xx) or answered something unexpected |
/// | 8 | an Expo tool (`npx expo ...`) failed or could not be started |
/// | 9 | reading or writing a local file failed |
pub enum OtagoExitCode {}

impl OtagoExitCode {
    /// Success.
    pub const OK: u8 = 0;
    /// `otago doctor` found at least one failing check.
    pub const CHECKS_FAILED: u8 = 1;
    /// The command line is wrong (clap uses this code too).
    pub const USAGE: u8 = 2;
    /// Local input (settings, app config, export, key or certificate) is wrong.
    pub const INVALID_INPUT: u8 = 3;
    /// The Otago server cannot be reached.
    pub const UNREACHABLE: u8 = 4;
    /// The server refused the credentials.
    pub const AUTH: u8 = 5;
    /// The server refused the request.
    pub const REJECTED: u8 = 6;
    /// The server failed or answered something unexpected.
    pub const SERVER_ERROR: u8 = 7;
    /// An Expo tool failed or could not be started.
    pub const EXTERNAL_COMMAND: u8 = 8;
    /// Reading or writing a local file failed.
    pub const IO: u8 = 9;
}

/// Everything that can make an `otago` command fail.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// A required setting has no value.
    #[error("{what} is not set: {fix}")]
    MissingSetting {
        /// What is missing, e.g. "the API key".
        what: &'static str,
        /// How to give it, e.g. "set OTAGO_API_KEY or pass --api-key".
        fix: String,
    },
    /// A setting has a value that cannot be used.
    #[error("{name} `{value}` is not valid: {reason}")]
    InvalidSetting {
        /// The flag or variable, e.g. `OTAGO_SERVER_URL`.
        name: String,
        /// The value given.
        value: String,
        /// Why it is refused and what to give instead.
        reason: String,
    },
    /// The app's config (app.json, `expo config` output) cannot be used.
    #[error("app config: {reason}")]
    AppConfig {
        /// What is wrong and what to do.
        reason: String,
    },
    /// otago-core refused an input (export, manifest, key, certificate, env file...).
    #[error("{context}: {source}")]
    Core {
        /// What was being done, e.g. "reading dist/metadata.json".
        context: String,
        /// The core's error, which says what is wrong.
        #[source]
        source: otago_core::Error,
    },
    /// Code signing is set up inconsistently.
    #[error("code signing: {reason}")]
    Signing {
        /// What is wrong and what to do.
        reason: String,
    },
    /// A local file or folder cannot be read or written.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. "read".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An output folder that must be empty is not.
    #[error(
        "`{}` is not empty: choose an empty or missing folder so that no existing key is overwritten",
        path.display()
    )]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// The server cannot be reached at all.
    #[error(
        "cannot reach the Otago server at {url}: {reason}; check OTAGO_SERVER_URL (or --server-url) and that the server is running"
    )]
    Unreachable {
        /// The URL that was tried.
        url: String,
        /// What failed (connection refused, timeout, DNS...).
        reason: String,
    },
    /// The server's TLS certificate is not trusted by this machine.
    #[error(
        "the TLS certificate of the Otago server at {url} is not trusted: {problem}. Trusted here: {stores}. If the server uses a private (company) certificate authority, point SSL_CERT_FILE at that authority's PEM certificate (or add it to the system store); if the host name is wrong, check OTAGO_SERVER_URL (or --server-url)"
    )]
    UntrustedCertificate {
        /// The URL that was tried.
        url: String,
        /// Why the certificate was refused.
        problem: String,
        /// The certificate stores that were tried.
        stores: String,
    },
    /// The server answered with an error.
    #[error(
        "the server refused {method} {path} ({status}): {message}{}",
        hint_suffix(hint)
    )]
    Api {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The `error.code` of the body, e.g. `hash_mismatch`.
        code: String,
        /// The `error.message` of the body.
        message: String,
        /// The `error.hint` of the body, or ours.
        hint: String,
    },
    /// The server answered something this CLI does not understand.
    #[error(
        "unexpected answer from the server to {what}: {reason}; check that OTAGO_SERVER_URL points at an Otago server of a matching version"
    )]
    BadResponse {
        /// The request, e.g. "GET /api/v1/projects".
        what: String,
        /// What is unexpected.
        reason: String,
    },
    /// An external command (`npx expo ...`) failed.
    #[error("`{command}` {problem}{}", hint_suffix(hint))]
    Command {
        /// The command line.
        command: String,
        /// What went wrong, e.g. "failed (exit status: 1)" and the last lines of its stderr.
        problem: String,
        /// What to do.
        hint: String,
    },
    /// `otago doctor` found failing checks.
    #[error(
        "{failed} of {total} checks failed; fix what the ✗ lines say and run `otago doctor` again"
    )]
    ChecksFailed {
        /// How many checks failed.
        failed: usize,
        /// How many checks ran.
        total: usize,
    },
    /// The command line is incomplete in a way clap cannot tell, e.g. `projects delete`
    /// without `--yes` where there is no terminal to ask on.
    #[error("{reason}")]
    Usage {
        /// What is missing and what to pass.
        reason: String,
    },
    /// Nothing to do or an impossible request, e.g. rolling out a group that does not exist.
    #[error("{reason}")]
    Invalid {
        /// What is wrong and what to do.
        reason: String,
    },
    /// Writing to the terminal or a pipe failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

impl CliError {
    /// The process exit code for this error (see [`OtagoExitCode`]).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::MissingSetting { .. }
            | Self::InvalidSetting { .. }
            | Self::AppConfig { .. }
            | Self::Core { .. }
            | Self::Signing { .. }
            | Self::NotEmpty { .. }
            | Self::Invalid { .. } => OtagoExitCode::INVALID_INPUT,
            Self::Usage { .. } => OtagoExitCode::USAGE,
            Self::Io { .. } | Self::Output(_) => OtagoExitCode::IO,
            Self::Unreachable { .. } | Self::UntrustedCertificate { .. } => {
                OtagoExitCode::UNREACHABLE
            }
            Self::Api { status, .. } => match status {
                401 | 403 => OtagoExitCode::AUTH,
                500.. => OtagoExitCode::SERVER_ERROR,
                _ => OtagoExitCode::REJECTED,
            },
            Self::BadResponse { .. } => OtagoExitCode::SERVER_ERROR,
            Self::Command { .. } => OtagoExitCode::EXTERNAL_COMMAND,
            Self::ChecksFailed { .. } => OtagoExitCode::CHECKS_FAILED,
        }
    }

    /// A short snake_case name of the kind of error, for `--json` output.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::MissingSetting { .. } => "missing_setting",
            Self::InvalidSetting { .. } => "invalid_setting",
            Self::AppConfig { .. } => "app_config",
            Self::Core { .. } => "invalid_input",
            Self::Signing { .. } => "signing",
            Self::Io { .. } => "io",
            Self::NotEmpty { .. } => "not_empty",
            Self::Unreachable { .. } => "unreachable",
            Self::UntrustedCertificate { .. } => "certificate_not_trusted",
            Self::Api { code, .. } => code,
            Self::BadResponse { .. } => "bad_response",
            Self::Command { .. } => "command_failed",
            Self::ChecksFailed { .. } => "checks_failed",
            Self::Usage { .. } => "usage",
            Self::Invalid { .. } => "invalid",
            Self::Output(_) => "output",
        }
    }

    /// Whether the error is a closed pipe on output (e.g. `otago updates list | head`), which
    /// is not a failure.
    #[must_use]
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(err) if err.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Wraps an error of otago-core with what was being done.
    pub fn core(context: impl Into<String>) -> impl FnOnce(otago_core::Error) -> Self {
        let context = context.into();
        move |source| Self::Core { context, source }
    }

    /// Wraps an I/O error with the action and path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Shorthand for results whose error is [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_table() {
        let api = |status| CliError::Api {
            method: "GET".into(),
            path: "/".into(),
            status,
            code: "x".into(),
            message: "m".into(),
            hint: String::new(),
        };
        assert_eq!(api(401).exit_code(), OtagoExitCode::AUTH);
        assert_eq!(api(403).exit_code(), OtagoExitCode::AUTH);
        assert_eq!(api(409).exit_code(), OtagoExitCode::REJECTED);
        assert_eq!(api(503).exit_code(), OtagoExitCode::SERVER_ERROR);
        assert_eq!(api(409).to_string(), "the server refused GET / (409): m");
        let unreachable = CliError::Unreachable {
            url: "http://x".into(),
            reason: "refused".into(),
        };
        assert_eq!(unreachable.exit_code(), OtagoExitCode::UNREACHABLE);
        let usage = CliError::Usage {
            reason: "pass --yes".into(),
        };
        assert_eq!(usage.exit_code(), OtagoExitCode::USAGE);
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let err = CliError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(err.is_broken_pipe());
    }
}
