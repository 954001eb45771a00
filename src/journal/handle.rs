//! The journal's front door: [`Journal::open`] (recovery, then the writer thread) and the
//! cloneable [`JournalHandle`] that appenders and readers use.
//!
//! Appends travel to the writer thread ([`super::writer`]) over a bounded queue, each with a
//! oneshot completion that resolves only once the record is durable (or refused). Nothing
//! here touches the active segment; the writer thread owns it.

use std::fs::File;
use std::ops::{Deref, RangeInclusive};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use super::durable::Durable;
use super::error::{JournalError, Result};
use super::reader::JournalReader;
use super::record::MAX_RECORD_LEN;
use super::recovery::{self, OpenReport};
use super::segment;
use super::space::{self, MinFree};
use super::stats::JournalStats;
use super::summary::{self, Tag};
use super::sync::{Completion, Start, SyncStage};
use super::writer::{ActiveSegment, Writer};
use super::{JournalConfig, Lsn, MIN_SEGMENT_SIZE};

pub(super) enum Request {
    Append {
        records: Records,
        /// `None` for fire-and-forget records.
        done: Option<Completion>,
    },
    Close {
        done: oneshot::Sender<Result<()>>,
    },
    /// A sync failed: re-open now rather than at the next append, so that a quiet
    /// receiver is ready again at once.
    Reopen,
}

/// The records of one request. Nearly every append carries one record, which travels
/// inline: a list of one would be an allocation per frame for nothing.
pub(super) enum Records {
    One((i64, Vec<u8>)),
    Many(Vec<(i64, Vec<u8>)>),
    /// One record whose tag the caller already knows (see [`Tagger`](super::Tagger)): the
    /// writer takes it instead of searching the payload for it.
    Tagged((i64, Vec<u8>), Option<u128>),
}

impl Records {
    /// Each record's timestamp and payload, in order.
    pub fn as_slice(&self) -> &[(i64, Vec<u8>)] {
        match self {
            Records::One(r) | Records::Tagged(r, _) => std::slice::from_ref(r),
            Records::Many(v) => v,
        }
    }

    /// The tag given with the record, if it came with one.
    pub fn known_tag(&self) -> Option<Option<u128>> {
        match self {
            Records::Tagged(_, tag) => Some(*tag),
            Records::One(_) | Records::Many(_) => None,
        }
    }
}

/// Cloneable access to a running journal. Dropping every handle (and the [`Journal`]) stops the
/// writer after it has written what was queued.
#[derive(Clone)]
pub struct JournalHandle {
    tx: mpsc::Sender<Request>,
    durable: watch::Receiver<Lsn>,
    stats: Arc<JournalStats>,
    data_dir: Arc<Path>,
    min_free: MinFree,
}

/// Space on the journal's file system as the journal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceStatus {
    /// Bytes free for an unprivileged writer.
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
    /// `[journal] min_free` in bytes on this file system.
    pub min_free: u64,
    /// The writer was refused a segment for want of space and has not made one since, or
    /// the file system has less than `min_free` free (something else filled it): appends
    /// get refused once the active segment is full, until space returns.
    pub low: bool,
}

fn check_len(payload: &[u8]) -> Result<()> {
    if payload.len() > MAX_RECORD_LEN {
        return Err(JournalError::RecordTooLarge {
            len: payload.len(),
            max: MAX_RECORD_LEN,
        });
    }
    Ok(())
}

impl JournalHandle {
    /// Appends one record and resolves once it is written **and** fsync'd. `Ok(lsn)` is the only
    /// answer that allows an ACK; every `Err` means "not durable".
    pub async fn append(&self, ts_micros: i64, payload: Vec<u8>) -> Result<Lsn> {
        check_len(&payload)?;
        self.request(Records::One((ts_micros, payload)))
            .await
            .map(|r| *r.start())
    }

    /// [`append`](Self::append) returning the journal's proof that this record is durable,
    /// carrying `ticket` back: what a reply that may leave only after the record is on disk
    /// needs to be released (see [`Durable`]).
    ///
    /// `tag` is the record's tag as the journal's tagger would find it in `payload` (for a
    /// frame, its dedup key): given here, the writer does not search the record for it.
    pub async fn append_durable(
        &self,
        ts_micros: i64,
        payload: Vec<u8>,
        ticket: u128,
        tag: Option<u128>,
    ) -> Result<Durable> {
        check_len(&payload)?;
        self.request(Records::Tagged((ts_micros, payload), tag))
            .await
            .map(|lsn| Durable::new(*lsn.start(), ticket))
    }

    /// Appends several records with consecutive LSNs that become durable together (same fsync,
    /// same outcome). Resolves to their LSN range.
    pub async fn append_batch(&self, records: Vec<(i64, Vec<u8>)>) -> Result<RangeInclusive<Lsn>> {
        if records.is_empty() {
            return Err(JournalError::EmptyBatch);
        }
        for (_, p) in &records {
            check_len(p)?;
        }
        self.request(Records::Many(records)).await
    }

    /// Queues checked records and waits for their durability.
    async fn request(&self, records: Records) -> Result<RangeInclusive<Lsn>> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Append {
                records,
                done: Some(tx),
            })
            .await
            .map_err(|_| JournalError::Closed)?;
        // A dropped sender (writer panicked or stopped) is "not durable", never success.
        rx.await.unwrap_or(Err(JournalError::WriterGone))
    }

    /// Queues a record without waiting for durability (audit records that need none before a
    /// reply). It is ordered with all other appends and made durable by the same group commits;
    /// if the writer fails, it is lost silently apart from the counters. Resolves once queued
    /// (waits only if the queue is full).
    pub async fn append_nowait(&self, ts_micros: i64, payload: Vec<u8>) -> Result<()> {
        check_len(&payload)?;
        self.tx
            .send(Request::Append {
                records: Records::One((ts_micros, payload)),
                done: None,
            })
            .await
            .map_err(|_| JournalError::Closed)
    }

    /// Highest LSN known durable (0 if the journal is empty).
    pub fn durable_lsn(&self) -> Lsn {
        *self.durable.borrow()
    }

    /// A receiver of the durable LSN, to await new data (`changed().await`).
    pub fn subscribe_durable(&self) -> watch::Receiver<Lsn> {
        self.durable.clone()
    }

    pub fn stats(&self) -> &Arc<JournalStats> {
        &self.stats
    }

    /// The data directory (parent of `journal/`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A reader that never reads past the durable LSN and can await new records.
    pub fn reader(&self) -> JournalReader {
        JournalReader::live(
            &self.data_dir,
            self.durable.clone(),
            Arc::clone(&self.stats),
        )
    }

    /// Free space now, against `[journal] min_free` (one `statvfs`). `None` if the file
    /// system cannot say.
    pub fn space(&self) -> Option<SpaceStatus> {
        let s = space::space(&self.data_dir).ok()?;
        let min_free = self.min_free.bytes(s.total);
        Some(SpaceStatus {
            free: s.free,
            total: s.total,
            min_free,
            low: self.stats.space_low() || s.free < min_free,
        })
    }

    /// Resolves when the writer has refused a segment for want of space since the last
    /// call: the moment for retention to free what every consumer has read.
    pub async fn space_wanted(&self) {
        self.stats.space_wanted.notified().await
    }
}

/// The owner of a running journal: opens it (recovery included) and closes it.
/// Dereferences to a [`JournalHandle`].
pub struct Journal {
    handle: JournalHandle,
    thread: Option<JoinHandle<()>>,
    /// Tags of the active segment's records as found at open (see [`Journal::tags_since`]).
    open_tags: Mutex<Option<Vec<Tag>>>,
}

impl Deref for Journal {
    type Target = JournalHandle;
    fn deref(&self) -> &JournalHandle {
        &self.handle
    }
}

impl Journal {
    /// Opens (or creates) `<data_dir>/journal`, runs recovery and starts the writer thread.
    ///
    /// Blocking (it reads the active segment and the summaries of the others): call it
    /// before serving, or through `spawn_blocking`.
    pub fn open(config: JournalConfig) -> Result<(Journal, OpenReport)> {
        if config.segment_size < MIN_SEGMENT_SIZE {
            return Err(JournalError::InvalidConfig {
                reason: "segment_size is below MIN_SEGMENT_SIZE",
            });
        }
        if config.queue_capacity == 0 {
            return Err(JournalError::InvalidConfig {
                reason: "queue_capacity must be at least 1",
            });
        }
        let data_dir = config.data_dir.clone();
        let dir = segment::journal_dir(&data_dir);
        let cursors = dir.join("cursors");
        std::fs::create_dir_all(&cursors)
            .map_err(|e| JournalError::io("create journal dir", &cursors, e))?;
        segment::sync_dir(&data_dir)?;
        segment::sync_dir(&dir)?;
        let lock = lock_dir(&dir)?;
        let (rec, report) = recovery::recover(&dir, config.segment_size, config.tagger)?;
        let open_tags = rec.summary.tags.clone();
        let active = ActiveSegment::from(rec);

        let durable_lsn = active.next_lsn - 1;
        let stats = Arc::new(JournalStats::default());
        stats.durable_lsn.store(durable_lsn, Relaxed);
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (durable_tx, durable_rx) = watch::channel(durable_lsn);
        let faults = config
            .faults
            .clone()
            .or_else(super::faults::Faults::from_env);
        // Weak: the stage's nudge must not keep the queue open once every handle is gone.
        let nudge = tx.downgrade();
        let on_failure: Box<dyn Fn() + Send + Sync> = Box::new(move || {
            if let Some(tx) = nudge.upgrade() {
                // A full queue means appends are coming: they re-open it.
                let _ = tx.try_send(Request::Reopen);
            }
        });
        let stage = SyncStage::start(Start {
            file: Arc::clone(&active.file),
            path: active.path.clone(),
            durable_lsn,
            stats: stats.clone(),
            durable: durable_tx,
            observer: config.observer.clone(),
            // Past two batches' worth unsynced, the writer stops taking more.
            max_unsynced_bytes: config.max_batch_bytes.max(1).saturating_mul(2),
            faults,
            on_failure,
        })
        .map_err(|e| JournalError::io("spawn sync threads", &data_dir, e))?;
        let writer = Writer::new(&config, dir, active, stage, stats.clone(), lock);
        let stopped = StoppedOnDrop(stats.clone());
        let thread = std::thread::Builder::new()
            .name("tocsin-journal".into())
            .spawn(move || {
                // Marks the writer gone however its thread ends, a panic included.
                let _stopped = stopped;
                writer.run(rx)
            })
            .map_err(|e| JournalError::io("spawn writer thread", &data_dir, e))?;
        let handle = JournalHandle {
            tx,
            durable: durable_rx,
            stats,
            data_dir: Arc::from(data_dir.as_path()),
            min_free: config.min_free,
        };
        Ok((
            Journal {
                handle,
                thread: Some(thread),
                open_tags: Mutex::new(open_tags),
            },
            report,
        ))
    }

    /// A cloneable handle for appenders and readers.
    pub fn handle(&self) -> JournalHandle {
        self.handle.clone()
    }

    /// The tags (see [`summary::Tagger`]) of the newest `max` records that were in the
    /// journal when it was opened and are timestamped at or after `since_micros`, oldest
    /// first: the active segment's as recovery found them, the sealed segments' from their
    /// summaries, newest segment first, reading no summary once `max` tags are found or a
    /// segment is entirely older than `since_micros`. Meant to be called once, right after
    /// open (the active segment's tags are handed over and forgotten); blocking.
    pub fn tags_since(&self, since_micros: i64, max: usize) -> Result<Vec<Tag>> {
        let recent = |tags: Vec<Tag>| -> Vec<Tag> {
            tags.into_iter()
                .filter(|(ts, _)| *ts >= since_micros)
                .collect()
        };
        let active = self
            .open_tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        // Newest part first.
        let mut parts = vec![recent(active)];
        let mut found = parts.iter().map(Vec::len).sum::<usize>();
        let dir = segment::journal_dir(&self.handle.data_dir);
        let mut segs = segment::list_segments(&dir)?;
        // The active segment at open is the newest; its tags are above.
        segs.pop();
        for seg in segs.iter().rev() {
            if found >= max {
                break;
            }
            let Some((head, _)) = summary::load_header(&seg.path, seg.first_lsn, seg.len) else {
                continue;
            };
            if head.max_ts.is_some_and(|ts| ts < since_micros) {
                break;
            }
            let tags = summary::load(&seg.path, seg.first_lsn, seg.len)
                .and_then(|s| s.tags)
                .map(recent)
                .unwrap_or_default();
            found += tags.len();
            parts.push(tags);
        }
        // Oldest first, leaving out the oldest beyond `max`.
        let mut skip = found.saturating_sub(max);
        let mut out = Vec::with_capacity(found - skip);
        for part in parts.into_iter().rev() {
            if let Some(newer) = part.get(skip..) {
                out.extend_from_slice(newer);
                skip = 0;
            } else {
                skip -= part.len();
            }
        }
        Ok(out)
    }

    /// Stops accepting appends, waits until everything queued before this call is written and
    /// synced, and stops the writer. Returns `Err(Poisoned)` if the writer had failed and was
    /// not re-opened since (records queued after the failure were refused to their callers).
    pub async fn close(mut self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let sent = self.handle.tx.send(Request::Close { done: tx }).await;
        let res = match sent {
            Ok(()) => rx.await.unwrap_or(Err(JournalError::WriterGone)),
            Err(_) => Err(JournalError::WriterGone),
        };
        if let Some(t) = self.thread.take() {
            // The writer answers just before returning, so this join is short.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        res
    }
}

struct StoppedOnDrop(Arc<JournalStats>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.writer_stopped.store(true, Relaxed);
    }
}

/// One writer per directory, across processes: a second daemon (or a test) on the same data
/// directory would interleave LSNs.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| JournalError::io("open lock", &path, e))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(JournalError::Locked { path }),
        Err(e) => Err(JournalError::io("flock", &path, e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Faults, MinFree};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Waits (a bounded while) until the writer has re-opened the journal `n` times.
    async fn reopened(j: &Journal, n: u64) {
        for _ in 0..500 {
            if j.stats().reopens() >= n && !j.stats().poisoned() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the journal was not re-opened");
    }

    #[test]
    fn a_failed_sync_refuses_its_batch_then_the_journal_reopens_in_process() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let mut cfg = JournalConfig::new(tmp.path());
        cfg.segment_size = MIN_SEGMENT_SIZE;
        cfg.faults = Some(Faults::fail_syncs(1, 1));
        rt().block_on(async {
            let (j, _) = Journal::open(cfg).unwrap();
            let mut live = j.reader();
            assert_eq!(j.append(1, b"ok".to_vec()).await.unwrap(), 1);
            // The record is written, its sync fails: refused, never acknowledged.
            let err = j.append(2, b"fails".to_vec()).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    JournalError::Io {
                        op: "fdatasync",
                        ..
                    }
                ),
                "{err}"
            );
            assert_eq!(j.durable_lsn(), 1);
            // The writer re-opens the journal by itself, without waiting for an append:
            // what followed the last good sync is discarded, and its LSN is given again.
            reopened(&j, 1).await;
            assert_eq!(j.append(3, b"after".to_vec()).await.unwrap(), 2);
            assert_eq!(j.stats().failed_batches(), 1);
            let lsns: Vec<_> = std::iter::from_fn(|| live.next_record().unwrap())
                .map(|r| (r.lsn, r.payload))
                .collect();
            assert_eq!(lsns, [(1, b"ok".to_vec()), (2, b"after".to_vec())]);
            j.close().await.unwrap();
        });
        rt().block_on(async {
            let (j, rep) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
            assert_eq!(rep.last_lsn, 2);
            assert!(rep.torn_tail.is_none(), "{rep:?}");
            j.close().await.unwrap();
        });
        let all: Vec<_> = JournalReader::open(tmp.path())
            .unwrap()
            .map(|r| r.unwrap().payload)
            .collect();
        assert_eq!(all, [b"ok".to_vec(), b"after".to_vec()]);
    }

    #[test]
    fn a_failed_sync_after_a_rotation_discards_the_new_segment() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let mut cfg = JournalConfig::new(tmp.path());
        cfg.segment_size = MIN_SEGMENT_SIZE;
        cfg.faults = Some(Faults::fail_syncs(3, 1));
        rt().block_on(async {
            let (j, _) = Journal::open(cfg).unwrap();
            for i in 1..=3 {
                assert_eq!(j.append(i, vec![b'a'; 1500]).await.unwrap(), i as u64);
            }
            // Past the end of the first segment: sealed, then the sync in the new one fails.
            assert!(j.append(4, vec![b'b'; 1500]).await.is_err());
            assert_eq!(j.append(5, vec![b'c'; 10]).await.unwrap(), 4);
            j.close().await.unwrap();
        });
        let all: Vec<_> = JournalReader::open(tmp.path())
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].payload, vec![b'c'; 10]);
    }

    /// A tag for tests: the payload's first byte, if it is not zero.
    fn first_byte(p: &[u8]) -> Option<u128> {
        p.first().filter(|&&b| b != 0).map(|&b| u128::from(b))
    }

    #[test]
    fn tags_come_from_summaries_and_the_active_segment() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let config = |tagger: Option<crate::journal::Tagger>| {
            let mut c = JournalConfig::new(tmp.path());
            c.segment_size = MIN_SEGMENT_SIZE;
            c.tagger = tagger;
            c
        };
        // 60 records over several segments, at times 1..=60; every third has no tag.
        rt().block_on(async {
            let (j, _) = Journal::open(config(Some(first_byte))).unwrap();
            for i in 1..=60u8 {
                let tag = if i % 3 == 0 { 0 } else { i };
                j.append(i64::from(i), vec![tag; 200]).await.unwrap();
            }
            j.close().await.unwrap();
        });
        let want = |since: i64, max: usize| -> Vec<Tag> {
            let all: Vec<Tag> = (1..=60u8)
                .filter(|i| i % 3 != 0 && i64::from(*i) >= since)
                .map(|i| (i64::from(i), u128::from(i)))
                .collect();
            all[all.len().saturating_sub(max)..].to_vec()
        };
        for (since, max) in [
            (0, usize::MAX),
            (30, usize::MAX),
            (0, 5),
            (59, 10),
            (61, 10),
        ] {
            let (j, rep) = Journal::open(config(Some(first_byte))).unwrap();
            assert!(rep.segments > 3 && rep.summaries_written == 0, "{rep:?}");
            assert_eq!(
                j.tags_since(since, max).unwrap(),
                want(since, max),
                "{since} {max}"
            );
            rt().block_on(j.close()).unwrap();
        }
        // Summaries written without a tagger are written again, once, when one is given.
        let dir = segment::journal_dir(tmp.path());
        for s in segment::list_segments(&dir).unwrap() {
            let _ = std::fs::remove_file(summary::path_of(&s.path));
        }
        let (j, rep) = Journal::open(config(None)).unwrap();
        assert!(rep.summaries_written > 2);
        rt().block_on(j.close()).unwrap();
        let (j, rep) = Journal::open(config(Some(first_byte))).unwrap();
        assert_eq!(rep.summaries_written, rep.segments - 1);
        assert_eq!(j.tags_since(0, usize::MAX).unwrap(), want(0, usize::MAX));
        rt().block_on(j.close()).unwrap();
    }

    #[test]
    fn no_room_refuses_before_writing_and_the_journal_stays_whole() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let mut cfg = JournalConfig::new(tmp.path());
        cfg.segment_size = MIN_SEGMENT_SIZE;
        // No file system has this much free: every new segment is refused.
        cfg.min_free = MinFree::Percent(100.0);
        let acked = rt().block_on(async {
            let (j, _) = Journal::open(cfg).unwrap();
            let mut acked = Vec::new();
            let refused = loop {
                match j.append(1, vec![b'x'; 500]).await {
                    Ok(lsn) => acked.push(lsn),
                    Err(e) => break e,
                }
                assert!(acked.len() < 100, "never refused");
            };
            assert!(
                matches!(refused, JournalError::BelowMinFree { .. }),
                "{refused}"
            );
            assert!(refused.is_out_of_space());
            assert!(j.stats().space_low() && !j.stats().poisoned());
            assert_eq!(j.stats().refused(), 1);
            // Retention is told, and a batch is refused whole.
            tokio::time::timeout(std::time::Duration::from_secs(1), j.space_wanted())
                .await
                .unwrap();
            // A batch whose first record would fit and whose second would not: refused
            // whole, nothing of it written; a small record still fits.
            let last = *acked.last().unwrap();
            let batch = vec![(2, vec![1; 10]), (2, vec![1; 600])];
            assert!(j.append_batch(batch).await.is_err());
            assert_eq!(j.durable_lsn(), last);
            assert_eq!(j.append(2, vec![1; 10]).await.unwrap(), last + 1);
            acked.push(last + 1);
            j.close().await.unwrap();
            acked
        });
        // Nothing refused was written: with room again, appends go on at the next LSN.
        rt().block_on(async {
            let mut cfg = JournalConfig::new(tmp.path());
            cfg.segment_size = MIN_SEGMENT_SIZE;
            let (j, rep) = Journal::open(cfg).unwrap();
            assert!(
                rep.torn_tail.is_none() && rep.corruptions.is_empty(),
                "{rep:?}"
            );
            assert_eq!(rep.last_lsn, acked.len() as u64);
            assert_eq!(
                j.append(3, b"room".to_vec()).await.unwrap(),
                rep.last_lsn + 1
            );
            assert!(!j.stats().space_low());
            j.close().await.unwrap();
        });
    }

    #[test]
    fn second_writer_is_refused() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        rt().block_on(async {
            let (j, _) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
            let second = Journal::open(JournalConfig::new(tmp.path()));
            assert!(matches!(second, Err(JournalError::Locked { .. })));
            j.close().await.unwrap();
        });
    }

    #[test]
    fn appends_after_close_are_refused() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        rt().block_on(async {
            let (j, _) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
            let h = j.handle();
            h.append_nowait(1, b"audit".to_vec()).await.unwrap();
            j.close().await.unwrap();
            assert_eq!(h.durable_lsn(), 1, "close waits for queued nowait records");
            assert!(h.stats().writer_stopped());
            assert!(matches!(
                h.append(2, vec![]).await,
                Err(JournalError::Closed)
            ));
        });
    }
}
