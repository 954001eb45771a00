//! End to end: the daemon's life as an operator sees it — readiness, configuration checks,
//! reload on SIGHUP (good and bad files) without dropping panels, and one bad or idle
//! client not hurting the others.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const K256: &str = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4";

const V1: &str = r#"
[receiver]
id = "e2e-lifecycle"

[accounts]
unknown = "reject"

[[account]]
id = "6001"
"#;

fn v2() -> String {
    format!(
        r#"{V1}
[[account]]
id = "6002"
key = "{K256}"
key_encoding = "hex"
encryption = "required"
"#
    )
}

/// A reload applies accounts, keys and time rules at once; what is wired at start (here the
/// limits and the outputs) waits for a restart, and the log says which, at this reload and
/// the next ones, while the running values stay.
#[test]
fn a_reload_names_the_changes_that_wait_for_a_restart() {
    let mut rx = start(V1);
    let changed = format!("{V1}\n[limits]\nmax_connections = 7\n\n[output]\nstdout = false\n");
    std::fs::write(&rx.d.config, &changed).unwrap();
    rx.d.hup();
    rx.d.wait_metric("tocsin_reloads_total", &[("result", "ok")], 1.0);
    let log = rx.d.wait_stderr("next restart");
    let line = log.lines().find(|l| l.contains("next restart")).unwrap();
    assert!(
        line.contains("[limits]") && line.contains("[output]") && !line.contains("[[listen]]"),
        "{line}"
    );
    // Still the running limit: more than 7 connections are served.
    let mut panels: Vec<Tcp> = (0..10).map(|_| Tcp::connect(rx.d.addr)).collect();
    for (i, p) in panels.iter_mut().enumerate() {
        let fb = Fb::sia("6001", i as u16 + 1, "Nri1/BA01");
        assert_eq!(
            esc(&p.exchange(&fb.clear())),
            esc(&fb.expected_reply("ACK"))
        );
    }
    // Said again at the next reload, until a restart.
    rx.d.hup();
    rx.d.wait_metric("tocsin_reloads_total", &[("result", "ok")], 2.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rx.d.stderr().matches("next restart").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", rx.d.stderr());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    rx.d.stop();
}

#[test]
fn sighup_adds_an_account_and_keeps_open_connections() {
    let mut rx = start(V1);
    let addr = rx.d.addr;
    let key = key_hex(K256);

    // A panel connected before any reload, and kept open throughout.
    let mut old = Tcp::connect(addr);
    let fb = Fb::sia("6001", 1, "Nri1/BA01");
    assert_eq!(
        esc(&old.exchange(&fb.clear())),
        esc(&fb.expected_reply("ACK"))
    );
    // 6002 is not configured yet.
    let r = exchange("tcp", addr, &Fb::sia("6002", 1, "Nri1/BA01").sealed(&key));
    assert_eq!(view(&r).token, "NAK", "before reload: {}", esc(&r));

    // Add 6002 with its key, reload.
    std::fs::write(&rx.d.config, v2()).unwrap();
    rx.d.hup();
    rx.d.wait_metric("tocsin_reloads_total", &[("result", "ok")], 1.0);
    let log = rx.d.wait_stderr("configuration reloaded");
    assert!(
        !log.contains("next restart"),
        "accounts apply at once, nothing waits for a restart: {log}"
    );

    // New connection: the encrypted frame is accepted with the new key.
    let fb = Fb::sia("6002", 2, "Nri1/BA02");
    let v = view(&exchange("tcp", addr, &fb.sealed(&key)));
    assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true));
    assert_now(
        open_ack(v.cipher.as_deref().unwrap(), &key),
        "*ACK after reload",
    );
    // The connection opened before the reload is still open and uses the new config too.
    let fb = Fb::sia("6001", 3, "Nri1/BA03");
    assert_eq!(
        esc(&old.exchange(&fb.clear())),
        esc(&fb.expected_reply("ACK"))
    );
    let fb = Fb::cid("6002", 4, "1130 01 004");
    let v = view(&old.exchange(&fb.sealed(&key)));
    assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true));
    // encryption = "required" took effect as well.
    let r = old.exchange(&Fb::sia("6002", 5, "Nri1/BA05").clear());
    assert_eq!(view(&r).token, "NAK");

    // A broken file: the running configuration stays, and the log says why.
    let broken = format!(
        "{}\n[[account]]\nid = \"6003\"\nkey = \"0011\"\nkey_encoding = \"hex\"\n",
        v2()
    );
    let bad_line = broken
        .lines()
        .position(|l| l.starts_with("key = \"0011\""))
        .unwrap()
        + 1;
    std::fs::write(&rx.d.config, &broken).unwrap();
    rx.d.hup();
    rx.d.wait_metric("tocsin_reloads_total", &[("result", "failed")], 1.0);
    let log = rx.d.wait_stderr("configuration reload failed");
    let line = log
        .lines()
        .find(|l| l.contains("configuration reload failed"))
        .unwrap();
    assert!(
        line.contains(&format!("tocsin.toml:{bad_line}:")) && line.contains("AES"),
        "the log line should name the file, line {bad_line} and the reason: {line}"
    );
    let m = rx.d.metrics();
    assert_eq!(m.sum("tocsin_reloads_total", &[("result", "failed")]), 1.0);
    assert_eq!(m.sum("tocsin_reloads_total", &[("result", "ok")]), 1.0);
    // Old configuration still in force: 6001 and 6002 accepted, 6003 unknown.
    let fb = Fb::sia("6001", 6, "Nri1/BA06");
    assert_eq!(
        esc(&old.exchange(&fb.clear())),
        esc(&fb.expected_reply("ACK"))
    );
    let fb = Fb::sia("6002", 7, "Nri1/BA07");
    let v = view(&exchange("udp", addr, &fb.sealed(&key)));
    assert_eq!((v.token.as_str(), v.encrypted), ("ACK", true));
    let r = exchange("tcp", addr, &Fb::sia("6003", 8, "Nri1/BA08").clear());
    assert_eq!(view(&r).token, "NAK");

    rx.d.stop();
    let h = history(&rx.d.data_dir, &[]);
    for (acct, seq) in [
        ("6001", "0001"),
        ("6002", "0002"),
        ("6001", "0003"),
        ("6002", "0004"),
        ("6001", "0006"),
        ("6002", "0007"),
    ] {
        assert_eq!(frame_events(&h, acct, seq).len(), 1, "{acct} {seq}: {h:#?}");
    }
}

#[test]
fn readyz_is_200_once_listening_and_frames_are_answered() {
    let mut rx = start(V1);
    assert_eq!(rx.d.get("/readyz").unwrap(), (200, "ready\n".to_string()));
    assert_eq!(rx.d.get("/healthz").unwrap().0, 200);
    let status = rx.d.get("/status").unwrap();
    assert_eq!(status.0, 200);
    let status: serde_json::Value = serde_json::from_str(&status.1).unwrap();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(
        status["listeners"]["tcp"][0].as_str(),
        Some(rx.d.addr.to_string().as_str())
    );
    let m = rx.d.metrics();
    assert_eq!(m.sum("tocsin_listeners", &[("transport", "tcp")]), 1.0);
    assert_eq!(m.sum("tocsin_listeners", &[("transport", "udp")]), 1.0);
    // Ready means both transports answer.
    for (i, t) in ["tcp", "udp"].into_iter().enumerate() {
        let fb = Fb::null("6001", i as u16);
        assert_eq!(
            esc(&exchange(t, rx.d.addr, &fb.clear())),
            esc(&fb.expected_reply("ACK"))
        );
    }
    rx.d.stop();
}

#[test]
fn a_taken_port_stops_the_start_with_a_clear_message() {
    let dir = tempdir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The daemon waits `bind_wait` for a held port (an old process exiting), then gives up.
    let config = write_file(dir.path(), "wait.toml", "[limits]\nbind_wait = \"1s\"\n");
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &addr,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")),
        "stderr: {err}"
    );
}

#[test]
fn check_config_names_the_line_of_a_mistake() {
    let dir = tempdir();
    let good = write_file(dir.path(), "good.toml", &v2());
    let (code, out, err) = run_cli(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok"), "{out}");

    // A syntax/type mistake (unknown field) on line 5.
    let syntax = write_file(
        dir.path(),
        "syntax.toml",
        "[receiver]\nid = \"x\"\n\n[time]\npast_seconds = 40\n",
    );
    let (code, out, err) = run_cli(&["check-config", syntax.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("line 5"), "should name line 5: {err}");

    // A meaningful mistake (a key of the wrong length) on line 8.
    let meaning = write_file(
        dir.path(),
        "meaning.toml",
        "[receiver]\nid = \"x\"\n\n[[account]]\nid = \"1\"\n\n# too short\nkey = \"00112233\"\nkey_encoding = \"hex\"\n",
    );
    let (code, out, err) = run_cli(&["check-config", meaning.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("meaning.toml:8:") && err.contains("AES"),
        "should name line 8: {err}"
    );

    // A file that is not there.
    let (code, _, err) = run_cli(&["check-config", "/nonexistent/tocsin.toml"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn garbage_and_idle_connections_do_not_starve_a_panel() {
    let mut rx = start(V1);
    let addr = rx.d.addr;

    // 200 connections that never send anything.
    let idle: Vec<Tcp> = (0..200).map(|_| Tcp::connect(addr)).collect();

    // One client spewing garbage continuously (reconnecting when the receiver drops it for
    // exceeding its junk budget).
    let stop = Arc::new(AtomicBool::new(false));
    let junk_sent = Arc::new(AtomicU64::new(0));
    let spewer = {
        let stop = Arc::clone(&stop);
        let junk_sent = Arc::clone(&junk_sent);
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 8192];
            while !stop.load(Ordering::Acquire) {
                let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                while !stop.load(Ordering::Acquire) {
                    rand::fill(&mut chunk[..]);
                    // Mostly printable junk with line ends, like a misdirected device.
                    for b in chunk.iter_mut() {
                        *b = match *b % 40 {
                            0 => b'\n',
                            1 => b'\r',
                            n => b' ' + n,
                        };
                    }
                    match s.write_all(&chunk) {
                        Ok(()) => {
                            junk_sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            }
        })
    };

    // Meanwhile a panel sends its events one after the other and gets every ACK.
    let mut panel = Tcp::connect(addr);
    let n = 200u16;
    for seq in 1..=n {
        let fb = if seq % 2 == 0 {
            Fb::sia("6001", seq, "Nri1/BA01")
        } else {
            Fb::cid("6001", seq, "1130 01 001")
        };
        let reply = panel
            .try_send(&fb.clear())
            .and_then(|()| panel.try_reply())
            .unwrap_or_else(|e| panic!("frame {seq} of {n}: {e}"));
        assert_eq!(esc(&reply), esc(&fb.expected_reply("ACK")), "frame {seq}");
    }
    // And a UDP panel too.
    let udp = Udp::new(addr);
    for seq in 1001..=1050u16 {
        let fb = Fb::sia("6001", seq, "Nri1/BA02");
        assert_eq!(
            esc(&udp.exchange(&fb.clear())),
            esc(&fb.expected_reply("ACK"))
        );
    }

    let m = rx.d.metrics();
    stop.store(true, Ordering::Release);
    spewer.join().unwrap();
    assert!(junk_sent.load(Ordering::Relaxed) > 0);
    assert!(
        m.sum("tocsin_junk_bytes_total", &[("transport", "tcp")]) > 0.0,
        "the garbage reached the receiver"
    );
    assert!(
        m.sum("tocsin_connections_open", &[]) >= 201.0,
        "idle connections are kept: {}",
        m.sum("tocsin_connections_open", &[])
    );
    drop(idle);
    rx.d.stop();
    let h = history(&rx.d.data_dir, &[]);
    assert_eq!(h.len(), (n + 50) as usize);
}

#[test]
fn an_idle_connection_is_closed_and_a_talking_one_is_kept() {
    use std::io::Read;
    let mut rx = start(&format!("{V1}\n[limits]\nidle_timeout = \"1s\"\n"));
    let addr = rx.d.addr;
    let mut quiet = Tcp::connect(addr);
    let mut talker = Tcp::connect(addr);
    let fb = Fb::sia("6001", 1, "Nri1/BA01");
    assert_eq!(
        esc(&quiet.exchange(&fb.clear())),
        esc(&fb.expected_reply("ACK"))
    );
    // The talker reports every 400 ms for 2.4 s: never silent for the idle timeout.
    for seq in 2..8u16 {
        std::thread::sleep(Duration::from_millis(400));
        let fb = Fb::sia("6001", seq, "Nri1/BA01");
        let reply = talker
            .try_send(&fb.clear())
            .and_then(|()| talker.try_reply())
            .unwrap_or_else(|e| panic!("talker frame {seq}: {e}"));
        assert_eq!(esc(&reply), esc(&fb.expected_reply("ACK")), "frame {seq}");
    }
    // The quiet one has been silent for 2.4 s: the receiver closed it (EOF on read).
    quiet
        .s
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(quiet.s.read(&mut buf).expect("EOF, not a timeout"), 0);
    assert_eq!(
        rx.d.metrics()
            .sum("tocsin_connections_total", &[("event", "idle")]),
        1.0
    );
    rx.d.stop();
}
