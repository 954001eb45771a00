//! Text in frames: ASCII by rule, Windows-1252 in some extended blocks (§7).
//!
//! The CRC is computed on raw bytes; only presentation decodes them. Decoding W1252 is
//! total, so no byte a panel sends is lost or refused for its encoding.

use std::borrow::Cow;

/// Characters of 0x80–0x9F in Windows-1252; the five undefined positions keep their C1
/// code point so the original byte can still be recovered.
const HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// Decodes bytes as Windows-1252; ASCII (the usual case) is borrowed.
pub fn decode_w1252(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        return Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default());
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
    String::from_utf8(out).unwrap_or_default()
}

fn needs_escape(b: u8) -> bool {
    !(0x20..=0x7E).contains(&b) || b == b'\\'
}

/// Length of the leading run of bytes [`escape`] copies as they are.
fn plain_run(bytes: &[u8]) -> usize {
    leading_run(bytes, needs_escape)
}

/// Length of the leading run of bytes for which `stop` is false. Whole 16-byte chunks are
/// tested with a branch-free fold the compiler turns into vector compares: the strings this
/// scans (frames, encrypted frames of hundreds of hex digits, JSON text) are mostly runs
/// with nothing to stop at.
pub fn leading_run(bytes: &[u8], stop: impl Fn(u8) -> bool) -> usize {
    let mut clean = 0;
    for chunk in bytes.chunks_exact(16) {
        if chunk.iter().fold(false, |dirty, &b| dirty | stop(b)) {
            break;
        }
        clean += 16;
    }
    let tail = bytes.get(clean..).unwrap_or_default();
    clean + tail.iter().position(|&b| stop(b)).unwrap_or(tail.len())
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
