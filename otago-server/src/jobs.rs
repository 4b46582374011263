//! Background jobs (compressing an asset, making a channel's bundle patches) claimed through the
//! metadata store, so that of several replicas exactly one does each, and a job whose replica
//! died mid-way is taken up by another once its claim runs out.
//!
//! A claim names the job, the replica (a random id per process) and when it runs out; it is
//! given up when the job ends. Every replica on a shared store sweeps for left-over work now and
//! then (assets without variants, channels with patches not made) and queues it; the claim
//! decides who does it. On the embedded store every claim is granted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::state::Clock;
use crate::store::{MetaStore, StoreResult};

/// The kinds of job, as `/metrics` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// Making an asset's compressed variants.
    Compress,
    /// Making a channel's bundle patches.
    Patches,
}

impl JobKind {
    /// All kinds, in `/metrics` order.
    pub(crate) const ALL: [Self; 2] = [Self::Compress, Self::Patches];

    /// The name in job ids and `/metrics`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Compress => "compress",
            Self::Patches => "patches",
        }
    }
}

/// This replica's claims on background jobs.
pub(crate) struct JobClaims {
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    /// This process's id in claims.
    holder: String,
    /// How long a claim lasts; a job that takes longer may be done twice (harmless: the
    /// results are content-addressed), a dead replica's job waits this long.
    lease: Duration,
    /// Jobs done by this replica, by kind.
    done: [AtomicU64; 2],
}

impl std::fmt::Debug for JobClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobClaims")
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl JobClaims {
    /// Claims for this process, each lasting `lease`.
    pub(crate) fn new(meta: Arc<dyn MetaStore>, clock: Arc<dyn Clock>, lease: Duration) -> Self {
        Self {
            meta,
            clock,
            holder: format!("replica-{:016x}", rand::random::<u64>()),
            lease,
            done: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn now_ms(&self) -> i64 {
        otago_core::Timestamp::from_system_time(self.clock.now()).map_or(0, |t| t.unix_millis())
    }

    /// Runs `work` as job `kind:subject` if this replica gets the claim; `None` when another
    /// replica holds it, or `work` (which must look again, under the claim, whether the job is
    /// still to do) found nothing left. The claim is given up afterwards.
    ///
    /// # Errors
    /// When the store cannot record the claim, or `work` fails.
    pub(crate) async fn run<T, F>(
        &self,
        kind: JobKind,
        subject: &str,
        work: F,
    ) -> StoreResult<Option<T>>
    where
        F: Future<Output = StoreResult<Option<T>>>,
    {
        let job = format!("{}:{subject}", kind.as_str());
        let now = self.now_ms();
        let until = now.saturating_add(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX));
        if !self.meta.claim_job(&job, &self.holder, now, until).await? {
            tracing::debug!(job = %job, "another replica holds this job");
            return Ok(None);
        }
        let result = work.await;
        if let Err(err) = self.meta.release_job(&job, &self.holder).await {
            tracing::warn!(job = %job, error = %err, "giving up a job's claim failed; it runs out by itself");
        }
        let value = result?;
        if value.is_some() {
            self.done[kind as usize].fetch_add(1, Ordering::Relaxed);
        }
        Ok(value)
    }

    /// Jobs this replica did, by kind (as [`JobKind::ALL`]).
    pub(crate) fn done(&self) -> [u64; 2] {
        [
            self.done[0].load(Ordering::Relaxed),
            self.done[1].load(Ordering::Relaxed),
        ]
    }
}
