//! What the receiver writes in the journal: one record per frame received (the audit
//! trail: bytes in, reply out, outcome) carrying the events the frame produced, and one
//! record per event the receiver raises itself (supervision).
//!
//! The journal stores opaque bytes; this is their schema, JSON so that an operator can
//! read a journal with ordinary tools and so that old records stay readable as fields are
//! added.
//!
//! The JSON is preceded by a small binary index of the record's events (where each event's
//! JSON lies, its id, account and class), so the bus forwarder publishes an event by slicing
//! the payload instead of parsing the record twice: parsing was the larger part of the
//! forwarder's CPU. Layout: byte `0x01` (a bare JSON record starts with `{`, and those are
//! still read), event count (u32 LE), per event its JSON start and length (u32 LE each,
//! from the start of the payload) and three strings (id, account, class: u16 LE length and
//! bytes), then the JSON object.

use compact_str::CompactString;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::event::Event;

/// First byte of an indexed payload.
const INDEXED: u8 = 0x01;

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalRecord {
    pub kind: RecordKind,
    /// Receiver time, RFC 3339.
    pub at: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<CompactString>,
    /// The frame as received, escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The reply sent, escaped; absent when the frame got silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// `ack`, `nak`, `duh` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<CompactString>,
    /// Content key (hex) of an acknowledged new frame: rebuilds the dedup window after a
    /// restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A frame and what became of it.
    Frame,
    /// Events the receiver raised itself.
    Internal,
}

impl JournalRecord {
    /// A record of events the receiver raised itself (no frame behind them).
    pub fn internal(at: CompactString, events: Vec<Event>) -> JournalRecord {
        JournalRecord {
            kind: RecordKind::Internal,
            at,
            transport: None,
            peer: None,
            raw: None,
            reply: None,
            outcome: None,
            reason: None,
            account: None,
            key: None,
            events,
        }
    }

    /// The journal payload: the events' index, then the record as JSON.
    pub fn into_bytes(self) -> Vec<u8> {
        self.to_bytes()
    }

    /// [`Self::into_bytes`] keeping the record, for a caller that still needs its events.
    pub fn to_bytes(&self) -> Vec<u8> {
        let events = &self.events;
        // The index's size depends only on the events' texts, so the JSON is written in
        // place after room left for it, and each entry is filled in once its event's span
        // is known: one buffer, no second copy of the JSON.
        // Marker and count, then per event two u32 and three length-prefixed strings.
        let index_len = 5 + events.iter().map(entry_len).sum::<usize>();
        let mut out = Vec::with_capacity(index_len + 256 + 640 * events.len());
        out.resize(index_len, 0);
        let mut at = 0;
        put(&mut out, &mut at, &[INDEXED]);
        put(&mut out, &mut at, &(events.len() as u32).to_le_bytes());
        // The JSON is what serde_json would write for the record (an empty list is left
        // out): the record's own fields, then each event.
        let raw = super::json::write_record_head(&mut out, self);
        if !events.is_empty() {
            out.extend_from_slice(b",\"events\":[");
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let start = out.len();
                super::json::write_event_after(&mut out, e, raw.clone());
                let len = out.len() - start;
                put(&mut out, &mut at, &(start as u32).to_le_bytes());
                put(&mut out, &mut at, &(len as u32).to_le_bytes());
                for t in texts(e) {
                    put(&mut out, &mut at, &(t.len() as u16).to_le_bytes());
                    put(&mut out, &mut at, t.as_bytes());
                }
            }
            out.push(b']');
        }
        debug_assert_eq!(at, index_len);
        out.push(b'}');
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<JournalRecord, RecordError> {
        Ok(serde_json::from_slice(json_of(bytes)?)?)
    }
}

/// The record's JSON within a journal payload (after the index, when there is one).
pub fn json_of(payload: &[u8]) -> Result<&[u8], RecordError> {
    match payload.first() {
        Some(&INDEXED) => Ok(index(payload)?.1),
        _ => Ok(payload),
    }
}

/// What the index says of an event besides its span.
fn texts(e: &Event) -> [&str; 3] {
    [e.id.as_str(), e.account.as_str(), e.class.as_str()]
}

/// Bytes an event's index entry takes.
fn entry_len(e: &Event) -> usize {
    8 + texts(e).iter().map(|t| 2 + t.len()).sum::<usize>()
}

/// Writes `bytes` over `out` at `*at` (room left for the index) and moves `*at` past them.
/// The room is sized from the same events, so it always fits; were it not to, the bytes
/// would be left out rather than panic, and the index would fail its checks when read.
fn put(out: &mut [u8], at: &mut usize, bytes: &[u8]) {
    let end = *at + bytes.len();
    if let Some(room) = out.get_mut(*at..end) {
        room.copy_from_slice(bytes);
    }
    *at = end;
}

/// Why a journal payload is not a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record index is damaged")]
    Index,
    #[error("record JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One event of a payload as the forwarder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<'p> {
    pub id: &'p str,
    pub account: &'p str,
    pub class: &'p str,
    /// Where the event's JSON lies in the payload.
    pub json: Range<usize>,
}

/// The events of an indexed payload; `None` for a bare JSON record (written before the
/// index existed), which the caller parses instead.
pub fn routed(payload: &[u8]) -> Option<Result<Vec<Routed<'_>>, RecordError>> {
    (payload.first() == Some(&INDEXED)).then(|| index(payload).map(|(r, _)| r))
}

/// Hands `span` where each event's JSON lies in an indexed payload, in order, without
/// reading the index's texts as text (what a sink that writes the JSON as stored needs);
/// `None` for a bare JSON record, as [`routed`]. Offsets are checked as [`routed`] checks
/// them; on a damaged index the error comes after the spans before the damage, which the
/// caller drops (a record's events are written all or none).
pub fn each_span(
    payload: &[u8],
    mut span: impl FnMut(Range<usize>),
) -> Option<Result<(), RecordError>> {
    (payload.first() == Some(&INDEXED)).then(|| {
        walk(payload, |json, _| {
            span(json);
            Ok(())
        })
        .map(|_| ())
    })
}

/// Reads the index: the events and the JSON that follows it. Every offset is checked
/// against the payload, so a damaged index is an error, never a panic.
fn index(payload: &[u8]) -> Result<(Vec<Routed<'_>>, &[u8]), RecordError> {
    let mut events = Vec::new();
    let rest = walk(payload, |json, [id, account, class]| {
        let text = |b| std::str::from_utf8(b).map_err(|_| RecordError::Index);
        events.push(Routed {
            id: text(id)?,
            account: text(account)?,
            class: text(class)?,
            json,
        });
        Ok(())
    })?;
    Ok((events, rest))
}

/// Goes through the index's entries, handing each event's JSON span and its three texts
/// (id, account, class) as bytes to `entry`; returns the JSON after the index.
fn walk<'p>(
    payload: &'p [u8],
    mut entry: impl FnMut(Range<usize>, [&'p [u8]; 3]) -> Result<(), RecordError>,
) -> Result<&'p [u8], RecordError> {
    let mut r = Cursor {
        rest: payload.get(1..).ok_or(RecordError::Index)?,
    };
    let count = u32::from_le_bytes(r.array()?);
    for _ in 0..count {
        let start = u32::from_le_bytes(r.array()?) as usize;
        let len = u32::from_le_bytes(r.array()?) as usize;
        let texts = [r.text()?, r.text()?, r.text()?];
        let end = start.checked_add(len).ok_or(RecordError::Index)?;
        if end > payload.len() {
            return Err(RecordError::Index);
        }
        entry(start..end, texts)?;
    }
    Ok(r.rest)
}

struct Cursor<'p> {
    rest: &'p [u8],
}

impl<'p> Cursor<'p> {
    fn take(&mut self, n: usize) -> Result<&'p [u8], RecordError> {
        if self.rest.len() < n {
            return Err(RecordError::Index);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        self.take(N)?.try_into().map_err(|_| RecordError::Index)
    }

    fn text(&mut self) -> Result<&'p [u8], RecordError> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{Category, EventClass, Qualifier};
    use time::macros::utc_datetime;

    fn spans(payload: &[u8]) -> Option<Result<Vec<Range<usize>>, RecordError>> {
        let mut spans = Vec::new();
        each_span(payload, |s| spans.push(s)).map(|r| r.map(|()| spans))
    }

    #[test]
    fn spans_are_the_routed_events_json() {
        for n in 0..4 {
            let events = (0..n)
                .map(|i| event(&format!("{i:032x}"), "1234"))
                .collect();
            let payload =
                JournalRecord::internal("2024-01-15T12:00:05Z".into(), events).into_bytes();
            let routed: Vec<_> = routed(&payload)
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|r| r.json)
                .collect();
            assert_eq!(spans(&payload).unwrap().unwrap(), routed);
        }
        assert!(spans(b"{}").is_none());
        let mut seen = 0;
        assert!(each_span(b"{}", |_| seen += 1).is_none());
        assert_eq!(seen, 0);
        let mut damaged =
            JournalRecord::internal("x".into(), vec![event(&"1".repeat(32), "1")]).into_bytes();
        damaged.truncate(12);
        assert!(spans(&damaged).unwrap().is_err());
    }

    fn event(id: &str, account: &str) -> Event {
        let mut e = Event::internal(
            id.into(),
            utc_datetime!(2024-01-15 12:00:05),
            "rx",
            account,
            "BA",
            (Qualifier::New, EventClass::Alarm, Category::Burglary),
            "Burglary \"alarm\" \\ é".to_string(),
        );
        e.raw = "\\n72FA0039\"SIA-DCS\"".to_string();
        e
    }

    fn frame_record(events: Vec<Event>) -> JournalRecord {
        JournalRecord {
            kind: RecordKind::Frame,
            at: "2024-01-15T12:00:05.000Z".into(),
            transport: Some("tcp".into()),
            peer: Some("127.0.0.1:4000".into()),
            raw: Some("\\n72FA\\r".into()),
            reply: Some("\\nACK\\r".into()),
            outcome: Some("ack".into()),
            reason: Some("new".into()),
            account: Some("1234".into()),
            key: Some("00ff".into()),
            events,
        }
    }

    #[test]
    fn indexed_round_trip_and_spans() {
        let rec = frame_record(vec![event("a1", "1234"), event("b2", "99")]);
        let bytes = rec.clone().into_bytes();
        assert_eq!(bytes.first(), Some(&INDEXED));
        let back = JournalRecord::from_bytes(&bytes).unwrap();
        assert_eq!(
            serde_json::to_value(&back.events).unwrap(),
            serde_json::to_value(&rec.events).unwrap()
        );
        assert_eq!(back.raw, rec.raw);
        assert_eq!(back.key, rec.key);
        let routed = routed(&bytes).unwrap().unwrap();
        assert_eq!(routed.len(), 2);
        for (r, e) in routed.iter().zip(&rec.events) {
            assert_eq!(
                (r.id, r.account, r.class),
                (e.id.as_str(), e.account.as_str(), "alarm")
            );
            let json = &bytes[r.json.clone()];
            let parsed: Event = serde_json::from_slice(json).unwrap();
            assert_eq!(parsed.id, e.id);
            assert_eq!(parsed.text, e.text);
        }
        // The JSON after the index is, byte for byte, what serde_json makes of the record.
        let after_index = json_of(&bytes).unwrap();
        assert_eq!(
            String::from_utf8_lossy(after_index),
            serde_json::to_string(&rec).unwrap()
        );
        // The events' `raw` equal to the record's (as a frame's are), copied from it.
        let mut same = rec.clone();
        for e in &mut same.events {
            e.raw = same.raw.clone().unwrap();
        }
        assert_eq!(
            String::from_utf8_lossy(json_of(&same.clone().into_bytes()).unwrap()),
            serde_json::to_string(&same).unwrap()
        );
        let without_events = frame_record(Vec::new());
        assert_eq!(
            String::from_utf8_lossy(json_of(&without_events.clone().into_bytes()).unwrap()),
            serde_json::to_string(&without_events).unwrap()
        );
        let internal = JournalRecord::internal("2024-01-15T12:00:05.000Z".into(), rec.events);
        assert_eq!(
            String::from_utf8_lossy(json_of(&internal.clone().into_bytes()).unwrap()),
            serde_json::to_string(&internal).unwrap()
        );
    }

    #[test]
    fn records_without_events_and_bare_json_still_read() {
        let rec = frame_record(Vec::new());
        let bytes = rec.into_bytes();
        assert_eq!(routed(&bytes).unwrap().unwrap(), Vec::new());
        assert_eq!(
            JournalRecord::from_bytes(&bytes)
                .unwrap()
                .outcome
                .as_deref(),
            Some("ack")
        );
        let bare = serde_json::to_vec(&frame_record(vec![event("c3", "7")])).unwrap();
        assert!(routed(&bare).is_none());
        assert_eq!(JournalRecord::from_bytes(&bare).unwrap().events.len(), 1);
    }

    #[test]
    fn damaged_index_is_an_error() {
        let bytes = frame_record(vec![event("a1", "1234")]).into_bytes();
        for cut in 0..bytes.len().min(60) {
            let _ = JournalRecord::from_bytes(&bytes[..cut]);
            let _ = routed(&bytes[..cut]);
        }
        let mut bad = bytes.clone();
        bad[5..9].copy_from_slice(&u32::MAX.to_le_bytes()); // the first event's JSON start
        assert!(matches!(routed(&bad), Some(Err(RecordError::Index))));
    }
}
