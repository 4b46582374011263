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

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand_core::CryptoRngCore;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs1v15;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Sha256, Sha384, Sha512};
use x509_cert::der::asn1::{BitString, GeneralizedTime, OctetString, SetOfVec, UtcTime};
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::oid::db::{rfc4519, rfc5280, rfc5912};
use x509_cert::der::{Any, DateTime, Decode, Encode, EncodePem, Tag};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version, attr::AttributeTypeAndValue};

use crate::error::{Error, Result};

/// The only signing algorithm expo-updates knows, as written in `alg` of `expo-signature`.
pub const SIGNATURE_ALGORITHM: &str = "rsa-v1_5-sha256";

/// The key id an expo-updates client assumes when its app config names none.
pub const DEFAULT_KEY_ID: &str = "root";

/// The smallest RSA private key [`SigningKey`] accepts, in bits.
pub const MIN_KEY_BITS: usize = 2048;

/// The `expo-signature` header, whose errors [`SignatureHeader::parse`] reports.
const SIGNATURE_HEADER: &str = "expo-signature";

const HINT_GENERATE: &str = "generate a new pair with `npx expo-updates codesigning:generate`";

// ---------------------------------------------------------------------------------------------
// Keys and signatures
// ---------------------------------------------------------------------------------------------

/// An RSA private key that signs update manifests and directives.
///
/// Its `Debug` output shows the key size only, never the key.
#[derive(Clone)]
pub struct SigningKey {
    signer: pkcs1v15::SigningKey<Sha256>,
    public_key: PublicKey,
}

impl SigningKey {
    /// Reads a private key from PEM text: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what
    /// `codesigning:generate` writes) or PKCS#8 (`BEGIN PRIVATE KEY`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text holds no such block (or several), the key is not RSA, is
    /// encrypted, is inconsistent, or is shorter than [`MIN_KEY_BITS`].
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = single_pem_block(pem_text, "a private key", "RSA PRIVATE KEY` or `PRIVATE KEY")
            .map_err(invalid_key)?;
        let key = match block.tag() {
            "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(block.contents())
                .map_err(|e| invalid_key(format!("the PKCS#1 private key cannot be read: {e}")))?,
            "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(block.contents()).map_err(|e| {
                invalid_key(format!(
                    "the PKCS#8 private key cannot be read as an RSA key: {e}; \
                     expo-updates signs with RSA only, {HINT_GENERATE}"
                ))
            })?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid_key(
                    "the private key is encrypted; decrypt it first, e.g. \
                     `openssl pkey -in encrypted.pem -out private-key.pem`"
                        .to_owned(),
                ));
            }
            other => return Err(invalid_key(wrong_block(other, "a private key"))),
        };
        key.validate()
            .map_err(|e| invalid_key(format!("the RSA private key is inconsistent: {e}")))?;
        let bits = key.size() * 8;
        if bits < MIN_KEY_BITS {
            return Err(invalid_key(format!(
                "the RSA key has {bits} bits, fewer than {MIN_KEY_BITS}; {HINT_GENERATE}"
            )));
        }
        Ok(Self::from_rsa(key))
    }

    fn from_rsa(key: RsaPrivateKey) -> Self {
        let public_key = PublicKey(key.to_public_key());
        Self {
            signer: pkcs1v15::SigningKey::new(key),
            public_key,
        }
    }

    /// Signs `bytes` with RSASSA-PKCS1-v1_5 over SHA-256, as expo-updates verifies the exact bytes
    /// of a manifest or directive part. The signature is deterministic.
    #[must_use]
    pub fn sign(&self, bytes: &[u8]) -> Signature {
        // Cannot fail: PKCS#1 v1.5 with SHA-256 fits any key of at least MIN_KEY_BITS, which
        // `from_pem` and `generate_key_and_certificate` guarantee.
        Signature(self.signer.sign(bytes).to_vec())
    }

    /// The public half of this key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("bits", &(self.public_key.0.size() * 8))
            .finish_non_exhaustive()
    }
}

/// An RSA public key that verifies signatures made by a [`SigningKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(RsaPublicKey);

impl PublicKey {
    /// Reads a public key from PEM text: SPKI (`BEGIN PUBLIC KEY`, what `codesigning:generate`
    /// writes as `public-key.pem`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text holds no such block (or several) or the key is not RSA.
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = single_pem_block(pem_text, "a public key", "PUBLIC KEY` or `RSA PUBLIC KEY")
            .map_err(invalid_key)?;
        let key = match block.tag() {
            "PUBLIC KEY" => RsaPublicKey::from_public_key_der(block.contents()).map_err(|e| {
                invalid_key(format!("the public key cannot be read as an RSA key: {e}"))
            })?,
            "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_der(block.contents())
                .map_err(|e| invalid_key(format!("the PKCS#1 public key cannot be read: {e}")))?,
            other => return Err(invalid_key(wrong_block(other, "a public key"))),
        };
        Ok(Self(key))
    }

    /// Renders the key as SPKI PEM (`BEGIN PUBLIC KEY`), with `\n` line endings.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the key cannot be encoded (not expected for a parsed key).
    pub fn to_pem(&self) -> Result<String> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| invalid_key(format!("the public key cannot be encoded: {e}")))
    }

    /// Checks that `signature` is an RSASSA-PKCS1-v1_5/SHA-256 signature of exactly `bytes` by the
    /// private key of this public key.
    ///
    /// # Errors
    /// [`Error::SignatureMismatch`] if it is not.
    pub fn verify(&self, bytes: &[u8], signature: &Signature) -> Result<()> {
        let mismatch = || Error::SignatureMismatch {
            reason: "it was not made over these exact bytes with the private key of this \
                     public key; sign the body as sent, with the key that belongs to the app's \
                     certificate"
                .to_owned(),
        };
        let signature =
            pkcs1v15::Signature::try_from(signature.as_bytes()).map_err(|_| mismatch())?;
        pkcs1v15::VerifyingKey::<Sha256>::new(self.0.clone())
            .verify(bytes, &signature)
            .map_err(|_| mismatch())
    }
}

/// An RSASSA-PKCS1-v1_5/SHA-256 signature; displayed as standard Base64 with padding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// Wraps raw signature bytes.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Decodes strict standard Base64 (RFC 4648 §4, `+/`, with `=` padding), the encoding
    /// expo-updates clients accept.
    ///
    /// # Errors
    /// [`Error::SignatureMismatch`] if `text` is not such Base64 (base64url, for instance).
    pub fn from_base64(text: &str) -> Result<Self> {
        BASE64
            .decode(text)
            .map(Self)
            .map_err(|e| Error::SignatureMismatch {
                reason: format!(
                    "the signature is not standard Base64 with padding ({e}); base64url is \
                     refused by iOS clients"
                ),
            })
    }

    /// The raw signature bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The signature as standard Base64 with padding, as `sig` in `expo-signature` carries it.
    #[must_use]
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

// ---------------------------------------------------------------------------------------------
// The `expo-signature` header
// ---------------------------------------------------------------------------------------------

/// The value of an `expo-signature` header: a signature and the key id it was made under.
///
/// Rendered as `sig="<base64>", keyid="<keyid>", alg="rsa-v1_5-sha256"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    signature: Signature,
    keyid: String,
}

impl SignatureHeader {
    /// Pairs a signature with the key id the client expects (its `codeSigningMetadata.keyid`).
    ///
    /// # Errors
    /// [`Error::Signing`] if `keyid` is empty or has a character other than printable ASCII
    /// without `"` and `\`.
    pub fn new(signature: Signature, keyid: impl Into<String>) -> Result<Self> {
        let keyid = keyid.into();
        check_keyid(&keyid).map_err(|reason| Error::Signing { reason })?;
        Ok(Self { signature, keyid })
    }

    /// Parses an `expo-signature` header value, e.g. one a deployer supplies for a pre-signed
    /// manifest. As the client does, a missing `keyid` means [`DEFAULT_KEY_ID`] and a missing `alg`
    /// means [`SIGNATURE_ALGORITHM`].
    ///
    /// # Errors
    /// [`Error::BadHeader`] (400) if the value is not an RFC 8941 dictionary, `sig` is missing,
    /// a value is not a string, `sig` is not standard Base64, `alg` names another algorithm or
    /// `keyid` is not acceptable to [`SignatureHeader::new`].
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |problem: String| Error::BadHeader {
            header: SIGNATURE_HEADER,
            problem,
            status: 400,
        };
        let dict: sfv::Dictionary = sfv::Parser::new(value)
            .parse()
            .map_err(|e| bad(format!("not a structured-field dictionary: {e}")))?;
        let string_member = |name: &str| -> Result<Option<String>> {
            match dict.get(name) {
                None => Ok(None),
                Some(sfv::ListEntry::Item(sfv::Item {
                    bare_item: sfv::BareItem::String(s),
                    ..
                })) => Ok(Some(s.as_str().to_owned())),
                Some(_) => Err(bad(format!("`{name}` must be a quoted string, e.g. {name}=\"…\""))),
            }
        };
        let sig = string_member("sig")?
            .ok_or_else(|| bad("`sig` is missing; write sig=\"<base64 signature>\"".to_owned()))?;
        let keyid = string_member("keyid")?.unwrap_or_else(|| DEFAULT_KEY_ID.to_owned());
        if let Some(alg) = string_member("alg")?
            && alg != SIGNATURE_ALGORITHM
        {
            return Err(bad(format!(
                "`alg` is `{alg}`, but expo-updates supports only `{SIGNATURE_ALGORITHM}`"
            )));
        }
        let signature = Signature::from_base64(&sig).map_err(|e| bad(e.to_string()))?;
        check_keyid(&keyid).map_err(bad)?;
        Ok(Self { signature, keyid })
    }

    /// The signature.
    #[must_use]
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The key id.
    #[must_use]
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// Renders the header value `sig="…", keyid="…", alg="rsa-v1_5-sha256"`.
    #[must_use]
    pub fn to_header_value(&self) -> String {
        let sig = self.signature.to_base64();
        let mut out = String::new();
        let mut ser = sfv::DictSerializer::with_buffer(&mut out);
        // Both strings are valid sf-strings: Base64 is printable ASCII and the key id was checked
        // on construction, so these conversions do not fail.
        for (name, value) in [
            ("sig", sig.as_str()),
            ("keyid", self.keyid.as_str()),
            ("alg", SIGNATURE_ALGORITHM),
        ] {
            if let Ok(value) = sfv::StringRef::from_str(value) {
                let _ = ser.bare_item(sfv::key_ref(name), value);
            }
        }
        let _ = ser.finish();
        out
    }
}

impl fmt::Display for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

fn check_keyid(keyid: &str) -> std::result::Result<(), String> {
    if keyid.is_empty() {
        return Err("the keyid is empty; use the keyid of the app's codeSigningMetadata \
                    (`root` if it names none)"
            .to_owned());
    }
    if let Some(c) = keyid
        .chars()
        .find(|c| !(' '..='~').contains(c) || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "the keyid `{}` contains {c:?}; a keyid may hold printable ASCII only, without \
             `\"` and `\\`",
            keyid.escape_debug()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

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
            return Err(invalid_certificate(wrong_block(block.tag(), "a certificate")));
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
        Err(invalid_key(
            "the private key does not belong to the certificate: clients would reject every \
             signature; use the private-key.pem generated together with the app's certificate.pem"
                .to_owned(),
        ))
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
            Some(problem) => Err(invalid_certificate(format!("{problem}; {}", problem.hint()))),
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
            pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(&tbs, &signature).is_ok()
        } else if oid == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
            pkcs1v15::VerifyingKey::<Sha384>::new(key).verify(&tbs, &signature).is_ok()
        } else if oid == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
            pkcs1v15::VerifyingKey::<Sha512>::new(key).verify(&tbs, &signature).is_ok()
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
                "generate a certificate with `npx expo-updates codesigning:generate` (or \
                 `otago keys generate`), embed it in a new build and sign updates with its key"
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

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// The three PEM files `npx expo-updates codesigning:generate` writes. Its `Debug` output hides
/// the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedSigningFiles {
    /// `private-key.pem`: PKCS#1 (`BEGIN RSA PRIVATE KEY`). Keep it secret (mode 0600).
    pub private_key_pem: String,
    /// `public-key.pem`: SPKI (`BEGIN PUBLIC KEY`).
    pub public_key_pem: String,
    /// `certificate.pem`: the self-signed certificate to embed in the app.
    pub certificate_pem: String,
}

impl fmt::Debug for GeneratedSigningFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedSigningFiles")
            .field("private_key_pem", &"<redacted>")
            .field("public_key_pem", &self.public_key_pem)
            .field("certificate_pem", &self.certificate_pem)
            .finish()
    }
}

/// Makes a fresh 2048-bit RSA key and a self-signed code signing certificate for it, as
/// `npx expo-updates codesigning:generate` does: SHA-256 signature, 9-byte random positive serial,
/// subject `CN=<common_name>` only, critical Key Usage `digitalSignature`, critical Extended Key
/// Usage `codeSigning`, valid from `now` (whole seconds) for `validity_years` calendar years.
///
/// # Errors
/// [`Error::Signing`] if `common_name` is empty, `validity_years` is 0 or reaches past year 9999,
/// or key generation or encoding fails.
pub fn generate_key_and_certificate(
    rng: &mut impl CryptoRngCore,
    common_name: &str,
    validity_years: u32,
    now: SystemTime,
) -> Result<GeneratedSigningFiles> {
    let fail = |reason: String| Error::Signing { reason };
    if common_name.trim().is_empty() {
        return Err(fail("the certificate common name is empty; give e.g. the app's name".into()));
    }
    if validity_years == 0 {
        return Err(fail("the validity must be at least one year".into()));
    }
    let not_before = unix_seconds(now);
    let not_after = add_years(not_before, validity_years).ok_or_else(|| {
        fail(format!("{validity_years} years from now is past year 9999; choose fewer years"))
    })?;

    let key = RsaPrivateKey::new(rng, MIN_KEY_BITS)
        .map_err(|e| fail(format!("cannot generate an RSA key: {e}")))?;
    let private_key_pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| fail(format!("cannot encode the private key: {e}")))?
        .to_string();
    let signing_key = SigningKey::from_rsa(key);
    let public_key_pem = signing_key.public_key().to_pem()?;

    let der_err = |e: x509_cert::der::Error| fail(format!("cannot build the certificate: {e}"));
    let spki_err = |e: x509_cert::spki::Error| fail(format!("cannot build the certificate: {e}"));

    let mut serial = [0u8; 9];
    rng.fill_bytes(&mut serial);
    serial[0] &= 0x7f;

    let cn = AttributeTypeAndValue {
        oid: rfc4519::CN,
        value: Any::new(Tag::Utf8String, common_name.as_bytes()).map_err(der_err)?,
    };
    let name: Name =
        RdnSequence(vec![RelativeDistinguishedName(SetOfVec::try_from(vec![cn]).map_err(der_err)?)]);
    let key_usage = KeyUsage(KeyUsages::DigitalSignature.into());
    let extended_key_usage = ExtendedKeyUsage(vec![rfc5280::ID_KP_CODE_SIGNING]);
    let signature_algorithm = AlgorithmIdentifierOwned {
        oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(Any::null()),
    };

    let tbs_certificate = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(der_err)?,
        signature: signature_algorithm.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: x509_time(not_before).map_err(der_err)?,
            not_after: x509_time(not_after).map_err(der_err)?,
        },
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_key(
            signing_key.public_key().0.clone(),
        )
        .map_err(spki_err)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(vec![
            critical_extension(KeyUsage::OID, &key_usage).map_err(der_err)?,
            critical_extension(ExtendedKeyUsage::OID, &extended_key_usage).map_err(der_err)?,
        ]),
    };
    let signature = signing_key.sign(&tbs_certificate.to_der().map_err(der_err)?);
    let certificate = Certificate {
        tbs_certificate,
        signature_algorithm,
        signature: BitString::from_bytes(signature.as_bytes()).map_err(der_err)?,
    };
    let certificate_pem = certificate.to_pem(LineEnding::LF).map_err(der_err)?;

    Ok(GeneratedSigningFiles {
        private_key_pem,
        public_key_pem,
        certificate_pem,
    })
}

fn critical_extension(
    oid: ObjectIdentifier,
    value: &impl Encode,
) -> x509_cert::der::Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical: true,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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
    let mut blocks = pem::parse_many(text)
        .map_err(|e| format!("the text is not PEM ({e}); expected {what} (`BEGIN {expected_tag}`)"))?;
    match blocks.len() {
        1 => Ok(blocks.remove(0)),
        0 => Err(format!(
            "no PEM block found; expected {what} (`-----BEGIN {expected_tag}-----`)"
        )),
        n => Err(format!(
            "found {n} PEM blocks ({}); expected exactly one: {what}",
            blocks.iter().map(pem::Pem::tag).collect::<Vec<_>>().join(", ")
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

fn time_to_system(t: Time) -> SystemTime {
    UNIX_EPOCH + t.to_unix_duration()
}

fn format_time(t: SystemTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds(t))
        .ok()
        .and_then(|dt| dt.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{} seconds after 1970-01-01", unix_seconds(t)))
}

/// `seconds` plus `years` calendar years (29 February becomes 28 February), if within 1970-9999.
fn add_years(seconds: i64, years: u32) -> Option<i64> {
    let start = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    let year = start.year().checked_add(i32::try_from(years).ok()?)?;
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let end = start
        .replace_year(year)
        .or_else(|_| start.replace_day(28).and_then(|d| d.replace_year(year)))
        .ok()?;
    Some(end.unix_timestamp())
}

/// An X.509 time, UTCTime through 2049 and GeneralizedTime after, as RFC 5280 requires.
fn x509_time(seconds: i64) -> x509_cert::der::Result<Time> {
    let secs = u64::try_from(seconds).map_err(|_| Tag::UtcTime.value_error())?;
    let date = DateTime::from_unix_duration(Duration::from_secs(secs))?;
    if date.year() <= 2049 {
        Ok(Time::UtcTime(UtcTime::from_date_time(date)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(date)))
    }
}
