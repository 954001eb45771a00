//! Fuzz the Sur-Gard packet writer: whatever event it gets (any protocol, account, code,
//! group, zone, SIA data block, qualifier; any account map; both line widths), it writes
//! at least one packet, and every packet is well-formed: it reads back with the strict
//! packet reader (one DC4, at the end; no control byte inside; fields of the right width;
//! SIA data within 66 bytes).
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tocsin::forward::surgard::accounts::AccountMap;
use tocsin::forward::surgard::packet::{write_event, Format};
use tocsin::forward::surgard::read::parse_packet;
use tocsin::protocol::codes::{Category, EventClass, Qualifier};
use tocsin::receiver::event::Event;
use tocsin::receiver::event_id::EventId;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // Fields separated by 0xFF, as text (lossy: the writer gets `&str`s).
    let mut parts = rest
        .split(|&b| b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let protocol = ["SIA-DCS", "ADM-CID", "tocsin", "NULL"][usize::from(sel % 4)];
    let qualifier = [Qualifier::New, Qualifier::Restore, Qualifier::Status][usize::from(sel / 4 % 3)];
    let line = if sel & 0x40 != 0 { "100" } else { "7" };
    let (account, code) = (next(), next());
    let Ok(epoch) = time::UtcDateTime::from_unix_timestamp(0) else {
        return;
    };
    let mut e = Event::internal(
        EventId::from_hash(0),
        epoch,
        "rx",
        &account,
        &code,
        (qualifier, EventClass::Alarm, Category::Burglary),
        String::new(),
    );
    e.protocol = Cow::Borrowed(protocol);
    e.partition = Some(next().into());
    let zone = next();
    if sel & 0x10 != 0 {
        e.user = Some(zone.into());
    } else {
        e.zone = Some(zone.into());
    }
    if sel & 0x80 != 0 {
        e.sia_data = Some(next());
    }
    let (from, to) = (next(), next());
    let map = AccountMap::from_pairs([(from.as_str(), to.as_str())]);
    let own = next();
    let format = Format::new("42", line, &own).or_else(|_| Format::new("42", line, "0000"));
    let Ok(format) = format else {
        return;
    };
    let mut out = Vec::new();
    write_event(&e, &format, &map, &mut out);
    assert!(!out.is_empty(), "no packet for an event");
    for p in out.iter().chain([&format.heartbeat()]) {
        if let Err(err) = parse_packet(p) {
            panic!("malformed packet {:?}: {err}", String::from_utf8_lossy(p));
        }
    }
});
