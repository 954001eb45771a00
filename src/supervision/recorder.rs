//! The supervision task's writer: turns changes into events in the journal, and stores the
//! restart snapshot, in the order it is given them.
//!
//! A task of its own so that supervision never waits on the disk: while a batch of
//! changes waits for its fsync, hearings keep being applied and deadlines kept. Its queue
//! is unbounded, and bounded all the same: a path changes at most twice per silence (a
//! failure, then a restore that needs an acknowledged frame, which needs this same
//! journal), so while the journal is stuck the queue holds at most one failure per path.
//!
//! Order is what keeps a restart right: a snapshot is stored only after every change
//! given before it is journaled, and records the journal's durable position then; so
//! "the snapshot, plus the supervision records after its position" is the state.

use std::path::PathBuf;
use std::sync::Arc;

use time::UtcDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::journal::JournalHandle;
use crate::ops::frame_series::FrameSeries;
use crate::ops::metrics::Metrics;
use crate::receiver::event::rfc3339;
use crate::receiver::record::JournalRecord;
use crate::receiver::supervision::Change;
use crate::receiver::supervision_state::Snapshot;
use crate::station::micros;
use crate::throttle::{Throttle, Verdict};

/// Supervision events per journal record: about 500 bytes each, so a record stays near
/// 64 KB, far under the journal's 1 MiB limit on one record.
const CHANGES_PER_RECORD: usize = 128;

/// Supervision change log lines per second at most. A station-wide outage fails every
/// site within one interval and brings them all back within minutes when it ends; every
/// change is an event in the journal and on the bus, the log gets a sample and a count.
const CHANGE_LINES_PER_SECOND: u64 = 50;
static CHANGE_LOG: Throttle = Throttle::new(CHANGE_LINES_PER_SECOND);

/// What the recorder is given.
pub(super) enum Job {
    /// Changes noticed at `at`, to journal as events of `receiver`.
    Changes {
        changes: Vec<Change>,
        at: UtcDateTime,
        receiver: Arc<str>,
    },
    /// The state to store once everything before it is journaled.
    Store(Snapshot),
    /// Answered once everything before it is done.
    Flush(oneshot::Sender<()>),
}

pub(super) struct Recorder {
    pub journal: JournalHandle,
    pub metrics: Arc<Metrics>,
    pub series: FrameSeries,
    pub recent: Arc<crate::ops::recent::Recent>,
    pub snapshot_path: PathBuf,
}

impl Recorder {
    pub(super) async fn run(self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Changes {
                    changes,
                    at,
                    receiver,
                } => self.journal_changes(&changes, at, &receiver).await,
                Job::Store(mut snapshot) => {
                    snapshot.lsn = Some(self.journal.durable_lsn());
                    let path = self.snapshot_path.clone();
                    let stored = tokio::task::spawn_blocking(move || {
                        super::snapshot::store(&path, &snapshot)
                    })
                    .await;
                    match stored {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "supervision snapshot not written")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "supervision snapshot task failed")
                        }
                    }
                }
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Journals supervision changes as receiver events.
    ///
    /// A station whose own network fails sees every site fall silent within one interval,
    /// and after a restart during the outage in the same second: thousands of changes at
    /// once. They go into records of [`CHANGES_PER_RECORD`] events, each far under the
    /// journal's record limit (1 MiB), all appended before the first wait; the log gets at
    /// most [`CHANGE_LINES_PER_SECOND`] of them a second, and a count of the others.
    async fn journal_changes(&self, changes: &[Change], now: UtcDateTime, receiver: &str) {
        let at = rfc3339(now);
        let now_s = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let ts = micros(now);
        let mut records = Vec::with_capacity(changes.len().div_ceil(CHANGES_PER_RECORD));
        for chunk in changes.chunks(CHANGES_PER_RECORD) {
            let events: Vec<_> = chunk.iter().map(|c| c.to_event(receiver, now)).collect();
            for e in &events {
                if let Verdict::Log { .. } = CHANGE_LOG.check(now_s) {
                    tracing::warn!(account = %e.account, code = %e.code, path = e.path.as_deref().unwrap_or("-"), "{}", e.text);
                }
                self.series.event(e.class, 1);
            }
            self.recent.record_events(
                now_s,
                &crate::ops::frame_series::class_counts(&events),
                Vec::new(),
            );
            records.push((ts, JournalRecord::internal(at.clone(), events).into_bytes()));
        }
        let untold = CHANGE_LOG.take_suppressed();
        if untold > 0 {
            tracing::warn!(
                suppressed = untold,
                "supervision change lines suppressed (more than {CHANGE_LINES_PER_SECOND} a second); every change is journaled as an event"
            );
        }
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.journal.append_batch(records).await {
            tracing::error!(error = %e, "supervision events could not be journaled");
            self.metrics
                .journal_errors
                .with_label_values(&["audit_lost"])
                .inc();
        }
    }
}
