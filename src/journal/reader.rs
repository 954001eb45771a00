//! Reading records in LSN order, with or without a running writer.
//!
//! Two modes, one type:
//! - **live** ([`JournalHandle::reader`](super::JournalHandle::reader)): never reads past the
//!   durable LSN published by the writer, so a consumer only ever sees records that survive a
//!   crash, and can await new ones ([`JournalReader::next_wait`]);
//! - **offline** ([`JournalReader::open`]): reads up to the last valid record on disk (the
//!   `history` command, forensic tools). With a writer running it may see records whose fsync
//!   is still in flight.
//!
//! The reader never modifies files. It holds at most one segment open and reads it through a
//! small buffer with positioned reads, so it is independent of the writer's file handle; a
//! segment deleted by retention while being read stays readable through the open descriptor.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use super::error::{JournalError, Result};
use super::record::{self, Invalid, RECORD_HEADER_LEN};
use super::segment::{self, SegmentEntry, SEGMENT_HEADER_LEN};
use super::stats::JournalStats;
use super::Lsn;
use crate::throttle::{Throttle, Verdict};

static DAMAGE_LOG: Throttle = Throttle::per_minute(5);

/// How much is read at once; most records are a few hundred bytes.
const READ_CHUNK: usize = 256 * 1024;

/// One record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lsn: Lsn,
    pub ts_micros: i64,
    pub payload: Vec<u8>,
}

/// An open segment read through a window buffer.
struct SegmentFile {
    file: File,
    first_lsn: Lsn,
    path: PathBuf,
    /// File offset of the next record.
    pos: u64,
    /// `buf[..filled]` holds the bytes of the file starting at `buf_off`. The buffer keeps
    /// its length once grown, so a refill reads into it without zeroing it first: a live
    /// reader refills at every wake-up (the bytes past the durable end are not yet there).
    buf: Vec<u8>,
    filled: usize,
    buf_off: u64,
}

impl SegmentFile {
    fn open(seg: &SegmentEntry) -> Result<Self> {
        let file =
            File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| JournalError::io("read segment header", &seg.path, e))?;
        match segment::decode_header(&head) {
            Ok(first) if first == seg.first_lsn => {}
            Ok(_) => {
                return Err(JournalError::BadSegmentHeader {
                    path: seg.path.clone(),
                    reason: "first lsn in header differs from file name",
                })
            }
            Err(reason) => {
                return Err(JournalError::BadSegmentHeader {
                    path: seg.path.clone(),
                    reason,
                })
            }
        }
        Ok(SegmentFile {
            file,
            first_lsn: seg.first_lsn,
            path: seg.path.clone(),
            pos: SEGMENT_HEADER_LEN as u64,
            buf: Vec::new(),
            filled: 0,
            buf_off: SEGMENT_HEADER_LEN as u64,
        })
    }

    /// Up to `need` bytes at `pos` (fewer only at end of file).
    fn peek(&mut self, need: usize) -> Result<&[u8]> {
        let rel = usize::try_from(self.pos - self.buf_off).unwrap_or(usize::MAX);
        if rel > self.filled || self.filled - rel < need {
            // Keep the bytes from `pos` on, at the front, and read after them.
            let keep = rel.min(self.filled);
            self.buf.copy_within(keep..self.filled, 0);
            let have = self.filled - keep;
            self.buf_off = self.pos;
            let want = need.max(READ_CHUNK);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let mut filled = have;
            while filled < want {
                let at = self.buf_off + filled as u64;
                let dst = self.buf.get_mut(filled..want).unwrap_or_default();
                match self.file.read_at(dst, at) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.filled = have;
                        return Err(JournalError::io("read segment", &self.path, e));
                    }
                }
            }
            self.filled = filled;
        }
        let rel = usize::try_from(self.pos - self.buf_off).unwrap_or(usize::MAX);
        let end = rel.saturating_add(need).min(self.filled);
        Ok(self.buf.get(rel..end).unwrap_or_default())
    }

    /// Forgets buffered bytes, which may have been read while the writer was mid-write.
    fn invalidate(&mut self) {
        self.filled = 0;
        self.buf_off = self.pos;
    }

    fn read_record(&mut self) -> Result<std::result::Result<Record, Invalid>> {
        let len = match record::read_header(self.peek(RECORD_HEADER_LEN)?) {
            Some(h) if h.len <= record::MAX_RECORD_LEN => h.len,
            // Let decode classify it (zero, truncated, too large).
            _ => 0,
        };
        let bytes = self.peek(record::encoded_len(len))?;
        match record::decode(bytes) {
            Ok((r, n)) => {
                let rec = Record {
                    lsn: r.lsn,
                    ts_micros: r.ts_micros,
                    payload: r.payload.to_vec(),
                };
                self.pos += n as u64;
                Ok(Ok(rec))
            }
            Err(inv) => Ok(Err(inv)),
        }
    }

    /// Looks past damage for the next valid record with an LSN ≥ `min_lsn`, reading the rest of
    /// the segment (a rare path). Positions the segment on it.
    ///
    /// The record at the damaged spot is tried again first, in this later read: a reader of
    /// a journal that is being written can see a record half-written, and by the time a
    /// later record is found whole, the earlier one is whole too (records are written in
    /// order). That is not damage, and must not be reported or skipped.
    fn resync(&mut self, min_lsn: Lsn) -> Result<Resync> {
        let len = self
            .file
            .metadata()
            .map_err(|e| JournalError::io("stat", &self.path, e))?
            .len();
        let from = self.pos;
        let mut rest = vec![0u8; usize::try_from(len.saturating_sub(from)).unwrap_or(0)];
        self.file
            .read_exact_at(&mut rest, from)
            .map_err(|e| JournalError::io("read segment", &self.path, e))?;
        if record::decode(&rest).is_ok_and(|(r, _)| r.lsn == min_lsn) {
            self.invalidate();
            return Ok(Resync::Intact);
        }
        let after = rest.get(1..).unwrap_or_default();
        Ok(match record::resync(after, 0, min_lsn) {
            Some((off, lsn)) => {
                self.pos = from + 1 + off as u64;
                self.invalidate();
                Resync::At(lsn)
            }
            None => Resync::Nothing,
        })
    }
}

/// What [`SegmentFile::resync`] found.
enum Resync {
    /// The record at the spot is whole after all: it had been read while being written.
    Intact,
    /// Positioned on the next valid record, which has this LSN.
    At(Lsn),
    /// No valid record after the spot in this segment.
    Nothing,
}

/// Iterates records in LSN order from a chosen position. See the module doc for the two modes.
pub struct JournalReader {
    dir: PathBuf,
    durable: Option<watch::Receiver<Lsn>>,
    /// A live reader's view of the writer's re-opens: after one, what lay past the durable
    /// end (and may sit in this reader's buffer) was discarded and is written anew.
    writer: Option<(Arc<JournalStats>, u64)>,
    seg: Option<SegmentFile>,
    /// LSN expected at the current position of `seg`.
    expect: Lsn,
    /// Records below this LSN are read and skipped (after a `seek`).
    target: Lsn,
    /// Records older than this are skipped until the first one that is not.
    since_ts: Option<i64>,
}

impl JournalReader {
    /// An offline reader on `<data_dir>/journal`, positioned at the oldest record.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = segment::journal_dir(data_dir);
        std::fs::metadata(&dir).map_err(|e| JournalError::io("open journal", &dir, e))?;
        Ok(Self::new(dir, None))
    }

    pub(crate) fn live(
        data_dir: &Path,
        durable: watch::Receiver<Lsn>,
        stats: Arc<JournalStats>,
    ) -> Self {
        let mut r = Self::new(segment::journal_dir(data_dir), Some(durable));
        let seen = stats.reopens();
        r.writer = Some((stats, seen));
        r
    }

    fn new(dir: PathBuf, durable: Option<watch::Receiver<Lsn>>) -> Self {
        JournalReader {
            dir,
            durable,
            writer: None,
            seg: None,
            expect: 1,
            target: 1,
            since_ts: None,
        }
    }

    /// Positions the reader so that the next record returned is `lsn`, or the first one after
    /// it that exists (older records may have been deleted by retention: compare LSNs).
    pub fn seek(&mut self, lsn: Lsn) {
        self.seg = None;
        self.target = lsn.max(1);
        self.expect = self.target;
        self.since_ts = None;
    }

    /// Positions the reader at the first record with `ts_micros >= since`, starting from the
    /// newest segment whose first record is not newer than `since` (one header read per
    /// segment, no scan of older data). Timestamps are the callers' and may not be monotonic:
    /// after the first match, every following record is returned; filter if you need to.
    pub fn seek_time(&mut self, since_micros: i64) -> Result<()> {
        let segs = segment::list_segments(&self.dir)?;
        let mut start = segs.first().map_or(1, |s| s.first_lsn);
        for s in segs.iter().rev() {
            if let Some(ts) = first_ts(s)? {
                if ts <= since_micros {
                    start = s.first_lsn;
                    break;
                }
            }
        }
        self.seek(start);
        self.since_ts = Some(since_micros);
        Ok(())
    }

    /// The LSN of the next record this reader would return (if present).
    pub fn position(&self) -> Lsn {
        self.expect.max(self.target)
    }

    /// The durable end published by the writer (`None` for an offline reader).
    pub fn durable_lsn(&self) -> Option<Lsn> {
        self.durable.as_ref().map(|d| *d.borrow())
    }

    /// The next record, `Ok(None)` at the end of the (durable) data. `Err(Corrupt)` reports
    /// damage once; calling again continues after it (`resumes_at`).
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(d) = self.durable_lsn() {
                if self.expect > d {
                    return Ok(None);
                }
            }
            // After the durable LSN was read: a re-open happens before the writes a newer
            // durable LSN covers, so this sees it whenever those could be read.
            if let Some((stats, seen)) = self.writer.as_mut() {
                let now = stats.reopens();
                if now != *seen {
                    *seen = now;
                    // Read the segment again from the file: the bytes past the durable end
                    // that this reader may hold were replaced.
                    self.seg = None;
                }
            }
            let Some(seg) = self.seg.as_mut() else {
                if !self.open_segment_for(self.expect)? {
                    return Ok(None);
                }
                continue;
            };
            let mut got = seg.read_record()?;
            if got.is_err() {
                // The buffer may hold bytes read while they were being written (a live
                // reader's, or an offline reader's such as `tocsin history` on the journal of
                // a running daemon): retry fresh.
                seg.invalidate();
                got = seg.read_record()?;
            }
            match got {
                Ok(r) if r.lsn == self.expect => {
                    self.expect += 1;
                    if r.lsn < self.target {
                        continue;
                    }
                    if let Some(since) = self.since_ts {
                        if r.ts_micros < since {
                            continue;
                        }
                        self.since_ts = None;
                    }
                    return Ok(Some(r));
                }
                _ => match self.end_of_segment()? {
                    SegmentEnd::Switched => {}
                    SegmentEnd::EndOfData => return Ok(None),
                    SegmentEnd::Damage(e) => return Err(e),
                },
            }
        }
    }

    /// Like [`next_record`](Self::next_record) but, for a live reader, waits for new durable
    /// records. Returns `Ok(None)` once the writer has stopped and everything durable was read
    /// (and immediately at the end for an offline reader).
    pub async fn next_wait(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(r) = self.next_record()? {
                return Ok(Some(r));
            }
            let Some(d) = self.durable.as_mut() else {
                return Ok(None);
            };
            let expect = self.expect;
            if d.wait_for(|&lsn| lsn >= expect).await.is_err() {
                // Writer gone: drain what became durable before it stopped.
                return self.next_record();
            }
        }
    }

    /// Opens the segment that holds `lsn` (or the oldest one if `lsn` was deleted). Returns
    /// false when there is no segment at all.
    fn open_segment_for(&mut self, lsn: Lsn) -> Result<bool> {
        let segs = segment::list_segments(&self.dir)?;
        let Some(seg) = segs
            .iter()
            .rev()
            .find(|s| s.first_lsn <= lsn)
            .or_else(|| segs.first())
        else {
            return Ok(false);
        };
        self.seg = Some(SegmentFile::open(seg)?);
        // Reading restarts at the segment's beginning; never return again what was returned.
        self.target = self.target.max(lsn);
        self.expect = seg.first_lsn;
        Ok(true)
    }

    /// The record at `expect` is not in the current segment. Decide whether the next segment
    /// takes over, whether this is damage (reported once), or the end of the data.
    fn end_of_segment(&mut self) -> Result<SegmentEnd> {
        let segs = segment::list_segments(&self.dir)?;
        // Only a *later* segment can take over: the current one may itself start at `expect`
        // (an empty segment).
        let current = self.seg.as_ref().map_or(0, |s| s.first_lsn);
        let next = segs
            .iter()
            .find(|s| s.first_lsn > current && s.first_lsn >= self.expect);
        if let Some(n) = next.filter(|n| n.first_lsn == self.expect) {
            self.seg = Some(SegmentFile::open(n)?);
            return Ok(SegmentEnd::Switched);
        }
        let next_first = next.map(|n| n.first_lsn);
        // Damage is certain if the writer said this LSN is durable or a later segment exists;
        // offline, valid records after the bad spot also prove it is not simply the end.
        let must_exist =
            self.durable_lsn().is_some_and(|d| self.expect <= d) || next_first.is_some();
        let Some(seg) = self.seg.as_mut() else {
            return Ok(SegmentEnd::Switched);
        };
        let damaged_at = seg.pos;
        let path = seg.path.clone();
        let resumed = match seg.resync(self.expect)? {
            Resync::Intact => return Ok(SegmentEnd::Switched),
            Resync::At(lsn) => Some(lsn),
            Resync::Nothing => None,
        };
        let resumes_at = match (resumed, next_first) {
            (Some(lsn), _) => Some(lsn),
            (None, Some(first)) => {
                self.seg = None;
                Some(first)
            }
            (None, None) if must_exist => None,
            (None, None) => return Ok(SegmentEnd::EndOfData),
        };
        let err = JournalError::Corrupt {
            path,
            offset: damaged_at,
            expected_lsn: self.expect,
            resumes_at,
        };
        if let Verdict::Log { suppressed } = DAMAGE_LOG.check_now() {
            tracing::error!(%err, suppressed, "journal reader skipped damaged records");
        }
        match resumes_at {
            Some(lsn) => self.expect = lsn,
            // Nothing to resume at: stay here, so that the error repeats rather than being
            // mistaken for the end of the data.
            None => self.seg = None,
        }
        Ok(SegmentEnd::Damage(err))
    }
}

enum SegmentEnd {
    /// Reading continues (next segment opened, none open yet, or the record turned out
    /// whole when read again).
    Switched,
    /// Nothing more is there yet.
    EndOfData,
    /// Damage, reported once; the reader is positioned after it when possible.
    Damage(JournalError),
}

impl Iterator for JournalReader {
    type Item = Result<Record>;

    /// Ends at the end of the (durable) data; corruption is yielded as an `Err` item and the
    /// iteration continues after it.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// The newest record time of a sealed segment, read through the window buffer rather than
/// whole: a segment is 64 MiB by default, and retention visits each old one. `Ok(None)` when
/// the read stopped anywhere but at the normal end of the data (damage, a torn record, an LSN
/// out of order): the caller then scans the whole segment, which reads past damage.
pub(crate) fn newest_ts(seg: &SegmentEntry) -> Result<Option<Option<i64>>> {
    let mut f = SegmentFile::open(seg)?;
    let mut expect = seg.first_lsn;
    let mut newest: Option<i64> = None;
    loop {
        match f.read_record()? {
            Ok(r) if r.lsn == expect => {
                newest = Some(newest.map_or(r.ts_micros, |n| n.max(r.ts_micros)));
                expect += 1;
            }
            // Preallocated zeros, or the file ends exactly after the last record.
            Err(Invalid::Zero) | Err(Invalid::Truncated { have: 0, .. }) => {
                return Ok(Some(newest))
            }
            Ok(_) | Err(_) => return Ok(None),
        }
    }
}

/// Timestamp of a segment's first record (its header is followed directly by the first record).
fn first_ts(seg: &SegmentEntry) -> Result<Option<i64>> {
    let f = match File::open(&seg.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io("open segment", &seg.path, e)),
    };
    let mut h = [0u8; RECORD_HEADER_LEN];
    match f.read_exact_at(&mut h, SEGMENT_HEADER_LEN as u64) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(JournalError::io("read segment", &seg.path, e)),
    }
    Ok(record::read_header(&h)
        .filter(|r| r.lsn == seg.first_lsn)
        .map(|r| r.ts_micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record;
    use std::os::unix::fs::FileExt;

    /// After a re-open, the bytes past the durable end are written anew under the same
    /// LSNs: a live reader that had read them into its buffer must read them again.
    #[test]
    fn a_live_reader_drops_its_buffer_after_a_reopen() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let dir = segment::journal_dir(tmp.path());
        std::fs::create_dir_all(&dir).unwrap();
        let (file, _) = segment::create_segment(&dir, 1, 4096).unwrap();
        let mut bytes = Vec::new();
        record::encode_into(&mut bytes, 1, 10, b"one");
        let second_at = SEGMENT_HEADER_LEN + bytes.len();
        record::encode_into(&mut bytes, 2, 20, b"refused");
        file.write_all_at(&bytes, SEGMENT_HEADER_LEN as u64)
            .unwrap();

        let stats = Arc::new(JournalStats::default());
        let (durable, rx) = watch::channel(1);
        let mut r = JournalReader::live(tmp.path(), rx, Arc::clone(&stats));
        assert_eq!(r.next_record().unwrap().unwrap().payload, b"one");
        assert!(r.next_record().unwrap().is_none(), "2 is not durable");

        // The writer re-opens: record 2 is replaced, then made durable.
        stats
            .reopens
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut again = Vec::new();
        record::encode_into(&mut again, 2, 30, b"kept");
        again.resize(record::encoded_len(b"refused".len()), 0);
        file.write_all_at(&again, second_at as u64).unwrap();
        durable.send_replace(2);
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!((rec.lsn, rec.payload.as_slice()), (2, &b"kept"[..]));
    }
}
