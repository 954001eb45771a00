//! Fuzz the whole per-frame decision: `decide` on arbitrary bytes never panics, and any
//! reply it produces is itself a valid frame with the request's CRC form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::UtcDateTime;
use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::parse_frame;
use tocsin::receiver::accounts::{Account, AccountTable, Encryption, UnknownPolicy};
use tocsin::receiver::decide::{decide, NothingSeen, TimePolicy};
use tocsin::receiver::event::Transport;
use tocsin::receiver::normalize::Arrival;

fuzz_target!(|data: &[u8]| {
    let mut accounts = AccountTable::with_policy(UnknownPolicy::Accept);
    if let Ok(key) = Key::from_hex("000102030405060708090A0B0C0D0E0F") {
        accounts.insert(
            "1234",
            Account {
                key: Some(key),
                encryption: Encryption::Optional,
                time_check: Some(true),
            ..Default::default()
},
        );
    }
    let Ok(now) = UtcDateTime::from_unix_timestamp(1_705_320_010) else {
        return;
    };
    let arrival = Arrival {
        now,
        transport: Transport::Tcp,
        peer: None,
        peer_label: None,
        receiver: "fuzz",
    };
    let d = decide(data, &arrival, &accounts, &TimePolicy::default(), &NothingSeen, &[0x5A; 16]);
    if let Some(reply) = d.reply.inspect() {
        let parsed = parse_frame(reply);
        assert!(parsed.is_ok(), "our reply does not parse: {reply:?}");
        if let (Ok(req), Ok(rep)) = (parse_frame(data), parsed) {
            assert_eq!(req.crc_form, rep.crc_form);
        }
    }
});
