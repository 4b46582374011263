//! Code signing against the real fixture keys and against the real `openssl` command line.
//!
//! These tests do I/O on purpose (temp files, `openssl`), which the library itself never does.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otago_core::{
    CertificateProblem, DEFAULT_KEY_ID, Error, GeneratedSigningFiles, PublicKey, Signature,
    SignatureHeader, SigningCertificate, SigningKey, generate_key_and_certificate,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/expo-app");

fn fixture_path(rel: &str) -> PathBuf {
    Path::new(FIXTURE).join(rel)
}

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(fixture_path(rel)).unwrap()
}

fn fixture_key() -> SigningKey {
    SigningKey::from_pem(&fixture("keys/private-key.pem")).unwrap()
}

fn fixture_cert() -> SigningCertificate {
    SigningCertificate::from_pem(&fixture("certs/certificate.pem")).unwrap()
}

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "otago-core-signing-{}-{name}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the `openssl` command must be installed to run these tests")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `openssl dgst -sha256 -verify` of `signature` over `data` with the public key of the
/// certificate at `cert`; true if openssl says "Verified OK".
fn openssl_verifies(dir: &Path, cert: &Path, data: &[u8], signature: &Signature) -> bool {
    let pubkey = dir.join("pubkey.pem");
    let out = openssl(&["x509", "-pubkey", "-noout", "-in", path(cert)]);
    assert!(out.status.success(), "openssl x509 -pubkey failed: {out:?}");
    std::fs::write(&pubkey, &out.stdout).unwrap();
    let data_file = dir.join("data");
    let sig_file = dir.join("sig.bin");
    std::fs::write(&data_file, data).unwrap();
    std::fs::write(&sig_file, signature.as_bytes()).unwrap();
    let out = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        path(&pubkey),
        "-signature",
        path(&sig_file),
        path(&data_file),
    ]);
    let verified = stdout(&out).contains("Verified OK");
    assert_eq!(verified, out.status.success(), "{out:?}");
    verified
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Unix seconds of a UTC calendar time.
fn utc(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> SystemTime {
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).unwrap(), day)
        .unwrap()
        .with_hms(hour, minute, second)
        .unwrap()
        .assume_utc();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(date.unix_timestamp()).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Signing and verifying
// ---------------------------------------------------------------------------------------------

#[test]
fn fixture_key_signature_verifies_with_openssl_and_tampered_bytes_do_not() {
    let dir = temp_dir("openssl-verify");
    let data = std::fs::read(fixture_path("exports/v1/metadata.json")).unwrap();
    let signature = fixture_key().sign(&data);
    assert_eq!(
        signature.as_bytes().len(),
        256,
        "a 2048-bit key gives 256 bytes"
    );

    let cert = fixture_path("certs/certificate.pem");
    assert!(openssl_verifies(&dir, &cert, &data, &signature));

    let mut tampered = data.clone();
    tampered[10] ^= 0x01;
    assert!(!openssl_verifies(&dir, &cert, &tampered, &signature));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn signature_made_by_openssl_verifies_with_certificate_and_public_key_pem() {
    let dir = temp_dir("openssl-sign");
    let data = fixture("exports/v1/metadata.json");
    let data_file = dir.join("data");
    let sig_file = dir.join("sig.bin");
    std::fs::write(&data_file, &data).unwrap();
    let out = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        path(&fixture_path("keys/private-key.pem")),
        "-out",
        path(&sig_file),
        path(&data_file),
    ]);
    assert!(out.status.success(), "{out:?}");
    let signature = Signature::from_bytes(std::fs::read(&sig_file).unwrap());

    assert_eq!(
        signature,
        fixture_key().sign(data.as_bytes()),
        "PKCS#1 v1.5 is deterministic"
    );
    fixture_cert().verify(data.as_bytes(), &signature).unwrap();
    // public-key.pem has CRLF line endings, as node-forge writes them.
    let public_key = PublicKey::from_pem(&fixture("keys/public-key.pem")).unwrap();
    public_key.verify(data.as_bytes(), &signature).unwrap();
    assert_eq!(&public_key, fixture_cert().public_key());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn verify_refuses_tampered_bytes_and_foreign_signatures() {
    let cert = fixture_cert();
    let signature = fixture_key().sign(b"{\"id\":\"1\"}");
    cert.verify(b"{\"id\":\"1\"}", &signature).unwrap();
    let err = cert.verify(b"{\"id\":\"2\"}", &signature).unwrap_err();
    assert!(matches!(err, Error::SignatureMismatch { .. }), "{err:?}");
    let err = cert
        .verify(b"{\"id\":\"1\"}", &Signature::from_bytes(vec![1, 2, 3]))
        .unwrap_err();
    assert!(matches!(err, Error::SignatureMismatch { .. }), "{err:?}");
}

#[test]
fn pkcs8_key_converted_by_openssl_signs_identically_to_pkcs1_key() {
    let dir = temp_dir("pkcs8");
    let out = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        path(&fixture_path("keys/private-key.pem")),
    ]);
    assert!(out.status.success(), "{out:?}");
    let pkcs8 = stdout(&out);
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"), "{pkcs8}");

    let key = SigningKey::from_pem(&pkcs8).unwrap();
    let data = fixture("exports/v1/metadata.json");
    assert_eq!(
        key.sign(data.as_bytes()),
        fixture_key().sign(data.as_bytes())
    );
    assert!(fixture_cert().matches(&key));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn signature_base64_is_standard_with_padding_and_round_trips() {
    let signature = Signature::from_bytes(vec![0xfb, 0xff, 0xbf, 0x00]);
    assert_eq!(signature.to_base64(), "+/+/AA==");
    assert_eq!(signature.to_string(), "+/+/AA==");
    assert_eq!(Signature::from_base64("+/+/AA==").unwrap(), signature);
    for bad in ["-_-_AA==", "+/+/AA", "+/+/AA=", "not base64!"] {
        let err = Signature::from_base64(bad).unwrap_err();
        assert!(
            matches!(err, Error::SignatureMismatch { .. }),
            "{bad}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The expo-signature header
// ---------------------------------------------------------------------------------------------

#[test]
fn signature_header_has_exact_shape_and_parses_back() {
    let signature = fixture_key().sign(b"manifest body");
    let header = SignatureHeader::new(signature.clone(), "main").unwrap();
    let value = header.to_header_value();
    assert_eq!(
        value,
        format!(
            "sig=\"{}\", keyid=\"main\", alg=\"rsa-v1_5-sha256\"",
            signature.to_base64()
        )
    );
    assert_eq!(header.to_string(), value);

    let parsed = SignatureHeader::parse(&value).unwrap();
    assert_eq!(parsed, header);
    assert_eq!(parsed.keyid(), "main");
    assert_eq!(parsed.signature(), &signature);
    fixture_cert()
        .verify(b"manifest body", parsed.signature())
        .unwrap();

    // And an independent RFC 8941 parser sees a dictionary of three strings.
    let dict: sfv::Dictionary = sfv::Parser::new(&value).parse().unwrap();
    let members: Vec<(String, String)> = dict
        .iter()
        .map(|(k, v)| match v {
            sfv::ListEntry::Item(sfv::Item {
                bare_item: sfv::BareItem::String(s),
                params,
            }) if params.is_empty() => (k.as_str().to_owned(), s.as_str().to_owned()),
            other => panic!("{k} is not a plain string: {other:?}"),
        })
        .collect();
    assert_eq!(
        members,
        [
            ("sig".to_owned(), signature.to_base64()),
            ("keyid".to_owned(), "main".to_owned()),
            ("alg".to_owned(), "rsa-v1_5-sha256".to_owned()),
        ]
    );
}

#[test]
fn signature_header_refuses_keyid_with_quote_backslash_non_ascii_or_empty() {
    let signature = Signature::from_bytes(vec![1, 2, 3]);
    for keyid in ["ma\"in", "ma\\in", "clé", "tab\there", "line\n", ""] {
        let err = SignatureHeader::new(signature.clone(), keyid).unwrap_err();
        assert!(matches!(err, Error::Signing { .. }), "{keyid:?}: {err:?}");
    }
    // Printable ASCII, including spaces and punctuation, is fine.
    let header = SignatureHeader::new(signature, "key 2024-01, v=2").unwrap();
    assert_eq!(
        SignatureHeader::parse(&header.to_header_value()).unwrap(),
        header
    );
}

#[test]
fn signature_header_parse_applies_client_defaults() {
    let header = SignatureHeader::parse("sig=\"AQID\"").unwrap();
    assert_eq!(header.keyid(), DEFAULT_KEY_ID);
    assert_eq!(header.signature().as_bytes(), [1, 2, 3]);
    // Order does not matter, and parameters are ignored.
    let header =
        SignatureHeader::parse("alg=\"rsa-v1_5-sha256\";x=1, keyid=\"k\", sig=\"AQID\"").unwrap();
    assert_eq!(header.keyid(), "k");
}

#[test]
fn signature_header_parse_refuses_malformed_values() {
    for value in [
        "",
        "sig",
        "keyid=\"main\"",
        "sig=AQID",
        "sig=:AQID:",
        "sig=\"AQID\", keyid=main",
        "sig=\"AQID\", alg=\"rsa-pss-sha256\"",
        "sig=\"AQID\", alg=rsa-v1_5-sha256",
        "sig=\"-_-_\"",
        "sig=\"AQID\", keyid=\"\"",
        "not a dictionary ((",
    ] {
        match SignatureHeader::parse(value) {
            Err(Error::BadHeader { header, status, .. }) => {
                assert_eq!(header, "expo-signature");
                assert_eq!(status, 400);
            }
            other => panic!("{value:?} gave {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

#[test]
fn fixture_certificate_matches_fixture_key() {
    let cert = fixture_cert();
    let key = fixture_key();
    assert!(cert.matches(&key));
    cert.ensure_matches(&key).unwrap();
    assert_eq!(cert.public_key(), key.public_key());
}

#[test]
fn fixture_certificate_does_not_match_a_generated_key() {
    let key = SigningKey::from_pem(&generated().private_key_pem).unwrap();
    let cert = fixture_cert();
    assert!(!cert.matches(&key));
    let err = cert.ensure_matches(&key).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
}

#[test]
fn fixture_certificate_meets_client_requirements_in_2030() {
    let cert = fixture_cert();
    let report = cert.report(utc(2030, 1, 1, 0, 0, 0));
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(
        report.common_name.as_deref(),
        Some("Otago Example (TEST KEY)")
    );
    assert_eq!(
        cert.common_name().as_deref(),
        Some("Otago Example (TEST KEY)")
    );
    assert_eq!(report.not_before, utc(2026, 11, 27, 17, 42, 55));
    assert_eq!(report.not_after, utc(2056, 11, 27, 17, 42, 55));
    cert.check(utc(2030, 1, 1, 0, 0, 0)).unwrap();
}

#[test]
fn fixture_certificate_is_expired_in_2060() {
    let cert = fixture_cert();
    let when = utc(2060, 1, 1, 0, 0, 0);
    let report = cert.report(when);
    assert_eq!(
        report.problems,
        [CertificateProblem::Expired {
            not_after: utc(2056, 11, 27, 17, 42, 55)
        }]
    );
    assert!(report.days_until_expiry < 0);
    let Err(Error::InvalidCertificate { reason }) = cert.check(when) else {
        panic!("an expired certificate must fail the check");
    };
    assert!(
        reason.contains("expired on 2056-11-27T17:42:55Z"),
        "{reason}"
    );
    assert!(reason.contains("new runtime version"), "{reason}");
}

#[test]
fn fixture_certificate_is_not_yet_valid_in_2020() {
    let cert = fixture_cert();
    let report = cert.report(utc(2020, 1, 1, 0, 0, 0));
    assert!(matches!(
        report.problems.as_slice(),
        [CertificateProblem::NotYetValid { .. }]
    ));
    let err = cert.check(utc(2020, 1, 1, 0, 0, 0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("not valid before 2026-11-27T17:42:55Z"),
        "{err}"
    );
}

#[test]
fn certificate_validity_bounds_are_inclusive() {
    let cert = fixture_cert();
    assert!(cert.report(utc(2026, 11, 27, 17, 42, 55)).is_ok());
    assert!(!cert.report(utc(2026, 11, 27, 17, 42, 54)).is_ok());
    assert!(cert.report(utc(2056, 11, 27, 17, 42, 55)).is_ok());
    assert!(!cert.report(utc(2056, 11, 27, 17, 42, 56)).is_ok());
}

#[test]
fn days_until_expiry_counts_whole_days_rounded_down() {
    // The fixture certificate's notAfter is 2056-11-27 17:42:55 UTC
    // (`openssl x509 -noout -enddate -in examples/expo-app/certs/certificate.pem`).
    let cert = fixture_cert();
    let days = |t| cert.report(t).days_until_expiry;
    assert_eq!(days(utc(2056, 11, 17, 17, 42, 55)), 10);
    assert_eq!(days(utc(2056, 11, 17, 17, 42, 56)), 9);
    assert_eq!(days(utc(2056, 11, 27, 17, 42, 55)), 0);
    assert_eq!(days(utc(2056, 11, 27, 17, 42, 56)), -1);
    // 2030-01-01 to 2056-01-01 is 26 years with 6 leap days; then 331 days (2056 is a leap
    // year) and 17:42:55.
    assert_eq!(days(utc(2030, 1, 1, 0, 0, 0)), 26 * 365 + 6 + 331);
}

#[test]
fn certificate_without_code_signing_extensions_reports_both_problems() {
    let dir = temp_dir("plain-cert");
    let cert_file = dir.join("plain.pem");
    let out = openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        path(&fixture_path("keys/private-key.pem")),
        "-subj",
        "/CN=Plain",
        "-days",
        "30",
        "-addext",
        "keyUsage=critical,keyEncipherment",
        "-out",
        path(&cert_file),
    ]);
    assert!(out.status.success(), "{out:?}");
    let cert = SigningCertificate::from_pem(&std::fs::read_to_string(&cert_file).unwrap()).unwrap();
    let report = cert.report(SystemTime::now());
    assert_eq!(
        report.problems,
        [
            CertificateProblem::MissingDigitalSignature,
            CertificateProblem::MissingCodeSigning
        ]
    );
    for problem in &report.problems {
        assert!(!problem.hint().is_empty());
    }
    assert!(cert.matches(&fixture_key()));
    let err = cert.check(SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("Digital Signature"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

const GENERATED_CN: &str = "Otago Test App";

fn generated_at() -> SystemTime {
    utc(2026, 11, 27, 12, 0, 0) + Duration::from_millis(750)
}

/// One generated key and certificate (RSA key generation is slow), valid for 30 years so that
/// notAfter (2056) is a GeneralizedTime.
fn generated() -> &'static GeneratedSigningFiles {
    static FILES: OnceLock<GeneratedSigningFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(56);
        generate_key_and_certificate(&mut rng, GENERATED_CN, 30, generated_at()).unwrap()
    })
}

#[test]
fn generated_files_have_the_expected_pem_kinds() {
    let files = generated();
    assert!(
        files
            .private_key_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    assert!(
        files
            .public_key_pem
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    assert!(
        files
            .certificate_pem
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
    assert!(
        !format!("{files:?}").contains("PRIVATE KEY"),
        "Debug must hide the key"
    );
    let key = SigningKey::from_pem(&files.private_key_pem).unwrap();
    assert!(!format!("{key:?}").contains("PRIVATE"));
    assert_eq!(
        &PublicKey::from_pem(&files.public_key_pem).unwrap(),
        key.public_key()
    );
    assert_eq!(files.public_key_pem, key.public_key().to_pem().unwrap());
}

#[test]
fn generated_certificate_has_expo_code_signing_extensions_per_openssl() {
    let dir = temp_dir("generated-text");
    let cert_file = dir.join("certificate.pem");
    std::fs::write(&cert_file, &generated().certificate_pem).unwrap();
    let out = openssl(&["x509", "-noout", "-text", "-in", path(&cert_file)]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");

    assert!(compact.contains("Version: 3 (0x2)"), "{text}");
    assert!(
        compact.contains("Signature Algorithm: sha256WithRSAEncryption"),
        "{text}"
    );
    assert!(compact.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(
        compact.contains(&format!("Issuer: CN = {GENERATED_CN}")),
        "{text}"
    );
    assert!(
        compact.contains(&format!("Subject: CN = {GENERATED_CN} ")),
        "{text}"
    );
    assert!(
        compact.contains("X509v3 Key Usage: critical Digital Signature X509v3 Extended Key Usage"),
        "{text}"
    );
    assert!(
        compact.contains("X509v3 Extended Key Usage: critical Code Signing Signature Algorithm"),
        "exactly two extensions: {text}"
    );
    // "X509v3 extensions:" plus the two extensions.
    assert_eq!(text.matches("X509v3").count(), 3, "{text}");

    let out = openssl(&[
        "x509",
        "-noout",
        "-startdate",
        "-enddate",
        "-serial",
        "-in",
        path(&cert_file),
    ]);
    let dates = stdout(&out);
    assert!(
        dates.contains("notBefore=Nov 27 12:00:00 2026 GMT"),
        "{dates}"
    );
    assert!(
        dates.contains("notAfter=Nov 27 12:00:00 2056 GMT"),
        "{dates}"
    );
    let serial = dates
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap();
    assert!(
        serial.len() <= 18 && serial.len() >= 16,
        "9 random bytes: {serial}"
    );
    assert!(u8::from_str_radix(&serial[..2], 16).unwrap() < 0x80 || serial.len() < 18);

    let out = openssl(&[
        "verify",
        "-check_ss_sig",
        "-CAfile",
        path(&cert_file),
        path(&cert_file),
    ]);
    assert!(out.status.success(), "self-signature must verify: {out:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generated_certificate_passes_own_checks_and_matches_its_key() {
    let files = generated();
    let cert = SigningCertificate::from_pem(&files.certificate_pem).unwrap();
    let key = SigningKey::from_pem(&files.private_key_pem).unwrap();
    cert.ensure_matches(&key).unwrap();

    let report = cert.report(generated_at());
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.common_name.as_deref(), Some(GENERATED_CN));
    assert_eq!(report.not_before, utc(2026, 11, 27, 12, 0, 0));
    assert_eq!(report.not_after, utc(2056, 11, 27, 12, 0, 0));
    assert!(!cert.matches(&fixture_key()));
}

#[test]
fn generated_key_signature_verifies_with_openssl_against_generated_certificate() {
    let dir = temp_dir("generated-sign");
    let cert_file = dir.join("certificate.pem");
    std::fs::write(&cert_file, &generated().certificate_pem).unwrap();
    let key = SigningKey::from_pem(&generated().private_key_pem).unwrap();
    let data = fixture("exports/v1/metadata.json");
    let signature = key.sign(data.as_bytes());
    assert!(openssl_verifies(
        &dir,
        &cert_file,
        data.as_bytes(),
        &signature
    ));
    assert!(!openssl_verifies(
        &dir,
        &cert_file,
        b"other bytes",
        &signature
    ));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generated_key_is_accepted_by_openssl() {
    let dir = temp_dir("generated-key");
    let key_file = dir.join("private-key.pem");
    std::fs::write(&key_file, &generated().private_key_pem).unwrap();
    let out = openssl(&["rsa", "-check", "-noout", "-in", path(&key_file)]);
    assert!(
        out.status.success() && stdout(&out).contains("RSA key ok"),
        "{out:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generation_within_2049_uses_utc_time_and_checks_its_inputs() {
    let at = utc(2024, 2, 29, 8, 30, 0);
    let mut rng = StdRng::seed_from_u64(7);
    let files = generate_key_and_certificate(&mut rng, "Leap", 1, at).unwrap();
    let cert = SigningCertificate::from_pem(&files.certificate_pem).unwrap();
    let report = cert.report(at);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(
        report.not_after,
        utc(2025, 2, 28, 8, 30, 0),
        "29 February rolls back to the 28th"
    );
    assert_eq!(report.days_until_expiry, 365);

    for (cn, years) in [("", 1), ("  ", 1), ("App", 0), ("App", 10_000)] {
        let err = generate_key_and_certificate(&mut rng, cn, years, at).unwrap_err();
        assert!(
            matches!(err, Error::Signing { .. }),
            "{cn:?} {years}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_or_wrong_pem_gives_invalid_key_errors() {
    let cert_pem = fixture("certs/certificate.pem");
    let public_pem = fixture("keys/public-key.pem");
    let private_pem = fixture("keys/private-key.pem");
    let truncated = &private_pem[..private_pem.len() / 2];
    // `MIIE…` (DER: a SEQUENCE of 0x04.. bytes) made `MIIF…` claims 256 more bytes than follow.
    let corrupt = private_pem.replacen("MIIE", "MIIF", 1);
    assert_ne!(corrupt, private_pem);
    let two_keys = format!("{private_pem}{private_pem}");
    let garbage = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    for (what, text) in [
        ("empty", ""),
        ("prose", "hello"),
        ("truncated", truncated),
        ("corrupt", &corrupt),
        ("two keys", &two_keys),
        ("garbage body", garbage),
        ("encrypted", encrypted),
        ("certificate", &cert_pem),
        ("public key", &public_pem),
    ] {
        match SigningKey::from_pem(text) {
            Err(Error::InvalidKey { reason }) => assert!(!reason.is_empty()),
            other => panic!("{what}: {other:?}"),
        }
    }
    for (what, text) in [
        ("empty", ""),
        ("private key", private_pem.as_str()),
        ("cert", &cert_pem),
    ] {
        assert!(
            matches!(PublicKey::from_pem(text), Err(Error::InvalidKey { .. })),
            "{what}"
        );
    }
    let Err(Error::InvalidKey { reason }) = SigningKey::from_pem(&cert_pem) else {
        panic!()
    };
    assert!(reason.contains("certificate"), "{reason}");
}

#[test]
fn garbage_or_wrong_pem_gives_invalid_certificate_errors() {
    let cert_pem = fixture("certs/certificate.pem");
    let private_pem = fixture("keys/private-key.pem");
    let two_certs = format!("{cert_pem}{cert_pem}");
    let garbage = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let mut flipped = cert_pem.clone().into_bytes();
    flipped[100] = if flipped[100] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (what, text) in [
        ("empty", ""),
        ("prose", "not a certificate"),
        ("two certificates", two_certs.as_str()),
        ("garbage body", garbage),
        ("private key", &private_pem),
        ("truncated", &cert_pem[..cert_pem.len() - 40]),
    ] {
        match SigningCertificate::from_pem(text) {
            Err(Error::InvalidCertificate { reason }) => assert!(!reason.is_empty()),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A flipped byte either fails to parse or breaks the self-signature; never a panic.
    match SigningCertificate::from_pem(&flipped) {
        Err(Error::InvalidCertificate { .. }) => {}
        Ok(cert) => assert!(!cert.report(utc(2030, 1, 1, 0, 0, 0)).is_ok()),
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn short_rsa_keys_are_refused() {
    let out = openssl(&["genrsa", "1024"]);
    assert!(out.status.success(), "{out:?}");
    let Err(Error::InvalidKey { reason }) = SigningKey::from_pem(&stdout(&out)) else {
        panic!("a 1024-bit key must be refused");
    };
    assert!(reason.contains("1024 bits"), "{reason}");
}
