//! The local-folder blob store: `assets/<first two chars>/<hash>` plus `.gz`/`.br` siblings.
//!
//! Uploads stream into `tmp/`, are hashed on the way, synced and renamed into place, so a
//! killed upload never leaves a visible asset. Names are checked to be asset hashes before any
//! path is built, so nothing outside the folder can be reached.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use otago_core::{AssetHasher, is_asset_hash};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio_util::io::ReaderStream;

use super::compress::{make_variants, variant_path};
use super::{
    BlobBody, BlobStore, ByteRange, ByteStream, Encoding, Encodings, PutError, StoreError,
    StoreResult, StoredBlob,
};

/// Chunk size when streaming a file out.
const READ_CHUNK: usize = 64 * 1024;

/// Assets in a local folder.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// Removes a temporary file or folder when dropped, unless disarmed (so a cancelled upload
/// leaves nothing).
pub(super) struct TempPath {
    path: Option<PathBuf>,
    is_dir: bool,
}

impl TempPath {
    /// Guards a file.
    pub(super) fn file(path: PathBuf) -> Self {
        Self {
            path: Some(path),
            is_dir: false,
        }
    }

    /// Guards a folder and everything in it.
    pub(super) fn dir(path: PathBuf) -> Self {
        Self {
            path: Some(path),
            is_dir: true,
        }
    }

    /// The guarded path.
    pub(super) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Keeps the path (it was renamed into place).
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = if self.is_dir {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

/// Empties a staging folder: what killed uploads left.
pub(super) fn clear_folder(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
    }
    Ok(())
}

impl LocalBlobStore {
    /// Opens (creating) `data_dir/assets` and `data_dir/tmp`, clearing leftovers of killed uploads.
    ///
    /// # Errors
    /// When the folders cannot be created.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("assets");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&tmp)?;
        clear_folder(&tmp)?;
        Ok(Self { root, tmp })
    }

    /// Opens the folders without touching temporary files (for a check while a server runs).
    ///
    /// # Errors
    /// When the folders do not exist.
    pub fn open_without_cleanup(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("assets");
        std::fs::metadata(&root)?;
        Ok(Self {
            root,
            tmp: data_dir.join("tmp"),
        })
    }

    /// Where the plain bytes of `hash` live, `None` for anything that is not an asset hash.
    #[must_use]
    pub fn path_of(&self, hash: &str) -> Option<PathBuf> {
        is_asset_hash(hash).then(|| self.root.join(&hash[..2]).join(hash))
    }

    /// Every file in the folder that is named like an asset (plain bytes only).
    fn list_hashes(root: &Path) -> io::Result<Vec<String>> {
        let mut hashes = Vec::new();
        for shard in std::fs::read_dir(root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(shard.path())? {
                let name = file?.file_name().to_string_lossy().into_owned();
                if is_asset_hash(&name) {
                    hashes.push(name);
                }
            }
        }
        hashes.sort();
        Ok(hashes)
    }

    fn encoded_path(&self, hash: &str, encoding: Encoding) -> Option<PathBuf> {
        let plain = self.path_of(hash)?;
        Some(match encoding {
            Encoding::Identity => plain,
            Encoding::Gzip => variant_path(&plain, "gz"),
            Encoding::Brotli => variant_path(&plain, "br"),
        })
    }
}

/// Streams `body` into the new file `tmp`, hashing it on the way and stopping past `limit`;
/// `(MD5 key, size)` when the bytes hash to `hash`. The file is synced.
pub(super) async fn receive(
    hash: &str,
    limit: u64,
    mut body: ByteStream,
    tmp: &Path,
) -> Result<(String, u64), PutError> {
    let mut file = tokio::fs::File::create_new(tmp)
        .await
        .map_err(StoreError::io)?;
    let mut hasher = AssetHasher::default();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| PutError::Body(err.to_string()))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > limit {
            return Err(PutError::TooLarge { limit });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(StoreError::io)?;
    }
    file.flush().await.map_err(StoreError::io)?;
    file.sync_all().await.map_err(StoreError::io)?;
    let (actual, key) = hasher.finish();
    if actual != hash {
        return Err(PutError::HashMismatch { actual });
    }
    Ok((key, size))
}

/// Writes `body` to the new file `path` and syncs it; the bytes written.
pub(super) async fn save(mut body: ByteStream, path: &Path) -> StoreResult<u64> {
    let mut file = tokio::fs::File::create_new(path)
        .await
        .map_err(StoreError::io)?;
    let mut size = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(StoreError::io)?;
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(StoreError::io)?;
    }
    file.flush().await.map_err(StoreError::io)?;
    file.sync_all().await.map_err(StoreError::io)?;
    Ok(size)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(
        &self,
        hash: &str,
        _content_type: &str,
        limit: u64,
        body: ByteStream,
    ) -> Result<StoredBlob, PutError> {
        let final_path = self.path_of(hash).ok_or_else(|| PutError::HashMismatch {
            actual: "(not an asset hash)".to_owned(),
        })?;
        let tmp_path = self
            .tmp
            .join(format!("upload-{:016x}", rand::random::<u64>()));
        let mut guard = TempPath::file(tmp_path.clone());
        let (key, size) = receive(hash, limit, body, &tmp_path).await?;
        tokio::task::spawn_blocking(move || -> io::Result<_> {
            let dir = final_path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp_path, &final_path)?;
            sync_dir(dir)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::io)?;
        guard.disarm();
        Ok(StoredBlob { key, size })
    }

    async fn compress(&self, hash: &str, brotli_quality: u32) -> StoreResult<Encodings> {
        let plain = self
            .path_of(hash)
            .ok_or_else(|| StoreError::backend("not an asset hash"))?;
        let tmp_dir = self.tmp.clone();
        tokio::task::spawn_blocking(move || -> io::Result<_> {
            let size = std::fs::metadata(&plain)?.len();
            let encodings = make_variants(&plain, &tmp_dir, size, brotli_quality)?;
            sync_dir(plain.parent().unwrap_or(Path::new(".")))?;
            Ok(encodings)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::io)
    }

    async fn open(
        &self,
        hash: &str,
        encoding: Encoding,
        range: Option<ByteRange>,
    ) -> StoreResult<Option<BlobBody>> {
        let Some(path) = self.encoded_path(hash, encoding) else {
            return Ok(None);
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StoreError::backend(format!("{}: {err}", path.display()))),
        };
        let total = file.metadata().await.map_err(StoreError::backend)?.len();
        let (start, len) = match range {
            Some(ByteRange { start, end })
                if encoding == Encoding::Identity && start <= end && end < total =>
            {
                (start, end - start + 1)
            }
            Some(_) => return Err(StoreError::backend("range outside the stored file")),
            None => (0, total),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(StoreError::backend)?;
        }
        let stream =
            ReaderStream::with_capacity(file.take(len), READ_CHUNK).map_err(io::Error::other);
        Ok(Some(BlobBody {
            len,
            stream: stream.boxed(),
        }))
    }

    async fn read(&self, hash: &str, encoding: Encoding) -> StoreResult<Option<Bytes>> {
        let Some(path) = self.encoded_path(hash, encoding) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StoreError::backend(format!("{}: {err}", path.display()))),
        }
    }

    async fn verify(&self, hash: &str) -> StoreResult<Vec<String>> {
        let Some(plain) = self.path_of(hash) else {
            return Ok(vec![format!("`{hash}` is not an asset hash")]);
        };
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || verify_files(&plain, &hash))
            .await
            .map_err(StoreError::backend)
    }

    async fn put_variant(
        &self,
        hash: &str,
        encoding: Encoding,
        _content_type: &str,
        body: ByteStream,
    ) -> StoreResult<()> {
        let target = self
            .encoded_path(hash, encoding)
            .filter(|_| encoding != Encoding::Identity)
            .ok_or_else(|| StoreError::backend("not an asset hash and a compressed encoding"))?;
        let tmp_path = self
            .tmp
            .join(format!("variant-{:016x}", rand::random::<u64>()));
        let mut guard = TempPath::file(tmp_path.clone());
        save(body, &tmp_path).await?;
        tokio::task::spawn_blocking(move || -> io::Result<_> {
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp_path, &target)?;
            sync_dir(dir)
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(StoreError::io)?;
        guard.disarm();
        Ok(())
    }

    async fn stored_hashes(&self) -> StoreResult<Vec<String>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || Self::list_hashes(&root))
            .await
            .map_err(StoreError::backend)?
            .map_err(|err| StoreError::backend(format!("cannot list the asset folder: {err}")))
    }
}

fn hash_reader(mut reader: impl io::Read) -> io::Result<String> {
    let mut hasher = AssetHasher::default();
    let mut buffer = vec![0; READ_CHUNK];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish().0);
        }
        hasher.update(&buffer[..n]);
    }
}

/// Opens a decoder over a compressed variant.
type Decoder = fn(std::fs::File) -> Box<dyn io::Read>;

/// Re-hashes the plain file and decodes each variant beside it; problems found.
pub(super) fn verify_files(plain: &Path, hash: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match std::fs::File::open(plain).and_then(hash_reader) {
        Ok(actual) if actual == hash => {}
        Ok(actual) => problems.push(format!("asset {hash}: the file's bytes hash to {actual}")),
        Err(err) => problems.push(format!(
            "asset {hash}: cannot read {}: {err}",
            plain.display()
        )),
    }
    let variants: [(&str, Decoder); 2] = [
        ("gz", |f| Box::new(flate2::read::GzDecoder::new(f))),
        ("br", |f| Box::new(brotli::Decompressor::new(f, READ_CHUNK))),
    ];
    for (suffix, decoder) in variants {
        let path = variant_path(plain, suffix);
        match std::fs::File::open(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => problems.push(format!(
                "asset {hash}: cannot read {}: {err}",
                path.display()
            )),
            Ok(file) => match hash_reader(decoder(file)) {
                Ok(actual) if actual == hash => {}
                Ok(actual) => problems.push(format!(
                    "asset {hash}: its .{suffix} variant decodes to {actual}"
                )),
                Err(err) => problems.push(format!(
                    "asset {hash}: its .{suffix} variant does not decode: {err}"
                )),
            },
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn body(parts: Vec<&'static [u8]>) -> ByteStream {
        futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
    }

    #[tokio::test]
    async fn put_verifies_hash_and_limit_and_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let hash = otago_core::asset_hash(b"abc");

        let err = store
            .put(&hash, "text/plain", 2, body(vec![b"ab", b"c"]))
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::TooLarge { limit: 2 }));
        let err = store
            .put(&hash, "text/plain", 10, body(vec![b"abd"]))
            .await
            .unwrap_err();
        assert!(matches!(err, PutError::HashMismatch { .. }));
        assert!(
            store
                .open(&hash, Encoding::Identity, None)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let stored = store
            .put(&hash, "text/plain", 10, body(vec![b"ab", b"c"]))
            .await
            .unwrap();
        assert_eq!(stored.key, otago_core::asset_key(b"abc"));
        let opened = store
            .open(
                &hash,
                Encoding::Identity,
                Some(ByteRange { start: 1, end: 2 }),
            )
            .await
            .unwrap()
            .unwrap();
        let bytes: Vec<Bytes> = opened.stream.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"bc");
        assert!(store.verify(&hash).await.unwrap().is_empty());
        assert!(store.path_of("../../etc/passwd").is_none());
        assert_eq!(store.stored_hashes().await.unwrap(), vec![hash]);
    }
}
