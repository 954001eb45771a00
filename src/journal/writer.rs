//! The group-commit writer: one OS thread owns the active segment; async callers queue to it.
//!
//! Why a thread and not a tokio task: `write` and `fdatasync` block for milliseconds, and the
//! writer does nothing else; a dedicated thread keeps that off the runtime's workers, and owning
//! the file in one place means no locking around the write position.
//!
//! One turn of the loop: block for the first request, wait out the commit interval if one is
//! configured and the last commit started less than that ago, drain whatever else is queued (bounded by
//! `max_batch_bytes`), assign LSNs in queue order, encode everything into one buffer, write it
//! with one positioned write (two if the batch crosses into a new segment), and hand the batch
//! to the sync stage ([`super::sync`]), which calls `fdatasync`, publishes the durable LSN and
//! completes every waiter. Completion happens only after a sync that began after the write
//! returned: the `Ok(lsn)` a caller receives *is* the durability proof it may ACK on.
//!
//! After any write or sync error the journal poisons itself (see the module doc of `journal`).

use std::fs::File;
use std::ops::{Deref, RangeInclusive};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::error::{JournalError, Result};
use super::reader::JournalReader;
use super::record::{self, MAX_RECORD_LEN};
use super::recovery::{self, OpenReport};
use super::segment::{self, SEGMENT_HEADER_LEN};
use super::stats::JournalStats;
use super::sync::{Completion, Start, SyncStage, Written};
use super::{JournalConfig, Lsn, MIN_SEGMENT_SIZE};

enum Request {
    Append {
        records: Records,
        /// `None` for fire-and-forget records.
        done: Option<Completion>,
    },
    Close {
        done: oneshot::Sender<Result<()>>,
    },
}

/// The records of one request. Nearly every append carries one record, which travels
/// inline: a list of one would be an allocation per frame for nothing.
enum Records {
    One((i64, Vec<u8>)),
    Many(Vec<(i64, Vec<u8>)>),
}

impl Records {
    /// Each record's timestamp and payload, in order.
    fn as_slice(&self) -> &[(i64, Vec<u8>)] {
        match self {
            Records::One(r) => std::slice::from_ref(r),
            Records::Many(v) => v,
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
        JournalReader::live(&self.data_dir, self.durable.clone())
    }
}

/// The owner of a running journal: opens it (recovery included) and closes it.
/// Dereferences to a [`JournalHandle`].
pub struct Journal {
    handle: JournalHandle,
    thread: Option<JoinHandle<()>>,
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
    /// Blocking (it reads every segment): call it before serving, or through `spawn_blocking`.
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
        let (rec, report) = recovery::recover(&dir, config.segment_size)?;

        let durable_lsn = rec.next_lsn - 1;
        let stats = Arc::new(JournalStats::default());
        stats.durable_lsn.store(durable_lsn, Relaxed);
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (durable_tx, durable_rx) = watch::channel(durable_lsn);
        let file = Arc::new(rec.file);
        let stage = SyncStage::start(Start {
            file: Arc::clone(&file),
            path: rec.path.clone(),
            durable_lsn,
            stats: stats.clone(),
            durable: durable_tx,
            observer: config.observer.clone(),
            // Past two batches' worth unsynced, the writer stops taking more.
            max_unsynced_bytes: config.max_batch_bytes.max(1).saturating_mul(2),
            #[cfg(test)]
            fail_sync_after: config.fail_sync_after,
        })
        .map_err(|e| JournalError::io("spawn sync threads", &data_dir, e))?;
        let writer = Writer {
            dir,
            file,
            path: rec.path,
            write_pos: rec.write_pos,
            capacity: rec.capacity,
            next_lsn: rec.next_lsn,
            segment_size: config.segment_size,
            max_batch_bytes: config.max_batch_bytes.max(1),
            commit_interval: config.commit_interval,
            commit_interval_after: config.commit_interval_after,
            last_commit: Instant::now(),
            last_commit_records: 0,
            buf: Vec::new(),
            stage,
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("tocsin-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::io("spawn writer thread", &data_dir, e))?;
        let handle = JournalHandle {
            tx,
            durable: durable_rx,
            stats,
            data_dir: Arc::from(data_dir.as_path()),
        };
        Ok((
            Journal {
                handle,
                thread: Some(thread),
            },
            report,
        ))
    }

    /// A cloneable handle for appenders and readers.
    pub fn handle(&self) -> JournalHandle {
        self.handle.clone()
    }

    /// Stops accepting appends, waits until everything queued before this call is written and
    /// synced, and stops the writer. Returns `Err(Poisoned)` if the writer had failed (records
    /// queued after the failure were refused to their callers).
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

struct Pending {
    records: Records,
    done: Option<Completion>,
    first_lsn: Lsn,
    /// Encoded size of `records`, counted once when the request is taken.
    bytes: usize,
}

struct Writer {
    dir: PathBuf,
    file: Arc<File>,
    path: PathBuf,
    /// Where the next record goes in `file`.
    write_pos: u64,
    /// Allocated size of `file`; a record that would cross it goes to a new segment.
    capacity: u64,
    next_lsn: Lsn,
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
    _lock: File,
}

/// What writing one batch did, for the sync stage's statistics.
#[derive(Default)]
struct WriteStats {
    write: Duration,
    rotations: usize,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
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
                }
                if bytes < self.max_batch_bytes {
                    next = rx.try_recv().ok();
                }
            }
            self.last_commit_records = count;
            self.commit(&mut batch);
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

    /// Writes the batch and hands it to the sync stage, which answers its waiters.
    fn commit(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        if let Some(cause) = self.stage.poisoned() {
            let err = JournalError::Poisoned { cause };
            self.stage
                .poison(&err, written(batch, WriteStats::default()));
            return;
        }
        let mut ws = WriteStats::default();
        match self.write_batch(batch, &mut ws) {
            Ok(last_lsn) => {
                let path = self.path.clone();
                self.stage
                    .submit(&self.file, &path, last_lsn, written(batch, ws));
            }
            Err(err) => self.stage.poison(&err, written(batch, ws)),
        }
    }

    /// Encodes and writes the batch (no sync); returns its last LSN.
    fn write_batch(&mut self, batch: &mut [Pending], ws: &mut WriteStats) -> Result<Lsn> {
        self.buf.clear();
        let mut lsn = self.next_lsn;
        for p in batch.iter_mut() {
            p.first_lsn = lsn;
            for (ts, payload) in p.records.as_slice() {
                let need = record::encoded_len(payload.len()) as u64;
                if self.write_pos + self.buf.len() as u64 + need > self.capacity {
                    self.make_room(lsn, need, ws)?;
                }
                record::encode_into(&mut self.buf, lsn, *ts, payload);
                lsn += 1;
            }
        }
        self.flush(ws)?;
        self.next_lsn = lsn;
        Ok(lsn - 1)
    }

    /// The next record (`lsn`, `need` bytes) does not fit in the active segment.
    fn make_room(&mut self, lsn: Lsn, need: u64, ws: &mut WriteStats) -> Result<()> {
        let header = SEGMENT_HEADER_LEN as u64;
        if self.write_pos == header && self.buf.is_empty() {
            // An empty segment too small for this record: grow it rather than create a second
            // segment with the same first LSN.
            segment::preallocate(&self.file, header + need)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| JournalError::io("grow segment", &self.path, e))?;
            self.capacity = header + need;
            return Ok(());
        }
        // Seal the old segment fully (its part of this batch written and synced) before the new
        // one exists, so recovery never sees a newer segment after an unsynced older tail. This
        // sync also covers whatever the sync stage has not synced yet in that segment.
        self.flush(ws)?;
        self.file
            .sync_data()
            .map_err(|e| JournalError::io("fdatasync", &self.path, e))?;
        let size = self.segment_size.max(header + need);
        let (file, path) = segment::create_segment(&self.dir, lsn, size)?;
        self.file = Arc::new(file);
        self.path = path;
        self.write_pos = header;
        self.capacity = size;
        ws.rotations += 1;
        Ok(())
    }

    fn flush(&mut self, ws: &mut WriteStats) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        self.file
            .write_all_at(&self.buf, self.write_pos)
            .map_err(|e| JournalError::io("write", &self.path, e))?;
        ws.write += t.elapsed();
        self.write_pos += self.buf.len() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn fsync_failure_fails_the_batch_and_poisons() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let mut cfg = JournalConfig::new(tmp.path());
        cfg.segment_size = MIN_SEGMENT_SIZE;
        cfg.fail_sync_after = Some(1);
        rt().block_on(async {
            let (j, _) = Journal::open(cfg).unwrap();
            assert_eq!(j.append(1, b"ok".to_vec()).await.unwrap(), 1);
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
            let err = j.append(3, b"after".to_vec()).await.unwrap_err();
            assert!(matches!(err, JournalError::Poisoned { .. }), "{err}");
            assert!(j.stats().poisoned());
            assert_eq!(j.durable_lsn(), 1);
            assert_eq!(j.stats().failed_batches(), 2);
            assert!(matches!(
                j.close().await,
                Err(JournalError::Poisoned { .. })
            ));
        });
        // After restart, the unsynced record may or may not be there (here it is, since only
        // the sync was faked); the journal is writable again.
        rt().block_on(async {
            let (j, rep) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
            assert!(rep.last_lsn >= 1);
            let lsn = j.append(4, b"again".to_vec()).await.unwrap();
            assert_eq!(lsn, rep.last_lsn + 1);
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
            assert!(matches!(
                h.append(2, vec![]).await,
                Err(JournalError::Closed)
            ));
        });
    }
}
