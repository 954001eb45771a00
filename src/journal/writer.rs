//! The group-commit writer: one OS thread owns the active segment; async callers queue to it
//! through a [`JournalHandle`](super::JournalHandle).
//!
//! Why a thread and not a tokio task: `write` and `fdatasync` block for milliseconds, and the
//! writer does nothing else; a dedicated thread keeps that off the runtime's workers, and owning
//! the file in one place means no locking around the write position.
//!
//! One turn of the loop: block for the first request, wait out the commit interval if one is
//! configured and the last commit started less than that ago, drain whatever else is queued
//! (bounded by `max_batch_bytes`), make the room the batch needs ([`super::room`]; requests
//! without room are refused, nothing of them written), assign LSNs in queue order, encode
//! everything into one buffer, write it with one positioned write (two if the batch crosses
//! into a new segment), and hand the batch to the sync stage ([`super::sync`]), which calls
//! `fdatasync`, publishes the durable LSN and completes every waiter. Completion happens only
//! after a sync that began after the write returned: the `Ok(lsn)` a caller receives *is* the
//! durability proof it may ACK on.
//!
//! After a write or sync error the stage refuses everything, and the next batch first
//! re-opens the journal in-process ([`recovery::reopen_after_failure`]): what follows the last
//! good sync is discarded, the rest re-verified from the device, and appends go on.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::error::{JournalError, Result};
use super::handle::{Records, Request};
use super::record;
use super::recovery::{self, Recovered};
use super::room::{self, Need, Plan};
use super::segment::{self, Spare, SEGMENT_HEADER_LEN};
use super::space::{self, MinFree};
use super::stats::JournalStats;
use super::summary::{self, Summary, Tagger};
use super::sync::{Completion, SyncStage, Written};
use super::{JournalConfig, Lsn};
use crate::throttle::{Throttle, Verdict};

/// First wait before another re-open attempt, after one failed; doubled up to the maximum.
const REOPEN_BACKOFF: Duration = Duration::from_millis(100);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

static SPACE_LOG: Throttle = Throttle::per_minute(6);
static REOPEN_LOG: Throttle = Throttle::per_minute(6);
static SUMMARY_LOG: Throttle = Throttle::per_minute(2);

struct Pending {
    records: Records,
    done: Option<Completion>,
    first_lsn: Lsn,
    /// Encoded size of `records`, counted once when the request is taken.
    bytes: usize,
}

/// The segment the writer appends to, and what it holds.
pub(super) struct ActiveSegment {
    pub file: Arc<File>,
    pub path: PathBuf,
    /// Where the next record goes in `file`.
    pub write_pos: u64,
    /// Allocated size of `file`; a record that would cross it goes to a new segment.
    pub capacity: u64,
    pub next_lsn: Lsn,
    /// Completed record by record, stored when the segment is sealed.
    pub summary: Summary,
}

impl From<Recovered> for ActiveSegment {
    fn from(r: Recovered) -> Self {
        ActiveSegment {
            file: Arc::new(r.file),
            path: r.path,
            write_pos: r.write_pos,
            capacity: r.capacity,
            next_lsn: r.next_lsn,
            summary: r.summary,
        }
    }
}

pub(super) struct Writer {
    dir: PathBuf,
    seg: ActiveSegment,
    segment_size: u64,
    max_batch_bytes: usize,
    /// See [`JournalConfig::commit_interval`].
    commit_interval: Duration,
    commit_interval_after: usize,
    /// When the last group commit started draining the queue, and how many records it had.
    last_commit: Instant,
    last_commit_records: usize,
    /// Reused across batches: one allocation that grows to the largest batch.
    buf: Vec<u8>,
    /// Makes written batches durable and answers their waiters.
    stage: SyncStage,
    stats: Arc<JournalStats>,
    tagger: Option<Tagger>,
    min_free: MinFree,
    /// Segments prepared for the batch being written, in LSN order.
    spares: VecDeque<Spare>,
    /// After a failed re-open: not before then, and the wait after the next failure.
    reopen_at: Instant,
    reopen_backoff: Duration,
    _lock: File,
}

/// What writing one batch did, for the sync stage's statistics.
#[derive(Default)]
struct WriteStats {
    write: Duration,
    rotations: usize,
}

impl Writer {
    pub fn new(
        config: &JournalConfig,
        dir: PathBuf,
        seg: ActiveSegment,
        stage: SyncStage,
        stats: Arc<JournalStats>,
        lock: File,
    ) -> Writer {
        Writer {
            dir,
            seg,
            segment_size: config.segment_size,
            max_batch_bytes: config.max_batch_bytes.max(1),
            commit_interval: config.commit_interval,
            commit_interval_after: config.commit_interval_after,
            last_commit: Instant::now(),
            last_commit_records: 0,
            buf: Vec::new(),
            stage,
            stats,
            tagger: config.tagger,
            min_free: config.min_free,
            spares: VecDeque::new(),
            reopen_at: Instant::now(),
            reopen_backoff: REOPEN_BACKOFF,
            _lock: lock,
        }
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch: Vec<Pending> = Vec::new();
        let mut closers = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            // Under a commit interval, and while commits are large, what arrives before
            // the interval has run joins this batch. Without one, no clock is read.
            if !self.commit_interval.is_zero() {
                if self.last_commit_records >= self.commit_interval_after {
                    let rest = self
                        .commit_interval
                        .saturating_sub(self.last_commit.elapsed());
                    if !rest.is_zero() {
                        std::thread::sleep(rest);
                    }
                }
                self.last_commit = Instant::now();
            }
            let mut bytes = 0usize;
            let mut count = 0usize;
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match req {
                    Request::Append { records, done } => {
                        let encoded = records
                            .as_slice()
                            .iter()
                            .map(|(_, p)| record::encoded_len(p.len()))
                            .sum::<usize>();
                        bytes += encoded;
                        count += records.as_slice().len();
                        batch.push(Pending {
                            records,
                            done,
                            first_lsn: 0,
                            bytes: encoded,
                        });
                    }
                    Request::Close { done } => {
                        // Refuse new requests; those already queued are still received below.
                        rx.close();
                        closers.push(done);
                    }
                    Request::Reopen => {
                        if batch.is_empty() && self.stage.poisoned().is_some() {
                            self.reopen();
                        }
                    }
                }
                if bytes < self.max_batch_bytes {
                    next = rx.try_recv().ok();
                }
            }
            self.last_commit_records = count;
            self.commit(&mut batch);
        }
        for s in self.spares.drain(..) {
            s.discard();
        }
        let poisoned = self.stage.poisoned();
        // Everything written is synced (or failed) before a closer hears back.
        self.stage.finish();
        let res = match poisoned {
            None => Ok(()),
            Some(cause) => Err(JournalError::Poisoned { cause }),
        };
        for c in closers {
            let _ = c.send(res.clone());
        }
    }

    /// Makes room, writes the batch and hands it to the sync stage, which answers its
    /// waiters. Requests without room are refused here.
    fn commit(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        if let Some(cause) = self.stage.poisoned() {
            if !self.reopen() {
                let err = JournalError::Poisoned { cause };
                self.stage
                    .poison(&err, written(batch, WriteStats::default()));
                return;
            }
        }
        let (fitting, refusal) = self.reserve(batch);
        if let Some(err) = refusal {
            let refused = batch.split_off(fitting.min(batch.len()));
            let records: usize = refused.iter().map(|p| p.records.as_slice().len()).sum();
            self.stats.refused.fetch_add(records as u64, Relaxed);
            for p in refused {
                if let Some(done) = p.done {
                    let _ = done.send(Err(err.clone()));
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let mut ws = WriteStats::default();
        match self.write_batch(batch, &mut ws) {
            Ok(last_lsn) => {
                let path = self.seg.path.clone();
                self.stage
                    .submit(&self.seg.file, &path, last_lsn, written(batch, ws));
            }
            Err(err) => {
                self.stage.poison(&err, written(batch, ws));
                // At once, not at the next append: a quiet receiver is ready again now.
                self.reopen();
            }
        }
    }

    /// Makes every allocation the batch needs, in order, until one is refused. Returns how
    /// many requests (from the first) have room, and the refusal if any.
    fn reserve(&mut self, batch: &[Pending]) -> (usize, Option<JournalError>) {
        let plan: Plan = room::plan(
            room::Active {
                write_pos: self.seg.write_pos,
                capacity: self.seg.capacity,
                next_lsn: self.seg.next_lsn,
                segment_size: self.segment_size,
            },
            batch.iter().map(|p| {
                p.records
                    .as_slice()
                    .iter()
                    .map(|(_, payload)| payload.len())
            }),
        );
        if plan.needs.is_empty() {
            return (batch.len(), None);
        }
        let mut made = 0;
        let mut refusal = None;
        for need in &plan.needs {
            match self.make(*need) {
                Ok(()) => made += 1,
                Err(e) => {
                    refusal = Some(e);
                    break;
                }
            }
        }
        let fitting = plan.requests_fitting(made);
        // Segments prepared for requests refused further on give their space back.
        let used = match fitting {
            0 => 0,
            n => plan.needs_after.get(n - 1).copied().unwrap_or(0),
        };
        let spares_used = plan
            .needs
            .iter()
            .take(used)
            .filter(|n| matches!(n, Need::New { .. }))
            .count();
        while self.spares.len() > spares_used {
            if let Some(s) = self.spares.pop_back() {
                s.discard();
            }
        }
        match refusal {
            Some(err) => {
                if err.is_out_of_space() {
                    let was_low = self.stats.space_low.swap(true, Relaxed);
                    self.stats.space_wanted.notify_one();
                    if let (false, Verdict::Log { suppressed }) = (was_low, SPACE_LOG.check_now()) {
                        tracing::error!(error = %err, suppressed, "journal out of space: appends that need a new segment get NAK until space returns");
                    }
                } else if let Verdict::Log { suppressed } = SPACE_LOG.check_now() {
                    tracing::error!(error = %err, suppressed, "journal could not allocate a segment");
                }
                (fitting, Some(err))
            }
            None => {
                if self.stats.space_low.swap(false, Relaxed) {
                    if let Verdict::Log { suppressed } = SPACE_LOG.check_now() {
                        tracing::warn!(suppressed, "journal has space again: appends accepted");
                    }
                }
                (fitting, None)
            }
        }
    }

    /// One allocation, unless it would leave less than `min_free` free.
    fn make(&mut self, need: Need) -> Result<()> {
        let bytes = need.bytes(self.seg.capacity);
        if let Ok(s) = space::space(&self.dir) {
            let keep = self.min_free.bytes(s.total);
            // Without a watermark the allocation itself is the test.
            if keep > 0 && s.free < bytes.saturating_add(keep) {
                return Err(JournalError::BelowMinFree {
                    needed: bytes,
                    free: s.free,
                    min_free: keep,
                });
            }
        }
        match need {
            Need::Grow(size) => {
                segment::preallocate(&self.seg.file, size)
                    .and_then(|()| self.seg.file.sync_all())
                    .map_err(|e| JournalError::io_or_full("grow segment", &self.seg.path, e))?;
                self.seg.capacity = size;
            }
            Need::New { first_lsn, size } => {
                self.spares
                    .push_back(segment::prepare_segment(&self.dir, first_lsn, size)?);
            }
        }
        Ok(())
    }

    /// After a failure: re-opens the journal from what is on disk up to the last good
    /// sync. False while it cannot (the batch is then refused), retried with a backoff.
    fn reopen(&mut self) -> bool {
        let now = Instant::now();
        if now < self.reopen_at {
            return false;
        }
        self.stage.quiesce();
        for s in self.spares.drain(..) {
            s.discard();
        }
        let durable = self.stage.durable();
        match recovery::reopen_after_failure(&self.dir, self.segment_size, durable, self.tagger) {
            Ok((rec, done)) => {
                // Before anything new is written: live readers drop what they buffered
                // past the durable end, which is about to be written again.
                self.stats.reopens.fetch_add(1, SeqCst);
                self.seg = ActiveSegment::from(rec);
                self.stage.reset(&self.seg.file, &self.seg.path);
                self.reopen_backoff = REOPEN_BACKOFF;
                if let Verdict::Log { suppressed } = REOPEN_LOG.check_now() {
                    tracing::warn!(
                        durable_lsn = durable,
                        discarded_bytes = done.discarded_bytes,
                        discarded_records = done.discarded_records,
                        deleted_segments = done.deleted_segments,
                        lost_records = done.lost_records,
                        suppressed,
                        "journal re-opened after a failure: everything after the last good sync was refused to its senders and is discarded; appends go on"
                    );
                }
                true
            }
            Err(e) => {
                self.reopen_at = now + self.reopen_backoff;
                self.reopen_backoff = (self.reopen_backoff * 2).min(REOPEN_BACKOFF_MAX);
                if let Verdict::Log { suppressed } = REOPEN_LOG.check_now() {
                    tracing::error!(error = %e, retry_in_ms = self.reopen_backoff.as_millis() as u64, suppressed, "journal could not be re-opened after a failure; appends refused meanwhile");
                }
                false
            }
        }
    }

    /// Encodes and writes the batch (no sync); returns its last LSN.
    fn write_batch(&mut self, batch: &mut [Pending], ws: &mut WriteStats) -> Result<Lsn> {
        self.buf.clear();
        let mut lsn = self.seg.next_lsn;
        for p in batch.iter_mut() {
            p.first_lsn = lsn;
            let known = p.records.known_tag();
            for (ts, payload) in p.records.as_slice() {
                let need = record::encoded_len(payload.len()) as u64;
                if self.seg.write_pos + self.buf.len() as u64 + need > self.seg.capacity {
                    self.make_room(lsn, need, ws)?;
                }
                record::encode_into(&mut self.buf, lsn, *ts, payload);
                let tag = match (self.tagger, known) {
                    (None, _) => None,
                    (Some(_), Some(tag)) => {
                        debug_assert_eq!(
                            tag,
                            self.tagger.and_then(|t| t(payload)),
                            "a record's given tag is the one its payload holds"
                        );
                        tag
                    }
                    (Some(t), None) => t(payload),
                };
                self.seg.summary.add(lsn, *ts, tag);
                lsn += 1;
            }
        }
        self.flush(ws)?;
        self.seg.next_lsn = lsn;
        Ok(lsn - 1)
    }

    /// The next record (`lsn`, `need` bytes) does not fit in the active segment.
    fn make_room(&mut self, lsn: Lsn, need: u64, ws: &mut WriteStats) -> Result<()> {
        let header = SEGMENT_HEADER_LEN as u64;
        if self.seg.write_pos == header && self.buf.is_empty() {
            // An empty segment too small for this record: grow it rather than create a second
            // segment with the same first LSN. (Room is made before writing; this is the
            // fallback should the two ever disagree.)
            segment::preallocate(&self.seg.file, header + need)
                .and_then(|()| self.seg.file.sync_all())
                .map_err(|e| JournalError::io_or_full("grow segment", &self.seg.path, e))?;
            self.seg.capacity = header + need;
            return Ok(());
        }
        // Seal the old segment fully (its part of this batch written and synced) before the new
        // one exists, so recovery never sees a newer segment after an unsynced older tail. This
        // sync also covers whatever the sync stage has not synced yet in that segment.
        self.flush(ws)?;
        self.seg
            .file
            .sync_data()
            .map_err(|e| JournalError::io("fdatasync", &self.seg.path, e))?;
        self.store_summary();
        let spare = match self.spares.pop_front() {
            Some(s) if s.first_lsn == lsn => s,
            other => {
                if let Some(s) = other {
                    s.discard();
                }
                let size = self.segment_size.max(header + need);
                segment::prepare_segment(&self.dir, lsn, size)?
            }
        };
        let size = spare.size;
        let (file, path) = segment::install(&self.dir, spare)?;
        self.seg = ActiveSegment {
            file: Arc::new(file),
            path,
            write_pos: header,
            capacity: size,
            next_lsn: lsn,
            summary: Summary::start(lsn, self.tagger.is_some()),
        };
        ws.rotations += 1;
        Ok(())
    }

    /// Writes the summary of the segment being sealed. A failure costs only a scan of that
    /// segment at the next open.
    fn store_summary(&mut self) {
        let s = &mut self.seg.summary;
        s.valid_end = self.seg.write_pos;
        s.segment_len = self.seg.capacity;
        if let Err(e) = summary::store(&self.seg.path, s) {
            if let Verdict::Log { suppressed } = SUMMARY_LOG.check_now() {
                tracing::warn!(path = ?self.seg.path, error = %e, suppressed, "journal segment summary not written (the next start scans that segment)");
            }
        }
    }

    fn flush(&mut self, ws: &mut WriteStats) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        self.seg
            .file
            .write_all_at(&self.buf, self.seg.write_pos)
            .map_err(|e| JournalError::io_or_full("write", &self.seg.path, e))?;
        ws.write += t.elapsed();
        self.seg.write_pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// The batch's requests as the sync stage tracks them; the batch's write statistics ride
/// on its first request.
fn written(batch: &mut Vec<Pending>, ws: WriteStats) -> Vec<Written> {
    let mut ws = Some(ws);
    batch
        .drain(..)
        .map(|p| {
            let first = ws.take().unwrap_or_default();
            Written {
                bytes: p.bytes,
                records: p.records.as_slice().len(),
                first_lsn: p.first_lsn,
                done: p.done,
                write: first.write,
                rotations: first.rotations,
            }
        })
        .collect()
}
