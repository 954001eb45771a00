//! Property tests of the frame layer: what tocsin encodes it decodes back, for random
//! frames, clear and encrypted with every key size; and no byte string makes the decoder
//! or the per-frame decision panic. For DC-09-2026: a pad without `|` before an empty data
//! block ends at the `]`, whatever the extended data holds; a J block shaped like JSON never
//! names a supervision path; a K block's value is never in what is kept or shown.

use proptest::prelude::*;
use time::UtcDateTime;

use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::{parse_frame, AccountField, CrcForm};
use tocsin::protocol::encode::{encode, FrameSpec};
use tocsin::receiver::accounts::{Account, AccountTable, Encryption, UnknownPolicy};
use tocsin::receiver::decide::{decide, Decision, NothingSeen, TimePolicy};
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
    fn pad_without_bar_ends_at_the_empty_data_block(
        ext in prop::collection::vec((prop::sample::select(b"GJLKIS".to_vec()), "[ -Z^-z|]{0,30}"), 0..4),
        pad_seed in any::<u8>(),
        key_len in prop::sample::select(vec![16usize, 24, 32]),
    ) {
        use cbc::cipher::{block_padding::NoPadding, BlockModeEncrypt, KeyIvInit};
        let mut content = b"]".to_vec();
        for (id, v) in &ext {
            content.push(b'[');
            content.push(*id);
            content.extend_from_slice(v.as_bytes());
            content.push(b']');
        }
        content.extend_from_slice(b"_12:00:00,01-15-2024");
        // 2026 pads: 16–31 bytes that are never `|`, `[` or `]`, and no `|` after them.
        let pad_len = 16 + (16 - content.len() % 16) % 16;
        let pad: Vec<u8> = (0..pad_len)
            .map(|i| match pad_seed.wrapping_add((i as u8).wrapping_mul(37)) {
                b'|' | b'[' | b']' => b'p',
                b => b,
            })
            .collect();
        let mut plain = [pad, content].concat();
        let len = plain.len();
        let key = vec![7u8; key_len];
        let iv = [0u8; 16];
        let sealed = match key_len {
            16 => cbc::Encryptor::<aes::Aes128>::new(key.as_slice().try_into().unwrap(), &iv.into())
                .encrypt_padded::<NoPadding>(&mut plain, len).map(|c| c.to_vec()),
            24 => cbc::Encryptor::<aes::Aes192>::new(key.as_slice().try_into().unwrap(), &iv.into())
                .encrypt_padded::<NoPadding>(&mut plain, len).map(|c| c.to_vec()),
            _ => cbc::Encryptor::<aes::Aes256>::new(key.as_slice().try_into().unwrap(), &iv.into())
                .encrypt_padded::<NoPadding>(&mut plain, len).map(|c| c.to_vec()),
        }.unwrap();
        let body = format!("\"*XNM\"0001L0#1234[{}", hex::encode_upper(sealed));
        let raw = frame_of(body.as_bytes());
        let frame = parse_frame(&raw).unwrap();
        let k = Key::from_bytes(&key).unwrap();
        let mut scratch = Vec::new();
        let c = frame.open(Some(&k), &mut scratch).unwrap();
        prop_assert_eq!(c.data, b"");
        prop_assert_eq!(c.pad_len, Some(pad_len));
        prop_assert_eq!(c.ext.len(), ext.len());
        for (got, (id, value)) in c.ext.iter().zip(&ext) {
            prop_assert_eq!(got.id, *id);
            if *id != b'J' {
                prop_assert_eq!(got.value, value.as_bytes());
            }
        }
    }

    #[test]
    fn json_shaped_j_blocks_never_name_a_path(
        json in "[ ]{0,2}[\\[{][ -Z^-z\\[\\]{}\",:]{0,60}",
        path in prop::option::of("[0-9A-Za-z]{1,8}"),
        token in prop::sample::select(vec!["SIA-DCS", "XNM", "NULL"]),
    ) {
        let mut ext: Vec<(u8, &[u8])> = vec![(b'J', json.as_bytes())];
        if let Some(p) = &path {
            ext.push((b'G', p.as_bytes()));
        }
        let raw = clear_frame(token, b"#1234|Nri1/BA01", &ext);
        let d = run_decide(&raw);
        if let Some(heard) = &d.heard {
            prop_assert!(!heard.path.starts_with('J'), "{} from {:?}", heard.path, json);
            if let Some(p) = &path {
                prop_assert_eq!(heard.path.as_str(), format!("G{p}"));
            }
        }
        for e in &d.events {
            prop_assert_eq!(e.network_path.as_deref(), path.as_deref());
        }
    }

    #[test]
    fn key_values_are_never_kept(
        key in "[0-9a-fA-F]{32,64}",
        before in prop::collection::vec((prop::sample::select(b"GJLIS".to_vec()), "[ -Z^-z|]{0,20}"), 0..3),
        token in prop::sample::select(vec!["SIA-DCS", "ADM-CID", "NULL", "XNM", "RSP"]),
        encrypted in any::<bool>(),
        broken in any::<bool>(),
    ) {
        let mut ext: Vec<(u8, &[u8])> = before.iter().map(|(id, v)| (*id, v.as_bytes())).collect();
        ext.push((b'K', key.as_bytes()));
        let data: &[u8] = if token == "ADM-CID" { b"#1234|1130 01 015" } else { b"#1234|Nri1/BA01" };
        let mut raw = if encrypted {
            sealed_frame(token, data, &ext)
        } else {
            clear_frame(token, data, &ext)
        };
        if broken {
            // A frame that does not parse any more (wrong length): masked byte by byte.
            raw.insert(raw.len() - 1, b' ');
        }
        let d = run_decide(&raw);
        let shown = d.raw_text(&raw);
        prop_assert!(!shown.contains(key.as_str()), "{}", shown);
        for e in &d.events {
            let json = serde_json::to_string(e).unwrap();
            prop_assert!(!json.contains(key.as_str()), "{}", json);
        }
        if !broken {
            prop_assert_eq!(d.key_blocks, 1);
        }
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

/// `body` framed: LF, CRC, length, body, CR.
fn frame_of(body: &[u8]) -> Vec<u8> {
    let crc = crc::Crc::<u16>::new(&crc::CRC_16_ARC).checksum(body);
    let mut raw = format!("\n{crc:04X}{:04X}", body.len()).into_bytes();
    raw.extend_from_slice(body);
    raw.push(b'\r');
    raw
}

const KEY_HEX: &str = "000102030405060708090A0B0C0D0E0F";

fn spec<'a>(token: &'a str, data: &'a [u8], ext: &'a [(u8, &'a [u8])]) -> FrameSpec<'a> {
    FrameSpec {
        token,
        seq: "0001",
        receiver: None,
        line: "0",
        account: "1234",
        data,
        ext,
        timestamp: Some(UtcDateTime::from_unix_timestamp(1_705_320_010).unwrap()),
        form: CrcForm::Ascii,
    }
}

fn clear_frame(token: &str, data: &[u8], ext: &[(u8, &[u8])]) -> Vec<u8> {
    let mut raw = Vec::new();
    encode(&spec(token, data, ext), None, &[0; 16], &mut raw);
    raw
}

fn sealed_frame(token: &str, data: &[u8], ext: &[(u8, &[u8])]) -> Vec<u8> {
    let key = Key::from_hex(KEY_HEX).unwrap();
    let mut raw = Vec::new();
    encode(&spec(token, data, ext), Some(&key), &[0x33; 16], &mut raw);
    raw
}

/// The decision for `raw` from account 1234 (key [`KEY_HEX`]), at the frames' own time.
fn run_decide(raw: &[u8]) -> Decision {
    let mut accounts = AccountTable::with_policy(UnknownPolicy::Accept);
    accounts.insert(
        "1234",
        Account {
            key: Some(Key::from_hex(KEY_HEX).unwrap()),
            encryption: Encryption::Optional,
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
    decide(
        raw,
        &arrival,
        &accounts,
        &TimePolicy::default(),
        &NothingSeen,
        &[0; 16],
    )
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
