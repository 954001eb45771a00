//! The second half of group commit: `fdatasync` calls that overlap.
//!
//! The writer thread writes each batch into the page cache and hands it here; syncer
//! threads make it durable. An `fdatasync` makes durable everything written to the file
//! before it began, so when one returns, every batch written before its start is complete,
//! whichever syncer wrote it and in whatever order the syncs end.
//!
//! Why more than one sync in flight: with a single one, a batch written while a sync is
//! running waits for that sync to end and then for its own, up to two sync times. With a
//! second syncer it starts its own sync at once, about one sync time. And the virtual disks
//! this was measured on answer a flush that arrives after an idle moment in ~4 ms, against
//! ~50 µs while flushes keep coming: overlapping syncs keep them coming.
//!
//! Who syncs: while syncs are fast (under `OVERLAP_AFTER`) and none is running, the writer
//! thread syncs its own batch, as a plain group commit would: handing over to another
//! thread costs a wake-up, which on a virtual machine is worth more than such a sync. Once
//! a sync has been slow, batches go to the syncer threads, and a second sync starts when
//! the running one has taken `OVERLAP_AFTER`.
//!
//! Completion: a batch's waiters are answered, `Ok` and in LSN order, only once a sync that
//! began after the batch was written has returned `Ok`; the durable LSN is published before.
//! A failed sync poisons the stage (see the module doc of `journal`): every batch not yet
//! durable gets the error, and nothing is acknowledged after it until the writer has
//! re-opened the journal and [`SyncStage::reset`] the stage on the re-verified segment.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::error::{JournalError, Result};
use super::faults::Faults;
use super::stats::{BatchObserver, BatchStats, JournalStats};
use super::Lsn;
use crate::throttle::{Throttle, Verdict};

static FAILURE_LOG: Throttle = Throttle::per_minute(6);

/// Syncs in flight at most. Two already turn "the one running, then mine" into "mine";
/// more would add flushes without shortening anyone's wait by much.
const SYNCERS: usize = 2;

/// A second sync starts only once the one in flight has run this long: a disk that syncs in
/// tens or hundreds of microseconds is served by syncs one after the other, and overlapping
/// them would only double the flushes and add hand-overs between threads (both cost CPU:
/// with 200 µs here, busy runs whose syncs took 150–200 µs spent 5–8 % more CPU a frame);
/// one that takes milliseconds gets the overlap.
const OVERLAP_AFTER: Duration = Duration::from_millis(1);

pub(super) type Completion = oneshot::Sender<Result<RangeInclusive<Lsn>>>;

/// One request, written and waiting for a sync.
pub(super) struct Written {
    pub done: Option<Completion>,
    pub first_lsn: Lsn,
    pub records: usize,
    pub bytes: usize,
    /// Time the writer spent in `write` for this request's batch (carried by its first
    /// request only, so that sums are right).
    pub write: Duration,
    /// Segments created while writing this request's batch (same rule).
    pub rotations: usize,
}

impl Written {
    fn last_lsn(&self) -> Lsn {
        self.first_lsn + self.records.max(1) as u64 - 1
    }
}

/// The file a sync must cover and how far it was written.
struct State {
    file: Arc<File>,
    path: PathBuf,
    /// Highest LSN written to the page cache.
    written: Lsn,
    /// Highest LSN a sync in flight or done covers.
    covered: Lsn,
    durable: Lsn,
    waiting: VecDeque<Written>,
    /// Bytes written but not yet durable: the writer waits past a limit, so a slow disk
    /// pushes back on appenders instead of filling memory.
    unsynced_bytes: usize,
    poisoned: Option<Arc<str>>,
    stopping: bool,
    /// Syncs running now, and when the latest of them began.
    in_flight: usize,
    last_start: Instant,
    /// How long the last sync took: while syncs are fast, the writer syncs its own batches.
    last_took: Duration,
}

struct Shared {
    state: Mutex<State>,
    /// Syncers wait here for written data (and for the stop).
    work: Condvar,
    /// The writer waits here for room (too much unsynced).
    room: Condvar,
    stats: Arc<JournalStats>,
    durable: watch::Sender<Lsn>,
    observer: Option<BatchObserver>,
    max_unsynced_bytes: usize,
    overlap_after: Duration,
    faults: Option<Arc<Faults>>,
    /// Told when a sync fails (the writer then re-opens the journal).
    on_failure: Box<dyn Fn() + Send + Sync>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than stopping would: keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The syncer threads and what they share with the writer.
pub(super) struct SyncStage {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Where the stage starts: the active segment and the last durable LSN.
pub(super) struct Start {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub durable_lsn: Lsn,
    pub stats: Arc<JournalStats>,
    pub durable: watch::Sender<Lsn>,
    pub observer: Option<BatchObserver>,
    pub max_unsynced_bytes: usize,
    pub faults: Option<Arc<Faults>>,
    pub on_failure: Box<dyn Fn() + Send + Sync>,
}

impl SyncStage {
    pub fn start(s: Start) -> std::io::Result<SyncStage> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                file: s.file,
                path: s.path,
                written: s.durable_lsn,
                covered: s.durable_lsn,
                durable: s.durable_lsn,
                waiting: VecDeque::new(),
                unsynced_bytes: 0,
                poisoned: None,
                stopping: false,
                in_flight: 0,
                last_start: Instant::now(),
                last_took: Duration::ZERO,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            stats: s.stats,
            durable: s.durable,
            observer: s.observer,
            max_unsynced_bytes: s.max_unsynced_bytes.max(1),
            overlap_after: OVERLAP_AFTER,
            faults: s.faults,
            on_failure: s.on_failure,
        });
        let mut threads = Vec::with_capacity(SYNCERS);
        for i in 0..SYNCERS {
            let mine = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("tocsin-sync-{i}"))
                .spawn(move || syncer(&mine));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let stage = SyncStage { shared, threads };
                    stage.finish();
                    return Err(e);
                }
            }
        }
        Ok(SyncStage { shared, threads })
    }

    /// Why the journal refuses appends, once a write or a sync has failed.
    pub fn poisoned(&self) -> Option<Arc<str>> {
        self.shared.lock().poisoned.clone()
    }

    /// The last LSN a successful sync covered.
    pub fn durable(&self) -> Lsn {
        self.shared.lock().durable
    }

    /// Waits until no sync is running (after a failure, before the files are touched).
    pub fn quiesce(&self) {
        let mut st = self.shared.lock();
        while st.in_flight > 0 {
            st = self
                .shared
                .room
                .wait_timeout(st, Duration::from_millis(10))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// After a failure, once the journal was re-opened: syncs go on in `file`, from the
    /// durable LSN, and appends are accepted again. Requests refused meanwhile stay refused.
    pub fn reset(&self, file: &Arc<File>, path: &std::path::Path) {
        self.quiesce();
        let mut st = self.shared.lock();
        st.file = Arc::clone(file);
        st.path = path.to_path_buf();
        st.written = st.durable;
        st.covered = st.durable;
        st.unsynced_bytes = 0;
        st.last_took = Duration::ZERO;
        let refused: Vec<Written> = st.waiting.drain(..).collect();
        let cause = st.poisoned.take();
        self.shared.stats.poisoned.store(false, Relaxed);
        drop(st);
        if let Some(cause) = cause {
            fail(refused, &JournalError::Poisoned { cause });
        }
    }

    /// Hands over requests whose records are written, up to `written` (LSN) in `file`,
    /// which is the active segment from now on. Waits first while too much is unsynced.
    pub fn submit(
        &self,
        file: &Arc<File>,
        path: &std::path::Path,
        written: Lsn,
        batch: Vec<Written>,
    ) {
        let mut st = self.shared.lock();
        while st.unsynced_bytes > self.shared.max_unsynced_bytes && st.poisoned.is_none() {
            st = self.shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(cause) = st.poisoned.clone() {
            drop(st);
            fail(batch, &JournalError::Poisoned { cause });
            return;
        }
        if !Arc::ptr_eq(&st.file, file) {
            st.file = Arc::clone(file);
            st.path = path.to_path_buf();
        }
        st.written = st.written.max(written);
        st.unsynced_bytes += batch.iter().map(|w| w.bytes).sum::<usize>();
        st.waiting.extend(batch);
        // A syncer whose sync ends looks for more work by itself, so an idle one is woken
        // only when none is running, or when the running one has been slow long enough to
        // be overlapped. Waking threads is not free on a virtual machine.
        if st.in_flight == 0 && st.last_took < self.shared.overlap_after {
            // The disk syncs fast and nothing is running: sync here, without handing over to
            // another thread (a wake-up costs more than such a sync on a virtual machine).
            // Appends gather in the queue meanwhile, as they would during a hand-over.
            drop(sync_written(&self.shared, st));
            return;
        }
        let wake = st.in_flight == 0 || st.last_start.elapsed() >= self.shared.overlap_after;
        if wake {
            self.shared.work.notify_one();
        }
        // Then wait until a sync has taken this batch. Meanwhile appends gather in the queue
        // and become the next batch: without this wait, the writer would write (and be
        // woken for) every append on its own while a sync runs. If the running sync is
        // slow, the wait ends after `overlap_after` to start a second one.
        while st.written > st.covered && st.poisoned.is_none() && !st.stopping {
            let running = st.last_start.elapsed();
            if st.in_flight == 0 || running >= self.shared.overlap_after {
                self.shared.work.notify_one();
                st = self.shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
            } else {
                st = self
                    .shared
                    .room
                    .wait_timeout(st, self.shared.overlap_after - running)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }

    /// A write failed: nothing may be acknowledged any more. Every request not yet durable,
    /// and `batch` (the one that failed), gets `err`.
    pub fn poison(&self, err: &JournalError, batch: Vec<Written>) {
        let pending = poison(&self.shared, self.shared.lock(), err);
        fail(batch, err);
        fail(pending, err);
    }

    /// Waits until everything submitted is durable (or failed) and stops the syncers.
    pub fn finish(mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Dropped without [`SyncStage::finish`] (the writer thread unwinding): the syncers still
/// sync and answer what was written, then end, so no waiter is left hanging.
impl Drop for SyncStage {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
    }
}

/// Marks the journal poisoned and takes every request still waiting.
fn poison(shared: &Shared, mut st: MutexGuard<'_, State>, err: &JournalError) -> Vec<Written> {
    if st.poisoned.is_none() {
        if let Verdict::Log { suppressed } = FAILURE_LOG.check_now() {
            tracing::error!(%err, suppressed, "journal write or sync failed: appends refused until the journal is re-opened and re-verified");
        }
        st.poisoned = Some(Arc::from(err.to_string()));
        shared.stats.poisoned.store(true, Relaxed);
    }
    shared.stats.failed_batches.fetch_add(1, Relaxed);
    st.unsynced_bytes = 0;
    let pending: Vec<Written> = st.waiting.drain(..).collect();
    drop(st);
    shared.work.notify_all();
    shared.room.notify_all();
    pending
}

fn fail(batch: Vec<Written>, err: &JournalError) {
    for w in batch {
        if let Some(done) = w.done {
            let _ = done.send(Err(err.clone()));
        }
    }
}

/// One syncer: sync whatever was written and is not covered yet, until stopped.
fn syncer(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.poisoned.is_some() {
            // Nothing is synced until the writer has re-opened the journal and reset the
            // stage, or the journal closes.
            if st.stopping {
                return;
            }
            st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        if st.written <= st.covered {
            if st.stopping {
                return;
            }
            st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        if st.in_flight > 0 && st.last_start.elapsed() < shared.overlap_after {
            // A fast sync in flight will be done soon and its syncer takes this work next; a
            // second sync now would only add a flush. A later write wakes this one if the
            // running sync turns out slow.
            st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        st = sync_written(shared, st);
    }
}

/// Syncs everything written so far and answers what that made durable. Called with the
/// lock held and something uncovered; returns with the lock held again.
fn sync_written<'s>(shared: &'s Shared, mut st: MutexGuard<'s, State>) -> MutexGuard<'s, State> {
    let target = st.written;
    st.covered = target;
    st.in_flight += 1;
    st.last_start = Instant::now();
    // The writer may be waiting for its batch to be taken.
    shared.room.notify_one();
    let file = Arc::clone(&st.file);
    let path = st.path.clone();
    drop(st);

    let started = Instant::now();
    let injected = shared.faults.as_ref().is_some_and(|f| f.sync_fails());
    let synced = if injected {
        Err(std::io::Error::other("injected fsync failure"))
    } else {
        file.sync_data()
    };
    let took = started.elapsed();

    st = shared.lock();
    st.in_flight -= 1;
    st.last_took = took;
    if let Err(e) = synced {
        let err = JournalError::io("fdatasync", &path, e);
        let pending = poison(shared, st, &err);
        fail(pending, &err);
        (shared.on_failure)();
        return shared.lock();
    }
    if st.poisoned.is_some() || target <= st.durable {
        // Another sync that began later already covered this one's data (or one failed:
        // nothing is acknowledged any more). A re-open may wait for this sync to end.
        shared.room.notify_all();
        return st;
    }
    let first = st.durable + 1;
    st.durable = target;
    let mut done = Vec::new();
    while st.waiting.front().is_some_and(|w| w.last_lsn() <= target) {
        if let Some(w) = st.waiting.pop_front() {
            done.push(w);
        }
    }
    let bytes: usize = done.iter().map(|w| w.bytes).sum();
    st.unsynced_bytes = st.unsynced_bytes.saturating_sub(bytes);
    let bs = BatchStats {
        records: (target + 1 - first) as usize,
        requests: done.len(),
        bytes,
        first_lsn: first,
        last_lsn: target,
        write: done.iter().map(|w| w.write).sum(),
        fsync: took,
        rotations: done.iter().map(|w| w.rotations).sum(),
    };
    let s = &shared.stats;
    s.batches.fetch_add(1, Relaxed);
    s.records.fetch_add(bs.records as u64, Relaxed);
    s.bytes.fetch_add(bs.bytes as u64, Relaxed);
    s.rotations.fetch_add(bs.rotations as u64, Relaxed);
    s.last_fsync_nanos
        .store(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    s.durable_lsn.store(target, Relaxed);
    // Published under the lock, so the durable LSN readers see never goes back, and
    // before the waiters hear: a reader woken by an acknowledged append can read it.
    shared.durable.send_replace(target);
    drop(st);
    shared.room.notify_one();
    for w in done {
        let range = w.first_lsn..=w.last_lsn();
        if let Some(tx) = w.done {
            let _ = tx.send(Ok(range));
        }
    }
    if let Some(obs) = &shared.observer {
        obs(&bs);
    }
    shared.lock()
}
