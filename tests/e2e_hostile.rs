//! End to end: hostile peers cost their sender, not the log or the journal. Random UDP
//! datagrams are counted as junk, never journaled; a peer trickling junk is closed when its
//! idle timeout runs out; a flood of rejected frames writes a few log lines and counts the
//! rest. (The latency side of hostile peers is measured by `benches/hostile/run.sh`.)

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn random_datagrams_are_junk_not_journal_records() {
    let mut rx = start("[receiver]\nid = \"e2e-hostile\"\n");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    for i in 0..500u32 {
        let len = 1 + (i as usize * 37) % 1400;
        let mut d: Vec<u8> = (0..len).map(|k| (k as u32 * 31 + i) as u8 | 0x20).collect();
        if i % 10 == 0 {
            // Starts like a frame, but no DC-09 envelope follows.
            d[0] = b'\n';
        }
        udp.send_to(&d, rx.d.addr).unwrap();
        sent += 1;
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    rx.d.wait_metric("tocsin_junk_total", &[("transport", "udp")], sent as f64);
    // The receiver still answers a panel over UDP.
    let fb = Fb::null("4242", 1);
    assert_eq!(
        esc(&exchange("udp", rx.d.addr, &fb.clear())),
        esc(&fb.expected_reply("ACK"))
    );
    let m = rx.d.metrics();
    assert_eq!(
        m.sum("tocsin_frames_total", &[("transport", "udp")]),
        1.0,
        "only the panel's frame was decided"
    );
    rx.d.stop();
    // Nothing of the junk is in the journal: one record, the NULL's.
    let records = tocsin::journal::JournalReader::open(&rx.d.data_dir)
        .unwrap()
        .count();
    assert_eq!(records, 1);
}

#[test]
fn a_peer_trickling_junk_is_closed_by_the_idle_timeout() {
    let rx = start("[receiver]\nid = \"e2e-hostile\"\n[limits]\nidle_timeout = \"2s\"\n");
    let mut slow = Tcp::connect(rx.d.addr);
    let t0 = Instant::now();
    let mut closed_after = None;
    while t0.elapsed() < Duration::from_secs(8) {
        // A byte that is not a frame, three times a second: each is junk, none a frame.
        if slow.try_send(b"x").is_err() || slow.closed_within(Duration::from_millis(300)) {
            closed_after = Some(t0.elapsed());
            break;
        }
    }
    let after = closed_after.expect("a junk trickle kept its connection past the idle timeout");
    assert!(
        after >= Duration::from_millis(1500),
        "closed too early: {after:?}"
    );
    // A panel is served meanwhile and after.
    let fb = Fb::sia("4243", 1, "Nri1/BA01");
    assert_eq!(
        esc(&exchange("tcp", rx.d.addr, &fb.clear())),
        esc(&fb.expected_reply("ACK"))
    );
}

#[test]
fn a_flood_of_rejected_frames_writes_a_few_log_lines() {
    let rx = start("[receiver]\nid = \"e2e-hostile\"\n[accounts]\nunknown = \"reject\"\n");
    let before = rx.d.stderr().lines().count();
    let mut tcp = Tcp::connect(rx.d.addr);
    let n = 300;
    for seq in 1..=n {
        let fb = Fb::sia("7777", seq, "Nri1/BA01");
        let reply = tcp.exchange(&fb.clear());
        assert_eq!(view(&reply).token, "NAK", "{}", esc(&reply));
    }
    rx.d.wait_metric(
        "tocsin_frames_total",
        &[("outcome", "nak"), ("reason", "unknown_account")],
        f64::from(n),
    );
    let log = rx.d.stderr();
    let lines: Vec<&str> = log.lines().skip(before).collect();
    let rejected = lines
        .iter()
        .filter(|l| l.contains("frame rejected"))
        .count();
    assert!(
        (1..=20).contains(&rejected),
        "{rejected} rejection lines for {n} rejected frames:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.len() <= 25,
        "{} log lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
}
