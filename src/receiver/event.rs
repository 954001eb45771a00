//! The normalized event: one JSON object per alarm, the same shape whatever the panel
//! spoke (SIA DC-03 or Contact ID), for operator consoles and automation.
//!
//! Identity: an event's `id` is derived from what the panel sent — account, token,
//! sequence, decrypted payload, panel timestamp — and the event's position in its frame,
//! so that two receivers that get the same frame (dual path, hot standby) compute the
//! same id and the bus keeps one. Nothing receiver-local (arrival time, peer, pad) enters.

use std::borrow::Cow;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use time::UtcDateTime;
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed};

use super::event_id::EventId;
use crate::protocol::codes::{Arming, Category, EventClass, Qualifier};
pub use crate::protocol::text::TextEncoding;

/// How a frame reached the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    /// `tocsin decode`: no network at all.
    Offline,
    /// Events the receiver makes itself (supervision).
    Internal,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Offline => "offline",
            Transport::Internal => "internal",
        }
    }
}

/// A normalized event. Field names are a contract with consoles: add, never rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub received_at: CompactString,
    pub receiver: CompactString,
    pub transport: Transport,
    pub peer: Option<CompactString>,
    /// The frame's ID token without `*` (`SIA-DCS`, `ADM-CID`, `NULL`), or `tocsin` for
    /// events the receiver raises itself.
    pub protocol: Cow<'static, str>,
    pub encrypted: bool,
    pub seq: Option<CompactString>,
    pub receiver_no: Option<CompactString>,
    pub line_no: Option<CompactString>,
    pub account: CompactString,
    pub panel_time: Option<CompactString>,
    pub code: CompactString,
    pub qualifier: Qualifier,
    pub class: EventClass,
    pub category: Category,
    pub zone: Option<CompactString>,
    pub user: Option<CompactString>,
    pub partition: Option<CompactString>,
    pub text: Cow<'static, str>,
    /// Opening (disarm) or closing (arm), for open/close reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arming: Option<Arming>,
    /// The account written inside the data block when it differs from the header's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_account: Option<CompactString>,
    /// The SIA data block as received (decrypted, without its brackets), on every event of
    /// a `SIA-DCS` frame: what a Sur-Gard automation output forwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sia_data: Option<String>,
    /// Names the panel attached (`^TOTAL^` caret texts, X-SIA text, `A` blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Time of occurrence from the panel (`[H…]` block, or SIA `da`/`ti` modifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Verification links (audio, video, photos), `[V…]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_address: Option<String>,
    /// The supervision category the panel announces in `[C…]` (DC-09-2021 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervision_category: Option<String>,
    /// A `[J…]` block holding a JSON object or array (DC-09-2026), as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonText>,
    /// How the frame's non-ASCII text was read: `utf-8` or `windows-1252`. Absent when all
    /// of the frame's text is ASCII (both readings agree) and on the receiver's own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoding: Option<TextEncoding>,
    /// The reporting path, for supervision events (`L1`, `G2`, `J2`, `*` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Every extended block as sent, without brackets, known letters included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext: Vec<String>,
    /// The account is not configured (accepted by policy).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unknown_account: bool,
    /// The exact frame as received, escaped (`\n`, `\r`, `\xNN`), for audit.
    pub raw: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A JSON object or array a panel sent, kept as its text: members in the order sent,
/// numbers as written, blanks between tokens removed so it stays on one line.
#[derive(Debug, Clone)]
pub struct JsonText(Box<serde_json::value::RawValue>);

impl JsonText {
    /// `text` as JSON when it is an object or an array that parses; `None` otherwise.
    pub fn parse(text: &str) -> Option<JsonText> {
        let compact = crate::protocol::ext::minify_json(text);
        if !(compact.starts_with('{') || compact.starts_with('[')) {
            return None;
        }
        serde_json::value::RawValue::from_string(compact)
            .ok()
            .map(JsonText)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &JsonText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonText, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(d).map(JsonText)
    }
}

impl Event {
    /// An event the receiver raises itself (no frame behind it).
    pub fn internal(
        id: EventId,
        now: UtcDateTime,
        receiver: &str,
        account: &str,
        code: &str,
        kind: (Qualifier, EventClass, Category),
        text: String,
    ) -> Event {
        Event::received(id, rfc3339(now), receiver, account, code, kind, text)
    }

    /// [`Event::internal`] with the arrival time already written (see [`stamps`]).
    pub fn received(
        id: EventId,
        received_at: CompactString,
        receiver: &str,
        account: &str,
        code: &str,
        (qualifier, class, category): (Qualifier, EventClass, Category),
        text: String,
    ) -> Event {
        let text = Cow::Owned(text);
        Event {
            id,
            received_at,
            receiver: CompactString::new(receiver),
            transport: Transport::Internal,
            peer: None,
            protocol: Cow::Borrowed("tocsin"),
            encrypted: false,
            seq: None,
            receiver_no: None,
            line_no: None,
            account: CompactString::new(account),
            panel_time: None,
            code: CompactString::new(code),
            qualifier,
            class,
            category,
            zone: None,
            user: None,
            partition: None,
            text,
            arming: None,
            data_account: None,
            sia_data: None,
            names: Vec::new(),
            event_time: None,
            location: None,
            verification: None,
            mac: None,
            site: None,
            building: None,
            room: None,
            alarm_text: None,
            longitude: None,
            latitude: None,
            altitude: None,
            network_path: None,
            network_address: None,
            supervision_category: None,
            json: None,
            text_encoding: None,
            path: None,
            ext: Vec::new(),
            unknown_account: false,
            raw: String::new(),
        }
    }
}

/// Writes `t` as RFC 3339 UTC with milliseconds (`2024-01-15T12:00:05.123Z`). Written by
/// hand: it runs for every event and `time`'s formatter is general-purpose.
pub fn rfc3339(t: UtcDateTime) -> CompactString {
    let mut b = *b"0000-00-00T00:00:00.000Z";
    fill_date_time(&mut b, t);
    put_millis(&mut b, 20, t);
    ascii_string(&b)
}

/// Panel time as RFC 3339 (whole seconds: that is all DC-09 carries).
pub fn panel_rfc3339(t: UtcDateTime) -> CompactString {
    let mut b = *b"0000-00-00T00:00:00Z";
    fill_date_time(&mut b, t);
    ascii_string(&b)
}

fn fill_date_time(b: &mut [u8], t: UtcDateTime) {
    // The calendar date in one conversion: `year()`, `month()` and `day()` each redo it.
    let (year, month, day) = t.to_calendar_date();
    let year = year.clamp(0, 9999) as u16;
    put_pair(b, 0, (year / 100) as u8);
    put_pair(b, 2, (year % 100) as u8);
    put_pair(b, 5, u8::from(month));
    put_pair(b, 8, day);
    put_pair(b, 11, t.hour());
    put_pair(b, 14, t.minute());
    put_pair(b, 17, t.second());
}

/// Three digits of milliseconds at `at`.
fn put_millis(b: &mut [u8], at: usize, t: UtcDateTime) {
    let ms = t.millisecond();
    if let Some(slot) = b.get_mut(at) {
        *slot = b'0' + (ms / 100 % 10) as u8;
    }
    put_pair(b, at + 1, (ms % 100) as u8);
}

/// The last two decimal digits of `v` at `at`, from a table of the hundred pairs: one
/// two-byte copy instead of two divisions.
fn put_pair(b: &mut [u8], at: usize, v: u8) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let i = usize::from(v % 100) * 2;
    if let (Some(slot), Some(pair)) = (b.get_mut(at..at + 2), PAIRS.get(i..i + 2)) {
        slot.copy_from_slice(pair);
    }
}

/// The texts every event of a frame carries: id, arrival time and panel time.
pub struct Stamps {
    pub id: EventId,
    pub received_at: CompactString,
    pub panel_time: Option<CompactString>,
}

/// Where [`stamps`] writes each text in its block.
const RECEIVED_AT: std::ops::Range<usize> = 0..24;
const PANEL_AT: std::ops::Range<usize> = 24..44;

/// Writing room for [`stamps`], aligned so that the ASCII check runs on whole words.
#[repr(C, align(16))]
struct StampBlock([u8; 48]);

/// The id of the `index`-th event of the frame `key`, `now` as its arrival time and the
/// panel's time (as [`crate::protocol::dc09::Content::timestamp_rfc3339`] gives it), as
/// [`ContentKey::event_id`], [`rfc3339`] and [`panel_rfc3339`] write them. The two times
/// are written side by side and checked as ASCII once.
pub fn stamps(key: ContentKey, index: usize, now: UtcDateTime, panel: Option<[u8; 20]>) -> Stamps {
    let mut block = StampBlock([b' '; 48]);
    let b = &mut block.0;
    if let Some(at) = b.get_mut(RECEIVED_AT) {
        at.copy_from_slice(b"0000-00-00T00:00:00.000Z");
        fill_date_time(at, now);
        put_millis(at, 20, now);
    }
    if let (Some(t), Some(at)) = (panel, b.get_mut(PANEL_AT)) {
        at.copy_from_slice(&t);
    }
    let text = crate::protocol::text::ascii_str(&block.0).unwrap_or_default();
    let part = |r| text.get(r).map(CompactString::new).unwrap_or_default();
    Stamps {
        id: key.event_id(index),
        received_at: part(RECEIVED_AT),
        panel_time: panel.map(|_| part(PANEL_AT)),
    }
}

/// The bytes are ASCII digits and punctuation written above; up to 24 of them are kept
/// inline, without an allocation.
fn ascii_string(b: &[u8]) -> CompactString {
    crate::protocol::text::ascii_str(b)
        .map(CompactString::new)
        .unwrap_or_default()
}

/// 32 lower-case hex digits.
fn hex128(v: u128) -> CompactString {
    CompactString::new(EventId::from_hash(v).as_str())
}

/// The identity of what a panel sent, shared by every receiver that gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentKey(pub u128);

impl ContentKey {
    /// Hash of (account, token without `*`, seq, data, extended blocks, panel timestamp).
    /// Fields are separated by a byte that cannot occur in them, so boundaries cannot
    /// shift.
    pub fn of(
        account: &str,
        token: &str,
        seq: &str,
        data: &[u8],
        ext: &[(u8, &[u8])],
        panel_time: Option<UtcDateTime>,
    ) -> ContentKey {
        // One contiguous buffer and a one-shot hash: the streaming hasher costs several
        // times more on inputs this small. Typical frames fit the stack buffer.
        let ext_len: usize = ext.iter().map(|(_, v)| v.len() + 2).sum();
        let len = account.len() + token.len() + seq.len() + data.len() + ext_len + 16;
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let buf: &mut [u8] = match stack.get_mut(..len) {
            Some(b) => b,
            None => {
                heap.resize(len, 0);
                &mut heap
            }
        };
        let mut w = Writer { buf, at: 0 };
        for part in [account.as_bytes(), token.as_bytes(), seq.as_bytes(), data] {
            w.put(part);
            w.put_byte(0x1F);
        }
        for (id, value) in ext {
            w.put_byte(*id);
            w.put(value);
            w.put_byte(0x1E);
        }
        w.put_byte(0x1F);
        if let Some(t) = panel_time {
            w.put(&t.unix_timestamp().to_le_bytes());
        }
        ContentKey(xxh3_128(w.written()))
    }

    /// The id of the `index`-th event of this frame: 32 hex digits.
    pub fn event_id(self, index: usize) -> EventId {
        EventId::from_hash(self.event_hash(index))
    }

    fn event_hash(self, index: usize) -> u128 {
        xxh3_128_with_seed(&self.0.to_le_bytes(), index as u64)
    }

    pub fn to_hex(self) -> CompactString {
        hex128(self.0)
    }

    pub fn from_hex(s: &str) -> Option<ContentKey> {
        u128::from_str_radix(s, 16).ok().map(ContentKey)
    }
}

/// Appends into a buffer sized beforehand.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, part: &[u8]) {
        let end = self.at + part.len();
        if let Some(slot) = self.buf.get_mut(self.at..end) {
            slot.copy_from_slice(part);
            self.at = end;
        }
    }

    /// One byte: a separator or an identifier, without `put`'s slice copy.
    fn put_byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.at) {
            *slot = b;
            self.at += 1;
        }
    }

    fn written(&self) -> &[u8] {
        self.buf.get(..self.at).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::utc_datetime;

    #[test]
    fn times() {
        let t = utc_datetime!(2024-01-15 12:00:05.123);
        assert_eq!(rfc3339(t), "2024-01-15T12:00:05.123Z");
        assert_eq!(panel_rfc3339(t), "2024-01-15T12:00:05Z");
        let t = utc_datetime!(0999-03-04 05:06:07.089);
        assert_eq!(rfc3339(t), "0999-03-04T05:06:07.089Z");
        assert_eq!(panel_rfc3339(t), "0999-03-04T05:06:07Z");
        let t = utc_datetime!(2099-12-31 23:59:59.999);
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.999Z");
        assert_eq!(
            hex128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            "0123456789abcdeffedcba9876543210"
        );
    }

    #[test]
    fn stamps_match_their_single_writers() {
        let key = ContentKey::of("1234", "SIA-DCS", "0001", b"#1234|NBA1", &[], None);
        let now = utc_datetime!(2024-01-15 12:00:05.123);
        let panel = utc_datetime!(2024-01-15 12:00:00);
        for index in [0, 1, usize::MAX] {
            let text = *panel_rfc3339(panel).as_bytes().first_chunk().unwrap();
            let s = stamps(key, index, now, Some(text));
            assert_eq!(s.id, key.event_id(index));
            assert_eq!(s.received_at, rfc3339(now));
            assert_eq!(s.panel_time, Some(panel_rfc3339(panel)));
        }
        assert_eq!(stamps(key, 0, now, None).panel_time, None);
    }

    #[test]
    fn content_key_boundaries() {
        let a = ContentKey::of("12", "34", "0001", b"x", &[], None);
        let b = ContentKey::of("1", "234", "0001", b"x", &[], None);
        assert_ne!(a, b);
        let t = Some(utc_datetime!(2024-01-15 12:00:05));
        assert_ne!(a, ContentKey::of("12", "34", "0001", b"x", &[], t));
        assert_eq!(a.event_id(0), a.event_id(0));
        assert_ne!(a.event_id(0), a.event_id(1));
        assert_eq!(ContentKey::from_hex(&a.to_hex()), Some(a));
    }
}
