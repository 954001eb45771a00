//! Counters the writer updates and metrics read, plus a per-batch observation hook.
//!
//! Atomics with relaxed ordering: each value is read on its own for a gauge or counter, never
//! used to synchronise. The hook lets the metrics layer (wired later) feed histograms of fsync
//! latency and batch size without the journal knowing Prometheus.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::Lsn;

/// What one group commit did: the records one `fdatasync` made durable (those written since
/// the previous sync that advanced the durable LSN). Passed to the [`BatchObserver`] after the
/// sync, once per sync that made something durable; a sync whose records a later-started sync
/// already covered is not reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStats {
    /// Records written (durable and fire-and-forget).
    pub records: usize,
    /// Requests completed by this batch (each `append`/`append_batch`/`append_nowait` call).
    pub requests: usize,
    /// Encoded bytes written.
    pub bytes: usize,
    /// LSNs written by this batch.
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    /// Time spent in `write` calls.
    pub write: Duration,
    /// Duration of the `fdatasync` that made the batch durable.
    pub fsync: Duration,
    /// Segments created during the batch.
    pub rotations: usize,
}

/// Called on a sync thread after every successful group commit; keep it cheap and non-blocking.
pub type BatchObserver = Arc<dyn Fn(&BatchStats) + Send + Sync>;

/// Running totals since open. Cheap to read from any thread.
#[derive(Debug, Default)]
pub struct JournalStats {
    pub(crate) batches: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) last_fsync_nanos: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) durable_lsn: AtomicU64,
    pub(crate) poisoned: AtomicBool,
    /// In-process re-opens after a failure; live readers compare it to drop stale buffers.
    pub(crate) reopens: AtomicU64,
    pub(crate) space_low: AtomicBool,
    pub(crate) refused: AtomicU64,
    pub(crate) writer_stopped: AtomicBool,
    /// Woken when a segment is refused for want of space.
    pub(crate) space_wanted: tokio::sync::Notify,
}

impl JournalStats {
    /// Group commits completed successfully.
    pub fn batches(&self) -> u64 {
        self.batches.load(Relaxed)
    }
    /// Records made durable.
    pub fn records(&self) -> u64 {
        self.records.load(Relaxed)
    }
    /// Encoded bytes made durable.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }
    /// Duration of the most recent successful fsync.
    pub fn last_fsync(&self) -> Duration {
        Duration::from_nanos(self.last_fsync_nanos.load(Relaxed))
    }
    /// Batches whose write or fsync failed, plus batches refused while the writer was
    /// failed and not yet re-opened.
    pub fn failed_batches(&self) -> u64 {
        self.failed_batches.load(Relaxed)
    }
    /// Segments created by the writer since open.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Relaxed)
    }
    /// Highest LSN known durable (0 if none).
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn.load(Relaxed)
    }
    /// True from a failed write or fsync until the writer has re-opened the journal (at the
    /// next append): meanwhile every append is refused. `/readyz` reports not ready.
    pub fn poisoned(&self) -> bool {
        self.poisoned.load(Relaxed)
    }
    /// Times the writer re-opened and re-verified the journal after a failure.
    pub fn reopens(&self) -> u64 {
        self.reopens.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// True from the moment a new segment was refused for want of space (the disk full, or
    /// `min_free` reached) until one could be made again.
    pub fn space_low(&self) -> bool {
        self.space_low.load(Relaxed)
    }
    /// Records refused without being written because no room could be made for them.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
    /// True once the writer thread has ended (closed, or gone): appends can never succeed
    /// again in this process.
    pub fn writer_stopped(&self) -> bool {
        self.writer_stopped.load(Relaxed)
    }
}
