//! The certificate embedded in the app, and what the client requires of it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use rsa::RsaPublicKey;
use rsa::pkcs1v15;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use sha2::{Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::oid::db::{rfc4519, rfc5280, rfc5912};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
use x509_cert::time::Time;

use super::{
    HINT_GENERATE, PublicKey, Signature, SigningKey, invalid_certificate, single_pem_block,
    unix_seconds, wrong_block,
};
use crate::error::{Error, Result};

/// An X.509 code signing certificate, as embedded in an app via `updates.codeSigningCertificate`.
#[derive(Clone, Debug)]
pub struct SigningCertificate {
    certificate: Certificate,
    public_key: PublicKey,
}

impl SigningCertificate {
    /// Reads a certificate from PEM text holding exactly one `BEGIN CERTIFICATE` block with an
    /// RSA public key.
    ///
    /// # Errors
    /// [`Error::InvalidCertificate`] if it does not.
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = single_pem_block(pem_text, "a certificate", "CERTIFICATE")
            .map_err(invalid_certificate)?;
        if block.tag() != "CERTIFICATE" {
            return Err(invalid_certificate(wrong_block(
                block.tag(),
                "a certificate",
            )));
        }
        let certificate = Certificate::from_der(block.contents()).map_err(|e| {
            invalid_certificate(format!("the certificate is not valid X.509 DER: {e}"))
        })?;
        let spki_der = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| invalid_certificate(format!("its public key cannot be encoded: {e}")))?;
        let public_key = RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| {
            invalid_certificate(format!(
                "its public key is not an RSA key ({e}); expo-updates signs with RSA only, \
                 {HINT_GENERATE}"
            ))
        })?;
        Ok(Self {
            certificate,
            public_key: PublicKey(public_key),
        })
    }

    /// The certificate's public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Checks a signature with the certificate's public key; see [`PublicKey::verify`].
    ///
    /// # Errors
    /// [`Error::SignatureMismatch`] if it does not verify.
    pub fn verify(&self, bytes: &[u8], signature: &Signature) -> Result<()> {
        self.public_key.verify(bytes, signature)
    }

    /// Whether `key` is the private key of this certificate (both have the same public key).
    #[must_use]
    pub fn matches(&self, key: &SigningKey) -> bool {
        self.public_key == *key.public_key()
    }

    /// Like [`SigningCertificate::matches`], as an error that says what to do.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if `key` does not belong to this certificate.
    pub fn ensure_matches(&self, key: &SigningKey) -> Result<()> {
        if self.matches(key) {
            return Ok(());
        }
        Err(Error::InvalidKey {
            reason: "the private key does not belong to the certificate: clients would reject \
                     every signature; use the private-key.pem generated together with the app's \
                     certificate.pem"
                .to_owned(),
        })
    }

    /// The subject's common name (CN), if it has one.
    #[must_use]
    pub fn common_name(&self) -> Option<String> {
        let subject = &self.certificate.tbs_certificate.subject;
        subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == rfc4519::CN)
            .map(|atv| String::from_utf8_lossy(atv.value.value()).into_owned())
    }

    /// Everything the expo-updates client checks about an embedded certificate, at time `now`.
    #[must_use]
    pub fn report(&self, now: SystemTime) -> CertificateReport {
        let tbs = &self.certificate.tbs_certificate;
        let not_before = time_to_system(tbs.validity.not_before);
        let not_after = time_to_system(tbs.validity.not_after);
        let mut problems = Vec::new();

        let digital_signature = matches!(
            tbs.get::<KeyUsage>(),
            Ok(Some((_, usage))) if usage.digital_signature()
        );
        if !digital_signature {
            problems.push(CertificateProblem::MissingDigitalSignature);
        }
        let code_signing = matches!(
            tbs.get::<ExtendedKeyUsage>(),
            Ok(Some((_, eku))) if eku.0.contains(&rfc5280::ID_KP_CODE_SIGNING)
        );
        if !code_signing {
            problems.push(CertificateProblem::MissingCodeSigning);
        }
        if now < not_before {
            problems.push(CertificateProblem::NotYetValid { not_before });
        }
        if now > not_after {
            problems.push(CertificateProblem::Expired { not_after });
        }
        if !self.is_self_signed() {
            problems.push(CertificateProblem::NotSelfSigned);
        }
        let days_until_expiry = (unix_seconds(not_after) - unix_seconds(now)).div_euclid(86_400);
        CertificateReport {
            common_name: self.common_name(),
            not_before,
            not_after,
            days_until_expiry,
            problems,
        }
    }

    /// Checks what [`SigningCertificate::report`] checks.
    ///
    /// # Errors
    /// [`Error::InvalidCertificate`] naming the first problem and its fix.
    pub fn check(&self, now: SystemTime) -> Result<()> {
        match self.report(now).problems.first() {
            None => Ok(()),
            Some(problem) => Err(invalid_certificate(format!(
                "{problem}; {}",
                problem.hint()
            ))),
        }
    }

    /// Issuer equals subject and the certificate's signature verifies with its own key, which is
    /// what the client requires of the one certificate it embeds.
    fn is_self_signed(&self) -> bool {
        let cert = &self.certificate;
        if cert.tbs_certificate.issuer != cert.tbs_certificate.subject {
            return false;
        }
        let (Ok(tbs), Ok(signature)) = (
            cert.tbs_certificate.to_der(),
            pkcs1v15::Signature::try_from(cert.signature.raw_bytes()),
        ) else {
            return false;
        };
        let key = self.public_key.0.clone();
        let oid = cert.signature_algorithm.oid;
        if oid == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
            pkcs1v15::VerifyingKey::<Sha256>::new(key)
                .verify(&tbs, &signature)
                .is_ok()
        } else if oid == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
            pkcs1v15::VerifyingKey::<Sha384>::new(key)
                .verify(&tbs, &signature)
                .is_ok()
        } else if oid == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
            pkcs1v15::VerifyingKey::<Sha512>::new(key)
                .verify(&tbs, &signature)
                .is_ok()
        } else {
            false
        }
    }
}

/// What [`SigningCertificate::report`] found: the facts a `doctor` shows, and the problems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateReport {
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// Start of the validity period.
    pub not_before: SystemTime,
    /// End of the validity period; after it every update fails to verify on the device.
    pub not_after: SystemTime,
    /// Whole days from the time checked until `not_after`, rounded down; negative once expired.
    pub days_until_expiry: i64,
    /// Everything the client would refuse, in the order the checks ran; empty if none.
    pub problems: Vec<CertificateProblem>,
}

impl CertificateReport {
    /// Whether the client accepts the certificate.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One reason the expo-updates client refuses a certificate. `Display` says what is wrong;
/// [`CertificateProblem::hint`] says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// No KeyUsage extension with digitalSignature.
    MissingDigitalSignature,
    /// No ExtendedKeyUsage extension with codeSigning (1.3.6.1.5.5.7.3.3).
    MissingCodeSigning,
    /// The time checked is before the validity period.
    NotYetValid {
        /// Start of the validity period.
        not_before: SystemTime,
    },
    /// The time checked is after the validity period.
    Expired {
        /// End of the validity period.
        not_after: SystemTime,
    },
    /// Issuer and subject differ, or the certificate's signature does not verify with its own key.
    NotSelfSigned,
}

impl CertificateProblem {
    /// What to do about the problem.
    #[must_use]
    pub fn hint(&self) -> &'static str {
        match self {
            Self::MissingDigitalSignature | Self::MissingCodeSigning | Self::NotSelfSigned => {
                "generate a key and certificate with `npx expo-updates codesigning:generate`, \
                 embed the certificate in a new build and sign updates with its key"
            }
            Self::NotYetValid { .. } => {
                "check the clock of this machine, or wait until the certificate becomes valid"
            }
            Self::Expired { .. } => {
                "clients refuse every update signed under an expired certificate: generate a new \
                 key and certificate and ship them in a new build with a new runtime version"
            }
        }
    }
}

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingDigitalSignature => {
                f.write_str("the certificate lacks Key Usage `Digital Signature`")
            }
            Self::MissingCodeSigning => {
                f.write_str("the certificate lacks Extended Key Usage `Code Signing`")
            }
            Self::NotYetValid { not_before } => write!(
                f,
                "the certificate is not valid before {}",
                format_time(*not_before)
            ),
            Self::Expired { not_after } => {
                write!(f, "the certificate expired on {}", format_time(*not_after))
            }
            Self::NotSelfSigned => f.write_str(
                "the certificate is not self-signed (with RSA and SHA-256/384/512), as the \
                 one certificate an app embeds must be",
            ),
        }
    }
}

fn time_to_system(t: Time) -> SystemTime {
    UNIX_EPOCH + t.to_unix_duration()
}

fn format_time(t: SystemTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds(t))
        .ok()
        .and_then(|dt| {
            dt.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} seconds after 1970-01-01", unix_seconds(t)))
}
