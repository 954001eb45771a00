//! The Contact ID codes under which tocsin's own events, and events whose account cannot be
//! written in a packet, reach the automation software (on the output's `own_account`).
//!
//! One table, so that the packet writer, the documentation (docs/automation.md) and the
//! tests agree. Codes come from the Contact ID list (SIA DC-05) and are chosen for what an
//! operator at the automation should do: communication codes for supervision, tamper for a
//! panel that does not look like itself, access denied for a sender nobody configured.
//! Knows nothing of sockets or the journal.

/// How one of tocsin's own events is written: the Contact ID event code and the zone
/// (group is always `00`); the qualifier letter is the event's own (E new, R restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnCode {
    /// The event's `code` as tocsin journals it.
    pub event: &'static str,
    /// Contact ID event code XYZ.
    pub cid: &'static str,
    /// Zone CCC.
    pub zone: &'static str,
}

/// The event code of the internal event journaled when an automation output sets a packet
/// aside (the automation refused it `max_attempts` times).
pub const SET_ASIDE: &str = "automation_set_aside";

/// tocsin's own events and their Contact ID form.
pub const OWN_CODES: &[OwnCode] = &[
    // Every path of a site silent past its interval: loss of central polling.
    own("comm_fail", "356", "000"),
    own("comm_restore", "356", "000"),
    // One path of a dual-path site silent: communication trouble.
    own("path_fail", "350", "000"),
    own("path_restore", "350", "000"),
    // A frame that does not look like the configured panel (MAC, source network): tamper.
    own("substitution", "137", "001"),
    // A clear frame from an account that must encrypt: tamper, told apart by its zone.
    own("encryption_required", "137", "002"),
    // A frame from an account nobody configured, refused: access denied.
    own("unknown_account", "421", "000"),
    // A packet this output could not deliver: failure to communicate event.
    own(SET_ASIDE, "354", "000"),
];

const fn own(event: &'static str, cid: &'static str, zone: &'static str) -> OwnCode {
    OwnCode { event, cid, zone }
}

/// Any other event tocsin raises itself: system trouble.
pub const OTHER_OWN: OwnCode = own("", "300", "000");

/// An event whose account fits no packet and has no mapping: general alarm, with the
/// event's qualifier, so that an operator looks at the console for what it was.
pub const UNMAPPED: OwnCode = own("", "140", "000");

/// A Contact ID event whose data could not be read (the receiver acknowledged it so that
/// an operator sees it): general alarm on the site's account.
pub const UNREADABLE: OwnCode = own("", "140", "000");

/// The Contact ID form of one of tocsin's own events.
pub fn own_code(event_code: &str) -> OwnCode {
    OWN_CODES
        .iter()
        .find(|c| c.event == event_code)
        .copied()
        .unwrap_or(OTHER_OWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_contact_id_shaped_and_unique() {
        for c in OWN_CODES.iter().chain([&OTHER_OWN, &UNMAPPED, &UNREADABLE]) {
            assert_eq!(c.cid.len(), 3);
            assert_eq!(c.zone.len(), 3);
            assert!(c
                .cid
                .bytes()
                .chain(c.zone.bytes())
                .all(|b| b.is_ascii_digit()));
        }
        for (i, a) in OWN_CODES.iter().enumerate() {
            for b in OWN_CODES.iter().skip(i + 1) {
                assert_ne!(a.event, b.event);
            }
        }
        // The supervision codes the receiver journals are all in the table.
        for code in [
            crate::receiver::supervision::CODE_COMM_FAIL,
            crate::receiver::supervision::CODE_COMM_RESTORE,
            crate::receiver::supervision::CODE_PATH_FAIL,
            crate::receiver::supervision::CODE_PATH_RESTORE,
        ] {
            assert_ne!(own_code(code), OTHER_OWN, "{code}");
        }
        assert_eq!(own_code("something_new"), OTHER_OWN);
    }
}
