//! `otago-server migrate`: an embedded install (SQLite and a folder) moved to the scaled-out
//! stores (PostgreSQL and, optionally, a bucket), checked, and safe to run again.
//!
//! Assets go first, so that no row the target receives names an asset it lacks: each stored
//! blob (assets and bundle patches) is streamed across, hashed again on the way in by the
//! target store, with the compressed variants its record names copied as they are; then every
//! one is re-hashed (and its variants decoded) where it now lives. Then the metadata, in one transaction (see
//! [`copy_sqlite_to_postgres`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::{DatabaseUrl, StorageUrl};
use crate::state::StartError;
use crate::store::{
    BlobStore, Encoding, MetaStore as _, PostgresStore, SqliteStore, StoreError, TableCopy,
    copy_sqlite_to_postgres, open_blobs,
};

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Each table: rows in the source and rows written now.
    pub tables: Vec<TableCopy>,
    /// Blobs copied now.
    pub assets_copied: usize,
    /// Blobs that were in the target already.
    pub assets_present: usize,
}

/// Copies the install in `data_dir` (database `from`, default its SQLite file; assets
/// `assets_from`, default its folder) into the PostgreSQL database `to` and, when given, the
/// blob store `assets_to`, then checks both.
///
/// # Errors
/// When a store cannot be opened, a copy fails, or what arrived differs from the source.
pub async fn migrate(
    data_dir: &Path,
    from: Option<&DatabaseUrl>,
    to: &DatabaseUrl,
    assets_from: Option<&StorageUrl>,
    assets_to: Option<&StorageUrl>,
) -> Result<MigrateReport, StartError> {
    let failed = |what: &str| {
        let what = what.to_owned();
        move |err: StoreError| StartError(format!("{what}: {err}"))
    };
    let source_path = match from {
        Some(DatabaseUrl::Sqlite(path)) => path.clone(),
        None => data_dir.join("otago.sqlite3"),
        Some(other) => {
            return Err(StartError(format!(
                "--from {other:?}: migrate copies from an SQLite database (sqlite://PATH)"
            )));
        }
    };
    let DatabaseUrl::Postgres(target_url) = to else {
        return Err(StartError(format!(
            "--to {to:?}: migrate copies into PostgreSQL (postgres://USER@HOST:PORT/DATABASE)"
        )));
    };
    if !source_path.exists() {
        return Err(StartError(format!(
            "{} does not exist; is it the database of a server (--data-dir, --from)?",
            source_path.display()
        )));
    }
    let source = tokio::task::spawn_blocking(move || SqliteStore::open_file(&source_path))
        .await
        .map_err(|err| StartError(err.to_string()))?
        .map_err(failed("cannot open the source database"))?;
    let target = PostgresStore::connect(target_url)
        .await
        .map_err(failed("cannot open the target database"))?;
    let mut report = MigrateReport::default();
    if let Some(assets_to) = assets_to {
        let from_blobs = open_blobs(assets_from, data_dir, false)
            .await
            .map_err(failed("cannot open the source assets"))?;
        let to_blobs = open_blobs(Some(assets_to), data_dir, true)
            .await
            .map_err(failed("cannot open the target assets"))?;
        copy_blobs(&source, &*from_blobs, &*to_blobs, &mut report).await?;
    }
    report.tables = copy_sqlite_to_postgres(&source, &target)
        .await
        .map_err(failed("copying the metadata failed"))?;
    Ok(report)
}

/// Streams every blob of `from` missing in `to` across, makes the variants the records name,
/// and re-hashes every blob in `to`.
async fn copy_blobs(
    source: &SqliteStore,
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    report: &mut MigrateReport,
) -> Result<(), StartError> {
    let failed = |err: StoreError| StartError(format!("copying the assets failed: {err}"));
    let records: BTreeMap<String, _> = source
        .all_assets()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|record| (record.hash.clone(), record))
        .collect();
    let present: BTreeSet<String> = to
        .stored_hashes()
        .await
        .map_err(failed)?
        .into_iter()
        .collect();
    let hashes = from.stored_hashes().await.map_err(failed)?;
    for hash in &hashes {
        let record = records.get(hash);
        let content_type = record.map_or("application/octet-stream", |r| &r.content_type);
        if present.contains(hash) {
            report.assets_present += 1;
        } else {
            let body = from
                .open(hash, Encoding::Identity, None)
                .await
                .map_err(failed)?
                .ok_or_else(|| StartError(format!("asset {hash} vanished from the source")))?;
            to.put(hash, content_type, u64::MAX, body.stream)
                .await
                .map_err(|err| StartError(format!("copying asset {hash} failed: {err}")))?;
            report.assets_copied += 1;
        }
        let wanted = record.and_then(|r| r.encodings).unwrap_or_default();
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            if !wanted.has(encoding)
                || to
                    .open(hash, encoding, None)
                    .await
                    .map_err(failed)?
                    .is_some()
            {
                continue;
            }
            let variant = from
                .open(hash, encoding, None)
                .await
                .map_err(failed)?
                .ok_or_else(|| {
                    StartError(format!(
                        "asset {hash} is recorded with a {encoding:?} variant the source lacks; run otago-server check on the source"
                    ))
                })?;
            to.put_variant(hash, encoding, content_type, variant.stream)
                .await
                .map_err(failed)?;
        }
        let problems = to.verify(hash).await.map_err(failed)?;
        if !problems.is_empty() {
            return Err(StartError(format!(
                "the copied asset is not whole: {}",
                problems.join("; ")
            )));
        }
    }
    Ok(())
}
