//! The blob store contract, run against both backends: the local folder, and a real
//! S3-compatible server on loopback (`OTAGO_TEST_S3_URL`, started by `.ci/run`) reached through
//! `object_store`. Then what only a bucket must do: objects a CDN can serve as they are, and a
//! corrupted object found by the check.

use std::io::Read as _;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use otago_server::store::{
    BlobStore, ByteRange, ByteStream, Encoding, LocalBlobStore, PutError, open_blobs,
};

use crate::harness::fresh_bucket;

fn body(parts: Vec<Vec<u8>>) -> ByteStream {
    futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
}

/// A body that sends `first` and then fails, as a client that went away.
fn broken_body(first: Vec<u8>) -> ByteStream {
    futures_util::stream::iter(vec![
        Ok(Bytes::from(first)),
        Err(std::io::Error::other("the client went away")),
    ])
    .boxed()
}

async fn opened(store: &dyn BlobStore, hash: &str, encoding: Encoding) -> Vec<u8> {
    let blob = store.open(hash, encoding, None).await.unwrap().unwrap();
    let chunks: Vec<Bytes> = blob.stream.try_collect().await.unwrap();
    let bytes = chunks.concat();
    assert_eq!(bytes.len() as u64, blob.len);
    bytes
}

/// A compressible "bundle" of `len` bytes.
fn bundle(len: usize, seed: u64) -> Vec<u8> {
    let line = format!("console.log('otago storage test {seed}');\n");
    line.bytes().cycle().take(len).collect()
}

/// Bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

/// What every blob store promises.
async fn keeps_the_promises_of_a_blob_store(store: Arc<dyn BlobStore>) {
    let text = bundle(20_000, rand::random());
    let hash = otago_core::asset_hash(&text);

    // Refused and broken uploads leave nothing under the hash.
    let err = store
        .put(
            &hash,
            "application/javascript",
            1000,
            body(vec![text.clone()]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PutError::TooLarge { limit: 1000 }), "{err}");
    let err = store
        .put(
            &hash,
            "application/javascript",
            1 << 20,
            body(vec![noise(10)]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PutError::HashMismatch { .. }), "{err}");
    let err = store
        .put(
            &hash,
            "application/javascript",
            1 << 20,
            broken_body(text[..100].to_vec()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PutError::Body(_)), "{err}");
    assert!(
        store
            .open(&hash, Encoding::Identity, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.stored_hashes().await.unwrap().is_empty());

    // Stored in chunks, read back whole, in a range, and in memory.
    let (head, tail) = text.split_at(7_000);
    let stored = store
        .put(
            &hash,
            "application/javascript",
            1 << 20,
            body(vec![head.to_vec(), tail.to_vec()]),
        )
        .await
        .unwrap();
    assert_eq!(stored.size, text.len() as u64);
    assert_eq!(stored.key, otago_core::asset_key(&text));
    assert_eq!(opened(&*store, &hash, Encoding::Identity).await, text);
    let range = store
        .open(
            &hash,
            Encoding::Identity,
            Some(ByteRange {
                start: 100,
                end: 199,
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(range.len, 100);
    let chunks: Vec<Bytes> = range.stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), &text[100..200]);
    assert_eq!(
        store
            .read(&hash, Encoding::Identity)
            .await
            .unwrap()
            .unwrap(),
        text
    );

    // Variants: made once, smaller, and decoding to the same bytes.
    let encodings = store.compress(&hash, 5).await.unwrap();
    assert!(encodings.gzip && encodings.brotli, "{encodings:?}");
    let gzip = opened(&*store, &hash, Encoding::Gzip).await;
    let brotli = opened(&*store, &hash, Encoding::Brotli).await;
    assert!(gzip.len() < text.len() / 10 && brotli.len() < text.len() / 10);
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzip[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, text);
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&brotli[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, text);

    // A variant copied in as it is: a wrong one is found by verify, the right one is served.
    store
        .put_variant(
            &hash,
            Encoding::Gzip,
            "application/javascript",
            body(vec![brotli.clone()]),
        )
        .await
        .unwrap();
    let problems = store.verify(&hash).await.unwrap();
    assert!(problems.iter().any(|p| p.contains("gz")), "{problems:?}");
    store
        .put_variant(
            &hash,
            Encoding::Gzip,
            "application/javascript",
            body(vec![gzip.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(opened(&*store, &hash, Encoding::Gzip).await, gzip);

    // A large incompressible asset (several parts in a bucket) round-trips; no variants.
    let large = noise(9 * 1024 * 1024 + 123);
    let large_hash = otago_core::asset_hash(&large);
    let parts: Vec<Vec<u8>> = large.chunks(1 << 20).map(<[u8]>::to_vec).collect();
    store
        .put(&large_hash, "image/png", 64 << 20, body(parts))
        .await
        .unwrap();
    assert_eq!(
        otago_core::asset_hash(&opened(&*store, &large_hash, Encoding::Identity).await),
        large_hash
    );
    let encodings = store.compress(&large_hash, 5).await.unwrap();
    assert!(!encodings.gzip && !encodings.brotli, "{encodings:?}");
    assert!(
        store
            .open(&large_hash, Encoding::Gzip, None)
            .await
            .unwrap()
            .is_none()
    );

    // Whole, listed, and nothing else answers.
    assert!(store.verify(&hash).await.unwrap().is_empty());
    assert!(store.verify(&large_hash).await.unwrap().is_empty());
    let mut expected = vec![hash.clone(), large_hash.clone()];
    expected.sort();
    assert_eq!(store.stored_hashes().await.unwrap(), expected);
    let missing = otago_core::asset_hash(b"never stored");
    assert!(
        store
            .open(&missing, Encoding::Identity, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read(&missing, Encoding::Identity)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.verify(&missing).await.unwrap().is_empty());
    assert!(
        store
            .open("../../etc/passwd", Encoding::Identity, None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_local_folder_keeps_the_promises_of_a_blob_store() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = LocalBlobStore::open(dir.path()).unwrap();
    keeps_the_promises_of_a_blob_store(Arc::new(store)).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn a_bucket_keeps_the_promises_of_a_blob_store() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (storage, _) = fresh_bucket();
    let store = open_blobs(Some(&storage), dir.path(), true).await.unwrap();
    keeps_the_promises_of_a_blob_store(store).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "staged uploads and variants are removed"
    );
}

#[tokio::test]
async fn bucket_objects_carry_what_a_cdn_needs_and_a_corrupted_one_is_found() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (storage, public) = fresh_bucket();
    let store = open_blobs(Some(&storage), dir.path(), true).await.unwrap();
    let text = bundle(30_000, rand::random());
    let hash = otago_core::asset_hash(&text);
    store
        .put(
            &hash,
            "application/javascript",
            1 << 20,
            body(vec![text.clone()]),
        )
        .await
        .unwrap();
    store.compress(&hash, 5).await.unwrap();

    // Fetched anonymously from the bucket's public endpoint, as a CDN would.
    let client = reqwest::Client::new();
    for (suffix, encoding) in [("", None), (".gz", Some("gzip")), (".br", Some("br"))] {
        let response = client
            .get(format!("{public}/{hash}{suffix}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{suffix}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["content-type"], "application/javascript",
            "{suffix}"
        );
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{suffix}"
        );
        assert_eq!(
            headers.get("content-encoding").map(|v| v.to_str().unwrap()),
            encoding,
            "{suffix}"
        );
        let bytes = response.bytes().await.unwrap();
        if suffix.is_empty() {
            assert_eq!(bytes, text);
        }
    }

    // A bad bucket URL fails at start, naming the bucket.
    let otago_server::config::StorageUrl::S3(mut wrong) = storage.clone() else {
        unreachable!()
    };
    wrong.options.retain(|(key, _)| key != "secret_access_key");
    wrong
        .options
        .push(("secret_access_key".into(), "not-the-secret".into()));
    let err = open_blobs(
        Some(&otago_server::config::StorageUrl::S3(wrong)),
        dir.path(),
        true,
    )
    .await
    .err()
    .expect("a wrong secret is refused")
    .to_string();
    assert!(err.contains("cannot list s3://"), "{err}");
    assert!(!err.contains("otago-test-secret"), "{err}");

    // Someone overwrites the object in the bucket: the check's verify says so.
    let response = client
        .put(format!("{public}/{hash}"))
        .body(b"not the asset".to_vec())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let problems = store.verify(&hash).await.unwrap();
    assert!(
        problems.iter().any(|p| p.contains("hash to")),
        "{problems:?}"
    );
}
