//! Small hex helpers for the fixed-width fields of DC-09 (CRC, length, ciphertext).
//!
//! DC-09 hex is upper case on the wire from conforming senders, lower case from some
//! (Eaton): parsing accepts both, writing always produces upper case.

const UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Value of one ASCII hex digit, either case.
#[inline]
pub fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses up to 4 hex digits (the CRC and length fields) into a number.
pub fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    // Table lookups with one check at the end, as in `decode_into`: this runs twice for
    // every frame (CRC and length).
    let mut bad = 0u8;
    let value = digits.iter().fold(0u16, |acc, &b| {
        let v = VALUE[usize::from(b)];
        bad |= v;
        (acc << 4) | u16::from(v & 0x0F)
    });
    (bad & 0x80 == 0).then_some(value)
}

/// Writes `v` as four upper-case hex digits.
pub fn write_u16_upper(v: u16, out: &mut [u8; 4]) {
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 12 - 4 * i as u32;
        *slot = UPPER[usize::from(((v >> shift) & 0xF) as u8)];
    }
}

/// Appends `bytes` as upper-case hex to `out`.
pub fn encode_upper_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(UPPER[usize::from(b >> 4)]);
        out.push(UPPER[usize::from(b & 0xF)]);
    }
}

/// Digit values by byte, 0xFF for a non-hex byte: ciphertext is the longest hex a frame
/// carries, and a lookup with one check per pair beats two matches per pair.
static VALUE: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes hex text (either case) into `out`; `None` on an odd length or a non-hex byte.
pub fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    out.reserve(text.len() / 2);
    let mut bad = 0u8;
    for pair in text.chunks_exact(2) {
        if let [hi, lo] = pair {
            let (h, l) = (VALUE[usize::from(*hi)], VALUE[usize::from(*lo)]);
            // Invalid digits have the top bit set; collect it and check once at the end.
            bad |= h | l;
            out.push((h << 4) | (l & 0x0F));
        }
    }
    (bad & 0x80 == 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = [0u8; 4];
        write_u16_upper(0x0A3F, &mut out);
        assert_eq!(&out, b"0A3F");
        assert_eq!(parse_u16(b"0a3F"), Some(0x0A3F));
        assert_eq!(parse_u16(b"0x3F"), None);
        assert_eq!(parse_u16(b"ffff"), Some(0xFFFF));
        assert_eq!(parse_u16(b"7"), Some(7));
        assert_eq!(parse_u16(b""), None);
        assert_eq!(parse_u16(b"12345"), None);
        for bad in [&b"00g0"[..], b"\xff000", b"/", b":", b"@", b"G", b"`", b"g"] {
            assert_eq!(parse_u16(bad), None, "{bad:?}");
        }
        for v in 0..=u16::MAX {
            assert_eq!(parse_u16(format!("{v:04X}").as_bytes()), Some(v));
            assert_eq!(parse_u16(format!("{v:x}").as_bytes()), Some(v));
        }
        let mut v = Vec::new();
        encode_upper_into(&[0xde, 0xad], &mut v);
        assert_eq!(v, b"DEAD");
        let mut back = Vec::new();
        assert!(decode_into(b"deAD", &mut back).is_some());
        assert_eq!(back, [0xde, 0xad]);
        assert!(decode_into(b"abc", &mut back).is_none());
        for bad in [
            &b"0g"[..],
            b"g0",
            b"\xff0",
            b"0 ",
            b"/0",
            b":0",
            b"@0",
            b"G0",
            b"`0",
        ] {
            assert!(decode_into(bad, &mut Vec::new()).is_none(), "{bad:?}");
        }
    }
}
