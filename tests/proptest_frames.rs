//! Property tests of the frame layer: what tocsin encodes it decodes back, for random
//! frames, clear and encrypted with every key size; and no byte string makes the decoder
//! or the per-frame decision panic.

use proptest::prelude::*;
use time::UtcDateTime;

use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::{parse_frame, AccountField, CrcForm};
use tocsin::protocol::encode::{encode, FrameSpec};
use tocsin::receiver::accounts::{Account, AccountTable, Encryption, UnknownPolicy};
use tocsin::receiver::decide::{decide, NothingSeen, TimePolicy};
use tocsin::receiver::event::Transport;
use tocsin::receiver::normalize::Arrival;

fn hexdigits(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9A-F]{{0,{max}}}")).unwrap()
}

prop_compose! {
    fn spec_parts()(
        token in prop::sample::select(vec!["SIA-DCS", "ADM-CID", "NULL"]),
        seq in 0u16..=9999,
        receiver in prop::option::of(proptest::string::string_regex("[0-9A-F]{1,6}").unwrap()),
        line in hexdigits(6),
        account in proptest::string::string_regex("[0-9A-F]{3,16}").unwrap(),
        data in proptest::string::string_regex("[ -Z^-z|#/]{0,120}").unwrap(),
        ext in prop::collection::vec((prop::sample::select(b"AHILMOPRSTVXYZQ".to_vec()), proptest::string::string_regex("[ -Z^-z]{0,40}").unwrap()), 0..4),
        ts in prop::option::of(0i64..4_102_444_800),
        binary in any::<bool>(),
    ) -> (String, String, Option<String>, String, String, String, Vec<(u8, String)>, Option<i64>, bool) {
        (token.to_string(), format!("{seq:04}"), receiver, line, account, data, ext, ts, binary)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode(parts in spec_parts(), key_len in prop::sample::select(vec![0usize, 16, 24, 32]), key_byte in any::<u8>(), pad in any::<[u8; 16]>()) {
        let (token, seq, receiver, line, account, data, ext, ts, binary) = parts;
        let key = if key_len == 0 { None } else { Some(Key::from_bytes(&vec![key_byte; key_len]).unwrap()) };
        // An encrypted frame always carries a timestamp.
        let ts = match (&key, ts) { (Some(_), None) => Some(1_700_000_000), (_, t) => t };
        let timestamp = ts.map(|t| UtcDateTime::from_unix_timestamp(t).unwrap());
        let ext_refs: Vec<(u8, &[u8])> = ext.iter().map(|(id, v)| (*id, v.as_bytes())).collect();
        let spec = FrameSpec {
            token: &token, seq: &seq, receiver: receiver.as_deref(), line: &line, account: &account,
            data: data.as_bytes(), ext: &ext_refs, timestamp,
            form: if binary { CrcForm::Binary } else { CrcForm::Ascii },
        };
        let mut raw = Vec::new();
        encode(&spec, key.as_ref(), &pad, &mut raw);
        let frame = parse_frame(&raw).unwrap();
        prop_assert_eq!(frame.header.token, token.as_str());
        prop_assert_eq!(frame.header.encrypted, key.is_some());
        prop_assert_eq!(frame.header.seq, seq.as_str());
        prop_assert_eq!(frame.header.receiver, receiver.as_deref());
        prop_assert_eq!(frame.header.line, line.as_str());
        prop_assert_eq!(frame.header.account, AccountField::Number(&account));
        let mut scratch = Vec::new();
        let content = frame.open(key.as_ref(), &mut scratch).unwrap();
        prop_assert_eq!(content.data, data.as_bytes());
        prop_assert_eq!(content.ext.len(), ext.len());
        for (got, (id, value)) in content.ext.iter().zip(&ext) {
            prop_assert_eq!(got.id, *id);
            prop_assert_eq!(got.value, value.as_bytes());
        }
        prop_assert_eq!(content.timestamp, timestamp);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_frame(&bytes);
        let mut with_lf = vec![b'\n'];
        with_lf.extend_from_slice(&bytes);
        with_lf.push(b'\r');
        decide_any(&with_lf);
        decide_any(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(pos in 0usize..200, byte in any::<u8>(), cut in 0usize..200) {
        let w4: &[u8] = b"\n9C080076\"*SIA-DCS\"0004L0#1234[3D2C28BC2387FA69EAC04FD24643985F1C4769E0CBCF6A63001FC729DF6B20FFAAE3C1B0528C26A70F4230361354FA2F\r";
        let mut m = w4.to_vec();
        if let Some(b) = m.get_mut(pos % w4.len()) { *b = byte; }
        m.truncate(cut.max(1).min(m.len()));
        decide_any(&m);
    }
}

fn decide_any(raw: &[u8]) {
    let mut accounts = AccountTable::with_policy(UnknownPolicy::Accept);
    accounts.insert(
        "1234",
        Account {
            key: Some(Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap()),
            encryption: Encryption::Optional,
            time_check: Some(true),
            ..Default::default()
        },
    );
    let arrival = Arrival {
        now: UtcDateTime::from_unix_timestamp(1_705_320_010).unwrap(),
        transport: Transport::Tcp,
        peer: None,
        peer_label: None,
        receiver: "prop",
    };
    let d = decide(
        raw,
        &arrival,
        &accounts,
        &TimePolicy::default(),
        &NothingSeen,
        &[0; 16],
    );
    // Whatever the input, a reply we send must itself be a valid frame.
    if let Some(reply) = d.reply.bytes() {
        assert!(
            parse_frame(reply).is_ok(),
            "reply does not parse: {reply:?}"
        );
    }
}
