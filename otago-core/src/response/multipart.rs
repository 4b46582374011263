//! `multipart/mixed` framing (RFC 2046) with a boundary derived from the parts.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// One part of a multipart body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part<'a> {
    /// The `name` in `content-disposition: inline; name="…"`.
    pub(crate) name: &'a str,
    /// The `expo-signature` part header, if any.
    pub(crate) signature: Option<&'a str>,
    /// The part body.
    pub(crate) body: &'a [u8],
}

/// A rendered multipart body and the boundary that frames it.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub(crate) boundary: String,
    pub(crate) body: Bytes,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The boundary for `parts`: `otago-` and 32 hex digits of SHA-256 over the parts and a
/// counter, the first counter whose boundary occurs in no part body or header.
fn boundary(parts: &[Part<'_>]) -> Result<String> {
    let mut digest = Sha256::new();
    for part in parts {
        for field in [
            part.name.as_bytes(),
            part.signature.unwrap_or_default().as_bytes(),
            part.body,
        ] {
            digest.update((field.len() as u64).to_be_bytes());
            digest.update(field);
        }
    }
    (0u32..1024)
        .map(|counter| {
            let hash = digest
                .clone()
                .chain_update(counter.to_be_bytes())
                .finalize();
            format!("otago-{}", hex::encode(&hash[..16]))
        })
        .find(|boundary| {
            let b = boundary.as_bytes();
            parts.iter().all(|part| {
                !contains(part.body, b)
                    && !contains(part.name.as_bytes(), b)
                    && !contains(part.signature.unwrap_or_default().as_bytes(), b)
            })
        })
        // Each try collides with probability ~2^-128; 1024 misses in a row do not happen.
        .ok_or_else(|| Error::InvalidManifest {
            reason: "no multipart boundary avoids the part bodies".to_owned(),
        })
}

/// Frames `parts` with CRLF line breaks: for each part `--B`, `content-disposition`,
/// `content-type: application/json`, maybe `expo-signature`, a blank line and the body;
/// then `--B--` and a final CRLF (which iOS requires).
pub(crate) fn render(parts: &[Part<'_>]) -> Result<Rendered> {
    let boundary = boundary(parts)?;
    let mut out = Vec::with_capacity(
        parts
            .iter()
            .map(|part| part.body.len() + 200)
            .sum::<usize>()
            + 64,
    );
    for part in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\ncontent-disposition: inline; name=\"");
        out.extend_from_slice(part.name.as_bytes());
        out.extend_from_slice(b"\"\r\ncontent-type: application/json\r\n");
        if let Some(signature) = part.signature {
            out.extend_from_slice(b"expo-signature: ");
            out.extend_from_slice(signature.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    Ok(Rendered {
        boundary,
        body: Bytes::from(out),
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use proptest::prelude::*;

    use super::*;

    /// Runs a future that never waits (multer over an in-memory stream).
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("an in-memory multipart stream never waits"),
        }
    }

    /// (name, headers in order, body) of every part, as multer reads them.
    type Parsed = Vec<(String, Vec<(String, String)>, Vec<u8>)>;

    fn parse_with_multer(rendered: &Rendered) -> Parsed {
        let chunk = Bytes::clone(&rendered.body);
        let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(chunk) });
        let mut multipart = multer::Multipart::new(stream, rendered.boundary.clone());
        block_on(async {
            let mut parts = Vec::new();
            while let Some(field) = multipart.next_field().await.unwrap() {
                let name = field.name().unwrap().to_owned();
                let headers = field
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (name.as_str().to_owned(), value.to_str().unwrap().to_owned())
                    })
                    .collect();
                parts.push((name, headers, field.bytes().await.unwrap().to_vec()));
            }
            parts
        })
    }

    fn expected_headers(part: &Part<'_>) -> Vec<(String, String)> {
        let mut headers = vec![
            (
                "content-disposition".to_owned(),
                format!("inline; name=\"{}\"", part.name),
            ),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        if let Some(signature) = part.signature {
            headers.push(("expo-signature".to_owned(), signature.to_owned()));
        }
        headers
    }

    fn tricky_body() -> impl Strategy<Value = Vec<u8>> {
        let fragment = prop_oneof![
            Just(b"--".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r\n--".to_vec()),
            Just(b"otago-".to_vec()),
            Just(b"--otago-0123456789abcdef0123456789abcdef--\r\n".to_vec()),
            Just(b"content-type: text/plain\r\n\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..16),
            "[ -~]{0,16}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(fragment, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn multer_reads_back_every_part(
            parts in proptest::collection::vec(
                (
                    prop_oneof![Just("manifest"), Just("extensions"), Just("directive")],
                    proptest::option::of("[A-Za-z0-9+/=]{1,40}"),
                    tricky_body(),
                ),
                1..4,
            )
        ) {
            let signatures: Vec<Option<String>> = parts
                .iter()
                .map(|(_, sig, _)| sig.as_ref().map(|sig| format!("sig=\"{sig}\", keyid=\"main\", alg=\"rsa-v1_5-sha256\"")))
                .collect();
            let parts: Vec<Part<'_>> = parts
                .iter()
                .zip(&signatures)
                .map(|((name, _, body), signature)| Part { name, signature: signature.as_deref(), body })
                .collect();
            let rendered = render(&parts).unwrap();
            let closing = format!("\r\n--{}--\r\n", rendered.boundary);
            prop_assert!(rendered.body.ends_with(closing.as_bytes()));
            for part in &parts {
                prop_assert!(!contains(part.body, rendered.boundary.as_bytes()));
            }
            let parsed = parse_with_multer(&rendered);
            prop_assert_eq!(parsed.len(), parts.len());
            for ((name, headers, body), part) in parsed.iter().zip(&parts) {
                prop_assert_eq!(name, part.name);
                prop_assert_eq!(headers, &expected_headers(part));
                prop_assert_eq!(body.as_slice(), part.body);
            }
        }
    }

    #[test]
    fn a_body_containing_the_boundary_gets_another_one() {
        let first = render(&[Part {
            name: "manifest",
            signature: None,
            body: b"{}",
        }])
        .unwrap();
        let hostile = format!("{{\"x\":\"\r\n--{}--\r\n\"}}", first.boundary);
        let part = Part {
            name: "manifest",
            signature: None,
            body: hostile.as_bytes(),
        };
        let second = render(&[part]).unwrap();
        assert_ne!(first.boundary, second.boundary);
        assert!(!contains(hostile.as_bytes(), second.boundary.as_bytes()));
        let parsed = parse_with_multer(&second);
        assert_eq!(parsed[0].2, hostile.as_bytes());
    }

    #[test]
    fn framing_is_byte_exact_and_deterministic() {
        let parts = [
            Part {
                name: "manifest",
                signature: Some("sig=\"AA==\", keyid=\"main\""),
                body: b"{\"id\":1}",
            },
            Part {
                name: "extensions",
                signature: None,
                body: b"{}",
            },
        ];
        let rendered = render(&parts).unwrap();
        assert_eq!(render(&parts).unwrap().body, rendered.body);
        let b = &rendered.boundary;
        assert!(b.len() <= 70 && b.starts_with("otago-"));
        let expected = format!(
            "--{b}\r\ncontent-disposition: inline; name=\"manifest\"\r\ncontent-type: application/json\r\nexpo-signature: sig=\"AA==\", keyid=\"main\"\r\n\r\n{{\"id\":1}}\r\n--{b}\r\ncontent-disposition: inline; name=\"extensions\"\r\ncontent-type: application/json\r\n\r\n{{}}\r\n--{b}--\r\n"
        );
        assert_eq!(rendered.body, expected.as_bytes());
    }
}
