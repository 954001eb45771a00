//! An event's `id`: 32 lower-case hex digits of a 128-bit hash, written into the event
//! itself rather than onto the heap.
//!
//! Every event carries one, so it is made once per event on the hot path. Thirty-two
//! characters are more than a `CompactString` keeps inline (24 bytes), which cost an
//! allocation, a copy and a free per event. The digits live in the value instead. Ids read
//! back from elsewhere that are not of that form (hand-written test journals, anything a
//! future version writes) are kept verbatim, so reading never fails on an id and writing
//! gives back exactly what was read.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// See the module documentation. Compares, hashes, prints and serializes as its text.
#[derive(Clone)]
pub struct EventId(Repr);

#[derive(Clone)]
enum Repr {
    /// 32 lower-case hex digits: always ASCII.
    Hex([u8; 32]),
    Text(CompactString),
}

impl EventId {
    /// `hash` as 32 lower-case hex digits (`{:032x}`).
    pub fn from_hash(hash: u128) -> EventId {
        let mut out = [0u8; 32];
        let (high, low) = out.split_at_mut(16);
        high.copy_from_slice(&hex_digits((hash >> 64) as u64).to_be_bytes());
        low.copy_from_slice(&hex_digits(hash as u64).to_be_bytes());
        EventId(Repr::Hex(out))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Hex(digits) => crate::protocol::text::ascii_str(digits).unwrap_or_default(),
            Repr::Text(text) => text,
        }
    }
}

/// The 16 hex digits of `v`, most significant first when read big-endian: each nibble is
/// spread into a byte of its own and turned into its digit in all bytes at once, a few
/// shifts and adds where a table costs a load and a bounds check per digit.
fn hex_digits(v: u64) -> u128 {
    const LOW_NIBBLES: u128 = 0x0F0F_0F0F_0F0F_0F0F_0F0F_0F0F_0F0F_0F0F;
    const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
    let mut x = u128::from(v);
    x = (x | (x << 32)) & 0x0000_0000_FFFF_FFFF_0000_0000_FFFF_FFFF;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF_0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF_00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & LOW_NIBBLES;
    // 1 in each byte whose nibble is 10 or more: adding 6 carries it into bit 4.
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    // `0` is 0x30; `a` is 0x61, that is 0x30 + 10 + 39.
    x + 0x30 * ONES + 39 * letters
}

impl From<&str> for EventId {
    /// Text in the hash form is stored as digits, so that an id read back equals the one
    /// that was written.
    fn from(text: &str) -> EventId {
        let hex_form = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match text.as_bytes().try_into() {
            Ok(digits) if hex_form => EventId(Repr::Hex(digits)),
            _ => EventId(Repr::Text(CompactString::new(text))),
        }
    }
}

impl From<String> for EventId {
    fn from(text: String) -> EventId {
        EventId::from(text.as_str())
    }
}

impl From<CompactString> for EventId {
    fn from(text: CompactString) -> EventId {
        EventId::from(text.as_str())
    }
}

impl std::ops::Deref for EventId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &EventId) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventId {}

impl std::hash::Hash for EventId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for EventId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<EventId> for &str {
    fn eq(&self, other: &EventId) -> bool {
        *self == other.as_str()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventId, D::Error> {
        // Through `CompactString`, which takes borrowed, owned and escaped strings alike.
        CompactString::deserialize(d).map(EventId::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_form_is_032x() {
        let mut v: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834;
        let spread = (0..1000).map(|_| {
            v = v.rotate_left(17) ^ v.wrapping_mul(0x2545_F491_4F6C_DD1D);
            v
        });
        let edges = [
            0,
            1,
            9,
            10,
            15,
            16,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            u128::MAX,
        ];
        for v in edges.into_iter().chain(spread) {
            let id = EventId::from_hash(v);
            assert_eq!(id.as_str(), format!("{v:032x}"));
            assert!(matches!(id.0, Repr::Hex(_)));
        }
    }

    #[test]
    fn text_round_trips_whatever_its_form() {
        for text in [
            "0123456789abcdeffedcba9876543210",
            // Not the hash form: upper case, too short, too long, other characters.
            "0123456789ABCDEFFEDCBA9876543210",
            "0123456789abcdef",
            "0123456789abcdeffedcba98765432100",
            "BA-L1",
            "",
            "été",
        ] {
            let id = EventId::from(text);
            assert_eq!(id.as_str(), text);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            let back: EventId = serde_json::from_str(&json).unwrap();
            assert_eq!(back, id);
            assert_eq!(back, text);
        }
        assert!(matches!(
            EventId::from("0123456789abcdeffedcba9876543210").0,
            Repr::Hex(_)
        ));
        assert!(matches!(
            EventId::from("0123456789ABCDEFFEDCBA9876543210").0,
            Repr::Text(_)
        ));
    }

    #[test]
    fn equal_text_is_equal_whatever_the_form() {
        let hash = 0xfeed_u128;
        let text = format!("{hash:032x}");
        assert_eq!(EventId::from_hash(hash), EventId::from(text.as_str()));
        let escaped: EventId = serde_json::from_str("\"\\u0062a\"").unwrap();
        assert_eq!(escaped, "ba");
    }
}
