//! Segment summaries: what open and the dedup rebuild need to know of a sealed segment,
//! without reading it.
//!
//! A sealed segment never changes, so what a scan of it would find can be written down
//! once, when it is sealed: its LSN range, where its data ends, its first and newest record
//! times, and the *tags* of its records. A tag is an optional 16-byte value per record that
//! the journal's user derives from the payload (see [`Tagger`]): the receiver tags each
//! acknowledged frame with its content key, so that rebuilding the dedup window after a
//! restart reads 24 bytes a record from the summaries instead of every record. The journal
//! knows nothing of what a tag means.
//!
//! A summary is a sidecar file `<first LSN, 20 digits>.sum` beside its segment:
//!
//! ```text
//! offset  size  field
//!      0     8  magic        "TOCSINS1"
//!      8     4  version      u32 LE, 1
//!     12     4  header_len   u32 LE, 96
//!     16     8  first_lsn    equal to the segment's
//!     24     8  next_lsn     LSN after the last valid record
//!     32     8  records      valid records
//!     40     8  valid_end    byte offset after the last valid record
//!     48     8  first_ts     i64 LE (i64::MIN: no record)
//!     56     8  max_ts       i64 LE (i64::MIN: no record)
//!     64     8  segment_len  the segment file's length when summarized
//!     72     8  lost         LSNs lost to damage found when summarized
//!     80     4  flags        bit 0: tags were collected
//!     84     4  tag_count
//!     88     4  tags_crc     CRC32C of the tags
//!     92     4  crc32c       of bytes 0..92
//!     96  24×n  tags         ts_micros i64 LE, tag u128 LE
//! ```
//!
//! It is written without fsync, after the segment itself is durable: a summary lost or torn
//! in a crash fails its checksums and the segment is scanned once at the next open, which
//! writes it again. A summary that disagrees with its segment's name or length is ignored
//! the same way. Old journals, whose segments have none, get them at their first open.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Lsn;

/// Derives a record's tag from its payload (`None`: the record has none). Called by the
/// writer for every record it writes, so it must be cheap, and by recovery for the records
/// of segments without a summary.
pub type Tagger = fn(&[u8]) -> Option<u128>;

const MAGIC: &[u8; 8] = b"TOCSINS1";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 96;
const TAG_LEN: usize = 24;
const TAGS_COLLECTED: u32 = 1;
const SUFFIX: &str = ".sum";
/// A summary never holds more tags than a segment could hold records of 24 bytes and up:
/// a corrupt count must not make a reader allocate without bound.
const MAX_TAGS: u64 = 1 << 28;

/// One tagged record.
pub type Tag = (i64, u128);

/// What a segment holds, as far as open, retention and the dedup rebuild need to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub first_lsn: Lsn,
    pub next_lsn: Lsn,
    pub records: u64,
    pub valid_end: u64,
    pub first_ts: Option<i64>,
    pub max_ts: Option<i64>,
    pub segment_len: u64,
    pub lost: u64,
    /// `None` when the writer had no tagger: the tags are unknown, not absent.
    pub tags: Option<Vec<Tag>>,
}

impl Summary {
    /// An empty summary of a segment starting at `first_lsn`, collecting tags if asked.
    pub fn start(first_lsn: Lsn, collect_tags: bool) -> Summary {
        Summary {
            first_lsn,
            next_lsn: first_lsn,
            tags: collect_tags.then(Vec::new),
            ..Summary::default()
        }
    }

    /// Counts one record written after the others.
    pub fn add(&mut self, lsn: Lsn, ts: i64, tag: Option<u128>) {
        self.records += 1;
        self.next_lsn = lsn + 1;
        self.first_ts.get_or_insert(ts);
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        if let (Some(tags), Some(t)) = (self.tags.as_mut(), tag) {
            tags.push((ts, t));
        }
    }
}

/// `<dir>/<first LSN>.sum`.
pub fn path_of(segment: &Path) -> PathBuf {
    segment.with_extension("sum")
}

/// Whether a file name is a summary's.
pub fn is_summary_name(name: &str) -> bool {
    name.ends_with(SUFFIX)
}

fn ts_or_none(v: Option<i64>) -> i64 {
    v.unwrap_or(i64::MIN)
}

fn none_if_min(v: i64) -> Option<i64> {
    (v != i64::MIN).then_some(v)
}

/// The bytes of a summary (see the module doc for the layout).
pub fn encode(s: &Summary) -> Vec<u8> {
    let tags = s.tags.as_deref().unwrap_or_default();
    let mut out = vec![0u8; HEADER_LEN];
    for (ts, tag) in tags {
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
    }
    let tags_crc = crc32c::crc32c(out.get(HEADER_LEN..).unwrap_or_default());
    let h = &mut out[..HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    let fields: [u64; 8] = [
        s.first_lsn,
        s.next_lsn,
        s.records,
        s.valid_end,
        ts_or_none(s.first_ts) as u64,
        ts_or_none(s.max_ts) as u64,
        s.segment_len,
        s.lost,
    ];
    for (i, v) in fields.iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let flags = if s.tags.is_some() { TAGS_COLLECTED } else { 0 };
    h[80..84].copy_from_slice(&flags.to_le_bytes());
    let count = u32::try_from(tags.len()).unwrap_or(u32::MAX);
    h[84..88].copy_from_slice(&count.to_le_bytes());
    h[88..92].copy_from_slice(&tags_crc.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..92]);
    h[92..96].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Writes the summary of the segment at `segment` (no fsync: see the module doc).
pub fn store(segment: &Path, s: &Summary) -> io::Result<()> {
    File::create(path_of(segment))?.write_all(&encode(s))
}

fn u64_at(h: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = h.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

fn u32_at(h: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = h.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

/// A summary header: the summary without its tags, their count and checksum.
fn decode_header(h: &[u8]) -> Option<(Summary, u32, u32)> {
    let h = h.get(..HEADER_LEN)?;
    if h.get(0..8)? != MAGIC
        || u32_at(h, 8) != VERSION
        || u32_at(h, 12) as usize != HEADER_LEN
        || u32_at(h, 92) != crc32c::crc32c(h.get(0..92)?)
        || u32_at(h, 80) & !TAGS_COLLECTED != 0
    {
        return None;
    }
    let s = Summary {
        first_lsn: u64_at(h, 16),
        next_lsn: u64_at(h, 24),
        records: u64_at(h, 32),
        valid_end: u64_at(h, 40),
        first_ts: none_if_min(u64_at(h, 48) as i64),
        max_ts: none_if_min(u64_at(h, 56) as i64),
        segment_len: u64_at(h, 64),
        lost: u64_at(h, 72),
        tags: (u32_at(h, 80) & TAGS_COLLECTED != 0).then(Vec::new),
    };
    let sane = s.next_lsn >= s.first_lsn
        && s.records <= s.next_lsn - s.first_lsn
        && u64::from(u32_at(h, 84)) <= MAX_TAGS;
    sane.then(|| (s, u32_at(h, 84), u32_at(h, 88)))
}

/// Decodes a whole summary file's bytes: `None` unless both checksums hold and every
/// count agrees with the bytes present.
pub fn decode(bytes: &[u8]) -> Option<Summary> {
    let (mut s, count, crc) = decode_header(bytes)?;
    let body = bytes.get(HEADER_LEN..)?;
    if body.len() != count as usize * TAG_LEN || crc32c::crc32c(body) != crc {
        return None;
    }
    if s.tags.is_some() {
        s.tags = Some(
            body.chunks_exact(TAG_LEN)
                .map(|c| {
                    let ts = u64_at(c, 0) as i64;
                    let mut t = [0u8; 16];
                    t.copy_from_slice(c.get(8..24).unwrap_or(&[0; 16]));
                    (ts, u128::from_le_bytes(t))
                })
                .collect(),
        );
    } else if count != 0 {
        return None;
    }
    Some(s)
}

fn belongs(s: &Summary, first_lsn: Lsn, segment_len: u64) -> bool {
    s.first_lsn == first_lsn && s.segment_len == segment_len
}

/// The header of a summary, checked: tags are not read. `None` when there is no usable
/// summary for this segment (missing, torn, or written for another file).
pub fn load_header(segment: &Path, first_lsn: Lsn, segment_len: u64) -> Option<(Summary, u32)> {
    let f = File::open(path_of(segment)).ok()?;
    let mut h = [0u8; HEADER_LEN];
    f.read_exact_at(&mut h, 0).ok()?;
    let (s, count, _) = decode_header(&h)?;
    belongs(&s, first_lsn, segment_len).then_some((s, count))
}

/// The summary with its tags. `None` as for [`load_header`], or when the tags fail their
/// checksum.
pub fn load(segment: &Path, first_lsn: Lsn, segment_len: u64) -> Option<Summary> {
    let (_, count) = load_header(segment, first_lsn, segment_len)?;
    let bytes = fs::read(path_of(segment)).ok()?;
    // Read no more than the header announced: a file grown since is not this summary.
    if bytes.len() != HEADER_LEN + count as usize * TAG_LEN {
        return None;
    }
    decode(&bytes).filter(|s| belongs(s, first_lsn, segment_len))
}

/// Removes the summary of a segment (deleted, or active again after a failure).
pub fn remove(segment: &Path) -> io::Result<()> {
    match fs::remove_file(path_of(segment)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let seg = tmp.path().join("00000000000000000005.seg");
        let mut s = Summary::start(5, true);
        s.add(5, 100, Some(7));
        s.add(6, 90, None);
        s.add(7, 120, Some(u128::MAX));
        s.valid_end = 400;
        s.segment_len = 4096;
        store(&seg, &s).unwrap();
        let back = load(&seg, 5, 4096).unwrap();
        assert_eq!(back, s);
        assert_eq!((back.first_ts, back.max_ts), (Some(100), Some(120)));
        assert_eq!(back.tags, Some(vec![(100, 7), (120, u128::MAX)]));
        // Another segment length, another first LSN: not this segment's summary.
        assert!(load(&seg, 5, 8192).is_none());
        assert!(load(&seg, 6, 4096).is_none());
        // Any flipped byte is caught.
        let bytes = fs::read(path_of(&seg)).unwrap();
        for i in 0..bytes.len() {
            let mut d = bytes.clone();
            d[i] ^= 0x04;
            fs::write(path_of(&seg), &d).unwrap();
            assert!(load(&seg, 5, 4096).is_none(), "flip at {i} accepted");
        }
        // A torn one too.
        fs::write(path_of(&seg), &bytes[..bytes.len() - 1]).unwrap();
        assert!(load(&seg, 5, 4096).is_none());
        remove(&seg).unwrap();
        remove(&seg).unwrap();
        assert!(load(&seg, 5, 4096).is_none());
    }

    #[test]
    fn without_a_tagger_tags_are_unknown() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let seg = tmp.path().join("00000000000000000001.seg");
        let mut s = Summary::start(1, false);
        s.add(1, 10, Some(3));
        store(&seg, &s).unwrap();
        assert_eq!(load(&seg, 1, 0).unwrap().tags, None);
    }
}
