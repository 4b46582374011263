//! Compressing uploaded assets in the background, one at a time, so that an upload is answered
//! as soon as its plain bytes are durable. Assets whose variants were never made (the server
//! stopped first) are queued again at start.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::state::AssetCache;
use crate::store::{BlobStore, MetaStore};

/// The queue of assets to compress.
#[derive(Debug, Clone)]
pub(crate) struct Compressor {
    queue: mpsc::UnboundedSender<String>,
}

impl Compressor {
    /// Starts the worker; it stops when every handle is dropped.
    pub(crate) fn start(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        cache: Arc<AssetCache>,
        brotli_quality: u32,
    ) -> Self {
        let (queue, mut pending) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(hash) = pending.recv().await {
                let result = async {
                    let encodings = blobs.compress(&hash, brotli_quality).await?;
                    meta.set_encodings(&hash, encodings).await?;
                    cache.set_encodings(&hash, encodings);
                    Ok::<_, crate::store::StoreError>(encodings)
                }
                .await;
                match result {
                    Ok(encodings) => {
                        tracing::debug!(hash = %hash, encodings = %encodings.to_db(), "asset compressed")
                    }
                    Err(err) => {
                        tracing::warn!(hash = %hash, error = %err, "compressing an asset failed; it is served uncompressed")
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues an asset.
    pub(crate) fn enqueue(&self, hash: String) {
        let _ = self.queue.send(hash);
    }
}
