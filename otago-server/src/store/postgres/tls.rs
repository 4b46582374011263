//! TLS to PostgreSQL (rustls), as libpq's `sslmode` says: `disable` sends in the clear;
//! `prefer` (the default: TLS when the server offers it) and `require` encrypt without checking
//! the server's certificate; `verify-ca` also checks that it chains to a trusted root, and
//! `verify-full` that it names the host too. The roots are `sslrootcert=PATH` (PEM) when given,
//! else the system's.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{StoreError, StoreResult};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Not at all (`prefer`, `require`, `disable`): encryption only.
    Nothing,
    /// Chains to a trusted root (`verify-ca`).
    Chain,
    /// Chains and names the host (`verify-full`).
    Full,
}

/// The connection settings of `url` for `tokio_postgres`, and the TLS connector its `sslmode`
/// and `sslrootcert` ask for (which `tokio_postgres` does not read itself).
pub(super) fn settings(url: &str) -> StoreResult<(tokio_postgres::Config, MakeRustlsConnect)> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut check = Check::Nothing;
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .unwrap_or_default();
        match (key.as_str(), value.as_str()) {
            ("sslmode", "verify-ca") => {
                check = Check::Chain;
                kept.push("sslmode=require".to_owned());
            }
            ("sslmode", "verify-full") => {
                check = Check::Full;
                kept.push("sslmode=require".to_owned());
            }
            ("sslrootcert", path) => root_file = Some(path.to_owned()),
            _ => kept.push(pair.to_owned()),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|err| StoreError::backend(format!("the database URL: {err}")))?;
    if config.get_application_name().is_none() {
        config.application_name("otago-server");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(StoreError::backend)?;
    let tls = match check {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptionOnly(
                provider.signature_verification_algorithms,
            ))),
        Check::Chain | Check::Full => {
            let roots = Arc::new(roots(root_file.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(StoreError::backend)?;
            let verifier: Arc<dyn ServerCertVerifier> = if check == Check::Chain {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
    }
    .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// The trusted roots: those in `file` (PEM), else the system's.
fn roots(file: Option<&str>) -> StoreResult<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match file {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|err| StoreError::backend(format!("sslrootcert {path}: {err}")))?;
            pem::parse_many(&text)
                .map_err(|err| StoreError::backend(format!("sslrootcert {path}: {err}")))?
                .into_iter()
                .filter(|block| block.tag() == "CERTIFICATE")
                .map(|block| CertificateDer::from(block.into_contents()))
                .collect()
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(StoreError::backend(match file {
            Some(path) => format!("sslrootcert {path} holds no certificate"),
            None => "no trusted root certificates on this system; pass sslrootcert=PATH".to_owned(),
        }));
    }
    Ok(roots)
}

/// Accepts any certificate, but still checks the handshake's signatures with it (so the
/// session is encrypted to whoever holds its key): libpq's `require`.
#[derive(Debug)]
struct EncryptionOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The chain is checked, the name is not: libpq's `verify-ca`.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
