//! `otago codesigning generate` writes what `npx expo-updates codesigning:generate` writes.

use std::process::Command;

use otago_cli::OtagoExitCode;

use crate::harness::{assert_keys, otago};

fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn generated_files_are_accepted_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let certs = dir.path().join("certs");
    let run = otago(
        &[
            "--json",
            "codesigning",
            "generate",
            "--key-output-directory",
            &keys.to_string_lossy(),
            "--certificate-output-directory",
            &certs.to_string_lossy(),
            "--certificate-validity-duration-years",
            "10",
            "--certificate-common-name",
            "Test App",
        ],
        &[],
    )
    .ok();
    let report = run.json();
    assert_keys(
        &report,
        &[
            "private_key",
            "public_key",
            "certificate",
            "common_name",
            "valid_until",
            "app_json_updates",
        ],
    );
    assert_eq!(
        report["app_json_updates"]["codeSigningMetadata"]["alg"],
        "rsa-v1_5-sha256"
    );

    let key = keys.join("private-key.pem");
    let public = keys.join("public-key.pem");
    let cert = certs.join("certificate.pem");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let text = openssl(&["x509", "-noout", "-text", "-in", &cert.to_string_lossy()]);
    assert!(
        text.contains("Subject: CN=Test App") || text.contains("Subject: CN = Test App"),
        "{text}"
    );
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(text.contains("Code Signing"), "{text}");
    openssl(&["rsa", "-check", "-noout", "-in", &key.to_string_lossy()]);
    let cert_key = openssl(&["x509", "-noout", "-pubkey", "-in", &cert.to_string_lossy()]);
    assert_eq!(
        cert_key,
        std::fs::read_to_string(&public).unwrap(),
        "the certificate holds the public key"
    );
    // Self-signed: the certificate verifies against itself.
    openssl(&[
        "verify",
        "-CAfile",
        &cert.to_string_lossy(),
        "-purpose",
        "any",
        &cert.to_string_lossy(),
    ]);
}

#[test]
fn non_empty_output_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("private-key.pem"), "precious").unwrap();
    let run = otago(
        &[
            "codesigning",
            "generate",
            "--key-output-directory",
            &keys.to_string_lossy(),
            "--certificate-output-directory",
            &dir.path().join("certs").to_string_lossy(),
            "--certificate-validity-duration-years",
            "10",
            "--certificate-common-name",
            "Test App",
        ],
        &[],
    );
    assert_eq!(run.code, i32::from(OtagoExitCode::INVALID_INPUT), "{run:?}");
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(keys.join("private-key.pem")).unwrap(),
        "precious"
    );
    assert!(
        !dir.path().join("certs").exists(),
        "nothing is written when refusing"
    );
}
