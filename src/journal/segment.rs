//! Segment files: naming, the 32-byte header, creation with preallocation, listing.
//!
//! A segment is born complete or not at all: it is created under a temporary name, preallocated,
//! given its header, synced, and only then renamed into place (and the directory synced). So any
//! `*.seg` file has a valid header, and a crash during creation leaves only a `*.tmp` that the
//! next open removes. The two steps are apart ([`prepare_segment`], [`install`]) so that the
//! writer can make sure of the space a batch needs before it writes any of the batch.
//!
//! ```text
//! offset  size  field
//!      0     8  magic      "TOCSINJ1"
//!      8     4  version    u32 LE, 1
//!     12     4  header_len u32 LE, 32
//!     16     8  first_lsn  u64 LE, equal to the number in the file name
//!     24     4  reserved   0
//!     28     4  crc32c     of bytes 0..28
//! ```

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FallocateFlags;

use super::error::{JournalError, Result};
use super::Lsn;

pub const SEGMENT_HEADER_LEN: usize = 32;
pub const SEGMENT_MAGIC: &[u8; 8] = b"TOCSINJ1";
pub const SEGMENT_VERSION: u32 = 1;
const SEGMENT_SUFFIX: &str = ".seg";
const TEMP_SUFFIX: &str = ".tmp";

/// `<data_dir>/journal`.
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// Zero-padded to 20 digits so that lexical order is LSN order (u64::MAX has 20 digits).
pub fn segment_file_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}{SEGMENT_SUFFIX}")
}

pub fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn encode_header(first_lsn: Lsn) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Returns the first LSN recorded in a header, or why the header is unacceptable.
pub fn decode_header(buf: &[u8]) -> std::result::Result<Lsn, &'static str> {
    let h: &[u8; SEGMENT_HEADER_LEN] = buf
        .get(..SEGMENT_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or("file shorter than a segment header")?;
    if &h[0..8] != SEGMENT_MAGIC {
        return Err("bad magic");
    }
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    if u32_at(28) != crc32c::crc32c(&h[0..28]) {
        return Err("header checksum mismatch");
    }
    if u32_at(8) != SEGMENT_VERSION {
        return Err("unsupported version");
    }
    if u32_at(12) as usize != SEGMENT_HEADER_LEN {
        return Err("unexpected header length");
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&h[16..24]);
    let lsn = u64::from_le_bytes(lsn);
    if lsn == 0 {
        return Err("first lsn is zero");
    }
    Ok(lsn)
}

/// One `*.seg` file found in the journal directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    pub first_lsn: Lsn,
    pub path: PathBuf,
    /// File length, preallocation included.
    pub len: u64,
}

/// Segment files sorted by first LSN. Other files are ignored (cursors, lock, temporaries).
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentEntry>> {
    let rd = fs::read_dir(dir).map_err(|e| JournalError::io("read_dir", dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| JournalError::io("read_dir", dir, e))?;
        let name = entry.file_name();
        let Some(first_lsn) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        let path = entry.path();
        let len = match entry.metadata() {
            Ok(m) => m.len(),
            // Deleted by retention between read_dir and stat: simply not there any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(JournalError::io("stat", path, e)),
        };
        out.push(SegmentEntry {
            first_lsn,
            path,
            len,
        });
    }
    out.sort_by_key(|s| s.first_lsn);
    Ok(out)
}

/// Removes `*.tmp` leftovers of segment creations interrupted by a crash. Returns how many.
pub fn remove_temp_files(dir: &Path) -> Result<usize> {
    let rd = fs::read_dir(dir).map_err(|e| JournalError::io("read_dir", dir, e))?;
    let mut n = 0;
    for entry in rd {
        let entry = entry.map_err(|e| JournalError::io("read_dir", dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
            let p = entry.path();
            fs::remove_file(&p).map_err(|e| JournalError::io("remove temp", &p, e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Makes sure the blocks of `file` up to `size` are allocated and the file size is `size`, so
/// that later `fdatasync`s of appends inside it have no size change to commit. Falls back to a
/// sparse `set_len` on file systems without `fallocate`.
pub fn preallocate(file: &File, size: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::NOSYS) => {
            if file.metadata()?.len() < size {
                file.set_len(size)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// fsync of a directory, so that a create, rename or unlink in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io("fsync dir", dir, e))
}

/// A segment created and preallocated under its temporary name, not yet in place: the
/// writer makes the room a batch needs before writing any of it, and installs the segment
/// only once the segment before it is sealed.
#[derive(Debug)]
pub struct Spare {
    file: File,
    tmp: PathBuf,
    pub first_lsn: Lsn,
    pub size: u64,
}

impl Spare {
    /// Gives the space back (the batch that needed it was refused further on).
    pub fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Creates `<first_lsn>.seg.tmp`, preallocates `size` bytes, writes the header and syncs.
/// Out of space, the temporary file is removed again and the error is
/// [`JournalError::DiskFull`].
pub fn prepare_segment(dir: &Path, first_lsn: Lsn, size: u64) -> Result<Spare> {
    let name = segment_file_name(first_lsn);
    let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| JournalError::io_or_full("create segment", &tmp, e))?;
    let prepared = preallocate(&file, size)
        .map_err(|e| JournalError::io_or_full("fallocate", &tmp, e))
        .and_then(|()| {
            std::os::unix::fs::FileExt::write_all_at(&file, &encode_header(first_lsn), 0)
                .map_err(|e| JournalError::io_or_full("write segment header", &tmp, e))
        })
        .and_then(|()| {
            // sync_all, not sync_data: the size and allocation are metadata and must be
            // durable before any record's fdatasync relies on them.
            file.sync_all()
                .map_err(|e| JournalError::io_or_full("fsync new segment", &tmp, e))
        });
    match prepared {
        Ok(()) => Ok(Spare {
            file,
            tmp,
            first_lsn,
            size,
        }),
        Err(e) => {
            drop(file);
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Renames a prepared segment into place and syncs the directory. Returns the open file
/// (read + write) and its path.
pub fn install(dir: &Path, spare: Spare) -> Result<(File, PathBuf)> {
    let path = dir.join(segment_file_name(spare.first_lsn));
    fs::rename(&spare.tmp, &path).map_err(|e| JournalError::io("rename segment", &path, e))?;
    sync_dir(dir)?;
    Ok((spare.file, path))
}

/// Creates, preallocates and installs the segment whose first record is `first_lsn`.
/// Returns the open file (read + write) and its path.
pub fn create_segment(dir: &Path, first_lsn: Lsn, size: u64) -> Result<(File, PathBuf)> {
    install(dir, prepare_segment(dir, first_lsn, size)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_lsns() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("1.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000a.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000001.seg.tmp"),
            None
        );
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = encode_header(1234);
        assert_eq!(decode_header(&h), Ok(1234));
        assert!(decode_header(&h[..31]).is_err());
        for i in 0..SEGMENT_HEADER_LEN {
            let mut d = h;
            d[i] ^= 0x10;
            assert!(decode_header(&d).is_err(), "flip at {i} accepted");
        }
    }
}
