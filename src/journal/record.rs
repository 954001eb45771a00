//! Record framing: the only code that knows how one record is laid out in bytes.
//!
//! ```text
//! offset  size  field
//!      0     4  len        payload length, u32 LE (≤ MAX_RECORD_LEN)
//!      4     4  crc32c     over bytes 0..4, 8..24 and the payload
//!      8     8  lsn        u64 LE, ≥ 1
//!     16     8  ts_micros  i64 LE, caller-supplied unix microseconds
//!     24   len  payload    opaque bytes
//! ```
//!
//! The checksum covers the length and the LSN as well as the payload: a torn length field, or a
//! well-formed record left over from another position, fails the check instead of being read as
//! data. Decoding is pure, never panics, and treats its input as hostile.

use super::Lsn;

/// Bytes before the payload.
pub const RECORD_HEADER_LEN: usize = 24;

/// Largest accepted payload. A DC-09 frame is a few hundred bytes; 1 MiB leaves room for any
/// audit record while bounding what one corrupt length field can make a reader allocate.
pub const MAX_RECORD_LEN: usize = 1 << 20;

/// How far past the expected LSN [`resync`] will accept a record. Random garbage almost never
/// carries an LSN inside such a window, which keeps false positives near 2^-40 per position
/// before the checksum is even computed.
const RESYNC_LSN_WINDOW: u64 = 1 << 24;

/// A decoded record borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub lsn: Lsn,
    pub ts_micros: i64,
    pub payload: &'a [u8],
}

/// Why no record could be decoded at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Only zero bytes in the header: preallocated space, the normal end of a segment's data.
    Zero,
    /// The input ends inside the record.
    Truncated { have: usize, need: usize },
    /// The length field is above [`MAX_RECORD_LEN`].
    TooLarge { len: usize },
    /// The checksum does not match.
    Checksum { stored: u32, computed: u32 },
    /// LSN 0 is never written.
    ZeroLsn,
}

/// Total encoded size of a record with a payload of `payload_len` bytes.
pub const fn encoded_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Appends the encoding of one record to `buf`. The caller has checked the payload length.
pub fn encode_into(buf: &mut Vec<u8>, lsn: Lsn, ts_micros: i64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_RECORD_LEN);
    // Lossless: the caller enforces MAX_RECORD_LEN, far below u32::MAX.
    let len = payload.len() as u32;
    let len_bytes = len.to_le_bytes();
    let lsn_bytes = lsn.to_le_bytes();
    let ts_bytes = ts_micros.to_le_bytes();
    let crc = checksum(&len_bytes, &lsn_bytes, &ts_bytes, payload);
    buf.reserve(encoded_len(payload.len()));
    buf.extend_from_slice(&len_bytes);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&lsn_bytes);
    buf.extend_from_slice(&ts_bytes);
    buf.extend_from_slice(payload);
}

fn checksum(len: &[u8], lsn: &[u8], ts: &[u8], payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(len);
    let c = crc32c::crc32c_append(c, lsn);
    let c = crc32c::crc32c_append(c, ts);
    crc32c::crc32c_append(c, payload)
}

fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The fixed header fields, read without validating anything but their presence.
#[derive(Debug, Clone, Copy)]
pub struct RawHeader {
    pub len: usize,
    pub crc: u32,
    pub lsn: Lsn,
    pub ts_micros: i64,
}

/// Reads the 24 header bytes, or `None` if `buf` is shorter than that.
pub fn read_header(buf: &[u8]) -> Option<RawHeader> {
    Some(RawHeader {
        len: u32::from_le_bytes(array(buf, 0)?) as usize,
        crc: u32::from_le_bytes(array(buf, 4)?),
        lsn: u64::from_le_bytes(array(buf, 8)?),
        ts_micros: i64::from_le_bytes(array(buf, 16)?),
    })
}

/// Decodes the record at the start of `buf`, returning it and its encoded length.
pub fn decode(buf: &[u8]) -> Result<(RecordRef<'_>, usize), Invalid> {
    let head = buf
        .get(..RECORD_HEADER_LEN.min(buf.len()))
        .unwrap_or_default();
    if head.iter().all(|&b| b == 0) {
        // An all-zero header (or an all-zero stub shorter than a header) is unwritten space.
        return Err(Invalid::Zero);
    }
    let Some(h) = read_header(buf) else {
        return Err(Invalid::Truncated {
            have: buf.len(),
            need: RECORD_HEADER_LEN,
        });
    };
    if h.len > MAX_RECORD_LEN {
        return Err(Invalid::TooLarge { len: h.len });
    }
    let total = encoded_len(h.len);
    let Some(payload) = buf.get(RECORD_HEADER_LEN..total) else {
        return Err(Invalid::Truncated {
            have: buf.len(),
            need: total,
        });
    };
    let (Some(len_b), Some(lsn_b)) = (buf.get(0..4), buf.get(8..16)) else {
        return Err(Invalid::Truncated {
            have: buf.len(),
            need: total,
        });
    };
    let ts_b = buf.get(16..24).unwrap_or_default();
    let computed = checksum(len_b, lsn_b, ts_b, payload);
    if computed != h.crc {
        return Err(Invalid::Checksum {
            stored: h.crc,
            computed,
        });
    }
    if h.lsn == 0 {
        return Err(Invalid::ZeroLsn);
    }
    Ok((
        RecordRef {
            lsn: h.lsn,
            ts_micros: h.ts_micros,
            payload,
        },
        total,
    ))
}

/// Searches `buf` from `from` for the next position holding a valid record whose LSN is in
/// `min_lsn .. min_lsn + 2^24`. Used after damage, to tell a torn tail (nothing valid follows)
/// from corruption in the middle (valid records follow, which must not be thrown away).
///
/// Runs of zeros are skipped quickly: a real record header always has a non-zero byte.
pub fn resync(buf: &[u8], from: usize, min_lsn: Lsn) -> Option<(usize, Lsn)> {
    let max_lsn = min_lsn.saturating_add(RESYNC_LSN_WINDOW);
    let mut pos = from;
    while pos < buf.len() {
        let rest = buf.get(pos..)?;
        let window = rest.get(..RECORD_HEADER_LEN.min(rest.len()))?;
        if window.iter().all(|&b| b == 0) {
            // Jump so that the first non-zero byte ahead becomes the last header byte.
            let nz = rest.iter().position(|&b| b != 0)?;
            pos += nz.saturating_sub(RECORD_HEADER_LEN - 1).max(1);
            continue;
        }
        if let Some(h) = read_header(rest) {
            if h.lsn >= min_lsn && h.lsn < max_lsn && h.len <= MAX_RECORD_LEN {
                if let Ok((r, _)) = decode(rest) {
                    return Some((pos, r.lsn));
                }
            }
        } else {
            return None;
        }
        pos += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(lsn: Lsn, ts: i64, p: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        encode_into(&mut b, lsn, ts, p);
        b
    }

    #[test]
    fn round_trip() {
        for payload in [&b""[..], b"x", &[0u8; 300], &[0xffu8; 4096]] {
            let b = enc(7, -12345, payload);
            assert_eq!(b.len(), encoded_len(payload.len()));
            let (r, n) = decode(&b).unwrap();
            assert_eq!(n, b.len());
            assert_eq!(r.lsn, 7);
            assert_eq!(r.ts_micros, -12345);
            assert_eq!(r.payload, payload);
        }
    }

    #[test]
    fn decodes_first_of_several() {
        let mut b = enc(1, 10, b"one");
        let first = b.len();
        encode_into(&mut b, 2, 20, b"two");
        let (r, n) = decode(&b).unwrap();
        assert_eq!((r.lsn, n), (1, first));
        let (r, _) = decode(&b[n..]).unwrap();
        assert_eq!((r.lsn, r.payload), (2, &b"two"[..]));
    }

    #[test]
    fn every_truncation_of_the_last_record_is_rejected() {
        let b = enc(42, 1_700_000_000_000_000, b"a DC-09 frame would be here");
        for cut in 0..b.len() {
            let got = decode(&b[..cut]);
            assert!(got.is_err(), "cut at {cut} decoded");
            // A tail followed by preallocated zeros must fail the same way.
            let mut padded = b[..cut].to_vec();
            padded.resize(b.len() + 64, 0);
            assert!(decode(&padded).is_err(), "zero-padded cut at {cut} decoded");
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let b = enc(3, 99, b"payload bytes");
        for byte in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[byte] ^= 1 << bit;
                if let Ok((r, _)) = decode(&c) {
                    panic!("flip {byte}:{bit} decoded as {r:?}");
                }
            }
        }
    }

    #[test]
    fn zeroed_tail_reads_as_end() {
        assert_eq!(decode(&[0u8; 100]), Err(Invalid::Zero));
        assert_eq!(decode(&[0u8; 5]), Err(Invalid::Zero));
        assert_eq!(decode(&[]), Err(Invalid::Zero));
        // A record whose payload end was zeroed (torn after the header) is not "end" but torn.
        let mut b = enc(1, 0, b"abcdef");
        let n = b.len();
        b[n - 3..].fill(0);
        assert!(matches!(decode(&b), Err(Invalid::Checksum { .. })));
    }

    #[test]
    fn oversized_length_is_rejected_before_reading() {
        let mut b = enc(1, 0, b"x");
        b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(Invalid::TooLarge {
                len: u32::MAX as usize
            })
        );
    }

    #[test]
    fn lsn_zero_is_invalid_even_with_good_checksum() {
        let b = enc(0, 0, b"x");
        assert_eq!(decode(&b), Err(Invalid::ZeroLsn));
    }

    #[test]
    fn resync_finds_the_next_record_after_damage() {
        let mut b = enc(1, 0, b"first");
        let second_at = b.len();
        encode_into(&mut b, 2, 0, b"second");
        let third_at = b.len();
        encode_into(&mut b, 3, 0, b"third");
        b[second_at + 2] ^= 0x40;
        assert_eq!(resync(&b, second_at, 2), Some((third_at, 3)));
        // LSNs below the minimum are not accepted (stale data from another position).
        assert_eq!(resync(&b, 0, 4), None);
        let mut z = vec![0u8; 10_000];
        z.extend_from_slice(&enc(9, 0, b"late"));
        z.extend_from_slice(&[0u8; 100]);
        assert_eq!(resync(&z, 0, 5), Some((10_000, 9)));
        assert_eq!(resync(&[0u8; 5000], 0, 1), None);
    }
}
