//! # The journal: tocsin's durable, append-only log
//!
//! The receiver appends every new event here and ACKs the panel only once the append returned
//! `Ok`, which happens only after the record's bytes were written and `fdatasync` returned. The
//! forwarder reads the journal and publishes to the bus at its own pace. The journal is
//! therefore both the durability point of invariant 1 ("ACK after durable") and the buffer of
//! invariant 2 ("reception never waits on consumers"). It knows nothing of protocols: a record
//! is an opaque payload plus a caller-supplied timestamp.
//!
//! ## Invariants
//!
//! 1. **`Ok` means durable.** `append`/`append_batch` resolve `Ok` only after an fsync that
//!    covered the record. Any `Err`, including a dropped completion
//!    ([`JournalError::WriterGone`]), means "not durable": the caller must NAK or stay silent.
//!    A refused record is never kept: it was not written ([`JournalError::DiskFull`],
//!    [`JournalError::BelowMinFree`]), or it is discarded by the re-open after a failure.
//! 2. **LSNs are dense and ordered.** Records get consecutive LSNs from 1, in queue order; a
//!    record that is readable has every smaller LSN of its segment readable before it (except
//!    where damage was reported, see *Recovery*).
//! 3. **One writer.** A single OS thread owns the active segment and writes every record (the
//!    sync threads only call `fdatasync` on it); a `LOCK` file (`flock`) keeps a second process
//!    off the directory.
//! 4. **Readers see only durable data** when attached to a running writer (live readers stop at
//!    the published durable LSN).
//! 5. **Nothing a consumer still needs is deleted** by retention unless explicitly allowed.
//! 6. **No input from disk can panic.** Every length and offset read from a file is checked.
//!
//! ## On disk
//!
//! ```text
//! <data_dir>/journal/
//!     LOCK                          held by the writer (flock)
//!     00000000000000000001.seg      segments, named by their first LSN (20 digits)
//!     00000000000000000001.sum      the summary of a sealed segment (see [`summary`])
//!     00000000000000004711.seg      the active segment (no summary)
//!     cursors/<name>                one file per consumer: decimal LSN + "\n"
//! ```
//!
//! A segment starts with a 32-byte header (magic `TOCSINJ1`, version 1, first LSN, CRC32C; see
//! [`segment`]) followed by records (see [`record`]):
//!
//! ```text
//! len:u32 LE | crc32c:u32 LE | lsn:u64 LE | ts_micros:i64 LE | payload[len]
//! ```
//!
//! The CRC32C covers `len`, `lsn`, `ts_micros` and the payload, so a torn length, a torn
//! payload, or a well-formed record from another position (a stale LSN) is rejected. Payloads are
//! limited to [`MAX_RECORD_LEN`] (1 MiB) and refused with [`JournalError::RecordTooLarge`].
//!
//! ## Segments and rotation
//!
//! Segments are preallocated (`fallocate`, [`JournalConfig::segment_size`], 64 MiB by default)
//! so that the file size does not change as records are appended and `fdatasync` has no size
//! metadata to commit. A segment is created under a temporary name, preallocated, given its
//! header, synced, renamed into place, and the directory synced: a `*.seg` always has a valid
//! header. When the next record does not fit, the writer writes and syncs the part of the batch
//! that belongs to the old segment, writes the old segment's summary (its LSN range, record
//! times and record tags, no fsync: a lost summary only costs one scan at the next open), then
//! installs the next one, so a newer segment only exists once the older one is complete on
//! disk. **A record larger than a whole segment gets a segment of its own, sized to fit it**
//! (never rejected, as long as it is within `MAX_RECORD_LEN`).
//!
//! ## Space: room before writing
//!
//! Disk space is taken only when a segment is created. Before writing a batch the writer
//! works out which segments the batch will need and creates them (under their temporary
//! names) first ([`room`]); a segment that would leave less than [`JournalConfig::min_free`]
//! free on the file system is not created, nor one the disk refuses (ENOSPC, EDQUOT). The
//! requests that fit in the room made are written; the others get
//! [`JournalError::BelowMinFree`] or [`JournalError::DiskFull`] and **nothing of them reached
//! the file**: the journal stays as it was, and once space returns the next append simply
//! succeeds, without a restart. [`JournalStats::space_low`] is true meanwhile, and
//! [`JournalHandle::space_wanted`] wakes retention, which deletes what every consumer has
//! taken.
//!
//! ## Group commit
//!
//! Appenders queue requests (bounded queue: a full queue makes `append` wait, which is the
//! back-pressure). The writer takes everything queued (up to `max_batch_bytes`), encodes it in
//! one buffer and writes it with one positioned write, then hands it to the sync stage
//! ([`sync`]) and goes back for more. Two syncer threads call `fdatasync`: whenever something
//! is written that no sync in flight covers, an idle syncer starts one. When a sync returns,
//! everything written before it began is durable: the stage publishes the new durable LSN on a
//! `watch` channel, then completes those waiters. So a record written while a sync is running
//! waits for one sync of its own, not for the running one first, and the disk never sits idle
//! between two syncs. Past twice `max_batch_bytes` written but not yet durable, the writer
//! waits for the syncs. `append_nowait` records travel the same queue and are made durable by
//! the same syncs, but nobody waits for them.
//!
//! ## Failure: refused, re-opened, re-verified
//!
//! If a write or an fsync fails (EIO, or ENOSPC where the room was made but the file system
//! still refused), every request not yet durable gets the error. After a failed fsync Linux
//! may have dropped the dirty pages and cleared the error; a later fsync could "succeed"
//! without the earlier data on disk, so nothing written since the last good sync can be
//! trusted. The journal does not go on as if nothing happened, and it does not wait for a
//! person to restart it either (outside systemd that would leave no receiver at all): the
//! next batch first **re-opens the journal in-process** ([`recovery::reopen_after_failure`]):
//! segments created after the last good sync are deleted, the active segment's cached pages
//! are dropped and its bytes read again from the device, the records up to the last durable
//! LSN are verified there, and everything after it is zeroed and synced, whether it reached
//! the disk or not: each of those records was refused to its sender (a panel that got NAK
//! sends again), so keeping it would store the frame twice. Appends go on from the durable
//! LSN; live readers notice the re-open ([`JournalStats::reopens`]) and drop what they had
//! buffered past it. Should the device have lost records a good sync had covered, the
//! journal continues after them in a new segment and readers report the gap. Until the
//! re-open succeeds (it is retried with a backoff up to 5 s), every append gets
//! [`JournalError::Poisoned`] and [`JournalStats::poisoned`] is true (`/readyz` reports not
//! ready). A false ACK is never given: panels that get none retry or fall back to another
//! receiver, which is safe.
//!
//! ## Recovery (on open)
//!
//! Open reads what it needs only, so its duration does not grow with the journal: the
//! active (newest) segment is scanned record by record (at most one segment's size), every
//! sealed segment is known from its summary; a sealed segment without a usable summary (a
//! journal written by an older version, or a crash right after a rotation) is scanned once
//! and gets one. See [`recovery`] for the rules of a scan; in short:
//! - **torn tail** — garbage after the last valid record of the newest segment (a write cut by
//!   a crash). It was never acknowledged. The write position is set to the end of the last valid
//!   record, the garbage is overwritten with zeros and synced (so no later scan can mistake stale
//!   bytes for records), and [`OpenReport::torn_tail`] counts the bytes and partial records;
//! - **damage in the middle** — an invalid record followed by valid ones, in a scanned
//!   segment, or a gap in LSNs between segments. Nothing is overwritten; the scan resumes at
//!   the next valid record; [`OpenReport::corruptions`] lists each place with the count of LSNs
//!   lost, and it is logged at error level. Damage inside a summarized segment is found by the
//!   readers that reach it: they report it as [`JournalError::Corrupt`] once and continue after
//!   it. Open does not fail for damage: refusing to start would stop alarm reception for data
//!   that is already lost;
//! - open fails (typed) only when it cannot safely append: unreadable header of the newest
//!   segment, overlapping segments, I/O errors, or the lock held.
//!
//! The summaries also carry each record's *tag* ([`Tagger`], the receiver's content key):
//! [`Journal::tags_since`] hands the dedup window's keys to the daemon at start from 24 bytes
//! a record instead of the records.
//!
//! ## Readers and cursors
//!
//! [`JournalReader`] iterates records in LSN order from [`JournalReader::seek`] or
//! [`JournalReader::seek_time`] (which picks the newest segment whose first record is not newer
//! than the time asked, reading one header per segment). A cursor ([`CursorStore`]) is the
//! **next LSN its consumer needs**; it is stored atomically (temp file, fsync, rename, fsync of
//! the directory). The forwarder stores a cursor before it starts consuming, so retention knows
//! of it from the first moment.
//!
//! ## Retention
//!
//! [`Retention::run`] deletes the oldest whole segments (and their summaries), never the
//! active one, while the journal is over `max_bytes`, or the segment's newest record is older
//! than `max_age`, or the file system has less than `min_free` plus one segment free, but
//! stops at the first segment holding an LSN ≥ the smallest cursor, unless
//! `allow_unpublished_deletion` is set (then the deleted unpublished records are counted and
//! logged as a warning). Every consumer registers its cursor, so what goes first when space
//! is short is what all of them have taken.
//!
//! ## What is counted when data is lost
//!
//! - a torn tail: bytes and partial records zeroed ([`TornTail`]) — never acknowledged data;
//! - damage: one [`Corruption`] per place, with the LSNs lost (may include acknowledged data);
//! - a failed write/fsync: [`JournalStats::failed_batches`], [`JournalStats::reopens`]; every
//!   waiter got an `Err`; `append_nowait` records of that batch are lost without a waiter to
//!   tell; what followed the last good sync is discarded at the re-open (logged with its size);
//! - no room: [`JournalStats::refused`] records refused before being written (nothing lost:
//!   each waiter got an `Err`);
//! - retention: [`RetentionReport::unpublished_records_deleted`].

mod cursor;
mod durable;
mod error;
pub mod faults;
mod handle;
mod reader;
pub mod record;
pub mod recovery;
mod retention;
mod room;
pub mod segment;
pub mod space;
mod stats;
pub mod summary;
mod sync;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use cursor::CursorStore;
pub use durable::Durable;
pub use error::{JournalError, Result};
pub use faults::Faults;
pub use handle::{Journal, JournalHandle, SpaceStatus};
pub use reader::{JournalReader, Record};
pub use record::MAX_RECORD_LEN;
pub use recovery::{Corruption, OpenReport, TornTail};
pub use retention::{DeletedSegment, Retention, RetentionPolicy, RetentionReport};
pub use space::MinFree;
pub use stats::{BatchObserver, BatchStats, JournalStats};
pub use summary::{Tag, Tagger};

/// Log sequence number: 1 for the first record ever written, then +1 per record.
pub type Lsn = u64;

/// Default segment size: large enough that rotation (and its directory fsync) is rare.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// Smallest accepted segment size (tests use small segments to exercise rotation).
pub const MIN_SEGMENT_SIZE: u64 = 4096;

/// Configuration of [`Journal::open`].
#[derive(Clone)]
pub struct JournalConfig {
    /// The daemon's data directory; the journal lives in `<data_dir>/journal/`.
    pub data_dir: PathBuf,
    /// Preallocated size of each segment, at least [`MIN_SEGMENT_SIZE`].
    pub segment_size: u64,
    /// Requests the queue holds before `append` waits (back-pressure).
    pub queue_capacity: usize,
    /// The writer stops draining the queue into a batch past this many encoded bytes.
    pub max_batch_bytes: usize,
    /// Least time between the starts of two group commits (zero: the next one starts as
    /// soon as a request is there), applied only after a commit of at least
    /// `commit_interval_after` records. Requests that arrive meanwhile wait and share the
    /// next `fdatasync`: fewer, larger commits for at most this much added latency. Worth
    /// it when frames arrive faster than syncs end (an alarm storm), since each
    /// `fdatasync` costs tens of microseconds of CPU on top of its wait. A request after a
    /// quiet spell longer than the interval never waits, and neither do a few panels
    /// sending back to back: their commits stay small, and for them the wait would only
    /// slow each exchange.
    pub commit_interval: Duration,
    /// See `commit_interval`.
    pub commit_interval_after: usize,
    /// Called after each successful group commit (metrics).
    pub observer: Option<BatchObserver>,
    /// Free space a new segment must leave on the file system. None by default here (a
    /// tool filling a journal on a scratch disk wants none); the daemon sets `[journal]
    /// min_free`, 2 % by default.
    pub min_free: MinFree,
    /// Derives each record's tag, kept in the segment summaries (see [`summary`]).
    pub tagger: Option<Tagger>,
    /// Fault injection for tests ([`faults`]); never set in production.
    #[doc(hidden)]
    pub faults: Option<Arc<Faults>>,
}

impl JournalConfig {
    /// Defaults: 64 MiB segments, 4096 queued requests, 8 MiB batches, no commit interval
    /// (and, when one is set, it applies after commits of 16 records or more), no free
    /// space kept beyond what the disk refuses, no tags.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        JournalConfig {
            data_dir: data_dir.as_ref().to_path_buf(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            queue_capacity: 4096,
            max_batch_bytes: 8 << 20,
            commit_interval: Duration::ZERO,
            commit_interval_after: 16,
            observer: None,
            min_free: MinFree::Bytes(0),
            tagger: None,
            faults: None,
        }
    }
}

impl fmt::Debug for JournalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalConfig")
            .field("data_dir", &self.data_dir)
            .field("segment_size", &self.segment_size)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("commit_interval", &self.commit_interval)
            .field("commit_interval_after", &self.commit_interval_after)
            .field("observer", &self.observer.is_some())
            .field("min_free", &self.min_free)
            .field("tagger", &self.tagger.is_some())
            .field("faults", &self.faults.is_some())
            .finish()
    }
}
