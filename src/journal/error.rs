//! The journal's one error type.
//!
//! It exists so that every caller (connection tasks that must choose between ACK and NAK, the
//! forwarder, the CLI) can match on *why* the journal refused, with the numbers that explain it.
//! It is `Clone` because one failed group commit has to be reported to every waiter of the batch;
//! that is why I/O causes are held in an `Arc`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::Lsn;

/// Everything the journal can refuse or report.
///
/// Any `Err` from an append means **not durable**: the caller must not acknowledge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The payload is larger than [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN).
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },

    /// `append_batch` was called with no records; there is no LSN range to return.
    #[error("empty batch")]
    EmptyBatch,

    /// A file-system call failed. `op` names the call, `path` the file it was about.
    #[error("journal I/O error during {op} on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },

    /// An earlier write or fsync failed, and the journal has not been re-opened since: after a
    /// failed fsync the kernel may have dropped dirty pages, so nothing written since the last
    /// good sync can be trusted to be on disk. The writer re-opens and re-verifies the journal
    /// by itself (see the module doc); until it succeeds, every append gets this.
    #[error("journal writer failed and is not re-opened yet: {cause}")]
    Poisoned { cause: Arc<str> },

    /// The file system is full (ENOSPC) or the writer's quota is used up (EDQUOT) while
    /// allocating or writing. Nothing of the refused requests reached the file and the
    /// journal is consistent: appends succeed again once space returns.
    #[error("journal disk full during {op} on {path}: {source}")]
    DiskFull {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },

    /// A new segment would leave less free space than `[journal] min_free`: refused before
    /// anything was written, as [`JournalError::DiskFull`], but early.
    #[error(
        "journal refuses a new segment of {needed} bytes: {free} bytes free, {min_free} bytes \
         to be kept free"
    )]
    BelowMinFree {
        needed: u64,
        free: u64,
        min_free: u64,
    },

    /// The writer thread went away before confirming this request (it panicked, or the journal
    /// was closed with the request in flight). The request must be treated as not durable.
    #[error("journal writer stopped before confirming durability")]
    WriterGone,

    /// The journal was closed; no more appends are accepted.
    #[error("journal is closed")]
    Closed,

    /// Another process (or another `Journal` in this one) holds the journal lock.
    #[error("journal directory {path} is locked by another writer")]
    Locked { path: PathBuf },

    /// A segment file's header is not a valid tocsin journal header.
    #[error("bad segment header in {path}: {reason}")]
    BadSegmentHeader { path: PathBuf, reason: &'static str },

    /// A segment's header disagrees with the file name, or two segments claim the same LSNs.
    #[error(
        "inconsistent segments: {path} starts at lsn {first_lsn} but lsn {expected} was expected"
    )]
    SegmentOverlap {
        path: PathBuf,
        first_lsn: Lsn,
        expected: Lsn,
    },

    /// A record that should be readable is not (checksum, length or LSN mismatch) before the end
    /// of the data. `resumes_at` is the LSN at which reading continues, if any valid record was
    /// found after the damage; the LSNs in between are lost.
    #[error(
        "corrupt journal record in {path} at offset {offset}: expected lsn {expected_lsn}, \
         resuming at {resumes_at:?}"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        expected_lsn: Lsn,
        resumes_at: Option<Lsn>,
    },

    /// A cursor name is empty, too long, or has characters other than `[A-Za-z0-9_-]`.
    #[error("invalid cursor name {name:?}")]
    InvalidCursorName { name: String },

    /// A cursor file does not hold a valid LSN.
    #[error("cursor {name:?} is unreadable: {reason}")]
    BadCursor { name: String, reason: &'static str },

    /// The configuration cannot work (e.g. a segment too small to hold its own header).
    #[error("invalid journal configuration: {reason}")]
    InvalidConfig { reason: &'static str },
}

impl JournalError {
    /// An I/O failure, told apart: running out of space is [`JournalError::DiskFull`].
    pub(crate) fn io_or_full(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        if super::space::is_out_of_space(&source) {
            JournalError::DiskFull {
                op,
                path: path.into(),
                source: Arc::new(source),
            }
        } else {
            JournalError::io(op, path, source)
        }
    }

    /// Whether the refusal ends by itself once space returns (nothing was written).
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self,
            JournalError::DiskFull { .. } | JournalError::BelowMinFree { .. }
        )
    }

    /// A short, closed label of the cause, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            JournalError::DiskFull { .. } => "disk_full",
            JournalError::BelowMinFree { .. } => "min_free",
            JournalError::Io { .. }
            | JournalError::Poisoned { .. }
            | JournalError::WriterGone
            | JournalError::Corrupt { .. } => "failed",
            JournalError::Closed => "closed",
            _ => "refused",
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// Shorthand used throughout the module.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;
