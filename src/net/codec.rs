//! Cuts a TCP byte stream into DC-09 frames (`docs/protocol/dc09.md` §2, "Framing on a stream").
//!
//! A frame starts at LF; its header says where the body ends, and the CR must follow. When
//! the CR is not where the length says (ELDES counts the CR, some senders get the length
//! wrong), the first CR after the header ends the frame and the protocol layer judges the
//! length. Bytes that cannot start a frame are skipped up to the next LF and reported, so a
//! garbage line costs its sender a log line and a counter, never the connection. The cutter
//! remembers how far it has scanned, so a slow sender trickling bytes is not rescanned from
//! the start on every read (no quadratic cost).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::protocol::dc09::MAX_FRAME_LEN;

/// Room the read buffer has before the socket is read when no frame is pending: a typical
/// frame and its successor fit, so one read takes a whole frame. With less (the space left
/// behind the frames already cut), a read can stop inside a frame, and that frame then
/// costs a second read. The connection's buffer starts at this size, and a buffer whose
/// frames have all been handed on and dropped is reused from its start, without allocating.
pub const READ_ROOM: usize = 512;

/// What the cutter found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// One frame from LF to CR inclusive.
    Frame(BytesMut),
    /// Bytes that are not a frame, dropped; the reason names the outcome.
    Junk { len: usize, reason: JunkReason },
}

/// Why bytes were dropped before reaching the protocol layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JunkReason {
    /// No LF, or an LF not followed by a DC-09 header (keep-alives of other protocols).
    NotAFrame,
    /// A frame start with no CR within [`MAX_FRAME_LEN`].
    TooLong,
    /// The peer closed in the middle of a frame.
    Truncated,
}

impl JunkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            JunkReason::NotAFrame => "not_a_frame",
            JunkReason::TooLong => "too_long",
            JunkReason::Truncated => "truncated",
        }
    }
}

/// The DC-09 stream cutter.
#[derive(Debug, Default)]
pub struct Dc09Codec {
    /// Where to resume looking for CR in the current candidate frame.
    scan_from: usize,
}

impl Dc09Codec {
    pub fn new() -> Self {
        Self::default()
    }
}

enum Header {
    /// Body starts at this offset and declares this length.
    Found {
        body_start: usize,
        declared: usize,
    },
    NeedMore,
    Invalid,
}

fn is_hex(b: &u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Reads the envelope after an LF at offset 0.
fn header(buf: &[u8]) -> Header {
    let len3 = |digits: &[u8]| -> usize {
        digits.iter().fold(0usize, |acc, &b| {
            acc * 16 + usize::from(crate::protocol::hex_digit(b).unwrap_or(0))
        })
    };
    // ASCII CRC: LF c c c c 0 l l l "
    match buf.get(..10) {
        Some([_, c @ .., b'0', l1, l2, l3, b'"'])
            if c.iter().all(is_hex) && [l1, l2, l3].into_iter().all(is_hex) =>
        {
            return Header::Found {
                body_start: 9,
                declared: len3(&[*l1, *l2, *l3]),
            };
        }
        _ => {}
    }
    // Binary CRC: LF b b 0 l l l "
    match buf.get(..8) {
        Some([_, _, _, b'0', l1, l2, l3, b'"']) if [l1, l2, l3].into_iter().all(is_hex) => {
            return Header::Found {
                body_start: 7,
                declared: len3(&[*l1, *l2, *l3]),
            };
        }
        _ => {}
    }
    if buf.len() < 10 {
        // Not enough to tell yet, unless what is there already rules both forms out.
        let ascii_possible = buf.iter().skip(1).take(4).all(is_hex);
        let binary_possible = buf.get(3).is_none_or(|&b| b == b'0');
        if ascii_possible || binary_possible {
            return Header::NeedMore;
        }
    }
    Header::Invalid
}

impl Decoder for Dc09Codec {
    type Item = Cut;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Cut>, std::io::Error> {
        // Skip what precedes the frame start. NULs after a CR are a known sender habit
        // (ioBroker #11/#19) and dropped silently; anything else is reported.
        let start = buf.iter().position(|&b| b == b'\n');
        let skip = start.unwrap_or(buf.len());
        if skip > 0 {
            let junk = buf.split_to(skip);
            self.scan_from = 0;
            if junk.iter().all(|&b| b == 0 || b == b'\r') {
                return self.decode(buf);
            }
            return Ok(Some(Cut::Junk {
                len: junk.len(),
                reason: JunkReason::NotAFrame,
            }));
        }
        if buf.is_empty() {
            buf.reserve(READ_ROOM);
            return Ok(None);
        }
        let (body_start, declared) = match header(buf) {
            Header::Found {
                body_start,
                declared,
            } => (body_start, declared),
            Header::NeedMore => {
                buf.reserve(READ_ROOM);
                return Ok(None);
            }
            Header::Invalid => return Ok(Some(self.skip_to_next_lf(buf, JunkReason::NotAFrame))),
        };
        let expected_cr = body_start + declared;
        if buf.get(expected_cr) == Some(&b'\r') {
            self.scan_from = 0;
            return Ok(Some(Cut::Frame(buf.split_to(expected_cr + 1))));
        }
        // Look for the CR; an LF first means this candidate was cut short and a new
        // frame begins there, so the stream resynchronises on it.
        let from = self.scan_from.max(body_start);
        let limit = buf.len().min(MAX_FRAME_LEN);
        let window = buf.get(from..limit).unwrap_or_default();
        match window.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(rel) if window.get(rel) == Some(&b'\r') => {
                self.scan_from = 0;
                return Ok(Some(Cut::Frame(buf.split_to(from + rel + 1))));
            }
            Some(rel) => {
                self.scan_from = 0;
                let junk = buf.split_to(from + rel);
                return Ok(Some(Cut::Junk {
                    len: junk.len(),
                    reason: JunkReason::Truncated,
                }));
            }
            None => {}
        }
        if buf.len() >= MAX_FRAME_LEN {
            return Ok(Some(self.skip_to_next_lf(buf, JunkReason::TooLong)));
        }
        self.scan_from = buf.len();
        buf.reserve(
            expected_cr
                .saturating_add(1)
                .saturating_sub(buf.len())
                .min(MAX_FRAME_LEN),
        );
        Ok(None)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Cut>, std::io::Error> {
        if let Some(cut) = self.decode(buf)? {
            return Ok(Some(cut));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let len = buf.len();
        buf.clear();
        self.scan_from = 0;
        Ok(Some(Cut::Junk {
            len,
            reason: JunkReason::Truncated,
        }))
    }
}

/// Why a datagram cannot be a frame at all, if it cannot: it must start with LF and a
/// DC-09 envelope (CRC and `0LLL` length, `spec/dc09.md` §2). What fails this is junk, as on
/// a stream: counted, not decoded and not journaled, so a flood of random datagrams costs
/// a counter each, never a journal record. A datagram that passes goes to the protocol
/// layer, which judges its CRC and the rest.
pub fn datagram_junk(datagram: &[u8]) -> Option<JunkReason> {
    if datagram.first() != Some(&b'\n') {
        return Some(JunkReason::NotAFrame);
    }
    match header(datagram) {
        Header::Found { .. } => None,
        Header::NeedMore => Some(JunkReason::Truncated),
        Header::Invalid => Some(JunkReason::NotAFrame),
    }
}

impl Dc09Codec {
    /// Drops the candidate at offset 0 up to (not including) the next LF.
    fn skip_to_next_lf(&mut self, buf: &mut BytesMut, reason: JunkReason) -> Cut {
        self.scan_from = 0;
        let next = buf
            .iter()
            .skip(1)
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |p| p + 1);
        let junk = buf.split_to(next);
        Cut::Junk {
            len: junk.len(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_that_cannot_be_frames_are_junk() {
        assert_eq!(datagram_junk(W1), None);
        assert_eq!(datagram_junk(W3), None);
        // A bad CRC is the protocol layer's to judge (silence, and an audit record).
        assert_eq!(datagram_junk(b"\n0000002F\"SIA-DCS\"0001L0#1234[]\r"), None);
        assert_eq!(datagram_junk(b""), Some(JunkReason::NotAFrame));
        assert_eq!(
            datagram_junk(b"GET / HTTP/1.1\r\n"),
            Some(JunkReason::NotAFrame)
        );
        assert_eq!(datagram_junk(b"\nhello world"), Some(JunkReason::NotAFrame));
        assert_eq!(datagram_junk(b"\n72FA"), Some(JunkReason::Truncated));
    }

    const W1: &[u8] = b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
    const W3: &[u8] = b"\n11020013\"NULL\"0003L0#1234[]\r";

    #[test]
    fn after_the_frames_are_cut_a_whole_frame_fits_before_the_next_read() {
        // As a connection reads: frames arrive one by one into a buffer of READ_ROOM, each is
        // cut and dropped before the next read. Without room for a whole frame, a read
        // would stop inside the next one and cost a second read.
        let mut codec = Dc09Codec::new();
        let mut buf = BytesMut::with_capacity(READ_ROOM);
        for _ in 0..20 {
            assert!(
                buf.capacity() - buf.len() >= W1.len(),
                "room {}",
                buf.capacity()
            );
            buf.extend_from_slice(W1);
            let cut = codec.decode(&mut buf).unwrap();
            assert_eq!(cut, Some(Cut::Frame(BytesMut::from(W1))));
            drop(cut);
            assert_eq!(codec.decode(&mut buf).unwrap(), None);
            assert!(buf.capacity() >= READ_ROOM, "room {}", buf.capacity());
        }
        // A frame's first bytes alone leave room for the rest of it too.
        buf.extend_from_slice(&W1[..5]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() - buf.len() >= W1.len());
    }

    fn cut_all(chunks: &[&[u8]]) -> Vec<Cut> {
        let mut codec = Dc09Codec::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(cut) = codec.decode(&mut buf).unwrap() {
                out.push(cut);
            }
        }
        while let Some(cut) = codec.decode_eof(&mut buf).unwrap() {
            out.push(cut);
        }
        out
    }

    fn frame(b: &[u8]) -> Cut {
        Cut::Frame(BytesMut::from(b))
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut all = W1.to_vec();
        all.extend_from_slice(W3);
        all.extend_from_slice(W1);
        assert_eq!(cut_all(&[&all]), vec![frame(W1), frame(W3), frame(W1)]);
    }

    #[test]
    fn frame_split_at_every_byte() {
        for split in 0..=W1.len() {
            let (a, b) = W1.split_at(split);
            assert_eq!(cut_all(&[a, b]), vec![frame(W1)], "split at {split}");
        }
        let bytes: Vec<&[u8]> = W1.chunks(1).collect();
        assert_eq!(cut_all(&bytes), vec![frame(W1)]);
    }

    #[test]
    fn garbage_is_skipped_to_next_lf() {
        let mut all = b"LFQ=600#CRC=1234##\r".to_vec();
        all.extend_from_slice(b"\nSR0001L0001    006969XX    [ID00000000]\r");
        all.extend_from_slice(W3);
        let cuts = cut_all(&[&all]);
        assert_eq!(cuts.len(), 3);
        assert!(matches!(
            cuts[0],
            Cut::Junk {
                reason: JunkReason::NotAFrame,
                len: 19
            }
        ));
        assert!(matches!(
            cuts[1],
            Cut::Junk {
                reason: JunkReason::NotAFrame,
                ..
            }
        ));
        assert_eq!(cuts[2], frame(W3));
    }

    #[test]
    fn trailing_nuls_are_silent() {
        let mut all = W3.to_vec();
        all.extend_from_slice(b"\0\0\0");
        all.extend_from_slice(W3);
        assert_eq!(cut_all(&[&all]), vec![frame(W3), frame(W3)]);
    }

    #[test]
    fn oversized_frame_is_dropped_and_stream_resumes() {
        let mut all = b"\n00000FFF\"SIA-DCS\"0001L0#1234[".to_vec();
        all.extend(std::iter::repeat_n(b'A', MAX_FRAME_LEN + 10));
        all.extend_from_slice(W3);
        let cuts = cut_all(&[&all]);
        assert!(matches!(
            cuts[0],
            Cut::Junk {
                reason: JunkReason::TooLong,
                ..
            }
        ));
        assert_eq!(cuts.last(), Some(&frame(W3)));
    }

    #[test]
    fn short_length_cuts_at_first_cr() {
        // Declared length too large: the CR ends it, the protocol layer rejects the length.
        let bad = b"\n72FA0040\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
        let mut all = bad.to_vec();
        all.extend_from_slice(W3);
        assert_eq!(cut_all(&[&all]), vec![frame(bad), frame(W3)]);
    }

    #[test]
    fn eof_mid_frame_is_truncated() {
        let cuts = cut_all(&[&W1[..20]]);
        assert_eq!(
            cuts,
            vec![Cut::Junk {
                len: 20,
                reason: JunkReason::Truncated
            }]
        );
    }

    #[test]
    fn binary_crc_frame_with_lf_in_crc_bytes() {
        // A CRC byte equal to LF or CR must not confuse the cutter.
        let body = b"\"NULL\"0003L0#1234[]";
        let mut raw = vec![b'\n', b'\r', b'\n'];
        raw.extend_from_slice(b"0013");
        raw.extend_from_slice(body);
        raw.push(b'\r');
        assert_eq!(cut_all(&[&raw]), vec![frame(&raw)]);
    }
}
