//! The one error type of `otago-core`.

use thiserror::Error;

/// Everything that can go wrong in `otago-core`.
///
/// Each variant names what is wrong and, where it helps, what to do about it.
/// Errors that come from a protocol request map to an HTTP status with [`Error::http_status`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The `metadata.json` of an export is not what `expo export` writes.
    #[error(
        "invalid export metadata: {reason}; re-run `npx expo export` and point at its output folder"
    )]
    InvalidExport {
        /// What is wrong with it.
        reason: String,
    },
    /// A path in an export is absolute or escapes the export folder.
    #[error("unsafe path `{path}` in the export: paths must stay inside the export folder")]
    UnsafePath {
        /// The offending path, as written in `metadata.json`.
        path: String,
    },
    /// An asset key or file extension that clients refuse as a file name.
    #[error(
        "unsafe asset file name `{name}`: keys and extensions must not be empty, `.`, `..` or contain `/`, `\\` or NUL"
    )]
    UnsafeAssetName {
        /// The offending key plus extension.
        name: String,
    },
    /// A manifest that does not have the shape the protocol requires.
    #[error("invalid manifest: {reason}")]
    InvalidManifest {
        /// What is wrong with it.
        reason: String,
    },
    /// A protocol request header is missing, malformed or too large.
    #[error("bad `{header}` header: {problem}")]
    BadHeader {
        /// The header's lowercase name.
        header: &'static str,
        /// What is wrong and what the client should send instead.
        problem: String,
        /// The HTTP status this maps to (400, 406 or 431).
        status: u16,
    },
    /// The manifest endpoint was called with a method other than GET.
    #[error("method {method} is not allowed: the manifest endpoint answers GET only")]
    MethodNotAllowed {
        /// The method the client used.
        method: String,
    },
    /// The answer due is a directive but the client accepts only a single JSON body.
    #[error("the answer is a directive, which needs `multipart/mixed` in `accept`")]
    DirectiveNeedsMultipart,
    /// The answer due is a `rollBackToEmbedded` directive but the client speaks protocol v0,
    /// which has no directives: it keeps running what it runs.
    #[error(
        "this runtime version and platform were rolled back to the update embedded in the app, a directive that protocol v0 (no `expo-protocol-version` header) cannot carry; the app keeps running the update it has"
    )]
    RollbackNeedsProtocolV1,
    /// The client asked for a signature under a key id the update was not signed with.
    #[error(
        "the client expects a signature with keyid `{expected}` but {available}; sign the update with that key"
    )]
    SignatureUnavailable {
        /// The key id from `expo-expect-signature`.
        expected: String,
        /// What the server has instead.
        available: String,
    },
    /// A release change breaks a rule: a rollout in progress, a lower percentage, a standby
    /// revert that does not match its control.
    #[error("{reason}")]
    Release {
        /// What rule, and what to do.
        reason: String,
    },
    /// A v0 client asked and there is no manifest to give it.
    #[error("no update is published for this runtime version and platform")]
    NoUpdate,
    /// A private key or public key could not be read.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate could not be read or does not meet the client's requirements.
    #[error("invalid certificate: {reason}")]
    InvalidCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// Signing, generating keys or building a certificate failed.
    #[error("signing failed: {reason}")]
    Signing {
        /// What went wrong.
        reason: String,
    },
    /// A signature does not verify over the given bytes.
    #[error("signature does not verify: {reason}")]
    SignatureMismatch {
        /// Why it does not verify.
        reason: String,
    },
    /// The runtime version cannot be resolved from the app config.
    #[error("cannot resolve the runtime version: {reason}")]
    RuntimeVersion {
        /// What is missing or unsupported.
        reason: String,
    },
    /// An `.env` file line could not be parsed.
    #[error("{file}:{line}: {reason}")]
    EnvFile {
        /// The file's name, e.g. `.env.production`.
        file: String,
        /// One-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// `eas.json` is malformed or names a profile it does not have.
    #[error("eas.json: {reason}")]
    EasJson {
        /// What is wrong.
        reason: String,
    },
    /// The app config (app.json / `expo config` output) is malformed.
    #[error("app config: {reason}")]
    AppConfig {
        /// What is wrong.
        reason: String,
    },
    /// A bundle patch could not be made, or does not apply.
    #[error("bundle patch: {reason}")]
    Patch {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The HTTP status a protocol endpoint answers with for this error.
    ///
    /// Request errors map as the conformance checklist says (400, 405, 406, 431; a directive
    /// due to a v0 client is 406, as the protocol asks for an incompatible protocol version);
    /// [`Error::NoUpdate`] is 404; everything else is a bad request (400), since the
    /// core only ever sees data that a caller handed in.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadHeader { status, .. } => *status,
            Self::MethodNotAllowed { .. } => 405,
            Self::DirectiveNeedsMultipart | Self::RollbackNeedsProtocolV1 => 406,
            Self::NoUpdate => 404,
            Self::Release { .. } => 409,
            _ => 400,
        }
    }
}

/// Shorthand for results whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
