//! From a decoded frame to normalized events: one per SIA event, one per Contact ID
//! message, classified from the code tables.
//!
//! Nothing the panel sent is dropped: an unknown code still makes an event (class
//! `other`, text saying the code is unknown), and a data block that does not parse makes
//! one event carrying the raw data, so an operator sees it.

use std::borrow::Cow;

use compact_str::{format_compact, CompactString, ToCompactString};

use time::UtcDateTime;

use super::event::{stamps, ContentKey, Event, JsonText, Transport};
use super::event_id::EventId;
use crate::protocol::codes::{self, AddressKind, Category, EventClass, Qualifier, SiaCodeInfo};
use crate::protocol::contact_id::{parse_cid_data, CidData};
use crate::protocol::dc09::{Content, Header};
use crate::protocol::ext::{self, JValue, NetworkPath};
use crate::protocol::sia::{parse_sia_data_into, SiaData, SiaEvent};
use crate::protocol::text::escape;

/// Where and when a frame arrived: what the frame itself cannot say.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub now: UtcDateTime,
    pub transport: Transport,
    pub peer: Option<std::net::SocketAddr>,
    /// `peer` already formatted, when the caller has it (a TCP connection formats its peer
    /// once, not per frame).
    pub peer_label: Option<&'a str>,
    pub receiver: &'a str,
}

/// What every event of one frame shares.
pub struct FrameFacts<'a> {
    pub arrival: &'a Arrival<'a>,
    pub header: &'a Header<'a>,
    pub content: &'a Content<'a>,
    pub account: &'a str,
    /// The frame as received, but for the value of any K block, which is masked
    /// ([`ext::mask_key_blocks`]): what goes into the events' `raw`.
    pub raw: &'a [u8],
    /// `raw` escaped, made by the first event that needs it and cloned by the others; see
    /// [`FrameFacts::raw_text`].
    pub raw_text: std::cell::Cell<Option<String>>,
    pub key: ContentKey,
    pub unknown_account: bool,
}

impl FrameFacts<'_> {
    /// `raw` escaped, for one event. `last` says that no other event of the frame will ask
    /// for it, so the shared copy is handed over instead of cloned: a frame of one event
    /// escapes once and copies nothing.
    fn raw_text(&self, last: bool) -> String {
        let text = self.raw_text.take().unwrap_or_else(|| escape(self.raw));
        if !last {
            self.raw_text.set(Some(text.clone()));
        }
        text
    }
}

/// Which payload grammar a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Sia,
    ContactId,
    /// A supervision poll: `NULL`, or DC-09-2026's extended null message `XNM`, whose
    /// extended blocks (network path, MAC, key) are read but which makes no event.
    Null,
}

impl Payload {
    pub fn of_token(token: &str) -> Option<Payload> {
        match token {
            "SIA-DCS" => Some(Payload::Sia),
            "ADM-CID" => Some(Payload::ContactId),
            "NULL" | "XNM" => Some(Payload::Null),
            _ => None,
        }
    }
}

/// Decodes one clear frame into its events, nothing else: frame (CRC, header), payload,
/// classification and the normalized events, without account policy, dedup or reply.
/// The scope of the protocol benchmark and of the instruction-count profile.
pub fn decode_clear(
    frame: &[u8],
    arrival: &Arrival<'_>,
    scratch: &mut Vec<u8>,
) -> Option<Vec<Event>> {
    let f = crate::protocol::dc09::parse_frame(frame).ok()?;
    let content = f.open(None, scratch).ok()?;
    let account = f.header.account.number().unwrap_or("");
    let masked;
    let raw = if content.has_key_block() {
        masked = ext::mask_key_blocks(frame);
        &masked[..]
    } else {
        frame
    };
    let key = ContentKey::of(
        account,
        f.header.token,
        f.header.seq,
        content.data,
        &[],
        content.timestamp,
    );
    let facts = FrameFacts {
        arrival,
        header: &f.header,
        content: &content,
        account,
        raw,
        raw_text: Default::default(),
        key,
        unknown_account: false,
    };
    Some(events(&facts, Payload::of_token(f.header.token)?))
}

/// The events of a frame. NULL polls make none.
pub fn events(facts: &FrameFacts<'_>, payload: Payload) -> Vec<Event> {
    let data = facts.content.data_text();
    match payload {
        Payload::Null => Vec::new(),
        Payload::Sia => {
            let mut sia = SiaData::default();
            let mut out = match parse_sia_data_into(&data, &mut sia) {
                Ok(()) => sia_events(facts, &sia),
                Err(err) => unparsed(facts, &data, &err.to_string()),
            };
            for e in &mut out {
                e.sia_data = Some(data.to_string());
            }
            out
        }
        Payload::ContactId => match parse_cid_data(&data) {
            Ok(cid) => cid_events(facts, &cid),
            Err(err) => unparsed(facts, &data, &err.to_string()),
        },
    }
}

/// One event per SIA event code. The `A` texts and the data block's account belong to
/// the whole block, so every event carries them.
fn sia_events(facts: &FrameFacts<'_>, sia: &SiaData<'_>) -> Vec<Event> {
    let data_account = sia.account.filter(|a| *a != facts.account);
    let texts = sia.texts.iter().filter(|t| !t.is_empty());
    let Some(last) = sia.events.len().checked_sub(1) else {
        // An `A`-only or empty `N` block still tells something.
        let mut out = Vec::with_capacity(1);
        let class = (EventClass::Other, Category::Other);
        if let Some(e) = push_event(&mut out, facts, 0, "", class, true) {
            e.text = Cow::Borrowed("SIA data without an event code");
            e.names.extend(texts.map(|t| t.to_string()));
            e.data_account = data_account.map(CompactString::new);
        }
        return out;
    };
    let mut out = Vec::with_capacity(sia.events.len());
    for (i, ev) in sia.events.iter().enumerate() {
        let info = ev.info();
        let class = match info {
            Some(i) => (i.effective_class(), i.category),
            None => (EventClass::Other, codes::sia_category(ev.code)),
        };
        if let Some(e) = push_event(&mut out, facts, i, ev.code, class, i == last) {
            sia_fields(e, ev, info);
            e.data_account = data_account.map(CompactString::new);
            e.names.extend(texts.clone().map(|t| t.to_string()));
        }
    }
    out
}

/// What every event of a frame starts from: the frame's facts, and the code and class.
pub fn base_event(
    facts: &FrameFacts<'_>,
    index: usize,
    code: &str,
    class: EventClass,
    category: Category,
) -> Event {
    let stamps = stamps(
        facts.key,
        index,
        facts.arrival.now,
        facts.content.timestamp_rfc3339(),
    );
    let mut e = new_event(
        facts,
        stamps.id,
        stamps.received_at,
        code,
        (class, category),
    );
    frame_fields(&mut e, facts, stamps.panel_time, false);
    e
}

/// [`base_event`] made in place at the end of `out`, for the rest to be filled in there:
/// an event is several hundred bytes, and building it on the stack and handing it up
/// would copy it at every step. `last` says whether it is the frame's last event (see
/// [`FrameFacts::raw_text`]).
fn push_event<'o>(
    out: &'o mut Vec<Event>,
    facts: &FrameFacts<'_>,
    index: usize,
    code: &str,
    class: (EventClass, Category),
    last: bool,
) -> Option<&'o mut Event> {
    let stamps = stamps(
        facts.key,
        index,
        facts.arrival.now,
        facts.content.timestamp_rfc3339(),
    );
    out.push(new_event(facts, stamps.id, stamps.received_at, code, class));
    let e = out.last_mut()?;
    frame_fields(e, facts, stamps.panel_time, last);
    Some(e)
}

fn new_event(
    facts: &FrameFacts<'_>,
    id: EventId,
    received_at: CompactString,
    code: &str,
    (class, category): (EventClass, Category),
) -> Event {
    Event::received(
        id,
        received_at,
        facts.arrival.receiver,
        facts.account,
        code,
        (Qualifier::New, class, category),
        String::new(),
    )
}

/// What the frame says about each of its events.
fn frame_fields(
    e: &mut Event,
    facts: &FrameFacts<'_>,
    panel_time: Option<CompactString>,
    last: bool,
) {
    let h = facts.header;
    e.transport = facts.arrival.transport;
    e.peer = match facts.arrival.peer_label {
        Some(l) => Some(CompactString::new(l)),
        None => facts.arrival.peer.map(|p| p.to_compact_string()),
    };
    e.protocol = match h.token {
        "SIA-DCS" => Cow::Borrowed("SIA-DCS"),
        "ADM-CID" => Cow::Borrowed("ADM-CID"),
        "NULL" => Cow::Borrowed("NULL"),
        other => Cow::Owned(other.to_string()),
    };
    e.encrypted = h.encrypted;
    e.seq = Some(CompactString::new(h.seq));
    e.receiver_no = h.receiver.map(CompactString::new);
    e.line_no = h.has_line.then(|| CompactString::new(h.line));
    e.panel_time = panel_time;
    e.unknown_account = facts.unknown_account;
    e.raw = facts.raw_text(last);
    apply_ext(e, facts.content);
}

/// Extended blocks (`docs/protocol/dc09.md` §7, `docs/protocol/dc09-2026.md`) into named
/// fields; all of them also in `ext`, as sent but for a K block's value, which is masked
/// (`K*`) and never goes into a field.
fn apply_ext(e: &mut Event, content: &Content<'_>) {
    e.text_encoding = content.text_encoding;
    if content.ext.is_empty() {
        return;
    }
    // G names the path; a J block names it only when it is not JSON (and no G is there).
    e.network_path = NetworkPath::of_blocks(content.ext.iter().map(|b| (b.id, b.value)))
        .map(|p| p.value().to_string());
    for block in &content.ext {
        let slot = match block.id {
            b'H' => &mut e.event_time,
            b'I' => &mut e.alarm_text,
            b'L' => &mut e.location,
            b'M' => &mut e.mac,
            b'O' => &mut e.building,
            b'R' => &mut e.room,
            b'S' => &mut e.site,
            b'V' => &mut e.verification,
            b'X' => &mut e.longitude,
            b'Y' => &mut e.latitude,
            b'Z' => &mut e.altitude,
            ext::NETWORK_ADDRESS => &mut e.network_address,
            ext::SUPERVISION_CATEGORY => &mut e.supervision_category,
            ext::JSON_OR_PATH if JValue::of(block.value) == JValue::Json && e.json.is_none() => {
                e.json = JsonText::parse(&block.value_text());
                e.ext.push(block.text());
                continue;
            }
            _ => {
                e.ext.push(block.text());
                continue;
            }
        };
        // A repeated block keeps the first in its field; all stay in `ext`.
        if slot.is_none() {
            *slot = Some(block.value_text().into_owned());
        }
        e.ext.push(block.text());
    }
}

/// The SIA event's own fields: qualifier, address, text, time and names.
fn sia_fields(e: &mut Event, ev: &SiaEvent<'_>, info: Option<&SiaCodeInfo>) {
    e.qualifier = if !ev.new {
        Qualifier::Status
    } else if info.is_some_and(|i| i.is_restore) {
        Qualifier::Restore
    } else {
        Qualifier::New
    };
    e.partition = ev.area.map(CompactString::new);
    e.user = ev.user.map(CompactString::new);
    match info.map(|i| i.address) {
        Some(AddressKind::User) => {
            if let Some(a) = ev.address {
                e.user = Some(CompactString::new(a));
            }
        }
        Some(AddressKind::Area) => {
            if let Some(a) = ev.address {
                e.partition = Some(CompactString::new(a));
            }
        }
        _ => e.zone = ev.address.map(CompactString::new),
    }
    e.text = match info {
        Some(i) => Cow::Borrowed(i.description),
        None => Cow::Owned(format!("Unknown SIA code {}", ev.code)),
    };
    if ev.time.is_some() || ev.date.is_some() {
        let when = [ev.date, ev.time]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        e.event_time.get_or_insert(when);
    }
    e.names.extend(ev.names.iter().map(|n| n.to_string()));
    if let Some(t) = ev.x_sia_text() {
        e.names.push(t.to_string());
    }
}

/// The one event of a Contact ID message.
fn cid_events(facts: &FrameFacts<'_>, cid: &CidData<'_>) -> Vec<Event> {
    let info = codes::cid_code(cid.code);
    let class = match info {
        Some(i) => (i.class, i.category),
        None => (EventClass::Other, Category::Other),
    };
    let code = cid_code_text(cid.code);
    let mut out = Vec::with_capacity(1);
    let Some(e) = push_event(&mut out, facts, 0, &code, class, true) else {
        return out;
    };
    let qualifier = cid.qualifier_kind;
    e.qualifier = qualifier.unwrap_or(Qualifier::New);
    e.arming = qualifier.and_then(|q| q.arming(cid.code));
    if qualifier == Some(Qualifier::Restore) && e.arming.is_none() {
        e.class = e.class.restored();
    }
    e.partition = Some(CompactString::new(cid.group));
    match info.map(|i| i.zone_or_user) {
        Some(AddressKind::User) => e.user = Some(CompactString::new(cid.zone_or_user)),
        _ => e.zone = Some(CompactString::new(cid.zone_or_user)),
    }
    e.data_account = cid
        .account
        .filter(|a| *a != facts.account)
        .map(CompactString::new);
    e.text = match info {
        Some(i) => Cow::Borrowed(i.description),
        None => Cow::Owned(format!("Unknown Contact ID code {code}")),
    };
    if qualifier.is_none() {
        e.text
            .to_mut()
            .push_str(&format!(" (unknown qualifier {})", cid.qualifier));
    }
    out
}

/// `code` as `{:03}` writes it (`130`, `007`), without the formatter, which costs more
/// than the rest of the event's text fields together.
fn cid_code_text(code: u16) -> CompactString {
    if code > 999 {
        return format_compact!("{code:03}");
    }
    let digits = [
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    std::str::from_utf8(&digits)
        .map(CompactString::new)
        .unwrap_or_default()
}

/// A data block that does not parse, as one event carrying it.
fn unparsed(facts: &FrameFacts<'_>, data: &str, why: &str) -> Vec<Event> {
    let mut out = Vec::with_capacity(1);
    let class = (EventClass::Other, Category::Other);
    if let Some(e) = push_event(&mut out, facts, 0, "", class, true) {
        e.text = Cow::Owned(format!(
            "Unparsed {} data `{}`: {}",
            facts.header.token, data, why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_codes_read_as_three_digits() {
        for code in [0, 7, 42, 130, 999, 1000, 65535] {
            assert_eq!(cid_code_text(code), format!("{code:03}"));
        }
    }
}
