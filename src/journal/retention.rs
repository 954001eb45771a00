//! Retention: delete whole old segments by size and age, without outrunning consumers.
//!
//! It exists apart from the writer because deletion never needs the writer's cooperation:
//! sealed segments are immutable, only the oldest ones are removed (the log stays contiguous),
//! and the active segment (the newest) is never touched. The daemon calls [`Retention::run`]
//! periodically, passing `now`; the journal reads no clock.
//!
//! A segment is deleted when the journal is over `max_bytes`, or when its newest record is
//! older than `max_age`, or when the file system has less free than `min_free` plus room for
//! one more segment (the writer is refusing, or about to refuse, a new segment), **and** no
//! registered cursor still needs it: a segment holding any LSN ≥ the smallest cursor is kept,
//! whatever its size or age, unless `allow_unpublished_deletion` is set, in which case the
//! records lost to consumers are counted and logged as a warning. Every consumer (the bus,
//! the JSON-lines file, any later one) registers its cursor in the same store, so under
//! space pressure what goes first is what every one of them has already taken.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::cursor::CursorStore;
use super::error::{JournalError, Result};
use super::recovery::scan_segment;
use super::segment::{self, SegmentEntry};
use super::space::{self, MinFree};
use super::summary;
use super::Lsn;
use crate::throttle::{Throttle, Verdict};

static UNPUBLISHED_LOG: Throttle = Throttle::per_minute(5);

/// Limits; `None` disables a limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPolicy {
    /// Total size of all segment files (allocated size) to stay under.
    pub max_bytes: Option<u64>,
    /// Maximum age in microseconds of a segment's newest record, relative to `now`.
    pub max_age_micros: Option<i64>,
    /// Delete segments consumers still need when over the limits (a full disk is worse).
    pub allow_unpublished_deletion: bool,
    /// Free space to keep on the file system, as the writer keeps it
    /// ([`JournalConfig::min_free`](super::JournalConfig::min_free)).
    pub min_free: Option<MinFree>,
    /// Room wanted beyond `min_free`: one segment, so that the next rotation is accepted.
    pub room_for: u64,
}

/// One deleted segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSegment {
    pub path: PathBuf,
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    pub bytes: u64,
}

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted: Vec<DeletedSegment>,
    pub deleted_bytes: u64,
    /// Total segment bytes left.
    pub remaining_bytes: u64,
    /// Records at or after the smallest cursor that were deleted (only with
    /// `allow_unpublished_deletion`).
    pub unpublished_records_deleted: u64,
    /// Set when a limit was exceeded but a cursor stopped the deletion at this LSN.
    pub held_by_cursor: Option<Lsn>,
    /// Segments deleted only because free space was short.
    pub deleted_for_space: usize,
    /// Bytes still missing for `min_free` plus one segment after the pass (0: enough).
    pub space_short: u64,
}

/// Retention state for one journal directory: caches the newest timestamp of sealed segments,
/// which never change, so each is scanned once.
#[derive(Debug)]
pub struct Retention {
    dir: PathBuf,
    cursors: CursorStore,
    max_ts: HashMap<Lsn, Option<i64>>,
}

impl Retention {
    pub fn new(data_dir: &Path) -> Result<Self> {
        Ok(Retention {
            dir: segment::journal_dir(data_dir),
            cursors: CursorStore::open(data_dir)?,
            max_ts: HashMap::new(),
        })
    }

    fn newest_ts(&mut self, seg: &SegmentEntry) -> Result<Option<i64>> {
        if let Some(ts) = self.max_ts.get(&seg.first_lsn) {
            return Ok(*ts);
        }
        let from_summary = summary::load_header(&seg.path, seg.first_lsn, seg.len);
        let ts = match from_summary {
            Some((s, _)) => s.max_ts,
            None => match super::reader::newest_ts(seg)? {
                Some(ts) => ts,
                None => {
                    let bytes = fs::read(&seg.path)
                        .map_err(|e| JournalError::io("read segment", &seg.path, e))?;
                    scan_segment(&bytes, seg.first_lsn).max_ts
                }
            },
        };
        self.max_ts.insert(seg.first_lsn, ts);
        Ok(ts)
    }

    /// One pass. Blocking (reads and unlinks files): call from `spawn_blocking`.
    pub fn run(&mut self, policy: &RetentionPolicy, now_micros: i64) -> Result<RetentionReport> {
        let segs = segment::list_segments(&self.dir)?;
        let min_cursor = self.cursors.min_cursor()?;
        let mut total: u64 = segs.iter().map(|s| s.len).sum();
        let mut report = RetentionReport::default();
        let mut short = match (policy.min_free, space::space(&self.dir)) {
            (Some(min_free), Ok(s)) => min_free
                .bytes(s.total)
                .saturating_add(policy.room_for)
                .saturating_sub(s.free),
            _ => 0,
        };
        // Pairs (segment, next segment): the last one, the active segment, is never a candidate.
        for (seg, next) in segs.iter().zip(segs.iter().skip(1)) {
            let last_lsn = next.first_lsn.saturating_sub(1);
            let over_size = policy.max_bytes.is_some_and(|m| total > m);
            // Over size, the age does not matter: no need to read the segment for it.
            let too_old = match policy.max_age_micros.filter(|_| !over_size) {
                Some(age) => match self.newest_ts(seg)? {
                    Some(ts) => ts < now_micros.saturating_sub(age),
                    // No readable record: nothing to keep it for.
                    None => true,
                },
                None => false,
            };
            if !over_size && !too_old && short == 0 {
                // Only a prefix is deleted, so the journal never has holes.
                break;
            }
            let needed_from = min_cursor.filter(|&c| last_lsn >= c);
            if let Some(c) = needed_from {
                if !policy.allow_unpublished_deletion {
                    report.held_by_cursor = Some(c);
                    break;
                }
                report.unpublished_records_deleted += last_lsn - c.max(seg.first_lsn) + 1;
            }
            fs::remove_file(&seg.path)
                .map_err(|e| JournalError::io("delete segment", &seg.path, e))?;
            // Its summary goes after it: a summary without a segment is removed at open.
            summary::remove(&seg.path)
                .map_err(|e| JournalError::io("delete summary", &seg.path, e))?;
            self.max_ts.remove(&seg.first_lsn);
            if !over_size && !too_old {
                report.deleted_for_space += 1;
            }
            short = short.saturating_sub(seg.len);
            total -= seg.len;
            report.deleted_bytes += seg.len;
            report.deleted.push(DeletedSegment {
                path: seg.path.clone(),
                first_lsn: seg.first_lsn,
                last_lsn,
                bytes: seg.len,
            });
        }
        if !report.deleted.is_empty() {
            segment::sync_dir(&self.dir)?;
        }
        report.remaining_bytes = total;
        report.space_short = short;
        if report.unpublished_records_deleted > 0 {
            if let Verdict::Log { suppressed } = UNPUBLISHED_LOG.check_now() {
                tracing::warn!(
                    records = report.unpublished_records_deleted,
                    suppressed,
                    "journal retention deleted records that a cursor had not consumed"
                );
            }
        }
        Ok(report)
    }
}
