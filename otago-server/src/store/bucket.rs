//! An S3-compatible bucket as the blob store (AWS S3, Cloudflare R2, MinIO), through
//! `object_store`.
//!
//! Objects are `<prefix>/<hash>` with `<hash>.gz` / `<hash>.br` beside them, each written with
//! the headers a CDN or a public bucket needs to serve it as the server would: the asset's
//! content type, `cache-control: public, max-age=31536000, immutable`, and the variants'
//! `content-encoding`. So an asset base URL of `https://<the bucket's public domain>/<prefix>`
//! serves every asset without a replica.
//!
//! An upload streams into a local temporary file while it is hashed, and only bytes that hash
//! to their name are sent to the bucket: nothing wrong is ever visible under a hash, and a
//! replica killed mid-upload leaves at most a temporary file it clears at its next start.
//! Downloads stream from the bucket, so a replica holds a few chunks of each, never the whole.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use otago_core::is_asset_hash;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::blobs::{TempPath, clear_folder, receive, save, verify_files};
use super::compress::{make_variants, variant_path};
use super::{
    BlobBody, BlobStore, ByteRange, Encoding, Encodings, IMMUTABLE, PutError, StoreError,
    StoreResult, StoredBlob,
};
use crate::config::S3Location;

/// Files up to this size go up in one request; larger ones in parts of this size.
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload in flight at once (bounds its memory to this many parts).
const PARTS_IN_FLIGHT: usize = 2;

/// Chunk size when reading a local file to send it.
const READ_CHUNK: usize = 256 * 1024;

/// Assets in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct BucketBlobStore {
    bucket: Arc<AmazonS3>,
    /// The key prefix, without slashes at either end (maybe empty).
    prefix: ObjectPath,
    /// Where uploads are staged (and variants made) before they go up.
    tmp: PathBuf,
    /// How the store is named in messages (`s3://bucket/prefix`).
    name: String,
}

impl BucketBlobStore {
    /// Connects to the bucket of `location` (settings from its query, then the `AWS_*`
    /// variables), staging uploads in `data_dir/tmp`, and checks that the bucket answers.
    ///
    /// # Errors
    /// When the settings are incomplete or the bucket cannot be listed with them.
    pub async fn connect(location: &S3Location, data_dir: &Path) -> StoreResult<Self> {
        let name = format!("s3://{}/{}", location.bucket, location.prefix);
        let store = Self::open(location, data_dir, &name)?;
        clear_folder(&store.tmp).map_err(StoreError::io)?;
        store
            .bucket
            .list_with_delimiter(Some(&store.prefix))
            .await
            .map_err(|err| {
                StoreError::backend(format!(
                    "cannot list {name} (check the endpoint, region and credentials): {err}"
                ))
            })?;
        Ok(store)
    }

    /// [`BucketBlobStore::connect`] without clearing staged files (for a check while a server
    /// runs).
    ///
    /// # Errors
    /// When the settings are incomplete.
    pub fn open_without_cleanup(location: &S3Location, data_dir: &Path) -> StoreResult<Self> {
        let name = format!("s3://{}/{}", location.bucket, location.prefix);
        Self::open(location, data_dir, &name)
    }

    fn open(location: &S3Location, data_dir: &Path, name: &str) -> StoreResult<Self> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
        for (key, value) in &location.options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|err| StoreError::backend(format!("{name}: {err}")))?;
            builder = builder.with_config(key, value);
        }
        if builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|endpoint| endpoint.starts_with("http://"))
        {
            builder = builder.with_allow_http(true);
        }
        let bucket = builder
            .build()
            .map_err(|err| StoreError::backend(format!("{name}: {err}")))?;
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(StoreError::io)?;
        Ok(Self {
            bucket: Arc::new(bucket),
            prefix: ObjectPath::from(location.prefix.as_str()),
            tmp,
            name: name.to_owned(),
        })
    }

    /// The object holding `hash` in `encoding`; `None` for anything that is not an asset hash.
    fn object(&self, hash: &str, encoding: Encoding) -> Option<ObjectPath> {
        if !is_asset_hash(hash) {
            return None;
        }
        let name = match encoding {
            Encoding::Identity => hash.to_owned(),
            Encoding::Gzip => format!("{hash}.gz"),
            Encoding::Brotli => format!("{hash}.br"),
        };
        Some(self.prefix.clone().join(name.as_str()))
    }

    fn failed(&self, what: &str, err: &object_store::Error) -> StoreError {
        StoreError::backend(format!("{} {what}: {err}", self.name))
    }

    /// Sends a local file up as `object` with `attributes`: in one request when small, in
    /// parts otherwise (an upload that fails is aborted, leaving nothing).
    async fn send_file(
        &self,
        file: &Path,
        size: u64,
        object: &ObjectPath,
        attributes: Attributes,
    ) -> StoreResult<()> {
        if size <= PART_BYTES as u64 {
            let bytes = tokio::fs::read(file).await.map_err(StoreError::io)?;
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.bucket
                .put_opts(object, PutPayload::from(bytes), options)
                .await
                .map_err(|err| self.failed("refused an upload", &err))?;
            return Ok(());
        }
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .bucket
            .put_multipart_opts(object, options)
            .await
            .map_err(|err| self.failed("refused an upload", &err))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        match send_parts(file, &mut writer).await {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(|err| self.failed("refused an upload", &err))?;
                Ok(())
            }
            Err(err) => {
                let _ = writer.abort().await;
                Err(err)
            }
        }
    }

    /// Downloads `object` into `file`; its attributes, or `None` when there is no such object.
    async fn fetch_to(&self, object: &ObjectPath, file: &Path) -> StoreResult<Option<Attributes>> {
        let got = match self.bucket.get(object).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(self.failed("did not send an object", &err)),
        };
        let attributes = got.attributes.clone();
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(StoreError::io)?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| self.failed("broke off a download", &err))?;
            out.write_all(&chunk).await.map_err(StoreError::io)?;
        }
        out.flush().await.map_err(StoreError::io)?;
        Ok(Some(attributes))
    }

    /// A fresh staging folder under `tmp/`, removed when the returned guard drops.
    fn staging(&self, what: &str) -> StoreResult<TempPath> {
        let dir = self
            .tmp
            .join(format!("{what}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&dir).map_err(StoreError::io)?;
        Ok(TempPath::dir(dir))
    }
}

/// Reads `file` into the multipart writer, keeping at most [`PARTS_IN_FLIGHT`] parts in flight.
async fn send_parts(file: &Path, writer: &mut WriteMultipart) -> StoreResult<()> {
    let mut file = tokio::fs::File::open(file).await.map_err(StoreError::io)?;
    let mut buffer = vec![0; READ_CHUNK];
    loop {
        let n = file.read(&mut buffer).await.map_err(StoreError::io)?;
        if n == 0 {
            return Ok(());
        }
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|err| StoreError::backend(format!("a part upload failed: {err}")))?;
        writer.write(&buffer[..n]);
    }
}

/// The headers every object is written with.
fn object_attributes(content_type: &str, encoding: Option<&'static str>) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.to_owned().into());
    attributes.insert(Attribute::CacheControl, IMMUTABLE.into());
    if let Some(token) = encoding {
        attributes.insert(Attribute::ContentEncoding, token.into());
    }
    attributes
}

#[async_trait]
impl BlobStore for BucketBlobStore {
    async fn put(
        &self,
        hash: &str,
        content_type: &str,
        limit: u64,
        body: super::ByteStream,
    ) -> Result<StoredBlob, PutError> {
        let object =
            self.object(hash, Encoding::Identity)
                .ok_or_else(|| PutError::HashMismatch {
                    actual: "(not an asset hash)".to_owned(),
                })?;
        let staged = TempPath::file(
            self.tmp
                .join(format!("upload-{:016x}", rand::random::<u64>())),
        );
        let (key, size) = receive(hash, limit, body, staged.path()).await?;
        self.send_file(
            staged.path(),
            size,
            &object,
            object_attributes(content_type, None),
        )
        .await?;
        Ok(StoredBlob { key, size })
    }

    async fn compress(&self, hash: &str, brotli_quality: u32) -> StoreResult<Encodings> {
        let object = self
            .object(hash, Encoding::Identity)
            .ok_or_else(|| StoreError::backend("not an asset hash"))?;
        let dir = self.staging("compress")?;
        let plain = dir.path().join(hash);
        let attributes = self
            .fetch_to(&object, &plain)
            .await?
            .ok_or_else(|| StoreError::backend(format!("{} has no object {object}", self.name)))?;
        let content_type = attributes
            .get(&Attribute::ContentType)
            .map_or("application/octet-stream", |value| value.as_ref())
            .to_owned();
        let (plain_for_task, tmp) = (plain.clone(), dir.path().to_owned());
        let encodings = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let size = std::fs::metadata(&plain_for_task)?.len();
            make_variants(&plain_for_task, &tmp, size, brotli_quality)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::io)?;
        for (encoding, suffix) in [(Encoding::Gzip, "gz"), (Encoding::Brotli, "br")] {
            if !encodings.has(encoding) {
                continue;
            }
            let file = variant_path(&plain, suffix);
            let size = tokio::fs::metadata(&file)
                .await
                .map_err(StoreError::io)?
                .len();
            let target = self
                .object(hash, encoding)
                .ok_or_else(|| StoreError::backend("not an asset hash"))?;
            self.send_file(
                &file,
                size,
                &target,
                object_attributes(&content_type, encoding.token()),
            )
            .await?;
        }
        Ok(encodings)
    }

    async fn open(
        &self,
        hash: &str,
        encoding: Encoding,
        range: Option<ByteRange>,
    ) -> StoreResult<Option<BlobBody>> {
        let Some(object) = self.object(hash, encoding) else {
            return Ok(None);
        };
        let wanted = match range {
            Some(ByteRange { start, end }) if encoding == Encoding::Identity && start <= end => {
                Some(start..end + 1)
            }
            Some(_) => return Err(StoreError::backend("range outside the stored object")),
            None => None,
        };
        let options = GetOptions {
            range: wanted.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = match self.bucket.get_opts(&object, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(self.failed("did not send an object", &err)),
        };
        if wanted.is_some_and(|wanted| wanted != got.range) {
            return Err(StoreError::backend("range outside the stored object"));
        }
        let len = got.range.end - got.range.start;
        let stream = got.into_stream().map_err(io::Error::other).boxed();
        Ok(Some(BlobBody { len, stream }))
    }

    async fn read(&self, hash: &str, encoding: Encoding) -> StoreResult<Option<Bytes>> {
        let Some(object) = self.object(hash, encoding) else {
            return Ok(None);
        };
        let got = match self.bucket.get(&object).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(self.failed("did not send an object", &err)),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(|err| self.failed("broke off a download", &err))
    }

    async fn verify(&self, hash: &str) -> StoreResult<Vec<String>> {
        let Some(object) = self.object(hash, Encoding::Identity) else {
            return Ok(vec![format!("`{hash}` is not an asset hash")]);
        };
        let dir = self.staging("verify")?;
        let plain = dir.path().join(hash);
        if self.fetch_to(&object, &plain).await?.is_none() {
            return Ok(vec![format!(
                "asset {hash}: {} has no object {object}",
                self.name
            )]);
        }
        for (encoding, suffix) in [(Encoding::Gzip, "gz"), (Encoding::Brotli, "br")] {
            if let Some(variant) = self.object(hash, encoding) {
                self.fetch_to(&variant, &variant_path(&plain, suffix))
                    .await?;
            }
        }
        let hash = hash.to_owned();
        let problems = tokio::task::spawn_blocking(move || verify_files(&plain, &hash))
            .await
            .map_err(StoreError::backend)?;
        drop(dir);
        Ok(problems)
    }

    async fn put_variant(
        &self,
        hash: &str,
        encoding: Encoding,
        content_type: &str,
        body: super::ByteStream,
    ) -> StoreResult<()> {
        let target = self
            .object(hash, encoding)
            .filter(|_| encoding != Encoding::Identity)
            .ok_or_else(|| StoreError::backend("not an asset hash and a compressed encoding"))?;
        let staged = TempPath::file(
            self.tmp
                .join(format!("variant-{:016x}", rand::random::<u64>())),
        );
        let size = save(body, staged.path()).await?;
        self.send_file(
            staged.path(),
            size,
            &target,
            object_attributes(content_type, encoding.token()),
        )
        .await
    }

    async fn stored_hashes(&self) -> StoreResult<Vec<String>> {
        let mut listing = self.bucket.list(Some(&self.prefix));
        let mut hashes = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|err| self.failed("did not list its objects", &err))?;
            let in_prefix = meta
                .location
                .prefix_match(&self.prefix)
                .map(Iterator::count);
            if in_prefix == Some(1)
                && let Some(name) = meta.location.filename()
                && is_asset_hash(name)
            {
                hashes.push(name.to_owned());
            }
        }
        hashes.sort();
        Ok(hashes)
    }
}
