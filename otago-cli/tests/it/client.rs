//! The API client's retries, against a scripted HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use otago_cli::CliError;
use otago_cli::client::{Client, NewGroup};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::block_on;

/// Serves the scripted `(status, body)` answers in turn (the last one repeats) and counts requests.
async fn scripted(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let (status, body) = answers[n.min(answers.len() - 1)];
            // Read the head and the body (Content-Length) before answering.
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let read = socket.read(&mut buf).await.unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..read]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, count)
}

const STORED: &str = r#"{"hash":"h","key":"k","size":3,"content_type":"image/png","created":true}"#;
const UNAVAILABLE: &str = r#"{"error":{"code":"unavailable","message":"busy","hint":"try later"}}"#;

#[test]
fn uploads_are_retried_on_5xx_and_429() {
    block_on(async {
        let (url, count) =
            scripted(vec![(503, UNAVAILABLE), (429, UNAVAILABLE), (201, STORED)]).await;
        let client = Client::new(&url, Some("otago_x")).unwrap();
        let stored = client
            .upload_asset(
                "p_abcdefghij",
                "h",
                "image/png",
                bytes::Bytes::from_static(b"abc"),
            )
            .await
            .unwrap();
        assert!(stored.created);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn refusals_are_not_retried_and_carry_the_servers_words() {
    block_on(async {
        let body = r#"{"error":{"code":"hash_mismatch","message":"the bytes do not hash to h","hint":"upload the file's exact bytes"}}"#;
        let (url, count) = scripted(vec![(422, body)]).await;
        let client = Client::new(&url, Some("otago_x")).unwrap();
        let err = client
            .upload_asset(
                "p_abcdefghij",
                "h",
                "image/png",
                bytes::Bytes::from_static(b"abc"),
            )
            .await
            .unwrap_err();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(
            matches!(&err, CliError::Api { status: 422, code, .. } if code == "hash_mismatch"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("the bytes do not hash to h")
                && text.contains("upload the file's exact bytes"),
            "{text}"
        );
    });
}

#[test]
fn a_publish_that_reached_the_server_is_not_repeated() {
    block_on(async {
        let (url, count) = scripted(vec![(503, UNAVAILABLE), (201, "{}")]).await;
        let client = Client::new(&url, Some("otago_x")).unwrap();
        let group = NewGroup {
            runtime_version: "1".into(),
            message: None,
            rollout_percentage: 100,
            health_gate: None,
            ramp: None,
            updates: Vec::new(),
        };
        let err = client
            .publish_group("p_abcdefghij", &group)
            .await
            .unwrap_err();
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "a 503 after sending may have published: not retried"
        );
        assert_eq!(err.exit_code(), otago_cli::OtagoExitCode::SERVER_ERROR);
    });
}
