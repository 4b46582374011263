//! `https://` servers: a real TLS server on loopback whose certificate is signed by a
//! throwaway certificate authority made here with `openssl`. Untrusted, the CLI says so and
//! names the stores it tried; with `SSL_CERT_FILE` (or `SSL_CERT_DIR`) pointing at the
//! authority it works.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use crate::harness::{ADMIN_TOKEN, TestServer, otago};

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on the PATH");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority `name.pem` (key `name.key`) in `dir`.
fn authority(dir: &Path, name: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            "/CN=Otago Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `server.pem` / `server.key` for 127.0.0.1, signed by the authority `ca`.
fn server_certificate(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// A TLS endpoint on 127.0.0.1 in front of `backend` (host:port), on its own thread;
/// returns its `https://` URL.
fn tls_proxy(dir: &Path, backend: String) -> String {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    // A refused handshake (the untrusted case) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
    });
    url
}

#[test]
fn tls_untrusted_authority_is_named_and_ssl_cert_file_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    authority(dir.path(), "ca");
    authority(dir.path(), "other");
    server_certificate(dir.path());
    let server = TestServer::start();
    let backend = server.url.trim_start_matches("http://").to_owned();
    let url = tls_proxy(dir.path(), backend);
    let args = ["projects", "list", "--json", "--server-url", url.as_str()];

    // Neither the bundled roots nor the system store know the authority.
    let untrusted = otago(&args, &[("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN)]);
    assert_eq!(untrusted.code, 4, "{untrusted:?}");
    assert!(untrusted.stdout.is_empty());
    for expected in [
        "is not trusted",
        "signed by a certificate authority that is not trusted here",
        "the Mozilla roots bundled with otago",
        "the system certificate store (",
        "point SSL_CERT_FILE at",
    ] {
        assert!(
            untrusted.stderr.contains(expected),
            "{expected}: {}",
            untrusted.stderr
        );
    }
    assert!(
        !untrusted.stderr.contains("is running"),
        "{}",
        untrusted.stderr
    );

    // SSL_CERT_FILE with another authority: still refused, and the message says what it read.
    let other = dir.path().join("other.pem");
    let other = other.to_str().unwrap();
    let wrong = otago(
        &args,
        &[("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN), ("SSL_CERT_FILE", other)],
    );
    assert_eq!(wrong.code, 4, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains(&format!("SSL_CERT_FILE={other} (1 certificate)")),
        "{}",
        wrong.stderr
    );

    // SSL_CERT_FILE with the server's authority: works.
    let ca = dir.path().join("ca.pem");
    let trusted = otago(
        &args,
        &[
            ("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    )
    .ok();
    assert!(trusted.json()["projects"].is_array(), "{}", trusted.stdout);

    // So does SSL_CERT_DIR with the authority in a hashed folder (`openssl rehash`).
    let folder = dir.path().join("certs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&ca, folder.join("ca.pem")).unwrap();
    openssl(&folder, &["rehash", "."]);
    let trusted = otago(
        &args,
        &[
            ("OTAGO_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SSL_CERT_DIR", folder.to_str().unwrap()),
        ],
    )
    .ok();
    assert!(trusted.json()["projects"].is_array(), "{}", trusted.stdout);
}
