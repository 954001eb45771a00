//! A Sur-Gard automation output end to end: real `tocsin run` processes, panels on real
//! TCP sockets, and on the other side either `tocsin automation-sim` (the stand-in
//! automation computer, NAKing and staying silent now and then) or a misbehaving peer
//! written here byte by byte. What is checked is the delivery contract: every
//! acknowledged alarm reaches the automation, in order, at least once, across restarts of
//! either side; NAK and silence send a packet again; a packet refused every time is set
//! aside and reported; heartbeats go out only when the link is idle; a link down shows;
//! the output's cursor holds back retention; and the outage bar, short (a script of
//! `benches/`, run here on the debug binary).
//!
//! No timing assertions beyond "a heartbeat follows at least most of its interval of
//! silence": every wait is a generous bound on a hung test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, run_cli, s, tempdir, write_file, Daemon, Fb, Tcp, BIN, WAIT};
use serde_json::Value;
use tocsin::forward::surgard::read::Cutter;

const ACK: u8 = 0x06;
const NAK: u8 = 0x15;

/// `tocsin automation-sim`, its JSON lines collected; killed on drop.
struct Sim {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Sim {
    fn start(port: u16, flags: &[&str], lines: Arc<Mutex<Vec<Value>>>) -> Sim {
        let mut child = Command::new(BIN)
            .args(["automation-sim", "--listen", &format!("127.0.0.1:{port}")])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn automation-sim");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        err.read_line(&mut first).expect("automation-sim stderr");
        assert!(first.contains("listening on"), "automation-sim: {first}");
        std::thread::spawn(move || for _ in err.lines() {});
        let out = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line).expect("automation-sim prints JSON");
                sink.lock().unwrap().push(v);
            }
        });
        Sim { child, lines }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
    }

    fn acked_events(&self) -> Vec<String> {
        acked_events(&self.lines.lock().unwrap())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Event packets (not heartbeats) the automation acknowledged, in order.
fn acked_events(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| s(l, "answer") == "ack" && s(l, "kind") != "heartbeat")
        .map(|l| s(l, "raw").to_string())
        .collect()
}

/// The first copy of each packet, in order of first arrival.
fn first_copies(acked: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    acked
        .iter()
        .filter(|p| seen.insert(p.to_string()))
        .cloned()
        .collect()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_acked(reply: &[u8]) {
    assert!(
        reply.windows(5).any(|w| w == b"\"ACK\""),
        "panel frame not acknowledged: {}",
        common::esc(reply)
    );
}

/// Panel frames, each with the packet the automation must get for it. Every packet is
/// distinct (a running zone number), so order and completeness can be read off the
/// automation's side.
struct Alarms {
    next: u32,
    expected: Vec<String>,
}

impl Alarms {
    fn frame(&mut self) -> Vec<u8> {
        self.next += 1;
        let k = self.next;
        let z = k % 1000;
        let seq = (k % 9999) as u16;
        let (fb, packet) = match k % 4 {
            0 => (
                Fb::cid("1234", seq, &format!("1130 01 {z:03}")),
                format!("5011 181234E13001{z:03}"),
            ),
            1 => (
                Fb::cid("123456789", seq, &format!("3301 02 {z:03}")),
                format!("Q011 580123456789R30102{z:03}"),
            ),
            // Hex account, mapped to 4321 by the account map.
            2 => (
                Fb::cid("AB12", seq, &format!("1130 03 {z:03}")),
                format!("5011 184321E13003{z:03}"),
            ),
            _ => (
                Fb::sia("5678", seq, &format!("Nri1/BA{z:03}")),
                format!("S011[#5678|Nri1/BA{z:03}]"),
            ),
        };
        self.expected.push(format!("{packet}\x14"));
        fb.clear()
    }

    fn send(&mut self, panel_addr: SocketAddr, n: usize) {
        let mut panel = Tcp::connect(panel_addr);
        for _ in 0..n {
            let f = self.frame();
            assert_acked(&panel.exchange(&f));
        }
    }
}

fn sim_config(sim_port: u16, dir: &Path) -> std::path::PathBuf {
    write_file(
        dir,
        "map.csv",
        "dc09_account,automation_account\nAB12,4321\n",
    );
    write_file(
        dir,
        "tocsin.toml",
        &format!(
            r#"[receiver]
id = "rx"

[[automation]]
name = "manitou"
format = "surgard"
connect = "127.0.0.1:{sim_port}"
receiver_number = "01"
line = "1"
heartbeat = "2s"
ack_timeout = "300ms"
own_account = "0000"
account_map = "map.csv"
"#
        ),
    )
}

/// The automation-sim NAKs every 5th packet and ignores every 7th; it is killed and
/// restarted, and so is the daemon (SIGKILL): every alarm acknowledged to a panel still
/// reaches it, in order, and heartbeats come only after idle time.
#[test]
fn every_alarm_reaches_the_automation_in_order_across_restarts() {
    let dir = tempdir();
    let sim_port = free_port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let flags = ["--nak-every", "5", "--silent-every", "7"];
    let mut sim = Sim::start(sim_port, &flags, Arc::clone(&lines));
    let cfg = sim_config(sim_port, dir.path());
    let mut d = Daemon::start(&cfg, &dir.path().join("data"));
    let mut alarms = Alarms {
        next: 0,
        expected: Vec::new(),
    };

    alarms.send(d.addr, 16);
    wait_for("some packets acknowledged", || {
        (sim.acked_events().len() >= 8).then_some(())
    });
    // The automation computer dies; alarms keep being acknowledged to panels.
    sim.kill();
    alarms.send(d.addr, 8);
    let sim2 = Sim::start(sim_port, &flags, Arc::clone(&lines));
    alarms.send(d.addr, 8);
    // The receiver crashes with packets in flight, and comes back.
    d.kill9();
    d.restart();
    alarms.send(d.addr, 8);
    // One account nobody can map: sent on own_account.
    let mut panel = Tcp::connect(d.addr);
    assert_acked(&panel.exchange(&Fb::cid("ZZ99", 1, "1130 01 001").clear()));
    alarms.expected.push("5011 180000E14000000\x14".into());

    let expected = alarms.expected.clone();
    let acked = wait_for("every alarm acknowledged by the automation", || {
        let acked = sim2.acked_events();
        let firsts = first_copies(&acked);
        (firsts.len() >= expected.len()).then_some(acked)
    });
    assert_eq!(
        first_copies(&acked),
        expected,
        "the automation got every alarm, in order (first copies)"
    );
    // Copies beyond the first come only from the restarts (at least once), and are few.
    assert!(acked.len() <= expected.len() + 16, "{} copies", acked.len());

    // Idle now: heartbeats, each after at least most of the 2 s of silence.
    std::thread::sleep(Duration::from_secs(5));
    let all = lines.lock().unwrap().clone();
    let heartbeats = all.iter().filter(|l| s(l, "kind") == "heartbeat").count();
    assert!(heartbeats >= 2, "heartbeats when idle: {heartbeats}");
    let mut checked = 0;
    for pair in all.windows(2) {
        let (prev, hb) = (&pair[0], &pair[1]);
        let same_conn = prev["conn"] == hb["conn"] && prev["n"].as_u64() < hb["n"].as_u64();
        // A heartbeat the automation did not ACK (silence or NAK) is sent again at once.
        let resent = s(prev, "kind") == "heartbeat" && s(prev, "answer") != "ack";
        if s(hb, "kind") != "heartbeat" || !same_conn || resent {
            continue;
        }
        let gap = hb["t"].as_f64().unwrap() - prev["t"].as_f64().unwrap();
        assert!(
            gap >= 1.5,
            "heartbeat {gap:.3}s after the previous packet: {prev} {hb}"
        );
        checked += 1;
    }
    assert!(checked >= 1);

    // The operator's view.
    let m = d.metrics();
    assert_eq!(
        m.sum("tocsin_automation_link_up", &[("output", "manitou")]),
        1.0
    );
    assert_eq!(
        m.sum("tocsin_automation_unmapped_total", &[("output", "manitou")]),
        1.0
    );
    assert_eq!(
        m.sum(
            "tocsin_automation_backlog_records",
            &[("output", "manitou")]
        ),
        0.0
    );
    let (_, body) = d.get("/status").unwrap();
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["automation"][0]["name"], "manitou");
    assert_eq!(status["automation"][0]["link"], "up");
    let (_, out, _) = run_cli(&["status", "--http", &d.http.to_string()]);
    assert!(out.contains("automation  manitou: link up"), "{out}");
}

/// An automation written here byte by byte: tocsin listens, the peer dials.
struct Peer {
    s: TcpStream,
    cut: Cutter,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        let s = wait_for("the output to accept a connection", || {
            TcpStream::connect(addr).ok()
        });
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        Peer {
            s,
            cut: Cutter::default(),
        }
    }

    /// The next packet, whatever it is.
    fn packet(&mut self) -> String {
        loop {
            if let Some(p) = self.cut.next_packet() {
                return String::from_utf8(p).expect("packets are ASCII here");
            }
            let mut b = [0u8; 512];
            let n = self.s.read(&mut b).expect("read from tocsin");
            assert!(n > 0, "tocsin closed the connection");
            self.cut.push(&b[..n]);
        }
    }

    /// The next event packet; heartbeats on the way (a few at most) are acknowledged.
    fn event(&mut self) -> String {
        for _ in 0..3 {
            let p = self.packet();
            if !p.starts_with('1') {
                return p;
            }
            self.answer(&[ACK]);
        }
        panic!("only heartbeats, no event packet");
    }

    fn answer(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write to tocsin");
    }

    /// Whether tocsin closes this connection within `wait`.
    fn closed_within(&mut self, wait: Duration) -> bool {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 64];
        let closed = match self.s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.s.set_read_timeout(Some(WAIT)).unwrap();
        closed
    }
}

fn cid(zone: u32) -> (Vec<u8>, String) {
    (
        Fb::cid("1234", zone as u16, &format!("1130 01 {zone:03}")).clear(),
        format!("502100 181234E13001{zone:03}\x14"),
    )
}

#[test]
fn misbehaving_automation_nak_silence_disconnect_second_connection_set_aside() {
    let dir = tempdir();
    let port = free_port();
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        &format!(
            r#"[receiver]
id = "rx"

[[automation]]
name = "peer"
listen = "127.0.0.1:{port}"
receiver_number = "02"
line = "100"
heartbeat = "30s"
ack_timeout = "500ms"
max_attempts = 3
own_account = "9999"
"#
        ),
    );
    let mut d = Daemon::start(&cfg, &dir.path().join("data"));
    let automation: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut panel = Tcp::connect(d.addr);
    let mut send = |zone: u32| {
        let (frame, packet) = cid(zone);
        assert_acked(&panel.exchange(&frame));
        packet
    };

    // A new connection with nothing queued: a heartbeat, 3-digit line form.
    let mut peer = Peer::connect(automation);
    assert_eq!(peer.packet(), "102000           @    \x14");
    peer.answer(&[ACK]);

    // NAK: the same packet again. Junk before the ACK is ignored.
    let p1 = send(1);
    assert_eq!(peer.event(), p1);
    peer.answer(&[NAK]);
    assert_eq!(peer.event(), p1);
    peer.answer(b"\r\n");
    peer.answer(&[ACK]);

    // Silence: the same packet again after ack_timeout.
    let p2 = send(2);
    assert_eq!(peer.event(), p2);
    assert_eq!(peer.event(), p2, "sent again after silence");
    peer.answer(&[ACK]);

    // A second automation connection while this one answers: refused.
    let mut second = Peer::connect(automation);
    assert!(second.closed_within(WAIT), "second connection not closed");
    d.wait_stderr("second automation connection refused");

    // Disconnect in the middle of a packet: it comes first on the next connection.
    let p3 = send(3);
    let mut head = [0u8; 5];
    peer.s.read_exact(&mut head).unwrap();
    drop(peer);
    let mut peer = Peer::connect(automation);
    assert_eq!(peer.event(), p3);
    peer.answer(&[ACK]);

    // Refused max_attempts times: set aside, reported on own_account, on the bus side
    // (stdout events here) too; the next alarm is not held behind it.
    let p4 = send(4);
    for _ in 0..3 {
        assert_eq!(peer.event(), p4);
        peer.answer(&[NAK]);
    }
    assert_eq!(peer.event(), "502100 189999E35400000\x14");
    peer.answer(&[ACK]);
    let reports = d.wait_events(1, |e| s(e, "code") == "automation_set_aside");
    assert_eq!(s(&reports[0], "account"), "1234");
    assert!(s(&reports[0], "text").contains("peer"), "{}", reports[0]);
    let p5 = send(5);
    assert_eq!(peer.event(), p5);
    peer.answer(&[ACK]);
    d.wait_metric(
        "tocsin_automation_set_aside_total",
        &[("output", "peer")],
        1.0,
    );

    // The receiver dies with a packet in flight: after its restart the packet comes again,
    // possibly after copies of what was already delivered (at least once), resuming in
    // order from a point of the stream the automation had.
    let p6 = send(6);
    assert_eq!(peer.event(), p6);
    d.kill9();
    assert!(peer.closed_within(WAIT));
    d.restart();
    let mut peer = Peer::connect(automation);
    let mut before = Vec::new();
    loop {
        let p = peer.event();
        peer.answer(&[ACK]);
        if p == p6 {
            break;
        }
        before.push(p);
    }
    let stream = [p1, p2, p3, p4, "502100 189999E35400000\x14".to_string(), p5];
    assert!(
        stream.ends_with(&before),
        "resumed out of order or with foreign packets: {before:?}"
    );

    // The automation goes away: the link is down, and it shows.
    drop(peer);
    d.wait_stderr("automation link down");
    wait_for("link_up 0", || {
        let m = d.metrics();
        (m.sum("tocsin_automation_link_up", &[("output", "peer")]) == 0.0).then_some(())
    });
    let (_, body) = d.get("/status").unwrap();
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["automation"][0]["link"], "down");
    let (code, out, _) = run_cli(&["status", "--http", &d.http.to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("automation  peer: LINK DOWN"), "{out}");
}

/// The output's cursor is registered when the daemon starts and stays at the last
/// delivered record: retention, which never deletes past the smallest cursor, keeps what
/// the automation has not had. A second output, whose automation is there, is not held
/// back by the first.
#[test]
fn retention_keeps_what_the_automation_has_not_had() {
    let dir = tempdir();
    let port = free_port(); // nothing listens there
    let sim_port = free_port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sim = Sim::start(sim_port, &[], Arc::clone(&lines));
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        &format!(
            "[receiver]\nid = \"rx\"\n[journal]\nsegment_size = \"4KiB\"\n[[automation]]\nname = \"away\"\nconnect = \"127.0.0.1:{port}\"\n[[automation]]\nname = \"here\"\nconnect = \"127.0.0.1:{}\"\n",
            sim_port
        ),
    );
    let data = dir.path().join("data");
    let mut d = Daemon::start(&cfg, &data);
    let mut panel = Tcp::connect(d.addr);
    for zone in 1..=40 {
        assert_acked(&panel.exchange(&cid(zone).0));
    }
    // Two outputs are independent: the one whose automation is there gets everything.
    let delivered = wait_for("the present automation to get all 40", || {
        let n = acked_events(&lines.lock().unwrap()).len();
        (n >= 40).then_some(n)
    });
    assert_eq!(delivered, 40);
    let (_, body) = d.get("/status").unwrap();
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["automation"][0]["link"], "down");
    assert_eq!(status["automation"][1]["link"], "up");
    d.stop();
    let cursors = tocsin::journal::CursorStore::open(&data).unwrap();
    assert_eq!(cursors.load_cursor("automation-away").unwrap(), Some(0));
    assert!(cursors.load_cursor("automation-here").unwrap() >= Some(40));
    drop(sim);
    let segments = || tocsin::journal::segment::list_segments(&data.join("journal")).unwrap();
    let before = segments().len();
    assert!(before > 2, "{before} segments");
    let policy = tocsin::journal::RetentionPolicy {
        max_bytes: Some(0),
        max_age_micros: None,
        allow_unpublished_deletion: false,
        min_free: None,
        room_for: 0,
    };
    let mut retention = tocsin::journal::Retention::new(&data).unwrap();
    let report = retention.run(&policy, 0).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.held_by_cursor, Some(0));
    assert_eq!(segments().len(), before);
    // Without that cursor (the output removed from the configuration for good and its
    // cursor deleted), the same pass deletes.
    cursors.remove_cursor("automation-away").unwrap();
    assert!(!retention.run(&policy, 0).unwrap().deleted.is_empty());
}

/// The automation outage bar, short: `benches/automation-outage.sh` with a 15 s outage at
/// 200 events a second, on the debug binary. The automation computer is killed during a
/// steady load and comes back: it must then get every event in order, none lost, while
/// every panel frame was acknowledged throughout. The 10-minute run is the same script
/// with its default duration.
#[test]
fn automation_outage_loses_nothing_and_reception_goes_on() {
    let out = Command::new("bash")
        .arg("benches/automation-outage.sh")
        .args(["15s", "200"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TOCSIN_BIN", env!("CARGO_BIN_EXE_tocsin"))
        .env("BENCH_DIR", env!("CARGO_TARGET_TMPDIR"))
        // A debug daemon spends ~2 ms of CPU a frame, beside three other tests on two
        // cores: a catch-up phase once acknowledged 179 frames/s of 200 with every frame
        // ACKed. A stalled reception still falls far below 80 %; the release benchmark
        // keeps the 90 % default.
        .env("MIN_RATE_FRACTION", "0.8")
        .output()
        .expect("run benches/automation-outage.sh (needs bash and python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "automation outage failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("automation outage: PASS"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("summary JSON");
    assert_eq!(summary["in_order_and_complete"], true);
    assert!(summary["backlog_at_end_of_outage"].as_u64().unwrap_or(0) > 1000);
}
