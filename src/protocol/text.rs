//! Text in frames: ASCII by rule; UTF-8 or Windows-1252 in the text fields of extended data
//! (`docs/protocol/dc09.md` §7, `docs/protocol/dc09-2026.md` "Text").
//!
//! DC-09-2013 allowed Windows-1252 in the free-text extended blocks; DC-09-2026 allows UTF-8
//! there too and prefers it. A frame does not say which it used, so the reading is decided
//! per frame by [`TextEncoding::of`]: UTF-8 when every non-ASCII field is valid UTF-8,
//! Windows-1252 otherwise. Text that is valid UTF-8 is almost never meant as Windows-1252
//! (it would take sequences like `Ã¼` in a name), while Windows-1252 text with accents is
//! almost never valid UTF-8. `P` (programming data) is Windows-1252 in both editions: it
//! is left out of the decision and always read that way.
//!
//! The CRC is computed on raw bytes; only presentation decodes them. Both decodings are
//! total, so no byte a panel sends is lost or refused for its encoding.

use std::borrow::Cow;

/// How the text of a frame was read, when it was not all ASCII (where both agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TextEncoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl TextEncoding {
    /// The name as in the event's `text_encoding` field (and its serde form).
    pub const fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Windows1252 => "windows-1252",
        }
    }

    /// The reading for a frame whose text fields are `fields`: `None` when they are all
    /// ASCII, UTF-8 when each non-ASCII one is valid UTF-8 on its own, else Windows-1252.
    pub fn of<'f>(fields: impl IntoIterator<Item = &'f [u8]>) -> Option<TextEncoding> {
        let mut found = None;
        for f in fields {
            if f.is_ascii() {
                continue;
            }
            if std::str::from_utf8(f).is_err() {
                return Some(TextEncoding::Windows1252);
            }
            found = Some(TextEncoding::Utf8);
        }
        found
    }

    /// `bytes` as text in this encoding; ASCII is borrowed, and so is valid UTF-8.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            TextEncoding::Utf8 => String::from_utf8_lossy(bytes),
            TextEncoding::Windows1252 => decode_w1252(bytes),
        }
    }
}

/// `bytes` read as `encoding` decides, Windows-1252 when none was decided (all ASCII, or a
/// caller that has no frame to decide from).
pub fn decode_as(encoding: Option<TextEncoding>, bytes: &[u8]) -> Cow<'_, str> {
    match encoding {
        Some(e) => e.decode(bytes),
        None => decode_w1252(bytes),
    }
}

/// Characters of 0x80–0x9F in Windows-1252; the five undefined positions keep their C1
/// code point so the original byte can still be recovered.
const HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// Decodes bytes as Windows-1252; ASCII (the usual case) is borrowed.
pub fn decode_w1252(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        return Cow::Borrowed(ascii_str(bytes).unwrap_or_default());
    }
    Cow::Owned(
        bytes
            .iter()
            .map(|&b| match b {
                0x80..=0x9F => HIGH
                    .get(usize::from(b - 0x80))
                    .copied()
                    .unwrap_or('\u{FFFD}'),
                _ => char::from(b),
            })
            .collect(),
    )
}

/// `bytes` as text when they are all ASCII. ASCII is UTF-8 by definition, so the one
/// word-at-a-time ASCII test replaces std's general UTF-8 validation, which costs several
/// times more on the short, hot strings of a frame (header, escaped frame, event stamps).
pub fn ascii_str(bytes: &[u8]) -> Option<&str> {
    if !bytes.is_ascii() {
        return None;
    }
    // SAFETY: every byte is below 0x80, and a sequence of such bytes is valid UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// `bytes` as an owned string, without copying, when they are all ASCII (see
/// [`ascii_str`]); any other bytes are decoded lossily.
pub fn ascii_string(bytes: Vec<u8>) -> String {
    if !bytes.is_ascii() {
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    // SAFETY: as in `ascii_str`: all bytes are ASCII, hence valid UTF-8.
    unsafe { String::from_utf8_unchecked(bytes) }
}

/// Writes bytes in the escaped form that `tocsin decode` reads back: printable ASCII as
/// is, `\n`, `\r`, `\\`, and `\xNN` for anything else.
pub fn escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Runs of printable bytes are copied whole; a frame is printable but for its LF and
    // CR, so this is a handful of copies. The output is ASCII by construction.
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut rest = bytes;
    while !rest.is_empty() {
        let run = plain_run(rest);
        let (plain, tail) = rest.split_at(run);
        out.extend_from_slice(plain);
        let Some((&b, after)) = tail.split_first() else {
            break;
        };
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]),
        }
        rest = after;
    }
    debug_assert!(out.is_ascii());
    // SAFETY: plain runs hold only bytes 0x20..=0x7E (`needs_escape` is false for them),
    // and every escape written above is ASCII: the output is ASCII, hence UTF-8.
    unsafe { String::from_utf8_unchecked(out) }
}

#[inline(always)]
fn needs_escape(b: u8) -> bool {
    // Both tests always run (`|`, not `||`): without a branch the chunked scan of
    // `leading_run` becomes vector compares.
    (b.wrapping_sub(0x20) > 0x7E - 0x20) | (b == b'\\')
}

/// Length of the leading run of bytes [`escape`] copies as they are.
#[inline(always)]
fn plain_run(bytes: &[u8]) -> usize {
    leading_run(bytes, needs_escape)
}

/// Length of the leading run of bytes for which `stop` is false. Whole 16-byte chunks are
/// tested with a branch-free fold the compiler turns into vector compares: the strings this
/// scans (frames, encrypted frames of hundreds of hex digits, JSON text) are mostly runs
/// with nothing to stop at. Always inlined: the fold only becomes vector compares once
/// `stop` is known, and left out of line it runs a byte at a time, several times slower.
#[inline(always)]
pub fn leading_run(bytes: &[u8], stop: impl Fn(u8) -> bool) -> usize {
    let clean = clean_chunks(bytes, &stop);
    clean + byte_run(bytes, clean, &stop)
}

/// [`leading_run`] for text that is mostly short and clean (a JSON event's strings): an
/// 8- and a 4-byte step between the chunks and the byte loop keep most of it off the
/// latter. Where a stop byte usually comes early (a frame's LF), the steps only cost.
#[inline(always)]
pub fn leading_run_short(bytes: &[u8], stop: impl Fn(u8) -> bool) -> usize {
    let mut clean = clean_chunks(bytes, &stop);
    if let Some(eight) = bytes.get(clean..).and_then(|r| r.first_chunk::<8>()) {
        if !eight.iter().fold(false, |dirty, &b| dirty | stop(b)) {
            clean += 8;
        }
    }
    if let Some(four) = bytes.get(clean..).and_then(|r| r.first_chunk::<4>()) {
        if !four.iter().fold(false, |dirty, &b| dirty | stop(b)) {
            clean += 4;
        }
    }
    clean + byte_run(bytes, clean, &stop)
}

/// Bytes in the leading whole 16-byte chunks with no stop byte.
#[inline(always)]
fn clean_chunks(bytes: &[u8], stop: &impl Fn(u8) -> bool) -> usize {
    let mut clean = 0;
    for chunk in bytes.chunks_exact(16) {
        if chunk.iter().fold(false, |dirty, &b| dirty | stop(b)) {
            break;
        }
        clean += 16;
    }
    clean
}

/// Bytes from `from` up to the first stop byte, one at a time.
#[inline(always)]
fn byte_run(bytes: &[u8], from: usize, stop: &impl Fn(u8) -> bool) -> usize {
    let tail = bytes.get(from..).unwrap_or_default();
    tail.iter().position(|&b| stop(b)).unwrap_or(tail.len())
}

/// Reads the escaped form back (the inverse of [`escape`]); unknown escapes are kept
/// literally.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'n') => {
                out.push(b'\n');
                i += 2;
            }
            Some(b'r') => {
                out.push(b'\r');
                i += 2;
            }
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let value = bytes
                    .get(i + 2..i + 4)
                    .and_then(super::hex::parse_u16)
                    .and_then(|v| u8::try_from(v).ok());
                if let Some(v) = value {
                    out.push(v);
                    i += 4;
                } else {
                    out.push(b'\\');
                    i += 1;
                }
            }
            _ => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_only_is_taken_as_text() {
        assert_eq!(
            ascii_str(b"\n72FA0039\"SIA-DCS\"\r"),
            Some("\n72FA0039\"SIA-DCS\"\r")
        );
        assert_eq!(ascii_str(b""), Some(""));
        for bad in [&b"caf\xe9"[..], b"\xc3\xa9", b"\x80", b"abc\xff"] {
            assert_eq!(ascii_str(bad), None, "{bad:?}");
        }
        for at in 0..70 {
            let mut long = vec![b'A'; 70];
            long[at] = 0x80;
            assert_eq!(ascii_str(&long), None, "high byte at {at}");
            long[at] = 0x7F;
            assert!(ascii_str(&long).is_some());
        }
        assert_eq!(ascii_string(b"plain".to_vec()), "plain");
        assert_eq!(ascii_string(b"caf\xc3\xa9".to_vec()), "café");
        assert_eq!(ascii_string(b"x\xff".to_vec()), "x\u{FFFD}");
    }

    #[test]
    fn encoding_is_decided_per_frame() {
        let k = "Küche".as_bytes();
        assert_eq!(TextEncoding::of([&b"plain"[..], b""]), None);
        assert_eq!(
            TextEncoding::of([&b"plain"[..], k]),
            Some(TextEncoding::Utf8)
        );
        assert_eq!(
            TextEncoding::of([k, &b"K\xfcche"[..]]),
            Some(TextEncoding::Windows1252)
        );
        assert_eq!(TextEncoding::Utf8.decode(k), "Küche");
        assert_eq!(TextEncoding::Windows1252.decode(k), "KÃ¼che");
        assert_eq!(TextEncoding::Windows1252.decode(b"K\xfcche"), "Küche");
        assert_eq!(decode_as(None, b"caf\xe9"), "café");
        assert_eq!(
            serde_json::to_string(&TextEncoding::Windows1252).unwrap(),
            "\"windows-1252\""
        );
        assert_eq!(TextEncoding::Utf8.as_str(), "utf-8");
    }

    #[test]
    fn w1252() {
        assert_eq!(decode_w1252(b"caf\xe9 \x80"), "café €");
        assert!(matches!(decode_w1252(b"plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_round_trip() {
        let raw = b"\n1BC1\"ACK\"\\\x00\xff\r";
        let e = escape(raw);
        assert_eq!(e, "\\n1BC1\"ACK\"\\\\\\x00\\xFF\\r");
        assert_eq!(unescape(&e), raw);
    }

    #[test]
    fn both_scans_stop_at_the_first_stop_byte_wherever_it_is() {
        let stop = |b: u8| b == b'"' || b < 0x20;
        for len in 0..50 {
            for at in 0..=len {
                let mut text = vec![b'a'; len];
                if let Some(b) = text.get_mut(at) {
                    *b = b'"';
                }
                if let Some(b) = text.get_mut(at + 3) {
                    *b = 0x01;
                }
                let first = text.iter().position(|&b| stop(b)).unwrap_or(len);
                assert_eq!(leading_run(&text, stop), first, "len {len}, at {at}");
                assert_eq!(leading_run_short(&text, stop), first, "len {len}, at {at}");
            }
        }
    }

    #[test]
    fn escape_finds_every_byte_in_long_runs() {
        // The chunked scan must catch a byte to escape at any offset of a 16-byte chunk
        // and in the tail.
        for special in [b'\n', b'\\', 0x00, 0x7F, 0xFF] {
            for at in 0..40 {
                let mut raw = vec![b'A'; 40];
                raw[at] = special;
                let e = escape(&raw);
                assert_eq!(
                    e.len(),
                    if special == b'\\' || special == b'\n' {
                        41
                    } else {
                        43
                    }
                );
                assert_eq!(unescape(&e), raw, "special {special:#x} at {at}");
            }
        }
    }
}
