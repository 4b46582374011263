//! Code signing as expo-updates expects it: RSASSA-PKCS1-v1_5 over SHA-256.
//!
//! - [`SigningKey`] reads the server's private key (`private-key.pem`, PKCS#1 or PKCS#8 PEM) and
//!   signs the exact bytes of a manifest or directive part.
//! - [`SignatureHeader`] renders and parses the `expo-signature` header value
//!   `sig="<base64>", keyid="<id>", alg="rsa-v1_5-sha256"` (an RFC 8941 dictionary of strings).
//! - [`SigningCertificate`] reads the certificate embedded in the app (`certificate.pem`), verifies
//!   signatures with its public key, tells whether a private key belongs to it, and reports what the
//!   expo-updates client will refuse ([`CertificateReport`]).
//! - [`PublicKey`] verifies signatures with a bare SPKI public key (`public-key.pem`).
//! - [`generate_key_and_certificate`] makes the same three files as
//!   `npx expo-updates codesigning:generate`.
//!
//! Everything here is pure: the caller passes in the PEM text, the current time and the randomness.

mod certificate;
mod generate;
mod header;
mod key;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;

pub use certificate::{CertificateProblem, CertificateReport, SigningCertificate};
pub use generate::{GeneratedSigningFiles, generate_key_and_certificate};
pub use header::SignatureHeader;
pub use key::{PublicKey, Signature, SigningKey};

/// The only signing algorithm expo-updates knows, as written in `alg` of `expo-signature`.
pub const SIGNATURE_ALGORITHM: &str = "rsa-v1_5-sha256";

/// The key id an expo-updates client assumes when its app config names none.
pub const DEFAULT_KEY_ID: &str = "root";

/// The smallest RSA private key [`SigningKey`] accepts, in bits.
pub const MIN_KEY_BITS: usize = 2048;

/// The `expo-signature` header, whose errors [`SignatureHeader::parse`] reports.
const SIGNATURE_HEADER: &str = "expo-signature";

const HINT_GENERATE: &str = "generate a new pair with `npx expo-updates codesigning:generate`";

fn invalid_key(reason: String) -> Error {
    Error::InvalidKey { reason }
}

fn invalid_certificate(reason: String) -> Error {
    Error::InvalidCertificate { reason }
}

/// The one PEM block in `text`, or a message saying what was found instead.
fn single_pem_block(
    text: &str,
    what: &str,
    expected_tag: &str,
) -> std::result::Result<pem::Pem, String> {
    let mut blocks = pem::parse_many(text).map_err(|e| {
        format!("the text is not PEM ({e}); expected {what} (`BEGIN {expected_tag}`)")
    })?;
    match blocks.len() {
        1 => Ok(blocks.remove(0)),
        0 => Err(format!(
            "no PEM block found; expected {what} (`-----BEGIN {expected_tag}-----`)"
        )),
        n => Err(format!(
            "found {n} PEM blocks ({}); expected exactly one: {what}",
            blocks
                .iter()
                .map(pem::Pem::tag)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn wrong_block(tag: &str, what: &str) -> String {
    let found = match tag {
        "CERTIFICATE" => "a certificate (certificate.pem)",
        "PUBLIC KEY" | "RSA PUBLIC KEY" => "a public key (public-key.pem)",
        "RSA PRIVATE KEY" | "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            "a private key (private-key.pem)"
        }
        _ => "something else",
    };
    format!("found `BEGIN {tag}`, {found}, but expected {what}; check which file was given")
}

/// Seconds since the Unix epoch, negative before it.
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}
