//! `otago-server check`: is the store whole?

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::{DatabaseUrl, StorageUrl};
use crate::state::StartError;
use crate::store::{MetaStore, PostgresStore, SqliteStore, open_blobs};

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Things that are wrong (the check fails).
    pub problems: Vec<String>,
    /// Things worth knowing that are not wrong (e.g. asset files no update names, left by an
    /// upload killed between storing the file and indexing it).
    pub notes: Vec<String>,
    /// How many assets were re-hashed.
    pub assets_checked: usize,
}

/// Checks a data folder: SQLite's integrity and foreign keys, every indexed asset file (and its
/// compressed variants) hashes to its name, and every channel's served updates still prepare.
///
/// # Errors
/// When the folder or database cannot be opened at all.
pub async fn check_data_dir(data_dir: &Path) -> Result<CheckReport, StartError> {
    check_store(data_dir, None, None).await
}

/// [`check_data_dir`] with the metadata in `database` (`None`: SQLite in the data folder) and
/// the assets in `storage` (`None`: the data folder); on PostgreSQL the database checks what
/// its schema cannot say itself, in a bucket every object is downloaded and re-hashed.
///
/// # Errors
/// When the folder or database cannot be opened at all.
pub async fn check_store(
    data_dir: &Path,
    database: Option<&DatabaseUrl>,
    storage: Option<&StorageUrl>,
) -> Result<CheckReport, StartError> {
    let cannot_open = |err| StartError(format!("cannot open the database: {err}"));
    let meta: Box<dyn MetaStore> = match database {
        Some(DatabaseUrl::Postgres(url)) => {
            Box::new(PostgresStore::connect(url).await.map_err(cannot_open)?)
        }
        sqlite => {
            let path = match sqlite {
                Some(DatabaseUrl::Sqlite(path)) => path.clone(),
                _ => data_dir.join("otago.sqlite3"),
            };
            if !path.exists() {
                return Err(StartError(format!(
                    "{} does not exist; is it the database of a server (--data-dir, --database-url)?",
                    path.display()
                )));
            }
            let opened = tokio::task::spawn_blocking(move || SqliteStore::open_file(&path))
                .await
                .map_err(|err| StartError(err.to_string()))?;
            Box::new(opened.map_err(cannot_open)?)
        }
    };
    let blobs = open_blobs(storage, data_dir, false)
        .await
        .map_err(|err| StartError(err.to_string()))?;
    let failed = |err: crate::store::StoreError| {
        StartError(format!("the check could not read the store: {err}"))
    };

    let mut report = CheckReport::default();
    report
        .problems
        .extend(meta.integrity_problems().await.map_err(failed)?);
    let assets = meta.all_assets().await.map_err(failed)?;
    for asset in &assets {
        report
            .problems
            .extend(blobs.verify(&asset.hash).await.map_err(failed)?);
    }
    report.assets_checked = assets.len();
    let indexed: BTreeSet<&str> = assets.iter().map(|a| a.hash.as_str()).collect();
    let on_disk = blobs.stored_hashes().await.map_err(failed)?;
    for hash in on_disk
        .iter()
        .filter(|hash| !indexed.contains(hash.as_str()))
    {
        report.notes.push(format!(
            "asset file {hash} is not indexed (an upload that did not finish); it is harmless"
        ));
    }
    for key in meta.channels().await.map_err(failed)? {
        let record = meta.release(&key).await.map_err(failed)?;
        if let Err(err) = crate::live::prepare(&record, &crate::health::HealthBook::default()) {
            report.problems.push(format!(
                "updates of project {} / {} / runtime {} cannot be served: {err}",
                key.project_ref, key.platform, key.runtime_version
            ));
        }
    }
    Ok(report)
}
