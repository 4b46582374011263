//! Which certificate authorities the client trusts for `https://` servers: the Mozilla roots
//! bundled with the CLI, plus the platform's store, so that a server behind a company CA
//! works once that CA is trusted on the machine.
//!
//! The platform's store is read as OpenSSL reads it: `SSL_CERT_FILE` (a PEM bundle) and
//! `SSL_CERT_DIR` (a hashed folder) when set, in place of the system's default locations; on
//! macOS and Windows the system keychain or store. When a server's certificate is refused,
//! [`TrustStores`] names what was tried, for the error message.

use std::fmt;

/// What the client trusts, described for error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustStores {
    stores: Vec<String>,
}

impl fmt::Display for TrustStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stores.join(", "))
    }
}

/// Where the platform's certificates came from, as OpenSSL's variables say.
fn platform_source() -> String {
    // The same variables rustls-native-certs reads just before; read only to name them.
    let named = |name: &str| {
        std::env::var_os(name)
            .filter(|value| !value.is_empty())
            .map(|value| format!("{name}={}", value.to_string_lossy()))
    };
    let from_env: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(named)
        .collect();
    if from_env.is_empty() {
        "the system certificate store".to_owned()
    } else {
        from_env.join(" and ")
    }
}

/// Adds the platform's certificates to `builder` (the bundled roots are reqwest's own).
pub(crate) fn with_platform_roots(
    mut builder: reqwest::ClientBuilder,
) -> (reqwest::ClientBuilder, TrustStores) {
    let loaded = rustls_native_certs::load_native_certs();
    let mut added = 0usize;
    for certificate in &loaded.certs {
        if let Ok(certificate) = reqwest::Certificate::from_der(certificate.as_ref()) {
            builder = builder.add_root_certificate(certificate);
            added += 1;
        }
    }
    let mut platform = format!(
        "{} ({added} certificate{})",
        platform_source(),
        if added == 1 { "" } else { "s" }
    );
    if let Some(err) = loaded.errors.first() {
        platform.push_str(&format!("; reading it failed: {err}"));
    }
    let stores = vec!["the Mozilla roots bundled with otago".to_owned(), platform];
    (builder, TrustStores { stores })
}

/// `err`'s rustls error, looking through I/O errors (whose `source()` skips what they wrap).
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut node = err;
    loop {
        if let Some(found) = node.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        node = node.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// The reason a TLS handshake refused the server's certificate, if that is what `err` is.
pub(crate) fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(inner) = source {
        if let Some(rustls::Error::InvalidCertificate(problem)) = rustls_error(inner) {
            return Some(match problem {
                rustls::CertificateError::UnknownIssuer => {
                    "it is signed by a certificate authority that is not trusted here".to_owned()
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "it is not valid for this host name".to_owned()
                }
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => "it expired".to_owned(),
                other => format!("{other:?}"),
            });
        }
        source = inner.source();
    }
    None
}
