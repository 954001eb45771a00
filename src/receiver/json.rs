//! The JSON of events and journal records, written by hand.
//!
//! Every acknowledged frame is serialised once on the receiving path, before its ACK, so
//! this is paid per frame. serde_json's derived code walks ~40 fields through a generic
//! serializer and escapes strings a byte at a time; here the keys are constants and an
//! escape scan copies clean runs whole, which halves the cost. The bytes are exactly what
//! `serde_json::to_vec` makes of the same values, field order and `skip_serializing_if`
//! rules included: consoles and the journal readers see no difference, and the tests
//! compare the two writers on every fixture and on random events. The derives stay the
//! reference (and are still used to read records back).

use super::event::Event;
use super::record::{JournalRecord, RecordKind};

/// `,"name":`: the comma and key of a field after the first, one constant per field, so a
/// field costs one copy of a few bytes before its value instead of four small writes and a
/// test for the comma. Every object here starts with a field that is always present.
macro_rules! k {
    ($name:literal) => {
        concat!(",\"", $name, "\":").as_bytes()
    };
}

/// Appends the event as one JSON object.
pub fn write_event(out: &mut Vec<u8>, e: &Event) {
    write_event_after(out, e, None);
}

/// The raw frame as already written earlier in the same buffer: the text, and the span of
/// its JSON string (quotes included).
pub type WrittenRaw<'r> = Option<(&'r str, std::ops::Range<usize>)>;

/// [`write_event`], copying the event's `raw` from `earlier` when it is the same text: a
/// frame record carries the escaped frame in its head and again in each event, and the
/// frame's quotes and backslashes make it the costliest string to escape.
pub fn write_event_after(out: &mut Vec<u8>, e: &Event, earlier: WrittenRaw<'_>) {
    let mut o = Object::open(out, b"{\"id\":");
    string(o.out, &e.id);
    o.str(k!("received_at"), &e.received_at);
    o.str(k!("receiver"), &e.receiver);
    o.label(k!("transport"), e.transport.as_str());
    o.opt_or_null(k!("peer"), e.peer.as_deref());
    o.str(k!("protocol"), &e.protocol);
    o.bool(k!("encrypted"), e.encrypted);
    o.opt_or_null(k!("seq"), e.seq.as_deref());
    o.opt_or_null(k!("receiver_no"), e.receiver_no.as_deref());
    o.opt_or_null(k!("line_no"), e.line_no.as_deref());
    o.str(k!("account"), &e.account);
    o.opt_or_null(k!("panel_time"), e.panel_time.as_deref());
    o.str(k!("code"), &e.code);
    o.label(k!("qualifier"), e.qualifier.as_str());
    o.label(k!("class"), e.class.as_str());
    o.label(k!("category"), e.category.as_str());
    o.opt_or_null(k!("zone"), e.zone.as_deref());
    o.opt_or_null(k!("user"), e.user.as_deref());
    o.opt_or_null(k!("partition"), e.partition.as_deref());
    o.str(k!("text"), &e.text);
    if let Some(a) = e.arming {
        o.label(k!("arming"), a.as_str());
    }
    o.opt(k!("data_account"), e.data_account.as_deref());
    o.opt(k!("sia_data"), e.sia_data.as_deref());
    o.list(k!("names"), &e.names);
    o.opt(k!("event_time"), e.event_time.as_deref());
    o.opt(k!("location"), e.location.as_deref());
    o.opt(k!("verification"), e.verification.as_deref());
    o.opt(k!("mac"), e.mac.as_deref());
    o.opt(k!("site"), e.site.as_deref());
    o.opt(k!("building"), e.building.as_deref());
    o.opt(k!("room"), e.room.as_deref());
    o.opt(k!("alarm_text"), e.alarm_text.as_deref());
    o.opt(k!("longitude"), e.longitude.as_deref());
    o.opt(k!("latitude"), e.latitude.as_deref());
    o.opt(k!("altitude"), e.altitude.as_deref());
    o.opt(k!("network_path"), e.network_path.as_deref());
    o.opt(k!("network_address"), e.network_address.as_deref());
    o.opt(
        k!("supervision_category"),
        e.supervision_category.as_deref(),
    );
    if let Some(j) = &e.json {
        // Already JSON, compact and checked when the event was made: written as it is.
        o.key(k!("json"));
        o.out.extend_from_slice(j.as_str().as_bytes());
    }
    if let Some(t) = e.text_encoding {
        o.label(k!("text_encoding"), t.as_str());
    }
    o.opt(k!("path"), e.path.as_deref());
    o.list(k!("ext"), &e.ext);
    if e.unknown_account {
        o.bool(k!("unknown_account"), true);
    }
    match earlier {
        Some((text, span)) if text == e.raw && span.end <= o.out.len() => {
            o.key(k!("raw"));
            o.out.extend_from_within(span);
        }
        _ => o.str(k!("raw"), &e.raw),
    }
    o.close();
}

/// Appends the record's fields as an object that is left open (no closing brace), so the
/// caller can add the events after them. Its `events` are not written. Returns where the
/// record's `raw` was written, for [`write_event_after`].
pub fn write_record_head<'r>(out: &mut Vec<u8>, r: &'r JournalRecord) -> WrittenRaw<'r> {
    let mut o = Object::open(out, b"{\"kind\":");
    o.out.extend_from_slice(match r.kind {
        RecordKind::Frame => b"\"frame\"",
        RecordKind::Internal => b"\"internal\"",
    });
    o.str(k!("at"), &r.at);
    o.opt(k!("transport"), r.transport.as_deref());
    o.opt(k!("peer"), r.peer.as_deref());
    let raw = r.raw.as_deref().map(|raw| {
        o.key(k!("raw"));
        let start = o.out.len();
        string(o.out, raw);
        (raw, start..o.out.len())
    });
    o.opt(k!("reply"), r.reply.as_deref());
    o.opt(k!("outcome"), r.outcome.as_deref());
    o.opt(k!("reason"), r.reason.as_deref());
    o.opt(k!("account"), r.account.as_deref());
    o.opt(k!("key"), r.key.as_deref());
    raw
}

/// An object being written, its first field's key already out.
struct Object<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Object<'o> {
    /// `first` is `{` and the first field's key, `{"name":`.
    fn open(out: &'o mut Vec<u8>, first: &[u8]) -> Object<'o> {
        out.extend_from_slice(first);
        Object { out }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// Keys are ASCII identifiers: written without an escape scan.
    fn key(&mut self, key: &[u8]) {
        self.out.extend_from_slice(key);
    }

    fn str(&mut self, key: &[u8], value: &str) {
        self.key(key);
        string(self.out, value);
    }

    /// A value from one of tocsin's closed sets (transport, qualifier, class, category,
    /// arming): lowercase ASCII words written in the code, so nothing to escape and no scan.
    fn label(&mut self, key: &[u8], value: &'static str) {
        debug_assert_eq!(clean_run(value.as_bytes()), value.len(), "{value}");
        self.key(key);
        self.out.reserve(value.len() + 2);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    fn bool(&mut self, key: &[u8], value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// A field serde writes as `null` when absent.
    fn opt_or_null(&mut self, key: &[u8], value: Option<&str>) {
        self.key(key);
        match value {
            Some(v) => string(self.out, v),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// A field serde leaves out when absent.
    fn opt(&mut self, key: &[u8], value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    /// A list serde leaves out when empty.
    fn list(&mut self, key: &[u8], values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.key(key);
        self.out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(self.out, v);
        }
        self.out.push(b']');
    }
}

/// A JSON string as serde_json writes it: `"` and `\` escaped with a backslash, the
/// control characters with their short form where JSON has one and `\u00XX` otherwise;
/// everything else, non-ASCII included, as it is.
///
/// Inlined for the usual case, a string with nothing to escape (ids, times, codes,
/// labels: some thirty of them per event), which is one scan and one copy; a string that
/// needs escaping goes to [`escaped_string`], kept out of line.
#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let run = clean_run(bytes);
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    match bytes.split_at_checked(run) {
        Some((clean, rest)) if !rest.is_empty() => {
            out.extend_from_slice(clean);
            escaped_string(out, rest);
        }
        _ => out.extend_from_slice(bytes),
    }
    out.push(b'"');
}

/// The rest of a string from its first byte to escape on, closing quote excluded.
#[inline(never)]
fn escaped_string(out: &mut Vec<u8>, mut rest: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    while let Some((&b, after)) = rest.split_first() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]),
        }
        let run = clean_run(after);
        let (clean, tail) = after.split_at(run.min(after.len()));
        out.extend_from_slice(clean);
        rest = tail;
    }
}

#[inline(always)]
fn needs_escape(b: u8) -> bool {
    // All three tests always run (`|`, not `||`): without branches, the chunked scan of
    // `leading_run` becomes vector compares instead of a loop over bytes.
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Length of the leading run of bytes a JSON string carries as they are: most strings here
/// are clean, and the escaped raw frame has a backslash only every few dozen bytes.
#[inline(always)]
fn clean_run(bytes: &[u8]) -> usize {
    crate::protocol::text::leading_run_short(bytes, needs_escape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_hand(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, s);
        out
    }

    #[test]
    fn strings_match_serde_json() {
        let mut every_byte = String::new();
        for c in 0u8..=0x7F {
            every_byte.push(char::from(c));
        }
        for s in [
            "",
            "plain",
            "a\"b\\c",
            "\\nB40B0039\"SIA-DCS\"0004L0#AAA[#AAA|Nri0/RP0000]_09:10:30,02-20-2023\\r",
            "é ü 漢字 \u{7f} \u{2028}",
            &every_byte,
            "0123456789abcdef0123456789abcdef\"",
        ] {
            assert_eq!(
                String::from_utf8(by_hand(s)).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_matches_serde_json(s in any::<String>()) {
            prop_assert_eq!(by_hand(&s), serde_json::to_vec(&s).unwrap());
        }
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;
    use crate::protocol::codes::{Arming, Category, EventClass, Qualifier};
    use crate::receiver::event::Transport;
    use crate::receiver::normalize::{decode_clear, Arrival};
    use std::path::Path;
    use time::macros::utc_datetime;

    fn assert_same(e: &Event) {
        let mut by_hand = Vec::new();
        write_event(&mut by_hand, e);
        assert_eq!(
            String::from_utf8_lossy(&by_hand),
            serde_json::to_string(e).unwrap()
        );
    }

    fn full_event() -> Event {
        let odd = "a\"b\\c\n\u{1}é";
        let mut e = Event::internal(
            "id".into(),
            utc_datetime!(2024-01-15 12:00:05.123),
            "rx",
            "1234",
            "BA",
            (Qualifier::New, EventClass::Alarm, Category::Burglary),
            odd.to_string(),
        );
        e.transport = Transport::Tcp;
        e.peer = Some("127.0.0.1:4000".into());
        e.encrypted = true;
        e.seq = Some("0001".into());
        e.receiver_no = Some("1".into());
        e.line_no = Some("".into());
        e.panel_time = Some("2024-01-15T12:00:05Z".into());
        e.zone = Some("001".into());
        e.user = Some(odd.into());
        e.partition = Some("2".into());
        e.arming = Some(Arming::Closing);
        e.data_account = Some("99".into());
        e.sia_data = Some(odd.into());
        e.names = vec!["TOTAL".into(), odd.into()];
        for field in [
            &mut e.event_time,
            &mut e.location,
            &mut e.verification,
            &mut e.mac,
            &mut e.site,
            &mut e.building,
            &mut e.room,
            &mut e.alarm_text,
            &mut e.longitude,
            &mut e.latitude,
            &mut e.altitude,
            &mut e.network_path,
            &mut e.network_address,
            &mut e.supervision_category,
            &mut e.path,
        ] {
            *field = Some(odd.to_string());
        }
        e.json = crate::receiver::event::JsonText::parse(
            "{\"photo\": \"https://v.example/1.jpg\", \"n\": [1, 2.50, -3e2], \"é\": \"a\\\"b\"}",
        );
        assert!(e.json.is_some());
        e.text_encoding = Some(crate::receiver::event::TextEncoding::Utf8);
        e.ext = vec!["X1".into(), odd.into()];
        e.unknown_account = true;
        e.raw = "\\n72FA0039\"SIA-DCS\"\\r".into();
        e
    }

    #[test]
    fn every_field_and_every_variant_as_serde_writes_it() {
        let full = full_event();
        assert_same(&full);
        assert_same(&Event::internal(
            "id".into(),
            utc_datetime!(2024-01-15 12:00:05),
            "rx",
            "1",
            "YS",
            (Qualifier::Status, EventClass::Other, Category::Other),
            String::new(),
        ));
        for class in EventClass::ALL {
            for category in Category::ALL {
                for qualifier in [Qualifier::New, Qualifier::Restore, Qualifier::Status] {
                    for arming in [None, Some(Arming::Opening), Some(Arming::Closing)] {
                        let mut e = full.clone();
                        (e.class, e.category, e.qualifier, e.arming) =
                            (class, category, qualifier, arming);
                        assert_same(&e);
                    }
                }
            }
        }
        for encoding in [
            None,
            Some(crate::receiver::event::TextEncoding::Utf8),
            Some(crate::receiver::event::TextEncoding::Windows1252),
        ] {
            let mut e = full.clone();
            e.text_encoding = encoding;
            e.json = None;
            assert_same(&e);
        }
        let back: Event = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
        for transport in [
            Transport::Tcp,
            Transport::Udp,
            Transport::Offline,
            Transport::Internal,
        ] {
            let mut e = full.clone();
            e.transport = transport;
            assert_same(&e);
        }
    }

    /// Every clear frame of the fixture corpus: the events real panels make.
    #[test]
    fn fixture_events_as_serde_writes_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto-fixtures");
        let arrival = Arrival {
            now: utc_datetime!(2024-01-15 12:00:05.123),
            transport: Transport::Tcp,
            peer: None,
            peer_label: Some("127.0.0.1:4000"),
            receiver: "rx",
        };
        let mut events = 0;
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let fixtures = doc.get("fixture").and_then(|f| f.as_array());
            for fx in fixtures.into_iter().flatten() {
                let raw: Vec<u8> = match (fx.get("frame"), fx.get("frame_hex")) {
                    (Some(f), _) => f.as_str().unwrap().as_bytes().to_vec(),
                    (_, Some(h)) => hex::decode(h.as_str().unwrap().replace(' ', "")).unwrap(),
                    _ => continue,
                };
                for e in decode_clear(&raw, &arrival, &mut Vec::new()).unwrap_or_default() {
                    assert_same(&e);
                    events += 1;
                }
            }
        }
        assert!(events >= 40, "only {events} events from the fixtures");
    }
}
