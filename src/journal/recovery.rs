//! Recovery on open: find the end of the valid data, repair a torn tail, and know every
//! sealed segment from its summary.
//!
//! It exists separately from the writer because it is the only code that *changes* existing
//! bytes (zeroing a torn tail, or what followed the last good sync after a failure), and
//! because its scan of one segment ([`scan_segment`]) is pure and shared with retention.
//!
//! Open reads what it needs only, so a restart takes the same time whatever the size of the
//! journal: the active (newest) segment is scanned record by record, at most one segment's
//! size; a sealed segment is known from its summary ([`super::summary`]), and scanned only
//! when it has none (a journal written by an older version, once; a crash between sealing a
//! segment and writing its summary). Damage inside a sealed segment that was summarized is
//! therefore found by the readers that reach it, not at open.
//!
//! Decisions, in order of a scan:
//! - a record is accepted only if its checksum holds *and* its LSN is the next expected one;
//! - at the first unacceptable position, we look ahead ([`record::resync`]) for a valid record
//!   with a later LSN. If one exists, the damage is in the middle (bit rot, or a batch whose
//!   pages reached disk out of order): it is reported as a [`Corruption`] with the count of LSNs
//!   lost, nothing is overwritten, and scanning continues from there. If none exists, this is
//!   the end of the segment's data;
//! - in the last segment, non-zero bytes after the end of data are a torn tail: they are zeroed
//!   and synced, so the writer's next records cannot be followed by stale bytes, and reported
//!   as a [`TornTail`]. Nothing in a torn tail was ever acknowledged: a record is acknowledged
//!   only after an fdatasync that covered it and everything before it.
//!
//! After a failed write or sync, [`reopen_after_failure`] does the same for a running writer,
//! with one difference: it knows the last LSN a good sync covered, and everything after it is
//! discarded, whether or not it reached the disk (see the module doc of `journal`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{JournalError, Result};
use super::record;
use super::segment::{self, SegmentEntry, SEGMENT_HEADER_LEN};
use super::summary::{self, Summary, Tag, Tagger};
use super::Lsn;
use crate::throttle::{Throttle, Verdict};

/// Damage found by a scan: each place is in the report; the log names the first ones.
static DAMAGE_LOG: Throttle = Throttle::per_minute(20);
/// Lines of a re-open after a failure, which a failing disk can repeat.
static REOPEN_LOG: Throttle = Throttle::per_minute(5);

/// What [`scan_segment`] learned about one segment's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentScan {
    /// Valid records found (after any resync).
    pub records: u64,
    /// LSN expected after the last valid record: the next segment should start here.
    pub next_lsn: Lsn,
    /// Byte offset just after the last valid record.
    pub valid_end: usize,
    /// Timestamp of the first valid record.
    pub first_ts: Option<i64>,
    /// Largest timestamp among valid records (timestamps are the caller's, not forced monotonic).
    pub max_ts: Option<i64>,
    /// Damage followed by valid records: (offset, expected lsn, lsn resumed at, offset resumed).
    pub damage: Vec<(usize, Lsn, Lsn, usize)>,
    /// Non-zero bytes from `valid_end` to the last non-zero byte of the segment.
    pub tail_garbage: usize,
    /// How many record starts the tail garbage appears to hold (a torn record counts as one).
    pub tail_partial_records: u64,
    /// Tags of the valid records, when scanned with a tagger.
    pub tags: Vec<Tag>,
}

impl SegmentScan {
    /// The summary this scan makes of a segment of `segment_len` bytes.
    fn summary(&self, first_lsn: Lsn, segment_len: u64, tagger: Option<Tagger>) -> Summary {
        Summary {
            first_lsn,
            next_lsn: self.next_lsn,
            records: self.records,
            valid_end: self.valid_end as u64,
            first_ts: self.first_ts,
            max_ts: self.max_ts,
            segment_len,
            lost: self.damage.iter().map(|d| d.2.saturating_sub(d.1)).sum(),
            tags: tagger.map(|_| self.tags.clone()),
        }
    }
}

/// Scans a whole segment image (header included) whose first record must be `first_lsn`.
pub fn scan_segment(bytes: &[u8], first_lsn: Lsn) -> SegmentScan {
    scan(bytes, first_lsn, None, Lsn::MAX)
}

/// [`scan_segment`], tagging records with `tagger`, and taking no record after LSN `last`
/// (what follows it counts as tail garbage).
fn scan(bytes: &[u8], first_lsn: Lsn, tagger: Option<Tagger>, last: Lsn) -> SegmentScan {
    let mut s = SegmentScan {
        next_lsn: first_lsn,
        valid_end: SEGMENT_HEADER_LEN.min(bytes.len()),
        ..SegmentScan::default()
    };
    let mut pos = s.valid_end;
    while s.next_lsn <= last {
        let rest = bytes.get(pos..).unwrap_or_default();
        match record::decode(rest) {
            Ok((r, n)) if r.lsn == s.next_lsn => {
                s.records += 1;
                s.first_ts.get_or_insert(r.ts_micros);
                s.max_ts = Some(s.max_ts.map_or(r.ts_micros, |m| m.max(r.ts_micros)));
                if let Some(tag) = tagger.and_then(|t| t(r.payload)) {
                    s.tags.push((r.ts_micros, tag));
                }
                s.next_lsn += 1;
                pos += n;
                s.valid_end = pos;
                continue;
            }
            // An out-of-sequence record is treated like damage.
            _ => {}
        }
        match record::resync(bytes, pos + 1, s.next_lsn) {
            Some((at, lsn)) if lsn <= last => {
                s.damage.push((pos, s.next_lsn, lsn, at));
                s.next_lsn = lsn;
                pos = at;
            }
            _ => break,
        }
    }
    let tail = bytes.get(s.valid_end..).unwrap_or_default();
    s.tail_garbage = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    s.tail_partial_records = count_partial_records(tail.get(..s.tail_garbage).unwrap_or_default());
    s
}

/// Walks the garbage by its own length fields to estimate how many records were torn.
fn count_partial_records(garbage: &[u8]) -> u64 {
    let mut n = 0;
    let mut pos = 0usize;
    while pos < garbage.len() {
        n += 1;
        match record::read_header(garbage.get(pos..).unwrap_or_default()) {
            Some(h) if h.len <= record::MAX_RECORD_LEN => pos += record::encoded_len(h.len),
            _ => break,
        }
    }
    n
}

/// Bytes after the last valid record in the last segment, zeroed at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Where valid data ended and the zeroing started.
    pub offset: u64,
    /// Non-zero bytes that were zeroed.
    pub bytes: u64,
    /// Records those bytes appeared to start (never acknowledged, see module doc).
    pub partial_records: u64,
}

/// Damage before the end of the data. Loud: `lost_records` LSNs cannot be read any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: PathBuf,
    pub offset: u64,
    /// The LSN that should have been at `offset`.
    pub expected_lsn: Lsn,
    /// Where reading continues (a later record in the same segment, or the next segment).
    pub resumed_at: Option<Lsn>,
    /// LSNs skipped (`resumed_at - expected_lsn`); 0 when only stray bytes were found.
    pub lost_records: u64,
}

/// What `Journal::open` found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Segment files present after open (including one created by it).
    pub segments: usize,
    /// Oldest LSN still in the journal, if any record exists.
    pub first_lsn: Option<Lsn>,
    /// Last valid record (0 if the journal is empty). Appends continue at `last_lsn + 1`.
    pub last_lsn: Lsn,
    /// Valid records found.
    pub records: u64,
    pub torn_tail: Option<TornTail>,
    pub corruptions: Vec<Corruption>,
    /// Interrupted segment creations removed.
    pub removed_temp_files: usize,
    /// Sealed segments that had no usable summary and were scanned (a journal from an older
    /// version, or a crash just after a rotation); each has one now.
    pub summaries_written: usize,
}

/// The writer's starting point, produced by [`recover`] and [`reopen_after_failure`].
pub(crate) struct Recovered {
    pub file: File,
    pub path: PathBuf,
    pub write_pos: u64,
    pub capacity: u64,
    pub next_lsn: Lsn,
    /// What the active segment holds so far, to be completed by the writer and stored
    /// when the segment is sealed.
    pub summary: Summary,
}

fn read_segment(seg: &SegmentEntry) -> Result<(Vec<u8>, Lsn)> {
    let bytes =
        std::fs::read(&seg.path).map_err(|e| JournalError::io("read segment", &seg.path, e))?;
    let first = check_header(seg, &bytes)?;
    Ok((bytes, first))
}

fn check_header(seg: &SegmentEntry, bytes: &[u8]) -> Result<Lsn> {
    let first = segment::decode_header(bytes).map_err(|reason| JournalError::BadSegmentHeader {
        path: seg.path.clone(),
        reason,
    })?;
    if first != seg.first_lsn {
        return Err(JournalError::BadSegmentHeader {
            path: seg.path.clone(),
            reason: "first lsn in header differs from file name",
        });
    }
    Ok(first)
}

/// The header of a segment alone (32 bytes), checked.
fn read_header(seg: &SegmentEntry) -> Result<Lsn> {
    let f = File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    match f.read_exact_at(&mut h, 0) {
        Ok(()) => check_header(seg, &h),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => check_header(seg, &[]),
        Err(e) => Err(JournalError::io("read segment header", &seg.path, e)),
    }
}

fn push_damage(report: &mut OpenReport, path: &Path, scan: &SegmentScan) {
    for &(off, expected, resumed, _) in &scan.damage {
        let c = Corruption {
            segment: path.to_path_buf(),
            offset: off as u64,
            expected_lsn: expected,
            resumed_at: Some(resumed),
            lost_records: resumed.saturating_sub(expected),
        };
        if let Verdict::Log { suppressed } = DAMAGE_LOG.check_now() {
            tracing::error!(
                ?c,
                suppressed,
                "journal corruption: records lost in the middle of a segment"
            );
        }
        report.corruptions.push(c);
    }
}

/// Summaries whose segment is gone (deleted by retention just before a crash).
fn remove_orphan_summaries(dir: &Path, segs: &[SegmentEntry]) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| JournalError::io("read_dir", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| JournalError::io("read_dir", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| summary::is_summary_name(n)) else {
            continue;
        };
        let seg_name = name.replace(".sum", ".seg");
        if !segs
            .iter()
            .any(|s| s.path.file_name().is_some_and(|n| n == seg_name.as_str()))
        {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| JournalError::io("remove summary", &p, e))?;
        }
    }
    Ok(())
}

/// Scans `dir` (the `journal/` directory, which must exist and be locked by the caller),
/// repairs the tail, and returns where the writer starts.
pub(crate) fn recover(
    dir: &Path,
    segment_size: u64,
    tagger: Option<Tagger>,
) -> Result<(Recovered, OpenReport)> {
    let mut report = OpenReport {
        removed_temp_files: segment::remove_temp_files(dir)?,
        ..OpenReport::default()
    };
    if report.removed_temp_files > 0 {
        segment::sync_dir(dir)?;
    }
    let mut segs = segment::list_segments(dir)?;
    remove_orphan_summaries(dir, &segs)?;
    let Some(last) = segs.pop() else {
        let (file, path) = segment::create_segment(dir, 1, segment_size)?;
        report.segments = 1;
        let r = Recovered {
            file,
            path,
            write_pos: SEGMENT_HEADER_LEN as u64,
            capacity: segment_size,
            next_lsn: 1,
            summary: Summary::start(1, tagger.is_some()),
        };
        return Ok((r, report));
    };
    report.segments = segs.len() + 1;

    // Sealed segments: from their summaries, and each must hand over to the next.
    let mut expected: Option<Lsn> = None;
    for (i, seg) in segs.iter().enumerate() {
        let next_first = segs.get(i + 1).map_or(last.first_lsn, |s| s.first_lsn);
        check_handover(&mut report, seg, expected)?;
        let s = match sealed_summary(seg, next_first, tagger, &mut report) {
            Ok(s) => s,
            Err(JournalError::BadSegmentHeader { path, reason }) => {
                // Not the active segment: lose it loudly, keep the receiver running.
                if let Verdict::Log { suppressed } = DAMAGE_LOG.check_now() {
                    tracing::error!(
                        ?path,
                        reason,
                        suppressed,
                        "unreadable journal segment header"
                    );
                }
                let c = Corruption {
                    segment: path,
                    offset: 0,
                    expected_lsn: seg.first_lsn,
                    resumed_at: Some(next_first),
                    lost_records: next_first.saturating_sub(seg.first_lsn),
                };
                report.corruptions.push(c);
                expected = Some(next_first);
                continue;
            }
            Err(e) => return Err(e),
        };
        if s.records > 0 {
            report.first_lsn.get_or_insert(seg.first_lsn);
        }
        report.records += s.records;
        expected = Some(s.next_lsn);
    }
    check_handover(&mut report, &last, expected)?;

    // The active segment: its header must be readable, since we are about to append to it.
    let (bytes, first) = read_segment(&last)?;
    let scan = scan(&bytes, first, tagger, Lsn::MAX);
    drop(bytes);
    push_damage(&mut report, &last.path, &scan);
    if scan.records > 0 {
        report.first_lsn.get_or_insert(last.first_lsn);
    }
    report.records += scan.records;
    report.last_lsn = scan.next_lsn - 1;
    // It is the active segment again: a summary left from before (a failure that made it
    // active again, then a crash) describes it no more.
    summary::remove(&last.path).map_err(|e| JournalError::io("remove summary", &last.path, e))?;

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last.path)
        .map_err(|e| JournalError::io("open active segment", &last.path, e))?;
    if scan.tail_garbage > 0 {
        zero_range(
            &file,
            &last.path,
            scan.valid_end as u64,
            scan.tail_garbage as u64,
        )?;
        let t = TornTail {
            segment: last.path.clone(),
            offset: scan.valid_end as u64,
            bytes: scan.tail_garbage as u64,
            partial_records: scan.tail_partial_records,
        };
        tracing::warn!(?t, "journal: torn tail zeroed (never acknowledged)");
        report.torn_tail = Some(t);
    }
    let r = active(file, last.path, last.len, segment_size, &scan, tagger)?;
    Ok((r, report))
}

/// The writer's start in `file`, the active segment, as `scan` found it.
fn active(
    file: File,
    path: PathBuf,
    len: u64,
    segment_size: u64,
    scan: &SegmentScan,
    tagger: Option<Tagger>,
) -> Result<Recovered> {
    // A segment shorter than configured (external truncation, or a file system without
    // fallocate) gets its preallocation back; a longer one (an oversized record) keeps its size.
    if len < segment_size {
        segment::preallocate(&file, segment_size)
            .and_then(|()| file.sync_all())
            .map_err(|e| JournalError::io_or_full("fallocate", &path, e))?;
    }
    let capacity = file
        .metadata()
        .map_err(|e| JournalError::io("stat", &path, e))?
        .len();
    let first_lsn = segment::parse_segment_file_name(
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default(),
    )
    .unwrap_or(scan.next_lsn);
    Ok(Recovered {
        summary: scan.summary(first_lsn, capacity, tagger),
        file,
        path,
        write_pos: scan.valid_end as u64,
        capacity,
        next_lsn: scan.next_lsn,
    })
}

/// A sealed segment's summary, from its file or, when it has none, from a scan (which
/// then writes it).
fn sealed_summary(
    seg: &SegmentEntry,
    next_first: Lsn,
    tagger: Option<Tagger>,
    report: &mut OpenReport,
) -> Result<Summary> {
    read_header(seg)?;
    if let Some((s, _)) = summary::load_header(&seg.path, seg.first_lsn, seg.len) {
        // Without tags while tags are wanted now, it is written again, once.
        if s.tags.is_some() || tagger.is_none() {
            return Ok(s);
        }
    }
    let (bytes, first) = read_segment(seg)?;
    let scan = scan(&bytes, first, tagger, Lsn::MAX);
    drop(bytes);
    push_damage(report, &seg.path, &scan);
    if scan.tail_garbage > 0 && scan.next_lsn == next_first {
        if let Verdict::Log { suppressed } = DAMAGE_LOG.check_now() {
            tracing::warn!(path = ?seg.path, bytes = scan.tail_garbage, suppressed, "stray bytes after the end of a sealed journal segment");
        }
        report.corruptions.push(Corruption {
            segment: seg.path.clone(),
            offset: scan.valid_end as u64,
            expected_lsn: scan.next_lsn,
            resumed_at: Some(next_first),
            lost_records: 0,
        });
    }
    let s = scan.summary(first, seg.len, tagger);
    match summary::store(&seg.path, &s) {
        Ok(()) => report.summaries_written += 1,
        // Only the next open is slower: it scans this segment again.
        Err(e) => {
            if let Verdict::Log { suppressed } = DAMAGE_LOG.check_now() {
                tracing::warn!(path = ?seg.path, error = %e, suppressed, "journal segment summary not written");
            }
        }
    }
    Ok(s)
}

/// What [`reopen_after_failure`] threw away and found missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reopened {
    /// Non-zero bytes after the last good sync, zeroed (records refused to their callers).
    pub discarded_bytes: u64,
    /// Records those bytes appeared to hold.
    pub discarded_records: u64,
    /// Segments created after the last good sync, deleted.
    pub deleted_segments: usize,
    /// LSNs a good sync had covered that are not on disk any more (the device lost them).
    /// The journal continues after them in a new segment, so readers report the gap.
    pub lost_records: u64,
}

/// After a failed write or sync: verify what is on disk up to `durable` (the last LSN a good
/// sync covered), discard everything after it, and return where the writer continues.
///
/// The page cache may still hold data the device never got (Linux marks pages clean when
/// their writeback fails), so the active segment's cached pages are dropped first and its
/// bytes read again from the device. Everything after `durable` was refused to its callers,
/// so it is zeroed even where it reached the disk: keeping it would store frames that their
/// panels were told to send again.
pub(crate) fn reopen_after_failure(
    dir: &Path,
    segment_size: u64,
    durable: Lsn,
    tagger: Option<Tagger>,
) -> Result<(Recovered, Reopened)> {
    let mut done = Reopened::default();
    segment::remove_temp_files(dir)?;
    let segs = segment::list_segments(dir)?;
    // A segment starting after the first LSN not durable holds nothing acknowledged.
    let mut keep = Vec::new();
    for s in segs {
        if s.first_lsn > durable + 1 {
            summary::remove(&s.path).map_err(|e| JournalError::io("remove summary", &s.path, e))?;
            std::fs::remove_file(&s.path)
                .map_err(|e| JournalError::io("delete segment", &s.path, e))?;
            done.deleted_segments += 1;
        } else {
            keep.push(s);
        }
    }
    segment::sync_dir(dir)?;
    let Some(last) = keep.pop() else {
        let (file, path) = segment::create_segment(dir, durable + 1, segment_size)?;
        let r = Recovered {
            file,
            path,
            write_pos: SEGMENT_HEADER_LEN as u64,
            capacity: segment_size,
            next_lsn: durable + 1,
            summary: Summary::start(durable + 1, tagger.is_some()),
        };
        return Ok((r, done));
    };
    summary::remove(&last.path).map_err(|e| JournalError::io("remove summary", &last.path, e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last.path)
        .map_err(|e| JournalError::io("open active segment", &last.path, e))?;
    // What is written but not durable is dropped from the cache only once it is clean,
    // which a failed writeback makes it; a sync of our own first gives the rest a chance.
    let _ = file.sync_data();
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    let mut bytes = vec![0u8; usize::try_from(last.len).unwrap_or(0)];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| JournalError::io("read segment", &last.path, e))?;
    let first = check_header(&last, &bytes)?;
    let scan = scan(&bytes, first, tagger, durable);
    drop(bytes);
    if scan.tail_garbage > 0 {
        zero_range(
            &file,
            &last.path,
            scan.valid_end as u64,
            scan.tail_garbage as u64,
        )?;
        done.discarded_bytes = scan.tail_garbage as u64;
        done.discarded_records = scan.tail_partial_records;
    }
    if scan.next_lsn > durable {
        return Ok((
            active(file, last.path, last.len, segment_size, &scan, tagger)?,
            done,
        ));
    }
    // Acknowledged records are missing: seal what is there, and continue after the gap.
    done.lost_records = durable + 1 - scan.next_lsn;
    if let Verdict::Log { suppressed } = REOPEN_LOG.check_now() {
        tracing::error!(
            segment = ?last.path,
            found_up_to = scan.next_lsn - 1,
            durable,
            lost = done.lost_records,
            suppressed,
            "journal: records a good sync had covered are not on disk any more"
        );
    }
    if let Err(e) = summary::store(&last.path, &scan.summary(first, last.len, tagger)) {
        if let Verdict::Log { suppressed } = REOPEN_LOG.check_now() {
            tracing::warn!(path = ?last.path, error = %e, suppressed, "journal segment summary not written");
        }
    }
    let (file, path) = segment::create_segment(dir, durable + 1, segment_size)?;
    let r = Recovered {
        file,
        path,
        write_pos: SEGMENT_HEADER_LEN as u64,
        capacity: segment_size,
        next_lsn: durable + 1,
        summary: Summary::start(durable + 1, tagger.is_some()),
    };
    Ok((r, done))
}

/// Checks that `seg` starts where the previous segment ended; a gap is reported, an overlap is
/// refused (two files claiming the same LSNs cannot be resolved automatically).
fn check_handover(
    report: &mut OpenReport,
    seg: &SegmentEntry,
    expected: Option<Lsn>,
) -> Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    if seg.first_lsn < expected {
        return Err(JournalError::SegmentOverlap {
            path: seg.path.clone(),
            first_lsn: seg.first_lsn,
            expected,
        });
    }
    if seg.first_lsn > expected {
        let c = Corruption {
            segment: seg.path.clone(),
            offset: 0,
            expected_lsn: expected,
            resumed_at: Some(seg.first_lsn),
            lost_records: seg.first_lsn - expected,
        };
        if let Verdict::Log { suppressed } = DAMAGE_LOG.check_now() {
            tracing::error!(?c, suppressed, "journal: gap between segments");
        }
        report.corruptions.push(c);
    }
    Ok(())
}

/// Overwrites `[offset, offset + len)` with zeros and syncs it.
fn zero_range(file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(len) as usize];
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done) as usize;
        file.write_all_at(zeros.get(..n).unwrap_or_default(), offset + done)
            .map_err(|e| JournalError::io("zero torn tail", path, e))?;
        done += n as u64;
    }
    file.sync_data()
        .map_err(|e| JournalError::io("fsync torn tail", path, e))
}

/// Offset of the first record in a segment image (tests build images by hand).
#[cfg(test)]
const FIRST_RECORD: usize = SEGMENT_HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    fn image(first: Lsn, recs: &[(Lsn, &[u8])], pad: usize) -> Vec<u8> {
        let mut b = segment::encode_header(first).to_vec();
        for (lsn, p) in recs {
            record::encode_into(&mut b, *lsn, *lsn as i64 * 10, p);
        }
        b.resize(b.len() + pad, 0);
        b
    }

    #[test]
    fn clean_segment() {
        let b = image(5, &[(5, b"a"), (6, b"bb"), (7, b"ccc")], 1000);
        let s = scan_segment(&b, 5);
        assert_eq!(s.records, 3);
        assert_eq!(s.next_lsn, 8);
        assert_eq!(s.tail_garbage, 0);
        assert!(s.damage.is_empty());
        assert_eq!((s.first_ts, s.max_ts), (Some(50), Some(70)));
    }

    #[test]
    fn torn_last_record_at_every_offset() {
        let full = image(1, &[(1, b"first"), (2, b"second record")], 0);
        let last_start = FIRST_RECORD + record::encoded_len(5);
        for cut in last_start..full.len() {
            let mut b = full[..cut].to_vec();
            b.resize(full.len() + 512, 0);
            let s = scan_segment(&b, 1);
            assert_eq!(s.records, 1, "cut {cut}");
            assert_eq!(s.valid_end, last_start, "cut {cut}");
            assert!(s.damage.is_empty(), "cut {cut}");
            let garbage = full[last_start..cut]
                .iter()
                .rposition(|&x| x != 0)
                .map_or(0, |i| i + 1);
            assert_eq!(s.tail_garbage, garbage, "cut {cut}");
            assert_eq!(s.tail_partial_records, u64::from(garbage > 0), "cut {cut}");
        }
    }

    #[test]
    fn damage_in_the_middle_is_skipped_not_truncated() {
        let mut b = image(1, &[(1, b"one"), (2, b"two"), (3, b"three")], 100);
        let second = FIRST_RECORD + record::encoded_len(3);
        b[second + record::RECORD_HEADER_LEN] ^= 1;
        let s = scan_segment(&b, 1);
        assert_eq!(s.records, 2);
        assert_eq!(s.next_lsn, 4);
        assert_eq!(s.damage.len(), 1);
        assert_eq!(s.damage[0].0, second);
        assert_eq!((s.damage[0].1, s.damage[0].2), (2, 3));
    }

    #[test]
    fn out_of_sequence_record_ends_data() {
        let b = image(1, &[(1, b"one"), (1, b"dup")], 10);
        let s = scan_segment(&b, 1);
        assert_eq!(s.records, 1);
        assert!(s.tail_garbage > 0);
    }
}
