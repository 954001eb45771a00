//! End to end: an ACK is a transfer of responsibility. Whatever happens to the process
//! (SIGKILL at any moment, SIGTERM under load, restarts), every frame that got an ACK is in
//! the journal exactly once, and retransmissions are acknowledged but recorded once.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

const PANELS: usize = 8;
const KILL_CYCLES: usize = 20;

const KEY: &str = "000102030405060708090A0B0C0D0E0F";

fn config() -> String {
    format!(
        r#"
[receiver]
id = "e2e-durability"

[output]
stdout = false

[[account]]
id = "5002"
key = "{KEY}"
key_encoding = "hex"
"#
    )
}

/// What the panels know: frames written to the socket, and frames that got their ACK.
#[derive(Default)]
struct Ledger {
    sent: HashSet<(String, String)>,
    acked: HashSet<(String, String)>,
    /// NAKs (the journal refused the frame).
    naks: u64,
    /// Replies that were neither the expected ACK, a NAK, nor a broken connection.
    odd: Vec<String>,
}

struct Load {
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    panels: Vec<JoinHandle<()>>,
}

impl Load {
    /// `PANELS` panels, each with its own account, each sending new frames one after the
    /// other and waiting for each ACK; reconnecting whenever the receiver goes away.
    fn start(addr: SocketAddr, first_account: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let panels = (0..PANELS)
            .map(|i| {
                // Panel i uses accounts `<first><i:02><generation:03>`: a new generation
                // when its sequence numbers run out, so every frame stays unique.
                let account =
                    move |generation: u32| format!("{first_account}{i:02}{generation:03}");
                let stop = Arc::clone(&stop);
                let ledger = Arc::clone(&ledger);
                std::thread::spawn(move || panel(addr, account, &stop, &ledger))
            })
            .collect();
        Load {
            stop,
            ledger,
            panels,
        }
    }

    fn acked(&self) -> usize {
        self.ledger.lock().unwrap().acked.len()
    }

    /// Waits until the panels have had `n` more ACKs than `from`.
    fn wait_acks(&self, from: usize, n: usize, what: &str) {
        let deadline = Instant::now() + WAIT;
        while self.acked() < from + n {
            assert!(Instant::now() < deadline, "{what}: no ACKs coming in");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::Release);
        for p in self.panels {
            p.join().expect("panel thread panicked");
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .expect("ledger still shared")
            .into_inner()
            .unwrap()
    }
}

fn panel(
    addr: SocketAddr,
    account_of: impl Fn(u32) -> String,
    stop: &AtomicBool,
    ledger: &Mutex<Ledger>,
) {
    let mut generation = 0;
    let mut account = account_of(generation);
    let mut seq: u16 = 1;
    let mut conn: Option<Tcp> = None;
    while !stop.load(Ordering::Acquire) {
        if seq > 9999 {
            generation += 1;
            account = account_of(generation);
            seq = 1;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match Tcp::try_connect(addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let fb = Fb::sia(&account, seq, &format!("Nri1/BA{:02}", seq % 100));
        let id = (account.clone(), fb.seq.clone());
        seq += 1;
        // Counted as sent before the write: part of it may reach the receiver even if the
        // write fails.
        ledger.lock().unwrap().sent.insert(id.clone());
        if c.try_send(&fb.clear()).is_err() {
            conn = None;
            continue;
        }
        match c.try_reply() {
            Ok(r) if r == fb.expected_reply("ACK") => {
                ledger.lock().unwrap().acked.insert(id);
            }
            Ok(r) if view(&r).token == "NAK" => ledger.lock().unwrap().naks += 1,
            Ok(r) => {
                ledger
                    .lock()
                    .unwrap()
                    .odd
                    .push(format!("{account}/{}: {}", fb.seq, esc(&r)));
                conn = None;
            }
            Err(_) => conn = None,
        }
    }
}

/// Counts history events per (account, seq).
fn counts(data_dir: &std::path::Path) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for e in history(data_dir, &[]) {
        *m.entry((s(&e, "account").to_string(), s(&e, "seq").to_string()))
            .or_insert(0) += 1;
    }
    m
}

/// Every acked frame exactly once, every other sent frame at most once, nothing else.
fn check(ledger: &Ledger, counts: &HashMap<(String, String), usize>, what: &str) {
    assert!(
        ledger.odd.is_empty(),
        "{what}: odd replies: {:?}",
        ledger.odd
    );
    let lost: Vec<_> = ledger
        .acked
        .iter()
        .filter(|k| !counts.contains_key(*k))
        .collect();
    assert!(lost.is_empty(), "{what}: ACKed but lost: {lost:?}");
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "{what}: recorded more than once: {dup:?}");
    let unknown: Vec<_> = counts
        .keys()
        .filter(|k| !ledger.sent.contains(*k))
        .collect();
    assert!(unknown.is_empty(), "{what}: never sent: {unknown:?}");
}

#[test]
fn every_acked_frame_survives_repeated_sigkill_exactly_once() {
    let dir = tempdir();
    let cfg = write_file(dir.path(), "tocsin.toml", &config());
    let data = dir.path().join("data");
    let mut d = Daemon::start(&cfg, &data);
    let load = Load::start(d.addr, 7000);
    let mut kill_delays = Vec::new();
    for cycle in 0..KILL_CYCLES {
        if cycle > 0 {
            d.restart();
        }
        // Load is flowing on this run ...
        load.wait_acks(load.acked(), 1, &format!("cycle {cycle}"));
        // ... and the process dies at a random moment of it.
        let delay = rand::random_range(0..400u64);
        kill_delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        d.kill9();
        // A crashed receiver's data directory is readable as is (torn tail and all), and
        // already holds everything acked so far.
        if cycle % 5 == 4 {
            let snapshot_acked = load.ledger.lock().unwrap().acked.clone();
            let c = counts(&data);
            let lost: Vec<_> = snapshot_acked
                .iter()
                .filter(|k| !c.contains_key(*k))
                .collect();
            assert!(
                lost.is_empty(),
                "after kill {cycle}: acked but lost: {lost:?}"
            );
        }
    }
    // A last run, then a clean stop.
    d.restart();
    load.wait_acks(load.acked(), 1, "final run");
    let ledger = load.finish();
    d.stop();

    let c = counts(&data);
    check(&ledger, &c, "after 20 SIGKILLs");
    let unacked_present = ledger
        .sent
        .iter()
        .filter(|k| !ledger.acked.contains(*k) && c.contains_key(*k))
        .count();
    eprintln!(
        "kill cycles {KILL_CYCLES}, delays {kill_delays:?} ms: sent {}, acked {}, in history {} ({} of them never acked)",
        ledger.sent.len(),
        ledger.acked.len(),
        c.len(),
        unacked_present
    );
    assert!(ledger.acked.len() > KILL_CYCLES);
}

#[test]
fn a_failed_fsync_under_load_is_recovered_in_process_and_loses_nothing() {
    let dir = tempdir();
    let cfg = write_file(dir.path(), "tocsin.toml", &config());
    let data = dir.path().join("data");
    // The journal's fault hook (debug builds only): a number written here fails that many
    // fdatasyncs.
    let trigger = dir.path().join("fail-fsync");
    let trigger_text = trigger.to_str().unwrap();
    let mut d =
        Daemon::start_with_env(&cfg, &data, &[(tocsin::journal::faults::ENV, trigger_text)]);
    let pid = d.pid();
    let load = Load::start(d.addr, 9100);
    load.wait_acks(0, 100, "before the failure");
    std::fs::write(&trigger, "1").unwrap();
    d.wait_metric("tocsin_journal_reopens_total", &[], 1.0);
    assert!(!trigger.exists(), "the fault was injected");
    load.wait_acks(load.acked(), 100, "after the re-open");
    let ledger = load.finish();
    assert!(d.is_running() && d.pid() == pid, "the daemon was restarted");
    assert_eq!(d.get("/readyz").unwrap().0, 200);
    let m = d.metrics();
    assert!(ledger.naks >= 1, "the failed sync's frames got NAK");
    assert!(m.sum("tocsin_journal_refused_total", &[("reason", "failed")]) >= 1.0);
    let log = d.stderr();
    assert!(log.contains("journal re-opened after a failure"), "{log}");
    d.stop();
    let c = counts(&data);
    check(&ledger, &c, "after a failed fsync");
    // The refused frames were discarded with what followed the last good sync.
    let naked_present = ledger
        .sent
        .iter()
        .filter(|k| !ledger.acked.contains(*k) && c.contains_key(*k))
        .count();
    eprintln!(
        "failed fsync: acked {}, NAKs {}, refused frames found in the journal {naked_present}",
        ledger.acked.len(),
        ledger.naks
    );
}

#[test]
fn sigterm_under_load_exits_zero_quickly_and_keeps_every_acked_frame() {
    let dir = tempdir();
    let cfg = write_file(dir.path(), "tocsin.toml", &config());
    let data = dir.path().join("data");
    let mut d = Daemon::start(&cfg, &data);
    let load = Load::start(d.addr, 8000);
    load.wait_acks(0, 100, "before SIGTERM");
    let (status, took) = d.sigterm(Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM under load: {status}\n{}",
        d.stderr()
    );
    let ledger = load.finish();
    check(&ledger, &counts(&data), "after SIGTERM");
    eprintln!(
        "SIGTERM under load: exit 0 after {took:?}; acked {}",
        ledger.acked.len()
    );
}

#[test]
fn a_retransmission_is_acked_again_and_recorded_once() {
    let mut rx = start(&config());
    let addr = rx.d.addr;
    // Clear: the very same bytes, over a new connection, the same connection, and UDP
    // (a dual-path panel).
    let fb = Fb::sia("5001", 1, "Nri1/BA01");
    let frame = fb.clear();
    let ack = fb.expected_reply("ACK");
    let mut tcp = Tcp::connect(addr);
    assert_eq!(esc(&tcp.exchange(&frame)), esc(&ack), "first copy");
    assert_eq!(esc(&tcp.exchange(&frame)), esc(&ack), "same connection");
    assert_eq!(
        esc(&exchange("tcp", addr, &frame)),
        esc(&ack),
        "new connection"
    );
    assert_eq!(esc(&exchange("udp", addr, &frame)), esc(&ack), "over UDP");

    // Encrypted: a retransmission has a fresh pad, so different bytes, same content.
    let key = key_hex(KEY);
    let fe = Fb::cid("5002", 2, "1130 01 004");
    let (a, b) = (fe.sealed(&key), fe.sealed(&key));
    assert_ne!(a, b, "fresh pad each time");
    for copy in [a, b] {
        let v = view(&exchange("tcp", addr, &copy));
        assert_eq!(
            (v.token.as_str(), v.encrypted, v.seq.as_str()),
            ("ACK", true, "0002")
        );
    }

    let m = rx.d.metrics();
    assert_eq!(
        m.sum(
            "tocsin_frames_total",
            &[("outcome", "ack"), ("reason", "duplicate")]
        ),
        4.0
    );
    assert_eq!(
        m.sum(
            "tocsin_frames_total",
            &[("outcome", "ack"), ("reason", "new")]
        ),
        2.0
    );
    rx.d.stop();
    let h = history(&rx.d.data_dir, &[]);
    assert_eq!(frame_events(&h, "5001", "0001").len(), 1, "{h:#?}");
    assert_eq!(frame_events(&h, "5002", "0002").len(), 1, "{h:#?}");
    assert_eq!(h.len(), 2, "{h:#?}");
}

#[test]
fn the_dedup_window_survives_a_restart_and_a_crash() {
    let mut rx = start(&config());
    let addr = rx.d.addr;
    let after_stop = Fb::sia("5001", 11, "Nri1/BA11");
    let after_kill = Fb::sia("5001", 12, "Nri1/BA12");
    for fb in [&after_stop, &after_kill] {
        assert_eq!(
            esc(&exchange("tcp", addr, &fb.clear())),
            esc(&fb.expected_reply("ACK"))
        );
    }
    rx.d.stop();
    rx.d.restart();
    assert_eq!(
        esc(&exchange("tcp", addr, &after_stop.clear())),
        esc(&after_stop.expected_reply("ACK")),
        "resent after a clean restart"
    );
    rx.d.kill9();
    rx.d.restart();
    assert_eq!(
        esc(&exchange("udp", addr, &after_kill.clear())),
        esc(&after_kill.expected_reply("ACK")),
        "resent after a crash"
    );
    assert_eq!(
        rx.d.metrics().sum(
            "tocsin_frames_total",
            &[("outcome", "ack"), ("reason", "duplicate")]
        ),
        1.0,
        "the resend after the crash is known as a duplicate"
    );
    rx.d.stop();
    let h = history(&rx.d.data_dir, &[]);
    assert_eq!(frame_events(&h, "5001", "0011").len(), 1, "{h:#?}");
    assert_eq!(frame_events(&h, "5001", "0012").len(), 1, "{h:#?}");
    assert_eq!(h.len(), 2, "{h:#?}");
}
