//! Extended data blocks `[X…]` by letter: what the letters mean, which one names the
//! network path, where a JSON block ends, and how a key block is kept out of sight
//! (`docs/protocol/dc09.md` §7, `docs/protocol/dc09-2026.md`).
//!
//! DC-09-2013 defined A H I L M O P R S T V X Y Z; implementations of later editions added
//! C (supervision category), J, K (encryption key) and N (network address), and DC-09-2026
//! added G (network path, an integer) and made J a JSON block. Older panels send `[J…]` as
//! their network path, so a J value is read by its shape ([`JValue::of`]): a JSON object or
//! array is data, never a path; anything else is the path it always was.
//!
//! A K block carries a key. Its value is never given out: [`ExtBlock`] texts show it as
//! `K*` and [`mask_key_blocks`] rewrites it as `[K*]` in a frame's bytes before they are
//! escaped for the journal, the bus or a terminal.
//!
//! Pure: no I/O, no allocation unless there is something to rewrite, panic-free.
//!
//! [`ExtBlock`]: super::dc09::ExtBlock

use std::borrow::Cow;

/// Supervision category (`CDP4`), DC-09-2021 and later.
pub const SUPERVISION_CATEGORY: u8 = b'C';
/// Network path as an integer (`G2`), DC-09-2026.
pub const NETWORK_PATH: u8 = b'G';
/// JSON data in DC-09-2026; the network path in older panels.
pub const JSON_OR_PATH: u8 = b'J';
/// An encryption key (hex): never stored nor shown.
pub const KEY: u8 = b'K';
/// Hardware network address of the path (hex).
pub const NETWORK_ADDRESS: u8 = b'N';
/// Programming data: Windows-1252 whatever the rest of the frame uses.
pub const PROGRAMMING_DATA: u8 = b'P';

/// What a K block's value is replaced with wherever it would be shown.
pub const KEY_MASK: &str = "*";

/// The network path a frame names, by the letter it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPath<'a> {
    /// `[G2]`: DC-09-2026.
    G(&'a str),
    /// `[Jeth0]`: a J block that is not JSON, as older panels send it.
    J(&'a str),
}

impl<'a> NetworkPath<'a> {
    /// The letter a supervision path name starts with.
    pub fn letter(&self) -> &'static str {
        match self {
            NetworkPath::G(_) => "G",
            NetworkPath::J(_) => "J",
        }
    }

    /// The value as sent.
    pub fn value(&self) -> &'a str {
        match self {
            NetworkPath::G(v) | NetworkPath::J(v) => v,
        }
    }

    /// The path named by a frame's extended blocks: the first non-empty G block, else the
    /// first J block that is a path ([`JValue::Path`]). G wins because it is the 2026
    /// meaning; a panel sending both uses J for data.
    pub fn of_blocks(blocks: impl IntoIterator<Item = (u8, &'a [u8])>) -> Option<NetworkPath<'a>> {
        let text = |v: &'a [u8]| std::str::from_utf8(v).ok().filter(|t| !t.is_empty());
        let mut j = None;
        for (id, value) in blocks {
            match id {
                NETWORK_PATH => {
                    if let Some(g) = text(value) {
                        return Some(NetworkPath::G(g));
                    }
                }
                JSON_OR_PATH if j.is_none() && JValue::of(value) == JValue::Path => {
                    j = text(value);
                }
                _ => {}
            }
        }
        j.map(NetworkPath::J)
    }
}

/// A plain string names a J path: what every caller meant before G existed.
impl<'a> From<&'a str> for NetworkPath<'a> {
    fn from(v: &'a str) -> NetworkPath<'a> {
        NetworkPath::J(v)
    }
}

/// What a J block holds, told by its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JValue {
    /// Starts (after blanks) with `{` or `[`: JSON data, whether or not it parses. Such a
    /// value is never a path, so a truncated JSON block cannot raise a supervision path.
    Json,
    /// Anything else: the network path of older panels.
    Path,
}

impl JValue {
    pub fn of(value: &[u8]) -> JValue {
        match value.iter().find(|b| !is_json_blank(**b)) {
            Some(b'{' | b'[') => JValue::Json,
            _ => JValue::Path,
        }
    }
}

fn is_json_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The length of the JSON object or array at the start of `bytes` (blanks before it
/// included), found by counting brackets outside strings; `None` when it does not close.
/// Used to find where a `[J{…}]` block ends, since JSON may hold `]` (an array, or a `]`
/// in a string) and the first `]` is then not the block's end. Brackets are only counted,
/// not matched: whether the text is JSON is for the JSON parser to say.
pub fn json_end(bytes: &[u8]) -> Option<usize> {
    let start = bytes.iter().position(|b| !is_json_blank(*b))?;
    if !matches!(bytes.get(start), Some(b'{' | b'[')) {
        return None;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// `text` without the blanks JSON allows between tokens, so that a JSON block goes into an
/// event on one line (the JSON-lines sinks write one event per line) with its members in
/// the order the panel sent them. Blanks inside strings are kept.
pub fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

/// `raw` with the value of every K block replaced by `*`: `…[K0011…EEFF]…` becomes
/// `…[K*]…`. Hex ciphertext never holds `[K`, so only clear content is touched; a K block
/// without its `]` is masked to the end of the frame, and so is anything else that opens
/// with `[K` (a data block starting with K, a block in a frame too broken to parse):
/// masking too much only hides text, masking too little would show a key. Borrowed when
/// there is nothing to mask.
pub fn mask_key_blocks(raw: &[u8]) -> Cow<'_, [u8]> {
    const OPEN: &[u8] = b"[K";
    let Some(first) = raw.windows(OPEN.len()).position(|w| w == OPEN) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    let mut at = Some(first);
    while let Some(i) = at {
        let (head, tail) = rest.split_at(i + OPEN.len());
        out.extend_from_slice(head);
        out.extend_from_slice(KEY_MASK.as_bytes());
        let end = tail
            .iter()
            .position(|&b| b == b']' || b == b'\r')
            .unwrap_or(tail.len());
        rest = tail.get(end..).unwrap_or_default();
        at = rest.windows(OPEN.len()).position(|w| w == OPEN);
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j_values_by_shape() {
        for json in [&b"{\"a\":1}"[..], b"[1,2]", b"  {", b"{truncated", b"\n["] {
            assert_eq!(JValue::of(json), JValue::Json, "{json:?}");
        }
        for path in [&b"eth0"[..], b"2", b"", b"x{", b"\"quoted\"", b"123"] {
            assert_eq!(JValue::of(path), JValue::Path, "{path:?}");
        }
    }

    #[test]
    fn paths_from_blocks() {
        let blocks: &[(u8, &[u8])] = &[(b'J', b"{\"photo\":1}"), (b'L', b"Hall"), (b'G', b"2")];
        assert_eq!(
            NetworkPath::of_blocks(blocks.iter().copied()),
            Some(NetworkPath::G("2"))
        );
        let blocks: &[(u8, &[u8])] = &[(b'J', b"{\"photo\":1}"), (b'J', b"eth0")];
        assert_eq!(
            NetworkPath::of_blocks(blocks.iter().copied()),
            Some(NetworkPath::J("eth0"))
        );
        let blocks: &[(u8, &[u8])] = &[(b'J', b"[1]"), (b'G', b"")];
        assert_eq!(NetworkPath::of_blocks(blocks.iter().copied()), None);
        assert_eq!(NetworkPath::from("eth0").letter(), "J");
        assert_eq!(NetworkPath::G("7").value(), "7");
    }

    #[test]
    fn json_ends_where_its_brackets_close() {
        assert_eq!(json_end(b"{\"a\":[1,2]}]_12"), Some(11));
        assert_eq!(json_end(b"[[1],[2]]]"), Some(9));
        assert_eq!(json_end(b"{\"s\":\"]}\\\"]\"}]"), Some(13));
        assert_eq!(json_end(b" {}]"), Some(3));
        assert_eq!(json_end(b"{\"open\":["), None);
        assert_eq!(json_end(b"plain]"), None);
        assert_eq!(json_end(b""), None);
    }

    #[test]
    fn minified_json_keeps_order_and_strings() {
        assert_eq!(
            minify_json("{\"b\": 1,\n \"a\": [\"x y\", \"q\\\" z\"]}"),
            "{\"b\":1,\"a\":[\"x y\",\"q\\\" z\"]}"
        );
    }

    #[test]
    fn key_blocks_are_masked() {
        let raw = b"\n0000004D\"XNM\"0001L0#1234[][K00112233445566778899AABBCCDDEEFF][G2]\r";
        let masked = mask_key_blocks(raw);
        assert_eq!(&masked[..], b"\n0000004D\"XNM\"0001L0#1234[][K*][G2]\r");
        let two = mask_key_blocks(b"[#1|NRP][Kab][Lx][Kcd]_12");
        assert_eq!(&two[..], b"[#1|NRP][K*][Lx][K*]_12");
        let open_end = mask_key_blocks(b"[][Kabcdef\r");
        assert_eq!(&open_end[..], b"[][K*\r");
        let after_timestamp = mask_key_blocks(b"]_12:00:05,01-15-2024[Kabcdef\r");
        assert_eq!(&after_timestamp[..], b"]_12:00:05,01-15-2024[K*\r");
        let none = b"\n1234\"SIA-DCS\"0001L0#1234[#1234|NKA1][Lkitchen]\r";
        assert!(matches!(mask_key_blocks(none), Cow::Borrowed(_)));
    }
}
