//! `npx expo-updates codesigning:generate`, in Rust.

use std::fmt;
use std::time::{Duration, SystemTime};

use rand_core::CryptoRngCore;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::LineEnding;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{BitString, GeneralizedTime, OctetString, SetOfVec, UtcTime};
use x509_cert::der::oid::db::{rfc4519, rfc5280, rfc5912};
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::{Any, DateTime, Encode, EncodePem, Tag};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::{MIN_KEY_BITS, SigningKey, unix_seconds};
use crate::error::{Error, Result};

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
        return Err(fail(
            "the certificate common name is empty; give e.g. the app's name".into(),
        ));
    }
    if validity_years == 0 {
        return Err(fail("the validity must be at least one year".into()));
    }
    let not_before = unix_seconds(now);
    if not_before < 0 {
        return Err(fail(
            "the time given is before 1970; check the clock".into(),
        ));
    }
    let not_after = add_years(not_before, validity_years).ok_or_else(|| {
        fail(format!(
            "{validity_years} years from now is past year 9999; choose fewer years"
        ))
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
        value: Any::new(directory_string_tag(common_name), common_name.as_bytes())
            .map_err(der_err)?,
    };
    let name: Name = RdnSequence(vec![RelativeDistinguishedName(
        SetOfVec::try_from(vec![cn]).map_err(der_err)?,
    )]);
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

/// PrintableString when the text fits its alphabet (as node-forge and OpenSSL write a plain
/// name), UTF8String otherwise.
fn directory_string_tag(text: &str) -> Tag {
    let printable = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
    if printable {
        Tag::PrintableString
    } else {
        Tag::Utf8String
    }
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
