//! Free space on the journal's file system, and the watermark the journal keeps free.
//!
//! The journal takes disk space only when it creates a segment (segments are preallocated,
//! so appends inside one take none). Before it creates one, it checks that the file system
//! keeps at least [`MinFree`] free afterwards; if not, it refuses the appends that needed
//! the segment (the panels get NAK and retry, or go to their backup receiver) and asks
//! retention for room, instead of running the disk to its last byte, where the supervision
//! snapshot, the cursors and the system's own logs fail next.

use std::path::Path;

/// What `[journal] min_free` asks to keep free: a size, or a share of the file system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    Bytes(u64),
    /// Percent of the file system's size, 0 to 100.
    Percent(f64),
}

impl Default for MinFree {
    /// 2 % of the file system.
    fn default() -> Self {
        MinFree::Percent(2.0)
    }
}

impl MinFree {
    /// The watermark in bytes on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            // Rounded up: a share never rounds down to nothing kept.
            MinFree::Percent(p) => (total as f64 * p / 100.0).ceil() as u64,
        }
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Bytes(b) => write!(f, "{b} bytes"),
            MinFree::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Space on the file system holding a directory, for an unprivileged writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Space {
    /// Bytes an unprivileged process may still allocate.
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
}

/// Free and total bytes of the file system holding `dir`.
pub fn space(dir: &Path) -> std::io::Result<Space> {
    let v = rustix::fs::statvfs(dir)?;
    Ok(Space {
        free: v.f_bavail.saturating_mul(v.f_frsize),
        total: v.f_blocks.saturating_mul(v.f_frsize),
    })
}

/// Whether an allocation of `need` bytes is an ENOSPC or EDQUOT failure: the disk (or the
/// user's quota) is full, which space returning cures, unlike other I/O errors.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error()
            || code == rustix::io::Errno::DQUOT.raw_os_error()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_in_bytes() {
        assert_eq!(MinFree::Percent(2.0).bytes(6 << 20), 125_830);
        assert_eq!(MinFree::Bytes(7).bytes(6 << 20), 7);
        assert_eq!(MinFree::default(), MinFree::Percent(2.0));
    }

    #[test]
    fn out_of_space_is_told_from_other_errors() {
        let nospc = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let dquot = std::io::Error::from_raw_os_error(rustix::io::Errno::DQUOT.raw_os_error());
        let eio = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(is_out_of_space(&nospc) && is_out_of_space(&dquot));
        assert!(!is_out_of_space(&eio));
    }
}
