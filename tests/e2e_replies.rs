//! End to end: every reply the daemon sends, over TCP and UDP, clear and encrypted, as a
//! panel sees it on the wire; and what the station sees (stdout events, `tocsin history`,
//! `/metrics`).

mod common;

use std::time::Duration;

use common::*;
use time::UtcDateTime;

const H128: &str = "000102030405060708090A0B0C0D0E0F";
const H192: &str = "8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B";
const H256: &str = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4";
const A128: &str = "tocsin-e2e-k-128";
const A192: &str = "tocsin-e2e-key-192-bits!";
const A256: &str = "tocsin-e2e-ascii-key-256-bits-ok";
const REQ: &str = "required-key-016";

fn config() -> String {
    format!(
        r#"
[receiver]
id = "e2e-replies"

[accounts]
unknown = "reject"

[[account]]
id = "1001"

[[account]]
id = "1128"
key = "{H128}"
key_encoding = "hex"

[[account]]
id = "1192"
key = "{H192}"
key_encoding = "hex"

[[account]]
id = "1256"
key = "{H256}"
key_encoding = "hex"

[[account]]
id = "2128"
key = "{A128}"
key_encoding = "ascii"

[[account]]
id = "2192"
key = "{A192}"
key_encoding = "ascii"

[[account]]
id = "2256"
key = "{A256}"
key_encoding = "ascii"

[[account]]
id = "3001"
key = "{REQ}"
key_encoding = "ascii"
encryption = "required"
"#
    )
}

/// (account, key) for every configured key size and encoding.
fn keyed_accounts() -> Vec<(&'static str, tocsin::protocol::crypto::Key, u16)> {
    vec![
        ("1128", key_hex(H128), 128),
        ("1192", key_hex(H192), 192),
        ("1256", key_hex(H256), 256),
        ("2128", key_ascii(A128), 128),
        ("2192", key_ascii(A192), 192),
        ("2256", key_ascii(A256), 256),
    ]
}

fn frames_total(rx: &Rx, labels: &[(&str, &str)]) -> f64 {
    rx.d.metrics().sum("tocsin_frames_total", labels)
}

fn assert_nak(reply: &[u8], what: &str) {
    let v = view(reply);
    assert_eq!(v.token, "NAK", "{what}: {}", esc(reply));
    assert!(!v.encrypted, "{what}: NAK is never encrypted");
    assert_eq!(v.seq, "0000", "{what}: {}", esc(reply));
    assert_eq!(v.receiver.as_deref(), Some("0"), "{what}: {}", esc(reply));
    assert_eq!(v.line, "0", "{what}: {}", esc(reply));
    assert!(v.placeholder, "{what}: NAK uses A0: {}", esc(reply));
    let t = v
        .timestamp
        .unwrap_or_else(|| panic!("{what}: NAK without receiver time: {}", esc(reply)));
    assert_now(t, what);
    assert!(
        reply[9..].starts_with(b"\"NAK\"0000R0L0A0[]_"),
        "{what}: {}",
        esc(reply)
    );
}

#[test]
fn clear_ack_echoes_the_header_for_sia_cid_and_null_over_tcp_and_udp() {
    let mut rx = start(&config());
    let mut sent = Vec::new();
    for (t, transport) in ["tcp", "udp"].into_iter().enumerate() {
        let base = 10 * (t as u16 + 1);
        let cases = [
            Fb::sia("1001", base + 1, "Nri1/BA01").rl(Some("7A"), "3"),
            Fb::cid("1001", base + 2, "1130 01 015").rl(None, "0"),
            Fb::null("1001", base + 3).rl(Some("123456"), "ABCDEF"),
            Fb::sia("1001", base + 4, "Nri2/FA07").rl(None, "").at(None),
            Fb::cid("1001", base + 5, "3401 02 007").rl(Some("1"), "1"),
        ];
        for fb in cases {
            let frame = fb.clear();
            let reply = exchange(transport, rx.d.addr, &frame);
            assert_eq!(
                esc(&reply),
                esc(&fb.expected_reply("ACK")),
                "{transport} reply to {}",
                esc(&frame)
            );
            sent.push((transport, fb, frame));
        }
    }

    // One event per SIA/CID frame on stdout, none for NULL polls.
    let printed = rx.d.wait_events(8, |e| s(e, "account") == "1001");
    let history = rx.d.history();
    for (transport, fb, frame) in &sent {
        let out = frame_events(&printed, "1001", &fb.seq);
        let hist = frame_events(&history, "1001", &fb.seq);
        if fb.token == "NULL" {
            assert!(out.is_empty() && hist.is_empty(), "NULL made an event");
            continue;
        }
        assert_eq!(out.len(), 1, "stdout events for seq {}: {out:?}", fb.seq);
        assert_eq!(hist.len(), 1, "history events for seq {}: {hist:?}", fb.seq);
        let e = out[0];
        assert_eq!(e["id"], hist[0]["id"], "stdout and history agree");
        assert_eq!(s(e, "transport"), *transport);
        assert_eq!(s(e, "protocol"), fb.token);
        assert_eq!(s(e, "receiver"), "e2e-replies");
        assert_eq!(e["encrypted"], false);
        assert_eq!(s(e, "line_no"), fb.line);
        assert_eq!(e["receiver_no"].as_str(), fb.receiver.as_deref());
        assert_eq!(s(e, "raw"), esc(frame));
        let code = match (fb.token, fb.data.as_str()) {
            ("SIA-DCS", d) if d.contains("BA") => "BA",
            ("SIA-DCS", _) => "FA",
            (_, d) if d.contains("1130") => "130",
            _ => "401",
        };
        assert_eq!(s(e, "code"), code, "{e}");
    }
    assert_eq!(history.len(), 8, "history: {history:#?}");

    for t in ["tcp", "udp"] {
        let f = |token, reason| {
            frames_total(
                &rx,
                &[
                    ("transport", t),
                    ("token", token),
                    ("outcome", "ack"),
                    ("reason", reason),
                ],
            )
        };
        assert_eq!(f("SIA-DCS", "new"), 2.0, "{t} SIA-DCS");
        assert_eq!(f("ADM-CID", "new"), 2.0, "{t} ADM-CID");
        assert_eq!(f("NULL", "null"), 1.0, "{t} NULL");
    }
    rx.d.stop();
}

#[test]
fn encrypted_frames_get_an_encrypted_ack_with_every_key_size_and_encoding() {
    let mut rx = start(&config());
    let mut seq = 100;
    let mut expect_events = Vec::new();
    for (account, key, bits) in keyed_accounts() {
        for transport in ["tcp", "udp"] {
            let frames = [
                Fb::sia(account, seq, "Nri1/BA02").rl(Some("AB"), "12"),
                Fb::cid(account, seq + 1, "1130 01 003"),
                Fb::null(account, seq + 2),
            ];
            seq += 3;
            for fb in frames {
                let frame = fb.sealed(&key);
                let reply = exchange(transport, rx.d.addr, &frame);
                let what = format!("AES-{bits} {account} {transport} {}", fb.token);
                let v = view(&reply);
                assert_eq!(v.token, "ACK", "{what}: {}", esc(&reply));
                assert!(v.encrypted, "{what}: reply must be *ACK: {}", esc(&reply));
                assert_eq!(v.seq, fb.seq, "{what}");
                assert_eq!(v.receiver, fb.receiver, "{what}");
                assert_eq!(v.line, fb.line, "{what}");
                assert_eq!(v.account.as_deref(), Some(account), "{what}");
                let t = open_ack(v.cipher.as_deref().unwrap(), &key);
                assert_now(t, &what);
                if fb.token != "NULL" {
                    expect_events.push((account, fb.seq.clone(), transport, fb.token));
                }
            }
        }
    }
    let history = rx.d.history();
    let printed =
        rx.d.wait_events(expect_events.len(), |e| e["encrypted"] == true);
    for (account, seq, transport, token) in &expect_events {
        for (src, evs) in [("stdout", &printed), ("history", &history)] {
            let found = frame_events(evs, account, seq);
            assert_eq!(found.len(), 1, "{src}: {account} {seq}: {found:?}");
            let e = found[0];
            assert_eq!(e["encrypted"], true);
            assert_eq!(s(e, "transport"), *transport);
            assert_eq!(s(e, "protocol"), *token);
            assert!(!s(e, "panel_time").is_empty(), "panel time kept: {e}");
        }
    }
    assert_eq!(history.len(), expect_events.len());
    assert_eq!(
        frames_total(
            &rx,
            &[("token", "*SIA-DCS"), ("outcome", "ack"), ("reason", "new")]
        ),
        12.0
    );
    assert_eq!(
        frames_total(
            &rx,
            &[("token", "*NULL"), ("outcome", "ack"), ("reason", "null")]
        ),
        12.0
    );
    rx.d.stop();
}

#[test]
fn timestamp_outside_the_window_gets_a_nak_with_receiver_time() {
    let mut rx = start(&config());
    let key = key_hex(H256);
    let now = UtcDateTime::now();
    let stale = Some(now - Duration::from_secs(120));
    let future = Some(now + Duration::from_secs(120));
    for (i, transport) in ["tcp", "udp"].into_iter().enumerate() {
        let fb = Fb::sia("1256", 200 + i as u16, "Nri1/BA01").at(stale);
        let reply = exchange(transport, rx.d.addr, &fb.sealed(&key));
        assert_nak(&reply, &format!("{transport} stale"));
    }
    let mut tcp = Tcp::connect(rx.d.addr);
    let fb = Fb::sia("1256", 210, "Nri1/BA01").at(future);
    assert_nak(&tcp.exchange(&fb.sealed(&key)), "tcp future");
    // The panel resynchronises and sends again on the same connection: accepted.
    let fb = Fb::sia("1256", 210, "Nri1/BA01");
    let v = view(&tcp.exchange(&fb.sealed(&key)));
    assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true));

    let history = rx.d.history();
    assert!(frame_events(&history, "1256", "0200").is_empty());
    assert!(frame_events(&history, "1256", "0201").is_empty());
    assert_eq!(
        frame_events(&history, "1256", "0210").len(),
        1,
        "{history:?}"
    );
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(
        frames_total(&rx, &[("outcome", "nak"), ("reason", "timestamp")]),
        3.0
    );
    assert_eq!(
        frames_total(
            &rx,
            &[
                ("transport", "udp"),
                ("outcome", "nak"),
                ("reason", "timestamp")
            ]
        ),
        1.0
    );
    rx.d.stop();
}

#[test]
fn undecryptable_frames_get_a_nak_wrong_key_and_no_key() {
    let mut rx = start(&config());
    // Right size, wrong bytes; and a key of another size.
    let wrong = [key_hex("0F0E0D0C0B0A09080706050403020100"), key_ascii(A256)];
    let mut seq = 300;
    for transport in ["tcp", "udp"] {
        for k in &wrong {
            let fb = Fb::sia("1128", seq, "Nri1/BA01");
            seq += 1;
            let reply = exchange(transport, rx.d.addr, &fb.sealed(k));
            assert_nak(&reply, &format!("{transport} wrong key"));
        }
        // 1001 has no key configured: an encrypted frame from it cannot be read.
        let fb = Fb::sia("1001", seq, "Nri1/BA01");
        seq += 1;
        let reply = exchange(transport, rx.d.addr, &fb.sealed(&key_hex(H128)));
        assert_nak(&reply, &format!("{transport} no key"));
    }
    assert_eq!(
        frames_total(&rx, &[("outcome", "nak"), ("reason", "decrypt")]),
        4.0
    );
    assert_eq!(
        frames_total(
            &rx,
            &[
                ("token", "*SIA-DCS"),
                ("outcome", "nak"),
                ("reason", "no_key")
            ]
        ),
        2.0
    );
    let stderr = rx.d.wait_stderr("no key is configured");
    assert!(stderr.contains("frame rejected"), "{stderr}");
    // Nothing was accepted.
    let history = rx.d.history();
    assert!(history.is_empty(), "{history:#?}");
    // The right key still works afterwards.
    let fb = Fb::sia("1128", seq, "Nri1/BA01");
    let v = view(&exchange("tcp", rx.d.addr, &fb.sealed(&key_hex(H128))));
    assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true));
    rx.d.stop();
}

#[test]
fn clear_frame_from_an_encryption_required_account_is_refused_and_recorded() {
    let mut rx = start(&config());
    for (i, transport) in ["tcp", "udp"].into_iter().enumerate() {
        let fb = Fb::sia("3001", 400 + i as u16, "Nri1/BA01");
        let reply = exchange(transport, rx.d.addr, &fb.clear());
        assert_nak(&reply, &format!("{transport} clear on required"));
    }
    // Encrypted with its key: accepted.
    let fb = Fb::sia("3001", 410, "Nri1/BA01");
    let v = view(&exchange("tcp", rx.d.addr, &fb.sealed(&key_ascii(REQ))));
    assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true));

    let printed =
        rx.d.wait_events(2, |e| s(e, "code") == "encryption_required");
    for e in &printed {
        assert_eq!(s(e, "account"), "3001");
        assert_eq!(s(e, "class"), "trouble", "{e}");
        assert_eq!(s(e, "protocol"), "tocsin", "{e}");
    }
    let history = rx.d.history();
    let refused: Vec<_> = history
        .iter()
        .filter(|e| s(e, "code") == "encryption_required")
        .collect();
    assert_eq!(refused.len(), 2, "{history:#?}");
    // The refused frames' own content never became an alarm.
    assert!(frame_events(&history, "3001", "0400").is_empty());
    assert!(frame_events(&history, "3001", "0401").is_empty());
    assert_eq!(frame_events(&history, "3001", "0410").len(), 1);
    assert_eq!(
        frames_total(
            &rx,
            &[("outcome", "nak"), ("reason", "encryption_required")]
        ),
        2.0
    );
    rx.d.stop();
}

#[test]
fn unknown_account_is_refused_with_nak_and_an_event() {
    let mut rx = start(&config());
    for (i, transport) in ["tcp", "udp"].into_iter().enumerate() {
        let fb = Fb::sia("9999", 500 + i as u16, "Nri1/BA01");
        assert_nak(
            &exchange(transport, rx.d.addr, &fb.clear()),
            &format!("{transport} unknown"),
        );
    }
    let printed = rx.d.wait_events(2, |e| s(e, "code") == "unknown_account");
    assert!(
        printed.iter().all(|e| s(e, "account") == "9999"),
        "{printed:?}"
    );
    let history = rx.d.history();
    assert_eq!(history.len(), 2, "{history:#?}");
    assert!(history.iter().all(|e| s(e, "code") == "unknown_account"));
    assert_eq!(
        frames_total(&rx, &[("outcome", "nak"), ("reason", "unknown_account")]),
        2.0
    );
    rx.d.stop();
}

#[test]
fn unknown_token_gets_duh() {
    let mut rx = start(&config());
    for (i, transport) in ["tcp", "udp"].into_iter().enumerate() {
        let fb = Fb::sia("1001", 600 + i as u16, "Nri1/BA01")
            .token("XYZ-ABC")
            .rl(Some("5"), "2");
        let reply = exchange(transport, rx.d.addr, &fb.clear());
        assert_eq!(esc(&reply), esc(&fb.expected_reply("DUH")), "{transport}");
    }
    assert_eq!(
        frames_total(&rx, &[("outcome", "duh"), ("reason", "unknown_token")]),
        2.0
    );
    assert!(rx.d.history().is_empty());
    rx.d.stop();
}

/// Flips one CRC digit.
fn bad_crc(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[1] = if f[1] == b'0' { b'1' } else { b'0' };
    f
}

#[test]
fn bad_crc_gets_no_reply_and_the_connection_stays_usable() {
    let mut rx = start(&config());
    // TCP: the bad frame gets nothing, so the first reply on the connection is the good
    // frame's ACK.
    let mut tcp = Tcp::connect(rx.d.addr);
    let bad = Fb::sia("1001", 701, "Nri1/BA01");
    tcp.send(&bad_crc(&bad.clear()));
    let good = Fb::sia("1001", 702, "Nri1/BA01");
    assert_eq!(
        esc(&tcp.exchange(&good.clear())),
        esc(&good.expected_reply("ACK"))
    );
    // Still usable for more.
    let more = Fb::cid("1001", 703, "1130 01 001");
    assert_eq!(
        esc(&tcp.exchange(&more.clear())),
        esc(&more.expected_reply("ACK"))
    );

    // UDP: same, and no late reply for the bad datagram either.
    let udp = Udp::new(rx.d.addr);
    let bad = Fb::sia("1001", 711, "Nri1/BA01");
    udp.send(&bad_crc(&bad.clear()));
    let good = Fb::sia("1001", 712, "Nri1/BA01");
    assert_eq!(
        esc(&udp.exchange(&good.clear())),
        esc(&good.expected_reply("ACK"))
    );
    assert_eq!(udp.reply_within(Duration::from_millis(500)), None);

    assert_eq!(
        frames_total(&rx, &[("outcome", "none"), ("reason", "crc")]),
        2.0
    );
    let history = rx.d.history();
    assert!(frame_events(&history, "1001", "0701").is_empty());
    assert!(frame_events(&history, "1001", "0711").is_empty());
    assert_eq!(history.len(), 3, "{history:#?}");
    rx.d.stop();
}

#[test]
fn garbage_before_a_frame_is_skipped() {
    let mut rx = start(&config());
    let mut tcp = Tcp::connect(rx.d.addr);
    let fb = Fb::sia("1001", 801, "Nri1/BA01");
    let mut bytes = b"\0\0GARBAGE 12345 not a frame\r\nLFQ=600#CRC=A1B2##\r\n".to_vec();
    bytes.extend_from_slice(b"SR0001L0001    006969XX    [ID00000000]\r\n\x14");
    bytes.extend_from_slice(&fb.clear());
    tcp.send(&bytes);
    assert_eq!(esc(&tcp.reply()), esc(&fb.expected_reply("ACK")));
    // And the connection goes on.
    let fb2 = Fb::sia("1001", 802, "Nri1/BA02");
    assert_eq!(
        esc(&tcp.exchange(&fb2.clear())),
        esc(&fb2.expected_reply("ACK"))
    );
    assert!(
        rx.d.metrics()
            .sum("tocsin_junk_total", &[("transport", "tcp")])
            >= 1.0
    );
    let history = rx.d.history();
    assert_eq!(frame_events(&history, "1001", "0801").len(), 1);
    assert_eq!(frame_events(&history, "1001", "0802").len(), 1);
    rx.d.stop();
}

#[test]
fn several_frames_in_one_write_and_one_frame_over_several_writes() {
    let mut rx = start(&config());
    let mut tcp = Tcp::connect(rx.d.addr);
    let batch = [
        Fb::sia("1001", 901, "Nri1/BA01"),
        Fb::cid("1001", 902, "1130 01 002"),
        Fb::null("1001", 903),
        Fb::sia("1128", 904, "Nri1/BA04"),
    ];
    let key = key_hex(H128);
    let mut bytes = Vec::new();
    for fb in &batch[..3] {
        bytes.extend_from_slice(&fb.clear());
    }
    bytes.extend_from_slice(&batch[3].sealed(&key));
    tcp.send(&bytes);
    for fb in &batch[..3] {
        assert_eq!(esc(&tcp.reply()), esc(&fb.expected_reply("ACK")));
    }
    let v = view(&tcp.reply());
    assert_eq!(
        (v.token.as_str(), v.encrypted, v.seq.as_str()),
        ("ACK", true, "0904")
    );

    // One frame trickled in pieces, cut inside the header, the body and before the CR.
    let fb = Fb::sia("1001", 905, "Nri1/BA05");
    let frame = fb.clear();
    let cuts = [1, 3, 9, 10, 20, frame.len() - 1, frame.len()];
    let mut from = 0;
    for to in cuts {
        tcp.send(&frame[from..to]);
        from = to;
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(esc(&tcp.reply()), esc(&fb.expected_reply("ACK")));

    let history = rx.d.history();
    for seq in ["0901", "0902", "0905"] {
        assert_eq!(frame_events(&history, "1001", seq).len(), 1, "{seq}");
    }
    assert_eq!(frame_events(&history, "1128", "0904").len(), 1);
    assert_eq!(history.len(), 4, "{history:#?}");
    rx.d.stop();
}

/// The DC-09-2026 answers, chosen per account in the accounts CSV and by default in
/// `[receiver]`: a NAK echoing the panel's `R`, `L` and `#acct`, and a 16–31-byte `*ACK` pad;
/// accounts left on 2013 keep the fixed NAK.
#[test]
fn reply_dialect_from_the_accounts_csv_and_the_receiver_default() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "accounts.csv",
        &format!(
            "id,key,key_encoding,reply_dialect\n\
             4026,{H128},hex,2026\n\
             4013,{H128},hex,2013\n\
             4000,{H128},hex,\n"
        ),
    );
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[receiver]\nid = \"e2e-dialect\"\nreply_dialect = \"2026\"\n\n\
         [accounts]\nunknown = \"reject\"\nfile = \"accounts.csv\"\n",
    );
    let mut d = Daemon::start(&cfg, &dir.path().join("data"));
    let key = key_hex(H128);
    let stale = Some(UtcDateTime::now() - Duration::from_secs(300));
    for (account, dialect) in [("4026", "2026"), ("4013", "2013"), ("4000", "2026")] {
        for transport in ["tcp", "udp"] {
            let what = format!("{transport} account {account}");
            let fb = Fb::sia(account, 1, "Nri1/BA01").rl(Some("5A"), "3F");
            let ack = exchange(transport, d.addr, &fb.sealed(&key));
            let v = view(&ack);
            assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true), "{what}");
            let start = ack.iter().position(|&b| b == b'[').unwrap() + 1;
            let plain =
                tocsin::protocol::crypto::open(&key, &ack[start..ack.len() - 1], &mut Vec::new())
                    .map(|o| o.pad_len)
                    .unwrap();
            let pads = if dialect == "2026" { 16..=31 } else { 1..=16 };
            assert!(pads.contains(&plain), "{what}: pad {plain}");

            let fb = Fb::sia(account, 2, "Nri1/BA01")
                .rl(Some("5A"), "3F")
                .at(stale);
            let nak = exchange(transport, d.addr, &fb.sealed(&key));
            if dialect == "2013" {
                assert_nak(&nak, &what);
            } else {
                let v = view(&nak);
                assert_eq!(v.token, "NAK", "{what}: {}", esc(&nak));
                assert!(
                    nak[9..].starts_with(format!("\"NAK\"0000R5AL3F#{account}[]_").as_bytes()),
                    "{what}: {}",
                    esc(&nak)
                );
                assert_now(v.timestamp.expect("NAK time"), &what);
            }
        }
    }
    // An unknown account gets the receiver's default: the 2026 form, its own account echoed.
    let fb = Fb::sia("9999", 3, "Nri1/BA01");
    let nak = exchange("tcp", d.addr, &fb.clear());
    assert!(
        nak[9..].starts_with(b"\"NAK\"0000L0#9999[]_"),
        "{}",
        esc(&nak)
    );
    d.stop();
}
