//! SIA DC-03 data, as carried between `[` and `]` of a DC-09 `SIA-DCS` frame.
//!
//! Implements `docs/protocol/sia-dcs.md` §1–§2 (blocks, modifiers, events, caret annotations,
//! X-SIA tail) with the payload variants of `docs/protocol/dc09.md` §6. The frame layer cuts the
//! data block; this module turns `#1234|Nri1/BA01` into an account and a list of events, each carrying the
//! modifiers in effect when it was reported. Classifying codes is [`super::codes`]' job; an
//! event code that is not in the table is still an event.
//!
//! Contract: pure (no I/O, no clock, no logging), panic-free on any `&str`, zero-copy (every
//! `&str` in the output is a sub-slice of the input), and bounded: at most [`MAX_EVENTS`]
//! events, [`MAX_MODIFIERS`] distinct modifiers in effect, [`MAX_BLOCKS`] blocks and
//! [`MAX_ELEMENTS`] elements, so the allocation is linear in the input with a small constant.
//!
//! Leniency rule: senders differ (prefixes, missing `/`, vendor tails), so the parser accepts
//! what it can and keeps what it does not understand ([`SiaData::extra_fields`],
//! [`SiaData::unparsed`]) — but it fails where going on could silently swallow an event: an
//! unterminated caret text would eat the rest of the block, so it is an error (the receiver
//! answers DUH and the panel retries or falls back) rather than an acknowledged loss.

use super::codes::{self, SiaCodeInfo};
use nom::character::complete::char;
use nom::error::{Error, ErrorKind};
use nom::{IResult, Parser};
use smallvec::SmallVec;

/// Most events accepted in one data block. Real panels send one, sometimes a handful; 64
/// leaves room for batch senders while bounding what a hostile frame can make us allocate.
pub const MAX_EVENTS: usize = 64;
/// Most distinct modifiers in effect at once (each event carries a copy of them, so this
/// bounds the per-event allocation). DC-03 defines about ten.
pub const MAX_MODIFIERS: usize = 16;
/// Most `|`-separated blocks.
pub const MAX_BLOCKS: usize = 32;
/// Most elements (modifiers, events, caret texts, unparsed pieces) over all blocks.
pub const MAX_ELEMENTS: usize = 256;
/// Longest account accepted in the `#` block (DC-09 allows up to 16 hex characters).
pub const MAX_ACCOUNT_LEN: usize = 16;

/// The parsed data block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SiaData<'a> {
    /// The account of the `#` block, or of a leading bare-digits block (`5004|N…`). It may
    /// differ from the frame header's account (`docs/protocol/dc09.md` §6); routing uses the
    /// header's.
    pub account: Option<&'a str>,
    /// Events of every `N` and `O` block, in order.
    /// Inline room for one: most data blocks carry a single event.
    pub events: SmallVec<[SiaEvent<'a>; 1]>,
    /// Bodies of `A` (ASCII text) blocks, and caret texts not attached to any element.
    pub texts: Vec<&'a str>,
    /// Whole blocks that are neither account, event nor text (AlphaVision's `0` in
    /// `#0001|0|NRP`, DC-03 `X`/`L` blocks), function character included.
    pub extra_fields: Vec<&'a str>,
    /// Pieces of `N`/`O` blocks that are neither modifier, event nor caret text (up to the
    /// next `/`). Kept so that nothing is dropped silently; none of them can be an event.
    pub unparsed: Vec<&'a str>,
}

/// One modifier (`ri1`, `id22`, `ti16:02:15`): two lower-case letters and a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiaModifier<'a> {
    /// Two lower-case letters (`ri`, `id`, `ti`, `da`, `pi`, `ai`, `ph`, or unknown ones).
    pub key: &'a str,
    /// Digits, `:` and `-`; may be empty.
    pub value: &'a str,
    /// Caret text right after the modifier (Jablotron's area name in `ri01^TOTAL^`).
    pub name: Option<&'a str>,
}

/// One event: a two-letter code and its address, with the modifiers in effect.
///
/// `area`, `user`, `time`, `date` and `peripheral` are the values of `ri`, `id`, `ti`, `da`
/// and `pi` (`None` when absent or empty); `modifiers` has all of them, unknown ones
/// included, with their caret names, in order of first appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiaEvent<'a> {
    /// `true` for an `N` (new event) block, `false` for `O` (old, already reported).
    pub new: bool,
    /// Two upper-case letters; look it up with [`SiaEvent::info`].
    pub code: &'a str,
    /// Digits after the code (`01` in `BA01`), `None` when there are none.
    pub address: Option<&'a str>,
    pub area: Option<&'a str>,
    pub user: Option<&'a str>,
    pub time: Option<&'a str>,
    pub date: Option<&'a str>,
    pub peripheral: Option<&'a str>,
    /// Inline room for three (`ri`, `id`, `ti` together are common), so a usual event
    /// allocates nothing.
    pub modifiers: SmallVec<[SiaModifier<'a>; 3]>,
    /// Caret texts right after the event (`CL0^VX FRONTE ^` gives `VX FRONTE `).
    pub names: Vec<&'a str>,
    /// What follows the address up to the next element: `NM`, or the Bosch X-SIA
    /// `*'TEXT'NM`. See [`SiaEvent::x_sia_text`].
    pub tail: Option<&'a str>,
}

impl<'a> SiaEvent<'a> {
    /// The code's table entry, if the code is known.
    pub fn info(&self) -> Option<&'static SiaCodeInfo> {
        codes::sia_code(self.code)
    }

    /// The modifier in effect with this key.
    pub fn modifier(&self, key: &str) -> Option<&SiaModifier<'a>> {
        self.modifiers.iter().find(|m| m.key == key)
    }

    /// Caret name given to the area (`ri01^TOTAL^`).
    pub fn area_name(&self) -> Option<&'a str> {
        self.modifier("ri").and_then(|m| m.name)
    }

    /// Caret name given to the user (`id3^JOHN^`).
    pub fn user_name(&self) -> Option<&'a str> {
        self.modifier("id").and_then(|m| m.name)
    }

    /// The text between the quotes of an X-SIA tail `*'TEXT'NM` (Bosch D6600 §3.2.30).
    pub fn x_sia_text(&self) -> Option<&'a str> {
        let quoted = self.tail?.strip_prefix("*'")?;
        let end = quoted.find('\'')?;
        quoted.get(..end)
    }
}

/// Why a data block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SiaError {
    #[error("empty SIA data")]
    Empty,
    #[error("no N, O or A block in SIA data")]
    NoEventBlock,
    #[error("invalid account in SIA data (1 to {MAX_ACCOUNT_LEN} letters or digits)")]
    InvalidAccount,
    #[error("caret text opened at byte {offset} is never closed")]
    UnbalancedCaret { offset: usize },
    #[error("more than {limit} events in SIA data")]
    TooManyEvents { limit: usize },
    #[error("more than {limit} distinct modifiers in effect")]
    TooManyModifiers { limit: usize },
    #[error("more than {limit} blocks in SIA data")]
    TooManyBlocks { limit: usize },
    #[error("more than {limit} elements in SIA data")]
    TooManyElements { limit: usize },
    /// A sub-parser refused input its caller had checked; never expected, kept so that a
    /// bug is an error, not a panic.
    #[error("malformed SIA data at byte {offset}")]
    Malformed { offset: usize },
}

/// Parse the SIA DC-03 data of a `SIA-DCS` frame: the text between `[` and `]`.
///
/// Blocks are separated by `|` (`docs/protocol/sia-dcs.md` §1): an optional account block
/// (`#1234`, or bare digits first as in `5004|N…`), then `N`/`O` event blocks, `A` text blocks and
/// anything else (kept in `extra_fields`). Empty blocks (`|N…`) are skipped. At least one
/// `N`, `O` or `A` block is required; an `N` block with no event is accepted.
pub fn parse_sia_data(data: &str) -> Result<SiaData<'_>, SiaError> {
    let mut out = SiaData::default();
    parse_sia_data_into(data, &mut out)?;
    Ok(out)
}

/// [`parse_sia_data`] into `out` (which should be empty), for a caller that keeps the
/// result where it is: the parsed data holds its first event inline and is large enough
/// that returning it by value would copy it.
pub fn parse_sia_data_into<'a>(data: &'a str, out: &mut SiaData<'a>) -> Result<(), SiaError> {
    if data.is_empty() {
        return Err(SiaError::Empty);
    }
    let mut p = SiaParser {
        data,
        out,
        elements: 0,
    };
    let mut rest = data;
    let mut blocks = 0usize;
    let mut seen_content = false;
    let mut seen_event_block = false;
    loop {
        blocks = blocks.saturating_add(1);
        if blocks > MAX_BLOCKS {
            return Err(SiaError::TooManyBlocks { limit: MAX_BLOCKS });
        }
        // Only the first non-empty block may be the account.
        let first_block = !seen_content;
        seen_content |= !(rest.is_empty() || rest.starts_with('|'));
        rest = match rest.chars().next() {
            None | Some('|') => rest,
            Some('#') if first_block => {
                let (r, acct) = account_block(rest).map_err(|_| p.malformed(rest))?;
                if !acct.is_empty() {
                    if !is_account(acct) {
                        return Err(SiaError::InvalidAccount);
                    }
                    p.out.account = Some(acct);
                }
                r
            }
            Some(f @ ('N' | 'O')) => {
                seen_event_block = true;
                let body = rest.get(1..).unwrap_or_default();
                p.event_block(f == 'N', body)?
            }
            Some('A') => {
                seen_event_block = true;
                let (r, text) = text_block(rest).map_err(|_| p.malformed(rest))?;
                p.out.texts.push(text);
                r
            }
            Some(_) => {
                let (r, block) = other_block(rest).map_err(|_| p.malformed(rest))?;
                if first_block && is_bare_account(block) {
                    p.out.account = Some(block);
                } else {
                    p.out.extra_fields.push(block);
                }
                r
            }
        };
        // Every block parser stops at `|` or at the end, so this is the block separator.
        match rest.strip_prefix('|') {
            Some(r) => rest = r,
            None => break,
        }
    }
    if !seen_event_block {
        return Err(SiaError::NoEventBlock);
    }
    Ok(())
}

/// Parser state across blocks: the output and the element budget.
struct SiaParser<'a, 'o> {
    data: &'a str,
    out: &'o mut SiaData<'a>,
    elements: usize,
}

/// What the previous element was, to attach a following caret text to it.
#[derive(Clone, Copy)]
enum Last {
    Nothing,
    Modifier(usize),
    Event,
}

impl<'a> SiaParser<'a, '_> {
    fn malformed(&self, rest: &str) -> SiaError {
        SiaError::Malformed {
            offset: self.data.len().saturating_sub(rest.len()),
        }
    }

    fn count_element(&mut self) -> Result<(), SiaError> {
        self.elements = self.elements.saturating_add(1);
        if self.elements > MAX_ELEMENTS {
            return Err(SiaError::TooManyElements {
                limit: MAX_ELEMENTS,
            });
        }
        Ok(())
    }

    /// The body of an `N`/`O` block (function character already consumed): elements separated
    /// by `/`, where a modifier may run straight into the next modifier or event. Modifiers
    /// apply to the following events of the same block until replaced
    /// (`docs/protocol/sia-dcs.md` §2).
    /// Returns the input from the `|` that ends the block (or the empty end).
    fn event_block(&mut self, new: bool, body: &'a str) -> Result<&'a str, SiaError> {
        // The modifiers in effect live on the stack (no allocation per block); each event
        // copies the used part into its own list.
        let mut slots = [SiaModifier {
            key: "",
            value: "",
            name: None,
        }; MAX_MODIFIERS];
        let mut used = 0usize;
        let mut last = Last::Nothing;
        let mut rest = body;
        loop {
            let mut chars = rest.chars();
            let (c0, c1) = (chars.next(), chars.next());
            match (c0, c1) {
                (None, _) | (Some('|'), _) => return Ok(rest),
                (Some('/'), _) => {
                    rest = chars_after(rest, 1);
                    last = Last::Nothing;
                }
                (Some('^'), _) => {
                    let offset = self.data.len().saturating_sub(rest.len());
                    let (r, text) =
                        caret_text(rest).map_err(|_| SiaError::UnbalancedCaret { offset })?;
                    self.count_element()?;
                    match last {
                        Last::Modifier(i) => match slots.get_mut(i) {
                            // A second caret after the same modifier is kept as stray text.
                            Some(m) if m.name.is_none() => m.name = Some(text),
                            _ => self.out.texts.push(text),
                        },
                        Last::Event => match self.out.events.last_mut() {
                            Some(e) => e.names.push(text),
                            None => self.out.texts.push(text),
                        },
                        Last::Nothing => self.out.texts.push(text),
                    }
                    rest = r;
                }
                (Some(a), Some(b)) if a.is_ascii_lowercase() && b.is_ascii_lowercase() => {
                    let (r, (key, value)) = modifier(rest).map_err(|_| self.malformed(rest))?;
                    self.count_element()?;
                    let modifier = SiaModifier {
                        key,
                        value,
                        name: None,
                    };
                    let context = slots.get(..used).unwrap_or_default();
                    let index = match context.iter().position(|m| m.key == key) {
                        Some(i) => i,
                        None if used < MAX_MODIFIERS => {
                            used = used.saturating_add(1);
                            used.saturating_sub(1)
                        }
                        None => {
                            return Err(SiaError::TooManyModifiers {
                                limit: MAX_MODIFIERS,
                            })
                        }
                    };
                    if let Some(slot) = slots.get_mut(index) {
                        *slot = modifier;
                    }
                    last = Last::Modifier(index);
                    rest = r;
                }
                (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                    let (r, (code, address, tail)) =
                        event(rest).map_err(|_| self.malformed(rest))?;
                    self.count_element()?;
                    if self.out.events.len() >= MAX_EVENTS {
                        return Err(SiaError::TooManyEvents { limit: MAX_EVENTS });
                    }
                    let context = slots.get(..used).unwrap_or_default();
                    let value_of = |key: &str| {
                        context
                            .iter()
                            .find(|m| m.key == key)
                            .map(|m| m.value)
                            .filter(|v| !v.is_empty())
                    };
                    self.out.events.push(SiaEvent {
                        new,
                        code,
                        address: non_empty(address),
                        area: value_of("ri"),
                        user: value_of("id"),
                        time: value_of("ti"),
                        date: value_of("da"),
                        peripheral: value_of("pi"),
                        modifiers: SmallVec::from_slice(context),
                        names: Vec::new(),
                        tail: non_empty(tail),
                    });
                    last = Last::Event;
                    rest = r;
                }
                _ => {
                    let (r, piece) = unparsed(rest).map_err(|_| self.malformed(rest))?;
                    self.count_element()?;
                    self.out.unparsed.push(piece);
                    last = Last::Nothing;
                    rest = r;
                }
            }
        }
    }
}

type Res<'a, O> = IResult<&'a str, O>;

// Byte-level primitives. nom's `take_while` family on `&str` decodes chars; every predicate
// here is ASCII-only, so scanning bytes gives the same split (always on a char boundary) at a
// fraction of the cost, which matters in a ≤ 500 ns frame budget.

/// The longest prefix of bytes satisfying `pred` (which must reject non-ASCII bytes):
/// returns `(rest, prefix)`, never fails.
pub(crate) fn ascii_while(i: &str, pred: impl Fn(u8) -> bool) -> (&str, &str) {
    let n = i.bytes().take_while(|&b| b.is_ascii() && pred(b)).count();
    match i.split_at_checked(n) {
        Some((taken, rest)) => (rest, taken),
        None => (i, ""),
    }
}

/// Exactly `n` bytes satisfying `pred` (ASCII-only), or a nom error.
pub(crate) fn ascii_exact(i: &str, n: usize, pred: impl Fn(u8) -> bool) -> Res<'_, &str> {
    let ok = i
        .as_bytes()
        .get(..n)
        .is_some_and(|h| h.iter().all(|&b| b.is_ascii() && pred(b)));
    match i.split_at_checked(n) {
        Some((taken, rest)) if ok => Ok((rest, taken)),
        _ => Err(nom::Err::Error(Error::new(i, ErrorKind::TakeWhileMN))),
    }
}

/// Everything before the first `stop` byte (ASCII), `(rest, prefix)`; never fails. A plain
/// byte scan: blocks are a few bytes long, shorter than `str::find`'s set-up.
fn till(i: &str, stop: u8) -> (&str, &str) {
    let n = i.bytes().position(|b| b == stop).unwrap_or(i.len());
    match i.split_at_checked(n) {
        Some((taken, rest)) => (rest, taken),
        None => (i, ""),
    }
}

/// `#` + account, up to the block separator.
fn account_block(i: &str) -> Res<'_, &str> {
    let (i, _) = char('#').parse(i)?;
    Ok(till(i, b'|'))
}

/// `A` + free text, up to the block separator.
fn text_block(i: &str) -> Res<'_, &str> {
    let (i, _) = char('A').parse(i)?;
    Ok(till(i, b'|'))
}

/// Any other block, whole (function character included).
fn other_block(i: &str) -> Res<'_, &str> {
    Ok(till(i, b'|'))
}

/// Modifier: two lower-case letters and a value of digits, `:` and `-` (`ti16:02:15`,
/// `da04-22-94`). The value ends at anything else, so `ri1CL0` yields `ri` = `1`.
fn modifier(i: &str) -> Res<'_, (&str, &str)> {
    (modifier_key, modifier_value).parse(i)
}

fn modifier_key(i: &str) -> Res<'_, &str> {
    ascii_exact(i, 2, |b| b.is_ascii_lowercase())
}

fn modifier_value(i: &str) -> Res<'_, &str> {
    Ok(ascii_while(i, |b| {
        b.is_ascii_digit() || b == b':' || b == b'-'
    }))
}

/// Event: code, address, tail.
fn event(i: &str) -> Res<'_, (&str, &str, &str)> {
    (event_code, address, tail).parse(i)
}

/// Two upper-case letters.
fn event_code(i: &str) -> Res<'_, &str> {
    ascii_exact(i, 2, |b| b.is_ascii_uppercase())
}

/// Decimal digits after the code; may be empty (`RP`, `CL`).
fn address(i: &str) -> Res<'_, &str> {
    Ok(ascii_while(i, |b| b.is_ascii_digit()))
}

/// `^text^`: a name or annotation after an element.
fn caret_text(i: &str) -> Res<'_, &str> {
    let (i, _) = char('^').parse(i)?;
    let (i, text) = till(i, b'^');
    let (i, _) = char('^').parse(i)?;
    Ok((i, text))
}

/// What follows an address up to the next element: `/`, `^`, `|`, or a lower-case letter
/// (a modifier written without `/`). A Bosch X-SIA text `*'…'` is skipped whole, so that a
/// `/` or lower-case letter inside the quotes does not end the tail — but only if its closing
/// quote is in the same block, otherwise the quote is ordinary text (never swallow a block).
fn tail(i: &str) -> Res<'_, &str> {
    let bytes = i.as_bytes();
    let mut pos = 0usize;
    while let Some(&b) = bytes.get(pos) {
        if b == b'*' && bytes.get(pos.saturating_add(1)) == Some(&b'\'') {
            let text_start = pos.saturating_add(2);
            let closing = bytes
                .get(text_start..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&c| c != b'|')
                .position(|&c| c == b'\'');
            if let Some(n) = closing {
                pos = text_start.saturating_add(n).saturating_add(1);
                continue;
            }
        }
        if matches!(b, b'/' | b'^' | b'|') || b.is_ascii_lowercase() {
            break;
        }
        pos = pos.saturating_add(1);
    }
    // `pos` only ever stops on an ASCII byte or the end, both char boundaries.
    match i.split_at_checked(pos) {
        Some((tail, rest)) => Ok((rest, tail)),
        None => Ok(("", i)),
    }
}

/// A piece that is not an element, up to the next `/` or block end.
fn unparsed(i: &str) -> Res<'_, &str> {
    let n = i.find(['/', '|']).unwrap_or(i.len());
    match i.split_at_checked(n) {
        Some((piece, rest)) if !piece.is_empty() => Ok((rest, piece)),
        _ => Err(nom::Err::Error(Error::new(i, ErrorKind::TakeTill1))),
    }
}

/// The rest of `s` after its first `n` characters.
fn chars_after(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => s.get(i..).unwrap_or_default(),
        None => "",
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// An account as written in a `#` block: letters and digits (hex in practice), at most
/// [`MAX_ACCOUNT_LEN`]. Shared with the Contact ID parser.
pub(crate) fn is_account(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ACCOUNT_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A leading block without `#` taken as the account (`5004|N…`, `docs/protocol/dc09.md` §6): hex
/// digits starting with a decimal digit, at least three (so AlphaVision's one-character `0`
/// field is never mistaken for one, and an `A`/`B`… block is never an account).
fn is_bare_account(s: &str) -> bool {
    s.len() >= 3
        && s.len() <= MAX_ACCOUNT_LEN
        && s.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(data: &str) -> SiaEvent<'_> {
        let d = parse_sia_data(data).unwrap();
        assert_eq!(d.events.len(), 1, "{data}: {d:?}");
        d.events.into_iter().next().unwrap()
    }

    /// Every `&str` of the output lies inside the input (zero-copy, no invented text).
    fn assert_borrowed(input: &str, d: &SiaData<'_>) {
        let range = input.as_bytes().as_ptr_range();
        let inside = |s: &str| {
            let r = s.as_bytes().as_ptr_range();
            range.start <= r.start && r.end <= range.end
        };
        let mut all: Vec<&str> = Vec::new();
        all.extend(d.account);
        all.extend(d.texts.iter().copied());
        all.extend(d.extra_fields.iter().copied());
        all.extend(d.unparsed.iter().copied());
        for e in &d.events {
            all.push(e.code);
            all.extend(
                [
                    e.address,
                    e.area,
                    e.user,
                    e.time,
                    e.date,
                    e.peripheral,
                    e.tail,
                ]
                .into_iter()
                .flatten(),
            );
            all.extend(e.names.iter().copied());
            for m in &e.modifiers {
                all.push(m.key);
                all.push(m.value);
                all.extend(m.name);
            }
        }
        for s in all {
            assert!(inside(s), "{s:?} not inside {input:?}");
        }
        assert!(d.events.len() <= MAX_EVENTS);
    }

    #[test]
    fn typical_payloads() {
        // docs/protocol/sia-dcs.md §1, "Typical DC-09 payloads".
        let d = parse_sia_data("#1234|Nri1/BA01").unwrap();
        assert_eq!(d.account, Some("1234"));
        let e = &d.events[0];
        assert!(e.new);
        assert_eq!((e.code, e.address, e.area), ("BA", Some("01"), Some("1")));
        assert_eq!(e.user, None);
        assert_eq!(e.info().unwrap().description, "Burglary Alarm");

        let d = parse_sia_data("#080027E62A64|NHB0003").unwrap();
        assert_eq!(d.account, Some("080027E62A64"));
        assert_eq!(
            (d.events[0].code, d.events[0].address),
            ("HB", Some("0003"))
        );

        let e = one("#0000|Nri0/RP0000");
        assert_eq!((e.code, e.address, e.area), ("RP", Some("0000"), Some("0")));

        let e = one("#22334455|NCQ1");
        assert_eq!((e.code, e.address, e.area), ("CQ", Some("1"), None));

        let d = parse_sia_data("#1234|NRR|Atest").unwrap();
        assert_eq!(d.events.len(), 1);
        assert_eq!((d.events[0].code, d.events[0].address), ("RR", None));
        assert_eq!(d.texts, vec!["test"]);
    }

    #[test]
    fn jablotron_caret_names() {
        let d = parse_sia_data("#7878|Nri01^TOTAL^/LX901^centrale d'alarme JA-106K(R)^").unwrap();
        assert_eq!(d.account, Some("7878"));
        let e = &d.events[0];
        assert_eq!((e.code, e.address, e.area), ("LX", Some("901"), Some("01")));
        assert_eq!(e.area_name(), Some("TOTAL"));
        assert_eq!(e.names, vec!["centrale d'alarme JA-106K(R)"]);
        assert!(d.texts.is_empty() && d.unparsed.is_empty());
    }

    #[test]
    fn galaxy_missing_slash() {
        let e = one("#123456|Nri1CL0^VX FRONTE ^");
        assert_eq!((e.code, e.address, e.area), ("CL", Some("0"), Some("1")));
        assert_eq!(e.names, vec!["VX FRONTE "]);
        let e = one("Nri0KR1");
        assert_eq!((e.code, e.address, e.area), ("KR", Some("1"), Some("0")));
    }

    #[test]
    fn prefixes() {
        // docs/protocol/sia-dcs.md §1 and docs/protocol/dc09.md §6.
        let d = parse_sia_data("|Nri1/CL501").unwrap();
        assert_eq!(d.account, None);
        assert_eq!((d.events[0].code, d.events[0].address), ("CL", Some("501")));

        let d = parse_sia_data("Nri1/WA000").unwrap();
        assert_eq!(d.account, None);
        assert_eq!(d.events[0].code, "WA");

        let d = parse_sia_data("5004|Nri1HA1").unwrap();
        assert_eq!(d.account, Some("5004"));
        assert_eq!(
            (d.events[0].code, d.events[0].address, d.events[0].area),
            ("HA", Some("1"), Some("1"))
        );

        let d = parse_sia_data("#0001|0|NRP").unwrap();
        assert_eq!(d.account, Some("0001"));
        assert_eq!(d.extra_fields, vec!["0"]);
        assert_eq!((d.events[0].code, d.events[0].address), ("RP", None));

        // Empty `#` block: no account, not an error.
        let d = parse_sia_data("#|NRP").unwrap();
        assert_eq!(d.account, None);
        // Only the first block can be the account.
        let d = parse_sia_data("N|#1234|5678").unwrap();
        assert_eq!(d.account, None);
        assert_eq!(d.extra_fields, vec!["#1234", "5678"]);
        let d = parse_sia_data("||#1234|NRP").unwrap();
        assert_eq!(d.account, Some("1234"));
    }

    #[test]
    fn modifiers_back_to_back_and_switching() {
        let d = parse_sia_data("#1234|Nda04-22-94ti16:02:15/id22/CL/PA31").unwrap();
        assert_eq!(d.events.len(), 2);
        for e in &d.events {
            assert_eq!(e.date, Some("04-22-94"));
            assert_eq!(e.time, Some("16:02:15"));
            assert_eq!(e.user, Some("22"));
        }
        assert_eq!((d.events[0].code, d.events[0].address), ("CL", None));
        assert_eq!((d.events[1].code, d.events[1].address), ("PA", Some("31")));

        let e = one("Nti19:44/id1/ri4/RP");
        assert_eq!(
            (e.time, e.user, e.area),
            (Some("19:44"), Some("1"), Some("4"))
        );
        assert_eq!(e.modifiers.len(), 3);
        assert_eq!(e.modifiers[0].key, "ti");

        let d = parse_sia_data("#1|Nri1/BA01/BA02/ri2/FA05").unwrap();
        let got: Vec<_> = d
            .events
            .iter()
            .map(|e| (e.code, e.address.unwrap(), e.area.unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![("BA", "01", "1"), ("BA", "02", "1"), ("FA", "05", "2")]
        );
        // Replacing a modifier keeps one entry per key.
        assert_eq!(d.events[2].modifiers.len(), 1);

        // Galaxy level 2 and Scantronic SIA2 shapes.
        let e = one("#123456|Nti12:34/ri01/pi3/BA0001");
        assert_eq!(e.peripheral, Some("3"));
        let e = one("#123456|Nid048/ri04/OP01");
        assert_eq!((e.user, e.area, e.code), (Some("048"), Some("04"), "OP"));
        // Unknown modifiers are kept.
        let e = one("Nlm5va7/ai3ph0612/BA1");
        let keys: Vec<_> = e.modifiers.iter().map(|m| (m.key, m.value)).collect();
        assert_eq!(
            keys,
            vec![("lm", "5"), ("va", "7"), ("ai", "3"), ("ph", "0612")]
        );
    }

    #[test]
    fn event_addresses() {
        for (data, code, addr) in [
            ("NBA01", "BA", Some("01")),
            ("NRP0000", "RP", Some("0000")),
            ("NNL4", "NL", Some("4")),
            ("NHA048", "HA", Some("048")),
            ("NRP", "RP", None),
            ("NCL", "CL", None),
            ("NQQ12", "QQ", Some("12")),
        ] {
            let e = one(data);
            assert_eq!((e.code, e.address), (code, addr), "{data}");
        }
        // A code missing from the table is still an event.
        assert!(one("NQQ12").info().is_none());
    }

    #[test]
    fn x_sia_tail() {
        let e = one("#1234|Nri1/OP001NM");
        assert_eq!((e.code, e.address, e.tail), ("OP", Some("001"), Some("NM")));
        assert_eq!(e.x_sia_text(), None);

        let e = one("#1234|Nri1/BA001*'FRONT DOOR'NM");
        assert_eq!(e.tail, Some("*'FRONT DOOR'NM"));
        assert_eq!(e.x_sia_text(), Some("FRONT DOOR"));

        // `/`, `^` and lower case inside the quotes do not end the tail.
        // Outside an event the quote means nothing: the pieces are kept as unparsed.
        let d = parse_sia_data("N BA001*'a/b ^c'NM/ri2/BA2").unwrap();
        assert_eq!(d.unparsed, vec![" BA001*'a", "b ^c'NM"]);
        assert_eq!(d.events.len(), 1);
        let d = parse_sia_data("NBA001*'a/b ^c'NM/ri2/BA2").unwrap();
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[0].x_sia_text(), Some("a/b ^c"));
        assert_eq!(d.events[1].area, Some("2"));

        // An unclosed quote is plain text: the next element survives.
        let d = parse_sia_data("NBA001*'abc/BA2").unwrap();
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[0].tail, Some("*'"));
        assert_eq!(d.events[1].modifier("ab").map(|m| m.value), Some(""));
        assert_eq!(d.unparsed, vec!["c"]);
    }

    #[test]
    fn old_blocks_and_several_blocks() {
        let d = parse_sia_data("#1234|Ori1/BA01").unwrap();
        assert!(!d.events[0].new);
        let d = parse_sia_data("#1234|Nri1/BA01|Ori2/BR01|Aname|X123").unwrap();
        assert_eq!(d.events.len(), 2);
        assert!(d.events[0].new && !d.events[1].new);
        // Modifiers do not leak from one block to the next.
        assert_eq!(d.events[1].area, Some("2"));
        assert_eq!(d.texts, vec!["name"]);
        assert_eq!(d.extra_fields, vec!["X123"]);
        let d = parse_sia_data("#1234|Nri1/BA01|NBA02").unwrap();
        assert_eq!(d.events[1].area, None);
    }

    #[test]
    fn empty_event_blocks() {
        let d = parse_sia_data("#1234|N").unwrap();
        assert!(d.events.is_empty());
        let d = parse_sia_data("#1234|Nri1/ti12:00").unwrap();
        assert!(d.events.is_empty());
        let d = parse_sia_data("#1234|Atext only").unwrap();
        assert!(d.events.is_empty());
        assert_eq!(d.texts, vec!["text only"]);
        let d = parse_sia_data("N//BA1//").unwrap();
        assert_eq!(d.events.len(), 1);
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(parse_sia_data(""), Err(SiaError::Empty));
        assert_eq!(parse_sia_data("#"), Err(SiaError::NoEventBlock));
        assert_eq!(parse_sia_data("#1234"), Err(SiaError::NoEventBlock));
        assert_eq!(parse_sia_data("#1234|"), Err(SiaError::NoEventBlock));
        assert_eq!(parse_sia_data("|||"), Err(SiaError::NoEventBlock));
        assert_eq!(parse_sia_data("#12 34|NBA1"), Err(SiaError::InvalidAccount));
        assert_eq!(
            parse_sia_data("#12345678901234567|NBA1"),
            Err(SiaError::InvalidAccount)
        );
        assert_eq!(
            parse_sia_data("#1234|Nri1^TOTAL/BA01"),
            Err(SiaError::UnbalancedCaret { offset: 10 })
        );
        assert_eq!(
            parse_sia_data("NBA1^x^^"),
            Err(SiaError::UnbalancedCaret { offset: 7 })
        );
        // Non-ASCII: in names it is data; elsewhere it is unparsed, never a panic.
        let d = parse_sia_data("#1234|Nri1^Entrée^/BA01^Façade é^/é/ÉÉ01/rié").unwrap();
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.events[0].area_name(), Some("Entrée"));
        assert_eq!(d.events[0].names, vec!["Façade é"]);
        assert_eq!(d.unparsed, vec!["é", "ÉÉ01", "é"]);
        let d = parse_sia_data("N\u{0}\u{7f}/B/b/1BA").unwrap();
        assert!(d.events.is_empty());
        assert_eq!(d.unparsed.len(), 4);
    }

    #[test]
    fn limits() {
        let many = format!("#1|N{}", "BA1/".repeat(MAX_EVENTS));
        assert_eq!(parse_sia_data(&many).unwrap().events.len(), MAX_EVENTS);
        let too_many = format!("#1|N{}", "BA1/".repeat(MAX_EVENTS + 1));
        assert_eq!(
            parse_sia_data(&too_many),
            Err(SiaError::TooManyEvents { limit: MAX_EVENTS })
        );
        let mods: String = ('a'..='z')
            .take(MAX_MODIFIERS + 1)
            .map(|c| format!("{c}a1"))
            .collect();
        assert_eq!(
            parse_sia_data(&format!("N{mods}BA1")),
            Err(SiaError::TooManyModifiers {
                limit: MAX_MODIFIERS
            })
        );
        assert_eq!(
            parse_sia_data(&"|".repeat(MAX_BLOCKS)),
            Err(SiaError::TooManyBlocks { limit: MAX_BLOCKS })
        );
        assert_eq!(
            parse_sia_data(&format!("N{}", "x/".repeat(MAX_ELEMENTS + 1))),
            Err(SiaError::TooManyElements {
                limit: MAX_ELEMENTS
            })
        );
        // Huge input: one enormous text block is fine and borrowed, not copied.
        let huge = format!("#1|NBA1|A{}", "x".repeat(1 << 20));
        let d = parse_sia_data(&huge).unwrap();
        assert_eq!(d.texts[0].len(), 1 << 20);
        assert_borrowed(&huge, &d);
        let huge = format!("N{}", "1".repeat(1 << 20));
        assert_eq!(parse_sia_data(&huge).unwrap().unparsed.len(), 1);
    }

    #[test]
    fn outputs_borrow_the_input() {
        for data in [
            "#7878|Nri01^TOTAL^/LX901^centrale d'alarme JA-106K(R)^",
            "#1234|Nda04-22-94ti16:02:15/id22/CL/PA31|Atest|X1",
            "#0001|0|NRP",
            "NBA001*'a/b ^c'NM/ri2/BA2^n^^m^/é",
        ] {
            let d = parse_sia_data(data).unwrap();
            assert_borrowed(data, &d);
        }
    }

    /// Strings made of the characters that matter to the grammar, to reach deep states.
    fn sia_like() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("#".to_string()),
                Just("|".to_string()),
                Just("/".to_string()),
                Just("^".to_string()),
                Just("*'".to_string()),
                Just("'".to_string()),
                Just("N".to_string()),
                Just("O".to_string()),
                Just("A".to_string()),
                Just("ri".to_string()),
                Just("id".to_string()),
                Just("ti12:00".to_string()),
                Just("BA".to_string()),
                Just("é".to_string()),
                "[0-9]{1,4}",
                "[a-zA-Z]{1,3}",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            if let Ok(d) = parse_sia_data(&s) {
                assert_borrowed(&s, &d);
            }
        }

        #[test]
        fn never_panics_on_sia_like_strings(s in sia_like()) {
            if let Ok(d) = parse_sia_data(&s) {
                assert_borrowed(&s, &d);
            }
        }

        /// Generated well-formed blocks parse back to the events they were built from.
        #[test]
        fn generated_blocks_round_trip(
            account in "[0-9A-F]{4,16}",
            events in proptest::collection::vec(
                ("[A-Z]{2}", "[0-9]{0,4}", proptest::option::of("[0-9]{1,2}"),
                 proptest::option::of("[A-Za-z ]{1,8}")),
                1..8,
            ),
        ) {
            let mut data = format!("#{account}|N");
            for (code, addr, area, name) in &events {
                if let Some(area) = area {
                    data.push_str(&format!("ri{area}/"));
                }
                data.push_str(code);
                data.push_str(addr);
                if let Some(name) = name {
                    data.push_str(&format!("^{name}^"));
                }
                data.push('/');
            }
            let d = parse_sia_data(&data).unwrap();
            prop_assert_eq!(d.account, Some(account.as_str()));
            prop_assert_eq!(d.events.len(), events.len());
            let mut area_in_effect: Option<&str> = None;
            for (e, (code, addr, area, name)) in d.events.iter().zip(&events) {
                if let Some(a) = area {
                    area_in_effect = Some(a);
                }
                prop_assert_eq!(e.code, code.as_str());
                prop_assert_eq!(e.address, (!addr.is_empty()).then_some(addr.as_str()));
                prop_assert_eq!(e.area, area_in_effect);
                prop_assert_eq!(e.names.first().copied(), name.as_deref());
            }
        }
    }
}
