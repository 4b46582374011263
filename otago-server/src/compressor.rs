//! Compressing uploaded assets in the background, one at a time, so that an upload is answered
//! as soon as its plain bytes are durable. Assets whose variants were never made (the server
//! stopped first) are queued again at start, and on a shared store at each sweep; each is a
//! claimed job, so one replica compresses it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::jobs::{JobClaims, JobKind};
use crate::state::AssetCache;
use crate::store::{BlobStore, MetaStore};

/// The queue of assets to compress.
#[derive(Debug, Clone)]
pub(crate) struct Compressor {
    queue: mpsc::UnboundedSender<String>,
    /// What is queued and not yet done (an asset is queued once however often it is swept).
    queued: Arc<Mutex<HashSet<String>>>,
}

impl Compressor {
    /// Starts the worker; it stops when every handle is dropped.
    pub(crate) fn start(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        cache: Arc<AssetCache>,
        claims: Arc<JobClaims>,
        brotli_quality: u32,
    ) -> Self {
        let (queue, mut pending) = mpsc::unbounded_channel::<String>();
        let queued = Arc::new(Mutex::new(HashSet::new()));
        let done = Arc::clone(&queued);
        tokio::spawn(async move {
            while let Some(hash) = pending.recv().await {
                let work = async {
                    // Another replica may have done it between the sweep and the claim.
                    let records = meta.assets(std::slice::from_ref(&hash)).await?;
                    if records
                        .first()
                        .is_none_or(|record| record.encodings.is_some())
                    {
                        return Ok(None);
                    }
                    let encodings = blobs.compress(&hash, brotli_quality).await?;
                    meta.set_encodings(&hash, encodings).await?;
                    cache.set_encodings(&hash, encodings);
                    Ok(Some(encodings))
                };
                let result = claims.run(JobKind::Compress, &hash, work).await;
                if let Ok(mut queued) = done.lock() {
                    queued.remove(&hash);
                }
                match result {
                    Ok(None) => {}
                    Ok(Some(encodings)) => {
                        tracing::debug!(hash = %hash, encodings = %encodings.to_db(), "asset compressed")
                    }
                    Err(err) => {
                        tracing::warn!(hash = %hash, error = %err, "compressing an asset failed; it is served uncompressed")
                    }
                }
            }
        });
        Self { queue, queued }
    }

    /// Queues an asset, unless it is queued already.
    pub(crate) fn enqueue(&self, hash: String) {
        let fresh = self
            .queued
            .lock()
            .map_or(true, |mut queued| queued.insert(hash.clone()));
        if fresh {
            let _ = self.queue.send(hash);
        }
    }
}
