//! The event that reports a packet an automation output set aside (the automation NAKed
//! it `max_attempts` times). It is journaled like any internal event, so it reaches the
//! bus and, as Contact ID `E354` on `own_account`, the automation itself; its id is derived
//! from what it reports, so two receivers reporting the same refusal publish one id.

use crate::protocol::codes::{Category, EventClass, Qualifier};
use crate::protocol::text::escape;
use crate::receiver::event::Event;
use crate::receiver::event_id::EventId;

use super::codes::SET_ASIDE;

/// What was refused, and by whom.
pub struct Refused<'a> {
    pub receiver: &'a str,
    pub output: &'a str,
    /// The site whose event did not reach the automation.
    pub account: &'a str,
    pub event_id: &'a str,
    pub packet: &'a [u8],
    pub naks: u32,
}

impl Refused<'_> {
    /// The internal event (class trouble, category communication, on the site's account).
    pub fn event(&self, now: time::UtcDateTime) -> Event {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [self.receiver, self.output, self.event_id, SET_ASIDE] {
            h.update(part.as_bytes());
            h.update(&[0x1F]);
        }
        let text = format!(
            "Automation output {} refused the packet `{}` {} times (NAK): set aside, the automation does not have event {}",
            self.output,
            escape(self.packet),
            self.naks,
            self.event_id
        );
        Event::internal(
            EventId::from_hash(h.digest128()),
            now,
            self.receiver,
            self.account,
            SET_ASIDE,
            (Qualifier::New, EventClass::Trouble, Category::Communication),
            text,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_output_packet_and_event_and_keeps_its_id() {
        let r = Refused {
            receiver: "rx",
            output: "manitou",
            account: "1234",
            event_id: "abc",
            packet: b"5011 181234E13001004\x14",
            naks: 20,
        };
        let now = time::macros::utc_datetime!(2024-01-15 12:00:05);
        let e = r.event(now);
        assert_eq!((e.code.as_str(), e.account.as_str()), (SET_ASIDE, "1234"));
        assert_eq!(e.protocol, "tocsin");
        assert!(
            e.text.contains("manitou") && e.text.contains("\\x14") && e.text.contains("abc"),
            "{}",
            e.text
        );
        let later = time::macros::utc_datetime!(2024-01-15 12:00:09);
        assert_eq!(r.event(later).id, e.id);
    }
}
