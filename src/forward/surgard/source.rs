//! Where the automation output gets its events: the one function that reads a journal
//! record (so that a change of the record format is made here only), and the rule of which
//! events make packets.
//!
//! A SIA frame becomes one normalized event per event code, and each carries the frame's
//! whole data block; the automation must get the block once, as the panel sent it. So the
//! first event of a block stands for it and the others ride along. Every other event makes
//! its own packet.

use crate::receiver::event::Event;
use crate::receiver::record::{JournalRecord, RecordError};

/// The events of a journal payload, in order.
pub fn events(payload: &[u8]) -> Result<Vec<Event>, RecordError> {
    Ok(JournalRecord::from_bytes(payload)?.events)
}

/// The events of one record that make packets, in order (see the module doc).
pub fn senders(events: &[Event]) -> impl Iterator<Item = &Event> {
    let mut block: Option<&str> = None;
    events.iter().filter(move |e| {
        let this = (e.protocol == "SIA-DCS")
            .then_some(e.sia_data.as_deref())
            .flatten();
        let same = this.is_some() && this == block;
        if this.is_some() {
            block = this;
        }
        !same
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{Category, EventClass, Qualifier};
    use std::borrow::Cow;

    fn ev(protocol: &'static str, code: &str, data: Option<&str>) -> Event {
        let mut e = Event::internal(
            code.into(),
            time::macros::utc_datetime!(2024-01-15 12:00:05),
            "rx",
            "1234",
            code,
            (Qualifier::New, EventClass::Alarm, Category::Burglary),
            String::new(),
        );
        e.protocol = Cow::Borrowed(protocol);
        e.sia_data = data.map(str::to_string);
        e
    }

    #[test]
    fn a_sia_block_is_sent_once() {
        let block = Some("#1234|NBA01/BA02/FA03");
        let events = vec![
            ev("SIA-DCS", "BA", block),
            ev("SIA-DCS", "BA", block),
            ev("tocsin", "substitution", None),
            ev("SIA-DCS", "FA", block),
            ev("SIA-DCS", "XX", Some("#1234|NXX")),
            ev("SIA-DCS", "YY", None),
            ev("SIA-DCS", "ZZ", None),
        ];
        let codes: Vec<&str> = senders(&events).map(|e| e.code.as_str()).collect();
        assert_eq!(codes, vec!["BA", "substitution", "XX", "YY", "ZZ"]);
    }

    #[test]
    fn records_are_read_through_the_journal_schema() {
        let rec = JournalRecord::internal(
            "2024-01-15T12:00:05.000Z".into(),
            vec![ev("tocsin", "comm_fail", None)],
        );
        let got = events(&rec.into_bytes()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code, "comm_fail");
        assert!(events(b"not a record").is_err());
    }
}
