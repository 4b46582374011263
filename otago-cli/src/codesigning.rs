//! `otago codesigning generate`: the same files as `npx expo-updates codesigning:generate`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use otago_core::{SigningCertificate, Timestamp, generate_key_and_certificate};
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::settings::CodesigningSettings;

/// The key id `otago` suggests for `codeSigningMetadata` (what `codesigning:configure` writes).
pub const SUGGESTED_KEY_ID: &str = "main";

/// What `otago codesigning generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CodesigningReport {
    /// `private-key.pem` (mode 0600): keep it secret, give it to `otago deploy` as OTAGO_PRIVATE_KEY.
    pub private_key: PathBuf,
    /// `public-key.pem`.
    pub public_key: PathBuf,
    /// `certificate.pem`: embed it in the app via `updates.codeSigningCertificate`.
    pub certificate: PathBuf,
    /// The certificate's common name.
    pub common_name: String,
    /// The certificate's end of validity, `YYYY-MM-DDTHH:mm:ss.sssZ`.
    pub valid_until: String,
    /// The `updates` keys to put in app.json.
    pub app_json_updates: serde_json::Value,
}

/// Generates a key pair and a self-signed certificate and writes the three PEM files.
///
/// Both folders are created when missing and must otherwise be empty, so no key is ever
/// overwritten.
///
/// # Errors
/// [`CliError::NotEmpty`] for a folder with files in it, [`CliError::Io`] when writing fails,
/// [`CliError::Core`] when generation fails.
pub fn generate(settings: &CodesigningSettings, now: SystemTime) -> Result<CodesigningReport> {
    for dir in [
        &settings.key_output_directory,
        &settings.certificate_output_directory,
    ] {
        ensure_empty_or_missing(dir)?;
    }
    let mut rng = rand::rngs::OsRng;
    let files = generate_key_and_certificate(
        &mut rng,
        &settings.common_name,
        settings.validity_years,
        now,
    )
    .map_err(CliError::core("generating the key and certificate"))?;
    let certificate = SigningCertificate::from_pem(&files.certificate_pem)
        .map_err(CliError::core("reading the generated certificate"))?;
    let not_after = certificate.report(now).not_after;

    for dir in [
        &settings.key_output_directory,
        &settings.certificate_output_directory,
    ] {
        fs::create_dir_all(dir).map_err(CliError::io("create", dir))?;
    }
    let private_key = settings.key_output_directory.join("private-key.pem");
    let public_key = settings.key_output_directory.join("public-key.pem");
    let certificate_path = settings
        .certificate_output_directory
        .join("certificate.pem");
    write_new(&private_key, &files.private_key_pem, true)?;
    write_new(&public_key, &files.public_key_pem, false)?;
    write_new(&certificate_path, &files.certificate_pem, false)?;

    let relative_certificate = if certificate_path.is_absolute() {
        certificate_path.display().to_string()
    } else {
        format!("./{}", slash_path(&certificate_path))
    };
    Ok(CodesigningReport {
        private_key,
        public_key,
        certificate: certificate_path,
        common_name: settings.common_name.clone(),
        valid_until: Timestamp::from_system_time(not_after)
            .map_or_else(|_| "after 9999".to_owned(), |t| t.to_string()),
        app_json_updates: serde_json::json!({
            "codeSigningCertificate": relative_certificate,
            "codeSigningMetadata": { "keyid": SUGGESTED_KEY_ID, "alg": otago_core::SIGNATURE_ALGORITHM },
        }),
    })
}

fn ensure_empty_or_missing(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CliError::NotEmpty {
                    path: dir.to_owned(),
                });
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => Err(CliError::NotEmpty {
            path: dir.to_owned(),
        }),
        Err(err) => Err(CliError::io("read the folder", dir)(err)),
    }
}

/// Writes a file that must not exist yet; a secret one gets mode 0600 on Unix.
fn write_new(path: &Path, contents: &str, secret: bool) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(CliError::io("create", path))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(CliError::io("write", path))
}

/// A path with `/` separators and without a leading `./`, for app.json.
fn slash_path(path: &Path) -> String {
    let text = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    text.trim_start_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_paths_drop_the_current_dir() {
        assert_eq!(
            slash_path(Path::new("./certs/certificate.pem")),
            "certs/certificate.pem"
        );
    }
}
